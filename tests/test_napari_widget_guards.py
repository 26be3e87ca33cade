"""The reconstruction widget refuses what cannot work, in its own words, once, and never
crashes (real napari viewer under Xvfb): an offset above the data, an NA above the immersion
index, errors in its workers, a second job while one runs; it follows the layers the user opens
and says which optics a layer does not state; a channel's SIM is coloured as the reader colours
it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

os.environ.setdefault("LP_NUM_THREADS", "0")
pytest.importorskip("napari")
if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
    pytest.skip("no display: run under `bash dev.sh test` (Xvfb)", allow_module_level=True)

pytestmark = pytest.mark.napari

OPTICS = {"pixel_size_nm": 65.0, "na": 1.2, "wavelength_nm": 525.0, "n_angles": 3, "n_phases": 3}


def _simulated(angles=(10.0, 70.0, 130.0), size: int = 64, n_t: int = 1) -> np.ndarray:
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


def _widget(make_napari_viewer, raw: np.ndarray, name: str = "cell raw"):
    from scope.napari.reconstruction_widget import ReconstructionWidget

    viewer = make_napari_viewer()
    viewer.add_image(
        raw, name=name, metadata=dict(OPTICS), scale=(1,) * (raw.ndim - 2) + (0.065,) * 2
    )
    return viewer, ReconstructionWidget(viewer)


def test_an_offset_above_the_data_is_refused(make_napari_viewer, qtbot):
    """Camera offset 5000 ADU on data peaking far below: Estimate and Reconstruct stack say so
    (as scope reconstruct does) instead of making an all-negative SIM image."""
    raw = _simulated(n_t=2)
    viewer, widget = _widget(make_napari_viewer, raw)
    widget.offset.setValue(5000.0)
    brightest = float(raw[0].max())
    assert brightest < 5000
    with qtbot.capture_exceptions() as raised:
        assert widget.estimate() is None
        assert not widget.busy and widget.params is None
        text = widget.status.text()
        assert f"the brightest value is {brightest:g} ADU" in text
        assert "Camera offset is 5000" in text and "--offset" not in text
        widget.reconstruct_stack()
        qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert raised == []
    assert "no signal above the offset" in widget.status.text()
    assert "cell SIM" not in viewer.layers


def test_a_blank_frame_is_refused(make_napari_viewer, qtbot):
    """A dropped (all-zero) frame in the set on screen: Estimate says which frame, as
    scope reconstruct does, instead of estimating a pattern from it."""
    raw = _simulated(n_t=1)
    raw[0, 4] = 0
    _, widget = _widget(make_napari_viewer, raw)
    with qtbot.capture_exceptions() as raised:
        assert widget.estimate() is None
    assert raised == [] and widget.params is None
    assert "frame 4 of this SIM set (counting from 0, of 9) holds almost no" in widget.status.text()


def test_a_blank_frame_in_a_stack(make_napari_viewer, qtbot):
    """Reconstruct stack: a blank first set is refused, naming the frame; a blank frame in a
    later set is left out of that set's separation (its image close to the same set's complete
    one, not striped), and the status line and the layer's metadata name the set and frame;
    the preview of that set leaves it out as well."""
    from scope.sim import metrics

    raw = _simulated(n_t=1, size=96)
    series = np.concatenate([raw, raw, raw])  # three sets of one sample
    series[1, 6] = 100.0  # the offset: no light
    viewer, widget = _widget(make_napari_viewer, series)
    with qtbot.capture_exceptions() as raised:
        widget.reconstruct_stack()
        qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert raised == []
    sim = viewer.layers["cell SIM"]
    assert metrics.normalized_rms_error(sim.data[1], sim.data[0]) < 0.1
    assert sim.metadata["blank_frames"]["blank"] == [{"set": 1, "frames": [6]}]
    assert "1 of 3 SIM sets holds a dropped or blank frame: set 1 (frame 6)" in (
        widget.status.text()
    )
    # the preview of that set (the pattern known) leaves the frame out too, and says so
    from scope.napari._layers import lead_axes
    from scope.napari.reconstruction_widget import PREVIEW_LAYER

    raw_layer = viewer.layers["cell raw"]  # its time axis (the frames' axis may come first now)
    t_axis = lead_axes(raw_layer)[0] + viewer.dims.ndim - raw_layer.ndim
    viewer.dims.set_current_step(t_axis, 0)
    widget.estimate()
    qtbot.waitUntil(lambda: widget.params is not None and not widget.busy, timeout=30_000)
    complete = np.array(viewer.layers[PREVIEW_LAYER].data)  # set 0's
    np.testing.assert_array_equal(widget.current_set(), series[0])
    viewer.dims.set_current_step(t_axis, 1)
    np.testing.assert_array_equal(widget.current_set(), series[1])
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    assert widget.preview() is not None
    qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
    preview = np.asarray(viewer.layers[PREVIEW_LAYER].data)
    assert metrics.normalized_rms_error(preview, complete) < 0.1
    assert "frame 6 (counting from 0) hold almost no signal: left out" in widget.status.text()
    first_blank = series.copy()
    first_blank[0, 2] = 0.0
    viewer, widget = _widget(make_napari_viewer, first_blank, name="dropped")
    widget.reconstruct_stack()
    qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert "frame 2 of the layer's first SIM set (counting from 0, of 9) holds almost no" in (
        widget.status.text()
    )
    assert "dropped SIM" not in viewer.layers


def test_an_na_above_the_immersion_index_is_one_plain_message(make_napari_viewer, qtbot):
    """NA 1.6 in oil (1.515): the model's own sentence in the status line, no pydantic text."""
    _, widget = _widget(make_napari_viewer, _simulated()[0])
    widget.na.setValue(1.6)
    with qtbot.capture_exceptions() as raised:
        assert widget.estimate() is None
        widget.reconstruct_stack()
    assert raised == [] and not widget.busy
    text = widget.status.text()
    assert text == (
        "NA 1.6 exceeds the immersion index 1.515: check the objective's NA and the immersion "
        "medium"
    )


