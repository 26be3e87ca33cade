"""``scope reconstruct``: raw SIM stack(s) -> super-resolved float32 OME-TIFF + parameters.

Contract (other tools depend on it)::

    scope reconstruct RAW -o OUT.tif --na NA --wavelength NM --pixel-size NM [--offset ADU]
        [--angles 3] [--phases 3] [--backend auto|numpy|cupy] [--otf FILE] [--wiener W]

RAW is shaped ``(..., angles*phases, Y, X)``, angle-major, phase fastest; OUT is
``(..., 2Y, 2X)`` with its physical pixel size, and ``OUT`` with the suffix ``.params.json``
holds the pattern parameters. Several inputs or a folder go to the batch engine (``scope
batch``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scope.io.writers import beside, output_base  # the files beside OUT

log = logging.getLogger(__name__)


#: ``scope reconstruct --help``: what it does (plain text, as printed)
DESCRIPTION = """\
Reconstruct a raw SIM stack into a 2x super-resolved float32 OME-TIFF, with the pattern
parameters it used in OUT.params.json beside it.

    scope reconstruct RAW -o OUT.tif --na NA --wavelength NM --pixel-size NM [--offset ADU]
        [--angles 3] [--phases 3] [--backend auto|numpy|cupy] [--otf FILE] [--wiener W]

RAW is shaped (..., angles*phases, Y, X), angle-major, phase fastest; OUT is (..., 2Y, 2X)
with its physical pixel size. Values not given come from the file where it states them.
Several inputs, a folder or a glob go to the batch engine (scope batch), and -o names a
folder then. No data at hand? scope demo simulates a raw stack and reconstructs it."""

EPILOG = """\
examples:
  scope reconstruct raw.ome.tif -o sim.ome.tif --na 1.2 --wavelength 525 --pixel-size 65
  scope reconstruct run.zarr -o run.sim.ome.tif --prior-angles 12 72 132 --prior-period 260
  scope reconstruct day1/ -o sim/ --offset 100"""


def register(sub: Any) -> None:
    from scope.cli.parameter_flags import (
        HelpFormatter,
        add_parameter_flags,
        default_is,
        finite_number,
    )

    p = sub.add_parser(
        "reconstruct",
        help="reconstruct raw SIM stacks into 2x super-resolved images",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "raw",
        nargs="+",
        metavar="RAW",
        help="raw SIM stack (TIFF/OME-TIFF, MRC, OME-Zarr or a scope acquire run); several, a "
        "folder or a glob go to the batch engine",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output .tif/.ome.tif (a folder for several inputs)",
    )
    add_parameter_flags(p)
    p.add_argument(
        "--notch",
        type=finite_number,
        default=0.0,
        metavar="S",
        help=default_is(
            "zero-order notch strength, 0 (off) to below 1: each order's weight at its own "
            "origin is reduced by this fraction (against out-of-focus haze)",
            "%(default)g, off",
        ),
    )
    p.add_argument(
        "--filter",
        choices=["wiener", "hifi"],
        default="wiener",
        help=default_is(
            "wiener: generalised Wiener filter; hifi: two-step filter in the spirit of HiFi-SIM "
            "(Wen et al. 2021)"
        ),
    )
    p.add_argument(
        "--params",
        metavar="FILE",
        help=default_is(
            "use the pattern parameters of this .params.json (written by scope reconstruct) and "
            "skip their estimation",
            "estimated on the first set of each channel",
        ),
    )
    p.add_argument(
        "--diagnostics",
        action="store_true",
        help="also write the spectrum with the carriers and a map of the pattern's modulation "
        "contrast-to-noise (PNGs) and a resolution estimate",
    )
    p.set_defaults(func=run)


@dataclass
class _Channel:
    """One channel of the file as reconstructed: its first set, optics, pattern and operator."""

    first_index: int  # the channel's first SIM set (C-order index over the leading axes)
    first_adu: Any
    first: Any  # the same as reconstructed (photo-electrons with camera maps)
    setup: Any
    otf: Any
    defects: Any
    params: Any
    pattern_map: Any
    rec: Any
    first_sim: Any
    first_nsr_scale: float


def _channel_wavelength(args: argparse.Namespace, raw: Any, channel: int) -> float | None:
    """Channel ``channel``'s emission wavelength: ``--wavelength`` (one value for every
    channel, or one per channel), else the file's own (each channel's, where it states them)."""
    from scope.errors import ConfigurationError

    given = args.wavelength
    if given:
        if len(given) == 1:
            if channel == 0:
                raw.warn_one_wavelength(f"--wavelength {given[0]:g}")
            return given[0]
        if len(given) != raw.n_channels:
            raise ConfigurationError(
                f"--wavelength takes one emission wavelength, or one per channel; "
                f"{Path(raw.path).name} has {raw.n_channels} channel(s), got {len(given)} values"
            )
        return given[channel]
    if raw.n_channels > 1 and raw.channel_wavelengths_nm is None:
        log.warning(
            "%s: %d channels but one emission wavelength (%s nm) for all: give each channel's "
            "with --wavelength NM NM ...",
            Path(raw.path).name,
            raw.n_channels,
            raw.wavelength_nm,
        )
    return raw.channel_wavelength_nm(channel)


def _read_params(path: str, n_channels: int, name: str) -> dict[str, Any]:
    """A ``.params.json`` for ``--params``, checked against the file's channels."""
    from scope.errors import ConfigurationError, DataFormatError

    try:
        doc = json.loads(Path(path).read_text())
    except OSError as err:
        raise DataFormatError(f"cannot read --params {path}: {err.strerror}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFormatError(
            f"--params {path} is not JSON ({err}); expected a .params.json written by scope "
            "reconstruct"
        ) from err
    if not isinstance(doc, dict):
        raise DataFormatError(f"--params {path} holds no parameters; expected {{'angles': ...}}")
    channels = doc.get("channels")
    if n_channels > 1 and channels is None:
        raise ConfigurationError(
            f"{path} holds one channel's pattern, {name} has {n_channels} channels: give the "
            ".params.json written for a file with these channels"
        )
    if channels is not None and n_channels > 1 and len(channels) != n_channels:
        raise ConfigurationError(
            f"{path} holds {len(channels)} channels' patterns, {name} has {n_channels} channels"
        )
    return doc


