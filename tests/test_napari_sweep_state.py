"""State that must not leak between layers, optics and sessions of the napari widgets (real
napari viewer under Xvfb): an estimate finished after the user picked another layer, the
status line after the optics changed, live layers after the pixel size changed, the export's
SIM layer after a stack was reconstructed."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("LP_NUM_THREADS", "0")
pytest.importorskip("napari")
if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
    pytest.skip("no display: run under `bash dev.sh test` (Xvfb)", allow_module_level=True)

pytestmark = pytest.mark.napari

OPTICS = {"pixel_size_nm": 65.0, "na": 1.2, "wavelength_nm": 525.0, "n_angles": 3, "n_phases": 3}


def _simulated(angles: tuple[float, ...], size: int = 64, n_t: int = 1) -> np.ndarray:
    """A raw series ``(n_t, 9, Y, X)`` (ADU, offset 100) of a pattern at ``angles``."""
    from scope.sim.forward import simulate_raw
    from scope.sim.params import SIMParameters
    from scope.sim.samples import make_sample
    from sim_cases import SETUP

    params = SIMParameters.equidistant(list(angles), period_nm=260.0, modulation=0.8)
    sets = [
        simulate_raw(make_sample((2 * size, 2 * size), "mixed", seed=t), params, SETUP, rng=t)
        for t in range(n_t)
    ]
    return (np.stack(sets) + 100.0).astype(np.float32)


def _add(viewer, raw: np.ndarray, name: str):
    scale = (1,) * (raw.ndim - 2) + (0.065,) * 2
    return viewer.add_image(raw[0], name=name, metadata=dict(OPTICS), scale=scale[1:])


def test_an_estimate_of_a_layer_left_while_it_ran_is_dropped(make_napari_viewer, qtbot):
    """Estimate on layer A, pick layer B while it runs: A's parameters and preview must not
    become B's (they used to: B's report, preview and Reconstruct stack used A's pattern)."""
    from scope.napari.reconstruction_widget import PREVIEW_LAYER, ReconstructionWidget

    viewer = make_napari_viewer()
    _add(viewer, _simulated((10.0, 70.0, 130.0)), "a raw")
    _add(viewer, _simulated((40.0, 100.0, 160.0)), "b raw")
    widget = ReconstructionWidget(viewer)
    widget.layer_box.setCurrentText("a raw")
    assert widget.estimate() is not None
    widget.layer_box.setCurrentText("b raw")  # while A is estimated
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert widget.layer.name == "b raw"
    assert widget.params is None and widget.reconstructor is None
    assert "no parameters yet" in widget.report.text()
    assert "'a raw' was dropped" in widget.status.text()
    assert PREVIEW_LAYER not in viewer.layers
    # B's own estimate goes through
    widget.estimate()
    qtbot.waitUntil(lambda: widget.params is not None and not widget.busy, timeout=60_000)
    angles = sorted(a.angle_deg % 180 for a in widget.params.angles)
    assert np.allclose(angles, [40.0, 100.0, 160.0], atol=2.0)


def test_changing_the_optics_after_an_estimate_says_so(make_napari_viewer, qtbot):
    """After an estimate, a new NA forgets the parameters: the status line must not go on
    inviting to adjust the filter (which then does nothing) over a preview of the old optics."""
    from scope.napari.reconstruction_widget import ReconstructionWidget

    viewer = make_napari_viewer()
    _add(viewer, _simulated((10.0, 70.0, 130.0)), "a raw")
    widget = ReconstructionWidget(viewer)
    widget.estimate()
    qtbot.waitUntil(lambda: widget.params is not None and not widget.busy, timeout=60_000)
    assert "adjust the filter" in widget.status.text()
    widget.na.setValue(1.1)
    assert widget.params is None
    assert "adjust the filter" not in widget.status.text()
    assert "Estimate parameters again" in widget.status.text()


