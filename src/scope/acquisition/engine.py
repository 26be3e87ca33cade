"""Synchronised SIM acquisition: every frame tied to its pattern, nothing lost.

The controller leads: it shows the pattern of each frame, then raises its trigger output, which
starts the camera's exposure (hardware trigger); the pattern changes only between exposures. For
every pulse the controller sends a ``FRAME`` event (pulse count, pattern index, its own clock);
the camera delivers frames with its own frame counter and timestamps. The engine

1. writes every frame to disk the moment it arrives (:class:`AcquisitionWriter`), untagged;
2. maps the controller clock onto the host clock (the smallest ``arrival - t_us`` seen, bounded
   by a ``CLOCK`` query bracketed by host times: both are upper bounds of the offset);
3. pairs each frame with the pulse nearest in time (within ``match_tolerance_ms``) — a frame with
   no pulse, or a second frame for one pulse, is an **extra** frame; a pulse with no frame is a
   **dropped** frame;
4. closes a SIM set (``n_angles * n_phases`` consecutive pulses) once no later frame can belong
   to it, and verifies it: every pulse exactly one frame, no extra frame within the set's time
   span, consecutive camera frame ids (a gap means the camera exposed a frame we never got),
   every frame within ``timing_tolerance_ms`` of its pulse (a late trigger integrates across a
   pattern switch), each pulse's pattern index equal to the sequence entry of its slot, and no
   exposure under way when the light went off before the run's end (``STOP`` and ``SAFE``
   darken at once: such a frame is lit only in part, ``cut_exposures``);
5. tags the frames (set, angle, phase, pattern, camera frame id, controller count, timestamp,
   valid) in the file's frame table; hands **only verified sets** to consumers; an invalid set
   is logged with its reason and the next set starts afresh from the controller's count
   (resynchronisation: set membership comes from pulse counts, not from frame order).

Before anything is written, every setting is checked against the devices (the camera's pixel
format, the controller's exposure and dark-time range, its pattern count, a fault latched in an
earlier session) and the controller is programmed; the file is written under a hidden name until
its first frame is on disk (:class:`AcquisitionWriter` ``staged``), so a run that cannot start
leaves no empty file behind and never replaces an earlier run.

On any error, ``stop()``, or Ctrl-C: the controller gets SAFE (light off; if the link is gone the
firmware's watchdog darkens it), the camera stops, the file is closed in a readable state with
``state = "aborted"`` and the reason, and the reason is logged. While that cleanup runs in the
main thread, further interrupts (a second Ctrl-C, SIGTERM) wait until it is done.

Software-triggered fallback (``trigger="software"``, for cameras without a trigger input): the
host shows each pattern (``PATTERN``), waits ``dark_ms`` for it to settle, turns the light on,
triggers the camera by software and waits for the frame; the pulses are then the host's own
triggers, reconciled the same way. It is slower and its timing is the host's.

Live consumers: :meth:`AcquisitionEngine.subscribe` returns a bounded queue that receives
``(set_index, frames (n, Y, X), metadata)`` for every verified set (``None`` at the end); a full
queue drops its oldest entry rather than block the engine. :meth:`add_callback` calls a function
in the engine thread instead (keep it short).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from scope.acquisition.writer import AcquisitionWriter, FrameTag, output_format
from scope.errors import (
    AcquisitionError,
    ConfigurationError,
    DeviceError,
    DeviceTimeoutError,
    ScopeError,
)
from scope.sim.spectral import separable_without

log = logging.getLogger(__name__)

#: ``CLOCK`` queries before a run, for the host-controller clock offset (the best is kept)
_CLOCK_QUERIES = 5
#: after its exposure, a frame's readout and transfer to the host take at most this long
_READOUT_MARGIN_S = 0.1

SetCallback = Callable[[int, np.ndarray, dict[str, Any]], None]
#: ``fn(frame_index, data)``: a frame just written to disk
FrameCallback = Callable[[int, np.ndarray], None]
#: ``fn(slot, frame_index, data)``: a frame paired with its controller pulse; ``slot`` is its
#: position in the set (``0 .. frames_per_set - 1``)
SlotCallback = Callable[[int, int, np.ndarray], None]


@dataclass
class AcquisitionConfig:
    """Settings of a run (times in ms).

    Attributes
    ----------
    n_sets : int or None
        SIM sets to acquire; None = until :meth:`AcquisitionEngine.stop`.
    n_angles, n_phases : int
        Frames per set = ``n_angles * n_phases``, angle-major, phase fastest.
    pattern_indices : list of int, optional
        Illuminator pattern shown in each slot of a set (default ``0 .. n-1``).
    exposure_ms, dark_ms : float
        Trigger-high (light-on) time and the gap between exposures (pattern settling + camera
        readout); the frame period is their sum.
    trigger : {"hardware", "follower", "software"}
        ``hardware``: leader mode, the controller triggers each exposure. ``follower``: the
        camera free-runs at ``1000 / period_ms`` Hz and its exposure-active output advances the
        controller (frames after the run's last counted exposure are written, tagged invalid
        and counted as ``frames_after_run``). ``software``: the host-triggered fallback.
    trigger_line, trigger_edge : str
        Camera input wired to the controller's trigger output.
    light_channels : int
        Bit mask of light channels strobed during exposures.
    watchdog_ms : int
        The controller turns the light off when the host is silent this long.
    match_tolerance_ms : float, optional
        Largest |frame time - pulse time| for pairing (default 40 % of the period).
    timing_tolerance_ms : float, optional
        Largest |frame time - pulse time| for a frame to count as on time (default: the
        smaller of 25 % of the exposure and the match tolerance, at least 0.3 ms).
    frame_delay_ms : float, optional
        Frame timestamp minus pulse time for an on-time frame: 0 for cameras that stamp the
        exposure start (simulated, most GenICam), ``exposure + readout`` for cameras that only
        give arrival times (UVC). Default: from the frame's ``info["timestamp"]``.
    frame_timeout_s : float
        No frame for this long while pulses go out: the camera is declared lost. In follower
        mode also: frames for this long without an exposure event from the controller (the
        camera's exposure output does not reach the controller).
    grace_s : float
        How long after a set's last pulse a late frame may still arrive (counted from the
        camera's latest frame instead while it is still delivering older frames, i.e. behind).
    """

    n_sets: int | None = 10
    n_angles: int = 3
    n_phases: int = 3
    pattern_indices: list[int] | None = None
    exposure_ms: float = 5.0
    dark_ms: float = 1.0
    trigger: Literal["hardware", "follower", "software"] = "hardware"
    trigger_line: str = "Line0"
    trigger_edge: Literal["rising", "falling"] = "rising"
    light_channels: int = 1
    watchdog_ms: int = 500
    match_tolerance_ms: float | None = None
    timing_tolerance_ms: float | None = None
    frame_delay_ms: float | None = None
    frame_timeout_s: float = 2.0
    grace_s: float = 0.25

    def __post_init__(self) -> None:
        if self.n_sets is not None and self.n_sets < 1:
            raise ConfigurationError(
                f"n_sets must be >= 1 (or None = until stopped), got {self.n_sets}"
            )
        if self.n_angles < 1 or self.n_phases < 3:
            raise ConfigurationError(
                f"need >= 1 angle and >= 3 phases, got {self.n_angles} x {self.n_phases}"
            )
        if self.trigger not in ("hardware", "follower", "software"):
            raise ConfigurationError(
                f"trigger must be 'hardware', 'follower' or 'software', got {self.trigger!r}"
            )
        if self.pattern_indices is not None and len(self.pattern_indices) != self.frames_per_set:
            raise ConfigurationError(
                f"pattern_indices has {len(self.pattern_indices)} entries for "
                f"{self.frames_per_set} frames per set"
            )
        if not (self.exposure_ms > 0 and self.dark_ms > 0):
            raise ConfigurationError("exposure_ms and dark_ms must be positive")

    @property
    def frames_per_set(self) -> int:
        return self.n_angles * self.n_phases

    @property
    def period_ms(self) -> float:
        return self.exposure_ms + self.dark_ms

    @property
    def sequence(self) -> list[int]:
        return list(self.pattern_indices or range(self.frames_per_set))

    def match_tol_s(self) -> float:
        ms = (
            self.match_tolerance_ms if self.match_tolerance_ms is not None else 0.4 * self.period_ms
        )
        return ms / 1000.0

    def timing_tol_s(self) -> float:
        if self.timing_tolerance_ms is not None:
            return self.timing_tolerance_ms / 1000.0
        return min(max(0.25 * self.exposure_ms, 0.3), self.match_tol_s() * 1000) / 1000.0


@dataclass
class SetReport:
    """Verdict on one SIM set."""

    index: int
    valid: bool
    reasons: list[str] = field(default_factory=list)


@dataclass
class AcquisitionSummary:
    """What a run did; ``state`` is ``complete`` or ``aborted`` (then ``reason``)."""

    path: str
    state: str = "acquiring"
    reason: str = ""
    frames_written: int = 0
    pulses: int = 0
    sets_valid: int = 0
    sets_invalid: int = 0
    dropped_pulses: list[int] = field(default_factory=list)  # controller counts without a frame
    extra_frames: list[int] = field(default_factory=list)  # camera frame ids without a pulse
    frames_after_run: int = 0  # follower mode: free-running frames after the last exposure
    late_frames: list[int] = field(default_factory=list)  # camera frame ids off their pulse
    frame_id_gaps: int = 0
    controller_counts: dict[str, int] | None = None
    #: the controller's timing tolerance (its ``CAPS``): a step later than this is an overrun
    controller_timing_tolerance_us: int | None = None
    invalid_sets: dict[int, list[str]] = field(default_factory=dict)
    #: invalid sets whose only faults are frames missing, unusable (the camera dropped them,
    #: exposed them off their pulse, or the end of the run cut their exposure short) or extra:
    #: their other frames are kept (``valid`` 2) when a reconstruction can do without the
    #: faulty ones (:func:`~scope.sim.spectral.separable_without`), and a reconstruction of
    #: the file leaves those out
    sets_without_dropped_frames: list[int] = field(default_factory=list)
    #: controller counts of exposures under way when the light went off (``STOP``, ``SAFE``,
    #: a fault): lit only in part, their frames are kept on disk but out of their sets
    cut_exposures: list[int] = field(default_factory=list)
    consumer_drops: int = 0
    #: frames with values at the camera's full scale (bright structures clipped), and the
    #: largest share of such values in one frame
    clipped_frames: int = 0
    clipped_share_max: float = 0.0
    duration_s: float = 0.0


@dataclass
class _Pulse:
    count: int
    pattern: int
    t_us: int | None
    host_s: float  # arrival on the host
    t_s: float = math.nan  # exposure start on the host clock (mapped)
    frames: list[int] = field(default_factory=list)  # arrival indices


@dataclass
class _Frame:
    index: int  # arrival index = row in the file
    frame_id: int
    t_s: float
    data: np.ndarray
    pulse: int | None = None  # controller count it was paired with
    resolved: bool = False


class AcquisitionEngine:
    """Runs synchronised SIM acquisition (see the module docstring).

    Parameters
    ----------
    camera : Camera
        Connected camera.
    controller : PatternController
        Connected controller (``SerialPatternController``; ``sim://`` for the emulator).
    output : path
        ``run.zarr`` (OME-Zarr) or ``run.ome.tif`` (OME-TIFF).
    config : AcquisitionConfig
    setup : OpticalSetup, optional
        Stored in the file's metadata.
    params : SIMParameters, optional
        Nominal pattern parameters (stored; the reconstruction's prior).
    overwrite : bool

    Examples
    --------
    >>> from scope.devices.simulated_microscope import SimulatedMicroscope
    >>> with SimulatedMicroscope((64, 64)) as m:  # doctest: +SKIP
    ...     engine = AcquisitionEngine(m.camera, m.controller, "run.zarr",
    ...                                AcquisitionConfig(n_sets=5, exposure_ms=2, dark_ms=1))
    ...     summary = engine.run()
    """

    def __init__(
        self,
        camera: Any,
        controller: Any,
        output: str | Path,
        config: AcquisitionConfig | None = None,
        *,
        setup: Any = None,
        params: Any = None,
        overwrite: bool = False,
    ) -> None:
        self.camera = camera
        self.controller = controller
        self.output = Path(output)
        output_format(self.output)  # .zarr or .ome.tif, refused before anything starts
        self.config = config or AcquisitionConfig()
        self.setup = setup
        self.params = params
        self.overwrite = overwrite
        self.summary = AcquisitionSummary(str(self.output))
        self._stop = threading.Event()
        self._subscribers: list[queue.Queue[Any]] = []
        self._callbacks: list[SetCallback] = []
        self._frame_callbacks: list[FrameCallback] = []
        self._slot_callbacks: list[SlotCallback] = []
        self._callback_failures: dict[int, int] = {}
        self._events: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.writer: AcquisitionWriter | None = None
        self._full_scale: float | None = None  # the camera's, once it is set up
        self.reports: list[SetReport] = []

    # -- consumers -------------------------------------------------------------------------
    def subscribe(self, maxsize: int = 8) -> queue.Queue[Any]:
        """A queue receiving ``(set_index, frames, metadata)`` per verified set, ``None`` at the
        end. When it is full the oldest entry is dropped (the engine never waits)."""
        q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._subscribers.append(q)
        return q

    def add_callback(self, fn: SetCallback) -> None:
        """Call ``fn(set_index, frames, metadata)`` in the engine thread per verified set."""
        self._callbacks.append(fn)

    def add_frame_callback(self, fn: FrameCallback) -> None:
        """Call ``fn(frame_index, data)`` in the engine thread for every frame, as soon as it is
        on disk (before it is paired or verified: for rolling displays). Must be short."""
        self._frame_callbacks.append(fn)

    def add_slot_callback(self, fn: SlotCallback) -> None:
        """Call ``fn(slot, frame_index, data)`` in the engine thread once a frame is paired with
        its controller pulse; ``slot`` is the frame's position in the SIM set, known before
        the set is complete (for a rolling SIM display). Must be short."""
        self._slot_callbacks.append(fn)

    def _call(self, callbacks: list[Any], *args: Any) -> None:
        # a consumer's failure never stops the acquisition; it is logged with its traceback
        # the first time, then counted (a broken display must not flood the log per frame)
        for fn in callbacks:
            try:
                fn(*args)
            except Exception:
                n = self._callback_failures.get(id(fn), 0) + 1
                self._callback_failures[id(fn)] = n
                if n == 1:
                    log.exception("callback %r failed (the acquisition goes on)", fn)
                elif n % 1000 == 0:
                    log.warning("callback %r has failed %d times", fn, n)

    def _publish(self, item: Any) -> None:
        for q in self._subscribers:
            while True:
                try:
                    q.put_nowait(item)
                    break
                except queue.Full:
                    with contextlib.suppress(queue.Empty):
                        q.get_nowait()
                        self.summary.consumer_drops += 1
        if item is not None:
            self._call(self._callbacks, *item)

    # -- control ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask a running acquisition to end after the current set (thread-safe)."""
        self._stop.set()

    def start(self) -> None:
        """Run in a background thread; :meth:`wait` for the summary."""
        self._thread = threading.Thread(target=self._run_catching, name="acquisition", daemon=True)
        self._thread.start()

    def _run_catching(self) -> None:
        try:
            self.run()
        except BaseException as err:
            self._error = err

    def wait(self, timeout_s: float | None = None) -> AcquisitionSummary:
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise DeviceTimeoutError(f"acquisition still running after {timeout_s} s")
        if self._error is not None:
            raise self._error
        return self.summary

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> AcquisitionSummary:
        """Acquire (blocking). Raises :class:`AcquisitionError` when the run had to abort."""
        cfg = self.config
        t_start = time.monotonic()
        reason = ""
        state = "complete"
        try:
            self._prepare()
            if cfg.trigger == "hardware":
                self._run_leader()
            elif cfg.trigger == "follower":
                self._run_leader(follower=True)
            else:
                self._run_software()
        except KeyboardInterrupt as err:
            state, reason = "aborted", str(err) or "interrupted (Ctrl-C)"
            raise
        except BaseException as err:
            state = "aborted"
            reason = str(err) if isinstance(err, ScopeError) else f"{type(err).__name__}: {err}"
            if self.writer is None and isinstance(err, ScopeError):
                raise  # refused before the run started: the error as it is, nothing written
            raise AcquisitionError(f"acquisition aborted: {reason}") from err
        finally:
            # the duration first: the summary written by _shutdown must carry it
            self.summary.duration_s = time.monotonic() - t_start
            self._shutdown(state, reason)
            self._publish(None)
        return self.summary

    def _prepare(self) -> None:
        cfg = self.config
        cam, ctrl = self.camera, self.controller
        if not cam.is_connected:
            raise DeviceError("connect the camera before acquiring")
        if not ctrl.connected:
            raise DeviceError("connect the controller before acquiring")
        self._choose_pixel_format()
        if "exposure" in cam.features:
            cam.exposure_ms = cfg.exposure_ms
        if cfg.trigger == "hardware":
            cam.set_trigger("hardware", line=cfg.trigger_line, edge=cfg.trigger_edge)
        elif cfg.trigger == "follower":
            cam.set_trigger("off")  # free-running: its exposure output drives the controller
            if "frame_rate" in cam.features:
                cam.frame_rate_hz = 1000.0 / cfg.period_ms
        else:
            cam.set_trigger("software")
        self._configure_controller()  # every setting checked before the file is touched
        shape = cam.frame_shape
        fmt = cam.pixel_format
        dtype = getattr(fmt, "dtype", np.dtype(np.uint16))
        from scope.sim.saturation import camera_full_scale  # (scope.sim is slow to import)

        self._full_scale = camera_full_scale(fmt)
        meta = {
            "acquisition": asdict(cfg),
            "sequence": cfg.sequence,
            "optical_setup": self.setup,
            "sim_parameters": _params_dict(self.params),
            "camera": {
                "name": cam.name,
                "kind": cam.kind,
                "pixel_format": str(fmt),
                # where the frames sit on the sensor (x, y, width, height): per-pixel camera
                # maps measured on the whole sensor are cut to it
                "roi": list(astuple(cam.roi)),
                "sensor_shape": list(cam.sensor_shape),
            },
            "controller": asdict(ctrl.info) if getattr(ctrl, "info", None) else {},
        }
        px = getattr(self.setup, "pixel_size_nm", None)
        self.writer = AcquisitionWriter(
            self.output, shape, dtype, metadata=meta, pixel_size_nm=px, overwrite=self.overwrite,
            staged=True,
        )  # fmt: skip
        self._pulses: dict[int, _Pulse] = {}
        self._frames: list[_Frame] = []  # unresolved frames, arrival order
        self._all_frames_by_index: dict[int, _Frame] = {}
        self._offset_s = math.inf  # host - controller clock
        self._next_set = 0
        self._last_frame_id: int | None = None
        self._last_frame_time = time.monotonic()
        self._delay_s: float | None = (
            cfg.frame_delay_ms / 1000.0 if cfg.frame_delay_ms is not None else None
        )
        self._done = False
        self._done_time = math.inf
        self._fault: str | None = None
        #: host time by which the light went off before the run's end (STOP, SAFE, a fault)
        self._light_off_s: float | None = None
        self._extra_ids: set[int] = set()  # camera frame ids of the extra frames found so far
        self._max_pulse = 0
        self._newest_frame_t = -math.inf
        self._software = False
        self._follower = cfg.trigger == "follower"
        self._last_pulse: _Pulse | None = None
        self._last_event_time = time.monotonic()  # the last FRAME event (follower check)
        self._frames_since_event = 0

    def _choose_pixel_format(self) -> None:
        """A camera delivering colour (GenICam cameras may default to RGB8/RGBa8) is switched
        to a monochrome format it offers, the deepest first; without one it is refused."""
        from scope.devices.camera import PixelFormat

        cam = self.camera
        if "pixel_format" not in cam.features:
            return
        current = cam.pixel_format
        if isinstance(current, PixelFormat) or str(current).startswith("Mono"):
            return  # monochrome (a vendor's Mono14 too)
        offered = list(cam.pixel_formats)
        mono = [f for f in PixelFormat if f.value in offered]
        if not mono:
            raise ConfigurationError(
                f"{cam.name} delivers {current} and offers only {offered}: SIM needs a "
                f"monochrome format ({', '.join(f.value for f in PixelFormat)}); set the camera "
                "to one with its vendor's tool, or use a monochrome camera"
            )
        # unpacked formats first (Mono16, 12, 10, 8), then packed ones, deepest first
        choice = max(mono, key=lambda f: (f.value[-1].isdigit(), f.bit_depth))
        log.warning("%s delivered %s (colour); switched to %s (it offers %s); choose another "
                    "with --pixel-format (camera.pixel_format)", cam.name, current, choice.value,
                    offered)  # fmt: skip
        cam.pixel_format = choice

    def _configure_controller(self) -> None:
        """Check the run against the controller (a latched fault, the patterns it holds) and
        program it (mode, timing, channels, watchdog, sequence): all before the file exists."""
        cfg, ctrl = self.config, self.controller
        status = ctrl.status()
        if status.state == "FAULT":
            raise AcquisitionError(_fault_message(ctrl, status.fault))
        caps = ctrl.capabilities
        if caps is not None:
            self.summary.controller_timing_tolerance_us = caps.timing_tolerance_us
        top = max(cfg.sequence)
        if caps is not None and top >= caps.n_patterns:
            raise ConfigurationError(
                f"{cfg.n_angles} angles x {cfg.n_phases} phases need patterns 0..{top}, but the "
                f"controller holds {caps.n_patterns} (0..{caps.n_patterns - 1}): use fewer "
                "angles or phases"
            )
        ctrl.safe()
        if cfg.trigger == "software":
            return  # the host shows each pattern itself
        from scope.devices.controller import TriggerMode

        follower = cfg.trigger == "follower"
        ctrl.set_mode(TriggerMode.FOLLOWER if follower else TriggerMode.LEADER)
        ctrl.set_timing(exposure_ms=cfg.exposure_ms, dark_ms=cfg.dark_ms)
        ctrl.set_channels(cfg.light_channels)
        ctrl.set_watchdog(cfg.watchdog_ms)
        ctrl.set_frame_events(True)
        ctrl.upload_sequence(cfg.sequence)

    # -- leader mode ------------------------------------------------------------------------------
    def _run_leader(self, follower: bool = False) -> None:
        """Leader mode (the controller triggers the camera) or, with ``follower``, the camera
        free-running and its exposure-active output advancing the controller: the controller
        reports a FRAME event per exposure either way, and frames pair with them by time."""
        cfg, cam, ctrl = self.config, self.camera, self.controller
        # (mode, timing, channels, watchdog and sequence were programmed by _prepare)
        n_frames = 0 if cfg.n_sets is None else cfg.n_sets * cfg.frames_per_set
        ctrl.add_event_callback(self._events.put)
        try:
            ctrl.arm(n_frames)
            if not follower:
                cam.start()  # hardware-triggered: stale buffers are flushed here
            self._offset_s = self._clock_offset_bound()
            ctrl.start()
            if follower:
                cam.start()  # its first exposure is the run's first (sequence[0] is shown)
            self._last_frame_time = self._last_event_time = time.monotonic()
            self._frames_since_event = 0
            stopping = False
            while True:
                if self._stop.is_set() and not stopping:
                    stopping = True
                    log.info("stop requested: ending the run")
                    self._mark_light_off()
                    counts = ctrl.stop()
                    self._done_counts(counts)
                self._drain_events()
                if self._fault:
                    raise AcquisitionError(self._fault)
                got = self._grab(timeout_s=0.02)
                if follower and not self._done:
                    self._check_exposure_events()
                self._match()
                self._close_sets(final=False)
                if follower and self._done and cam.is_running and self._past_the_run():
                    cam.stop()  # every frame of the run is in; the rest are after it
                    got = False
                if self._done and not got and self._all_frames_in():
                    break
                if not got and time.monotonic() - self._last_frame_time > cfg.frame_timeout_s:
                    if self._max_pulse or self._done:
                        raise DeviceTimeoutError(
                            f"no frame from the camera for {cfg.frame_timeout_s} s while the "
                            f"controller went on pulsing ({self._max_pulse} pulses so far): the "
                            "camera is lost or not wired to the trigger output"
                        )
                    raise DeviceTimeoutError(
                        f"no pulse from the controller and no frame for {cfg.frame_timeout_s} s"
                    )
            self._match(final=True)
            self._close_sets(final=True)
        finally:
            ctrl.remove_event_callback(self._events.put)

    def _clock_offset_bound(self) -> float:
        """Host minus controller clock, an upper bound: ``CLOCK`` queries, each bracketed by
        host times (the controller read its clock before the reply arrived), the tightest
        kept. One query on a busy host can come back milliseconds late, and FRAME events read
        as late would not improve it before the first set's frames are paired."""
        best = math.inf
        bracket = math.inf
        for _ in range(_CLOCK_QUERIES):
            h0 = time.monotonic()
            t_clock = self.controller.clock_us()
            h1 = time.monotonic()
            if h1 - t_clock * 1e-6 < best:
                best, bracket = h1 - t_clock * 1e-6, h1 - h0
        log.debug("controller clock offset <= %.6f s (bracket %.3f ms)", best, bracket * 1e3)
        return best

    def _check_exposure_events(self) -> None:
        """Follower mode: frames keep coming but the controller reports no exposure (its input
        GP14 sees no edges): abort instead of filling the disk with frames no set can use."""
        cfg = self.config
        quiet_s = time.monotonic() - self._last_event_time
        if self._frames_since_event < 3 or quiet_s <= cfg.frame_timeout_s:
            return
        raise AcquisitionError(
            f"camera frames but no exposure events from the controller: {self._frames_since_event}"
            f" frames in the last {quiet_s:.1f} s, {self._max_pulse} exposures counted by the "
            "controller in all. In follower mode the camera's exposure-active output drives the "
            "controller's GP14: check the wire from the camera's exposure output to GP14 and the "
            "common ground, that the camera puts its exposure signal on that line (Basler: "
            "LineSelector=Line2, LineSource=ExposureActive; AR0234: the FLASH pin), the 4.7 kOhm "
            "pull-up of an opto-isolated output and the level shifter of a 1.8 V one "
            "(hardware/README.md, section 4) - or use leader mode (--trigger hardware)"
        )

    def _done_counts(self, counts: Any) -> None:
        self._done = True
        self._done_time = min(self._done_time, time.monotonic())
        if counts is not None:
            self.summary.controller_counts = asdict(counts)
            # pulses whose FRAME event never arrived still count: their sets get verified
            # (and fail with "no FRAME event") instead of staying undecided
            if counts.pulses > self._max_pulse:
                log.warning("controller counted %d pulses, %d FRAME events arrived",
                            counts.pulses, self._max_pulse)  # fmt: skip
            self._max_pulse = max(self._max_pulse, counts.pulses)

    def _past_the_run(self) -> bool:
        """Follower mode after DONE: a frame newer than the last counted exposure has arrived
        (frames come in order), or the grace time is over."""
        last = self._pulse_time(self._last_pulse) if self._last_pulse is not None else math.inf
        newer = self._newest_frame_t > last + self.config.match_tol_s()
        return newer or time.monotonic() - self._done_time > self.config.grace_s

    def _all_frames_in(self) -> bool:
        """After DONE: every frame that can still come has come (grace elapsed)."""
        return time.monotonic() - max(self._done_time, self._last_frame_time) > min(
            self.config.grace_s, self.config.frame_timeout_s
        )

    def _drain_events(self) -> None:
        while True:
            try:
                ev = self._events.get_nowait()
            except queue.Empty:
                return
            if ev.kind == "FRAME" and ev.pulse is not None:
                p = _Pulse(ev.pulse, -1 if ev.pattern_index is None else ev.pattern_index,
                           ev.t_us, ev.host_time_s)  # fmt: skip
                if ev.t_us is not None:
                    self._offset_s = min(self._offset_s, ev.host_time_s - ev.t_us * 1e-6)
                self._pulses[p.count] = p
                if self._last_pulse is None or p.count > self._last_pulse.count:
                    self._last_pulse = p  # kept after its set is closed (follower mode's end)
                self._max_pulse = max(self._max_pulse, p.count)
                self.summary.pulses = self._max_pulse
                self._last_event_time = ev.host_time_s
                self._frames_since_event = 0
            elif ev.kind == "DONE":
                log.info("controller done: %s", ev.counts)
                self._done_counts(ev.counts)
            elif ev.kind in ("FAULT", "DISCONNECTED"):
                if ev.kind == "FAULT":  # the light went off (at the latest) as it was sent
                    self._mark_light_off(ev.host_time_s)
                self._fault = (
                    f"controller {ev.kind.lower()} {ev.fault or ev.raw}".strip()
                    + " (the light is off: the firmware darkens it on faults and on host silence)"
                )

    def _mark_light_off(self, t_s: float | None = None) -> None:
        """The light goes off now (``STOP``, ``SAFE``) or went off by ``t_s`` (a fault): an
        exposure under way then is lit only in part (see :meth:`_cut_short`)."""
        t = time.monotonic() if t_s is None else t_s
        if self._light_off_s is None or t < self._light_off_s:
            self._light_off_s = t

    def _cut_short(self, t_pulse_s: float) -> bool:
        """Whether the exposure that began at ``t_pulse_s`` (host time, an upper bound) may
        have been under way when the light went off before the run's end: ``STOP`` and
        ``SAFE`` darken at once (hardware/PROTOCOL.md, section 11), so such a frame is dimmer
        than its set's others. Erring on the side of calling one cut: the frame is kept on
        disk either way, only left out of its set."""
        if self._light_off_s is None:
            return False
        return t_pulse_s + self.config.exposure_ms / 1000.0 > self._light_off_s

    def _pulse_time(self, p: _Pulse) -> float:
        if p.t_us is None or not math.isfinite(self._offset_s):
            return p.host_s
        return p.t_us * 1e-6 + self._offset_s

    def _grab(self, timeout_s: float) -> bool:
        """Fetch every frame that is ready (waiting up to ``timeout_s`` for the first)."""
        got = False
        if self._follower and not self.camera.is_running:
            time.sleep(timeout_s)  # stopped after the run (follower mode): nothing more comes
            return False
        while True:
            try:
                frame = self.camera.get_frame(timeout_s=timeout_s if not got else 1e-4)
            except DeviceTimeoutError:
                return got
            got = True
            self._store(frame)

    def _store(self, frame: Any) -> None:
        assert self.writer is not None
        self._last_frame_time = time.monotonic()
        if self._delay_s is None:
            kind = frame.info.get("timestamp", "exposure_start")
            cfg = self.config
            self._delay_s = 0.0 if kind == "exposure_start" else cfg.exposure_ms / 1000.0
        tag = FrameTag(camera_frame_id=frame.frame_id, timestamp_ns=int(frame.timestamp_s * 1e9))
        # a signal cannot land between the frame on disk and its count, nor before the pairing
        # knows it (the sets it completes are verified after a Ctrl-C)
        with _critical():
            index = self.writer.append(frame.data, tag)  # on disk before anything else happens
            self.summary.frames_written = self.writer.n_frames
            if self._full_scale is not None:
                clipped = int(np.count_nonzero(frame.data >= self._full_scale))
                if clipped:
                    self.summary.clipped_frames += 1
                    share = clipped / frame.data.size
                    self.summary.clipped_share_max = max(self.summary.clipped_share_max, share)
            if self._last_frame_id is not None and frame.frame_id != self._last_frame_id + 1:
                self.summary.frame_id_gaps += 1
                log.info("camera frame id jumped %d -> %d", self._last_frame_id, frame.frame_id)
            self._last_frame_id = frame.frame_id
            self._frames_since_event += 1
            f = _Frame(index, frame.frame_id, frame.timestamp_s - self._delay_s, frame.data)
            self._newest_frame_t = max(self._newest_frame_t, f.t_s)
            self._frames.append(f)
            self._all_frames_by_index[index] = f
        self._call(self._frame_callbacks, index, frame.data)

    def _match(self, final: bool = False) -> None:
        """Pair unresolved frames with pulses (nearest in time, within the match tolerance).

        A frame no known or future pulse can claim is an extra frame: recorded, tagged invalid.
        """
        tol = self.config.match_tol_s()
        known = sorted(self._pulses)
        times = np.array([self._pulse_time(self._pulses[c]) for c in known])
        for f in self._frames:
            if known:
                k = int(np.argmin(np.abs(times - f.t_s)))
                if abs(times[k] - f.t_s) <= tol:
                    f.pulse = known[k]
                    self._pulses[known[k]].frames.append(f.index)
                    f.resolved = True
                    self._paired(f)
                    continue
            # pulses arrive in order: once one later than this frame is known, or the frame is
            # older than every pulse still open, nothing can claim it any more
            if final or (known and (f.t_s < times[-1] - tol or f.t_s < times[0] - tol)):
                f.resolved = True
                self._all_frames_by_index.pop(f.index, None)
                assert self.writer is not None
                self.writer.update(f.index, valid=0)
                if self._follower and self._done and (not known or f.t_s > times[-1] + tol):
                    self.summary.frames_after_run += 1  # free-running past the last exposure
                    continue
                self.summary.extra_frames.append(f.frame_id)
                self._extra_ids.add(f.frame_id)
                log.info("camera frame %d (t=%.4f s) matches no controller pulse: extra frame",
                         f.frame_id, f.t_s)  # fmt: skip
        self._frames = [f for f in self._frames if not f.resolved]

    def _paired(self, f: _Frame) -> None:
        if self._slot_callbacks and f.pulse is not None:
            slot = (f.pulse - 1) % self.config.frames_per_set
            self._call(self._slot_callbacks, slot, f.index, f.data)

    # -- sets ------------------------------------------------------------------------------------
    def _close_sets(self, final: bool) -> None:
        """Verify every set that no frame still on its way can change."""
        cfg = self.config
        n = cfg.frames_per_set
        tol = cfg.match_tol_s()
        while True:
            s = self._next_set
            if cfg.n_sets is not None and s >= cfg.n_sets:
                return
            counts = range(s * n + 1, s * n + n + 1)
            if final:
                if counts[0] > self._max_pulse:
                    return  # the run ended before this set began
            else:
                if self._max_pulse < counts[-1]:
                    return  # the set is not over yet
                last = self._pulses.get(counts[-1])
                if last is not None:
                    t_end = self._pulse_time(last)
                else:  # its FRAME event was lost: estimate from the pulses around it
                    period = cfg.period_ms / 1000.0
                    later = [c for c in self._pulses if c > counts[-1]]
                    known = [c for c in counts if c in self._pulses]
                    if later:
                        t_end = self._pulse_time(self._pulses[min(later)]) - period
                    elif known:
                        t_end = self._pulse_time(self._pulses[max(known)]) + period * (
                            counts[-1] - max(known)
                        )
                    else:
                        t_end = min(self._done_time, time.monotonic())
                if any(f.t_s <= t_end + tol for f in self._frames):
                    return  # a frame of this set still waits for its pulse
                newer_frame = self._newest_frame_t > t_end + tol
                # frames come in order: one newer than the set's end means none of the set's
                # is still on its way. Without one, a late frame may still come: within the
                # grace time of the set's end, and for as long as the camera keeps delivering
                # (older) frames, i.e. it is behind, not short of a frame (a camera thread, a
                # driver or a host that lags under load); a camera that went quiet does not
                # hold the verdict beyond the grace time after its last frame.
                since = time.monotonic() - max(t_end, self._last_frame_time)
                if not newer_frame and since < cfg.grace_s:
                    return
            self._finalize_set(s, counts)
            self._next_set += 1

    def _finalize_set(self, s: int, counts: range) -> None:
        cfg = self.config
        w = self.writer
        assert w is not None
        seq = cfg.sequence
        reasons: list[str] = []
        dropped = 0  # pulses whose frame never came (the set's only fault, or one of several)
        # frames of the set's pulses that cannot be used: lit only in part (the end of the run
        # cut the exposure short) or exposed off their pulse (across a pattern switch)
        unusable: set[int] = set()
        extras = 0  # pulses with a second frame (the one nearest the pulse is its member)
        members: list[_Frame | None] = []
        tol_t = cfg.timing_tol_s()
        for slot, c in enumerate(counts):
            p = self._pulses.get(c)
            if p is None:
                reasons.append(f"no FRAME event for pulse {c}")
                members.append(None)
                continue
            if p.pattern != seq[slot]:
                reasons.append(
                    f"pulse {c} showed pattern {p.pattern}, slot {slot} needs {seq[slot]}"
                )
            if not p.frames:
                reasons.append(f"pulse {c}: frame dropped")
                self.summary.dropped_pulses.append(c)
                dropped += 1
                members.append(None)
                continue
            t_pulse = self._pulse_time(p)
            # the frame nearest its pulse is the one it triggered; any other is extra
            frames = sorted(
                (self._all_frames_by_index[i] for i in p.frames), key=lambda f: abs(f.t_s - t_pulse)
            )
            if len(frames) > 1:
                ids = [f.frame_id for f in frames]
                reasons.append(f"pulse {c}: {len(frames)} frames (ids {ids}): extra frame")
                self.summary.extra_frames.extend(ids[1:])
                self._extra_ids.update(ids[1:])
                extras += 1
            f = frames[0]
            if self._cut_short(t_pulse):
                reasons.append(f"pulse {c}: exposure cut short by the end of the run (light off)")
                self.summary.cut_exposures.append(c)
                unusable.add(f.index)
                members.append(f)
                continue
            dt = f.t_s - t_pulse
            if abs(dt) > tol_t and not self._software:
                reasons.append(f"pulse {c}: frame {f.frame_id} {dt * 1e3:+.2f} ms off its pulse")
                self.summary.late_frames.append(f.frame_id)
                unusable.add(f.index)
            members.append(f)
        ids = [f.frame_id for f in members if f is not None]
        consecutive = all(b == a + 1 for a, b in itertools.pairwise(ids))
        # ids skipped between the members that no extra frame explains: frames the camera
        # exposed that never came (dropped, or the one a frame off its pulse stands in for)
        ascending = all(b > a for a, b in itertools.pairwise(ids))
        skipped = set(range(ids[0], ids[-1] + 1)) - set(ids) if ids and ascending else set()
        unexplained = len(skipped - self._extra_ids) if ascending else len(counts)
        if not consecutive:
            known = sorted(skipped & self._extra_ids)
            reasons.append(f"camera frame ids not consecutive: {ids}"
                           + (f" (extra frame {', '.join(map(str, known))} between them)"
                              if known else ""))  # fmt: skip
        valid = not reasons
        # a set whose only faults are frames missing - the camera dropped them (their ids
        # missing, no more) -, unusable (exposed off their pulse, or cut short by the end of
        # the run) or extra (a spurious trigger's frame, told apart by its time and id): its
        # other frames are verified (pattern, pulse, timing) and kept for a reconstruction
        # without the missing ones (valid = 2 in the frame table; consumers get complete,
        # verified sets only)
        # ... and only when a reconstruction can separate the orders without those frames
        missing = dropped + len(unusable)
        absent = [k for k, f in enumerate(members) if f is None or f.index in unusable]
        faults_of_frames = (
            not valid
            # (an extra frame may stand in for a frame that never came, off its pulse)
            and 0 <= unexplained <= dropped + len(unusable)
            and len(reasons) == missing + extras + (not consecutive)
        )
        keep_good_frames = faults_of_frames and separable_without(
            cfg.n_angles, cfg.n_phases, absent
        )
        if faults_of_frames and not keep_good_frames:  # say why such a set is not kept
            reasons.append(
                "not kept: too few good frames of an angle to reconstruct without the others "
                f"(slots {', '.join(map(str, absent))} lost; each angle needs 2, one needs 3)"
            )
        verdict = 1 if valid else 2 if keep_good_frames else 0
        rows: dict[str, list[int]] = {
            k: [] for k in ("i", "angle", "phase", "pattern", "count", "valid")
        }
        member_ids = {f.index for f in members if f is not None}
        for slot, c in enumerate(counts):  # tag the rows (one table write per set)
            p = self._pulses.get(c)
            for i in p.frames if p is not None else ():
                rows["i"].append(i)
                rows["angle"].append(slot // cfg.n_phases if i in member_ids else -1)
                rows["phase"].append(slot % cfg.n_phases if i in member_ids else -1)
                rows["pattern"].append(p.pattern if i in member_ids else -1)
                rows["count"].append(c if i in member_ids else -1)
                # an extra frame, or an unusable one, is never part of its set
                rows["valid"].append(verdict if i in member_ids and i not in unusable else 0)
        with _critical():  # the verdict on disk and the run's count go together
            w.update(rows["i"], set=s, angle=rows["angle"], phase=rows["phase"],
                     pattern=rows["pattern"], controller_count=rows["count"],
                     valid=rows["valid"])  # fmt: skip
            self.reports.append(SetReport(s, valid, reasons))
            if valid:
                self.summary.sets_valid += 1
            else:
                self.summary.sets_invalid += 1
                self.summary.invalid_sets[s] = reasons
                if keep_good_frames:
                    self.summary.sets_without_dropped_frames.append(s)
        if valid:
            good = [f for f in members if f is not None]
            meta = {
                "set": s,
                "camera_frame_ids": ids,
                "controller_counts": list(counts),
                "pattern_indices": [self._pulses[c].pattern for c in counts],
                "timestamps_s": [f.t_s for f in good],
                "frame_indices": [f.index for f in good],
                "published_s": time.monotonic(),
            }
            self._publish((s, np.stack([f.data for f in good]), meta))
        else:
            log.warning("set %d invalid (%s)%s; the next set starts from the controller count",
                        s, "; ".join(reasons),
                        ": its good frames are kept for a reconstruction" if keep_good_frames
                        else "")  # fmt: skip
        if ids:  # extra frames before this set's last one can explain no later set's gaps
            self._extra_ids = {i for i in self._extra_ids if i > ids[-1]}
        for c in counts:  # forget what this set used
            p = self._pulses.pop(c, None)
            for i in p.frames if p is not None else ():
                self._all_frames_by_index.pop(i, None)

    # -- software-triggered fallback ---------------------------------------------------------------
    def _run_software(self) -> None:
        cfg, cam, ctrl = self.config, self.camera, self.controller
        cam.start()
        seq = cfg.sequence
        count = 0
        s = 0
        self._offset_s = 0.0
        self._software = True  # pairing is by trigger, not by timing
        try:
            while (cfg.n_sets is None or s < cfg.n_sets) and not self._stop.is_set():
                for slot in range(cfg.frames_per_set):
                    ctrl.show_pattern(seq[slot])
                    time.sleep(cfg.dark_ms / 1000.0)  # pattern settling
                    ctrl.set_light(cfg.light_channels)
                    count += 1
                    t = time.monotonic()
                    cam.software_trigger()
                    self._pulses[count] = _Pulse(count, seq[slot], None, t, t)
                    self._max_pulse = self.summary.pulses = count
                    try:
                        frame = cam.get_frame(timeout_s=cfg.frame_timeout_s)
                    finally:
                        ctrl.set_light(0)
                    self._store(frame)
                    # the frame answering this trigger belongs to it: pair directly
                    f = self._frames.pop()
                    f.pulse, f.resolved = count, True
                    self._paired(f)
                    self._pulses[count].frames.append(f.index)
                    while True:  # anything else that arrived meanwhile is extra
                        try:
                            self._store(cam.get_frame(timeout_s=1e-3))
                        except DeviceTimeoutError:
                            break
                self._match()
                self._close_sets(final=False)
                s += 1
            self._done_counts(None)
            time.sleep(min(cfg.grace_s, 0.05))
            self._grab(timeout_s=1e-3)
            self._match(final=True)
            self._close_sets(final=True)
        finally:
            with contextlib.suppress(Exception):
                ctrl.set_light(0)

    # -- shutdown --------------------------------------------------------------------------------
    def _shutdown(self, state: str, reason: str) -> None:
        """Light off, camera stopped, file closed and readable — whatever happened (a second
        interrupt meanwhile waits until this is done)."""
        with interrupts_deferred():
            self._shut_down(state, reason)

    def _shut_down(self, state: str, reason: str) -> None:
        try:
            if not getattr(self, "_done", True):  # the run was under way: SAFE cuts it
                self._mark_light_off()
            counts = self.controller.safe()
            if self.summary.controller_counts is None:
                self.summary.controller_counts = asdict(counts)
            # routine after a complete run; after an abort (Ctrl-C, a fault) the user is told
            log.log(logging.INFO if state == "complete" else logging.WARNING,
                    "light off (SAFE sent): %s", counts)  # fmt: skip
        except Exception as err:
            log.error("could not send SAFE (%s): the controller's watchdog (%d ms) turns the "
                      "light off by itself", err, self.config.watchdog_ms)  # fmt: skip
        self._drain_camera()
        try:
            self.camera.stop()
        except Exception as err:
            log.error("stopping the camera failed: %s", err)
        if self.writer is not None and state != "complete":
            try:
                self._verify_sets_in()
            except Exception as err:
                log.error("the sets acquired before the run ended could not be verified: %s", err)
        if self.writer is not None:
            try:
                try:
                    self._mark_unfinished()
                    self.writer.set_metadata(
                        summary=asdict(self.summary) | {"state": state, "reason": reason}
                    )
                finally:  # closed even when the table or metadata could not be written
                    self.writer.close(state=state, reason=reason)
            except Exception as err:
                log.error("closing %s failed: %s", self.output, err)
        self.summary.state = state
        self.summary.reason = reason
        if state == "complete":
            log.info("acquired %d frames, %d valid / %d invalid sets -> %s",
                     self.summary.frames_written, self.summary.sets_valid,
                     self.summary.sets_invalid, self.output)  # fmt: skip
        elif self.writer is None or self.writer.discarded:  # no frame came
            log.info(  # the caller gets the error itself
                "acquisition not started: %s; nothing was written%s",
                reason,
                f" ({self.output} was left as it was)" if self.output.exists() else "",
            )
        else:
            log.error("acquisition aborted: %s; %d frames are in %s", reason,
                      self.summary.frames_written, self.output)  # fmt: skip

    def _drain_camera(self) -> None:
        """Frames the camera delivered before it is stopped go to disk too (stopping discards
        them), including the frame of an exposure under way as the light went off (it comes
        once the exposure and its readout are over: waited for up to 2 s); bounded, and given
        up at the first error (a full disk, a lost camera)."""
        w = self.writer
        if w is None or w.closed or not self.camera.is_running or not hasattr(self, "_frames"):
            return
        now = time.monotonic()
        until = now
        if self._light_off_s is not None:  # the camera's exposure outlasts the light's
            until = self._light_off_s + self.config.exposure_ms / 1000.0 + _READOUT_MARGIN_S
            until = min(until, now + 2.0)
        for _ in range(4 * max(self.config.frames_per_set, 16)):
            try:
                frame = self.camera.get_frame(timeout_s=max(until - time.monotonic(), 1e-3))
            except DeviceTimeoutError:
                return
            except Exception as err:
                log.debug("no more frames from the camera: %s", err)
                return
            try:
                self._store(frame)
            except Exception as err:
                log.error("a frame the camera delivered while stopping could not be written: "
                          "%s", err)  # fmt: skip
                return

    def _verify_sets_in(self) -> None:
        """After an abort (Ctrl-C, a fault): every set all of whose pulses came is verified and
        tagged as at the end of a run, so a complete set on disk is not lost; the frames of a
        set cut short are left to :meth:`_mark_unfinished`."""
        w = self.writer
        if w is None or w.closed or not hasattr(self, "_pulses"):
            return
        cfg = self.config
        n = cfg.frames_per_set
        self._drain_events()
        self._done_counts(None)  # no pulse comes any more
        self._match(final=True)
        decided = {r.index for r in self.reports}  # (one interrupted right after its verdict)
        while cfg.n_sets is None or self._next_set < cfg.n_sets:
            s = self._next_set
            if (s + 1) * n > self._max_pulse:
                return  # cut short by the end of the run
            if s not in decided:
                self._finalize_set(s, range(s * n + 1, s * n + n + 1))
            self._next_set += 1

    def _mark_unfinished(self) -> None:
        """Frames of sets never verified (after an abort, or left over) are marked invalid."""
        w = self.writer
        assert w is not None
        pending = [i for i in range(w.n_frames) if w.row(i)["valid"] == -1]
        if pending:
            w.update(pending, valid=0)


_FAULT_CAUSES = {
    "WATCHDOG": "the host went silent for longer than the controller's watchdog (a program "
    "that crashed or was killed, a pulled or flaky USB cable)",
}


def _fault_message(ctrl: Any, fault: str) -> str:
    port = getattr(getattr(ctrl, "info", None), "port", None) or getattr(ctrl, "port", "")
    cause = _FAULT_CAUSES.get(fault, "see the controller's log")
    return (
        f"the controller{' on ' + port if port else ''} has a latched {fault} fault from an "
        f"earlier run ({cause}); its light is off and it refuses new runs until the fault is "
        f"cleared. Once the cause is fixed, clear it: scope acquire --controller "
        f"{port or 'PORT'} --clear-fault (add it to this command to clear and acquire; "
        "Python: controller.clear_fault())"
    )


#: the signals that end a run as Ctrl-C does
INTERRUPT_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
_SIGNAL_WORDS = {
    "SIGINT": "interrupted (Ctrl-C)",
    "SIGTERM": "stopped by SIGTERM",
    "SIGHUP": "stopped by SIGHUP (the terminal closed)",
}


class Interrupted(KeyboardInterrupt):
    """A signal ended the run (SIGINT, SIGTERM or SIGHUP); handled as Ctrl-C.

    Attributes
    ----------
    signum : int
        The signal's number (a command exits with ``128 + signum``).
    name : str
        Its name, e.g. ``"SIGTERM"``.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(_SIGNAL_WORDS.get(self.name, f"stopped by {self.name}"))


class InterruptGuard:
    """SIGINT, SIGTERM and SIGHUP while entered (main thread): the first raises
    :class:`Interrupted`; while :attr:`holding` (cleanup: light off, files closed) or after the
    first, they are logged and wait, so a second signal cannot cut a cleanup short.

    The first signal, raised or held, is kept in :attr:`first`. Outside the main thread (no
    signal handlers there) entering changes nothing.

    Parameters
    ----------
    armed : bool
        Whether the first signal raises; False: every signal is only logged (what
        :func:`interrupts_deferred` installs around a cleanup when no guard is in place).
    ignore_after_interrupt : bool
        On exit after a signal, ignore further ones instead of restoring the handlers (a
        command about to exit: a signal still in flight must not turn a clean exit into a
        traceback).

    Examples
    --------
    >>> with InterruptGuard() as guard:  # doctest: +SKIP
    ...     try:
    ...         run()
    ...     finally:
    ...         with guard.deferred():
    ...             close_devices()
    """

    def __init__(self, *, armed: bool = True, ignore_after_interrupt: bool = False) -> None:
        self.first: Interrupted | None = None
        self.holding = not armed
        self._armed = armed
        self._ignore_after = ignore_after_interrupt
        self._previous: dict[int, Any] = {}
        self._critical_depth = 0
        self._pending: Interrupted | None = None

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in INTERRUPT_SIGNALS:
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except (ValueError, OSError):  # not the main interpreter, or no signals here
                break
        return self

    def __exit__(self, *exc: object) -> None:
        ignore = self._ignore_after and self.first is not None
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_IGN if ignore else handler)
        self._previous.clear()

    def hold(self) -> None:
        """Hold signals from now on (until :meth:`rearm`)."""
        self.holding = True

    @contextlib.contextmanager
    def deferred(self) -> Any:
        """Hold signals while the block runs (cleanup), then as before."""
        holding, self.holding = self.holding, True
        try:
            yield self
        finally:
            self.holding = holding

    @contextlib.contextmanager
    def critical(self) -> Any:
        """A signal that comes while the block runs (a frame written and counted, a set's
        verdict stored and counted) interrupts right after it, not in between: what is on disk
        and what the run reports stay the same."""
        self._critical_depth += 1
        try:
            yield self
        finally:
            self._critical_depth -= 1
        if self._critical_depth == 0 and self._pending is not None:
            pending, self._pending = self._pending, None
            raise pending

    def rearm(self) -> None:
        """Let the next signal interrupt again (e.g. to skip a reconstruction)."""
        self._armed = True
        self.holding = False

    def _handle(self, signum: int, frame: Any) -> None:
        err = Interrupted(signum)
        if self.first is None:
            self.first = err
        if self._armed and not self.holding:
            self._armed = False
            if self._critical_depth:
                self._pending = err  # raised when the critical block ends
                return
            raise err
        log.warning("%s: already stopping; the light goes off and the file is closed first",
                    err.name)  # fmt: skip


def _installed_guard() -> InterruptGuard | None:
    """The :class:`InterruptGuard` whose handler SIGINT has now, if any."""
    try:
        handler = signal.getsignal(signal.SIGINT)
    except (ValueError, OSError):
        return None
    guard = getattr(handler, "__self__", None)
    return guard if isinstance(guard, InterruptGuard) else None


def _critical() -> Any:
    """:meth:`InterruptGuard.critical` of the guard in place (``scope acquire``), for a block
    that must not be cut in two by a signal; nothing to do in other threads (the signal is
    raised in the main thread, not in the run's) or without a guard."""
    if threading.current_thread() is threading.main_thread():
        guard = _installed_guard()
        if guard is not None:
            return guard.critical()
    return contextlib.nullcontext()


@contextlib.contextmanager
def interrupts_deferred() -> Any:
    """Hold SIGINT, SIGTERM and SIGHUP while cleanup runs (main thread only: signal handlers
    live there); one that comes meanwhile is logged and the cleanup goes on.

    Under an :class:`InterruptGuard` (``scope acquire``) the guard holds them and keeps the
    first for its caller; otherwise a guard that only logs is installed for the block.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    guard = _installed_guard()
    if guard is not None:
        with guard.deferred():
            yield
        return
    with InterruptGuard(armed=False):
        yield


def _params_dict(params: Any) -> Any:
    if params is None:
        return None
    try:
        return asdict(params)
    except TypeError:
        return str(params)
