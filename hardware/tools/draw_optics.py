"""Draw the optical layout of each build as SVG and PNG (hardware/optics/layout-<build>.*).

The parts and focal lengths come from the build's preset (hardware/presets/<build>.toml) and the
figures written on the drawing (demagnification, pattern period at the sample and its fraction of
the OTF cutoff, pixel size at the sample, resolution) from :mod:`scope.planning`, so the drawing
cannot disagree with ``scope plan``. Rendered twice from one description (SVG text, and PNG with
Pillow), like the wiring diagrams.

Usage::

    python hardware/tools/draw_optics.py
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from scope.planning import load_preset, parts_from_preset, plan_setup

HARDWARE = Path(__file__).resolve().parents[1]
OUT_DIR = HARDWARE / "optics"
WIDTH, HEIGHT = 1400, 760
EXCITATION = "#1f77b4"
EMISSION = "#2ca02c"
#: focal length of the two lenses of the better build's 1:1 4f relay (hardware/bom/better.toml,
#: AC254-150-A-ML); the relay is 1:1, so only the excitation tube lens after it
#: (the preset's illumination_lens_focal_mm) enters the demagnification
RELAY_FOCAL_MM = 150.0
#: a finite (DIN) objective forms its image of the sample 150 mm above its shoulder (160 mm
#: mechanical tube length, less the 10 mm an eyepiece reaches into the tube); its magnification
#: refers to that image plane, and scope.planning takes 160 mm as its f_design
DIN_IMAGE_FROM_SHOULDER_MM = 150.0
FINITE_F_DESIGN_MM = 160.0
#: the better build's laser beam after the C230TMD-A collimator (f = 4.5 mm): the L488P60 is an
#: edge emitter, so the beam is an ellipse, about 1.8 x 0.5 mm (long x short axis) between its
#: half-maximum points (2 f tan(θ/2), θ the diode's full-width-half-maximum divergence)
COLLIMATED_BEAM_FWHM_MM = (1.8, 0.5)
#: a Gaussian beam's 1/e² diameter over its full width at half maximum, sqrt(2 / ln 2)
FWHM_TO_1E2 = math.sqrt(2.0 / math.log(2.0))
#: the better build's Keplerian beam expander (hardware/bom/better.toml): E1 (AC254-030-A-ML)
#: focuses the collimated laser onto the pinhole, E2 (AC254-400-A-ML) collimates it again,
#: f_E1 + f_E2 apart
EXPANDER_FOCAL_MM = (30.0, 400.0)
#: the spatial filter's pinhole at the expander's common focus (P50HK)
PINHOLE_UM = 50.0
#: Thorlabs' rule for a spatial filter: the focused spot's 99 % contour has the diameter
#: λ f / w (w the input beam's 1/e² radius); take a pinhole about 30 % larger
PINHOLE_MARGIN = 1.3


def expander_magnification() -> float:
    f_e1, f_e2 = EXPANDER_FOCAL_MM
    return f_e2 / f_e1


def expanded_beam_mm() -> tuple[float, float]:
    """1/e² diameters (long, short axis) of the laser beam the expander sends to the DMD."""
    m = expander_magnification()
    return tuple(FWHM_TO_1E2 * d * m for d in COLLIMATED_BEAM_FWHM_MM)  # type: ignore[return-value]


def dmd_field_mm(plan: Any) -> tuple[float, float]:
    """The part of the DMD imaged onto the camera's sensor: the field of view at the sample
    times the demagnification device -> sample (``scope plan``'s figures)."""
    return tuple(  # type: ignore[return-value]
        v * 1e-3 * plan.demagnification for v in plan.field_of_view_um
    )


def relative_intensity(beam_1e2_mm: tuple[float, float], x_mm: float, y_mm: float) -> float:
    """A Gaussian beam's intensity at (x, y) from its centre (x along its long axis), as a
    fraction of the centre's."""
    wx, wy = (d / 2.0 for d in beam_1e2_mm)
    return math.exp(-2.0 * ((x_mm / wx) ** 2 + (y_mm / wy) ** 2))


def pinhole_rule_um(wavelength_nm: float) -> float:
    """Pinhole diameter by Thorlabs' rule, for the beam's narrow axis (the larger focal spot)."""
    w_mm = FWHM_TO_1E2 * min(COLLIMATED_BEAM_FWHM_MM) / 2.0
    return PINHOLE_MARGIN * (wavelength_nm * 1e-6) * EXPANDER_FOCAL_MM[0] / w_mm * 1e3


def projection_distances(f_ill: float, f_design: float = FINITE_F_DESIGN_MM) -> tuple[float, float]:
    """Budget build (finite objective): DMD to illumination lens, and lens to the DMD's image.

    The sample plane a finite objective is in focus for is the one it images into its DIN image
    plane, not the one it images to infinity: a DMD in the lens's front focal plane would be
    sharp about f_obj / M = 16 µm beyond the sample the camera sees. So the lens forms a real
    image of the DMD in the objective's DIN image plane, magnified f_design / f_ill, which gives
    the demagnification ``scope plan`` uses, ``D = M × f_ill / f_design``. The thin-lens equation
    then puts the DMD ``f_ill × (1 + f_ill / f_design)`` before the lens and its image
    ``f_ill + f_design`` after it.
    """
    m = f_design / f_ill
    return f_ill * (1.0 + 1.0 / m), f_ill * (1.0 + m)


@dataclass
class Layout:
    title: str
    rects: list[tuple[float, float, float, float, str, str]] = field(default_factory=list)
    lenses: list[tuple[float, float, float, bool, str]] = field(default_factory=list)
    beams: list[tuple[list[tuple[float, float]], str]] = field(default_factory=list)
    lines: list[tuple[list[tuple[float, float]], str, float]] = field(default_factory=list)
    texts: list[tuple[float, float, str, int, bool, str, str]] = field(default_factory=list)

    def rect(self, x: float, y: float, w: float, h: float, fill: str, label: str = "") -> None:
        self.rects.append((x, y, w, h, fill, label))

    def lens(self, x: float, y: float, size: float, vertical: bool, label: str) -> None:
        self.lenses.append((x, y, size, vertical, label))

    def text(
        self, x: float, y: float, s: str, size: int = 13, bold: bool = False,
        colour: str = "#222222", anchor: str = "start",
    ) -> None:  # fmt: skip
        self.texts.append((x, y, s, size, bold, colour, anchor))


def layout(build: str) -> Layout:
    camera, objective, illuminator, acquisition = parts_from_preset(
        load_preset(HARDWARE / "presets" / f"{build}.toml")
    )
    plan = plan_setup(camera, objective, illuminator, acquisition)
    two_beam = illuminator.projection == "two_beam"
    d = Layout(f"{build.capitalize()} build — optical layout")
    y0 = 300  # illumination axis
    xd = 960  # detection axis (dichroic, objective, camera)
    period_dev = (illuminator.pattern_period_px or 0) * (illuminator.pixel_pitch_um or 0)
    grating = (
        f"grating {illuminator.pattern_period_px:g} px x "
        f"{illuminator.pixel_pitch_um:g} µm = {period_dev:.1f} µm"
    )
    f_ill = illuminator.illumination_lens_focal_mm or 0.0
    if two_beam:
        xdmd = _laser_arm(d, plan, illuminator, y0, grating)
    else:
        # light source and pattern device
        d.rect(40, y0 - 30, 150, 60, "#fde9c9")
        d.text(115, y0 + 50, "projector LED (blue channel)", anchor="middle")
        d.rect(250, y0 - 55, 40, 110, "#dddddd")
        d.text(270, y0 - 95, illuminator.name, anchor="middle", bold=True)
        d.text(270, y0 + 102, grating, anchor="middle")
        d.beams.append(([(190, y0), (250, y0)], EXCITATION))
    if two_beam:
        # DMD -> L1 -> Fourier plane (zero-order stop) -> L2 -> intermediate DMD image -> L3
        # (excitation tube lens, f3 = f_ill) -> objective back focal plane. The relay is 1:1
        # (f1 = f2), so D = M x (f1/f2) x f3 / f_design = M x f_ill / f_design, as scope plan has
        # it. Drawn are the chief rays of the +-1 orders: apart in the Fourier planes (stop, back
        # aperture), crossing in the image planes (DMD, intermediate image).
        x1, xs, x2, xi, x3 = 390, 495, 600, 705, 810
        h = 30  # height of the +-1 orders in the Fourier planes
        for sign in (-1, 1):
            y = y0 + sign * h
            d.beams.append(([(xdmd, y0), (x1, y), (x2, y), (xi, y0), (x3, y)], EXCITATION))
            # folded up by the dichroic, parallel into the back aperture: two spots
            d.beams.append(([(x3, y), (xd - sign * h, y), (xd - sign * h, 170)], EXCITATION))
        d.beams.append(([(xdmd, y0), (xs - 7, y0)], EXCITATION))  # zero order, blocked
        d.lens(x1, y0, 120, True, f"f = {RELAY_FOCAL_MM:g} mm")
        d.rect(xs - 7, y0 - 8, 14, 16, "#111111")
        d.text(xs, y0 + 55, "zero-order stop", anchor="middle")
        d.text(xs, y0 - 68, "(Fourier plane)", anchor="middle")
        d.lens(x2, y0, 120, True, f"f = {RELAY_FOCAL_MM:g} mm")
        d.lines.append(([(xi, y0 - 45), (xi, y0 + 45)], "#9a9a9a", 2))
        d.text(xi, y0 - 68, "intermediate image", anchor="middle")
        d.lens(x3, y0, 120, True, f"excitation tube lens f = {f_ill:g} mm")
        d.text(xd - 50, 150, "back aperture (conjugate to the stop)", anchor="end")
        # every gap is a focal length: DMD, L1, stop, L2, image, L3, back focal plane
        gaps = [(xdmd, x1), (x1, xs), (xs, x2), (x2, xi), (xi, x3), (x3, xd - h)]
        for (xa, xb), f in zip(gaps, [RELAY_FOCAL_MM] * 4 + [f_ill] * 2, strict=True):
            d.text((xa + xb) / 2, y0 - 45, f"{f:g} mm", anchor="middle")
        d.text(
            330,
            y0 + 110,
            "only the ±1 orders reach the objective: two spots in its back aperture",
        )
        d.text(
            330,
            y0 + 130,
            "each gap is one focal length (L3 to the back focal plane: through the dichroic)",
        )
    else:
        # the projector's own lens is taken off; one lens images the DMD into the finite
        # objective's DIN image plane, magnified f_design / f_ill (see projection_distances)
        f_design = objective.design_tube_lens_mm or FINITE_F_DESIGN_MM
        s_dmd, s_image = projection_distances(f_ill, f_design)
        xl, xi = 500, 760
        d.text(270, y0 - 75, "projection lens removed", anchor="middle")
        d.beams.append(([(290, y0), (xl, y0), (xd, y0), (xd, 170)], EXCITATION))
        d.lens(xl, y0, 120, True, f"f = {f_ill:g} mm")
        d.text((290 + xl) / 2, y0 - 12, f"{s_dmd:.0f} mm", anchor="middle")
        d.text((xl + xi) / 2, y0 - 12, f"{s_image:.0f} mm", anchor="middle")
        d.lines.append(([(xi, y0 - 45), (xi, y0 + 45)], "#9a9a9a", 2))
        d.text(xi, y0 - 68, f"image of the DMD (×{f_design / f_ill:.2f})", anchor="middle")
        d.text(
            (xi + xd) / 2 - 5, y0 - 12, f"{DIN_IMAGE_FROM_SHOULDER_MM:g} mm to the shoulder",
            anchor="middle",
        )  # fmt: skip
        d.text(
            560,
            y0 + 150,
            "the DMD is imaged into the objective's DIN image plane, and so onto the sample "
            "(incoherent)",
            anchor="middle",
        )
    # dichroic, objective, sample
    d.lines.append(([(xd - 40, y0 + 40), (xd + 40, y0 - 40)], "#7f7f7f", 6))
    d.text(xd + 50, y0 + 30, "dichroic")
    d.rect(xd - 40, 110, 80, 60, "#e8eef8")
    d.text(xd + 55, 140, f"{objective.name}", bold=True)
    corr = (
        "finite, 160 mm"
        if objective.design_tube_lens_mm is None
        else f"infinity, designed for {objective.design_tube_lens_mm:g} mm"
    )
    d.text(xd + 55, 160, corr)
    d.rect(xd - 70, 80, 140, 12, "#cfe8cf")
    d.text(xd + 80, 92, "sample")
    # detection path
    d.beams.append(([(xd + 6, 170), (xd + 6, 640)], EMISSION))
    d.rect(xd - 30, 380, 60, 14, "#b5e0b5")
    d.text(xd + 50, 392, "emission filter")
    if objective.design_tube_lens_mm is not None:
        f_tube = objective.tube_lens_focal_length_mm or objective.design_tube_lens_mm
        d.lens(xd, 460, 110, False, f"tube lens f = {f_tube:g} mm")
    else:
        d.text(xd + 50, 465, "160 mm tube length (no tube lens)")
    if acquisition.camera_relay_magnification != 1.0:
        d.lens(xd, 560, 80, False, f"{acquisition.camera_relay_magnification:g}x relay")
    d.rect(xd - 60, 640, 120, 50, "#dddddd")
    d.text(xd + 70, 670, camera.name, bold=True)
    # the figures, from scope.planning
    lines = [
        f"demagnification device → sample D = {plan.demagnification:.2f}",
        f"pattern period at the sample {plan.pattern_period_nm:.1f} nm "
        f"= {plan.pattern_fraction_of_cutoff:.2f} of the OTF cutoff "
        f"({'inside' if plan.pattern_inside_otf else 'OUTSIDE'} the support)",
        f"pixel at the sample {plan.pixel_size_nm:.1f} nm "
        f"(Nyquist ≤ {plan.nyquist_pixel_size_nm:.1f} nm)",
        f"resolution: widefield {plan.widefield_resolution_nm:.0f} nm → SIM "
        f"{plan.sim_resolution_nm:.0f} nm",
        f"leader mode: {plan.timing['leader'].raw_fps:.1f} raw fps, "
        f"{plan.timing['leader'].sim_fps:.2f} SIM images/s",
    ]
    for i, s in enumerate(lines):
        d.text(40, 632 + 22 * i, s, size=14)
    d.text(40, 610, "scope plan --preset hardware/presets/" + build + ".toml:", size=14, bold=True)
    d.text(40, 120, "excitation", colour=EXCITATION, bold=True)
    d.text(40, 140, "emission", colour=EMISSION, bold=True)
    return d


def _laser_arm(d: Layout, plan: Any, illuminator: Any, y0: float, grating: str) -> float:
    """Better build: laser, two steering mirrors and the beam expander (E1, pinhole, E2), drawn
    as an arm from below that the DMD folds into the relay (it reflects; the laser meets it at
    24° from its normal). Returns the DMD's x."""
    xa = 285  # the arm and the DMD's centre: one focal length's worth (105) before L1 at 390
    ye1, yp, ye2, ym = 482, 458, 372, 515  # E1, pinhole, E2, steering mirrors
    # the DMD, as the mirror it is
    d.lines.append(([(xa - 24, y0 + 24), (xa + 24, y0 - 24)], "#444444", 10))
    d.text(xa, y0 - 115, illuminator.name, anchor="middle", bold=True)
    d.text(xa, y0 - 95, grating, anchor="middle")
    d.text(xa - 36, y0 + 4, "laser 24° from the DMD's normal", anchor="end")
    d.text(xa - 36, y0 + 22, "(drawn folded)", anchor="end")
    # laser and collimator, two steering mirrors (a periscope: the small beam onto the axis)
    d.rect(205, 540, 40, 50, "#fde9c9")
    d.text(195, 560, "488 nm laser diode", anchor="end")
    d.text(195, 578, "+ C230TMD-A collimator", anchor="end")
    d.beams.append(([(225, 540), (225, ym), (xa, ym), (xa, ye1)], EXCITATION))
    for xm in (225, xa):
        d.lines.append(([(xm - 12, ym + 12), (xm + 12, ym - 12)], "#7f7f7f", 5))
    d.text(205, ym - 4, "2 steering mirrors", anchor="end")
    # the expander: converging onto the pinhole, spreading to E2, parallel to the DMD
    half = 18  # the expanded beam, drawn
    for sign in (-1, 1):
        d.beams.append(
            (
                [
                    (xa + sign * 4, ye1),
                    (xa, yp),
                    (xa + sign * half, ye2),
                    (xa + sign * half, y0 - sign * half),  # meets the DMD's face
                ],
                EXCITATION,
            )
        )
    f_e1, f_e2 = EXPANDER_FOCAL_MM
    d.lens(xa, ye1, 30, False, "")
    d.lens(xa, ye2, 60, False, "")
    for x_from, x_to in ((xa - 22, xa - 3), (xa + 3, xa + 22)):
        d.lines.append(([(x_from, yp), (x_to, yp)], "#111111", 4))
    d.text(xa - 36, ye2 + 5, f"E2 f = {f_e2:g} mm", anchor="end")
    d.text(xa - 36, yp + 4, f"pinhole {PINHOLE_UM:g} µm", anchor="end")
    d.text(xa - 36, ye1 + 5, f"E1 f = {f_e1:g} mm", anchor="end")
    # what it does: the camera's field on the DMD inside the bright middle of the Gaussian
    beam = expanded_beam_mm()
    field = dmd_field_mm(plan)
    corner = relative_intensity(beam, field[0] / 2, field[1] / 2)
    d.text(
        330,
        ye1 - 12,
        f"beam expander ×{expander_magnification():.1f} (E2 / E1), pinhole at the common focus",
        bold=True,
    )
    d.text(330, ye1 + 8, f"laser at the DMD {beam[0]:.1f} × {beam[1]:.1f} mm (1/e²)")
    d.text(
        330,
        ye1 + 28,
        f"camera's field on the DMD {field[0]:.2f} × {field[1]:.2f} mm: "
        f"corners at {100 * corner:.0f} % of the centre",
    )
    return xa


def to_svg(d: Layout) -> str:
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="40" y="50" font-size="26" font-weight="bold">{escape(d.title)}</text>',
    ]
    for pts, colour in d.beams:
        p = " ".join(f"{x:.0f},{y:.0f}" for x, y in pts)
        out.append(f'<polyline points="{p}" fill="none" stroke="{colour}" stroke-width="4"/>')
    for pts, colour, width in d.lines:
        p = " ".join(f"{x:.0f},{y:.0f}" for x, y in pts)
        out.append(f'<polyline points="{p}" fill="none" stroke="{colour}" stroke-width="{width}"/>')
    for x, y, w, h, fill, _ in d.rects:
        out.append(
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{fill}" '
            'stroke="#333" stroke-width="2"/>'
        )
    for x, y, size, vertical, label in d.lenses:
        rx, ry = (12, size / 2) if vertical else (size / 2, 12)
        out.append(
            f'<ellipse cx="{x}" cy="{y}" rx="{rx}" ry="{ry}" fill="#cfe3f5" '
            'stroke="#333" stroke-width="2"/>'
        )
        if not label:
            continue
        tx, ty = (x, y + size / 2 + 20) if vertical else (x + size / 2 + 12, y + 5)
        anchor = "middle" if vertical else "start"
        out.append(
            f'<text x="{tx}" y="{ty}" font-size="13" text-anchor="{anchor}">{escape(label)}</text>'
        )
    for x, y, s, size, bold, colour, anchor in d.texts:
        weight = ' font-weight="bold"' if bold else ""
        out.append(
            f'<text x="{x}" y="{y}" font-size="{size}"{weight} fill="{colour}" '
            f'text-anchor="{anchor}">{escape(s)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def to_png(d: Layout, path: Path) -> None:
    from PIL import Image, ImageDraw

    from scope.export.text import get_font

    def font(size: int, bold: bool = False) -> Any:
        return get_font(size, bold=bold)

    img = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(img)
    draw.text((40, 50), d.title, fill="black", font=font(26, True), anchor="ls")
    for pts, colour in d.beams:
        draw.line(pts, fill=colour, width=4)
    for pts, colour, width in d.lines:
        draw.line(pts, fill=colour, width=int(width))
    for x, y, w, h, fill, _ in d.rects:
        draw.rectangle((x, y, x + w, y + h), fill=fill, outline="#333333", width=2)
    for x, y, size, vertical, label in d.lenses:
        rx, ry = (12, size / 2) if vertical else (size / 2, 12)
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill="#cfe3f5", outline="#333333", width=2)
        if not label:
            continue
        if vertical:
            draw.text((x, y + size / 2 + 20), label, fill="black", font=font(13), anchor="ms")
        else:
            draw.text((x + size / 2 + 12, y + 5), label, fill="black", font=font(13), anchor="ls")
    anchors = {"start": "ls", "middle": "ms", "end": "rs"}
    for x, y, s, size, bold, colour, anchor in d.texts:
        draw.text((x, y), s, fill=colour, font=font(size, bold), anchor=anchors[anchor])
    img.save(path, optimize=True)


def main(out_dir: Path = OUT_DIR) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    for build in ("budget", "better"):
        d = layout(build)
        (out_dir / f"layout-{build}.svg").write_text(to_svg(d))
        to_png(d, out_dir / f"layout-{build}.png")
        sys.stdout.write(f"wrote {out_dir}/layout-{build}.svg/.png\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
