"""Resuming a batch: which existing outputs are complete, and made with the settings asked for.

An output counts as complete when its SIM result exists (and its widefield images, when they are
asked for) **and** its ``.params.json`` is there and readable, with the pattern of every angle:
a result without its parameters is redone. A complete output made with other settings than
this run states (optics, pattern priors, offset, filter ...) is neither redone nor silently
taken: it is kept, reported as ``outdated`` with the settings that differ, and ``--overwrite``
(or another output folder) redoes it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scope.batch.config import OPTICS_KEYS, BatchOptions

log = logging.getLogger(__name__)

#: options that change the reconstruction (not only how or where it runs)
RESULT_KEYS = (
    *OPTICS_KEYS,
    "otf_path",
    "n_angles",
    "n_phases",
    "frame_order",
    "angles_deg",
    "period_nm",
    "offset_adu",
    "wiener",
    "reestimate_every",
    "equalize",
    "repair_defects",
    "pattern_map",
    "camera_maps",
)


@dataclass
class ExistingOutput:
    """What is found at an output's place.

    Attributes
    ----------
    action : str
        ``"redo"`` (missing or incomplete), ``"skip"`` (complete, same settings) or
        ``"outdated"`` (complete, made with other settings).
    reason : str
        Why it is redone or outdated (empty for ``"skip"``).
    record : dict
        The ``.params.json`` read back (empty when it is missing or unreadable).
    differences : list of str
        For ``"outdated"``: each setting as recorded and as asked for now.
    """

    action: str
    reason: str = ""
    record: dict[str, Any] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)


def read_params_record(params: Path) -> tuple[dict[str, Any] | None, str]:
    """The ``.params.json`` of an output, or None and why it is not usable.

    Usable: a JSON object whose ``angles`` list gives each angle's ``angle_deg`` and
    ``period_nm`` as numbers (what ``scope reconstruct --params`` and the batch report read).
    """
    if not params.is_file():
        return None, f"{params.name} is missing"
    try:
        doc = json.loads(params.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return None, f"{params.name} is not readable JSON ({type(err).__name__})"
    angles = doc.get("angles") if isinstance(doc, dict) else None
    if not isinstance(angles, list) or not angles:
        return None, f"{params.name} holds no pattern angles"
    for a in angles:
        if not isinstance(a, dict) or not all(
            isinstance(a.get(k), int | float) for k in ("angle_deg", "period_nm")
        ):
            return None, f"{params.name} holds an angle without angle_deg and period_nm"
    return doc, ""


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _same(recorded: Any, wanted: Any) -> bool:
    """Equal settings: numbers within rounding, lists element by element, else ==."""
    a, b = _as_list(recorded), _as_list(wanted)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        numbers = isinstance(x, int | float) and isinstance(y, int | float)
        numbers = numbers and not isinstance(x, bool) and not isinstance(y, bool)
        if numbers:
            if not math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9):
                return False
        elif x != y:
            return False
    return True


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _stated(flags: BatchOptions, preset: BatchOptions | None) -> dict[str, Any]:
    """The result-changing settings this run states itself (flags, else the preset)."""
    stated = {}
    for key in RESULT_KEYS:
        value = getattr(flags, key)
        if value is None and preset is not None:
            value = getattr(preset, key)
        if value is not None:
            stated[key] = value
    if stated.get("camera_maps"):  # the maps hold each pixel's offset: 0 after conversion
        stated.pop("offset_adu", None)
    return stated


def setting_differences(
    record: dict[str, Any], flags: BatchOptions, preset: BatchOptions | None
) -> list[str]:
    """Each setting this run states that the output was made without, ``"key recorded -> now"``.

    Compared are the settings that change the result (:data:`RESULT_KEYS`) that the flags or
    the preset state, against the options the ``.params.json`` recorded (its ``optics`` for
    one written before options were recorded); a setting a flag or the preset stated then but
    nothing states now counts as changed too (the file's value or the default would be used).
    Values taken from the input file itself are the same as long as the file is.
    """
    options = record.get("options")
    recorded = dict(record.get("optics") or {}) if options is None else dict(options)
    sources = record.get("sources") or {}
    stated = _stated(flags, preset)
    out = []
    for key in RESULT_KEYS:
        if key in stated:
            if key not in recorded and options is None:
                continue  # an older .params.json: only its optics can be compared
            if key == "offset_adu" and sources.get(key) == "camera maps":
                continue
            if not _same(recorded.get(key), stated[key]):
                out.append(f"{key} {_shown(recorded.get(key))} -> {_shown(stated[key])}")
        elif str(sources.get(key, "")).startswith(("flag", "preset:")):
            out.append(f"{key} {_shown(recorded.get(key))} -> not stated now")
    return out


def examine_output(
    out: Path,
    params: Path,
    *,
    flags: BatchOptions,
    preset: BatchOptions | None,
    widefield: Path | None = None,
) -> ExistingOutput:
    """Decide what to do about the output ``out`` (with ``params`` beside it).

    Parameters
    ----------
    out, params : Path
        The SIM result and its ``.params.json``.
    flags, preset : BatchOptions
        This run's settings.
    widefield : Path, optional
        The widefield images this run asks for, which must exist too.

    Returns
    -------
    ExistingOutput
    """
    if not out.exists():
        return ExistingOutput("redo", f"{out.name} does not exist")
    record, why = read_params_record(params)
    if record is None:
        return ExistingOutput("redo", f"{out.name} is incomplete: {why}")
    differences = setting_differences(record, flags, preset)
    if differences:
        return ExistingOutput(
            "outdated",
            f"{out.name} was made with other settings ({'; '.join(differences)}): kept as it "
            "is; --overwrite redoes it (or write to another -o folder)",
            record,
            differences,
        )
    if widefield is not None and not widefield.exists():  # after "outdated": never overwrite it
        return ExistingOutput("redo", f"{widefield.name} (asked for by --widefield) is missing")
    return ExistingOutput("skip", "", record)


def existing_entry(
    src: Path, out: Path, params: Path, record: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The report line of an output that is already there (``status`` ``"skipped"``), with
    the figures its ``.params.json`` recorded: parameters, angles from priors, resolution,
    modulation contrast and the share of clipped values."""
    from scope.batch.job import angles_from_prior

    if record is None:
        record, _ = read_params_record(params)
    entry: dict[str, Any] = {
        "input": str(src),
        "output": str(out),
        "params": str(params),
        "status": "skipped",
        "error": None,
        "seconds": 0.0,
    }
    if record:
        epochs = record.get("parameter_epochs") or [{"angles": record.get("angles", [])}]
        entry["parameters"] = {"angles": record.get("angles", [])}
        entry["angles_from_prior"] = angles_from_prior(epochs)
        for key in ("n_sets", "resolution", "modulation_contrast", "saturation", "blank_frames"):
            if record.get(key) is not None:
                entry[key] = record[key]
    return entry
