"""Read and update a setup's preset TOML without losing what is already in it.

A preset is a TOML file describing one microscope (tables ``[camera]``, ``[objective]``,
``[illuminator]``, ``[acquisition]`` read by ``scope plan``, and whatever other tools add).
Calibration workflows write their results under ``[calibration.<name>]`` and leave every other
table as it was. Writes go to a temporary file first and replace the preset only once complete,
so an error never leaves a half-written preset behind. (TOML comments are not preserved: tomllib
does not keep them.)
"""

from __future__ import annotations

import logging
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from scope.errors import ConfigurationError

log = logging.getLogger(__name__)


def read_preset(path: str | Path) -> dict[str, Any]:
    """The preset as a dict; an empty dict if the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ConfigurationError(
            f"preset {path} is not valid TOML ({err}): fix it or write to a new preset"
        ) from err


def write_preset(path: str | Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically (temporary file, then rename)."""
    import tomli_w

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            tomli_w.dump(document, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_calibration(path: str | Path, name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Replace table ``[calibration.<name>]`` of the preset at ``path`` with ``values``.

    Returns the whole updated document. Other tables are kept.
    """
    doc = read_preset(path)
    calibration = doc.setdefault("calibration", {})
    if not isinstance(calibration, dict):
        raise ConfigurationError(
            f"preset {path} has a 'calibration' key that is not a table: rename it"
        )
    calibration[name] = values
    write_preset(path, doc)
    log.info("saved [calibration.%s] into %s", name, path)
    return doc


def read_calibration(path: str | Path, name: str) -> dict[str, Any] | None:
    """Table ``[calibration.<name>]`` of the preset, or None if absent."""
    return read_preset(path).get("calibration", {}).get(name)
