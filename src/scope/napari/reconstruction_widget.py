"""napari dock widget: interactive SIM reconstruction of a raw stack layer or file.

1. Pick a raw stack layer (``(..., angles*phases, Y, X)``) or *Open file…* (the plugin's reader);
   the optics fields (NA, emission wavelength, camera pixel size, camera offset) are filled from
   what the file states (``layer.metadata``) and can be edited.
2. *Estimate parameters* runs :func:`scope.sim.estimate.estimate_parameters` on the current set
   (a worker thread), shows the report (angle, period, modulation, carrier peak/noise per angle)
   and the spectrum of the frames with the carriers marked (:func:`scope.sim.diagnostics.
   spectrum_with_carriers`) as two layers.
3. Wiener (automatic MMSE or a constant), notch and apodisation controls update a *SIM preview*
   of the current set within a fraction of a second: the cached operator is re-derived with
   :meth:`SIMReconstructor.with_settings` (same parameters and noise model), in a worker.
4. *Reconstruct stack* reconstructs every set (a time series too) into a new layer with the
   physical scale of the 2x grid — half the camera pixel size, translated by a quarter of a camera
   pixel, so it overlays the raw layer — and the parameters, optics and settings in its metadata
   (saved with it by the plugin's OME-TIFF/OME-Zarr writers).
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
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from scope.errors import ScopeError
from scope.napari._controls import spin_box
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


def sim_layer_geometry(raw_layer_scale: Any, ndim_out: int) -> tuple[tuple, tuple]:
    """(scale, translate) of a SIM layer over a raw layer with ``raw_layer_scale`` (Y, X last).

    SIM pixel ``(i, j)`` covers a quarter of camera pixel ``(i // 2, j // 2)``: half the pixel
    size, and the centre of SIM pixel 0 sits a quarter of a camera pixel before the centre of
    camera pixel 0.
    """
    dy, dx = float(raw_layer_scale[-2]), float(raw_layer_scale[-1])
    lead = tuple(float(s) for s in raw_layer_scale[:-3])[-(ndim_out - 2) :] if ndim_out > 2 else ()
    lead = (1.0,) * (ndim_out - 2 - len(lead)) + lead
    scale = (*lead, dy / 2, dx / 2)
    translate = (0.0,) * (ndim_out - 2) + (-dy / 4, -dx / 4)
    return scale, translate


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
    """Letters of the ``n`` leading axes of a SIM result (from the raw layer's axes)."""
    lead = str(raw_layer.metadata.get("axes", ""))[:-3]
    if len(lead) == n and set(lead) <= set("TCZ"):
        return lead
    return "TCZ"[:n]


class ReconstructionWidget(QWidget):
    """Interactive SIM reconstruction (see the module docstring)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.params: Any = None
        self.reconstructor: Any = None
        self._workers: list[Any] = []
        self._preview_pending = False
        self.last_result: np.ndarray | None = None

        self.layer_box = QComboBox()
        self.layer_box.currentIndexChanged.connect(self._layer_changed)
        self.open_button = QPushButton("Open file…")
        self.open_button.clicked.connect(self._open_dialog)
        src_row = QHBoxLayout()
        src_row.addWidget(self.layer_box, 1)
        src_row.addWidget(self.open_button)

        self.na = spin_box(0.1, 1.7, 1.2, 0.05, 2)
        self.wavelength = spin_box(300.0, 1200.0, 525.0, 5.0, 1, " nm")
        self.pixel_size = spin_box(1.0, 10000.0, 65.0, 1.0, 2, " nm")
        self.pixel_size.setToolTip("camera pixel size at the sample")
        self.immersion = spin_box(1.0, 1.6, 1.515, 0.005, 3)
        self.n_angles = QSpinBox()
        self.n_angles.setRange(1, 9)
        self.n_angles.setValue(3)
        self.n_phases = QSpinBox()
        self.n_phases.setRange(3, 9)
        self.n_phases.setValue(3)
        self.frame_order = QComboBox()
        self.frame_order.addItems(["angle-major", "phase-major"])  # scope.io.raw.FRAME_ORDERS
        self.frame_order.setToolTip(
            "how each set's frames lie in the layer: angle-major, phase fastest (a0p0 a0p1 a0p2 "
            "a1p0 ...) or phase-major, angle fastest (a0p0 a1p0 a2p0 a0p1 ...)"
        )
        self.offset = spin_box(-1.0, 65535.0, -1.0, 1.0, 1, " ADU")
        self.offset.setSpecialValueText("auto")
        self.offset.setToolTip("camera offset (auto: a low percentile of the first frame)")
        optics = QFormLayout()
        optics.addRow("Raw stack", src_row)
        optics.addRow("NA", self.na)
        optics.addRow("Emission λ", self.wavelength)
        optics.addRow("Camera pixel at sample", self.pixel_size)
        optics.addRow("Immersion index", self.immersion)
        optics.addRow("Angles", self.n_angles)
        optics.addRow("Phases", self.n_phases)
        optics.addRow("Frame order", self.frame_order)
        self.frame_order.currentIndexChanged.connect(self._forget_parameters)
        optics.addRow("Camera offset", self.offset)
        optics_box = QGroupBox("Data and optics")
        optics_box.setLayout(optics)

        self.estimate_button = QPushButton("Estimate parameters")
        self.estimate_button.clicked.connect(self.estimate)
        self.report = QLabel("no parameters yet")
        self.report.setWordWrap(True)

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
        wiener_row = QHBoxLayout()
        wiener_row.addWidget(self.auto_wiener)
        wiener_row.addWidget(self.wiener)
        controls = QFormLayout()
        controls.addRow("Filter", self.filter)
        controls.addRow("Wiener", wiener_row)
        controls.addRow("Notch strength", self.notch)
        controls.addRow("Apodisation cutoff", self.apodization)
        controls.addRow("Frame brightness", self.equalize)
        controls_box = QGroupBox("Filter (live preview of the current set)")
        controls_box.setLayout(controls)
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
        self.reconstruct_button.clicked.connect(self.reconstruct_stack)
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
        self.status = QLabel("")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(optics_box)
        layout.addWidget(self.estimate_button)
        layout.addWidget(self.report)
        layout.addWidget(controls_box)
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

        return [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, Image)
            and layer.ndim >= 3
            and not layer.rgb
            and layer.metadata.get("scope_kind") not in ("sim", "widefield")
            and layer.name not in (PREVIEW_LAYER, SPECTRUM_LAYER)
        ]

    def _refresh_layers(self, *_: Any) -> None:
        current = self.layer_box.currentText()
        names = [layer.name for layer in self._raw_layers()]
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(names)
        if current in names:
            self.layer_box.setCurrentText(current)
        self.layer_box.blockSignals(False)
        if current not in names and names:
            self._layer_changed()

    @property
    def layer(self) -> Any:
        name = self.layer_box.currentText()
        for layer in self.viewer.layers:
            if layer.name == name:
                return layer
        return None

    def _layer_changed(self, *_: Any) -> None:
        layer = self.layer
        if layer is None:
            return
        m = layer.metadata
        if m.get("na"):
            self.na.setValue(float(m["na"]))
        if m.get("wavelength_nm"):
            self.wavelength.setValue(float(m["wavelength_nm"]))
        px = m.get("camera_pixel_size_nm") or m.get("pixel_size_nm")
        self.pixel_size.setValue(float(px) if px else float(layer.scale[-1]) * 1000.0)
        if m.get("n_angles"):
            self.n_angles.setValue(int(m["n_angles"]))
        if m.get("n_phases"):
            self.n_phases.setValue(int(m["n_phases"]))
        self.offset.setValue(float(m["offset_adu"]) if m.get("offset_adu") is not None else -1.0)
        self._forget_parameters()

    def _forget_parameters(self, *_: Any) -> None:
        """Another layer or frame order: the parameters found belong to the old one."""
        self.params = None
        self.reconstructor = None
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
        from scope.optics import OpticalSetup

        return OpticalSetup(
            na=self.na.value(),
            wavelength_nm=self.wavelength.value(),
            pixel_size_nm=self.pixel_size.value(),
            immersion_index=self.immersion.value(),
        )

    def settings(self) -> Any:
        from scope.sim.reconstruct import ReconstructionSettings

        return ReconstructionSettings(
            wiener=None if self.auto_wiener.isChecked() else self.wiener.value(),
            notch_strength=self.notch.value(),
            apodization_cutoff=self.apodization.value(),
            filter=self.filter.currentText(),  # type: ignore[arg-type]
            offset_adu=None if self.offset.value() < 0 else self.offset.value(),
            equalize_frames=EQUALIZE_CHOICES[self.equalize.currentText()],
        )

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
        n_lead = layer.ndim - 3
        step = self.viewer.dims.current_step
        offset = self.viewer.dims.ndim - layer.ndim
        index = tuple(
            int(min(max(step[offset + i], 0), layer.data.shape[i] - 1)) for i in range(n_lead)
        )
        frames = np.asarray(layer.data[index] if index else layer.data[...], np.float32)
        if frames.shape[0] != self._frames_per_set():
            raise ScopeError(
                f"the set has {frames.shape[0]} frames, expected {self._frames_per_set()} "
                "(angles x phases)"
            )
        return frames[self._in_scope_order()]

    # -- workers ---------------------------------------------------------------------------------
    def _run(self, fn: Any, on_done: Any, *args: Any, progress: bool = False) -> Any:
        from napari.qt.threading import create_worker

        worker = create_worker(fn, *args)
        worker.returned.connect(on_done)
        worker.errored.connect(lambda err: self.status.setText(f"error: {err}"))
        if progress:
            worker.yielded.connect(lambda v: self.progress.setValue(int(v)))
        worker.finished.connect(lambda: self._workers.remove(worker))
        self._workers.append(worker)
        worker.start()
        return worker

    @property
    def busy(self) -> bool:
        return bool(self._workers)

    # -- estimate --------------------------------------------------------------------------------
    def estimate(self) -> Any:
        """Estimate the pattern parameters on the current set (in a worker)."""
        try:
            frames = self.current_set()
        except ScopeError as err:
            self.status.setText(str(err))
            return None
        setup = self.setup()
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
        return self._run(work, self._estimated)

    def _estimated(self, result: tuple) -> None:
        from scope.sim.diagnostics import carrier_report

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

    def _show_spectrum(self, spec: np.ndarray, marks: list[tuple[float, float]]) -> None:
        # in its own frequency space: one pixel = 1 / (N * dx) cycles/µm, centred on zero
        ny, nx = spec.shape
        dx_um = self.pixel_size.value() / 1000.0
        scale = (1.0 / (ny * dx_um), 1.0 / (nx * dx_um))
        translate = (-(ny // 2) * scale[0], -(nx // 2) * scale[1])
        limits = tuple(float(v) for v in np.percentile(spec, [1, 99.9]))
        self._put_image(
            SPECTRUM_LAYER, spec, scale, translate, colormap="inferno", visible=False
        ).contrast_limits = limits
        pts = np.asarray(marks, np.float64).reshape(-1, 2)
        self._put_points(CARRIERS_LAYER, pts, scale, translate, size=6, border_color="cyan")

    def _show_defects(self, rows: np.ndarray, cols: np.ndarray) -> None:
        """Circles around the camera pixels repaired as hot or dead, over the raw layer."""
        layer = self.layer
        scale = tuple(layer.scale[-2:]) if layer is not None else (1.0, 1.0)
        translate = tuple(layer.translate[-2:]) if layer is not None else (0.0, 0.0)
        pts = np.stack([rows, cols], axis=1).astype(np.float64).reshape(-1, 2)
        self._put_points(DEFECTS_LAYER, pts, scale, translate, size=5, border_color="yellow")

    def _put_points(
        self, name: str, pts: np.ndarray, scale: tuple, translate: tuple, **new_layer: Any
    ) -> Any:
        """The points layer ``name`` (hollow circles, hidden when new), updated or added."""
        if name in self.viewer.layers:
            points = self.viewer.layers[name]
            points.data = pts
            points.scale, points.translate = scale, translate
            return points
        points = self.viewer.add_points(
            pts,
            name=name,
            scale=scale,
            translate=translate,
            face_color="transparent",
            border_width=0.15,
            **new_layer,
        )
        points.visible = False
        return points

    def _show_modulation(self, mcnr: np.ndarray) -> None:
        """The pattern's modulation contrast-to-noise on the camera grid, over the raw layer
        (hidden at first: where it reads under 3, SIM has little to work with)."""
        layer = self.layer
        scale = tuple(layer.scale[-2:]) if layer is not None else (1.0, 1.0)
        translate = tuple(layer.translate[-2:]) if layer is not None else (0.0, 0.0)
        ml = self._put_image(
            MODULATION_LAYER, mcnr, scale, translate, colormap="inferno", visible=False
        )
        ml.contrast_limits = (0.0, max(3.0, float(np.percentile(mcnr, 99))))
        ml.metadata.update({"scope_kind": "modulation_contrast"})

    def _put_image(
        self, name: str, data: np.ndarray, scale: tuple, translate: tuple, **new_layer: Any
    ) -> Any:
        """The image layer ``name`` showing ``data`` at ``scale``/``translate``: updated when it
        exists (keeping what the user set: colormap, visibility, contrast), else added with
        ``new_layer`` options."""
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = data
            layer.scale, layer.translate = scale, translate
            return layer
        return self.viewer.add_image(data, name=name, scale=scale, translate=translate, **new_layer)

    def _show_preview(self, image: np.ndarray) -> None:
        layer = self.layer
        scale, translate = sim_layer_geometry(layer.scale if layer is not None else (1, 1, 1), 2)
        is_new = PREVIEW_LAYER not in self.viewer.layers
        pl = self._put_image(PREVIEW_LAYER, image, scale, translate, colormap="magma")
        if is_new:
            pl.contrast_limits = tuple(float(v) for v in np.percentile(image, [0.5, 99.9]))
        pl.metadata.update({"scope_kind": "sim", "pixel_size_nm": self.pixel_size.value() / 2})
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
        try:
            frames = self.current_set()
        except ScopeError as err:
            self.status.setText(str(err))
            return None
        s = self.settings()
        base = self.reconstructor

        def work() -> tuple:
            rec = base.with_settings(**dataclasses.asdict(s))
            return rec, rec.backend.to_numpy(rec(frames))

        def done(result: tuple) -> None:
            self.reconstructor, image = result
            self._show_preview(image)
            if self._preview_pending:
                self._preview_pending = False
                QTimer.singleShot(0, self.preview)

        return self._run(work, done)

    # -- whole stack -----------------------------------------------------------------------------
    def reconstruct_stack(self) -> Any:
        """Reconstruct every set into a new layer (estimating first when needed)."""
        layer = self.layer
        if layer is None:
            self.status.setText("no raw stack layer selected")
            return None
        data = layer.data
        n = self._frames_per_set()
        if data.ndim < 3 or data.shape[-3] != n:
            self.status.setText(
                f"layer {layer.name!r} has shape {tuple(data.shape)}: expected (…, {n}, Y, X) "
                "with angles x phases frames on axis -3; check Angles/Phases"
            )
            return None
        setup, settings = self.setup(), self.settings()
        params = self.params
        n_a, n_p = self.n_angles.value(), self.n_phases.value()
        lead_shape = tuple(data.shape[:-3])
        n_sets = int(np.prod(lead_shape)) if lead_shape else 1
        self.progress.setValue(0)
        self.status.setText(f"reconstructing {n_sets} sets …")
        base = self.reconstructor if params is not None else None
        with_widefield = self.with_widefield.isChecked()

        order = self._in_scope_order()

        def read(idx: tuple) -> np.ndarray:  # one set at a time (lazy layers stay lazy)
            return np.asarray(data[idx] if idx else data[...], np.float32)[order]

        def work():
            from scope.sim.estimate import estimate_parameters

            indices = list(np.ndindex(*lead_shape)) if lead_shape else [()]
            first = read(indices[0])
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
                out[idx] = rec.backend.to_numpy(rec(frames))
                if wf is not None:
                    wf[idx] = rec.backend.to_numpy(rec.widefield(frames))
                yield 100.0 * (i + 1) / n_sets
            return out, wf, p, rec

        return self._run(work, lambda r: self._stack_done(r, layer, setup, settings), progress=True)

    def _stack_done(self, result: tuple, raw_layer: Any, setup: Any, settings: Any) -> None:
        image, widefield, params, _rec = result
        self.params = params
        scale, translate = sim_layer_geometry(raw_layer.scale, image.ndim)
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
        }
        name = f"{raw_layer.name.removesuffix(' raw')} SIM"
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        out = self.viewer.add_image(
            image, name=name, scale=scale, translate=translate, colormap="magma", metadata=meta
        )
        out.contrast_limits = tuple(float(v) for v in np.percentile(image, [0.5, 99.9]))
        if widefield is not None:  # on the camera grid, under the SIM layer
            from scope.io.writers import WIDEFIELD_DESCRIPTION

            wf_name = f"{raw_layer.name.removesuffix(' raw')} widefield"
            if wf_name in self.viewer.layers:
                self.viewer.layers.remove(wf_name)
            wf_meta = {
                **meta,
                "scope_kind": "widefield",
                "pixel_size_nm": setup.pixel_size_nm,
                "image": WIDEFIELD_DESCRIPTION,
            }
            del wf_meta["sim_parameters"], wf_meta["settings"]
            wf_layer = self.viewer.add_image(
                widefield,
                name=wf_name,
                scale=(*scale[:-2], 2 * scale[-2], 2 * scale[-1]),
                colormap="gray",
                metadata=wf_meta,
            )
            wf_layer.contrast_limits = tuple(
                float(v) for v in np.percentile(widefield, [0.5, 99.9])
            )
            layers = self.viewer.layers  # under the SIM layer: hide SIM to compare
            layers.move(layers.index(wf_layer), layers.index(out))
            layers.selection.active = out
        self.last_result = image
        self.progress.setValue(100)
        self.status.setText(
            f"{name}: {image.shape}, {setup.pixel_size_nm / 2:.2f} nm pixels "
            "(File > Save Selected Layers… writes OME-TIFF/OME-Zarr)"
        )
