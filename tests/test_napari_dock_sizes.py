"""The plugin's docks leave the canvas room in a small window (real napari viewer under Xvfb):
each is narrow (its least and its preferred width), stays so with long layer names, long
messages and the largest live statistics, and a 1280 x 800 window holds it without growing
(what does not fit scrolls)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("LP_NUM_THREADS", "0")
pytest.importorskip("napari")
if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
    pytest.skip("no display: run under `bash dev.sh test` (Xvfb)", allow_module_level=True)

from napari_helpers import screenshot

pytestmark = pytest.mark.napari

#: the widest the live dock may be (it was 545 px), and the other two
LIVE_WIDTH_PX = 380
OTHER_WIDTH_PX = 420
#: a small laptop window
SMALL_WINDOW = (1280, 800)
#: a layer name as the reader makes them from a file of several channels
LONG_NAME = "2024-05-17 HeLa mito series 03.ome.tif c1 (600 nm)"


def _docked(viewer, widget, qtbot, name: str):
    """``widget`` docked in ``viewer``'s window, laid out as shown."""
    viewer.window.add_dock_widget(widget, name=name)
    qtbot.wait(50)
    return widget


def _widths(widget) -> tuple[int, int]:
    return widget.minimumSizeHint().width(), widget.sizeHint().width()


def _fits_small_window(viewer, qtbot, name: str, tmp_path: Path) -> Path:
    """The window resized to :data:`SMALL_WINDOW` keeps that size (no dock forces it taller
    or wider); its screenshot."""
    path = screenshot(viewer, name, tmp_path, size=SMALL_WINDOW)
    qtbot.wait(50)
    window = viewer.window._qt_window
    assert (window.width(), window.height()) == SMALL_WINDOW
    return path


def _busiest_stats():
    """Statistics of a long session at their widest (every count large, a bent pattern)."""
    from scope.napari.live import LiveStats

    return LiveStats(
        raw_fps=123.4,
        sim_fps=123.4,
        raw_frames=1_234_567,
        sim_images=1_234_567,
        dropped_frames=12_345,
        extra_frames=12_345,
        invalid_sets=12_345,
        kept_sets=12_345,
        valid_sets=123_456,
        skipped_windows=123_456,
        modulation=(0.81, 0.79, 0.80),
        clipped_fraction=0.0123,
        defect_pixels=12_345,
        pattern_estimates=1234,
        pattern_drift_rad=1.25,
        reconstruction_ms=123.4,
        state="running",
    )


def test_the_live_dock_is_narrow(make_napari_viewer, qtbot, tmp_path):
    """The live dock needs at most 380 px (it was 545 px: a row of widgets, long item texts),
    with its statistics at their widest and a long message too; every control is still
    there, the settings scroll and the buttons and statistics stay in view."""
    from scope.napari.live_widget import STATS_LINES, LiveImagingWidget, stats_text

    viewer = make_napari_viewer(show=True)
    widget = _docked(viewer, LiveImagingWidget(viewer), qtbot, "Live SIM imaging")
    assert max(_widths(widget)) <= LIVE_WIDTH_PX, _widths(widget)

    text = stats_text(_busiest_stats())
    assert text.count("\n") == STATS_LINES - 1 == stats_text(None).count("\n")
    widget.stats_label.setText(text)
    widget.status.setText("cannot start: " + "a long reason the session gives " * 8)
    qtbot.wait(50)
    assert max(_widths(widget)) <= LIVE_WIDTH_PX, _widths(widget)
    assert widget.trigger.count() == 3 and widget.trigger.toolTip()
    _fits_small_window(viewer, qtbot, "napari_live_small_window.png", tmp_path)
    for button in (widget.live_button, widget.sim_button, widget.record_button):
        assert button.isVisible() and button.width() >= button.minimumSizeHint().width()
    assert widget.stats_label.isVisible()
    assert widget.stats_label.width() >= widget.stats_label.sizeHint().width()  # not cut


def test_the_reconstruction_and_export_docks_are_narrow(make_napari_viewer, qtbot, tmp_path):
    """With a raw layer of a long name selected and a long status message, the reconstruction
    and export docks need at most 420 px each, and a 1280 x 800 window holds them."""
    from scope.napari.export_widget import ExportVideoWidget
    from scope.napari.reconstruction_widget import ReconstructionWidget

    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((9, 64, 64), np.uint16), name=LONG_NAME)
    viewer.add_image(
        np.zeros((128, 128), np.float32), name=f"{LONG_NAME} SIM", metadata={"scope_kind": "sim"}
    )
    reconstruction = _docked(viewer, ReconstructionWidget(viewer), qtbot, "SIM reconstruction")
    assert reconstruction.layer_box.currentText() == LONG_NAME
    assert "states no pixel size" in reconstruction.status.text()  # a long message
    export = _docked(viewer, ExportVideoWidget(viewer), qtbot, "Export video")
    assert export.sim_layer.currentText() == f"{LONG_NAME} SIM"
    for widget in (reconstruction, export):
        assert max(_widths(widget)) <= OTHER_WIDTH_PX, (type(widget).__name__, _widths(widget))
    _fits_small_window(viewer, qtbot, "napari_reconstruction_small_window.png", tmp_path)
