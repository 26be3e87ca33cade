"""Streaming writer: frames on disk as they arrive, readable after a crash, tags round-trip."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from scope.acquisition.writer import (
    FRAME_COLUMNS,
    AcquisitionWriter,
    FrameTag,
    read_acquisition,
    valid_sets,
)
from scope.errors import ConfigurationError, DataFormatError


def _frame(i: int, shape=(24, 40)) -> np.ndarray:
    return (np.arange(shape[0] * shape[1]).reshape(shape) + 1000 * i).astype(np.uint16)


@pytest.mark.parametrize("name", ["run.zarr", "run.ome.tif"])
def test_round_trip_with_tags_and_valid_sets(tmp_path, name):
    path = tmp_path / name
    meta = {"sim_parameters": {"period_nm": 260.0}, "note": "µm and friends"}
    with AcquisitionWriter(path, (24, 40), np.uint16, metadata=meta, pixel_size_nm=65) as w:
        for i in range(30):  # 3 sets of 9 plus 3 frames of an unfinished set
            j = w.append(_frame(i), FrameTag(camera_frame_id=100 + i, timestamp_ns=i * 10))
            assert j == i
        for s in range(3):
            idx = list(range(9 * s, 9 * s + 9))
            w.update(
                idx, set=s, pattern=list(range(9)), angle=[k // 3 for k in range(9)],
                phase=[k % 3 for k in range(9)], controller_count=[i + 1 for i in idx],
            )  # fmt: skip
            w.set_valid(idx, s != 1)  # set 1 failed verification
    frames, table, got = read_acquisition(path)
    assert list(table) == list(FRAME_COLUMNS)
    assert frames.shape == (30, 24, 40)
    np.testing.assert_array_equal(np.asarray(frames[17]), _frame(17))
    np.testing.assert_array_equal(table["camera_frame_id"], 100 + np.arange(30))
    assert table["valid"].tolist() == [1] * 9 + [0] * 9 + [1] * 9 + [-1] * 3
    assert got["state"] == "complete"
    assert got["note"] == "µm and friends"
    assert got["sim_parameters"]["period_nm"] == 260.0
    sets, ids = valid_sets(frames, table, 9)
    assert ids.tolist() == [0, 2]
    np.testing.assert_array_equal(sets[1, 4], _frame(22))


_CRASH = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from scope.acquisition.writer import AcquisitionWriter, FrameTag
    w = AcquisitionWriter(sys.argv[1], (16, 16), np.uint16)
    for i in range(int(sys.argv[2])):
        w.append(np.full((16, 16), i, np.uint16), FrameTag(camera_frame_id=i + 1))
        if i == 4:
            w.update(list(range(5)), set=0, valid=1)
    os.kill(os.getpid(), signal.SIGKILL)  # no close(), no finally: the hardest crash
    """
)


@pytest.mark.parametrize("name", ["crash.zarr", "crash.tif"])
def test_readable_after_sigkill(tmp_path, name):
    path = tmp_path / name
    n = 300  # more than one block of capacity
    proc = subprocess.run([sys.executable, "-c", _CRASH, str(path), str(n)], check=False)
    assert proc.returncode == -signal.SIGKILL
    frames, table, meta = read_acquisition(path)
    assert meta["state"] == "acquiring"  # it never finished, and says so
    assert frames.shape == (n, 16, 16)
    assert [int(np.asarray(frames[i])[0, 0]) for i in (0, 150, n - 1)] == [0, 150, n - 1]
    np.testing.assert_array_equal(table["camera_frame_id"], np.arange(1, n + 1))
    assert table["valid"][:5].tolist() == [1] * 5
    assert (table["valid"][5:] == -1).all()


def test_bad_input_is_refused(tmp_path):
    path = tmp_path / "a.zarr"
    AcquisitionWriter(path, (8, 8), np.uint8).close()
    with pytest.raises(ConfigurationError, match="exists"):
        AcquisitionWriter(path, (8, 8), np.uint8)
    w = AcquisitionWriter(path, (8, 8), np.uint8, overwrite=True)
    with pytest.raises(DataFormatError, match="ROI"):
        w.append(np.zeros((8, 9), np.uint8))
    with pytest.raises(DataFormatError, match="out of range"):
        w.update(3, set=1)
    w.close(state="aborted", reason="test")
    assert read_acquisition(path)[2]["reason"] == "test"
    with pytest.raises(DataFormatError, match="closed"):
        w.append(np.zeros((8, 8), np.uint8))
    with pytest.raises(DataFormatError, match="does not exist"):
        read_acquisition(tmp_path / "missing.zarr")
    import zarr

    zarr.open_group(tmp_path / "other.zarr", mode="w")
    with pytest.raises(DataFormatError, match="not a scope acquisition"):
        read_acquisition(tmp_path / "other.zarr")
    assert os.path.isdir(path)


