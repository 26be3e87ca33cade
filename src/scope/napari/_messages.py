"""Messages of the library, told in the words of the napari widgets.

The library's errors name the command line's flags (``--angles``, ``--frame-order``) and its
Python arguments (``widefield=``, ``channel_axis=``); in napari the user sets fields and picks
layers. :func:`in_widget_words` swaps the one for the other. A pydantic model's own message
without pydantic's decoration is :func:`scope.batch.config.validation_message` (the command
line's too).
"""

from __future__ import annotations

import re

#: whole phrases first (they read badly when only the flags are swapped), then single flags
_PHRASES: tuple[tuple[str, str], ...] = (
    (
        r"\(--angles/--phases: ([^)]*)\)",
        r"(the fields Angles and Phases: \1)",
    ),
    (r"\(--frame-order\)", "(the field Frame order)"),
    (
        r"give the nominal pattern as priors \([^()]*--prior-angles[^()]*\) to reconstruct "
        r"with it",
        "check the pattern's focus, the light and the optics (NA, Emission λ, Camera pixel at "
        "sample)",
    ),
    (
        r"give the widefield image too \([^()]*widefield= in Python[^()]*\)",
        "pick a layer in Widefield (SIM reconstruction's Reconstruct stack makes one, with "
        "'and its widefield image' ticked)",
    ),
    (
        r"pass channel_axis= for multi-channel data",
        "show the other channels as visible layers of the SIM layer's size",
    ),
    (
        r"; pass channel_axis= to say which one holds channels \(or reshape to \(T, Y, X\)\)",
        "",
    ),
)
#: the command line's flags and the fields that set the same
_FLAGS: dict[str, str] = {
    "--angles": "Angles",
    "--phases": "Phases",
    "--frame-order": "Frame order",
    "--offset": "Camera offset",
    "--pixel-size": "Camera pixel at sample",
    "--wavelength": "Emission λ",
    "--na": "NA",
    "--wiener": "Wiener",
    "--notch": "Notch strength",
    "--equalize": "Frame brightness",
    "--filter": "Filter",
}


def in_widget_words(message: str) -> str:
    """``message`` with the command line's flags and Python's arguments replaced by the
    widgets' fields and layers.

    Examples
    --------
    >>> in_widget_words("check --offset")
    'check Camera offset'
    """
    for pattern, replacement in _PHRASES:
        message = re.sub(pattern, replacement, message)
    for flag, field in sorted(_FLAGS.items(), key=lambda kv: -len(kv[0])):
        message = re.sub(rf"{re.escape(flag)}(?![\w-])", field, message)
    return message
