"""``scope view [FILE]``: open napari with the scope plugin docked.

Without a file the live imaging widget opens on the simulated microscope; with a raw SIM stack
(OME-TIFF/TIFF, MRC, OME-Zarr, a ``scope acquire`` run) or a SIM result, the file is opened
with the plugin's reader and the reconstruction widget is ready for it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "view",
        help="open napari with the scope plugin (live imaging, reconstruction, export)",
        description="Open napari with the scope widgets docked. Without FILE the live imaging "
        "widget opens on the simulated microscope; a raw SIM stack (OME-TIFF/TIFF, MRC, "
        "OME-Zarr, a scope acquire run) or a SIM result is opened with the plugin's reader and "
        "the reconstruction widget is ready for it.",
    )
    p.add_argument(
        "file", nargs="?", type=Path, metavar="FILE", help="raw SIM stack or SIM result (optional)"
    )
    p.add_argument(
        "--live",
        action="store_true",
        help="also dock the live imaging widget (always docked without FILE)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from scope.errors import ConfigurationError

    if args.file is not None and not args.file.exists():
        raise ConfigurationError(f"{args.file} does not exist: give a raw SIM stack or result")
    try:
        from scope.napari.launch import open_viewer, screen_missing
    except ImportError as err:
        raise ConfigurationError(
            f"napari is not installed ({err}): pip install 'scope-sim[napari]'"
        ) from err
    why = screen_missing()
    if why is not None:  # Qt would abort with a page of plugin messages
        raise ConfigurationError(why)
    open_viewer(args.file, live=args.live)
    return 0
