"""``scope batch``: reconstruct files, folders and globs, locally or on a Dask cluster.

``scope batch data/ -o out/ --preset bsim-hela-660nm``
``scope batch "runs/*.zarr" -o out/ --scheduler tcp://10.0.0.5:8786 --format tiff``

Exit status: 0 all done (or already complete), 3 some files failed (see the report),
2 all failed or bad arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
examples:
  scope batch data/ -o out/ --preset bsim-hela-660nm
  scope batch "runs/*.zarr" -o out/ --scheduler tcp://10.0.0.5:8786 --format tiff

exit status: 0 all done (or already complete), 3 some files failed (see the report),
2 all failed or bad arguments, 130 interrupted."""


def register(subparsers: Any) -> None:
    from scope.cli.parameter_flags import HelpFormatter, add_parameter_flags, default_is

    p = subparsers.add_parser(
        "batch",
        help="reconstruct many raw files (folders, globs) locally or on a Dask cluster",
        description="Reconstruct raw SIM files, folders and glob patterns into OUTDIR "
        "(OME-Zarr or OME-TIFF, a .params.json each, and batch-report.json/.txt). Parameters: "
        "flags override the --preset, which overrides the files' metadata. Re-running skips "
        "complete outputs. Exit status 3 means some files failed.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help='raw files, folders or globs (quote a glob: "runs/*.zarr")',
    )
    p.add_argument("-o", "--outdir", required=True, metavar="OUTDIR", help="output folder")
    p.add_argument(
        "--format",
        choices=("zarr", "tiff"),
        default="zarr",
        help=default_is("output format: zarr (OME-Zarr, multiscale) or tiff (OME-TIFF)"),
    )
    p.add_argument(
        "--preset",
        metavar="NAME",
        help=default_is(
            "preset name in reconstruction/presets/, or a .toml path: optics, pattern and "
            "reconstruction settings (flags override it)",
            "none: flags and the files' metadata",
        ),
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help=default_is(
            "address of a running Dask scheduler (e.g. tcp://10.0.0.5:8786)",
            "a local cluster on this machine",
        ),
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help=default_is("local worker processes; 0: in this process, without Dask", "one per core"),
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1",
        metavar="ADDRESS",
        help=default_is(
            "IP address or host name of this machine that the local Dask cluster listens on "
            "(127.0.0.1: this machine only; 0.0.0.0: every interface)"
        ),
    )
    add_parameter_flags(p, preset=True)  # shared with scope reconstruct
    p.add_argument(
        "--reestimate-every",
        type=int,
        metavar="N",
        help=default_is(
            "re-estimate the pattern parameters every N time points",
            "the preset's, else once per file",
        ),
    )
    p.add_argument(
        "--levels",
        type=int,
        metavar="N",
        help=default_is("multiscale levels of Zarr outputs", "auto, from the image size"),
    )
    p.add_argument("--overwrite", action="store_true", help="redo outputs that already exist")
    p.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _preset_path(name: str | None) -> str | None:
    """A preset named on the command line, as an absolute path where it is a file here (the
    workers of a cluster may start elsewhere)."""
    if name is None:
        return None
    return str(Path(name).resolve()) if Path(name).is_file() else name


def options_from_args(args: argparse.Namespace) -> Any:
    """The flags as :class:`~scope.batch.config.BatchOptions` (unset flags stay None)."""
    from pydantic import ValidationError

    from scope.batch.config import BatchOptions, validation_message
    from scope.errors import ConfigurationError

    values = {
        "na": args.na,
        "wavelength_nm": None
        if not args.wavelength
        else args.wavelength[0]
        if len(args.wavelength) == 1
        else list(args.wavelength),
        "pixel_size_nm": args.pixel_size,
        "immersion_index": args.immersion,
        "offset_adu": args.offset,
        "n_angles": args.angles,
        "n_phases": args.phases,
        "frame_order": args.frame_order,
        "wiener": args.wiener,
        "equalize": args.equalize,
        "saturation_adu": args.saturation_adu,
        "repair_defects": False if args.keep_defects else None,
        "pattern_map": args.pattern_map,
        "camera_maps": _preset_path(args.camera_maps),
        "backend": args.backend,
        "reestimate_every": getattr(args, "reestimate_every", None),
        "otf_path": None
        if not args.otf
        else str(Path(args.otf[0]).resolve())
        if len(args.otf) == 1
        else [str(Path(f).resolve()) for f in args.otf],
        "period_nm": args.prior_period,
    }
    if args.camera_maps and args.offset is not None:
        raise ConfigurationError("--camera-maps holds each pixel's offset: leave --offset out")
    if (args.prior_angles is None) != (args.prior_period is None):
        raise ConfigurationError("priors need both --prior-angles and --prior-period")
    if args.prior_angles:
        values["angles_deg"] = list(args.prior_angles)  # numbers (DegreesAction)
    try:
        return BatchOptions(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as err:
        message = validation_message(err, names=_FLAGS)
        raise ConfigurationError(f"invalid option: {message}") from err


#: the flag that sets each option of :class:`~scope.batch.config.BatchOptions` (for messages)
_FLAGS = {
    "na": "--na",
    "wavelength_nm": "--wavelength",
    "pixel_size_nm": "--pixel-size",
    "immersion_index": "--immersion",
    "offset_adu": "--offset",
    "n_angles": "--angles",
    "n_phases": "--phases",
    "frame_order": "--frame-order",
    "wiener": "--wiener",
    "equalize": "--equalize",
    "saturation_adu": "--saturation-adu",
    "pattern_map": "--pattern-map",
    "camera_maps": "--camera-maps",
    "backend": "--backend",
    "reestimate_every": "--reestimate-every",
    "otf_path": "--otf",
    "period_nm": "--prior-period",
    "angles_deg": "--prior-angles",
}


def run(args: argparse.Namespace) -> int:
    from scope.batch.config import OutputOptions, load_preset
    from scope.batch.engine import run_batch
    from scope.batch.progress import ProgressBar
    from scope.batch.report import REPORT_JSON

    flags = options_from_args(args)
    preset, preset_name = load_preset(args.preset) if args.preset else (None, None)
    bar: list[ProgressBar] = []

    def on_plan(n_files: int, n_sets: int) -> None:
        if not args.no_progress and not getattr(args, "quiet", False) and n_files:
            bar.append(ProgressBar(n_files, n_sets, sys.stderr))

    def progress(**kw: int) -> None:
        if bar:
            bar[0].update(**kw)

    try:
        report = run_batch(
            args.inputs,
            args.outdir,
            flags=flags,
            preset=preset,
            preset_name=preset_name,
            output=OutputOptions(
                format=args.format,
                multiscale_levels=args.levels,
                overwrite=args.overwrite,
                widefield=bool(args.widefield),
            ),
            scheduler=args.scheduler,
            n_workers=args.workers,
            listen=args.listen,
            recursive=args.recursive,
            progress=progress,
            on_plan=on_plan,
        )
    finally:
        if bar:
            bar[0].close()
    print(report.table())
    print(f"report: {Path(args.outdir) / REPORT_JSON}")
    return report.exit_status
