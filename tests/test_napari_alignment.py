"""Where scope's layers lie in napari's world (real viewer under Xvfb): a time series' t slider
moves raw, widefield and SIM together; the spectrum keeps off the image's view; the scale bar
reads µm; a file without a pixel size is asked for one, and the layers follow the value given;
results of several colours open as a composite, widefield ones too; SIM and widefield saved
together reopen together."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("LP_NUM_THREADS", "0")
pytest.importorskip("napari")
if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
    pytest.skip("no display: run under `bash dev.sh test` (Xvfb)", allow_module_level=True)

pytestmark = pytest.mark.napari


def _time_series_file(folder, n_t: int = 3, size: int = 64, *, pixel_um: float | None = 0.065):
    """A raw OME-TIFF ``(T, 9, Y, X)`` whose time points differ (one sample each), and the
    array."""
    import tifffile

    from sim_cases import make_case

    raw = np.stack([make_case(t, size=size).raw for t in range(n_t)]).astype(np.uint16)
    path = folder / "series.ome.tif"
    meta = {"axes": "TZYX"}
    if pixel_um:
        meta.update(PhysicalSizeX=pixel_um, PhysicalSizeY=pixel_um)
    tifffile.imwrite(path, raw, ome=True, metadata=meta)
    return path, raw


def _shown(layer) -> np.ndarray:
    """The plane napari draws of ``layer`` at the viewer's current slider positions."""
    return np.asarray(layer._slice.image.raw)


def _reconstructed(viewer, qtbot, widget, name: str):
    widget.reconstruct_stack()
    qtbot.waitUntil(lambda: f"{name} SIM" in viewer.layers and not widget.busy, timeout=60_000)
    return viewer.layers[f"{name} SIM"], viewer.layers[f"{name} widefield"]


def _assert_t_moves_all(viewer, raw, sim, wf) -> None:
    """Every t: raw, SIM and widefield show that time point, whatever the angle·phase slider."""
    t_axis = viewer.dims.axis_labels.index("t")
    p_axis = viewer.dims.axis_labels.index("angle·phase")
    for t in range(sim.data.shape[0]):
        for p in (0, 8):  # an angle·phase beyond the series' length too
            step = list(viewer.dims.current_step)
            step[t_axis], step[p_axis] = t, p
            viewer.dims.current_step = tuple(step)
            np.testing.assert_array_equal(_shown(sim), np.asarray(sim.data[t]))
            np.testing.assert_array_equal(_shown(wf), np.asarray(wf.data[t]))
            np.testing.assert_array_equal(_shown(raw), np.asarray(raw.data)[p, t])


@pytest.mark.parametrize("lazy", [False, True], ids=["in-memory", "read-as-shown"])
def test_the_t_slider_moves_raw_widefield_and_sim_together(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, lazy
):
    """A time series opened with the reader, reconstructed in the widget: SIM and widefield
    follow t (they used to follow angle·phase and vanish beyond t's range); saved, and opened
    again beside the raw file, they still do; the raw frames are the file's, also when a large
    file is read as it is shown."""
    from napari import save_layers

    from scope.napari import _reader
    from scope.napari._layers import FramesFirst
    from scope.napari.reconstruction_widget import ReconstructionWidget

    if lazy:
        monkeypatch.setattr(_reader, "IN_MEMORY_BYTES", 0)
    path, frames = _time_series_file(tmp_path)
    viewer = make_napari_viewer()
    (raw,) = viewer.open(str(path), plugin="scope-sim")
    assert raw.data.shape == (9, 3, 64, 64)  # the frames first
    assert isinstance(raw.data, FramesFirst) == lazy
    np.testing.assert_array_equal(np.asarray(raw.data)[4, 2], frames[2, 4])
    widget = ReconstructionWidget(viewer)
    widget.na.setValue(1.2)
    widget.wavelength.setValue(525.0)
    sim, wf = _reconstructed(viewer, qtbot, widget, "series.ome.tif")
    assert sim.data.shape == (3, 128, 128) and wf.data.shape == (3, 64, 64)
    assert sim.metadata["axes"] == "TYX"
    assert viewer.dims.axis_labels == ("angle·phase", "t", "y", "x")
    _assert_t_moves_all(viewer, raw, sim, wf)

    # SIM and widefield saved together (one Save Selected Layers), then opened beside the raw
    written = save_layers(str(tmp_path / "series.sim.ome.tif"), [sim, wf], plugin="scope-sim")
    assert sorted(os.path.basename(p) for p in written) == [
        "series.sim.ome.tif",
        "series.widefield.ome.tif",
    ]
    again = make_napari_viewer()
    (raw2,) = again.open(str(path), plugin="scope-sim")
    (sim2,) = again.open(str(tmp_path / "series.sim.ome.tif"), plugin="scope-sim")
    (wf2,) = again.open(str(tmp_path / "series.widefield.ome.tif"), plugin="scope-sim")
    assert sim2.metadata["scope_kind"] == "sim" and wf2.metadata["scope_kind"] == "widefield"
    np.testing.assert_allclose(np.asarray(sim2.data), np.asarray(sim.data), rtol=1e-6)
    _assert_t_moves_all(again, raw2, sim2, wf2)
    # a raw layer saved with the plugin's writer reopens as the same raw stack
    (saved,) = save_layers(str(tmp_path / "raw_copy.ome.tif"), [raw], plugin="scope-sim")
    (raw3,) = again.open(saved, plugin="scope-sim")
    assert raw3.metadata["axes"] == "PTYX"
    np.testing.assert_array_equal(np.asarray(raw3.data), np.asarray(raw.data))


