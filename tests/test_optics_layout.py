"""The better build's two-beam optics: BOM, drawing and README describe the same light path.

DMD -> L1 -> zero-order stop (Fourier plane) -> L2 -> intermediate DMD image -> excitation tube
lens L3 -> objective back aperture. Without L3 a 4f relay puts the DMD's image, not its Fourier
transform, at the back aperture, and the sample gets no two-beam pattern.
"""

from __future__ import annotations

import re
import tomllib

import pytest

from hardware_tools import HARDWARE, load_tool
from scope.planning import load_preset, parts_from_preset, plan_setup


@pytest.fixture(scope="module")
def draw_optics():
    with load_tool("draw_optics") as module:
        yield module


def _better_parts():
    return parts_from_preset(load_preset(HARDWARE / "presets" / "better.toml"))


def _readme_section_3() -> str:
    text = (HARDWARE / "README.md").read_text()
    section = text[text.index("## 3. Optical layout") : text.index("## 4.")]
    return " ".join(section.split())


def test_better_bom_has_relay_pair_and_excitation_tube_lens():
    bom = tomllib.loads((HARDWARE / "bom" / "better.toml").read_text())
    f_ill = _better_parts()[2].illumination_lens_focal_mm
    lenses = [
        item
        for item in bom["item"]
        if not item.get("optional") and re.search(rf"\bf = {f_ill:g} mm\b", item["part"])
    ]
    count = sum(item["quantity"] for item in lenses)
    assert count >= 3, (
        f"better.toml lists {count} f = {f_ill:g} mm lenses; the two-beam path needs three: "
        "two for the 1:1 4f relay around the zero-order stop and one excitation tube lens"
    )
    notes = " ".join(item["notes"] for item in lenses)
    assert "relay" in notes and "excitation tube lens" in notes


def test_better_demagnification_is_relay_times_excitation_tube_lens(draw_optics):
    camera, objective, illuminator, acquisition = _better_parts()
    plan = plan_setup(camera, objective, illuminator, acquisition)
    f1 = f2 = draw_optics.RELAY_FOCAL_MM
    f3 = illuminator.illumination_lens_focal_mm
    d = objective.magnification * (f1 / f2) * f3 / objective.design_tube_lens_mm
    assert d == pytest.approx(plan.demagnification)


def test_better_drawing_shows_relay_stop_intermediate_image_and_tube_lens(draw_optics):
    d = draw_optics.layout("better")
    f_ill = _better_parts()[2].illumination_lens_focal_mm
    relay = f"f = {draw_optics.RELAY_FOCAL_MM:g} mm"
    tube = f"excitation tube lens f = {f_ill:g} mm"
    # the illumination lenses, left to right along the excitation axis
    labels = [label for _, _, _, vertical, label in sorted(d.lenses) if vertical]
    assert labels == [relay, relay, tube]
    texts = {s: x for x, _, s, *_ in d.texts}
    x1, x2, x3 = sorted(x for x, _, _, vertical, _ in d.lenses if vertical)
    assert x1 < texts["zero-order stop"] < x2 < texts["intermediate image"] < x3
    assert "only the ±1 orders reach the objective: two spots in its back aperture" in texts


def test_readme_describes_the_better_build_with_relay_and_excitation_tube_lens():
    text = _readme_section_3()
    assert "excitation tube lens" in text
    assert "intermediate image of the DMD" in text
    assert "zero-order stop" in text
    assert "`D = M × (f1/f2) × f3 / f_design`" in text
    assert "`illumination_lens_focal_mm` (150 mm) is f3" in text
    # the old text had only the two relay lenses between the DMD and the objective
    assert "between the two f = 150 mm lenses of the better build" not in text
