"""Pattern calibration: the defects a user sweep found (offset above the data, a structured
sample calibrated as a uniform slide, files of different patterns averaged, a file with no
signal, the angle reported in two ranges, not-measured figures written as numbers)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import tifffile

from scope.calibration.pattern import (
    ANGLE_RANGE_START_DEG,
    STRUCTURED_SAMPLE_CONTRAST,
    PatternCalibration,
    calibrate_pattern,
)
from scope.errors import DataFormatError
from scope.optics import OpticalSetup
from scope.sim.forward import simulate_raw
from scope.sim.params import SIMParameters
from scope.sim.samples import make_sample

SETUP = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
#: the B-SIM HeLa data (tests/data/README.md): NA 1.3, 660 nm, 65 nm pixels, offset 100 ADU;
#: pattern 120.72 / 58.18 / 2.29 deg, 357.7 / 357.0 / 332.9 nm
HELA_SETUP = OpticalSetup(na=1.3, wavelength_nm=660, pixel_size_nm=65)


@pytest.fixture(scope="module")
def hela(data_dir) -> np.ndarray:
    return tifffile.imread(data_dir / "bsim-hela-mitochondria" / "raw_images.tif")


def _warnings(caplog) -> str:
    return " | ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def _uniform_slide(shape=(256, 256)) -> np.ndarray:
    """A uniform fluorescent slide under uneven illumination, on the simulator's 2x grid."""
    ny, nx = 2 * shape[0], 2 * shape[1]
    yy, xx = np.mgrid[:ny, :nx]
    return (1.0 - 0.3 * ((xx - nx / 2) ** 2 + (yy - 0.4 * ny) ** 2) / (nx / 2) ** 2).astype(
        np.float32
    )


# --- 1. an offset above the data ---------------------------------------------------------------


def test_an_offset_above_every_value_is_refused_as_reconstruct_refuses_it(hela):
    """hela.tif peaks at 783 ADU: an offset of 5000 left nothing but negative values, which
    were calibrated into modulation 0.500 everywhere and shifted angles, and saved."""
    assert hela.max() < 5000
    for sample in ("structured", "uniform"):
        with pytest.raises(DataFormatError, match=r"no signal above the offset.*783.*5000"):
            calibrate_pattern(hela, HELA_SETUP, sample=sample, offset_adu=5000.0)


def test_an_offset_above_most_values_is_warned_about(hela, caplog):
    caplog.set_level(logging.WARNING)
    offset = float(np.percentile(hela, 80))
    calibrate_pattern(
        hela, HELA_SETUP, sample="structured", offset_adu=offset, offset_given_as="--offset-adu"
    )
    assert "of the raw values lie below --offset-adu" in _warnings(caplog)


# --- 2. a structured sample calibrated as a uniform slide --------------------------------------


def test_a_structured_sample_calibrated_as_a_uniform_slide_is_warned_about(hela, caplog):
    """The default (uniform slide) on the HeLa cells found angle 54.3 deg / 444 nm where the
    pattern is 58.18 deg / 357 nm, silently. The widefield image's structure beyond the noise
    tells a cell from a slide: HeLa 0.43 of its mean (threshold 0.12)."""
    caplog.set_level(logging.WARNING)
    cal = calibrate_pattern(hela, HELA_SETUP, offset_adu=100.0)
    warned = _warnings(caplog)
    assert "looks like a structured sample" in warned
    assert "--sample structured" in warned
    (structure,) = cal.notes["widefield_structure"]
    assert structure > 2.5 * STRUCTURED_SAMPLE_CONTRAST
    # the offset unknown (the default without a camera calibration): still told
    caplog.clear()
    calibrate_pattern(hela, HELA_SETUP)
    assert "looks like a structured sample" in _warnings(caplog)


def test_a_simulated_cell_is_told_from_a_uniform_slide(caplog):
    """The forward model: a uniform slide (dim, bright; offset known or not) is not warned
    about, a simulated cell (filaments and beads) is."""
    truth = SIMParameters.equidistant([12.3, 72.1, 132.4], period_nm=270.0, modulation=0.8)
    caplog.set_level(logging.WARNING)
    for photons in (30, 2000):
        raw = simulate_raw(_uniform_slide((128, 128)), truth, SETUP, photons_peak=photons, rng=1)
        for offset in (100.0, None):
            caplog.clear()
            cal = calibrate_pattern(raw, SETUP, offset_adu=offset)
            assert "structured sample" not in _warnings(caplog)
            assert cal.notes["widefield_structure"][0] < 0.5 * STRUCTURED_SAMPLE_CONTRAST
    cell = make_sample((256, 256), "mixed", seed=2)
    raw = simulate_raw(cell, truth, SETUP, photons_peak=400, rng=1)
    caplog.clear()
    cal = calibrate_pattern(raw, SETUP, offset_adu=100.0)
    assert "looks like a structured sample" in _warnings(caplog)
    assert cal.notes["widefield_structure"][0] > 2 * STRUCTURED_SAMPLE_CONTRAST
    caplog.clear()
    calibrate_pattern(raw, SETUP, offset_adu=100.0, sample="structured")
    assert "structured sample" not in _warnings(caplog)