@pytest.mark.parametrize("name", ["run.zarr", "run.ome.tif"])
def test_a_staged_run_takes_its_name_with_its_first_frame(tmp_path, name):
    """``staged``: nothing carries the run's name before its first frame is on disk; an
    earlier run is replaced only then, and a writer closed with no frame leaves nothing."""
    path = tmp_path / name
    with AcquisitionWriter(path, (24, 40), np.uint16) as w:
        for i in range(3):
            w.append(_frame(i))
    old = np.asarray(read_acquisition(path)[0])
    assert old.shape == (3, 24, 40)

    # a start that fails before its first frame: the earlier run is untouched, nothing is left
    w = AcquisitionWriter(path, (24, 40), np.uint16, overwrite=True, staged=True)
    assert not w.published and w.path != path and w.path.parent == tmp_path
    np.testing.assert_array_equal(np.asarray(read_acquisition(path)[0]), old)
    w.close(state="aborted", reason="the controller refused")
    assert w.discarded
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [name] + ([f"{name}.frames.jsonl", f"{name}.meta.json"] if name.endswith(".tif") else [])
    )
    np.testing.assert_array_equal(np.asarray(read_acquisition(path)[0]), old)

    # a start that gets its first frame replaces it there and then
    w = AcquisitionWriter(path, (24, 40), np.uint16, overwrite=True, staged=True)
    w.append(_frame(7))
    assert w.published and w.path == path
    frames, _, meta = read_acquisition(path)
    assert frames.shape == (1, 24, 40) and meta["state"] == "acquiring"
    w.append(_frame(8))
    w.close()
    frames, table, meta = read_acquisition(path)
    np.testing.assert_array_equal(np.asarray(frames[1]), _frame(8))
    assert meta["state"] == "complete" and table["index"].tolist() == [0, 1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing left aside


def test_a_tiff_cut_short_reads_its_complete_frames(tmp_path):
    """An OME-TIFF whose last page was cut short (a full disk) reads back its complete frames
    (it used to fail with "all input arrays must have the same shape")."""
    path = tmp_path / "cut.ome.tif"
    with AcquisitionWriter(path, (24, 40), np.uint16) as w:
        for i in range(5):
            w.append(_frame(i))
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # the last frame's pixels half written
        fh.truncate(size - 24 * 40)
    frames, table, _ = read_acquisition(path)
    assert frames.shape[0] == 4
    np.testing.assert_array_equal(frames[3], _frame(3))
    assert table["index"].tolist() == [0, 1, 2, 3]


_FULL_DISK = """
set -e
mount -t tmpfs -o size=256k tmpfs "$1"
set +e
"$SCOPE_PY" -c "import sys; from scope.cli import main; sys.exit(main(sys.argv[1:]))" -q \\
    acquire --sets 100 -o "$1/full$3" --shape 64 64 --exposure-ms 2 --dark-ms 1 \\
    2> "$2/stderr.txt"
echo $? > "$2/rc.txt"
cp -r "$1/." "$2/"
"""


@pytest.mark.parametrize("suffix", [".ome.tif", ".zarr"])
def test_a_full_disk_says_so_and_keeps_the_frames(tmp_path, suffix):
    """`scope acquire` onto a 256 kB file system (a tmpfs in a private mount namespace) runs
    it full: one line says the disk is full and how many frames are on disk, and exactly those
    frames read back."""
    import shutil

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) for a private tmpfs")
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    script = tmp_path / "full.sh"
    script.write_text(_FULL_DISK)
    env = {**os.environ, "SCOPE_PY": sys.executable}
    proc = subprocess.run(
        ["unshare", "-r", "-m", "bash", str(script), str(mnt), str(out), suffix],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if not (out / "rc.txt").exists():
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {proc.stderr.strip()}")
    err = (out / "stderr.txt").read_text()
    assert (out / "rc.txt").read_text().strip() == "2", err
    import re

    found = re.search(r"the disk is full .*: (\d+) frames are on disk in (\S+);", err)
    assert found, err
    assert found.group(2) == str(mnt / f"full{suffix}")
    assert "Traceback" not in err
    n = int(found.group(1))
    assert 10 < n < 64  # 8 kB frames in 256 kB, table and metadata included
    frames, table, _ = read_acquisition(out / f"full{suffix}")
    assert frames.shape == (n, 64, 64)
    assert table["index"].tolist() == list(range(n))
    assert np.asarray(frames[n - 1]).std() > 0  # the last frame is whole, not zeros


def test_journal_rows_count_up_to_the_first_gap():
    """One function walks an OME-TIFF run's frame journal to its first gap (a frame whose row
    never came was never confirmed on disk), for the run's reader and its other users."""
    from scope.acquisition.writer import journal_frame_count, journal_frame_table

    def row(i: int, valid: int = 1) -> list[int]:
        return [0, 0, 0, i, 100 + i, i + 1, 10 * i, valid, 1, i]

    latest = {i: row(i) for i in (0, 1, 2, 4, 5)}
    assert journal_frame_count({}) == 0
    assert journal_frame_count(latest) == 3
    assert journal_frame_count(latest, limit=2) == 2
    table = journal_frame_table(latest)
    assert list(table) == list(FRAME_COLUMNS)
    assert table["index"].tolist() == [0, 1, 2] and table["camera_frame_id"].dtype == np.int64
    assert journal_frame_table({}, limit=5)["index"].shape == (0,)


def test_one_remove_and_one_atomic_write_for_both_writers(tmp_path):
    """The acquisition writer and the image writers share one remove (a link goes, never what
    it points to) and one write-then-rename: a failed write leaves the old file and no
    temporary behind."""
    from scope.io.writers import remove_path, write_atomically, write_bytes_atomically

    folder = tmp_path / "run.zarr"
    (folder / "0").mkdir(parents=True)
    (folder / "0" / "c").write_bytes(b"x")
    link = tmp_path / "link.zarr"
    link.symlink_to(folder, target_is_directory=True)
    remove_path(link)
    assert not link.exists() and (folder / "0" / "c").exists()
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    remove_path(dangling)
    assert not dangling.is_symlink()
    remove_path(folder)
    remove_path(tmp_path / "never-there")
    assert not folder.exists()

    target = tmp_path / "meta.json"
    write_bytes_atomically(target, b"old", tmp=tmp_path / "meta.json.partial")
    assert target.read_bytes() == b"old"

    def fails(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_atomically(target, fails)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]
    # a file replaced keeps its permissions (0600 became 0644 under umask 022)
    target.chmod(0o600)
    write_atomically(target, lambda tmp: tmp.write_bytes(b"new"))
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o600
