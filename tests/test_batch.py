"""Issue 6 acceptance: a folder of simulated time-lapses through ``scope batch`` on real Dask.

Six 3-time-point time-lapses of 64x64 frames (a plain TIFF, an OME-TIFF, an MRC, an OME-Zarr, a
truncated TIFF and one with a frame missing) are reconstructed on a LocalCluster of 2 worker
processes. The 4 good outputs must equal single-file reconstructions made with the public API
on arrays read independently (tifffile / mrcfile / zarr), the 2 bad ones must be clear errors,
and the exit status must say "partial failure". A real ``scope batch`` subprocess is then killed
mid-run and restarted: it must finish only the missing outputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

pytest.importorskip("distributed")

from scope.batch import BatchOptions, OutputOptions, load_preset, run_batch
from scope.batch.report import EXIT_PARTIAL_FAILURE
from scope.io.writers import read_image, write_ome_zarr
from scope.optics import OpticalSetup
from scope.sim.params import SIMParameters

SETUP = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
N_T, SIZE = 3, 64


def _time_lapse(seed: int, n_time: int = N_T, size: int = SIZE) -> np.ndarray:
    """(T, 9, size, size) uint16 raw SIM frames of a filament sample, fresh noise per time point."""
    from scope.sim.forward import simulate_raw
    from scope.sim.samples import make_sample

    params = SIMParameters.equidistant([8.0 + seed, 68.0 + seed, 128.0 + seed], period_nm=265.0)
    sample = make_sample((2 * size, 2 * size), "filaments", seed=seed)
    raw = [
        simulate_raw(sample, params, SETUP, photons_peak=300, rng=100 * seed + t)
        for t in range(n_time)
    ]
    return np.clip(np.round(raw), 0, 65535).astype(np.uint16)


def _write_mrc(path: Path, frames: np.ndarray) -> None:
    import mrcfile

    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(frames)
        m.voxel_size = 0.065 * 1e4  # Å in MRC2014: 65 nm


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """Six time-lapses, four good (TIFF, OME-TIFF, MRC, OME-Zarr) and two bad."""
    data = tmp_path_factory.mktemp("batch") / "data"
    data.mkdir()
    good = {name: _time_lapse(seed) for seed, name in enumerate(("a", "b", "c", "d"), start=1)}
    tifffile.imwrite(data / "a.tif", good["a"])
    tifffile.imwrite(
        data / "b.ome.tif",
        good["b"],
        ome=True,
        metadata={"axes": "TZYX", "PhysicalSizeX": 0.065, "PhysicalSizeXUnit": "µm"},
    )
    _write_mrc(data / "c.mrc", good["c"].reshape(-1, SIZE, SIZE))
    write_ome_zarr(data / "d.zarr", good["d"].astype(np.float32), pixel_size_nm=65, axes="TZYX")
    cut = data / "truncated.tif"
    tifffile.imwrite(cut, _time_lapse(5))
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 2 // 3])
    tifffile.imwrite(data / "wrong_count.tif", _time_lapse(6).reshape(-1, SIZE, SIZE)[:-1])
    return data, good


def _read_independently(path: Path) -> np.ndarray:
    """The raw frames of a test file, read without scope.io, as (T, 9, Y, X) float32."""
    if path.suffix == ".mrc":
        import mrcfile

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = np.asarray(mrcfile.read(path))
    elif path.suffix == ".zarr":
        arr = zarr.open_group(str(path), mode="r")["0"][...]
    else:
        arr = tifffile.imread(path)
    return arr.reshape(-1, 9, SIZE, SIZE).astype(np.float32)


def _single_file_reconstruction(raw: np.ndarray, preset: BatchOptions) -> np.ndarray:
    """What one would get reconstructing the file alone with the public API."""
    from scope.batch.job import _reconstruction_settings
    from scope.sim.pipeline import reconstruct_stack

    sim, _ = reconstruct_stack(
        raw, SETUP, n_angles=3, n_phases=3, settings=_reconstruction_settings(preset)
    )
    return np.asarray(sim, dtype=np.float32)


def test_folder_on_a_local_cluster_with_two_workers(folder, tmp_path):
    data, _good = folder
    preset, name = load_preset("simulated-default")
    out = tmp_path / "out"
    report = run_batch(
        [data],
        out,
        preset=preset,
        preset_name=name,
        flags=BatchOptions(backend="numpy"),
        n_workers=2,
    )
    assert report.scheduler == "local Dask cluster on 127.0.0.1"
    assert report.n_workers == 2
    assert report.exit_status == EXIT_PARTIAL_FAILURE
    by_name = {Path(f["input"]).name: f for f in report.files}
    assert sorted(by_name) == sorted(
        ["a.tif", "b.ome.tif", "c.mrc", "d.zarr", "truncated.tif", "wrong_count.tif"]
    )
    assert "truncated" in by_name["truncated.tif"]["error"]
    assert "holds 26 frames, not a multiple of 9" in by_name["wrong_count.tif"]["error"]
    assert {f["pid"] for f in report.files if "pid" in f} - {os.getpid()}  # worker processes

    for stem, file_name in (("a", "a.tif"), ("b", "b.ome.tif"), ("c", "c.mrc"), ("d", "d.zarr")):
        entry = by_name[file_name]
        assert entry["status"] == "done", entry
        assert entry["n_sets"] == N_T
        res = entry["resolution"]  # split-photon FRC on the first set, no ground truth
        assert 0 < res["sim_nm"] < res["widefield_nm"]
        assert entry["modulation_contrast"]["median_mcnr"] > 3  # the pattern is well visible
        image, px, meta = read_image(out / f"{stem}.sim.zarr")
        assert image.shape == (N_T, 2 * SIZE, 2 * SIZE)
        assert image.dtype == np.float32
        assert px == pytest.approx(32.5)
        assert meta["software"].startswith("scope ")
        assert meta["input"] == str((data / file_name).resolve())
        assert meta["sources"]["na"] == "preset:simulated-default"
        expected = _single_file_reconstruction(_read_independently(data / file_name), preset)
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(image, expected, rtol=0, atol=1e-5 * scale)
        params = json.loads((out / f"{stem}.params.json").read_text())
        assert len(params["angles"]) == 3
        assert {"angle_deg", "period_nm", "phases_rad", "modulation"} <= set(params["angles"][0])
        assert params["angles"] == entry["parameters"]["angles"]

    table = (out / "batch-report.txt").read_text()
    assert "4 done, 0 already complete, 2 failed" in table
    assert not list(out.glob(".*partial*"))


def test_tiff_output_and_rerun_skips(folder, tmp_path):
    data, _good = folder
    preset, name = load_preset("simulated-default")
    out = tmp_path / "out"
    kwargs = {
        "preset": preset,
        "preset_name": name,
        "flags": BatchOptions(backend="numpy"),
        "output": OutputOptions(format="tiff"),
        "n_workers": 0,  # in-process
    }
    first = run_batch([data / "a.tif"], out, **kwargs)
    assert first.scheduler == "in-process"
    assert first.files[0]["status"] == "done"
    path = out / "a.sim.ome.tif"
    image, px, meta = read_image(path)
    assert image.shape == (N_T, 2 * SIZE, 2 * SIZE)
    assert px == pytest.approx(32.5)
    assert meta["parameters"]["angles"][0]["period_nm"] == pytest.approx(265, rel=0.02)
    stamp = path.stat().st_mtime_ns
    again = run_batch([data / "a.tif"], out, **kwargs)
    assert again.files[0]["status"] == "skipped"
    assert path.stat().st_mtime_ns == stamp


def _wait_for(predicate, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _scope_command() -> list[str]:
    """The installed ``scope`` console script (or the same entry point through Python)."""
    script = Path(sys.executable).with_name("scope")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from scope.cli import main; sys.exit(main())"]


def _interrupt_after(cmd, done, n_outputs: int, sig: int) -> subprocess.CompletedProcess:
    """Start ``scope batch``, wait for ``n_outputs`` complete outputs, send ``sig`` to its
    process group (Ctrl-C reaches the whole foreground group; SIGKILL as a crash would)."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        reached = _wait_for(lambda: len(done()) >= n_outputs, 120)
    finally:
        os.killpg(proc.pid, sig)
        out, err = proc.communicate(timeout=60)
    assert reached, err
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_interrupted_then_killed_then_restarted_finishes_only_the_missing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    lapse = _time_lapse(7, n_time=4)
    lapse = np.concatenate([lapse] * 16)  # 64 time points: each file takes a while
    n_files = 8
    for i in range(n_files):
        tifffile.imwrite(data / f"cell{i}.tif", np.roll(lapse, i, axis=-1))
    out = tmp_path / "out"
    cmd = [
        *_scope_command(),
        "batch",
        str(data),
        "-o",
        str(out),
        "--preset",
        "simulated-default",
        "--backend",
        "numpy",
        "--workers",
        "2",
    ]
    done = lambda: sorted(p.name for p in out.glob("*.sim.zarr"))  # noqa: E731
    stamps = lambda names: {n: (out / n / "zarr.json").stat().st_mtime_ns for n in names}  # noqa: E731

    # Ctrl-C: exit status 130, the report says which files were interrupted, outputs intact
    first = _interrupt_after(cmd, done, 1, signal.SIGINT)
    assert first.returncode == 130, first.stderr
    assert "interrupted" in first.stderr
    after_ctrl_c = done()
    assert 1 <= len(after_ctrl_c) < n_files, "Ctrl-C came too late to test a restart"
    report = json.loads((out / "batch-report.json").read_text())
    assert report["interrupted"]
    assert report["counts"]["done"] == len(after_ctrl_c)
    assert report["counts"]["interrupted"] == n_files - len(after_ctrl_c)
    assert not list(out.glob(".*partial*"))  # the interrupted writers cleaned up
    kept = stamps(after_ctrl_c)

    # SIGKILL of the batch and its workers: what was complete stays, the rest is redone
    _interrupt_after(cmd, done, len(after_ctrl_c) + 1, signal.SIGKILL)
    after_kill = done()
    assert len(after_kill) < n_files, "kill came too late to test a restart"
    assert stamps(after_ctrl_c) == kept  # the second run skipped them
    kept = stamps(after_kill)

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads((out / "batch-report.json").read_text())
    status = {Path(f["output"]).name: f["status"] for f in report["files"]}
    assert sorted(n for n, s in status.items() if s == "skipped") == after_kill
    assert sorted(n for n, s in status.items() if s == "done") == sorted(
        set(status) - set(after_kill)
    )
    assert stamps(after_kill) == kept  # untouched
    assert len(done()) == n_files
    assert not list(out.glob(".*partial*"))  # the killed run's temporaries were removed
    assert not (out / ".scope-batch.lock").exists()
    for n in done():
        image, _, _ = read_image(out / n)
        assert image.shape == (64, 2 * SIZE, 2 * SIZE)
        assert np.isfinite(image).all()  # NaN fill would mark an unwritten time point


