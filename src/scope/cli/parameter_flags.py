"""The optics, pattern and camera flags that ``scope reconstruct`` and ``scope batch`` share,
and the help texts every command uses for the same flag.

Every shared flag defaults to None (not given): ``scope batch`` then takes the value from the
preset or the file, ``scope reconstruct`` from the file or its own default (3 x 3 frames,
immersion 1.515, equalisation and the pattern map on ``auto``). ``scope reconstruct`` given
several files hands these flags over to the batch engine as they are (:func:`parameter_dests`).

Help texts are plain text (``--help`` prints them as they are: no reStructuredText markup) and
the same flag has the same text in every command: the texts are the constants below, with each
command's own default after them (:func:`default_is`).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: immersion index where neither a flag nor a preset gives one (oil)
DEFAULT_IMMERSION = 1.515

# ---------------------------------------------------------------------------------------------
# help texts shared by several commands (the same flag, the same words)
# ---------------------------------------------------------------------------------------------
NA_HELP = "detection numerical aperture of the objective, e.g. 1.2"
WAVELENGTH_HELP = "emission wavelength, nm, e.g. 525"
PIXEL_SIZE_HELP = (
    "camera pixel size at the sample, nm: the sensor's pixel pitch divided by the "
    "magnification, e.g. 65"
)
IMMERSION_HELP = "refractive index of the immersion medium"
OFFSET_HELP = "camera offset (the dark level), ADU"
BACKEND_CHOICES = ("auto", "numpy", "cupy")
BACKEND_HELP = (
    "array backend: numpy (CPU), cupy (NVIDIA GPU) or auto (cupy where a CUDA device works, "
    "else numpy)"
)
ANGLES_COUNT_HELP = "number of pattern orientations (angles) per SIM set"
PHASES_HELP = "number of phase steps per orientation"
FRAME_ORDER_HELP = (
    "how each set's frames lie in the file: angle-major, phase fastest (a0p0 a0p1 a0p2 a1p0 "
    "...) or phase-major, angle fastest (a0p0 a1p0 a2p0 a0p1 ...)"
)
PRIOR_ANGLES_HELP = (
    "nominal pattern angles at the sample, degrees, one per orientation: 12,72,132 or 12 72 "
    "132 (priors of the estimation, with --prior-period)"
)
PRIOR_PERIOD_HELP = "nominal pattern period at the sample, nm (with --prior-angles)"
SATURATION_HELP = "the camera's full scale, ADU: values there count as clipped"
SATURATION_DEFAULT = (
    "from the camera's pixel format where the file records it, else the data type; values "
    "piling up at 1023/4095/16383 in 16-bit data"
)
SETUP_PRESET_HELP = (
    "setup preset TOML of your build (a copy of hardware/presets/budget.toml or better.toml)"
)
VERBOSE_HELP = "more log output: -v adds the libraries' messages, -vv debugging output"
QUIET_HELP = "errors only: no information, warnings or progress bar"


class HelpFormatter(argparse.HelpFormatter):
    """Descriptions and epilogs as paragraphs (blank lines between them): each is wrapped to
    the terminal's width, except one with indented lines (command lines, examples), which is
    kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in re.split(r"\n\s*\n", text.strip("\n")):
            lines = paragraph.splitlines()
            if any(line.startswith(" ") for line in lines):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(paragraphs)


def default_is(text: str, default: str = "%(default)s") -> str:
    """``text`` with its default said the same way everywhere: ``"text (default: ...)"``.

    Examples
    --------
    >>> default_is("output format")
    'output format (default: %(default)s)'
    >>> default_is("array backend", "the file's")
    "array backend (default: the file's)"
    """
    return f"{text} (default: {default})"


def saturation_help(what_follows: str = "", source: str = "") -> str:
    """The help of ``--saturation-adu``: what it is, ``what_follows`` from it in this command,
    and its default (``source``: where the value comes from first, e.g. ``"the preset's, else "``).
    """
    return default_is(f"{SATURATION_HELP}{what_follows}", f"{source}{SATURATION_DEFAULT}")


def plain(text: str | None) -> str:
    """A module docstring as plain help text: reStructuredText's ``literal`` and `role`
    markup taken out (``--help`` prints the text as it is).

    Examples
    --------
    >>> plain("``scope batch`` writes :func:`run_batch`'s `report`")
    "scope batch writes run_batch's report"
    """
    text = re.sub(r":\w+:`~?([^`]*)`", r"\1", text or "")
    return text.replace("``", "").replace("::\n", ":\n").replace("`", "")


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


def _number_in_range(text: str, inside: Callable[[float], bool], expected: str) -> float:
    """``finite_number(text)``, refused with ``give <expected>`` unless ``inside(value)``."""
    value = finite_number(text)
    if not inside(value):
        raise argparse.ArgumentTypeError(f"{text!r}: give {expected}")
    return value


