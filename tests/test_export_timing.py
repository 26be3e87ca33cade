"""Clip timing: condensing long runs, real time, slowing or looping short ones, stills."""

from __future__ import annotations

import numpy as np
import pytest

from scope.errors import ConfigurationError
from scope.export import get_preset
from scope.export.timing import (
    format_speed,
    format_timestamp,
    ken_burns_boxes,
    plan_timing,
)

REEL = get_preset("reel")


def test_long_run_is_condensed_to_the_target_length():
    plan = plan_timing(3600, REEL, frame_interval_s=2.0)  # two hours of frames
    assert plan.mode == "condensed"
    assert plan.n_frames == 15 * 30
    assert plan.duration_s == pytest.approx(REEL.target_duration_s)
    assert plan.speed_factor == pytest.approx(7200 / 15)
    idx = plan.source_index
    assert idx[0] == 0
    assert idx[-1] >= 3600 - 3600 / 450
    assert np.all(np.diff(idx) == 8)  # evenly sampled: 3600 / 450
    assert format_speed(plan.speed_factor) == "480× speed"


def test_run_within_limits_plays_in_real_time():
    plan = plan_timing(100, REEL, frame_interval_s=0.1)  # 10 s at 10 fps
    assert plan.mode == "realtime"
    assert plan.n_frames == 300
    assert plan.speed_factor == pytest.approx(1.0)
    assert np.array_equal(np.bincount(plan.source_index), np.full(100, 3))  # 3 video frames each
    assert format_speed(plan.speed_factor) == "real time"


def test_short_run_is_slowed_to_the_platform_minimum():
    plan = plan_timing(9, REEL, frame_interval_s=0.1)  # 0.9 s
    assert plan.mode == "slowed"
    assert plan.duration_s == pytest.approx(REEL.min_duration_s)
    assert plan.speed_factor == pytest.approx(0.3)
    assert np.array_equal(np.bincount(plan.source_index), np.full(9, 10))
    assert format_speed(plan.speed_factor) == "0.3× speed"


def test_short_run_can_loop_instead():
    plan = plan_timing(9, REEL, frame_interval_s=0.1, short_mode="loop")
    assert plan.mode == "looped"
    assert plan.n_frames == 4 * 27  # whole loops of 0.9 s until >= 3 s
    assert plan.speed_factor == pytest.approx(1.0)
    loop = plan.source_index[:27]
    assert np.array_equal(plan.source_index, np.tile(loop, 4))
    assert np.array_equal(np.unique(loop), np.arange(9))


def test_still_gets_a_slow_zoom():
    plan = plan_timing(1, REEL)
    assert plan.mode == "still"
    assert plan.duration_s == pytest.approx(REEL.still_duration_s)
    assert plan.speed_factor is None
    boxes = plan.crop_boxes
    assert np.allclose(boxes[0], [0, 0, 1, 1])
    widths = boxes[:, 2] - boxes[:, 0]
    assert np.all(np.diff(widths) <= 1e-12)  # zooming in, never out
    assert widths[-1] == pytest.approx(1 / 1.18)
    assert np.all(boxes[:, :2] >= 0)
    assert np.all(boxes[:, 2:] <= 1)
    assert np.allclose(widths, boxes[:, 3] - boxes[:, 1])  # aspect kept
    assert ken_burns_boxes(1).shape == (1, 4)


def test_explicit_duration_is_clamped_to_the_platform_limits(caplog):
    assert plan_timing(50, REEL, frame_interval_s=1, duration_s=1.0).duration_s == 3.0
    assert plan_timing(50, REEL, frame_interval_s=1, duration_s=500).duration_s == 90.0
    assert "outside" in caplog.text
    gif = plan_timing(50, get_preset("gif"), frame_interval_s=1)
    assert gif.fps == 20
    assert gif.duration_s == 6.0


def test_no_time_information_plays_at_a_default_rate_without_speed():
    plan = plan_timing(40, REEL)
    assert plan.speed_factor is None
    assert plan.duration_s == pytest.approx(4.0)


def test_bad_timing_input_is_refused():
    with pytest.raises(ConfigurationError, match="at least one frame"):
        plan_timing(0, REEL)
    with pytest.raises(ConfigurationError, match="positive"):
        plan_timing(5, REEL, frame_interval_s=-1)
    with pytest.raises(ConfigurationError, match="short_mode"):
        plan_timing(5, REEL, short_mode="bounce")


def test_timestamp_labels():
    assert format_timestamp(12.34, 30) == "t = 12.3 s"
    assert format_timestamp(75, 600) == "t = 1:15"
    assert format_timestamp(3725, 7200) == "t = 1:02:05"
    assert format_speed(2.5) == "2.5× speed"
    assert format_speed(1234.4) == "1,234× speed"


def test_fast_run_loops_every_frame_and_labels_the_slow_down():
    """40 frames recorded 1 ms apart (0.04 s) looped: a real-time loop would be one video
    frame (the clip froze on frame 0 while saying "1.2x speed"); each loop now shows every
    recorded frame once, and the label gives the true slow-down."""
    plan = plan_timing(40, REEL, frame_interval_s=0.001, short_mode="loop")
    assert plan.mode == "looped"
    assert plan.n_frames == 3 * 40  # whole loops of 40 video frames until >= 3 s
    assert np.array_equal(plan.source_index, np.tile(np.arange(40), 3))
    assert plan.speed_factor == pytest.approx(0.04 / (40 / 30))
    assert format_speed(plan.speed_factor) == "0.03× speed"
    # a fast run too long to loop within the clip (200 frames > 90 video frames) is slowed
    slowed = plan_timing(200, REEL, frame_interval_s=0.001, short_mode="loop")
    assert slowed.mode == "slowed"
    assert slowed.n_frames == 90
    assert len(np.unique(slowed.source_index)) == 90  # it plays: 90 different frames
    assert slowed.speed_factor == pytest.approx(0.2 / 3.0)
    # the time labels of such a run are in milliseconds (not "t = 0.0 s" throughout)
    assert format_timestamp(0.02, 0.039) == "t = 20.0 ms"
    assert format_timestamp(0.25, 0.5) == "t = 250 ms"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_non_finite_durations_and_intervals_are_refused(bad):
    with pytest.raises(ConfigurationError, match="duration must be a positive number"):
        plan_timing(5, REEL, duration_s=bad)
    with pytest.raises(ConfigurationError, match="interval must be a positive number"):
        plan_timing(5, REEL, frame_interval_s=bad)
