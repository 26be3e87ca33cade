"""``scope plan`` figures against cases computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import argparse
import json

import pytest

from scope.errors import ConfigurationError
from scope.planning import (
    Acquisition,
    Camera,
    Illuminator,
    Objective,
    frame_timing,
    parts_from_preset,
    plan_setup,
    projection_demagnification,
)

# Case A, a budget build:
#   camera   3.0 µm pixels, 1920 x 1200, readout 8 ms, 120 fps max, trigger latency 0.05 ms
#   objective 40x / 0.65 air, finite (160 mm): total magnification 40
#   DMD      5.4 µm pitch, grating of 3 device pixels, demagnified 40x onto the sample
#   emission 520 nm, exposure 10 ms, pattern switch 0.5 ms
CAM_A = Camera(
    pixel_pitch_um=3.0,
    sensor_width_px=1920,
    sensor_height_px=1200,
    readout_time_ms=8.0,
    max_fps=120,
    bit_depth=10,
    trigger_latency_ms=0.05,
)
OBJ_A = Objective(magnification=40, na=0.65, immersion="air", correction="finite")
ILL_A = Illuminator(
    kind="dmd",
    pixel_pitch_um=5.4,
    pattern_period_px=3,
    demagnification=40,
    pattern_switch_time_ms=0.5,
)
ACQ_A = Acquisition(emission_wavelength_nm=520, exposure_ms=10)


def test_case_a_optics_by_hand():
    plan = plan_setup(CAM_A, OBJ_A, ILL_A, ACQ_A)
    # pixel at the sample: 3.0 µm / 40 = 0.075 µm = 75 nm
    assert plan.pixel_size_nm == pytest.approx(75.0)
    # Nyquist pixel: lambda / (4 NA) = 520 / 2.6 = 200 nm; 75 <= 200, sampled
    assert plan.nyquist_pixel_size_nm == pytest.approx(200.0)
    assert plan.nyquist_ok
    # field of view: 1920 x 75 nm = 144 µm, 1200 x 75 nm = 90 µm
    assert plan.field_of_view_um == pytest.approx((144.0, 90.0))
    # OTF cutoff: 2 NA / lambda = 1.3 / 0.520 µm = 2.5 cycles/µm
    assert plan.cutoff_per_um == pytest.approx(2.5)
    # pattern: 3 px x 5.4 µm = 16.2 µm on the DMD, / 40 = 0.405 µm = 405 nm at the sample
    assert plan.pattern_period_nm == pytest.approx(405.0)
    # 405 nm / 75 nm = 5.4 camera pixels per period
    assert plan.pattern_period_px == pytest.approx(5.4)
    # p = 1 / 0.405 = 2.469136 /µm; fraction p / fc = 2.469136 / 2.5 = 0.987654 (<= 1: inside)
    assert plan.pattern_frequency_per_um == pytest.approx(2.469136, rel=1e-6)
    assert plan.pattern_fraction_of_cutoff == pytest.approx(0.987654, rel=1e-6)
    assert plan.pattern_inside_otf
    # widefield: 520 / (2 x 0.65) = 400 nm
    assert plan.widefield_resolution_nm == pytest.approx(400.0)
    # SIM: 1 / (2.5 + 2.469136) µm = 1 / 4.969136 = 0.201242 µm;
    # the same as 400 / (1 + 0.987654) = 400 / 1.987654 = 201.242 nm
    assert plan.sim_resolution_nm == pytest.approx(201.242, abs=1e-3)
    assert plan.warnings == ()


def test_case_a_frame_rates_by_hand():
    plan = plan_setup(CAM_A, OBJ_A, ILL_A, ACQ_A)
    leader, follower = plan.timing["leader"], plan.timing["follower"]
    # leader pattern cycle: switch 0.5 + latency 0.05 + exposure 10 = 10.55 ms
    assert leader.pattern_cycle_ms == pytest.approx(10.55)
    # camera: exposure 10 + readout 8 = 18 ms (no overlap) > 1000 / 120 = 8.33 ms
    assert leader.camera_period_ms == pytest.approx(18.0)
    # frame period max(10.55, 18) = 18 ms -> 1000 / 18 = 55.556 raw fps, / 9 = 6.173 SIM fps
    assert leader.frame_period_ms == pytest.approx(18.0)
    assert leader.raw_fps == pytest.approx(55.556, abs=1e-3)
    assert leader.sim_fps == pytest.approx(6.1728, abs=1e-4)
    assert leader.limited_by == "camera exposure + readout"
    # follower cycle: exposure 10 + latency 0.05 + controller 0.01 + switch 0.5 = 10.56 ms
    assert follower.pattern_cycle_ms == pytest.approx(10.56)
    assert follower.frame_period_ms == pytest.approx(18.0)


def test_pattern_switch_limited_projector():
    # An HDMI pico projector: a new pattern shows after two 60 Hz video frames, 33.333 ms.
    # Camera with overlapped readout 4 ms, 200 fps max, latency 0.02 ms, exposure 5 ms.
    cam = CAM_A.model_copy(
        update={
            "readout_time_ms": 4.0,
            "max_fps": 200,
            "overlapped_readout": True,
            "trigger_latency_ms": 0.02,
        }
    )
    ill = ILL_A.model_copy(update={"kind": "projector", "pattern_switch_time_ms": 100 / 3})
    acq = Acquisition(emission_wavelength_nm=520, exposure_ms=5, controller_latency_ms=0.01)
    leader = frame_timing(cam, ill, acq, "leader")
    # camera alone: max(max(5, 4), 1000 / 200 = 5) = 5 ms
    assert leader.camera_period_ms == pytest.approx(5.0)
    # leader: 33.3333 + 0.02 + 5 = 38.3533 ms -> 26.0733 raw fps, 2.8970 SIM fps (9 frames)
    assert leader.frame_period_ms == pytest.approx(38.35333, abs=1e-4)
    assert leader.raw_fps == pytest.approx(26.0733, abs=1e-4)
    assert leader.sim_fps == pytest.approx(2.89704, abs=1e-4)
    assert leader.limited_by.startswith("pattern switch")
    # follower: 5 + 0.02 + 0.01 + 33.3333 = 38.3633 ms
    follower = frame_timing(cam, ill, acq, "follower")
    assert follower.frame_period_ms == pytest.approx(38.36333, abs=1e-4)
    # 2 angles x 3 phases: 6 frames per SIM image -> 26.0733 / 6 = 4.3456 SIM fps
    acq6 = acq.model_copy(update={"n_angles": 2})
    assert frame_timing(cam, ill, acq6, "leader").sim_fps == pytest.approx(4.34556, abs=1e-4)


def test_max_fps_limited():
    # exposure 1 ms + readout 2 ms = 3 ms, but the camera tops out at 100 fps = 10 ms a frame
    cam = CAM_A.model_copy(update={"readout_time_ms": 2.0, "max_fps": 100})
    ill = ILL_A.model_copy(update={"pattern_switch_time_ms": 0.1})
    t = frame_timing(cam, ill, Acquisition(emission_wavelength_nm=520, exposure_ms=1), "leader")
    # 10 ms -> 100 raw fps -> 100 / 9 = 11.111 SIM fps
    assert t.frame_period_ms == pytest.approx(10.0)
    assert t.sim_fps == pytest.approx(11.111, abs=1e-3)
    assert t.limited_by == "camera maximum frame rate"


def test_infinity_objective_with_other_tube_lens_and_nyquist():
    # Olympus-style 60x / 1.42 oil designed for a 180 mm tube lens, used with a 200 mm tube lens:
    # effective magnification 60 x 200 / 180 = 66.667; 6.5 µm pixels -> 6500 / 66.667 = 97.5 nm.
    cam = CAM_A.model_copy(update={"pixel_pitch_um": 6.5})
    obj = Objective(
        magnification=60,
        na=1.42,
        immersion="oil",
        design_tube_lens_mm=180,
        tube_lens_focal_length_mm=200,
    )
    ill = Illuminator(kind="lcos", projected_period_nm=300)
    acq = Acquisition(emission_wavelength_nm=600)
    plan = plan_setup(cam, obj, ill, acq)
    assert plan.pixel_size_nm == pytest.approx(97.5)
    # Nyquist: 600 / (4 x 1.42) = 600 / 5.68 = 105.634 nm, 97.5 <= 105.634: sampled
    assert plan.nyquist_pixel_size_nm == pytest.approx(105.634, abs=1e-3)
    assert plan.nyquist_ok
    # with its own 180 mm tube lens: 6500 / 60 = 108.333 nm > 105.634 -> under-sampled, warned
    obj180 = obj.model_copy(update={"tube_lens_focal_length_mm": None})
    plan180 = plan_setup(cam, obj180, ill, acq)
    assert plan180.pixel_size_nm == pytest.approx(108.333, abs=1e-3)
    assert not plan180.nyquist_ok
    assert any("Nyquist" in w for w in plan180.warnings)
    # fc = 2.84 / 0.6 = 4.7333 /µm; p = 1 / 0.3 = 3.3333 /µm; fraction 0.70423;
    # SIM = 1 / (4.7333 + 3.3333) = 1 / 8.0667 = 0.123967 µm
    assert plan.pattern_fraction_of_cutoff == pytest.approx(0.704225, abs=1e-6)
    assert plan.sim_resolution_nm == pytest.approx(123.967, abs=1e-3)


def test_printed_grating_through_projection_lens():
    # 60x objective designed for 200 mm, grating in front of a 150 mm illumination lens:
    # D = 60 x 150 / 200 = 45; a 50 lp/mm Ronchi grating (20 µm) -> 20 / 45 = 0.44444 µm
    obj = Objective(magnification=60, na=1.4, immersion="oil")
    demag = projection_demagnification(obj, 150.0)
    assert demag == pytest.approx(45.0)
    ill = Illuminator(
        kind="printed_grating",
        grating_period_um=20.0,
        illumination_lens_focal_mm=150.0,
        pattern_switch_time_ms=150,
    )
    plan = plan_setup(CAM_A, obj, ill, Acquisition(emission_wavelength_nm=520))
    assert plan.demagnification == pytest.approx(45.0)
    assert plan.pattern_period_nm == pytest.approx(444.444, abs=1e-3)
    # the same lens in front of a 100x objective designed for 180 mm: D = 100 x 150 / 180 = 83.33
    # -> 20 µm / 83.333 = 240 nm
    obj100 = Objective(magnification=100, na=1.3, immersion="oil", design_tube_lens_mm=180)
    plan100 = plan_setup(CAM_A, obj100, ill, Acquisition(emission_wavelength_nm=520))
    assert plan100.pattern_period_nm == pytest.approx(240.0)
    # fc = 2.8 / 0.52 = 5.3846 /µm, p = 2.25 /µm, fraction 0.41786: inside, but low gain: warned
    assert plan.pattern_fraction_of_cutoff == pytest.approx(0.417857, abs=1e-6)
    assert any("gains little" in w for w in plan.warnings)
    # a slow grating mover dominates: leader 150 + 0.05 + 10 = 160.05 ms -> 6.248 raw fps
    assert plan.timing["leader"].raw_fps == pytest.approx(6.2480, abs=1e-4)


def test_pattern_outside_the_otf_is_flagged():
    # NA 0.4 at 520 nm: fc = 0.8 / 0.52 = 1.53846 /µm; a 500 nm pattern is 2 /µm: fraction 1.3
    obj = Objective(magnification=20, na=0.4, immersion="air", design_tube_lens_mm=None)
    ill = Illuminator(kind="dmd", projected_period_nm=500)
    plan = plan_setup(CAM_A, obj, ill, ACQ_A)
    assert plan.pattern_fraction_of_cutoff == pytest.approx(1.3)
    assert not plan.pattern_inside_otf
    assert any("beyond the detection cutoff" in w for w in plan.warnings)


def test_invalid_inputs_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="immersion"):
        Objective(magnification=100, na=1.4, immersion="air")
    with pytest.raises(ValueError, match="demagnification"):
        Illuminator(kind="dmd", pixel_pitch_um=7.6, pattern_period_px=3)
    with pytest.raises(ConfigurationError, match=r"\[camera\]"):
        parts_from_preset({"camera": {"pixel_pitch_um": 3.0}})


PRESET = """
[camera]
name = "AR0234"
pixel_pitch_um = 3.0
sensor_width_px = 1920
sensor_height_px = 1200
readout_time_ms = 8.0
max_fps = 120
bit_depth = 10
trigger_latency_ms = 0.05