def positive_number(text: str) -> float:
    """An argparse ``type``: a finite number above zero (exposures, photons, lengths).

    Examples
    --------
    >>> positive_number("2.5")
    2.5
    """
    return _number_in_range(text, lambda v: v > 0, "a number above 0")


def non_negative_number(text: str) -> float:
    """An argparse ``type``: a finite number, 0 or more (a bead diameter: 0 for point-like).

    Examples
    --------
    >>> non_negative_number("0")
    0.0
    """
    return _number_in_range(text, lambda v: v >= 0, "a number of 0 or more")


def probability(text: str) -> float:
    """An argparse ``type``: a probability, 0 to 1.

    Examples
    --------
    >>> probability("0.05")
    0.05
    """
    return _number_in_range(text, lambda v: 0 <= v <= 1, "a probability from 0 to 1")


class Count:
    """An argparse ``type`` for a count flag (``--angles 3``): a whole number, and for a list
    or a fraction the one line that says what the flag counts and, with ``prior_flag``, where
    the nominal angles go instead.

    Examples
    --------
    >>> Count("the number of pattern orientations")("3")
    3
    """

    def __init__(self, what: str, prior_flag: str | None = None) -> None:
        self.what = what
        self.prior_flag = prior_flag
        self.__name__ = "int"  # argparse's messages name the type

    def hint(self, numbers: str) -> str:
        """Where the angles ``numbers`` (as given) go instead, or ``""``."""
        if self.prior_flag is None:
            return ""
        angles = " ".join(split_angles([numbers]))
        return (
            f"; the nominal angles in degrees go to {self.prior_flag} (e.g. "
            f"{self.prior_flag} {angles})"
        )

    def __call__(self, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            pass
        raise argparse.ArgumentTypeError(
            f"expects {self.what} (e.g. 3), got {text!r}{self.hint(text)}"
        )

    def __repr__(self) -> str:
        return f"Count({self.what!r})"


def angles_count(prior: bool) -> Count:
    """The type of ``--angles`` where it counts the orientations (``prior``: the command
    takes ``--prior-angles``, where the angles in degrees go)."""
    return Count("the number of pattern orientations", "--prior-angles" if prior else None)


def phases_count() -> Count:
    """The type of ``--phases``."""
    return Count("the number of phase steps per orientation")


def split_angles(values: Sequence[str]) -> list[str]:
    """The angles of ``--prior-angles`` as given: ``12,72,132``, ``12 72 132`` and
    ``12, 72, 132`` (several words, commas or both) alike.

    Examples
    --------
    >>> split_angles(["12,", "72,", "132"])
    ['12', '72', '132']
    >>> split_angles(["12,72,132"]) == split_angles(["12", "72", "132"])
    True
    """
    return [part for value in values for part in re.split(r"[,;\s]+", value) if part]


class DegreesAction(argparse.Action):
    """Angles in degrees separated by spaces, commas or both (``12 72 132``, ``12,72,132``,
    ``12, 72, 132``), stored as a list of numbers; a word that is no number is refused here,
    in one line (often a file given after the flag: the angles took it)."""

    def angles(self, values: Any) -> list[str]:
        """The angles given, as written (each checked to be a finite number)."""
        words = [values] if isinstance(values, str) else list(values)
        angles = split_angles(words)
        for angle in angles:
            try:
                finite_number(angle)
            except argparse.ArgumentTypeError:
                where = (
                    ": give the input files before the flags"
                    if Path(angle).suffix or Path(angle).exists()
                    else ""
                )
                raise argparse.ArgumentError(
                    self,
                    f"expects angles in degrees (12,72,132 or 12 72 132), got {angle!r}{where}",
                ) from None
        if not angles:
            raise argparse.ArgumentError(self, "expects angles in degrees (12,72,132 or 12 72 132)")
        return angles

    def store(self, angles: list[str]) -> Any:
        """What the namespace holds: the angles as numbers."""
        return [float(a) for a in angles]

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, self.store(self.angles(values)))


def _angle_word(word: str) -> bool:
    """Whether ``word`` after ``--prior-angles`` belongs to the angles: numbers (with their
    commas) and anything else that is neither an option nor a file (the angles' action
    refuses it then, in one line)."""
    parts = split_angles([word])
    if parts and all(_is_number(part) for part in parts):
        return not Path(word).exists()
    if word.startswith("-") or Path(word).exists():
        return False
    return not any(c in word for c in "/\\.*?[")  # a path or a glob: the command's input


