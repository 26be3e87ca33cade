"""The bill of materials: totals come from the line items, predictions from ``scope plan``."""

from __future__ import annotations

import argparse
import json
import math
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
    # one cage plate per 1in doublet (beam expander, relay, excitation tube lens), a holder and
    # base per post
    qty = {it["part_number"]: it["quantity"] for it in items}
    doublets = sum(n for pn, n in qty.items() if pn.startswith("AC254-"))
    assert qty["CP33/M"] == doublets
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


# -- the better build's beam expander: the laser lights the DMD area the camera sees evenly -----

#: the relative intensity a Gaussian may fall to at the corners of the camera's field on the DMD
#: (the README promises 80 %)
MIN_CORNER_INTENSITY = 0.78


def _better_plan():
    from scope.planning import load_preset, parts_from_preset, plan_setup

    return plan_setup(*parts_from_preset(load_preset(HARDWARE / "presets" / "better.toml")))


def _dmd_field_mm(plan) -> tuple[float, float]:
    """The DMD area imaged onto the camera: the field of view at the sample times D."""
    return tuple(v * 1e-3 * plan.demagnification for v in plan.field_of_view_um)


def _expander_focal_lengths_from_bom() -> tuple[float, float]:
    lenses = {}
    for it in _better_items():
        m = re.search(r"\(beam expander (E[12]):", it["part"])
        if m:
            lenses[m.group(1)] = float(re.search(r"\bf = (\d+(?:\.\d+)?) mm", it["part"]).group(1))
            assert it["quantity"] == 1 and it.get("verify") is True, it["part_number"]
    assert set(lenses) == {"E1", "E2"}, "better.toml lists no beam expander (E1, E2)"
    return lenses["E1"], lenses["E2"]


def _corner_intensity(beam_1e2_mm, field_mm) -> float:
    """A Gaussian (1/e² diameters along the field's long and short side) at the field's corner."""
    return math.exp(-2 * sum((f / b) ** 2 for f, b in zip(field_mm, beam_1e2_mm, strict=True)))


def _readme_text() -> str:
    return " ".join((HARDWARE / "README.md").read_text().split())


def test_better_beam_expander_overfills_the_dmd_area_the_camera_sees(draw_optics):
    """The C230TMD-A leaves the laser about 1.8 x 0.5 mm wide; the DMD area imaged onto the
    camera's field is about 5.5 x 3.4 mm. Without a beam expander the field's edges got almost
    nothing; the expander must make the Gaussian wide enough that the corners stay bright."""
    plan = _better_plan()
    field = _dmd_field_mm(plan)
    assert field == pytest.approx((5.52, 3.45), abs=0.01)
    assert draw_optics.dmd_field_mm(plan) == pytest.approx(field)
    # the lenses the BOM buys are the ones the drawing and the README use
    f_e1, f_e2 = _expander_focal_lengths_from_bom()
    assert (f_e1, f_e2) == draw_optics.EXPANDER_FOCAL_MM
    # collimated beam (FWHM) -> 1/e² (x sqrt(2 / ln 2)) -> x f_E2 / f_E1
    fwhm = draw_optics.COLLIMATED_BEAM_FWHM_MM
    beam = tuple(d * math.sqrt(2 / math.log(2)) * f_e2 / f_e1 for d in fwhm)
    assert draw_optics.expanded_beam_mm() == pytest.approx(beam)
    assert all(b > f for b, f in zip(beam, field, strict=True))  # over-filled, both ways
    corner = _corner_intensity(beam, field)
    assert corner >= MIN_CORNER_INTENSITY
    # the collimated beam alone, or the 5x pair of AC254-030 + AC254-150, would not do
    bare = tuple(d * math.sqrt(2 / math.log(2)) for d in fwhm)
    assert _corner_intensity(bare, field) < 1e-6
    assert _corner_intensity(tuple(5 * b for b in bare), field) < 0.25
    # and the README and the drawing say so, with these numbers
    text = _readme_text()
    assert f"roughly {fwhm[0]:g} × {fwhm[1]:g} mm between its half-maximum points" in text
    assert f"**{field[0]:.2f} × {field[1]:.2f} mm**" in text
    assert f"f_E1 = {f_e1:g} mm" in text and f"f_E2 = {f_e2:g} mm" in text
    assert f"**{beam[0]:.1f} × {beam[1]:.1f} mm at 1/e²**" in text
    assert f"**{100 * corner:.0f} % of the light at its centre**" in text
    texts = {s for _, _, s, *_ in draw_optics.layout("better").texts}
    assert f"laser at the DMD {beam[0]:.1f} × {beam[1]:.1f} mm (1/e²)" in texts
    assert {f"E1 f = {f_e1:g} mm", f"E2 f = {f_e2:g} mm"} <= texts
    assert any(f"corners at {100 * corner:.0f} % of the centre" in s for s in texts)


