"""Reader, writer, sample data and the reconstruction widget in a real napari viewer (Xvfb)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import zarr

# software OpenGL (Xvfb): render in the GUI thread, not in llvmpipe's spinning workers, which
# would starve the live acquisition on 2 cores (see reconstruction/benchmarks/RESULTS.md)
os.environ.setdefault("LP_NUM_THREADS", "0")
pytest.importorskip("napari")
if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
    pytest.skip("no display: run under `bash dev.sh test` (Xvfb)", allow_module_level=True)

from napari_helpers import screenshot

pytestmark = pytest.mark.napari


def _screenshot(viewer, name: str, tmp_path: Path) -> Path:
    return screenshot(viewer, name, tmp_path, size=(1400, 860))


@pytest.fixture(scope="module")
def recorded_run(tmp_path_factory):
    """A short run of the simulated microscope recorded through the acquisition engine."""
    from scope.acquisition.engine import AcquisitionConfig, AcquisitionEngine
    from scope.devices.simulated_microscope import SimulatedMicroscope
    from scope.optics import OpticalSetup

    out = tmp_path_factory.mktemp("run") / "run.zarr"
    setup = OpticalSetup(na=1.1, wavelength_nm=600, pixel_size_nm=80)
    with SimulatedMicroscope((64, 64), setup=setup, camera_options={"marker": False}) as m:
        cfg = AcquisitionConfig(n_sets=4, exposure_ms=4.0, dark_ms=4.0)
        summary = AcquisitionEngine(
            m.camera, m.controller, out, cfg, setup=m.setup, params=m.params
        ).run()
    assert summary.sets_valid >= 2
    return out, summary


def test_manifest_is_discoverable():
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("scope-sim")
    widgets = {w.display_name for w in manifest.contributions.widgets}
    assert widgets == {"Live SIM imaging", "SIM reconstruction", "Export video"}
    assert {s.key for s in manifest.contributions.sample_data} == {"simulated", "bsim-hela"}
    for command in manifest.contributions.commands:
        assert command.exec is not None or command.python_name  # resolvable names
        module, _, attr = command.python_name.partition(":")
        mod = __import__(module, fromlist=[attr])
        assert callable(getattr(mod, attr)), command.python_name


def test_reader_round_trips_a_recorded_run(make_napari_viewer, recorded_run):
    from scope.acquisition.writer import complete_sets, read_acquisition

    path, summary = recorded_run
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="scope-sim")
    assert len(layers) == 1
    layer = layers[0]
    frames, table, _meta = read_acquisition(path)
    # every verified set in order (and, after the first, a set kept without a frame a loaded
    # machine's camera dropped or exposed off its pulse: that frame blank); the frames first,
    # so t lines up with the SIM's t
    rows, _ids = complete_sets(table, 9, with_dropped=True)
    blank = np.zeros(frames.shape[-2:], frames.dtype)
    sets = np.stack([[frames[int(i)] if i >= 0 else blank for i in row] for row in rows])
    np.testing.assert_array_equal(np.asarray(layer.data), np.moveaxis(sets, 1, 0))
    kept = len(rows) - summary.sets_valid
    assert 0 <= kept <= len(summary.sets_without_dropped_frames)
    assert layer.data.shape == (9, summary.sets_valid + kept, 64, 64)
    assert layer.axis_labels == ("angle·phase", "t", "y", "x")
    np.testing.assert_allclose(layer.scale, (1, 1, 0.08, 0.08))
    md = layer.metadata
    assert md["pixel_size_nm"] == pytest.approx(80)
    assert md["wavelength_nm"] == pytest.approx(600)
    assert md["na"] == pytest.approx(1.1)
    assert (md["n_angles"], md["n_phases"]) == (3, 3)
    assert md["acquisition"]["state"] == "complete"
    assert md["sim_parameters"]["angles"] if isinstance(md["sim_parameters"], dict) else True


def test_reader_opens_tiff_and_mrc(make_napari_viewer, data_dir, tmp_path):
    import tifffile

    viewer = make_napari_viewer()
    series = np.random.default_rng(0).integers(0, 1000, (2, 9, 32, 32)).astype(np.uint16)
    tifffile.imwrite(
        tmp_path / "raw.ome.tif",
        series,
        ome=True,
        metadata={"axes": "TZYX", "PhysicalSizeX": 0.08, "PhysicalSizeY": 0.08},
    )
    (ome,) = viewer.open(str(tmp_path / "raw.ome.tif"), plugin="scope-sim")
    np.testing.assert_array_equal(np.asarray(ome.data), np.moveaxis(series, 1, 0))
    np.testing.assert_allclose(ome.scale, (1, 1, 0.08, 0.08))
    assert ome.metadata["axes"] == "PTYX" and ome.metadata["pixel_size_nm"] == pytest.approx(80)
    (mrc,) = viewer.open(str(data_dir / "rdl-tirf-microtubules" / "MT.mrc"), plugin="scope-sim")
    assert mrc.data.shape == (9, 256, 256)
    assert mrc.scale[-1] == pytest.approx(0.0626, rel=1e-3)  # 62.6 nm from the MRC header
    (tif,) = viewer.open(
        str(data_dir / "bsim-hela-mitochondria" / "raw_images.tif"), plugin="scope-sim"
    )
    assert tif.data.shape == (9, 120, 120)
    # a flat time series (27 frames, no axes stated) opens as 3 sets of 3 x 3, as scope
    # reconstruct reads it, so the widget reconstructs it frame by frame; 15 frames stay one set
    frames = series.reshape(18, 32, 32)
    tifffile.imwrite(tmp_path / "flat.tif", frames[:15])
    tifffile.imwrite(tmp_path / "flat27.tif", np.concatenate([frames, frames])[:27])
    (flat,) = viewer.open(str(tmp_path / "flat27.tif"), plugin="scope-sim")
    assert flat.data.shape == (9, 3, 32, 32) and flat.metadata["axes"] == "PTYX"
    assert (flat.metadata["n_angles"], flat.metadata["n_phases"]) == (3, 3)
    np.testing.assert_array_equal(flat.data[0, 1], series[1, 0])  # frame 9 starts set 1
    (fifteen,) = viewer.open(str(tmp_path / "flat.tif"), plugin="scope-sim")
    assert fifteen.data.shape == (15, 32, 32) and fifteen.metadata["n_angles"] is None
    # a hyperstack from Fiji: the 9 frames in Z, before 2 channels -> a layer per channel
    tifffile.imwrite(
        tmp_path / "fiji.tif", np.moveaxis(series, 0, 1), imagej=True, metadata={"axes": "ZCYX"}
    )
    c0, c1 = viewer.open(str(tmp_path / "fiji.tif"), plugin="scope-sim")
    assert c0.data.shape == c1.data.shape == (9, 32, 32)
    np.testing.assert_array_equal(np.asarray(c1.data), series[1])


def test_sample_data_open_from_the_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    (layer,) = viewer.open_sample("scope-sim", "bsim-hela")
    assert layer.data.shape == (9, 120, 120)
    assert layer.metadata["na"] == 1.3 and layer.scale[-1] == pytest.approx(0.065)


def test_sample_data_carry_their_optics():
    from scope.napari._sample_data import bsim_hela_mitochondria, simulated_raw

    ((data, kwargs, kind),) = bsim_hela_mitochondria()
    assert kind == "image" and data.shape == (9, 120, 120)
    assert (kwargs["metadata"]["na"], kwargs["metadata"]["wavelength_nm"]) == (1.3, 660.0)
    assert kwargs["scale"][-1] == pytest.approx(0.065)
    ((sim, skw, _),) = simulated_raw((64, 64))
    assert sim.shape == (9, 64, 64) and skw["metadata"]["n_angles"] == 3


def test_reconstruction_widget_estimate_preview_stack_and_writer(
    make_napari_viewer, qtbot, tmp_path, data_dir
):
    """Real data (B-SIM HeLa): estimate, preview with a notch, reconstruct a 2-set stack,
    save with the plugin's writer and read back scale, position and metadata."""
    from napari import save_layers

    from scope.napari._sample_data import bsim_hela_mitochondria
    from scope.napari.reconstruction_widget import (
        CARRIERS_LAYER,
        DEFECTS_LAYER,
        MODULATION_LAYER,
        PREVIEW_LAYER,
        SPECTRUM_LAYER,
        ReconstructionWidget,
    )
    from scope.optics import OpticalSetup
    from scope.sim.estimate import estimate_parameters
    from scope.sim.reconstruct import ReconstructionSettings, SIMReconstructor

    viewer = make_napari_viewer(show=True)
    ((data, kwargs, _),) = bsim_hela_mitochondria()
    stack = np.stack([data, data[:, ::-1, :]])  # a 2-point "time series"
    kwargs["metadata"] = dict(kwargs["metadata"], axes="TPYX")
    kwargs.update(
        scale=(1, 1, 0.065, 0.065),
        axis_labels=("t", "angle·phase", "y", "x"),
        units=("pixel", "pixel", "µm", "µm"),
    )
    raw = viewer.add_image(stack, **kwargs)
    widget = ReconstructionWidget(viewer)
    viewer.window.add_dock_widget(widget, name="SIM reconstruction")
    assert widget.layer_box.currentText() == raw.name
    assert (widget.na.value(), widget.wavelength.value(), widget.pixel_size.value()) == (
        1.3,
        660.0,
        65.0,
    )
    assert widget.offset.value() == 100.0

    widget.estimate_button.click()
    qtbot.waitUntil(lambda: widget.params is not None and not widget.busy, timeout=30_000)
    setup = OpticalSetup(na=1.3, wavelength_nm=660, pixel_size_nm=65)
    periods = sorted(a.period_nm for a in widget.params.angles)
    # the B-SIM patterns.tif fit: periods 332.9 / 357.0 / 357.7 nm
    np.testing.assert_allclose(periods, [332.9, 357.0, 357.7], atol=3.0)
    assert "modulation" in widget.report.text()
    assert SPECTRUM_LAYER in viewer.layers and CARRIERS_LAYER in viewer.layers
    assert len(viewer.layers[CARRIERS_LAYER].data) == 6
    assert PREVIEW_LAYER in viewer.layers
    mcnr = viewer.layers[MODULATION_LAYER]  # where the pattern is visible: on the mitochondria
    assert mcnr.data.shape == (120, 120) and not mcnr.visible
    assert np.mean(mcnr.data >= 3) > 0.2 and np.median(mcnr.data) > 1.5
    # this set's angles are lit 0.81-1.15: equalised by default, and the user is told
    assert widget.reconstructor.equalizes_frames and "equalised" in widget.status.text()
    assert "full scale" not in widget.status.text()  # float data: no full scale to reach
    # the set's two dark pixels (see test_defects), marked over the raw layer
    assert "2 camera pixels hot or dead" in widget.status.text()
    marks = viewer.layers[DEFECTS_LAYER]
    assert sorted(map(tuple, marks.data.astype(int))) == [(36, 62), (112, 69)]
    widget.equalize.setCurrentText("leave as recorded")
    qtbot.waitUntil(
        lambda: not widget.busy and widget.reconstructor.settings.equalize_frames is False,
        timeout=20_000,
    )
    assert not widget.reconstructor.equalizes_frames
    widget.equalize.setCurrentText("equalise when unequal")
    qtbot.waitUntil(
        lambda: not widget.busy and widget.reconstructor.settings.equalize_frames is None,
        timeout=20_000,
    )

    widget.notch.setValue(0.5)  # preview with the new settings, same parameters
    qtbot.waitUntil(
        lambda: (
            not widget.busy
            and widget.reconstructor is not None
            and widget.reconstructor.settings.notch_strength == 0.5
        ),
        timeout=20_000,
    )
    expected_settings = ReconstructionSettings(notch_strength=0.5, offset_adu=100.0)
    ref = SIMReconstructor(
        setup,
        widget.params,
        shape=(120, 120),
        settings=expected_settings,
        noise_model=widget.reconstructor.noise_model,
    )
    expected = ref(data)
    got = np.asarray(viewer.layers[PREVIEW_LAYER].data)
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    _screenshot(viewer, "napari_reconstruction.png", tmp_path)
    # the spectrum with the carriers marked (frequency space, its own layers)
    for layer in viewer.layers:
        layer.visible = layer.name in (SPECTRUM_LAYER, CARRIERS_LAYER)
    viewer.reset_view()
    _screenshot(viewer, "napari_spectrum_carriers.png", tmp_path)
    for layer in viewer.layers:
        layer.visible = layer.name not in (SPECTRUM_LAYER, CARRIERS_LAYER)

    widget.reconstruct_button.click()
    qtbot.waitUntil(lambda: "B-SIM HeLa mitochondria SIM" in viewer.layers, timeout=30_000)
    qtbot.waitUntil(lambda: not widget.busy, timeout=10_000)
    out = viewer.layers["B-SIM HeLa mitochondria SIM"]
    assert out.data.shape == (2, 240, 240)
    np.testing.assert_allclose(out.scale, (1, 0.0325, 0.0325))
    np.testing.assert_allclose(out.translate, (0, -0.01625, -0.01625))
    # same content as offline (whole stack with the widget's parameters)
    offline = SIMReconstructor(
        setup,
        widget.params,
        shape=(120, 120),
        settings=expected_settings,
        noise_model=widget.reconstructor.noise_model,
    )
    wf = viewer.layers["B-SIM HeLa mitochondria widefield"]  # to compare, under the SIM
    assert viewer.layers.index(wf) == viewer.layers.index(out) - 1
    assert wf.data.shape == (2, 120, 120) and wf.metadata["scope_kind"] == "widefield"
    np.testing.assert_allclose(wf.scale, (1, 0.065, 0.065))
    from scope.napari.export_widget import ExportVideoWidget

    export = ExportVideoWidget(viewer)  # ready for the wipe: SIM and its widefield
    assert export.sim_layer.currentText() == out.name
    assert export.widefield_layer.currentText() == wf.name
    for t in range(2):
        exp_t = offline(stack[t])
        assert np.abs(out.data[t] - exp_t).max() <= 1e-4 * np.abs(exp_t).max()
        wf_t = offline.widefield(stack[t])
        assert np.abs(wf.data[t] - wf_t).max() <= 1e-4 * np.abs(wf_t).max()
    # the flipped copy is the flipped image: the estimate was not redone per set
    est = estimate_parameters(data, setup, prior=None)
    assert est.n_angles == 3

    # every worker finished: none left in Qt's pool that napari's workers run in
    from qtpy.QtCore import QThreadPool

    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=5_000)

    # writer: OME-TIFF and OME-Zarr round trip through the plugin's reader
    for name in ("hela_sim.ome.tif", "hela_sim.zarr"):
        target = tmp_path / name
        written = save_layers(str(target), [out], plugin="scope-sim")
        assert written
        (back,) = viewer.open(str(target), plugin="scope-sim")
        np.testing.assert_allclose(np.asarray(back.data), out.data, rtol=1e-6)
        np.testing.assert_allclose(back.scale, out.scale, rtol=1e-6)
        np.testing.assert_allclose(back.translate[-2:], out.translate[-2:], rtol=1e-6)
        assert back.metadata["scope_kind"] == "sim"
        assert back.metadata["pixel_size_nm"] == pytest.approx(32.5)
        stored = back.metadata["file"]
        assert stored["sim_parameters"] == out.metadata["sim_parameters"]
        assert stored["optics"]["na"] == 1.3


