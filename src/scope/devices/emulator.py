"""Emulator of the pattern controller, served on a real pseudo-terminal.

The emulator runs the firmware's own state machine (``hardware/firmware/pattern_core.py``, the
module the RP2040 runs under MicroPython) with a simulated hardware layer, in a thread that
serves the master side of a pseudo-terminal. :attr:`ControllerEmulator.port` is the slave side:
a real tty path that pyserial (or a person with ``picocom``) opens like any serial port.

The simulated hardware keeps a log of what the board's pins did: every pattern switch and every
camera trigger pulse (exposure start and end, the pattern shown, the light channels on), so tests
can prove that no pattern changes during an exposure. A simulated camera learns which pattern
each exposure saw through :attr:`SimulatedHardware.on_trigger` callbacks.

The emulator is only ever used when asked for: ``SerialPatternController("sim://")`` or by
passing :attr:`ControllerEmulator.port` explicitly.

Examples
--------
>>> from scope.devices.emulator import ControllerEmulator
>>> with ControllerEmulator() as emu:  # doctest: +SKIP
...     emu.hardware.on_trigger.append(lambda n, idx, t, exp: print(n, idx))
...     print(emu.port)  # e.g. /dev/pts/7
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import select
import sys
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from scope.errors import ConfigurationError, DeviceError
from scope.resources import repository_folder

log = logging.getLogger(__name__)

_CORE_MODULE: ModuleType | None = None
_CORE_LOCK = threading.Lock()


def firmware_dir() -> Path:
    """Folder of the firmware sources: ``$SCOPE_FIRMWARE_DIR``, else ``hardware/firmware`` of
    the source checkout, else the copy a wheel carries (:mod:`scope.resources`)."""
    env = os.environ.get("SCOPE_FIRMWARE_DIR")
    if env:
        return Path(env)
    return repository_folder("hardware/firmware")


def load_firmware_core() -> ModuleType:
    """Import the firmware's state machine (``pattern_core.py``) from :func:`firmware_dir`."""
    global _CORE_MODULE
    with _CORE_LOCK:
        if _CORE_MODULE is not None:
            return _CORE_MODULE
        path = firmware_dir() / "pattern_core.py"
        if not path.is_file():
            raise ConfigurationError(
                f"the controller emulator runs the firmware in {path}, which does not exist: "
                "set SCOPE_FIRMWARE_DIR to a folder holding pattern_core.py (hardware/firmware "
                "of the scope repository), or reinstall scope-sim"
            )
        spec = importlib.util.spec_from_file_location("scope_firmware_pattern_core", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        _CORE_MODULE = module
        return module


@dataclass
class TriggerRecord:
    """One camera trigger pulse as the simulated board drove it.

    ``pulse`` counts rising edges of the trigger output as the hardware saw them (independently
    of the firmware's counters). Times are seconds on the emulator's clock
    (``time.monotonic()`` unless another clock was given).
    """

    pulse: int
    pattern_index: int
    t_start_s: float
    t_end_s: float | None = None
    light_mask: int = 0


@dataclass(frozen=True)
class PatternSwitch:
    """The pattern output changed to ``pattern_index`` at ``t_s``; ``during_exposure`` is True
    when the trigger output was high at that moment (which must never happen)."""

    t_s: float
    pattern_index: int
    during_exposure: bool = False


#: on_trigger(pulse_count, pattern_index, t_start_s, exposure_s)
TriggerCallback = Callable[[int, int, float, float], None]
#: on_exposure_end(pulse_count, pattern_index, t_start_s, t_end_s)
ExposureEndCallback = Callable[[int, int, float, float], None]


class SimulatedHardware:
    """The board's pins and clock, simulated: the hardware layer the firmware core drives.

    Parameters
    ----------
    n_patterns : int
        Patterns the illuminator holds (pattern indices 0..n_patterns-1).
    n_channels : int
        Light channels (bits of the light mask).
    min_dwell_us : int
        Settling time of a pattern switch; the shortest dark time.
    min_exposure_us : int
        Shortest exposure the board times.
    timing_tol_us : int
        Lateness of a step beyond which a frame counts as an overrun. A Python thread on a busy
        machine is late by up to milliseconds, so this is larger than on the board.
    clock : callable, optional
        Seconds, monotonic (default ``time.monotonic``).

    Attributes
    ----------
    on_trigger : list of callables
        Called as ``f(pulse_count, pattern_index, t_start_s, exposure_s)`` when an exposure
        starts (in the emulator's thread: keep it short, e.g. put into a queue). ``exposure_s``
        is the programmed exposure in leader mode and the duration announced to
        :meth:`camera_exposure` in follower mode (NaN if unknown).
    on_exposure_end : list of callables
        Called as ``f(pulse_count, pattern_index, t_start_s, t_end_s)`` when it ends.
    trigger_log, switch_log : list
        :class:`TriggerRecord` per pulse and :class:`PatternSwitch` per pattern change.
    """

    BOARD = "emulator"

    def __init__(
        self,
        *,
        n_patterns: int = 64,
        n_channels: int = 2,
        min_dwell_us: int = 200,
        min_exposure_us: int = 100,
        timing_tol_us: int = 2000,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.N_PATTERNS = int(n_patterns)
        self.N_CHANNELS = int(n_channels)
        self.MIN_DWELL_US = int(min_dwell_us)
        self.MIN_EXPOSURE_US = int(min_exposure_us)
        self.TIMING_TOL_US = int(timing_tol_us)
        self._clock = clock or time.monotonic
        self.light = 0
        self.trigger = False
        self.pattern = -1
        self.trigger_log: list[TriggerRecord] = []
        self.switch_log: list[PatternSwitch] = []
        self.light_log: list[tuple[float, int]] = []
        self.on_trigger: list[TriggerCallback] = []
        self.on_exposure_end: list[ExposureEndCallback] = []
        self.output: Callable[[bytes], None] = lambda data: None
        self.nominal_exposure_s: Callable[[], float] = lambda: float("nan")
        self._edges: deque[tuple[bool, int]] = deque(maxlen=64)  # the board's ring holds 64
        self._follower_exposure_s = float("nan")
        self.wake: Callable[[], None] = lambda: None
        #: when the firmware last read its clock (:meth:`ticks_us`), in seconds of ``clock``
        self.last_reading_s: float | None = None

    # --- the interface the firmware core drives
    def ticks_us(self) -> int:
        """The firmware reads its clock (the time is kept: see :meth:`set_trigger`)."""
        self.last_reading_s = self._clock()
        return int(self.last_reading_s * 1e6)

    def since_reading_us(self) -> float:
        """Microseconds since the firmware last read its clock (0 before its first reading)."""
        if self.last_reading_s is None:
            return 0.0
        return (self._clock() - self.last_reading_s) * 1e6

    @staticmethod
    def ticks_diff(a: int, b: int) -> int:
        return a - b

    def write(self, data: bytes) -> None:
        self.output(data)

    def set_pattern(self, index: int) -> None:
        self.pattern = int(index)
        self.switch_log.append(PatternSwitch(self._clock(), self.pattern, self.trigger))

    def set_trigger(self, level: bool) -> None:
        # The edge is dated at the firmware's last clock reading (every step of the core reads
        # it first): on the board the pin follows within microseconds, while this thread can
        # lose the interpreter or the CPU in between, on a loaded computer for milliseconds.
        # A camera triggered at the later pin time would expose later than the board reports
        # (a late frame), or, the board's next step coming on its schedule, inside the
        # previous exposure + readout, where the camera misses it.
        t = self.last_reading_s if self.last_reading_s is not None else self._clock()
        if level and not self.trigger:
            rec = TriggerRecord(len(self.trigger_log) + 1, self.pattern, t, None, self.light)
            self.trigger_log.append(rec)
            self.trigger = True
            exposure = self.nominal_exposure_s()
            for cb in list(self.on_trigger):
                self._call(cb, rec.pulse, rec.pattern_index, t, exposure)
        elif not level and self.trigger:
            self.trigger = False
            rec = self.trigger_log[-1]
            rec.t_end_s = t
            for cb in list(self.on_exposure_end):
                self._call(cb, rec.pulse, rec.pattern_index, rec.t_start_s, t)

    def set_light(self, mask: int) -> None:
        if mask != self.light:
            self.light = int(mask)
            self.light_log.append((self._clock(), self.light))
            if self.trigger and self.trigger_log:
                self.trigger_log[-1].light_mask |= self.light

    def exposure_edges_pending(self) -> bool:
        """Whether camera exposure edges wait for the firmware."""
        return bool(self._edges)

    def read_exposure_edges(self) -> list[tuple[bool, int]]:
        out = []
        while self._edges:
            out.append(self._edges.popleft())
        return out

    def enter_repl(self) -> bool:
        return False

    # --- the simulated camera's side
    def camera_exposure(
        self, active: bool, exposure_s: float = float("nan"), t_s: float | None = None
    ) -> None:
        """Drive the camera's exposure-active line (follower mode): a rising edge when
        ``active`` becomes true, a falling edge when it becomes false.

        ``t_s`` is when the line changed (``clock`` seconds; default: now). The board latches
        the time of an edge in its interrupt handler; a camera thread that is held up before
        it gets here passes the time of its exposure edge instead.
        """
        if active:
            self._follower_exposure_s = exposure_s
        t = self._clock() if t_s is None else t_s
        self._edges.append((bool(active), int(t * 1e6)))
        self.wake()

    @staticmethod
    def _call(cb: Callable[..., Any], *args: Any) -> None:
        try:
            cb(*args)
        except Exception:  # a subscriber's bug must not stop the board
            log.exception("trigger callback %r failed", cb)

    def exposures_with_pattern_change(self) -> list[tuple[TriggerRecord, PatternSwitch]]:
        """Every (exposure, switch) pair where the pattern changed inside an exposure: while the
        trigger was high, or at a time strictly between its start and end."""
        bad = []
        for sw in self.switch_log:
            if sw.during_exposure:
                rec = next(
                    (r for r in reversed(self.trigger_log) if r.t_start_s <= sw.t_s),
                    self.trigger_log[-1],
                )
                bad.append((rec, sw))
        for rec in self.trigger_log:
            end = rec.t_end_s if rec.t_end_s is not None else float("inf")
            bad.extend((rec, sw) for sw in self.switch_log if rec.t_start_s < sw.t_s < end)
        return bad


class ControllerEmulator:
    """The firmware state machine with simulated hardware, served on a pseudo-terminal.

    Parameters
    ----------
    protocol_version : (int, int), optional
        Protocol version the emulated firmware claims (to test version handling).
    **hardware_options
        Passed to :class:`SimulatedHardware` (``n_patterns``, ``n_channels``, ``min_dwell_us``,
        ``min_exposure_us``, ``timing_tol_us``, ``clock``).

    Attributes
    ----------
    port : str
        The pseudo-terminal's slave path (valid after :meth:`start`).
    hardware : SimulatedHardware
    core : the firmware's ``PatternCore``
    """

    def __init__(
        self, *, protocol_version: tuple[int, int] | None = None, **hardware_options: Any
    ) -> None:
        self._fw = load_firmware_core()
        self.hardware = SimulatedHardware(**hardware_options)
        self._protocol_version = protocol_version
        self._lock = threading.RLock()
        self._master: int | None = None
        self._slave: int | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.port = ""
        self.dropped_bytes = 0
        self.crashed: BaseException | None = None
        self.hardware.output = self._write
        self.hardware.wake = self._wake
        self.core = self._new_core()

    def _new_core(self) -> Any:
        core = self._fw.PatternCore(self.hardware)
        if self._protocol_version is not None:
            core.proto_major, core.proto_minor = self._protocol_version

        def nominal() -> float:
            if core.mode == self._fw.LEADER:
                return core.exposure_us * 1e-6
            return self.hardware._follower_exposure_s

        self.hardware.nominal_exposure_s = nominal
        return core

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ControllerEmulator:
        """Open the pseudo-terminal and start serving it."""
        if self._thread is not None:
            return self
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: bytes pass unchanged
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._serve, name=f"controller-emulator {self.port}", daemon=True
        )
        self._thread.start()
        log.info("controller emulator serving %s", self.port)
        return self

    def close(self) -> None:
        """Stop serving and close the pseudo-terminal (the light goes off first)."""
        if self._thread is None:
            return
        with self._lock:
            self.core._end_run()
        self._stop.set()
        self._wake()
        self._thread.join(timeout=2.0)
        self._thread = None
        self._close_pty()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_r = self._wake_w = -1

    def unplug(self) -> None:
        """Pull the cable: the port goes away, but the board keeps running (and its watchdog
        keeps watching)."""
        with self._lock:
            self._close_pty()
        self._wake()

    def power_cycle(self) -> None:
        """Reset the board: a fresh state machine (all state lost, light off)."""
        with self._lock:
            self.hardware.set_light(0)
            self.hardware.set_trigger(False)
            self.core = self._new_core()

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Simulate a board that stops answering: the firmware does nothing inside the block
        (bytes sent meanwhile are processed, late, after it)."""
        with self._lock:
            yield

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def __enter__(self) -> ControllerEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        """True while the serving thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ inspection
    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of the firmware's state and the pins."""
        with self._lock:
            c = self.core
            return {
                "state": c.state,
                "mode": c.mode,
                "fault": c.fault,
                "light": c.light,
                "pin_light": self.hardware.light,
                "pin_trigger": self.hardware.trigger,
                "pattern": self.hardware.pattern,
                "pulses": c.pulses,
                "advances": c.advances,
                "overruns": c.overruns,
                "lines_in": c.lines_in,
                "n_triggers": len(self.hardware.trigger_log),
            }

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float) -> bool:
        """Wait until ``predicate(snapshot())`` holds; False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.002)
        return predicate(self.snapshot())

    def run_camera(self, n_frames: int, *, exposure_s: float, period_s: float) -> threading.Thread:
        """A free-running simulated camera driving the exposure-active input (follower mode)."""
        if period_s <= exposure_s:
            raise ConfigurationError(
                f"camera period {period_s} s must exceed its exposure {exposure_s} s"
            )

        def shoot() -> None:
            t0 = time.monotonic()
            for k in range(n_frames):
                _sleep_until(t0 + k * period_s)
                self.hardware.camera_exposure(True, exposure_s)
                _sleep_until(t0 + k * period_s + exposure_s)
                self.hardware.camera_exposure(False)

        th = threading.Thread(target=shoot, name="simulated camera", daemon=True)
        th.start()
        return th

    # ------------------------------------------------------------------ serving
    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def _write(self, data: bytes) -> None:
        fd = self._master
        if fd is None:
            self.dropped_bytes += len(data)
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                # nobody reads: drop rather than block the board (USB CDC drops too)
                self.dropped_bytes += len(view)
                return
            except OSError:
                self.dropped_bytes += len(view)
                return
            view = view[n:]

    def settle(self, timeout_s: float = 0.05) -> bool:
        """Wait until the board has handled every camera exposure edge sent to it (as real
        firmware does within microseconds; this thread may lag behind under load). Returns
        False when it did not within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:  # a poll in progress finishes first
                if not self.hardware.exposure_edges_pending():
                    return True
            if time.monotonic() > deadline:
                return False
            self.hardware.wake()
            time.sleep(0.0002)

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                timeout = 0.01
                with self._lock:
                    deadline = self.core.next_deadline_us()
                    if deadline is not None:
                        # remaining time on the core's clock (µs since its boot)
                        elapsed_us = self.hardware.since_reading_us()
                        remaining = deadline - self.core.now_us - elapsed_us
                        timeout = min(timeout, max(0.0, remaining * 1e-6))
                fds = [self._wake_r]
                master = self._master
                if master is not None:
                    fds.append(master)
                try:
                    ready, _, _ = select.select(fds, [], [], timeout)
                except (OSError, ValueError):
                    ready = []
                    time.sleep(0.001)
                data = b""
                if self._wake_r in ready:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                if master is not None and master in ready:
                    with self._lock:  # unplug() closes the fd under this lock
                        try:
                            data = os.read(master, 4096) if self._master == master else b""
                        except BlockingIOError:
                            data = b""
                        except OSError:
                            data = b""  # EIO: no slave side open at the moment
                    if not data:
                        time.sleep(0.001)
                with self._lock:
                    if data:
                        self.core.feed(data)
                    self.core.poll()
        except BaseException as err:  # recorded for the tests: the emulator must never crash
            self.crashed = err
            log.exception("controller emulator crashed")
            with contextlib.suppress(Exception):
                self.hardware.set_light(0)
            raise


def _sleep_until(t: float) -> None:
    dt = t - time.monotonic()
    if dt > 0:
        time.sleep(dt)


def open_emulator(**options: Any) -> ControllerEmulator:
    """Start an emulator (a convenience for ``sim://`` ports)."""
    emu = ControllerEmulator(**options)
    try:
        return emu.start()
    except OSError as err:
        raise DeviceError(f"could not open a pseudo-terminal for the emulator: {err}") from err
