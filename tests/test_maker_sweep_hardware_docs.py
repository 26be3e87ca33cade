"""What hardware/ tells a maker agrees with the firmware, the emulator and the BOM."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from scope.devices.emulator import SimulatedHardware

HARDWARE = Path(__file__).resolve().parents[1] / "hardware"


def test_firmware_readme_states_the_overrun_tolerance_of_the_right_side():
    text = " ".join((HARDWARE / "firmware" / "README.md").read_text().split())
    m = re.search(r"the (\w+)'s `timing_tol_us` of (\d+) µs", text)
    assert m, "the firmware README's Timing section no longer names timing_tol_us"
    fw = re.search(r"TIMING_TOL_US = (\d+)", (HARDWARE / "firmware" / "hw_rp2040.py").read_text())
    board_tol = int(fw.group(1))
    emulator_tol = SimulatedHardware().TIMING_TOL_US
    stated = {"emulator": emulator_tol, "board": board_tol, "firmware": board_tol}
    who, value = m.group(1), int(m.group(2))
    assert who in stated and value == stated[who], (
        f"README says the {who}'s timing_tol_us is {value} µs; the board's is {board_tol}, "
        f"the emulator's {emulator_tol}"
    )


def test_bom_lists_the_light_enable_pull_down_the_safety_section_asks_for():
    readme = " ".join((HARDWARE / "README.md").read_text().split())
    assert "fit the 10 kΩ pull-down on GP12" in readme
    bom = tomllib.loads((HARDWARE / "bom" / "better.toml").read_text())
    parts = [
        item["part"]
        for item in bom["item"]
        if not item.get("optional") and "10 kOhm" in item["part"] and "GP12" in item["part"]
    ]
    assert parts, "the better build wires a laser to GP12 but its BOM has no 10 kOhm pull-down"


def test_the_boms_list_the_cables_and_cards_a_build_cannot_run_without():
    """The Pico needs a USB data cable in both builds, the budget build's Raspberry Pi a power
    supply and a microSD card: a maker ordering from the BOM alone could not start."""
    import tomllib

    hardware = Path(__file__).parents[1] / "hardware" / "bom"
    for build in ("budget", "better"):
        parts = [i["part"] for i in tomllib.loads((hardware / f"{build}.toml").read_text())["item"]]
        assert any("micro-USB" in p and "Pico" in p for p in parts), build
    budget = [i["part"] for i in tomllib.loads((hardware / "budget.toml").read_text())["item"]]
    assert any("power supply" in p and "Raspberry Pi" in p for p in budget)
    assert any("microSD" in p for p in budget)


def _budget_lens_section() -> str:
    text = (HARDWARE / "README.md").read_text()
    start = text.index("### Budget build: the projector's own lens comes off")
    return " ".join(text[start : text.index("\n### ", start + 1)].split())


def test_budget_section_says_what_becomes_of_the_projectors_own_lens():
    """The DLP2000 EVM is a projector: its own projection lens must come off for the single
    illumination lens of the preset, and the docs never said so."""
    section = _budget_lens_section()
    assert "Remove that projection lens; the 150 mm achromat takes its place." in section
    # safely: ESD, the engine left closed, hands off the DMD window
    assert "electrostatic discharge" in section and "grounded wrist strap" in section
    assert "Leave the engine closed" in section
    assert "Never touch the DMD's window" in section
    # and a check that says it is right: the period the preset predicts
    preset = tomllib.loads((HARDWARE / "presets" / "budget.toml").read_text())
    assert "`scope calibrate pattern`" in section
    assert f"{preset['pattern']['period_nm']:g} nm" in section
    # the old claim (DMD in the lens's front focal plane) is wrong for a finite objective
    readme = " ".join((HARDWARE / "README.md").read_text().split())
    assert "with the device in its front focal plane" not in readme
    bom = tomllib.loads((HARDWARE / "bom" / "budget.toml").read_text())
    evm = next(it for it in bom["item"] if it["part_number"] == "DLPDLCR2000EVM")
    assert "projection lens comes off" in evm["notes"]


def test_budget_lens_images_the_dmd_into_the_din_image_plane_at_the_presets_demagnification():
    from hardware_tools import load_tool
    from scope.planning import load_preset, parts_from_preset, plan_setup

    camera, objective, illuminator, acquisition = parts_from_preset(
        load_preset(HARDWARE / "presets" / "budget.toml")
    )
    plan = plan_setup(camera, objective, illuminator, acquisition)
    f_ill = illuminator.illumination_lens_focal_mm
    assert objective.design_tube_lens_mm is None  # finite: scope plan takes 160 mm
    with load_tool("draw_optics") as draw:
        s_dmd, s_image = draw.projection_distances(f_ill)
        texts = {text for _, _, text, *_ in draw.layout("budget").texts}
    assert 1 / s_dmd + 1 / s_image == pytest.approx(1 / f_ill)  # a real, sharp image
    # magnified f_design / f_ill into the DIN image plane: scope plan's D = M f_ill / f_design
    assert objective.magnification * s_dmd / s_image == pytest.approx(plan.demagnification)
    assert {f"{s_dmd:.0f} mm", f"{s_image:.0f} mm", "projection lens removed"} <= texts
    section = _budget_lens_section()
    assert f"DMD to the middle of the lens {s_dmd:.0f} mm" in section
    assert f"lens to the DMD's image {s_image:.0f} mm" in section


def _better_dmd_section() -> str:
    text = (HARDWARE / "README.md").read_text()
    start = text.index("### Better build: lighting the DMD evenly")
    return " ".join(text[start : text.index("\n### ", start + 1)].split())


def test_better_readme_says_where_the_laser_meets_the_dmd():
    """The LightCrafter 6500's micromirrors tilt ±12° about an axis diagonal to the array: the
    laser comes in 24° from the normal across that diagonal, not along the rows; the README's
    "turn the plate on the table" only holds with the board turned 45°."""
    import math

    from scope.planning import load_preset, parts_from_preset, plan_setup

    camera, objective, illuminator, acquisition = parts_from_preset(
        load_preset(HARDWARE / "presets" / "better.toml")
    )
    plan = plan_setup(camera, objective, illuminator, acquisition)
    section = _better_dmd_section()
    assert "tilt ±12° about an axis diagonal to the array" in section
    assert "the laser 24° from the DMD's normal" in section
    assert "turn the board 45° about its normal" in section
    assert "`--rotation-deg`" in section
    # the oblique light's footprint, and the camera's field still on the DMD with it turned 45°
    assert f"1/cos 24° = {1 / math.cos(math.radians(24)):.2f}" in section
    long_mm, short_mm = (v * 1e-3 * plan.demagnification for v in plan.field_of_view_um)
    reach = (long_mm + short_mm) / 2 / math.sqrt(2)  # a corner, across the array's short side
    half_short = illuminator.height_px * illuminator.pixel_pitch_um * 1e-3 / 2
    assert reach < half_short
    assert f"its corners reach {reach:.2f} mm" in section and f"of {half_short:.2f} mm" in section
    # the cage table and the BOM's DMD plate say the same
    readme = (HARDWARE / "README.md").read_text()
    dmd_row = next(line for line in readme.splitlines() if "| DMD (LightCrafter" in line)
    assert "24° from the DMD's normal" in dmd_row and "turned 45°" in dmd_row
    bom = tomllib.loads((HARDWARE / "bom" / "better.toml").read_text())
    plate = next(it for it in bom["item"] if it["part_number"] == "AP90/M")
    assert "45 deg" in plate["notes"] and "24 deg" in plate["notes"]
