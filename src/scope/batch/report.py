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

REPORT_JSON = "batch-report.json"
REPORT_TEXT = "batch-report.txt"


@dataclass
class BatchReport:
    """Outcome of a batch run.

    Attributes
    ----------
    files : list of dict
        One entry per input: ``input``, ``output``, ``status`` (``done``, ``skipped`` — output
        already complete —, ``error`` or ``interrupted``), ``error``, ``parameters``,
        ``resolution``, ``seconds`` ...
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

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f["status"] == status)

    @property
    def exit_status(self) -> int:
        """0: all done or skipped; 3: some failed; 2: all failed; 130: interrupted."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        failed = self.count("error")
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
            "counts": {s: self.count(s) for s in ("done", "skipped", "error", "interrupted")},
            "exit_status": self.exit_status,
            "files": self.files,
        }

    def table(self) -> str:
        """A readable fixed-width table, one row per file, errors spelled out below."""
        rows = [
            (
                "file",
                "status",
                "sets",
                "angles (deg)",
                "period (nm)",
                "res. WF/SIM (nm)",
                "MCNR",
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
            rows.append(
                (
                    shown,
                    f["status"],
                    str(f.get("n_sets", "")),
                    " ".join(f"{a['angle_deg']:.1f}" for a in params),
                    " ".join(f"{a['period_nm']:.0f}" for a in params),
                    (
                        f"{res['widefield_nm']:.0f}/{res['sim_nm']:.0f}"
                        if res.get("widefield_nm") and res.get("sim_nm")
                        else "-"
                    ),
                    f"{mcnr:.1f}" if mcnr is not None else "-",
                    f"{100 * clipped:.2g} %" if clipped is not None else "-",
                    f"{f.get('seconds', 0):.1f}" if f.get("seconds") is not None else "",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        errors = [f for f in self.files if f.get("error")]
        if errors:
            lines.append("")
            lines.extend(f"{Path(f['input']).name}: {f['error']}" for f in errors)
        c = self.to_dict()["counts"]
        lines.append("")
        lines.append(
            f"{c['done']} done, {c['skipped']} already complete, {c['error']} failed"
            + (f", {c['interrupted']} interrupted" if c["interrupted"] else "")
            + f" in {self.seconds:.1f} s on {self.scheduler} ({self.n_workers} workers)"
        )
        return "\n".join(lines)

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