def test_reestimate_every_n_time_points_matches_reconstruct_stack(folder, tmp_path):
    from scope.batch.job import _reconstruction_settings
    from scope.sim.pipeline import reconstruct_stack

    data, _good = folder
    preset, name = load_preset("simulated-default")
    report = run_batch(
        [data / "a.tif"],
        tmp_path / "out",
        preset=preset,
        preset_name=name,
        flags=BatchOptions(backend="numpy", reestimate_every=2),
        n_workers=0,
    )
    assert report.files[0]["status"] == "done", report.files[0]
    params = json.loads((tmp_path / "out" / "a.params.json").read_text())
    assert [e["first_time_point"] for e in params["parameter_epochs"]] == [0, 2]
    image, _, _ = read_image(tmp_path / "out" / "a.sim.zarr")
    expected, _ = reconstruct_stack(
        _read_independently(data / "a.tif"),
        SETUP,
        settings=_reconstruction_settings(preset),
        estimate_every=2,
    )
    np.testing.assert_allclose(image, expected, rtol=0, atol=1e-5 * float(np.abs(expected).max()))


def test_parameters_estimated_per_channel(tmp_path):
    """Two channels with different patterns: each gets its own parameters, reused over time."""
    from scope.batch.job import _reconstruction_settings
    from scope.sim.pipeline import reconstruct_stack

    ch0, ch1 = _time_lapse(11, n_time=2), _time_lapse(31, n_time=2)  # angles 19/79/139, 39/99/159
    raw = np.stack([ch0, ch1], axis=1)  # (T, C, 9, Y, X)
    path = tmp_path / "two_colours.ome.tif"
    tifffile.imwrite(path, raw, ome=True, metadata={"axes": "TCZYX"})
    preset, name = load_preset("simulated-default")
    report = run_batch(
        [path],
        tmp_path / "out",
        preset=preset,
        preset_name=name,
        flags=BatchOptions(backend="numpy"),
    )
    assert report.files[0]["status"] == "done", report.files[0]
    assert report.files[0]["axes"] == "TCPYX"
    epochs = json.loads((tmp_path / "out" / "two_colours.params.json").read_text())[
        "parameter_epochs"
    ]
    assert [(e["channel"], e["first_time_point"]) for e in epochs] == [(0, 0), (1, 0)]
    for e, first_angle in zip(epochs, (19.0, 39.0)):
        assert e["angles"][0]["angle_deg"] == pytest.approx(first_angle, abs=0.5)
    image, _, meta = read_image(tmp_path / "out" / "two_colours.sim.zarr")
    assert image.shape == (2, 2, 2 * SIZE, 2 * SIZE)
    assert meta["axes"] == "TCYX"
    settings = _reconstruction_settings(preset)
    for c, lapse in enumerate((ch0, ch1)):
        expected, _ = reconstruct_stack(lapse.astype(np.float32), SETUP, settings=settings)
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(image[:, c], expected, rtol=0, atol=1e-5 * scale)


