"""Host-side codec of the pattern controller's serial protocol (``hardware/PROTOCOL.md``).

Lines are printable ASCII ended by ``\\n`` (``\\r`` and ``\\r\\n`` are accepted too). The host
sends ``<id> <COMMAND> [args...]``; the controller answers each non-blank line with exactly one
``OK <id> key=value ...`` or ``ERR <id> <code> <NAME>: <message>`` and sends asynchronous
``EVT <KIND> key=value ...`` lines that carry no id.

Examples
--------
>>> encode_request(7, "TIMING", 5000, 1000)
b'7 TIMING 5000 1000\\n'
>>> parse_line(b"OK 7 exposure_us=5000 dark_us=1000 period_us=6000\\r\\n").fields["period_us"]
'6000'
>>> parse_line("EVT FRAME n=3 idx=2 t_us=1234").kind
'FRAME'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from scope.errors import ConfigurationError, ProtocolError

#: protocol version spoken by this host driver (major, minor); a different major is refused
PROTOCOL_VERSION: tuple[int, int] = (1, 0)
#: the longest line the controller accepts, terminator excluded
MAX_LINE = 256
#: largest request id (ids are 1 to 9 decimal digits)
MAX_REQUEST_ID = 999_999_999


class ErrorCode(IntEnum):
    """Numbered error codes of ``ERR`` replies (mirrors ``hardware/firmware/pattern_core.py``)."""

    SYNTAX = 1
    UNKNOWN_COMMAND = 2
    BAD_ARGUMENTS = 3
    OUT_OF_RANGE = 4
    BAD_STATE = 5
    LINE_TOO_LONG = 6
    VERSION_MISMATCH = 7
    SEQUENCE = 8
    FAULT_LATCHED = 9
    UNSUPPORTED = 10
    INTERNAL = 11


#: kinds of asynchronous events
EVENT_KINDS = frozenset({"READY", "FRAME", "DONE", "FAULT"})


@dataclass(frozen=True)
class Reply:
    """One ``OK``/``ERR`` reply line."""

    ok: bool
    request_id: str
    fields: dict[str, str] = field(default_factory=dict)
    code: int | None = None
    message: str = ""
    raw: str = ""

    @property
    def error_code(self) -> ErrorCode | int | None:
        """The error code as an :class:`ErrorCode` where it is a known one."""
        if self.code is None:
            return None
        try:
            return ErrorCode(self.code)
        except ValueError:
            return self.code


@dataclass(frozen=True)
class EventLine:
    """One ``EVT`` line (no request id)."""

    kind: str
    fields: dict[str, str] = field(default_factory=dict)
    raw: str = ""


def encode_request(request_id: int, command: str, *args: object) -> bytes:
    """Encode one request line.

    Raises
    ------
    ConfigurationError
        When the id is out of range, a token is empty, holds whitespace or non-printable ASCII,
        or the line is longer than :data:`MAX_LINE`.
    """
    if not 0 < int(request_id) <= MAX_REQUEST_ID:
        raise ConfigurationError(f"request id must be 1..{MAX_REQUEST_ID}, got {request_id}")
    tokens = [str(int(request_id)), str(command)] + [str(a) for a in args]
    for tok in tokens:
        if not tok or any(not (33 <= ord(c) <= 126) for c in tok):
            raise ConfigurationError(
                f"protocol token {tok!r} must be non-empty printable ASCII without spaces"
            )
    line = " ".join(tokens)
    if len(line) > MAX_LINE:
        raise ConfigurationError(
            f"request line of {len(line)} bytes exceeds the protocol limit of {MAX_LINE}: "
            "send smaller chunks"
        )
    return (line + "\n").encode("ascii")


def parse_fields(tokens: Iterable[str]) -> dict[str, str]:
    """``key=value`` tokens to a dict (tokens without ``=`` are ignored)."""
    out: dict[str, str] = {}
    for tok in tokens:
        key, sep, value = tok.partition("=")
        if sep and key:
            out[key] = value
    return out


def parse_line(line: bytes | str) -> Reply | EventLine | None:
    """Parse one line from the controller.

    Returns
    -------
    Reply, EventLine or None
        ``None`` for a blank line.

    Raises
    ------
    ProtocolError
        For a non-blank line that is neither a reply nor an event.
    """
    text = line.decode("ascii", errors="replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text:
        return None
    toks = text.split()
    head = toks[0]
    if head == "OK" and len(toks) >= 2:
        return Reply(True, toks[1], parse_fields(toks[2:]), raw=text)
    if head == "ERR" and len(toks) >= 3:
        try:
            code = int(toks[2])
        except ValueError as err:
            raise ProtocolError(
                f"controller sent {text!r}: expected 'ERR <id> <code> <message>' with a numeric "
                "code; is this a scope pattern controller?"
            ) from err
        return Reply(False, toks[1], {}, code=code, message=" ".join(toks[3:]), raw=text)
    if head == "EVT" and len(toks) >= 2:
        return EventLine(toks[1], parse_fields(toks[2:]), raw=text)
    raise ProtocolError(
        f"controller sent {text[:80]!r}: expected a line starting with OK, ERR or EVT; "
        "is this a scope pattern controller (hardware/PROTOCOL.md)?"
    )


def parse_version(text: str) -> tuple[int, int]:
    """``"1.0"`` -> ``(1, 0)``."""
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError as err:
        raise ProtocolError(f"bad protocol version {text!r}: expected 'major.minor'") from err


def sequence_checksum(indices: Iterable[int]) -> int:
    """Checksum of ``SEQ END``: ``h = (h * 31 + index + 1) mod 2**32`` starting from 17."""
    h = 17
    for i in indices:
        h = (h * 31 + int(i) + 1) & 0xFFFFFFFF
    return h


def chunk_sequence(indices: Sequence[int], max_chunk: int) -> list[tuple[int, list[int]]]:
    """Split a sequence into ``(offset, entries)`` chunks of at most ``max_chunk`` entries that
    also fit a protocol line."""
    chunks: list[tuple[int, list[int]]] = []
    off = 0
    n = len(indices)
    while off < n:
        part: list[int] = []
        length = len(f"999999999 SEQ DATA {off} ")
        while off + len(part) < n and len(part) < max_chunk:
            tok = str(int(indices[off + len(part)]))
            if length + len(tok) + 1 > MAX_LINE:
                break
            part.append(int(tok))
            length += len(tok) + 1
        chunks.append((off, part))
        off += len(part)
    return chunks
