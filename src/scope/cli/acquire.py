"""``scope acquire``: synchronised SIM acquisition to OME-Zarr (or OME-TIFF).

Without ``--camera`` and ``--controller`` it runs the built-in simulated microscope (virtual
sample, the controller emulator on a pseudo-terminal, a simulated camera triggered by it).

Examples
--------
``scope acquire --sets 20 -o run.zarr``                       (simulated microscope)
``scope acquire --camera genicam:0 --controller /dev/ttyACM0 --sets 100 -o run.zarr``
``scope acquire --camera v4l2:/dev/video0 --controller /dev/ttyACM0 --sets 0 -o run.zarr``
(``--sets 0``: until Ctrl-C) ``--reconstruct`` also writes ``run.sim.ome.tif`` and
``run.params.json`` (as ``scope reconstruct`` does, set by set; any length of run fits).
``scope acquire --preset hardware/presets/budget.toml ...`` takes the optics, the pattern and
the timing (exposure, and the dark time from the pattern switch) from a build's preset.
``scope acquire --controller /dev/ttyACM0 --clear-fault`` clears a fault the controller latched
(e.g. its watchdog after a crash).

Every setting is checked before the output is touched; the run takes its name only once its
first frame is on disk, so a run that cannot start leaves no file and never replaces an earlier
one. SIGTERM and SIGHUP end a run as Ctrl-C does (light off, file closed); further interrupts
wait until that is done.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scope.acquisition.engine import Interrupted, InterruptGuard

log = logging.getLogger(__name__)

#: what each pattern setting falls back to without a flag or a preset
DEFAULTS = {
    "exposure_ms": 5.0,
    "dark_ms": 1.0,
    "angles": [0.0, 60.0, 120.0],
    "phases": 3,
    "period_nm": 260.0,
    "na": 1.2,
    "wavelength": 525.0,
    "pixel_size": 65.0,
}


def register(subparsers: Any) -> None:
    from scope.cli.parameter_flags import (
        PHASES_HELP,
        DegreesAction,
        add_optics_flags,
        default_is,
        phases_count,
        positive_number,
        probability,
    )

    p = subparsers.add_parser(
        "acquire",
        help="acquire synchronised SIM sets (simulated microscope unless hardware is named)",
        description="Acquire SIM sets with the controller leading (hardware triggers), every "
        "frame tagged and streamed to disk, invalid sets detected. Without --camera and "
        "--controller the simulated microscope is used. Optics, pattern and timing come from "
        "the flags, else --preset, else the defaults shown.",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="run.zarr (OME-Zarr) or run.ome.tif (OME-TIFF); required unless only --clear-fault",
    )
    p.add_argument(
        "--sets",
        type=int,
        metavar="N",
        help="SIM sets to acquire (0 = until Ctrl-C); required unless only --clear-fault",
    )
    p.add_argument(
        "--camera",
        default=None,
        help="sim | genicam[:INDEX_OR_ID] | v4l2:/dev/videoN (default: sim)",
    )
    p.add_argument(
        "--cti", default=None, metavar="FILE", help="GenTL producer (.cti) for --camera genicam"
    )
    p.add_argument(
        "--controller",
        default=None,
        help="serial port of the pattern controller, or sim:// (default with sim)",
    )
    p.add_argument(
        "--clear-fault",
        action="store_true",
        help="clear a fault the controller latched in an earlier run (e.g. WATCHDOG after a "
        "crash) before acquiring; alone (no --sets/-o) it only clears it",
    )
    p.add_argument(
        "--preset",
        metavar="FILE.toml",
        help="a build's setup preset (hardware/presets/budget.toml, or a name in "
        "reconstruction/presets): optics, pattern angles/period, exposure and the dark time "
        "its pattern switch needs; flags override it",
    )
    p.add_argument(
        "--exposure-ms",
        type=positive_number,
        metavar="MS",
        default=None,
        help="exposure of each frame, ms (default: the preset's, else 5)",
    )
    p.add_argument(
        "--dark-ms",
        type=positive_number,
        metavar="MS",
        default=None,
        help="gap between exposures, ms: pattern switch and settling + readout (default: from the "
        "preset's pattern_switch_time_ms, trigger latency and readout, else 1)",
    )
    p.add_argument(
        "--trigger",
        choices=("hardware", "follower", "software"),
        default="hardware",
        help="hardware: the controller triggers the camera (leader mode, default); follower: "
        "the camera free-runs at 1000 / (exposure + dark) Hz and its exposure-active output "
        "advances the controller (wire it to GP14); software: the host triggers each frame",
    )
    p.add_argument(
        "--trigger-line",
        default="Line0",
        metavar="LINE",
        help="the camera's GenICam input line the controller's trigger is wired to (default: "
        "%(default)s; Basler opto-isolated input: Line1)",
    )
    p.add_argument(
        "--pixel-format",
        default=None,
        metavar="FORMAT",
        help="camera pixel format, Mono8/Mono10/Mono12/Mono16 (default: the camera's; a "
        "colour default is switched to a monochrome format it offers)",
    )
    p.add_argument(
        "--angles",
        nargs="+",
        action=DegreesAction,
        default=None,
        metavar="DEG",
        help="pattern angles at the sample, degrees: 0 60 120 or 0,60,120 (default: the "
        "preset's, else 0 60 120)",
    )
    p.add_argument(
        "--phases",
        type=phases_count(),
        metavar="N",
        default=None,
        help=default_is(PHASES_HELP, "the preset's, else 3"),
    )
    p.add_argument(
        "--period-nm",
        type=positive_number,
        metavar="NM",
        default=None,
        help="nominal pattern period at the sample, nm (default: the preset's, else 260)",
    )
    add_optics_flags(p, "the preset's, else 1.2", "the preset's, else 525", "the preset's, else 65")
    p.add_argument(
        "--shape",
        type=int,
        nargs=2,
        default=[128, 128],
        metavar=("Y", "X"),
        help="simulated camera size, pixels (default: 128 128)",
    )
    p.add_argument(
        "--roi",
        type=int,
        nargs=4,
        default=None,
        metavar=("X", "Y", "WIDTH", "HEIGHT"),
        help="region of interest on the sensor, pixels (default: the whole sensor); the run "
        "records it, so camera maps measured on the whole sensor are cut to it",
    )
    p.add_argument(
        "--sample",
        default="mixed",
        choices=("filaments", "beads", "mixed", "siemens"),
        help="simulated: the sample under the microscope (default: %(default)s)",
    )
    p.add_argument(
        "--drop-prob",
        type=probability,
        metavar="P",
        default=0.0,
        help="simulated: probability per frame that the camera drops it (default: %(default)s)",
    )
    p.add_argument(
        "--extra-prob",
        type=probability,
        metavar="P",
        default=0.0,
        help="simulated: probability per frame of an extra, untriggered frame (default: "
        "%(default)s)",
    )
    p.add_argument(
        "--marker",
        action="store_true",
        help="simulated: write the pattern index and pulse count into each frame's corner",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run of that name (only once the new run's first frame is "
        "on disk)",
    )
    p.add_argument(
        "--reconstruct",
        action="store_true",
        help="also reconstruct the valid sets (and those kept without their faulty frames: "
        "dropped, late or extra) into <output>.sim.ome.tif (+ .params.json), also after Ctrl-C",
    )
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------------
# settings: flags > preset > defaults
# ------------------------------------------------------------------------------------------------
def _check_angles(angles: list[float], preset: str | None = None) -> None:
    """Refuse pattern angles closer than 1° (mod 180°): they are one orientation, and the
    reconstruction could not tell their sets apart. ``preset``: the angles came from this
    preset, not from ``--angles``."""
    from scope.sim.gratings import MIN_ANGLE_SEPARATION_DEG, check_distinct_angles

    values = " ".join(f"{v:g}" for v in angles)
    given = f"--angles {values}" if preset is None else f"the angles {values} of --preset {preset}"

    def message(i: int, j: int, apart: float) -> str:
        return (
            f"{given}: {angles[i]:g}° and {angles[j]:g}° are {apart:.2g}° apart (mod 180°), "
            f"one orientation; SIM needs different orientations at least "
            f"{MIN_ANGLE_SEPARATION_DEG:g}° apart, e.g. --angles 0 60 120"
        )

    check_distinct_angles(angles, message=message)


def _preset_settings(
    name: str, exposure_ms: float | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Optics, pattern and timing a preset gives (keys as the flags), and where each came
    from (for the log). The dark time is the one the acquisition's exposure needs:
    ``exposure_ms`` (the flag) when given, else the preset's."""
    from scope.batch.config import find_preset, load_preset

    options, preset_name = load_preset(name)
    path = find_preset(name)
    from scope.planning import load_preset as load_setup

    doc = load_setup(path)
    got: dict[str, Any] = {}
    notes: list[str] = []
    names = {"na": "na", "wavelength_nm": "wavelength", "pixel_size_nm": "pixel_size",
             "immersion_index": "immersion"}  # fmt: skip
    for key, flag in names.items():
        value = getattr(options, key)
        if isinstance(value, list):  # one wavelength per channel: acquisition has one
            value = value[0]
        if value is not None:
            got[flag] = float(value)
    if options.n_phases:
        got["phases"] = int(options.n_phases)
    if options.angles_deg:
        got["angles"] = [float(a) for a in options.angles_deg]
        if options.period_nm is not None:
            got["period_nm"] = options.period_nm
        notes.append(f"pattern angles and period from [{options.prior_table or 'pattern'}]")
    else:
        device = _device_pattern(doc, options.n_angles, got.get("phases"))
        if device is not None:
            got["angles"], got["period_nm"] = device
            notes.append(
                "pattern angles and period as `scope patterns --preset` makes them for the "
                "preset's device (give --angles/--period-nm if yours differ)"
            )
        elif options.period_nm is not None:
            got["period_nm"] = options.period_nm
        if "angles" not in got and options.n_angles:
            n = int(options.n_angles)
            got["angles"] = [i * 180.0 / n for i in range(n)]
    acquisition = doc.get("acquisition", {})
    if "exposure_ms" in acquisition:
        got["exposure_ms"] = float(acquisition["exposure_ms"])
    if exposure_ms is None:
        exposure_ms = got.get("exposure_ms", DEFAULTS["exposure_ms"])
    dark = _preset_dark_ms(doc, exposure_ms)
    if dark is not None:
        got["dark_ms"], why = dark
        notes.append(why)
    log.info("preset %s (%s): %s", preset_name, path, "; ".join(notes) or "optics")
    return got, notes