def test_outputs_put_time_channel_z_first(tmp_path):
    """A Z-then-T file (as ImageJ stacks Z before C) is written in OME order, T then Z."""
    lapses = [_time_lapse(seed, n_time=2) for seed in (5, 6)]  # two z planes, two time points
    t_first = np.stack(lapses, axis=1)  # (T, Z, 9, Y, X)
    z_first = np.stack(lapses, axis=0)  # (Z, T, 9, Y, X)
    tifffile.imwrite(tmp_path / "tz.ome.tif", t_first, ome=True, metadata={"axes": "TZCYX"})
    tifffile.imwrite(tmp_path / "zt.ome.tif", z_first, ome=True, metadata={"axes": "ZTCYX"})
    preset, name = load_preset("simulated-default")
    report = run_batch(
        [tmp_path / "tz.ome.tif", tmp_path / "zt.ome.tif"],
        tmp_path / "out",
        preset=preset,
        preset_name=name,
        flags=BatchOptions(backend="numpy"),
    )
    by_name = {Path(f["input"]).name: f for f in report.files}
    assert by_name["zt.ome.tif"]["axes"] == "ZTPYX", by_name["zt.ome.tif"]
    assert by_name["zt.ome.tif"]["output_axes"] == by_name["tz.ome.tif"]["output_axes"] == "TZYX"
    a, _, meta_a = read_image(tmp_path / "out" / "tz.sim.zarr")
    b, _, meta_b = read_image(tmp_path / "out" / "zt.sim.zarr")
    assert meta_a["axes"] == meta_b["axes"] == "TZYX"
    assert a.shape == b.shape == (2, 2, 2 * SIZE, 2 * SIZE)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * float(np.abs(a).max()))


