"""Output presets for social platforms and chats.

Each :class:`VideoPreset` fixes the frame size, frame rate, the duration limits and the size
limit of one kind of post, and the *safe area*: the margins (in output pixels) that the
platforms' own interface (profile name, caption, like/share buttons, progress bar) may cover.
Every piece of text scope draws stays inside the safe area; images may extend beyond it.

Safe-area margins used (pixels, ``top / bottom / left / right``):

========== =========== ======================== ================================================
preset     size        margins                  why
========== =========== ======================== ================================================
reel       1080x1920   250 / 420 / 60 / 140     9:16 full-screen feeds (Reels, TikTok, Shorts):
                                                status bar and tabs on top; caption, audio
                                                line and progress bar at the bottom; the
                                                like/comment/share column on the right.
portrait   1080x1350   68 / 68 / 54 / 54        4:5 feed posts: ~5 % title-safe border.
square     1080x1080   54 / 54 / 54 / 54        1:1 feed posts: 5 % title-safe border.
landscape  1920x1080   54 / 54 / 96 / 96        16:9 players: the 90 % title-safe area of
                                                broadcast practice (SMPTE ST 2046-1).
gif        480x480     16 / 16 / 16 / 16        chats show the whole image; a small border.
========== =========== ======================== ================================================

The margins for full-screen feeds are the union of the interface areas of the three big apps
as published in their creator guidelines (they change often; these are deliberately generous).

Size and length limits are conservative: the smallest limit among the platforms each preset
targets, so that a clip uploads everywhere without being refused. MP4 clips are at least 3 s
long (the shortest clip Reels and TikTok accept) and at most 90 s; their bitrate is capped so
that the file stays under ``max_file_mb`` (see :func:`scope.export.encode.bitrate_cap_kbps`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scope.errors import ConfigurationError

PresetName = Literal["reel", "square", "portrait", "landscape", "gif"]


@dataclass(frozen=True)
class SafeArea:
    """Margins in output pixels that text must keep clear of."""

    top_px: int
    bottom_px: int
    left_px: int
    right_px: int

    def rect(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The safe rectangle ``(left, top, right, bottom)`` of a ``width x height`` frame."""
        return (self.left_px, self.top_px, width - self.right_px, height - self.bottom_px)


@dataclass(frozen=True)
class VideoPreset:
    """Everything that defines one output format.

    Attributes
    ----------
    name : str
        Preset name as used on the command line.
    width_px, height_px : int
        Frame size; both even (H.264 with 4:2:0 chroma needs even sizes).
    container : {"mp4", "gif"}
        Output kind.
    fps : int
        Constant frame rate.
    min_duration_s, max_duration_s : float
        Shortest and longest clip the target platforms accept.
    target_duration_s : float
        Length that long runs are condensed to unless a duration is asked for.
    still_duration_s : float
        Length of the slow zoom made from a single image.
    max_file_mb : float
        Largest file (MB, 10**6 bytes) the target platforms all accept.
    max_bitrate_kbps : int
        Video bitrate ceiling (MP4 only); lowered further for long clips by ``max_file_mb``.
    safe_area : SafeArea
        Margins kept free of text.
    description : str
        Where the preset is meant to go.
    """

    name: str
    width_px: int
    height_px: int
    container: Literal["mp4", "gif"]
    fps: int
    min_duration_s: float
    max_duration_s: float
    target_duration_s: float
    still_duration_s: float
    max_file_mb: float
    max_bitrate_kbps: int
    safe_area: SafeArea
    description: str = ""

    def __post_init__(self) -> None:
        if self.width_px % 2 or self.height_px % 2 or self.width_px < 16 or self.height_px < 16:
            raise ConfigurationError(
                f"preset {self.name!r}: frame size {self.width_px}x{self.height_px}; expected "
                "even sizes of at least 16 px (H.264 4:2:0 needs even dimensions)"
            )
        if self.fps < 1:
            raise ConfigurationError(f"preset {self.name!r}: fps must be >= 1, got {self.fps}")
        if not 0 < self.min_duration_s <= self.max_duration_s:
            raise ConfigurationError(
                f"preset {self.name!r}: durations must satisfy 0 < min <= max, got "
                f"{self.min_duration_s} and {self.max_duration_s}"
            )
        left, top, right, bottom = self.safe_area.rect(self.width_px, self.height_px)
        if right - left < 32 or bottom - top < 32:
            raise ConfigurationError(
                f"preset {self.name!r}: the safe area {left, top, right, bottom} leaves no room "
                "for text; use smaller margins"
            )

    @property
    def size(self) -> tuple[int, int]:
        """``(width_px, height_px)``."""
        return (self.width_px, self.height_px)

    @property
    def safe_rect(self) -> tuple[int, int, int, int]:
        """Safe rectangle ``(left, top, right, bottom)`` in output pixels."""
        return self.safe_area.rect(self.width_px, self.height_px)