def test_live_layers_take_a_new_pixel_size_of_the_same_roi(make_napari_viewer):
    """A second session with another pixel size and the same field: the live layers must take
    the new scale (they kept the old one while their metadata stated the new one)."""
    from scope.napari.live_widget import RAW_LAYER, SIM_LAYER, LiveImagingWidget

    viewer = make_napari_viewer()
    widget = LiveImagingWidget(viewer)
    raw, sim = np.ones((32, 32), np.float32), np.ones((64, 64), np.float32)
    widget._layer(RAW_LAYER, raw, (0.065, 0.065), (0.0, 0.0), "gray")
    widget._layer(SIM_LAYER, sim, (0.0325, 0.0325), (-0.01625, -0.01625), "magma")
    widget._layer(RAW_LAYER, raw, (0.08, 0.08), (0.0, 0.0), "gray")
    widget._layer(SIM_LAYER, sim, (0.04, 0.04), (-0.02, -0.02), "magma")
    assert np.allclose(viewer.layers[RAW_LAYER].scale, (0.08, 0.08))
    assert np.allclose(viewer.layers[SIM_LAYER].scale, (0.04, 0.04))
    assert np.allclose(viewer.layers[SIM_LAYER].translate, (-0.02, -0.02))


def test_the_export_takes_the_reconstructed_stack_over_the_preview(make_napari_viewer, qtbot):
    """Estimate (a one-set SIM preview), then Reconstruct stack of a time series twice: the
    export's SIM layer is the stack, not the preview (the second stack's SIM layer replaces the
    first, and the export used to fall back to the preview, which with the stack's widefield
    layer made the export fail: 'widefield has 3 frames x 1 channels, SIM has 1 x 1')."""
    from scope.napari.export_widget import ExportVideoWidget
    from scope.napari.reconstruction_widget import PREVIEW_LAYER, ReconstructionWidget

    viewer = make_napari_viewer()
    raw = _simulated((10.0, 70.0, 130.0), n_t=3)
    meta = {**OPTICS, "scope_kind": "raw"}  # as the reader opens it
    viewer.add_image(raw, name="cell raw", metadata=meta, scale=(1, 1, 0.065, 0.065))
    widget = ReconstructionWidget(viewer)
    export = ExportVideoWidget(viewer)
    widget.estimate()
    qtbot.waitUntil(lambda: widget.params is not None and not widget.busy, timeout=60_000)
    assert PREVIEW_LAYER in viewer.layers
    for _ in range(2):  # again (other filter settings): the SIM layer is replaced
        widget.reconstruct_stack()
        qtbot.waitUntil(lambda: "cell SIM" in viewer.layers and not widget.busy, timeout=60_000)
        assert export.sim_layer.currentText() == "cell SIM"
        assert export.widefield_layer.currentText() == "cell widefield"
        assert export.preview() is not None, export.status.text()


@pytest.mark.parametrize("extension", [".ome.tif", ".zarr"])
def test_a_reopened_widefield_image_saved_again_reopens_as_widefield(tmp_path, extension):
    """A widefield time series opened with the reader and saved again with the plugin's writer
    reopens as a widefield image (it reopened as a raw SIM stack, offered for reconstruction)."""
    from scope.io.writers import WIDEFIELD_DESCRIPTION
    from scope.napari._reader import read_layers
    from scope.napari._writer import write_ome_tiff_layer, write_ome_zarr_layer

    write = write_ome_zarr_layer if extension == ".zarr" else write_ome_tiff_layer
    wf = np.random.default_rng(0).random((4, 32, 32)).astype(np.float32)
    meta = {"scope_kind": "widefield", "pixel_size_nm": 65.0, "image": WIDEFIELD_DESCRIPTION}
    layer = {"name": "c widefield", "scale": (1, 0.065, 0.065), "metadata": meta}
    (first,) = write(str(tmp_path / f"wf{extension}"), wf, layer)
    ((data, kwargs, _),) = read_layers(first)
    assert kwargs["metadata"]["scope_kind"] == "widefield"
    (again,) = write(str(tmp_path / f"again{extension}"), data, kwargs)
    ((data, kwargs, _),) = read_layers(again)
    assert kwargs["metadata"]["scope_kind"] == "widefield"
    assert np.shape(data) == (4, 32, 32)
    assert np.allclose(kwargs["scale"], (1.0, 0.065, 0.065))
    np.testing.assert_array_equal(np.asarray(data), wf)
