"""The bill of materials: totals come from the line items, predictions from ``scope plan``."""

from __future__ import annotations

import argparse
import json
import re
import tomllib
from pathlib import Path

import pytest

from hardware_tools import load_tool

ROOT = Path(__file__).resolve().parents[1]
HARDWARE = ROOT / "hardware"
BUILDS = ("budget", "better")


@pytest.fixture(scope="module")
def make_bom():
    with load_tool("make_bom") as module:
        yield module


def _sum_items_here(path: Path) -> tuple[float, float]:
    """Total of required and of optional items, computed independently of make_bom."""
    with path.open("rb") as fh:
        bom = tomllib.load(fh)
    rates = bom["build"]["exchange_rates"]
    required = optional = 0.0
    for item in bom["item"]:
        value = item["unit_price"] * item["quantity"] * rates[item["currency"]]
        if item.get("optional", False):
            optional += value
        else:
            required += value
    return required, optional


def _bom_md_section(build: str) -> str:
    text = (HARDWARE / "BOM.md").read_text()
    start = text.index(f"## {build} build")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def _money(text: str) -> float:
    return float(text.replace(",", ""))


@pytest.mark.parametrize("build", BUILDS)
def test_totals_equal_the_sum_of_the_line_items(make_bom, build):
    path = HARDWARE / "bom" / f"{build}.toml"
    required, optional = _sum_items_here(path)
    assert required > 0
    totals = make_bom.totals(make_bom.load_bom(path))
    assert totals.total == pytest.approx(required, abs=1e-9)
    assert totals.options_total == pytest.approx(optional, abs=1e-9)
    # and the committed BOM.md shows that number on the build's total line
    section = _bom_md_section(build)
    match = re.search(r"\*\*total\*\* \|.*?\*\*([\d,]+\.\d\d) USD\*\*", section)
    assert match, section[-500:]
    assert _money(match.group(1)) == pytest.approx(required, abs=0.005)


def _scope_plan_json(preset: Path) -> dict:
    from scope.cli import plan as plan_cmd

    parser = argparse.ArgumentParser(prog="scope")
    plan_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["plan", "--preset", str(preset), "--json"])
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert args.func(args) == 0
    return json.loads(buf.getvalue())


@pytest.mark.parametrize("build", BUILDS)
def test_predicted_resolution_is_scope_plans(make_bom, build):
    bom = make_bom.load_bom(HARDWARE / "bom" / f"{build}.toml")
    figures = _scope_plan_json(make_bom.preset_path(bom))
    plan = make_bom.predicted_plan(bom)
    assert plan.sim_resolution_nm == pytest.approx(figures["sim_resolution_nm"], rel=1e-12)
    assert plan.widefield_resolution_nm == pytest.approx(figures["widefield_resolution_nm"])
    # the summary row of BOM.md carries the same numbers
    text = (HARDWARE / "BOM.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| [{build}]"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5] == f"{figures['widefield_resolution_nm']:.0f} nm"
    assert cells[6] == f"**{figures['sim_resolution_nm']:.0f} nm**"
    assert cells[4] == f"{figures['pattern_period_nm']:.1f} nm"
    # the build's preset objective is the BOM's non-optional objective
    required = [obj.name for item, obj in make_bom.objectives(bom) if not item.get("optional")]
    with make_bom.preset_path(bom).open("rb") as fh:
        assert tomllib.load(fh)["objective"]["name"] in required


def test_bom_md_is_up_to_date(make_bom):
    assert make_bom.main(["--check"]) == 0


def test_totals_follow_the_items_and_bad_items_are_refused(make_bom, tmp_path):
    import tomli_w

    with (HARDWARE / "bom" / "budget.toml").open("rb") as fh:
        data = tomllib.load(fh)
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "budget.toml").write_text(
        (HARDWARE / "presets" / "budget.toml").read_text()
    )
    (tmp_path / "bom").mkdir()
    path = tmp_path / "bom" / "budget.toml"
    base = make_bom.totals(make_bom.load_bom(HARDWARE / "bom" / "budget.toml")).total
    # ordering 5 Picos (4.00 USD each) instead of 1 adds 16.00 USD
    pico = next(it for it in data["item"] if it["part_number"] == "SC0915")
    pico["quantity"] = 5
    path.write_text(tomli_w.dumps(data))
    assert make_bom.totals(make_bom.load_bom(path)).total == pytest.approx(base + 16.0)
    # an item priced in a currency without an exchange rate is refused
    pico["currency"] = "GBP"
    path.write_text(tomli_w.dumps(data))
    with pytest.raises(ValueError, match="GBP"):
        make_bom.load_bom(path)


