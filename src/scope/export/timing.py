"""How long a clip runs and which recorded frame each video frame shows.

Rules (``D`` = the clip's length, ``R`` = the run's recorded length ``n * interval``):

* A run longer than the preset's target length is **condensed** to it: frames are sampled
  evenly and the speed-up ``R / D`` is shown on screen (e.g. "120x speed").
* A run that fits between the platform's minimum and the target plays in **real time**.
* A run shorter than the platform's minimum is **slowed** (each frame held longer; shown as
  "0.5x speed") or **looped** (played in real time, repeated whole) up to the minimum. A loop
  shows every recorded frame: a run recorded faster than the clip's frame rate (a real-time
  loop would skip frames, down to a single frozen one) plays one video frame per recorded
  frame, slowed, and its speed label says so ("0.03x speed"); a run too long to loop that way
  within the clip's length is slowed instead.
* A single image becomes a **still** clip with a slow zoom and pan (Ken Burns effect) of the
  preset's still length.
* A duration asked for explicitly wins, clamped to the platform's limits.

Without a frame interval a run is played at :data:`DEFAULT_PLAYBACK_FPS` and no speed is shown.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from scope.errors import ConfigurationError
from scope.export.presets import VideoPreset

log = logging.getLogger(__name__)

#: playback rate (source frames per second) for runs with no time information
DEFAULT_PLAYBACK_FPS = 10.0
#: zoom reached at the end of a still clip
STILL_ZOOM = 1.18

TimingMode = Literal["still", "realtime", "condensed", "slowed", "looped"]
ShortMode = Literal["slow", "loop"]


@dataclass(frozen=True)
class TimingPlan:
    """Which source frame each output frame shows, and how fast the clip runs.

    Attributes
    ----------
    source_index : ndarray of int
        ``(n_frames,)``: the source frame shown by each output frame.
    fps : int
        Output frame rate.
    mode : str
        ``still``, ``realtime``, ``condensed``, ``slowed`` or ``looped``.
    speed_factor : float or None
        Recorded seconds per second of video (``None`` when the run has no time information).
    crop_boxes : ndarray or None
        ``(n_frames, 4)`` crop ``(x0, y0, x1, y1)`` in fractions of the image (stills only).
    """

    source_index: np.ndarray
    fps: int
    mode: TimingMode
    speed_factor: float | None = None
    crop_boxes: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.source_index.size)

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    def crop_box(self, i: int) -> tuple[float, float, float, float]:
        """Crop of output frame ``i`` (the whole image when there is no zoom)."""
        if self.crop_boxes is None:
            return (0.0, 0.0, 1.0, 1.0)
        x0, y0, x1, y1 = self.crop_boxes[i]
        return (float(x0), float(y0), float(x1), float(y1))


def _clamp_duration(duration_s: float, preset: VideoPreset) -> float:
    clamped = min(max(duration_s, preset.min_duration_s), preset.max_duration_s)
    if not math.isclose(clamped, duration_s):
        log.warning(
            "clip length %.1f s is outside the %s preset's %.0f-%.0f s; using %.1f s",
            duration_s,
            preset.name,
            preset.min_duration_s,
            preset.max_duration_s,
            clamped,
        )
    return clamped


def ken_burns_boxes(n_frames: int, *, zoom: float = STILL_ZOOM, drift: float = 0.04) -> np.ndarray:
    """Crop boxes of a slow zoom-in with a gentle diagonal drift, eased in and out.

    Returns
    -------
    ndarray
        ``(n_frames, 4)``: ``(x0, y0, x1, y1)`` in fractions of the image; the first box is
        the whole image.
    """
    t = np.linspace(0.0, 1.0, n_frames) if n_frames > 1 else np.zeros(1)
    ease = t * t * (3 - 2 * t)  # smoothstep: no jerk at start and end
    side = 1.0 / (1.0 + (zoom - 1.0) * ease)
    cx = np.clip(0.5 + drift * ease, side / 2, 1 - side / 2)
    cy = np.clip(0.5 - 0.5 * drift * ease, side / 2, 1 - side / 2)
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)


def plan_timing(
    n_source_frames: int,
    preset: VideoPreset,
    *,
    frame_interval_s: float | None = None,
    duration_s: float | None = None,
    short_mode: ShortMode = "slow",
) -> TimingPlan:
    """Plan a clip of ``n_source_frames`` recorded frames for ``preset``.

    Parameters
    ----------
    n_source_frames : int
        Number of frames (time points) to show; 1 makes a still clip with a slow zoom.
    preset : VideoPreset
        Gives the frame rate and the duration limits.
    frame_interval_s : float, optional
        Time between recorded frames; enables real-time playback and the speed label.
    duration_s : float, optional
        Clip length wanted (clamped to the preset's limits).
    short_mode : {"slow", "loop"}
        How runs shorter than the platform minimum are stretched.

    Examples
    --------
    >>> from scope.export.presets import get_preset
    >>> plan = plan_timing(3600, get_preset("reel"), frame_interval_s=1.0)
    >>> plan.mode, plan.duration_s, round(plan.speed_factor)
    ('condensed', 15.0, 240)
    """
    if n_source_frames < 1:
        raise ConfigurationError(f"a clip needs at least one frame, got {n_source_frames}")
    if frame_interval_s is not None and not (
        frame_interval_s > 0 and math.isfinite(frame_interval_s)
    ):
        raise ConfigurationError(
            f"frame interval must be a positive number of seconds, got {frame_interval_s}"
        )
    if duration_s is not None and not (duration_s > 0 and math.isfinite(duration_s)):
        raise ConfigurationError(
            f"clip duration must be a positive number of seconds, got {duration_s}"
        )
    if short_mode not in ("slow", "loop"):
        raise ConfigurationError(f"short_mode must be 'slow' or 'loop', got {short_mode!r}")
    fps = preset.fps
    if n_source_frames == 1:
        length = _clamp_duration(duration_s or preset.still_duration_s, preset)
        n_out = max(1, round(length * fps))
        return TimingPlan(
            np.zeros(n_out, dtype=np.int64), fps, "still", None, ken_burns_boxes(n_out)
        )

    recorded_s = n_source_frames * frame_interval_s if frame_interval_s else None
    natural_s = recorded_s if recorded_s else n_source_frames / DEFAULT_PLAYBACK_FPS
    if duration_s is not None:
        length = _clamp_duration(duration_s, preset)
    elif natural_s > preset.target_duration_s:
        length = preset.target_duration_s
    else:
        length = max(natural_s, preset.min_duration_s)
    n_out = max(1, round(length * fps))

    if short_mode == "loop" and length > natural_s * (1 + 1e-6):
        # a loop shows every recorded frame: a run recorded faster than the clip's frame rate
        # gets one video frame per recorded frame (slowed), not a real-time loop that skips
        # frames (a 40-frame burst of 0.04 s would be one frozen frame)
        per_loop = max(round(natural_s * fps), n_source_frames)
        if per_loop < n_out:
            loops = math.ceil(n_out / per_loop)
            while loops > 1 and loops * per_loop > preset.max_duration_s * fps:
                loops -= 1
            i = np.arange(loops * per_loop)
            index = ((i % per_loop) * n_source_frames) // per_loop
            speed = recorded_s / (per_loop / fps) if recorded_s else None
            return TimingPlan(index.astype(np.int64), fps, "looped", speed)
        log.info(
            "%d frames do not loop within %.1f s at %d frames/s (one video frame each): "
            "slowed instead",
            n_source_frames,
            length,
            fps,
        )

    index = (np.arange(n_out) * n_source_frames) // n_out
    shown_s = n_out / fps
    speed = recorded_s / shown_s if recorded_s else None
    if abs(shown_s - natural_s) <= 0.5 / fps:
        mode: TimingMode = "realtime"
    elif shown_s < natural_s:
        mode = "condensed"
    else:
        mode = "slowed"
    return TimingPlan(index.astype(np.int64), fps, mode, speed)


def format_speed(speed_factor: float) -> str:
    """On-screen speed label: ``"240× speed"``, ``"2.5× speed"``, ``"real time"``."""
    if abs(speed_factor - 1.0) < 0.02:
        return "real time"
    if speed_factor >= 10:
        return f"{speed_factor:,.0f}× speed"
    return f"{speed_factor:.2g}× speed"


def format_timestamp(t_s: float, total_s: float) -> str:
    """Timestamp label: milliseconds for runs under a second, seconds with one decimal under a
    minute, else ``m:ss`` / ``h:mm:ss``."""
    if total_s < 0.1:
        return f"t = {1000 * t_s:.1f} ms"
    if total_s < 1:
        return f"t = {1000 * t_s:.0f} ms"
    if total_s < 60:
        return f"t = {t_s:.1f} s"
    whole = round(t_s)
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    return f"t = {h}:{m:02d}:{s:02d}" if total_s >= 3600 else f"t = {m}:{s:02d}"
