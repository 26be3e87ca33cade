"""The pattern controller on a serial port: :class:`SerialPatternController` and a probe.

Implements :class:`~scope.devices.controller.PatternController` over the line protocol of
``hardware/PROTOCOL.md`` with pyserial: one reader thread parses replies and events, one
request is in flight per port, a keep-alive thread feeds the controller's watchdog while a run
is armed. ``sim://`` serves the emulated firmware on a pseudo-terminal
(:mod:`scope.devices.emulator`). The API and its conventions are described in
:mod:`scope.devices.controller`.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from typing import Any

from scope.devices.controller import (
    SIM_PORT,
    ControllerCapabilities,
    ControllerCommandError,
    ControllerEvent,
    ControllerInfo,
    ControllerStatus,
    PatternController,
    RunCounts,
    TriggerMode,
)
from scope.devices.protocol import (
    PROTOCOL_VERSION,
    ErrorCode,
    Reply,
    chunk_sequence,
    encode_request,
    parse_line,
    parse_version,
    sequence_checksum,
)
from scope.errors import (
    ConfigurationError,
    DeviceError,
    DeviceTimeoutError,
    ProtocolError,
)

log = logging.getLogger(__name__)


class _Pending:
    """The one request in flight on a port."""

    def __init__(self, request_id: str, command: str) -> None:
        self.request_id = request_id
        self.command = command
        self.done = threading.Event()
        self.reply: Reply | None = None
        self.error: BaseException | None = None


# ports opened by a controller of this process (one request in flight per port)
_PORTS_IN_USE: set[str] = set()
_PORTS_LOCK = threading.Lock()


class SerialPatternController(PatternController):
    """The pattern controller on a serial port (USB CDC), or the emulator with ``sim://``.

    Parameters
    ----------
    port : str
        Serial port (``/dev/ttyACM0``, ``COM3``) or ``"sim://"`` for the emulator.
    timeout_s : float
        How long to wait for each reply.
    baudrate : int
        Ignored by USB CDC devices, used by UART bridges.
    keepalive : bool
        Ping the controller while a run is armed/running so its watchdog holds off.
    emulator_options : dict, optional
        Options of :class:`~scope.devices.emulator.ControllerEmulator` for ``sim://``.

    Examples
    --------
    >>> with SerialPatternController("sim://") as ctrl:  # doctest: +SKIP
    ...     ctrl.upload_sequence(range(9))
    """

    def __init__(
        self,
        port: str,
        *,
        timeout_s: float = 1.0,
        baudrate: int = 115200,
        keepalive: bool = True,
        emulator_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(port, str) or not port:
            raise ConfigurationError(f"port must be a serial port name or 'sim://', got {port!r}")
        if "://" in port and port != SIM_PORT:
            raise ConfigurationError(
                f"unknown port {port!r}: use a serial device (/dev/ttyACM0, COM3) or "
                f"{SIM_PORT!r} for the emulator"
            )
        if not timeout_s > 0:
            raise ConfigurationError(f"timeout_s must be positive, got {timeout_s}")
        self.port = port
        self.timeout_s = float(timeout_s)
        self.baudrate = int(baudrate)
        self.keepalive = keepalive
        self.emulator_options = dict(emulator_options or {})
        self.emulator: Any = None  # ControllerEmulator for sim://
        self._serial: Any = None
        self._path = ""
        self._reader: threading.Thread | None = None
        self._keeper: threading.Thread | None = None
        self._closing = threading.Event()
        self._req_lock = threading.Lock()
        self._pending: _Pending | None = None
        self._pending_lock = threading.Lock()
        self._next_id = 0
        self._lost: DeviceError | None = None
        self._watchdog_ms = 1000
        self.stale_lines = 0

    # ------------------------------------------------------------------ connection
    def _do_connect(self) -> tuple[ControllerInfo, ControllerCapabilities]:
        import serial

        path = self.port
        if self.port == SIM_PORT:
            from scope.devices.emulator import open_emulator

            self.emulator = open_emulator(**self.emulator_options)
            path = self.emulator.port
        with _PORTS_LOCK:
            if path in _PORTS_IN_USE:
                raise DeviceError(
                    f"{path} is already open by another controller in this process: close it "
                    "first (one request in flight per port)"
                )
            _PORTS_IN_USE.add(path)
        self._path = path
        self._closing.clear()
        self._lost = None
        try:
            try:
                self._serial = serial.Serial(
                    path,
                    baudrate=self.baudrate,
                    timeout=0.05,
                    write_timeout=self.timeout_s,
                    exclusive=True,
                )
            except (serial.SerialException, OSError, ValueError) as err:
                if "lock" in str(err).lower() or getattr(err, "errno", None) in (
                    errno.EAGAIN,
                    errno.EBUSY,
                ):
                    raise DeviceError(
                        f"the controller port {path} is held by another program (another "
                        "`scope acquire`, the napari live view, picocom, mpremote ...): close "
                        f"it, or wait for it to finish, then try again ({err})"
                    ) from err
                raise DeviceError(
                    f"cannot open the controller port {path}: {err}. Check the cable and the "
                    f"port name (ls /dev/ttyACM*), or use {SIM_PORT!r} for the emulator"
                ) from err
            # stale input: drop what is buffered and end any half line the board holds (it
            # answers that with an ERR whose id matches nothing, which the reader drops)
            self._serial.reset_input_buffer()
            self._serial.write(b"\n")
            self._reader = threading.Thread(
                target=self._read_loop, name=f"controller reader {path}", daemon=True
            )
            self._reader.start()
            info = self._handshake()
            caps = ControllerCapabilities.from_fields(self._request("CAPS"))
            status = ControllerStatus.from_fields(self._request("STATUS"))
            self._watchdog_ms = status.watchdog_ms
            if status.state in ("ARMED", "RUNNING"):
                log.warning(
                    "controller on %s was %s from an earlier session: stopping it", path, status
                )
                self._request("SAFE")
            elif status.state == "FAULT":
                log.warning(
                    "controller on %s reports a latched fault %s from an earlier session (the "
                    "light is off); it refuses runs until cleared: scope acquire --controller "
                    "%s --clear-fault (Python: clear_fault())",
                    path,
                    status.fault,
                    self.port,
                )
            if self.keepalive:
                self._keeper = threading.Thread(
                    target=self._keep_alive, name=f"controller keep-alive {path}", daemon=True
                )
                self._keeper.start()
            return info, caps
        except BaseException:
            self._do_close()
            raise

    def _handshake(self) -> ControllerInfo:
        major, minor = PROTOCOL_VERSION
        try:
            f = self._request("HELLO", f"{major}.{minor}")
        except DeviceTimeoutError as err:
            raise DeviceTimeoutError(
                f"{self.port} did not answer HELLO within {self.timeout_s} s: it is not a scope "
                "pattern controller, or its firmware is not running (hardware/firmware/"
                f"README.md). The emulator is used only when asked for with {SIM_PORT!r}"
            ) from err
        except ControllerCommandError as err:
            if err.code == ErrorCode.VERSION_MISMATCH:
                raise ProtocolError(
                    f"the controller on {self.port} refused protocol {major}.{minor}: {err}"
                ) from err
            raise
        try:
            version = parse_version(f["proto"])
            info = ControllerInfo(
                name=f["name"],
                firmware_version=f["fw"],
                protocol_version=version,
                board=f.get("board", "?"),
                port=self._path,
            )
        except KeyError as err:
            raise ProtocolError(
                f"HELLO reply {f} lacks {err}: {self.port} is not a scope pattern controller"
            ) from err
        if version[0] != major:
            raise ProtocolError(
                f"the controller on {self.port} speaks protocol {version[0]}.{version[1]} "
                f"(firmware {info.firmware_version}); this host speaks {major}.{minor}. "
                + (
                    "Update scope on the host."
                    if version[0] > major
                    else "Flash the firmware from hardware/firmware/ (README.md there)."
                )
            )
        return info

    def _do_close(self) -> None:
        self._closing.set()
        ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except Exception as err:  # closing a vanished port
                log.debug("closing %s: %s", self._path, err)
        for th in (self._reader, self._keeper):
            if th is not None and th is not threading.current_thread():
                th.join(timeout=2.0)
        self._reader = self._keeper = None
        with _PORTS_LOCK:
            _PORTS_IN_USE.discard(self._path)
        if self.emulator is not None:
            self.emulator.close()
            self.emulator = None

    # ------------------------------------------------------------------ requests
    def _request(self, command: str, *args: object, timeout_s: float | None = None) -> dict:
        """Send one request and wait for its reply (one request in flight per port)."""
        import serial

        timeout = self.timeout_s if timeout_s is None else timeout_s
        with self._req_lock:
            if self._lost is not None:
                raise DeviceError(f"controller on {self.port} is gone: {self._lost}")
            ser = self._serial
            if ser is None:
                raise DeviceError("the controller is not connected: call connect() first")
            self._next_id = self._next_id % 999_999 + 1
            pending = _Pending(str(self._next_id), command)
            line = encode_request(self._next_id, command, *args)
            with self._pending_lock:
                self._pending = pending
            try:
                ser.write(line)
            except (serial.SerialException, OSError) as err:
                self._pending = None
                raise DeviceError(
                    f"writing to the controller on {self.port} failed: {err}"
                ) from err
            ok = pending.done.wait(timeout)
            with self._pending_lock:
                self._pending = None
        if not ok:
            raise DeviceTimeoutError(
                f"no reply to {command} from the controller on {self.port} within {timeout} s"
            )
        if pending.error is not None:
            raise DeviceError(
                f"the controller on {self.port} went away during {command}: {pending.error}"
            ) from pending.error
        reply = pending.reply
        assert reply is not None
        if not reply.ok:
            raise ControllerCommandError(
                f"controller refused {command} {' '.join(map(str, args))}: "
                f"error {reply.code} {reply.message}",
                code=int(reply.code or 0),
                command=command,
            )
        return reply.fields

    def _read_loop(self) -> None:
        import serial

        buf = bytearray()
        while not self._closing.is_set():
            ser = self._serial
            if ser is None:
                break
            try:
                chunk = ser.read(max(1, ser.in_waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError) as err:
                if self._closing.is_set():
                    break
                self._port_lost(err)
                break
            if not chunk:
                continue
            buf += chunk
            while True:
                cut = min((i for i in (buf.find(b"\n"), buf.find(b"\r")) if i >= 0), default=-1)
                if cut < 0:
                    break
                line = bytes(buf[:cut])
                del buf[: cut + 1]
                self._handle_line(line)
            if len(buf) > 4096:
                log.warning("dropping %d bytes without a line end from %s", len(buf), self.port)
                buf.clear()

    def _handle_line(self, line: bytes) -> None:
        try:
            msg = parse_line(line)
        except ProtocolError as err:
            self.stale_lines += 1
            log.warning("ignoring a line from the controller: %s", err)
            return
        if msg is None:
            return
        if isinstance(msg, Reply):
            with self._pending_lock:
                pending = self._pending
                if pending is not None and pending.request_id == msg.request_id:
                    pending.reply = msg
                    pending.done.set()
                    return
            self.stale_lines += 1
            log.debug("dropping a stale reply %r", msg.raw)
            return
        self._emit_event(ControllerEvent.from_line(msg, time.monotonic()))

    def _port_lost(self, err: BaseException) -> None:
        self._lost = DeviceError(f"{type(err).__name__}: {err}")
        log.error("lost the controller on %s: %s", self.port, err)
        with self._pending_lock:
            if self._pending is not None:
                self._pending.error = err
                self._pending.done.set()
        self._emit_event(ControllerEvent("DISCONNECTED", time.monotonic(), raw=str(err)))

    def _keep_alive(self) -> None:
        while not self._closing.wait(max(0.01, self._watchdog_ms / 4000.0)):
            if not self._active or self._lost is not None:
                continue
            if not self._req_lock.acquire(blocking=False):
                continue  # a request is in flight: the controller hears from us anyway
            self._req_lock.release()
            try:
                self._request("PING")
            except DeviceError as err:
                log.warning("keep-alive ping failed: %s", err)

    # ------------------------------------------------------------------ _do_* over the protocol
    def _do_set_mode(self, mode: TriggerMode) -> None:
        self._request("MODE", mode.value.upper())

    def _do_set_timing(self, exposure_us: int, dark_us: int) -> None:
        self._request("TIMING", exposure_us, dark_us)

    def _do_set_channels(self, mask: int) -> None:
        self._request("CHANNELS", mask)

    def _do_set_watchdog(self, timeout_ms: int) -> None:
        self._request("WDOG", timeout_ms)
        self._watchdog_ms = timeout_ms

    def _do_set_frame_events(self, enabled: bool) -> None:
        self._request("EVENTS", int(enabled))

    def _do_upload_sequence(self, indices: list[int]) -> int:
        caps = self._caps()
        self._request("SEQ", "BEGIN", len(indices))
        for off, part in chunk_sequence(indices, caps.max_chunk):
            self._request("SEQ", "DATA", off, ",".join(map(str, part)))
        checksum = sequence_checksum(indices)
        f = self._request("SEQ", "END", checksum)
        if int(f.get("n", -1)) != len(indices):
            raise ProtocolError(f"controller committed {f.get('n')} entries, sent {len(indices)}")
        return checksum

    def _do_read_sequence(self) -> list[int]:
        caps = self._caps()
        n = self._do_status().sequence_length
        out: list[int] = []
        while len(out) < n:
            f = self._request("SEQ", "GET", len(out), min(caps.max_chunk, n - len(out)))
            data = f.get("data", "")
            part = [int(t) for t in data.split(",") if t]
            if not part:
                raise ProtocolError(f"SEQ GET returned no data at offset {len(out)}")
            out.extend(part)
        return out

    def _do_arm(self, n_frames: int) -> None:
        self._request("ARM", n_frames)

    def _do_start(self) -> int:
        return int(self._request("START").get("t_us", 0))

    def _do_stop(self) -> RunCounts:
        return RunCounts.from_fields(self._request("STOP"))

    def _do_safe(self) -> RunCounts:
        return RunCounts.from_fields(self._request("SAFE"))

    def _do_clear_fault(self) -> None:
        self._request("CLEAR")

    def _do_status(self) -> ControllerStatus:
        return ControllerStatus.from_fields(self._request("STATUS"))

    def _do_clock_us(self) -> int:
        return int(self._request("CLOCK")["t_us"])

    def _do_ping(self) -> None:
        self._request("PING")

    def _do_show_pattern(self, index: int) -> None:
        self._request("PATTERN", index)

    def _do_set_light(self, mask: int) -> None:
        self._request("LIGHT", mask)


def probe_controller(port: str, timeout_s: float = 1.0) -> dict | None:
    """Identity, version and capabilities of a pattern controller on ``port``, or None.

    Used by ``scope devices``. Returns None when nothing that speaks the protocol answers
    (no port, another device, a busy port); raises nothing of its own.
    """
    ctrl = SerialPatternController(port, timeout_s=timeout_s, keepalive=False)
    try:
        ctrl.connect()
    except (DeviceError, ConfigurationError) as err:
        log.info("no pattern controller on %s: %s", port, err)
        return None
    try:
        assert ctrl.info is not None
        assert ctrl.capabilities is not None
        caps = ctrl.capabilities
        return {
            "port": port,
            "name": ctrl.info.name,
            "firmware_version": ctrl.info.firmware_version,
            "protocol_version": "{}.{}".format(*ctrl.info.protocol_version),
            "board": ctrl.info.board,
            "capabilities": {k: getattr(caps, k) for k in caps.__dataclass_fields__},
        }
    finally:
        ctrl.close()
