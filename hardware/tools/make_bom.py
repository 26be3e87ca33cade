"""Write hardware/BOM.md from the bill-of-materials data in hardware/bom/*.toml.

Every total is computed here from the line items (unit price x quantity, converted with the
exchange rates stated in each file); every predicted figure comes from :mod:`scope.planning`, the
code behind ``scope plan``, run on the build's preset (hardware/presets/) and on each objective
listed in the BOM.

Usage::

    python hardware/tools/make_bom.py            # rewrite hardware/BOM.md
    python hardware/tools/make_bom.py --check    # exit 1 if hardware/BOM.md is out of date
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scope.planning import (
    Objective,
    Plan,
    load_preset,
    parts_from_preset,
    plan_setup,
)

HARDWARE = Path(__file__).resolve().parents[1]
BOM_DIR = HARDWARE / "bom"
OUTPUT = HARDWARE / "BOM.md"
BUILD_ORDER = ("budget", "better")
#: aim for the pattern at most this fraction of the detection cutoff (modulation near the cutoff
#: is too weak to estimate the pattern from the data)
TARGET_FRACTION = 0.9

ITEM_HEADER = (
    "| # | category | part | part number | vendor | qty | unit price | line total | notes |\n"
    "|---:|---|---|---|---|---:|---:|---:|---|"
)
REQUIRED = ("category", "part", "part_number", "vendor", "unit_price", "currency", "quantity")


@dataclass(frozen=True)
class Totals:
    currency: str
    total: float  # required items, in the build currency
    by_currency: dict[str, float]  # required items, in their own currencies
    options_total: float  # optional items, in the build currency


def load_bom(path: Path) -> dict[str, Any]:
    """Read and check one BOM file."""
    with path.open("rb") as fh:
        bom = tomllib.load(fh)
    build = bom.get("build", {})
    for key in ("name", "title", "preset", "currency", "prices_as_of"):
        if key not in build:
            raise ValueError(f"{path.name}: [build] needs '{key}'")
    rates = build.get("exchange_rates", {})
    items = bom.get("item", [])
    if not items:
        raise ValueError(f"{path.name}: no [[item]] line items")
    for i, item in enumerate(items, 1):
        missing = [k for k in REQUIRED if k not in item]
        if missing:
            raise ValueError(f"{path.name}: item {i} ({item.get('part', '?')}) lacks {missing}")
        if item["currency"] not in rates:
            raise ValueError(
                f"{path.name}: item {i} is priced in {item['currency']} but [build.exchange_rates]"
                " has no rate for it"
            )
        if not (item["unit_price"] >= 0 and item["quantity"] >= 1):
            raise ValueError(f"{path.name}: item {i} needs unit_price >= 0 and quantity >= 1")
    bom["_path"] = path
    return bom


def line_total(item: dict[str, Any]) -> float:
    """Unit price x quantity, in the item's own currency."""
    return float(item["unit_price"]) * int(item["quantity"])


def totals(bom: dict[str, Any]) -> Totals:
    """Sum the line items (optional ones apart), converting to the build currency."""
    build = bom["build"]
    rates = build["exchange_rates"]
    total = 0.0
    options = 0.0
    by_currency: dict[str, float] = {}
    for item in bom["item"]:
        value = line_total(item)
        converted = value * float(rates[item["currency"]])
        if item.get("optional", False):
            options += converted
        else:
            total += converted
            by_currency[item["currency"]] = by_currency.get(item["currency"], 0.0) + value
    return Totals(build["currency"], total, by_currency, options)


def preset_path(bom: dict[str, Any]) -> Path:
    return (bom["_path"].parent / bom["build"]["preset"]).resolve()


def predicted_plan(bom: dict[str, Any], objective: Objective | None = None) -> Plan:
    """What ``scope plan --preset <the build's preset>`` computes (with another objective)."""
    camera, preset_objective, illuminator, acquisition = parts_from_preset(
        load_preset(preset_path(bom))
    )
    return plan_setup(camera, objective or preset_objective, illuminator, acquisition)


