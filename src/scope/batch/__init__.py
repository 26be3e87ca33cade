"""Batch reconstruction of many raw SIM files, in-process or on a Dask cluster.

>>> from scope.batch import run_batch  # doctest: +SKIP
>>> report = run_batch(["data/"], "out/", n_workers=2)  # doctest: +SKIP
>>> report.exit_status  # 0 ok, 3 some files failed, 2 all failed  # doctest: +SKIP
"""

from __future__ import annotations

from scope.batch.config import BatchOptions, OutputOptions, load_preset
from scope.batch.discovery import discover_inputs
from scope.batch.engine import run_batch
from scope.batch.job import FileJob, process_file
from scope.batch.report import BatchReport

__all__ = [
    "BatchOptions",
    "BatchReport",
    "FileJob",
    "OutputOptions",
    "discover_inputs",
    "load_preset",
    "process_file",
    "run_batch",
]
