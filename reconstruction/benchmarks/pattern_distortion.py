"""A pattern bent by the illumination optics: one pattern for the field, or its phase map.

A filament-and-bead sample (as ``tests/sim_cases.py``: NA 1.2, 525 nm, 65 nm pixels, pattern
at 0.85 of the cutoff, modulation 0.8, phase errors of ±0.15 rad, 7.5 % background) on fields
of 512 x 512 and 1024 x 1024 camera pixels (or any ``HxW``, e.g. the budget build's full
1200x1920 sensor), the pattern distorted radially about the field's
centre by 0 to 2 % at the corners (``simulate_raw(pattern_distortion=...)``). Each set is
reconstructed with the product's pipeline (``SetReconstructor``: parameters estimated, MMSE
filter) with one pattern for the field (``pattern_map="off"``), as ``"auto"`` decides, and
with the map always (``"on"``); and with the simulation's own phase map (the best a map can
do). Figures: normalised RMS error against the ideal-SIM target (after a least-squares
gain/offset fit, 40-pixel margin left out); the largest drift of a tile's pattern from the
whole frame's (rad, at the tile's centre, wrapped); the largest misfit of the map at a tile
(rad); seconds for the first set (estimation, the map, the operator) and per further set
(cached operator), on this machine's cores.

Run: .venv/bin/python reconstruction/benchmarks/pattern_distortion.py [--sizes 512,1024,1200x1920]
[--distortions 0,0.3,1,2]
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
from scope.sim.reconstruct import SIMReconstructor
from scope.sim.samples import make_sample
from scope.sim.spectral import pixel_coordinates_um
from sim_cases import BACKGROUND, MARGIN, OFFSET, SETUP, ideal_target

CROP = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]


def run(raw: np.ndarray, target: np.ndarray, mode: str):
    rec = SetReconstructor(SETUP, pattern_map=mode)
    t0 = time.perf_counter()
    image = rec(raw)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec(raw)
    again = time.perf_counter() - t0
    error = metrics.normalized_rms_error(image[CROP], target[CROP])
    return error, rec, first, again


def true_maps(shape, truth: SIMParameters, glob: SIMParameters, distortion: float) -> np.ndarray:
    """The simulated pattern's phase minus the estimated global pattern's, every pixel."""
    dx = SETUP.pixel_size_um
    y, x = pixel_coordinates_um(shape, dx)
    cy, cx = (shape[0] - 1) / 2 * dx, (shape[1] - 1) / 2 * dx
    r2 = ((shape[0] * dx) ** 2 + (shape[1] * dx) ** 2) / 4
    s = 1 + distortion * ((y - cy) ** 2 + (x - cx) ** 2) / r2
    yd, xd = cy + (y - cy) * s, cx + (x - cx) * s
    maps = []
    for t, g in zip(truth.angles, glob.angles, strict=True):
        sign = -1.0 if abs((t.angle_deg - g.angle_deg + 180) % 360 - 180) > 90 else 1.0
        kx, ky = t.k_per_um
        gkx, gky = g.k_per_um
        true = sign * (2 * np.pi * (kx * xd + ky * yd) + np.mean(t.phases_rad))
        maps.append(true - (2 * np.pi * (gkx * x + gky * y) + np.mean(g.phases_rad)))
    return np.array(maps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--photons", type=float, default=400.0)
    ap.add_argument("--distortions", default="0,0.3,1,2", help="at the corners, percent")
    args = ap.parse_args()
    distortions = [float(d) / 100 for d in args.distortions.split(",")]
    rng = np.random.default_rng(0)
    nominal = SIMParameters.equidistant(
        [12.0, 72.0, 132.0],
        period_nm=1000.0 / (0.85 * SETUP.cutoff_per_um),
        modulation=0.8,
        phase_offset_rad=1.0,
    )
    truth = random_phase_errors(nominal, 0.15, rng)
    print(
        "| field | distortion | one pattern | auto | map (drift, misfit) | true map | "
        "s first set: one / map | s per set: one / map |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        ny, nx = (int(n) for n in size.split("x")) if "x" in size else (int(size),) * 2
        gt = make_sample((2 * ny, 2 * nx), "mixed", seed=0)
        target = ideal_target(gt, truth)
        for distortion in distortions:
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
            mapped = run(raw, target, "on")
            glob = one[1].params
            best = SIMReconstructor(
                SETUP,
                glob,
                shape=raw.shape[-2:],
                phase_maps=true_maps(raw.shape[-2:], truth, glob, distortion),
            )(raw)
            best_error = metrics.normalized_rms_error(best[CROP], target[CROP])
            pm = mapped[1].pattern_map
            auto_cell = f"{auto[0]:.3f}" + (" (map)" if auto[1].pattern_map is not None else "")
            print(
                f"| {size} | {100 * distortion:g} % | {one[0]:.3f} | {auto_cell} | "
                f"{mapped[0]:.3f} ({pm.max_drift_rad:.2f}, {pm.residual_rad.max():.2f} rad) | "
                f"{best_error:.3f} | {one[2]:.2f} / {mapped[2]:.2f} | "
                f"{one[3]:.3f} / {mapped[3]:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
