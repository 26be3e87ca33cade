"""Illuminator-to-camera registration: device gratings + calibrated pattern -> projection map."""

from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np
import pytest

from scope.calibration.pattern import calibrate_pattern
from scope.calibration.registration import fit_registration, save_registration
from scope.optics import OpticalSetup
from scope.sim.forward import simulate_raw
from scope.sim.gratings import ProjectionGeometry, make_pattern_set

SETUP = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
PITCH_UM = 7.56


def _shifted(params, pattern_set, device_origin_px, f):
    """Pattern parameters when device pixel ``device_origin_px`` lands on camera pixel (0, 0)."""
    angles = []
    for i, a in enumerate(params.angles):
        qx, qy = pattern_set.gratings[i].k_per_px
        extra = f * 2 * math.pi * (qx * device_origin_px[0] + qy * device_origin_px[1])
        angles.append(replace(a, phases_rad=tuple(p + extra for p in a.phases_rad)))
    return replace(params, angles=tuple(angles))


@pytest.mark.parametrize(("two_beam", "period_px"), [(False, 5.0), (True, 8.0)])
def test_registration_recovers_the_projection_geometry(two_beam, period_px, tmp_path):
    pattern_set = make_pattern_set([0, 60, 120], period_px, shape=(64, 64))
    geometry = ProjectionGeometry(
        pixel_pitch_um=PITCH_UM,
        demagnification=83.33,
        rotation_deg=7.3,
        mirror=True,
        two_beam=two_beam,
    )
    f = 2 if two_beam else 1
    origin = (0.7, -0.4)  # device pixel imaged on the centre of camera pixel (0, 0)
    truth = _shifted(pattern_set.nominal_parameters(geometry), pattern_set, origin, f)
    sets = np.stack(
        [
            simulate_raw(
                np.ones((256, 256), np.float32),
                truth,
                SETUP,
                photons_peak=2000,
                background_photons=50,
                rng=s,
            )
            for s in range(2)
        ]
    )
    cal = calibrate_pattern(sets, SETUP, offset_adu=100.0)
    reg = fit_registration(
        [g.k_per_px for g in pattern_set.gratings],
        [pattern_set.device_phases_rad(i) for i in range(pattern_set.n_angles)],
        cal,
        two_beam=two_beam,
    )
    assert reg.mirror
    assert reg.rotation_deg == pytest.approx(7.3, abs=0.05)
    assert reg.demagnification(PITCH_UM) == pytest.approx(83.33, rel=1e-3)
    assert abs(reg.anisotropy) < 2e-3  # a similarity: the fit finds no shear
    assert reg.residual_rel < 1e-3
    assert reg.device_px_at_camera_origin == pytest.approx(origin, abs=0.05)
    # the measured geometry predicts the calibrated pattern
    predicted = _shifted(
        pattern_set.nominal_parameters(reg.to_geometry(PITCH_UM)),
        pattern_set,
        reg.device_px_at_camera_origin,
        f,
    )
    for got, want in zip(predicted.angles, cal.params.angles):
        assert got.period_nm == pytest.approx(want.period_nm, rel=1e-3)
        assert math.cos(math.radians(got.angle_deg - want.angle_deg)) ** 2 > 1 - 1e-5
    preset = tmp_path / "setup.toml"
    save_registration(preset, reg)
    assert "[calibration.registration]" in preset.read_text()


def test_gratings_in_another_order_than_calibrated_are_warned_about(caplog):
    """Two gratings swapped gave rotation -52.7 deg instead of 7.3 deg with only an INFO line
    (residual 0.016); the right order leaves ~1e-6 (at most 1.4e-4 measured over the setups of
    RESIDUAL_WARN_REL). The warning says the likely cause and the order that fits."""
    from scope.calibration.registration import RESIDUAL_WARN_REL

    pattern_set = make_pattern_set([0, 60, 120], 5.0, shape=(64, 64))
    geometry = ProjectionGeometry(
        pixel_pitch_um=PITCH_UM, demagnification=83.33, rotation_deg=7.3, mirror=True
    )
    truth = pattern_set.nominal_parameters(geometry)
    raw = simulate_raw(
        np.ones((256, 256), np.float32), truth, SETUP, photons_peak=2000, background_photons=50
    )
    cal = calibrate_pattern(raw, SETUP, offset_adu=100.0)
    k = [g.k_per_px for g in pattern_set.gratings]
    ph = [pattern_set.device_phases_rad(i) for i in range(3)]
    caplog.set_level(logging.WARNING)
    caplog.clear()
    right = fit_registration(k, ph, cal)
    assert right.residual_rel < 0.1 * RESIDUAL_WARN_REL
    assert right.rotation_deg == pytest.approx(7.3, abs=0.05)
    assert not caplog.records
    swapped = fit_registration([k[1], k[0], k[2]], [ph[1], ph[0], ph[2]], cal)
    assert swapped.residual_rel > 10 * RESIDUAL_WARN_REL
    warned = " | ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "another order than the device displayed them" in warned
    assert "(1, 0, 2)" in warned
    # the gratings of another pattern set: warned too
    other = make_pattern_set([0, 45, 90], 5.0, shape=(64, 64))
    caplog.clear()
    fit_registration(
        [g.k_per_px for g in other.gratings], [other.device_phases_rad(i) for i in range(3)], cal
    )
    assert "not the gratings of the pattern set" in caplog.text
