"""``scope calibrate``: files in, calibration tables in the preset out."""

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
    argv = ["camera", "--dark", stores[0], "--flat", *stores[1:], "--preset", str(again)]
    assert _run([*argv, "--create"]) == 0
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
    argv = ["pattern", str(run), "--sample", "structured", "--preset", str(preset), "--create"]
    assert _run(argv) == 0
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
        _run(
            ["pattern", str(tmp_path / "x.tif"), "--preset", str(tmp_path / "new.toml"), "--create"]
        )


def test_calibrate_pattern_writes_no_nan_into_the_preset(tmp_path, data_dir):
    """Beads / a structured sample show no bare pattern, so its observed modulation cannot be
    measured: the preset says so (``not_measured``) instead of holding ``nan`` (which TOML
    readers refuse or take as a number); the calibration reads back with it unknown."""
    from scope.calibration.pattern import load_pattern_calibration

    cristae = data_dir / "bsim-mitochondria-cristae" / "raw_images.tif"
    preset = tmp_path / "my.toml"
    optics = ["--na", "1.3", "--wavelength", "569", "--pixel-size", "65", "--offset-adu", "100"]
    argv = ["pattern", str(cristae), "--sample", "structured", "--preset", str(preset), *optics]
    argv.append("--create")
    assert _run(argv) == 0
    text = preset.read_text()
    assert "nan" not in text.lower()
    table = tomllib.loads(text)["calibration"]["pattern"]
    # one set: its scatter over sets is not measured either (it read as a measured 0.0)
    assert table["not_measured"] == ["modulation_observed", "angle_std_deg", "period_std_nm"]
    assert "modulation_observed" not in table and "angle_std_deg" not in table
    assert all(0 < m < 1 for m in table["modulation"])
    back = load_pattern_calibration(preset)
    assert back.modulation_observed == (None, None, None)
    assert back.angle_std_deg == (None, None, None)
    assert back.params.angles[2].period_nm == pytest.approx(table["period_nm"][2])


# --- the maker's user sweep: a run's optics, no camera calibration yet, beads ---------------


@pytest.fixture(scope="module")
def beads_run(tmp_path_factory):
    """A scope acquire run of the simulated microscope's beads (deterministic): 3 sets of 3 x 3
    frames, 65 nm pixels, NA 1.2, 525 nm, a 260 nm pattern of modulation 1 at 0/60/120 deg,
    camera offset 100 ADU."""
    from scope.cli import main

    run = tmp_path_factory.mktemp("beads") / "beads.zarr"
    assert main(["-q", "acquire", "--sets", "3", "--sample", "beads", "-o", str(run)]) == 0
    return run


def _budget_copy(tmp_path: Path) -> Path:
    preset = tmp_path / "my_setup.toml"
    shutil.copy(HARDWARE / "presets" / "budget.toml", preset)
    return preset


def test_the_runs_recorded_optics_win_over_the_preset_and_a_disagreement_is_warned(
    beads_run, tmp_path, capsys, caplog
):
    """The budget preset says 60 nm pixels, NA 1.25, 520 nm; the run was recorded with 65 nm,
    NA 1.2, 525 nm. The run's values are what its frames hold: the 260 nm pattern comes out
    260 nm (it came out 60/65 x 260 = 240 nm with the preset's pixel, silently). Each
    disagreement is warned, naming both values; a flag settles it."""
    preset = _budget_copy(tmp_path)
    caplog.set_level(logging.WARNING)
    argv = ["pattern", str(beads_run), "--sample", "structured", "--preset", str(preset)]
    assert _run(argv) == 0
    out = capsys.readouterr().out
    assert "pixel at the sample 65 nm (run beads.zarr)" in out
    assert "NA 1.2 (run beads.zarr)" in out
    with preset.open("rb") as fh:
        table = tomllib.load(fh)["calibration"]["pattern"]
    assert table["period_nm"] == pytest.approx([260.0] * 3, rel=3e-3)
    warned = " | ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "pixel size at the sample: the run beads.zarr records 65 nm" in warned
    assert "my_setup.toml ([camera], [objective], [acquisition]) says 60 nm" not in warned
    assert "my_setup.toml ([optics]) says 60 nm" in warned
    assert "records 1.2, the preset my_setup.toml ([optics]) says 1.25" in warned
    assert "records 525 nm" in warned and "says 520 nm" in warned
    # --pixel-size decides: the preset's 60 nm gives 240 nm, and that disagreement is not warned
    caplog.clear()
    assert _run([*argv, "--pixel-size", "60"]) == 0
    assert "pixel at the sample 60 nm (--pixel-size)" in capsys.readouterr().out
    with preset.open("rb") as fh:
        table = tomllib.load(fh)["calibration"]["pattern"]
    assert table["period_nm"] == pytest.approx([240.0] * 3, rel=3e-3)
    assert not any("pixel size at the sample" in r.getMessage() for r in caplog.records)


