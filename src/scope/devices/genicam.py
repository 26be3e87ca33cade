"""GenICam cameras over harvesters, grabbed in a separate process into shared memory.

Any GenTL producer works: a ``.cti`` file passed in, or the producers found on the standard
``GENICAM_GENTL64_PATH`` (directories separated by ``os.pathsep``). The ``genicam`` wheel ships
one, ``viky.cti``, with three simulated cameras; :func:`bundled_producer` finds it.

Why a process: harvesters' ``fetch()`` holds the GIL while it waits for a buffer
(genicam/harvesters#508), which would freeze a GUI and starve the serial link. Here a child
process (started with ``spawn``) owns harvesters entirely. The parent talks to it over a pipe
(settings, start/stop) and receives frames through a shared-memory ring buffer
(:mod:`multiprocessing.shared_memory`): the child writes each frame into the next free slot and
posts a small header (slot, frame id, timestamps, shape, dtype) on an event pipe; the parent
copies the slot out and advances a "consumed" counter kept in the ring's first 64 bytes. When the
parent falls behind and the ring is full, the child drops the frame, counts an overrun and says
so (a gap in frame ids follows). Only pipes and one shared-memory block are used (no named
semaphores), so closing leaves nothing behind in ``/dev/shm``.

Settings map onto SFNC node names (GenICam Standard Features Naming Convention 2.x):
``ExposureTime`` (µs), ``Gain``, ``Width``/``Height``/``OffsetX``/``OffsetY``, ``PixelFormat``,
``TriggerSelector=FrameStart``/``TriggerMode``/``TriggerSource``/``TriggerActivation``,
``TriggerSoftware``, ``AcquisitionFrameRate`` (+ ``AcquisitionFrameRateEnable``). A node the
device does not have is skipped: the matching feature is absent from ``Camera.features``.

Fetches always use timeouts; harvesters requeues incomplete buffers (we count them); when a
hardware-triggered run starts, buffers already waiting are flushed so no stale frame is taken for
the first pulse.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import multiprocessing as mp
import os
import time
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np

from scope.devices.camera import ROI, Camera, CameraInfo, Frame, TriggerSettings
from scope.errors import ConfigurationError, DeviceError, DeviceTimeoutError

log = logging.getLogger(__name__)

GENTL_ENV = "GENICAM_GENTL64_PATH"

#: bytes per pixel of the frames the child hands over (packed formats arrive unpacked)
_BYTES_PER_PIXEL = {"Mono8": 1, "RGB8": 3, "BGR8": 3, "RGBa8": 4, "BGRa8": 4}


def bundled_producer() -> Path | None:
    """The GenTL producer shipped inside the ``genicam`` wheel (``viky.cti``), if installed."""
    spec = importlib.util.find_spec("genicam")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "viky.cti"
        if path.is_file():
            return path
    return None


def find_producers(env: str | None = None) -> list[Path]:
    """GenTL producers (``.cti`` files) on ``GENICAM_GENTL64_PATH``.

    Parameters
    ----------
    env : str, optional
        The search path to use instead of the environment variable.
    """
    value = os.environ.get(GENTL_ENV, "") if env is None else env
    found: list[Path] = []
    for entry in value.split(os.pathsep):
        if not entry:
            continue
        path = Path(entry)
        if path.is_file() and path.suffix == ".cti":
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(path.glob("*.cti")))
    return found


def _resolve_producers(cti: str | os.PathLike[str] | None) -> list[Path]:
    if cti is not None:
        path = Path(cti)
        if not path.is_file():
            raise ConfigurationError(
                f"GenTL producer {path} does not exist: give the path of a .cti file "
                f"(your camera vendor's SDK installs one) or set {GENTL_ENV}"
            )
        return [path]
    found = find_producers()
    if not found:
        bundled = bundled_producer()
        simulated = f"; the genicam wheel's simulated cameras: --cti {bundled}" if bundled else ""
        raise ConfigurationError(
            f"no GenTL producer given and none found on {GENTL_ENV}: install your camera "
            f"vendor's SDK (it installs a .cti file and sets {GENTL_ENV}), or name the .cti "
            f"file with --cti FILE (cti=FILE in Python){simulated}"
        )
    return found


def _device_names(info: Any) -> set[str]:
    """The names a device can be selected by (id, serial number, user-defined name): each
    read on its own, since a producer may not support one (viky.cti raises
    NotAvailableException for the user-defined name)."""
    names = set()
    for attr in ("id_", "serial_number", "user_defined_name"):
        try:
            value = getattr(info, attr)
        except Exception:  # harvesters/GenTL: "not available" for this device
            continue
        if value not in (None, ""):
            names.add(str(value))
    return names


def list_cameras(cti: str | os.PathLike[str] | None = None) -> list[CameraInfo]:
    """Cameras offered by a GenTL producer (or every producer on ``GENICAM_GENTL64_PATH``)."""
    from harvesters.core import Harvester

    cameras: list[CameraInfo] = []
    for producer in _resolve_producers(cti):
        h = Harvester()
        try:
            h.add_file(str(producer), check_existence=True)
            h.update()
            for info in h.device_info_list:
                cameras.append(
                    CameraInfo(
                        kind="genicam",
                        id=str(info.id_),
                        model=str(info.model or ""),
                        vendor=str(info.vendor or ""),
                        serial=str(info.serial_number or ""),
                        source=str(producer),
                    )
                )
        except Exception as err:
            log.warning("GenTL producer %s failed: %s", producer, err)
        finally:
            h.reset()
    return cameras


# ------------------------------------------------------------------------------------------------
# child process
# ------------------------------------------------------------------------------------------------
def _node_info(nm: Any, name: str) -> dict[str, Any] | None:
    try:
        if not nm.has_node(name):
            return None
        node = nm.get_node(name)
    except Exception:
        return None
    info: dict[str, Any] = {"name": name}
    for attr in ("min", "max", "inc"):
        with contextlib.suppress(Exception):
            info[attr] = getattr(node, attr)
    with contextlib.suppress(Exception):
        info["symbolics"] = tuple(node.symbolics)
    with contextlib.suppress(Exception):
        info["value"] = node.value
    return info


_NODES = (
    "ExposureTime", "ExposureTimeAbs", "Gain", "GainRaw", "Width", "Height", "OffsetX",
    "OffsetY", "WidthMax", "HeightMax", "SensorWidth", "SensorHeight", "PixelFormat",
    "TriggerSelector", "TriggerMode", "TriggerSource", "TriggerActivation", "TriggerSoftware",
    "AcquisitionFrameRate", "AcquisitionFrameRateEnable", "AcquisitionFrameRateAbs",
    "PayloadSize",
)  # fmt: skip


_HEADER = 64  # bytes before the first slot: int64 "frames consumed by the parent" at offset 0


def _grab_worker(producers: list[str], selector: Any, conn: Any, events: Any) -> None:
    """Body of the grab process: owns harvesters; serves commands; fills the ring buffer."""
    from harvesters.core import Harvester

    logging.basicConfig(level=logging.WARNING)
    h = Harvester()
    ia = None
    shm: shared_memory.SharedMemory | None = None
    n_slots = slot_bytes = 0
    seq = overruns = 0
    running = False
    incomplete = [0]
    try:
        for p in producers:
            h.add_file(p, check_existence=True)
        h.update()
        if not h.device_info_list:
            conn.send(("err", "DeviceError", f"no camera on GenTL producer(s) {producers}"))
            return
        if isinstance(selector, str):
            match = [i for i, d in enumerate(h.device_info_list) if selector in _device_names(d)]
            if not match:
                ids = [str(d.id_) for d in h.device_info_list]
                conn.send(("err", "DeviceError", f"no camera {selector!r}; cameras: {ids}"))
                return
            selector = match[0]
        if not 0 <= int(selector) < len(h.device_info_list):
            conn.send(
                (
                    "err",
                    "DeviceError",
                    f"camera index {selector} out of range: "
                    f"{len(h.device_info_list)} camera(s) found",
                )
            )
            return
        ia = h.create(int(selector))
        ia.num_buffers = 32  # device-side buffers: ride out a busy machine before the ring
        from harvesters.core import Callback

        class _CountIncomplete(Callback):  # harvesters requeues the buffer; we count it
            def emit(self, context: Any = None) -> None:
                incomplete[0] += 1

        with contextlib.suppress(Exception):
            ia.add_callback(ia.Events.INCOMPLETE_BUFFER, _CountIncomplete())
        nm = ia.remote_device.node_map
        conn.send(("ok", str(h.device_info_list[int(selector)].id_)))

        while True:
            if conn.poll(0 if running else 0.05):
                try:
                    cmd, *args = conn.recv()
                except EOFError:
                    return  # the parent went away
                try:
                    if cmd == "describe":
                        reply: Any = {n: i for n in _NODES if (i := _node_info(nm, n)) is not None}
                    elif cmd == "get":
                        reply = nm.get_node(args[0]).value
                    elif cmd == "set":
                        nm.get_node(args[0]).value = args[1]
                        reply = nm.get_node(args[0]).value
                    elif cmd == "execute":
                        nm.get_node(args[0]).execute()
                        reply = None
                    elif cmd == "start":
                        name, n_slots, slot_bytes, flush = args
                        shm = shared_memory.SharedMemory(name=name)
                        consumed = np.ndarray((1,), np.int64, shm.buf, offset=0)
                        seq = 0
                        ia.start()
                        flushed = 0
                        if flush:  # stale buffers from before the run must not meet pulse 1
                            # (bounded: a camera that keeps delivering is not waiting for us)
                            while flushed < 4 * ia.num_buffers:
                                buf = ia.try_fetch(timeout=0.02)
                                if buf is None:
                                    break
                                buf.queue()
                                flushed += 1
                        running = True
                        reply = flushed
                    elif cmd == "stop":
                        ia.stop()
                        running = False
                        events.send(("stopped", incomplete[0]))
                        if shm is not None:
                            del consumed
                            shm.close()
                            shm = None
                        reply = incomplete[0]
                    elif cmd == "close":
                        conn.send(("ok", None))
                        return
                    else:
                        raise ValueError(f"unknown command {cmd!r}")
                    conn.send(("ok", reply))
                except Exception as err:
                    conn.send(("err", type(err).__name__, str(err)))
                continue
            if not running:
                continue
            try:
                buf = ia.try_fetch(timeout=0.05)  # never wait without a timeout
            except Exception as err:
                events.send(("error", f"{type(err).__name__}: {err}"))
                running = False
                continue
            if buf is None:
                continue
            host_ts = time.monotonic()
            with buf:
                comp = buf.payload.components[0]
                ch = max(1, int(comp.num_components_per_pixel))
                shape = (comp.height, comp.width) + ((ch,) if ch > 1 else ())
                data = np.asarray(comp.data).reshape(shape)
                frame_id = int(buf.frame_id)
                dev_ts = None
                with contextlib.suppress(Exception):
                    dev_ts = int(buf.module.timestamp_ns)
                if data.nbytes > slot_bytes:
                    events.send(("error", f"frame of {data.nbytes} B exceeds slot {slot_bytes} B"))
                    continue
                if seq - int(consumed[0]) >= n_slots:
                    overruns += 1  # the parent is too slow: frame dropped (reported once)
                    continue
                if overruns:
                    events.send(("overrun", overruns))
                    overruns = 0
                slot = seq % n_slots
                off = _HEADER + slot * slot_bytes
                dst = np.ndarray(data.shape, data.dtype, shm.buf, offset=off)
                dst[...] = data
                del dst
                events.send(("frame", seq, slot, frame_id, dev_ts, host_ts, shape, data.dtype.str))
                seq += 1
    except Exception as err:
        with contextlib.suppress(Exception):
            conn.send(("err", "DeviceError", f"{type(err).__name__}: {err}"))
    finally:
        with contextlib.suppress(Exception):
            if ia is not None:
                ia.stop()
                ia.destroy()
        with contextlib.suppress(Exception):
            h.reset()
        if shm is not None:
            consumed = None
            with contextlib.suppress(Exception):
                shm.close()


# ------------------------------------------------------------------------------------------------
# parent side
# ------------------------------------------------------------------------------------------------
class GenICamCamera(Camera):
    """A GenICam camera driven through harvesters in a grab process.

    Parameters
    ----------
    cti : path, optional
        GenTL producer; default: every producer on ``GENICAM_GENTL64_PATH``.
    device : int or str
        Camera index, or its id / serial number / user-defined name.
    ring_slots : int
        Frames the shared-memory ring buffer holds.
    command_timeout_s : float
        How long to wait for the grab process to answer a command.

    Examples
    --------
    >>> from scope.devices.genicam import GenICamCamera, bundled_producer
    >>> with GenICamCamera(bundled_producer(), device=0) as cam:  # doctest: +SKIP
    ...     cam.pixel_format = "Mono8"
    ...     cam.start()
    ...     frame = cam.get_frame(timeout_s=1.0)
    """

    kind = "genicam"

    def __init__(
        self,
        cti: str | os.PathLike[str] | None = None,
        device: int | str = 0,
        *,
        ring_slots: int = 32,
        command_timeout_s: float = 10.0,
        name: str = "",
    ) -> None:
        super().__init__(name or f"GenICam camera {device}")
        if ring_slots < 2:
            raise ConfigurationError(f"ring_slots must be >= 2, got {ring_slots}")
        self._cti = cti
        self._device = device
        self._n_slots = int(ring_slots)
        self._command_timeout_s = float(command_timeout_s)
        self._proc: Any = None
        self._conn: Any = None
        self._events: Any = None
        self._consumed: np.ndarray | None = None
        self._shm: shared_memory.SharedMemory | None = None
        self._slot_bytes = 0
        self._nodes: dict[str, dict[str, Any]] = {}
        self.device_id = ""
        #: names of the shared-memory blocks this camera created (all unlinked by stop/close)
        self.shared_memory_names: list[str] = []
        self.overruns = 0
        self.incomplete_buffers = 0
        self.flushed_buffers = 0

    # -- process plumbing ----------------------------------------------------------------------
    def _call(self, cmd: str, *args: Any, timeout_s: float | None = None) -> Any:
        if self._conn is None:
            raise DeviceError(f"{self.name}: grab process not running")
        self._conn.send((cmd, *args))
        if not self._conn.poll(timeout_s or self._command_timeout_s):
            raise DeviceTimeoutError(
                f"{self.name}: grab process did not answer {cmd!r} within "
                f"{timeout_s or self._command_timeout_s} s; the camera may hang: unplug it"
            )
        status, *payload = self._conn.recv()
        if status != "ok":
            kind, message = payload
            raise DeviceError(f"{self.name}: {cmd} {args} failed ({kind}): {message}")
        return payload[0]

    def _do_connect(self) -> None:
        producers = [str(p) for p in _resolve_producers(self._cti)]
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._events, events_child = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_grab_worker,
            args=(producers, self._device, child, events_child),
            name=f"scope-grab-{self._device}",
            daemon=True,
        )
        self._proc.start()
        child.close()
        events_child.close()
        self._conn = parent
        try:
            if not self._conn.poll(self._command_timeout_s + 20):
                raise DeviceTimeoutError(f"{self.name}: grab process did not start")
            status, *payload = self._conn.recv()
            if status != "ok":
                raise DeviceError(f"{self.name}: {payload[-1]}")
            self.device_id = payload[0]
            self._nodes = self._call("describe")
        except BaseException:
            self._shutdown_process()
            raise
        log.info("%s: %s, nodes %s", self.name, self.device_id, sorted(self._nodes))

    def _shutdown_process(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.send(("close",))
                if self._conn.poll(5):
                    self._conn.recv()
        if self._proc is not None:
            self._proc.join(5)
            if self._proc.is_alive():
                log.warning("%s: grab process did not exit; terminating it", self.name)
                self._proc.terminate()
                self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        if self._events is not None:
            self._events.close()
        self._release_shm()
        self._proc = self._conn = self._events = None

    def _release_shm(self) -> None:
        self._consumed = None
        if self._shm is not None:
            with contextlib.suppress(Exception):
                self._shm.close()
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()
            self._shm = None

    def _do_close(self) -> None:
        self._shutdown_process()

    # -- nodes --------------------------------------------------------------------------------
    def _has(self, *names: str) -> bool:
        return all(n in self._nodes for n in names)

    def _first(self, *names: str) -> str | None:
        return next((n for n in names if n in self._nodes), None)

    def _set(self, node: str, value: Any) -> Any:
        value = self._call("set", node, value)
        self._nodes[node]["value"] = value
        return value

    def _get(self, node: str) -> Any:
        return self._call("get", node)

    def _range(self, node: str) -> tuple[float | None, float | None]:
        info = self._nodes.get(node, {})
        return info.get("min"), info.get("max")

    def _do_features(self) -> set[str]:
        feats: set[str] = set()
        if self._first("ExposureTime", "ExposureTimeAbs"):
            feats.add("exposure")
        if self._first("Gain", "GainRaw"):
            feats.add("gain")
        if self._has("Width", "Height"):
            feats.add("roi")
        if self._has("PixelFormat"):
            feats.add("pixel_format")
        if self._has("TriggerMode", "TriggerSource"):
            feats.add("trigger")
        if self._first("AcquisitionFrameRate", "AcquisitionFrameRateAbs"):
            feats.add("frame_rate")
        return feats

    def _do_get_sensor_shape(self) -> tuple[int, int]:
        for wn, hn in (("WidthMax", "HeightMax"), ("SensorWidth", "SensorHeight")):
            if self._has(wn, hn):
                return int(self._nodes[hn]["value"]), int(self._nodes[wn]["value"])
        return int(self._nodes["Height"]["max"]), int(self._nodes["Width"]["max"])

    def _do_get_exposure_ms(self) -> float:
        return float(self._get(self._first("ExposureTime", "ExposureTimeAbs"))) / 1000.0

    def _do_set_exposure_ms(self, value: float) -> None:
        self._set(self._first("ExposureTime", "ExposureTimeAbs"), value * 1000.0)

    def _do_get_exposure_range_ms(self) -> tuple[float | None, float | None]:
        lo, hi = self._range(self._first("ExposureTime", "ExposureTimeAbs"))
        return (lo / 1000 if lo is not None else None, hi / 1000 if hi is not None else None)

    def _do_get_gain(self) -> float:
        return float(self._get(self._first("Gain", "GainRaw")))

    def _do_set_gain(self, value: float) -> None:
        node = self._first("Gain", "GainRaw")
        self._set(node, round(value) if node == "GainRaw" else value)

    def _do_get_gain_range(self) -> tuple[float | None, float | None]:
        return self._range(self._first("Gain", "GainRaw"))

    def _rate_node(self) -> str:
        return self._first("AcquisitionFrameRate", "AcquisitionFrameRateAbs")

    def _do_get_frame_rate_hz(self) -> float:
        return float(self._get(self._rate_node()))

    def _do_set_frame_rate_hz(self, value: float) -> None:
        if self._has("AcquisitionFrameRateEnable"):
            self._set("AcquisitionFrameRateEnable", True)
        self._set(self._rate_node(), value)

    def _do_get_frame_rate_range_hz(self) -> tuple[float | None, float | None]:
        return self._range(self._rate_node())

    def _do_get_roi(self) -> ROI:
        x = int(self._get("OffsetX")) if self._has("OffsetX") else 0
        y = int(self._get("OffsetY")) if self._has("OffsetY") else 0
        return ROI(x, y, int(self._get("Width")), int(self._get("Height")))

    def _snap(self, node: str, value: int) -> int:
        info = self._nodes[node]
        lo, hi, inc = int(info.get("min", 0)), int(info.get("max", value)), int(info.get("inc", 1))
        snapped = min(max(lo + (value - lo) // max(inc, 1) * max(inc, 1), lo), hi)
        if snapped != value:
            log.warning("%s %s=%d snapped to %d (min %d, max %d, inc %d)",
                        self.name, node, value, snapped, lo, hi, inc)  # fmt: skip
        return snapped

    def _do_set_roi(self, roi: ROI) -> None:
        if (roi.x or roi.y) and not self._has("OffsetX", "OffsetY"):
            raise ConfigurationError(
                f"{self.name} has no OffsetX/OffsetY nodes: its ROI must start at (0, 0), "
                f"got ({roi.x}, {roi.y})"
            )
        if self._has("OffsetX", "OffsetY"):  # offsets first to 0 so any width is allowed
            self._set("OffsetX", 0)
            self._set("OffsetY", 0)
        self._set("Width", self._snap("Width", roi.width))
        self._set("Height", self._snap("Height", roi.height))
        if self._has("OffsetX", "OffsetY"):
            self._nodes.update(self._call("describe"))  # offset ranges depend on the size
            self._set("OffsetX", self._snap("OffsetX", roi.x))
            self._set("OffsetY", self._snap("OffsetY", roi.y))

    def _do_get_pixel_format(self) -> str:
        return str(self._get("PixelFormat"))

    def _do_get_pixel_formats(self) -> tuple[str, ...]:
        return tuple(self._nodes["PixelFormat"].get("symbolics", ()))

    def _do_set_pixel_format(self, value: str) -> None:
        self._set("PixelFormat", value)

    def _do_set_trigger(self, settings: TriggerSettings) -> None:
        selectors = self._nodes.get("TriggerSelector", {}).get("symbolics", ("FrameStart",))
        if self._has("TriggerSelector") and "FrameStart" in selectors:
            self._set("TriggerSelector", "FrameStart")
        if settings.mode == "off":
            self._set("TriggerMode", "Off")
            return
        source = "Software" if settings.mode == "software" else settings.line
        sources = self._nodes["TriggerSource"].get("symbolics")
        if sources and source not in sources:
            raise ConfigurationError(
                f"{self.name} has no trigger source {source!r}; it offers {list(sources)}"
            )
        self._set("TriggerSource", source)
        if settings.mode == "hardware" and self._has("TriggerActivation"):
            self._set(
                "TriggerActivation", "RisingEdge" if settings.edge == "rising" else "FallingEdge"
            )
        self._set("TriggerMode", "On")

    def _do_software_trigger(self) -> None:
        if not self._has("TriggerSoftware"):
            raise DeviceError(f"{self.name} has no TriggerSoftware node")
        self._call("execute", "TriggerSoftware")

    # -- acquisition --------------------------------------------------------------------------
    def _do_start(self) -> None:
        self._nodes.update(self._call("describe"))
        width, height = int(self._get("Width")), int(self._get("Height"))
        fmt = str(self._get("PixelFormat")) if self._has("PixelFormat") else "Mono8"
        bpp = _BYTES_PER_PIXEL.get(fmt, 2 if fmt.startswith("Mono") else 4)
        payload = int(self._get("PayloadSize")) if self._has("PayloadSize") else 0
        self._slot_bytes = max(width * height * bpp, payload)
        self._shm = shared_memory.SharedMemory(
            create=True, size=_HEADER + self._slot_bytes * self._n_slots
        )
        self.shared_memory_names.append(self._shm.name)
        self._consumed = np.ndarray((1,), np.int64, self._shm.buf, offset=0)
        self._consumed[0] = 0
        flush = self._trigger.mode == "hardware"
        try:
            self.flushed_buffers = int(
                self._call("start", self._shm.name, self._n_slots, self._slot_bytes, flush)
            )
        except BaseException:
            self._release_shm()
            raise
        if self.flushed_buffers:
            log.info("%s: flushed %d stale buffer(s)", self.name, self.flushed_buffers)

    def _do_stop(self) -> None:
        try:
            self.incomplete_buffers += int(self._call("stop") or 0)
            # drain headers still queued, freeing their slots, up to the child's "stopped" mark
            deadline = time.monotonic() + self._command_timeout_s
            while time.monotonic() < deadline and self._events.poll(0.5):
                if self._events.recv()[0] == "stopped":
                    break
        finally:
            self._release_shm()

    def _do_get_frame(self, timeout_s: float) -> Frame:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                ready = self._events.poll(max(remaining, 0.0))
                msg = self._events.recv() if ready else None
            except (EOFError, OSError) as err:
                raise DeviceError(f"{self.name}: the grab process has gone away") from err
            if msg is None:
                raise DeviceTimeoutError(
                    f"{self.name}: no frame within {timeout_s:.3g} s "
                    f"(trigger mode {self.trigger.mode}); check the trigger wiring and exposure"
                )
            kind = msg[0]
            if kind == "frame":
                _, seq, slot, frame_id, dev_ts, host_ts, shape, dtype = msg
                offset = _HEADER + slot * self._slot_bytes
                view = np.ndarray(shape, np.dtype(dtype), self._shm.buf, offset=offset)
                data = view.copy()
                del view
                self._consumed[0] = seq + 1  # frees the slot for the grab process
                return Frame(frame_id, host_ts, data, dev_ts, {"seq": seq})
            if kind == "overrun":
                self.overruns += msg[1]
                log.warning("%s: ring buffer full, %d frame(s) dropped", self.name, msg[1])
            elif kind == "error":
                raise DeviceError(f"{self.name}: grab process failed: {msg[1]}")