#: each optics value a file may state: (what it is, its unit, the flag that gives it)
_OPTICS_VALUES = {
    "na": ("the numerical aperture", "", "--na NA"),
    "wavelength_nm": ("the emission wavelength", " nm", "--wavelength NM"),
    "pixel_size_nm": ("the pixel size", " nm", "--pixel-size NM"),
}


def _setup(args: argparse.Namespace, raw: Any, wavelength_nm: float | None) -> Any:
    """The optics of one channel: the flags given, else what the file states; refused in one
    line that names what is missing or wrong, and where a wrong value came from."""
    from pydantic import ValidationError

    from scope.cli.parameter_flags import DEFAULT_IMMERSION
    from scope.errors import ConfigurationError
    from scope.optics import OpticalSetup, check_setup
    from scope.sim.pipeline import stated_by

    given = {"na": args.na, "wavelength_nm": args.wavelength, "pixel_size_nm": args.pixel_size}
    from_file = {k for k, v in given.items() if v is None or v == []}
    values = {
        "na": args.na if args.na is not None else raw.na,
        "wavelength_nm": wavelength_nm,
        "pixel_size_nm": args.pixel_size if args.pixel_size is not None else raw.pixel_size_nm,
    }
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise ConfigurationError(
            f"{Path(raw.path).name} does not state "
            f"{' or '.join(_OPTICS_VALUES[k][0] for k in missing)}: give "
            f"{' '.join(_OPTICS_VALUES[k][2] for k in missing)}"
        )
    try:
        setup = OpticalSetup(immersion_index=args.immersion or DEFAULT_IMMERSION, **values)
    except ValidationError as err:
        raise ConfigurationError(_invalid_optics(err, from_file, raw, args)) from None
    check_setup(setup, pixel_size_from=stated_by(raw) if "pixel_size_nm" in from_file else None)
    return setup


