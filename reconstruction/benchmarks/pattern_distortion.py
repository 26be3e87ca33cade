"""A pattern bent by the illumination optics: one pattern for the field, or one per tile.

A filament-and-bead sample (as ``tests/sim_cases.py``: NA 1.2, 525 nm, 65 nm pixels, pattern
at 0.85 of the cutoff, modulation 0.8, phase errors of ±0.15 rad, 7.5 % background) on fields
of 512 x 512 and 1024 x 1024 camera pixels, the pattern distorted radially about the field's
centre by 0 to 2 % at the corners (``simulate_raw(pattern_distortion=...)``). Each set is
reconstructed with the product's pipeline (``reconstruct_stack``: parameters estimated,
MMSE filter) in one piece (``tiles="off"``), as ``"auto"`` decides, and in tiles of 256 and
128 pixels (``"on"``). Figures: normalised RMS error against the ideal-SIM target (after a
least-squares gain/offset fit, 40-pixel margin left out); the largest drift of a tile's pattern
from the whole frame's (rad, at the tile's centre); seconds for the first set (estimation,
tile plan, operator) and per further set (cached operators), on this machine's cores.

Run: .venv/bin/python reconstruction/benchmarks/pattern_distortion.py [--sizes 512,1024]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from scope.sim import metrics
from scope.sim.forward import random_phase_errors, simulate_raw
from scope.sim.params import SIMParameters
from scope.sim.pipeline import SetReconstructor
from scope.sim.samples import make_sample
from sim_cases import BACKGROUND, MARGIN, OFFSET, SETUP, ideal_target

DISTORTIONS = (0.0, 0.003, 0.01, 0.02)


def run(raw: np.ndarray, target: np.ndarray, tiles: str, tile_px: int = 256):
    rec = SetReconstructor(SETUP, tiles=tiles, tile_px=tile_px)
    t0 = time.perf_counter()
    image = rec(raw)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec(raw)
    again = time.perf_counter() - t0
    crop = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]
    error = metrics.normalized_rms_error(image[crop], target[crop])
    n_tiles = len(rec.tiled.grid) if rec.tiled is not None else 1
    drift = rec.tiled.max_drift_rad if rec.tiled is not None else float("nan")
    return error, n_tiles, drift, first, again


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--photons", type=float, default=400.0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    nominal = SIMParameters.equidistant(
        [12.0, 72.0, 132.0],
        period_nm=1000.0 / (0.85 * SETUP.cutoff_per_um),
        modulation=0.8,
        phase_offset_rad=1.0,
    )
    truth = random_phase_errors(nominal, 0.15, rng)
    print(
        "| field | distortion | one piece | auto | tiles 256 (drift) | tiles 128 | "
        "s first set: one piece / auto | s per set: one piece / auto |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        gt = make_sample((2 * size, 2 * size), "mixed", seed=0)
        target = ideal_target(gt, truth)
        for distortion in DISTORTIONS:
            raw = simulate_raw(
                gt,
                truth,
                SETUP,
                photons_peak=args.photons,
                background_photons=BACKGROUND * args.photons,
                offset_adu=OFFSET,
                rng=1,
                pattern_distortion=distortion,
            )
            one = run(raw, target, "off")
            auto = run(raw, target, "auto")
            t256 = run(raw, target, "on", 256)
            t128 = run(raw, target, "on", 128)
            auto_cell = f"{auto[0]:.3f} ({auto[1]} tiles)" if auto[1] > 1 else f"{auto[0]:.3f}"
            print(
                f"| {size} | {100 * distortion:g} % | {one[0]:.3f} | {auto_cell} | "
                f"{t256[0]:.3f} ({t256[2]:.2f} rad) | {t128[0]:.3f} | "
                f"{one[3]:.2f} / {auto[3]:.2f} | {one[4]:.3f} / {auto[4]:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
