"""A plain-text progress bar with an ETA (no third-party dependency)."""

from __future__ import annotations

import time
from typing import TextIO


def format_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressBar:
    """``[#######.......]  3/6 files  120/240 sets  00:12 elapsed  ETA 00:14``.

    On a terminal the line is redrawn in place; elsewhere (logs, pipes) one line is written per
    update, at most every ``min_interval_s`` seconds (and always for the last one).

    Parameters
    ----------
    total_files, total_units : int
        Files and work units (SIM sets) expected; the ETA is computed from units.
    stream : text stream
        Where to draw (the CLI passes ``sys.stderr``).
    """

    def __init__(
        self,
        total_files: int,
        total_units: int,
        stream: TextIO,
        *,
        width: int = 28,
        min_interval_s: float = 2.0,
    ) -> None:
        self.total_files = max(total_files, 0)
        self.total_units = max(total_units, 1)
        self.stream = stream
        self.width = width
        self.min_interval_s = min_interval_s
        self.start = time.monotonic()
        self._last_draw = -1e9
        self.files_done = 0
        self.units_done = 0
        self.failed = 0
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def eta_seconds(self) -> float | None:
        elapsed = time.monotonic() - self.start
        if self.units_done <= 0:
            return None
        return elapsed / self.units_done * (self.total_units - self.units_done)

    def render(self) -> str:
        frac = min(1.0, self.units_done / self.total_units)
        filled = round(frac * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        eta = self.eta_seconds()
        failed = f"  {self.failed} failed" if self.failed else ""
        return (
            f"[{bar}] {self.files_done}/{self.total_files} files  "
            f"{self.units_done}/{self.total_units} sets{failed}  "
            f"{format_seconds(time.monotonic() - self.start)} elapsed  "
            f"ETA {'--:--' if eta is None else format_seconds(eta)}"
        )

    def update(self, *, files: int = 0, units: int = 0, failed: int = 0) -> None:
        self.files_done += files
        self.units_done += units
        self.failed += failed
        now = time.monotonic()
        last = self.files_done >= self.total_files
        if not last and now - self._last_draw < (0.1 if self.tty else self.min_interval_s):
            return
        self._last_draw = now
        if self.tty:
            self.stream.write("\r" + self.render())
        else:
            self.stream.write(self.render() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