def join_angle_lists(command: argparse.ArgumentParser, words: Sequence[str]) -> list[str]:
    """``words`` with each list of angles given to ``command``'s angle flags as one word
    (``--prior-angles 12 72 132 raw.tif`` -> ``--prior-angles=12,72,132 raw.tif``): argparse
    would take the files after the angles for angles too.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_prior_flags(p, "none")
    >>> join_angle_lists(p, ["--prior-angles", "12,", "72", "132", "raw.tif", "-o", "x"])
    ['--prior-angles=12,72,132', 'raw.tif', '-o', 'x']
    """
    flags = {
        flag
        for action in command._actions
        if isinstance(action, DegreesAction)
        for flag in action.option_strings
    }
    joined: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            return joined + list(words[i:])
        j = i + 1
        if word in flags:
            while j < len(words) and _angle_word(words[j]):
                j += 1
            if j > i + 1:
                angles = split_angles(words[i + 1 : j])
                joined.append(f"{word}={','.join(angles) if angles else ','}")
                i = j
                continue
        joined.append(word)
        i = j
    return joined


def add_prior_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup, source: str) -> None:
    """``--prior-angles`` and ``--prior-period`` (``source``: where they come from when not
    given, for the help)."""
    p.add_argument(
        "--prior-angles",
        nargs="+",
        action=DegreesAction,
        metavar="DEG",
        help=default_is(PRIOR_ANGLES_HELP, source),
    )
    p.add_argument(
        "--prior-period",
        type=finite_number,
        metavar="NM",
        help=default_is(PRIOR_PERIOD_HELP, source),
    )


def add_optics_flags(
    p: argparse.ArgumentParser | argparse._ArgumentGroup,
    na_from: str,
    wavelength_from: str,
    pixel_size_from: str,
) -> None:
    """``--na``, ``--wavelength`` and ``--pixel-size`` of one optical setup, positive numbers
    (default None); ``*_from``: where each comes from when not given, for the help."""
    for flag, metavar, text, source in (
        ("--na", "NA", NA_HELP, na_from),
        ("--wavelength", "NM", WAVELENGTH_HELP, wavelength_from),
        ("--pixel-size", "NM", PIXEL_SIZE_HELP, pixel_size_from),
    ):
        p.add_argument(
            flag, type=positive_number, metavar=metavar, default=None, help=default_is(text, source)
        )


def add_offset_flag(
    p: argparse.ArgumentParser | argparse._ArgumentGroup, source: str, dest: str = "offset"
) -> None:
    """``--offset`` (also ``--offset-adu``, the preset's key and scope calibrate's first name
    for it): the camera offset in ADU; ``source``: where it comes from when not given."""
    p.add_argument(
        "--offset",
        "--offset-adu",
        dest=dest,
        type=finite_number,
        metavar="ADU",
        help=default_is(OFFSET_HELP, source),
    )


