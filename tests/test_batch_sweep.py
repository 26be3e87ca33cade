"""User-sweep regressions of ``scope batch``: Ctrl-C while the workers start, ``--listen`` and
``--workers`` checked up front, raw files left in sub-folders, paths in messages, and output
names that ``--recursive`` does not change."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scope.batch import BatchOptions, run_batch
from scope.batch.discovery import find_inputs, output_stems
from scope.cli import main
from scope.errors import ConfigurationError

OPTICS = ["--na", "1.2", "--wavelength", "525", "--pixel-size", "65", "--backend", "numpy"]
SIGINT_BIT = 1 << (signal.SIGINT - 1)  # SIGINT in the masks of /proc/PID/status

#: a Dask worker preload that holds each worker's start until the test says "go": the batch
#: is then provably inside the start of its local cluster (made observable, not slept for)
HOLD_PRELOAD = """
import os, pathlib, time

def dask_setup(worker):
    hold = pathlib.Path(os.environ["SCOPE_TEST_HOLD"])
    status = pathlib.Path("/proc/self/status").read_text().splitlines()
    masks = [line for line in status if line.startswith(("SigBlk", "SigIgn"))]
    (hold / f"worker-{os.getpid()}").write_text("\\n".join(masks))
    end = time.monotonic() + 120
    while not (hold / "go").exists() and time.monotonic() < end:
        time.sleep(0.02)
"""


def _touch_tiff(path: Path, n: int = 9, size: int = 16) -> None:
    tifffile.imwrite(path, np.zeros((n, size, size), np.uint16))


def _raw_set(path: Path, seed: int) -> None:
    """One simulated 64x64 SIM set that reconstructs (NA 1.2, 525 nm, 65 nm pixels)."""
    from sim_cases import make_case

    raw = make_case(seed, size=64).raw
    tifffile.imwrite(path, np.clip(np.round(raw), 0, 65535).astype(np.uint16))


def _scope_command() -> list[str]:
    script = Path(sys.executable).with_name("scope")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from scope.cli import main; sys.exit(main())"]


def _wait_for(predicate, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers: it has exited all the same
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def _takes_no_ctrl_c(masks: str) -> bool:
    """Whether /proc/PID/status's SigBlk and SigIgn lines say SIGINT is blocked or ignored."""
    values = dict(line.split(":") for line in masks.splitlines())
    return bool((int(values["SigBlk"], 16) | int(values["SigIgn"], 16)) & SIGINT_BIT)


# -- 1. Ctrl-C while the local cluster starts --------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, sends SIGINT")
def test_ctrl_c_while_the_workers_start_stops_the_batch(tmp_path):
    """Ctrl-C (SIGINT to the process group) while the local cluster starts used to be ignored:
    the driver set SIG_IGN around LocalCluster() for its workers to inherit, so the batch ran to
    the end with exit status 0. Now it stops with 130, writes an ``interrupted`` report and no
    output, and closes its workers; the workers themselves never take Ctrl-C."""
    pytest.importorskip("distributed")
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        _touch_tiff(data / f"cell{i}.tif")
    hold = tmp_path / "hold"
    hold.mkdir()
    preload = tmp_path / "hold_preload.py"
    preload.write_text(HOLD_PRELOAD)
    out = tmp_path / "out"
    cmd = [*_scope_command(), "batch", str(data), "-o", str(out), "--workers", "2", *OPTICS]
    env = {
        **os.environ,
        "SCOPE_TEST_HOLD": str(hold),
        "DASK_DISTRIBUTED__WORKER__PRELOAD": json.dumps([str(preload)]),
    }
    workers = lambda: sorted(hold.glob("worker-*"))  # noqa: E731
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as a shell's foreground job
    )
    try:
        started = _wait_for(lambda: bool(workers()) or proc.poll() is not None, 120)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the batch and its workers get it
        (hold / "go").touch()
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert started and workers(), stderr
    assert proc.returncode == 130, stderr
    assert stderr.rstrip().endswith("scope batch: interrupted"), stderr
    assert "Traceback" not in stderr, stderr
    assert "starting a local Dask cluster of 2 worker processes" in stderr
    # nothing half-written: the report says every file was interrupted, no output, no lock
    assert sorted(p.name for p in out.iterdir()) == ["batch-report.json", "batch-report.txt"]
    report = json.loads((out / "batch-report.json").read_text())
    assert report["interrupted"] and report["exit_status"] == 130
    assert report["counts"]["interrupted"] == 2 and report["counts"]["done"] == 0
    # the workers never took Ctrl-C (blocked from birth), and were closed with the batch
    for marker in workers():
        assert _takes_no_ctrl_c(marker.read_text()), marker.read_text()
        pid = int(marker.name.split("-")[1])
        assert _wait_for(lambda pid=pid: not _pid_alive(pid), 30), f"worker {pid} still runs"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, sends SIGINT")
