"""A set with a dropped or blank frame: reconstructed as it is, and without the frame.

The simulated acceptance case (``tests/sim_cases.py``, 256 x 256), five seeds at 400 and 60
photons peak, reconstructed with the true parameters by one operator (its filter measured on
the complete set, as a time series' later set is); then the same set with frames set to the
camera offset (no light): reconstructed as it is, and with them left out
(``SIMReconstructor(..., missing_frames=)``: an angle keeping two frames takes the complete
angles' zero order off them and solves its +-1 orders from what is left; the filter weighs its
noisier orders for that set). Columns: NRMSE against the ideal-SIM target. Also the time of a
set without one frame against a complete set's, at 512 x 512.

Run: .venv/bin/python reconstruction/benchmarks/blank_frames.py [--seeds 5] [--size 512]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from scope.sim import metrics
from scope.sim.reconstruct import ReconstructionSettings, SIMReconstructor
from sim_cases import MARGIN, OFFSET, SETUP, ideal_target, make_case

#: frames left out: one of the first, second or last angle; one of each of two angles
MISSING = ((0,), (4,), (8,), (1, 5))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--size", type=int, default=512, help="side of the timed set")
    args = ap.parse_args()
    crop = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]
    head = " | ".join(f"frame{'s' if len(m) > 1 else ''} {', '.join(map(str, m))}" for m in MISSING)
    print(f"| photons | seed | complete | {head} |")
    print("|---|---|---|" + "---|" * len(MISSING))
    settings = ReconstructionSettings(offset_adu=OFFSET)
    for photons in (400, 60):
        for seed in range(args.seeds):
            case = make_case(seed, photons=photons)
            target = ideal_target(case.ground_truth, case.truth)
            rec = SIMReconstructor(SETUP, case.truth, shape=(256, 256), settings=settings)

            def error(image: np.ndarray, target: np.ndarray = target) -> float:
                return metrics.normalized_rms_error(image[crop], target[crop])

            cells = [f"{error(rec(case.raw)):.3f}"]
            for missing in MISSING:
                raw = case.raw.copy()
                raw[list(missing)] = OFFSET
                cells.append(
                    f"{error(rec(raw)):.2f} -> {error(rec(raw, missing_frames=missing)):.3f}"
                )
            print(f"| {photons} | {seed} | " + " | ".join(cells) + " |")
    n = args.size
    big = make_case(0, size=n)
    rec = SIMReconstructor(SETUP, big.truth, shape=(n, n), settings=settings)
    rec(big.raw)
    blank = big.raw.copy()
    blank[4] = OFFSET
    times: dict[str, list[float]] = {"complete": [], "one frame left out": []}
    for _ in range(10):
        for name, call in (
            ("complete", lambda: rec(big.raw)),
            ("one frame left out", lambda: rec(blank, missing_frames=(4,))),
        ):
            t0 = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - t0)
    print(
        f"\n9 x {n} x {n}: "
        + ", ".join(f"{k} {1000 * np.median(v):.1f} ms" for k, v in times.items())
        + " (medians of 10, in turn)"
    )


if __name__ == "__main__":
    main()
