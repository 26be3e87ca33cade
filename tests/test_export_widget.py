"""The napari export widget in a real viewer (under the virtual display of ``dev.sh test``)."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("av")
if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
    pytest.skip("no display: run under `bash dev.sh test` (Xvfb)", allow_module_level=True)

from _video_probe import probe
from scope.export import build_renderer
from scope.sim.samples import make_sample

pytestmark = pytest.mark.napari


@pytest.fixture
def viewer_with_layers(make_napari_viewer):
    from scipy.ndimage import gaussian_filter

    viewer = make_napari_viewer()
    sim = np.stack([np.roll(make_sample((128, 128), "filaments", seed=7), k, 1) for k in range(3)])
    wf = np.stack([gaussian_filter(s, 2.5)[::2, ::2] for s in sim])
    viewer.add_image(
        sim,
        name="SIM",
        scale=(1, 0.0325, 0.0325),
        colormap="magma",
        metadata={"frame_interval_s": 10.0},
    )
    viewer.add_image(wf, name="widefield", scale=(1, 0.065, 0.065))
    return viewer, sim, wf


def test_widget_previews_and_exports(viewer_with_layers, qtbot, tmp_path):
    from scope.napari.export_widget import ExportVideoWidget

    viewer, sim, wf = viewer_with_layers
    widget = ExportVideoWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Export video")
    assert [widget.sim_layer.itemText(i) for i in range(widget.sim_layer.count())] == [
        "SIM",
        "widefield",
    ]
    assert widget.pixel_size.value() == pytest.approx(32.5)  # 0.0325 µm from the layer scale
    assert widget.widefield_layer.currentText() == "widefield"  # guessed from its name

    widget.widefield_layer.setCurrentText("widefield")
    widget.layout_box.setCurrentText("side-by-side")
    widget.preset.setCurrentText("gif")
    widget.title.setText("Filaments")
    assert widget.output.text().endswith(".gif")
    frame = widget.preview()
    expected = build_renderer(
        sim,
        widefield=wf,
        layout="side-by-side",
        preset="gif",
        pixel_size_nm=32.5,
        frame_interval_s=10.0,
        title="Filaments",
        colormap="magma",
    )
    np.testing.assert_array_equal(frame, expected.frame(expected.n_frames // 2))
    assert "gif side-by-side" in widget.status.text()

    # screenshot check: the preview shows in the widget as rendered
    pixmap = widget.preview_label.pixmap()
    assert pixmap is not None
    assert pixmap.width() == 270
    shot = widget.preview_label.grab().toImage()
    assert not shot.isNull()
    y, x = shot.height() // 2, shot.width() // 2
    colours = {
        shot.pixelColor(x + dx, y + dy).name()
        for dx in range(-60, 60, 7)
        for dy in range(-60, 60, 7)
    }
    assert len(colours) > 10  # an image, not a blank label

    widget.output.setText(str(tmp_path / "clip.gif"))
    widget.duration.setValue(2.0)
    with qtbot.waitSignal(widget.exported, timeout=60_000) as blocker:
        widget.export()
    out = tmp_path / "clip.gif"
    assert blocker.args == [str(out)]
    p = probe(out)
    assert (p["width"], p["height"]) == (480, 480)
    assert p["duration_s"] == pytest.approx(2.0)  # 30 s recorded shown in the 2 s asked for
    assert "Wrote" in widget.status.text()
    assert widget.export_button.isEnabled()


def test_widget_reports_problems_and_follows_layers(viewer_with_layers, qtbot):
    from scope.napari.export_widget import ExportVideoWidget

    viewer, _, _ = viewer_with_layers
    widget = ExportVideoWidget(viewer)
    widget.layout_box.setCurrentText("wipe")
    widget.widefield_layer.setCurrentText("(none)")
    assert widget.preview() is None
    assert "widefield" in widget.status.text()
    viewer.layers.remove("widefield")
    assert widget.sim_layer.count() == 1
    viewer.layers.clear()
    assert widget.preview() is None
    assert "no image layer" in widget.status.text()
    widget.close()
    viewer.add_image(np.zeros((8, 8)), name="late")
    assert widget.sim_layer.count() == 0  # disconnected after close


def test_a_new_sim_or_widefield_layer_takes_over_from_a_raw_choice(make_napari_viewer):
    """Before a reconstruction only the raw stack is there and becomes the choice; the SIM and
    widefield layers the reconstruction adds are then picked up (the widget used to keep
    exporting the raw stack); a result the user picked stays picked."""
    from scope.napari.export_widget import ExportVideoWidget

    viewer = make_napari_viewer()
    raw = np.random.default_rng(0).random((9, 64, 64)).astype(np.float32)
    viewer.add_image(raw, name="cell raw", metadata={"scope_kind": "raw"})
    widget = ExportVideoWidget(viewer)
    assert widget.sim_layer.currentText() == "cell raw"
    assert widget.widefield_layer.currentText() == "(none)"
    wf = viewer.add_image(raw.mean(0), name="cell widefield", metadata={"scope_kind": "widefield"})
    sim = viewer.add_image(np.ones((128, 128)), name="cell SIM", metadata={"scope_kind": "sim"})
    assert widget.sim_layer.currentText() == sim.name
    assert widget.widefield_layer.currentText() == wf.name
    viewer.add_image(np.ones((128, 128)), name="other SIM", metadata={"scope_kind": "sim"})
    assert widget.sim_layer.currentText() == sim.name  # a result chosen stays chosen


def test_export_problems_are_told_once_in_the_widgets_words(viewer_with_layers, qtbot, tmp_path):
    """Wipe without a widefield layer and overlay of one channel name the widget's choices,
    not Python's arguments or the command line's flags; a missing output folder is named; an
    error in the export worker shows once (it used to be raised again in the GUI thread)."""
    from scope.napari.export_widget import ExportVideoWidget

    viewer, _, _ = viewer_with_layers
    widget = ExportVideoWidget(viewer)
    widget.layout_box.setCurrentText("wipe")
    widget.widefield_layer.setCurrentText("(none)")
    assert widget.preview() is None
    text = widget.status.text()
    assert "pick a layer in Widefield" in text
    assert "widefield=" not in text and "--" not in text
    widget.layout_box.setCurrentText("overlay")
    viewer.layers["widefield"].visible = False
    assert widget.preview() is None
    assert "show the other channels as visible layers" in widget.status.text()
    assert "channel_axis" not in widget.status.text()

    widget.layout_box.setCurrentText("side-by-side")
    widget.widefield_layer.setCurrentText("widefield")
    missing = tmp_path / "no such folder" / "clip.mp4"
    widget.output.setText(str(missing))
    failures: list[str] = []
    widget.failed.connect(failures.append)
    assert widget.export() is None
    assert widget.status.text() == (
        f"Cannot export: the folder {missing.parent} does not exist: choose an existing "
        "folder in Output"
    )

    viewer.layers["widefield"].data = viewer.layers["widefield"].data[:2]  # 2 frames, SIM 3
    widget.output.setText(str(tmp_path / "clip.mp4"))
    with qtbot.capture_exceptions() as raised:
        with qtbot.waitSignal(widget.failed, timeout=60_000):
            widget.export()
        qtbot.wait(50)
    assert raised == []
    assert widget.status.text().startswith("Export failed: widefield has 2 frames")
    assert failures[-1] == widget.status.text().removeprefix("Export failed: ")
    assert widget.export_button.isEnabled()


def test_a_clip_named_avi_is_written_as_mp4_and_says_so(viewer_with_layers, qtbot, tmp_path):
    """The presets write MP4 (or GIF): `clip.avi` becomes `clip.mp4`, and the status says so
    (it used to write MP4 under the .avi name without a word)."""
    from scope.napari.export_widget import ExportVideoWidget

    viewer, _, _ = viewer_with_layers
    widget = ExportVideoWidget(viewer)
    widget.preset.setCurrentText("square")
    widget.layout_box.setCurrentText("sim")
    widget.output.setText(str(tmp_path / "clip.avi"))
    with qtbot.waitSignal(widget.exported, timeout=120_000) as blocker:
        widget.export()
    assert blocker.args == [str(tmp_path / "clip.mp4")]
    assert not (tmp_path / "clip.avi").exists()
    p = probe(tmp_path / "clip.mp4")
    assert (p["width"], p["height"]) == (1080, 1080)
    assert "writes MP4, not .avi: saved as clip.mp4" in widget.status.text()
