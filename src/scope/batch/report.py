"""The batch summary: one line per file (status, parameters, resolution, time), JSON and table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: exit statuses of ``scope batch``
EXIT_OK = 0
EXIT_ALL_FAILED = 2
EXIT_PARTIAL_FAILURE = 3
EXIT_INTERRUPTED = 130

#: every status a file can have, in the order the report counts them
STATUSES = ("done", "prior-only", "skipped", "outdated", "error", "interrupted")
#: statuses of files not done as asked: the exit status says so
NOT_DONE = ("error", "outdated")

REPORT_JSON = "batch-report.json"
REPORT_TEXT = "batch-report.txt"


@dataclass
class BatchReport:
    """Outcome of a batch run.

    Attributes
    ----------
    files : list of dict
        One entry per input: ``input``, ``output``, ``status`` (``done``; ``prior-only`` —
        written, but every pattern angle came from the priors —; ``skipped`` — output already
        complete —; ``outdated`` — an output made with other settings, kept —; ``error`` or
        ``interrupted``), ``error``, ``note``, ``parameters``, ``angles_from_prior``,
        ``resolution``, ``seconds`` ...
    notes : list of str
        What the batch says about the run as a whole (raw files left in sub-folders without
        ``--recursive`` ...): under ``notes`` in the JSON, above the totals in the table.
    """

    outdir: str
    software: str
    scheduler: str
    n_workers: int
    started_utc: str
    seconds: float = 0.0
    interrupted: bool = False
    files: list[dict[str, Any]] = field(default_factory=list)
    #: where the Dask scheduler and workers listened (empty in-process)
    addresses: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f["status"] == status)

    @property
    def exit_status(self) -> int:
        """0: all done or skipped; 3: some failed (or outdated); 2: all failed (or outdated);
        130: interrupted."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        failed = sum(self.count(s) for s in NOT_DONE)
        if not failed:
            return EXIT_OK
        return EXIT_ALL_FAILED if failed == len(self.files) else EXIT_PARTIAL_FAILURE

    def to_dict(self) -> dict[str, Any]:
        return {
            "outdir": self.outdir,
            "software": self.software,
            "scheduler": self.scheduler,
            "n_workers": self.n_workers,
            "addresses": self.addresses,
            "started_utc": self.started_utc,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "counts": {s: self.count(s) for s in STATUSES},
            "exit_status": self.exit_status,
            "notes": self.notes,
            "files": self.files,
        }

    def table(self) -> str:
        """A readable fixed-width table, one row per file, errors spelled out below."""
        from scope.sim.params import orientation_deg  # the pattern's, as reports print it

        rows = [
            (
                "file",
                "status",
                "sets",
                "angles (deg)",
                "period (nm)",
                "res. WF/SIM (nm)",
                "MCNR",
                "prior",
                "clipped",
                "s",
            )
        ]
        names = [Path(f["input"]).name for f in self.files]
        if len(set(names)) < len(names):  # same names in different folders: show the folder
            names = [f"{Path(f['input']).parent.name}/{Path(f['input']).name}" for f in self.files]
        for f, shown in zip(self.files, names):
            params = (f.get("parameters") or {}).get("angles") or []
            res = f.get("resolution") or {}
            mcnr = (f.get("modulation_contrast") or {}).get("median_mcnr")
            clipped = (f.get("saturation") or {}).get("fraction")
            prior = f.get("angles_from_prior") or {}
            rows.append(
                (
                    shown,
                    f["status"],
                    str(f.get("n_sets", "")),
                    " ".join(f"{orientation_deg(a['angle_deg']):.1f}" for a in params),
                    " ".join(f"{a['period_nm']:.0f}" for a in params),
                    (
                        f"{res['widefield_nm']:.0f}/{res['sim_nm']:.0f}"
                        if res.get("widefield_nm") and res.get("sim_nm")
                        else "-"
                    ),
                    f"{mcnr:.1f}" if mcnr is not None else "-",
                    f"{prior['count']}/{prior['of']}" if prior.get("of") else "-",
                    f"{100 * clipped:.2g} %" if clipped is not None else "-",
                    f"{f.get('seconds', 0):.1f}" if f.get("seconds") is not None else "",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        # the errors and notes name their file as its row does (with its folder where names
        # repeat)
        said = [(shown, f.get("error") or f.get("note")) for f, shown in zip(self.files, names)]
        said = [(shown, text) for shown, text in said if text]
        if said:
            lines.append("")
            lines.extend(_named(name, text) for name, text in said)
        if self.notes:
            lines.append("")
            lines.extend(f"note: {note}" for note in self.notes)
        lines.append("")
        lines.append(self._totals())
        return "\n".join(lines)

    def _totals(self) -> str:
        """The last line of the table: how many files of each status, time, where."""
        c = self.to_dict()["counts"]
        parts = [f"{c['done']} done"]
        if c["prior-only"]:
            parts.append(f"{c['prior-only']} with the prior pattern only (no carrier found)")
        parts.append(f"{c['skipped']} already complete")
        if c["outdated"]:
            parts.append(f"{c['outdated']} made with other settings (kept)")
        parts.append(f"{c['error']} failed")
        if c["interrupted"]:
            parts.append(f"{c['interrupted']} interrupted")
        workers = f"{self.n_workers} worker{'s' if self.n_workers != 1 else ''}"
        where = f" in {self.seconds:.1f} s " + (
            "in-process" if self.scheduler == "in-process" else f"on {self.scheduler} ({workers})"
        )
        return ", ".join(parts) + where

    def write(self, outdir: Path) -> tuple[Path, Path]:
        """Write ``batch-report.json`` and ``batch-report.txt`` into ``outdir`` (atomically)."""
        from scope.batch.job import _write_json_atomic
        from scope.io.writers import temporary_path

        jpath, tpath = outdir / REPORT_JSON, outdir / REPORT_TEXT
        _write_json_atomic(jpath, self.to_dict())
        tmp = temporary_path(tpath)
        tmp.write_text(self.table() + "\n")
        tmp.replace(tpath)
        return jpath, tpath

    @staticmethod
    def read(outdir: Path) -> dict[str, Any]:
        return json.loads((outdir / REPORT_JSON).read_text())


def _named(name: str, text: str) -> str:
    """``name: text``, without naming the file twice when the text already starts with it."""
    return text if text.startswith(f"{name}: ") else f"{name}: {text}"
