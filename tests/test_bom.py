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
