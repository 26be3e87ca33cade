"""What hardware/ tells a maker agrees with the firmware, the emulator and the BOM."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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
