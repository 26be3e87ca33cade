"""Pattern controller: request latency, emulator timing accuracy, state machine and gratings speed.

Run: ``python reconstruction/benchmarks/controller_timing.py``

1. Round trip of ``PING`` through ``SerialPatternController`` and the emulator on a pty.
2. Leader mode in the emulator (exposure 1 ms, dark 0.5 ms, 1000 frames): exposure length and
   period error from the simulated pins' log, the margin between every pattern switch and the
   neighbouring exposures, the overruns the firmware counted.
3. The firmware state machine (``pattern_core.py``) under CPython: request lines per second.
4. Gratings: quantising and rendering a 3x3 set of binary patterns for a 1920x1080 DMD.
"""

from __future__ import annotations

import itertools
import os
import platform
import statistics
import time

import numpy as np

from scope.devices.emulator import SimulatedHardware, load_firmware_core
from scope.devices.serial_controller import SerialPatternController
from scope.sim.gratings import make_pattern_set


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bench_round_trip(n: int = 500) -> None:
    with SerialPatternController("sim://") as ctrl:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            ctrl.ping()
            times.append((time.perf_counter() - t0) * 1e3)
    print(
        f"PING round trip over the pty ({n}): median {statistics.median(times):.3f} ms, "
        f"p99 {pct(times, 99):.3f} ms, max {max(times):.3f} ms"
    )


def bench_leader(n_frames: int = 1000, exposure_ms: float = 1.0, dark_ms: float = 0.5) -> None:
    with SerialPatternController("sim://") as ctrl:
        ctrl.set_watchdog(5000)
        ctrl.set_timing(exposure_ms=exposure_ms, dark_ms=dark_ms)
        ctrl.upload_sequence(list(range(9)))
        ctrl.arm(n_frames)
        t0 = time.perf_counter()
        ctrl.start()
        done = ctrl.wait_for_event("DONE", timeout_s=60)
        wall = time.perf_counter() - t0
        hw = ctrl.emulator.hardware
        log = list(hw.trigger_log)
        switches = list(hw.switch_log)
    exp_err = [((r.t_end_s - r.t_start_s) * 1e3 - exposure_ms) * 1e3 for r in log]
    starts = [r.t_start_s for r in log]
    nominal_ms = exposure_ms + dark_ms
    period_err = [((b - a) * 1e3 - nominal_ms) * 1e3 for a, b in itertools.pairwise(starts)]
    # margins: each switch after the previous exposure's end and before the next one's start
    after_end, before_start = [], []
    ends = [r.t_end_s for r in log]
    for sw in switches:
        prev = [e for e in ends if e <= sw.t_s]
        nxt = [s for s in starts if s >= sw.t_s]
        if prev:
            after_end.append((sw.t_s - prev[-1]) * 1e6)
        if nxt:
            before_start.append((nxt[0] - sw.t_s) * 1e6)
    print(
        f"leader mode, {n_frames} frames of {exposure_ms} ms + {dark_ms} ms dark: wall "
        f"{wall:.3f} s (nominal {n_frames * (exposure_ms + dark_ms) / 1e3:.3f} s), counts "
        f"{done.counts}, switches inside an exposure: {len(hw.exposures_with_pattern_change())}"
    )
    print(
        f"  exposure too long by: median {statistics.median(exp_err):.0f} us, p99 "
        f"{pct(exp_err, 99):.0f} us, max {max(exp_err):.0f} us (never shorter: min "
        f"{min(exp_err):.0f} us)"
    )
    print(
        f"  period too long by: median {statistics.median(period_err):.0f} us, p99 "
        f"{pct(period_err, 99):.0f} us"
    )
    print(
        f"  switch after previous exposure end: min {min(after_end):.0f} us; next exposure "
        f"after switch: min {min(before_start):.0f} us (dark {dark_ms * 1e3:.0f} us)"
    )


def bench_state_machine(n: int = 20000) -> None:
    fw = load_firmware_core()
    hw = SimulatedHardware()
    core = fw.PatternCore(hw)
    lines = [b"1 PING\n", b"2 STATUS\n", b"3 TIMING 1000 500\n", b"4 SEQ GET 0 1\n", b"5 FROB\n"]
    core.feed(b"SEQ BEGIN 1\nSEQ DATA 0 3\nSEQ END %d\n" % fw.sequence_checksum([3]))
    t0 = time.perf_counter()
    for i in range(n):
        core.feed(lines[i % len(lines)])
        core.poll()
    dt = time.perf_counter() - t0
    print(f"state machine (CPython): {n / dt:,.0f} request lines/s incl. one poll each")


def bench_gratings() -> None:
    t0 = time.perf_counter()
    ps = make_pattern_set([0, 60, 120], 6.0, shape=(1080, 1920), kind="binary")
    dt = time.perf_counter() - t0
    print(
        f"gratings: 3 angles x 3 phases, 1920x1080 binary: {dt:.2f} s; "
        + ", ".join(f"({q.a},{q.b},{q.P})" for q in ps.gratings)
    )


def main() -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    bench_round_trip()
    bench_leader()
    bench_state_machine()
    bench_gratings()


if __name__ == "__main__":
    main()
