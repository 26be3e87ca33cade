"""Batch throughput on a local Dask cluster: 2 worker processes vs 1, measured in one run.

Writes N simulated time-lapses (T x 9 x S x S uint16 TIFF), then reconstructs the folder with
``scope.batch.run_batch`` on a LocalCluster of 1 worker, then of 2 workers (fresh output folders,
cluster start-up included in both), alternating 1 and 2 workers ``--repeats`` times, and prints
SIM frames per second and the ratio of the best rates (other load on the machine only slows a
run down, so the best of several is the fairer figure).

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
    ap.add_argument("--repeats", type=int, default=2, help="alternate 1 and 2 workers this often")
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
        rates: dict[int, list[float]] = {1: [], 2: []}
        for run, workers in enumerate([1, 2] * args.repeats):
            t0 = time.perf_counter()
            report = run_batch([data], tmp / f"out{run}", flags=flags, n_workers=workers)
            dt = time.perf_counter() - t0
            assert report.exit_status == 0, report.table()
            rates[workers].append(frames / dt)
            print(
                f"{workers} worker(s): {frames} SIM frames ({args.size}x{args.size} -> "
                f"{2 * args.size}x{2 * args.size}) in {dt:.1f} s = {frames / dt:.1f} frames/s "
                "(cluster start-up included)"
            )
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, {platform.machine()}")
    best1, best2 = max(rates[1]), max(rates[2])
    print(f"best of {args.repeats}: 1 worker {best1:.1f}, 2 workers {best2:.1f} frames/s")
    print(f"throughput ratio 2 workers / 1 worker: {best2 / best1:.2f}")


if __name__ == "__main__":
    main()
