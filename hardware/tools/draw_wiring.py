"""Draw the wiring diagrams of hardware/README.md as SVG and PNG.

One diagram per build (budget, better) and trigger mode (leader, follower), written to
hardware/wiring/wiring-<build>-<mode>.svg and .png. The drawings are made of a few primitives
(boxes with pins, wires, labels) rendered twice from the same description: as SVG text, and as a
PNG with Pillow, so no SVG converter is needed.

Pin numbers follow the controller firmware (hardware/firmware/hw_rp2040.py):
GP2 camera trigger out, GP3 pattern advance out, GP12 light enable (channel 0),
GP14 camera exposure-active in.

Usage::

    python hardware/tools/draw_wiring.py           # rewrite hardware/wiring/*
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

HARDWARE = Path(__file__).resolve().parents[1]
OUT_DIR = HARDWARE / "wiring"
WIDTH, HEIGHT = 1420, 900

#: what each wire colour carries (legend)
KIND_NAMES = {
    "gnd": "ground",
    "3v3": "3.3 V supply",
    "5v": "5 V supply (USB VBUS)",
    "1v8": "1.8 V supply",
    "trigger": "camera trigger (GP2)",
    "exposure": "exposure active (GP14)",
    "advance": "pattern advance (GP3)",
    "light": "light enable (GP12)",
}

#: wire colours by signal kind
COLOURS = {
    "gnd": "#222222",
    "3v3": "#d62728",
    "5v": "#ff7f0e",
    "1v8": "#9467bd",
    "trigger": "#1f77b4",
    "exposure": "#2ca02c",
    "advance": "#e377c2",
    "light": "#bcbd22",
    "usb": "#7f7f7f",
}

# Raspberry Pi Pico physical pin numbers of the GPIOs the firmware uses
PICO_PINS = {
    "GP2": 4,
    "GP3": 5,
    "GP12": 16,
    "GP14": 19,
    "GND": 38,
    "3V3(OUT)": 36,
    "VBUS": 40,
}


@dataclass
class Box:
    """A component: a rectangle with a title and pins on its left and right edges."""

    key: str
    x: float
    y: float
    w: float
    title: str
    subtitle: str = ""
    left: list[str] = field(default_factory=list)
    right: list[str] = field(default_factory=list)
    fill: str = "#f4f4f4"
    pin_step: float = 30.0

    @property
    def h(self) -> float:
        return 64 + self.pin_step * max(len(self.left), len(self.right), 1)

    def pin(self, name: str) -> tuple[float, float]:
        if name in self.left:
            return self.x, self.y + 60 + self.pin_step * self.left.index(name) + 10
        if name in self.right:
            return self.x + self.w, self.y + 60 + self.pin_step * self.right.index(name) + 10
        raise KeyError(f"{self.key} has no pin {name!r}")


@dataclass
class Wire:
    points: list[tuple[float, float]]
    kind: str
    label: str = ""
    label_at: int = -1  # index of the segment that carries the label (-1: the last)


@dataclass
class Diagram:
    title: str
    boxes: list[Box]
    wires: list[Wire]
    notes: list[str]


# ---------------------------------------------------------------------------------------------
# the circuits
# ---------------------------------------------------------------------------------------------


def _pico() -> Box:
    right = ["3V3(OUT)", "VBUS", "GND", "GP2", "GP3", "GP12", "GP14"]
    return Box(
        "pico",
        40,
        120,
        230,
        "Raspberry Pi Pico",
        "controller (hardware/firmware)",
        right=[f"{p} (pin {PICO_PINS[p]})" for p in right],
        fill="#e8f4e8",
    )


def _pin(pico: Box, gp: str) -> tuple[float, float]:
    return pico.pin(f"{gp} (pin {PICO_PINS[gp]})")


GND_BUS_Y = 720


def budget(mode: str) -> Diagram:
    """AR0234 camera (1.8 V trigger and flash pins) through a TXB0108 level shifter."""
    pico = _pico()
    ldo = Box(
        "ldo",
        420,
        60,
        210,
        "MCP1700-1802",
        "1.8 V regulator, 1 µF in and out",
        left=["IN", "GND"],
        right=["OUT 1.8 V"],
        fill="#fff4e0",
    )
    shifter = Box(
        "txb",
        420,
        300,
        210,
        "TXB0108 breakout",
        "level shifter (Adafruit 395)",
        left=["VB (3.3 V)", "GND", "B1", "B2"],
        right=["VA (1.8 V)", "OE", "A1", "A2"],
        fill="#f0e8f8",
    )
    camera = Box(
        "cam",
        900,
        300,
        250,
        "AR0234 USB3 camera",
        "trigger header, 1.8 V logic",
        left=["TRIGGER in", "FLASH out", "GND"],
        fill="#e8eef8",
    )
    pi = Box(
        "pi",
        900,
        560,
        250,
        "Raspberry Pi 4",
        "shows the patterns on the DLP2000",
        left=["GPIO17 (pin 11)", "GND (pin 9)"],
        fill="#f8e8e8",
    )
    v33, gnd, gp2, gp3, gp14 = (_pin(pico, g) for g in ("3V3(OUT)", "GND", "GP2", "GP3", "GP14"))
    va, oe = shifter.pin("VA (1.8 V)"), shifter.pin("OE")
    cam_gnd, pi_gnd = camera.pin("GND"), pi.pin("GND (pin 9)")
    w: list[Wire] = [
        Wire([v33, (395, v33[1]), (395, ldo.pin("IN")[1]), ldo.pin("IN")], "3v3"),
        Wire(
            [(395, v33[1]), (395, shifter.pin("VB (3.3 V)")[1]), shifter.pin("VB (3.3 V)")], "3v3"
        ),
        Wire([gnd, (380, gnd[1]), (380, ldo.pin("GND")[1]), ldo.pin("GND")], "gnd"),
        Wire([(380, gnd[1]), (380, shifter.pin("GND")[1]), shifter.pin("GND")], "gnd"),
        Wire(
            [ldo.pin("OUT 1.8 V"), (700, ldo.pin("OUT 1.8 V")[1]), (700, va[1]), va],
            "1v8",
            "1.8 V",
            label_at=0,
        ),
        Wire([(700, va[1]), (700, oe[1]), oe], "1v8"),
        Wire(
            [gnd, (285, gnd[1]), (285, GND_BUS_Y), (830, GND_BUS_Y), (830, cam_gnd[1]), cam_gnd],
            "gnd",
            "common ground",
            label_at=2,
        ),
        Wire([(830, pi_gnd[1]), pi_gnd], "gnd"),
        Wire(
            [gp3, (300, gp3[1]), (300, pi.pin("GPIO17 (pin 11)")[1]), pi.pin("GPIO17 (pin 11)")],
            "advance",
            "pattern advance (GP3), 3.3 V, 10 µs",
        ),
    ]
    notes = [
        "Grounds: Pico, level shifter, camera trigger header and Raspberry Pi GND all joined.",
        "The Pico is 3.3 V logic; the AR0234 trigger and flash pins are 1.8 V. Never wire them "
        "directly: 3.3 V overdrives the 1.8 V input, and 1.8 V is below the Pico's input-high "
        "level.",
    ]
    if mode == "leader":
        a1, b1 = shifter.pin("A1"), shifter.pin("B1")
        w += [
            Wire([gp2, (365, gp2[1]), (365, b1[1]), b1], "trigger"),
            Wire(
                [a1, (760, a1[1]), (760, camera.pin("TRIGGER in")[1]), camera.pin("TRIGGER in")],
                "trigger",
                "trigger 1.8 V, ≥ 2 µs",
                label_at=0,
            ),
        ]
        notes.insert(
            0,
            "LEADER mode: the controller switches the pattern (GP3), waits for it "
            "to settle, then raises GP2 (B1 → A1) to expose. Camera in external-trigger "
            "mode (v4l2-ctl -c trigger_mode=1).",
        )
    else:
        a2, b2 = shifter.pin("A2"), shifter.pin("B2")
        flash = camera.pin("FLASH out")
        w += [
            Wire(
                [flash, (780, flash[1]), (780, a2[1]), a2],
                "exposure",
                "flash 1.8 V, high while exposing",
                label_at=2,
            ),
            Wire([b2, (350, b2[1]), (350, gp14[1]), gp14], "exposure"),
        ]
        notes.insert(
            0,
            "FOLLOWER mode: the camera free-runs; its FLASH output (high during "
            "each exposure) reaches GP14 through A2 → B2, and the controller advances "
            "the pattern (GP3) when an exposure ends. Set the camera's frame period from "
            "`scope plan`.",
        )
    return Diagram(f"Budget build — {mode} mode wiring", [pico, ldo, shifter, camera, pi], w, notes)


def better(mode: str) -> Diagram:
    """Basler camera with opto-isolated I/O, LightCrafter 6500 trigger input, laser enable."""
    pico = _pico()
    camera = Box(
        "cam",
        900,
        110,
        270,
        "Basler a2A1920-160umBAS",
        "I/O connector, opto-isolated",
        left=["Line 1 opto in", "Line 2 opto out", "opto GND"],
        fill="#e8eef8",
    )
    dmd = Box(
        "dmd",
        900,
        330,
        270,
        "LightCrafter 6500 (DLPC900)",
        "pattern memory, trigger I/O",
        left=["TRIG_IN_1", "GND"],
        fill="#f8e8e8",
    )
    laser = Box(
        "laser",
        900,
        580,
        270,
        "Thorlabs CLD1010LP",
        "laser diode driver",
        left=["MOD / enable in", "GND"],
        fill="#f8f0e0",
    )
    gnd, gp2, gp3, gp12, gp14 = (_pin(pico, g) for g in ("GND", "GP2", "GP3", "GP12", "GP14"))
    trig, mod = dmd.pin("TRIG_IN_1"), laser.pin("MOD / enable in")
    opto_gnd = camera.pin("opto GND")
    w: list[Wire] = [
        Wire(
            [gp3, (300, gp3[1]), (300, trig[1]), trig],
            "advance",
            "pattern advance (GP3), 10 µs pulse",
        ),
        Wire([gp12, (315, gp12[1]), (315, mod[1]), mod], "light", "light enable (GP12)"),
        Wire(
            [gnd, (285, gnd[1]), (285, GND_BUS_Y), (830, GND_BUS_Y), (830, opto_gnd[1]), opto_gnd],
            "gnd",
            "common ground",
            label_at=2,
        ),
        Wire([(830, dmd.pin("GND")[1]), dmd.pin("GND")], "gnd"),
        Wire([(830, laser.pin("GND")[1]), laser.pin("GND")], "gnd"),
    ]
    notes = [
        "Grounds: Pico, buffer, camera opto GND, DMD and laser-driver signal grounds joined (the "
        "opto-couplers isolate the camera's own supply). DMD: upload the pattern sequence with "
        "'advance on TRIG_IN_1'; check the EVM guide for its trigger-input voltage.",
    ]
    boxes = [camera, dmd, laser]
    if mode == "leader":
        buf = Box(
            "buf",
            420,
            90,
            220,
            "SN74AHCT125N",
            "quad buffer at 5 V (1 of 4 used)",
            left=["VCC (14)", "1A (2)", "1OE (1)", "GND (7)"],
            right=["1Y (3)"],
            fill="#fff4e0",
        )
        boxes.insert(0, buf)
        vbus = _pin(pico, "VBUS")
        oe, bgnd = buf.pin("1OE (1)"), buf.pin("GND (7)")
        y1, line1 = buf.pin("1Y (3)"), camera.pin("Line 1 opto in")
        w += [
            Wire(
                [vbus, (330, vbus[1]), (330, buf.pin("VCC (14)")[1]), buf.pin("VCC (14)")],
                "5v",
                "5 V",
                label_at=2,
            ),
            Wire([gp2, (345, gp2[1]), (345, buf.pin("1A (2)")[1]), buf.pin("1A (2)")], "trigger"),
            Wire([gnd, bgnd], "gnd"),
            Wire([(400, bgnd[1]), (400, oe[1]), oe], "gnd"),
            Wire([y1, (760, y1[1]), (760, line1[1]), line1], "trigger", "trigger 5 V", label_at=0),
        ]
        notes.insert(
            0,
            "LEADER mode: GP2 drives the camera's opto-isolated Line 1 through a 5 V "
            "buffer (the opto LED wants more than a 3.3 V pin gives). Camera: "
            "TriggerSelector=FrameStart, TriggerSource=Line1, TriggerMode=On.",
        )
    else:
        pull = Box(
            "res",
            420,
            470,
            220,
            "4.7 kΩ resistor",
            "pull-up for the opto output",
            left=["to 3.3 V"],
            right=["to Line 2"],
            fill="#fff4e0",
        )
        boxes.insert(0, pull)
        v33 = _pin(pico, "3V3(OUT)")
        top, bottom = pull.pin("to 3.3 V"), pull.pin("to Line 2")
        line2 = camera.pin("Line 2 opto out")
        w += [
            Wire([v33, (330, v33[1]), (330, top[1]), top], "3v3", "3.3 V", label_at=2),
            Wire(
                [bottom, (760, bottom[1]), (760, line2[1]), line2],
                "exposure",
                "open collector",
                label_at=0,
            ),
            Wire([gp14, (700, gp14[1]), (700, bottom[1])], "exposure", "→ GP14", label_at=0),
        ]
        notes.insert(
            0,
            "FOLLOWER mode: the opto output pulls the line low while on; set "
            "LineSelector=Line2, LineSource=ExposureActive, LineInverter=True so GP14 is "
            "high while the sensor exposes.",
        )
    return Diagram(f"Better build — {mode} mode wiring", [pico, *boxes], w, notes)


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------


def _label_pos(wire: Wire) -> tuple[float, float]:
    n = len(wire.points) - 1
    i = wire.label_at % n if wire.label_at < 0 else min(wire.label_at, n - 1)
    (x0, y0), (x1, y1) = wire.points[i], wire.points[i + 1]
    if abs(y1 - y0) < 1:  # horizontal segment: label above its middle
        return (x0 + x1) / 2, y0 - 6
    return x0 + 6, (y0 + y1) / 2


def _note_lines(d: Diagram) -> list[str]:
    import textwrap

    lines: list[str] = []
    for note in d.notes:
        lines += textwrap.wrap(note, 170)
    return lines


def _legend(d: Diagram) -> list[tuple[str, str]]:
    kinds = []
    for wire in d.wires:
        if wire.kind not in kinds:
            kinds.append(wire.kind)
    return [(COLOURS[k], KIND_NAMES[k]) for k in KIND_NAMES if k in kinds]


LEGEND_X, LEGEND_Y = 1195, 90


def to_svg(d: Diagram) -> str:
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="40" y="50" font-size="26" font-weight="bold">{escape(d.title)}</text>',
    ]
    for wire in d.wires:
        pts = " ".join(f"{x:.0f},{y:.0f}" for x, y in wire.points)
        out.append(
            f'<polyline points="{pts}" fill="none" stroke="{COLOURS[wire.kind]}" '
            'stroke-width="3" stroke-linejoin="round"/>'
        )
        for x, y in (wire.points[0], wire.points[-1]):
            out.append(f'<circle cx="{x:.0f}" cy="{y:.0f}" r="4" fill="{COLOURS[wire.kind]}"/>')
    for b in d.boxes:
        out.append(
            f'<rect x="{b.x}" y="{b.y}" width="{b.w}" height="{b.h}" rx="8" fill="{b.fill}" '
            'stroke="#333" stroke-width="2"/>'
        )
        out.append(
            f'<text x="{b.x + b.w / 2}" y="{b.y + 24}" font-size="16" font-weight="bold" '
            f'text-anchor="middle">{escape(b.title)}</text>'
        )
        out.append(
            f'<text x="{b.x + b.w / 2}" y="{b.y + 44}" font-size="12" fill="#555" '
            f'text-anchor="middle">{escape(b.subtitle)}</text>'
        )
        for name in b.left:
            x, y = b.pin(name)
            out.append(f'<text x="{x + 8}" y="{y + 5}" font-size="13">{escape(name)}</text>')
        for name in b.right:
            x, y = b.pin(name)
            out.append(
                f'<text x="{x - 8}" y="{y + 5}" font-size="13" text-anchor="end">'
                f"{escape(name)}</text>"
            )
    for wire in d.wires:
        if wire.label:
            x, y = _label_pos(wire)
            out.append(
                f'<text x="{x:.0f}" y="{y:.0f}" font-size="12" fill="{COLOURS[wire.kind]}" '
                f'text-anchor="middle" stroke="white" stroke-width="3" paint-order="stroke">'
                f"{escape(wire.label)}</text>"
            )
    lines = _note_lines(d)
    y = HEIGHT - 18 * len(lines) - 6
    for note in lines:
        out.append(f'<text x="40" y="{y}" font-size="13" fill="#333">{escape(note)}</text>')
        y += 18
    for i, (colour, name) in enumerate(_legend(d)):
        ly = LEGEND_Y + 24 * i
        out.append(
            f'<line x1="{LEGEND_X}" y1="{ly}" x2="{LEGEND_X + 30}" y2="{ly}" stroke="{colour}" '
            'stroke-width="4"/>'
        )
        out.append(f'<text x="{LEGEND_X + 38}" y="{ly + 5}" font-size="13">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def to_png(d: Diagram, path: Path) -> None:
    from PIL import Image, ImageDraw

    from scope.export.text import get_font

    def font(size: int, bold: bool = False) -> Any:
        return get_font(size, bold=bold)

    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(img)
    draw.text((40, 28), d.title, fill="black", font=font(26, True))
    for wire in d.wires:
        draw.line(wire.points, fill=COLOURS[wire.kind], width=3, joint="curve")
        for x, y in (wire.points[0], wire.points[-1]):
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=COLOURS[wire.kind])
    for b in d.boxes:
        draw.rounded_rectangle(
            (b.x, b.y, b.x + b.w, b.y + b.h), 8, fill=b.fill, outline="#333333", width=2
        )
        draw.text(
            (b.x + b.w / 2, b.y + 24), b.title, fill="black", font=font(16, True), anchor="ms"
        )
        draw.text((b.x + b.w / 2, b.y + 44), b.subtitle, fill="#555555", font=font(12), anchor="ms")
        for name in b.left:
            x, y = b.pin(name)
            draw.text((x + 8, y + 5), name, fill="black", font=font(13), anchor="ls")
        for name in b.right:
            x, y = b.pin(name)
            draw.text((x - 8, y + 5), name, fill="black", font=font(13), anchor="rs")
    for wire in d.wires:
        if wire.label:
            x, y = _label_pos(wire)
            draw.text(
                (x, y),
                wire.label,
                fill=COLOURS[wire.kind],
                font=font(12),
                anchor="ms",
                stroke_width=3,
                stroke_fill="white",
            )
    lines = _note_lines(d)
    y = HEIGHT - 18 * len(lines) - 6
    for note in lines:
        draw.text((40, y), note, fill="#333333", font=font(13), anchor="ls")
        y += 18
    for i, (colour, name) in enumerate(_legend(d)):
        ly = LEGEND_Y + 24 * i
        draw.line([(LEGEND_X, ly), (LEGEND_X + 30, ly)], fill=colour, width=4)
        draw.text((LEGEND_X + 38, ly + 5), name, fill="black", font=font(13), anchor="ls")
    img.save(path, optimize=True)


def diagrams() -> dict[str, Diagram]:
    return {
        f"wiring-{name}-{mode}": build(mode)
        for name, build in (("budget", budget), ("better", better))
        for mode in ("leader", "follower")
    }


def main(out_dir: Path = OUT_DIR) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    for stem, d in diagrams().items():
        (out_dir / f"{stem}.svg").write_text(to_svg(d))
        to_png(d, out_dir / f"{stem}.png")
        sys.stdout.write(f"wrote {out_dir / stem}.svg/.png\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
