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


@pytest.mark.parametrize("trigger", ["hardware", "software"])
def test_rolling_windows_hold_one_frame_per_slot(trigger):
    cfg = LiveConfig(sensor_shape=(64, 64), trigger=trigger, marker=True, exposure_ms=4, dark_ms=4)
    session = LiveSession(cfg, "sim", sim_every="frame", estimate=False, keep_run=True)
    session.start()
    try:
        deadline = time.monotonic() + 20
        while session.snapshot().stats.sim_images < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        session.stop()
        assert session.join(15)
    assert session.error is None
    windows = list(session.sim_log)
    assert len(windows) >= 30
    frames, _, _ = read_acquisition(session.output)
    for _, indices in windows[:: max(1, len(windows) // 10)] + windows[-1:]:
        patterns = [decode_marker(np.asarray(frames[i]))[0] for i in indices]
        assert patterns == list(range(9)), patterns  # slot k was exposed under pattern k
        assert len(set(indices)) == 9
    session.cleanup()
    assert not session.output.exists()
