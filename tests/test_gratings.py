"""Gratings for DMD/LCoS/projector illuminators: quantisation, rendering, measurement, priors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scope.errors import ConfigurationError, DataFormatError
from scope.sim.gratings import (
    PatternSet,
    ProjectionGeometry,
    fundamental,
    make_pattern_set,
    measure_grating,
    quantise_grating,
    render_grating,
    sideband_ratio,
)
from scope.sim.params import SIMParameters


def _angle_diff(a: float, b: float, period: float = 180.0) -> float:
    return (a - b + period / 2) % period - period / 2


def _phase_diff(a: float, b: float) -> float:
    return (a - b + math.pi) % (2 * math.pi) - math.pi


@pytest.mark.parametrize("seed", range(4))
def test_measure_grating_recovers_a_known_cosine(seed):
    """The measurement itself, against ground truth that is not on the lattice."""
    rng = np.random.default_rng(seed)
    angle, period, phase = rng.uniform(0, 180), rng.uniform(3, 25), rng.uniform(0, 2 * np.pi)
    h, w = 200, 240
    y, x = np.mgrid[0:h, 0:w]
    k = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))]) / period
    img = 100 + 60 * np.cos(2 * np.pi * (k[0] * x + k[1] * y) + phase)
    img += rng.normal(0, 3, img.shape)
    m_angle, m_period, m_phase = measure_grating(img)
    assert abs(_angle_diff(m_angle, angle)) < 2e-3
    assert abs(m_period / period - 1) < 2e-4  # 5x below the 0.1 % the tests ask of gratings
    assert abs(_phase_diff(m_phase, phase)) < 5e-3


def test_measure_grating_refuses_bad_input():
    with pytest.raises(DataFormatError):
        measure_grating(np.zeros((8, 8)))
    with pytest.raises(DataFormatError):
        measure_grating(np.zeros((4, 32, 32)))


# requests covering axis-aligned, the usual 0/60/120, awkward angles, coarse and fine periods
REQUESTS = [
    (0.0, 6.0),
    (0.0, 9.7),
    (0.0, 20.0),
    (60.0, 4.5),
    (120.0, 6.0),
    (17.3, 12.0),
    (95.0, 3.3),
    (45.0, 6.0),
    (-40.0, 8.0),
    (150.0, 2.6),
]


@pytest.mark.parametrize("kind", ["binary", "grey"])
def test_measured_angle_and_period_match_the_reported_quantised_values(kind):
    for angle, period in REQUESTS:
        q = quantise_grating(angle, period, kind=kind)
        # the reported values are those of the lattice vector, and the errors are consistent
        assert q.angle_deg == pytest.approx(math.degrees(math.atan2(q.b, q.a)), abs=1e-12)
        assert q.period_px == pytest.approx(q.P / math.hypot(q.a, q.b), rel=1e-12)
        assert q.angle_error_deg == pytest.approx(_angle_diff(q.angle_deg, angle, 360.0))
        assert q.period_error == pytest.approx(q.period_px / period - 1)
        assert q.P % 3 == 0
        assert q.phase_shifts == (0, q.P // 3, 2 * q.P // 3)
        img = render_grating(q, (256, 256), 0, kind=kind)
        m_angle, m_period, _ = measure_grating(img)
        assert abs(_angle_diff(m_angle, q.angle_deg)) < 0.05, (angle, period, q)
        assert abs(m_period / q.period_px - 1) < 1e-3, (angle, period, q)


def test_quantisation_meets_its_tolerances_where_the_lattice_allows():
    for angle, period in [(0.0, 6.0), (60.0, 4.5), (120.0, 6.0), (17.3, 12.0), (30.0, 9.7)]:
        q = quantise_grating(angle, period, angle_tol_deg=0.1, period_tol=0.002)
        assert abs(q.angle_error_deg) <= 0.1
        assert abs(q.period_error) <= 0.002
        assert sideband_ratio(q) <= 0.02
    # an exact lattice grating is found exactly, with the smallest lattice period
    q = quantise_grating(0.0, 6.0)
    assert (q.a, q.b, q.P) == (1, 0, 6)
    assert q.angle_error_deg == 0
    assert q.period_error == 0
    # 20 px along x with three exact phase steps has no clean lattice grating within 0.2 %:
    # the quantiser reports the period it could make rather than a beating pattern
    q = quantise_grating(0.0, 20.0)
    assert abs(q.period_error) > 0.002
    assert sideband_ratio(q) <= 0.02
    q_free = quantise_grating(0.0, 20.0, exact_phase_steps=False)
    assert (q_free.a, q_free.b, q_free.P) == (1, 0, 20)
    assert q_free.phase_shifts == (0, 7, 13)


def test_sideband_ratio_matches_the_spectrum_of_the_rendered_pattern():
    # a pattern along x on a lattice with many folded harmonics next to the carrier
    q = quantise_grating(0.0, 20.0, max_sideband=1.0, period_tol=0.002, max_lattice_period=600)
    assert q.P > 100
    row = render_grating(q, (1, q.P), 0).astype(float)[0]  # exactly one lattice period
    spec = np.abs(np.fft.rfft(row))
    carrier = spec[q.a]
    near = [m for m in range(1, len(spec)) if m != q.a and abs(m - q.a) <= 0.25 * q.a]
    measured = max(spec[m] for m in near) / carrier
    assert sideband_ratio(q) == pytest.approx(measured, rel=1e-9)
    assert measured > 0.02
    assert sideband_ratio(q, "grey") < 1e-9


@pytest.mark.parametrize("kind", ["binary", "grey"])
def test_phase_steps_are_the_reported_phases(kind):
    ps = make_pattern_set([0, 60, 120], 6.0, shape=(192, 192), kind=kind)
    for i, q in enumerate(ps.gratings):
        reported = ps.device_phases_rad(i)
        for n in range(3):
            _, _, phase = measure_grating(ps.frames[3 * i + n], near_k_per_px=q.k_per_px)
            # measure_grating folds k into [0, 180) deg: the phase changes sign with k
            if q.b < 0 or (q.b == 0 and q.a < 0):
                phase = -phase
            assert abs(_phase_diff(phase, reported[n])) < 0.02, (kind, i, n)
        steps = np.diff(np.unwrap(reported))
        assert steps == pytest.approx([2 * np.pi / 3] * 2, abs=1e-9)


def test_rendered_values_and_types():
    q = quantise_grating(30.0, 6.0)
    binary = render_grating(q, (64, 80), 1)
    assert binary.dtype == np.uint8
    assert binary.shape == (64, 80)
    assert set(np.unique(binary)) == {0, 1}
    assert abs(binary.mean() - 0.5) < 0.02
    grey = render_grating(q, (64, 80), 2, kind="grey", bit_depth=10, contrast=0.8)
    assert grey.dtype == np.uint16
    assert grey.max() <= 1023
    assert grey.min() >= round(0.1 * 1023) - 1
    # a phase step is a shift of the pattern, exactly
    u = (q.a * np.arange(80)[None, :] + q.b * np.arange(64)[:, None]) % q.P
    assert np.array_equal(render_grating(q, (64, 80), 0)[u == 5], binary[u == (5 - 60) % q.P])
    m_grey, _ = fundamental(q, "grey", contrast=0.8)
    assert m_grey == pytest.approx(0.8)
    m_bin, _ = fundamental(q, "binary")
    assert m_bin == pytest.approx(4 / np.pi, rel=0.01)  # a square wave's fundamental


def test_pattern_set_order_is_angle_major_phase_fastest():
    ps = make_pattern_set([0, 60, 120], [6.0, 6.0, 6.5], shape=(32, 48), n_phases=5)
    assert isinstance(ps, PatternSet)
    assert ps.frames.shape == (15, 32, 48)
    assert ps.sequence == list(range(15))
    for i, q in enumerate(ps.gratings):
        assert q.P % 5 == 0
        for n in range(5):
            assert np.array_equal(ps.frames[5 * i + n], render_grating(q, (32, 48), n))
    report = ps.report()
    assert [round(r["requested_period_px"], 1) for r in report] == [6.0, 6.0, 6.5]
    assert all("sideband_ratio" in r and "phases_rad" in r for r in report)


def test_nominal_parameters_map_the_device_onto_the_sample():
    ps = make_pattern_set([0, 60, 120], 6.0, shape=(32, 32))
    geom = ProjectionGeometry(pixel_pitch_um=7.56, demagnification=60.0)
    p = ps.nominal_parameters(geom)
    assert isinstance(p, SIMParameters)
    assert (p.n_angles, p.n_phases) == (3, 3)
    for a, q in zip(p.angles, ps.gratings):
        assert a.period_nm == pytest.approx(q.period_px * 7.56 * 1000 / 60)
        assert a.angle_deg == pytest.approx(_angle_diff(q.angle_deg, 0, 360))
        assert a.modulation == 1.0  # binary fundamental 4/pi, capped
    assert p.angles[1].phases_rad == pytest.approx(ps.device_phases_rad(1))
    # mirrored, rotated and two-beam projections
    geom2 = ProjectionGeometry(7.56, 60.0, rotation_deg=10.0, mirror=True, two_beam=True)
    p2 = ps.nominal_parameters(geom2)
    q1 = ps.gratings[1]
    assert p2.angles[1].angle_deg == pytest.approx(-q1.angle_deg + 10.0)
    assert p2.angles[1].period_nm == pytest.approx(p.angles[1].period_nm / 2)
    steps = np.diff(np.unwrap(p2.angles[1].phases_rad))
    assert np.mod(steps, 2 * np.pi) == pytest.approx([4 * np.pi / 3] * 2)
    # the priors survive the params.json round trip
    again = SIMParameters.from_json(p.to_json())
    assert again.angles[2].period_nm == pytest.approx(p.angles[2].period_nm)
    grey = make_pattern_set([0], 6.0, shape=(8, 8), kind="grey", contrast=0.7)
    assert grey.nominal_parameters(geom).angles[0].modulation == pytest.approx(0.7)


def test_bad_requests_are_refused_with_a_reason():
    with pytest.raises(ConfigurationError, match="Nyquist"):
        quantise_grating(0.0, 1.5)
    with pytest.raises(ConfigurationError, match="phase"):
        quantise_grating(0.0, 6.0, n_phases=2)
    with pytest.raises(ConfigurationError, match="kind"):
        quantise_grating(0.0, 6.0, kind="sinusoid")
    with pytest.raises(ConfigurationError, match="periods"):
        make_pattern_set([0, 60], [6.0, 6.0, 6.0], shape=(8, 8))
    with pytest.raises(ConfigurationError):
        ProjectionGeometry(pixel_pitch_um=0, demagnification=10)
    q = quantise_grating(0.0, 6.0)
    with pytest.raises(ConfigurationError):
        render_grating(q, (8, 8), 3)


def test_pattern_set_drives_the_controller_sequence():
    """The frames' order is the controller's sequence: each exposure sees (angle, phase)."""
    from scope.devices.serial_controller import SerialPatternController

    ps = make_pattern_set([0, 60, 120], 6.0, shape=(16, 16))
    with SerialPatternController("sim://") as ctrl:
        ctrl.set_timing(exposure_ms=1, dark_ms=0.3)
        ctrl.upload_sequence(ps.sequence)
        ctrl.arm(len(ps.sequence))
        ctrl.start()
        done = ctrl.wait_for_event("DONE", timeout_s=2)
        log = ctrl.emulator.hardware.trigger_log
    assert done.counts.pulses == 9
    shown = [divmod(r.pattern_index, ps.n_phases) for r in log]
    assert shown == [(a, p) for a in range(3) for p in range(3)]


def test_geometry_from_a_planning_illuminator_agrees_with_scope_plan():
    from scope.planning import Illuminator, pattern_period_at_sample_nm

    ill = Illuminator(
        kind="dmd", pixel_pitch_um=7.56, pattern_period_px=6, demagnification=55.5,
        projection="two_beam",
    )  # fmt: skip
    geom = ProjectionGeometry.from_illuminator(ill)
    assert geom.two_beam
    ps = make_pattern_set([0.0], 6.0, shape=(8, 8))  # (1, 0, 6): exactly 6 px
    p = ps.nominal_parameters(geom)
    assert p.angles[0].period_nm == pytest.approx(pattern_period_at_sample_nm(ill))
    with pytest.raises(ConfigurationError, match="demagnification"):
        ProjectionGeometry.from_illuminator(
            Illuminator(
                kind="dmd", pixel_pitch_um=7.56, pattern_period_px=6, illumination_lens_focal_mm=150
            )
        )
