"""What a first-time user meets in ``scope COMMAND --help`` and on a mistyped command line:
every flag explained (unit, default), plain text, the same words for the same flag; angles
given with spaces or commas alike; -q/-v after the subcommand; errors in the subcommand's name."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scope.cli import build_parser, main, parse, subcommands
from scope.cli import parameter_flags as flags
from sim_cases import make_case

BUDGET = Path(__file__).resolve().parents[1] / "hardware" / "presets" / "budget.toml"
OPTICS = ["--na", "1.2", "--wavelength", "525", "--pixel-size", "65"]


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Each owned (sub)subcommand's parser, with its name (``calibrate camera``)."""
    found = []
    for name, command in subcommands(build_parser()).items():  # every subcommand registered
        found.append((name, command))
        for sub, parser in subcommands(command).items():
            found.append((f"{name} {sub}", parser))
    return found


PARSERS = _parsers()
IDS = [name for name, _ in PARSERS]


@pytest.mark.parametrize(("name", "parser"), PARSERS, ids=IDS)
def test_every_flag_has_help_and_every_command_a_description(name, parser):
    assert parser.description, f"scope {name} has no description"
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        what = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"scope {name} {what}: no help"
        # a flag with a default says which (store_true flags are off unless given)
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            assert "default" in action.help, f"scope {name} {what}: no default stated"


@pytest.mark.parametrize(("name", "parser"), PARSERS, ids=IDS)
def test_help_is_plain_text(name, parser):
    text = parser.format_help()  # also fails on a stray % in a help
    assert "``" not in text and "`" not in text, f"scope {name} --help shows markup"
    assert ":func:" not in text and ":class:" not in text


def test_the_same_flag_has_the_same_words_everywhere():
    shared = {
        "--na": flags.NA_HELP,
        "--wavelength": flags.WAVELENGTH_HELP,
        "--pixel-size": flags.PIXEL_SIZE_HELP,
        "--backend": flags.BACKEND_HELP,
        "--phases": flags.PHASES_HELP,
        "--frame-order": flags.FRAME_ORDER_HELP,
        "--prior-angles": flags.PRIOR_ANGLES_HELP,
        "--verbose": flags.VERBOSE_HELP,
        "--quiet": flags.QUIET_HELP,
    }
    seen = dict.fromkeys(shared, 0)
    for _, parser in PARSERS:
        for flag, text in shared.items():
            action = parser._option_string_actions.get(flag)
            if flag == "--pixel-size" and parser.prog == "scope export-video":
                continue  # the image's pixel, not only the camera's: its own words
            if action is not None:
                assert action.help.startswith(text), f"{parser.prog} {flag}: {action.help!r}"
                seen[flag] += 1
        backend = parser._option_string_actions.get("--backend")
        if backend is not None:  # a choice everywhere, not free text
            assert tuple(backend.choices) == flags.BACKEND_CHOICES, parser.prog
        angles = parser._option_string_actions.get("--angles")
        if angles is not None and angles.nargs is None:  # a count: the same words
            assert angles.help.startswith(flags.ANGLES_COUNT_HELP), parser.prog
    assert all(n >= 2 for n in seen.values()), seen


ANGLE_FORMS = (["12,72,132"], ["12", "72", "132"], ["12,", "72,", "132"], ["12, 72, 132"])


@pytest.mark.parametrize("form", ANGLE_FORMS, ids=[" ".join(f) for f in ANGLE_FORMS])
@pytest.mark.parametrize("command", ["reconstruct", "batch"])
def test_prior_angles_with_spaces_or_commas_parse_alike(command, form):
    parser = build_parser()
    out = "o.tif" if command == "reconstruct" else "out"
    args = parse(parser, [command, "raw.tif", "-o", out, "--prior-angles", *form])
    assert args.prior_angles == [12.0, 72.0, 132.0]
    equals = parse(parser, [command, "raw.tif", "-o", out, f"--prior-angles={','.join(form)}"])
    assert equals.prior_angles == [12.0, 72.0, 132.0]
    angles = parse(parser, ["patterns", "--preset", "p.toml", "-o", "d", "--angles", *form])
    assert angles.angles == [12.0, 72.0, 132.0]