# --- 3. files holding different patterns -------------------------------------------------------


def _cells(angles, seeds, shape=64):
    truth = SIMParameters.equidistant(angles, period_nm=265.0, modulation=0.8)
    return [
        simulate_raw(make_sample((2 * shape, 2 * shape), "filaments", seed=s), truth, SETUP, rng=s)
        for s in seeds
    ]


def test_files_of_different_patterns_are_refused_naming_them():
    """cell01 (3/63/123 deg) and cell03 (11/71/131 deg) were averaged into 6.9 deg, angle_std
    3.9 deg, without a word."""
    sets = np.stack(_cells([3, 63, 123], [0, 1, 2]) + _cells([11, 71, 131], [3, 4, 5]))
    sources = ["cell01.ome.tif"] * 3 + ["cell03.ome.tif"] * 3
    for sample in ("structured", "uniform"):
        with pytest.raises(DataFormatError, match="different patterns") as err:
            calibrate_pattern(sets, SETUP, sample=sample, offset_adu=100.0, set_sources=sources)
        msg = str(err.value)
        assert "cell01.ome.tif: angles 3.0" in msg or "cell01.ome.tif: angles 2.9" in msg, msg
        assert "cell03.ome.tif: angles 11.0" in msg or "cell03.ome.tif: angles 10.9" in msg, msg
    # one file among three holds another pattern: it is the one named as differing
    sets = np.stack(_cells([3, 63, 123], [0, 1]) + _cells([7, 67, 127], [2]))
    with pytest.raises(DataFormatError, match=r"differs in c\.tif: calibrate"):
        calibrate_pattern(
            sets,
            SETUP,
            sample="structured",
            offset_adu=100.0,
            set_sources=["a.tif", "b.tif", "c.tif"],
        )


def test_sets_of_one_pattern_from_different_positions_are_averaged():
    """No false alarm: different cells (structured) and slide positions (uniform), dim and
    small fields, one pattern."""
    sets = np.stack(_cells([3, 63, 123], [0, 1, 2, 3]))
    cal = calibrate_pattern(
        sets, SETUP, sample="structured", offset_adu=100.0, set_sources=["a", "a", "b", "c"]
    )
    assert cal.n_sets == 4
    assert cal.params.angles[0].angle_deg == pytest.approx(3.0, abs=0.2)
    truth = SIMParameters.equidistant([3, 63, 123], period_nm=265.0, modulation=0.8)
    slides = np.stack(
        [
            simulate_raw(_uniform_slide((64, 64)), truth, SETUP, photons_peak=ph, rng=s)
            for s, ph in enumerate((30, 30, 3000, 3000))
        ]
    )
    cal = calibrate_pattern(slides, SETUP, offset_adu=100.0)
    assert max(cal.angle_std_deg) < 0.5


# --- 4. no signal ------------------------------------------------------------------------------


def test_a_file_with_no_signal_is_a_clear_error():
    """An all-zero file raised ZeroDivisionError (a zero wave vector)."""
    zeros = np.zeros((9, 64, 64), np.uint16)
    for sample in ("uniform", "structured"):
        for offset in (None, 0.0):
            with pytest.raises(DataFormatError, match="no signal above the offset"):
                calibrate_pattern(zeros, SETUP, sample=sample, offset_adu=offset)
    # a blank set among good ones is named
    good = _cells([3, 63, 123], [0])[0]
    sets = np.stack([good, np.full_like(good, 100.0)])
    with pytest.raises(DataFormatError, match=r"no signal above the offset in dark\.tif"):
        calibrate_pattern(
            sets, SETUP, sample="structured", offset_adu=100.0, set_sources=["a.tif", "dark.tif"]
        )


# --- 5. one range for the angle ----------------------------------------------------------------


