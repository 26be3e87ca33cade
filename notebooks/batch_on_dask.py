# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Batch reconstruction on a Dask cluster
#
# A day at the microscope leaves a folder of time-lapses. `scope batch` (and its Python form,
# `scope.batch.run_batch`) reconstructs all of them: one task per file, spread over the workers
# of a [Dask](https://docs.dask.org) cluster — the cores of this computer, or hundreds of cores
# on an institute's cluster. For each file the pattern is estimated once from its first SIM set
# and reused for every time point; each output is written under a temporary name and renamed
# when complete, so an interrupted batch never leaves half-written results and a re-run only
# does what is missing.
#
# Here: a small folder of simulated time-lapses (so the results can be checked against the
# truth), a real Dask cluster of two worker processes on this machine, the report, a re-run,
# and how to do the same on a SLURM cluster.

# %%
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from distributed import Client, LocalCluster

from scope.batch import BatchOptions, run_batch
from scope.io.writers import read_image
from scope.optics import OpticalSetup
from scope.sim.forward import simulate_raw
from scope.sim.params import SIMParameters
from scope.sim.pipeline import reconstruct_stack
from scope.sim.reconstruct import ReconstructionSettings
from scope.sim.samples import make_sample

workdir = Path(tempfile.mkdtemp(prefix="scope-batch-"))
raw_dir, out_dir = workdir / "raw", workdir / "sim"
raw_dir.mkdir()

# %% [markdown]
# ## A folder of time-lapses
#
# Three cells, three time points each, 64 x 64 camera pixels, 9 frames per time point
# (3 angles x 3 phases). The pattern is turned a little between the "sessions" (as after
# re-aligning the illuminator), so each file needs its own estimate. They are written as
# OME-TIFF with their pixel size, axes `T` (time), `Z` (here: the 9 SIM frames), `Y`, `X` —
# any layout `(..., angles*phases, Y, X)` works, and MRC and OME-Zarr files too.

# %%
setup = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
N_TIME, SIZE, OFFSET_ADU = 3, 64, 100.0
truth = {}
for cell in range(3):
    params = SIMParameters.equidistant(
        [3.0 + 4 * cell, 63.0 + 4 * cell, 123.0 + 4 * cell], period_nm=265.0
    )
    sample = make_sample((2 * SIZE, 2 * SIZE), "filaments", seed=cell)
    frames = [
        simulate_raw(
            sample, params, setup, photons_peak=300, offset_adu=OFFSET_ADU, rng=10 * cell + t
        )
        for t in range(N_TIME)
    ]
    raw = np.clip(np.round(frames), 0, 65535).astype(np.uint16)  # (T, 9, Y, X) as a camera gives
    path = raw_dir / f"cell{cell + 1:02d}.ome.tif"
    tifffile.imwrite(
        path,
        raw,
        ome=True,
        metadata={"axes": "TZYX", "PhysicalSizeX": 0.065, "PhysicalSizeY": 0.065},
    )
    truth[path.name] = (params, raw)
print(sorted(p.name for p in raw_dir.iterdir()), raw.shape, raw.dtype)

# %% [markdown]
# ## Start a cluster and run the batch
#
# `LocalCluster` starts a Dask scheduler and worker processes on this machine (listening on
# 127.0.0.1 only). Any Dask cluster is used the same way: the batch is given the scheduler's
# address. The optics come as options here (they could come from a preset TOML, see
# `docs/batch.md`); values a file states itself (the pixel size above) fill what is missing.
#
# (`scope batch raw/ -o sim/ --na 1.2 --wavelength 525 --offset 100 --workers 2` is the same
# from the command line; without `--scheduler` it starts such a local cluster itself.)

# %%
if "__file__" in globals() and __name__ == "__main__":  # run as a plain Python script
    # Dask's worker processes start by running the main script again (multiprocessing's
    # "spawn"), which would start clusters of their own: a notebook's cells cannot be guarded
    raise SystemExit(
        "run this tutorial in Jupyter, or: .venv/bin/jupytext --to ipynb "
        "notebooks/batch_on_dask.py && .venv/bin/jupyter execute notebooks/batch_on_dask.ipynb"
    )
cluster = LocalCluster(
    n_workers=2,
    threads_per_worker=1,
    processes=True,
    host="127.0.0.1",
    dashboard_address=None,
)
client = Client(cluster)
print(cluster.scheduler_address, "with", len(client.scheduler_info()["workers"]), "workers")

options = BatchOptions(na=1.2, wavelength_nm=525, offset_adu=OFFSET_ADU, backend="numpy")
t0 = time.perf_counter()
report = run_batch([raw_dir], out_dir, flags=options, scheduler=cluster.scheduler_address)
print(f"batch took {time.perf_counter() - t0:.1f} s\n")
print(report.table())
assert report.exit_status == 0
assert report.n_workers == 2
assert report.count("done") == 3
worker_pids = {f["pid"] for f in report.files}
print(f"\nreconstructed in worker processes {sorted(worker_pids)} (this kernel: {os.getpid()})")
assert os.getpid() not in worker_pids

