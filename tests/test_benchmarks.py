"""Every benchmark under reconstruction/benchmarks/ still runs, on its smallest settings.

The benchmarks measure performance and are run by hand (their figures are in RESULTS.md), so
nothing else would notice when a change in the package breaks one: two had (a NoiseModel field
added before the benchmark's positional arguments; a clip length below the preset's minimum).
Here each runs in its own process with the smallest arguments it takes and must finish
cleanly and print the line its results are read from. The figures printed at these sizes mean
nothing and are not checked; the numbers are asserted by the tests of each feature.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "reconstruction" / "benchmarks"

# script -> (smallest arguments, a line of its report)
CASES = {
    "acquisition_faults.py": (["--sets", "3", "--seeds", "1"], "| 1 % dropped | 0 |"),
    "acquisition_latency.py": (["--sets", "3", "--seconds", "0.3"], "3 sets received"),
    "batch_memory.py": (["--time-points", "2", "--size", "64"], "growth over the fixed overhead"),
    "batch_throughput.py": (
        ["--files", "1", "--time-points", "1", "--size", "64", "--repeats", "1"],
        "throughput ratio 2 workers / 1 worker",
    ),
    "bench_reconstruction.py": (["--repeats", "1"], "cached reconstruction per SIM image"),
    "blank_frames.py": (["--seeds", "1", "--size", "128"], "one frame left out"),
    "bleaching_series.py": (["--seeds", "1"], "| 0 | following the light |"),
    "camera_defects.py": ([], "finding defects in a 9 x 512 x 512 set"),
    "controller_timing.py": ([], "state machine (CPython)"),
    "estimation_accuracy.py": (
        ["--seeds", "1", "--draws", "1", "--photons", "60", "--size", "128", "--bsim"],
        "| bsim-simulated-line-pairs |",
    ),
    "export_encode.py": (["--seconds", "3"], "render + encode"),
    "live_sim_napari.py": (["--seconds", "1", "--size", "64"], '"stop_s"'),
    "pattern_distortion.py": (["--sizes", "256"], "| 256 | 2 % |"),
    "resolution_limits.py": (["--seeds", "1"], "| true spectrum per pixel (oracle) |"),
}


def test_every_benchmark_is_listed():
    assert sorted(p.name for p in BENCHMARKS.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_runs(script):
    args, expected = CASES[script]
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert expected in done.stdout, done.stdout[-3000:]
