"""Pattern calibration on simulated calibration data (uniform slide and beads)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scope.calibration.pattern import (
    calibrate_pattern,
    load_pattern_calibration,
    save_pattern_calibration,
)
from scope.errors import DataFormatError, ReconstructionError
from scope.optics import OpticalSetup
from scope.sim.forward import simulate_raw
from scope.sim.params import AngleParameters, SIMParameters

SETUP = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)


def _truth(seed: int = 0) -> SIMParameters:
    # three orientations with slightly different periods and non-equidistant phase steps, as a
    # real projector gives them
    rng = np.random.default_rng(seed)
    angles = []
    for ang, per in ((12.3, 271.0), (72.1, 268.5), (132.4, 273.2)):
        phases = tuple(2 * math.pi * n / 3 + rng.uniform(-0.3, 0.3) for n in range(3))
        angles.append(AngleParameters(ang, per, phases, modulation=0.8))
    return SIMParameters(tuple(angles))


def _uneven_slide(shape=(256, 256)) -> np.ndarray:
    # a uniform fluorescent slide under uneven (vignetted, off-centre) illumination
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (1.0 - 0.3 * ((xx - 128) ** 2 + (yy - 100) ** 2) / 128**2).astype(np.float32)


def _phase_err(a, b) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * (np.asarray(a) - np.asarray(b)))))


def _steps(phases) -> np.ndarray:
    return np.mod(np.diff(np.asarray(phases)), 2 * math.pi)


def test_uniform_slide_noiseless_is_exact():
    # without noise the calibration must reproduce the forward model's conventions exactly:
    # angle = atan2(ky, kx), period = 1 / |k|, phase at the centre of pixel (0, 0)
    truth = _truth()
    raw = simulate_raw(_uneven_slide(), truth, SETUP, background_photons=10, noise=False)
    cal = calibrate_pattern(raw, SETUP)
    for got, want in zip(cal.params.angles, truth.angles):
        assert got.angle_deg == pytest.approx(want.angle_deg, abs=1e-3)
        assert got.period_nm == pytest.approx(want.period_nm, rel=1e-5)
        assert _phase_err(got.phases_rad, want.phases_rad).max() < 1e-3


def test_uniform_slide_recovers_angle_period_and_phase_steps():
    # a bright slide (2000 photo-electrons at the brightest pixel), two positions
    truth = _truth(1)
    sets = np.stack(
        [
            simulate_raw(
                _uneven_slide(), truth, SETUP, photons_peak=2000, background_photons=50, rng=seed
            )
            for seed in range(2)
        ]
    )
    cal = calibrate_pattern(sets, SETUP, offset_adu=100.0)
    assert cal.n_sets == 2
    for i, (got, want) in enumerate(zip(cal.params.angles, truth.angles)):
        # the reconstruction's estimator is good to ~0.05 deg and ~0.1 % on such data; the
        # calibration on a uniform slide must do at least as well
        assert got.angle_deg == pytest.approx(want.angle_deg, abs=0.05)
        assert got.period_nm == pytest.approx(want.period_nm, rel=5e-4)
        assert _phase_err(_steps(got.phases_rad), _steps(want.phases_rad)).max() < 0.05
        assert cal.phase_steps_rad[i] == pytest.approx(tuple(_steps(got.phases_rad)))
        # modulation: a lower bound (background lowers it), here 0.8 x ~0.95
        assert 0.65 < got.modulation <= 0.8 + 0.03
        # the camera sees the pattern through the OTF: far less modulation than there is
        assert cal.modulation_observed[i] < 0.5 * got.modulation
        assert cal.angle_std_deg[i] < 0.05


def test_beads_calibration_uses_the_reconstruction_estimator():
    from scope.sim.samples import make_sample

    truth = SIMParameters.equidistant(
        [12.3, 72.1, 132.4],
        period_nm=[271.0, 268.5, 273.2],
        modulation=0.8,
        phase_offset_rad=0.4,
    )
    gt = make_sample((256, 256), kind="beads", seed=2)
    raw = np.stack([simulate_raw(gt, truth, SETUP, photons_peak=400, rng=s) for s in range(2)])
    cal = calibrate_pattern(raw, SETUP, sample="structured", offset_adu=100.0)
    assert cal.method == "structured"
    for got, want in zip(cal.params.angles, truth.angles):
        assert got.angle_deg == pytest.approx(want.angle_deg, abs=0.1)
        assert got.period_nm == pytest.approx(want.period_nm, rel=2e-3)
        assert _phase_err(_steps(got.phases_rad), _steps(want.phases_rad)).max() < 0.2


def test_prior_fixes_the_wave_vector_sign_and_round_trips_through_the_preset(tmp_path):
    truth = _truth(2)
    raw = simulate_raw(_uneven_slide(), truth, SETUP, noise=False)
    # a prior pointing the other way (angle + 180) gets k and the phases flipped to match it
    prior = SIMParameters.equidistant([a.angle_deg + 180 for a in truth.angles], period_nm=270.0)
    cal = calibrate_pattern(raw, SETUP, prior=prior)
    for got, want in zip(cal.params.angles, truth.angles):
        assert got.angle_deg == pytest.approx(want.angle_deg - 180, abs=1e-3)
        assert _phase_err(got.phases_rad, -np.asarray(want.phases_rad)).max() < 1e-3
    preset = tmp_path / "setup.toml"
    preset.write_text("[optics]\nna = 1.2\n")
    save_pattern_calibration(preset, cal)
    back = load_pattern_calibration(preset)
    assert back is not None
    assert back.params.angles[1].period_nm == pytest.approx(cal.params.angles[1].period_nm)
    assert back.params.angles[2].phases_rad == pytest.approx(cal.params.angles[2].phases_rad)
    assert "na = 1.2" in preset.read_text()


def test_bad_input_is_refused():
    with pytest.raises(DataFormatError, match="9"):
        calibrate_pattern(np.ones((6, 64, 64)), SETUP)
    blank = np.random.default_rng(0).normal(100, 1, (9, 64, 64))
    with pytest.raises(ReconstructionError, match="no pattern"):
        calibrate_pattern(blank, SETUP)
