"""Resolution without ground truth, gain from the data, spectrum diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from scope.optics import OpticalSetup
from scope.sim.diagnostics import (
    carrier_report,
    estimate_gain,
    estimate_resolution,
    spectrum_png,
    spectrum_with_carriers,
)
from scope.sim.estimate import estimate_parameters
from scope.sim.forward import simulate_raw
from scope.sim.samples import make_sample
from sim_cases import OFFSET, SETUP, make_case


@pytest.mark.parametrize(
    ("name", "wavelength"),
    [("bsim-hela-mitochondria", 660), ("bsim-mitochondria-cristae", 569)],
)
def test_real_data_resolution_reported_and_sim_finer(data_dir, name, wavelength):
    raw = tifffile.imread(data_dir / name / "raw_images.tif")
    setup = OpticalSetup(na=1.3, wavelength_nm=wavelength, pixel_size_nm=65)
    params = estimate_parameters(raw, setup)
    res = estimate_resolution(raw, setup, params, offset_adu=100)
    # measured: HeLa 433 -> 271 nm, cristae 382 -> 250 nm (decorrelation analysis)
    assert 200 < res.widefield_nm < 700
    assert res.sim_nm < 0.8 * res.widefield_nm
    assert res.sim_nm > 0.45 * 1000 / setup.cutoff_per_um  # not beyond what SIM can reach


def test_split_photon_frc_on_simulated_data():
    case = make_case(0)
    res = estimate_resolution(case.raw, SETUP, case.truth, offset_adu=OFFSET, method="split-frc")
    # widefield near lambda / 2NA = 219 nm; SIM near 1 / (fc + |p|) = 118 nm
    assert 190 < res.widefield_nm < 300
    assert 110 < res.sim_nm < 150
    assert res.improvement > 1.6


def test_gain_is_measured_from_the_data():
    truth = case_params = make_case(1, size=64).truth
    del case_params
    raw = simulate_raw(
        make_sample((256, 256), seed=2), truth, SETUP, gain_adu_per_e=2.5, read_noise_e=1.0, rng=3
    )
    assert estimate_gain(raw, SETUP, offset_adu=OFFSET) == pytest.approx(2.5, rel=0.05)


def test_spectrum_marks_the_carriers(tmp_path):
    case = make_case(2, size=128)
    spec, marks = spectrum_with_carriers(case.raw, SETUP, case.truth)
    assert len(marks) == 6
    for y, x in marks:  # every mark sits on a local maximum of the modulated spectrum
        iy, ix = round(y), round(x)
        patch = spec[iy - 2 : iy + 3, ix - 2 : ix + 3]
        assert patch.max() > np.percentile(spec, 99.5)
    spectrum_png(tmp_path / "s.png", case.raw, SETUP, case.truth)
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert "period" in carrier_report(case.truth)


def test_the_report_prints_each_orientation_as_published_angles_are_quoted():
    """-59.6° (k's sign follows the phase stepping) is the 120.4° orientation: the report says
    120.40°, the parameters keep -59.6 (k and -k with negated phases are one pattern)."""
    from scope.sim.params import AngleParameters, SIMParameters

    params = SIMParameters(
        tuple(
            AngleParameters(angle, 300.0, (0.0, 2.1, 4.2)) for angle in (-59.6, 180.0, 1.47, -0.5)
        )
    )
    lines = carrier_report(params).splitlines()
    shown = [float(line.split(":")[1].split("°")[0]) for line in lines]
    assert shown == [120.4, 0.0, 1.47, 179.5]
    assert params.angles[0].angle_deg == -59.6
    for a in params.angles:  # the orientation is the wave vector's direction modulo 180°
        kx, ky = a.k_per_um
        assert np.isclose(np.degrees(np.arctan2(ky, kx)) % 180.0 % 180.0, a.orientation_deg)


def test_modulation_map_against_shot_noise_theory(tmp_path):
    """A uniform sample, its left part under the pattern and its right part lit evenly: the
    map reads the theoretical contrast-to-noise where the pattern is, (m_e / 2) sqrt(4 pi
    s^2 N mu) for modulation m_e, N phases, mu photons and a window of sigma s, and the noise
    floor (sqrt(pi) / 2 = 0.89) where it is not; the modulation depth is the pattern's seen
    through the OTF and the camera pixels."""
    from scope.optics import OTF, pixel_transfer
    from scope.sim.diagnostics import modulation_map, modulation_png
    from scope.sim.params import SIMParameters

    params = SIMParameters.equidistant([10, 70, 130], period_nm=260, modulation=0.8)
    flat = np.ones((256, 256))
    options = dict(photons_peak=100, background_photons=0, read_noise_e=0, offset_adu=100)
    patterned = simulate_raw(flat, params, SETUP, rng=1, **options)
    unmodulated = SIMParameters.equidistant([10, 70, 130], period_nm=260, modulation=0.0)
    even = simulate_raw(flat, unmodulated, SETUP, rng=2, **options)
    raw = patterned.copy()
    raw[:, :, 64:] = even[:, :, 64:]
    mmap = modulation_map(raw, SETUP, params, offset_adu=100, gain_adu_per_e=1.0)

    expected_frames = simulate_raw(flat, params, SETUP, noise=False, **options)
    mu = float(expected_frames[:, 16:-16, 16:48].mean())
    kx, ky = params.angles[0].k_per_um
    m_e = 0.8 * float(OTF.from_setup(SETUP)(np.hypot(kx, ky)))
    m_e *= float(pixel_transfer(np.array(kx), np.array(ky), SETUP.pixel_size_um))
    s = mmap.window_px
    theory = m_e / 2 * np.sqrt(4 * np.pi * s**2 * 3 * mu)
    left, right = np.s_[16:-16, 12:48], np.s_[16:-16, 84:-12]
    assert np.median(mmap.mcnr[left]) == pytest.approx(theory, rel=0.05)
    assert np.median(mmap.mcnr[right]) == pytest.approx(np.sqrt(np.pi) / 2, rel=0.1)
    assert np.median(mmap.modulation[left]) == pytest.approx(m_e, rel=0.1)
    assert mmap.per_angle_mcnr.shape == (3, 128, 128)
    summary = mmap.summary()
    assert 0.35 < summary["fraction_mcnr_3_or_more"] < 0.6  # the left half, give or take
    modulation_png(tmp_path / "m.png", mmap)
    assert (tmp_path / "m.png").stat().st_size > 1000
