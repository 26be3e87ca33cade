"""How close the estimated pattern parameters come to the truth, and to the shot-noise bound.

The simulated acceptance case (``tests/sim_cases.py``: NA 1.2, 525 nm, 65 nm pixels, 256x256,
3 angles x 3 phases, pattern at 0.85 of the cutoff, modulation 0.8; ``--size`` and
``--modulation`` change the last two) for each seed, with several noise draws of
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

``--bsim`` adds the two real B-SIM sets (``tests/data``): each frame's phase against the phase
fitted to the set's ``patterns.tif`` (B-SIM's own patterns, not a ground truth), less its
angle's mean difference (a convention of where the patterns' pixels sit shifts the mean). And
which parameters the data favour: for ours and for B-SIM's (their wave vectors and phases, our
modulations), the set is reconstructed (Wiener 0.02, no other filter), the image put through
the forward model with those parameters, and each frame's residual against the data after a
least-squares gain and offset is taken, as a mean square per pixel (16-pixel margin left out).
Both go through the same steps, so the lower residual marks the parameters that explain the
frames better (a joint fit of sample and pattern, as a likelihood would).

Run: .venv/bin/python reconstruction/benchmarks/estimation_accuracy.py [--draws 8] [--bsim]
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import tifffile
from scipy.optimize import least_squares

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from scope.optics import OpticalSetup
from scope.sim.estimate import EstimationSettings, estimate_parameters
from scope.sim.forward import SIMForwardModel
from scope.sim.params import AngleParameters, SIMParameters
from scope.sim.reconstruct import ReconstructionSettings, SIMReconstructor
from sim_cases import (
    BACKGROUND,
    OFFSET,
    READ_NOISE_E,
    SETUP,
    angle_error_deg,
    frame_phase_variance,
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


def measure(
    photons: float, seeds: range, draws: int, size: int = 256, modulation: float = 0.8
) -> None:
    rows: dict[str, list[list[float]]] = {name: [] for name in VARIANTS}
    bounds = []
    for seed in seeds:
        case = make_case(seed, photons=photons, size=size, modulation=modulation)
        bounds.append(phase_bound(case, photons))
        for draw in range(draws):
            raw = redraw_noise(case, photons, rng=1000 + draw) - OFFSET
            for name, settings in VARIANTS.items():
                est = estimate_parameters(raw, SETUP, settings=settings)
                for e, t in zip(est.angles, case.truth.angles):
                    err = phase_errors_at_centre(e, t, raw.shape[-2:])
                    rows[name].append(
                        [
                            frame_phase_variance(err),
                            float(err.mean() ** 2),
                            angle_error_deg(e.angle_deg, t.angle_deg) ** 2,
                            (100 * (e.period_nm / t.period_nm - 1)) ** 2,
                        ]
                    )
    bound = np.sqrt(np.mean(np.square(bounds)))
    print(
        f"\n{photons:g} photons peak, {size}x{size} pixels, modulation {modulation:g}, seeds "
        f"{seeds.start}-{seeds.stop - 1}, {draws} noise draws each; phase bound with everything "
        f"else known: {bound:.4f} rad"
    )
    print("| estimator | frame phase scatter, rad | angle mean phase, rad | angle, ° | period, % |")
    print("|---|---|---|---|---|")
    for name, values in rows.items():
        rms = np.sqrt(np.mean(values, axis=0))
        print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in rms) + " |")


DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
#: the B-SIM sets' camera offset (ADU, from the data README)
B_SIM_OFFSET = 100.0
#: B-SIM sets: NA, camera pixel (nm), emission (nm), whether the carrier is given as a prior
#: (the line pairs' sparse sample leaves one carrier too weak to find)
BSIM = {
    "bsim-hela-mitochondria": (1.3, 65, 660, False),
    "bsim-mitochondria-cristae": (1.3, 65, 569, False),
    "bsim-simulated-line-pairs": (1.49, 60, 500, True),
}


def pattern_fit(patterns: np.ndarray, pixel_size_um: float) -> AngleParameters:
    """One angle's wave vector and phases fitted to its B-SIM patterns (exact sinusoids on the
    2x grid; pixel j of that grid sits at camera pixel (j - 0.5) / 2): the strongest Fourier
    peak, then least squares over the wave vector and each frame's offset, cosine and sine."""
    ny, nx = patterns.shape[-2:]
    fine_um = pixel_size_um / 2
    power = np.abs(np.fft.fft2(patterns[0] - patterns[0].mean()))
    iy, ix = np.unravel_index(np.argmax(power), power.shape)
    k0 = [np.fft.fftfreq(nx, fine_um)[ix], np.fft.fftfreq(ny, fine_um)[iy]]
    yy, xx = np.mgrid[0:ny, 0:nx]
    y_um, x_um = (yy - 0.5) * fine_um, (xx - 0.5) * fine_um

    def residuals(p: np.ndarray) -> np.ndarray:
        arg = 2 * np.pi * (p[0] * x_um + p[1] * y_um)
        c, s_ = np.cos(arg), np.sin(arg)
        return np.concatenate(
            [
                (p[2 + 3 * n] + p[3 + 3 * n] * c + p[4 + 3 * n] * s_ - f).ravel()
                for n, f in enumerate(patterns)
            ]
        )

    start = np.concatenate([k0] + [[f.mean(), f.std(), 0.0] for f in patterns])
    fit = least_squares(residuals, start).x
    phases = tuple(math.atan2(-fit[4 + 3 * n], fit[3 + 3 * n]) for n in range(len(patterns)))
    return AngleParameters.from_k(float(fit[0]), float(fit[1]), phases_rad=phases)


