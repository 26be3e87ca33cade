"""End to end on the simulated microscope: acquire a run, read it back, reconstruct it."""

from __future__ import annotations

import json

import numpy as np
import tifffile

from scope.acquisition.writer import read_acquisition
from scope.cli import main
from scope.io.raw import open_raw


def test_acquired_run_reads_back_and_reconstructs(tmp_path):
    run = tmp_path / "run.zarr"
    assert main(["-q", "acquire", "--sets", "2", "-o", str(run)]) == 0
    # the run states its own angles x phases: no --angles/--phases needed
    with open_raw(run) as raw:
        assert raw.shape[:2] == (2, 9)
        assert raw.pixel_size_nm == 65.0
    _, _, meta = read_acquisition(run)
    assert meta["summary"]["duration_s"] > 0  # written with the summary, not after it
    out = tmp_path / "sim.tif"
    assert (
        main(["-q", "reconstruct", str(run), "-o", str(out), "--na", "1.2", "--wavelength", "525"])
        == 0
    )
    sim = tifffile.imread(out)
    assert sim.shape == (2, 2 * raw.shape[-2], 2 * raw.shape[-1])
    assert np.isfinite(sim).all() and sim.std() > 0
    doc = json.loads((tmp_path / "sim.params.json").read_text())
    assert all(a["source"] == "estimated" for a in doc["angles"])