def _invalid_optics(err: Any, from_file: set[str], raw: Any, args: argparse.Namespace) -> str:
    """One line for the first complaint of :class:`~scope.optics.OpticalSetup` about its
    values, naming the file where the value came from it (and the flag that overrides it)."""
    from scope.sim.pipeline import stated_by

    first = err.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    if not first["loc"]:  # a check of several values (the NA above the immersion index)
        hint = "; --immersion N sets the immersion index" if args.immersion is None else ""
        return f"invalid optics: {message}{hint}"
    key, value = first["loc"][0], first.get("input")
    if key in from_file and key in _OPTICS_VALUES:
        what, unit, flag = _OPTICS_VALUES[key]
        return (
            f"{what} {value:g}{unit}, stated by {stated_by(raw)}, is invalid ({message}): "
            f"give {flag} to override the file's value"
        )
    return f"invalid optics: {key}={value!r}: {message}"


def _pixel_size_override(args: argparse.Namespace) -> str | None:
    """``--pixel-size`` as given (it overrides the file's pixel sizes), or None."""
    return None if args.pixel_size is None else f"--pixel-size {args.pixel_size:g}"


def _given_params(doc: dict[str, Any]) -> Any:
    """The pattern parameters of a ``--params`` file, each angle's source ``"given"`` (this
    run estimates nothing; the log and the ``.params.json`` say so)."""
    from dataclasses import replace

    from scope.sim.params import SIMParameters

    params = SIMParameters.from_dict(doc)
    return replace(params, angles=tuple(replace(a, source="given") for a in params.angles))


def _prior(args: argparse.Namespace) -> Any:
    from scope.errors import ConfigurationError
    from scope.sim.params import SIMParameters

    if args.prior_angles is None and args.prior_period is None:
        return None
    if args.prior_angles is None or args.prior_period is None:
        raise ConfigurationError("priors need both --prior-angles and --prior-period")
    angles = list(args.prior_angles)  # numbers (DegreesAction)
    if len(angles) != args.angles:
        raise ConfigurationError(
            f"--prior-angles gives {len(angles)} angles, --angles {args.angles}"
        )
    return SIMParameters.equidistant(angles, period_nm=args.prior_period, n_phases=args.phases)


def run(args: argparse.Namespace) -> int:
    from scope.errors import ConfigurationError, DataFormatError

    first = Path(args.raw[0])
    zarr_store = first.is_dir() and (
        first.suffix.lower() == ".zarr"
        or (first / "zarr.json").exists()
        or (first / ".zgroup").exists()
    )
    if (
        len(args.raw) > 1
        or (first.is_dir() and not zarr_store)
        or any(c in args.raw[0] for c in "*?[")
    ):
        return _run_batch(args)
    src = Path(args.raw[0])
    out = Path(args.output)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise ConfigurationError(f"the output must be a .tif/.ome.tif file, got {out.name}")
    if not src.exists():
        raise DataFormatError(f"{src} does not exist")
    from scope.io.writers import prepare_output_folder, scope_output_kind

    kind = scope_output_kind(src)
    if kind is not None:
        raise DataFormatError(
            f"{src.name} is a {kind} that scope wrote, not a raw stack: give the raw frames "
            "it was reconstructed from"
        )
    written = [out, beside(out, ".params.json")]
    if args.widefield:
        written.append(beside(out, ".widefield.tif"))
    if any(w.resolve() == src.resolve() for w in written):  # it would replace the raw data
        raise ConfigurationError(
            f"-o {out} would overwrite the raw file {src.name}: name the output otherwise "
            f"(e.g. -o {src.name.split('.')[0]}.sim.ome.tif)"
        )
    prepare_output_folder(out)
    return reconstruct_file(src, out, args)


