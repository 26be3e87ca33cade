"""Pattern and trigger controller: the API, its data types and the base class.

The controller (an RP2040 running ``hardware/firmware/``) decides which illumination pattern each
camera frame sees. :class:`PatternController` holds the public API: its methods validate, clamp
and log, then call ``_do_*`` methods that a subclass implements.
:class:`~scope.devices.serial_controller.SerialPatternController` implements them over the line
protocol of ``hardware/PROTOCOL.md`` with pyserial.

The port name ``sim://`` (and only it) selects the emulator: the firmware's own state machine
with simulated hardware, served on a real pseudo-terminal (:mod:`scope.devices.emulator`). A real
port that does not answer raises :class:`~scope.errors.DeviceTimeoutError`; there is no fallback.

API for the acquisition engine
------------------------------
::

    with SerialPatternController("sim://", timeout_s=1.0) as ctrl:   # or "/dev/ttyACM0"
        ctrl.info, ctrl.capabilities            # identity, limits (filled by connect())
        ctrl.set_mode(TriggerMode.LEADER)       # LEADER: controller triggers the camera
        ctrl.set_timing(exposure_ms=5, dark_ms=1)   # FOLLOWER: camera's exposure output advances
        ctrl.set_channels(0b01)                 # light channels strobed during exposures
        ctrl.set_watchdog(500)                  # light off + FAULT after 500 ms host silence
        checksum = ctrl.upload_sequence([0, 1, 2, 3, 4, 5, 6, 7, 8])   # pattern per frame
        ctrl.add_event_callback(fn)             # fn(ControllerEvent), called in the reader thread
        ctrl.arm(n_frames=90)                   # 0 = until stop(); counts reset here
        ... start the camera in external-trigger mode, flush its stale buffers ...
        ctrl.start()
        ev = ctrl.wait_for_event({"DONE", "FAULT"}, timeout_s=...)  # counts from this arm()
        counts = ctrl.stop()                    # RunCounts(pulses, advances, overruns)
    # leaving the block always sends SAFE (light off) and closes the port

- Frame ``k`` of a run (0-based) shows pattern ``sequence[k % len(sequence)]``; in leader mode
  the pattern switches only after the previous exposure has ended, then the controller waits
  ``dark_ms`` (settling, camera read-out) before the next trigger pulse; the trigger is high and
  the light on for ``exposure_ms``. Use the camera's trigger-width exposure mode, or set the
  camera's exposure to ``exposure_ms``.
- Events carry no request id. ``FRAME`` (``pulse``, ``pattern_index``, ``t_us``: controller clock
  at exposure start) for every exposure unless ``set_frame_events(False)``; ``DONE`` (``counts``)
  when a finite run completes; ``FAULT`` (``fault``, ``counts``: the light is already off);
  ``READY`` after the board (re)booted; ``DISCONNECTED`` (host side) when the port went away.
  Events also go to the bounded queue :attr:`PatternController.events`.
- ``pulses`` counts trigger pulses (= frames exposed), ``advances`` pattern switches,
  ``overruns`` frames whose timing slipped by more than ``capabilities.timing_tolerance_us``
  (leader) or exposures that began before the pattern had settled (follower). Reconcile
  ``pulses`` with the camera's frame ids.
- :meth:`PatternController.wait_for_event` also sees events that arrived since the last
  :meth:`~PatternController.arm` (``since_s`` to choose), so a fast run's ``DONE`` is not missed.
- :meth:`PatternController.clock_us` reads the controller clock (map ``t_us`` to host time).
- A fault latched in an earlier session (``status().state == "FAULT"``) refuses ``arm()`` until
  :meth:`~PatternController.clear_fault`; ``connect()`` logs a warning about it.
- While a run is armed or running (or the alignment light is on) a keep-alive thread pings the
  controller at a quarter of the watchdog period, so the watchdog fires only when this process
  stops (or the cable is pulled).
- Errors: :class:`~scope.errors.DeviceTimeoutError` (no reply), :class:`ControllerCommandError`
  (``ERR`` reply, ``.code``), :class:`~scope.errors.ProtocolError` (not our protocol or another
  major version), :class:`~scope.errors.DeviceError` (port gone), and
  :class:`~scope.errors.ConfigurationError` for values the public methods refuse.
- Simulated microscope: with ``sim://``, :attr:`SerialPatternController.emulator` is the
  :class:`~scope.devices.emulator.ControllerEmulator`; append a callable
  ``f(pulse_count, pattern_index, t_start_s, exposure_s)`` to
  ``ctrl.emulator.hardware.on_trigger`` to learn which pattern each exposure saw;
  ``emulator.hardware.trigger_log`` / ``switch_log`` record the pins.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from scope.devices.protocol import (
    EventLine,
)
from scope.errors import (
    ConfigurationError,
    DeviceError,
    DeviceTimeoutError,
    ProtocolError,
)

log = logging.getLogger(__name__)

SIM_PORT = "sim://"


class TriggerMode(StrEnum):
    """Who times the exposures."""

    #: the controller triggers the camera and switches patterns between exposures
    LEADER = "leader"
    #: the camera's exposure-active output gates the light and advances the pattern
    FOLLOWER = "follower"


@dataclass(frozen=True)
class ControllerInfo:
    """Identity from the ``HELLO`` handshake."""

    name: str
    firmware_version: str
    protocol_version: tuple[int, int]
    board: str
    port: str


@dataclass(frozen=True)
class ControllerCapabilities:
    """Limits from ``CAPS``."""

    n_patterns: int
    max_sequence: int
    max_chunk: int
    light_channels: int
    trigger_outputs: int
    trigger_inputs: int
    min_dwell_us: int
    min_exposure_us: int
    max_exposure_us: int
    max_dark_us: int
    timing_tolerance_us: int
    watchdog_min_ms: int
    watchdog_max_ms: int

    @classmethod
    def from_fields(cls, f: dict[str, str]) -> ControllerCapabilities:
        try:
            return cls(
                n_patterns=int(f["patterns"]),
                max_sequence=int(f["max_seq"]),
                max_chunk=int(f["max_chunk"]),
                light_channels=int(f["channels"]),
                trigger_outputs=int(f["trig_out"]),
                trigger_inputs=int(f["trig_in"]),
                min_dwell_us=int(f["min_dwell_us"]),
                min_exposure_us=int(f["min_exposure_us"]),
                max_exposure_us=int(f["max_exposure_us"]),
                max_dark_us=int(f["max_dark_us"]),
                timing_tolerance_us=int(f["timing_tol_us"]),
                watchdog_min_ms=int(f["wd_min_ms"]),
                watchdog_max_ms=int(f["wd_max_ms"]),
            )
        except (KeyError, ValueError) as err:
            raise ProtocolError(
                f"CAPS reply {f} lacks or garbles {err}: firmware and host disagree about the "
                "protocol; update the firmware"
            ) from err


@dataclass(frozen=True)
class RunCounts:
    """Counters of a run: trigger pulses (frames exposed), pattern advances, overruns."""

    pulses: int
    advances: int
    overruns: int

    @classmethod
    def from_fields(cls, f: dict[str, str]) -> RunCounts:
        try:
            return cls(int(f["pulses"]), int(f["advances"]), int(f["overruns"]))
        except (KeyError, ValueError) as err:
            raise ProtocolError(f"expected pulses/advances/overruns counts, got {f}") from err


@dataclass(frozen=True)
class ControllerStatus:
    """Answer to ``STATUS``."""

    state: str
    mode: TriggerMode
    fault: str
    light_mask: int
    pattern_index: int
    sequence_length: int
    sequence_committed: bool
    frames: int
    exposure_us: int
    dark_us: int
    channels: int
    watchdog_ms: int
    frame_events: bool
    counts: RunCounts
    t_us: int

    @classmethod
    def from_fields(cls, f: dict[str, str]) -> ControllerStatus:
        try:
            return cls(
                state=f["state"],
                mode=TriggerMode(f["mode"].lower()),
                fault=f["fault"],
                light_mask=int(f["light"]),
                pattern_index=int(f["pattern"]),
                sequence_length=int(f["seq_len"]),
                sequence_committed=f["committed"] == "1",
                frames=int(f["frames"]),
                exposure_us=int(f["exposure_us"]),
                dark_us=int(f["dark_us"]),
                channels=int(f["channels"]),
                watchdog_ms=int(f["wd_ms"]),
                frame_events=f["events"] == "1",
                counts=RunCounts.from_fields(f),
                t_us=int(f["t_us"]),
            )
        except (KeyError, ValueError) as err:
            raise ProtocolError(f"STATUS reply {f} lacks or garbles {err}") from err


@dataclass(frozen=True)
class ControllerEvent:
    """An asynchronous event (no request id).

    ``kind`` is ``"FRAME"``, ``"DONE"``, ``"FAULT"``, ``"READY"`` or (made on the host)
    ``"DISCONNECTED"``. ``host_time_s`` is ``time.monotonic()`` when the line arrived.
    """

    kind: str
    host_time_s: float
    pulse: int | None = None
    pattern_index: int | None = None
    t_us: int | None = None
    counts: RunCounts | None = None
    fault: str | None = None
    raw: str = ""

    @classmethod
    def from_line(cls, ev: EventLine, host_time_s: float) -> ControllerEvent:
        f = ev.fields
        counts = None
        if {"pulses", "advances", "overruns"} <= f.keys():
            counts = RunCounts.from_fields(f)

        def num(key: str) -> int | None:
            try:
                return int(f[key]) if key in f else None
            except ValueError:
                return None

        return cls(
            kind=ev.kind,
            host_time_s=host_time_s,
            pulse=num("n"),
            pattern_index=num("idx"),
            t_us=num("t_us"),
            counts=counts,
            fault=f.get("code"),
            raw=ev.raw,
        )


class ControllerCommandError(DeviceError):
    """The controller refused a command (an ``ERR`` reply); ``code`` says why."""

    def __init__(self, message: str, *, code: int, command: str) -> None:
        super().__init__(message)
        self.code = code
        self.command = command


EventCallback = Callable[[ControllerEvent], None]


class PatternController:
    """Base class: the public API validates and logs, subclasses implement ``_do_*``.

    Construction does no I/O; :meth:`connect` opens the device, :meth:`close` (or leaving a
    ``with`` block) sends SAFE and releases it.
    """

    #: events kept in :attr:`events` before the oldest are dropped
    EVENT_QUEUE_SIZE = 65536

    def __init__(self) -> None:
        self.info: ControllerInfo | None = None
        self.capabilities: ControllerCapabilities | None = None
        self.events: queue.Queue[ControllerEvent] = queue.Queue(maxsize=self.EVENT_QUEUE_SIZE)
        self._callbacks: list[EventCallback] = []
        self._cb_lock = threading.Lock()
        self._connected = False
        self._active = False  # armed/running or the alignment light on: keep the host alive
        self._dropped_events = 0
        self._recent: deque[ControllerEvent] = deque(maxlen=1024)
        self._armed_at_s = 0.0

    # ------------------------------------------------------------------ lifecycle
    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self) -> PatternController:
        """Open the device, check its protocol version and read its capabilities."""
        if self._connected:
            return self
        info, caps = self._do_connect()
        self.info, self.capabilities = info, caps
        self._connected = True
        log.info(
            "connected to %s %s (firmware %s, protocol %d.%d) on %s",
            info.name,
            info.board,
            info.firmware_version,
            *info.protocol_version,
            info.port,
        )
        return self

    def close(self) -> None:
        """Turn the light off (SAFE) and release the device; safe to call twice."""
        if not self._connected:
            self._do_close()
            return
        try:
            self.safe()
        except Exception as err:
            log.error(
                "could not send SAFE before closing (%s); the controller's watchdog turns the "
                "light off by itself",
                err,
            )
        finally:
            self._active = False
            self._connected = False
            self._do_close()
            log.info("controller closed")

    def __enter__(self) -> PatternController:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _caps(self) -> ControllerCapabilities:
        if not self._connected or self.capabilities is None:
            raise DeviceError("the controller is not connected: call connect() first")
        return self.capabilities

    # ------------------------------------------------------------------ configuration
    def set_mode(self, mode: TriggerMode | str) -> None:
        """Leader (the controller triggers the camera) or follower (the camera's exposure
        output advances the pattern)."""
        self._caps()
        try:
            mode = TriggerMode(mode.lower() if isinstance(mode, str) else mode)
        except ValueError as err:
            raise ConfigurationError(
                f"trigger mode must be 'leader' or 'follower', got {mode!r}"
            ) from err
        log.debug("controller mode %s", mode.value)
        self._do_set_mode(mode)

    def set_timing(self, *, exposure_ms: float, dark_ms: float) -> tuple[int, int]:
        """Exposure (trigger high, light on) and dark time (pattern settling, read-out) per
        frame in leader mode. Returns the programmed ``(exposure_us, dark_us)``."""
        caps = self._caps()
        exposure_us = _to_us(exposure_ms, "exposure_ms")
        dark_us = _to_us(dark_ms, "dark_ms")
        if not caps.min_exposure_us <= exposure_us <= caps.max_exposure_us:
            raise ConfigurationError(
                f"exposure {exposure_ms} ms is outside the controller's range "
                f"{caps.min_exposure_us / 1000}..{caps.max_exposure_us / 1000} ms"
            )
        if not caps.min_dwell_us <= dark_us <= caps.max_dark_us:
            raise ConfigurationError(
                f"dark time {dark_ms} ms is outside {caps.min_dwell_us / 1000}.."
                f"{caps.max_dark_us / 1000} ms (the minimum is the pattern settling time)"
            )
        log.debug("controller timing exposure %d us, dark %d us", exposure_us, dark_us)
        self._do_set_timing(exposure_us, dark_us)
        return exposure_us, dark_us

    def set_channels(self, mask: int) -> None:
        """Light channels (bit mask) switched on during exposures."""
        caps = self._caps()
        mask = _as_int(mask, "channel mask")
        if not 1 <= mask < (1 << caps.light_channels):
            raise ConfigurationError(
                f"channel mask {mask} must select 1 to {caps.light_channels} channels "
                f"(1..{(1 << caps.light_channels) - 1})"
            )
        self._do_set_channels(mask)

    def set_watchdog(self, timeout_ms: int) -> None:
        """Light off and FAULT when the host is silent this long while a run is armed/running
        or the alignment light is on."""
        caps = self._caps()
        timeout_ms = _as_int(timeout_ms, "watchdog timeout_ms")
        if not caps.watchdog_min_ms <= timeout_ms <= caps.watchdog_max_ms:
            raise ConfigurationError(
                f"watchdog timeout {timeout_ms} ms outside {caps.watchdog_min_ms}.."
                f"{caps.watchdog_max_ms} ms"
            )
        self._do_set_watchdog(timeout_ms)

    def set_frame_events(self, enabled: bool) -> None:
        """Send a FRAME event per exposure (on by default)."""
        self._caps()
        self._do_set_frame_events(bool(enabled))

    def upload_sequence(self, indices: Sequence[int]) -> int:
        """Upload the pattern index of each frame (in chunks, verified by checksum).

        Returns
        -------
        int
            The checksum both sides agreed on.
        """
        caps = self._caps()
        values = [_as_int(i, "pattern index") for i in indices]
        if not 1 <= len(values) <= caps.max_sequence:
            raise ConfigurationError(
                f"a sequence needs 1..{caps.max_sequence} entries, got {len(values)}"
            )
        bad = [i for i in values if not 0 <= i < caps.n_patterns]
        if bad:
            raise ConfigurationError(
                f"pattern indices {bad[:5]} outside 0..{caps.n_patterns - 1} "
                "(the patterns the illuminator holds)"
            )
        checksum = self._do_upload_sequence(values)
        log.info("uploaded a sequence of %d patterns (checksum %d)", len(values), checksum)
        return checksum

    def read_sequence(self) -> list[int]:
        """Read the committed sequence back from the controller."""
        self._caps()
        return self._do_read_sequence()

    # ------------------------------------------------------------------ runs
    def arm(self, n_frames: int = 0) -> None:
        """Prepare a run of ``n_frames`` frames (0: until :meth:`stop`); resets the counts."""
        self._caps()
        n_frames = _as_int(n_frames, "n_frames")
        if n_frames < 0:
            raise ConfigurationError(f"n_frames must be >= 0 (0 = until stop), got {n_frames}")
        self._active = True
        self._armed_at_s = time.monotonic()
        try:
            self._do_arm(n_frames)
        except BaseException:
            self._active = False
            raise
        log.info("controller armed for %s frames", n_frames or "unlimited")

    def start(self) -> int:
        """Start the armed run; returns the controller clock (µs) at the start."""
        self._caps()
        t_us = self._do_start()
        log.info("controller run started at t=%d us", t_us)
        return t_us

    def stop(self) -> RunCounts:
        """End the run (light off); returns its counts."""
        self._caps()
        try:
            counts = self._do_stop()
        finally:
            self._active = False
        log.info("controller stopped: %s", counts)
        return counts

    def safe(self) -> RunCounts:
        """All light off, any run ended (works in every state, FAULT included)."""
        self._caps()
        try:
            counts = self._do_safe()
        finally:
            self._active = False
        log.info("controller safe: %s", counts)
        return counts

    def clear_fault(self) -> None:
        """Clear a latched fault (the controller returns to IDLE)."""
        self._caps()
        self._do_clear_fault()

    # ------------------------------------------------------------------ queries and manual use
    def status(self) -> ControllerStatus:
        self._caps()
        return self._do_status()

    def clock_us(self) -> int:
        """The controller's clock, µs since it booted."""
        self._caps()
        return self._do_clock_us()

    def ping(self) -> None:
        self._caps()
        self._do_ping()

    def show_pattern(self, index: int) -> None:
        """Show one pattern while idle (alignment)."""
        caps = self._caps()
        index = _as_int(index, "pattern index")
        if not 0 <= index < caps.n_patterns:
            raise ConfigurationError(f"pattern index {index} outside 0..{caps.n_patterns - 1}")
        self._do_show_pattern(index)

    def set_light(self, mask: int) -> None:
        """Switch light channels on while idle (alignment); 0 turns them off. The watchdog
        applies: the keep-alive thread holds it off while this process lives."""
        caps = self._caps()
        mask = _as_int(mask, "light mask")
        if not 0 <= mask < (1 << caps.light_channels):
            raise ConfigurationError(
                f"light mask {mask} outside 0..{(1 << caps.light_channels) - 1}"
            )
        if mask:
            self._active = True
        try:
            self._do_set_light(mask)
        finally:
            if not mask:
                self._active = False

    # ------------------------------------------------------------------ events
    def add_event_callback(self, callback: EventCallback) -> None:
        """Call ``callback(event)`` for every event, in the reader thread (keep it short)."""
        with self._cb_lock:
            self._callbacks.append(callback)

    def remove_event_callback(self, callback: EventCallback) -> None:
        with self._cb_lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def wait_for_event(
        self, kinds: str | Iterable[str], timeout_s: float, *, since_s: float | None = None
    ) -> ControllerEvent:
        """The first event of one of ``kinds`` that arrived at or after ``since_s``
        (``time.monotonic()``; default: the last :meth:`arm`), waiting up to ``timeout_s``.

        Raises :class:`~scope.errors.DeviceTimeoutError` after ``timeout_s`` and
        :class:`~scope.errors.DeviceError` when the port goes away meanwhile.
        """
        wanted = {kinds} if isinstance(kinds, str) else set(kinds)
        since = self._armed_at_s if since_s is None else since_s
        box: queue.Queue[ControllerEvent] = queue.Queue()

        def catch(ev: ControllerEvent) -> None:
            if ev.kind in wanted or ev.kind == "DISCONNECTED":
                box.put(ev)

        with self._cb_lock:  # scan the recent events and subscribe atomically
            for ev in self._recent:
                if ev.host_time_s >= since:
                    catch(ev)
            self._callbacks.append(catch)
        try:
            ev = box.get(timeout=timeout_s)
        except queue.Empty as err:
            raise DeviceTimeoutError(
                f"no {'/'.join(sorted(wanted))} event from the controller within {timeout_s} s"
            ) from err
        finally:
            self.remove_event_callback(catch)
        if ev.kind == "DISCONNECTED" and "DISCONNECTED" not in wanted:
            raise DeviceError(f"the controller disconnected while waiting for {wanted}")
        return ev

    def _emit_event(self, ev: ControllerEvent) -> None:
        if ev.kind in ("DONE", "FAULT", "DISCONNECTED", "READY"):
            self._active = False
        if ev.kind == "FAULT":
            log.warning("controller fault %s (light off): %s", ev.fault, ev.counts)
        while True:
            try:
                self.events.put_nowait(ev)
                break
            except queue.Full:
                try:
                    self.events.get_nowait()
                    self._dropped_events += 1
                except queue.Empty:
                    pass
        with self._cb_lock:
            self._recent.append(ev)
            callbacks = list(self._callbacks)
        for cb in callbacks:
            try:
                cb(ev)
            except Exception:
                log.exception("controller event callback %r failed", cb)

    # ------------------------------------------------------------------ for subclasses
    def _do_connect(self) -> tuple[ControllerInfo, ControllerCapabilities]:
        raise NotImplementedError

    def _do_close(self) -> None:
        raise NotImplementedError

    def _do_set_mode(self, mode: TriggerMode) -> None:
        raise NotImplementedError

    def _do_set_timing(self, exposure_us: int, dark_us: int) -> None:
        raise NotImplementedError

    def _do_set_channels(self, mask: int) -> None:
        raise NotImplementedError

    def _do_set_watchdog(self, timeout_ms: int) -> None:
        raise NotImplementedError

    def _do_set_frame_events(self, enabled: bool) -> None:
        raise NotImplementedError

    def _do_upload_sequence(self, indices: list[int]) -> int:
        raise NotImplementedError

    def _do_read_sequence(self) -> list[int]:
        raise NotImplementedError

    def _do_arm(self, n_frames: int) -> None:
        raise NotImplementedError

    def _do_start(self) -> int:
        raise NotImplementedError

    def _do_stop(self) -> RunCounts:
        raise NotImplementedError

    def _do_safe(self) -> RunCounts:
        raise NotImplementedError

    def _do_clear_fault(self) -> None:
        raise NotImplementedError

    def _do_status(self) -> ControllerStatus:
        raise NotImplementedError

    def _do_clock_us(self) -> int:
        raise NotImplementedError

    def _do_ping(self) -> None:
        raise NotImplementedError

    def _do_show_pattern(self, index: int) -> None:
        raise NotImplementedError

    def _do_set_light(self, mask: int) -> None:
        raise NotImplementedError


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not float(value).is_integer():
        raise ConfigurationError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _to_us(ms: float, name: str) -> int:
    value = float(ms)
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number of milliseconds, got {ms!r}")
    return round(value * 1000.0)