def test_an_error_in_a_worker_shows_once_in_the_widgets_words(make_napari_viewer, qtbot):
    """Frames grouped otherwise than recorded (two 'angles' of one orientation): the error of
    the estimate worker shows once, in the status line, naming the widget's fields, and is not
    raised again in the GUI thread."""
    _, widget = _widget(make_napari_viewer, _simulated(angles=(10.0, 10.2, 130.0), size=128)[0])
    with qtbot.capture_exceptions() as raised:
        widget.estimate_button.click()
        qtbot.waitUntil(lambda: not widget.busy, timeout=30_000)
        qtbot.wait(50)
    assert raised == []  # the default handler used to raise it in the GUI thread too
    text = widget.status.text()
    assert text.startswith("error: angles 0 and 1 show one and the same pattern orientation")
    assert "the fields Angles and Phases" in text and "the field Frame order" in text
    assert "--" not in text
    assert widget.estimate_button.isEnabled()


def test_a_worker_error_does_not_abort_a_script(tmp_path):
    """A script without napari's exception hooks: an estimate that fails (noise, no pattern)
    ends in the status line; the process used to abort (SIGABRT)."""
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            import numpy as np
            import napari
            from qtpy.QtWidgets import QApplication
            from scope.napari.reconstruction_widget import ReconstructionWidget

            viewer = napari.Viewer(show=False)
            noise = np.random.default_rng(0).poisson(100, (9, 64, 64)).astype(np.float32)
            meta = {"pixel_size_nm": 65.0, "na": 1.2, "wavelength_nm": 525.0}
            viewer.add_image(noise, name="noise raw", metadata=meta)
            widget = ReconstructionWidget(viewer)
            widget.estimate()
            app = QApplication.instance()
            start = time.monotonic()
            while widget.busy and time.monotonic() - start < 60:
                app.processEvents()
                time.sleep(0.01)
            for _ in range(20):
                app.processEvents()
                time.sleep(0.01)
            print("STATUS:", widget.status.text())
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "STATUS: error: angle 0: no clear pattern carrier" in done.stdout
    assert "Traceback" not in done.stderr


