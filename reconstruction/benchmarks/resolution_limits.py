"""Where the resolution gain at low light comes from, and how much more a linear filter could give.

The simulated acceptance case (``tests/sim_cases.py``) at 60 photons peak, five seeds. The gain
is the ring-correlation resolution (threshold 1/7 against the ground truth) of the SIM image over
that of the widefield image. Each row changes one thing:

- ``estimated``: the product's default (parameters estimated, MMSE filter with the sample's
  power law fitted to the widefield spectrum), also read at ring-correlation thresholds of 0.13
  and 0.16 (how steeply the correlation falls through 1/7);
- ``true parameters``: the simulation's own pattern parameters instead of the estimated ones;
- ``signal model xF``: the fitted power law multiplied by F (a weaker or stronger regulariser);
- ``true radial spectrum``: the MMSE filter given the ground truth's own radially averaged power
  spectrum (what a perfect isotropic spectrum model would give);
- ``true spectrum per pixel``: given the ground truth's power at every frequency (an oracle no
  reconstruction has: it tells the filter where the sample's structure is).

The oracle spectra are scaled to the fitted model over the band where the model is fitted.

With ``--richardson-lucy`` it also reconstructs each case by Richardson-Lucy iterations on the
full forward model (Poisson likelihood, positivity; as in RL-SIM, Perez et al., Sci. Rep. 6,
37149 (2016)) and deconvolves the widefield image the same way: a nonlinear method, unlike the
product's linear filter, whose ring correlation with a sparse ground truth can rise beyond the
extended support (extrapolation from positivity), so its gain is given both over the plain and
over the equally deconvolved widefield image, with its error against the ideal-SIM target.

Run: .venv/bin/python reconstruction/benchmarks/resolution_limits.py [--photons 60]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from scope.sim import metrics
from scope.sim.estimate import estimate_parameters
from scope.sim.forward import SIMForwardModel, pattern_image
from scope.sim.reconstruct import NoiseModel, SIMReconstructor
from scope.sim.spectral import FIT_HIGH, FIT_LOW, freq_grid, radius
from sim_cases import MARGIN, OFFSET, READ_NOISE_E, SETUP, evaluate, ideal_target, make_case


@dataclass(frozen=True)
class GivenSpectrum(NoiseModel):
    """The measured noise with a given sample power spectrum (on the 2x half-plane) or a scaled
    power law."""

    table: np.ndarray | None = None
    scale: float = 1.0

    def signal_power(self, k_per_um, xp=np):
        if self.table is not None and tuple(k_per_um.shape) == self.table.shape:
            return xp.asarray(self.table)
        return self.scale * super().signal_power(k_per_um, xp)


def oracle_spectra(case, model: NoiseModel, output_shape) -> tuple[np.ndarray, np.ndarray]:
    """The ground truth's power spectrum per pixel and radially averaged, in the model's units."""
    gt = case.ground_truth - case.ground_truth.mean()
    power = np.abs(np.fft.rfft2(gt)) ** 2
    ky, kx = freq_grid(output_shape, SETUP.pixel_size_um / 2, rfft=True)
    k = radius(kx, ky) * np.ones_like(power)
    fc = SETUP.cutoff_per_um
    band = (k > FIT_LOW * fc) & (k < FIT_HIGH * fc)
    scale = np.median(model.signal_power(k[band])) / np.median(power[band])
    ring = np.rint(k / float(kx[0, 1])).astype(int)
    radial = np.bincount(ring.ravel(), power.ravel()) / np.maximum(np.bincount(ring.ravel()), 1)
    return (scale * power).astype(np.float32), (scale * radial[ring]).astype(np.float32)


def richardson_lucy(
    frames_e: np.ndarray, patterns: np.ndarray, iterations: list[int]
) -> dict[int, np.ndarray]:
    """Richardson-Lucy estimates of the sample (2x grid) after each of ``iterations``.

    ``frames_e`` are the raw frames in photo-electrons, offset removed; ``patterns`` the
    illumination of each frame on the 2x grid. The read noise enters as a shifted Poisson
    variable (``sigma^2`` added to data and model); a constant background is estimated along.
    """
    model = SIMForwardModel(np.ones(patterns.shape[-2:]), SETUP)
    data = frames_e + READ_NOISE_E**2
    wf = data.mean(axis=0)
    background = float(np.percentile(wf, 1))
    estimate = np.clip(metrics.upsample2x(wf - background), 1e-3 * wf.max(), None)
    norm = model.camera_adjoint(np.ones(wf.shape)) * patterns.sum(axis=0)
    out = {}
    for it in range(1, max(iterations) + 1):
        update = np.zeros_like(estimate)
        ratio_mean = 0.0
        for frame, pattern in zip(data, patterns):
            ratio = frame / np.maximum(model.camera(estimate * pattern) + background, 1e-6)
            update += pattern * model.camera_adjoint(ratio)
            ratio_mean += float(ratio.mean()) / len(data)
        estimate = estimate * update / norm
        background *= ratio_mean
        if it in iterations:
            out[it] = estimate.copy()
    return out


def richardson_lucy_rows(case, params, add, iterations=(10, 20, 40)) -> None:
    """Gains of RL-SIM over the plain and over the RL-deconvolved widefield image."""
    crop = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]

    def res(image):
        ring = metrics.fourier_ring_correlation(image[crop], case.ground_truth[crop])
        return metrics.resolution_from_frc(*ring)

    frames = case.raw.astype(np.float64) - OFFSET
    shape = case.ground_truth.shape
    patterns = np.stack(
        [
            pattern_image(a, ph, shape, SETUP.pixel_size_um / 2, origin_px=0.5)
            for a in params.angles
            for ph in a.phases_rad
        ]
    )
    sim = richardson_lucy(frames, patterns, list(iterations))
    n = len(frames)
    wf = richardson_lucy(frames.sum(axis=0, keepdims=True), np.full((1, *shape), n), [*iterations])
    res_wf = res(metrics.upsample2x(frames.mean(axis=0)))
    target = ideal_target(case.ground_truth, case.truth)
    for it in iterations:
        add(f"Richardson-Lucy SIM, {it} iterations", res(sim[it]) / res_wf)
        add(f"  same ({it}), over the widefield deconvolved alike", res(sim[it]) / res(wf[it]))
        add(
            f"  same ({it}), NRMSE against the ideal-SIM target",
            metrics.normalized_rms_error(sim[it][crop], target[crop]),
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photons", type=float, default=60.0)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--richardson-lucy", action="store_true", help="add the nonlinear RL-SIM comparison"
    )
    args = ap.parse_args()
    rows: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        rows.setdefault(name, []).append(value)

    for seed in range(args.seeds):
        case = make_case(seed, photons=args.photons)
        params = estimate_parameters(case.raw - OFFSET, SETUP)
        rec = SIMReconstructor(SETUP, params, shape=case.raw.shape[-2:])
        model = rec.measure_noise_model(case.raw)
        base = GivenSpectrum(model.noise_power, model.amplitude, model.exponent)
        add("estimated (default)", evaluate(case, params)[1])
        for threshold in (0.13, 0.16):
            gain = evaluate(case, params, threshold=threshold)[1]
            add(f"  same, threshold {threshold} instead of 1/7", gain)
        add("true parameters", evaluate(case, case.truth)[1])
        for factor in (0.5, 2.0, 4.0):
            scaled = GivenSpectrum(model.noise_power, model.amplitude, model.exponent, scale=factor)
            add(f"signal model x{factor:g}", evaluate(case, params, noise_model=scaled)[1])
        per_pixel, radial = oracle_spectra(case, base, rec.output_shape)
        given = GivenSpectrum(model.noise_power, model.amplitude, model.exponent, table=radial)
        add("true radial spectrum", evaluate(case, params, noise_model=given)[1])
        given = GivenSpectrum(model.noise_power, model.amplitude, model.exponent, table=per_pixel)
        add("true spectrum per pixel (oracle)", evaluate(case, params, noise_model=given)[1])
        add("NRMSE against the ideal-SIM target (default)", evaluate(case, params)[0])
        if args.richardson_lucy:
            richardson_lucy_rows(case, params, add)

    print(f"resolution gain (SIM / widefield), {args.photons:g} photons peak, seeds 0-{seed}")
    header = "| filter | " + " | ".join(f"seed {s}" for s in range(args.seeds)) + " | min |"
    print(header)
    print("|---" * (args.seeds + 2) + "|")
    for name, values in rows.items():
        cells = " | ".join(f"{v:.3f}" for v in values)
        print(f"| {name} | {cells} | {min(values):.3f} |")


if __name__ == "__main__":
    main()