def test_scope_view_docks_the_widgets_and_opens_the_file(make_napari_viewer, data_dir, tmp_path):
    """What ``scope view FILE`` and ``scope demo`` build (without blocking in napari.run)."""
    from scope.cli import build_parser
    from scope.napari.export_widget import ExportVideoWidget
    from scope.napari.launch import make_viewer
    from scope.napari.live_widget import LiveImagingWidget
    from scope.napari.reconstruction_widget import ReconstructionWidget

    args = build_parser().parse_args(["view", "--live", str(data_dir / "rdl-tirf-microtubules")])
    assert args.live and args.func.__module__ == "scope.cli.view"
    viewer = make_napari_viewer(show=True)
    mrc = data_dir / "rdl-tirf-microtubules" / "MT.mrc"
    _, widgets = make_viewer(mrc, live=True, viewer=viewer)
    assert isinstance(widgets["reconstruction"], ReconstructionWidget)
    assert isinstance(widgets["live"], LiveImagingWidget)
    assert widgets["reconstruction"].layer_box.currentText() == "MT.mrc raw"
    assert widgets["reconstruction"].pixel_size.value() == pytest.approx(62.6, abs=0.05)
    docked = set(viewer.window.dock_widgets)
    assert {"SIM reconstruction", "Live SIM imaging", "Export video"} <= docked  # as README says
    assert isinstance(widgets["export"], ExportVideoWidget)
    live_dock = viewer.window.dock_widgets["Live SIM imaging"]
    assert not live_dock.visibleRegion().isEmpty()  # --live: the live tab is on top
    from qtpy.QtWidgets import QApplication, QTabBar

    viewer.window._qt_window.resize(1400, 940)
    for _ in range(20):  # the dock area lays out its tabs
        QApplication.processEvents()
    tabs = [
        [bar.tabText(i) for i in range(bar.count())]
        for bar in viewer.window._qt_window.findChildren(QTabBar)
        if bar.isVisible()
    ]
    assert ["SIM reconstruction", "Live SIM imaging", "Export video"] in tabs
    _screenshot(viewer, "napari_scope_view.png", tmp_path)


