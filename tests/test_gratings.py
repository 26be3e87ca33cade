"""Gratings for DMD/LCoS/projector illuminators: quantisation, rendering, measurement, priors."""

from __future__ import annotations

import math
from pathlib import Path

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


# --- scope patterns: the maker's user sweep ---------------------------------------------------

BUDGET = str(Path(__file__).resolve().parents[1] / "hardware" / "presets" / "budget.toml")


def test_identical_or_opposite_angles_are_refused(tmp_path, capsys):
    """Two gratings of one orientation (equal, or 180 degrees apart, or within 1 degree of that)
    give no extra direction of resolution: refused, naming the two angles."""
    from scope.cli import main

    with pytest.raises(ConfigurationError, match=r"0° and 0° are the same orientation"):
        make_pattern_set([0, 0, 0], 6.0, shape=(8, 8))
    with pytest.raises(ConfigurationError, match=r"0° and 179\.5° .*0\.5° apart"):
        make_pattern_set([0, 60, 179.5], 6.0, shape=(8, 8))
    with pytest.raises(ConfigurationError, match=r"10° and 190°"):
        make_pattern_set([10, 190], 6.0, shape=(8, 8))
    assert make_pattern_set([0, 60, 178.9], 6.0, shape=(8, 8)).n_angles == 3  # 1.1° apart
    unused = tmp_path / "unused"
    argv = ["-q", "patterns", "--preset", BUDGET, "-o", str(unused), "--angles", "0", "0", "0"]
    assert main(argv) == 2
    assert "same orientation" in capsys.readouterr().err
    assert not unused.exists()


