"""Camera faults during acquisition: how many SIM sets (time points) a run keeps, and how good
the sets kept without their faulty frames are.

The simulated microscope (the controller emulator on a pty leading, the simulated camera
triggered by it, 128 x 128 frames at 400 photons peak, exposure 2 ms + dark 1 ms, no marker)
acquires ``--sets`` sets of 3 x 3 frames while its camera injects faults at the given rates:
dropped frames, extra frames (a spurious trigger's frame right after a readout) and late
exposures (started 0.7 ms late: the frame sees two patterns; later than 0.8 ms the camera,
still reading out, also misses the next trigger, and beyond the match tolerance of 1.2 ms the
late frame is an extra one). For each mix and seed:

- the sets the engine verified (complete, handed to live consumers), the sets kept without
  their faulty frames (``valid`` 2 in the frame table) and the sets lost;
- ``scope reconstruct`` on the run (it reads both kinds, the first set complete, and leaves the
  missing frames out), and the error of each time point against the ideal-SIM target of the
  virtual sample (normalised RMS after a gain/offset fit, 16-pixel margin): median over the
  complete sets and over the kept ones.

Usage: ``python reconstruction/benchmarks/acquisition_faults.py [--sets 60] [--seeds 2]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from sim_cases import ideal_target

MIXES = {  # name -> (drop_prob, extra_prob, late_prob)
    "1 % dropped": (0.01, 0.0, 0.0),
    "1 % extra": (0.0, 0.01, 0.0),
    "1 % late": (0.0, 0.0, 0.01),
    "2 % dropped + 1 % extra + 1 % late": (0.02, 0.01, 0.01),
}


def run_mix(folder: Path, n_sets: int, seed: int, drop: float, extra: float, late: float):
    """(verified, kept, lost, errors of complete sets, errors of kept sets) of one run."""
    import tifffile

    from scope.acquisition.engine import AcquisitionConfig, AcquisitionEngine
    from scope.cli import main
    from scope.devices.simulated_camera import FaultInjection
    from scope.devices.simulated_microscope import SimulatedMicroscope
    from scope.io.raw import open_raw
    from scope.sim import metrics

    run = folder / f"run-{seed}.zarr"
    faults = FaultInjection(drop_prob=drop, extra_prob=extra, late_prob=late, late_ms=0.7,
                            seed=seed)  # fmt: skip
    options = {"marker": False, "photons_peak": 400.0}
    with SimulatedMicroscope((128, 128), seed=seed, faults=faults, camera_options=options) as m:
        cfg = AcquisitionConfig(n_sets=n_sets, exposure_ms=2.0, dark_ms=1.0)
        summary = AcquisitionEngine(m.camera, m.controller, run, cfg, setup=m.setup).run()
        setup, params, sample = m.setup, m.params, m.sample_2x
    kept = set(summary.sets_without_dropped_frames)
    lost = summary.sets_invalid - len(kept)
    out = folder / f"sim-{seed}.tif"
    args = ["-q", "reconstruct", str(run), "-o", str(out), "--na", "1.2", "--wavelength", "525"]
    with contextlib.redirect_stdout(io.StringIO()):  # its "wrote ..." line
        if main(args) != 0:
            raise SystemExit(f"scope reconstruct failed on {run}")
    sims = tifffile.imread(out)
    with open_raw(run) as raw:
        numbers = list(raw.metadata["sets"])
    target = ideal_target(sample, params, setup)
    errors = [metrics.normalized_rms_error(s, target, margin=16) for s in sims]
    complete = [e for n, e in zip(numbers, errors, strict=True) if n not in kept]
    recovered = [e for n, e in zip(numbers, errors, strict=True) if n in kept]
    return summary.sets_valid, len(kept), lost, complete, recovered


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"{args.sets} sets per run, seeds 0-{args.seeds - 1}, 128 x 128 at 400 photons peak")
    print("| faults per frame | seed | verified | kept without faulty frames | lost | "
          "error, complete sets (median) | error, kept sets (median) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (drop, extra, late) in MIXES.items():
            for seed in range(args.seeds):
                folder = Path(tmp) / f"{len(name)}-{seed}"
                folder.mkdir()
                valid, kept, lost, complete, recovered = run_mix(
                    folder, args.sets, seed, drop, extra, late
                )
                med_c = f"{np.median(complete):.3f}" if complete else "-"
                med_k = f"{np.median(recovered):.3f}" if recovered else "-"
                print(f"| {name} | {seed} | {valid} | {kept} | {lost} | {med_c} | {med_k} |")


if __name__ == "__main__":
    main()
