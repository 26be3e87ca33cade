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
        res = entry["resolution"]  # decorrelation analysis of the first set, no ground truth
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


def test_a_blank_frame_where_an_epoch_starts_keeps_the_previous_pattern(tmp_path, caplog):
    """Re-estimating every time point, the second set has lost frame 7: its epoch keeps the
    first epoch's pattern (estimated on the blank frame it read a wrong one), every set is
    written, and the report and params.json name the set and frame."""
    raw = _time_lapse(1)
    raw[1, 7] = 0
    src = tmp_path / "series.tif"
    tifffile.imwrite(src, raw)
    preset, name = load_preset("simulated-default")
    with caplog.at_level("WARNING"):
        report = run_batch(
            [src],
            tmp_path / "out",
            preset=preset,
            preset_name=name,
            flags=BatchOptions(backend="numpy", reestimate_every=1),
            n_workers=0,
        )
    entry = report.files[0]
    assert entry["status"] == "done", entry
    blank = {"sets_checked": 3, "sets_with_blank_frames": 1, "blank": [{"set": 1, "frames": [7]}]}
    assert entry["blank_frames"] == blank
    assert "set 1 (frame 7)" in (tmp_path / "out" / "batch-report.txt").read_text()
    doc = json.loads((tmp_path / "out" / "series.params.json").read_text())
    assert doc["blank_frames"] == blank
    first, kept, third = doc["parameter_epochs"]
    assert kept["kept_from_previous_epoch"] == "blank frame"
    assert kept["angles"] == first["angles"]
    assert "kept_from_previous_epoch" not in third
    for a, b in zip(first["angles"], third["angles"]):  # the third set estimated afresh
        assert a["phases_rad"] != b["phases_rad"]
        assert abs(a["angle_deg"] - b["angle_deg"]) < 0.1
    image, _, _ = read_image(tmp_path / "out" / "series.sim.zarr")
    assert image.shape[0] == 3 and np.isfinite(image).all()
    assert any("previous epoch's pattern is kept" in r.getMessage() for r in caplog.records)


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


# --- the user sweep on real B-SIM / rDL-SIM data (resume, priors, calibrated pattern, no signal) --

HELA_PRESET = "bsim-hela-660nm"


def _run_in_process(inputs, out, *, preset=HELA_PRESET, **flags):
    options, name = load_preset(preset)
    return run_batch(
        inputs,
        out,
        preset=options,
        preset_name=name,
        flags=BatchOptions(backend="numpy", **flags),
        n_workers=0,
    )


def test_resume_redoes_outputs_without_valid_params_and_keeps_those_of_other_settings(
    data_dir, tmp_path
):
    """An output whose .params.json is missing or damaged is incomplete: redone, its
    .params.json written again. An output made with another emission wavelength is neither
    redone nor taken silently: ``outdated``, the difference named, exit status non-zero, the
    files untouched; --overwrite makes it with the new wavelength."""
    from scope.batch.report import EXIT_ALL_FAILED, EXIT_OK

    raw = tmp_path / "a.tif"
    raw.write_bytes((data_dir / "bsim-hela-mitochondria" / "raw_images.tif").read_bytes())
    out = tmp_path / "bo"
    params = out / "a.params.json"
    first = _run_in_process([raw], out)
    assert first.files[0]["status"] == "done", first.files[0]
    angles = json.loads(params.read_text())["angles"]
    # the HeLa patterns (patterns.tif fit: 120.72 / 58.18 / 2.29 deg, 357.7 / 357.0 / 332.9 nm)
    periods = sorted(a["period_nm"] for a in angles)
    assert periods == pytest.approx([332.9, 357.0, 357.7], rel=0.01)

    for damage in (params.unlink, lambda: params.write_text("garbage {")):
        damage()
        again = _run_in_process([raw], out)
        assert again.files[0]["status"] == "done", again.files[0]
        assert json.loads(params.read_text())["angles"] == angles  # written again, readable

    same = _run_in_process([raw], out)
    assert same.files[0]["status"] == "skipped"
    assert same.exit_status == EXIT_OK

    zarr_json = out / "a.sim.zarr" / "zarr.json"
    stamps = (zarr_json.stat().st_mtime_ns, params.stat().st_mtime_ns)
    other = _run_in_process([raw], out, wavelength_nm=569.0)
    entry = other.files[0]
    assert entry["status"] == "outdated"
    assert entry["differences"] == ["wavelength_nm 660 -> 569"]
    assert "--overwrite redoes it" in entry["note"]
    assert other.exit_status == EXIT_ALL_FAILED
    assert (zarr_json.stat().st_mtime_ns, params.stat().st_mtime_ns) == stamps
    table = (out / "batch-report.txt").read_text()
    assert "a.tif: a.sim.zarr was made with other settings (wavelength_nm 660 -> 569)" in table
    assert json.loads((out / "batch-report.json").read_text())["counts"]["outdated"] == 1

    options, name = load_preset(HELA_PRESET)
    redone = run_batch(
        [raw],
        out,
        preset=options,
        preset_name=name,
        flags=BatchOptions(backend="numpy", wavelength_nm=569.0),
        output=OutputOptions(overwrite=True),
        n_workers=0,
    )
    assert redone.files[0]["status"] == "done"
    assert json.loads(params.read_text())["optics"]["wavelength_nm"] == 569.0
    assert _run_in_process([raw], out, wavelength_nm=569.0).files[0]["status"] == "skipped"