def _device_pattern(doc: dict[str, Any], n_angles: int | None, n_phases: int | None) -> Any:
    """``(angles_deg, periods_nm)`` at the sample of the gratings ``scope patterns --preset``
    writes for the preset's pattern device (:func:`scope.cli.patterns.device_patterns`, no
    flags but the counts; None: the preset's), or None when the preset has no such device."""
    from scope.errors import ScopeError

    if "illuminator" not in doc or "objective" not in doc:
        return None
    try:
        from scope.cli.patterns import device_patterns

        # only the gratings are needed, not the device-sized frames
        patterns = device_patterns(doc, n_angles=n_angles, n_phases=n_phases, shape=(64, 64))
    except (ScopeError, ValueError, TypeError, AttributeError, ImportError) as err:
        log.info("the preset's pattern device gives no nominal pattern (%s)", err)
        return None
    angles = patterns.nominal.angles
    return [a.angle_deg for a in angles], [a.period_nm for a in angles]


def _preset_dark_ms(doc: dict[str, Any], exposure_ms: float) -> tuple[float, str] | None:
    """Leader mode needs ``dark_ms >= max(t_s + t_l, T_cam - t_e)`` (docs/acquisition.md):
    the pattern switch and the camera's trigger latency, and the camera's own frame period."""
    illuminator = doc.get("illuminator", {})
    camera = doc.get("camera", {})
    if "pattern_switch_time_ms" not in illuminator:
        return None
    t_s = float(illuminator["pattern_switch_time_ms"])
    t_l = float(camera.get("trigger_latency_ms", 0.0))
    t_cam = 0.0
    if "readout_time_ms" in camera:
        readout = float(camera["readout_time_ms"])
        overlapped = bool(camera.get("overlapped_readout", False))
        t_cam = max(exposure_ms, readout) if overlapped else exposure_ms + readout
        if camera.get("max_fps"):
            t_cam = max(t_cam, 1000.0 / float(camera["max_fps"]))
    dark = max(t_s + t_l, t_cam - exposure_ms)
    why = (
        f"dark time {dark:.4g} ms = max(pattern switch {t_s:g} ms + trigger latency {t_l:g} ms, "
        f"camera frame period {t_cam:.4g} ms - exposure {exposure_ms:g} ms)"
    )
    return round(dark, 3), why


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Each setting from its flag, else the preset, else the default."""
    from scope.errors import ConfigurationError

    preset: dict[str, Any] = {}
    if args.preset:
        preset, _ = _preset_settings(args.preset, args.exposure_ms)
    out: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        flag = getattr(args, key)
        out[key] = flag if flag is not None else preset.get(key, default)
    out["immersion"] = preset.get("immersion")
    # a preset's per-angle periods fit its own angles only
    periods = out["period_nm"]
    if args.angles is not None and isinstance(periods, list) and len(periods) != len(args.angles):
        out["period_nm"] = float(sum(out["period_nm"]) / len(out["period_nm"]))
    from_preset = args.preset if args.angles is None else None
    _check_angles([float(a) for a in out["angles"]], from_preset)
    if out["phases"] < 3:
        raise ConfigurationError(f"--phases must be >= 3, got {out['phases']}")
    return out


def _optics(settings: dict[str, Any]) -> tuple[Any, Any]:
    from pydantic import ValidationError

    from scope.batch.config import validation_message
    from scope.errors import ConfigurationError
    from scope.optics import OpticalSetup
    from scope.sim.params import SIMParameters

    optics = {
        "na": settings["na"],
        "wavelength_nm": settings["wavelength"],
        "pixel_size_nm": settings["pixel_size"],
    }
    if settings.get("immersion") is not None:
        optics["immersion_index"] = settings["immersion"]
    try:
        setup = OpticalSetup(**optics)
    except ValidationError as err:  # --na 5, --pixel-size 0: one line, not a traceback
        names = {"na": "--na", "wavelength_nm": "--wavelength", "pixel_size_nm": "--pixel-size",
                 "immersion_index": "the preset's immersion index"}  # fmt: skip
        raise ConfigurationError(validation_message(err, names=names)) from None
    params = SIMParameters.equidistant(
        settings["angles"], period_nm=settings["period_nm"], n_phases=settings["phases"]
    )
    return setup, params


# ------------------------------------------------------------------------------------------------
# devices
# ------------------------------------------------------------------------------------------------
def _simulated(args: argparse.Namespace) -> bool:
    """Whether the run uses the built-in simulated microscope (``--camera sim``, the default)."""
    return (args.camera or "sim").strip() == "sim"


def _open_hardware(args: argparse.Namespace, setup: Any, params: Any) -> Any:
    """(context manager, camera, controller) for what the flags name."""
    from scope.errors import ConfigurationError

    cam_spec = (args.camera or "sim").strip()
    if _simulated(args):
        if args.controller not in (None, "sim://"):
            raise ConfigurationError(
                f"the simulated camera is triggered by the emulated controller only; drop "
                f"--controller {args.controller} or name your real camera with --camera"
            )
        from scope.devices.simulated_camera import FaultInjection
        from scope.devices.simulated_microscope import SimulatedMicroscope

        faults = FaultInjection(drop_prob=args.drop_prob, extra_prob=args.extra_prob)
        m = SimulatedMicroscope(
            tuple(args.shape),
            params=params,
            setup=setup,
            sample_kind=args.sample,
            faults=faults,
            camera_options={"marker": args.marker},
        )
        m.connect()
        return m, m.camera, m.controller
    from scope.devices.real_devices import open_real_devices

    return open_real_devices(cam_spec, args.controller, cti=args.cti)


def _clear_fault(controller: Any) -> None:
    status = controller.status()
    if status.state == "FAULT":
        log.warning("clearing the latched %s fault of the controller on %s (--clear-fault)",
                    status.fault, controller.port)  # fmt: skip
        controller.clear_fault()
    else:
        log.info("the controller on %s has no fault latched (%s)", controller.port, status.state)


def _clear_fault_only(args: argparse.Namespace) -> int:
    """``scope acquire --controller PORT --clear-fault``: clear, report, acquire nothing."""
    from scope.devices.serial_controller import SerialPatternController
    from scope.errors import ConfigurationError

    if not args.controller or args.controller == "sim://":
        raise ConfigurationError(
            "--clear-fault alone needs the controller's serial port: scope acquire --controller "
            "/dev/ttyACM0 --clear-fault (`scope devices` lists the ports)"
        )
    with SerialPatternController(args.controller) as controller:
        before = controller.status()
        _clear_fault(controller)
        after = controller.status()
    what = f"fault {before.fault} cleared" if before.state == "FAULT" else "no fault was latched"
    print(f"controller on {args.controller}: {what}; state {after.state}, light off")
    return 0


# ------------------------------------------------------------------------------------------------
# the command
# ------------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    from scope.acquisition.engine import (
        AcquisitionConfig,
        AcquisitionEngine,
        Interrupted,
        InterruptGuard,
    )
    from scope.acquisition.writer import output_format
    from scope.errors import ConfigurationError

    if args.clear_fault and args.sets is None and args.output is None:
        return _clear_fault_only(args)
    if args.sets is None or args.output is None:
        raise ConfigurationError(
            "give --sets N (0 = until Ctrl-C) and -o run.zarr (or run.ome.tif); "
            "--controller PORT --clear-fault alone only clears a latched controller fault"
        )
    if args.sets < 0:
        raise ConfigurationError(f"--sets must be >= 0 (0 = until Ctrl-C), got {args.sets}")
    if _simulated(args) and min(args.shape) < 16:
        raise ConfigurationError(
            f"--shape {args.shape[0]} {args.shape[1]}: the simulated camera needs at least 16 "
            "pixels a side (e.g. --shape 128 128)"
        )
    output_format(args.output)  # run.zarr or run.ome.tif, nothing else
    folder = next((p for p in args.output.absolute().parents if p.exists()), None)
    if folder is not None and not folder.is_dir():  # not "aborted: ... '.run.zarr.starting'"
        raise ConfigurationError(
            f"cannot write {args.output}: {folder} is a file, not a folder; choose another -o"
        )
    if args.output.exists() and not args.overwrite:  # before the light and camera start
        raise ConfigurationError(
            f"{args.output} exists (an earlier run?): choose another name, or --overwrite to "
            "replace it"
        )
    settings = _settings(args)
    setup, params = _optics(settings)
    cfg = AcquisitionConfig(
        n_sets=args.sets or None,
        n_angles=len(settings["angles"]),
        n_phases=settings["phases"],
        exposure_ms=settings["exposure_ms"],
        dark_ms=settings["dark_ms"],
        trigger=args.trigger,
        trigger_line=args.trigger_line,
    )
    interrupted: Interrupted | None = None
    summary = None
    simulated: dict[str, Any] | None = None
    # SIGINT, SIGTERM and SIGHUP raise Interrupted once; closing the devices is not interrupted
    with (
        _routine_messages_hidden(getattr(args, "verbose", 0)),
        InterruptGuard(ignore_after_interrupt=True) as signals,
    ):
        try:
            hw, camera, controller = _open_hardware(args, setup, params)
        except Interrupted as err:  # (what was opened, its opener closed)
            print(f"scope acquire: {err}", file=sys.stderr)
            return 128 + err.signum
        try:
            if args.clear_fault:
                _clear_fault(controller)
            if args.pixel_format:
                camera.pixel_format = args.pixel_format
            if args.roi is not None:
                camera.roi = tuple(args.roi)
            engine = AcquisitionEngine(
                camera,
                controller,
                args.output,
                cfg,
                setup=setup,
                params=params,
                overwrite=args.overwrite,
            )
            progress = None if getattr(args, "quiet", False) else _Progress(engine, args.sets)
            if progress is not None:  # -q: only errors
                engine.add_callback(progress)
            try:
                summary = engine.run()
            finally:
                summary = engine.summary
                if progress is not None:
                    progress.finish()
        except Interrupted as err:
            interrupted = err
        finally:
            signals.hold()  # closing the devices (light off) is not interrupted
            hw.close()
        if interrupted is None and signals.first is not None:
            interrupted = signals.first  # it came while the devices were being closed
        fault_log = getattr(camera, "fault_log", None)
        if _simulated(args) and fault_log is not None:
            # the simulated microscope: what its camera really did (ground truth)
            simulated = {
                "faults_asked": bool(args.drop_prob or args.extra_prob),
                "camera_faults": len(fault_log),
            }
        if summary is not None and summary.state != "acquiring":
            _report(summary, trigger=cfg.trigger, simulated=simulated)
            if args.reconstruct:
                _reconstruct_after(args, summary, setup, params, cfg, interrupted, signals)
    if interrupted is not None:
        print(f"scope acquire: {interrupted}", file=sys.stderr)
        return 128 + interrupted.signum
    return 0


#: loggers whose INFO messages are routine (connected, armed, started, closed ...): shown with -v
ROUTINE_LOGGERS = ("scope.devices", "scope.acquisition")


@contextlib.contextmanager
def _routine_messages_hidden(verbose: int) -> Any:
    """Without ``-v``, the devices' and the engine's routine INFO messages are not shown (their
    warnings and errors are): the progress, the summary and what went wrong are what a run
    prints. The levels are restored afterwards."""
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in ROUTINE_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        if lg.getEffectiveLevel() < logging.WARNING:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _report(s: Any, *, trigger: str = "hardware", simulated: dict[str, Any] | None = None) -> None:
    """The run's summary on stdout. ``simulated``: the simulated microscope's ground truth
    (``faults_asked``: --drop-prob/--extra-prob given; ``camera_faults``: what its camera
    injected or missed)."""
    kept = set(s.sets_without_dropped_frames)
    print(
        f"{s.path}: {s.frames_written} frames, "
        f"{s.sets_valid} valid / {s.sets_invalid} invalid sets"
        + (f" ({len(kept)} of them kept without their faulty frames)" if kept else "")
        + ", "
        f"{len(s.dropped_pulses)} dropped, {len(s.extra_frames)} extra, "
        f"{len(s.late_frames)} late frames"
        + (f", {len(s.cut_exposures)} cut short by the end of the run" if s.cut_exposures else "")
        + f" ({s.duration_s:.1f} s)"
    )
    # the sets lost first (each costs a time point), then the kept ones; ten at most
    ordered = sorted(s.invalid_sets.items(), key=lambda item: (item[0] in kept, item[0]))
    for index, reasons in ordered[:10]:
        said = " (kept: reconstructed from its good frames)" if index in kept else ""
        print(f"  set {index} invalid: {'; '.join(reasons)}{said}")
    if len(ordered) > 10:
        print(f"  ... and {len(ordered) - 10} more invalid sets (all of them "
              "in the run's metadata: summary.invalid_sets)")  # fmt: skip
    overruns = _overruns_line(s, trigger, simulated is not None)
    if overruns:
        print(overruns)
    faults = s.dropped_pulses or s.extra_frames or s.late_frames or s.frame_id_gaps
    if (
        simulated is not None
        and faults
        and not simulated["faults_asked"]
        and not simulated["camera_faults"]
    ):
        # the simulated camera delivered every frame on time: what the engine saw is the
        # emulation falling behind on this computer, not a fault of the (simulated) devices
        print(
            "  simulated microscope: no fault was injected and its camera delivered every "
            "frame; the computer was too busy to emulate the controller and camera in time "
            "(these counts come from that). Close other programs, or run again."
        )
    if s.clipped_frames:
        print(
            f"warning: {s.clipped_frames} of {s.frames_written} frames have values at the "
            f"camera's full scale (up to {100 * s.clipped_share_max:.2g} % of a frame): bright "
            "structures are clipped there and lose their SIM detail; lower the exposure or "
            "the light"
        )


def _overruns_line(s: Any, trigger: str, simulated: bool) -> str:
    """The controller's overrun count in plain words ("" when there were none).

    Leader mode: steps the controller took later than its timing tolerance; it delays its
    schedule instead of shortening an exposure or the settling time, so those frames are fine
    (the engine checks each frame's timing itself: its ``late`` count). Follower mode:
    exposures the camera began before the pattern had settled, which did see two patterns.
    """
    counts = s.controller_counts or {}
    n = int(counts.get("overruns") or 0)
    if not n or trigger == "software":
        return ""
    of = f"{n} of {counts.get('pulses') or s.pulses} exposures"
    if trigger == "follower":
        return (
            f"  controller: {of} began before the pattern had settled (overruns): lengthen the "
            "camera's frame period or shorten the pattern switch"
        )
    tol_us = s.controller_timing_tolerance_us
    tol = f"over {tol_us / 1000:g} ms late" if tol_us else "later than its timing tolerance"
    why = (
        "the emulated controller shares this computer's processor"
        if simulated
        else "a count that grows run after run says the controller or the computer is too busy"
    )
    return (
        f"  {of} started {tol} (controller overruns): the controller delayed its next steps "
        f"instead of cutting them short, so these frames are fine; {why}"
    )


def _reconstruct_after(
    args: argparse.Namespace,
    summary: Any,
    setup: Any,
    params: Any,
    cfg: Any,
    interrupted: Interrupted | None,
    signals: InterruptGuard,
) -> None:
    """``--reconstruct``: the valid sets, also of a run ended by Ctrl-C (the way a ``--sets 0``
    run ends); after SIGTERM/SIGHUP, or a second Ctrl-C, it is skipped with the command."""
    from scope.acquisition.engine import Interrupted

    argv = _reconstruct_argv(args.output, setup, params, cfg)
    command = "scope reconstruct " + " ".join(shlex.quote(a) for a in argv)
    if summary.sets_valid == 0:
        print(f"no valid set to reconstruct in {args.output}")
        return
    if interrupted is not None and interrupted.name != "SIGINT":
        print(f"reconstruction skipped ({interrupted.name}); to run it: {command}")
        return
    if interrupted is not None:
        # sets kept without their faulty frames are read after the first verified set only
        first_valid = next(i for i in itertools.count() if i not in summary.invalid_sets)
        kept = sum(s > first_valid for s in summary.sets_without_dropped_frames)
        print(
            f"reconstructing the {summary.sets_valid} valid sets acquired before Ctrl-C"
            + (f" (and {kept} without their faulty frames)" if kept else "")
            + " (Ctrl-C again skips it)",
            file=sys.stderr,
        )
    signals.rearm()
    try:
        _reconstruct(args.output, argv, params)
    except Interrupted as err:
        print(f"reconstruction skipped ({err}); to run it: {command}")


def _sim_output(path: Path) -> Path:
    """``run.zarr`` / ``run.ome.tif`` -> ``run.sim.ome.tif`` beside it (dots in the name
    kept: ``day.1.zarr`` -> ``day.1.sim.ome.tif``)."""
    from scope.io.writers import output_base

    return path.with_name(output_base(path) + ".sim.ome.tif")


def _reconstruct_argv(path: Path, setup: Any, params: Any, cfg: Any) -> list[str]:
    argv = [str(path), "-o", str(_sim_output(path)), "--angles", str(cfg.n_angles), "--phases",
            str(cfg.n_phases)]  # fmt: skip
    for flag, value in (
        ("--na", setup.na),
        ("--wavelength", setup.wavelength_nm),
        ("--pixel-size", setup.pixel_size_nm),
        ("--immersion", setup.immersion_index),
    ):
        argv += [flag, repr(float(value))]
    angles = ",".join(f"{a.angle_deg:.4g}" for a in params.angles)
    period = sum(a.period_nm for a in params.angles) / params.n_angles
    return [*argv, "--prior-angles", angles, "--prior-period", f"{period:.5g}"]


class _Progress:
    """Prints one progress line (carriage return on a terminal, every 10 % otherwise)."""

    def __init__(self, engine: Any, n_sets: int) -> None:
        self.engine = engine
        self.n = n_sets
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.last = -1

    def __call__(self, index: int, frames: Any, meta: dict[str, Any]) -> None:
        s = self.engine.summary
        done = s.sets_valid + s.sets_invalid
        rate = done / max(time.monotonic() - self.t0, 1e-9)
        # the frames up to this set's last one: a set is verified once a frame of the next has
        # arrived (none of its own can still come), so the count on disk is one ahead
        through = max(meta.get("frame_indices") or [s.frames_written - 1]) + 1
        line = (
            f"set {done}{'/' + str(self.n) if self.n else ''}: {s.sets_valid} valid, "
            f"{s.sets_invalid} invalid, {through} frames, {rate:.1f} sets/s"
        )
        if self.tty:
            print("\r" + line, end="", file=sys.stderr, flush=True)
        else:
            step = max(1, (self.n or 100) // 10)
            if done // step != self.last:
                self.last = done // step
                print(line, file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _reconstruct(path: Path, argv: list[str], params: Any) -> None:
    """Reconstruct the run's verified sets as ``scope reconstruct`` does (set by set, straight
    to ``<run>.sim.ome.tif`` with its ``.params.json``), the pattern generator's nominal
    parameters serving as priors."""
    from scope.cli import reconstruct as reconstruct_cli

    parser = argparse.ArgumentParser(prog="scope reconstruct")
    reconstruct_cli.register(parser.add_subparsers())
    rargs = parser.parse_args(["reconstruct", *argv])
    reconstruct_cli.reconstruct_file(path, _sim_output(path), rargs, prior=params)
