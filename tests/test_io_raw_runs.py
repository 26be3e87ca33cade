"""One detector of ``scope acquire`` runs, the journal's frame table, DeltaVision headers taken
from the header already read, and frames read once for the contrast and the drawing."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import tifffile

from scope.io.raw import LazyFrames, is_acquisition_run, open_raw


def _tiff_run(path, n_frames=3):
    """A TIFF run as `scope acquire` leaves it: pages, metadata and the frame journal."""
    from scope.acquisition.writer import AcquisitionWriter, FrameTag

    meta = {"n_angles": 1, "n_phases": 3}
    with AcquisitionWriter(path, (8, 8), "uint16", metadata=meta) as w:
        for p in range(n_frames):
            i = w.append(np.full((8, 8), p, np.uint16), FrameTag(set=0, pattern=p))
            w.set_valid([i], True)
    return path


def test_acquisition_runs_are_told_from_their_metadata(tmp_path):
    run = _tiff_run(tmp_path / "run.tif")
    assert is_acquisition_run(run)
    # the journal lost: the metadata beside it still names the layout
    run.with_name(run.name + ".frames.jsonl").unlink()
    assert is_acquisition_run(run)
    run.with_name(run.name + ".meta.json").write_text("{not json")
    assert not is_acquisition_run(run)  # unreadable: no run (opening it says what is wrong)
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((9, 8, 8), np.uint16))
    assert not is_acquisition_run(plain)
    assert not is_acquisition_run(tmp_path / "missing.tif")
    group = tmp_path / "run.zarr"
    group.mkdir()
    attrs = {"scope": {"layout": "scope-sim-raw/arrival-order"}}
    (group / "zarr.json").write_text(json.dumps({"node_type": "group", "attributes": attrs}))
    assert is_acquisition_run(group)
    (group / "zarr.json").write_text(json.dumps({"node_type": "group", "attributes": {}}))
    assert not is_acquisition_run(group)
    (group / "zarr.json").write_text("{")
    assert not is_acquisition_run(group)


def journal_table(run, limit=None):
    from scope.acquisition.writer import journal_frame_table, read_frame_journal

    return journal_frame_table(read_frame_journal(run), limit)


def test_journal_table_stops_at_the_first_gap(tmp_path):
    from scope.acquisition.writer import FRAME_COLUMNS
    from scope.io.raw import tiff_run_sidecars

    run = _tiff_run(tmp_path / "run.tif", n_frames=3)
    journal, meta = tiff_run_sidecars(run)
    assert (journal.name, meta.name) == ("run.tif.frames.jsonl", "run.tif.meta.json")
    assert journal.is_file() and meta.is_file()
    table = journal_table(run)
    assert table["index"].tolist() == [0, 1, 2]
    assert journal_table(run, 2)["index"].tolist() == [0, 1]
    column = FRAME_COLUMNS.index("index")
    lines = journal.read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["row"][column] != 1]
    journal.write_text("\n".join(kept) + "\n")  # frame 1 never confirmed
    assert journal_table(run)["index"].tolist() == [0]


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_deltavision_fields_come_from_the_header_read(tmp_path, byte_order):
    """Both byte orders: the DeltaVision fields are taken from the header mrcfile read."""
    import mrcfile

    path = tmp_path / "two.dv"
    data = np.arange(2 * 9 * 4 * 4, dtype=np.uint16).reshape(18, 4, 4)
    with mrcfile.new(path, data=data.astype(np.dtype(np.uint16).newbyteorder(byte_order))):
        pass
    with open(path, "r+b") as fh:
        fh.seek(96)
        fh.write(b"\xa0\xc0" if byte_order == "<" else b"\xc0\xa0")
        fh.seek(180)
        fh.write(struct.pack(byte_order + "2h", 1, 0))
        fh.seek(196)
        fh.write(struct.pack(byte_order + "6h", 2, 525, 600, 0, 0, 0))
    stack = open_raw(path, n_frames_per_set=9)
    assert stack.axes == "CPYX" and stack.shape == (2, 9, 4, 4)
    assert stack.channel_wavelengths_nm == (525.0, 600.0)
    assert stack.metadata["deltavision_image_sequence"] == "ZTW"


def test_frames_read_for_the_contrast_are_not_read_again(monkeypatch):
    import scope.export.render as render
    from scope.export import build_renderer

    reads = []
    frames = np.random.default_rng(0).random((20, 1, 32, 32)).astype(np.float32)

    def read(indices):
        reads.extend(int(i) for i in indices)
        return frames.reshape(-1, 32, 32)[list(indices)]

    lazy = LazyFrames(read, frames.shape, np.dtype(np.float32))
    eager = build_renderer(frames, preset="square", channel_axis=1, frame_interval_s=0.2)
    r = build_renderer(lazy, preset="square", channel_axis=1, frame_interval_s=0.2)
    for i in range(r.n_frames):
        np.testing.assert_array_equal(r.frame(i), eager.frame(i))
    assert sorted(reads) == list(range(20))  # each frame read once, contrast and drawing
    monkeypatch.setattr(render, "KEEP_SAMPLE_BYTES", 5 * 32 * 32 * 4)  # room for 5 frames
    reads.clear()
    r = build_renderer(lazy, preset="square", channel_axis=1, frame_interval_s=0.2)
    for i in range(r.n_frames):
        r.frame(i)
    assert len(reads) == 20 + 15  # the 15 not kept are read again to be drawn
