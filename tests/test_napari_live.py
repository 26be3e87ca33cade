"""The live imaging widget in a real napari viewer on the simulated microscope (under Xvfb).

Live SIM runs for 10 s; the SIM layer must equal an offline reconstruction of the very frames
the session recorded (read back from its OME-Zarr run), and Stop must leave no thread behind.
Screenshots go to ``$SCOPE_SCREENSHOTS`` (``docs/images`` when refreshing the docs).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

# software OpenGL (Xvfb): render in the GUI thread, not in llvmpipe's spinning workers, which
# would starve the live acquisition on 2 cores (see reconstruction/benchmarks/RESULTS.md)
os.environ.setdefault("LP_NUM_THREADS", "0")
pytest.importorskip("napari")
if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
    pytest.skip("no display: run under `bash dev.sh test` (Xvfb)", allow_module_level=True)

from napari_helpers import screenshot

pytestmark = pytest.mark.napari


def _screenshot(viewer, name: str, tmp_path: Path) -> Path:
    return screenshot(viewer, name, tmp_path, size=(1400, 940))


def _warm_up_zarr(tmp_path: Path) -> None:
    # zarr starts process-wide I/O threads on first use (they live as long as the process);
    # start them before the baseline so the comparison sees only what the session starts
    import zarr

    zarr.create_array(str(tmp_path / "warm.zarr"), shape=(2,), dtype="u1")[:] = 1


def _new_threads(baseline: set) -> set:
    """Threads started since ``baseline``, except process-wide worker pools that live as long
    as the process: zarr's I/O event loop, and the reconstruction backend's element-wise
    workers (one per core at most, checked here)."""
    new = set(threading.enumerate()) - baseline
    backend = {t for t in new if t.name.startswith("scope-backend")}
    assert len(backend) <= (os.cpu_count() or 1)
    return {
        t
        for t in new - backend
        if not (t.daemon and (t.name == "zarr_io" or t.name.startswith("asyncio_")))
    }


def test_live_sim_matches_offline_reconstruction_and_stops_cleanly(
    make_napari_viewer, qtbot, tmp_path
):
    from scope.acquisition.writer import read_acquisition
    from scope.napari.live_widget import (
        RAW_LAYER,
        SIM_LAYER,
        WIDEFIELD_LAYER,
        LiveImagingWidget,
    )
    from scope.sim.reconstruct import SIMReconstructor

    _warm_up_zarr(tmp_path)
    viewer = make_napari_viewer(show=True)
    widget = LiveImagingWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Live SIM imaging")
    widget.sensor.setValue(256)
    widget.keep_live.setChecked(True)  # keep the scratch run to compare against
    inserted: list[str] = []
    viewer.layers.events.inserted.connect(lambda e: inserted.append(e.value.name))
    baseline = set(threading.enumerate())

    widget.sim_button.click()
    session = widget.session
    assert session is not None
    qtbot.waitUntil(lambda: SIM_LAYER in viewer.layers, timeout=20_000)
    t0 = time.monotonic()
    # 10 s of live SIM with the GUI event loop running
    qtbot.waitUntil(lambda: time.monotonic() - t0 >= 10.0, timeout=15_000)
    snap = session.snapshot()
    assert time.monotonic() - t0 >= 10.0
    assert snap.stats.sim_images >= 20, snap.stats
    assert snap.stats.raw_frames >= 100, snap.stats
    assert len(snap.stats.modulation) == 3
    assert all(0.3 < m < 1.3 for m in snap.stats.modulation), snap.stats.modulation
    assert "SIM" in widget.stats_label.text() and "modulation" in widget.stats_label.text()
    _screenshot(viewer, "napari_live_sim.png", tmp_path)

    widget.stop_button.click()
    qtbot.waitUntil(lambda: widget.session is None, timeout=15_000)
    # no layer churn: three layers created once, updated in place since
    assert sorted(inserted) == sorted([RAW_LAYER, WIDEFIELD_LAYER, SIM_LAYER])
    assert widget.gui_updates > 20
    # stop leaves no thread running (acquisition, reconstruction, camera, emulator ...)
    deadline = time.monotonic() + 5
    while _new_threads(baseline) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _new_threads(baseline) == set()
    assert not session.running
    from qtpy.QtCore import QThreadPool

    assert QThreadPool.globalInstance().activeThreadCount() == 0  # no Qt worker either

    # the displayed SIM image == offline reconstruction of the same recorded frames
    layer = viewer.layers[SIM_LAYER]
    indices = layer.metadata["frame_indices"]
    serial = layer.metadata["sim_serial"]
    assert len(indices) == 9
    assert dict(session.sim_log)[serial] == tuple(indices)
    frames, table, meta = read_acquisition(session.output)
    assert meta["state"] == "complete"
    first = np.stack([np.asarray(frames[i]) for i in session.sim_log[0][1]]).astype(np.float32)
    shown = np.stack([np.asarray(frames[i]) for i in indices]).astype(np.float32)
    # slots come from the controller's pulse counts: the file's table agrees
    slots = [(int(table["controller_count"][i]) - 1) % 9 for i in indices]
    valid_tagged = [k for k, i in enumerate(indices) if table["controller_count"][i] > 0]
    assert all(slots[k] == k for k in valid_tagged)
    offline = SIMReconstructor(
        session.setup, session.params, shape=shown.shape[-2:], backend="numpy"
    )
    offline(first)  # the same first window fixes the same noise model
    expected = offline(shown)
    got = np.asarray(layer.data)
    assert got.shape == (512, 512)
    err = np.abs(got - expected).max() / np.abs(expected).max()
    assert err < 1e-4, err
    # physical placement: half the camera pixel, a quarter-pixel shift to overlay the raw layer
    raw = viewer.layers[RAW_LAYER]
    assert layer.metadata["sim_parameters"] == session.params.to_dict()  # saved with it
    np.testing.assert_allclose(layer.scale, np.asarray(raw.scale) / 2)
    np.testing.assert_allclose(layer.translate, -np.asarray(raw.scale) / 4)
    session.cleanup()


def test_record_through_the_engine_with_progress(make_napari_viewer, qtbot, tmp_path):
    """Record 8 sets to OME-Zarr through the engine; the progress bar moves to 100 %."""
    from scope.acquisition.writer import complete_sets, read_acquisition
    from scope.io.raw import open_raw
    from scope.napari.live_widget import LiveImagingWidget

    viewer = make_napari_viewer(show=True)
    widget = LiveImagingWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Live SIM imaging")
    widget.sensor.setValue(128)
    widget.sim_every.setCurrentIndex(1)  # a SIM image per verified set
    widget.output.setText(str(tmp_path / "rec.zarr"))
    widget.n_sets.setValue(8)
    progress: list[int] = []
    widget.progress.valueChanged.connect(progress.append)
    widget.record_button.click()
    qtbot.waitUntil(lambda: widget.session is None, timeout=30_000)
    assert widget.progress.value() == 100
    _screenshot(viewer, "napari_record.png", tmp_path)
    assert len(set(progress)) >= 3  # it moved while recording
    summary = widget.last_session.summary
    assert summary.state == "complete"
    assert summary.sets_valid + summary.sets_invalid == 8
    stack = open_raw(tmp_path / "rec.zarr", n_frames_per_set=9)
    # the verified sets, and after the first of them any set kept without a missing frame
    # (a frame a loaded machine's camera dropped or exposed off its pulse)
    _, table, _ = read_acquisition(tmp_path / "rec.zarr")
    assert stack.n_sets == len(complete_sets(table, 9, with_dropped=True)[1])
    assert (
        summary.sets_valid
        <= stack.n_sets
        <= summary.sets_valid + len(summary.sets_without_dropped_frames)
    )
    assert stack.pixel_size_nm == pytest.approx(65.0)


def test_live_shows_raw_and_widefield_without_reconstructing(make_napari_viewer, qtbot, tmp_path):
    from scope.napari.live_widget import (
        MODULATION_LAYER,
        RAW_LAYER,
        SIM_LAYER,
        WIDEFIELD_LAYER,
        LiveImagingWidget,
    )

    _warm_up_zarr(tmp_path)
    viewer = make_napari_viewer()
    widget = LiveImagingWidget(viewer)
    widget.sensor.setValue(128)
    baseline = set(threading.enumerate())
    widget.live_button.click()
    session = widget.session
    qtbot.waitUntil(lambda: WIDEFIELD_LAYER in viewer.layers, timeout=20_000)
    qtbot.waitUntil(lambda: session.snapshot().stats.raw_frames >= 40, timeout=20_000)
    raw, wf = viewer.layers[RAW_LAYER], viewer.layers[WIDEFIELD_LAYER]
    assert raw.visible and wf.visible and raw.data.shape == wf.data.shape == (128, 128)
    limits = tuple(wf.contrast_limits)
    qtbot.wait(500)
    assert tuple(wf.contrast_limits) == limits  # contrast stays put while frames change
    # the widefield is the mean of 9 pattern frames: stripes and shot noise average out
    assert np.std(np.asarray(wf.data)) < np.std(np.asarray(raw.data))
    # focusing aid: the pattern's modulation map, switched on while running
    assert MODULATION_LAYER not in viewer.layers  # off by default: it costs nothing then
    widget.modulation_map.setChecked(True)
    qtbot.waitUntil(lambda: MODULATION_LAYER in viewer.layers, timeout=10_000)
    mcnr = np.asarray(viewer.layers[MODULATION_LAYER].data)
    # the simulated pattern is in focus: visible over most of the field (measured: median
    # 3.5, 75 % of the pixels at 3 or more), far above the noise floor of 0.9
    assert mcnr.shape == (128, 128)
    assert np.median(mcnr) > 2.5 and np.mean(mcnr >= 3) > 0.5
    widget.stop_button.click()
    qtbot.waitUntil(lambda: widget.session is None, timeout=15_000)
    assert SIM_LAYER not in viewer.layers
    assert session.reconstructor is None and session.params is None  # nothing estimated
    deadline = time.monotonic() + 5
    while _new_threads(baseline) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _new_threads(baseline) == set()
    assert not session.output.parent.exists()  # the scratch run is removed
    # the widefield snapshot saved with the plugin's writer reopens as a widefield image (it
    # was tagged "raw" and the reader refused it), on the same µm grid
    from napari import save_layers

    assert str(wf.units[-1]) == "micrometer" and str(raw.units[-1]) == "micrometer"
    (path,) = save_layers(str(tmp_path / "live_wf.ome.tif"), [wf], plugin="scope-sim")
    (back,) = viewer.open(path, plugin="scope-sim")
    assert back.metadata["scope_kind"] == "widefield"
    np.testing.assert_allclose(np.asarray(back.data), np.asarray(wf.data), rtol=1e-6)
    np.testing.assert_allclose(back.scale, (0.065, 0.065))
    assert back.metadata["na"] == pytest.approx(1.2)


def test_a_field_too_small_for_the_pattern_is_refused(make_napari_viewer):
    """An 8 x 8 ROI cannot hold enough of a 260 nm pattern to find it: Live SIM says the field
    is too small and how large it must be (the estimate used to say the period lies outside
    what the pixels can sample); plain Live still starts."""
    from scope.napari.live_widget import LiveImagingWidget

    viewer = make_napari_viewer()
    widget = LiveImagingWidget(viewer)
    widget.sensor.setValue(64)
    widget.roi.setText("0, 0, 8, 8")
    assert widget.start("sim") is None
    text = widget.status.text()
    assert text.startswith("cannot start: the field of 8 x 8 pixels is too small")
    assert "at least 8 periods across, 32 x 32 pixels of 65 nm" in text
    assert "make the ROI larger" in text
    assert widget.live_button.isEnabled()


def test_closing_the_viewer_stops_a_running_session(make_napari_viewer, qtbot, tmp_path):
    from scope.napari.live_widget import LiveImagingWidget

    _warm_up_zarr(tmp_path)
    viewer = make_napari_viewer()
    widget = LiveImagingWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Live SIM imaging")
    widget.sensor.setValue(64)
    baseline = set(threading.enumerate())
    session = widget.start("sim")
    qtbot.waitUntil(lambda: session.snapshot().stats.sim_images > 0, timeout=20_000)
    viewer.close()  # the widget is destroyed with the window: its session must end
    assert session.join(15)
    assert session.summary is not None and session.summary.state == "complete"
    deadline = time.monotonic() + 5
    while _new_threads(baseline) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _new_threads(baseline) == set()


def test_scan_lists_genicam_cameras_and_a_real_camera_needs_a_controller(
    make_napari_viewer, qtbot, monkeypatch
):
    from scope.devices.genicam import bundled_producer
    from scope.napari.live_widget import LiveImagingWidget

    cti = bundled_producer()
    if cti is None:
        pytest.skip("the genicam wheel with viky.cti is not installed")
    monkeypatch.setenv("GENICAM_GENTL64_PATH", str(cti))
    viewer = make_napari_viewer()
    widget = LiveImagingWidget(viewer)
    widget.scan_button.click()
    cameras = [widget.camera.itemText(i) for i in range(widget.camera.count())]
    assert cameras[0] == "sim" and "genicam:0" in cameras
    assert widget.controller.itemText(0) == "sim://"
    widget.camera.setCurrentText("genicam:0")
    widget.controller.setCurrentText("sim://")
    widget.live_button.click()
    qtbot.waitUntil(lambda: widget.session is None, timeout=10_000)
    assert "serial port of the pattern controller" in widget.status.text()
    assert widget.live_button.isEnabled()


def test_snapshot_metadata_is_built_once_per_session_and_pattern(make_napari_viewer):
    """What a saved snapshot states (optics, pattern) is given to a live layer once per session
    and pattern, not for every image shown; a new estimate (or a new session) updates it (it
    used to keep the first pattern the layer ever showed)."""
    from types import SimpleNamespace

    from scope.napari.live import LiveConfig
    from scope.napari.live_widget import (
        SIM_LAYER,
        WIDEFIELD_LAYER,
        LiveImagingWidget,
        snapshot_metadata,
    )

    config = LiveConfig()
    setup, params = config.setup(), config.nominal_params()
    assert snapshot_metadata(WIDEFIELD_LAYER, setup) == {
        "pixel_size_nm": 65.0,
        "optics": setup.model_dump(),
        "na": 1.2,
        "wavelength_nm": 525.0,
    }
    assert snapshot_metadata(SIM_LAYER, setup) == {"pixel_size_nm": 32.5}  # no pattern yet
    assert snapshot_metadata(SIM_LAYER, setup, params)["sim_parameters"] == params.to_dict()

    widget = LiveImagingWidget(make_napari_viewer())
    layer = SimpleNamespace(name=SIM_LAYER, metadata={})
    session = SimpleNamespace(setup=setup, params=None)
    widget._describe(layer, session)
    assert layer.metadata == {"pixel_size_nm": 32.5}
    session.params = params
    widget._describe(layer, session)  # the pattern is known now
    assert layer.metadata["sim_parameters"] == params.to_dict()
    layer.metadata["sim_parameters"] = "kept"
    widget._describe(layer, session)  # the same session and pattern: nothing rebuilt
    assert layer.metadata["sim_parameters"] == "kept"
    session.params = LiveConfig(period_nm=300.0).nominal_params()  # estimated again
    widget._describe(layer, session)
    assert layer.metadata["sim_parameters"] == session.params.to_dict()