def reconstruct_file(src: Path, out: Path, args: argparse.Namespace, *, prior: Any = None) -> int:
    """Reconstruct one raw file set by set into ``out`` (and its ``.params.json``).

    ``prior`` (SIMParameters) overrides ``--prior-angles``/``--prior-period``: the nominal
    pattern of a run whose generator knows each angle's own period.
    """
    from scope import __version__
    from scope.backend import get_backend
    from scope.calibration.camera import electrons_from_maps
    from scope.errors import ConfigurationError, DataFormatError
    from scope.io.raw import open_sim_stack
    from scope.io.writers import WIDEFIELD_DESCRIPTION, write_ome_tiff
    from scope.optics import OTF
    from scope.sim.diagnostics import carrier_report
    from scope.sim.pattern_map import PhaseMap, plan_pattern_map
    from scope.sim.pipeline import (
        BlankFrameLog,
        MeasuredOTFs,
        check_signal,
        check_square_pixels,
        defects_to_repair,
        estimate_with_fallback,
    )
    from scope.sim.reconstruct import EQUALIZE_MODES, ReconstructionSettings, SIMReconstructor
    from scope.sim.saturation import SaturationCounter, camera_pixel_format

    given = {"--angles": args.angles, "--phases": args.phases}
    if (args.angles is not None and args.angles < 2) or (
        args.phases is not None and args.phases < 3
    ):
        raise ConfigurationError(
            "SIM needs at least 2 angles and 3 phases, got "
            + " ".join(f"{flag} {n}" for flag, n in given.items() if n is not None)
        )
    t0 = time.perf_counter()
    raw, n_angles, n_phases = open_sim_stack(
        src, n_angles=args.angles, n_phases=args.phases, frame_order=args.frame_order
    )
    if n_angles < 2:
        raw.close()
        raise ConfigurationError(
            f"{src.name} was recorded with {n_angles} pattern angle: SIM needs at least 2"
        )
    args = argparse.Namespace(**{**vars(args), "angles": n_angles, "phases": n_phases})
    with raw:
        backend = get_backend(args.backend)
        maps_preset = args.camera_maps
        if maps_preset and args.offset is not None:
            raise ConfigurationError("--camera-maps holds each pixel's offset: leave --offset out")
        to_electrons = (
            electrons_from_maps(maps_preset, raw.frame_shape, raw.sensor_origin)
            if maps_preset
            else None
        )

        def converted(frames: Any) -> Any:
            """A raw set as reconstructed: photo-electrons when camera maps are given."""
            return to_electrons(frames) if to_electrons is not None else frames

        check_square_pixels(raw, _pixel_size_override(args))
        first_adu = raw.read_set(0)
        first = converted(first_adu)
        offset = 0.0 if to_electrons else args.offset
        offset_given_as = "--camera-maps' per-pixel offset" if to_electrons else "--offset"
        if offset is None and raw.offset_adu is not None:  # flags > the file > estimated
            offset, offset_given_as = raw.offset_adu, f"the offset {src.name} states"
            log.info("camera offset %g ADU, as %s states (--offset overrides it)", offset, src.name)
        settings = ReconstructionSettings(
            wiener=args.wiener,
            notch_strength=args.notch,
            filter=args.filter,
            offset_adu=offset,
            equalize_frames=EQUALIZE_MODES[args.equalize or "auto"],
            repair_defects=not args.keep_defects,
        )
        stored = _read_params(args.params, raw.n_channels, src.name) if args.params else None
        map_mode = getattr(args, "pattern_map", None) or "auto"
        otf_files = args.otf or []
        if len(otf_files) > 1 and len(otf_files) != raw.n_channels:
            raise ConfigurationError(
                f"--otf takes one measured OTF, or one per channel; {src.name} has "
                f"{raw.n_channels} channel(s), got {len(otf_files)} files"
            )
        otfs = MeasuredOTFs(otf_files)

        def prepare(channel: int) -> _Channel:
            """One channel's optics, pattern (estimated on its first set, or read back),
            pattern map and cached operator, with that first set reconstructed."""
            index = raw.first_set_of_channel(channel)
            frames_adu = first_adu if index == 0 else raw.read_set(index)
            frames = first if index == 0 else converted(frames_adu)
            try:
                check_signal(
                    frames, offset, given_as=offset_given_as, unit="e-" if to_electrons else "ADU"
                )
            except DataFormatError as err:
                many = raw.n_channels > 1
                raise DataFormatError(f"{err} (channel {channel})" if many else str(err)) from None
            setup = _setup(args, raw, _channel_wavelength(args, raw, channel))
            otf = otfs.for_channel(channel, setup, channels[0].setup if channels else None)
            if otf is None:  # no measured one: the ideal OTF of the channel's optics
                otf = OTF.from_setup(setup)
            defects = defects_to_repair(frames, setup, settings, otf, backend)
            doc = None
            if stored is not None:
                doc = stored["channels"][channel] if raw.n_channels > 1 else stored
                params = _given_params(doc)
                if params.n_angles != args.angles or params.n_phases != args.phases:
                    raise DataFormatError(
                        f"{args.params} describes {params.n_angles}x{params.n_phases} frames, "
                        f"the data is read as {args.angles}x{args.phases}: give --angles "
                        f"{params.n_angles} --phases {params.n_phases} if the data was taken "
                        "with that pattern, or the parameters of this data"
                    )
            else:  # a channel too dim to show its own pattern: the first's as its prior
                params = estimate_with_fallback(
                    frames,
                    setup,
                    prior=prior if prior is not None else _prior(args),
                    fallback_prior=channels[0].params if channels else None,
                    n_angles=args.angles,
                    n_phases=args.phases,
                    otf=otf,
                    backend=backend,
                    defects=defects,
                )
            name = f"channel {channel} ({setup.wavelength_nm:g} nm) " if raw.n_channels > 1 else ""
            log.info("%spattern parameters:\n%s", name, carrier_report(params))
            pattern_map = None
            if doc is not None:  # the map that came with the parameters, unless switched off
                if doc.get("pattern_map") is not None and map_mode != "off":
                    pattern_map = PhaseMap.from_summary(doc["pattern_map"], params.n_angles)
                elif map_mode == "on":
                    raise ConfigurationError(
                        f"--pattern-map on: {args.params} holds no pattern map, and one is "
                        "measured only with the parameters (leave out --params)"
                    )
            else:
                pattern_map = plan_pattern_map(
                    frames, setup, params, mode=map_mode, otf=otf, backend=backend, defects=defects
                )
            rec = SIMReconstructor(
                setup,
                params,
                shape=raw.frame_shape,
                settings=settings,
                backend=backend,
                otf=otf,
                defect_pixels=defects,
                phase_maps=None
                if pattern_map is None
                else pattern_map.maps(raw.frame_shape, setup.pixel_size_um),
            )
            sim = backend.to_numpy(rec(frames))  # fixes the filter (and frame equalisation)
            return _Channel(
                index,
                frames_adu,
                frames,
                setup,
                otf,
                defects,
                params,
                pattern_map,
                rec,
                sim,
                rec.nsr_scale,
            )

        channels: list[_Channel] = []
        for c in range(raw.n_channels):
            channels.append(prepare(c))
        # the first channel's is the file's (the contract's parameters, the diagnostics)
        c0 = channels[0]
        setup, otf, defects, params, pattern_map, rec = (
            c0.setup,
            c0.otf,
            c0.defects,
            c0.params,
            c0.pattern_map,
            c0.rec,
        )
        lead_axes = "".join(a if a in "TCZ" else "T" for a in raw.lead_axes)
        if len(set(lead_axes)) != len(lead_axes):
            lead_axes = "TCZ"[: len(lead_axes)] if len(lead_axes) <= 3 else None
        if lead_axes is None:
            raise DataFormatError(f"too many leading axes in {src.name}: {raw.axes}")
        shape = (*raw.lead_shape, *rec.output_shape)

        clipped = SaturationCounter(
            getattr(args, "saturation_adu", None),
            dtype=raw.dtype,
            pixel_format=camera_pixel_format(raw.metadata),
        )
        # the MMSE regulariser following the light, per set (in the order written)
        nsr_scales: list[float] = []
        # later sets with a dropped or blank frame (a channel's first set is refused for one)
        blanks = BlankFrameLog(offset, sets=raw.n_channels, run_sets=raw.metadata.get("sets"))

        bar = None
        if raw.n_sets > 1 and not getattr(args, "quiet", False):
            from scope.batch.progress import ProgressBar

            bar = ProgressBar(1, raw.n_sets, sys.stderr)

        def planes():
            for i in range(raw.n_sets):
                ch = channels[raw.channel_of_set(i)]
                if i == ch.first_index:
                    clipped.update(ch.first_adu)
                    yield ch.first_sim
                    nsr_scales.append(ch.first_nsr_scale)
                else:
                    frames = raw.read_set(i)
                    clipped.update(frames)
                    frames = converted(frames)
                    blank = blanks.update(i, frames)  # left out of the separation
                    yield backend.to_numpy(ch.rec(frames, missing_frames=blank))
                    nsr_scales.append(ch.rec.nsr_scale)
                log.debug("set %d/%d", i + 1, raw.n_sets)
                if bar is not None:
                    bar.update(units=1, files=int(i + 1 == raw.n_sets))
                    if i + 1 == raw.n_sets:
                        bar.close()

        metadata = {
            "software": f"scope {__version__}",
            "input": str(src),
            "optics": setup.model_dump(),
            "sim_parameters": params.to_dict(),
            "settings": {k: v for k, v in settings.__dict__.items()},
            "otf": otf.source,
            # frames lit unequally are equalised (see ReconstructionSettings.equalize_frames)
            "frames_equalised": rec.equalizes_frames,
            "first_set_frame_gains": [round(float(g), 4) for g in rec.frame_gains(first)],
            # hot and dead camera pixels, repaired from their neighbours in every set
            "defect_pixels": defects.summary(),
            # per-pixel offset and gain applied: the image is in photo-electrons
            "camera_maps": str(maps_preset) if maps_preset else None,
            # a pattern bent across the field, its phase mapped (params.json has the map)
            "pattern_map": None
            if pattern_map is None
            else {
                "max_drift_rad": round(pattern_map.max_drift_rad, 3),
                "fit_residual_rad": round(float(pattern_map.residual_rad.max()), 3),
            },
        }
        if "sets" in raw.metadata:  # an acquisition: which of its sets each plane is
            metadata["sets"] = raw.metadata["sets"]
        params_path = beside(out, ".params.json")
        doc = params.to_dict()
        # the camera offset taken off, and where it came from (None: each set's own estimate)
        doc["camera_offset"] = {
            "adu": offset,
            "from": offset_given_as if offset is not None else "each set's darkest values",
        }
        if pattern_map is not None:
            doc["pattern_map"] = pattern_map.summary()
        if raw.n_channels > 1:  # each channel its own optics and pattern (the first's above)
            doc["channels"] = []
            metadata["channels"] = []
            for c, ch in enumerate(channels):
                entry = {
                    "channel": c,
                    "wavelength_nm": ch.setup.wavelength_nm,
                    "otf": ch.otf.source,
                }
                metadata["channels"].append({**entry, "sim_parameters": ch.params.to_dict()})
                entry |= ch.params.to_dict()
                if ch.pattern_map is not None:
                    entry["pattern_map"] = ch.pattern_map.summary()
                doc["channels"].append(entry)

        def write_params() -> None:
            if clipped.summary() is not None:  # complete once every set has been read
                doc["saturation"] = clipped.summary()
            doc["defect_pixels"] = defects.summary()
            doc["blank_frames"] = blanks.summary()
            # how far the filter followed the light (1: the first set's noise-to-signal ratio;
            # 4: a set 4x noisier relative to its signal, e.g. bleached to about a quarter)
            doc["filter_nsr_scale"] = {
                "first": nsr_scales[0],
                "min": min(nsr_scales),
                "max": max(nsr_scales),
                "last": nsr_scales[-1],
            }
            params_path.write_text(json.dumps(doc, indent=2) + "\n")

        wavelengths = [ch.setup.wavelength_nm for ch in channels] if raw.n_channels > 1 else None
        write_ome_tiff(
            out,
            planes(),
            pixel_size_nm=rec.output_pixel_size_nm,
            axes=lead_axes + "YX",
            metadata=metadata,
            shape=shape,
            before_commit=write_params,
            channel_wavelengths_nm=wavelengths,
            time_increment_s=raw.time_increment_s,
        )
        widefield_path = None
        if args.widefield:  # a second pass: sets are read again
            widefield_path = beside(out, ".widefield.tif")
            write_ome_tiff(
                widefield_path,
                (
                    backend.to_numpy(
                        channels[raw.channel_of_set(i)].rec.widefield(
                            first if i == 0 else converted(raw.read_set(i)),
                            missing_frames=blanks.missing(i),
                        )
                    )
                    for i in range(raw.n_sets)
                ),
                pixel_size_nm=setup.pixel_size_nm,
                axes=lead_axes + "YX",
                metadata={
                    "software": f"scope {__version__}",
                    "input": str(src),
                    "image": WIDEFIELD_DESCRIPTION,
                    "optics": setup.model_dump(),
                    "offset_adu": offset,  # None: each set's own (its darkest values)
                },
                channel_wavelengths_nm=wavelengths,
                time_increment_s=raw.time_increment_s,
                shape=(*raw.lead_shape, *raw.frame_shape),
            )
        if args.diagnostics:
            stem = output_base(out)
            for c, ch in enumerate(channels):
                # the first channel's files and figures at the top; every channel's beside
                tag = f".c{c}" if c else ""
                said = f"channel {c} ({ch.setup.wavelength_nm:g} nm) " if raw.n_channels > 1 else ""
                entries = [doc] if c == 0 else []
                entries += [doc["channels"][c]] if raw.n_channels > 1 else []
                _diagnose(ch, out.with_name(stem + tag), said, entries, settings, backend)
            write_params()
    dt = time.perf_counter() - t0
    if clipped.significant:
        log.warning("%s: %s", src.name, clipped.message())
    if blanks.found:
        log.warning("%s: %s", src.name, blanks.message())
    print(
        f"wrote {out} ({' x '.join(map(str, shape))}, {rec.output_pixel_size_nm:g} nm pixels) "
        f"and {params_path.name} in {dt:.1f} s"
    )
    if widefield_path is not None:
        print(f"widefield: {widefield_path}")
    if not args.params and any(
        math.isnan(a.confidence) or a.source != "estimated"
        for ch in channels
        for a in ch.params.angles
    ):
        print("note: some angles fell back to the prior pattern (see the log)")
    return 0


