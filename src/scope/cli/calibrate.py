"""``scope calibrate``: camera, pattern and OTF calibration saved into a setup preset.

Examples
--------
``scope calibrate camera --dark dark.tif --flat f1.tif f2.tif f3.tif f4.tif --preset my.toml``
``scope calibrate pattern slide.tif --preset my.toml``          (uniform fluorescent slide)
``scope calibrate pattern beads.tif --sample structured --preset my.toml``
``scope calibrate otf beads_widefield.tif --bead-diameter-nm 100 --preset my.toml``

Optics (NA, emission wavelength, pixel size at the sample) come from the flags, else the preset's
``[optics]`` table, else its ``[camera]``/``[objective]``/``[acquisition]`` tables (as ``scope
plan`` computes them). The camera offset comes from ``--offset-adu``, else the preset's
``[calibration.camera]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    from scope.cli.parameter_flags import add_pattern_sequence_flags

    p = subparsers.add_parser(
        "calibrate",
        help="calibrate the camera, the pattern or the OTF into a setup preset",
        description="Calibration workflows; results go into the preset TOML under "
        "[calibration.camera], [calibration.pattern] or [calibration.otf], keeping the rest.",
    )
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)

    cam = sub.add_parser("camera", help="offset, gain, read noise (photon transfer)")
    cam.add_argument(
        "--dark",
        required=True,
        help="dark frames (n, Y, X): TIFF, OME-Zarr, MRC or a scope acquire run",
    )
    cam.add_argument(
        "--flat",
        required=True,
        nargs="+",
        help="frames of a uniform light field, one file per level (as --dark)",
    )
    cam.add_argument("--maps", action="store_true", help="also per-pixel sCMOS maps")
    cam.add_argument("--saturation-adu", type=float, help="levels reaching this are dropped")

    pat = sub.add_parser("pattern", help="pattern angles, periods and phase steps")
    pat.add_argument(
        "raw",
        nargs="+",
        help="raw SIM sets: TIFF/OME-TIFF, MRC, OME-Zarr or a scope acquire run (every set of "
        "every file is used)",
    )
    pat.add_argument("--sample", choices=["uniform", "structured"], default="uniform")
    add_pattern_sequence_flags(pat)

    otf = sub.add_parser("otf", help="measured OTF from bead images")
    otf.add_argument("images", help="sparse beads (Y, X) or (n, Y, X), summed: TIFF, OME-Zarr, MRC")
    otf.add_argument("--bead-diameter-nm", type=float, default=100.0)

    for q in (cam, pat, otf):
        q.add_argument("--preset", required=True, help="setup preset TOML to write into")
    for q in (pat, otf):
        q.add_argument("--na", type=float)
        q.add_argument("--wavelength", type=float, help="emission wavelength, nm")
        q.add_argument("--pixel-size", type=float, help="camera pixel at the sample, nm")
        q.add_argument("--offset-adu", type=float)
    p.set_defaults(func=run)


def _read(path: str) -> Any:
    """The frames of a TIFF as stored, or of any other file scope reads (an OME-Zarr, a scope
    acquire run, MRC) as ``(n, Y, X)``."""
    import numpy as np
    import tifffile

    from scope.errors import DataFormatError
    from scope.io.raw import open_raw

    p = Path(path)
    if not p.exists():
        raise DataFormatError(f"{p} does not exist")
    if p.is_dir() or p.suffix.lower() not in (".tif", ".tiff"):
        with open_raw(p) as stack:
            return np.asarray(stack.data[...]).reshape(-1, *stack.frame_shape)
    try:
        return tifffile.imread(p)
    except Exception as err:  # tifffile raises several types for a bad file
        raise DataFormatError(f"cannot read {p} as TIFF: {err}") from err


def _read_sets(args: argparse.Namespace) -> tuple[Any, int, int, dict[str, float]]:
    """Every SIM set of the raw files (any format scope reads; a run's own pattern sequence),
    their angles x phases, and the optics the first file states."""
    import numpy as np

    from scope.errors import DataFormatError
    from scope.io.raw import open_sim_stack

    sets, shapes, stated = [], set(), {}
    for path in args.raw:
        stack, n_angles, n_phases = open_sim_stack(
            path, n_angles=args.angles, n_phases=args.phases, frame_order=args.frame_order
        )
        with stack:
            sets += [stack.read_set(i) for i in range(stack.n_sets)]
            shapes.add((n_angles, n_phases, stack.frame_shape))
            for key, value in (
                ("na", stack.na),
                ("wavelength_nm", stack.wavelength_nm),
                ("pixel_size_nm", stack.pixel_size_nm),
            ):
                if value is not None:
                    stated.setdefault(key, value)
    if len(shapes) > 1:
        raise DataFormatError(
            f"the raw files differ in angles x phases or frame size ({sorted(shapes)}): "
            "calibrate from runs of one pattern sequence and camera region"
        )
    n_angles, n_phases, _ = shapes.pop()
    return np.stack(sets), n_angles, n_phases, stated


def _optics(
    args: argparse.Namespace, preset: dict[str, Any], stated: dict[str, float] | None = None
) -> Any:
    from scope.errors import ConfigurationError
    from scope.optics import OpticalSetup

    values: dict[str, Any] = {}
    table = preset.get("optics", {})
    for key in ("na", "wavelength_nm", "pixel_size_nm", "immersion_index"):
        if key in table:
            values[key] = table[key]
    if not {"na", "wavelength_nm", "pixel_size_nm"} <= values.keys() and "camera" in preset:
        from scope.planning import parts_from_preset, pixel_size_at_sample_nm

        try:
            camera, objective, _, acquisition = parts_from_preset(preset)
        except ConfigurationError:
            pass
        else:
            values.setdefault("na", objective.na)
            values.setdefault("wavelength_nm", acquisition.emission_wavelength_nm)
            values.setdefault(
                "pixel_size_nm",
                pixel_size_at_sample_nm(
                    camera,
                    objective,
                    relay_magnification=acquisition.camera_relay_magnification,
                ),
            )
            values.setdefault("immersion_index", objective.immersion_index)
    for flag, key in (
        ("na", "na"),
        ("wavelength", "wavelength_nm"),
        ("pixel_size", "pixel_size_nm"),
    ):
        if getattr(args, flag, None) is not None:
            values[key] = getattr(args, flag)
    for key, value in (stated or {}).items():  # what the raw file states, last
        values.setdefault(key, value)
    missing = {"na", "wavelength_nm", "pixel_size_nm"} - values.keys()
    if missing:
        raise ConfigurationError(
            f"optics incomplete, missing {sorted(missing)}: give --na, --wavelength and "
            "--pixel-size, or an [optics] table in the preset"
        )
    return OpticalSetup(**values)


def _offset(args: argparse.Namespace, preset: dict[str, Any]) -> float:
    if args.offset_adu is not None:
        return float(args.offset_adu)
    return float(preset.get("calibration", {}).get("camera", {}).get("offset_adu", 0.0))


def run(args: argparse.Namespace) -> int:

    from scope.calibration.preset import read_preset

    preset = read_preset(args.preset)
    out = sys.stdout
    if args.what == "camera":
        from scope.calibration.camera import (
            photon_transfer,
            pixel_maps,
            save_camera_calibration,
        )

        dark = _read(args.dark)
        flats = [_read(f) for f in args.flat]
        cal = photon_transfer(dark, flats, saturation_adu=args.saturation_adu)
        maps = pixel_maps(dark, flats, saturation_adu=args.saturation_adu) if args.maps else None
        save_camera_calibration(
            args.preset, cal, maps, maps_prefix=Path(args.preset).stem + "_camera"
        )
        out.write(
            f"offset {cal.offset_adu:.2f} ADU, gain {cal.gain_e_per_adu:.4f} e-/ADU "
            f"({cal.gain_adu_per_e:.4f} ADU/e-), read noise {cal.read_noise_e:.3f} e- "
            f"({cal.n_levels} levels, fit rms {cal.fit_rms_rel:.3f})\n"
        )
    elif args.what == "pattern":
        from scope.calibration.pattern import calibrate_pattern, save_pattern_calibration

        raw, n_angles, n_phases, stated = _read_sets(args)
        setup = _optics(args, preset, stated)
        cal = calibrate_pattern(
            raw,
            setup,
            n_angles=n_angles,
            n_phases=n_phases,
            sample=args.sample,
            offset_adu=_offset(args, preset),
        )
        save_pattern_calibration(args.preset, cal)
        for i, a in enumerate(cal.params.angles):
            steps = ", ".join(f"{s:.3f}" for s in cal.phase_steps_rad[i])
            out.write(
                f"angle {i}: {a.angle_deg:8.3f} deg, period {a.period_nm:7.2f} nm, phase steps "
                f"[{steps}] rad, modulation {a.modulation:.3f}\n"
            )
    else:
        from scope.calibration.otf import measure_otf, save_measured_otf

        setup = _optics(args, preset)
        measured = measure_otf(
            _read(args.images),
            setup.pixel_size_nm,
            bead_diameter_nm=args.bead_diameter_nm,
            offset_adu=_offset(args, preset),
        )
        save_measured_otf(args.preset, measured)
        out.write(
            f"OTF from {measured.n_beads} beads: cutoff {measured.cutoff_per_um:.3f} /µm "
            f"(theory 2NA/λ = {setup.cutoff_per_um:.3f} /µm)\n"
        )
    out.write(f"saved into {args.preset}\n")
    return 0
