"""``scope export-video``: a post-ready clip from a raw SIM run, a reconstruction or an image.

Examples
--------
``scope export-video run.tif --raw --na 1.2 --wavelength 525 --pixel-size 65 -o clip.mp4``
(reconstructs, then a widefield-to-SIM wipe for Reels/TikTok/Shorts)

``scope export-video sim.ome.tif -o clip.mp4 --preset square --colormap inferno --title "Mito"``

``scope export-video cells.tif -o chat.gif --preset gif``
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_PRESETS = ("reel", "square", "portrait", "landscape", "gif")
_LAYOUTS = ("auto", "sim", "overlay", "side-by-side", "wipe")


_EPILOG = """\
examples:
  scope export-video run.tif --raw --na 1.2 --wavelength 525 --pixel-size 65 -o clip.mp4
      (reconstructs, then a widefield-to-SIM wipe for Reels/TikTok/Shorts)
  scope export-video sim.ome.tif -o clip.mp4 --preset square --colormap inferno --title "Mito"
  scope export-video cells.tif -o chat.gif --preset gif"""


def register(subparsers: Any) -> None:
    from scope.cli.parameter_flags import (
        BACKEND_CHOICES,
        BACKEND_HELP,
        NA_HELP,
        WAVELENGTH_HELP,
        HelpFormatter,
        add_pattern_sequence_flags,
        default_is,
    )

    p = subparsers.add_parser(
        "export-video",
        help="make a clip for social media (MP4 for Reels/TikTok/Shorts/feeds, GIF for chats)",
        description="Render a raw SIM run (reconstructed on the fly, with --raw), a "
        "reconstructed series or a single image (slow zoom) into an H.264 MP4 that uploads "
        "everywhere (High profile, yuv420p, 30 fps, faststart, BT.709) or a GIF. Contrast is "
        "fixed over the whole clip; scale bar, timestamp and speed-up are drawn from the "
        "file's metadata; all text stays inside the platforms' safe areas.",
        epilog=_EPILOG,
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "input", type=Path, metavar="INPUT", help="TIFF/OME-TIFF/MRC file or OME-Zarr folder"
    )
    p.add_argument(
        "-o", "--output", type=Path, required=True, metavar="CLIP", help="output .mp4 or .gif"
    )
    p.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    p.add_argument(
        "--preset",
        choices=_PRESETS,
        default=None,
        help=default_is(
            "clip size: reel 1080x1920, square 1080x1080, portrait 1080x1350, landscape "
            "1920x1080, gif 480x480",
            "reel, or gif for a .gif output",
        ),
    )
    p.add_argument(
        "--layout",
        choices=_LAYOUTS,
        default="auto",
        help=default_is(
            "sim: the SIM image; overlay: the channels in their colours; side-by-side: "
            "widefield | SIM; wipe: widefield wiped into SIM; auto: wipe for raw runs, overlay "
            "for several channels, else sim"
        ),
    )
    p.add_argument(
        "--colormap",
        default="magma",
        metavar="NAME",
        help=default_is(
            "colormap of one channel: magma, inferno, viridis, hot, grey, green, magenta, cyan, "
            "red, yellow, blue"
        ),
    )
    p.add_argument(
        "--channel-colormaps",
        default=None,
        metavar="A,B,...",
        help=default_is(
            "colormaps of the channels of an overlay, comma separated", "green,magenta,cyan"
        ),
    )
    p.add_argument("--title", help="title at the top (default: none)")
    p.add_argument("--caption", help="caption under the title (default: none)")
    p.add_argument("--credit", help="credit or watermark line at the bottom (default: none)")
    p.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help=default_is("clip length, seconds", "real time within the platform limits"),
    )
    p.add_argument(
        "--short",
        choices=("slow", "loop"),
        default="slow",
        help=default_is("stretch runs shorter than the platform minimum by slowing or looping"),
    )
    p.add_argument(
        "--interval",
        type=float,
        metavar="S",
        help=default_is(
            "seconds between frames when the file does not say", "unknown: no time shown"
        ),
    )
    p.add_argument(
        "--pixel-size",
        type=float,
        metavar="NM",
        help=default_is(
            "pixel size at the sample, nm (the camera pixel for --raw); overrides the file's",
            "the file's",
        ),
    )
    p.add_argument(
        "--widefield",
        type=Path,
        metavar="FILE",
        help=default_is(
            "the widefield image of a reconstructed INPUT, for the side-by-side and wipe layouts",
            "<name>.widefield.* beside INPUT, as scope reconstruct --widefield and scope "
            "batch --widefield write it",
        ),
    )
    p.add_argument(
        "--axes",
        metavar="LETTERS",
        help=default_is(
            "what the axes of INPUT hold, one letter each, Y and X last: T time, C channel "
            "(e.g. CYX: the planes of a plain TIFF are channels; TYX: they are time points)",
            "the file's axis metadata; a plain TIFF stack without any is a time series",
        ),
    )
    p.add_argument("--no-scale-bar", action="store_true", help="no scale bar")
    p.add_argument("--no-timestamp", action="store_true", help="no timestamp")
    p.add_argument(
        "--gamma", type=float, default=1.0, help=default_is("display gamma", "%(default)g")
    )
    raw = p.add_argument_group("raw SIM runs")
    raw.add_argument(
        "--raw",
        action="store_true",
        help="INPUT is a raw SIM stack (..., angles*phases, Y, X): reconstruct it "
        "(runs written by scope acquire are recognised by themselves)",
    )
    raw.add_argument("--na", type=float, metavar="NA", help=default_is(NA_HELP, "the file's"))
    raw.add_argument(
        "--wavelength",
        type=float,
        metavar="NM",
        help=default_is(WAVELENGTH_HELP, "the file's, each channel's where it states them"),
    )
    add_pattern_sequence_flags(raw)
    raw.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help=default_is(BACKEND_HELP),
    )
    p.set_defaults(func=run)


#: number flags: (name, what the number is); every one must be finite and above 0
_POSITIVE_FLAGS = (
    ("duration", "seconds"),
    ("interval", "seconds"),
    ("pixel_size", "nm"),
    ("gamma", "(a display gamma)"),
    ("na", "(a numerical aperture)"),
    ("wavelength", "nm"),
)


def _check_numbers(args: argparse.Namespace) -> None:
    """One line for a number flag that is not finite and positive (argparse's ``float`` takes
    ``nan`` and ``inf``; ``--pixel-size 0`` would be taken as not given).

    Not :func:`scope.cli.parameter_flags.finite_number` as the flags' type: that refuses NaN
    and inf only (not 0 or negative values), without the unit, and through argparse's usage
    lines rather than this one line.

    Raises
    ------
    ConfigurationError
        Naming the flag, its value and the range expected.
    """
    from scope.errors import ConfigurationError

    for dest, unit in _POSITIVE_FLAGS:
        value = getattr(args, dest, None)
        if value is not None and not (math.isfinite(value) and value > 0):
            flag = "--" + dest.replace("_", "-")
            raise ConfigurationError(
                f"{flag} {value:g}: expected a finite number above 0 {unit}".rstrip()
            )


def _summary(result: Any, timed: bool) -> str:
    """The line printed after writing: what, how long, how fast."""
    from scope.export.timing import DEFAULT_PLAYBACK_FPS

    if result.speed_factor:
        timing = f"{result.mode}, {result.speed_factor:.3g}x speed"
    elif result.mode == "still" or timed:
        timing = result.mode
    else:
        assumed = f"an assumed {DEFAULT_PLAYBACK_FPS:g} frames/s"
        timing = (
            f"played at {assumed}" if result.mode == "realtime" else f"{result.mode} from {assumed}"
        ) + ": frame interval unknown, no time or speed shown; --interval S gives it"
    return (
        f"wrote {result.path}: {result.preset} {result.layout}, {result.n_frames} frames, "
        f"{result.duration_s:.1f} s ({timing}), {result.size_bytes / 1e6:.1f} MB"
    )


def run(args: argparse.Namespace) -> int:
    from scope.errors import ConfigurationError
    from scope.export import RenderStyle, export_video
    from scope.export.clip import check_output_path
    from scope.export.sources import read_image_source, reconstruct_raw_source
    from scope.io.raw import is_acquisition_run

    _check_numbers(args)
    preset = args.preset or ("gif" if args.output.suffix.lower() == ".gif" else "reel")
    expected_suffix = ".gif" if preset == "gif" else ".mp4"
    if args.output.suffix.lower() != expected_suffix and not args.output.is_dir():
        raise ConfigurationError(
            f"--preset {preset} writes {expected_suffix} files, but the output is "
            f"{args.output.name}; name it *{expected_suffix}"
        )
    try:  # before anything is read or rendered
        check_output_path(args.output, overwrite=args.overwrite)
    except ConfigurationError as err:  # the refusal of an existing clip, in the flag's words
        if args.output.is_file() and not args.overwrite:
            raise ConfigurationError(
                f"{args.output} exists: choose another name, or --overwrite to replace it"
            ) from err
        raise
    if args.input.resolve() == args.output.resolve():
        raise ConfigurationError(f"-o {args.output} is the input file: name the clip otherwise")
    raw_input = args.raw or is_acquisition_run(args.input)
    if raw_input and args.widefield:
        raise ConfigurationError(
            "--widefield is for a reconstructed INPUT; a raw run gives its own widefield image"
        )
    if raw_input and args.axes:
        raise ConfigurationError(
            "--axes is for images and reconstructed series; a raw run's axes come from the "
            "file (--angles/--phases/--frame-order say how its frames make SIM sets)"
        )
    if raw_input:
        source = reconstruct_raw_source(
            args.input,
            na=args.na,
            wavelength_nm=args.wavelength,
            pixel_size_nm=args.pixel_size,
            n_angles=args.angles,
            n_phases=args.phases,
            frame_order=args.frame_order,
            frame_interval_s=args.interval,
            backend=args.backend,
        )
    else:
        source = read_image_source(args.input, axes=args.axes)
        if args.pixel_size:
            source.pixel_size_nm = args.pixel_size
        n_set = (args.angles or 3) * (args.phases or 3)
        if source.frames.shape[0] % n_set == 0 and source.timestamps_s is None:
            log.info("if %s is a raw SIM run, add --raw to reconstruct it", args.input.name)
        widefield = args.widefield
        from scope.batch.job import widefield_path
        from scope.io.writers import beside

        candidates = [beside(args.input, ".widefield.tif")]  # scope reconstruct's name
        with contextlib.suppress(ValueError):  # scope batch's, for its result names
            candidates.append(widefield_path(args.input))
        found = [p for p in candidates if p.exists()]
        if widefield is None and args.layout in ("side-by-side", "wipe") and found:
            widefield = found[0]
            log.info("widefield image: %s (beside %s)", widefield.name, args.input.name)
        if widefield is not None:
            wf = read_image_source(widefield, axes=args.axes)
            if wf.frames.shape[:2] != source.frames.shape[:2]:
                raise ConfigurationError(
                    f"{widefield.name} holds {wf.frames.shape[0]} frame(s) of "
                    f"{wf.frames.shape[1]} channel(s), {args.input.name} "
                    f"{source.frames.shape[0]} of {source.frames.shape[1]}: expected the "
                    "widefield image of the same series"
                )
            source.widefield, source.widefield_pixel_size_nm = wf.frames, wf.pixel_size_nm
    n_channels = source.frames.shape[1]
    names = ", ".join(source.channel_names or [f"ch{c + 1}" for c in range(n_channels)])
    if args.layout == "overlay" and n_channels < 2:
        hint = (  # --axes is refused for raw runs: their channels come from the file
            "; use --layout wipe, side-by-side or sim"
            if raw_input
            else "; if its planes are channels, say so with --axes CYX (TCYX for time points of "
            "channels)"
        )
        raise ConfigurationError(
            f"--layout overlay adds channels in their colours, but {args.input.name} holds one "
            f"channel ({source.frames.shape[0]} frame(s)){hint}"
        )
    if args.layout == "sim" and n_channels > 1:
        raise ConfigurationError(
            f"--layout sim shows one channel, but {args.input.name} holds {n_channels} "
            f"({names}); use --layout overlay to show them in their colours (or --axes, if "
            "these channels are time points)"
        )
    channel_cmaps = args.channel_colormaps.split(",") if args.channel_colormaps else None
    if channel_cmaps and n_channels < 2:
        log.warning(
            "--channel-colormaps is for images with several channels; %s holds one: its "
            "colours come from --colormap (%s)",
            args.input.name,
            args.colormap,
        )
    elif channel_cmaps and len(channel_cmaps) > n_channels:
        log.warning(
            "%d --channel-colormaps for %d channels (%s): the last %d are not used",
            len(channel_cmaps),
            n_channels,
            names,
            len(channel_cmaps) - n_channels,
        )
    if n_channels == 1 and source.frames.shape[0] > 1 and source.channel_names is None:
        log.info(
            "%s: %d frames read as a time series (--axes CYX reads planes as channels)",
            args.input.name,
            source.frames.shape[0],
        )
    style = RenderStyle(
        colormap=args.colormap,
        channel_colormaps=channel_cmaps,
        gamma=args.gamma,
        title=args.title,
        caption=args.caption,
        credit=args.credit,
        scale_bar=not args.no_scale_bar,
        timestamp=not args.no_timestamp,
    )
    result = export_video(
        source.frames,
        args.output,
        preset=preset,
        pixel_size_nm=source.pixel_size_nm,
        widefield=source.widefield,
        widefield_pixel_size_nm=source.widefield_pixel_size_nm,
        layout=args.layout,
        channel_axis=1,
        channel_names=source.channel_names,
        timestamps_s=source.timestamps_s,
        frame_interval_s=args.interval if source.timestamps_s is None else None,
        duration_s=args.duration,
        short_mode=args.short,
        style=style,
        overwrite=args.overwrite,
    )
    timed = source.timestamps_s is not None or args.interval is not None
    print(_summary(result, timed))
    return 0
