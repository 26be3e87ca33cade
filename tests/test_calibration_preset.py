"""A calibration writes its table into the maker's preset and leaves the rest of the file as it
was: comments, blank lines and the order of the tables."""

from __future__ import annotations

import argparse
import logging
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scope.calibration.camera import simulate_frames
from scope.calibration.preset import update_calibration

HARDWARE = Path(__file__).resolve().parents[1] / "hardware"


def _calibrate(argv: list[str]) -> int:
    from scope.cli import calibrate

    parser = argparse.ArgumentParser(prog="scope")
    calibrate.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["calibrate", *argv])
    return args.func(args)


def test_scope_calibrate_camera_keeps_the_presets_comments_and_layout(tmp_path):
    """budget.toml has 14 comments; `scope calibrate camera` left none (it rewrote the whole
    file). Now the file is the original, byte for byte, followed by [calibration.camera]; a
    second run (with maps) replaces that table in place instead of adding another."""
    rng = np.random.default_rng(0)
    kw = dict(gain_adu_per_e=1.8, read_noise_e=2.2, offset_adu=100.0, rng=rng)
    tifffile.imwrite(tmp_path / "dark.tif", simulate_frames(np.zeros((32, 32)), 40, **kw))
    flats = []
    for i, level in enumerate((300, 1500)):
        flats.append(str(tmp_path / f"f{i}.tif"))
        tifffile.imwrite(flats[-1], simulate_frames(np.full((32, 32), level), 40, **kw))
    preset = tmp_path / "c.toml"
    shutil.copy(HARDWARE / "presets" / "budget.toml", preset)
    original = preset.read_text()
    assert original.count("#") == 14
    argv = ["camera", "--dark", str(tmp_path / "dark.tif"), "--flat", *flats]
    assert _calibrate([*argv, "--preset", str(preset)]) == 0
    text = first = preset.read_text()
    assert text.count("#") == 14
    assert text.startswith(original)
    assert text[len(original) :].lstrip("\n").startswith("[calibration.camera]\n")
    once = tomllib.loads(text)["calibration"]["camera"]
    assert once["offset_adu"] == pytest.approx(100.0, abs=0.5)
    assert once["gain_e_per_adu"] == pytest.approx(1 / 1.8, rel=0.03)
    # again, with per-pixel maps: one [calibration.camera] (with its maps), the rest unchanged
    assert _calibrate([*argv, "--maps", "--preset", str(preset)]) == 0
    text = preset.read_text()
    assert text.startswith(original)
    assert text.count("[calibration.camera]") == 1
    assert text.count("[calibration.camera.maps]") == 1
    assert tomllib.loads(text)["calibration"]["camera"]["maps"]["gain"] == "c_camera_gain_map.tif"
    # and without maps again: the sub-table goes, and the file is as after the first run
    assert _calibrate([*argv, "--preset", str(preset)]) == 0
    assert preset.read_text() == first


PRESET = """\
# my microscope
[camera]
name = "AR0234"  # the budget camera

[calibration.pattern]
method = "uniform"
period_nm = [250.0]

# the optics the reconstruction needs
[optics]
na = 1.25   # oil
"""


def test_update_calibration_replaces_only_its_table(tmp_path):
    """The old [calibration.pattern] between [camera] and [optics] is replaced where it was;
    the comment above [optics] belongs to [optics] and stays; a new table goes at the end;
    updating twice with the same values changes nothing."""
    preset = tmp_path / "my.toml"
    preset.write_text(PRESET)
    update_calibration(preset, "pattern", {"method": "structured", "period_nm": [261.5]})
    text = preset.read_text()
    assert text == PRESET.replace(
        'method = "uniform"\nperiod_nm = [250.0]',
        'method = "structured"\nperiod_nm = [\n    261.5,\n]',
    )
    update_calibration(preset, "otf", {"cutoff_per_um": 4.5})
    with_otf = preset.read_text()
    assert with_otf == text + "\n[calibration.otf]\ncutoff_per_um = 4.5\n"
    update_calibration(preset, "otf", {"cutoff_per_um": 4.5})
    assert preset.read_text() == with_otf
    doc = tomllib.loads(with_otf)
    assert doc["optics"]["na"] == 1.25 and doc["camera"]["name"] == "AR0234"
    assert doc["calibration"] == {
        "pattern": {"method": "structured", "period_nm": [261.5]},
        "otf": {"cutoff_per_um": 4.5},
    }


def test_a_calibration_written_inline_is_rewritten_whole_with_a_warning(tmp_path, caplog):
    """A layout the text edit cannot handle (the table inline) still gives the right document:
    the whole file is rewritten, and the warning says that its comments are lost."""
    preset = tmp_path / "my.toml"
    preset.write_text("# mine\ncalibration = { camera = { offset_adu = 90.0 } }\n")
    caplog.set_level(logging.WARNING)
    update_calibration(preset, "camera", {"offset_adu": 100.0})
    assert tomllib.loads(preset.read_text()) == {"calibration": {"camera": {"offset_adu": 100.0}}}
    assert any("comments are lost" in r.getMessage() for r in caplog.records)


def test_windows_line_endings_are_kept(tmp_path):
    preset = tmp_path / "my.toml"
    preset.write_bytes(b"# mine\r\n[camera]\r\nname = 'x'\r\n")
    update_calibration(preset, "camera", {"offset_adu": 100.0})
    data = preset.read_bytes()
    assert data.startswith(b"# mine\r\n[camera]\r\nname = 'x'\r\n\r\n[calibration.camera]\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
