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