def test_prior_angles_before_the_input_leave_the_input_alone():
    argv = ["reconstruct", "--prior-angles", "12", "72", "132", "raw.tif", "-o", "o.tif"]
    args = parse(build_parser(), argv)
    assert (args.prior_angles, args.raw) == ([12.0, 72.0, 132.0], ["raw.tif"])
    argv = ["batch", "--prior-angles", "-30", "30", "90", "data/", "-o", "out"]
    args = parse(build_parser(), argv)
    assert (args.prior_angles, args.inputs) == ([-30.0, 30.0, 90.0], ["data/"])


def test_prior_angles_that_are_not_numbers_are_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", "raw.tif", "-o", "o.tif", "--prior-angles", "12", "72", "abc"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == (
        "scope reconstruct: error: argument --prior-angles: expects angles in degrees "
        "(12,72,132 or 12 72 132), got 'abc'"
    )


@pytest.fixture(scope="module")
def small_raw(tmp_path_factory):
    case = make_case(5, size=64)
    path = tmp_path_factory.mktemp("raw") / "raw.tif"
    tifffile.imwrite(path, case.raw.astype(np.uint16))
    angles = [a.angle_deg for a in case.truth.angles]
    period = float(np.mean([a.period_nm for a in case.truth.angles]))
    return path, angles, period


def test_reconstruct_runs_with_spaced_prior_angles_and_quiet_after_it(small_raw, tmp_path):
    path, angles, period = small_raw
    spaced = [f"{a:.2f}" for a in angles]
    results = {}
    for name, given in (("commas", [",".join(spaced)]), ("spaces", spaced)):
        out = tmp_path / f"{name}.tif"
        argv = ["reconstruct", str(path), "-o", str(out), *OPTICS, "--prior-angles", *given]
        assert main([*argv, "--prior-period", f"{period:.1f}", "-q"]) == 0
        results[name] = json.loads(out.with_name(f"{name}.params.json").read_text())
    assert results["spaces"]["angles"] == results["commas"]["angles"]


def test_quiet_after_the_subcommand_silences_the_log(small_raw, tmp_path):
    path, _, _ = small_raw
    argv = ["reconstruct", str(path), "-o", str(tmp_path / "q.tif"), *OPTICS, "-q"]
    proc = subprocess.run(
        [sys.executable, "-m", "scope.cli", *argv], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "INFO" not in proc.stderr and "unrecognized" not in proc.stderr
    assert "wrote" in proc.stdout


@pytest.mark.parametrize(
    ("argv", "verbose", "quiet"),
    [
        (["-v", "X"], 1, False),
        (["X", "-v"], 1, False),
        (["-v", "X", "-v"], 2, False),
        (["X", "-vv"], 2, False),
        (["X", "-q"], 0, True),
        (["-q", "X"], 0, True),
        (["X"], 0, False),
    ],
)
def test_verbosity_before_and_after_the_subcommand_add_up(argv, verbose, quiet):
    command = ["reconstruct", "raw.tif", "-o", "o.tif"]
    words = [w for a in argv for w in (command if a == "X" else [a])]
    args = parse(build_parser(), words)
    assert (args.verbose, args.quiet) == (verbose, quiet)


@pytest.mark.parametrize(
    ("argv", "prog"),
    [
        (["reconstruct", "raw.tif", "-o", "o.tif", "--bogus"], "scope reconstruct"),
        (["batch", "raw.tif", "-o", "out", "--bogus"], "scope batch"),
        (["calibrate", "otf", "b.tif", "--preset", "p.toml", "--bogus"], "scope calibrate otf"),
        (["plan", "--bogus"], "scope plan"),
    ],
)
def test_an_unknown_argument_is_reported_by_its_subcommand(argv, prog, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"{prog}: error: unrecognized arguments: --bogus" in err
    assert f"usage: {prog} " in err


def test_an_unknown_argument_before_the_subcommand_is_the_top_levels(capsys):
    with pytest.raises(SystemExit):
        main(["--bogus", "reconstruct", "raw.tif", "-o", "o.tif"])
    assert "scope: error: unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["reconstruct", "raw.tif", "-o", "o.tif", "--angles", "12", "72", "132"],
        ["reconstruct", "--angles", "12", "72", "132", "raw.tif", "-o", "o.tif"],
        ["reconstruct", "raw.tif", "-o", "o.tif", "--angles", "12,72,132"],
        ["batch", "raw.tif", "-o", "out", "--angles", "12", "72", "132"],
    ],
)
def test_angles_given_to_the_count_flag_point_to_prior_angles(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if "error" in x]
    assert line.startswith(f"scope {argv[0]}: error:")
    assert "number of pattern orientations" in line and "--prior-angles 12 72 132" in line