def test_a_time_series_added_from_python_is_aligned_when_reconstructed(
    make_napari_viewer, qtbot, tmp_path
):
    """A raw array added as ``(T, P, Y, X)`` from a script: the widget reconstructs it and puts
    its frames first (a view, no copy), so the t slider moves all three layers."""
    from scope.napari.reconstruction_widget import ReconstructionWidget

    _, frames = _time_series_file(tmp_path)
    viewer = make_napari_viewer()
    meta = {"pixel_size_nm": 65.0, "na": 1.2, "wavelength_nm": 525.0}
    raw = viewer.add_image(frames, name="cells raw", metadata=meta, scale=(1, 1, 0.065, 0.065))
    widget = ReconstructionWidget(viewer)
    sim, wf = _reconstructed(viewer, qtbot, widget, "cells")
    assert raw.data.shape == (9, 3, 64, 64) and np.shares_memory(raw.data, frames)
    assert raw.metadata["axes"] == "PTYX" and "now comes first" in widget.status.text()
    _assert_t_moves_all(viewer, raw, sim, wf)


def test_spectrum_keeps_the_view_on_the_image_and_the_scale_bar_reads_um(make_napari_viewer, qtbot):
    """After Estimate, Home (reset_view) frames the image as before: the spectrum lies on the
    raw field, not in frequency space around 0; every layer is in µm, so the scale bar is."""
    from scope.napari._sample_data import simulated_raw
    from scope.napari.reconstruction_widget import (
        CARRIERS_LAYER,
        SPECTRUM_LAYER,
        ReconstructionWidget,
    )

    viewer = make_napari_viewer(show=True)
    ((data, kwargs, _),) = simulated_raw((128, 128))
    raw = viewer.add_image(data, **kwargs)
    widget = ReconstructionWidget(viewer)
    before = viewer._sliced_extent_world_augmented().copy()  # what Home frames
    widget.estimate_button.click()
    qtbot.waitUntil(lambda: widget.params is not None and not widget.busy, timeout=30_000)
    spectrum = viewer.layers[SPECTRUM_LAYER]
    assert not spectrum.visible
    np.testing.assert_allclose(viewer._sliced_extent_world_augmented(), before, atol=1e-9)
    np.testing.assert_allclose(spectrum.extent.world, raw.extent.world[:, -2:])
    step = spectrum.metadata["cycles_per_um_per_pixel"]
    assert step == pytest.approx((1 / (128 * 0.065), 1 / (128 * 0.065)))
    # the carriers circled on it: at the pattern's frequency from the centre pixel (260 nm)
    centre = np.array(spectrum.metadata["zero_frequency_pixel"])
    radii = np.hypot(*((viewer.layers[CARRIERS_LAYER].data - centre) * step).T)
    np.testing.assert_allclose(radii, 1000 / 260, rtol=0.01)
    for layer in viewer.layers:
        assert str(layer.units[-1]) == "micrometer", layer.name
    assert str(viewer.layers.units[-1]) == "micrometer"  # what the scale bar shows


def test_a_file_without_pixel_size_asks_for_it_and_the_layers_follow(
    make_napari_viewer, qtbot, tmp_path
):
    """A TIFF stating no pixel size: the field says so (no silent 1000 nm), Estimate asks for
    it; the value entered scales the raw layer and the SIM and widefield made from it, and a
    correction later moves them all."""
    from scope.napari.reconstruction_widget import PIXEL_SIZE_UNKNOWN, ReconstructionWidget

    path, _ = _time_series_file(tmp_path, n_t=1, pixel_um=None)
    viewer = make_napari_viewer()
    widget = ReconstructionWidget(viewer)
    raw = widget.open_path(str(path))
    assert widget.layer_box.currentText() == raw.name
    assert widget.pixel_size.value() == 0.0 and widget.pixel_size.text() == PIXEL_SIZE_UNKNOWN
    assert "states no pixel size" in widget.status.text()
    assert "Camera pixel at sample" in widget.status.text()
    widget.estimate_button.click()
    assert not widget.busy and widget.params is None
    assert "pixel size at the sample is not known" in widget.status.text()

    widget.pixel_size.setValue(80.0)
    np.testing.assert_allclose(raw.scale[-2:], (0.08, 0.08))
    assert str(raw.units[-1]) == "micrometer" and raw.metadata["pixel_size_nm"] == 80.0
    widget.na.setValue(1.2)
    widget.wavelength.setValue(525.0)
    sim, wf = _reconstructed(viewer, qtbot, widget, "series.ome.tif")
    np.testing.assert_allclose(sim.scale[-2:], (0.04, 0.04))
    widget.pixel_size.setValue(65.0)  # corrected: raw, SIM and widefield follow
    np.testing.assert_allclose(raw.scale[-2:], (0.065, 0.065))
    np.testing.assert_allclose(sim.scale[-2:], (0.0325, 0.0325))
    np.testing.assert_allclose(sim.translate[-2:], (-0.01625, -0.01625))
    np.testing.assert_allclose(wf.scale[-2:], (0.065, 0.065))
    assert sim.metadata["pixel_size_nm"] == 32.5 and wf.metadata["pixel_size_nm"] == 65.0


