"""``scope plan``: what a camera, objective and pattern illuminator will do together.

Examples
--------
``scope plan --preset hardware/presets/budget.toml``
``scope plan --preset better.toml --exposure-ms 5 --na 1.3``  (flags override the preset)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# flag destination -> (preset table, field)
_FIELDS: dict[str, tuple[str, str]] = {
    "camera_name": ("camera", "name"),
    "pixel_pitch_um": ("camera", "pixel_pitch_um"),
    "sensor_width_px": ("camera", "sensor_width_px"),
    "sensor_height_px": ("camera", "sensor_height_px"),
    "readout_ms": ("camera", "readout_time_ms"),
    "max_fps": ("camera", "max_fps"),
    "bit_depth": ("camera", "bit_depth"),
    "trigger_latency_ms": ("camera", "trigger_latency_ms"),
    "overlapped_readout": ("camera", "overlapped_readout"),
    "objective_name": ("objective", "name"),
    "magnification": ("objective", "magnification"),
    "na": ("objective", "na"),
    "immersion": ("objective", "immersion"),
    "correction": ("objective", "correction"),
    "design_tube_lens_mm": ("objective", "design_tube_lens_mm"),
    "tube_lens_mm": ("objective", "tube_lens_focal_length_mm"),
    "illuminator": ("illuminator", "kind"),
    "device_pitch_um": ("illuminator", "pixel_pitch_um"),
    "pattern_period_px": ("illuminator", "pattern_period_px"),
    "grating_period_um": ("illuminator", "grating_period_um"),
    "demagnification": ("illuminator", "demagnification"),
    "projected_period_nm": ("illuminator", "projected_period_nm"),
    "switch_ms": ("illuminator", "pattern_switch_time_ms"),
    "wavelength": ("acquisition", "emission_wavelength_nm"),
    "exposure_ms": ("acquisition", "exposure_ms"),
    "angles": ("acquisition", "n_angles"),
    "phases": ("acquisition", "n_phases"),
    "controller_latency_ms": ("acquisition", "controller_latency_ms"),
    "relay_magnification": ("acquisition", "camera_relay_magnification"),
}


def register(subparsers: Any) -> None:
    from scope.cli.parameter_flags import (
        ANGLES_COUNT_HELP,
        NA_HELP,
        PHASES_HELP,
        SETUP_PRESET_HELP,
        WAVELENGTH_HELP,
        HelpFormatter,
        angles_count,
        default_is,
        phases_count,
    )

    def preset_or(default: str | None = None) -> str:
        """A default: the preset's value, else ``default`` (None: the preset must give it)."""
        return "the preset's" + (f", else {default}" if default is not None else "")

    p = subparsers.add_parser(
        "plan",
        help="predict pixel size, pattern period, resolution and frame rates of a build",
        description="Given a camera, an objective, a pattern illuminator and the emission "
        "wavelength, print the pixel size at the sample (Nyquist check), the pattern period and "
        "its fraction of the OTF cutoff, the expected widefield and SIM resolution, and the raw "
        "and SIM frame rates in leader and follower mode. Values come from --preset FILE.toml "
        "(tables [camera], [objective], [illuminator], [acquisition]); flags override it.",
        epilog="examples:\n  scope plan --preset hardware/presets/budget.toml\n"
        "  scope plan --preset better.toml --exposure-ms 5 --na 1.3   (flags override the "
        "preset)",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--preset",
        metavar="FILE.toml",
        help=default_is(SETUP_PRESET_HELP, "none: every value from the flags"),
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    cam = p.add_argument_group("camera")
    cam.add_argument(
        "--camera-name", metavar="NAME", help=default_is("camera name", preset_or("'camera'"))
    )
    cam.add_argument(
        "--pixel-pitch-um",
        type=float,
        metavar="UM",
        help=default_is("sensor pixel pitch, µm", preset_or()),
    )
    cam.add_argument(
        "--sensor-width-px",
        type=int,
        metavar="PX",
        help=default_is("sensor width, pixels", preset_or()),
    )
    cam.add_argument(
        "--sensor-height-px",
        type=int,
        metavar="PX",
        help=default_is("sensor height, pixels", preset_or()),
    )
    cam.add_argument(
        "--readout-ms",
        type=float,
        metavar="MS",
        help=default_is("sensor readout time per frame, ms", preset_or()),
    )
    cam.add_argument(
        "--max-fps",
        type=float,
        metavar="FPS",
        help=default_is(
            "the camera's maximum frame rate at this sensor size, frames/s", preset_or()
        ),
    )
    cam.add_argument(
        "--bit-depth",
        type=int,
        metavar="BITS",
        help=default_is("ADC bit depth, bits (8 to 16)", preset_or()),
    )
    cam.add_argument(
        "--trigger-latency-ms",
        type=float,
        metavar="MS",
        help=default_is(
            "trigger-in to exposure start (and exposure end to exposure-active out), ms",
            preset_or("0"),
        ),
    )
    cam.add_argument(
        "--overlapped-readout",
        action="store_true",
        default=None,
        help=default_is("the sensor exposes the next frame while reading out", preset_or("no")),
    )
    obj = p.add_argument_group("objective")
    obj.add_argument(
        "--objective-name",
        metavar="NAME",
        help=default_is("objective name", preset_or("'objective'")),
    )
    obj.add_argument(
        "--magnification",
        type=float,
        metavar="X",
        help=default_is("objective magnification, e.g. 60", preset_or()),
    )
    obj.add_argument("--na", type=float, metavar="NA", help=default_is(NA_HELP, preset_or()))
    obj.add_argument(
        "--immersion",
        choices=["air", "water", "silicone", "glycerol", "oil"],
        help=default_is("immersion medium of the objective", preset_or("oil")),
    )
    obj.add_argument(
        "--correction",
        choices=["infinity", "finite"],
        help=default_is(
            "infinity-corrected, or finite (160 mm tube length, DIN)", preset_or("infinity")
        ),
    )
    obj.add_argument(
        "--design-tube-lens-mm",
        type=float,
        metavar="MM",
        help=default_is(
            "focal length of the tube lens the objective is designed for, mm (Nikon, Leica, "
            "Thorlabs 200; Olympus 180; Zeiss 165)",
            preset_or("200"),
        ),
    )
    obj.add_argument(
        "--tube-lens-mm",
        type=float,
        metavar="MM",
        help=default_is(
            "focal length of the tube lens actually used, mm", preset_or("the design's")
        ),
    )
    ill = p.add_argument_group("illuminator")
    ill.add_argument(
        "--illuminator",
        choices=["dmd", "lcos", "projector", "printed_grating"],
        help=default_is("kind of pattern device", preset_or()),
    )
    ill.add_argument(
        "--device-pitch-um",
        type=float,
        metavar="UM",
        help=default_is("pattern device pixel pitch, µm", preset_or()),
    )
    ill.add_argument(
        "--pattern-period-px",
        type=float,
        metavar="PX",
        help=default_is("grating period in device pixels, across the fringes", preset_or()),
    )
    ill.add_argument(
        "--grating-period-um",
        type=float,
        metavar="UM",
        help=default_is("printed grating period (one line pair), µm", preset_or()),
    )
    ill.add_argument(
        "--demagnification",
        type=float,
        metavar="X",
        help=default_is(
            "demagnification from the pattern device to the sample",
            preset_or("from the preset's illumination_lens_focal_mm"),
        ),
    )
    ill.add_argument(
        "--projected-period-nm",
        type=float,
        metavar="NM",
        help=default_is(
            "pattern period at the sample, nm (overrides the device's period)",
            preset_or("from the device's period and the demagnification"),
        ),
    )
    ill.add_argument(
        "--switch-ms",
        type=float,
        metavar="MS",
        help=default_is("time to switch to the next pattern and settle, ms", preset_or("0")),
    )
    acq = p.add_argument_group("acquisition")
    acq.add_argument(
        "--wavelength", type=float, metavar="NM", help=default_is(WAVELENGTH_HELP, preset_or())
    )
    acq.add_argument(
        "--exposure-ms",
        type=float,
        metavar="MS",
        help=default_is("exposure time per frame, ms", preset_or("10")),
    )
    acq.add_argument(
        "--angles",
        type=angles_count(prior=False),
        metavar="N",
        help=default_is(ANGLES_COUNT_HELP, preset_or("3")),
    )
    acq.add_argument(
        "--phases",
        type=phases_count(),
        metavar="N",
        help=default_is(PHASES_HELP, preset_or("3")),
    )
    acq.add_argument(
        "--controller-latency-ms",
        type=float,
        metavar="MS",
        help=default_is(
            "the pattern controller's reaction to an input edge (follower mode), ms",
            preset_or("0.01"),
        ),
    )
    acq.add_argument(
        "--relay-magnification",
        type=float,
        metavar="X",
        help=default_is(
            "extra magnification between the intermediate image and the camera", preset_or("1")
        ),
    )
    p.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for dest, (table, name) in _FIELDS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        out.setdefault(table, {})[name] = value
    return out


def run(args: argparse.Namespace) -> int:
    from scope.planning import format_plan, load_preset, parts_from_preset, plan_setup

    preset = load_preset(args.preset) if args.preset else {}
    overrides = _overrides(args)
    if overrides.get("objective", {}).get("correction") == "finite":
        # a finite objective has no tube lens: drop the preset's
        preset.get("objective", {}).pop("tube_lens_focal_length_mm", None)
    camera, objective, illuminator, acquisition = parts_from_preset(preset, overrides)
    plan = plan_setup(camera, objective, illuminator, acquisition)
    if args.json:
        sys.stdout.write(json.dumps(plan.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(
            f"{camera.name} + {objective.name} ({objective.magnification:g}x/{objective.na:g} "
            f"{objective.immersion}) + {illuminator.name}, emission "
            f"{acquisition.emission_wavelength_nm:g} nm, exposure {acquisition.exposure_ms:g} ms, "
            f"{acquisition.n_angles}x{acquisition.n_phases} frames per SIM image\n"
        )
        sys.stdout.write(format_plan(plan) + "\n")
    return 0