def test_plan_angles_say_what_they_count(capsys):
    with pytest.raises(SystemExit):
        main(["plan", "--angles", "0", "60", "120"])
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith("scope plan: error: --angles is the number of pattern orientations")


def test_patterns_prints_each_grating_once(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    assert main(["patterns", "--preset", str(BUDGET), "-o", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    gratings = [line for line in out.splitlines() if "on the device (errors" in line]
    assert len(gratings) == 3
    assert not [r for r in caplog.records if r.name == "scope.sim.gratings"]
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    assert main(["-vv", "patterns", "--preset", str(BUDGET), "-o", str(tmp_path / "p")]) == 0
    assert len([r for r in caplog.records if r.name == "scope.sim.gratings"]) == 3  # debug


@pytest.mark.parametrize(
    "argv",
    [
        ["reconstruct", "raw.tif", "-o", "o.tif"],
        ["batch", "raw/", "-o", "out"],
        ["calibrate", "pattern", "slide.tif", "--preset", "p.toml"],
        ["calibrate", "otf", "beads.tif", "--preset", "p.toml"],
    ],
    ids=["reconstruct", "batch", "calibrate pattern", "calibrate otf"],
)
def test_the_camera_offset_is_one_flag_with_two_names(argv):
    """--offset everywhere, and --offset-adu (the preset's key, calibrate's first name) alike."""
    parser = build_parser()
    dest = "offset_adu" if argv[0] == "calibrate" else "offset"
    for name in ("--offset", "--offset-adu"):
        assert getattr(parse(parser, [*argv, name, "100"]), dest) == 100.0


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["demo", "--photons", "nan"], "argument --photons: 'nan' is not a number"),
        (["demo", "--photons", "-5"], "argument --photons: '-5': give a number above 0"),
        (["acquire", "--exposure-ms", "0"], "argument --exposure-ms: '0': give a number above 0"),
        (["acquire", "--wavelength", "inf"], "argument --wavelength: 'inf' is not a number"),
        (["acquire", "--drop-prob", "2"], "argument --drop-prob: '2': give a probability from 0"),
        (["calibrate", "pattern", "s.tif", "--preset", "p.toml", "--na", "nan"], "'nan' is not"),
        (
            ["calibrate", "otf", "b.tif", "--preset", "p.toml", "--bead-diameter-nm", "-100"],
            "argument --bead-diameter-nm: '-100': give a number of 0 or more",
        ),
    ],
)
def test_numbers_out_of_their_range_are_refused_by_the_parser(argv, says, capsys):
    """``scope demo --photons nan`` ended in a numpy traceback; acquire took nan and inf for
    its times and optics and a drop probability of 2. Now each is one line naming the flag."""
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert says in err
