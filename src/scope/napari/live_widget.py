"""napari dock widget: live SIM imaging on the simulated microscope or real hardware.

*Live* shows the newest raw frame and the widefield image (mean of the newest frame of each
angle/phase slot) at camera rate; *Live SIM* adds the rolling reconstruction (a new SIM image
for every new raw frame, or for every verified set); *Record* writes ``n`` sets to OME-Zarr
through the acquisition engine (with a progress bar) while showing the same; *Stop* ends any of
them. Acquisition and reconstruction run in worker threads (:class:`~scope.napari.live.
LiveSession`); the GUI polls their newest result on a timer, updates three layers in place
(``layer.data = ...``, never adding or removing layers while running) and keeps their contrast
fixed after the first image (*Auto contrast* re-fits it once).

Shown: measured raw and SIM rates, dropped/extra frames and invalid sets (from the engine's
verification), windows skipped by the reconstruction when frames come faster than it, the
share of the newest window's values at the camera's full scale (clipped: lower the exposure),
the hot and dead camera pixels the reconstruction repairs, and the per-angle modulation of the
newest window.

The dock is narrow (about 370 px), so the canvas keeps room in a small window: its settings
scroll, while the buttons, status line and statistics stay in view.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from scope.errors import ScopeError
from scope.napari._controls import (
    form_box,
    int_spin_box,
    spin_box,
    vertical_scroll,
    wrapping_label,
)
from scope.napari._layers import um_units
from scope.napari._result_layers import percentile_limits
from scope.napari.live import LiveConfig, LiveSession, LiveStats
from scope.sim.pattern_map import DRIFT_TOLERANCE_RAD

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)

RAW_LAYER = "live raw"
WIDEFIELD_LAYER = "live widefield"
SIM_LAYER = "live SIM"
MODULATION_LAYER = "live pattern modulation (MCNR)"
#: default display rate limit: redrawing costs CPU where OpenGL is software-rendered
DISPLAY_HZ = 10
#: the fewest pattern periods across the field in which the pattern is estimated (measured on
#: the simulated microscope, 260 nm pattern, 65 nm pixels: found from 32 pixels = 8 periods,
#: not at 24; the library then says the period "lies outside what the pixels can sample")
MIN_PERIODS_ACROSS = 8
#: the trigger choices: shown name, ``LiveConfig.trigger``'s value, and what each means
#: (their tooltips)
TRIGGERS = (
    ("leader", "hardware", "the controller triggers the camera"),
    ("follower", "follower", "the camera's exposure output drives the controller"),
    ("software", "software", "the host triggers each frame"),
)
#: lines of the stats panel, always all of them (its height never changes while running)
STATS_LINES = 8
#: what the stats panel's short words mean (its tooltip)
STATS_TIP = (
    "windows skipped: windows the reconstruction left out as frames came faster than it; "
    "camera defects: hot and dead pixels it repairs; clipped: the share of the newest window's "
    "values at the camera's full scale (lower the exposure); modulation: the pattern's, per "
    "angle, in the newest window; pattern drifts: how far the pattern in the field's corners "
    "is off the one of the whole field (the illumination optics bend it), its phase then "
    "mapped across the field and taken out"
)


def _detect_cameras() -> list[str]:
    """Camera specs present on this machine (simulated first)."""
    specs = ["sim"]
    try:
        from scope.devices.genicam import find_producers, list_cameras

        for producer in find_producers():
            for i, _ in enumerate(list_cameras(producer)):
                specs.append(f"genicam:{i}")
    except Exception as err:  # no harvesters / no producer
        log.debug("no GenICam cameras: %s", err)
    try:
        from scope.devices.v4l2 import list_cameras as v4l2_cameras

        specs += [f"v4l2:{c.id}" for c in v4l2_cameras()]
    except Exception as err:
        log.debug("no V4L2 cameras: %s", err)
    return specs


def _detect_ports() -> list[str]:
    ports = ["sim://"]
    try:
        from serial.tools import list_ports

        ports += sorted(p.device for p in list_ports.comports())
    except Exception as err:
        log.debug("no serial ports: %s", err)
    return ports


def _live_metadata(name: str) -> dict[str, Any]:
    """What a live layer is, as the writer stores it and the reader recognises it again
    (saved with File > Save Selected Layers…, the widefield layer reopens as a widefield
    image)."""
    from scope.io.writers import WIDEFIELD_DESCRIPTION

    if name == SIM_LAYER:
        return {"scope_kind": "sim"}
    if name == WIDEFIELD_LAYER:
        return {"scope_kind": "widefield", "image": WIDEFIELD_DESCRIPTION}
    return {"scope_kind": "raw"}


def snapshot_metadata(name: str, setup: Any, params: Any = None) -> dict[str, Any]:
    """What a saved snapshot of the live layer ``name`` states about its pixels, optics and
    pattern (File > Save Layer; the writer stores it, the reader reads it back).

    Parameters
    ----------
    name : str
        :data:`WIDEFIELD_LAYER` (camera pixels) or :data:`SIM_LAYER` (half their size).
    setup : OpticalSetup
        The session's optics.
    params : SIMParameters, optional
        The pattern the SIM images are reconstructed with (None: not known yet; the SIM layer
        then states its pixel size only).

    Returns
    -------
    dict
        Keys to update the layer's metadata with.
    """
    optics = {"optics": setup.model_dump(), "na": setup.na, "wavelength_nm": setup.wavelength_nm}
    if name != SIM_LAYER:
        return {"pixel_size_nm": setup.pixel_size_nm, **optics}
    meta: dict[str, Any] = {"pixel_size_nm": setup.pixel_size_nm / 2}
    if params is not None:
        meta |= {
            "sim_parameters": params.to_dict(),
            **optics,
            "camera_pixel_size_nm": setup.pixel_size_nm,
        }
    return meta


def _drift_line(st: LiveStats) -> str:
    """What the stats say of a pattern the illumination optics bend (empty when they do not)."""
    if st.pattern_drift_rad is None or st.pattern_drift_rad <= DRIFT_TOLERANCE_RAD:
        return ""
    what = "phase mapped out" if st.pattern_mapped else "sharp in centre only"
    return f"pattern drifts {st.pattern_drift_rad:.1f} rad: {what}"


def stats_text(st: LiveStats | None) -> str:
    """The stats panel: :data:`STATS_LINES` short lines (a narrow dock shows them whole).

    Parameters
    ----------
    st : LiveStats or None
        The session's measured rates and counts (None: nothing measured yet, blank lines).

    Returns
    -------
    str
        The lines, joined by newlines.
    """
    if st is None:
        return "\n" * (STATS_LINES - 1)
    mod = ", ".join(f"{m:.2f}" for m in st.modulation) or "—"
    # values at the camera's full scale: bright structures clipped (lower the exposure)
    clipped = "—" if st.clipped_fraction is None else f"{100 * st.clipped_fraction:.2g} %"
    defects = "—" if st.defect_pixels is None else str(st.defect_pixels)  # repaired
    lines = [
        f"raw {st.raw_fps:5.1f} fps · SIM {st.sim_fps:5.1f} /s",
        f"reconstruction {st.reconstruction_ms:5.1f} ms · pattern estimates {st.pattern_estimates}",
        f"frames {st.raw_frames} · SIM images {st.sim_images}",
        f"sets valid {st.valid_sets} · invalid {st.invalid_sets} · kept {st.kept_sets}",
        f"windows skipped {st.skipped_windows} · camera defects {defects}",
        f"frames dropped {st.dropped_frames} · extra {st.extra_frames} · clipped {clipped}",
        f"modulation per angle: {mod}",
        _drift_line(st),
    ]
    return "\n".join(lines)


def field_too_small(config: LiveConfig) -> str | None:
    """Why the camera field is too small to find the pattern in (fewer than
    :data:`MIN_PERIODS_ACROSS` periods of the pattern across it), or None."""
    width, height = (config.roi[2], config.roi[3]) if config.roi else config.sensor_shape
    smallest = int(np.ceil(MIN_PERIODS_ACROSS * config.period_nm / config.pixel_size_nm))
    if min(width, height) >= smallest:
        return None
    return (
        f"the field of {width} x {height} pixels is too small to find the pattern in: a "
        f"{config.period_nm:g} nm pattern needs at least {MIN_PERIODS_ACROSS} periods across, "
        f"{smallest} x {smallest} pixels of {config.pixel_size_nm:g} nm; make the ROI larger "
        "(or untick estimating parameters to use the nominal pattern)"
    )


class LiveImagingWidget(QWidget):
    """Live SIM imaging (see the module docstring).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session: LiveSession | None = None
        self.last_session: LiveSession | None = None
        self._shown_raw = 0
        self._shown_sim = 0
        self._shown_map = 0
        self._fixed_contrast: set[str] = set()
        #: per layer, the session and pattern its metadata describes (see :meth:`_describe`)
        self._described: dict[str, tuple[LiveSession, Any]] = {}
        self.gui_updates = 0

        # -- microscope
        self.camera = QComboBox()
        self.camera.addItems(["sim"])
        self.camera.setToolTip("sim = the built-in simulated microscope")
        self.scan_button = QPushButton("Scan")
        self.scan_button.setToolTip("look for GenICam/V4L2 cameras and serial ports")
        self.scan_button.clicked.connect(self.scan_devices)
        cam_row = QHBoxLayout()
        cam_row.addWidget(self.camera, 1)
        cam_row.addWidget(self.scan_button)
        self.controller = QComboBox()
        self.controller.setEditable(True)
        self.controller.addItems(["sim://"])
        self.controller.setToolTip("serial port of the pattern controller (sim:// = emulated)")
        self.trigger = QComboBox()
        for text, _, tip in TRIGGERS:
            self.trigger.addItem(text)
            self.trigger.setItemData(self.trigger.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.trigger.setToolTip("; ".join(f"{text}: {tip}" for text, _, tip in TRIGGERS))
        self.exposure = spin_box(0.1, 1000.0, 10.0, 0.5, 2, " ms")
        self.dark = spin_box(0.1, 1000.0, 10.0, 0.5, 2, " ms")
        self.dark.setToolTip("gap between exposures: pattern settling + camera readout")
        self.roi = QLineEdit("")
        self.roi.setPlaceholderText("x, y, w, h (empty: all)")
        self.roi.setToolTip(
            "region of interest in pixels: x, y, width, height (empty: the full sensor)"
        )
        self.sensor = int_spin_box(
            32,
            2048,
            256,
            step=32,
            suffix=" px",
            tooltip="sensor size of the simulated camera (square)",
        )
        dev_box = form_box(
            "Microscope",
            [
                ("Camera", cam_row),
                ("Controller", self.controller),
                ("Trigger", self.trigger),
                ("Exposure", self.exposure),
                ("Dark gap", self.dark),
                ("ROI", self.roi),
                ("Sim. sensor", self.sensor),
            ],
        )

        # -- pattern and optics
        self.angles = QLineEdit("0, 60, 120")
        self.phases = int_spin_box(3, 9, 3)
        self.period = spin_box(50.0, 5000.0, 260.0, 5.0, 1, " nm")
        self.na = spin_box(0.1, 1.7, 1.2, 0.05, 2, "")
        self.wavelength = spin_box(300.0, 1200.0, 525.0, 5.0, 1, " nm")
        self.pixel_size = spin_box(1.0, 10000.0, 65.0, 1.0, 2, " nm")
        self.pixel_size.setToolTip("camera pixel size at the sample")
        pat_box = form_box(
            "Pattern set and optics",
            [
                ("Angles (°)", self.angles),
                ("Phases", self.phases),
                ("Period", self.period),
                ("NA", self.na),
                ("Emission λ", self.wavelength),
                ("Pixel size", self.pixel_size),
            ],
        )

        # -- reconstruction
        self.sim_every = QComboBox()
        self.sim_every.addItems(["every frame (rolling)", "every verified set"])
        self.sim_every.setToolTip(
            "a new SIM image for every new raw frame (the newest frame of each slot), or for "
            "every verified set"
        )
        self.estimate = QCheckBox("estimate parameters first")
        self.estimate.setToolTip(
            "estimate the pattern parameters on the first window (unticked: the nominal pattern "
            "of the angles and period above)"
        )
        self.estimate.setChecked(True)
        self.backend = QComboBox()
        self.backend.addItems(["auto", "numpy", "cupy"])
        self.display_hz = int_spin_box(
            1,
            60,
            DISPLAY_HZ,
            suffix=" Hz",
            tooltip="largest display refresh rate (acquisition and reconstruction run at their "
            "own pace)",
        )
        self.modulation_map = QCheckBox("map the pattern's modulation")
        self.modulation_map.setToolTip(
            "the pattern's local modulation contrast against shot noise, as a layer refreshed "
            "about once a second: under about 3 the pattern is barely visible there (defocused, "
            "washed out, too dark)"
        )
        self.modulation_map.toggled.connect(self._modulation_map_toggled)
        self.reestimate_every = int_spin_box(
            0,
            3600,
            0,
            step=10,
            suffix=" s",
            tooltip="estimate the pattern again on the newest window every so many seconds: "
            "for a pattern that drifts as the projector warms up (stripes or a grid appear in "
            "SIM)",
        )
        self.reestimate_every.setSpecialValueText("only when asked")
        self.reestimate_button = QPushButton("Re-estimate now")
        self.reestimate_button.setToolTip("estimate the pattern again on the next window")
        self.reestimate_button.clicked.connect(self._reestimate_clicked)
        rec_box = form_box(
            "Live reconstruction",
            [
                ("New SIM image", self.sim_every),
                ("", self.estimate),
                ("Backend", self.backend),
                ("Display up to", self.display_hz),
                ("", self.modulation_map),
                ("Re-estimate every", self.reestimate_every),
                ("", self.reestimate_button),
            ],
        )

        # -- record
        self.output = QLineEdit(str(Path.cwd() / "run.zarr"))
        self.n_sets = int_spin_box(1, 1_000_000, 50)
        self.output.setToolTip("the OME-Zarr run Record writes")
        self.keep_live = QCheckBox("keep Live / Live SIM runs")
        self.keep_live.setToolTip(
            "keep the scratch run Live and Live SIM write (else deleted when they stop); the "
            "status line says where it is"
        )
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        rec_out = form_box(
            "Record (OME-Zarr)",
            [
                ("Output", self.output),
                ("Sets", self.n_sets),
                ("", self.keep_live),
                ("Progress", self.progress),
            ],
        )

        # -- buttons and status
        self.live_button = QPushButton("Live")
        self.sim_button = QPushButton("Live SIM")
        self.record_button = QPushButton("Record")
        self.stop_button = QPushButton("Stop")
        self.contrast_button = QPushButton("Auto contrast")
        self.live_button.clicked.connect(lambda: self.start("live"))
        self.sim_button.clicked.connect(lambda: self.start("sim"))
        self.record_button.clicked.connect(lambda: self.start("record"))
        self.stop_button.clicked.connect(self.stop)
        self.contrast_button.clicked.connect(self.auto_contrast)
        self.stop_button.setEnabled(False)
        buttons = QHBoxLayout()
        for b in (self.live_button, self.sim_button, self.record_button, self.stop_button):
            buttons.addWidget(b)
        self.status = wrapping_label("idle")
        self.status.setMinimumHeight(3 * self.status.fontMetrics().height())
        # fixed lines, no wrapping: a label whose height changes re-lays out the dock and
        # resizes the canvas, which is slow with software OpenGL
        self.stats_label = QLabel(stats_text(None))
        self.stats_label.setWordWrap(False)
        self.stats_label.setToolTip(STATS_TIP)

        # the settings scroll in a small window; the buttons, status and stats stay in view
        layout = QVBoxLayout(self)
        layout.addWidget(vertical_scroll([dev_box, pat_box, rec_box, rec_out]))
        layout.addLayout(buttons)
        layout.addWidget(self.contrast_button)
        layout.addWidget(self.status)
        layout.addWidget(self.stats_label)
        layout.addStretch(1)

        # the dock closing (or the viewer) destroys this widget: stop what still runs
        sessions = self._sessions = []  # the widget's sessions, for the destroyed hook
        self.destroyed.connect(lambda *_: [x.stop() for x in sessions])
        self.timer = QTimer(self)
        self.timer.setInterval(int(1000 / DISPLAY_HZ))
        self.display_hz.valueChanged.connect(lambda v: self.timer.setInterval(int(1000 / v)))
        self.timer.timeout.connect(self._poll)

    # -- configuration -----------------------------------------------------------------------
    def scan_devices(self) -> None:
        """Fill the camera and controller lists with what is connected."""
        current = self.camera.currentText()
        self.camera.clear()
        self.camera.addItems(_detect_cameras())
        self.camera.setCurrentText(current)
        port = self.controller.currentText()
        self.controller.clear()
        self.controller.addItems(_detect_ports())
        self.controller.setCurrentText(port)

    def config(self) -> LiveConfig:
        """The :class:`LiveConfig` the fields describe (raises ScopeError on bad input)."""
        try:
            angles = tuple(float(a) for a in self.angles.text().replace(";", ",").split(",") if a)
        except ValueError as err:
            raise ScopeError(
                f"angles must be numbers separated by commas, got {self.angles.text()!r}"
            ) from err
        roi = None
        if self.roi.text().strip():
            try:
                roi = tuple(int(v) for v in self.roi.text().replace(";", ",").split(","))
            except ValueError as err:
                raise ScopeError("ROI must be 'x, y, width, height' in pixels") from err
            if len(roi) != 4:
                raise ScopeError(f"ROI needs 4 numbers (x, y, width, height), got {len(roi)}")
        camera = self.camera.currentText() or "sim"
        controller = self.controller.currentText() or None
        return LiveConfig(
            camera=camera,
            controller=controller,
            sensor_shape=(self.sensor.value(), self.sensor.value()),
            roi=roi,  # type: ignore[arg-type]
            exposure_ms=self.exposure.value(),
            dark_ms=self.dark.value(),
            trigger=TRIGGERS[self.trigger.currentIndex()][1],
            angles_deg=angles,
            n_phases=self.phases.value(),
            period_nm=self.period.value(),
            na=self.na.value(),
            wavelength_nm=self.wavelength.value(),
            pixel_size_nm=self.pixel_size.value(),
        )

    # -- control -----------------------------------------------------------------------------
    def start(self, mode: str) -> LiveSession | None:
        """Start ``live``, ``sim`` or ``record`` (stops a running session first)."""
        if self.session is not None:
            self.stop()
            if not self.session.join(10.0):
                self.status.setText("the previous session is still stopping; try again")
                return None
            self._finish()
        try:
            config = self.config()
            small = field_too_small(config)
            if small and mode != "live" and self.estimate.isChecked():
                raise ScopeError(small)
            session = LiveSession(
                config,
                mode,  # type: ignore[arg-type]
                sim_every="frame" if self.sim_every.currentIndex() == 0 else "set",
                output=self.output.text() if mode == "record" else None,
                n_sets=self.n_sets.value() if mode == "record" else None,
                keep_run=self.keep_live.isChecked(),
                estimate=self.estimate.isChecked(),
                backend=self.backend.currentText(),
                modulation_map=self.modulation_map.isChecked(),
                reestimate_every_s=self.reestimate_every.value() or None,
            )
            session.start()
        except ScopeError as err:
            self.status.setText(f"cannot start: {err}")
            return None
        self.session = session
        self._sessions[:] = [session]
        self._shown_raw = self._shown_sim = self._shown_map = 0
        self._fixed_contrast.clear()  # a new session fits its contrast once, then keeps it
        self._described.clear()
        self.progress.setValue(0)
        self.status.setText(f"{mode}: starting …")
        for b in (self.live_button, self.sim_button, self.record_button):
            b.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.timer.start()
        return session

    def stop(self) -> None:
        """Ask the running session to stop (returns at once; the timer finishes up)."""
        if self.session is not None:
            self.session.stop()
            self.status.setText("stopping …")

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop and wait for every worker thread (when the widget or viewer closes).

        Safe after the Qt side is gone: the session is plain Python; the widget updates are
        skipped when their C++ objects were already deleted.
        """
        session = self.session
        if session is not None:
            session.stop()
            session.join(timeout_s)
        try:
            if session is not None:
                self._finish()
            self.timer.stop()
        except RuntimeError:  # the widget was deleted with the viewer
            self.session = None

    def closeEvent(self, event: Any) -> None:
        self.shutdown()
        super().closeEvent(event)

    def _finish(self) -> None:
        s = self.session
        if s is None:
            return
        self._poll_once(s)
        self.last_session, self.session = s, None
        snap = s.snapshot()
        where = f" — run kept at {s.output}" if s.keep_run else ""
        if s.error is not None:
            self.status.setText(f"stopped with an error: {s.error}")
        else:
            self.status.setText(f"stopped: {snap.stats.message}{where}")
        for b in (self.live_button, self.sim_button, self.record_button):
            b.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.timer.stop()

    # -- display -------------------------------------------------------------------------------
    def _layer(
        self,
        name: str,
        data: np.ndarray,
        scale: tuple,
        translate: tuple,
        cmap: str,
        *,
        visible: bool = True,
    ) -> Any:
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            if layer.data.shape == data.shape:
                if layer.visible:  # hidden layers cost nothing; they catch up when shown
                    layer.data = data
                    self.gui_updates += 1
                if not np.allclose(layer.scale, scale):  # another pixel size, same ROI
                    layer.scale, layer.translate = scale, translate
                return layer
            layer.data = data  # ROI changed between sessions: same layer, new shape
            layer.scale, layer.translate = scale, translate
            self._fixed_contrast.discard(name)
        else:
            layer = self.viewer.add_image(
                data,
                name=name,
                scale=scale,
                translate=translate,
                units=um_units(data.ndim),
                colormap=cmap,
                visible=visible,
                metadata=_live_metadata(name),
            )
        if name not in self._fixed_contrast:
            self._fit_contrast(layer, data)
        return layer

    def _fit_contrast(self, layer: Any, data: np.ndarray) -> None:
        """Fit the contrast of ``layer`` to ``data`` (the results' rule:
        :func:`~scope.napari._result_layers.percentile_limits`) and keep it."""
        lo, hi = percentile_limits(data)
        layer.contrast_limits_range = (float(min(lo, data.min())), float(max(hi, data.max())))
        layer.contrast_limits = (float(lo), float(hi))
        self._fixed_contrast.add(layer.name)

    def _describe(self, layer: Any, s: LiveSession) -> None:
        """Give ``layer`` what a saved snapshot of it states (File > Save Layer): once per
        session and pattern (a new estimate), not for every image shown."""
        described = self._described.get(layer.name)
        if described is not None and described[0] is s and described[1] is s.params:
            return
        self._described[layer.name] = (s, s.params)
        layer.metadata.update(snapshot_metadata(layer.name, s.setup, s.params))

    def auto_contrast(self) -> None:
        """Re-fit the contrast of the live layers once (then it stays fixed again)."""
        for name in (RAW_LAYER, WIDEFIELD_LAYER, SIM_LAYER):
            if name in self.viewer.layers:
                layer = self.viewer.layers[name]
                self._fit_contrast(layer, np.asarray(layer.data))

    def _reestimate_clicked(self) -> None:
        if self.session is not None:
            self.session.reestimate()

    def _modulation_map_toggled(self, on: bool) -> None:
        if self.session is not None:
            self.session.modulation_map = on

    def _poll(self) -> None:
        s = self.session
        if s is None:
            self.timer.stop()
            return
        self._poll_once(s)
        if not s.running and s._thread is not None and not s._thread.is_alive():
            self._finish()

    def _poll_once(self, s: LiveSession) -> None:
        snap = s.snapshot()
        px_um = s.config.pixel_size_nm / 1000.0
        cam = (px_um, px_um)
        if snap.raw is not None and snap.raw_serial != self._shown_raw:
            self._shown_raw = snap.raw_serial
            # with SIM on top, raw and widefield start hidden (the SIM layer covers them and
            # drawing them would cost the display rate); tick them in the layer list to see them
            visible = s.mode == "live"
            self._layer(RAW_LAYER, snap.raw, cam, (0.0, 0.0), "gray", visible=visible)
            if snap.widefield is not None:
                wf = self._layer(
                    WIDEFIELD_LAYER, snap.widefield, cam, (0.0, 0.0), "gray", visible=visible
                )
                self._describe(wf, s)
        if snap.sim is not None and snap.sim_serial != self._shown_sim:
            self._shown_sim = snap.sim_serial
            layer = self._layer(
                SIM_LAYER, snap.sim, (px_um / 2, px_um / 2), (-px_um / 4, -px_um / 4), "magma"
            )
            layer.metadata["frame_indices"] = snap.sim_frame_indices
            layer.metadata["sim_serial"] = snap.sim_serial
            self._describe(layer, s)
        if snap.modulation_map is not None and snap.modulation_map_serial != self._shown_map:
            self._shown_map = snap.modulation_map_serial
            new = MODULATION_LAYER not in self.viewer.layers
            layer = self._layer(MODULATION_LAYER, snap.modulation_map, cam, (0.0, 0.0), "inferno")
            if new:  # a fixed scale, so the map reads the same from one second to the next
                layer.contrast_limits_range = (0.0, max(12.0, float(snap.modulation_map.max())))
                layer.contrast_limits = (0.0, 12.0)
                layer.metadata["scope_kind"] = "modulation_contrast"
        st = snap.stats
        self.stats_label.setText(stats_text(st))
        if st.state in ("running", "error"):
            self.status.setText(f"{st.state}: {st.message}")
        if s.mode == "record" and s.n_sets:
            self.progress.setValue(int(100 * min(st.valid_sets + st.invalid_sets, s.n_sets)
                                       / s.n_sets))  # fmt: skip