def test_better_beam_expander_rods_span_f_e1_plus_f_e2(draw_optics):
    """A Keplerian expander's lenses sit f_E1 + f_E2 apart: the rods must reach that far, with
    E1's plate flush at one end and E2's free to slide a little to collimate."""
    f_e1, f_e2 = draw_optics.EXPANDER_FOCAL_MM
    rods = _rods_per_corner_mm("beam expander E1 to E2")
    spare = rods - CAGE_PLATE_MM - (f_e1 + f_e2)
    assert 0 <= spare <= INCH_MM, spare
    # two more cage plates, two more post sets, one more XY mount (the pinhole)
    qty = {it["part_number"]: it["quantity"] for it in _better_items()}
    assert qty["CXY1A"] == 2
    section = _readme_cage_section()
    assert f"f_E1 + f_E2 = {f_e1 + f_e2:g} mm" in section
    assert f"(4 × {rods:.1f} mm)" in section
    assert (
        f"{rods:.1f} mm less one {CAGE_PLATE_MM:.1f} mm cage plate, {rods - CAGE_PLATE_MM:.1f} mm"
        in section
    )
    # the table places E1, the pinhole and E2 between the mirrors and the DMD
    rows = _readme_cage_rows()

    def row_of(element: str) -> int:
        return next(n for n, row in rows.items() if row.split("|")[2].strip().startswith(element))

    order = [row_of(e) for e in ("two steering mirrors", "E1,", "pinhole", "E2,", "DMD (")]
    assert order == list(range(order[0], order[0] + 5)), order
    assert f"| {f_e1:g} mm (f_E1) |" in rows[order[2]]
    assert f"| {f_e2:g} mm (f_E2) |" in rows[order[3]]


def test_better_pinhole_follows_the_spatial_filter_rule(draw_optics):
    """Thorlabs' rule: the focused spot's 99 % contour is lambda f / w across (w: the input beam's
    1/e² radius, the narrow axis's for the larger spot); take a pinhole about 30 % larger."""
    from scope.planning import load_preset, parts_from_preset

    acquisition = parts_from_preset(load_preset(HARDWARE / "presets" / "better.toml"))[3]
    wavelength_mm = acquisition.excitation_wavelength_nm * 1e-6
    f_e1 = draw_optics.EXPANDER_FOCAL_MM[0]
    w = min(draw_optics.COLLIMATED_BEAM_FWHM_MM) * math.sqrt(2 / math.log(2)) / 2
    rule_um = 1.3 * wavelength_mm * f_e1 / w * 1e3
    assert draw_optics.pinhole_rule_um(acquisition.excitation_wavelength_nm) == pytest.approx(
        rule_um
    )
    pinholes = [it for it in _better_items() if re.fullmatch(r"P\d+HK", it["part_number"])]
    assert len(pinholes) == 1, "better.toml lists no pinhole for the beam expander"
    size_um = float(pinholes[0]["part_number"][1:-2])
    assert size_um == draw_optics.PINHOLE_UM
    assert rule_um <= size_um <= 1.5 * rule_um
    # it passes a clean beam: the focused spot's larger 1/e² radius well inside it
    spot_um = wavelength_mm * f_e1 / (math.pi * w) * 1e3
    assert 1 - math.exp(-2 * (size_um / 2 / spot_um) ** 2) > 0.99
    text = _readme_text()
    assert (
        f"{wavelength_mm * 1e3:.3f} µm × {f_e1:g} mm / {w:.3f} mm = {rule_um / 1.3:.0f} µm" in text
    )
    assert f"stock {size_um:g} µm: a {pinholes[0]['part_number']}" in text


def _readme_cage_rows() -> dict[int, str]:
    text = (HARDWARE / "README.md").read_text()
    start = text.index("### Better build: the cage, element by element")
    table = text[start : text.index("\nRods, ", start)]
    return {
        int(m.group(1)): line
        for line in table.splitlines()
        if (m := re.match(r"\| (\d+) \|", line))
    }


def test_bom_element_numbers_name_the_readme_rows_that_hold_the_part():
    """The BOM's notes say 'Element N' for the README's cage table; a row inserted into the table
    (the beam expander) must not leave them pointing at the wrong rows."""
    rows = _readme_cage_rows()
    assert sorted(rows) == list(range(1, len(rows) + 1))
    checked = 0
    for it in _better_items():
        for m in re.finditer(r"Elements? ((?:\d+(?:, | and )?)+)", it.get("notes", "")):
            for n in map(int, re.findall(r"\d+", m.group(1))):
                assert it["part_number"].removesuffix("-P4") in rows[n], (it["part_number"], n)
                checked += 1
    assert checked >= 20
