"""The ``scope`` command.

Each subcommand lives in its own module of this package with two functions:
``register(subparsers)`` adds its parser (and ``set_defaults(func=run)``), ``run(args)`` does
the work and returns the exit status. Modules are imported when the parser is built; heavy
imports belong inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from scope import __version__
from scope.errors import ScopeError

log = logging.getLogger("scope")

#: subcommand modules, in the order ``scope --help`` lists them
COMMANDS: tuple[str, ...] = (
    "demo",
    "reconstruct",
    "plan",
    "patterns",
    "calibrate",
    "batch",
    "export-video",
    "devices",
    "acquire",
    "view",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scope",
        description="Structured-illumination microscopy: acquire, reconstruct, view, export.",
    )
    parser.add_argument("--version", action="version", version=f"scope {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"scope.cli.{name.replace('-', '_')}").register(sub)
    return parser


def configure_logging(verbose: int = 0, quiet: bool = False) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 1 and not quiet:
        # third-party chatter stays at warning level unless -v
        for noisy in ("harvesters", "distributed", "napari", "matplotlib", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except ScopeError as err:
        print(f"scope {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # missing folders, permissions, full disks: one line, not a trace
        print(f"scope {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"scope {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
