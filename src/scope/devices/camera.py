"""Camera base class: one public API, device specifics in ``_do_*`` methods.

The public methods validate, clamp and log; subclasses (GenICam over harvesters, V4L2/UVC, the
simulated camera) implement the ``_do_*`` hooks. A camera is constructed without any I/O and
opened in :meth:`Camera.connect`; :meth:`Camera.close` (or leaving a ``with`` block) always stops
acquisition and releases the device.

Settings a device does not have (a node missing from its GenICam node map, a control missing from
its V4L2 driver) are skipped with a warning: the matching entry is absent from
:attr:`Camera.features` and the getter returns ``None``.

The design follows python-microscope's ``microscope/abc.py`` (public setter clips, then calls
``_do_set_*``).

Examples
--------
>>> from scope.devices.simulated_camera import SimulatedCamera
>>> with SimulatedCamera(shape=(64, 64)) as cam:  # doctest: +SKIP
...     cam.exposure_ms = 5
...     cam.start()
...     cam.software_trigger()
...     frame = cam.get_frame(timeout_s=1.0)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np

from scope.errors import ConfigurationError, DeviceError

log = logging.getLogger(__name__)


class PixelFormat(StrEnum):
    """Monochrome pixel formats (SFNC / PFNC names). Packed formats are unpacked to uint16."""

    MONO8 = "Mono8"
    MONO10 = "Mono10"
    MONO12 = "Mono12"
    MONO16 = "Mono16"
    MONO10P = "Mono10p"
    MONO12P = "Mono12p"
    MONO10PACKED = "Mono10Packed"
    MONO12PACKED = "Mono12Packed"

    @property
    def bit_depth(self) -> int:
        return int("".join(c for c in self.value[4:] if c.isdigit()))

    @property
    def dtype(self) -> np.dtype:
        """dtype of the unpacked frames delivered to the host."""
        return np.dtype(np.uint8) if self.bit_depth == 8 else np.dtype(np.uint16)


TriggerMode = Literal["off", "software", "hardware"]
TriggerEdge = Literal["rising", "falling"]


@dataclass(frozen=True)
class TriggerSettings:
    """How exposures start.

    Attributes
    ----------
    mode : {"off", "software", "hardware"}
        ``off`` = free running (the camera shoots at its own frame rate and does not count
        pulses: avoid it for SIM), ``software`` = one exposure per :meth:`Camera.software_trigger`,
        ``hardware`` = one exposure per edge on ``line`` (leader mode: the controller triggers).
    line : str
        Trigger input, SFNC name (``Line0`` ...).
    edge : {"rising", "falling"}
        Active edge of the hardware trigger.
    """

    mode: TriggerMode = "off"
    line: str = "Line0"
    edge: TriggerEdge = "rising"

    def __post_init__(self) -> None:
        if self.mode not in ("off", "software", "hardware"):
            raise ConfigurationError(
                f"trigger mode must be 'off', 'software' or 'hardware', got {self.mode!r}"
            )
        if self.edge not in ("rising", "falling"):
            raise ConfigurationError(
                f"trigger edge must be 'rising' or 'falling', got {self.edge!r}"
            )


@dataclass(frozen=True)
class ROI:
    """Region of interest on the sensor, in pixels (x along columns, y along rows)."""

    x: int
    y: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.x < 0 or self.y < 0:
            raise ConfigurationError(
                f"ROI needs x, y >= 0 and width, height > 0, got {self.x}, {self.y}, "
                f"{self.width}x{self.height}"
            )


@dataclass
class Frame:
    """One image from a camera.

    Attributes
    ----------
    frame_id : int
        The camera's own frame counter (GenTL buffer frame id, V4L2 sequence, ...). A gap means
        the camera exposed a frame the host never received.
    timestamp_s : float
        When the exposure started (or, when the device gives no timestamp, when the frame
        arrived) on the host's ``time.monotonic()`` clock, seconds.
    data : numpy.ndarray
        The pixels, (Y, X) for monochrome formats (Y, X, C for colour devices).
    device_timestamp_ns : int or None
        The device's own timestamp, when it gives one.
    """

    frame_id: int
    timestamp_s: float
    data: np.ndarray
    device_timestamp_ns: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CameraInfo:
    """What discovery reports about one camera."""

    kind: str
    id: str
    model: str = ""
    vendor: str = ""
    serial: str = ""
    source: str = ""


def _clamp(value: float, lo: float | None, hi: float | None, what: str) -> float:
    if not math.isfinite(value):
        raise ConfigurationError(f"{what} must be a finite number, got {value}")
    clamped = value
    if lo is not None and clamped < lo:
        clamped = lo
    if hi is not None and clamped > hi:
        clamped = hi
    if clamped != value:
        log.warning("%s %s is outside [%s, %s]: clamped to %s", what, value, lo, hi, clamped)
    return clamped


class Camera:
    """Base class of all cameras.

    Subclasses implement the ``_do_*`` hooks; they declare the settings they support in
    :attr:`features` (a subset of ``{"exposure", "gain", "roi", "pixel_format", "trigger",
    "frame_rate"}``) once connected.
    """

    kind: str = "camera"

    def __init__(self, name: str = "") -> None:
        self.name = name or type(self).__name__
        self._connected = False
        self._running = False
        self._trigger = TriggerSettings()

    # -- life cycle --------------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def is_running(self) -> bool:
        return self._running

    def connect(self) -> None:
        """Open the device. Idempotent."""
        if self._connected:
            return
        log.info("connecting %s", self.name)
        self._do_connect()
        self._connected = True

    def close(self) -> None:
        """Stop acquisition and release the device. Safe to call more than once."""
        if not self._connected:
            return
        try:
            if self._running:
                self.stop()
        finally:
            try:
                self._do_close()
            finally:
                self._connected = False
                self._running = False
                log.info("closed %s", self.name)

    def __enter__(self) -> Camera:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # last resort; close() is the contract
        try:
            if getattr(self, "_connected", False):
                self.close()
        except Exception:
            pass

    def _require_connected(self) -> None:
        if not self._connected:
            raise DeviceError(f"{self.name} is not connected: call connect() (or use `with`) first")

    def _require_idle(self, what: str) -> None:
        if self._running:
            raise DeviceError(
                f"cannot change {what} of {self.name} while it acquires: stop() first"
            )

    # -- capabilities ------------------------------------------------------------------------------
    @property
    def features(self) -> frozenset[str]:
        """Settings this device supports (valid once connected)."""
        self._require_connected()
        return frozenset(self._do_features())

    @property
    def sensor_shape(self) -> tuple[int, int]:
        """Full sensor size (height, width) in pixels."""
        self._require_connected()
        return self._do_get_sensor_shape()

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of the frames the current settings deliver."""
        roi = self.roi
        return (roi.height, roi.width)

    # -- exposure ----------------------------------------------------------------------------------
    @property
    def exposure_ms(self) -> float | None:
        self._require_connected()
        if "exposure" not in self._do_features():
            return None
        return self._do_get_exposure_ms()

    @exposure_ms.setter
    def exposure_ms(self, value: float) -> None:
        self._require_connected()
        if "exposure" not in self._do_features():
            log.warning("%s has no exposure setting: %s ms ignored", self.name, value)
            return
        lo, hi = self._do_get_exposure_range_ms()
        value = _clamp(float(value), lo, hi, "exposure_ms")
        log.debug("%s exposure -> %.4g ms", self.name, value)
        self._do_set_exposure_ms(value)

    # -- gain --------------------------------------------------------------------------------------
    @property
    def gain(self) -> float | None:
        self._require_connected()
        if "gain" not in self._do_features():
            return None
        return self._do_get_gain()

    @gain.setter
    def gain(self, value: float) -> None:
        self._require_connected()
        if "gain" not in self._do_features():
            log.warning("%s has no gain setting: %s ignored", self.name, value)
            return
        lo, hi = self._do_get_gain_range()
        value = _clamp(float(value), lo, hi, "gain")
        log.debug("%s gain -> %.4g", self.name, value)
        self._do_set_gain(value)

    # -- frame rate (free-running cameras) -------------------------------------------------------
    @property
    def frame_rate_hz(self) -> float | None:
        self._require_connected()
        if "frame_rate" not in self._do_features():
            return None
        return self._do_get_frame_rate_hz()

    @frame_rate_hz.setter
    def frame_rate_hz(self, value: float) -> None:
        self._require_connected()
        if "frame_rate" not in self._do_features():
            log.warning("%s has no frame-rate setting: %s Hz ignored", self.name, value)
            return
        lo, hi = self._do_get_frame_rate_range_hz()
        value = _clamp(float(value), lo, hi, "frame_rate_hz")
        self._do_set_frame_rate_hz(value)

    # -- ROI ---------------------------------------------------------------------------------------
    @property
    def roi(self) -> ROI:
        self._require_connected()
        return self._do_get_roi()

    @roi.setter
    def roi(self, value: ROI | tuple[int, int, int, int]) -> None:
        self._require_connected()
        self._require_idle("the ROI")
        roi = value if isinstance(value, ROI) else ROI(*(int(v) for v in value))
        h, w = self._do_get_sensor_shape()
        if roi.x + roi.width > w or roi.y + roi.height > h:
            raise ConfigurationError(
                f"ROI x={roi.x} y={roi.y} {roi.width}x{roi.height} does not fit the "
                f"{w}x{h} sensor of {self.name}: make it smaller or move it"
            )
        if "roi" not in self._do_features():
            log.warning("%s has no ROI setting: %s ignored", self.name, roi)
            return
        log.debug("%s ROI -> %s", self.name, roi)
        self._do_set_roi(roi)

    # -- pixel format ------------------------------------------------------------------------------
    @property
    def pixel_format(self) -> PixelFormat | str | None:
        self._require_connected()
        if "pixel_format" not in self._do_features():
            return None
        value = self._do_get_pixel_format()
        try:
            return PixelFormat(value)
        except ValueError:
            return value  # a colour or vendor format the device is in now

    @pixel_format.setter
    def pixel_format(self, value: PixelFormat | str) -> None:
        self._require_connected()
        self._require_idle("the pixel format")
        try:
            fmt = PixelFormat(value)
        except ValueError as err:
            raise ConfigurationError(
                f"pixel format must be one of {[f.value for f in PixelFormat]}, got {value!r}"
            ) from err
        if "pixel_format" not in self._do_features():
            log.warning("%s has no pixel-format setting: %s ignored", self.name, fmt.value)
            return
        supported = self._do_get_pixel_formats()
        if fmt.value not in supported:
            raise ConfigurationError(
                f"{self.name} does not offer pixel format {fmt.value}; "
                f"it offers {sorted(supported)}"
            )
        log.debug("%s pixel format -> %s", self.name, fmt.value)
        self._do_set_pixel_format(fmt.value)

    @property
    def pixel_formats(self) -> tuple[str, ...]:
        """Pixel formats the device offers."""
        self._require_connected()
        if "pixel_format" not in self._do_features():
            return ()
        return tuple(self._do_get_pixel_formats())

    # -- trigger -----------------------------------------------------------------------------------
    @property
    def trigger(self) -> TriggerSettings:
        return self._trigger

    def set_trigger(
        self, mode: TriggerMode, *, line: str = "Line0", edge: TriggerEdge = "rising"
    ) -> None:
        """Choose how exposures start (see :class:`TriggerSettings`)."""
        self._require_connected()
        self._require_idle("the trigger mode")
        settings = TriggerSettings(mode=mode, line=line, edge=edge)
        if mode != "off" and "trigger" not in self._do_features():
            raise ConfigurationError(
                f"{self.name} has no trigger input: it can only free-run (mode 'off'); "
                "use a camera with a trigger line for synchronised SIM"
            )
        log.info("%s trigger -> %s", self.name, settings)
        if "trigger" in self._do_features():
            self._do_set_trigger(settings)
        self._trigger = settings

    def software_trigger(self) -> None:
        """Start one exposure (trigger mode ``software``)."""
        self._require_connected()
        if not self._running:
            raise DeviceError(f"{self.name} is not acquiring: call start() before triggering")
        if self._trigger.mode != "software":
            raise DeviceError(
                f"{self.name} is in trigger mode {self._trigger.mode!r}: "
                "set_trigger('software') before software_trigger()"
            )
        self._do_software_trigger()

    # -- acquisition -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start acquisition (waits for triggers unless trigger mode is ``off``)."""
        self._require_connected()
        if self._running:
            return
        log.info("%s start (trigger %s)", self.name, self._trigger.mode)
        self._do_start()
        self._running = True

    def stop(self) -> None:
        """Stop acquisition; frames not yet fetched are discarded."""
        if not self._running:
            return
        try:
            self._do_stop()
        finally:
            self._running = False
            log.info("%s stopped", self.name)

    def get_frame(self, timeout_s: float = 1.0) -> Frame:
        """Wait for the next frame.

        Raises
        ------
        scope.errors.DeviceTimeoutError
            When no frame arrives within ``timeout_s``.
        """
        self._require_connected()
        if not self._running:
            raise DeviceError(f"{self.name} is not acquiring: call start() first")
        if not (timeout_s > 0):
            raise ConfigurationError(f"timeout_s must be positive, got {timeout_s}")
        return self._do_get_frame(float(timeout_s))

    # -- hooks -------------------------------------------------------------------------------------
    def _do_connect(self) -> None:
        raise NotImplementedError

    def _do_close(self) -> None:
        raise NotImplementedError

    def _do_features(self) -> set[str] | frozenset[str]:
        raise NotImplementedError

    def _do_get_sensor_shape(self) -> tuple[int, int]:
        raise NotImplementedError

    def _do_get_exposure_ms(self) -> float:
        raise NotImplementedError

    def _do_set_exposure_ms(self, value: float) -> None:
        raise NotImplementedError

    def _do_get_exposure_range_ms(self) -> tuple[float | None, float | None]:
        return (None, None)

    def _do_get_gain(self) -> float:
        raise NotImplementedError

    def _do_set_gain(self, value: float) -> None:
        raise NotImplementedError

    def _do_get_gain_range(self) -> tuple[float | None, float | None]:
        return (None, None)

    def _do_get_frame_rate_hz(self) -> float:
        raise NotImplementedError

    def _do_set_frame_rate_hz(self, value: float) -> None:
        raise NotImplementedError

    def _do_get_frame_rate_range_hz(self) -> tuple[float | None, float | None]:
        return (None, None)

    def _do_get_roi(self) -> ROI:
        raise NotImplementedError

    def _do_set_roi(self, roi: ROI) -> None:
        raise NotImplementedError

    def _do_get_pixel_format(self) -> str:
        raise NotImplementedError

    def _do_get_pixel_formats(self) -> tuple[str, ...]:
        raise NotImplementedError

    def _do_set_pixel_format(self, value: str) -> None:
        raise NotImplementedError

    def _do_set_trigger(self, settings: TriggerSettings) -> None:
        raise NotImplementedError

    def _do_software_trigger(self) -> None:
        raise NotImplementedError

    def _do_start(self) -> None:
        raise NotImplementedError

    def _do_stop(self) -> None:
        raise NotImplementedError

    def _do_get_frame(self, timeout_s: float) -> Frame:
        raise NotImplementedError