[objective]
magnification = 40
na = 0.65
immersion = "air"

[illuminator]
kind = "dmd"
pixel_pitch_um = 5.4
pattern_period_px = 3
demagnification = 40
pattern_switch_time_ms = 0.5

[acquisition]
emission_wavelength_nm = 520
exposure_ms = 10
"""


def _run_plan(argv):
    from scope.cli import plan as plan_cmd

    parser = argparse.ArgumentParser(prog="scope")
    plan_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["plan", *argv])
    return args.func(args)


def test_cli_plan_from_preset_and_flags(tmp_path, capsys):
    preset = tmp_path / "budget.toml"
    preset.write_text(PRESET)
    # the preset's objective is designed for 200 mm (default); --correction finite makes it a
    # 160 mm DIN objective, which reproduces case A: SIM 201.2 nm, 55.6 raw fps
    assert _run_plan(["--preset", str(preset), "--correction", "finite"]) == 0
    out = capsys.readouterr().out
    assert "201.2 nm" in out
    assert "55.6 raw fps" in out
    # flags override the preset: NA 0.5 -> fc = 1 / 0.52 = 1.923 /µm; p = 2.469 /µm is outside
    assert _run_plan(["--preset", str(preset), "--na", "0.5", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["cutoff_per_um"] == pytest.approx(1.0 / 0.52)
    assert figures["pattern_inside_otf"] is False
    assert figures["timing"]["leader"]["frame_period_ms"] == pytest.approx(18.0)


def test_cli_plan_missing_values_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="illuminator"):
        _run_plan(
            [
                "--pixel-pitch-um",
                "3",
                "--sensor-width-px",
                "10",
                "--sensor-height-px",
                "10",
                "--readout-ms",
                "1",
                "--max-fps",
                "10",
                "--bit-depth",
                "8",
                "--magnification",
                "10",
                "--na",
                "0.3",
                "--immersion",
                "air",
                "--wavelength",
                "520",
            ]
        )


def test_projected_contrast_incoherent_and_two_beam():
    # incoherent: NA 0.65, excitation 500 nm -> excitation cutoff 1.3 / 0.5 = 2.6 /µm;
    # a 769.23 nm pattern is p = 1.3 /µm = half the cutoff; ideal OTF at rho = 0.5:
    # (2 / pi) (acos 0.5 - 0.5 sqrt(1 - 0.25)) = (2 / pi)(1.047198 - 0.433013) = 0.391002
    ill = Illuminator(kind="dmd", projected_period_nm=1000 / 1.3)
    acq = Acquisition(emission_wavelength_nm=520, excitation_wavelength_nm=500)
    plan = plan_setup(CAM_A, OBJ_A, ill, acq)
    assert plan.pattern_contrast == pytest.approx(0.391002, abs=1e-6)
    assert plan_setup(CAM_A, OBJ_A, ill, ACQ_A).pattern_contrast is None  # no excitation given
    # two-beam: a 5-pixel grating of 7.56 µm pixels (37.8 µm) demagnified 80x is 472.5 nm;
    # the +-1 orders interfere at half that, 236.25 nm, with full contrast if p <= 2 NA / l_ex:
    # p = 4.2328 /µm; NA 1.3 at 488 nm passes up to 2.6 / 0.488 = 5.3279 /µm -> contrast 1
    obj = Objective(magnification=100, na=1.3, immersion="oil")
    beam = Illuminator(
        kind="dmd",
        pixel_pitch_um=7.56,
        pattern_period_px=5,
        demagnification=80,
        projection="two_beam",
    )
    acq2 = Acquisition(emission_wavelength_nm=520, excitation_wavelength_nm=488)
    plan2 = plan_setup(CAM_A, obj, beam, acq2)
    assert plan2.pattern_period_nm == pytest.approx(236.25)
    assert plan2.pattern_contrast == 1.0


def test_scope_plan_through_the_main_entry_point(capsys):
    from pathlib import Path

    from scope.cli import main

    preset = Path(__file__).resolve().parents[1] / "hardware" / "presets" / "better.toml"
    assert main(["plan", "--preset", str(preset), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    # better build: 3.45 µm / 100x = 34.5 nm; fc = 2.6 / 0.52 = 5 /µm; two-beam 5-pixel grating
    # of 7.56 µm pixels through D = 100 x 150 / 180 = 83.33: 37.8 µm / 83.33 / 2 = 226.8 nm
    assert figures["pixel_size_nm"] == pytest.approx(34.5)
    assert figures["cutoff_per_um"] == pytest.approx(5.0)
    assert figures["pattern_period_nm"] == pytest.approx(226.8)
    assert main(["plan", "--preset", str(preset.with_name("missing.toml"))]) == 2


def test_a_pattern_that_cannot_give_sim_has_no_sim_resolution(capsys):
    """Budget build with a 1-pixel grating: 7.56 µm / D = 100 x 150 / 160 = 93.75 gives
    80.64 nm at the sample, p = 12.401 /µm, beyond fc = 2.5 / 0.52 = 4.808 /µm, and the
    projector's optics pass no contrast. It printed 'SIM resolution 58.1 nm' (1 / (fc + p),
    3.6x widefield); now it is not available, with the reason, and null in --json."""
    from pathlib import Path

    from scope.cli import main

    budget = str(Path(__file__).resolve().parents[1] / "hardware" / "presets" / "budget.toml")
    assert main(["plan", "--preset", budget, "--pattern-period-px", "1"]) == 0
    text = capsys.readouterr().out
    assert "58.1" not in text
    assert (
        "SIM resolution             not available: the pattern (12.401/µm) is beyond the " in text
    )
    assert "detection cutoff (4.808/µm)" in text
    assert "the excitation optics pass no pattern contrast (0.000)" in text
    assert main(["plan", "--preset", budget, "--pattern-period-px", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["sim_resolution_nm"] is None
    assert figures["pattern_inside_otf"] is False
    assert "beyond the detection cutoff" in figures["sim_unavailable_reason"]
    # the preset's own 4-pixel grating: 322.56 nm, p = 3.100 /µm, SIM 1 / (4.808 + 3.100)
    assert main(["plan", "--preset", budget, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["sim_resolution_nm"] == pytest.approx(1e3 / (2.5 / 0.52 + 1e3 / 322.56))
    assert figures["sim_unavailable_reason"] is None


def test_a_pattern_inside_the_otf_but_without_contrast_gives_no_sim():
    # NA 0.65 at 520 nm: fc = 2.5 /µm; a 500 nm pattern (2 /µm) is inside. Excited at 700 nm
    # the excitation cutoff is 1.3 / 0.7 = 1.857 /µm < 2: incoherent projection passes nothing
    ill = Illuminator(kind="dmd", projected_period_nm=500)
    plan = plan_setup(
        CAM_A, OBJ_A, ill, Acquisition(emission_wavelength_nm=520, excitation_wavelength_nm=700)
    )
    assert plan.pattern_inside_otf and plan.pattern_contrast == 0.0
    assert not plan.sim_available and plan.sim_resolution_nm != plan.sim_resolution_nm  # NaN
    assert plan.sim_unavailable_reason.startswith("the excitation optics pass no pattern contrast")
    assert plan.to_dict()["sim_resolution_nm"] is None
    # excited at 488 nm the cutoff is 2.664 /µm: contrast, and SIM 1 / (2.5 + 2) = 222.2 nm
    ok = plan_setup(
        CAM_A, OBJ_A, ill, Acquisition(emission_wavelength_nm=520, excitation_wavelength_nm=488)
    )
    assert ok.sim_available and ok.sim_resolution_nm == pytest.approx(1e3 / 4.5)


@pytest.mark.parametrize(("flag", "value"), [("--wavelength", "nan"), ("--na", "inf")])
def test_a_flag_that_is_not_a_number_is_called_so(tmp_path, flag, value):
    """`scope plan --wavelength nan` said 'Input should be less than 2000'."""
    preset = tmp_path / "budget.toml"
    preset.write_text(PRESET)
    with pytest.raises(ConfigurationError, match=rf": {value} is not a number") as err:
        _run_plan(["--preset", str(preset), flag, value])
    assert "less than" not in str(err.value) and "greater than" not in str(err.value)
