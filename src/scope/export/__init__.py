"""Social video export: SIM runs to post-ready H.264 MP4 clips and GIFs.

Modules: :mod:`~scope.export.presets` (formats and safe areas), :mod:`~scope.export.colormaps`,
:mod:`~scope.export.render` (contrast, scale bar), :mod:`~scope.export.text`,
:mod:`~scope.export.layouts` (sim, overlay, side-by-side, wipe), :mod:`~scope.export.timing`
(speed-up, condensing, looping, still zoom), :mod:`~scope.export.encode` (PyAV/libx264, GIF),
:mod:`~scope.export.sources` (files to arrays) and :mod:`~scope.export.clip` (the API).
"""

from __future__ import annotations

from scope.export.clip import ExportResult, build_renderer, export_video, write_clip
from scope.export.colormaps import COLORMAPS
from scope.export.layouts import LAYOUTS
from scope.export.presets import PRESETS, SafeArea, VideoPreset, get_preset
from scope.export.render import RenderStyle

__all__ = [
    "COLORMAPS",
    "LAYOUTS",
    "PRESETS",
    "ExportResult",
    "RenderStyle",
    "SafeArea",
    "VideoPreset",
    "build_renderer",
    "export_video",
    "get_preset",
    "write_clip",
]
