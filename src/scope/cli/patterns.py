"""``scope patterns``: the grating images a pattern device shows, and what they are.

Writes one PNG per frame of a SIM set (1-bit for binary gratings, 8-bit grey otherwise), at the
device's resolution, in the order the controller's sequence indexes them (angle-major, phase
fastest), and ``patterns.json``: the quantised gratings (angle, period and their errors on the
device's pixel grid, phase steps, fundamental contrast) and the pattern parameters they give at
the sample, the priors
``scope reconstruct``/``scope batch`` can use. Upload the PNGs to a DMD's memory in this order,
or copy the folder to the Raspberry Pi that drives a projector
(``hardware/pattern-display/``). Pattern files of an earlier run in the same folder
(``pattern_NNN.png`` beyond this run's frames) are removed, so the folder holds exactly the frames
``patterns.json`` lists; other files are left alone.

The device's rotation and mirroring in the camera frame come from ``--rotation-deg`` and
``--mirror``, else from the preset's ``[calibration.registration]`` (with its measured
demagnification), else no rotation and no mirror (the output says which).

Examples
--------
``scope patterns --preset hardware/presets/budget.toml -o patterns/``
``scope patterns --preset better.toml -o dmd/ --angles 5 65 125 --rotation-deg 12.5``
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    from scope.cli.parameter_flags import (
        PHASES_HELP,
        SETUP_PRESET_HELP,
        DegreesAction,
        HelpFormatter,
        default_is,
        phases_count,
    )

    p = subparsers.add_parser(
        "patterns",
        help="write the grating images for the DMD or projector, and their parameters",
        description="Quantise the SIM gratings onto the pattern device's pixel grid (exact "
        "phase steps, angles and periods within a tolerance) and write one PNG per frame, in "
        "controller sequence order, with patterns.json describing them and the priors they "
        "give at the sample (--prior-angles/--prior-period of scope reconstruct and scope "
        "batch). Device, period and frame counts come from --preset FILE.toml ([illuminator], "
        "[objective], [acquisition]); flags override it. Pattern files of an earlier run in "
        "the folder (pattern_NNN.png beyond this run's frames) are removed; other files are "
        "left alone.",
        epilog="examples:\n  scope patterns --preset hardware/presets/budget.toml -o patterns/\n"
        "  scope patterns --preset better.toml -o dmd/ --angles 5 65 125 --rotation-deg 12.5",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--preset", metavar="FILE.toml", required=True, help=SETUP_PRESET_HELP)
    p.add_argument(
        "-o", "--output", required=True, metavar="FOLDER", help="output folder (created)"
    )
    p.add_argument(
        "--device-size",
        metavar="WxH",
        help=default_is(
            "device resolution in pixels, e.g. 640x360", "the preset's width_px x height_px"
        ),
    )
    p.add_argument(
        "--angles",
        nargs="+",
        action=DegreesAction,
        metavar="DEG",
        help=default_is(
            "grating angles on the device, degrees: 5 65 125 or 5,65,125",
            "the preset's n_angles equally spaced, starting at the whole degree where every "
            "grating fits the pixel lattice best",
        ),
    )
    p.add_argument(
        "--period-px",
        type=float,
        metavar="PX",
        help=default_is("grating period, device pixels", "the preset's pattern_period_px"),
    )
    p.add_argument(
        "--phases",
        type=phases_count(),
        metavar="N",
        help=default_is(PHASES_HELP, "the preset's, else 3"),
    )
    p.add_argument(
        "--kind",
        choices=("binary", "grey"),
        help=default_is(
            "binary (DMD, 1-bit) or grey (sinusoidal, 8-bit video)",
            "binary for a DMD, grey for a projector or LCoS",
        ),
    )
    p.add_argument(
        "--rotation-deg",
        type=float,
        default=None,
        metavar="DEG",
        help=default_is(
            "device x axis in the camera frame, degrees",
            "the preset's [calibration.registration], else 0",
        ),
    )
    p.add_argument(
        "--mirror",
        action="store_true",
        default=None,
        help=default_is(
            "the projection mirrors the device", "the preset's [calibration.registration], else no"
        ),
    )
    p.set_defaults(func=run)


def _device_size(text: str | None, illuminator: Any) -> tuple[int, int]:
    from scope.errors import ConfigurationError

    if text:
        try:
            w, h = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise ConfigurationError(
                f"--device-size {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 640x360"
            ) from None
    else:
        w, h = illuminator.width_px, illuminator.height_px
        if not (w and h):
            raise ConfigurationError(
                f"the preset's [illuminator] ({illuminator.name}) gives no width_px/height_px: "
                "add them or pass --device-size WxH"
            )
    if w < 16 or h < 16:
        raise ConfigurationError(f"device size {w}x{h}: expected at least 16 x 16 pixels")
    return w, h


#: the names scope patterns gives its frames (pattern_000.png, ...)
_FRAME_NAME = re.compile(r"pattern_(\d{3,})\.png")


def _frame_name(index: int) -> str:
    return f"pattern_{index:03d}.png"


def _remove_stale_frames(out: Path, keep: set[str]) -> list[str]:
    """Remove scope's own pattern files (``pattern_NNN.png``) of an earlier run that this run
    did not write; other files are left alone. Returns the names removed, in order."""
    stale = sorted(
        (p for p in out.iterdir() if _FRAME_NAME.fullmatch(p.name) and p.name not in keep),
        key=lambda p: int(_FRAME_NAME.fullmatch(p.name).group(1)),  # type: ignore[union-attr]
    )
    for path in stale:
        path.unlink()
    return [p.name for p in stale]


def _geometry(preset: dict[str, Any], illuminator: Any, objective: Any,
              rotation_deg: float | None, mirror: bool | None) -> tuple[Any, str]:  # fmt: skip
    """The device-to-sample geometry and a phrase saying where its rotation came from:
    ``rotation_deg``/``mirror`` when given, else the preset's ``[calibration.registration]``,
    else no rotation and no mirror."""
    from scope.errors import ConfigurationError
    from scope.sim.gratings import ProjectionGeometry

    registration = preset.get("calibration", {}).get("registration")
    geometry = ProjectionGeometry.from_illuminator(illuminator, objective)
    if registration is not None:
        try:
            scale = float(registration["scale_um_per_px"])
            rotation = float(registration["rotation_deg"])
            mirror = bool(registration["mirror"])
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigurationError(
                f"the preset's [calibration.registration] is incomplete or malformed ({err!r}): "
                "fit the registration again, or remove the table and give --rotation-deg"
            ) from err
        geometry = ProjectionGeometry(
            pixel_pitch_um=geometry.pixel_pitch_um,
            demagnification=geometry.pixel_pitch_um / scale,
            rotation_deg=rotation,
            mirror=mirror,
            two_beam=geometry.two_beam,
        )
    rotation = rotation_deg if rotation_deg is not None else geometry.rotation_deg
    mirror = mirror if mirror is not None else geometry.mirror
    geometry = ProjectionGeometry(
        pixel_pitch_um=geometry.pixel_pitch_um,
        demagnification=geometry.demagnification,
        rotation_deg=rotation,
        mirror=mirror,
        two_beam=geometry.two_beam,
    )
    if rotation_deg is not None:
        source = "--rotation-deg"
    elif registration is not None:
        source = "from the preset's [calibration.registration]"
    else:
        source = "the default: no registration calibration in the preset, no --rotation-deg"
    return geometry, source


@dataclass(frozen=True)
class DevicePatterns:
    """The pattern set a preset's pattern device shows and what it gives at the sample.

    Attributes
    ----------
    pattern_set : scope.sim.gratings.PatternSet
        The quantised gratings and their frames (angle-major, phase fastest).
    geometry : scope.sim.gratings.ProjectionGeometry
        Device to sample.
    rotation_source : str
        Where the device's rotation came from (for the output).
    nominal : scope.sim.params.SIMParameters
        The gratings at the sample: the reconstruction's priors.
    illuminator : scope.planning.Illuminator
        The preset's pattern device.
    """

    pattern_set: Any
    geometry: Any
    rotation_source: str
    nominal: Any
    illuminator: Any

    @property
    def kind(self) -> str:
        return str(self.pattern_set.kind)


def device_patterns(
    preset: dict[str, Any],
    *,
    angles: list[float] | None = None,
    period_px: float | None = None,
    n_angles: int | None = None,
    n_phases: int | None = None,
    kind: str | None = None,
    shape: tuple[int, int] | None = None,
    device_size: str | None = None,
    rotation_deg: float | None = None,
    mirror: bool | None = None,
) -> DevicePatterns:
    """The gratings ``scope patterns --preset`` makes for a preset's pattern device.

    One function for ``scope patterns`` (which writes them) and ``scope acquire --preset``
    (which takes their angles and periods at the sample), so that the two cannot disagree.

    Parameters
    ----------
    preset : dict
        A setup preset (:func:`scope.planning.load_preset`).
    angles : list of float, optional
        Grating angles on the device; default ``n_angles`` equally spaced, starting at the
        whole degree where every grating fits the pixel lattice best.
    period_px : float, optional
        Grating period, device pixels; default the preset's ``pattern_period_px``.
    n_angles, n_phases : int, optional
        Default: the preset's ``[acquisition]`` (``n_angles`` only without ``angles``).
    kind : {"binary", "grey"}, optional
        Default: binary for a DMD, grey for a projector or LCoS.
    shape : (height, width), optional
        Draw the frames at this size instead of the device's (the gratings, hence the
        nominal parameters, do not depend on it; a caller that needs only those draws few
        pixels).
    device_size : str, optional
        ``"WxH"`` (``--device-size``); default the preset's ``width_px`` x ``height_px``.
    rotation_deg, mirror : optional
        The device in the camera frame; default the preset's ``[calibration.registration]``,
        else no rotation and no mirror.

    Returns
    -------
    DevicePatterns

    Raises
    ------
    ConfigurationError
        The preset's illuminator has no pixels (a printed grating), no grating period, or no
        device size (when ``shape`` is not given).
    """
    from scope.errors import ConfigurationError
    from scope.planning import parts_from_preset
    from scope.sim.gratings import best_grating_angles, make_pattern_set

    _, objective, illuminator, acquisition = parts_from_preset(preset)
    if illuminator.kind == "printed_grating":
        raise ConfigurationError(
            "a printed grating has no pixels to show patterns on: scope patterns is for DMD, "
            "LCoS and projector illuminators"
        )
    if shape is None:
        width, height = _device_size(device_size, illuminator)
        shape = (height, width)
    n_phases = n_phases or acquisition.n_phases
    period_px = period_px or illuminator.pattern_period_px
    if not period_px:
        raise ConfigurationError(
            f"the preset's [illuminator] ({illuminator.name}) gives no pattern_period_px: add "
            "it or pass --period-px"
        )
    n_angles = len(angles) if angles else (n_angles or acquisition.n_angles)
    kind = kind or ("binary" if illuminator.kind == "dmd" else "grey")
    angles = angles or best_grating_angles(n_angles, period_px, n_phases, kind)
    pattern_set = make_pattern_set(angles, period_px, shape=shape, n_phases=n_phases, kind=kind)
    geometry, source = _geometry(preset, illuminator, objective, rotation_deg, mirror)
    return DevicePatterns(
        pattern_set=pattern_set,
        geometry=geometry,
        rotation_source=source,
        nominal=pattern_set.nominal_parameters(geometry),
        illuminator=illuminator,
    )


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from scope.errors import ConfigurationError
    from scope.planning import load_preset

    patterns = device_patterns(
        load_preset(args.preset),
        angles=args.angles,
        period_px=args.period_px,
        n_phases=args.phases,
        kind=args.kind,
        device_size=args.device_size,
        rotation_deg=args.rotation_deg,
        mirror=args.mirror,
    )
    pattern_set, geometry, nominal = patterns.pattern_set, patterns.geometry, patterns.nominal
    illuminator, kind = patterns.illuminator, patterns.kind
    height, width = pattern_set.frames.shape[-2:]

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ConfigurationError(f"-o {out} is a file: give a folder for the pattern images")
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for i, frame in enumerate(pattern_set.frames):
        name = _frame_name(i)
        if kind == "binary":  # 1-bit PNG (mirror on / off), what DMD tools take
            image = Image.fromarray(np.ascontiguousarray(frame > 0))
        else:
            image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
        image.save(out / name)
        names.append(name)
    removed = _remove_stale_frames(out, set(names))
    doc = {
        "device": {"name": illuminator.name, "kind": illuminator.kind, "width_px": width,
                   "height_px": height},
        "kind": kind,
        "files": names,
        "sequence": pattern_set.sequence,
        "n_angles": pattern_set.n_angles,
        "n_phases": pattern_set.n_phases,
        "gratings": pattern_set.report(),
        "geometry": {"device_pixel_at_sample_nm": geometry.device_pixel_at_sample_nm,
                     "rotation_deg": geometry.rotation_deg, "mirror": geometry.mirror,
                     "two_beam": geometry.two_beam},
        "at_sample": nominal.to_dict(),
    }  # fmt: skip
    (out / "patterns.json").write_text(json.dumps(doc, indent=2, default=float) + "\n")

    w = sys.stdout.write
    w(f"{illuminator.name}: {width} x {height} px, {kind} gratings, "
      f"{pattern_set.n_angles} angles x {pattern_set.n_phases} phases\n")  # fmt: skip
    for q, at in zip(pattern_set.gratings, nominal.angles):
        w(f"  {q.requested_angle_deg:7.2f}° / {q.requested_period_px:.3f} px -> "
          f"{q.angle_deg:8.3f}° / {q.period_px:.4f} px on the device "
          f"(errors {q.angle_error_deg:+.3f}°, {100 * q.period_error:+.3f} %); at the sample "
          f"{at.angle_deg:7.2f}°, {at.period_nm:.1f} nm\n")  # fmt: skip
    angles_txt = ",".join(f"{a.angle_deg:.2f}" for a in nominal.angles)
    period = float(np.mean([a.period_nm for a in nominal.angles]))
    mirrored = ", mirrored" if geometry.mirror else ""
    source = patterns.rotation_source
    w(f"priors at the sample (device rotation {geometry.rotation_deg:g}°{mirrored}, "
      f"{source}): --prior-angles {angles_txt} --prior-period {period:.1f}\n")  # fmt: skip
    w(f"wrote {len(names)} frames and patterns.json to {out}/\n")
    if removed:
        w(f"  removed {len(removed)} pattern files of an earlier run there ({removed[0]}"
          f"{' ... ' + removed[-1] if len(removed) > 1 else ''}): the folder holds exactly "
          "the frames patterns.json lists\n")  # fmt: skip
    w("  DMD: upload them in file order; the controller sequence is "
      f"{pattern_set.sequence}\n")  # fmt: skip
    w("  projector: copy the folder to the Raspberry Pi and run "
      "hardware/pattern-display/pattern_display.py on it\n")  # fmt: skip
    return 0