def _diagnose(
    ch: _Channel,
    base: Path,
    said: str,
    entries: list[dict[str, Any]],
    settings: Any,
    backend: Any,
) -> None:
    """One channel's diagnostics: the spectrum with its carriers (``base.spectrum.png``), the
    pattern's modulation contrast-to-noise (``base.modulation.png``), a bent pattern's tiles
    (``base.pattern-map.png``) and a resolution estimate; their figures go into ``entries``
    (the ``.params.json`` sections of this channel)."""
    from scope.sim.diagnostics import (
        estimate_resolution,
        modulation_map,
        modulation_png,
        spectrum_png,
        tile_pattern_png,
    )

    first, setup, params, otf, rec = ch.first, ch.setup, ch.params, ch.otf, ch.rec
    png = base.with_name(base.name + ".spectrum.png")
    spectrum_png(png, first, setup, params)
    # the images written, with the reconstruction's own settings
    res = estimate_resolution(
        first,
        setup,
        params,
        images=(ch.first_sim, backend.to_numpy(rec.widefield(first))),
        offset_adu=rec.camera_offset(first),
        settings=settings,
        otf=otf,
    )
    mmap = modulation_map(first, setup, params, offset_adu=rec.camera_offset(first), otf=otf)
    modulation_path = base.with_name(base.name + ".modulation.png")
    modulation_png(modulation_path, mmap)
    for entry in entries:
        entry["resolution_nm"] = {
            "widefield": res.widefield_nm,
            "sim": res.sim_nm,
            "method": res.method,
        }
        entry["modulation_contrast"] = mmap.summary()
    print(f"{said}spectrum: {png}")
    tiled = ch.pattern_map.tiled if ch.pattern_map is not None else None
    if tiled is not None:  # where the optics bend the pattern, and how far
        pattern_path = base.with_name(base.name + ".pattern-map.png")
        tile_pattern_png(pattern_path, tiled)
        print(
            f"{said}pattern across the field ({len(tiled.grid)} tiles, drifting up to "
            f"{ch.pattern_map.max_drift_rad:.1f} rad from the whole frame's): {pattern_path}"
        )
    summary = mmap.summary()
    print(
        f"{said}modulation contrast-to-noise: median {summary['median_mcnr']:.1f}, "
        f"{100 * summary['fraction_mcnr_3_or_more']:.0f} % of pixels at 3 or more "
        f"(map: {modulation_path})"
    )
    beyond = [
        i for i, a in enumerate(params.angles) if math.hypot(*a.k_per_um) >= otf.cutoff_per_um
    ]
    if beyond:
        print(
            f"{said}note: the pattern of angle(s) {beyond} lies beyond the detection cutoff; "
            "it is not visible in the raw frames themselves, so the map reads the noise floor "
            "(0.9) there whatever the pattern's quality"
        )
    print(
        f"{said}resolution ({res.method}): widefield {res.widefield_nm:.0f} nm, "
        f"SIM {res.sim_nm:.0f} nm"
    )


