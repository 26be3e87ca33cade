"""Benchmark: rolling live SIM in napari on the simulated microscope (256 x 256, numpy).

Runs the live imaging widget in a real napari viewer (needs a display: Xvfb is fine) for
``--seconds``, the acquisition engine writing every frame to a scratch OME-Zarr run, the
reconstruction rolling (a new SIM image for every new raw frame) on the numpy backend, and
measures

- SIM images per second (reconstructed) and raw frames per second over the steady part of
  the run (after the first SIM image), the layer updates per second the GUI showed;
- the reconstruction time per image (median);
- GUI event-loop latency: a 10 ms QTimer measures how late each of its ticks fires (median,
  95th percentile, maximum) — what a user feels as the viewer's responsiveness;
- dropped/extra frames and invalid sets reported by the acquisition engine.

Usage::

    xvfb-run -a .venv/bin/python reconstruction/benchmarks/live_sim_napari.py --seconds 20
    ... --exposure-ms 5 --dark-ms 5 --every set
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import threading
import time
import traceback
from collections import Counter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--exposure-ms", type=float, default=10.0)
    ap.add_argument("--dark-ms", type=float, default=10.0)
    ap.add_argument("--every", choices=("frame", "set"), default="frame")
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--display-hz", type=int, default=10, help="display refresh limit")
    args = ap.parse_args()

    import napari
    from qtpy.QtCore import QEventLoop, QTimer

    from scope.napari.live_widget import LiveImagingWidget

    viewer = napari.Viewer(show=not os.environ.get("SCOPE_BENCH_HIDDEN"))
    widget = LiveImagingWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Live SIM imaging")
    widget.sensor.setValue(args.size)
    widget.exposure.setValue(args.exposure_ms)
    widget.dark.setValue(args.dark_ms)
    widget.sim_every.setCurrentIndex(0 if args.every == "frame" else 1)
    widget.backend.setCurrentText(args.backend)
    widget.estimate.setChecked(True)
    widget.display_hz.setValue(args.display_hz)

    lateness_ms: list[float] = []
    tick_s = 0.010
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        lateness_ms.append(max(0.0, (now - last[0] - tick_s) * 1e3))
        last[0] = now

    # where the GUI thread is when it is late by more than 0.2 s (sampled from another thread)
    stall_sites: Counter[str] = Counter()
    main_id = threading.main_thread().ident
    watching = threading.Event()

    def watchdog() -> None:
        while watching.is_set():
            time.sleep(0.05)
            if time.perf_counter() - last[0] > 0.2:
                frame = sys._current_frames().get(main_id)
                if frame is not None:
                    stack = traceback.extract_stack(frame)[-6:]
                    stall_sites[" < ".join(f"{f.name}@{f.filename.split('/')[-1]}:{f.lineno}"
                                           for f in reversed(stack))] += 1  # fmt: skip

    probe = QTimer()
    probe.setInterval(int(tick_s * 1000))
    probe.timeout.connect(tick)

    def pump(seconds: float) -> None:
        """Run the Qt event loop (idle waits, not a busy loop) for ``seconds``."""
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    gc_pauses_ms: list[float] = []
    gc_start = [0.0]

    def gc_timer(phase: str, info: dict) -> None:  # Python's collector stops every thread
        if phase == "start":
            gc_start[0] = time.perf_counter()
        elif gc_start[0]:
            gc_pauses_ms.append((time.perf_counter() - gc_start[0]) * 1e3)

    session = widget.start("sim")
    assert session is not None
    t_wait = time.monotonic()
    while session.snapshot().stats.sim_images == 0:
        pump(0.05)
        if time.monotonic() - t_wait > 30:
            raise SystemExit(f"no SIM image after 30 s: {session.snapshot().stats}")
    s0 = session.snapshot().stats
    updates0 = widget.gui_updates
    t0 = time.monotonic()
    last[0] = time.perf_counter()
    probe.start()
    watching.set()
    watch = threading.Thread(target=watchdog, daemon=True)
    watch.start()
    gc.callbacks.append(gc_timer)
    gui_cpu0 = time.thread_time()
    proc_cpu0 = time.process_time()
    rec_ms: list[float] = []
    while time.monotonic() - t0 < args.seconds:
        pump(0.25)
        rec_ms.append(session.snapshot().stats.reconstruction_ms)
    probe.stop()
    watching.clear()
    watch.join()
    gc.callbacks.remove(gc_timer)
    s1 = session.snapshot().stats
    elapsed = time.monotonic() - t0
    gui_cores = (time.thread_time() - gui_cpu0) / elapsed
    process_cores = (time.process_time() - proc_cpu0) / elapsed
    updates = widget.gui_updates - updates0
    widget.stop()
    t_stop = time.monotonic()
    while widget.session is not None:
        pump(0.05)
    stop_s = time.monotonic() - t_stop
    widget.last_session.cleanup()
    lat = sorted(lateness_ms)
    result = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        "size": args.size,
        "every": args.every,
        "exposure_ms": args.exposure_ms,
        "display_hz_limit": args.display_hz,
        "viewer_shown": not os.environ.get("SCOPE_BENCH_HIDDEN"),
        "dark_ms": args.dark_ms,
        "seconds": round(elapsed, 2),
        "sim_images_per_s": round((s1.sim_images - s0.sim_images) / elapsed, 2),
        "raw_frames_per_s": round((s1.raw_frames - s0.raw_frames) / elapsed, 2),
        "display_updates_per_s": round(updates / elapsed, 2),
        "reconstruction_ms_median": round(statistics.median(rec_ms), 2),
        "gui_latency_ms_median": round(statistics.median(lat), 2),
        "gui_latency_ms_p95": round(lat[int(0.95 * (len(lat) - 1))], 2),
        "gui_latency_ms_max": round(lat[-1], 2),
        "gui_ticks": len(lat),
        "gc_pauses": len(gc_pauses_ms),
        "gc_pause_ms_max": round(max(gc_pauses_ms, default=0.0), 2),
        "gc_pause_ms_total": round(sum(gc_pauses_ms), 2),
        "gui_thread_cpu_cores": round(gui_cores, 2),
        "process_cpu_cores": round(process_cores, 2),
        "dropped_frames": s1.dropped_frames,
        "extra_frames": s1.extra_frames,
        "invalid_sets": s1.invalid_sets,
        "valid_sets": s1.valid_sets,
        "skipped_windows": s1.skipped_windows - s0.skipped_windows,
        "stop_s": round(stop_s, 2),
        "gui_stall_samples": dict(stall_sites.most_common(5)),
    }
    print(json.dumps(result, indent=2))
    viewer.close()


if __name__ == "__main__":
    main()
