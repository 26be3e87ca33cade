"""``scope devices``: the cameras and pattern controllers this computer can see.

Lists the GenTL producers on ``GENICAM_GENTL64_PATH`` (or given with ``--cti``) and their cameras,
the V4L2 (UVC) cameras, and the serial ports with a scope pattern controller answering on them
(each port is opened briefly for the handshake; ``--no-probe`` only lists the ports). The
simulated microscope is always there (``sim://``).

Examples
--------
``GENICAM_GENTL64_PATH=/opt/vendor/lib scope devices``
``scope devices --json``
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    from scope.cli.parameter_flags import HelpFormatter, default_is

    p = subparsers.add_parser(
        "devices",
        help="list cameras (GenICam, V4L2) and pattern controllers",
        description="List the GenTL producers on GENICAM_GENTL64_PATH (or given with --cti) "
        "and their cameras, the V4L2 (UVC) cameras, and the serial ports with a scope pattern "
        "controller answering on them (each port is opened briefly for the handshake; "
        "--no-probe only lists the ports). The simulated microscope (camera sim, controller "
        "sim://) is always there.",
        epilog="examples:\n  GENICAM_GENTL64_PATH=/opt/vendor/lib scope devices\n"
        "  scope devices --json",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--cti",
        action="append",
        default=None,
        metavar="FILE",
        help="GenTL producer (.cti) to query besides GENICAM_GENTL64_PATH; repeat for several "
        "(default: only those on GENICAM_GENTL64_PATH)",
    )
    p.add_argument("--no-probe", action="store_true", help="list serial ports without opening them")
    p.add_argument(
        "--probe-timeout",
        type=_probe_seconds,
        default=1.0,
        metavar="S",
        help=default_is("seconds to wait for a controller's handshake per port", "%(default)g"),
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=run)


def _probe_seconds(text: str) -> float:
    """``--probe-timeout``: seconds, finite and above zero."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be a positive number of seconds (e.g. 1), got {text}; use --no-probe to "
            "list the ports without opening them"
        )
    return value


def _genicam(ctis: list[str] | None) -> list[dict[str, Any]]:
    try:
        from scope.devices.genicam import find_producers, list_cameras
    except ImportError as err:  # pragma: no cover - core deps only
        return [{"error": f"GenICam support not installed ({err}): pip install scope-sim[camera]"}]
    producers = [str(p) for p in find_producers()] + list(ctis or [])
    out = []
    for producer in producers:
        try:
            cams = [c.__dict__ for c in list_cameras(producer)]
            out.append({"producer": producer, "cameras": cams})
        except Exception as err:
            out.append({"producer": producer, "cameras": [], "error": str(err)})
    return out


def _ports(probe: bool, timeout_s: float) -> list[dict[str, Any]]:
    from serial.tools import list_ports

    ports = []
    for info in sorted(list_ports.comports(), key=lambda p: p.device):
        entry: dict[str, Any] = {"port": info.device, "description": info.description or ""}
        if probe:
            from scope.devices.serial_controller import probe_controller

            entry["controller"] = probe_controller(info.device, timeout_s)
        ports.append(entry)
    return ports


def run(args: argparse.Namespace) -> int:
    from scope.devices.v4l2 import list_cameras as list_v4l2

    report = {
        "genicam": _genicam(args.cti),
        "v4l2": [c.__dict__ for c in list_v4l2()],
        "serial": _ports(not args.no_probe, args.probe_timeout),
        "simulated": {"camera": "sim", "controller": "sim://"},
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print("GenICam (GenTL producers on GENICAM_GENTL64_PATH):")
    if not report["genicam"]:
        print("  none (set GENICAM_GENTL64_PATH to your camera SDK's GenTL folder, or --cti FILE)")
    for prod in report["genicam"]:
        print(f"  {prod.get('producer', '?')}")
        if "error" in prod:
            print(f"    error: {prod['error']}")
        for i, cam in enumerate(prod.get("cameras", [])):
            print(f"    [{i}] {cam['id']}  {cam['vendor']} {cam['model']}  serial {cam['serial']}")
    print("V4L2 / UVC cameras:")
    for cam in report["v4l2"]:
        print(f"  {cam['id']}  {cam['model']}")
    if not report["v4l2"]:
        print("  none")
    print("Serial ports:")
    for port in report["serial"]:
        ctrl = port.get("controller")
        what = (
            f"scope controller {ctrl['name']} fw {ctrl['firmware_version']} "
            f"protocol {ctrl['protocol_version']} ({ctrl['board']})"
            if ctrl
            else ("not probed" if args.no_probe else "no controller answered")
        )
        print(f"  {port['port']}  {port['description']}: {what}")
    if not report["serial"]:
        print("  none")
    print("Simulated microscope: camera 'sim', controller 'sim://' (always available)")
    return 0
