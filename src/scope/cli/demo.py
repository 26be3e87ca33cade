"""``scope demo``: simulate a sample on the built-in microscope, reconstruct it, show it.

Writes the raw stack, the widefield and SIM images (OME-TIFF) and a side-by-side PNG into an
output folder and says where they are. With ``--view`` (or when a display is present and
``--no-view`` is not given) it opens napari with the scope plugin on the simulated microscope.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="simulate, reconstruct and show a SIM image", description=__doc__
    )
    p.add_argument("-o", "--output", default="scope-demo", help="output folder (scope-demo)")
    p.add_argument("--size", type=int, default=256, help="camera frame size in pixels (256)")
    p.add_argument("--photons", type=float, default=400.0, help="peak photons per pixel (400)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--backend", default=None, choices=["auto", "numpy", "cupy"])
    view = p.add_mutually_exclusive_group()
    view.add_argument("--view", action="store_true", help="open napari afterwards")
    view.add_argument("--no-view", action="store_true", help="never open napari")
    p.set_defaults(func=run)


def side_by_side_png(path: Path, widefield_2x: Any, sim: Any, *, pixel_size_nm: float) -> None:
    """Widefield | SIM, each scaled to its own 0.5-99.8 % range, labelled, with a 1 µm bar."""
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
    img.save(path)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from scope.io.writers import write_ome_tiff
    from scope.optics import OpticalSetup
    from scope.sim.diagnostics import carrier_report, spectrum_png
    from scope.sim.estimate import estimate_parameters
    from scope.sim.forward import random_phase_errors, simulate_raw
    from scope.sim.metrics import upsample2x
    from scope.sim.params import SIMParameters
    from scope.sim.reconstruct import ReconstructionSettings, SIMReconstructor
    from scope.sim.samples import make_sample

    out = Path(args.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    n = int(args.size) // 2 * 2
    setup = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
    period = 1000.0 / (0.85 * setup.cutoff_per_um)
    truth = random_phase_errors(
        SIMParameters.equidistant([12.0, 72.0, 132.0], period_nm=period, modulation=0.8),
        0.1,
        args.seed,
    )
    print(
        f"simulating a {n}x{n} raw SIM set (NA 1.2, 525 nm, 65 nm pixels, "
        f"{args.photons:g} photons peak) ..."
    )
    sample = make_sample((2 * n, 2 * n), "mixed", seed=args.seed)
    raw = simulate_raw(sample, truth, setup, photons_peak=args.photons, rng=args.seed)
    params = estimate_parameters(raw, setup, backend=args.backend)
    print("estimated pattern:\n" + carrier_report(params))
    rec = SIMReconstructor(
        setup,
        params,
        shape=(n, n),
        settings=ReconstructionSettings(offset_adu=100),
        backend=args.backend,
    )
    sim = rec.backend.to_numpy(rec(raw))
    widefield = rec.backend.to_numpy(rec.widefield(raw))
    meta = {"sim_parameters": params.to_dict(), "optics": setup.model_dump()}
    files = {
        "raw": write_ome_tiff(out / "raw.ome.tif", raw, pixel_size_nm=65, axes="CYX"),
        "widefield": write_ome_tiff(
            out / "widefield.ome.tif", widefield, pixel_size_nm=65, axes="YX"
        ),
        "sim": write_ome_tiff(
            out / "sim.ome.tif", sim, pixel_size_nm=32.5, axes="YX", metadata=meta
        ),
        "ground truth": write_ome_tiff(
            out / "ground_truth.ome.tif", sample, pixel_size_nm=32.5, axes="YX"
        ),
    }
    png = out / "widefield_vs_sim.png"
    side_by_side_png(png, upsample2x(widefield), sim, pixel_size_nm=32.5)
    spectrum_png(out / "spectrum.png", raw, setup, params)
    (out / "sim.params.json").write_text(params.to_json() + "\n")
    print("\nwrote:")
    for name, path in files.items():
        print(f"  {name:13s} {path}")
    print(f"  {'side by side':13s} {png}  <- open this one")
    print(f"  {'spectrum':13s} {out / 'spectrum.png'}")
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
    del np
    return 0
