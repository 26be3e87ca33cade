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
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "acquire",
        help="acquire synchronised SIM sets (simulated microscope unless hardware is named)",
        description="Acquire SIM sets with the controller leading (hardware triggers), every "
        "frame tagged and streamed to disk, invalid sets detected. Without --camera and "
        "--controller the simulated microscope is used.",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        help="run.zarr (OME-Zarr) or run.ome.tif (OME-TIFF)",
    )
    p.add_argument(
        "--sets",
        type=int,
        required=True,
        metavar="N",
        help="SIM sets to acquire (0 = until Ctrl-C)",
    )
    p.add_argument(
        "--camera",
        default=None,
        help="sim | genicam[:INDEX_OR_ID] | v4l2:/dev/videoN (default: sim)",
    )
    p.add_argument("--cti", default=None, help="GenTL producer for --camera genicam")
    p.add_argument(
        "--controller",
        default=None,
        help="serial port of the pattern controller, or sim:// (default with sim)",
    )
    p.add_argument("--exposure-ms", type=float, default=5.0)
    p.add_argument(
        "--dark-ms",
        type=float,
        default=1.0,
        help="gap between exposures: pattern settling + readout (default 1)",
    )
    p.add_argument(
        "--trigger",
        choices=("hardware", "follower", "software"),
        default="hardware",
        help="hardware: the controller triggers the camera (leader mode, default); follower: "
        "the camera free-runs at 1000 / (exposure + dark) Hz and its exposure-active output "
        "advances the controller (wire it to GP14); software: the host triggers each frame",
    )
    p.add_argument("--trigger-line", default="Line0")
    p.add_argument("--angles", type=float, nargs="+", default=[0.0, 60.0, 120.0])
    p.add_argument("--phases", type=int, default=3)
    p.add_argument("--period-nm", type=float, default=260.0, help="nominal pattern period")
    p.add_argument("--na", type=float, default=1.2)
    p.add_argument("--wavelength", type=float, default=525.0, help="emission wavelength, nm")
    p.add_argument("--pixel-size", type=float, default=65.0, help="camera pixel at sample, nm")
    p.add_argument(
        "--shape",
        type=int,
        nargs=2,
        default=[128, 128],
        metavar=("Y", "X"),
        help="simulated camera size (default 128 128)",
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
    p.add_argument("--sample", default="mixed", choices=("filaments", "beads", "mixed", "siemens"))
    p.add_argument("--drop-prob", type=float, default=0.0, help="simulated: dropped frames")
    p.add_argument("--extra-prob", type=float, default=0.0, help="simulated: extra frames")
    p.add_argument(
        "--marker",
        action="store_true",
        help="simulated: write the pattern index and pulse count into each frame's corner",
    )
    p.add_argument("--overwrite", action="store_true")
    p.add_argument(
        "--reconstruct",
        action="store_true",
        help="also reconstruct the valid sets into <output>.sim.ome.tif (+ .params.json)",
    )
    p.set_defaults(func=run)


def _params(args: argparse.Namespace) -> Any:
    from scope.sim.params import SIMParameters

    return SIMParameters.equidistant(args.angles, period_nm=args.period_nm, n_phases=args.phases)


def _open_hardware(args: argparse.Namespace, setup: Any, params: Any) -> Any:
    """(context manager, camera, controller) for what the flags name."""
    from scope.errors import ConfigurationError

    cam_spec = (args.camera or "sim").strip()
    simulated = cam_spec == "sim"
    if simulated:
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


def run(args: argparse.Namespace) -> int:
    from scope.acquisition.engine import AcquisitionConfig, AcquisitionEngine
    from scope.errors import ConfigurationError
    from scope.optics import OpticalSetup

    if args.sets < 0:
        raise ConfigurationError(f"--sets must be >= 0 (0 = until Ctrl-C), got {args.sets}")
    if args.output.exists() and not args.overwrite:  # before the light and camera start
        raise ConfigurationError(
            f"{args.output} exists (an earlier run?): choose another name, or --overwrite to "
            "replace it"
        )
    setup = OpticalSetup(na=args.na, wavelength_nm=args.wavelength, pixel_size_nm=args.pixel_size)
    params = _params(args)
    cfg = AcquisitionConfig(
        n_sets=args.sets or None,
        n_angles=len(args.angles),
        n_phases=args.phases,
        exposure_ms=args.exposure_ms,
        dark_ms=args.dark_ms,
        trigger=args.trigger,
        trigger_line=args.trigger_line,
    )
    hw, camera, controller = _open_hardware(args, setup, params)
    try:
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
        summary = engine.run()
        if progress is not None:
            progress.finish()
    finally:
        hw.close()
    s = summary
    print(
        f"{s.path}: {s.frames_written} frames, "
        f"{s.sets_valid} valid / {s.sets_invalid} invalid sets, "
        f"{len(s.dropped_pulses)} dropped, {len(s.extra_frames)} extra, "
        f"{len(s.late_frames)} late frames ({s.duration_s:.1f} s)"
    )
    for index, reasons in list(s.invalid_sets.items())[:10]:
        print(f"  set {index} invalid: {'; '.join(reasons)}")
    if s.clipped_frames:
        print(
            f"warning: {s.clipped_frames} of {s.frames_written} frames have values at the "
            f"camera's full scale (up to {100 * s.clipped_share_max:.2g} % of a frame): bright "
            "structures are clipped there and lose their SIM detail; lower the exposure or "
            "the light"
        )
    if args.reconstruct:
        _reconstruct(args.output, setup, params, cfg)
    return 0


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
        line = (
            f"set {done}{'/' + str(self.n) if self.n else ''}: {s.sets_valid} valid, "
            f"{s.sets_invalid} invalid, {s.frames_written} frames, {rate:.1f} sets/s"
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


def _reconstruct(path: Path, setup: Any, params: Any, cfg: Any) -> None:
    """Reconstruct the run's verified sets as ``scope reconstruct`` does (set by set, straight
    to ``<run>.sim.ome.tif`` with its ``.params.json``), the pattern generator's nominal
    parameters serving as priors."""
    from scope.cli import reconstruct as reconstruct_cli

    out = path.with_name(path.name.split(".")[0] + ".sim.ome.tif")
    argv = [str(path), "-o", str(out), "--angles", str(cfg.n_angles), "--phases", str(cfg.n_phases)]
    for flag, value in (
        ("--na", setup.na),
        ("--wavelength", setup.wavelength_nm),
        ("--pixel-size", setup.pixel_size_nm),
        ("--immersion", setup.immersion_index),
    ):
        argv += [flag, repr(float(value))]
    parser = argparse.ArgumentParser(prog="scope reconstruct")
    reconstruct_cli.register(parser.add_subparsers())
    rargs = parser.parse_args(["reconstruct", *argv])
    reconstruct_cli.reconstruct_file(path, out, rargs, prior=params)