def add_parameter_flags(p: argparse.ArgumentParser, *, preset: bool = False) -> None:
    """Add the shared flags to ``p`` (all optional, default None).

    ``preset``: the command takes a ``--preset`` (``scope batch``), which the defaults named
    in the help come from first.
    """
    src = "the preset's, else " if preset else ""
    p.add_argument(
        "--na", type=finite_number, metavar="NA", help=default_is(NA_HELP, f"{src}the file's")
    )
    p.add_argument(
        "--wavelength",
        type=finite_number,
        nargs="+",
        metavar="NM",
        help=default_is(
            f"{WAVELENGTH_HELP}; one per channel for files with several",
            f"{src}the file's, each channel's where it states them",
        ),
    )
    p.add_argument(
        "--pixel-size",
        type=finite_number,
        metavar="NM",
        help=default_is(PIXEL_SIZE_HELP, f"{src}the file's"),
    )
    p.add_argument(
        "--immersion",
        type=finite_number,
        metavar="N",
        help=default_is(IMMERSION_HELP, f"{src}{DEFAULT_IMMERSION}, oil"),
    )
    offset_from = "the preset's [reconstruction] or [calibration.camera] offset_adu, else "
    add_offset_flag(
        p,
        f"{offset_from if preset else ''}estimated from each set's darkest values, the 0.5th "
        "percentile of its first frame",
    )
    add_pattern_sequence_flags(p, prior=True, preset=preset)
    p.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        help=default_is(
            BACKEND_HELP, "the preset's, else auto" if preset else "$SCOPE_BACKEND, else auto"
        ),
    )
    p.add_argument(
        "--otf",
        nargs="+",
        metavar="FILE",
        help=default_is(
            "measured OTF: TIFF or MRC (radial profile or 2D), or a preset TOML holding the "
            "[calibration.otf] of scope calibrate otf; one per channel for files with several "
            "(a measured OTF belongs to one emission wavelength)",
            f"{src}the ideal OTF of the optics",
        ),
    )
    p.add_argument(
        "--wiener",
        type=finite_number,
        metavar="W",
        help=default_is(
            "constant Wiener parameter of the classic filter, e.g. 0.001",
            f"{src}adaptive, from the data's noise",
        ),
    )
    p.add_argument(
        "--equalize",
        choices=("auto", "on", "off"),  # scope.sim.reconstruct.EQUALIZE_MODES
        help=default_is(
            "scale frames lit unequally (flicker, bleaching, angles) to equal brightness: auto "
            "when they differ by more than 2%%, on, off",
            f"{src}auto",
        ),
    )
    p.add_argument(
        "--saturation-adu",
        type=finite_number,
        metavar="ADU",
        help=saturation_help(source=src),
    )
    p.add_argument(
        "--camera-maps",
        metavar="PRESET",
        help=default_is(
            "a preset holding per-pixel camera maps (scope calibrate camera --maps): every "
            "frame becomes photo-electrons pixel by pixel first (no --offset then)",
            f"{src}none: one offset for every pixel",
        ),
    )
    p.add_argument(
        "--keep-defects",
        action="store_true",
        default=None,
        help=default_is(
            "leave hot and dead camera pixels as they are",
            f"{src}found from the optics' band limit and replaced by their neighbours' mean",
        ),
    )
    p.add_argument(
        "--pattern-map",
        choices=("auto", "on", "off"),  # scope.sim.pattern_map.MAP_MODES
        help=default_is(
            "map a pattern that the illumination optics bend across a large field (measured "
            "in tiles) and take its phase out pixel by pixel: auto when a corner of the field "
            "drifts by more than 0.2 rad, on, off",
            f"{src}auto",
        ),
    )
    add_prior_flags(
        p,
        "the preset's [calibration.pattern], else its [pattern], else none: estimated from the "
        "data alone"
        if preset
        else "none: estimated from the data alone",
    )
    p.add_argument(
        "--widefield",
        action="store_true",
        default=None,
        help="also write the widefield image of each set (mean of its frames, offset "
        "subtracted; camera pixels) beside the SIM result as <name>.widefield.tif (scope "
        "batch: .widefield.zarr or .widefield.ome.tif)",
    )


def add_pattern_sequence_flags(
    p: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    prior: bool = False,
    preset: bool = False,
) -> None:
    """``--angles``, ``--phases`` and ``--frame-order``: how a file's frames make SIM sets
    (also the video exporter's and the pattern calibration's, for raw runs).

    ``prior``: the command takes ``--prior-angles`` (where a list of angles given to
    ``--angles`` belongs); ``preset``: the defaults come from a ``--preset`` first.
    """
    src = "the preset's, else " if preset else ""
    p.add_argument(
        "--angles",
        type=angles_count(prior),
        metavar="N",
        help=default_is(ANGLES_COUNT_HELP, f"{src}as the run states, else 3"),
    )
    p.add_argument(
        "--phases",
        type=phases_count(),
        metavar="N",
        help=default_is(PHASES_HELP, f"{src}as the run states, else 3"),
    )
    p.add_argument(
        "--frame-order",
        choices=("angle-major", "phase-major"),  # scope.io.raw.FRAME_ORDERS
        help=default_is(FRAME_ORDER_HELP, f"{src}angle-major"),
    )


def parameter_dests() -> list[str]:
    """The argparse names (``args.<dest>``) of the shared flags."""
    p = argparse.ArgumentParser(add_help=False)
    add_parameter_flags(p)
    return [a.dest for a in p._actions]


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip(","))
    except ValueError:
        return False
    return True


def count_flag_misuse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """The one line for a list given to a count flag (``--angles 12 72 132`` where
    ``--angles`` is the number of orientations), or None.

    argparse takes the first number for the count and the others for input files (or reports
    them as unrecognised arguments); this names the flag's meaning instead. A number that
    names an existing file or folder is taken for one.
    """
    for flag, action in parser._option_string_actions.items():
        kind = action.type
        if not isinstance(kind, Count) or action.nargs is not None or not flag.startswith("--"):
            continue
        for i, word in enumerate(argv):
            if word != flag or i + 2 >= len(argv):
                continue
            given, after = argv[i + 1], argv[i + 2]
            if _is_number(given) and _is_number(after) and not Path(after).exists():
                numbers = [given.rstrip(",")]
                for w in argv[i + 2 :]:
                    if not _is_number(w) or Path(w).exists():
                        break
                    numbers.append(w.rstrip(","))
                given = " ".join(numbers)
                return f"{flag} is {kind.what} here (e.g. {flag} 3), got {given}{kind.hint(given)}"
    return None
