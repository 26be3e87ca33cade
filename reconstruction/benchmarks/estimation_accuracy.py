"""How close the estimated pattern parameters come to the truth, and to the shot-noise bound.

The simulated acceptance case (``tests/sim_cases.py``: NA 1.2, 525 nm, 65 nm pixels, 256x256,
3 angles x 3 phases, pattern at 0.85 of the cutoff) for each seed, with several noise draws of
the same sample and pattern. For each variant of the estimator it prints

- the frames' phase scatter: each frame's phase error at the field's centre less its angle's
  mean error, as the standard deviation of one frame's phase (the n/(n-1) of taking the mean
  out put back);
- the RMS of each angle's mean phase error at the field's centre;
- the RMS angle (degrees) and period (%) errors;

and, for reference, the Cramér-Rao bound of one frame's phase when everything else (the sample,
the carrier, the other frames) is known: ``1 / sqrt(sum (dI/dphi)^2 / var)`` over the pixels,
with the variance of Poisson noise plus the read noise. No estimator that must learn the sample
from the same frames reaches it; it tells how much is left.

Run: .venv/bin/python reconstruction/benchmarks/estimation_accuracy.py [--draws 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from scope.sim.estimate import EstimationSettings, estimate_parameters
from scope.sim.forward import SIMForwardModel
from sim_cases import (
    BACKGROUND,
    OFFSET,
    READ_NOISE_E,
    SETUP,
    angle_error_deg,
    make_case,
    phase_errors_at_centre,
    redraw_noise,
)

VARIANTS = {
    "default": EstimationSettings(),
    "unweighted fit (before)": EstimationSettings(weighted_phase_fit=False),
    "unweighted, 0 order not denoised": EstimationSettings(
        weighted_phase_fit=False, denoise_zero_order=False
    ),
}


def phase_bound(case, photons: float) -> float:
    """Cramér-Rao bound of one frame's phase (RMS over the frames), everything else known."""
    model = SIMForwardModel(case.ground_truth, SETUP)
    frames = model.frames(case.truth)
    scale = photons / np.clip(frames, 0, None).max()  # as simulate_raw scales to the peak
    widefield = model.widefield()
    bounds = []
    for angle in case.truth.angles:
        for phase in angle.phases_rad:
            # d/dphi of 1 + m cos(2 pi k.r + phi) is the same pattern a quarter period on
            expected = model.frame(angle, phase) * scale + BACKGROUND * photons
            derivative = (model.frame(angle, phase + np.pi / 2) - widefield) * scale
            fisher = np.sum(derivative**2 / (expected + READ_NOISE_E**2))
            bounds.append(1 / np.sqrt(fisher))
    return float(np.sqrt(np.mean(np.square(bounds))))


def measure(photons: float, seeds: range, draws: int) -> None:
    rows: dict[str, list[list[float]]] = {name: [] for name in VARIANTS}
    bounds = []
    for seed in seeds:
        case = make_case(seed, photons=photons)
        bounds.append(phase_bound(case, photons))
        for draw in range(draws):
            raw = redraw_noise(case, photons, rng=1000 + draw) - OFFSET
            for name, settings in VARIANTS.items():
                est = estimate_parameters(raw, SETUP, settings=settings)
                for e, t in zip(est.angles, case.truth.angles):
                    err = phase_errors_at_centre(e, t, raw.shape[-2:])
                    n = len(err)
                    rows[name].append(
                        [
                            float(np.mean((err - err.mean()) ** 2) * n / (n - 1)),
                            float(err.mean() ** 2),
                            angle_error_deg(e.angle_deg, t.angle_deg) ** 2,
                            (100 * (e.period_nm / t.period_nm - 1)) ** 2,
                        ]
                    )
    bound = np.sqrt(np.mean(np.square(bounds)))
    print(
        f"\n{photons:g} photons peak, seeds {seeds.start}-{seeds.stop - 1}, {draws} noise draws "
        f"each; phase bound with everything else known: {bound:.4f} rad"
    )
    print("| estimator | frame phase scatter, rad | angle mean phase, rad | angle, ° | period, % |")
    print("|---|---|---|---|---|")
    for name, values in rows.items():
        rms = np.sqrt(np.mean(values, axis=0))
        print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in rms) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photons", type=float, nargs="+", default=[60.0, 400.0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--draws", type=int, default=6)
    args = ap.parse_args()
    for photons in args.photons:
        measure(photons, range(args.seeds), args.draws)


if __name__ == "__main__":
    main()