def test_scope_patterns_removes_its_own_stale_frames(tmp_path, capsys):
    """5 phases write pattern_000..014.png; 3 phases into the same folder left 009..014 beside
    a 9-frame patterns.json, which a maker uploading "in file order" would have taken along.
    Now the folder holds exactly the files patterns.json lists; other files stay."""
    import json

    from scope.cli import main

    out = tmp_path / "p"
    assert main(["-q", "patterns", "--preset", BUDGET, "-o", str(out), "--phases", "5"]) == 0
    assert len(list(out.glob("pattern_*.png"))) == 15
    (out / "notes.txt").write_text("mine")
    (out / "pattern_logo.png").write_bytes(b"not scope's")
    capsys.readouterr()
    assert main(["-q", "patterns", "--preset", BUDGET, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert (
        "removed 6 pattern files of an earlier run there (pattern_009.png ... pattern_014.png)"
        in text
    )
    doc = json.loads((out / "patterns.json").read_text())
    assert doc["files"] == [f"pattern_{i:03d}.png" for i in range(9)]
    assert sorted(p.name for p in out.glob("pattern_*.png")) == sorted(
        [*doc["files"], "pattern_logo.png"]
    )
    assert (out / "notes.txt").read_text() == "mine"


def test_scope_patterns_says_where_the_device_rotation_comes_from(tmp_path, capsys):
    """Without a registration calibration the rotation is a default, not 'from the registration
    calibration'; with [calibration.registration] in the preset its rotation (and measured
    scale) make the priors."""
    import json
    import shutil

    from scope.cli import main

    assert main(["-q", "patterns", "--preset", BUDGET, "-o", str(tmp_path / "a")]) == 0
    text = capsys.readouterr().out
    assert "device rotation 0°, the default: no registration calibration in the preset" in text
    assert "from the registration" not in text
    plain = json.loads((tmp_path / "a" / "patterns.json").read_text())
    preset = tmp_path / "mine.toml"
    shutil.copy(BUDGET, preset)
    with preset.open("a") as fh:  # 7.56 µm device pixels at 0.09 µm: demagnification 84
        fh.write(
            "\n[calibration.registration]\nscale_um_per_px = 0.09\nrotation_deg = 12.5\n"
            "mirror = false\n"
        )
    assert main(["-q", "patterns", "--preset", str(preset), "-o", str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    assert "device rotation 12.5°, from the preset's [calibration.registration]" in text
    doc = json.loads((tmp_path / "b" / "patterns.json").read_text())
    assert doc["geometry"]["rotation_deg"] == 12.5
    assert doc["geometry"]["device_pixel_at_sample_nm"] == pytest.approx(90.0)
    for a, b in zip(doc["at_sample"]["angles"], plain["at_sample"]["angles"], strict=True):
        assert _angle_diff(a["angle_deg"], b["angle_deg"] + 12.5, 360) == pytest.approx(0, abs=1e-9)
    # the flag wins over the calibration, and says so
    argv = ["-q", "patterns", "--preset", str(preset), "-o", str(tmp_path / "c")]
    assert main([*argv, "--rotation-deg", "-3"]) == 0
    assert "device rotation -3°, --rotation-deg" in capsys.readouterr().out


# --- one check of distinct orientations, one pattern builder ------------------------------------


def test_one_orientation_check_words_the_error_for_its_caller():
    """The check :func:`make_pattern_set`, ``scope acquire --angles`` and the estimation share:
    the pair it finds is the same whatever the caller, the words and the error type are the
    caller's."""
    from scope.errors import ReconstructionError
    from scope.sim.gratings import (
        check_distinct_angles,
        orientation_difference_deg,
        same_orientation_pair,
    )

    assert orientation_difference_deg(10.0, 189.5) == pytest.approx(0.5)
    assert orientation_difference_deg(0.0, 90.0) == pytest.approx(90.0)
    assert same_orientation_pair([0, 60, 178.9]) is None  # 1.1° apart
    i, j, apart = same_orientation_pair([10, 70, 189.5])
    assert (i, j) == (0, 2) and apart == pytest.approx(0.5)
    assert same_orientation_pair([0, 3], min_separation_deg=5.0)[:2] == (0, 1)
    assert same_orientation_pair([float("nan"), float("nan")]) is None
    check_distinct_angles([0, 60, 120])  # distinct: nothing raised
    with pytest.raises(ReconstructionError, match=r"^angles 0 and 2: 0\.5$"):
        check_distinct_angles(
            [10, 70, 189.5],
            message=lambda i, j, d: f"angles {i} and {j}: {d:.2g}",
            error=ReconstructionError,
        )


def test_the_grating_search_leaves_the_logger_alone(caplog):
    """:func:`best_grating_angles` tries many gratings that do not fit: it warns about none of
    them, and no longer does so by changing the module logger's level (which other threads
    share)."""
    import logging

    from scope.sim import gratings

    gratings.log.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.WARNING, logger="scope.sim.gratings"):
            angles = gratings.best_grating_angles(3, 5.0, 3, "binary")
        assert gratings.log.level == logging.DEBUG
    finally:
        gratings.log.setLevel(logging.NOTSET)
    assert len(angles) == 3
    assert not [r for r in caplog.records if r.name == "scope.sim.gratings"]
    with caplog.at_level(logging.WARNING, logger="scope.sim.gratings"):
        quantise_grating(0.0, 5.0, kind="binary", max_lattice_period=9)  # no good fit: warned
    assert any("no lattice grating within" in r.getMessage() for r in caplog.records)


def test_acquire_takes_the_gratings_scope_patterns_makes(tmp_path, capsys):
    """``scope acquire --preset`` and ``scope patterns --preset`` build the pattern set with one
    function: the same angles and periods at the sample, also with a registration calibration
    in the preset (its rotation used to be ignored by acquire)."""
    import json

    from scope.cli import main
    from scope.cli.acquire import _device_pattern
    from scope.cli.patterns import device_patterns
    from scope.planning import load_preset

    text = Path(BUDGET).read_text() + (
        "\n[calibration.registration]\nscale_um_per_px = 0.0605\nrotation_deg = 12.5\n"
        "mirror = false\n"
    )
    preset = tmp_path / "registered.toml"
    preset.write_text(text)
    doc = load_preset(str(preset))
    angles, periods = _device_pattern(doc, None, None)
    nominal = device_patterns(doc).nominal
    assert angles == [a.angle_deg for a in nominal.angles]
    assert periods == [a.period_nm for a in nominal.angles]
    assert main(["-q", "patterns", "--preset", str(preset), "-o", str(tmp_path / "p")]) == 0
    capsys.readouterr()
    written = json.loads((tmp_path / "p" / "patterns.json").read_text())["at_sample"]
    assert [a["angle_deg"] for a in written["angles"]] == pytest.approx(angles)
    assert [a["period_nm"] for a in written["angles"]] == pytest.approx(periods)
    plain = _device_pattern(load_preset(BUDGET), None, None)[0]
    assert [round(a) for a in plain] == [10, 70, 130]
    assert [round(a - p, 1) for a, p in zip(angles, plain)] == [12.5] * 3