@pytest.mark.parametrize("build", BUILDS)
def test_preset_reconstruction_tables_agree_with_the_hardware(build):
    """[optics] and [pattern] (read by scope reconstruct/batch) follow from the hardware tables."""
    from scope.planning import load_preset, parts_from_preset, plan_setup

    doc = load_preset(HARDWARE / "presets" / f"{build}.toml")
    camera, objective, illuminator, acquisition = parts_from_preset(doc)
    plan = plan_setup(camera, objective, illuminator, acquisition)
    assert doc["optics"]["na"] == objective.na
    assert doc["optics"]["wavelength_nm"] == acquisition.emission_wavelength_nm
    assert doc["optics"]["pixel_size_nm"] == pytest.approx(plan.pixel_size_nm, abs=0.05)
    assert doc["optics"]["immersion_index"] == pytest.approx(objective.immersion_index)
    assert doc["pattern"]["period_nm"] == pytest.approx(plan.pattern_period_nm, abs=0.05)
    assert doc["pattern"]["n_angles"] * doc["pattern"]["n_phases"] == acquisition.frames_per_sim


# -- the better build's cage: itemised, and rods that span the drawn distances -------------------

#: a CP33/M cage plate is 0.35 in thick; Thorlabs ER cage rods come in inch lengths
CAGE_PLATE_MM = 0.35 * 25.4
INCH_MM = 25.4


@pytest.fixture(scope="module")
def draw_optics():
    with load_tool("draw_optics") as module:
        yield module


def _better_items() -> list[dict]:
    with (HARDWARE / "bom" / "better.toml").open("rb") as fh:
        return [it for it in tomllib.load(fh)["item"] if not it.get("optional", False)]


def _readme_cage_section() -> str:
    text = (HARDWARE / "README.md").read_text()
    start = text.index("### Better build: the cage, element by element")
    return " ".join(text[start : text.index("\n## ", start)].split())


def _rods_per_corner_mm(span: str) -> float:
    """Length of one corner's rod line over ``span`` (rods screwed end to end), from the BOM."""
    items = [it for it in _better_items() if it.get("rods", {}).get("span") == span]
    assert items, f"better.toml lists no cage rods for {span!r}"
    for it in items:
        # packs of 4 rods, one rod per corner of the 30 mm cage in each pack
        assert it["quantity"] == it["rods"]["per_corner"], it["part_number"]
        assert it["part_number"] == f"ER{it['rods']['length_in']:g}-P4", it["part_number"]
    return sum(it["rods"]["length_in"] * INCH_MM * it["rods"]["per_corner"] for it in items)


def test_better_bom_itemises_the_cage_parts_instead_of_pointing_to_a_list():
    """The old line was a 650 USD 'estimate for the set' whose 'exact list in the optical layout'
    the layout never gave: the total hid whatever the real list costs."""
    items = _better_items()
    text = " ".join(f"{it['part']} {it.get('notes', '')}" for it in items)
    assert "exact list" not in text and "Estimate for the set" not in text
    mechanics = [it for it in items if it["category"] == "mechanics"]
    for it in mechanics:
        # one part per line: no "CP33/M, ER-series rods, KCB1/M"
        assert "," not in it["part_number"] and "series" not in it["part_number"], it
    # every Thorlabs mechanics part has its place in the README's element-by-element table
    section = _readme_cage_section()
    missing = [it["part_number"] for it in mechanics if it["vendor"] == "Thorlabs"]
    missing = [pn for pn in missing if pn.split("-P4")[0] not in section]
    assert not missing, f"not placed in the README's cage table: {missing}"
    # one cage plate per lens of the relay and excitation tube lens, a holder and base per post
    qty = {it["part_number"]: it["quantity"] for it in items}
    assert qty["CP33/M"] == qty["AC254-150-A-ML"]
    assert qty["TR75/M"] == qty["PH50/M"] == qty["BA1S/M"]
    assert f"Post sets (TR75/M post, PH50/M holder, BA1S/M base): {qty['TR75/M']}" in section


def test_better_cage_rods_add_up_to_the_drawn_distances(draw_optics):
    from scope.planning import load_preset, parts_from_preset

    _, objective, illuminator, _ = parts_from_preset(
        load_preset(HARDWARE / "presets" / "better.toml")
    )
    f1 = f2 = draw_optics.RELAY_FOCAL_MM
    f3 = illuminator.illumination_lens_focal_mm
    # L1 -> stop -> L2 -> intermediate image -> L3, as drawn: f1 + f1 + f2 + f3
    l1_to_l3 = 2 * f1 + f2 + f3
    relay = _rods_per_corner_mm("L1 to L3")
    # L1's and L3's plates flush with the rod ends, the lenses at the plates' middles
    assert relay - CAGE_PLATE_MM == pytest.approx(l1_to_l3, abs=1.0)
    # L3's plate to the cube's face stays short of L3's f3 to the back focal plane, leaving a
    # few centimetres for the cube and the objective's mount
    to_cube = _rods_per_corner_mm("L3 to filter cube")
    assert 0 < f3 - (CAGE_PLATE_MM / 2 + to_cube) < 60
    # the camera slides on rods longer than the tube lens's focal length
    assert _rods_per_corner_mm("tube lens to camera") > objective.tube_lens_focal_length_mm
    assert _rods_per_corner_mm("fold mirror to tube lens") > 0
    # and the README gives the same sums
    section = _readme_cage_section()
    assert f"2 f1 + f2 + f3 = {l1_to_l3:g} mm" in section
    assert f"({relay:.1f} mm) less one {CAGE_PLATE_MM:.1f} mm cage plate" in section
    assert f"(4 × {relay + to_cube:.1f} mm)" in section
