"""Wiring diagrams: generated from source, up to date, and wired to the firmware's pins."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from hardware_tools import HARDWARE, load_tool


@pytest.fixture(scope="module")
def draw():
    with load_tool("draw_wiring") as module:
        yield module


def _firmware_pins() -> dict[str, int]:
    text = (HARDWARE / "firmware" / "hw_rp2040.py").read_text()
    pins = {}
    for name in ("TRIGGER_PIN", "ADVANCE_PIN", "EXPOSURE_IN_PIN"):
        m = re.search(rf"^{name} = (\d+)", text, re.M)
        assert m, f"{name} not found in the firmware"
        pins[name] = int(m.group(1))
    m = re.search(r"^LIGHT_PINS = \((\d+)", text, re.M)
    assert m
    pins["LIGHT_PIN_0"] = int(m.group(1))
    return pins


def test_diagrams_use_the_firmware_pins(draw):
    fw = _firmware_pins()
    kinds = {
        "trigger": fw["TRIGGER_PIN"],
        "advance": fw["ADVANCE_PIN"],
        "exposure": fw["EXPOSURE_IN_PIN"],
        "light": fw["LIGHT_PIN_0"],
    }
    for stem, d in draw.diagrams().items():
        pico = d.boxes[0]
        for wire in d.wires:
            if wire.kind not in kinds:
                continue
            # a signal wire that touches the Pico lands on the GPIO the firmware uses
            gp = f"GP{kinds[wire.kind]}"
            expected = pico.pin(f"{gp} (pin {draw.PICO_PINS[gp]})")
            ends = [wire.points[0], wire.points[-1]]
            if any(x == pico.x + pico.w for x, _ in ends):
                assert expected in ends, f"{stem}: {wire.kind} wire not on {gp}"
        mode = "leader" if "leader" in stem else "follower"
        used = {w.kind for w in d.wires}
        # leader diagrams wire the trigger and not the exposure input; follower the reverse
        assert ("trigger" in used) == (mode == "leader"), stem
        assert ("exposure" in used) == (mode == "follower"), stem
        assert "advance" in used


def test_committed_svgs_are_current_and_valid(draw, tmp_path):
    draw.main(tmp_path)
    for stem in draw.diagrams():
        svg = (tmp_path / f"{stem}.svg").read_text()
        ET.fromstring(svg)  # well-formed XML
        assert (HARDWARE / "wiring" / f"{stem}.svg").read_text() == svg, (
            f"hardware/wiring/{stem}.svg is out of date: run hardware/tools/draw_wiring.py"
        )
        from PIL import Image

        with Image.open(HARDWARE / "wiring" / f"{stem}.png") as img:
            assert img.size == (draw.WIDTH, draw.HEIGHT)
            # a drawing, not a blank page: many pixels are neither white nor one flat colour
            colours = img.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is None or len(colours) > 50


def test_bom_notes_name_the_firmware_pins():
    """Pins named in the BOM's notes are the firmware's (no stale pin numbers)."""
    fw = _firmware_pins()
    valid = {f"GP{n}" for n in fw.values()}
    for path in (HARDWARE / "bom").glob("*.toml"):
        for gp in re.findall(r"GP\d+", path.read_text()):
            assert gp in valid, f"{path.name} names {gp}, not a firmware signal pin"


def test_optical_layouts_are_current_and_carry_scope_plan_figures(tmp_path):
    with load_tool("draw_optics") as module:
        module.main(tmp_path)
    from scope.planning import load_preset, parts_from_preset, plan_setup

    for build in ("budget", "better"):
        svg = (tmp_path / f"layout-{build}.svg").read_text()
        ET.fromstring(svg)
        assert (HARDWARE / "optics" / f"layout-{build}.svg").read_text() == svg, (
            f"hardware/optics/layout-{build}.svg is out of date: run hardware/tools/draw_optics.py"
        )
        plan = plan_setup(*parts_from_preset(load_preset(HARDWARE / "presets" / f"{build}.toml")))
        assert f"pattern period at the sample {plan.pattern_period_nm:.1f} nm" in svg
        assert f"SIM {plan.sim_resolution_nm:.0f} nm" in svg