def _camera(viewer):
    """The viewer's camera: ``viewer.scene.camera`` from napari 0.9 (``viewer.camera`` is
    deprecated there), ``viewer.camera`` before."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if hasattr(scene, "camera") else viewer.camera


def _framed(viewer) -> tuple[float, np.ndarray]:
    """The camera's zoom and its (y, x) centre."""
    camera = _camera(viewer)
    return float(camera.zoom), np.asarray(camera.center[-2:], float)


def test_a_pixel_size_entered_reframes_the_view(make_napari_viewer, tmp_path):
    """A file without a pixel size opens at 1 per pixel; the pixel size typed in shrinks its
    world extent 15-fold, and the view follows (as *reset view* would), instead of leaving
    the image a dot in the canvas; an edit that leaves the scale alone keeps the user's zoom."""
    from scope.napari.reconstruction_widget import ReconstructionWidget

    path, _ = _time_series_file(tmp_path, n_t=1, pixel_um=None)
    viewer = make_napari_viewer(show=True)
    widget = ReconstructionWidget(viewer)
    raw = widget.open_path(str(path))
    zoom_unscaled, _ = _framed(viewer)
    note = widget.status.text()
    assert "states no pixel size: enter the camera pixel size" in note
    assert "states no NA or emission wavelength" in note

    widget.pixel_size.setValue(65.0)  # as typed into Camera pixel at sample
    # the status line no longer asks for it (it did until another action replaced it)
    assert "states no pixel size" not in widget.status.text()
    assert ("states no NA" in note) == ("states no NA" in widget.status.text())
    zoom, centre = _framed(viewer)
    (y0, x0), (y1, x1) = raw.extent.world[:, -2:]
    assert y0 <= centre[0] <= y1 and x0 <= centre[1] <= x1
    assert zoom > 10 * zoom_unscaled  # 15 times smaller in the world: zoomed in to fill
    viewer.reset_view()
    assert _framed(viewer)[0] == pytest.approx(zoom)
    np.testing.assert_allclose(_framed(viewer)[1], centre)

    _camera(viewer).zoom = 2 * zoom  # the user zooms in; edits of other fields keep it
    widget.na.setValue(1.25)
    widget.wavelength.setValue(600.0)
    assert widget.status.text() == ""  # nothing left unstated
    widget.layer_box.setCurrentText(raw.name)
    assert _framed(viewer)[0] == pytest.approx(2 * zoom)
    widget.pixel_size.setValue(80.0)  # a correction rescales: framed again
    zoom_80 = _framed(viewer)[0]
    assert zoom_80 < zoom
    viewer.reset_view()
    assert _framed(viewer)[0] == pytest.approx(zoom_80)


def test_a_two_colour_widefield_image_opens_as_a_layer_per_channel(make_napari_viewer, tmp_path):
    """`scope reconstruct --widefield` of a two-colour file: the widefield image opens as two
    channel layers blended additively, as the SIM result does (it used to open as one layer with
    c on a slider)."""
    from scope.cli import main
    from sim_cases import make_two_colour_file

    two = make_two_colour_file(tmp_path)
    out = tmp_path / "two.sim.ome.tif"
    args = ["-q", "reconstruct", str(two["path"]), "-o", str(out), "--na", "1.2", "--widefield"]
    assert main(args) == 0
    viewer = make_napari_viewer()
    sims = viewer.open(str(out), plugin="scope-sim")
    wfs = viewer.open(str(tmp_path / "two.widefield.tif"), plugin="scope-sim")
    assert len(sims) == len(wfs) == 2
    assert [w.name for w in wfs] == ["two.widefield.tif c0", "two.widefield.tif c1"]
    assert all(w.data.shape == (256, 256) and w.blending == "additive" for w in wfs)
    assert all(w.metadata["scope_kind"] == "widefield" for w in wfs)
    assert viewer.dims.ndim == 2  # no channel slider
    import tifffile

    stored = tifffile.imread(tmp_path / "two.widefield.tif")
    for c, layer in enumerate(wfs):
        np.testing.assert_allclose(np.asarray(layer.data), stored[c])
        np.testing.assert_allclose(layer.scale, (0.065, 0.065))
