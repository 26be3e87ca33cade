"""Every notebook (jupytext percent-format .py under notebooks/) runs top to bottom.

The notebooks are stored as plain Python so their diffs are readable; here each is converted with
jupytext and executed in a real Jupyter kernel with nbclient, on the simulated microscope, with no
hardware and no network. A notebook checks its own results with ``assert``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(p for p in NOTEBOOKS.glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    notebook = jupytext.read(path)
    assert any(c.cell_type == "markdown" for c in notebook.cells), "a notebook explains itself"
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    errors = [
        out
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
