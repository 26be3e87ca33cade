"""napari dock widget: interactive SIM reconstruction of a raw stack layer or file.

1. Pick a raw stack layer (its frames on the axis labelled *angle·phase*: first as the reader
   opens it, or third from last) or *Open file…* (the plugin's reader; a raw layer added
   later is selected); the optics fields (NA, emission wavelength, camera pixel size, camera
   offset) are filled from what the layer states (``layer.metadata``), what it does not state
   is said in the status line, and every field can be edited (a pixel size entered rescales the
   raw layer and the layers made from it, and the view frames them again).
2. *Estimate parameters* runs :func:`scope.sim.estimate.estimate_parameters` on the current set
   (a worker thread), shows the report (angle, period, modulation, carrier peak/noise per angle)
   and the spectrum of the frames with the carriers marked (:func:`scope.sim.diagnostics.
   spectrum_with_carriers`) as two layers over the raw layer's field.
3. Wiener (automatic MMSE or a constant), notch and apodisation controls update a *SIM preview*
   of the current set within a fraction of a second: the cached operator is re-derived with
   :meth:`SIMReconstructor.with_settings` (same parameters and noise model), in a worker.
4. *Reconstruct stack* (*Cancel* while it runs) reconstructs every set (a time series too) into
   a new layer with the physical scale of the 2x grid — half the camera pixel size, translated
   by a quarter of a camera pixel, so it overlays the raw layer, its leading axes lined up with
   the raw layer's — and the parameters, optics and settings in its metadata (saved with it by
   the plugin's OME-TIFF/OME-Zarr writers).

One job (estimate or stack) runs at a time; what cannot work (an offset above the data, optics
that cannot be, an error in a worker) is said once in the status line, in the widget's words.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from scope.errors import DataFormatError, ScopeError
from scope.napari._controls import (
    form_box,
    int_spin_box,
    layer_choice,
    spin_box,
    vertical_scroll,
    wrapping_label,
)
from scope.napari._layers import (
    adopt_um,
    camera_pixel_size_nm,
    frame_axis,
    lead_axes,
)
from scope.napari._messages import in_widget_words
from scope.napari._result_layers import (
    add_results,
    camera_grid,
    percentile_limits,
    put_image,
    put_points,
    rescale_from,
    sim_grid,
)
from scope.sim.saturation import SaturationCounter, camera_pixel_format

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)

PREVIEW_LAYER = "SIM preview"
SPECTRUM_LAYER = "spectrum"
CARRIERS_LAYER = "carriers"
MODULATION_LAYER = "pattern modulation (MCNR)"
DEFECTS_LAYER = "camera defects (repaired)"
#: the frame-brightness choices and their ``ReconstructionSettings.equalize_frames``
EQUALIZE_CHOICES = {
    "equalise when unequal": None,
    "always equalise": True,
    "leave as recorded": False,
}
#: what the pixel-size field shows while the layer states no pixel size
PIXEL_SIZE_UNKNOWN = "not stated: enter it"
#: the optics fields kept per layer (in its metadata) and how the status line names them
OPTICS_KEYS = {"na": "NA", "wavelength_nm": "emission wavelength"}
#: re-exported: where the SIM layer goes over its raw layer
__all__ = ["ReconstructionWidget"]


def _operator(frames: np.ndarray, setup: Any, params: Any, settings: Any) -> tuple[Any, Any]:
    """The cached operator for a layer's sets, with the pattern's phase map when the
    illumination optics bend it across the field (:func:`scope.sim.pattern_map.
    plan_pattern_map`), and that map (None when one pattern fits the field)."""
    from scope.sim.pattern_map import plan_pattern_map
    from scope.sim.reconstruct import SIMReconstructor

    pattern_map = plan_pattern_map(frames, setup, params, mode="auto")
    maps = None if pattern_map is None else pattern_map.maps(frames.shape[-2:], setup.pixel_size_um)
    rec = SIMReconstructor(
        setup, params, shape=frames.shape[-2:], settings=settings, phase_maps=maps
    )
    return rec, pattern_map


def _lead_axes(raw_layer: Any, n: int) -> str:
    """Letters of the ``n`` leading axes of a SIM result (the raw layer's, less its frames)."""
    axes = str(raw_layer.metadata.get("axes", ""))
    lead = axes.replace("P", "")[:-2] if len(axes) == raw_layer.ndim else ""
    if len(lead) == n and set(lead) <= set("TCZ"):
        return lead
    return "TCZ"[:n]


def offset_problem(frames: np.ndarray, offset_adu: float | None) -> str | None:
    """Why ``offset_adu`` cannot be the camera offset of ``frames`` (no value above it: the SIM
    image would be all negative; ``scope reconstruct`` refuses it alike), or None."""
    from scope.sim.pipeline import check_camera_offset

    try:
        check_camera_offset(frames, offset_adu, given_as="Camera offset")
    except DataFormatError as err:
        return f"{err} (or set it to auto)"
    return None


class ReconstructionWidget(QWidget):
    """Interactive SIM reconstruction (see the module docstring)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.params: Any = None
        self.reconstructor: Any = None
        self._workers: list[Any] = []
        self._job: str | None = None  # "estimate" or "stack": one at a time
        self._job_worker: Any = None
        self._preview_pending = False
        #: counts the times the parameters were forgotten (another layer, optics, frame order):
        #: a worker started before that belongs to the old ones and its result is dropped
        self._epoch = 0
        self._loading = False  # fields being filled from a layer (not edited by the user)
        # what the selected layer does not state (optics keys, and whether its pixel size),
        # until the user enters it: the status line's note follows
        self._unstated: list[str] = []
        self._no_pixel_size = False
        self.last_result: np.ndarray | None = None

        self.layer_box = layer_choice()
        self.layer_box.currentIndexChanged.connect(self._layer_changed)
        self.open_button = QPushButton("Open file…")
        self.open_button.clicked.connect(self._open_dialog)
        self.open_button.setToolTip("open a raw SIM stack with the plugin's reader")

        self.na = spin_box(0.1, 1.7, 1.2, 0.05, 2)
        self.wavelength = spin_box(300.0, 1200.0, 525.0, 5.0, 1, " nm")
        self.pixel_size = spin_box(0.0, 10000.0, 65.0, 1.0, 2, " nm")
        self.pixel_size.setSpecialValueText(PIXEL_SIZE_UNKNOWN)
        self.pixel_size.setToolTip("camera pixel size at the sample")
        self.immersion = spin_box(1.0, 1.6, 1.515, 0.005, 3)
        self.n_angles = int_spin_box(1, 9, 3)
        self.n_phases = int_spin_box(3, 9, 3)
        self.frame_order = QComboBox()
        self.frame_order.addItems(["angle-major", "phase-major"])  # scope.io.raw.FRAME_ORDERS
        self.frame_order.setToolTip(
            "how each set's frames lie in the layer: angle-major, phase fastest (a0p0 a0p1 a0p2 "
            "a1p0 ...) or phase-major, angle fastest (a0p0 a1p0 a2p0 a0p1 ...)"
        )
        self.offset = spin_box(-1.0, 65535.0, -1.0, 1.0, 1, " ADU")
        self.offset.setSpecialValueText("auto")
        self.offset.setToolTip("camera offset (auto: a low percentile of the first frame)")
        optics_box = form_box(
            "Data and optics",
            [
                ("Raw stack", self.layer_box),
                ("", self.open_button),
                ("NA", self.na),
                ("Emission λ", self.wavelength),
                ("Camera pixel\nat sample", self.pixel_size),
                ("Immersion index", self.immersion),
                ("Angles", self.n_angles),
                ("Phases", self.n_phases),
                ("Frame order", self.frame_order),
                ("Camera offset", self.offset),
            ],
        )
        self.frame_order.currentIndexChanged.connect(self._forget_parameters)
        self.na.valueChanged.connect(lambda v: self._optics_edited("na", v))
        self.wavelength.valueChanged.connect(lambda v: self._optics_edited("wavelength_nm", v))
        self.pixel_size.valueChanged.connect(self._pixel_size_edited)
        self.immersion.valueChanged.connect(lambda v: self._optics_edited("immersion_index", v))

        self.estimate_button = QPushButton("Estimate parameters")
        self.estimate_button.clicked.connect(self.estimate)
        self.report = wrapping_label("no parameters yet")

        self.auto_wiener = QCheckBox("automatic (MMSE)")
        self.auto_wiener.setChecked(True)
        self.wiener = spin_box(1e-6, 10.0, 0.05, 0.01, 4)
        self.wiener.setEnabled(False)
        self.auto_wiener.toggled.connect(lambda on: self.wiener.setEnabled(not on))
        self.notch = spin_box(0.0, 1.0, 0.0, 0.05, 2)
        self.apodization = spin_box(0.3, 1.5, 1.0, 0.05, 2)
        self.apodization.setToolTip("apodisation cutoff, relative to the extended support fc+|p|")
        self.filter = QComboBox()
        self.filter.addItems(["wiener", "hifi"])
        self.equalize = QComboBox()
        self.equalize.addItems(list(EQUALIZE_CHOICES))
        self.equalize.setToolTip(
            "frames of a set lit unequally (a flickering source, bleaching, angles lit "
            "unequally) are scaled to equal brightness before the orders are separated"
        )
        self.wiener.setToolTip("the Wiener constant, when not automatic")
        controls_box = form_box(
            "Filter (live preview of the current set)",
            [
                ("Filter", self.filter),
                ("Wiener", self.auto_wiener),
                ("Wiener constant", self.wiener),
                ("Notch strength", self.notch),
                ("Apodisation", self.apodization),
                ("Frame brightness", self.equalize),
            ],
        )
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(150)
        self._debounce.timeout.connect(self.preview)
        for w in (self.wiener, self.notch, self.apodization):
            w.valueChanged.connect(lambda *_: self._schedule_preview())
        self.auto_wiener.toggled.connect(lambda *_: self._schedule_preview())
        self.filter.currentIndexChanged.connect(lambda *_: self._schedule_preview())
        self.equalize.currentIndexChanged.connect(lambda *_: self._schedule_preview())

        self.reconstruct_button = QPushButton("Reconstruct stack")
        self.reconstruct_button.setToolTip("reconstruct every set; click again to cancel")
        self.reconstruct_button.clicked.connect(self._reconstruct_clicked)
        self.with_widefield = QCheckBox("and its widefield image")
        self.with_widefield.setChecked(True)
        self.with_widefield.setToolTip(
            "also a widefield layer (each set's mean, offset subtracted, camera grid) to "
            "compare with, and for the export's side-by-side and wipe"
        )
        stack_row = QHBoxLayout()
        stack_row.addWidget(self.reconstruct_button, 1)
        stack_row.addWidget(self.with_widefield)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.status = wrapping_label()

        # the settings and the report scroll in a small window; the stack's controls and the
        # status line stay in view
        layout = QVBoxLayout(self)
        layout.addWidget(
            vertical_scroll([optics_box, self.estimate_button, self.report, controls_box])
        )
        layout.addLayout(stack_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    # -- layers ----------------------------------------------------------------------------------
    def _raw_layers(self) -> list[Any]:
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if self._is_raw(layer, Image)]

    @staticmethod
    def _is_raw(layer: Any, image_type: type) -> bool:
        return (
            isinstance(layer, image_type)
            and layer.ndim >= 3
            and not layer.rgb
            and layer.metadata.get("scope_kind") not in ("sim", "widefield")
            and layer.name not in (PREVIEW_LAYER, SPECTRUM_LAYER)
        )

    def _refresh_layers(self, event: Any = None) -> None:
        """Follow the layer list; a raw stack just added (File > Open, a sample, a script) is
        selected, as it is what the user wants to reconstruct next."""
        from napari.layers import Image

        old = self.layer_box.currentText()
        added = getattr(event, "value", None) if getattr(event, "type", "") == "inserted" else None
        target = added.name if added is not None and self._is_raw(added, Image) else old
        names = [layer.name for layer in self._raw_layers()]
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(names)
        if target in names:
            self.layer_box.setCurrentText(target)
        self.layer_box.blockSignals(False)
        if names and (target != old or old not in names):
            self._layer_changed()

    @property
    def layer(self) -> Any:
        name = self.layer_box.currentText()
        for layer in self.viewer.layers:
            if layer.name == name:
                return layer
        return None

    def _layer_changed(self, *_: Any) -> None:
        """Fill the fields with what the selected layer states; say which values it does not
        state (the fields keep the previous values there: check them)."""
        layer = self.layer
        if layer is None:
            return
        m = layer.metadata
        unstated = []
        self._loading = True
        try:
            for key, box in (("na", self.na), ("wavelength_nm", self.wavelength)):
                if m.get(key):
                    box.setValue(float(m[key]))
                else:
                    unstated.append(key)
            if m.get("immersion_index"):
                self.immersion.setValue(float(m["immersion_index"]))
            px = camera_pixel_size_nm(layer)
            self.pixel_size.setValue(px or 0.0)
            adopt_um(layer, px)
            if m.get("n_angles"):
                self.n_angles.setValue(int(m["n_angles"]))
            if m.get("n_phases"):
                self.n_phases.setValue(int(m["n_phases"]))
            offset = m.get("offset_adu")
            self.offset.setValue(float(offset) if offset is not None else -1.0)
        finally:
            self._loading = False
        self._forget_parameters()
        self._unstated, self._no_pixel_size = unstated, px is None
        self.status.setText(self._unstated_note(layer.name, unstated, px is None))

    def _entered(self, key: str) -> None:
        """The user entered a value the layer does not state (``key``: an optics key or
        ``"pixel_size"``): the status line's note about it goes, if it is still shown."""
        layer = self.layer
        if layer is None:
            return
        before = self._unstated_note(layer.name, self._unstated, self._no_pixel_size)
        if key == "pixel_size":
            self._no_pixel_size = False
        elif key in self._unstated:
            self._unstated = [k for k in self._unstated if k != key]
        if before and self.status.text() == before:
            self.status.setText(
                self._unstated_note(layer.name, self._unstated, self._no_pixel_size)
            )

    def _unstated_note(self, name: str, unstated: list[str], no_pixel_size: bool) -> str:
        """What the status line says about the values layer ``name`` does not state."""
        notes = []
        if no_pixel_size:
            notes.append(
                f"{name!r} states no pixel size: enter the camera pixel size at the sample in "
                "Camera pixel at sample (the layer's scale follows it)"
            )
        if unstated:
            what = " or ".join(OPTICS_KEYS[k] for k in unstated)
            fields = " and ".join({"na": "NA", "wavelength_nm": "Emission λ"}[k] for k in unstated)
            notes.append(
                f"{name!r} states no {what}: {fields} still "
                f"{'shows' if len(unstated) == 1 else 'show'} the values of before; "
                "check them before estimating"
            )
        return "; ".join(notes)

    def _optics_edited(self, key: str, value: float) -> None:
        """The user set an optics field: the layer keeps the value (switching back restores
        it), and parameters estimated with the old optics are forgotten."""
        if self._loading:
            return
        layer = self.layer
        if layer is not None:
            layer.metadata[key] = float(value)
        self._forget_parameters()
        self._entered(key)

    def _pixel_size_edited(self, value: float) -> None:
        """The camera pixel size set by the user: the raw layer and the layers made from it
        take the new scale (the scale bar follows), and the view frames them again."""
        if self._loading:
            return
        layer = self.layer
        if layer is not None and value > 0:
            self._rescale(layer, float(value))
        self._forget_parameters()
        if value > 0:
            self._entered("pixel_size")

    def _rescale(self, layer: Any, pixel_size_nm: float) -> None:
        """Give ``layer`` (and the layers made from it) camera pixels of ``pixel_size_nm``;
        where that changed its scale, reset the view so the data fills the canvas again (a
        layer going from 1 to 0.065 per pixel would else shrink to a dot).

        Parameters
        ----------
        layer : napari.layers.Image
            The raw layer.
        pixel_size_nm : float
            The camera pixel size at the sample.
        """
        before = np.array(layer.scale, float)
        rescale_from(self.viewer, layer, pixel_size_nm)
        if not np.allclose(before, np.asarray(layer.scale, float), rtol=1e-9, atol=0.0):
            self.viewer.reset_view()
            log.debug("layer %r rescaled to %g nm pixels: view reset", layer.name, pixel_size_nm)

    def _forget_parameters(self, *_: Any) -> None:
        """Another layer, frame order or optics: the parameters found belong to the old one."""
        if self.reconstructor is not None and not self._loading:  # the user edited a field
            self.status.setText(
                "the optics or frame order changed: the parameters and the SIM preview are of "
                "the old ones; Estimate parameters again"
            )
        self.params = None
        self.reconstructor = None
        self._epoch += 1
        self.report.setText("no parameters yet: Estimate parameters")

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open raw SIM stack", "", "SIM stacks (*.tif *.tiff *.mrc *.dv);;All (*)"
        )
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> Any:
        """Open a raw stack with the plugin's reader and select it."""
        layers = self.viewer.open(path, plugin="scope-sim")
        if layers:
            self.layer_box.setCurrentText(layers[0].name)
        return layers[0] if layers else None

    # -- inputs ----------------------------------------------------------------------------------
    def setup(self) -> Any:
        """The optics the fields describe (ScopeError, in the fields' words, when they cannot
        be: a pixel size not given, an NA above the immersion index)."""
        from pydantic import ValidationError

        from scope.batch.config import validation_message
        from scope.errors import ConfigurationError
        from scope.optics import OpticalSetup

        if self.pixel_size.value() <= 0:
            raise ConfigurationError(
                "the camera pixel size at the sample is not known: enter it in Camera pixel "
                "at sample"
            )
        try:
            return OpticalSetup(
                na=self.na.value(),
                wavelength_nm=self.wavelength.value(),
                pixel_size_nm=self.pixel_size.value(),
                immersion_index=self.immersion.value(),
            )
        except ValidationError as err:
            raise ConfigurationError(validation_message(err)) from err

    def settings(self) -> Any:
        from scope.sim.reconstruct import ReconstructionSettings

        return ReconstructionSettings(
            wiener=None if self.auto_wiener.isChecked() else self.wiener.value(),
            notch_strength=self.notch.value(),
            apodization_cutoff=self.apodization.value(),
            filter=self.filter.currentText(),  # type: ignore[arg-type]
            offset_adu=self._offset_adu(),
            equalize_frames=EQUALIZE_CHOICES[self.equalize.currentText()],
        )

    def _offset_adu(self) -> float | None:
        return None if self.offset.value() < 0 else self.offset.value()

    def _frames_per_set(self) -> int:
        return self.n_angles.value() * self.n_phases.value()

    def _in_scope_order(self) -> np.ndarray:
        """Indices that put a set's frames (as the layer holds them) in scope's order."""
        from scope.io.raw import frames_in_file

        return frames_in_file(
            self.n_angles.value(), self.n_phases.value(), self.frame_order.currentText()
        )

    def current_set(self) -> np.ndarray:
        """The set shown by the viewer's sliders (first set for a single set)."""
        layer = self.layer
        if layer is None:
            raise ScopeError("no raw stack layer selected")
        step = self.viewer.dims.current_step
        offset = self.viewer.dims.ndim - layer.ndim
        key: list[Any] = [slice(None)] * (layer.ndim - 2)
        for i in lead_axes(layer):
            key[i] = int(min(max(step[offset + i], 0), layer.data.shape[i] - 1))
        frames = np.asarray(layer.data[tuple(key)], np.float32)
        if frames.shape[0] != self._frames_per_set():
            raise ScopeError(
                f"the set has {frames.shape[0]} frames, expected {self._frames_per_set()} "
                "(Angles x Phases)"
            )
        return frames[self._in_scope_order()]

    def _checked_inputs(self, *, blank_ok: bool = False) -> tuple[np.ndarray, Any] | None:
        """The current set and the optics, or None with the reason in the status line.
        ``blank_ok``: a set with a dropped or blank frame passes (a preview with the pattern
        known leaves the frame out); else it is refused, naming the frame."""
        try:
            frames = self.current_set()
            setup = self.setup()
        except ScopeError as err:
            self.status.setText(str(err))
            return None
        problem = offset_problem(frames, self._offset_adu())
        if problem:
            self.status.setText(problem)
            return None
        from scope.sim.pipeline import check_no_blank_frame

        try:
            if not blank_ok:
                check_no_blank_frame(frames, self._offset_adu(), which="this SIM set")
        except DataFormatError as err:
            self.status.setText(str(err))
            return None
        return frames, setup

    # -- workers ---------------------------------------------------------------------------------
    def _run(
        self, fn: Any, on_done: Any, *args: Any, progress: bool = False, job: str | None = None
    ) -> Any:
        """Run ``fn`` in a worker; ``on_done`` gets its result. An error shows once, in the
        status line (the worker's default would raise it again in the GUI thread)."""
        from napari.qt.threading import create_worker

        worker = create_worker(fn, *args, _ignore_errors=True)
        worker.returned.connect(on_done)
        worker.errored.connect(self._worker_failed)
        if progress:
            worker.yielded.connect(lambda v: self.progress.setValue(int(v)))
            worker.aborted.connect(self._stack_cancelled)
        worker.finished.connect(lambda: self._worker_finished(worker))
        self._workers.append(worker)
        if job is not None:
            self._job, self._job_worker = job, worker
            self._update_buttons()
        worker.start()
        return worker

    def _worker_failed(self, err: BaseException) -> None:
        log.info("SIM reconstruction widget: %s", err, exc_info=(type(err), err, err.__traceback__))
        text = str(err) if isinstance(err, ScopeError) else f"{type(err).__name__}: {err}"
        self.status.setText(f"error: {in_widget_words(text)}")

    def _worker_finished(self, worker: Any) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        if worker is self._job_worker:
            self._job, self._job_worker = None, None
            self._update_buttons()

    def _update_buttons(self) -> None:
        """While estimating, neither button; while reconstructing the stack, its button is
        *Cancel* and Estimate waits."""
        self.estimate_button.setEnabled(self._job is None)
        self.reconstruct_button.setEnabled(self._job != "estimate")
        self.reconstruct_button.setText("Cancel" if self._job == "stack" else "Reconstruct stack")

    def _job_running(self) -> bool:
        """True (and the status line says so) while an estimate or a stack runs."""
        if self._job is None:
            return False
        what = "the stack is being reconstructed" if self._job == "stack" else "estimating"
        self.status.setText(f"{what}: wait for it to finish (or Cancel the stack)")
        return True

    @property
    def busy(self) -> bool:
        return bool(self._workers)

    # -- estimate --------------------------------------------------------------------------------
    def estimate(self) -> Any:
        """Estimate the pattern parameters on the current set (in a worker)."""
        if self._job_running():
            return None
        checked = self._checked_inputs()
        if checked is None:
            return None
        frames, setup = checked
        prior = None
        meta_params = self.layer.metadata.get("sim_parameters")
        if isinstance(meta_params, dict):
            from scope.sim.params import SIMParameters

            try:
                prior = SIMParameters.from_dict(meta_params)
            except Exception as err:
                log.info("stored parameters unusable as a prior: %s", err)
        n_a, n_p = self.n_angles.value(), self.n_phases.value()
        self.status.setText("estimating …")
        dtype = getattr(self.layer.data, "dtype", np.float32)
        pixel_format = camera_pixel_format(self.layer.metadata)

        def work() -> tuple:
            from scope.sim.diagnostics import modulation_map, spectrum_with_carriers
            from scope.sim.estimate import estimate_parameters

            clipped = SaturationCounter(dtype=dtype, pixel_format=pixel_format)
            clipped.update(frames)

            params = estimate_parameters(frames, setup, n_angles=n_a, n_phases=n_p, prior=prior)
            spec, marks = spectrum_with_carriers(frames, setup, params)
            rec, pattern_map = _operator(frames, setup, params, settings)
            preview = rec.backend.to_numpy(rec(frames))
            mcnr = modulation_map(frames, setup, params, offset_adu=rec.camera_offset(frames)).mcnr
            return params, spec, marks, rec, preview, mcnr, clipped, pattern_map

        settings = self.settings()
        epoch, name = self._epoch, self.layer.name
        return self._run(work, lambda r: self._estimated(r, epoch, name), job="estimate")

    def _estimated(self, result: tuple, epoch: int | None = None, name: str = "") -> None:
        from scope.sim.diagnostics import carrier_report

        if epoch is not None and epoch != self._epoch:  # made for another layer or optics
            self.status.setText(
                f"the estimate of {name!r} was dropped: the layer, optics or frame order changed "
                "while it ran; Estimate parameters again"
            )
            return
        params, spec, marks, rec, preview, mcnr, clipped, pattern_map = result
        self.params, self.reconstructor = params, rec
        self.report.setText(carrier_report(params))
        self._show_spectrum(spec, marks)
        self._show_modulation(mcnr)
        defects = rec.defect_pixels
        if defects is not None:
            self._show_defects(defects.rows, defects.cols)
        self._show_preview(preview)
        note = (
            "; this set's frames differ in brightness (flicker, bleaching or angles lit unequally) "
            "and are equalised"
            if rec.equalizes_frames
            else ""
        )
        if pattern_map is not None:
            note += (
                f"; the pattern drifts across the field by up to {pattern_map.max_drift_rad:.1f} "
                "rad (illumination optics bend it): its phase is mapped from "
                f"{int(pattern_map.tiled.estimated.sum())} tiles and taken out pixel by pixel"
            )
        if defects is not None and len(defects):
            note += (
                f"; {len(defects)} camera pixels hot or dead, repaired from their neighbours "
                f"(layer {DEFECTS_LAYER!r})"
            )
        if clipped.significant:
            note += (
                f"; {100 * clipped.fraction:.2g} % of this set's values sit at the camera's full "
                f"scale ({clipped.level_adu:g} ADU): bright structures are clipped there and lose "
                "their SIM detail (lower the exposure or the light)"
            )
        self.status.setText(
            f"parameters estimated{note}; adjust the filter or reconstruct the stack"
        )

    def _derived(self) -> dict[str, Any]:
        """Metadata tying a layer to the raw layer it was made from (it follows its scale)."""
        layer = self.layer
        return {"source_layer": layer.name if layer is not None else None}

    def _show_spectrum(self, spec: np.ndarray, marks: list[tuple[float, float]]) -> None:
        """The spectrum of the frames on the raw layer's own field (zero frequency at its
        centre pixel), so it never moves the view away from the image; its frequency step is
        in the layer's metadata."""
        ny, nx = spec.shape
        dx_um = self.pixel_size.value() / 1000.0
        grid = camera_grid(self.layer)
        limits = tuple(float(v) for v in np.percentile(spec, [1, 99.9]))
        frequency = {
            "scope_kind": "spectrum",
            "cycles_per_um_per_pixel": (1.0 / (ny * dx_um), 1.0 / (nx * dx_um)),
            "zero_frequency_pixel": (ny // 2, nx // 2),
            **self._derived(),
        }
        layer = put_image(
            self.viewer, SPECTRUM_LAYER, spec, grid, colormap="inferno", visible=False
        )
        layer.contrast_limits = limits
        layer.metadata.update(frequency)
        pts = np.asarray(marks, np.float64).reshape(-1, 2)
        points = put_points(self.viewer, CARRIERS_LAYER, pts, grid, size=6, border_color="cyan")
        points.metadata.update(frequency)

    def _show_defects(self, rows: np.ndarray, cols: np.ndarray) -> None:
        """Circles around the camera pixels repaired as hot or dead, over the raw layer."""
        pts = np.stack([rows, cols], axis=1).astype(np.float64).reshape(-1, 2)
        points = put_points(
            self.viewer, DEFECTS_LAYER, pts, camera_grid(self.layer), size=5, border_color="yellow"
        )
        points.metadata.update(self._derived())

    def _show_modulation(self, mcnr: np.ndarray) -> None:
        """The pattern's modulation contrast-to-noise on the camera grid, over the raw layer
        (hidden at first: where it reads under 3, SIM has little to work with)."""
        grid = camera_grid(self.layer)
        ml = put_image(self.viewer, MODULATION_LAYER, mcnr, grid, colormap="inferno", visible=False)
        ml.contrast_limits = (0.0, max(3.0, float(np.percentile(mcnr, 99))))
        ml.metadata.update({"scope_kind": "modulation_contrast", **self._derived()})

    def _show_preview(self, image: np.ndarray) -> None:
        is_new = PREVIEW_LAYER not in self.viewer.layers
        grid = sim_grid(self.layer, 2)
        pl = put_image(self.viewer, PREVIEW_LAYER, image, grid, colormap="magma")
        if is_new:
            pl.contrast_limits = percentile_limits(image)
        pl.metadata.update(
            {"scope_kind": "sim", "pixel_size_nm": self.pixel_size.value() / 2, **self._derived()}
        )
        self.last_result = image

    # -- preview ---------------------------------------------------------------------------------
    def _schedule_preview(self) -> None:
        if self.reconstructor is not None:
            self._debounce.start()

    def preview(self) -> Any:
        """Re-reconstruct the current set with the filter settings (reuses the noise model)."""
        if self.reconstructor is None:
            return None
        if self.busy:  # one preview at a time; the newest settings win
            self._preview_pending = True
            return None
        checked = self._checked_inputs(blank_ok=True)
        if checked is None:
            return None
        frames, _ = checked
        from scope.sim.pipeline import blank_frame_indices

        blank = blank_frame_indices(frames, self._offset_adu())
        s = self.settings()
        base = self.reconstructor
        epoch = self._epoch

        def work() -> tuple:
            rec = base.with_settings(**dataclasses.asdict(s))
            return rec, rec.backend.to_numpy(rec(frames, missing_frames=blank))

        def done(result: tuple) -> None:
            if epoch == self._epoch:  # else made with parameters since forgotten: dropped
                self.reconstructor, image = result
                self._show_preview(image)
                if blank:
                    self.status.setText(
                        f"this set's frame{'s' if len(blank) > 1 else ''} "
                        f"{', '.join(map(str, blank))} (counting from 0) hold almost no signal: "
                        "left out of the SIM preview (a dropped or blank frame)"
                    )
            if self._preview_pending:
                self._preview_pending = False
                QTimer.singleShot(0, self.preview)

        return self._run(work, done)

    # -- whole stack -----------------------------------------------------------------------------
    def _reconstruct_clicked(self) -> None:
        """*Reconstruct stack*, or *Cancel* while the stack runs."""
        if self._job == "stack":
            self.cancel()
        else:
            self.reconstruct_stack()

    def cancel(self) -> None:
        """Stop the stack reconstruction after the set it is on (no layer is added)."""
        if self._job == "stack" and self._job_worker is not None:
            self._job_worker.quit()
            self.status.setText("cancelling after this set …")

    def _stack_cancelled(self) -> None:
        self.status.setText(
            f"stack reconstruction cancelled at {self.progress.value()} %: no layer made"
        )

    def reconstruct_stack(self) -> Any:
        """Reconstruct every set into a new layer (estimating first when needed)."""
        if self._job_running():
            return None
        layer = self.layer
        if layer is None:
            self.status.setText("no raw stack layer selected")
            return None
        data = layer.data
        n = self._frames_per_set()
        fa = frame_axis(layer)
        if data.ndim < 3 or data.shape[fa] != n:
            self.status.setText(
                f"layer {layer.name!r} has shape {tuple(data.shape)}: expected {n} frames (Angles "
                f"x Phases) on its angle·phase axis; check Angles and Phases"
            )
            return None
        try:
            setup = self.setup()
        except ScopeError as err:
            self.status.setText(str(err))
            return None
        settings = self.settings()
        params = self.params
        n_a, n_p = self.n_angles.value(), self.n_phases.value()
        lead = lead_axes(layer)
        lead_shape = tuple(data.shape[i] for i in lead)
        n_sets = int(np.prod(lead_shape)) if lead_shape else 1
        self.progress.setValue(0)
        self.status.setText(f"reconstructing {n_sets} sets …")
        base = self.reconstructor if params is not None else None
        with_widefield = self.with_widefield.isChecked()
        order = self._in_scope_order()

        def read(idx: tuple) -> np.ndarray:  # one set at a time (lazy layers stay lazy)
            key: list[Any] = [slice(None)] * (data.ndim - 2)
            for axis, i in zip(lead, idx, strict=True):
                key[axis] = i
            return np.asarray(data[tuple(key)], np.float32)[order]

        def work():
            from scope.sim.estimate import estimate_parameters
            from scope.sim.pipeline import BlankFrameLog, check_no_blank_frame

            indices = list(np.ndindex(*lead_shape)) if lead_shape else [()]
            first = read(indices[0])
            problem = offset_problem(first, settings.offset_adu)
            if problem:
                raise DataFormatError(problem)
            check_no_blank_frame(first, settings.offset_adu, which="the layer's first SIM set")
            blanks = BlankFrameLog(settings.offset_adu, sets=1)
            if base is not None and base.shape == first.shape[-2:]:
                # the estimated patterns (per tile), noise models and defects, new settings
                p, rec = params, base.with_settings(**dataclasses.asdict(settings))
            else:
                p = estimate_parameters(first, setup, n_angles=n_a, n_phases=n_p)
                rec, _ = _operator(first, setup, p, settings)
            out = np.empty((*lead_shape, *rec.output_shape), np.float32)
            wf = np.empty((*lead_shape, *first.shape[-2:]), np.float32) if with_widefield else None
            for i, idx in enumerate(indices):
                frames = first if i == 0 else read(idx)
                blank = blanks.update(i, frames) if i else ()  # left out of the separation
                out[idx] = rec.backend.to_numpy(rec(frames, missing_frames=blank))
                if wf is not None:
                    wf[idx] = rec.backend.to_numpy(rec.widefield(frames, missing_frames=blank))
                yield 100.0 * (i + 1) / n_sets
            return out, wf, p, rec, blanks

        return self._run(
            work,
            lambda r: self._stack_done(r, layer, setup, settings),
            progress=True,
            job="stack",
        )

    def _stack_done(self, result: tuple, raw_layer: Any, setup: Any, settings: Any) -> None:
        image, widefield, params, _rec, blanks = result
        self.params = params
        meta = {
            "scope_kind": "sim",
            "pixel_size_nm": setup.pixel_size_nm / 2,
            "camera_pixel_size_nm": setup.pixel_size_nm,
            "wavelength_nm": setup.wavelength_nm,
            "na": setup.na,
            "optics": setup.model_dump(),
            "sim_parameters": params.to_dict(),
            "settings": {k: v for k, v in dataclasses.asdict(settings).items()},
            "source_layer": raw_layer.name,
            "source_path": raw_layer.metadata.get("source_path"),
            "axes": _lead_axes(raw_layer, image.ndim - 2) + "YX",
            "blank_frames": blanks.summary(),
        }
        out, _wf, moved = add_results(self.viewer, raw_layer, image, widefield, meta)
        self.last_result = image
        self.progress.setValue(100)
        note = (
            f"; the angle·phase axis of {raw_layer.name!r} now comes first, so the other "
            "sliders move raw, widefield and SIM together"
            if moved
            else ""
        )
        if blanks.found:  # counted from 0 in the layer's order of sets
            log.warning("%s: %s", raw_layer.name, blanks.message())
            note += f". {blanks.message()}"
        self.status.setText(
            f"{out.name}: {image.shape}, {setup.pixel_size_nm / 2:.2f} nm pixels "
            f"(File > Save Selected Layers… writes OME-TIFF/OME-Zarr){note}"
        )
