"""Peak memory of a batch reconstruction of a long time-lapse: bounded by a few time points.

Writes a simulated 512x512 time-lapse of T time points (uint16 TIFF, 9 frames per set; 200 time
points = 0.94 GB), reconstructs it with ``scope.batch.process_file`` in a fresh process (as a
Dask worker would) and reads that process's peak resident memory (``ru_maxrss``). The same is
done for a 1-time-point file of the same frames: its peak is the fixed overhead (interpreter,
libraries, FFT plans, the reconstructor's cached operators, one time point). The claim checked:

    peak(T) <= peak(1) + 4 x (one time point's raw float32 + output float32)

Usage: ``python reconstruction/benchmarks/batch_memory.py [--time-points 200] [--format zarr]``
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
from scope.batch.job import FileJob, process_file
job = FileJob(**json.loads(sys.argv[1]))
t0 = time.perf_counter()
result = process_file(job)
result["wall_s"] = time.perf_counter() - t0
result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(result, default=str))
"""


def write_time_lapse(path: Path, n_time: int, size: int = 512, seed: int = 0) -> None:
    """A uint16 TIFF (T, 9, size, size) streamed plane by plane (never all in memory)."""
    import tifffile

    from scope.optics import OpticalSetup
    from scope.sim.forward import simulate_raw
    from scope.sim.params import SIMParameters
    from scope.sim.samples import make_sample

    setup = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
    params = SIMParameters.equidistant([5.0, 65.0, 125.0], period_nm=270.0, n_phases=3)
    sample = make_sample((2 * size, 2 * size), "mixed", seed=seed)
    expected = simulate_raw(sample, params, setup, noise=False)  # photons, no offset
    rng = np.random.default_rng(seed)

    def planes():
        for _ in range(n_time):
            noisy = rng.poisson(expected) + rng.normal(0, 1.5, expected.shape) + 100
            yield from np.clip(noisy, 0, 65535).astype(np.uint16)

    tifffile.imwrite(
        path,
        planes(),
        shape=(n_time, 9, size, size),
        dtype=np.uint16,
        metadata={"pixel_size_nm": 65.0, "wavelength_nm": 525.0, "na": 1.2},
    )


def measure(raw: Path, out_dir: Path, fmt: str) -> dict:
    out = out_dir / (raw.stem + (".sim.zarr" if fmt == "zarr" else ".sim.ome.tif"))
    job = {
        "input": str(raw),
        "output": str(out),
        "params_path": str(out_dir / (raw.stem + ".params.json")),
        "flags": {"offset_adu": 100.0, "backend": "numpy"},
        "output_options": {"format": fmt},
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(job)], capture_output=True, text=True, check=True
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["status"] != "done":
        raise SystemExit(f"reconstruction failed: {result['error']}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-points", type=int, default=200)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--format", choices=("zarr", "tiff"), default="zarr")
    ap.add_argument("--workdir", default=None, help="where to write the test files (default: tmp)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        one, long = tmp / "one.tif", tmp / "long.tif"
        write_time_lapse(one, 1, args.size)
        write_time_lapse(long, args.time_points, args.size)
        print(f"wrote {long.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - t0:.0f} s")
        base = measure(one, tmp, args.format)
        full = measure(long, tmp, args.format)
    n = args.size
    per_tp = 9 * n * n * 4 + (2 * n) ** 2 * 4  # raw float32 + output float32
    bound = base["peak_rss_bytes"] + 4 * per_tp
    mib = 2**20
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}")
    print(f"one time point: raw+output {per_tp / mib:.1f} MiB")
    print(f"peak RSS, 1 time point (fixed overhead): {base['peak_rss_bytes'] / mib:.0f} MiB")
    print(
        f"peak RSS, {args.time_points} time points ({args.format}): "
        f"{full['peak_rss_bytes'] / mib:.0f} MiB in {full['wall_s']:.1f} s "
        f"({full['wall_s'] / args.time_points * 1000:.0f} ms per time point)"
    )
    extra = (full["peak_rss_bytes"] - base["peak_rss_bytes"]) / per_tp
    print(
        f"growth over the fixed overhead: {extra:.2f} x one time point's raw+output "
        f"(bound 4): {'PASS' if full['peak_rss_bytes'] <= bound else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