def test_the_stack_can_be_cancelled_and_runs_one_at_a_time(make_napari_viewer, qtbot):
    """While the stack runs, Estimate is disabled and Reconstruct stack is Cancel; a second
    start is refused; Cancel stops it with no layer made; then both buttons are back."""
    viewer, widget = _widget(make_napari_viewer, _simulated(size=64, n_t=40))
    with qtbot.capture_exceptions() as raised:
        widget.reconstruct_button.click()
        assert widget._job_worker is not None and widget._job == "stack"
        assert not widget.estimate_button.isEnabled()
        assert widget.reconstruct_button.text() == "Cancel"
        assert widget.reconstruct_button.isEnabled()
        assert widget.reconstruct_stack() is None and widget.estimate() is None
        assert len(widget._workers) == 1  # no second job
        assert "wait for it to finish" in widget.status.text()
        widget.reconstruct_button.click()  # Cancel
        qtbot.waitUntil(lambda: not widget.busy, timeout=60_000)
    assert raised == []
    assert "cancelled" in widget.status.text() and "no layer made" in widget.status.text()
    assert "cell SIM" not in viewer.layers and widget.progress.value() < 100
    assert widget.estimate_button.isEnabled()
    assert widget.reconstruct_button.text() == "Reconstruct stack"
    # an estimate disables both while it runs
    widget.estimate_button.click()
    assert not widget.estimate_button.isEnabled() and not widget.reconstruct_button.isEnabled()
    qtbot.waitUntil(lambda: widget.params is not None and not widget.busy, timeout=30_000)
    assert widget.estimate_button.isEnabled() and widget.reconstruct_button.isEnabled()


def test_opened_layers_are_selected_with_their_own_optics(make_napari_viewer, qtbot, tmp_path):
    """A file opened after the widget (File > Open) is selected; each channel brings its own
    wavelength; a file stating no NA or wavelength says so rather than silently keeping the
    other layer's; values entered for a layer stay with it; a channel's SIM layer is coloured
    by its wavelength and blended additively, as the reader shows a multi-colour result."""
    from scope.napari.reconstruction_widget import ReconstructionWidget
    from sim_cases import make_two_colour_file

    two = make_two_colour_file(tmp_path)
    viewer = make_napari_viewer()
    viewer.add_image(_simulated()[0], name="first raw", metadata=dict(OPTICS))
    widget = ReconstructionWidget(viewer)
    assert widget.layer_box.currentText() == "first raw"
    c0, c1 = viewer.open(str(two["path"]), plugin="scope-sim")  # as File > Open does
    assert widget.layer_box.currentText() == c1.name  # the newest raw layer
    assert widget.wavelength.value() == 600.0
    widget.layer_box.setCurrentText(c0.name)
    assert widget.wavelength.value() == 525.0

    (alone,) = viewer.open(str(two["alone"][1]), plugin="scope-sim")  # no optics stated
    assert widget.layer_box.currentText() == alone.name
    text = widget.status.text()
    assert f"{alone.name!r} states no NA or emission wavelength" in text
    assert "check them" in text and "states no pixel size" in text
    widget.pixel_size.setValue(65.0)
    widget.wavelength.setValue(600.0)
    widget.layer_box.setCurrentText(c0.name)
    assert widget.wavelength.value() == 525.0  # its own, stated by the file
    assert "emission wavelength" not in widget.status.text()
    widget.layer_box.setCurrentText(alone.name)
    assert widget.wavelength.value() == 600.0 and widget.pixel_size.value() == 65.0
    assert "emission wavelength" not in widget.status.text()  # entered for it: kept

    widget.layer_box.setCurrentText(c1.name)
    widget.with_widefield.setChecked(True)
    widget.reconstruct_stack()
    name = "two.ome.tif c1 (600 nm) SIM"
    qtbot.waitUntil(lambda: name in viewer.layers and not widget.busy, timeout=60_000)
    sim = viewer.layers[name]
    wf = viewer.layers["two.ome.tif c1 (600 nm) widefield"]
    assert sim.colormap.name == "red" and sim.blending == "additive"
    assert wf.colormap.name == "red" and wf.blending == "additive"
    assert sim.metadata["wavelength_nm"] == 600.0
