"""napari dock widget: export the current layers as a social-media clip.

Same presets, layouts, colormaps and annotations as ``scope export-video``
(:mod:`scope.export`). Pick the SIM layer (and a widefield layer for the side-by-side and wipe
layouts), a preset and a layout; *Preview* renders one frame of the clip into the widget,
*Export* writes the file in a background thread so the viewer stays responsive.

Pixel size: ``layer.metadata["pixel_size_nm"]`` where a reader put it there, else the layer's
``scale`` along x with its unit (napari's default unit-less scale is taken as µm, the common
convention of microscopy readers). Times: ``layer.metadata["timestamps_s"]`` or
``layer.metadata["frame_interval_s"]``, else the scale of the first axis when its unit is time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from scope.errors import ScopeError
from scope.export import COLORMAPS, LAYOUTS, PRESETS, build_renderer, export_video
from scope.export.colormaps import canonical_name
from scope.napari._controls import form_layout, layer_choice, vertical_scroll, wrapping_label
from scope.napari._messages import in_widget_words

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)

_NONE = "(none)"
_FROM_LAYER = "(from layer)"
_PREVIEW_WIDTH_PX = 270
#: the characters of a layer name the layer boxes show at their narrowest
_LAYER_CHARS = 18


def _image_layers(viewer: Any) -> list[Any]:
    from napari.layers import Image

    return [layer for layer in viewer.layers if isinstance(layer, Image) and not layer.rgb]


def _level0(layer: Any) -> np.ndarray:
    data = layer.data[0] if layer.multiscale else layer.data
    return np.asarray(data)


def layer_pixel_size_nm(layer: Any) -> float | None:
    """Physical pixel size (nm) of an image layer, from its metadata or its scale and unit."""
    meta = layer.metadata or {}
    if meta.get("pixel_size_nm"):
        return float(meta["pixel_size_nm"])
    scale = float(layer.scale[-1])
    unit = layer.units[-1] if getattr(layer, "units", None) is not None else None
    try:
        if unit is not None and str(unit) != "pixel":
            return float((scale * unit).to("nanometer").magnitude)
    except Exception:  # a unit that is not a length
        return None
    return scale * 1000.0 if scale != 1.0 else None


def layer_times(layer: Any) -> tuple[np.ndarray | None, float | None]:
    """Per-frame timestamps or the frame interval of a layer, where it says."""
    meta = layer.metadata or {}
    if meta.get("timestamps_s") is not None:
        return np.asarray(meta["timestamps_s"], dtype=float), None
    if meta.get("frame_interval_s"):
        return None, float(meta["frame_interval_s"])
    if layer.ndim > 2 and getattr(layer, "units", None) is not None:
        unit = layer.units[0]
        try:
            return None, float((float(layer.scale[0]) * unit).to("second").magnitude)
        except Exception:  # not a time axis
            return None, None
    return None, None


def _stack(layer: Any) -> np.ndarray:
    data = _level0(layer)
    return data.reshape(-1, *data.shape[-2:]) if data.ndim > 2 else data


class ExportVideoWidget(QWidget):
    """Export the viewer's layers as an MP4/GIF clip, with a preview frame.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose image layers are exported.

    Signals
    -------
    exported(str)
        Emitted with the output path when a clip has been written.
    failed(str)
        Emitted with the error message when an export fails.
    """

    exported = Signal(str)
    failed = Signal(str)

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self._worker = None
        self.preview_frame: np.ndarray | None = None

        self.sim_layer = layer_choice(_LAYER_CHARS)
        self.widefield_layer = layer_choice(_LAYER_CHARS)
        self.preset = QComboBox()
        self.preset.addItems(list(PRESETS))
        self.layout_box = QComboBox()
        self.layout_box.addItems(["auto", *LAYOUTS])
        self.colormap = QComboBox()
        self.colormap.addItems([_FROM_LAYER, *COLORMAPS])
        self.title = QLineEdit()
        self.caption = QLineEdit()
        self.credit = QLineEdit()
        self.duration = QDoubleSpinBox()
        self.duration.setRange(0.0, 90.0)
        self.duration.setSpecialValueText("automatic")
        self.duration.setSuffix(" s")
        self.pixel_size = QDoubleSpinBox()
        self.pixel_size.setRange(0.0, 10_000.0)
        self.pixel_size.setDecimals(2)
        self.pixel_size.setSpecialValueText("unknown")
        self.pixel_size.setToolTip("the image's pixel size (unknown: the clip gets no scale bar)")
        self.pixel_size.setSuffix(" nm")
        self.output = QLineEdit(str(Path.home() / "scope-clip.mp4"))
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        self.preview_button = QPushButton("Preview")
        self.export_button = QPushButton("Export")
        self.preview_label = QLabel()
        self.preview_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview_label.setMinimumHeight(120)
        self.status = wrapping_label()

        out_row = QHBoxLayout()
        out_row.addWidget(self.output)
        out_row.addWidget(browse)
        form = form_layout(
            [
                ("SIM layer", self.sim_layer),
                ("Widefield", self.widefield_layer),
                ("Preset", self.preset),
                ("Layout", self.layout_box),
                ("Colormap", self.colormap),
                ("Title", self.title),
                ("Caption", self.caption),
                ("Credit", self.credit),
                ("Duration", self.duration),
                ("Pixel size", self.pixel_size),
                ("Output", out_row),
            ]
        )
        buttons = QHBoxLayout()
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.export_button)
        fields = QWidget()
        fields.setLayout(form)
        form.setContentsMargins(0, 0, 0, 0)
        # the fields scroll in a small window (or below another dock); the buttons, preview
        # and status line stay in view
        layout = QVBoxLayout(self)
        layout.addWidget(vertical_scroll([fields]))
        layout.addLayout(buttons)
        layout.addWidget(self.preview_label)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.preview_button.clicked.connect(self.preview)
        self.export_button.clicked.connect(self.export)
        self.preset.currentTextChanged.connect(self._preset_changed)
        self.sim_layer.currentTextChanged.connect(self._sim_layer_changed)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._connected = True
        self._refresh_layers()

    # ------------------------------------------------------------------ state
    def _refresh_layers(self, event: Any = None) -> None:
        layers = _image_layers(self.viewer)
        names = [layer.name for layer in layers]
        current_sim = self.sim_layer.currentText()
        current_wf = self.widefield_layer.currentText()
        if current_sim not in names:  # first fill, or the layer went away: guess
            current_sim, guessed_wf = self._guess_roles(layers)
            if current_wf not in names:
                current_wf = guessed_wf
        added = getattr(event, "value", None) if getattr(event, "type", "") == "inserted" else None
        if added is not None and added.name in names:
            current_sim, current_wf = self._take_new_result(added, current_sim, current_wf)
        for box, items, keep in (
            (self.sim_layer, names, current_sim),
            (self.widefield_layer, [_NONE, *names], current_wf),
        ):
            box.blockSignals(True)
            box.clear()
            box.addItems(items)
            if keep in items:
                box.setCurrentText(keep)
            box.blockSignals(False)
        self._sim_layer_changed(self.sim_layer.currentText())

    def _take_new_result(self, added: Any, sim: str, wf: str) -> tuple[str, str]:
        """A SIM or widefield layer just added (a reconstruction, a file opened) takes over its
        role from a raw layer, the reconstruction widget's one-set preview or nothing; a result
        the user picked stays."""
        from scope.napari.reconstruction_widget import PREVIEW_LAYER

        def kind(name: str) -> str | None:
            layer = self._layer(name)
            return None if layer is None else layer.metadata.get("scope_kind", "other")

        new_kind = added.metadata.get("scope_kind")
        if new_kind == "sim" and (kind(sim) in (None, "raw") or sim == PREVIEW_LAYER):
            sim = added.name
        elif new_kind == "widefield" and kind(wf) in (None, "raw"):
            wf = added.name
        return sim, wf

    def _guess_roles(self, layers: list[Any]) -> tuple[str, str]:
        """SIM: the selected image layer, else the one with the most pixels; widefield: a
        layer named like one (``widefield``, ``wf``), else none."""
        if not layers:
            return "", _NONE

        def is_widefield(layer: Any) -> bool:
            if layer.metadata.get("scope_kind") == "widefield":  # the reader's, the widget's
                return True
            name = layer.name.lower()
            return "wide" in name or name.startswith("wf") or name.endswith("wf")

        active = self.viewer.layers.selection.active
        candidates = [lay for lay in layers if not is_widefield(lay)] or layers
        if active in candidates:
            sim = active
        else:
            sim = max(candidates, key=lambda lay: int(np.prod(_level0(lay).shape[-2:])))
        wf = next((lay.name for lay in layers if lay is not sim and is_widefield(lay)), _NONE)
        return sim.name, wf

    def _sim_layer_changed(self, name: str) -> None:
        layer = self._layer(name)
        if layer is not None:
            self.pixel_size.setValue(layer_pixel_size_nm(layer) or 0.0)

    def _preset_changed(self, name: str) -> None:
        suffix = ".gif" if name == "gif" else ".mp4"
        path = Path(self.output.text() or "scope-clip")
        self.output.setText(str(path.with_suffix(suffix)))

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export clip", self.output.text())
        if path:
            self.output.setText(path)

    def _layer(self, name: str) -> Any:
        return next((lay for lay in _image_layers(self.viewer) if lay.name == name), None)

    def export_arguments(self) -> dict[str, Any]:
        """Everything :func:`scope.export.export_video` needs, from the widget's state."""
        sim = self._layer(self.sim_layer.currentText())
        if sim is None:
            raise ScopeError("no image layer to export: open or add an image first")
        layout = self.layout_box.currentText()
        kwargs: dict[str, Any] = {
            "preset": self.preset.currentText(),
            "layout": layout,
            "pixel_size_nm": self.pixel_size.value() or None,
            "duration_s": self.duration.value() or None,
            "title": self.title.text() or None,
            "caption": self.caption.text() or None,
            "credit": self.credit.text() or None,
        }
        times, interval = layer_times(sim)
        kwargs["timestamps_s"], kwargs["frame_interval_s"] = times, interval
        frames = _stack(sim)
        wf_layer = self._layer(self.widefield_layer.currentText())
        if layout == "overlay":
            channels = [
                lay
                for lay in _image_layers(self.viewer)
                if lay.visible and _level0(lay).shape == _level0(sim).shape
            ]
            if sim not in channels:
                channels.insert(0, sim)
            frames = np.stack([_stack(lay) for lay in channels], axis=-3)
            if frames.ndim == 3:
                frames = frames[None]
            kwargs["channel_axis"] = 1
            kwargs["channel_names"] = [lay.name for lay in channels]
            kwargs["channel_colormaps"] = [self._colormap_of(lay) for lay in channels]
        else:
            kwargs["colormap"] = self._colormap_of(sim)
            if wf_layer is not None and wf_layer is not sim:
                kwargs["widefield"] = _stack(wf_layer)
                wf_size = layer_pixel_size_nm(wf_layer)
                if wf_size:
                    kwargs["widefield_pixel_size_nm"] = wf_size
        kwargs["frames"] = frames
        return kwargs

    def _colormap_of(self, layer: Any) -> str:
        choice = self.colormap.currentText()
        if choice != _FROM_LAYER and self.layout_box.currentText() != "overlay":
            return choice
        try:
            return canonical_name(layer.colormap.name)
        except ScopeError:
            return "magma" if self.layout_box.currentText() != "overlay" else "green"

    # ------------------------------------------------------------------ actions
    def preview(self) -> np.ndarray | None:
        """Render the clip's middle frame into the widget (and return it)."""
        try:
            kwargs = self.export_arguments()
            frames = kwargs.pop("frames")
            renderer = build_renderer(frames, **kwargs)
            frame = renderer.frame(renderer.n_frames // 2)
        except ScopeError as err:
            self.status.setText(f"Cannot preview: {in_widget_words(str(err))}")
            return None
        self.preview_frame = frame
        h, w = frame.shape[:2]
        image = QImage(frame.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        pixmap = QPixmap.fromImage(image).scaledToWidth(
            _PREVIEW_WIDTH_PX, Qt.TransformationMode.SmoothTransformation
        )
        self.preview_label.setPixmap(pixmap)
        self.status.setText(
            f"{renderer.preset.name} {renderer.layout}: {renderer.n_frames} frames, "
            f"{renderer.plan.duration_s:.1f} s ({renderer.plan.mode})"
        )
        return frame

    def output_path(self) -> tuple[Path, str]:
        """The file to write and a note for the status line: the Output field's path with the
        preset's container as its extension (MP4, or GIF for the gif preset: a clip named
        ``.avi`` is written as ``.mp4``, and the note says so); ScopeError when its folder does
        not exist."""
        path = Path(self.output.text().strip() or "scope-clip").expanduser()
        suffix = ".gif" if PRESETS[self.preset.currentText()].container == "gif" else ".mp4"
        note = ""
        if path.suffix.lower() != suffix:
            wanted = path.suffix or "no extension"
            path = path.with_suffix(suffix)
            note = (
                f" (the {self.preset.currentText()} preset writes {suffix[1:].upper()}, not "
                f"{wanted}: saved as {path.name})"
            )
        if not path.parent.is_dir():
            raise ScopeError(
                f"the folder {path.parent} does not exist: choose an existing folder in Output"
            )
        return path, note

    def export(self) -> Any:
        """Write the clip in a background thread; returns the napari worker."""
        from napari.qt.threading import create_worker

        try:
            kwargs = self.export_arguments()
            path, note = self.output_path()
        except ScopeError as err:
            message = in_widget_words(str(err))
            self.status.setText(f"Cannot export: {message}")
            self.failed.emit(message)
            return None
        frames = kwargs.pop("frames")
        self.export_button.setEnabled(False)
        self.status.setText(f"Exporting {path.name} …{note}")
        # an error shows once, in the status line (the default raises it again in the GUI)
        worker = create_worker(export_video, frames, path, _ignore_errors=True, **kwargs)
        worker.returned.connect(lambda result: self._done(result, note))
        worker.errored.connect(lambda err: self._error(err, path))
        self._worker = worker
        worker.start()
        return worker

    def _done(self, result: Any, note: str = "") -> None:
        self.export_button.setEnabled(True)
        self.status.setText(
            f"Wrote {result.path} — {result.n_frames} frames, {result.duration_s:.1f} s, "
            f"{result.size_bytes / 1e6:.1f} MB{note}"
        )
        self.exported.emit(str(result.path))

    def _error(self, err: BaseException, path: Path | None = None) -> None:
        log.info("export to %s failed", path, exc_info=(type(err), err, err.__traceback__))
        self.export_button.setEnabled(True)
        if isinstance(err, OSError):
            where = err.filename or path
            message = f"cannot write {where}: {err.strerror or err}"
        else:
            message = in_widget_words(str(err))
        self.status.setText(f"Export failed: {message}")
        self.failed.emit(message)

    def closeEvent(self, event: Any) -> None:  # Qt's method name
        self.disconnect_viewer()
        super().closeEvent(event)

    def disconnect_viewer(self) -> None:
        """Stop listening to the viewer's layer list (called when the widget closes)."""
        if self._connected:
            self.viewer.layers.events.inserted.disconnect(self._refresh_layers)
            self.viewer.layers.events.removed.disconnect(self._refresh_layers)
            self._connected = False
