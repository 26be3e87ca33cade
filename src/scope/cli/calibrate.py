"""``scope calibrate``: camera, pattern and OTF calibration saved into a setup preset.

Examples
--------
``scope calibrate camera --dark dark.tif --flat f1.tif f2.tif f3.tif f4.tif --preset my.toml``
``scope calibrate pattern slide.tif --preset my.toml``          (uniform fluorescent slide)
``scope calibrate pattern beads.tif --sample structured --preset my.toml``
``scope calibrate otf beads_widefield.tif --bead-diameter-nm 100 --preset my.toml``

Optics (NA, emission wavelength, pixel size at the sample) come from the flags, else from what
the raw file records (a ``scope acquire`` run, OME metadata: the values the frames were recorded
with), else from the preset's ``[optics]`` table, else its ``[camera]``/``[objective]``/
``[acquisition]`` tables (as ``scope plan`` computes them); a run and a preset that disagree are
warned about, naming both values. The camera offset comes from ``--offset``, else the
preset's ``[calibration.camera]``; with neither, ``scope calibrate pattern`` estimates it from a
structured sample's dark background and warns (a uniform slide has none: nothing is subtracted,
with a warning that the modulation reads low).

The preset must exist (a copy of ``hardware/presets/budget.toml`` or ``better.toml``) unless
``--create`` is given; only its ``[calibration.*]`` table is rewritten, comments and all else
are kept. Its folder is checked for writing before any work.

Checks before anything is saved: values at the camera's full scale (``--saturation-adu``, else
the data type's, or 1023/4095/16383 where 16-bit values pile up there) are clipped, so clipped
flat pixels and beads with clipped peaks are left out, with a warning; a flat no brighter than
the dark frames is refused (the files may be mixed up), and a photon-transfer fit far from a
straight line is warned about; optics out of range are refused in one line naming the flag, and
a measured OTF whose cutoff is more than 2x from 2 NA / λ is refused (the pixel size at the
sample, in nm, is most likely wrong), one more than 20 % off warned about.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path
from typing import Any

from scope.cli.parameter_flags import NA_HELP, PIXEL_SIZE_HELP, WAVELENGTH_HELP

log = logging.getLogger(__name__)

#: optics flag -> (OpticalSetup field, what it is, unit)
_OPTICS_FLAGS = (
    ("na", "na", "NA", ""),
    ("wavelength", "wavelength_nm", "emission wavelength", " nm"),
    ("pixel_size", "pixel_size_nm", "pixel size at the sample", " nm"),
)
#: relative difference above which a run's and a preset's optics are said to disagree
_OPTICS_REL_TOL = 5e-3
#: what each optics value is, in which unit, for a value out of range (the flags' helps)
_OPTICS_UNITS = {
    "na": f"--na: {NA_HELP}",
    "wavelength_nm": f"--wavelength: {WAVELENGTH_HELP}",
    "pixel_size_nm": f"--pixel-size: {PIXEL_SIZE_HELP}",
}

#: each calibration's --help: what it measures, from what, and where it goes (plain text)
_DESCRIPTIONS = {
    "camera": "Measure the camera's offset, gain and read noise by photon transfer, from dark "
    "frames and frames of a uniform light field at a few levels, and save them into the "
    "preset's [calibration.camera] (scope batch --preset subtracts that offset); with --maps "
    "also per-pixel offset, gain and read-noise maps (sCMOS), written beside the preset.",
    "pattern": "Measure the pattern's angles, periods, phase steps and modulation from raw SIM "
    "sets and save them into the preset's [calibration.pattern], the priors that scope batch "
    "--preset and scope acquire --preset use. Optics: the flags, else what the raw files "
    "record, else the preset's. The camera offset: --offset, else the preset's "
    "[calibration.camera], else estimated from a structured sample's dark background.",
    "otf": "Measure the optical transfer function from widefield images of sparse "
    "sub-resolution beads in focus (the bead's size divided out) and save it into the "
    "preset's [calibration.otf], which scope reconstruct --otf PRESET and scope batch "
    "--preset use. Optics: the flags, else the preset's. A cutoff more than 2x from 2 NA / "
    "wavelength is refused (the pixel size is most likely wrong).",
}

_EPILOG = """\
examples:
  scope calibrate camera --dark dark.tif --flat f1.tif f2.tif f3.tif f4.tif --preset my.toml
  scope calibrate pattern slide.tif --preset my.toml          (uniform fluorescent slide)
  scope calibrate pattern beads.tif --sample structured --preset my.toml
  scope calibrate otf beads_widefield.tif --bead-diameter-nm 100 --preset my.toml"""


def register(subparsers: Any) -> None:
    from scope.cli.parameter_flags import (
        SETUP_PRESET_HELP,
        HelpFormatter,
        add_offset_flag,
        add_optics_flags,
        add_pattern_sequence_flags,
        default_is,
        finite_number,
        non_negative_number,
        saturation_help,
    )

    p = subparsers.add_parser(
        "calibrate",
        help="calibrate the camera, the pattern or the OTF into a setup preset",
        description="Calibration workflows; results go into the preset TOML under "
        "[calibration.camera], [calibration.pattern] or [calibration.otf], keeping the rest "
        "of the file. Run scope calibrate WHAT --help for each one's flags.",
        epilog=_EPILOG,
        formatter_class=HelpFormatter,
    )
    sub = p.add_subparsers(
        dest="what", metavar="WHAT", required=True, help="what to calibrate: camera, pattern or otf"
    )

    def calibration(name: str, summary: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name, help=summary, description=_DESCRIPTIONS[name], formatter_class=HelpFormatter
        )
        return parser

    cam = calibration("camera", "offset, gain, read noise (photon transfer)")
    cam.add_argument(
        "--dark",
        required=True,
        metavar="FILE",
        help="dark frames (n, Y, X): TIFF, OME-Zarr, MRC or a scope acquire run",
    )
    cam.add_argument(
        "--flat",
        required=True,
        nargs="+",
        metavar="FILE",
        help="frames of a uniform light field, one file per light level (as --dark)",
    )
    cam.add_argument(
        "--maps",
        action="store_true",
        help="also per-pixel offset, gain and read-noise maps (sCMOS), written beside the preset",
    )
    cam.add_argument(
        "--saturation-adu",
        type=finite_number,
        metavar="ADU",
        help=saturation_help(
            "; flat pixels reaching it are left out of the fit, a level mostly there entirely"
        ),
    )

    pat = calibration("pattern", "pattern angles, periods and phase steps")
    pat.add_argument(
        "raw",
        nargs="+",
        metavar="RAW",
        help="raw SIM sets: TIFF/OME-TIFF, MRC, OME-Zarr or a scope acquire run (every set of "
        "every file is used)",
    )
    pat.add_argument(
        "--sample",
        choices=["uniform", "structured"],
        default="uniform",
        help=default_is(
            "what the raw sets show: uniform, a uniform fluorescent slide (the pattern itself "
            "is fitted; recommended) or structured, beads or cells (the reconstruction's "
            "estimator)"
        ),
    )
    add_pattern_sequence_flags(pat)

    otf = calibration("otf", "measured OTF from bead images")
    otf.add_argument(
        "images",
        metavar="IMAGES",
        help="widefield images of sparse beads in focus, (Y, X) or (n, Y, X), summed: TIFF, "
        "OME-Zarr, MRC",
    )
    otf.add_argument(
        "--bead-diameter-nm",
        type=non_negative_number,
        default=100.0,
        metavar="NM",
        help=default_is(
            "bead diameter, nm: its blur is divided out of the OTF (0: beads far below the "
            "resolution, nothing divided out)",
            "%(default)g",
        ),
    )
    otf.add_argument(
        "--saturation-adu",
        type=finite_number,
        metavar="ADU",
        help=saturation_help("; beads reaching it (clipped peaks) are left out"),
    )

    for q in (cam, pat, otf):
        q.add_argument(
            "--preset",
            required=True,
            metavar="FILE.toml",
            help=f"{SETUP_PRESET_HELP} to write into; only its [calibration.*] table changes",
        )
        q.add_argument(
            "--create",
            action="store_true",
            help="start a new preset at --preset if there is none (without it a missing preset "
            "is refused: a mistyped path would start a new file)",
        )
    offset_unknown = {
        pat: "estimated from a structured sample's dark background (none for a uniform slide)",
        otf: "none",
    }
    for q, source in ((pat, "what the raw files record, else the preset's"),
                      (otf, "the preset's")):  # fmt: skip
        add_optics_flags(q, source, source, source)
        add_offset_flag(
            q,
            f"the preset's [calibration.camera] offset_adu, else {offset_unknown[q]}",
            dest="offset_adu",
        )
    p.set_defaults(func=run)


def _read(path: str) -> tuple[Any, str | None]:
    """The frames of a TIFF as stored, or of any other file scope reads (an OME-Zarr, a scope
    acquire run, MRC) as ``(n, Y, X)``; and the camera pixel format the file records (None
    where it records none)."""
    import numpy as np
    import tifffile

    from scope.errors import DataFormatError
    from scope.io.raw import open_raw
    from scope.sim.saturation import camera_pixel_format

    p = Path(path)
    if not p.exists():
        raise DataFormatError(f"{p} does not exist")
    if p.is_dir() or p.suffix.lower() not in (".tif", ".tiff"):
        with open_raw(p) as stack:
            frames = np.asarray(stack.data[...]).reshape(-1, *stack.frame_shape)
            return frames, camera_pixel_format(stack.metadata)
    try:
        return tifffile.imread(p), None
    except Exception as err:  # tifffile raises several types for a bad file
        raise DataFormatError(f"cannot read {p} as TIFF: {err}") from err


def _read_sets(
    args: argparse.Namespace,
) -> tuple[Any, int, int, dict[str, tuple[float, str]], list[str]]:
    """Every SIM set of the raw files (any format scope reads; a run's own pattern sequence),
    their angles x phases, the optics the files record (value and the file recording it; the
    first file that records a value gives it), and each set's file name (for messages)."""
    import numpy as np

    from scope.errors import DataFormatError
    from scope.io.raw import open_sim_stack

    sets, shapes, stated, names = [], set(), {}, []
    for path in args.raw:
        stack, n_angles, n_phases = open_sim_stack(
            path, n_angles=args.angles, n_phases=args.phases, frame_order=args.frame_order
        )
        with stack:
            # a run's sets that lost a frame the camera dropped are read with it blank (for a
            # reconstruction that leaves it out): a calibration takes complete sets only
            dropped = set(stack.metadata.get("sets_with_dropped_frames") or ())
            numbers = stack.metadata.get("sets") or list(range(stack.n_sets))
            kept = [i for i in range(stack.n_sets) if numbers[i] not in dropped]
            if len(kept) < stack.n_sets:
                log.info("%s: %d set(s) that lost a frame left out", path, stack.n_sets - len(kept))
            sets += [stack.read_set(i) for i in kept]
            names += [Path(path).name] * len(kept)
            shapes.add((n_angles, n_phases, stack.frame_shape))
            for key, value in (
                ("na", stack.na),
                ("wavelength_nm", stack.wavelength_nm),
                ("pixel_size_nm", stack.pixel_size_nm),
            ):
                if value is not None:
                    stated.setdefault(key, (float(value), Path(path).name))
    if len(shapes) > 1:
        raise DataFormatError(
            f"the raw files differ in angles x phases or frame size ({sorted(shapes)}): "
            "calibrate from runs of one pattern sequence and camera region"
        )
    n_angles, n_phases, _ = shapes.pop()
    return np.stack(sets), n_angles, n_phases, stated, names


def _preset_optics(preset: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The optics the preset gives (its [optics] table, else computed from its hardware tables
    as scope plan does) and, for each, the preset table it comes from."""
    from scope.errors import ConfigurationError

    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    table = preset.get("optics", {})
    for key in ("na", "wavelength_nm", "pixel_size_nm", "immersion_index"):
        if key in table:
            values[key] = table[key]
            where[key] = "[optics]"
    if not {"na", "wavelength_nm", "pixel_size_nm"} <= values.keys() and "camera" in preset:
        from scope.planning import parts_from_preset, pixel_size_at_sample_nm

        try:
            camera, objective, _, acquisition = parts_from_preset(preset)
        except ConfigurationError:
            pass
        else:
            for key, value, tables in (
                ("na", objective.na, "[objective]"),
                ("wavelength_nm", acquisition.emission_wavelength_nm, "[acquisition]"),
                (
                    "pixel_size_nm",
                    pixel_size_at_sample_nm(
                        camera,
                        objective,
                        relay_magnification=acquisition.camera_relay_magnification,
                    ),
                    "[camera], [objective], [acquisition]",
                ),
                ("immersion_index", objective.immersion_index, "[objective]"),
            ):
                if key not in values:
                    values[key] = value
                    where[key] = tables
    return values, where


def _optics(
    args: argparse.Namespace,
    preset: dict[str, Any],
    stated: dict[str, tuple[float, str]] | None = None,
) -> tuple[Any, dict[str, str]]:
    """The optics of the calibration and where each value came from.

    Precedence: a flag, else what the raw file records (the values the frames were recorded
    with, as ``scope reconstruct`` takes them), else the preset. A run and a preset that
    disagree (by more than 0.5 %) are warned about, naming both values, unless a flag settles it.
    """
    from pydantic import ValidationError

    from scope.errors import ConfigurationError
    from scope.optics import OpticalSetup, check_setup

    from_preset, where = _preset_optics(preset)
    values = dict(from_preset)
    sources = {key: f"preset {where[key]}" for key in from_preset}
    for flag, key, what, unit in _OPTICS_FLAGS:
        flag_value = getattr(args, flag, None)
        if flag_value is not None:
            values[key] = flag_value
            sources[key] = "--" + flag.replace("_", "-")
            continue
        if key not in (stated or {}):
            continue
        run_value, run_name = stated[key]  # type: ignore[index]
        if key in from_preset and not math.isclose(
            run_value, float(from_preset[key]), rel_tol=_OPTICS_REL_TOL
        ):
            log.warning(
                "%s: the run %s records %g%s, the preset %s (%s) says %g%s: using the run's "
                "%g%s (what its frames were recorded with). If the run's value is wrong (e.g. "
                "recorded without --%s), give --%s %g; if it is right, correct the preset",
                what,
                run_name,
                run_value,
                unit,
                Path(args.preset).name,
                where[key],
                float(from_preset[key]),
                unit,
                run_value,
                unit,
                flag.replace("_", "-"),
                flag.replace("_", "-"),
                float(from_preset[key]),
            )
        values[key] = run_value
        sources[key] = f"run {run_name}"
    missing = {"na", "wavelength_nm", "pixel_size_nm"} - values.keys()
    if missing:
        raise ConfigurationError(
            f"optics incomplete, missing {sorted(missing)}: give --na, --wavelength and "
            "--pixel-size, or an [optics] table in the preset"
        )
    try:
        setup = OpticalSetup(**values)
    except ValidationError as err:  # --pixel-size 0.065 (µm): one line, not a traceback
        raise ConfigurationError(_invalid_optics(err, sources)) from None
    pixel_source = sources["pixel_size_nm"]
    check_setup(setup, pixel_size_from=None if pixel_source.startswith("--") else pixel_source)
    return setup, sources


def _invalid_optics(err: Any, sources: dict[str, str]) -> str:
    """One line for the optics values :class:`~scope.optics.OpticalSetup` refuses: each named
    by its flag (or by the file it came from), with its unit."""
    from scope.batch.config import validation_message

    names = {}
    for _, key, _, _ in _OPTICS_FLAGS:
        source = sources.get(key, "")
        names[key] = source if source.startswith("--") else f"{key} ({source})"
    names["immersion_index"] = f"immersion_index ({sources.get('immersion_index', 'preset')})"
    refused = [str(e["loc"][0]) for e in err.errors() if e.get("loc")]
    hints = [_OPTICS_UNITS[key] for key in refused if key in _OPTICS_UNITS]
    overrides = [
        "--" + flag.replace("_", "-")
        for flag, key, _, _ in _OPTICS_FLAGS
        if key in refused and not sources.get(key, "").startswith("--")
    ]
    if overrides:
        hints.append(f"give {' and '.join(overrides)} to override the value")
    return "; ".join([f"invalid optics: {validation_message(err, names=names)}", *hints])


def _offset(args: argparse.Namespace, preset: dict[str, Any]) -> tuple[float | None, str]:
    """The camera offset (None: unknown) and where it came from."""
    if args.offset_adu is not None:
        return float(args.offset_adu), "--offset"
    camera = preset.get("calibration", {}).get("camera", {})
    if "offset_adu" in camera:
        return float(camera["offset_adu"]), "the preset's [calibration.camera]"
    return None, "unknown"


def _check_preset(args: argparse.Namespace) -> bool:
    """Refuse a preset path that does not exist unless --create; True if it is to be created."""
    from scope.errors import ConfigurationError

    path = Path(args.preset)
    if path.is_dir():
        raise ConfigurationError(f"--preset {path} is a folder: give the preset's .toml file")
    if path.exists():
        return False
    if not args.create:
        raise ConfigurationError(
            f"preset {path} does not exist: give your setup's preset (a copy of "
            "hardware/presets/budget.toml or better.toml), or add --create to start a new one "
            "holding only the calibration"
        )
    return True


def _maps_prefix(preset: str | Path) -> str:
    """The name the --maps files share: the preset's, with ``_camera``."""
    return Path(preset).stem + "_camera"


def _check_map_paths(preset: str | Path) -> None:
    """Refuse --maps when a map file's name is taken by a folder (it would be replaced)."""
    from scope.calibration.camera import map_paths
    from scope.errors import ConfigurationError

    for path in map_paths(preset, _maps_prefix(preset)).values():
        if path.is_dir():
            raise ConfigurationError(
                f"cannot write the camera map {path}: {path.name} is a folder; move it, or "
                "name the preset otherwise (the maps are named after it)"
            )


def run(args: argparse.Namespace) -> int:

    from scope.calibration.preset import read_preset
    from scope.io.writers import prepare_output_folder

    created = _check_preset(args)
    # the preset (and the --maps files beside it) can be written: checked before any work
    prepare_output_folder(args.preset)
    if getattr(args, "maps", False):
        _check_map_paths(args.preset)
    preset = read_preset(args.preset)
    out = sys.stdout
    if args.what == "camera":
        from scope.calibration.camera import calibrate_camera, save_camera_calibration

        dark, _ = _read(args.dark)
        flats, formats = zip(*(_read(f) for f in args.flat), strict=True)
        cal, maps = calibrate_camera(
            dark,
            flats,
            maps=args.maps,
            saturation_adu=args.saturation_adu,
            pixel_format=formats[0],
            dark_name=Path(args.dark).name,
            flat_names=[Path(f).name for f in args.flat],
        )
        save_camera_calibration(args.preset, cal, maps, maps_prefix=_maps_prefix(args.preset))
        out.write(
            f"offset {cal.offset_adu:.2f} ADU, gain {cal.gain_e_per_adu:.4f} e-/ADU "
            f"({cal.gain_adu_per_e:.4f} ADU/e-), read noise {cal.read_noise_e:.3f} e- "
            f"({cal.n_levels} levels, fit rms {cal.fit_rms_rel:.3f})\n"
        )
    elif args.what == "pattern":
        from scope.calibration.pattern import calibrate_pattern, save_pattern_calibration

        raw, n_angles, n_phases, stated, set_names = _read_sets(args)
        setup, sources = _optics(args, preset, stated)
        offset, offset_source = _offset(args, preset)
        cal = calibrate_pattern(
            raw,
            setup,
            n_angles=n_angles,
            n_phases=n_phases,
            sample=args.sample,
            offset_adu=offset,
            offset_given_as=offset_source,
            set_sources=set_names,
        )
        save_pattern_calibration(args.preset, cal)
        out.write(
            f"optics: NA {setup.na:g} ({sources['na']}), emission {setup.wavelength_nm:g} nm "
            f"({sources['wavelength_nm']}), pixel at the sample {setup.pixel_size_nm:g} nm "
            f"({sources['pixel_size_nm']})\n"
        )
        used = cal.notes.get("offset_adu")
        if offset is not None:
            out.write(f"camera offset: {offset:g} ADU ({offset_source})\n")
        elif used is not None:
            out.write(
                f"camera offset: {used:g} ADU, estimated from the data (no camera calibration "
                "in the preset, no --offset)\n"
            )
        else:
            out.write(
                "camera offset: unknown, none subtracted (no camera calibration in the preset, "
                "no --offset): the modulation reads low\n"
            )
        for i, a in enumerate(cal.params.angles):
            steps = ", ".join(f"{s:.3f}" for s in cal.phase_steps_rad[i])
            observed = cal.modulation_observed[i]
            seen = f" (in the raw frames {observed:.3f})" if observed is not None else ""
            out.write(
                f"angle {i}: {a.angle_deg:8.3f} deg, period {a.period_nm:7.2f} nm, phase steps "
                f"[{steps}] rad, modulation {a.modulation:.3f}{seen}\n"
            )
        scatter = [
            f"angle {i} {sa:.3f} deg / {sp:.2f} nm"
            for i, (sa, sp) in enumerate(zip(cal.angle_std_deg, cal.period_std_nm, strict=True))
            if sa is not None and sp is not None
        ]
        if scatter:
            out.write(f"scatter over {cal.n_sets} sets: {', '.join(scatter)}\n")
    else:
        from scope.calibration.otf import check_cutoff, measure_otf, save_measured_otf

        setup, sources = _optics(args, preset)
        offset, _ = _offset(args, preset)
        images, pixel_format = _read(args.images)
        measured = measure_otf(
            images,
            setup.pixel_size_nm,
            bead_diameter_nm=args.bead_diameter_nm,
            offset_adu=0.0 if offset is None else offset,
            saturation_adu=args.saturation_adu,
            pixel_format=pixel_format,
        )
        difference = check_cutoff(measured, setup, sources=sources)
        save_measured_otf(args.preset, measured)
        out.write(
            f"OTF from {measured.n_beads} beads: cutoff {measured.cutoff_per_um:.3f} /µm "
            f"(theory 2NA/λ = {setup.cutoff_per_um:.3f} /µm, {100 * difference:+.0f} %)\n"
        )
    if created:
        out.write(f"created the new preset {args.preset} (it holds only the calibration)\n")
    else:
        out.write(f"saved into {args.preset} (the rest of the file is unchanged)\n")
    return 0
