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