def test_existing_scheduler_address(folder, tmp_path):
    """``--scheduler ADDRESS``: the work goes to a cluster someone else started."""
    from distributed import LocalCluster

    data, _good = folder
    preset, name = load_preset("simulated-default")
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        report = run_batch(
            [data / "b.ome.tif"],
            tmp_path / "out",
            preset=preset,
            preset_name=name,
            flags=BatchOptions(backend="numpy"),
            scheduler=cluster.scheduler_address,
        )
        assert report.addresses["scheduler"] == cluster.scheduler_address
        assert report.files[0]["status"] == "done", report.files[0]
        # the batch leaves the cluster it did not start running
        assert cluster.scheduler_info["workers"]
    assert report.scheduler == f"Dask scheduler {cluster.scheduler_address}"
    image, px, _ = read_image(tmp_path / "out" / "b.sim.zarr")
    assert image.shape == (N_T, 2 * SIZE, 2 * SIZE)
    assert px == pytest.approx(32.5)


def test_nan_mid_file_fails_that_file_without_leaving_output(tmp_path):
    raw = _time_lapse(3).astype(np.float32)
    raw[2, 4, 10, 10] = np.nan  # found only when time point 2 is read
    path = tmp_path / "nan.tif"
    tifffile.imwrite(path, raw)
    preset, name = load_preset("simulated-default")
    for fmt in ("zarr", "tiff"):
        report = run_batch(
            [path],
            tmp_path / "out",
            preset=preset,
            preset_name=name,
            flags=BatchOptions(backend="numpy"),
            output=OutputOptions(format=fmt),
        )
        entry = report.files[0]
        assert entry["status"] == "error"
        assert entry["error"] == (
            "nan.tif: SIM set (2,) holds 1 NaN/inf values; expected finite intensities — "
            "fix or drop those frames"
        )
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
            "batch-report.json",
            "batch-report.txt",
        ]
