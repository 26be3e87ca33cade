"""A bleaching time series: the MMSE filter kept from the first set, following the light, or
measured on every set.

The simulated acceptance case (``tests/sim_cases.py``, 256 x 256, parameters known) of one
sample and pattern at 400, 200, 100, 60 and 30 photons peak (background dimmed alike): a series
bleaching to 7.5 %. One ``SIMReconstructor`` reconstructs the series in order with
``follow_brightness`` off (the first set's noise model for every set) and on (the regulariser
rescaled to each set's noise-to-signal ratio, read from its zero order); a new reconstructor per
set measures each set's own noise model (the reference, at the cost of one more 9-frame FFT and
a fit per set). Each figure: normalised RMS error against the ideal-SIM target (after a
least-squares gain/offset fit), 40-pixel margin left out; in brackets the regulariser's factor.

Run: .venv/bin/python reconstruction/benchmarks/bleaching_series.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from scope.sim import metrics
from scope.sim.reconstruct import ReconstructionSettings, SIMReconstructor
from sim_cases import MARGIN, OFFSET, SETUP, ideal_target, make_case

PHOTONS = (400, 200, 100, 60, 30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    crop = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]
    print("| seed | filter | " + " | ".join(f"{p} photons" for p in PHOTONS) + " |")
    print("|---|---|" + "---|" * len(PHOTONS))
    for seed in range(args.seeds):
        series = [make_case(seed, photons=p) for p in PHOTONS]  # one sample, one pattern
        target = ideal_target(series[0].ground_truth, series[0].truth)
        shape = series[0].raw.shape[-2:]

        def error(image: np.ndarray, target: np.ndarray = target) -> float:
            return metrics.normalized_rms_error(image[crop], target[crop])

        for name, follow in (("first set's, kept", False), ("following the light", True)):
            settings = ReconstructionSettings(offset_adu=OFFSET, follow_brightness=follow)
            rec = SIMReconstructor(SETUP, series[0].truth, shape=shape, settings=settings)
            cells = []
            for case in series:
                e = error(rec(case.raw))
                cells.append(f"{e:.3f} (x{rec.nsr_scale:.2f})" if follow else f"{e:.3f}")
            print(f"| {seed} | {name} | " + " | ".join(cells) + " |")
        own = []
        for case in series:
            settings = ReconstructionSettings(offset_adu=OFFSET)
            rec = SIMReconstructor(SETUP, case.truth, shape=shape, settings=settings)
            own.append(f"{error(rec(case.raw)):.3f}")
        print(f"| {seed} | measured on each set | " + " | ".join(own) + " |")


if __name__ == "__main__":
    main()
