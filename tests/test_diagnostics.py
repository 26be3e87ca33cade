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
