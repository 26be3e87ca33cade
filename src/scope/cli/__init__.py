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
    from scope.cli.parameter_flags import QUIET_HELP, VERBOSE_HELP

    parser = argparse.ArgumentParser(
        prog="scope",
        description="Structured-illumination microscopy: acquire, reconstruct, view, export. "
        "Run scope COMMAND --help for a command's flags.",
    )
    parser.add_argument("--version", action="version", version=f"scope {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help=VERBOSE_HELP)
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"scope.cli.{name.replace('-', '_')}").register(sub)
    for command in _subcommand_parsers(parser):
        add_verbosity_flags(command)
    return parser


#: where -v/-q given after the subcommand land (the top level's keep theirs: a subcommand's
#: parser would otherwise overwrite them with its defaults, argparse copies its namespace over)
_SUB_VERBOSE, _SUB_QUIET = "command_verbose", "command_quiet"


def add_verbosity_flags(p: argparse.ArgumentParser) -> None:
    """``-v``/``-q`` after a subcommand (``scope reconstruct ... -q``), as before it."""
    from scope.cli.parameter_flags import QUIET_HELP, VERBOSE_HELP

    if "-v" in p._option_string_actions or "-q" in p._option_string_actions:
        return
    p.add_argument(
        "-v",
        "--verbose",
        dest=_SUB_VERBOSE,
        action="count",
        default=argparse.SUPPRESS,
        help=VERBOSE_HELP,
    )
    p.add_argument(
        "-q",
        "--quiet",
        dest=_SUB_QUIET,
        action="store_true",
        default=argparse.SUPPRESS,
        help=QUIET_HELP,
    )


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """``parser``'s subcommands by name (aliases included); empty when it has none."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _subcommand_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below ``parser`` (subcommands and theirs: ``scope calibrate camera``)."""
    found = []
    for command in dict.fromkeys(subcommands(parser).values()):  # aliases: once
        found += [command, *_subcommand_parsers(command)]
    return found


def _named_command(
    parser: argparse.ArgumentParser, words: Sequence[str]
) -> tuple[argparse.ArgumentParser, int]:
    """The (sub)subcommand ``words`` name (``calibrate camera``) before they are parsed, and
    where its own words start (``parser`` and 0 when they name none)."""
    command, start = parser, 0
    while True:
        choices = subcommands(command)
        i = next((i for i in range(start, len(words)) if not words[i].startswith("-")), None)
        if i is None or words[i] not in choices:
            return command, start
        command, start = choices[words[i]], i + 1


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, with the errors about a subcommand's arguments in the
    subcommand's name and usage (``scope reconstruct: error: ...``: argparse leaves unknown
    words to the top level, which would name itself), a list given to a count flag said so in
    one line, and ``-v``/``-q`` counted wherever they stand."""
    from scope.cli.parameter_flags import count_flag_misuse, join_angle_lists

    words = list(sys.argv[1:] if argv is None else argv)
    command, start = _named_command(parser, words)
    args, unknown = parser.parse_known_args(
        words[:start] + join_angle_lists(command, words[start:])
    )
    if command is not parser:
        misuse = count_flag_misuse(command, words)
        if misuse is not None:
            command.error(misuse)
    if unknown:
        top = getattr(args, "command", None)
        before = words[: words.index(top)] if top in words else words
        if all(word in before for word in unknown):  # `scope --bogus reconstruct ...`
            command = parser
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.verbose = getattr(args, "verbose", 0) + vars(args).pop(_SUB_VERBOSE, 0)
    args.quiet = bool(getattr(args, "quiet", False) or vars(args).pop(_SUB_QUIET, False))
    return args


def configure_logging(verbose: int = 0, quiet: bool = False) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose < 1 and not quiet:
        # third-party chatter stays at warning level unless -v
        for noisy in ("harvesters", "distributed", "napari", "matplotlib", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
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