def test_workers_ignore_ctrl_c_and_the_driver_still_takes_it():
    """The local cluster's worker processes block SIGINT (Ctrl-C in the terminal reaches the
    whole process group: only the driver acts on it); the driver's main thread neither blocks
    nor ignores it once the cluster is up."""
    pytest.importorskip("distributed")
    from distributed import Client

    from scope.batch.engine import _start_cluster

    cluster, _, n = _start_cluster(2, 2, "127.0.0.1", "numpy")
    try:
        assert n == 2
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert not signal.pthread_sigmask(signal.SIG_BLOCK, set()) & {signal.SIGINT}
        with Client(cluster) as client:
            masks = client.run(
                lambda: "\n".join(
                    line
                    for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith(("SigBlk", "SigIgn"))
                )
            )
            assert len(masks) == 2
            assert all(_takes_no_ctrl_c(m) for m in masks.values()), masks
            pids = client.run(os.getpid)
            for pid in pids.values():
                os.kill(pid, signal.SIGINT)
            time.sleep(0.5)
            assert client.run(os.getpid) == pids  # the same workers, alive
    finally:
        cluster.close()


# -- 2. --listen, 4. --workers: one line, exit status 2, nothing written ------------------------


@pytest.mark.parametrize("address", ["nonsense-host.invalid", "192.0.2.1"])
def test_a_listen_address_that_is_not_this_machines_is_one_line(tmp_path, capsys, address):
    """`--listen nonsense-host` (or an address of another machine) printed Dask's 58-line
    traceback ("Cluster failed to start") with exit status 1, after starting the workers."""
    _touch_tiff(tmp_path / "cell.tif")
    out = tmp_path / "out"
    argv = ["batch", str(tmp_path / "cell.tif"), "-o", str(out), "--workers", "2", *OPTICS]
    assert main([*argv, "--listen", address]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith(f"scope batch: error: --listen {address}: ")
    assert "expected an IP address or host name of this machine" in err[0]
    assert "0.0.0.0" in err[0] and "127.0.0.1" in err[0]
    assert not out.exists()


def test_listen_addresses_of_this_machine_pass():
    from scope.batch.engine import check_listen

    for address in ("127.0.0.1", "0.0.0.0", "localhost", "tcp://127.0.0.1", "127.0.0.1:0"):
        check_listen(address)
    with pytest.raises(ConfigurationError, match=r"--listen 127\.0\.0\.1:http-x"):
        check_listen("127.0.0.1:http-x")


def test_negative_workers_are_refused(tmp_path, capsys):
    """`--workers -1` ran with one worker."""
    _touch_tiff(tmp_path / "cell.tif")
    out = tmp_path / "out"
    argv = ["batch", str(tmp_path / "cell.tif"), "-o", str(out), *OPTICS, "--workers", "-1"]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [
        "scope batch: error: --workers -1: expected a number of worker processes (1 or more), "
        "or 0 to reconstruct in this process without a Dask cluster; leave it out for one per "
        "core"
    ]
    assert not out.exists()
    with pytest.raises(ConfigurationError, match="--workers -2: expected"):
        run_batch([tmp_path / "cell.tif"], out, n_workers=-2)


# -- 3. raw files in sub-folders without --recursive --------------------------------------------


def test_raw_files_only_in_sub_folders_say_add_recursive(tmp_path, capsys):
    """`no raw inputs found in onlysub` did not mention --recursive."""
    folder = tmp_path / "onlysub"
    (folder / "a" / "b").mkdir(parents=True)
    _touch_tiff(folder / "a" / "cell00.tif")
    _touch_tiff(folder / "a" / "b" / "cell01.tif")
    (folder / "a" / "notes.txt").write_text("not data")
    with pytest.raises(ConfigurationError) as err:
        find_inputs([folder])
    assert str(err.value) == (
        f"no raw inputs found in {folder}, but 2 raw files in sub-folders of {folder} were not "
        "taken: add --recursive"
    )
    assert len(find_inputs([folder], recursive=True).paths) == 2
    out = tmp_path / "out"
    assert main(["batch", f"{folder}/", "-o", str(out), "--workers", "0", *OPTICS]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"scope batch: error: no raw inputs found in {folder}, but 2 raw files in sub-folders "
        f"of {folder} were not taken: add --recursive"
    )


def test_raw_files_left_in_sub_folders_are_said_and_noted(tmp_path, caplog):
    """In a folder with raw files beside sub-folders of more, those were skipped without a
    word. The output folder inside it, scope's own results and inputs named as well are not
    counted."""
    data = tmp_path / "data"
    (data / "sub" / "deeper").mkdir(parents=True)
    _touch_tiff(data / "cell00.tif", n=8)  # fails at once: no reconstruction needed
    _touch_tiff(data / "sub" / "cell00.tif")
    _touch_tiff(data / "sub" / "deeper" / "nested.tif")
    _touch_tiff(data / "sub" / "named.tif")
    out = data / "sim"  # -o inside the input folder: its files are never inputs
    out.mkdir()
    _touch_tiff(out / "old.tif")
    caplog.set_level("WARNING")
    found = find_inputs([data, data / "sub" / "named.tif"], exclude=[out])
    assert [p.name for p in found.paths] == ["cell00.tif", "named.tif"]
    assert found.notes == [f"2 raw files in sub-folders of {data} were not taken: add --recursive"]
    assert found.notes[0] in caplog.text
    assert find_inputs([data / "sub"]).notes == [
        f"1 raw file in sub-folders of {data / 'sub'} was not taken: add --recursive"
    ]
    assert find_inputs([data], recursive=True, exclude=[out]).notes == []

    report = run_batch(
        [data], out, flags=BatchOptions(na=1.2, wavelength_nm=525, pixel_size_nm=65), n_workers=0
    )
    note = f"3 raw files in sub-folders of {data} were not taken: add --recursive"
    assert report.notes == [note]
    assert json.loads((out / "batch-report.json").read_text())["notes"] == [note]
    assert f"note: {note}" in (out / "batch-report.txt").read_text()


# -- 5. paths in messages -------------------------------------------------------------------------


def test_an_output_folder_with_a_trailing_slash_is_shown_normalised(tmp_path, capsys):
    """`-o sim/` printed `report: sim//batch-report.json`."""
    _touch_tiff(tmp_path / "cell.tif", n=8)
    out = tmp_path / "sim"
    argv = ["batch", str(tmp_path / "cell.tif"), "-o", f"{out}/", "--workers", "0", *OPTICS]
    assert main([*argv, "--no-progress"]) == 2  # the one file fails: 8 frames
    printed = capsys.readouterr().out
    assert f"report: {out}/batch-report.json" in printed
    assert "//" not in printed


# -- 6. output names: stable with --recursive -----------------------------------------------------


def test_output_names_get_the_folder_only_where_they_clash(tmp_path):
    """A clash across folders gave ``b1_cell00_tif`` (the suffix without need) and renamed the
    top-level file too; the suffix is for ``a.tif`` beside ``a.ome.tif`` only."""
    top = tmp_path / "b1"
    paths = [
        top / "cell00.tif",
        top / "sub" / "cell00.tif",
        top / "sub" / "deeper" / "nested.tif",
        top / "a.tif",
        top / "a.ome.tif",
        top / "wide.tif",
    ]
    assert output_stems(paths) == {
        top / "cell00.tif": "cell00",
        top / "sub" / "cell00.tif": "sub_cell00",
        top / "sub" / "deeper" / "nested.tif": "nested",
        top / "a.tif": "a_tif",
        top / "a.ome.tif": "a_ome_tif",
        top / "wide.tif": "wide",
    }
    # without --recursive the same files keep the same names
    assert output_stems([top / "cell00.tif", top / "wide.tif"]) == {
        top / "cell00.tif": "cell00",
        top / "wide.tif": "wide",
    }
    # side by side folders: each its folder's name
    pair = [tmp_path / "x" / "cell.tif", tmp_path / "y" / "cell.tif"]
    assert list(output_stems(pair).values()) == ["x_cell", "y_cell"]
    # what the folder's name does not tell apart is refused, both inputs named
    with pytest.raises(ConfigurationError, match=r"both be written as sub_cell00"):
        output_stems([top / "sub_cell00.tif", top / "sub" / "cell00.tif", top / "cell00.tif"])


def test_recursive_into_a_folder_made_without_it_skips_what_is_there(tmp_path):
    """Running with --recursive into a folder made without it left ``cell00.sim.zarr``
    orphaned and made ``b1_cell00_tif.sim.zarr`` anew."""
    data = tmp_path / "b1"
    (data / "sub").mkdir(parents=True)
    _raw_set(data / "cell00.tif", 1)
    _raw_set(data / "sub" / "cell00.tif", 2)
    out = tmp_path / "out"
    argv = ["-q", "batch", str(data), "-o", str(out), "--workers", "0", "--offset", "100"]
    assert main([*argv, *OPTICS]) == 0
    stamp = (out / "cell00.sim.zarr" / "zarr.json").stat().st_mtime_ns
    assert main([*argv, *OPTICS, "--recursive"]) == 0
    report = json.loads((out / "batch-report.json").read_text())
    status = {Path(f["output"]).name: f["status"] for f in report["files"]}
    assert status == {"cell00.sim.zarr": "skipped", "sub_cell00.sim.zarr": "done"}
    assert (out / "cell00.sim.zarr" / "zarr.json").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in out.glob("*.sim.zarr")) == [
        "cell00.sim.zarr",
        "sub_cell00.sim.zarr",
    ]