def test_scope_view_without_a_screen_says_so():
    """On a machine with no display (ssh without -X, a server), `scope view` says why it
    cannot open napari in one line instead of Qt aborting with a page of plugin messages."""
    import subprocess
    import sys

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    done = subprocess.run(
        [sys.executable, "-m", "scope", "view"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "no screen to open napari on" in done.stderr and "xvfb-run" in done.stderr
    assert "platform plugin" not in done.stderr


def test_export_widget_is_registered_and_previews_a_sim_layer(make_napari_viewer, qtbot, tmp_path):
    pytest.importorskip("av")
    from scope.napari._sample_data import simulated_raw
    from scope.napari.export_widget import ExportVideoWidget
    from scope.napari.reconstruction_widget import ReconstructionWidget

    viewer = make_napari_viewer(show=True)
    ((data, kwargs, _),) = simulated_raw((128, 128))
    viewer.add_image(data, **kwargs)
    rec = ReconstructionWidget(viewer)
    rec.reconstruct_button.click()
    qtbot.waitUntil(lambda: "simulated SIM" in viewer.layers, timeout=30_000)
    qtbot.waitUntil(lambda: not rec.busy, timeout=10_000)
    sim = viewer.layers["simulated SIM"]
    assert sim.data.shape == (256, 256)
    widget = ExportVideoWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Export video")
    widget.sim_layer.setCurrentText(sim.name)
    widget.title.setText("Live SIM, simulated")
    frame = widget.preview()
    assert frame.ndim == 3 and frame.std() > 0
    assert widget.pixel_size.value() == pytest.approx(32.5)
    qtbot.waitUntil(widget.isVisible, timeout=5_000)
    qtbot.wait(200)
    _screenshot(viewer, "napari_export.png", tmp_path)


def test_reader_leaves_photos_and_single_images_to_other_readers(tmp_path):
    import tifffile

    from scope.napari._reader import napari_get_reader
    from scope.napari._writer import write_ome_tiff_layer

    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((32, 32, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((32, 32), np.uint16))
    assert napari_get_reader(str(tmp_path / "rgb.tif")) is None
    assert napari_get_reader(str(tmp_path / "one.tif")) is None
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    # a single SIM image saved by the plugin is ours again
    meta = {"name": "x", "scale": (0.0325, 0.0325), "metadata": {"scope_kind": "sim"}}
    (path,) = write_ome_tiff_layer(str(tmp_path / "sim.ome.tif"), np.ones((64, 64)), meta)
    assert napari_get_reader(path) is not None


def _estimated(make_napari_viewer, qtbot, frames, name: str, *, timeout_ms: int = 30_000):
    """A viewer with ``frames`` as a raw layer (NA 1.2, 525 nm, 65 nm pixels) and a
    reconstruction widget that has estimated its parameters: (viewer, widget)."""
    from scope.napari.reconstruction_widget import ReconstructionWidget

    viewer = make_napari_viewer()
    meta = {"scope_kind": "raw", "n_angles": 3, "n_phases": 3, "pixel_size_nm": 65.0}
    viewer.add_image(frames, name=name, metadata=meta)
    widget = ReconstructionWidget(viewer)
    widget.na.setValue(1.2)
    widget.wavelength.setValue(525.0)
    widget.pixel_size.setValue(65.0)
    widget.estimate_button.click()
    qtbot.waitUntil(lambda: widget.params is not None and not widget.busy, timeout=timeout_ms)
    return viewer, widget


def test_reconstruction_widget_says_when_values_are_clipped(make_napari_viewer, qtbot):
    """12-bit camera values in a 16-bit layer, 1 % of them at 4095: the status line says so."""
    from sim_cases import bright_set

    frames, unclipped = bright_set(4, 12)
    _, widget = _estimated(make_napari_viewer, qtbot, frames, "bright raw")
    share = np.count_nonzero(unclipped >= 4095) / unclipped.size
    text = widget.status.text()
    assert f"{100 * share:.2g} % of this set's values sit at the camera's full scale" in text
    assert "(4095 ADU)" in text


def test_reconstruction_widget_maps_a_bent_pattern(make_napari_viewer, qtbot, tmp_path):
    """A 512-pixel field whose pattern the illumination optics bend by 1 % at the corners:
    the widget's estimate says it maps the pattern, its preview and its stack take the map out
    (error against the ideal-SIM target as the pipeline's, not the 0.19 of one pattern for the
    field)."""
    from scope.sim import metrics
    from scope.sim.forward import simulate_raw
    from scope.sim.params import SIMParameters
    from scope.sim.samples import make_sample
    from sim_cases import MARGIN, OFFSET, SETUP, ideal_target

    truth = SIMParameters.equidistant([12.0, 72.0, 132.0], period_nm=257.0, modulation=0.8)
    gt = make_sample((1024, 1024), "mixed", seed=0)
    raw = simulate_raw(
        gt, truth, SETUP, background_photons=30, offset_adu=OFFSET, rng=1, pattern_distortion=0.01
    )
    viewer, widget = _estimated(
        make_napari_viewer, qtbot, raw[None].astype(np.uint16), "bent raw", timeout_ms=60_000
    )
    assert "its phase is mapped from 25 tiles" in widget.status.text()
    widget.reconstruct_stack()
    qtbot.waitUntil(lambda: "bent SIM" in viewer.layers and not widget.busy, timeout=60_000)
    image = np.asarray(viewer.layers["bent SIM"].data)[0]
    crop = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]
    error = metrics.normalized_rms_error(image[crop], ideal_target(gt, truth)[crop])
    assert error < 0.13, error


def test_a_widefield_image_opens_on_the_camera_grid(make_napari_viewer, tmp_path):
    """The widefield image of `scope reconstruct --widefield` opens as an image on the camera
    grid (it used to open as a raw stack of 1 x 3 frames), overlaying the SIM result, and is
    not offered to the reconstruction widget as a raw stack."""
    import tifffile

    from scope.cli import main
    from scope.napari.reconstruction_widget import ReconstructionWidget
    from sim_cases import make_case

    raw = np.stack([make_case(s, size=64).raw for s in (0, 1)]).astype(np.uint16)
    tifffile.imwrite(tmp_path / "cell.tif", raw)
    optics = ["--na", "1.2", "--wavelength", "525", "--pixel-size", "65", "--prior-angles"]
    out = tmp_path / "cell.sim.tif"
    args = ["-q", "reconstruct", str(tmp_path / "cell.tif"), "-o", str(out), *optics]
    assert main([*args, "12,72,132", "--prior-period", "257", "--widefield"]) == 0
    viewer = make_napari_viewer()
    (wf,) = viewer.open(str(tmp_path / "cell.widefield.tif"), plugin="scope-sim")
    (sim,) = viewer.open(str(out), plugin="scope-sim")
    assert wf.metadata["scope_kind"] == "widefield" and wf.data.shape == (2, 64, 64)
    np.testing.assert_allclose(wf.scale[-2:], (0.065, 0.065))
    np.testing.assert_allclose(sim.scale[-2:], (0.0325, 0.0325))
    # both cover the same field: from the first camera pixel's edge to the last one's

    def edges(layer):
        return layer.extent.world[:, -1] + np.array([-0.5, 0.5]) * layer.scale[-1]

    np.testing.assert_allclose(edges(wf), [-0.0325, 4.1275], atol=1e-9)
    np.testing.assert_allclose(edges(sim), edges(wf), atol=1e-9)
    np.testing.assert_allclose(
        np.asarray(wf.data), tifffile.imread(tmp_path / "cell.widefield.tif")
    )
    widget = ReconstructionWidget(viewer)
    assert wf not in widget._raw_layers() and sim not in widget._raw_layers()
    # a TIFF states no display window: the 0.5-99.9 percentiles, as the widget sets them
    for layer in (wf, sim):
        expected = np.percentile(np.asarray(layer.data), [0.5, 99.9])  # every value (small)
        np.testing.assert_allclose(layer.contrast_limits, expected, rtol=1e-6)
    # scope batch's (OME-Zarr): the same image, with the display window its omero states
    batch = ["-q", "batch", str(tmp_path / "cell.tif"), "-o", str(tmp_path / "b"), *optics]
    assert main([*batch, "12,72,132", "--prior-period", "257", "--widefield"]) == 0
    store = tmp_path / "b" / "cell.widefield.zarr"
    (wf_zarr,) = viewer.open(str(store), plugin="scope-sim")
    assert wf_zarr.metadata["scope_kind"] == "widefield"
    np.testing.assert_allclose(np.asarray(wf_zarr.data), np.asarray(wf.data), rtol=1e-6)
    window = zarr.open_group(str(store), mode="r").attrs["ome"]["omero"]["channels"][0]["window"]
    assert tuple(wf_zarr.contrast_limits) == pytest.approx((window["start"], window["end"]))


def test_the_widget_takes_a_layer_stored_phase_major(make_napari_viewer, qtbot):
    """Frame order *phase-major*: a layer holding each set all angles at one phase, then the
    next, gives the pattern and image of the same frames in scope's order; changing the order
    forgets the parameters found."""
    from scope.napari.reconstruction_widget import ReconstructionWidget
    from scope.sim.estimate import estimate_parameters
    from sim_cases import SETUP, make_case

    raw = make_case(1, size=128).raw.astype(np.float32)
    stored = raw.reshape(3, 3, 128, 128).transpose(1, 0, 2, 3).reshape(raw.shape)
    viewer = make_napari_viewer()
    viewer.add_image(stored, name="pm", metadata={"pixel_size_nm": 65.0, "na": 1.2})
    widget = ReconstructionWidget(viewer)
    widget.frame_order.setCurrentText("phase-major")
    widget.estimate_button.click()
    qtbot.waitUntil(lambda: widget.params is not None and not widget.busy, timeout=30_000)
    expected = estimate_parameters(raw, SETUP)
    for got, want in zip(widget.params.angles, expected.angles, strict=True):
        assert abs(got.angle_deg - want.angle_deg) < 1e-6
        np.testing.assert_allclose(got.phases_rad, want.phases_rad, atol=1e-6)
    widget.frame_order.setCurrentText("angle-major")
    assert widget.params is None and "no parameters yet" in widget.report.text()


def test_a_two_colour_file_opens_as_a_layer_per_channel(make_napari_viewer, qtbot, tmp_path):
    """A raw OME-TIFF of two colours opens as two layers, each with its own emission wavelength;
    the widget takes the selected channel's wavelength and estimates that channel's own
    pattern (17° here, the other channel's 12°), and its stack matches the ideal-SIM target."""
    from scope.napari.reconstruction_widget import ReconstructionWidget
    from scope.sim import metrics
    from sim_cases import MARGIN, make_two_colour_file

    two = make_two_colour_file(tmp_path)
    viewer = make_napari_viewer()
    layers = viewer.open(str(two["path"]), plugin="scope-sim")
    assert [layer.name for layer in layers] == [
        "two.ome.tif c0 (525 nm) raw",
        "two.ome.tif c1 (600 nm) raw",
    ]
    assert all(layer.data.shape == (9, 256, 256) for layer in layers)
    assert [layer.metadata["wavelength_nm"] for layer in layers] == [525.0, 600.0]
    widget = ReconstructionWidget(viewer)
    widget.layer_box.setCurrentText(layers[1].name)
    assert widget.wavelength.value() == 600.0
    widget.estimate_button.click()
    qtbot.waitUntil(lambda: widget.params is not None and not widget.busy, timeout=30_000)
    found = sorted(a.angle_deg % 180 for a in widget.params.angles)
    np.testing.assert_allclose(found, [17.0, 77.0, 137.0], atol=0.2)
    widget.reconstruct_stack()
    name = "two.ome.tif c1 (600 nm) SIM"
    qtbot.waitUntil(lambda: name in viewer.layers and not widget.busy, timeout=30_000)
    image = np.asarray(viewer.layers[name].data)
    assert viewer.layers[name].metadata["wavelength_nm"] == 600.0
    crop = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]
    error = metrics.normalized_rms_error(image[crop], two["targets"][1][crop])
    assert error < 0.12, error
    # the command line's two-colour result opens as a composite: a layer per colour
    from scope.cli import main

    out = tmp_path / "two.sim.ome.tif"
    assert main(["-q", "reconstruct", str(two["path"]), "-o", str(out), "--na", "1.2"]) == 0
    sims = viewer.open(str(out), plugin="scope-sim")
    assert [layer.name for layer in sims] == [
        "two.sim.ome.tif c0 (525 nm)",
        "two.sim.ome.tif c1 (600 nm)",
    ]
    assert [layer.colormap.name for layer in sims] == ["green", "red"]
    assert all(layer.blending == "additive" and layer.data.shape == (512, 512) for layer in sims)
    assert [layer.metadata["wavelength_nm"] for layer in sims] == [525.0, 600.0]
    angles = sims[1].metadata["sim_parameters"]["angles"]
    assert abs(min(a["angle_deg"] % 60 for a in angles) - 17.0) < 0.1
    # and `scope batch`'s (OME-Zarr, its default): a SIM result too, not a raw stack
    folder = tmp_path / "batch"
    assert main(["-q", "batch", str(two["path"]), "-o", str(folder), "--na", "1.2"]) == 0
    batch = viewer.open(str(folder / "two.sim.zarr"), plugin="scope-sim")
    assert [layer.name for layer in batch] == [
        "two.sim.zarr c0 (525 nm)",
        "two.sim.zarr c1 (600 nm)",
    ]
    np.testing.assert_allclose(batch[1].data, sims[1].data, atol=1e-4 * float(sims[1].data.max()))
    # its OME-Zarr names and colours each channel and sets its display window (NGFF omero),
    # which the reader takes as the layer's contrast
    omero = zarr.open_group(str(folder / "two.sim.zarr"), mode="r").attrs["ome"]["omero"]
    assert [c["label"] for c in omero["channels"]] == ["525 nm", "600 nm"]
    assert [c["color"] for c in omero["channels"]] == ["00FF00", "FF0000"]
    for layer, channel in zip(batch, omero["channels"], strict=True):
        window = channel["window"]
        low, high = np.percentile(np.asarray(layer.data), [0.1, 99.9])
        assert abs(window["start"] - low) < 0.05 * (high - low), (window, low, high)
        assert abs(window["end"] - high) < 0.05 * (high - low), (window, low, high)
        assert tuple(layer.contrast_limits) == pytest.approx((window["start"], window["end"]))
    angles = batch[1].metadata["sim_parameters"]["angles"]
    assert abs(min(a["angle_deg"] % 60 for a in angles) - 17.0) < 0.1