def _run_batch(args: argparse.Namespace) -> int:
    """Several inputs: hand over to the batch engine (``scope batch``)."""
    from scope.cli import batch as batch_cli
    from scope.cli.parameter_flags import parameter_dests
    from scope.errors import ConfigurationError

    one_file_only = [
        flag
        for flag, given in (
            ("--params", args.params),
            ("--filter hifi", args.filter != "wiener"),
            ("--notch", args.notch),
            ("--diagnostics", args.diagnostics),
        )
        if given
    ]
    if one_file_only:
        raise ConfigurationError(
            f"{', '.join(one_file_only)}: for one input file; several inputs go to the batch "
            "engine (`scope batch`, which reports resolution and modulation contrast for every "
            "file): reconstruct the files one at a time to use them"
        )
    out = Path(args.output)
    if out.suffix.lower() in (".tif", ".tiff") and not out.is_dir():
        raise ConfigurationError(
            f"-o {args.output}: several inputs (or a folder) get one result each, written into "
            "a folder: name an output folder (e.g. -o sim/), or give one input file"
        )
    parser = argparse.ArgumentParser(prog="scope batch")
    sub = parser.add_subparsers()
    batch_cli.register(sub)
    bargs = parser.parse_args(["batch", *args.raw, "-o", args.output])
    for dest in parameter_dests():  # the shared flags, as given (None: not given)
        setattr(bargs, dest, getattr(args, dest))
    bargs.quiet = getattr(args, "quiet", False)  # `scope -q reconstruct A B`: no progress bar
    return bargs.func(bargs)
