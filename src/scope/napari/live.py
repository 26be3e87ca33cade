"""Live SIM imaging session (no Qt): acquisition and rolling reconstruction in worker threads.

A :class:`LiveSession` opens the microscope (the simulated one unless a camera and a controller
are named), runs the :class:`~scope.acquisition.engine.AcquisitionEngine` in its thread — every
frame is written to an OME-Zarr run as it arrives: the chosen file when recording, a scratch run
otherwise — and processes what the engine produces in a second thread:

- **raw and widefield** at camera rate: the newest frame, and the mean of the newest frame of
  each (angle, phase) slot;
- **rolling SIM**: one cached :class:`~scope.sim.reconstruct.SIMReconstructor` (built once from
  the parameters, estimated on the first complete window unless given) reconstructs the newest
  frame of every slot, either for every new raw frame (``sim_every="frame"``: frames are given
  their slot by the engine's pairing with the controller's pulses, before the set is verified)
  or for every verified set (``sim_every="set"``). When frames come faster than the
  reconstruction, the processing thread takes the newest window (latest wins) and counts the
  windows it skipped;
- **per-angle modulation** of the newest window (about once a second), from the overlap of the
  +1 order with the shifted 0 order (the estimator of :mod:`scope.sim.estimate`, with the
  pattern parameters fixed), and, while :attr:`LiveSession.modulation_map` is on, the map of
  the pattern's modulation contrast-to-noise over the field
  (:func:`scope.sim.diagnostics.modulation_map`): what to watch while focusing the pattern.

The GUI never waits for any of it: it polls :meth:`LiveSession.snapshot` (a copy of the newest
images and the statistics under a lock) on a timer, so a slow display never slows acquisition.
:meth:`LiveSession.stop` asks the engine to end after the current set; the threads then close
the devices (light off), close the file and end.

References
----------
Gustafsson, J. Microsc. 198, 82 (2000) (SIM); Müller et al., Nat. Commun. 7, 10980 (2016)
(modulation from the order overlap, fairSIM); Markwirth et al., Nat. Commun. 10, 4315 (2019)
(video-rate SIM reconstruction with a rolling window of raw frames).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import math
import shutil
import tempfile
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from scope.acquisition.engine import AcquisitionConfig, AcquisitionEngine
from scope.errors import ConfigurationError, ScopeError

log = logging.getLogger(__name__)

Mode = Literal["live", "sim", "record"]

_RUNNING: weakref.WeakSet[LiveSession] = weakref.WeakSet()


@atexit.register
def _stop_running_sessions() -> None:
    """At interpreter exit: stop every live session so the devices are closed (light off) and
    the run file is closed, instead of daemon threads dying mid-frame."""
    for session in list(_RUNNING):
        session.stop()
    for session in list(_RUNNING):
        session.join(5.0)


@dataclass
class LiveConfig:
    """What to open and how to acquire (times in ms, lengths in nm).

    Attributes
    ----------
    camera : str
        ``"sim"`` (simulated microscope), ``"genicam[:INDEX_OR_ID]"`` or ``"v4l2:/dev/videoN"``.
    controller : str or None
        Serial port of the pattern controller (required with a real camera).
    cti : str or None
        GenTL producer for GenICam cameras.
    sensor_shape : (Y, X)
        Sensor of the simulated camera.
    roi : (x, y, width, height) or None
        Region of interest on the sensor (even width and height for the reconstruction).
    exposure_ms, dark_ms : float
        Light-on time and the gap between exposures.
    trigger : {"hardware", "follower", "software"}
        Leader mode (the controller triggers the camera), follower mode (the free-running
        camera's exposure output advances the controller) or the host-triggered fallback.
    angles_deg, n_phases, period_nm : pattern set of the illuminator.
    na, wavelength_nm, pixel_size_nm : detection optics and camera pixel at the sample.
    sample : str
        Virtual sample of the simulated microscope.
    photons_peak : float
        Brightness of the simulated sample.
    marker : bool
        Simulated camera only: write the ground-truth pattern index and pulse count into the
        top-left corner of each frame (for tests).
    pattern_distortion : float
        Simulated camera only: bend its projected patterns as distorting illumination optics
        do (:class:`scope.devices.simulated_camera.SimulatedCamera`).
    """

    camera: str = "sim"
    controller: str | None = None
    cti: str | None = None
    sensor_shape: tuple[int, int] = (256, 256)
    roi: tuple[int, int, int, int] | None = None
    exposure_ms: float = 10.0
    dark_ms: float = 10.0
    trigger: Literal["hardware", "follower", "software"] = "hardware"
    angles_deg: tuple[float, ...] = (0.0, 60.0, 120.0)
    n_phases: int = 3
    period_nm: float = 260.0
    na: float = 1.2
    wavelength_nm: float = 525.0
    pixel_size_nm: float = 65.0
    sample: str = "mixed"
    photons_peak: float = 300.0
    marker: bool = False
    pattern_distortion: float = 0.0

    @property
    def n_angles(self) -> int:
        return len(self.angles_deg)

    @property
    def frames_per_set(self) -> int:
        return self.n_angles * self.n_phases

    def setup(self) -> Any:
        from scope.optics import OpticalSetup

        return OpticalSetup(
            na=self.na, wavelength_nm=self.wavelength_nm, pixel_size_nm=self.pixel_size_nm
        )

    def nominal_params(self) -> Any:
        from scope.sim.params import SIMParameters

        return SIMParameters.equidistant(
            list(self.angles_deg), period_nm=self.period_nm, n_phases=self.n_phases
        )


@dataclass
class LiveStats:
    """Measured rates and counts (what the widget shows)."""

    raw_fps: float = 0.0
    sim_fps: float = 0.0
    raw_frames: int = 0
    sim_images: int = 0
    dropped_frames: int = 0
    extra_frames: int = 0
    invalid_sets: int = 0
    #: invalid sets kept without their faulty frames (a recording reconstructs them too)
    kept_sets: int = 0
    valid_sets: int = 0
    skipped_windows: int = 0
    modulation: tuple[float, ...] = ()
    #: share of the newest window's values at the camera's full scale (None: not known)
    clipped_fraction: float | None = None
    #: hot and dead camera pixels the reconstruction repairs (None until it has started)
    defect_pixels: int | None = None
    #: times the pattern parameters were estimated in this session
    pattern_estimates: int = 0
    #: how far the pattern in the field's corner tiles drifts from the one estimated for the
    #: whole field (rad; None: not measured, a field of one tile or the nominal pattern). Over
    #: ``scope.sim.pattern_map.DRIFT_TOLERANCE_RAD`` the illumination optics bend the pattern
    #: and its phase is mapped across the field (:attr:`pattern_mapped`)
    pattern_drift_rad: float | None = None
    #: whether the reconstruction takes a phase map of the pattern out (a bent pattern)
    pattern_mapped: bool = False
    reconstruction_ms: float = 0.0
    state: str = "idle"
    message: str = ""


@dataclass
class LiveSnapshot:
    """The newest images (``None`` until there is one) and statistics; ``*_serial`` counts
    images produced so the GUI updates a layer only when it changed."""

    raw: np.ndarray | None = None
    raw_serial: int = 0
    widefield: np.ndarray | None = None
    sim: np.ndarray | None = None
    sim_serial: int = 0
    sim_frame_indices: tuple[int, ...] = ()
    modulation_map: np.ndarray | None = None
    modulation_map_serial: int = 0
    stats: LiveStats = field(default_factory=LiveStats)


def open_devices(config: LiveConfig, setup: Any, params: Any) -> tuple[Any, Any, Any]:
    """``(closer, camera, controller)``: connected devices for ``config``.

    ``closer.close()`` closes both (the simulated microscope also stops its emulator).
    """
    spec = (config.camera or "sim").strip()
    if spec == "sim":
        if config.controller not in (None, "", "sim://"):
            raise ConfigurationError(
                f"the simulated camera is triggered by the emulated controller only; choose "
                f"controller sim:// (got {config.controller!r}) or pick a real camera"
            )
        from scope.devices.simulated_microscope import SimulatedMicroscope

        m = SimulatedMicroscope(
            tuple(config.sensor_shape),
            params=params,
            setup=setup,
            sample_kind=config.sample,
            camera_options={
                "marker": config.marker,
                "photons_peak": config.photons_peak,
                "pattern_distortion": config.pattern_distortion,
            },
        )
        m.connect()
        return m, m.camera, m.controller
    from scope.devices.real_devices import open_real_devices

    return open_real_devices(spec, config.controller, cti=config.cti)


def observed_modulation(frames: np.ndarray, setup: Any, params: Any) -> tuple[float, ...]:
    """Per-angle modulation depth of one raw set with known pattern parameters.

    The +1 order ``C+(k) = m/2 H(k) S(k - p)`` is compared with the 0 order shifted onto the
    carrier, ``C0(k - p) = H(k - p) S(k - p)``, where both OTFs are non-negligible:
    ``m = 2 Re<C+ H(k-p), C0(k-p) H(k)> / <|C0(k-p) H(k)|^2>`` (noise bias of the 0 order not
    removed, so the value is slightly low at very low light).

    References
    ----------
    Müller et al., Nat. Commun. 7, 10980 (2016); Wicker et al., Opt. Express 21, 2032 (2013).
    """
    from scope.optics import OTF
    from scope.sim.spectral import freq_grid, separation_matrix

    f = np.asarray(frames, np.float32)
    n_p = params.n_frames // params.n_angles
    ny, nx = f.shape[-2:]
    ky, kx = freq_grid((ny, nx), setup.pixel_size_um, np)
    otf = OTF.from_setup(setup)
    h = np.asarray(otf(np.hypot(kx, ky)), np.float32)
    y_px = (np.arange(ny) - 0.0) * setup.pixel_size_um
    x_px = (np.arange(nx) - 0.0) * setup.pixel_size_um
    out = []
    for a, ang in enumerate(params.angles):
        sl = f[a * n_p : (a + 1) * n_p]
        sep = separation_matrix(np.asarray(ang.phases_rad))
        c0 = np.tensordot(sep[0], sl, axes=1)
        c1 = np.tensordot(sep[1], sl, axes=1)
        c0 = c0 - c0.mean()
        kx0, ky0 = ang.k_per_um
        ramp = np.exp(2j * np.pi * (ky0 * y_px[:, None] + kx0 * x_px[None, :]))
        y_ = np.fft.fft2(c0 * ramp) * h  # C0(k - p) H(k)
        hs = np.asarray(otf(np.hypot(kx - kx0, ky - ky0)), np.float32)
        x_ = np.fft.fft2(c1) * hs  # C+(k) H(k - p)
        overlap = (h * hs > 0.05) & (np.hypot(kx - kx0, ky - ky0) > 0.1 * otf.cutoff_per_um)
        num = float(np.real(np.sum((x_ * np.conj(y_))[overlap])))
        den = float(np.sum((np.abs(y_) ** 2)[overlap]))
        out.append(2.0 * num / den if den > 0 else math.nan)
    return tuple(out)


class _Rate:
    """Events per second over a sliding window."""

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_s = window_s
        self.times: deque[float] = deque()

    def tick(self, t: float | None = None) -> None:
        self.times.append(time.monotonic() if t is None else t)

    def rate(self) -> float:
        now = time.monotonic()
        while self.times and now - self.times[0] > self.window_s:
            self.times.popleft()
        if len(self.times) < 2:
            return 0.0
        span = max(now - self.times[0], 1e-6)
        return len(self.times) / span


class LiveSession:
    """Acquisition + rolling reconstruction in worker threads (see the module docstring).

    Parameters
    ----------
    config : LiveConfig
    mode : {"live", "sim", "record"}
        ``live``: raw and widefield only; ``sim``: also rolling SIM; ``record``: acquire
        ``n_sets`` sets into ``output`` (with SIM display).
    sim_every : {"frame", "set"}
        A new SIM image for every new raw frame (rolling window) or for every verified set.
    output : path, optional
        The run to write (``.zarr``); default a scratch run deleted at the end unless
        ``keep_run`` (then :attr:`output` says where it is).
    n_sets : int or None
        Sets to record (None: until stopped).
    params : SIMParameters, optional
        Pattern parameters; by default estimated on the first complete window (with the
        nominal pattern as the prior), ``estimate=False`` uses the nominal pattern.
    backend : str
        ``"auto"`` (GPU when present), ``"numpy"`` or ``"cupy"``.
    reestimate_every_s : float, optional
        Estimate the pattern again every so many seconds on the newest window (keeping the
        noise model and the camera defects), for a pattern that drifts as a projector warms
        up; :meth:`reestimate` asks for it once.
    """

    def __init__(
        self,
        config: LiveConfig,
        mode: Mode = "sim",
        *,
        sim_every: Literal["frame", "set"] = "frame",
        output: str | Path | None = None,
        n_sets: int | None = None,
        keep_run: bool = False,
        params: Any = None,
        estimate: bool = True,
        settings: Any = None,
        backend: str = "auto",
        overwrite: bool = False,
        modulation_interval_s: float = 1.0,
        modulation_map: bool = False,
        reestimate_every_s: float | None = None,
    ) -> None:
        if mode not in ("live", "sim", "record"):
            raise ConfigurationError(f"mode must be live, sim or record, got {mode!r}")
        if sim_every not in ("frame", "set"):
            raise ConfigurationError(f"sim_every must be 'frame' or 'set', got {sim_every!r}")
        if mode == "record" and output is None:
            raise ConfigurationError("recording needs an output path (run.zarr)")
        self.config = config
        self.mode = mode
        self.sim_every = sim_every
        self.n_sets = n_sets if mode == "record" else None
        self.keep_run = keep_run or mode == "record"
        self.setup = config.setup()
        self.nominal = config.nominal_params()
        self.params = params
        self.estimate = estimate and params is None
        self.settings = settings
        self.backend = backend
        self.overwrite = overwrite
        self.modulation_interval_s = modulation_interval_s
        #: compute the modulation contrast-to-noise map with the per-angle modulation (can be
        #: switched while running; off, it costs nothing)
        self.modulation_map = modulation_map
        #: estimate the pattern again every so many seconds (None: only when asked, see
        #: :meth:`reestimate`), for a pattern that drifts as the projector warms up
        self.reestimate_every_s = reestimate_every_s
        self._reestimate = threading.Event()
        self._estimated_at = math.inf
        #: the camera, once the devices are open (the simulated one can move its pattern)
        self.camera: Any = None
        self._scratch: Path | None = None
        if output is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="scope-live-"))
            output = self._scratch / "live.zarr"
        self.output = Path(output)
        self.engine: AcquisitionEngine | None = None
        self.reconstructor: Any = None
        self.summary: Any = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._slot_items: list[tuple[int, int, np.ndarray]] = []
        self._set_items: deque[tuple[int, np.ndarray, dict[str, Any]]] = deque(maxlen=4)
        self._stop = threading.Event()
        self._engine_done = threading.Event()
        self._snap = LiveSnapshot()
        self._raw_rate = _Rate()
        self._sim_rate = _Rate()
        self._thread: threading.Thread | None = None
        self._proc: threading.Thread | None = None
        self.sim_log: deque[tuple[int, tuple[int, ...]]] = deque(maxlen=100_000)
        self._full_scale: float | None = None  # the camera's, once it is open

    # -- control ---------------------------------------------------------------------------
    def start(self) -> None:
        """Open the devices and start acquiring (returns at once; errors go to the stats)."""
        if self._thread is not None:
            raise ScopeError("this live session was already started; make a new one")
        self._snap.stats.state = "starting"
        _RUNNING.add(self)
        self._thread = threading.Thread(target=self._run, name="scope-live-acquire", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the session to end (thread-safe, returns at once; :meth:`join` waits)."""
        self._stop.set()
        if self.engine is not None:
            self.engine.stop()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout_s: float | None = 10.0) -> bool:
        """Wait for every thread of the session to end; True when they have."""
        t_end = None if timeout_s is None else time.monotonic() + timeout_s
        for th in (self._thread, self._proc):
            if th is not None:
                th.join(None if t_end is None else max(0.0, t_end - time.monotonic()))
        return not self.running

    @property
    def running(self) -> bool:
        return any(th is not None and th.is_alive() for th in (self._thread, self._proc))

    def snapshot(self) -> LiveSnapshot:
        """A consistent copy of the newest images and statistics (cheap: arrays are shared,
        never written after they are published)."""
        with self._lock:
            s = self._snap
            stats = LiveStats(**s.stats.__dict__)
            snap = dataclasses.replace(s, stats=stats)
        snap.stats.raw_fps = self._raw_rate.rate()
        snap.stats.sim_fps = self._sim_rate.rate()
        eng = self.engine
        if eng is not None:
            summ = eng.summary
            snap.stats.dropped_frames = len(summ.dropped_pulses)
            snap.stats.extra_frames = len(summ.extra_frames)
            snap.stats.invalid_sets = summ.sets_invalid
            snap.stats.kept_sets = len(summ.sets_without_dropped_frames)
            snap.stats.valid_sets = summ.sets_valid
        return snap

    # -- engine thread -----------------------------------------------------------------------
    def _on_raw(self, index: int, data: np.ndarray) -> None:
        self._raw_rate.tick()
        with self._lock:
            self._snap.raw = data
            self._snap.raw_serial += 1
            self._snap.stats.raw_frames += 1

    def _on_slot(self, slot: int, index: int, data: np.ndarray) -> None:
        with self._cond:
            self._slot_items.append((slot, index, data))
            self._cond.notify()

    def _on_set(self, s: int, frames: np.ndarray, meta: dict[str, Any]) -> None:
        with self._cond:
            self._set_items.append((s, frames, meta))
            self._cond.notify()

    def _set_state(self, state: str, message: str = "") -> None:
        with self._lock:
            self._snap.stats.state = state
            self._snap.stats.message = message

    def _run(self) -> None:
        closer = None
        cfg = self.config
        try:
            closer, camera, controller = open_devices(cfg, self.setup, self.nominal)
            self.camera = camera
            if cfg.roi is not None:
                camera.roi = cfg.roi
            from scope.sim.saturation import camera_full_scale

            self._full_scale = camera_full_scale(camera.pixel_format)
            acq = AcquisitionConfig(
                n_sets=self.n_sets,
                n_angles=cfg.n_angles,
                n_phases=cfg.n_phases,
                exposure_ms=cfg.exposure_ms,
                dark_ms=cfg.dark_ms,
                trigger=cfg.trigger,
            )
            self.engine = AcquisitionEngine(
                camera,
                controller,
                self.output,
                acq,
                setup=self.setup,
                params=self.nominal,
                overwrite=self.overwrite,
            )
            self.engine.add_frame_callback(self._on_raw)
            if self.sim_every == "frame":
                self.engine.add_slot_callback(self._on_slot)
            self.engine.add_callback(self._on_set)
            if self._stop.is_set():
                return
            self._proc = threading.Thread(
                target=self._process_catching, name="scope-live-reconstruct", daemon=True
            )
            self._proc.start()
            self._set_state("running", f"{self.mode}: {self.output}")
            if self._stop.is_set():
                self.engine.stop()
            self.summary = self.engine.run()
            self._set_state("stopped", f"{self.summary.sets_valid} valid sets")
        except BaseException as err:
            self.error = err
            log.error("live session failed: %s", err)
            self._set_state("error", str(err))
        finally:
            self._engine_done.set()
            with self._cond:
                self._cond.notify_all()
            if self._proc is not None:
                self._proc.join()
            if closer is not None:
                try:
                    closer.close()
                except Exception as err:
                    log.error("closing the devices failed: %s", err)
            if self._scratch is not None and not self.keep_run:
                shutil.rmtree(self._scratch, ignore_errors=True)
            _RUNNING.discard(self)

    # -- processing thread -------------------------------------------------------------------
    def _process_catching(self) -> None:
        try:
            self._process()
        except BaseException as err:
            self.error = err
            log.exception("live reconstruction failed")
            self._set_state("error", f"reconstruction: {err}")
            self.stop()

    def reestimate(self) -> None:
        """Estimate the pattern again on the next window (a pattern that moved: stripes or a
        grid in the SIM image); the noise model and the camera defects are kept."""
        self._reestimate.set()

    def _ensure_reconstructor(self, frames: np.ndarray) -> Any:
        """The session's cached operator: built on the first window (parameters estimated
        there, or the nominal pattern), built again with the pattern estimated anew when asked
        (:meth:`reestimate`) or every ``reestimate_every_s``, keeping the noise model and the
        camera defects."""
        from scope.sim.estimate import estimate_parameters
        from scope.sim.pipeline import defects_to_repair
        from scope.sim.reconstruct import SIMReconstructor

        old = self.reconstructor
        if old is not None:
            due = self.reestimate_every_s is not None and (
                time.monotonic() - self._estimated_at >= self.reestimate_every_s
            )
            if not (self._reestimate.is_set() or due):
                return old
            self._reestimate.clear()
        defects = (
            old.defect_pixels
            if old is not None
            else defects_to_repair(frames, self.setup, self.settings)
        )
        maps = None  # the pattern's phase map, when the illumination optics bend it
        if old is not None or (self.params is None and self.estimate):
            params = estimate_parameters(
                frames,
                self.setup,
                n_angles=self.config.n_angles,
                n_phases=self.config.n_phases,
                # a search window around the pattern as it was (the nominal one at first)
                prior=self.params if old is not None else self.nominal,
                defects=defects,
            )
            if old is not None:
                moved = [
                    round(float(np.angle(np.exp(1j * (b.phases_rad[0] - a.phases_rad[0])))), 2)
                    for a, b in zip(self.params.angles, params.angles, strict=True)
                ]
                log.info("pattern estimated again: phases moved by %s rad", moved)
            self.params = params
            drift, maps = self._phase_map(frames, params, defects)
            with self._lock:
                self._snap.stats.pattern_estimates += 1
                self._snap.stats.pattern_drift_rad = drift
                self._snap.stats.pattern_mapped = maps is not None
        elif self.params is None:
            self.params = self.nominal
        self._estimated_at = time.monotonic()
        self.reconstructor = SIMReconstructor(
            self.setup,
            self.params,
            shape=frames.shape[-2:],
            settings=self.settings,
            backend=self.backend,
            noise_model=old.noise_model if old is not None else None,
            defect_pixels=defects,
            phase_maps=maps,
        )
        return self.reconstructor

    def _phase_map(
        self, frames: np.ndarray, params: Any, defects: Any
    ) -> tuple[float | None, np.ndarray | None]:
        """The corner tiles' pattern drift (:func:`scope.sim.pattern_map.corner_drift`; None
        for a field of one tile) and, when the illumination optics bend the pattern, its phase
        map for the reconstruction (:func:`scope.sim.pattern_map.plan_pattern_map`: a second
        or a few once per estimate, nothing per image)."""
        from scope.sim.pattern_map import DRIFT_TOLERANCE_RAD, corner_drift, plan_pattern_map

        drift = corner_drift(frames, self.setup, params, defects=defects)
        if drift is None or drift <= DRIFT_TOLERANCE_RAD:
            return drift, None
        pattern_map = plan_pattern_map(frames, self.setup, params, mode="on", defects=defects)
        if pattern_map is None:
            return drift, None
        return drift, pattern_map.maps(frames.shape[-2:], self.setup.pixel_size_um)

    def _process(self) -> None:
        n = self.config.frames_per_set
        slots: list[np.ndarray | None] = [None] * n
        slot_index = [-1] * n
        last_mod = -math.inf
        want_sim = self.mode in ("sim", "record")
        while True:
            with self._cond:
                while (
                    not self._slot_items and not self._set_items and not self._engine_done.is_set()
                ):
                    self._cond.wait(0.2)
                items, self._slot_items = self._slot_items, []
                sets = list(self._set_items)
                self._set_items.clear()
            if not items and not sets and self._engine_done.is_set():
                return
            changed = False
            if self.sim_every == "frame":
                for slot, index, data in items:
                    slots[slot], slot_index[slot] = data, index
                changed = bool(items)
                skipped = max(0, len(items) - 1)
            else:
                if sets:
                    _, frames_set, meta = sets[-1]
                    for k in range(n):
                        slots[k] = frames_set[k]
                    slot_index = list(meta["frame_indices"])
                    changed = True
                skipped = max(0, len(sets) - 1)
            if not changed or any(s is None for s in slots):
                continue
            frames = np.stack(slots).astype(np.float32)  # type: ignore[arg-type]
            indices = tuple(slot_index)
            sim = None
            dt_ms = 0.0
            if want_sim:
                rec = self._ensure_reconstructor(frames)
                widefield = rec.backend.to_numpy(rec.widefield(frames))
                t0 = time.perf_counter()
                sim = rec.backend.to_numpy(rec(frames))
                dt_ms = (time.perf_counter() - t0) * 1e3
                self._sim_rate.tick()
            else:  # Live (focusing): no parameters needed, nothing estimated
                widefield = frames.mean(axis=0)
            now = time.monotonic()
            modulation = mcnr = clipped = None
            if now - last_mod >= self.modulation_interval_s:
                last_mod = now
                if self._full_scale is not None:  # bright structures clipped: say so
                    clipped = np.count_nonzero(frames >= self._full_scale) / frames.size
                pattern = self.params or self.nominal
                modulation = observed_modulation(frames, self.setup, pattern)
                if self.modulation_map:
                    from scope.sim.diagnostics import modulation_map
                    from scope.sim.reconstruct import estimate_camera_offset

                    offset = estimate_camera_offset(frames)
                    mcnr = modulation_map(frames, self.setup, pattern, offset_adu=offset).mcnr
            with self._lock:
                self._snap.widefield = widefield
                st = self._snap.stats
                st.skipped_windows += skipped
                if modulation is not None:
                    st.modulation = modulation
                if clipped is not None:
                    st.clipped_fraction = float(clipped)
                if mcnr is not None:
                    self._snap.modulation_map = mcnr
                    self._snap.modulation_map_serial += 1
                if sim is not None:
                    if self.reconstructor.defect_pixels is not None:
                        st.defect_pixels = len(self.reconstructor.defect_pixels)
                    self._snap.sim = sim
                    self._snap.sim_serial += 1
                    self._snap.sim_frame_indices = indices
                    st.sim_images += 1
                    st.reconstruction_ms = dt_ms
                    self.sim_log.append((self._snap.sim_serial, indices))

    def cleanup(self) -> None:
        """Remove the scratch run (when it was kept); call after :meth:`join`."""
        if self._scratch is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(self._scratch)