def test_angles_from_priors_are_reported_and_kept_on_resume(data_dir, tmp_path, caplog):
    """The rDL TIRF microtubules with the HeLa preset: no carrier is found, all three angles
    are the preset's priors. The report says so (``prior-only``, ``3/3``) with a warning; a
    resumed run's ``skipped`` row keeps the count and the share of clipped values."""
    mt = data_dir / "rdl-tirf-microtubules" / "MT.mrc"
    out = tmp_path / "bmt"
    caplog.set_level("WARNING")
    report = _run_in_process([mt], out)
    entry = report.files[0]
    assert entry["status"] == "prior-only"
    assert entry["angles_from_prior"] == {"count": 3, "of": 3}
    assert report.exit_status == 0  # written: the result is there, flagged
    preset, _ = load_preset(HELA_PRESET)
    got = [a["angle_deg"] % 180 for a in entry["parameters"]["angles"]]
    assert got == pytest.approx([a % 180 for a in preset.angles_deg], abs=0.01)
    assert "MT.mrc: 3 of 3 pattern angles were not found in the data" in caplog.text
    doc = json.loads((out / "batch-report.json").read_text())
    assert doc["counts"]["prior-only"] == 1 and doc["counts"]["done"] == 0
    assert doc["files"][0]["angles_from_prior"] == {"count": 3, "of": 3}
    table = (out / "batch-report.txt").read_text()
    row = next(line for line in table.splitlines() if line.startswith("MT.mrc"))
    assert row.split()[1] == "prior-only" and " 3/3 " in row
    assert "1 with the prior pattern only" in table
    fraction = entry["saturation"]["fraction"]
    assert 0 < fraction < 1e-5  # a few uint16 values at full scale

    resumed = _run_in_process([mt], out)
    skipped = resumed.files[0]
    assert skipped["status"] == "skipped"
    assert skipped["angles_from_prior"] == {"count": 3, "of": 3}
    assert skipped["saturation"]["fraction"] == fraction
    assert skipped["n_sets"] == 1
    row = next(
        line for line in (out / "batch-report.txt").read_text().splitlines() if "MT.mrc" in line
    )
    assert f"{100 * fraction:.2g} %" in row and " 3/3 " in row


def test_a_calibrated_pattern_in_the_preset_is_the_prior(data_dir, tmp_path, caplog):
    """``scope calibrate pattern`` writes [calibration.pattern]; ``scope batch --preset`` then
    takes it as the prior instead of [pattern]'s stale nominal values: on the cristae data every
    angle is found (with the stale HeLa priors only one is) and matches the data set's fitted
    patterns (120.49 / 57.96 / 1.47 deg, 318.9 / 320.9 / 305.8 nm)."""
    from scope.batch.config import find_preset
    from scope.cli import main

    cristae = data_dir / "bsim-mitochondria-cristae" / "raw_images.tif"
    preset = tmp_path / "my.toml"
    preset.write_text(find_preset(HELA_PRESET).read_text())
    optics = ["--na", "1.3", "--wavelength", "569", "--pixel-size", "65"]
    calibrate = ["calibrate", "pattern", str(cristae), "--sample", "structured"]
    assert main([*calibrate, "--preset", str(preset), *optics, "--offset-adu", "100"]) == 0
    caplog.set_level("INFO")
    options, name = load_preset(preset)
    report = run_batch(
        [cristae],
        tmp_path / "bcal",
        preset=options,
        preset_name=name,
        flags=BatchOptions(backend="numpy", wavelength_nm=569.0),
        n_workers=0,
    )
    entry = report.files[0]
    assert entry["status"] == "done", entry
    params = json.loads((tmp_path / "bcal" / "raw_images.params.json").read_text())
    assert [a["source"] for a in params["angles"]] == ["estimated"] * 3
    assert entry["angles_from_prior"] == {"count": 0, "of": 3}
    assert params["sources"]["angles_deg"] == "preset:my [calibration.pattern]"
    assert "pattern priors from [calibration.pattern]" in caplog.text
    truth = {120.49: 318.9, 57.96: 320.9, 1.47: 305.8}
    for a in params["angles"]:
        nearest = min(truth, key=lambda t: abs((a["angle_deg"] - t + 90) % 180 - 90))
        assert abs((a["angle_deg"] - nearest + 90) % 180 - 90) < 0.5
        assert a["period_nm"] == pytest.approx(truth[nearest], rel=0.01)

    stale_report = _run_in_process([cristae], tmp_path / "bstale", wavelength_nm=569.0)
    assert stale_report.files[0]["angles_from_prior"] == {"count": 2, "of": 3}


def test_a_file_without_signal_is_a_clean_error(tmp_path):
    """An all-zero file: the same sentence as ``scope reconstruct``, no traceback, no output."""
    zeros = tmp_path / "zeros.tif"
    tifffile.imwrite(zeros, np.zeros((9, 120, 120), np.float32))
    optics = {"na": 1.3, "wavelength_nm": 660.0, "pixel_size_nm": 65.0}
    for offset, expected in (
        (
            100.0,
            "no signal above the offset: the brightest value is 0 ADU but the offset (--offset) "
            "is 100; check the offset (--offset) and that the camera recorded light",
        ),
        (None, "the first SIM set is constant (every value 0): there is no image to reconstruct"),
    ):
        out = tmp_path / f"bz{offset}"
        report = run_batch(
            [zeros], out, flags=BatchOptions(backend="numpy", offset_adu=offset, **optics)
        )
        entry = report.files[0]
        assert (entry["status"], entry["error"]) == ("error", expected)
        assert f"zeros.tif: {expected}" in (out / "batch-report.txt").read_text()
        assert sorted(p.name for p in out.iterdir()) == ["batch-report.json", "batch-report.txt"]
