"""Batch throughput on a local Dask cluster: 2 worker processes vs 1, measured in one run.

Writes N simulated time-lapses (T x 9 x S x S uint16 TIFF), then reconstructs the folder with
``scope.batch.run_batch`` on a LocalCluster of 1 worker, then of 2 workers (fresh output folders,
cluster start-up included in both), and prints SIM frames per second and the ratio.

Usage: ``python reconstruction/benchmarks/batch_throughput.py [--files 4] [--time-points 10]``
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--time-points", type=int, default=10)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()

    from batch_memory import write_time_lapse

    from scope.batch import BatchOptions, run_batch

    flags = BatchOptions(offset_adu=100.0, backend="numpy")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        data.mkdir()
        for i in range(args.files):
            write_time_lapse(data / f"lapse{i}.tif", args.time_points, args.size, seed=i)
        frames = args.files * args.time_points
        rates = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            report = run_batch([data], tmp / f"out{workers}", flags=flags, n_workers=workers)
            dt = time.perf_counter() - t0
            assert report.exit_status == 0, report.table()
            rates[workers] = frames / dt
            print(
                f"{workers} worker(s): {frames} SIM frames ({args.size}x{args.size} -> "
                f"{2 * args.size}x{2 * args.size}) in {dt:.1f} s = {rates[workers]:.1f} frames/s"
            )
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, {platform.machine()}")
    print(f"throughput ratio 2 workers / 1 worker: {rates[2] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
