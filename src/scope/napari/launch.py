"""Open napari with the scope plugin docked (used by ``scope view`` and ``scope demo``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def screen_missing() -> str | None:
    """Why napari cannot open a window here (None: it can): on Linux a window needs an X or
    Wayland display (or an explicit Qt platform such as ``offscreen``)."""
    import sys

    if not sys.platform.startswith("linux"):
        return None
    if any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        return None
    return (
        "no screen to open napari on (neither DISPLAY nor WAYLAND_DISPLAY is set): run it on "
        "the computer's desktop, or over ssh -X, or under xvfb-run for a virtual screen"
    )


def make_viewer(
    path: str | Path | None = None, *, live: bool = False, viewer: Any = None
) -> tuple[Any, dict[str, Any]]:
    """A napari viewer with the reconstruction and video-export widgets docked (and the live
    widget when ``live`` is true or no file is given), ``path`` opened with the plugin's reader.

    Returns ``(viewer, widgets)``: ``widgets`` maps ``"reconstruction"``, ``"export"`` (and
    ``"live"``) to the docked widgets.
    """
    # Mesa's software renderer (llvmpipe: VMs, Xvfb, no GPU driver) rasterises in worker threads
    # that spin while they wait and starve live acquisition and reconstruction on small
    # machines; rendering in the GUI thread instead costs nothing where a GPU draws
    os.environ.setdefault("LP_NUM_THREADS", "0")
    import napari

    from scope.napari.export_widget import ExportVideoWidget
    from scope.napari.live_widget import LiveImagingWidget
    from scope.napari.reconstruction_widget import ReconstructionWidget

    viewer = viewer or napari.Viewer(title="scope")
    widgets: dict[str, Any] = {}
    if path is not None:
        viewer.open(str(path), plugin="scope-sim")
    rec = ReconstructionWidget(viewer)
    rec_dock = viewer.window.add_dock_widget(rec, name="SIM reconstruction", area="right")
    widgets["reconstruction"] = rec
    if live or path is None:
        live_w = LiveImagingWidget(viewer)
        live_dock = viewer.window.add_dock_widget(
            live_w, name="Live SIM imaging", area="right", tabify=True
        )
        widgets["live"] = live_w
    export = ExportVideoWidget(viewer)
    export_dock = viewer.window.add_dock_widget(
        export, name="Export video", area="right", tabify=True
    )
    widgets["export"] = export
    # the tab on top: live imaging (no file, or --live), else the reconstruction
    on_top = live_dock if "live" in widgets else rec_dock
    if on_top is not export_dock:
        on_top.raise_()
    return viewer, widgets


def open_viewer(path: str | Path | None = None, *, live: bool = False) -> None:
    """Open napari (blocking until it is closed) with the scope widgets; see :func:`make_viewer`.

    With ``live=True`` the live widget is on top, ready to image the simulated microscope.
    """
    import napari

    _, widgets = make_viewer(path, live=live)
    live_w = widgets.get("live")
    try:
        napari.run()
    finally:
        if live_w is not None:
            live_w.shutdown()
