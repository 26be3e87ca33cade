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

Run: .venv/bin/python reconstruction/benchmarks/resolution_limits.py [--photons 60]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from scope.sim.estimate import estimate_parameters
from scope.sim.reconstruct import (
    FIT_HIGH,
    FIT_LOW,
    NoiseModel,
    SIMReconstructor,
)
from scope.sim.spectral import freq_grid, radius
from sim_cases import OFFSET, SETUP, evaluate, make_case


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photons", type=float, default=60.0)
    ap.add_argument("--seeds", type=int, default=5)
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
            scaled = GivenSpectrum(model.noise_power, model.amplitude, model.exponent, None, factor)
            add(f"signal model x{factor:g}", evaluate(case, params, noise_model=scaled)[1])
        per_pixel, radial = oracle_spectra(case, base, rec.output_shape)
        given = GivenSpectrum(model.noise_power, model.amplitude, model.exponent, radial)
        add("true radial spectrum", evaluate(case, params, noise_model=given)[1])
        given = GivenSpectrum(model.noise_power, model.amplitude, model.exponent, per_pixel)
        add("true spectrum per pixel (oracle)", evaluate(case, params, noise_model=given)[1])

    print(f"resolution gain (SIM / widefield), {args.photons:g} photons peak, seeds 0-{seed}")
    header = "| filter | " + " | ".join(f"seed {s}" for s in range(args.seeds)) + " | min |"
    print(header)
    print("|---" * (args.seeds + 2) + "|")
    for name, values in rows.items():
        cells = " | ".join(f"{v:.3f}" for v in values)
        print(f"| {name} | {cells} | {min(values):.3f} |")


if __name__ == "__main__":
    main()
