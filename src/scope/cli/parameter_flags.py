"""The optics, pattern and camera flags that ``scope reconstruct`` and ``scope batch`` share.

Every flag defaults to None (not given): ``scope batch`` then takes the value from the preset
or the file, ``scope reconstruct`` from the file or its own default (3 x 3 frames, immersion
1.515, equalisation and the pattern map on ``auto``). ``scope reconstruct`` given several files
hands these flags over to the batch engine as they are (:func:`parameter_dests`).
"""

from __future__ import annotations

import argparse
import math

#: immersion index where neither a flag nor a preset gives one (oil)
DEFAULT_IMMERSION = 1.515


def finite_number(text: str) -> float:
    """An argparse ``type``: a finite number (``float`` alone takes ``nan`` and ``inf``, which
    then fail later with a misleading range message).

    Examples
    --------
    >>> finite_number("1.3")
    1.3
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number: give a finite value")
    return value


def add_parameter_flags(p: argparse.ArgumentParser) -> None:
    """Add the shared flags to ``p`` (all optional, default None)."""
    p.add_argument("--na", type=finite_number, help="detection numerical aperture")
    p.add_argument(
        "--wavelength",
        type=finite_number,
        nargs="+",
        help="emission wavelength, nm (one per channel for files with several)",
    )
    p.add_argument("--pixel-size", type=finite_number, help="camera pixel size at the sample, nm")
    p.add_argument(
        "--immersion",
        type=finite_number,
        help=f"immersion refractive index (default {DEFAULT_IMMERSION})",
    )
    p.add_argument("--offset", type=finite_number, help="camera offset, ADU")
    add_pattern_sequence_flags(p)
    p.add_argument("--backend", choices=("auto", "numpy", "cupy"), help="array backend")
    p.add_argument(
        "--otf",
        nargs="+",
        metavar="FILE",
        help="measured OTF (TIFF or MRC: radial profile or 2D; or a preset TOML holding the "
        "[calibration.otf] of `scope calibrate otf`); one per channel for files with several (a "
        "measured OTF belongs to one emission wavelength)",
    )
    p.add_argument(
        "--wiener",
        type=finite_number,
        help="classic constant Wiener parameter (default: adaptive, from the data's noise)",
    )
    p.add_argument(
        "--equalize",
        choices=("auto", "on", "off"),  # scope.sim.reconstruct.EQUALIZE_MODES
        help="scale frames lit unequally (flicker, bleaching, angles) to equal brightness: "
        "auto when they differ by more than 2%% (default), on, off",
    )
    p.add_argument(
        "--saturation-adu",
        type=finite_number,
        help="the camera's full scale, ADU: values there are counted as clipped (default: from "
        "the camera's pixel format or the data type; values piling up at 1023/4095/16383 in "
        "16-bit data)",
    )
    p.add_argument(
        "--camera-maps",
        metavar="PRESET",
        help="a preset holding per-pixel camera maps (scope calibrate camera --maps): every "
        "frame becomes photo-electrons pixel by pixel first (no --offset then)",
    )
    p.add_argument(
        "--keep-defects",
        action="store_true",
        default=None,
        help="leave hot and dead camera pixels as they are (default: found from the optics' "
        "band limit and replaced by their neighbours' mean)",
    )
    p.add_argument(
        "--pattern-map",
        choices=("auto", "on", "off"),  # scope.sim.pattern_map.MAP_MODES
        help="map a pattern that the illumination optics bend across a large field (measured "
        "in tiles) and take its phase out pixel by pixel: auto (default) when a corner of the "
        "field drifts by more than 0.2 rad, on, off",
    )
    p.add_argument("--prior-angles", help="nominal pattern angles, degrees, comma separated")
    p.add_argument("--prior-period", type=finite_number, help="nominal pattern period, nm")
    p.add_argument(
        "--widefield",
        action="store_true",
        default=None,
        help="also write the widefield image of each set (mean of its frames, offset "
        "subtracted; camera pixels) beside the SIM result as <name>.widefield.tif (scope "
        "batch: .widefield.zarr or .widefield.ome.tif)",
    )


def add_pattern_sequence_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--angles``, ``--phases`` and ``--frame-order``: how a file's frames make SIM sets
    (also the video exporter's, for raw runs)."""
    p.add_argument(
        "--angles", type=int, help="pattern orientations (default: as the run states, else 3)"
    )
    p.add_argument(
        "--phases", type=int, help="phase steps per angle (default: as the run states, else 3)"
    )
    p.add_argument(
        "--frame-order",
        choices=("angle-major", "phase-major"),  # scope.io.raw.FRAME_ORDERS
        help="how each set's frames lie in the file: angle-major, phase fastest (a0p0 a0p1 "
        "a0p2 a1p0 ..., the default) or phase-major, angle fastest (a0p0 a1p0 a2p0 a0p1 ...)",
    )


def parameter_dests() -> list[str]:
    """The argparse names (``args.<dest>``) of the shared flags."""
    p = argparse.ArgumentParser(add_help=False)
    add_parameter_flags(p)
    return [a.dest for a in p._actions]