def bsim_sets():
    """Each B-SIM set: name, raw frames, optics, its patterns' fit per angle, and those as the
    carrier prior where the set needs one."""
    for name, (na, pixel_nm, wavelength, as_prior) in BSIM.items():
        raw = tifffile.imread(DATA / name / "raw_images.tif")
        patterns = tifffile.imread(DATA / name / "patterns.tif")
        setup = OpticalSetup(na=na, wavelength_nm=wavelength, pixel_size_nm=pixel_nm)
        refs = [pattern_fit(patterns[i : i + 3], setup.pixel_size_um) for i in (0, 3, 6)]
        yield name, raw, setup, refs, SIMParameters(tuple(refs)) if as_prior else None


def bsim_phase_steps() -> None:
    """Each frame's phase against the B-SIM patterns' (for the two real sets their own fit, not
    a ground truth; for the simulated line pairs the truth), less its angle's mean difference:
    the phase steps' scatter on real data, per estimator."""
    print("\nB-SIM data: frames' phase scatter against the patterns (rad)")
    print("| set | " + " | ".join(VARIANTS) + " |")
    print("|---|" + "---|" * len(VARIANTS))
    for name, raw, setup, refs, prior in bsim_sets():
        cells = []
        for settings in VARIANTS.values():
            squares = []
            est = estimate_parameters(raw, setup, settings=settings, prior=prior)
            for e in est.angles:
                ref = min(refs, key=lambda r: angle_error_deg(e.angle_deg, r.angle_deg))
                err = phase_errors_at_centre(e, ref, raw.shape[-2:], setup.pixel_size_um)
                squares.append(frame_phase_variance(err))
            cells.append(f"{math.sqrt(np.mean(squares)):.4f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def data_residual(raw: np.ndarray, setup: OpticalSetup, params: SIMParameters) -> float:
    """Mean square residual per pixel of the frames against the forward model of the image
    reconstructed with ``params`` (see the module notes)."""
    settings = ReconstructionSettings(offset_adu=B_SIM_OFFSET, wiener=0.02)
    rec = SIMReconstructor(setup, params, shape=raw.shape[-2:], settings=settings)
    sample = np.clip(np.asarray(rec(raw), np.float64), 0, None)
    inside = np.s_[16:-16, 16:-16]
    total = 0.0
    for model, frame in zip(SIMForwardModel(sample, setup).frames(params), raw, strict=True):
        f = model[inside].ravel()
        d = frame[inside].astype(np.float64).ravel() - B_SIM_OFFSET
        design = np.stack([f, np.ones_like(f)], 1)
        coef, *_ = np.linalg.lstsq(design, d, rcond=None)
        total += float(np.sum((d - design @ coef) ** 2))
    return total / (len(raw) * f.size)


def bsim_data_residuals() -> None:
    """Ours against B-SIM's parameters, by how well each explains the frames."""
    print("\nB-SIM data: which parameters explain the frames better (mean square residual, ADU^2)")
    print("| set | ours | B-SIM's patterns | ours lower by |")
    print("|---|---|---|---|")
    for name, raw, setup, refs, prior in bsim_sets():
        ours = estimate_parameters(raw - B_SIM_OFFSET, setup, prior=prior)
        theirs = SIMParameters(
            tuple(
                replace(
                    min(refs, key=lambda r, e=e: angle_error_deg(e.angle_deg, r.angle_deg)),
                    modulation=e.modulation,
                )
                for e in ours.angles
            )
        )
        a, b = data_residual(raw, setup, ours), data_residual(raw, setup, theirs)
        print(f"| {name} | {a:.1f} | {b:.1f} | {100 * (b - a) / b:+.1f} % |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photons", type=float, nargs="+", default=[60.0, 400.0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--draws", type=int, default=6)
    ap.add_argument("--size", type=int, default=256, help="field of view, camera pixels")
    ap.add_argument("--modulation", type=float, default=0.8, help="the pattern's, 0-1")
    ap.add_argument("--bsim", action="store_true", help="also the real B-SIM sets' phases")
    args = ap.parse_args()
    if args.bsim:
        bsim_phase_steps()
        bsim_data_residuals()
    for photons in args.photons:
        measure(photons, range(args.seeds), args.draws, args.size, args.modulation)


if __name__ == "__main__":
    main()
