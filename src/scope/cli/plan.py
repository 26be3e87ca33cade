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
    p = subparsers.add_parser(
        "plan",
        help="predict pixel size, pattern period, resolution and frame rates of a build",
        description="Given a camera, an objective, a pattern illuminator and the emission "
        "wavelength, print the pixel size at the sample (Nyquist check), the pattern period and "
        "its fraction of the OTF cutoff, the expected widefield and SIM resolution, and the raw "
        "and SIM frame rates in leader and follower mode. Values come from --preset FILE.toml "
        "(tables [camera], [objective], [illuminator], [acquisition]); flags override it.",
    )
    p.add_argument("--preset", metavar="FILE.toml", help="setup preset TOML")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    cam = p.add_argument_group("camera")
    cam.add_argument("--camera-name")
    cam.add_argument("--pixel-pitch-um", type=float, help="sensor pixel pitch, µm")
    cam.add_argument("--sensor-width-px", type=int)
    cam.add_argument("--sensor-height-px", type=int)
    cam.add_argument("--readout-ms", type=float, help="sensor readout time, ms")
    cam.add_argument("--max-fps", type=float, help="camera maximum frame rate")
    cam.add_argument("--bit-depth", type=int)
    cam.add_argument("--trigger-latency-ms", type=float)
    cam.add_argument(
        "--overlapped-readout",
        action="store_true",
        default=None,
        help="the sensor exposes the next frame while reading out",
    )
    obj = p.add_argument_group("objective")
    obj.add_argument("--objective-name")
    obj.add_argument("--magnification", type=float)
    obj.add_argument("--na", type=float)
    obj.add_argument("--immersion", choices=["air", "water", "silicone", "glycerol", "oil"])
    obj.add_argument(
        "--correction",
        choices=["infinity", "finite"],
        help="infinity-corrected, or finite (160 mm tube length, DIN)",
    )
    obj.add_argument(
        "--design-tube-lens-mm", type=float, help="tube lens the objective is designed for, mm"
    )
    obj.add_argument("--tube-lens-mm", type=float, help="tube lens actually used, mm")
    ill = p.add_argument_group("illuminator")
    ill.add_argument("--illuminator", choices=["dmd", "lcos", "projector", "printed_grating"])
    ill.add_argument("--device-pitch-um", type=float, help="pattern device pixel pitch, µm")
    ill.add_argument("--pattern-period-px", type=float, help="grating period in device pixels")
    ill.add_argument("--grating-period-um", type=float, help="printed grating period, µm")
    ill.add_argument("--demagnification", type=float, help="device to sample demagnification")
    ill.add_argument("--projected-period-nm", type=float, help="pattern period at the sample")
    ill.add_argument("--switch-ms", type=float, help="pattern switch and settle time, ms")
    acq = p.add_argument_group("acquisition")
    acq.add_argument("--wavelength", type=float, help="emission wavelength, nm")
    acq.add_argument("--exposure-ms", type=float)
    acq.add_argument("--angles", type=int)
    acq.add_argument("--phases", type=int)
    acq.add_argument("--controller-latency-ms", type=float)
    acq.add_argument("--relay-magnification", type=float)
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