@pytest.mark.parametrize("angle0", [0.0, -0.02, 179.97])
def test_both_methods_report_a_pattern_near_0_deg_alike(angle0):
    """A scope acquire run calibrated as a slide gave 0.054 deg, steps 1.874, 2.019 and as a
    structured sample 179.999 deg, steps 4.230, 4.136: one grating, two signs. Both methods now
    report the angle in [-15, 165) deg, with the phases of the sign chosen."""
    truth = SIMParameters.equidistant(
        [angle0, angle0 + 60, angle0 + 120], period_nm=260.0, modulation=0.9, phase_offset_rad=0.7
    )
    raw = simulate_raw(make_sample((512, 512), "mixed", seed=3), truth, SETUP, photons_peak=1000)
    cals = [
        calibrate_pattern(raw, SETUP, sample=s, offset_adu=100.0) for s in ("uniform", "structured")
    ]
    for cal in cals:
        for got, want in zip(cal.params.angles, truth.angles):
            assert ANGLE_RANGE_START_DEG <= got.angle_deg < ANGLE_RANGE_START_DEG + 180
            d = (got.angle_deg - want.angle_deg + 180) % 360 - 180
            sign = 1.0 if abs(d) < 90 else -1.0  # k or -k: the phases follow the sign
            err = np.angle(
                np.exp(1j * (np.asarray(got.phases_rad) - sign * np.asarray(want.phases_rad)))
            )
            assert np.abs(err).max() < 0.3
        assert cal.params.angles[0].angle_deg == pytest.approx((angle0 + 90) % 180 - 90, abs=0.05)
    uniform, structured = cals
    for a, b in zip(uniform.params.angles, structured.params.angles):
        assert a.angle_deg == pytest.approx(b.angle_deg, abs=0.05)
    np.testing.assert_allclose(uniform.phase_steps_rad, structured.phase_steps_rad, atol=0.3)


def test_the_prior_still_picks_the_sign():
    truth = SIMParameters.equidistant([0.0, 60.0, 120.0], period_nm=260.0, modulation=0.9)
    raw = simulate_raw(_uniform_slide(), truth, SETUP, noise=False)
    prior = SIMParameters.equidistant([180.0, 240.0, 300.0], period_nm=260.0)
    cal = calibrate_pattern(raw, SETUP, prior=prior)
    assert [a.angle_deg for a in cal.params.angles] == pytest.approx(
        [180.0, -120.0, -60.0], abs=1e-3
    )


# --- 6. not measured is None, not nan or 0 -----------------------------------------------------


def test_figures_not_measured_are_none_and_left_out_of_the_preset(hela, caplog):
    """A single structured set logged 'modulation 0.490 (observed nan)' and wrote
    angle_std_deg = [0.0, 0.0, 0.0]."""
    caplog.set_level(logging.INFO)
    cal = calibrate_pattern(hela, HELA_SETUP, sample="structured", offset_adu=100.0)
    assert cal.modulation_observed == (None, None, None)
    assert cal.angle_std_deg == (None, None, None)
    assert cal.period_std_nm == (None, None, None)
    assert "nan" not in caplog.text.lower()
    table = cal.to_toml()
    assert table["not_measured"] == ["modulation_observed", "angle_std_deg", "period_std_nm"]
    back = PatternCalibration.from_toml(table)
    assert back.modulation_observed == (None, None, None)
    assert back.angle_std_deg == (None, None, None)
    # NaN handed in (older code, other writers) is read as not measured
    legacy = PatternCalibration(
        cal.params, cal.phase_steps_rad, (math.nan,) * 3, (0.0,) * 3, (0.0,) * 3, 1, "structured"
    )
    assert legacy.modulation_observed == (None, None, None)
    assert legacy.angle_std_deg == (None, None, None)
    # two sets: the scatter is measured
    two = calibrate_pattern(
        np.stack([hela, hela]), HELA_SETUP, sample="structured", offset_adu=100.0
    )
    assert all(s is not None and s < 1e-6 for s in two.angle_std_deg)


def test_a_structured_calibration_without_a_carrier_names_the_file_and_not_priors():
    """The estimator's refusal advised --prior-angles/--prior-period, which calibrate does not
    take (a calibration measures the pattern), and did not say which file it was."""
    from scope.errors import ReconstructionError

    rng = np.random.default_rng(0)
    flat = rng.poisson(200, (2, 9, 64, 64)).astype(np.float32)  # no pattern at all
    with pytest.raises(ReconstructionError) as info:
        calibrate_pattern(
            flat, SETUP, sample="structured", offset_adu=0.0, set_sources=["a.tif", "b.tif"]
        )
    message = str(info.value)
    assert message.startswith("a.tif: angle 0: no clear pattern carrier")
    assert "prior" not in message and "check that the pattern is on and in focus" in message
