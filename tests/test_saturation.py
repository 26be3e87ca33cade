"""Clipped raw values (the camera's full scale): found, counted against the unclipped truth,
and reported by ``scope reconstruct`` and ``scope batch``."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import tifffile

from scope.cli import main
from scope.sim.saturation import SaturationCounter, camera_pixel_format, full_scale_adu
from sim_cases import OFFSET, bright_set

CONTRACT = ["--na", "1.2", "--wavelength", "525", "--pixel-size", "65"]


def test_full_scale_from_pixel_format_and_type():
    assert full_scale_adu(np.uint8) == 255
    assert full_scale_adu(np.uint16) == 65535
    assert full_scale_adu(np.uint16, "Mono12") == 4095
    assert full_scale_adu(np.uint16, "Mono10p") == 1023
    assert full_scale_adu(np.float32) is None
    meta = {"acquisition": {"camera": {"name": "sim", "pixel_format": "Mono12"}}}
    assert camera_pixel_format(meta) == "Mono12" and camera_pixel_format({}) is None


@pytest.mark.parametrize("pixel_format", ["Mono12", None])
def test_counts_match_the_values_the_camera_clipped(pixel_format):
    """12-bit frames in 16-bit words: the count equals the values that passed 4095 before
    clipping, whether the file names the pixel format or the values pile up at 4095."""
    frames, unclipped = bright_set(0, 12)
    truth = int(np.count_nonzero(unclipped >= 4095))
    assert 0.001 < truth / frames.size < 0.05  # the case is what it claims to be
    counter = SaturationCounter(dtype=frames.dtype, pixel_format=pixel_format)
    assert counter.update(frames) == truth
    dim = (frames // 4).astype(np.uint16)  # a second, dimmer set: nothing clipped
    assert counter.update(dim) == 0
    summary = counter.summary()
    assert summary["level_adu"] == 4095 and summary["values"] == truth
    assert summary["fraction"] == pytest.approx(truth / (2 * frames.size), rel=1e-5)
    assert summary["sets_with_saturation"] == 1 and summary["sets"] == 2
    assert counter.significant and "4095 ADU" in counter.message()
    assert ("Mono12" if pixel_format else "12-bit values in 16-bit words") in counter.message()


def test_no_false_alarms():
    frames, unclipped = bright_set(1, 16)  # a 16-bit camera: nothing reaches 65535
    counter = SaturationCounter(dtype=np.uint16)
    assert counter.update(frames) == 0 and not counter.significant
    assert counter.summary()["level_adu"] == 65535
    # a 16-bit image whose brightest value happens to be 4095, at a few pixels only
    lone = np.minimum(frames, 4094)
    lone.flat[[5, 900, 7000]] = 4095
    counter = SaturationCounter(dtype=np.uint16)
    assert counter.update(lone) == 0 and counter.level_adu == 65535
    # float data: no full scale unless one is given
    assert SaturationCounter(dtype=np.float32).summary() is None
    given = SaturationCounter(4000.0, dtype=np.float32)
    assert given.update(unclipped) == int(np.count_nonzero(unclipped >= 4000))


def test_reconstruct_reports_clipping(tmp_path, caplog):
    frames, unclipped = bright_set(2, 12)
    clipped = tmp_path / "bright.tif"
    tifffile.imwrite(clipped, frames)
    out = tmp_path / "bright.sim.tif"
    with caplog.at_level(logging.WARNING):
        args = ["reconstruct", str(clipped), "-o", str(out), *CONTRACT, "--offset", str(OFFSET)]
        assert main(args) == 0
    doc = json.loads((tmp_path / "bright.params.json").read_text())
    truth = int(np.count_nonzero(unclipped >= 4095))
    assert doc["saturation"]["values"] == truth and doc["saturation"]["level_adu"] == 4095
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("full scale" in w and "Lower the exposure" in w for w in warnings), warnings
    # the same frames, with the full scale given by hand above them: nothing clipped, no warning
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main([*args, "--saturation-adu", "5000"]) == 0
    doc = json.loads((tmp_path / "bright.params.json").read_text())
    assert doc["saturation"]["values"] == 0 and doc["saturation"]["level_from"] == "given"
    assert not any("full scale" in r.getMessage() for r in caplog.records)


def test_batch_report_has_a_clipped_column(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    frames, unclipped = bright_set(3, 12)
    tifffile.imwrite(folder / "bright.tif", frames)
    tifffile.imwrite(folder / "dim.tif", (frames // 4 + 75).astype(np.uint16))
    out = tmp_path / "out"
    argv = ["batch", str(folder), "-o", str(out), *CONTRACT, "--offset", str(OFFSET)]
    assert main([*argv, "--workers", "0", "--no-progress"]) == 0
    report = json.loads((out / "batch-report.json").read_text())
    by_name = {f["input"].rsplit("/", 1)[-1]: f for f in report["files"]}
    truth = np.count_nonzero(unclipped >= 4095) / unclipped.size
    assert by_name["bright.tif"]["saturation"]["fraction"] == pytest.approx(truth, rel=1e-4)
    assert by_name["dim.tif"]["saturation"]["fraction"] == 0
    assert by_name["dim.tif"]["defect_pixels"] == {
        "0": {"pixels": 0, "hot": 0, "dead": 0, "share": 0.0}
    }
    table = (out / "batch-report.txt").read_text()
    assert "clipped" in table.splitlines()[0]
    assert f"{100 * truth:.2g} %" in table
