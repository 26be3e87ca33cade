"""``scope demo``: simulate a sample on the built-in microscope, reconstruct it, show it.

Writes into an output folder, and lists, the raw stack (an OME-TIFF that states its optics and
camera offset, its 3 x 3 frames along Z as the napari writer stores raw frames), the SIM image
with its ``.params.json`` and widefield image (written by ``scope reconstruct RAW -o
sim.ome.tif --widefield`` itself, so reconstructing the raw stack again gives the same image),
the ground truth, a side-by-side PNG and the spectrum. With ``--view`` (or when a display is present
and ``--no-view`` is not given) it opens napari with the scope plugin on the simulated
microscope.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: the simulated microscope: NA, emission wavelength (nm), camera pixel at the sample (nm) and
#: the camera offset (ADU, :func:`scope.sim.forward.simulate_raw`'s)
NA, WAVELENGTH_NM, PIXEL_SIZE_NM, OFFSET_ADU = 1.2, 525.0, 65.0, 100.0
#: the pattern: three angles (degrees), its period a fraction of the detection cutoff's
ANGLES_DEG, PERIOD_OF_CUTOFF = (12.0, 72.0, 132.0), 0.85
#: periods of the demo's pattern a field must hold across for its carrier to be found without
#: priors: twice the reconstruction's own floor (:data:`scope.sim.estimate.MIN_PERIODS_ACROSS`).
#: Measured on 6 seeds: 40 px (10 periods) fail, 48 px (12) pass at 400 photons; 64 px (16)
#: pass at 100 photons as well
PERIODS_ACROSS = 16
#: what the files the demo writes itself are (their OME Image Names; scope reconstruct names
#: the SIM and widefield images)
OME_NAMES = {
    "raw": "scope raw SIM frames (simulated)",
    "ground truth": "scope ground truth (simulated sample)",
}


def register(sub: Any) -> None:
    from scope.cli.parameter_flags import (
        BACKEND_CHOICES,
        BACKEND_HELP,
        HelpFormatter,
        default_is,
        plain,
        positive_number,
    )

    p = sub.add_parser(
        "demo",
        help="simulate, reconstruct and show a SIM image",
        description=plain(__doc__),
        formatter_class=HelpFormatter,
    )
    p.add_argument("-o", "--output", default="scope-demo", help=default_is("output folder"))
    p.add_argument(
        "--size",
        type=int,
        default=256,
        metavar="PX",
        help=default_is("camera frame size, pixels (at least 64: a field that holds the pattern)"),
    )
    p.add_argument(
        "--photons",
        type=positive_number,
        default=400.0,
        metavar="N",
        help=default_is("peak photons per camera pixel"),
    )
    p.add_argument(
        "--seed",
        type=int,
        default=1,
        metavar="N",
        help=default_is("random seed of the simulated sample and its noise"),
    )
    p.add_argument(
        "--backend",
        default=None,
        choices=BACKEND_CHOICES,
        help=default_is(BACKEND_HELP, "$SCOPE_BACKEND, else auto"),
    )
    view = p.add_mutually_exclusive_group()
    view.add_argument("--view", action="store_true", help="open napari afterwards")
    view.add_argument("--no-view", action="store_true", help="never open napari")
    p.set_defaults(func=run)


def smallest_size(setup: Any, period_nm: float) -> int:
    """The smallest (even) ``--size`` whose field the pattern of ``period_nm`` is found in
    without priors: :data:`PERIODS_ACROSS` of its periods, and never less than the
    reconstruction's own floor (:data:`~scope.sim.estimate.MIN_PERIODS_ACROSS` periods of the
    finest pattern the optics show, the one at the detection cutoff)."""
    from scope.sim.estimate import MIN_PERIODS_ACROSS

    reconstruction_floor_nm = MIN_PERIODS_ACROSS * 1000.0 / setup.cutoff_per_um
    field_nm = max(PERIODS_ACROSS * period_nm, reconstruction_floor_nm)
    pixels = math.ceil(field_nm / setup.pixel_size_nm)
    return pixels + pixels % 2


def side_by_side_png(
    path: Path,
    widefield_2x: Any,
    sim: Any,
    *,
    pixel_size_nm: float,
    widefield_note: str | None = None,
) -> None:
    """Widefield | SIM, each scaled to its own 0.5-99.8 % range, labelled, with a 1 µm bar;
    ``widefield_note`` (what the widefield image is) in smaller type under its label."""
    import numpy as np
    from PIL import Image, ImageDraw

    from scope.export.text import get_font, printable

    def to8(a: Any) -> Any:
        lo, hi = np.percentile(a, [0.5, 99.8])
        return (np.clip((a - lo) / max(hi - lo, 1e-12), 0, 1) * 255).astype(np.uint8)

    gap = 8
    a, b = to8(widefield_2x), to8(sim)
    h, w = a.shape
    canvas = np.full((h, 2 * w + gap), 255, np.uint8)
    canvas[:, :w] = a
    canvas[:, w + gap :] = b
    img = Image.fromarray(canvas).convert("RGB")
    draw = ImageDraw.Draw(img)
    font = get_font(max(14, h // 20))
    bar_label = printable("1 µm", font)  # "1 um" where the font has no µ
    for x0, label in ((0, "widefield"), (w + gap, "SIM (scope)")):
        draw.text((x0 + 10, 8), label, fill=(255, 255, 0), font=font)
        bar = 1000.0 / pixel_size_nm  # 1 µm in pixels
        y = h - 16
        draw.rectangle([x0 + w - 12 - bar, y, x0 + w - 12, y + 5], fill=(255, 255, 255))
        label_x = x0 + w - 12 - max(bar, draw.textlength(bar_label, font=font))  # in the panel
        draw.text((label_x, y - 8 - font.size), bar_label, fill=(255, 255, 255), font=font)
    if widefield_note:  # smaller, outlined to read on the image, never wider than its panel
        size = max(10, round(font.size * 0.7))
        small = get_font(size)
        while size > 8 and draw.textlength(widefield_note, font=small) > w - 24:
            size -= 1
            small = get_font(size)
        draw.text(
            (10, 14 + font.size),
            widefield_note,
            fill=(255, 255, 0),
            font=small,
            stroke_width=2,
            stroke_fill=(0, 0, 0),
        )
    img.save(path)


def run(args: argparse.Namespace) -> int:
    import tifffile

    from scope.cli import build_parser
    from scope.errors import ConfigurationError, ReconstructionError
    from scope.io.writers import beside, prepare_output_folder, write_ome_tiff
    from scope.optics import OpticalSetup
    from scope.sim.diagnostics import spectrum_png
    from scope.sim.forward import random_phase_errors, simulate_raw
    from scope.sim.metrics import upsample2x
    from scope.sim.params import SIMParameters
    from scope.sim.samples import make_sample

    setup = OpticalSetup(na=NA, wavelength_nm=WAVELENGTH_NM, pixel_size_nm=PIXEL_SIZE_NM)
    period = 1000.0 / (PERIOD_OF_CUTOFF * setup.cutoff_per_um)
    n = int(args.size) // 2 * 2
    need = smallest_size(setup, period)
    if n < need:
        raise ConfigurationError(
            f"--size {args.size} is too small: the demo's field must hold {PERIODS_ACROSS} "
            f"periods of its {period:.0f} nm pattern to find it; use --size {need} or more"
        )
    shown = Path(args.output)  # as the user named it, for the command printed
    out = prepare_output_folder(shown.resolve() / "raw.ome.tif")
    truth = random_phase_errors(
        SIMParameters.equidistant(list(ANGLES_DEG), period_nm=period, modulation=0.8),
        0.1,
        args.seed,
    )
    print(
        f"simulating a {n}x{n} raw SIM set (NA {NA:g}, {WAVELENGTH_NM:g} nm, "
        f"{PIXEL_SIZE_NM:g} nm pixels, camera offset {OFFSET_ADU:g} ADU, "
        f"{args.photons:g} photons peak) ..."
    )
    sample = make_sample((2 * n, 2 * n), "mixed", seed=args.seed)
    raw = simulate_raw(
        sample, truth, setup, photons_peak=args.photons, offset_adu=OFFSET_ADU, rng=args.seed
    )
    files = {
        "raw": out / "raw.ome.tif",
        "sim": out / "sim.ome.tif",
        "parameters": beside(out / "sim.ome.tif", ".params.json"),
        "widefield": beside(out / "sim.ome.tif", ".widefield.tif"),  # scope reconstruct's name
        "ground truth": out / "ground_truth.ome.tif",
    }
    # the raw frames as the napari writer stores a raw layer: the 3 x 3 frames along Z
    # (angle-major, phase fastest), the optics in the OME Description where scope reconstruct
    # reads them (na, wavelength_nm, pixel_size_nm); the camera offset is recorded there too
    # (scope reconstruct reads no offset from a file: it takes each set's own, as below)
    write_ome_tiff(
        files["raw"],
        raw,
        pixel_size_nm=PIXEL_SIZE_NM,
        axes="ZYX",
        name=OME_NAMES["raw"],
        metadata={
            "scope_kind": "raw",
            "na": NA,
            "wavelength_nm": WAVELENGTH_NM,
            "pixel_size_nm": PIXEL_SIZE_NM,
            "offset_adu": OFFSET_ADU,
            "n_angles": len(ANGLES_DEG),
            "n_phases": truth.n_phases,
            "optics": setup.model_dump(),
            "simulation": {
                "software": "scope demo",
                "photons_peak": args.photons,
                "seed": args.seed,
                "sample": "mixed",
                "pattern": truth.to_dict(),
            },
        },
    )
    write_ome_tiff(
        files["ground truth"],
        sample,
        pixel_size_nm=PIXEL_SIZE_NM / 2,
        axes="YX",
        name=OME_NAMES["ground truth"],
        metadata={"image": "ground truth: the simulated sample", "optics": setup.model_dump()},
    )
    # the SIM and widefield images: scope reconstruct itself, on the file just written (no
    # optics flags: the file states them), so that running it again gives the same image
    command = ["reconstruct", str(shown / "raw.ome.tif"), "-o", str(shown / "sim.ome.tif")]
    command += ["--widefield"] + (["--backend", args.backend] if args.backend else [])
    print("reconstructing: scope " + " ".join(command))
    rec_args = build_parser().parse_args([*command[:2], "-o", str(files["sim"]), *command[4:]])
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):  # the demo lists every file below
            rec_args.func(rec_args)
    except ReconstructionError as err:
        reason = str(err).split(";")[0].split(". ")[0]
        raise ReconstructionError(
            f"the simulated pattern is not found at --photons {args.photons:g} on a {n}x{n} "
            f"field ({reason}): raise --photons or --size"
        ) from None
    for line in said.getvalue().splitlines():
        if line.startswith("note:"):
            print(line)

    sim = tifffile.imread(files["sim"])
    widefield = tifffile.imread(files["widefield"])
    params = SIMParameters.from_dict(json.loads(files["parameters"].read_text()))
    png = out / "widefield_vs_sim.png"
    side_by_side_png(
        png,
        upsample2x(widefield),
        sim,
        pixel_size_nm=PIXEL_SIZE_NM / 2,
        widefield_note=f"mean of {len(raw)} frames, not deconvolved",
    )
    spectrum = out / "spectrum.png"
    spectrum_png(spectrum, raw, setup, params)
    print("\nwrote:")
    for name, path in files.items():
        print(f"  {name:13s} {path}")
    print(f"  {'side by side':13s} {png}  <- open this one")
    print(f"  {'spectrum':13s} {spectrum}")
    want_view = args.view or (
        not args.no_view and os.environ.get("DISPLAY") and not os.environ.get("CI")
    )
    if want_view:
        try:
            from scope.napari.launch import open_viewer, screen_missing
        except ImportError as err:
            print(f"(napari view not available: {err})")
        else:
            why = screen_missing()
            if why is None:
                open_viewer(files["raw"], live=True)
            else:
                print(f"(napari view not available: {why})")
    return 0