# %% [markdown]
# ## What came out
#
# For each input: `NAME.sim.zarr` (OME-Zarr, float32, twice the pixels, its physical pixel size
# and full provenance inside) and `NAME.params.json` (the pattern parameters and where every
# optical value came from), plus `batch-report.json` / `.txt` for the whole run.
#
# The checks: each file's pattern was estimated correctly, each output is exactly what a
# single-file reconstruction of that file gives, and every time point is there. (On a field of
# only 64 x 64 pixels the pattern is found to a few tenths of a degree and better than 1 % in
# period; on 128 x 128 fields and larger, to about 0.1° and 0.2 %.)

# %%
print(sorted(p.name for p in out_dir.iterdir() if not p.name.startswith(".")))
summary = json.loads((out_dir / "batch-report.json").read_text())
print("counts:", summary["counts"], "| scheduler:", summary["scheduler"])
settings = ReconstructionSettings(offset_adu=OFFSET_ADU)
for entry in summary["files"]:
    name = Path(entry["input"]).name
    params, raw = truth[name]
    stem = name.removesuffix(".ome.tif")
    image, pixel_nm, meta = read_image(out_dir / f"{stem}.sim.zarr")
    doc = json.loads((out_dir / f"{stem}.params.json").read_text())
    worst_angle = max(
        abs((got["angle_deg"] - want.angle_deg + 90) % 180 - 90)
        for got, want in zip(doc["angles"], params.angles)
    )
    worst_period = max(abs(got["period_nm"] / 265.0 - 1) for got in doc["angles"])
    alone, _ = reconstruct_stack(raw.astype(np.float32), setup, settings=settings)
    diff = float(np.abs(image - alone).max() / np.abs(alone).max())
    res = entry["resolution"]
    print(
        f"{name}: {image.shape} at {pixel_nm} nm, pattern off by <= {worst_angle:.3f}° / "
        f"{100 * worst_period:.3f} %, resolution {res['widefield_nm']:.0f} -> "
        f"{res['sim_nm']:.0f} nm, differs from a single-file run by {diff:.1e}"
    )
    assert image.shape == (N_TIME, 2 * SIZE, 2 * SIZE)
    assert abs(pixel_nm - 32.5) < 1e-6
    assert worst_angle < 0.5
    assert worst_period < 0.01
    assert res["sim_nm"] < res["widefield_nm"]
    assert diff < 1e-5

# %% [markdown]
# ## Re-running skips what is complete
#
# Run the same command again — after a crash, a killed job, or because new files were added —
# and only what has no complete output is done. Here one output is deleted first: it is
# redone, the other two are skipped.

# %%
import shutil

shutil.rmtree(out_dir / "cell02.sim.zarr")
stamp = (out_dir / "cell01.sim.zarr").stat().st_mtime_ns
again = run_batch([raw_dir], out_dir, flags=options, scheduler=cluster.scheduler_address)
print(again.table())
status = {Path(f["input"]).name: f["status"] for f in again.files}
assert status == {
    "cell01.ome.tif": "skipped",
    "cell02.ome.tif": "done",
    "cell03.ome.tif": "skipped",
}
assert (out_dir / "cell02.sim.zarr").is_dir()
assert (out_dir / "cell01.sim.zarr").stat().st_mtime_ns == stamp  # left untouched

# %%
client.close()
cluster.close()

# %% [markdown]
# ## On a SLURM cluster (dask-jobqueue)
#
# Nothing above is specific to this computer: the batch only needs a scheduler address, and
# the files visible to the workers at the same paths (a shared file system such as `/scratch`).
# With [dask-jobqueue](https://jobqueue.dask.org), Dask starts its workers as SLURM jobs
# (`pip install "scope-sim[distributed]" dask-jobqueue` on the cluster, in the environment the
# jobs use). This is not run here; on the cluster's login node, or in a small job of its own:
#
# ```python
# from dask_jobqueue import SLURMCluster
# from distributed import Client
# from scope.batch import BatchOptions, run_batch
#
# cluster = SLURMCluster(
#     queue="normal", account="mylab",         # your partition and account
#     cores=8, processes=8, memory="32GB",     # 8 single-threaded workers per job
#     walltime="02:00:00",
# )
# cluster.scale(jobs=4)                        # 4 jobs = 32 workers
# client = Client(cluster)
# client.wait_for_workers(8)                   # start once some workers are up
#
# report = run_batch(
#     ["/scratch/me/raw"], "/scratch/me/sim",
#     flags=BatchOptions(na=1.2, wavelength_nm=525, offset_adu=100),
#     scheduler=cluster.scheduler_address,
# )
# print(report.table())
# ```
#
# Or keep a cluster running (`print(cluster.scheduler_address)`) and use the command line:
# `scope batch /scratch/me/raw -o /scratch/me/sim --preset my-setup --scheduler tcp://...`.
#
# - Each file is one task: many files use many workers; one huge file runs on one worker (its
#   memory stays bounded to a few time points).
# - GPU nodes: `job_extra_directives=["--gres=gpu:1"]`, `processes=1` per GPU, and
#   `scope-sim[gpu]` installed on the nodes; `backend="auto"` then reconstructs on the GPU.
# - A Dask scheduler has no password: keep it on the cluster's private network.
# - If the batch job is killed by its time limit, submit it again: complete outputs are kept and
#   skipped, unfinished ones are redone.
