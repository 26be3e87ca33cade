"""UVC / V4L2 cameras (e.g. the Arducam AR0234 global-shutter USB camera).

Many affordable global-shutter cameras are UVC devices, not GenICam: Linux exposes them as
``/dev/videoN`` through Video4Linux2. This module

- enumerates formats and frame sizes with the V4L2 ioctls ``VIDIOC_ENUM_FMT`` and
  ``VIDIOC_ENUM_FRAMESIZES``, and controls with ``VIDIOC_QUERYCTRL`` (``fcntl``, no extra
  library);
- negotiates a format (:func:`negotiate_format`: monochrome first — ``GREY``, ``Y16``, ``Y10``,
  ``Y12`` — then ``YUYV`` whose luma is taken, then ``MJPG``), the smallest frame size that holds
  the requested ROI;
- captures through PyAV's ``v4l2`` demuxer (the ``video`` extra) in a reader thread, with
  timeouts on every fetch;
- sets exposure (``exposure_time_absolute``, 100 µs units, after ``auto_exposure`` = manual),
  gain (``gain``/``analogue_gain``) and the external-trigger mode: Arducam's UVC global-shutter
  firmware exposes it as a driver control whose name contains ``trigger`` (``trigger_mode``,
  ``External Trigger``); with it on, the sensor waits for an edge on the trigger pin of its
  connector for every frame (wire the controller's trigger output there, see
  ``docs/acquisition.md``). A device without such a control cannot be hardware-triggered and
  says so.

UVC gives no frame counter the host can trust across drops; frame ids are the order of arrival
and timestamps the host's arrival times, so the acquisition engine reconciles with pulse
*timing* for these cameras.

References
----------
Linux kernel, "Video for Linux API", https://www.kernel.org/doc/html/latest/userspace-api/media/v4l/v4l2.html
(ioctl numbers and structure layouts: ``include/uapi/linux/videodev2.h``).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import logging
import os
import queue
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scope.devices.camera import ROI, Camera, CameraInfo, Frame, TriggerSettings
from scope.errors import ConfigurationError, DeviceError, DeviceTimeoutError

log = logging.getLogger(__name__)


def _iowr(nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("V") << 8) | nr


_BUF_TYPE_VIDEO_CAPTURE = 1
_FMTDESC = struct.Struct(
    "<II I 32s I I 3I"
)  # index type flags description pixelformat mbus reserved
_FRMSIZE = struct.Struct("<III 6I 2I")  # index pixel_format type union(6 u32) reserved
_QUERYCTRL = struct.Struct("<II32siiiiI2I")  # id type name min max step default flags reserved
_CONTROL = struct.Struct("<Ii")
VIDIOC_ENUM_FMT = _iowr(2, _FMTDESC.size)
VIDIOC_ENUM_FRAMESIZES = _iowr(74, _FRMSIZE.size)
VIDIOC_QUERYCTRL = _iowr(36, _QUERYCTRL.size)
VIDIOC_G_CTRL = _iowr(27, _CONTROL.size)
VIDIOC_S_CTRL = _iowr(28, _CONTROL.size)
_CTRL_FLAG_NEXT_CTRL = 0x80000000
_CTRL_FLAG_DISABLED = 0x0001
_FRMSIZE_TYPE_DISCRETE = 1

#: formats in order of preference for scientific imaging, with the PyAV/ffmpeg input name
FORMAT_PREFERENCE: tuple[str, ...] = ("GREY", "Y16 ", "Y12 ", "Y10 ", "YUYV", "MJPG")
_FFMPEG_INPUT = {"GREY": "gray", "Y16 ": "gray16le", "Y12 ": "gray12le", "Y10 ": "gray10le",
                 "YUYV": "yuyv422", "MJPG": "mjpeg"}  # fmt: skip


@dataclass(frozen=True)
class V4L2Format:
    """One (pixel format, frame size) a device offers."""

    fourcc: str
    width: int
    height: int
    description: str = ""


def fourcc_to_str(code: int) -> str:
    return code.to_bytes(4, "little").decode("ascii", errors="replace")


def negotiate_format(
    available: list[V4L2Format],
    *,
    width: int | None = None,
    height: int | None = None,
    prefer: tuple[str, ...] = FORMAT_PREFERENCE,
) -> V4L2Format:
    """Choose a capture format.

    The best-ranked pixel format (``prefer`` order) among those offering a frame size at least
    ``width`` x ``height``; among its sizes the smallest that holds the request (the largest when
    nothing is requested).

    Raises
    ------
    ConfigurationError
        When no offered format is usable or none is large enough.
    """
    usable = [f for f in available if f.fourcc in prefer]
    if not usable:
        offered = sorted({f.fourcc for f in available})
        raise ConfigurationError(
            f"the camera offers pixel formats {offered}, none of which scope can read "
            f"({[p.strip() for p in prefer]}); check `v4l2-ctl --list-formats-ext`"
        )
    for fourcc in prefer:
        sizes = [f for f in usable if f.fourcc == fourcc]
        if not sizes:
            continue
        if width is None and height is None:
            return max(sizes, key=lambda f: f.width * f.height)
        big = [f for f in sizes if f.width >= (width or 0) and f.height >= (height or 0)]
        if big:
            return min(big, key=lambda f: f.width * f.height)
    sizes = sorted({(f.width, f.height) for f in usable})
    raise ConfigurationError(
        f"no frame size of at least {width}x{height}; the camera offers {sizes}"
    )


def _ioctl(fd: int, request: int, buf: bytearray) -> bool:
    try:
        fcntl.ioctl(fd, request, buf, True)
        return True
    except OSError:
        return False


def enumerate_formats(fd: int) -> list[V4L2Format]:
    """All discrete (format, size) pairs of an open V4L2 device."""
    formats: list[V4L2Format] = []
    for index in range(64):
        buf = bytearray(_FMTDESC.pack(index, _BUF_TYPE_VIDEO_CAPTURE, 0, b"", 0, 0, 0, 0, 0))
        if not _ioctl(fd, VIDIOC_ENUM_FMT, buf):
            break
        fields = _FMTDESC.unpack(buf)
        desc = fields[3].split(b"\0", 1)[0].decode(errors="replace")
        pixfmt = fields[4]
        for size_index in range(256):
            sb = bytearray(_FRMSIZE.pack(size_index, pixfmt, 0, *([0] * 6), 0, 0))
            if not _ioctl(fd, VIDIOC_ENUM_FRAMESIZES, sb):
                break
            s = _FRMSIZE.unpack(sb)
            if s[2] == _FRMSIZE_TYPE_DISCRETE:
                formats.append(V4L2Format(fourcc_to_str(pixfmt), s[3], s[4], desc))
            else:  # stepwise/continuous: report the largest size
                formats.append(V4L2Format(fourcc_to_str(pixfmt), s[4], s[7], desc))
                break
    return formats


def enumerate_controls(fd: int) -> dict[str, dict[str, int]]:
    """Driver controls by normalised name (``exposure_time_absolute`` ...)."""
    controls: dict[str, dict[str, int]] = {}
    cid = _CTRL_FLAG_NEXT_CTRL
    for _ in range(512):
        buf = bytearray(_QUERYCTRL.pack(cid, 0, b"", 0, 0, 0, 0, 0, 0, 0))
        if not _ioctl(fd, VIDIOC_QUERYCTRL, buf):
            break
        f = _QUERYCTRL.unpack(buf)
        name = f[2].split(b"\0", 1)[0].decode(errors="replace")
        key = "_".join(name.lower().replace(",", " ").replace("(", " ").replace(")", " ").split())
        if not f[7] & _CTRL_FLAG_DISABLED:
            controls[key] = {"id": f[0], "min": f[3], "max": f[4], "step": f[5], "default": f[6]}
        cid = f[0] | _CTRL_FLAG_NEXT_CTRL
    return controls


def list_cameras() -> list[CameraInfo]:
    """``/dev/video*`` capture devices (only nodes that list at least one format)."""
    found = []
    for path in sorted(glob.glob("/dev/video*")):
        try:
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fmts = enumerate_formats(fd)
        finally:
            os.close(fd)
        if fmts:
            name = Path(f"/sys/class/video4linux/{Path(path).name}/name")
            model = name.read_text().strip() if name.exists() else ""
            found.append(CameraInfo(kind="v4l2", id=path, model=model, source="v4l2"))
    return found


class V4L2Camera(Camera):
    """A UVC/V4L2 camera (see the module docstring).

    Parameters
    ----------
    device : str or int
        ``/dev/videoN`` or ``N``.
    frame_rate_hz : float
        Requested rate for free running (the driver may round it).

    Examples
    --------
    >>> with V4L2Camera("/dev/video0") as cam:  # doctest: +SKIP
    ...     cam.set_trigger("hardware")  # Arducam external-trigger mode
    ...     cam.start()
    ...     frame = cam.get_frame(timeout_s=1.0)
    """

    kind = "v4l2"

    def __init__(
        self, device: str | int = 0, *, frame_rate_hz: float = 30.0, name: str = ""
    ) -> None:
        self.device = f"/dev/video{device}" if isinstance(device, int) else str(device)
        super().__init__(name or f"V4L2 camera {self.device}")
        self._fd: int | None = None
        self._formats: list[V4L2Format] = []
        self._controls: dict[str, dict[str, int]] = {}
        self._format: V4L2Format | None = None
        self._roi: ROI | None = None
        self._rate = float(frame_rate_hz)
        self._frames: queue.Queue[Frame | BaseException] = queue.Queue(maxsize=64)
        self._reader: threading.Thread | None = None
        self._stop_evt = threading.Event()
        self._container: Any = None

    # -- device --------------------------------------------------------------------------------
    def _do_connect(self) -> None:
        if not os.path.exists(self.device):
            raise DeviceError(
                f"{self.device} does not exist: is the camera plugged in? `scope devices` lists "
                "the V4L2 cameras found (on Linux; add your user to the 'video' group)"
            )
        try:
            self._fd = os.open(self.device, os.O_RDWR | os.O_NONBLOCK)
        except OSError as err:
            raise DeviceError(f"cannot open {self.device}: {err}") from err
        self._formats = enumerate_formats(self._fd)
        if not self._formats:
            os.close(self._fd)
            self._fd = None
            raise DeviceError(f"{self.device} is not a video capture device (no formats)")
        self._controls = enumerate_controls(self._fd)
        self._format = negotiate_format(self._formats)
        self._roi = ROI(0, 0, self._format.width, self._format.height)
        log.info("%s: %s, controls %s", self.name, self._format, sorted(self._controls))

    def _do_close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _control(self, *names: str) -> str | None:
        for n in names:
            if n in self._controls:
                return n
        return None

    def _trigger_control(self) -> str | None:
        return next((k for k in self._controls if "trigger" in k), None)

    def _get_ctrl(self, name: str) -> int:
        buf = bytearray(_CONTROL.pack(self._controls[name]["id"], 0))
        if not _ioctl(self._fd, VIDIOC_G_CTRL, buf):
            raise DeviceError(f"{self.name}: reading control {name} failed")
        return _CONTROL.unpack(buf)[1]

    def _set_ctrl(self, name: str, value: int) -> None:
        c = self._controls[name]
        value = int(min(max(value, c["min"]), c["max"]))
        buf = bytearray(_CONTROL.pack(c["id"], value))
        if not _ioctl(self._fd, VIDIOC_S_CTRL, buf):
            raise DeviceError(f"{self.name}: setting control {name}={value} failed")

    def _do_features(self) -> set[str]:
        feats = {"roi", "pixel_format", "frame_rate"}
        if self._control("exposure_time_absolute", "exposure_absolute"):
            feats.add("exposure")
        if self._control("gain", "analogue_gain"):
            feats.add("gain")
        if self._trigger_control():
            feats.add("trigger")
        return feats

    def _do_get_sensor_shape(self) -> tuple[int, int]:
        big = max(self._formats, key=lambda f: f.width * f.height)
        return big.height, big.width

    def _exp_ctrl(self) -> str:
        return self._control("exposure_time_absolute", "exposure_absolute")

    def _do_get_exposure_ms(self) -> float:
        return self._get_ctrl(self._exp_ctrl()) / 10.0  # 100 µs units

    def _do_set_exposure_ms(self, value: float) -> None:
        auto = self._control("auto_exposure", "exposure_auto")
        if auto:
            self._set_ctrl(auto, 1)  # V4L2_EXPOSURE_MANUAL
        self._set_ctrl(self._exp_ctrl(), round(value * 10))

    def _do_get_exposure_range_ms(self) -> tuple[float, float]:
        c = self._controls[self._exp_ctrl()]
        return c["min"] / 10.0, c["max"] / 10.0

    def _do_get_gain(self) -> float:
        return float(self._get_ctrl(self._control("gain", "analogue_gain")))

    def _do_set_gain(self, value: float) -> None:
        self._set_ctrl(self._control("gain", "analogue_gain"), round(value))

    def _do_get_gain_range(self) -> tuple[float, float]:
        c = self._controls[self._control("gain", "analogue_gain")]
        return float(c["min"]), float(c["max"])

    def _do_get_frame_rate_hz(self) -> float:
        return self._rate

    def _do_set_frame_rate_hz(self, value: float) -> None:
        self._rate = value

    def _do_get_roi(self) -> ROI:
        return self._roi

    def _do_set_roi(self, roi: ROI) -> None:
        fmt = negotiate_format(
            self._formats, width=roi.x + roi.width, height=roi.y + roi.height,
            prefer=(self._format.fourcc, *FORMAT_PREFERENCE),
        )  # fmt: skip
        self._format = fmt
        self._roi = roi  # cropped on the host from the negotiated frame size

    def _do_get_pixel_format(self) -> str:
        return "Mono16" if self._format.fourcc in ("Y16 ", "Y12 ", "Y10 ") else "Mono8"

    def _do_get_pixel_formats(self) -> tuple[str, ...]:
        have = {f.fourcc for f in self._formats}
        out = ["Mono8"] if have & {"GREY", "YUYV", "MJPG"} else []
        if have & {"Y16 ", "Y12 ", "Y10 "}:
            out.append("Mono16")
        return tuple(out)

    def _do_set_pixel_format(self, value: str) -> None:
        prefer = ("Y16 ", "Y12 ", "Y10 ") if value == "Mono16" else ("GREY", "YUYV", "MJPG")
        r = self._roi
        self._format = negotiate_format(
            self._formats, width=r.x + r.width, height=r.y + r.height, prefer=prefer
        )

    def _do_set_trigger(self, settings: TriggerSettings) -> None:
        ctrl = self._trigger_control()
        if settings.mode == "software":
            raise ConfigurationError(
                f"{self.name}: UVC cameras have no software trigger; use 'hardware' (external "
                "trigger) or 'off'"
            )
        self._set_ctrl(ctrl, 1 if settings.mode == "hardware" else 0)
        if settings.edge == "falling":
            log.warning("%s: the edge is fixed by the camera's firmware (rising)", self.name)

    # -- capture -----------------------------------------------------------------------------
    def _do_start(self) -> None:
        import av  # the [video] extra

        fmt = self._format
        options = {
            "video_size": f"{fmt.width}x{fmt.height}",
            "input_format": _FFMPEG_INPUT[fmt.fourcc],
            "framerate": f"{self._rate:g}",
        }
        try:
            self._container = av.open(self.device, format="v4l2", options=options, timeout=5.0)
        except Exception as err:
            raise DeviceError(f"{self.name}: cannot start capture with {options}: {err}") from err
        self._stop_evt.clear()
        self._reader = threading.Thread(target=self._read_loop, name="v4l2-reader", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        frame_id = 0
        r = self._roi
        try:
            for packet in self._container.demux(video=0):
                if self._stop_evt.is_set():
                    return
                for vf in packet.decode():
                    frame_id += 1
                    mono16 = self._format.fourcc in ("Y16 ", "Y12 ", "Y10 ")
                    img = vf.to_ndarray(format="gray16le" if mono16 else "gray")
                    data = np.ascontiguousarray(img[r.y : r.y + r.height, r.x : r.x + r.width])
                    with contextlib.suppress(queue.Full):
                        self._frames.put(Frame(frame_id, time.monotonic(), data, None,
                                               {"timestamp": "arrival"}), timeout=1)  # fmt: skip
        except Exception as err:
            if not self._stop_evt.is_set():
                self._frames.put(err)

    def _do_stop(self) -> None:
        self._stop_evt.set()
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None
        while not self._frames.empty():
            self._frames.get_nowait()

    def _do_get_frame(self, timeout_s: float) -> Frame:
        try:
            item = self._frames.get(timeout=timeout_s)
        except queue.Empty as err:
            raise DeviceTimeoutError(
                f"{self.name}: no frame within {timeout_s:.3g} s (trigger {self.trigger.mode})"
            ) from err
        if isinstance(item, BaseException):
            raise DeviceError(f"{self.name}: capture failed: {item}") from item
        return item
