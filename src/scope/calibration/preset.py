"""Read and update a setup's preset TOML without losing what is already in it.

A preset is a TOML file describing one microscope (tables ``[camera]``, ``[objective]``,
``[illuminator]``, ``[acquisition]`` read by ``scope plan``, and whatever other tools add).
Calibration workflows write their results under ``[calibration.<name>]`` and leave the rest of
the file as it was, comments and layout included: only the text of ``[calibration.<name>]`` (and
its sub-tables) is replaced, or appended at the end when the table is new. The edited text is
parsed back and checked to hold exactly the old document with the new table; a preset laid out
so that the table cannot be replaced on its own (e.g. ``calibration = {...}`` inline) is
rewritten whole instead, with a warning that its comments are lost. Writes go to a temporary
file first and replace the preset only once complete, so an error never leaves a half-written
preset behind.
"""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path
from typing import Any

from scope.errors import ConfigurationError

log = logging.getLogger(__name__)

#: a table header line, ``[a.b]`` or ``[[a.b]]``, with an optional comment after it
_HEADER = re.compile(r"^[ \t]*\[(\[?)[ \t]*(?P<key>[^\[\]#\r\n]+?)[ \t]*\]\1[ \t]*(#.*)?$")
#: one part of a dotted key: bare, "basic" or 'literal'
_KEY_PART = re.compile(r"""[ \t]*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))[ \t]*""")


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


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`scope.io.writers.write_atomically`).

    An existing file keeps its permissions; a new one gets the usual ``0o666`` less the umask
    (as ``open`` gives). A preset that is a symbolic link stays one: the file it points to is
    replaced.
    """
    from scope.io.writers import write_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path = path.resolve()
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline=""))


def write_preset(path: str | Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically (temporary file, then rename).

    This writes the whole document anew (no comments); :func:`update_calibration` keeps them.
    """
    import tomli_w

    _write_text(Path(path), tomli_w.dumps(document))


def _key_parts(key: str) -> tuple[str, ...] | None:
    """``calibration . "camera"`` -> ``("calibration", "camera")``; None if not a dotted key."""
    parts, pos = [], 0
    while True:
        m = _KEY_PART.match(key, pos)
        if m is None:
            return None
        basic, literal, bare = m.groups()
        parts.append(bare if bare is not None else literal if literal is not None else basic)
        pos = m.end()
        if pos == len(key):
            return tuple(parts)
        if key[pos] != ".":
            return None
        pos += 1


def _is_blank_or_comment(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def replace_table_text(text: str, name: str, table_text: str) -> str:
    """``text`` with the lines of ``[calibration.<name>]`` and its sub-tables replaced by
    ``table_text`` (placed where the table was, else at the end). Everything else — other
    tables, comments, blank lines — is kept, and so are comment lines right above the next
    table's header (they describe that table)."""
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    headers = []
    for i, line in enumerate(lines):
        m = _HEADER.match(line)
        if m is not None:
            headers.append((i, _key_parts(m.group("key"))))
    target = ("calibration", name)
    drop: set[int] = set()
    insert_at: int | None = None
    for n, (start, parts) in enumerate(headers):
        if parts is None or parts[:2] != target:
            continue
        following = headers[n + 1] if n + 1 < len(headers) else None
        end = following[0] if following is not None else len(lines)
        if following is None or following[1] is None or following[1][:2] != target:
            while end > start + 1 and _is_blank_or_comment(lines[end - 1]):
                end -= 1  # trailing comments belong to what follows
        drop.update(range(start, end))
        if insert_at is None:
            insert_at = start
    block = table_text.replace("\r\n", "\n").rstrip("\n").replace("\n", newline) + newline
    kept = [line for i, line in enumerate(lines) if i not in drop]
    if insert_at is None:
        body = "".join(kept)
        if body and not body.endswith(("\n", "\r")):
            body += newline
        if body.strip():
            body = body.rstrip("\r\n") + newline + newline
        return body + block
    before = sum(1 for i in range(insert_at) if i not in drop)
    after = kept[before:]
    if after and after[0].strip():  # keep a blank line between the table and what follows
        block += newline
    return "".join(kept[:before]) + block + "".join(after)


def update_calibration(path: str | Path, name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Replace table ``[calibration.<name>]`` of the preset at ``path`` with ``values``.

    Only that table's text changes: the rest of the file (other tables, comments, blank lines)
    is kept as it was. A preset that does not exist yet is created. Returns the whole updated
    document.
    """
    import tomli_w

    path = Path(path)
    doc = read_preset(path)
    calibration = doc.setdefault("calibration", {})
    if not isinstance(calibration, dict):
        raise ConfigurationError(
            f"preset {path} has a 'calibration' key that is not a table: rename it"
        )
    table_text = tomli_w.dumps({"calibration": {name: values}})
    calibration[name] = tomllib.loads(table_text)["calibration"][name]  # as TOML reads it
    old_text = path.read_bytes().decode("utf-8") if path.exists() else ""
    new_text = replace_table_text(old_text, name, table_text)
    try:
        in_place = tomllib.loads(new_text) == doc
    except tomllib.TOMLDecodeError:
        in_place = False
    if not in_place:
        log.warning(
            "[calibration.%s] in %s is not laid out as a table of its own (inline or dotted "
            "keys?): the preset was rewritten whole and its comments are lost",
            name,
            path,
        )
        new_text = tomli_w.dumps(doc)
    _write_text(path, new_text)
    log.info("saved [calibration.%s] into %s", name, path)
    return doc


def read_calibration(path: str | Path, name: str) -> dict[str, Any] | None:
    """Table ``[calibration.<name>]`` of the preset, or None if absent."""
    return read_preset(path).get("calibration", {}).get(name)
