"""Acquisition latency: from the camera to a live consumer, and what the grab process buys.

Measures, in one run:

1. **set to consumer** (simulated microscope: emulated controller on a pty leading, simulated
   camera triggered by it, 128x128 frames, exposure 2 ms + dark 1 ms): for every verified SIM set
   a consumer thread receives through ``AcquisitionEngine.subscribe()``, the time from the end of
   the set's last exposure to the consumer holding the set, and the engine-to-consumer queue hop.
   The engine must wait until the next frame shows that no extra frame belongs to the set, so
   about one frame period is inherent.
2. **GenICam grab process** (``GenICamCamera`` on ``viky.cti``, 400x400 Mono8 at 200 fps): the
   time from the grab process having a frame to the parent returning it, and the frames per
   second a pure-Python "GUI" thread in the parent gets through while frames stream —
   against the same thread while harvesters fetches *in the parent process*
   (genicam/harvesters#508: ``fetch()`` holds the GIL while it waits) and with no acquisition.

Usage: ``python reconstruction/benchmarks/acquisition_latency.py [--sets 100]``
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def pct(values: list[float]) -> str:
    a = np.asarray(values) * 1e3
    return f"median {np.median(a):.2f} ms, p95 {np.percentile(a, 95):.2f} ms, max {a.max():.2f} ms"


def set_to_consumer(n_sets: int) -> None:
    from scope.acquisition.engine import AcquisitionConfig, AcquisitionEngine
    from scope.devices.simulated_microscope import SimulatedMicroscope

    exposure_ms, dark_ms = 2.0, 1.0
    latency, hop = [], []
    with tempfile.TemporaryDirectory() as tmp, SimulatedMicroscope((128, 128)) as m:
        cfg = AcquisitionConfig(n_sets=n_sets, exposure_ms=exposure_ms, dark_ms=dark_ms)
        engine = AcquisitionEngine(m.camera, m.controller, Path(tmp) / "bench.zarr", cfg)
        q = engine.subscribe(maxsize=64)

        def consume() -> None:
            while (item := q.get(timeout=30)) is not None:
                now = time.monotonic()
                _, frames, meta = item
                latency.append(now - (meta["timestamps_s"][-1] + exposure_ms / 1000))
                hop.append(now - meta["published_s"])
                frames.mean()  # touch the data like a display would

        consumer = threading.Thread(target=consume)
        consumer.start()
        t0 = time.monotonic()
        summary = engine.run()
        wall = time.monotonic() - t0
        consumer.join()
    print(
        f"[1] simulated microscope, {n_sets} sets of 9 x 128x128, period "
        f"{exposure_ms + dark_ms:.1f} ms: {summary.sets_valid} sets received in {wall:.2f} s "
        f"({summary.frames_written / wall:.0f} frames/s, "
        f"nominal {1000 / (exposure_ms + dark_ms):.0f})"
    )
    print(f"    last exposure end -> consumer: {pct(latency)}")
    print(f"    engine -> consumer queue hop:  {pct(hop)}")


def _gui_loop(stop: threading.Event, counter: list[int]) -> None:
    """A pure-Python busy loop standing in for a GUI thread (needs the GIL)."""
    x = 0
    while not stop.is_set():
        for i in range(1000):
            x += i
        counter[0] += 1


def _gui_rate(seconds: float, work) -> float:
    stop, counter = threading.Event(), [0]
    th = threading.Thread(target=_gui_loop, args=(stop, counter))
    th.start()
    t0 = time.monotonic()
    extra = work(seconds)
    stop.set()
    th.join()
    if extra is not None:
        print(f"    {extra}")
    return counter[0] / (time.monotonic() - t0)


def genicam_grab(seconds: float) -> None:
    from scope.devices.genicam import GenICamCamera, bundled_producer

    cti = bundled_producer()
    if cti is None:
        print("[2] skipped: the genicam wheel (viky.cti) is not installed")
        return

    def idle(s: float) -> None:
        time.sleep(s)

    def grab_process(s: float) -> str:
        lat = []
        with GenICamCamera(cti, 0) as cam:
            cam.pixel_format = "Mono8"
            cam.frame_rate_hz = 200
            cam.start()
            t_end = time.monotonic() + s
            n = 0
            while time.monotonic() < t_end:
                f = cam.get_frame(timeout_s=2)
                lat.append(time.monotonic() - f.timestamp_s)
                n += 1
            cam.stop()
            overruns = cam.overruns
        return (
            f"grab process: {n / s:.0f} frames/s, fetch -> parent {pct(lat)}, overruns {overruns}"
        )

    def grab_in_process(s: float) -> str:
        from harvesters.core import Harvester

        h = Harvester()
        h.add_file(str(cti))
        h.update()
        ia = h.create(0)
        ia.remote_device.node_map.PixelFormat.value = "Mono8"
        ia.remote_device.node_map.AcquisitionFrameRate.value = 200
        ia.start()
        n = 0
        t_end = time.monotonic() + s
        while time.monotonic() < t_end:
            with ia.fetch(timeout=2) as buf:
                buf.payload.components[0].data.copy()
            n += 1
        ia.stop()
        ia.destroy()
        h.reset()
        return f"in-process harvesters: {n / s:.0f} frames/s"

    base = _gui_rate(seconds, idle)
    sep = _gui_rate(seconds, grab_process)
    inproc = _gui_rate(seconds, grab_in_process)
    print(
        f"[2] viky.cti 400x400 Mono8 at 200 fps, a pure-Python GUI thread in the parent: "
        f"idle {base:.0f} loops/s; grab process {sep:.0f} ({sep / base:.2f}x idle); "
        f"harvesters in-process {inproc:.0f} ({inproc / base:.2f}x idle)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    set_to_consumer(args.sets)
    genicam_grab(args.seconds)


if __name__ == "__main__":
    main()