_FEED_MARGINS = SafeArea(54, 54, 54, 54)


def _mp4_preset(
    name: str,
    width_px: int,
    height_px: int,
    *,
    max_bitrate_kbps: int,
    safe_area: SafeArea,
    description: str,
    target_duration_s: float = 15.0,
    still_duration_s: float = 6.0,
) -> VideoPreset:
    """An MP4 preset: 30 fps, 3-90 s, at most 64 MB (what every target platform accepts)."""
    return VideoPreset(
        name,
        width_px,
        height_px,
        container="mp4",
        fps=30,
        min_duration_s=3.0,
        max_duration_s=90.0,
        target_duration_s=target_duration_s,
        still_duration_s=still_duration_s,
        max_file_mb=64.0,
        max_bitrate_kbps=max_bitrate_kbps,
        safe_area=safe_area,
        description=description,
    )


PRESETS: dict[str, VideoPreset] = {
    "reel": _mp4_preset(
        "reel",
        1080,
        1920,
        max_bitrate_kbps=8000,
        safe_area=SafeArea(250, 420, 60, 140),
        description="9:16 full screen: Instagram Reels, TikTok, YouTube Shorts, stories",
    ),
    "square": _mp4_preset(
        "square",
        1080,
        1080,
        max_bitrate_kbps=6000,
        safe_area=_FEED_MARGINS,
        description="1:1 feed post (Instagram, Mastodon, Bluesky, LinkedIn)",
    ),
    "portrait": _mp4_preset(
        "portrait",
        1080,
        1350,
        max_bitrate_kbps=6000,
        safe_area=SafeArea(68, 68, 54, 54),
        description="4:5 feed post (Instagram, Facebook)",
    ),
    "landscape": _mp4_preset(
        "landscape",
        1920,
        1080,
        max_bitrate_kbps=8000,
        safe_area=SafeArea(54, 54, 96, 96),
        description="16:9 player (YouTube, X, talks)",
        target_duration_s=20.0,
        still_duration_s=8.0,
    ),
    "gif": VideoPreset(
        "gif",
        480,
        480,
        container="gif",
        fps=20,
        min_duration_s=2.0,
        max_duration_s=15.0,
        target_duration_s=6.0,
        still_duration_s=4.0,
        max_file_mb=8.0,
        max_bitrate_kbps=0,
        safe_area=SafeArea(16, 16, 16, 16),
        description="looping GIF for chats (Slack, Discord, WhatsApp, Signal)",
    ),
}


def get_preset(preset: str | VideoPreset) -> VideoPreset:
    """The preset named ``preset`` (a :class:`VideoPreset` is returned unchanged).

    Raises
    ------
    ConfigurationError
        For an unknown name; the message lists the known ones.
    """
    if isinstance(preset, VideoPreset):
        return preset
    try:
        return PRESETS[str(preset).lower()]
    except KeyError:
        raise ConfigurationError(
            f"unknown video preset {preset!r}; expected one of {', '.join(PRESETS)}"
        ) from None
