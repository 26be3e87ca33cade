"""A simulated global-shutter camera that images a virtual sample under SIM patterns.

Each exposure renders the sample under the pattern the (emulated) controller shows when the
exposure starts (:func:`scope.sim.forward.render_pattern_frame`, via a cached
:class:`~scope.sim.forward.SIMForwardModel`), then adds background, Poisson shot noise, read
noise, gain and offset (:func:`scope.sim.forward.add_camera_noise`).

Trigger modes: ``hardware`` — one exposure per call of :meth:`SimulatedCamera.hardware_trigger`
(the controller emulator's trigger hook calls it with the pattern index and pulse count);
``software`` — one per :meth:`Camera.software_trigger`; ``off`` — free running at
``frame_rate_hz``. Without a pattern source a free-running or software-triggered camera cycles
through the SIM sequence itself (pattern = exposure number mod n).

Ground-truth marker (for tests): the top-left 4 x 8 pixels of every frame are overwritten:
pixels ``[0:4, 0:4]`` hold ``pattern_index + 1`` (``0`` = no pattern, ``MIXED_MARKER`` = the
exposure saw two patterns, e.g. after a late trigger) and pixels ``[0:4, 4:8]`` hold the
controller pulse count modulo 2**16 (0 for a frame without a pulse, i.e. an extra frame). Read
them with :func:`decode_marker`. The ROI must include the sensor's top-left corner for the
marker to be visible (it is written into the full sensor frame before cropping).

Fault injection (:class:`FaultInjection`): dropped frames (exposed, counted in the frame id, never
delivered), extra frames (a spurious frame with its own frame id and no pulse, stamped right
after the previous frame's readout, as from a glitch on the trigger line; it does not make the
camera miss the next trigger), late
triggers (the exposure starts late and sees the next pattern too) and a stall (after a number of
frames the camera goes silent, as an unplugged camera; :meth:`SimulatedCamera.fail` does it at
once). Every injected fault is recorded in :attr:`SimulatedCamera.fault_log`, the ground truth
that tests compare the acquisition engine's detections against.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from scope.devices.camera import ROI, Camera, Frame, TriggerSettings
from scope.errors import ConfigurationError, DeviceError, DeviceTimeoutError

log = logging.getLogger(__name__)

MARKER_SIZE = 4
MIXED_MARKER = 0xFFFF
_FORMATS = ("Mono8", "Mono12", "Mono16")


def encode_marker(frame: np.ndarray, pattern_index: int | None, pulse_count: int | None) -> None:
    """Write the ground-truth marker into a full-sensor frame (in place)."""
    s = MARKER_SIZE
    code = (
        0 if pattern_index is None else (MIXED_MARKER if pattern_index < 0 else pattern_index + 1)
    )
    frame[:s, :s] = code
    frame[:s, s : 2 * s] = 0 if pulse_count is None else int(pulse_count) % 2**16


def decode_marker(frame: np.ndarray) -> tuple[int | None, int | None]:
    """Read ``(pattern_index, pulse_count)`` from a frame of :class:`SimulatedCamera`.

    ``pattern_index`` is ``None`` for no pattern and ``-1`` for an exposure that saw two patterns;
    ``pulse_count`` is ``None`` for a frame taken without a controller pulse. Raises
    :class:`~scope.errors.DataFormatError`-free ``ValueError`` when the block is not uniform (not
    a simulated frame, or cropped).
    """
    s = MARKER_SIZE
    a, b = frame[:s, :s], frame[:s, s : 2 * s]
    if a.min() != a.max() or b.min() != b.max():
        raise ValueError("no marker in this frame (the corner blocks are not uniform)")
    code, count = int(a[0, 0]), int(b[0, 0])
    pattern = None if code == 0 else (-1 if code == MIXED_MARKER else code - 1)
    return pattern, (None if count == 0 else count)


@dataclass
class FaultInjection:
    """Faults the simulated camera injects (probabilities per exposure).

    Attributes
    ----------
    drop_prob : float
        The frame is exposed (its frame id is used) but never delivered.
    extra_prob : float
        A spurious exposure without a pulse follows the frame (its own frame id).
    late_prob : float
        The exposure starts ``late_ms`` late and sees the next pattern as well.
    late_ms : float
    stall_after_frames : int, optional
        After this many delivered frames the camera goes silent (timeouts from then on).
    seed : int
    """

    drop_prob: float = 0.0
    extra_prob: float = 0.0
    late_prob: float = 0.0
    late_ms: float = 2.0
    stall_after_frames: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop_prob", "extra_prob", "late_prob"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ConfigurationError(f"{name} must be in [0, 1], got {p}")


@dataclass(frozen=True)
class FaultRecord:
    """One injected fault: ``kind`` in {drop, extra, late, missed_trigger, stall}."""

    kind: str
    frame_id: int
    pulse_count: int | None
    timestamp_s: float


class SimulatedCamera(Camera):
    """A camera that renders SIM frames of a virtual sample (see the module docstring).

    Parameters
    ----------
    shape : (Y, X)
        Sensor size in pixels (keep it small in tests, e.g. 64 x 64).
    sample_2x : ndarray (2Y, 2X), optional
        Fluorophore density on the 2x grid (default: ``make_sample(kind="mixed")``).
    params : SIMParameters, optional
        The patterns the controller's sequence shows, in sequence order (angle-major, phase
        fastest). Default: 3 angles (0, 60, 120 degrees) x 3 phases, period 260 nm.
    setup : OpticalSetup, optional
    photons_peak : float
        Expected photo-electrons of a bright structure at 10 ms exposure (scales with exposure).
    background_photons, read_noise_e, offset_adu : float
    light_flicker : float
        Relative spread of the light each exposure receives (0: steady): the illumination,
        and the fluorescence it excites, is scaled by ``1 + uniform(-f, f)`` per exposure, as
        with an LED dimmed by PWM or a projector's colour sequence not locked to the camera.
    hot_pixels : float
        Share of the sensor's pixels with extra dark current (hot pixels, as cheap CMOS
        sensors have): each collects an exponentially distributed mean of
        ``hot_pixel_electrons`` per 10 ms exposure on top of its light, the same pixels in
        every frame (seeded). :attr:`hot_pixel_map` holds their mean dark electrons.
    hot_pixel_electrons : float
    pixel_maps : SCMOSMaps, optional
        Each sensor pixel's own offset (ADU) and gain (ADU per electron, times the gain
        setting), as an sCMOS-like sensor has (``scope.calibration.camera.SCMOSMaps`` of the
        sensor's shape; its variance map is not used: the read noise is ``read_noise_e``).
        Default: ``offset_adu`` and the gain setting for every pixel.
    pattern_distortion : float
        Radial distortion of the projected patterns at the sensor's corners, a fraction (as
        a projector's or a relay's lens gives, see :func:`scope.sim.forward.pattern_image`):
        ``params`` then describe the pattern at the centre of the sensor only.
    faults : FaultInjection, optional
    pattern_source : callable, optional
        Returns the pattern index shown right now (used when a trigger does not say).
    readout_ms : float
        Sensor readout after each exposure; a trigger during exposure + readout is missed.
    marker : bool
        Write the ground-truth marker into the corner (see the module docstring); switch it
        off for images meant to be looked at or reconstructed.
    exposure_output : callable, optional
        The camera's exposure-active output when free-running (follower mode):
        ``exposure_output(True, exposure_s, t_s)`` as an exposure starts and
        ``exposure_output(False, nan, t_s)`` as it ends, ``t_s`` the edge's
        ``time.monotonic()`` (the simulated microscope wires it to the controller's input).
    lit_fraction : callable, optional
        ``lit_fraction(pulse_count)``: the share of a triggered exposure the light
        was on, asked once the exposure is over (the simulated microscope answers from the
        board's trigger output, which a ``STOP`` or ``SAFE`` drops mid-exposure). Default:
        the whole exposure is lit.
    seed : int
    """

    kind = "simulated"

    def __init__(
        self,
        shape: tuple[int, int] = (64, 64),
        *,
        sample_2x: np.ndarray | None = None,
        params: Any = None,
        setup: Any = None,
        photons_peak: float = 300.0,
        background_photons: float = 10.0,
        read_noise_e: float = 1.5,
        offset_adu: float = 100.0,
        light_flicker: float = 0.0,
        hot_pixels: float = 0.0,
        hot_pixel_electrons: float = 500.0,
        pixel_maps: Any = None,
        pattern_distortion: float = 0.0,
        faults: FaultInjection | None = None,
        pattern_source: Any = None,
        readout_ms: float = 0.2,
        marker: bool = True,
        seed: int = 0,
        name: str = "",
        exposure_output: Any = None,
        lit_fraction: Any = None,
    ) -> None:
        super().__init__(name or "simulated camera")
        if len(shape) != 2 or min(shape) < 16:
            raise ConfigurationError(f"sensor shape must be (Y, X) with sides >= 16, got {shape}")
        self._shape = (int(shape[0]), int(shape[1]))
        self._sample_2x = sample_2x
        self._params = params
        self._setup = setup
        self.photons_peak = float(photons_peak)
        self.background_photons = float(background_photons)
        self.read_noise_e = float(read_noise_e)
        self.offset_adu = float(offset_adu)
        if not 0.0 <= light_flicker < 1.0:
            raise ConfigurationError(f"light_flicker must be in [0, 1), got {light_flicker}")
        self.light_flicker = float(light_flicker)
        if not 0.0 <= hot_pixels < 0.1:
            raise ConfigurationError(f"hot_pixels must be a share in [0, 0.1), got {hot_pixels}")
        hot_rng = np.random.default_rng([seed, 17])
        #: mean dark electrons per 10 ms exposure of each sensor pixel (0 except hot pixels)
        self.hot_pixel_map = np.zeros(self._shape)
        n_hot = round(hot_pixels * self._shape[0] * self._shape[1])
        where = hot_rng.choice(self.hot_pixel_map.size, n_hot, replace=False)
        self.hot_pixel_map.flat[where] = hot_rng.exponential(hot_pixel_electrons, n_hot)
        if pixel_maps is not None and tuple(pixel_maps.shape) != self._shape:
            raise ConfigurationError(
                f"pixel_maps are {pixel_maps.shape}, the sensor {self._shape}: give maps of the "
                "whole sensor"
            )
        self.pixel_maps = pixel_maps
        if not abs(pattern_distortion) < 0.2:
            raise ConfigurationError(
                f"pattern_distortion must be a fraction within +-0.2, got {pattern_distortion}"
            )
        self.pattern_distortion = float(pattern_distortion)
        self.faults = faults or FaultInjection()
        self.pattern_source = pattern_source
        self.readout_ms = float(readout_ms)
        self.marker = bool(marker)
        self.exposure_output = exposure_output
        self.lit_fraction = lit_fraction
        self._seed = seed
        self._exposure_ms = 10.0
        self._gain = 1.0
        self._frame_rate_hz = 100.0
        self._roi = ROI(0, 0, self._shape[1], self._shape[0])
        self._format = "Mono16"
        self._triggers: queue.Queue[tuple[int | None, int | None, float] | None] = queue.Queue()
        self._frames: queue.Queue[Frame] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop_evt = threading.Event()
        self._busy_until = 0.0
        self._lock = threading.Lock()
        self._failed = False
        self.fault_log: list[FaultRecord] = []
        self.frames_delivered = 0
        self._next_frame_id = 1
        self._expected: np.ndarray | None = None

    # -- rendering -----------------------------------------------------------------------------
    @property
    def params(self) -> Any:
        return self._params

    @property
    def n_patterns(self) -> int:
        return 0 if self._expected is None else len(self._expected)

    def _build_model(self) -> None:
        from scope.optics import OpticalSetup
        from scope.sim.forward import SIMForwardModel, render_pattern_frame
        from scope.sim.params import SIMParameters
        from scope.sim.samples import make_sample

        y, x = self._shape
        if self._setup is None:
            self._setup = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
        if self._params is None:
            self._params = SIMParameters.equidistant([0, 60, 120], period_nm=260, n_phases=3)
        if self._sample_2x is None:
            self._sample_2x = make_sample((2 * y, 2 * x), "mixed", seed=self._seed)
        if self._sample_2x.shape != (2 * y, 2 * x):
            raise ConfigurationError(
                f"sample_2x must be twice the sensor shape {(2 * y, 2 * x)}, "
                f"got {self._sample_2x.shape}"
            )
        model = SIMForwardModel(self._sample_2x, self._setup)
        frames = [
            render_pattern_frame(
                self._sample_2x,
                a,
                k,
                self._setup,
                photons_per_unit=1.0,
                model=model,
                distortion=self.pattern_distortion,
            )
            for a in self._params.angles
            for k in range(a.n_phases)
        ]
        self._expected = np.stack(frames).astype(np.float64)  # photons per unit, pattern order
        self._widefield = model.widefield().astype(np.float64)

    def _render(
        self, pattern: int | None, mixed_with: int | None, rng: np.random.Generator,
        *, lit: float = 1.0,
    ) -> np.ndarray:  # fmt: skip
        """One frame in ADU; ``lit`` is the share of the exposure the light was on."""
        from scope.sim.forward import add_camera_noise

        scale = self.photons_peak * self._exposure_ms / 10.0 * lit
        if pattern is None:
            photons = self._widefield * scale
        else:
            photons = self._expected[pattern] * scale
            if mixed_with is not None:
                photons = 0.5 * (photons + self._expected[mixed_with] * scale)
        photons = photons + self.background_photons * self._exposure_ms / 10.0 * lit
        if self.light_flicker:
            photons = photons * (1.0 + rng.uniform(-self.light_flicker, self.light_flicker))
        # dark current of hot pixels: no light, so no flicker (shot noise below)
        photons = photons + self.hot_pixel_map * (self._exposure_ms / 10.0)
        bits = {"Mono8": 8, "Mono12": 12, "Mono16": 16}[self._format]
        offset, gain = self.offset_adu, self._gain
        if self.pixel_maps is not None:  # an sCMOS-like sensor: each pixel its own
            offset = self.pixel_maps.offset_adu
            gain = self.pixel_maps.gain_adu_per_e * self._gain
        adu = add_camera_noise(
            photons, read_noise_e=self.read_noise_e, offset_adu=offset,
            gain_adu_per_e=gain, rng=rng, bit_depth=bits,
        )  # fmt: skip
        return adu.astype(np.uint8 if bits == 8 else np.uint16)

    def shift_pattern(self, phase_rad: float) -> None:
        """Move every pattern by ``phase_rad`` of its period, as a projector or grating that
        drifted (warming up, a knock): later exposures see the moved patterns, and
        :attr:`params` describes them."""
        from dataclasses import replace

        if self._params is None or self._expected is None:
            raise ConfigurationError("connect the camera before moving its patterns")
        self._params = replace(
            self._params,
            angles=tuple(
                replace(a, phases_rad=tuple(p + phase_rad for p in a.phases_rad))
                for a in self._params.angles
            ),
        )
        self._build_model()

    # -- Camera hooks ------------------------------------------------------------------------------
    def _do_connect(self) -> None:
        self._build_model()
        self._failed = False

    def _do_close(self) -> None:
        self._expected = None

    def _do_features(self) -> set[str]:
        return {"exposure", "gain", "roi", "pixel_format", "trigger", "frame_rate"}

    def _do_get_sensor_shape(self) -> tuple[int, int]:
        return self._shape

    def _do_get_exposure_ms(self) -> float:
        return self._exposure_ms

    def _do_set_exposure_ms(self, value: float) -> None:
        self._exposure_ms = value

    def _do_get_exposure_range_ms(self) -> tuple[float, float]:
        return (0.01, 10_000.0)

    def _do_get_gain(self) -> float:
        return self._gain

    def _do_set_gain(self, value: float) -> None:
        self._gain = value

    def _do_get_gain_range(self) -> tuple[float, float]:
        return (0.1, 16.0)

    def _do_get_frame_rate_hz(self) -> float:
        return self._frame_rate_hz

    def _do_set_frame_rate_hz(self, value: float) -> None:
        self._frame_rate_hz = value

    def _do_get_frame_rate_range_hz(self) -> tuple[float, float]:
        return (0.1, 2000.0)

    def _do_get_roi(self) -> ROI:
        return self._roi

    def _do_set_roi(self, roi: ROI) -> None:
        self._roi = roi

    def _do_get_pixel_format(self) -> str:
        return self._format

    def _do_get_pixel_formats(self) -> tuple[str, ...]:
        return _FORMATS

    def _do_set_pixel_format(self, value: str) -> None:
        self._format = value

    def _do_set_trigger(self, settings: TriggerSettings) -> None:
        pass  # the mode is read from self.trigger by the exposure thread

    def _do_software_trigger(self) -> None:
        self._enqueue_trigger(None, None)

    def _do_start(self) -> None:
        if self._failed:
            raise DeviceError(f"{self.name} has failed (simulated unplug): reconnect it")
        while not self._frames.empty():  # stale frames from a previous run
            self._frames.get_nowait()
        self._stop_evt.clear()
        self._busy_until = 0.0
        self._thread = threading.Thread(target=self._run, name="simulated-camera", daemon=True)
        self._thread.start()

    def _do_stop(self) -> None:
        self._stop_evt.set()
        self._triggers.put(None)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        while not self._triggers.empty():
            self._triggers.get_nowait()

    def _do_get_frame(self, timeout_s: float) -> Frame:
        try:
            return self._frames.get(timeout=timeout_s)
        except queue.Empty as err:
            why = " (the camera has failed)" if self._failed else ""
            raise DeviceTimeoutError(
                f"{self.name}: no frame within {timeout_s:.3g} s{why} "
                f"(trigger mode {self.trigger.mode}); check the triggers"
            ) from err

    # -- triggers -------------------------------------------------------------------------------
    def hardware_trigger(
        self, pattern_index: int | None = None, pulse_count: int | None = None,
        timestamp_s: float | None = None,
    ) -> None:  # fmt: skip
        """An edge on the trigger line (called by the controller emulator's trigger hook).

        Parameters
        ----------
        pattern_index : int, optional
            Pattern the illuminator shows during this exposure (default: ``pattern_source()``).
        pulse_count : int, optional
            The controller's pulse number (written into the marker for tests).
        timestamp_s : float, optional
            When the edge happened (``time.monotonic()``; default: now).
        """
        if not self._running or self.trigger.mode != "hardware":
            return  # a camera not armed for hardware triggers ignores the line
        self._enqueue_trigger(pattern_index, pulse_count, timestamp_s)

    def _enqueue_trigger(
        self, pattern: int | None, count: int | None, t: float | None = None
    ) -> None:
        self._triggers.put((pattern, count, time.monotonic() if t is None else t))

    def fail(self) -> None:
        """Simulate an unplugged camera: no frame is delivered from now on."""
        log.warning("%s: simulated failure (camera unplugged)", self.name)
        self._failed = True
        self.fault_log.append(FaultRecord("stall", self._next_frame_id, None, time.monotonic()))

    def _current_pattern(self, exposure_number: int) -> int:
        if self.pattern_source is not None:
            return int(self.pattern_source())
        return exposure_number % self.n_patterns

    def _run(self) -> None:
        rng = np.random.default_rng(self._seed + 1)
        fault_rng = np.random.default_rng(self.faults.seed)
        exposures = 0
        next_free_run = time.monotonic()
        while not self._stop_evt.is_set():
            if self.trigger.mode == "off":
                delay = next_free_run - time.monotonic()
                if delay > 0 and self._stop_evt.wait(delay):
                    return
                next_free_run = max(next_free_run + 1.0 / self._frame_rate_hz, time.monotonic())
                item: Any = (None, None, time.monotonic())
                if self.exposure_output is not None:
                    # the pattern on now is the one this exposure sees (a follower controller
                    # switches only when the exposure ends); reading it may wait for the
                    # emulated board to catch up, so the exposure starts after that, and its
                    # edge carries its own time (this thread may be held up before the call)
                    pattern_now = self._current_pattern(exposures)
                    t_start = time.monotonic()
                    self.exposure_output(True, self._exposure_ms / 1000.0, t_start)
                    item = (pattern_now, None, t_start)
            else:
                try:
                    item = self._triggers.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is None:
                    return
            pattern, count, t0 = item
            if pattern is None:
                pattern = self._current_pattern(exposures)
            exposures += 1
            self._expose(pattern, count, t0, rng, fault_rng)

    def _expose(
        self, pattern: int | None, count: int | None, t0: float, rng: Any, frng: Any
    ) -> None:
        f = self.faults
        exp_s = self._exposure_ms / 1000.0
        if t0 < self._busy_until:  # trigger overlaps the previous exposure + readout: missed
            self.fault_log.append(FaultRecord("missed_trigger", -1, count, t0))
            log.debug("%s: trigger %s missed (sensor busy)", self.name, count)
            return
        late = frng.random() < f.late_prob
        start = t0 + (f.late_ms / 1000.0 if late else 0.0)
        self._busy_until = start + exp_s + self.readout_ms / 1000.0
        frame_id = self._next_frame_id
        self._next_frame_id += 1
        n = self.n_patterns
        mixed = (pattern + 1) % n if (late and pattern is not None) else None
        marker_pattern = -1 if mixed is not None else pattern
        if late:
            self.fault_log.append(FaultRecord("late", frame_id, count, start))
        self._deliver(frame_id, start, pattern, mixed, marker_pattern, count, rng, frng)
        if frng.random() < f.extra_prob:  # a spurious frame right after this one's readout
            xid = self._next_frame_id
            self._next_frame_id += 1
            xstart = self._busy_until  # it does not hold the sensor: no later trigger is missed
            self.fault_log.append(FaultRecord("extra", xid, None, xstart))
            self._deliver(xid, xstart, pattern, None, pattern, None, rng, frng, extra=True)

    def _deliver(
        self, frame_id: int, start: float, pattern: int | None, mixed: int | None,
        marker_pattern: int | None, count: int | None, rng: Any, frng: Any, *, extra: bool = False,
    ) -> None:  # fmt: skip
        f = self.faults
        end = start + self._exposure_ms / 1000.0
        if self.exposure_output is not None and self.trigger.mode == "off" and not extra:
            delay = end - time.monotonic()
            if delay > 0 and self._stop_evt.wait(delay):
                self.exposure_output(False)
                return
            # the exposure ends: a follower switches the pattern
            self.exposure_output(False, float("nan"), end)
        ready = end + self.readout_ms / 1000.0
        delay = ready - time.monotonic()
        if delay > 0 and self._stop_evt.wait(delay):
            return
        if not extra and frng.random() < f.drop_prob:
            self.fault_log.append(FaultRecord("drop", frame_id, count, start))
            log.debug("%s: frame %d dropped (injected)", self.name, frame_id)
            return
        stall = f.stall_after_frames
        if stall is not None and self.frames_delivered >= stall and not self._failed:
            self.fail()
        if self._failed:
            return
        lit = 1.0
        if self.lit_fraction is not None and count is not None and not extra:
            lit = min(max(float(self.lit_fraction(count)), 0.0), 1.0)
        full = self._render(pattern, mixed, rng, lit=lit)
        if self.marker:
            encode_marker(full, marker_pattern, count)
        r = self._roi
        data = full[r.y : r.y + r.height, r.x : r.x + r.width].copy()
        self._frames.put(
            Frame(frame_id, start, data, int(start * 1e9), {"timestamp": "exposure_start"})
        )
        self.frames_delivered += 1


def list_cameras() -> list[Any]:
    """The simulated camera is always there (discovery entry for ``scope devices``)."""
    from scope.devices.camera import CameraInfo

    return [
        CameraInfo(kind="simulated", id="sim://camera", model="SimulatedCamera", vendor="scope")
    ]
