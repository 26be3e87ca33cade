"""``scope calibrate``: files in, calibration tables in the preset out."""

from __future__ import annotations

import argparse
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scope.calibration.camera import simulate_frames

HARDWARE = Path(__file__).resolve().parents[1] / "hardware"


def _run(argv: list[str]) -> int:
    from scope.cli import calibrate

    parser = argparse.ArgumentParser(prog="scope")
    calibrate.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["calibrate", *argv])
    return args.func(args)


def test_calibrate_camera_writes_gain_and_maps(tmp_path, capsys):
    rng = np.random.default_rng(0)
    kw = dict(gain_adu_per_e=1.8, read_noise_e=2.2, offset_adu=90.0, rng=rng)
    tifffile.imwrite(tmp_path / "dark.tif", simulate_frames(np.zeros((32, 32)), 40, **kw))
    flats = []
    for i, level in enumerate((100, 400, 1200, 3000)):
        path = tmp_path / f"flat{i}.tif"
        tifffile.imwrite(path, simulate_frames(np.full((32, 32), level), 40, **kw))
        flats.append(str(path))
    preset = tmp_path / "my.toml"
    shutil.copy(HARDWARE / "presets" / "budget.toml", preset)
    argv = [
        "camera",
        "--dark",
        str(tmp_path / "dark.tif"),
        "--flat",
        *flats,
        "--maps",
        "--preset",
        str(preset),
    ]
    assert _run(argv) == 0
    assert "e-/ADU" in capsys.readouterr().out
    with preset.open("rb") as fh:
        doc = tomllib.load(fh)
    table = doc["calibration"]["camera"]
    assert table["gain_e_per_adu"] == pytest.approx(1 / 1.8, rel=0.03)
    assert table["read_noise_e"] == pytest.approx(2.2, rel=0.10)
    assert (tmp_path / table["maps"]["gain"]).exists()
    assert doc["camera"]["pixel_pitch_um"] == 3.0  # the hardware tables are kept
    # the same frames as OME-Zarr stores (a camera's recording, not only TIFF): same result
    from scope.io.writers import write_ome_zarr

    stores = []
    for path in [tmp_path / "dark.tif", *map(Path, flats)]:
        frames = tifffile.imread(path).astype(np.float32)
        stores.append(
            str(write_ome_zarr(path.with_suffix(".zarr"), frames, pixel_size_nm=60, axes="TYX"))
        )
    again = tmp_path / "again.toml"
    assert _run(["camera", "--dark", stores[0], "--flat", *stores[1:], "--preset", str(again)]) == 0
    with again.open("rb") as fh:
        zarr_table = tomllib.load(fh)["calibration"]["camera"]
    assert zarr_table["gain_e_per_adu"] == pytest.approx(table["gain_e_per_adu"], rel=1e-6)


def test_calibrate_pattern_takes_optics_from_the_hardware_preset(tmp_path, capsys):
    from scope.optics import OpticalSetup
    from scope.sim.forward import simulate_raw
    from scope.sim.params import SIMParameters

    # the budget preset: 3.0 µm pixels / (100x * 0.5 relay) = 60 nm, NA 1.25, 520 nm emission
    setup = OpticalSetup(na=1.25, wavelength_nm=520, pixel_size_nm=60)
    truth = SIMParameters.equidistant([5.0, 65.0, 125.0], period_nm=262.0, modulation=0.7)
    raw = simulate_raw(np.ones((256, 256), np.float32), truth, setup, photons_peak=5000, rng=3)
    tifffile.imwrite(tmp_path / "slide.tif", raw)
    preset = tmp_path / "my.toml"
    shutil.copy(HARDWARE / "presets" / "budget.toml", preset)
    assert (
        _run(
            ["pattern", str(tmp_path / "slide.tif"), "--offset-adu", "100", "--preset", str(preset)]
        )
        == 0
    )
    assert "period" in capsys.readouterr().out
    with preset.open("rb") as fh:
        table = tomllib.load(fh)["calibration"]["pattern"]
    assert table["angles_deg"] == pytest.approx([5.0, 65.0, 125.0], abs=0.05)
    assert table["period_nm"] == pytest.approx([262.0] * 3, rel=5e-4)


def test_calibrate_pattern_from_a_run_of_scope_acquire(tmp_path, capsys):
    """A maker's calibration run as scope acquire writes it (OME-Zarr, 3 angles x 5 phases):
    read with its own pattern sequence and optics, every set used (it could only read TIFF
    files of 3 x 3 frames)."""
    from scope.cli import main

    run = tmp_path / "calib.zarr"
    acquire = ["-q", "acquire", "--sets", "2", "--phases", "5", "-o", str(run)]
    assert main([*acquire, "--shape", "128", "128", "--sample", "mixed"]) == 0
    preset = tmp_path / "new.toml"
    assert _run(["pattern", str(run), "--sample", "structured", "--preset", str(preset)]) == 0
    with preset.open("rb") as fh:
        table = tomllib.load(fh)["calibration"]["pattern"]
    for nominal, found in zip((0.0, 60.0, 120.0), table["angles_deg"], strict=True):
        off = (found - nominal) % 180
        assert min(off, 180 - off) < 0.2, table["angles_deg"]
    assert table["period_nm"] == pytest.approx([260.0] * 3, rel=5e-3)  # the run's 65 nm pixels
    steps = np.abs(np.asarray(table["phase_steps_rad"]))
    assert steps.shape == (3, 4)
    assert np.abs(np.minimum(steps, 2 * np.pi - steps) - 2 * np.pi / 5).max() < 0.3


def test_calibrate_without_optics_is_a_clear_error(tmp_path):
    from scope.errors import ConfigurationError

    tifffile.imwrite(tmp_path / "x.tif", np.zeros((9, 64, 64), np.float32))
    with pytest.raises(ConfigurationError, match="--na"):
        _run(["pattern", str(tmp_path / "x.tif"), "--preset", str(tmp_path / "new.toml")])


def test_calibrate_pattern_writes_no_nan_into_the_preset(tmp_path, data_dir):
    """Beads / a structured sample show no bare pattern, so its observed modulation cannot be
    measured: the preset says so (``not_measured``) instead of holding ``nan`` (which TOML
    readers refuse or take as a number); the calibration reads back with it unknown."""
    from scope.calibration.pattern import load_pattern_calibration

    cristae = data_dir / "bsim-mitochondria-cristae" / "raw_images.tif"
    preset = tmp_path / "my.toml"
    optics = ["--na", "1.3", "--wavelength", "569", "--pixel-size", "65", "--offset-adu", "100"]
    argv = ["pattern", str(cristae), "--sample", "structured", "--preset", str(preset), *optics]
    assert _run(argv) == 0
    text = preset.read_text()
    assert "nan" not in text.lower()
    table = tomllib.loads(text)["calibration"]["pattern"]
    assert table["not_measured"] == ["modulation_observed"]
    assert "modulation_observed" not in table
    assert all(0 < m < 1 for m in table["modulation"])
    back = load_pattern_calibration(preset)
    assert np.isnan(back.modulation_observed).all() and len(back.modulation_observed) == 3
    assert back.params.angles[2].period_nm == pytest.approx(table["period_nm"][2])
