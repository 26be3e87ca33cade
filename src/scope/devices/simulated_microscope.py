"""The simulated microscope: virtual sample + emulated controller + simulated camera.

It is what every entry point uses when no hardware is named (``scope acquire`` without
``--camera``/``--controller``, the demo, the tests, the notebooks). Nothing is faked on the host
side: the controller is the real :class:`~scope.devices.serial_controller.SerialPatternController`
talking over a pseudo-terminal to the firmware's state machine (``sim://``), and the camera is
triggered by the emulated board's trigger output — each exposure renders the virtual sample under
the pattern the board shows at that moment.

Wiring (what the emulator's hooks stand for on a real bench): the controller's trigger output
drives the camera's trigger input (leader mode); :attr:`SimulatedMicroscope.camera` learns the
pattern through ``emulator.hardware.on_trigger``, and, when software-triggered or free-running,
reads the pattern the board shows through ``pattern_source``. The camera's exposure-active
output drives the controller's exposure input (follower mode, free-running camera). In leader
mode the light is on exactly while the trigger output is high, so an exposure the board cut
short (``STOP`` or ``SAFE`` during it) collects light only until the trigger fell
(``lit_fraction``).

Examples
--------
>>> from scope.devices.simulated_microscope import SimulatedMicroscope
>>> with SimulatedMicroscope(shape=(64, 64)) as scope_:  # doctest: +SKIP
...     scope_.camera, scope_.controller, scope_.emulator
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from scope.devices.simulated_camera import FaultInjection, SimulatedCamera

log = logging.getLogger(__name__)


class SimulatedMicroscope:
    """Binds a virtual sample, the emulated controller (``sim://``) and a simulated camera.

    Parameters
    ----------
    shape : (Y, X)
        Camera sensor size (the sample is rendered on the 2x grid).
    params : SIMParameters, optional
        Patterns held by the illuminator, in pattern-index order (default: 3 angles x 3 phases,
        260 nm period).
    setup : OpticalSetup, optional
        Default: NA 1.2, 525 nm, 65 nm pixels.
    sample_kind : {"filaments", "beads", "mixed", "siemens"}
    sample_2x : ndarray, optional
        Your own virtual sample on the 2x grid (overrides ``sample_kind``).
    faults : FaultInjection, optional
        Faults the camera injects (dropped/extra frames, late triggers, stalls).
    seed : int
    controller_timeout_s : float
        Reply timeout of the controller link.
    emulator_options : dict, optional
        Passed to the emulator's simulated hardware (``timing_tol_us`` ...).
    camera_options : dict, optional
        Passed to :class:`SimulatedCamera` (``photons_peak``, ``readout_ms`` ...).
    """

    def __init__(
        self,
        shape: tuple[int, int] = (64, 64),
        *,
        params: Any = None,
        setup: Any = None,
        sample_kind: str = "mixed",
        sample_2x: np.ndarray | None = None,
        faults: FaultInjection | None = None,
        seed: int = 0,
        controller_timeout_s: float = 1.0,
        emulator_options: dict[str, Any] | None = None,
        camera_options: dict[str, Any] | None = None,
    ) -> None:
        from scope.devices.serial_controller import SerialPatternController
        from scope.optics import OpticalSetup
        from scope.sim.params import SIMParameters

        self.setup = setup or OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
        self.params = params or SIMParameters.equidistant([0, 60, 120], period_nm=260, n_phases=3)
        if sample_2x is None:
            from scope.sim.samples import make_sample

            sample_2x = make_sample((2 * shape[0], 2 * shape[1]), sample_kind, seed=seed)
        self.sample_2x = sample_2x
        self.controller = SerialPatternController(
            "sim://", timeout_s=controller_timeout_s, emulator_options=emulator_options
        )
        self.camera = SimulatedCamera(
            shape,
            sample_2x=sample_2x,
            params=self.params,
            setup=self.setup,
            faults=faults,
            pattern_source=self._pattern_now,
            lit_fraction=self._lit_fraction,
            seed=seed,
            **(camera_options or {}),
        )
        #: pulse -> (rise, fall) of the board's trigger output, until the camera reads it out
        self._trigger_high_s: dict[int, tuple[float, float]] = {}
        self._trigger_lock = threading.Lock()
        self._connected = False

    @property
    def emulator(self) -> Any:
        """The :class:`~scope.devices.emulator.ControllerEmulator` (after :meth:`connect`)."""
        return self.controller.emulator

    def _pattern_now(self) -> int:
        emu = self.controller.emulator
        if emu is None:
            return 0
        # a real board switches within microseconds of the camera's exposure edge; the
        # emulator's thread may lag behind under load, so let it catch up first
        emu.settle()
        return max(int(emu.hardware.pattern), 0)

    def _on_trigger(self, pulse: int, pattern: int, t_start_s: float, exposure_s: float) -> None:
        # the board's trigger output -> the camera's trigger input (dated at the firmware's
        # clock reading for the step: see SimulatedHardware.set_trigger)
        self.camera.hardware_trigger(pattern, pulse, t_start_s)

    def _on_exposure_end(self, pulse: int, pattern: int, t_start_s: float, t_end_s: float) -> None:
        with self._trigger_lock:
            spans = self._trigger_high_s
            spans[pulse] = (t_start_s, t_end_s)
            for old in [p for p in spans if p < pulse - 64]:  # read out long ago, or missed
                del spans[old]

    def _lit_fraction(self, pulse: int) -> float:
        """The share of the camera's exposure the light was on: the trigger output (the light,
        in leader mode) high from the pulse's start until it fell, or throughout when it was
        still high as the camera read out."""
        with self._trigger_lock:
            span = self._trigger_high_s.pop(pulse, None)
        exposure_s = (self.camera.exposure_ms or 0.0) / 1000.0
        if span is None or exposure_s <= 0:
            return 1.0
        return (span[1] - span[0]) / exposure_s

    def connect(self) -> SimulatedMicroscope:
        if self._connected:
            return self
        self.controller.connect()
        try:
            self.emulator.hardware.on_trigger.append(self._on_trigger)
            self.emulator.hardware.on_exposure_end.append(self._on_exposure_end)
            # the camera's exposure-active output -> the controller's input (follower mode)
            self.camera.exposure_output = self.emulator.hardware.camera_exposure
            self.camera.connect()
        except BaseException:
            self.controller.close()
            raise
        self._connected = True
        log.info("simulated microscope ready (controller on %s)", self.emulator.port)
        return self

    def close(self) -> None:
        """Camera closed, light off (SAFE), emulator stopped. Safe to call twice."""
        try:
            self.camera.close()
        finally:
            if self.controller.emulator is not None:
                hw = self.controller.emulator.hardware
                for hooks, hook in ((hw.on_trigger, self._on_trigger),
                                    (hw.on_exposure_end, self._on_exposure_end)):  # fmt: skip
                    if hook in hooks:
                        hooks.remove(hook)
            self.controller.close()
            self._connected = False

    def __enter__(self) -> SimulatedMicroscope:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()
