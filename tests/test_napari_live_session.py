"""The live session without a GUI: every rolling window holds the newest frame of each
(angle, phase) slot, checked against the simulated camera's ground-truth marker (the pattern
each frame was really exposed under), in leader and in software-triggered mode."""

from __future__ import annotations

import time

import numpy as np
import pytest

from scope.acquisition.writer import read_acquisition
from scope.devices.simulated_camera import decode_marker
from scope.napari.live import LiveConfig, LiveSession


def _run_until(session: LiveSession, counter: str, n: int, timeout_s: float = 20) -> None:
    """Run ``session`` until its stats' ``counter`` reaches ``n`` (or the timeout), then stop."""
    session.start()
    try:
        deadline = time.monotonic() + timeout_s
        while getattr(session.snapshot().stats, counter) < n and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        session.stop()
        assert session.join(15)
    assert session.error is None


@pytest.mark.parametrize("trigger", ["hardware", "software"])
def test_rolling_windows_hold_one_frame_per_slot(trigger):
    cfg = LiveConfig(sensor_shape=(64, 64), trigger=trigger, marker=True, exposure_ms=4, dark_ms=4)
    session = LiveSession(cfg, "sim", sim_every="frame", estimate=False, keep_run=True)
    _run_until(session, "sim_images", 30)
    windows = list(session.sim_log)
    assert len(windows) >= 30
    frames, _, _ = read_acquisition(session.output)
    for _, indices in windows[:: max(1, len(windows) // 10)] + windows[-1:]:
        patterns = [decode_marker(np.asarray(frames[i]))[0] for i in indices]
        assert patterns == list(range(9)), patterns  # slot k was exposed under pattern k
        assert len(set(indices)) == 9
    session.cleanup()
    assert not session.output.exists()


@pytest.mark.parametrize(("photons_peak", "clipped"), [(400.0, False), (1e6, True)])
def test_clipped_share_of_the_newest_window(photons_peak, clipped):
    """The stats say how much of the newest window sits at the camera's full scale (65535 for
    the simulated Mono16 camera), checked against the recorded frames themselves."""
    cfg = LiveConfig(sensor_shape=(64, 64), photons_peak=photons_peak, exposure_ms=4, dark_ms=4)
    session = LiveSession(cfg, "live", keep_run=True, modulation_interval_s=0.0)
    _run_until(session, "raw_frames", 30)
    share = session.snapshot().stats.clipped_fraction
    frames, _, _ = read_acquisition(session.output)
    recorded = np.count_nonzero(np.asarray(frames) >= 65535) / np.asarray(frames).size
    if clipped:
        assert 0.5 * recorded < share < 2 * recorded and recorded > 0.01, (share, recorded)
    else:
        assert share == 0 and recorded == 0
    session.cleanup()


def test_live_sim_reports_the_repaired_camera_defects():
    """A defect-free simulated camera: the live reconstruction repairs nothing and says so."""
    cfg = LiveConfig(sensor_shape=(64, 64), marker=False, exposure_ms=4, dark_ms=4)
    session = LiveSession(cfg, "sim", sim_every="set", estimate=False)
    _run_until(session, "sim_images", 2)
    assert session.snapshot().stats.defect_pixels == 0
    session.cleanup()