def objectives(bom: dict[str, Any]) -> list[tuple[dict[str, Any], Objective]]:
    """The objective line items with their optics."""
    return [(it, Objective(**it["objective"])) for it in bom["item"] if "objective" in it]


def finest_period_px(bom: dict[str, Any], objective: Objective) -> tuple[int, Plan] | None:
    """Finest whole-pixel grating whose pattern stays within TARGET_FRACTION of the cutoff."""
    camera, _, illuminator, acquisition = parts_from_preset(load_preset(preset_path(bom)))
    if illuminator.pattern_period_px is None:
        return None
    for px in range(2, 64):
        ill = illuminator.model_copy(update={"pattern_period_px": float(px)})
        plan = plan_setup(camera, objective, ill, acquisition)
        ok_contrast = plan.pattern_contrast is None or plan.pattern_contrast >= 0.2
        if plan.pattern_fraction_of_cutoff <= TARGET_FRACTION and ok_contrast:
            return px, plan
    return None


def _money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(boms: list[dict[str, Any]]) -> str:
    """The whole BOM.md text."""
    out: list[str] = [
        "# Bill of materials",
        "",
        "<!-- generated by hardware/tools/make_bom.py from hardware/bom/*.toml and "
        "hardware/presets/*.toml: edit those and re-run the script, never this file -->",
        "",
        "Prices are **indicative public list prices as of 2026**, per unit, before tax and "
        "shipping, converted at the exchange rates stated in each BOM file. Parts marked ✱ have "
        "a part number or price to check on the vendor's page before ordering. Every total "
        "below is computed from the line items by `hardware/tools/make_bom.py`; every predicted "
        "figure comes from `scope plan` (`scope.planning`) on the build's preset.",
        "",
        "## Summary",
        "",
        "| build | total | options | pixel at sample | pattern period | widefield | SIM "
        "| raw / SIM fps (leader) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for bom in boms:
        t = totals(bom)
        plan = predicted_plan(bom)
        lead = plan.timing["leader"]
        out.append(
            f"| [{bom['build']['name']}](#{bom['build']['name']}-build) "
            f"| **{_money(t.total, t.currency)}** | {_money(t.options_total, t.currency)} "
            f"| {plan.pixel_size_nm:.1f} nm | {plan.pattern_period_nm:.1f} nm "
            f"| {plan.widefield_resolution_nm:.0f} nm | **{plan.sim_resolution_nm:.0f} nm** "
            f"| {lead.raw_fps:.1f} / {lead.sim_fps:.2f} |"
        )
    out.append("")
    out.append(
        "Predicted with `scope plan --preset hardware/presets/<build>.toml`; the SIM resolution "
        "is λ/(2NA)/(1 + p/fc), see `src/scope/planning.py` for the derivation."
    )
    for bom in boms:
        out.extend(_render_build(bom))
    out.extend(_render_optics(boms))
    return "\n".join(out) + "\n"


def _render_build(bom: dict[str, Any]) -> list[str]:
    build = bom["build"]
    t = totals(bom)
    rel = bom["_path"].relative_to(HARDWARE)
    preset = preset_path(bom).relative_to(HARDWARE)
    lines = [
        "",
        f"## {build['name']} build",
        "",
        f"{build['title']}. Data: `hardware/{rel}`; preset: `hardware/{preset}`.",
        "",
        ITEM_HEADER,
    ]
    n = 0
    for item in bom["item"]:
        if item.get("optional", False):
            continue
        n += 1
        lines.append(_item_row(n, item))
    lines.append(
        f"| | | **total** | | | | | **{_money(t.total, t.currency)}** | "
        + (
            "in " + ", ".join(_money(v, c) for c, v in sorted(t.by_currency.items()))
            if len(t.by_currency) > 1
            else ""
        )
        + " |"
    )
    rates = ", ".join(
        f"1 {c} = {r:g} {t.currency}"
        for c, r in sorted(build["exchange_rates"].items())
        if c != t.currency
    )
    if rates:
        lines += ["", f"Exchange rates used (indicative): {rates}."]
    opts = [it for it in bom["item"] if it.get("optional", False)]
    if opts:
        lines += [
            "",
            f"Options (not in the total; together {_money(t.options_total, t.currency)}):",
            "",
            ITEM_HEADER,
        ]
        lines += [_item_row(i, it) for i, it in enumerate(opts, 1)]
    return lines


def _item_row(n: int, item: dict[str, Any]) -> str:
    mark = " ✱" if item.get("verify", False) else ""
    return (
        f"| {n} | {item['category']} | {_md_escape(item['part'])} "
        f"| {_md_escape(item['part_number'])}{mark} | {_md_escape(item['vendor'])} "
        f"| {item['quantity']} | {_money(float(item['unit_price']), item['currency'])} "
        f"| {_money(line_total(item), item['currency'])} | {_md_escape(item.get('notes', ''))} |"
    )


def _render_optics(boms: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "## Optical layout: the pattern at the sample for each objective",
        "",
        "The pattern device is imaged into the objective by the illumination lens: "
        "demagnification D = M × f_ill / f_design (f_design = 160 mm for DIN objectives). "
        "The period at the sample is the device period / D (halved in two-beam mode, where the "
        "±1 orders interfere). 'inside' means the pattern frequency p is at most the detection "
        f"cutoff fc = 2NA/λ_em. 'finest' is the finest whole-pixel grating with p/fc ≤ "
        f"{TARGET_FRACTION} (and, for incoherent projection, contrast ≥ 0.2).",
        "",
        "| build | objective | pixel at sample | D | grating | period at sample | p/fc | inside "
        "| contrast | widefield | SIM | finest grating → SIM |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for bom in boms:
        _, _, illuminator, _ = parts_from_preset(load_preset(preset_path(bom)))
        for item, obj in objectives(bom):
            plan = predicted_plan(bom, obj)
            finest = finest_period_px(bom, obj)
            finest_txt = (
                f"{finest[0]} px: {finest[1].pattern_period_nm:.0f} nm, "
                f"p/fc {finest[1].pattern_fraction_of_cutoff:.2f} → "
                f"{finest[1].sim_resolution_nm:.0f} nm"
                if finest
                else "none"
            )
            contrast = "—" if plan.pattern_contrast is None else f"{plan.pattern_contrast:.2f}"
            demag = "—" if plan.demagnification is None else f"{plan.demagnification:.2f}"
            grating = (
                f"{illuminator.pattern_period_px:g} px"
                if illuminator.pattern_period_px is not None
                else f"{illuminator.grating_period_um:g} µm"
            )
            option = " (option)" if item.get("optional", False) else ""
            lines.append(
                f"| {bom['build']['name']} | {obj.name}{option} | {plan.pixel_size_nm:.1f} nm "
                f"| {demag} | {grating} | {plan.pattern_period_nm:.1f} nm "
                f"| {plan.pattern_fraction_of_cutoff:.3f} "
                f"| {'yes' if plan.pattern_inside_otf else 'NO'} "
                f"| {contrast} | {plan.widefield_resolution_nm:.0f} nm "
                f"| {plan.sim_resolution_nm:.0f} nm | {finest_txt} |"
            )
    return lines


def load_all(bom_dir: Path = BOM_DIR) -> list[dict[str, Any]]:
    paths = sorted(bom_dir.glob("*.toml"))
    order = {name: i for i, name in enumerate(BUILD_ORDER)}
    boms = [load_bom(p) for p in paths]
    boms.sort(key=lambda b: (order.get(b["build"]["name"], len(order)), b["build"]["name"]))
    return boms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if BOM.md is out of date")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render(load_all())
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            sys.stderr.write(f"{args.output} is out of date: run hardware/tools/make_bom.py\n")
            return 1
        return 0
    args.output.write_text(text)
    sys.stdout.write(f"wrote {args.output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