def test_beads_calibrated_as_a_structured_sample_never_save_a_modulation_above_1(
    beads_run, tmp_path, capsys, caplog
):
    """On these beads the estimator measures the modulation above 1 (it wrote 1.09 and 1.17 into
    the preset; now 1.007 and 1.042 for two angles, 0.98 for the third): impossible, so saved
    as 1 with a warning that names the measured value; the angles and periods are still the
    run's pattern. No camera calibration
    yet: the offset is estimated from the dark background between the beads (the data's
    0.5th percentile: 99 ADU against the simulated camera's 100) and the output says so."""
    preset = _budget_copy(tmp_path)
    caplog.set_level(logging.WARNING)
    argv = ["pattern", str(beads_run), "--sample", "structured", "--preset", str(preset)]
    assert _run(argv) == 0
    out = capsys.readouterr().out
    assert "camera offset: 99 ADU, estimated from the data" in out
    with preset.open("rb") as fh:
        table = tomllib.load(fh)["calibration"]["pattern"]
    assert all(0 < m <= 1.0 for m in table["modulation"])
    clipped = [
        r.getMessage()
        for r in caplog.records
        if "above 1, which no pattern can have" in r.getMessage()
    ]
    assert clipped  # the beads' own contrast inflates the estimate
    for message in clipped:
        angle = int(message.split("pattern angle ")[1].split(":")[0])
        measured = float(message.split("modulation measured as ")[1].split(",")[0])
        assert measured > 1.0 and table["modulation"][angle] == 1.0
        assert "uniform fluorescent slide" in message
    for nominal, found in zip((0.0, 60.0, 120.0), table["angles_deg"], strict=True):
        off = (found - nominal) % 180
        assert min(off, 180 - off) < 0.2
    assert table["period_nm"] == pytest.approx([260.0] * 3, rel=3e-3)
    assert any("no camera offset known" in r.getMessage() for r in caplog.records)


def test_the_calibrated_camera_offset_is_used_and_its_absence_warned(tmp_path, capsys, caplog):
    """A uniform slide seen by a camera with a 100 ADU offset, 300 photo-electrons at the
    brightest pixel. Before any camera calibration the slide has no dark area to estimate the
    offset from: nothing is subtracted, the modulation reads low (0.52-0.56 against 0.75), and
    both the log and the output say so. With [calibration.camera] in the preset its offset is
    subtracted and the modulation is right."""
    from scope.calibration.preset import update_calibration
    from scope.optics import OpticalSetup
    from scope.sim.forward import simulate_raw
    from scope.sim.params import SIMParameters

    setup = OpticalSetup(na=1.25, wavelength_nm=520, pixel_size_nm=60)
    truth = SIMParameters.equidistant([5.0, 65.0, 125.0], period_nm=262.0, modulation=0.75)
    raw = simulate_raw(
        np.ones((256, 256), np.float32), truth, setup, photons_peak=300, background_photons=0,
        rng=4,
    )  # fmt: skip
    tifffile.imwrite(tmp_path / "slide.tif", raw)
    preset = _budget_copy(tmp_path)
    caplog.set_level(logging.WARNING)
    assert _run(["pattern", str(tmp_path / "slide.tif"), "--preset", str(preset)]) == 0
    assert "camera offset: unknown, none subtracted" in capsys.readouterr().out
    assert any("no camera offset known" in r.getMessage() for r in caplog.records)
    with preset.open("rb") as fh:
        before = tomllib.load(fh)["calibration"]["pattern"]["modulation"]
    assert max(before) < 0.6
    update_calibration(preset, "camera", {"offset_adu": 100.0})
    caplog.clear()
    assert _run(["pattern", str(tmp_path / "slide.tif"), "--preset", str(preset)]) == 0
    assert "camera offset: 100 ADU (the preset's [calibration.camera])" in capsys.readouterr().out
    assert not any("no camera offset known" in r.getMessage() for r in caplog.records)
    with preset.open("rb") as fh:
        after = tomllib.load(fh)["calibration"]["pattern"]["modulation"]
    assert after == pytest.approx([0.75] * 3, abs=0.05)


def test_a_mistyped_preset_is_refused_unless_create_is_given(tmp_path, capsys):
    from scope.errors import ConfigurationError

    rng = np.random.default_rng(1)
    kw = dict(gain_adu_per_e=1.8, read_noise_e=2.2, offset_adu=90.0, rng=rng)
    tifffile.imwrite(tmp_path / "dark.tif", simulate_frames(np.zeros((16, 16)), 20, **kw))
    flats = []
    for i, level in enumerate((200, 1500)):
        flats.append(str(tmp_path / f"flat{i}.tif"))
        tifffile.imwrite(flats[-1], simulate_frames(np.full((16, 16), level), 20, **kw))
    _budget_copy(tmp_path)
    typo = tmp_path / "my_setp.toml"
    argv = ["camera", "--dark", str(tmp_path / "dark.tif"), "--flat", *flats, "--preset", str(typo)]
    with pytest.raises(ConfigurationError, match=r"my_setp\.toml does not exist.*--create"):
        _run(argv)
    assert not typo.exists()
    assert _run([*argv, "--create"]) == 0
    assert f"created the new preset {typo}" in capsys.readouterr().out
    with typo.open("rb") as fh:
        assert tomllib.load(fh)["calibration"]["camera"]["offset_adu"] == pytest.approx(90, abs=1)
