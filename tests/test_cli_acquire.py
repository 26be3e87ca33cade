"""``scope devices`` and ``scope acquire`` through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from acquisition_checks import assert_every_frame_decided
from scope.acquisition.writer import read_acquisition

_MAIN = "import sys; from scope.cli import main; sys.exit(main(sys.argv[1:]))"
# a run that is sent signals: SIGUSR1 makes it print every thread's stack (see _finish)
_MAIN_DUMPABLE = (
    "import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
    + _MAIN
)


def _finish(proc: subprocess.Popen, timeout_s: float) -> tuple[str, str]:
    """(stdout, stderr) of a run started with ``_MAIN_DUMPABLE``; one that does not end in
    ``timeout_s`` fails the test with every thread's stack (where it hangs), then is killed."""
    import signal
    import time

    try:
        return proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(
            f"the run did not end within {timeout_s} s; its stderr and threads:\n{err[-8000:]}"
        )


def _scope(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _MAIN, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_devices_lists_the_gentl_producers_cameras():
    pytest.importorskip("harvesters")
    from scope.devices.genicam import bundled_producer

    cti = bundled_producer()
    if cti is None:
        pytest.skip("the genicam wheel with viky.cti is not installed")
    env = {"GENICAM_GENTL64_PATH": str(cti.parent)}
    proc = _scope("devices", "--no-probe", env=env)
    assert proc.returncode == 0, proc.stderr
    for name in ("VikyTL_DEV_red", "VikyTL_DEV_green", "VikyTL_DEV_blue"):
        assert name in proc.stdout
    assert str(cti) in proc.stdout
    report = json.loads(_scope("devices", "--no-probe", "--json", env=env).stdout)
    (producer,) = report["genicam"]
    assert [c["id"] for c in producer["cameras"]] == [
        "VikyTL_DEV_red",
        "VikyTL_DEV_green",
        "VikyTL_DEV_blue",
    ]
    # without the variable, nothing is found (no hidden default producer)
    bare = json.loads(
        _scope("devices", "--no-probe", "--json", env={"GENICAM_GENTL64_PATH": ""}).stdout
    )
    assert bare["genicam"] == []


@pytest.mark.parametrize("value", ["0", "-1", "nan", "abc"])
def test_devices_refuses_a_probe_timeout_that_is_not_positive(value):
    """It named the internal ``timeout_s`` (and took "nan" for a timeout)."""
    proc = _scope("devices", "--probe-timeout", value)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        f"scope devices: error: argument --probe-timeout: must be a positive number of seconds "
        f"(e.g. 1), got {value}; use --no-probe to list the ports without opening them"
    )


def test_acquire_on_the_simulated_microscope(tmp_path):
    out = tmp_path / "run.zarr"
    proc = _scope(
        "acquire", "--sets", "4", "-o", str(out), "--shape", "64", "64",
        "--exposure-ms", "2", "--dark-ms", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "4 valid / 0 invalid sets" in proc.stdout
    assert "set 4/4" in proc.stderr  # progress
    frames, table, meta = read_acquisition(out)
    assert frames.shape == (36, 64, 64)
    assert (table["valid"] == 1).all()
    np.testing.assert_array_equal(table["pattern"], np.tile(np.arange(9), 4))
    assert meta["optical_setup"]["na"] == 1.2
    # -q: only errors on stderr (no progress), the result line still on stdout
    quiet = _scope(
        "-q", "acquire", "--sets", "2", "-o", str(tmp_path / "q.zarr"), "--shape", "64", "64",
        "--exposure-ms", "2", "--dark-ms", "1",
    )  # fmt: skip
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert "2 valid / 0 invalid sets" in quiet.stdout
    # the same name again: refused in one line before anything starts, the first run intact
    again = _scope("acquire", "--sets", "1", "-o", str(out), "--shape", "64", "64")
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"scope acquire: error: {out} exists (an earlier run?): choose another name, or "
        "--overwrite to replace it"
    ]
    assert read_acquisition(out)[0].shape == (36, 64, 64)


def test_acquire_through_a_region_of_interest(tmp_path):
    """`--roi X Y WIDTH HEIGHT`: the frames are that part of the sensor, and the run says where
    it sat (for camera maps of the whole sensor); an ROI off the sensor is refused."""
    out = tmp_path / "roi.zarr"
    timing = ["--exposure-ms", "2", "--dark-ms", "1", "--shape", "64", "96"]
    roi = ["--roi", "32", "16", "48", "32"]
    proc = _scope("acquire", "--sets", "1", "-o", str(out), *timing, *roi)
    assert proc.returncode == 0, proc.stderr
    frames, _, meta = read_acquisition(out)
    assert frames.shape == (9, 32, 48)
    assert meta["camera"]["roi"] == [32, 16, 48, 32] and meta["camera"]["sensor_shape"] == [64, 96]
    bad = tmp_path / "bad.zarr"
    proc = _scope("acquire", "--sets", "1", "-o", str(bad), *timing, "--roi", "64", "0", "48", "32")
    assert proc.returncode == 2
    assert "does not fit the 96x64 sensor" in proc.stderr


def test_acquire_refuses_a_real_camera_without_its_controller(tmp_path):
    proc = _scope("acquire", "--camera", "genicam", "--sets", "1", "-o", str(tmp_path / "x.zarr"))
    assert proc.returncode == 2
    assert "--controller" in proc.stderr
    proc = _scope(
        "acquire", "--controller", "/dev/ttyACM9", "--sets", "1", "-o", str(tmp_path / "y.zarr")
    )
    assert proc.returncode == 2
    assert "simulated camera" in proc.stderr


def test_acquire_and_reconstruct(tmp_path):
    out = tmp_path / "rec.zarr"
    proc = _scope(
        "acquire", "--sets", "2", "-o", str(out), "--shape", "64", "64", "--exposure-ms", "10",
        "--sample", "beads", "--reconstruct",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    from scope.io.writers import read_image

    sim, pixel_nm, meta = read_image(tmp_path / "rec.sim.ome.tif")
    assert sim.shape == (2, 128, 128) and meta["axes"] == "TYX"
    assert pixel_nm == pytest.approx(32.5)
    assert meta["sets"] == [0, 1]  # the run's set behind each plane
    params = json.loads((tmp_path / "rec.params.json").read_text())
    assert len(params["angles"]) == 3  # as `scope reconstruct` writes them
    assert np.isfinite(sim).all()
    # the SIM image resembles the virtual sample more than the (upsampled) widefield does
    from scope.sim.samples import make_sample

    truth = make_sample((128, 128), "beads", seed=0)
    frames, _, _ = read_acquisition(out)
    widefield = np.kron(np.asarray(frames[:9], dtype=float).mean(0), np.ones((2, 2)))

    keep = np.ones(truth.shape, bool)
    keep[:16, :32] = False  # the simulated camera's ground-truth marker (4 x 8 camera pixels)

    def corr(a, b):
        return np.corrcoef(a[keep], b[keep])[0, 1]

    assert corr(sim[0], truth) > corr(widefield, truth) + 0.1


def test_ctrl_c_leaves_a_readable_file_and_the_light_off(tmp_path):
    import signal
    import time

    out = tmp_path / "interrupted.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-c", _MAIN_DUMPABLE, "acquire", "--sets", "0", "-o", str(out),
         "--shape", "64", "64", "--exposure-ms", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until some frames are on disk
        time.sleep(0.2)
        try:
            if read_acquisition(out)[0].shape[0] >= 30:
                break
        except Exception:  # not created yet
            continue
    proc.send_signal(signal.SIGINT)
    _, err = _finish(proc, 60)
    assert proc.returncode == 130, err
    assert "light off (SAFE sent)" in err
    frames, table, meta = read_acquisition(out)
    assert meta["state"] == "aborted"
    assert "interrupted" in meta["reason"]
    assert frames.shape[0] >= 30
    assert_every_frame_decided(table, meta["summary"]["sets_without_dropped_frames"])
    assert (table["valid"] == 1).sum() >= 9


_TIMING = ["--shape", "64", "64", "--exposure-ms", "2", "--dark-ms", "1"]


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("name", ["good.zarr", "good.ome.tif"])
def test_a_refused_start_keeps_the_earlier_run_and_leaves_no_file(tmp_path, name):
    """`--overwrite` with settings the controller refuses used to delete the earlier run first
    ("0 frames are in good.zarr"), and a new name kept a 0-frame file that blocked the retry."""
    out = tmp_path / name
    assert _scope("-q", "acquire", "--sets", "2", "-o", str(out), *_TIMING).returncode == 0
    before = _files(tmp_path)
    bad_settings = (
        (["--exposure-ms", "0.01"], "exposure 0.01 ms is outside the controller's range"),
        (["--dark-ms", "0.05"], "dark time 0.05 ms is outside"),
        (["--angles", *map(str, range(0, 176, 8))], "22 angles x 3 phases need patterns"),
    )
    for flags, message in bad_settings:
        proc = _scope("-q", "acquire", "--sets", "2", "-o", str(out), "--overwrite",
                      *_TIMING, *flags)  # fmt: skip
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [f"scope acquire: error: {message}"] or (
            message in proc.stderr and proc.stderr.count("\n") == 1
        ), proc.stderr
        assert _files(tmp_path) == before
        assert read_acquisition(out)[0].shape == (18, 64, 64)
    new = tmp_path / f"new-{name}"
    proc = _scope("-q", "acquire", "--sets", "1", "-o", str(new), *_TIMING, "--dark-ms", "0.05")
    assert proc.returncode == 2 and not new.exists() and _files(tmp_path) == before
    retry = _scope("-q", "acquire", "--sets", "1", "-o", str(new), *_TIMING)  # no --overwrite
    assert retry.returncode == 0, retry.stderr
    assert read_acquisition(new)[0].shape == (9, 64, 64)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-o", "run.h5"], "name it run.zarr (OME-Zarr, the robust choice) or run.ome.tif"),
        (["-o", "a.zarr", "--angles", "0", "0", "0"], "0° and 0° are 0° apart (mod 180°)"),
        (["-o", "b.zarr", "--angles", "10", "70", "189.5"], "10° and 189.5° are 0.5° apart"),
        # the flag as typed, not the sample's doubled and rounded shape "(2, 2)"
        (["-o", "c.zarr", "--shape", "1", "1"], "--shape 1 1: the simulated camera needs at"),
        (["-o", "d.zarr", "--shape", "8", "256"], "--shape 8 256: the simulated camera needs"),
    ],
)
def test_bad_names_and_angles_are_refused_up_front(tmp_path, flags, message):
    proc = subprocess.run(
        [sys.executable, "-c", _MAIN, "acquire", "--sets", "1", *flags],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert _files(tmp_path) == []


def _start_until_frames(out, *extra, n_frames=30):
    import time

    proc = subprocess.Popen(
        [sys.executable, "-c", _MAIN_DUMPABLE, "acquire", "--sets", "0", "-o", str(out), *_TIMING,
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            if read_acquisition(out)[0].shape[0] >= n_frames:
                break
        except Exception:  # not there yet
            continue
    return proc


@pytest.mark.parametrize(
    ("name", "reason"),
    [("SIGTERM", "stopped by SIGTERM"), ("SIGHUP", "stopped by SIGHUP (the terminal closed)")],
)
def test_sigterm_ends_the_run_like_ctrl_c(tmp_path, name, reason):
    """SIGTERM (a timeout, kill, systemd stop) and SIGHUP used to skip every cleanup: no SAFE,
    the state left `acquiring`, an OME-TIFF without its OME-XML."""
    import signal

    tifffile = pytest.importorskip("tifffile")
    sig = getattr(signal, name)
    out = tmp_path / "term.ome.tif"
    proc = _start_until_frames(out)
    proc.send_signal(sig)
    stdout, err = _finish(proc, 60)
    assert proc.returncode == 128 + sig, err
    assert "light off (SAFE sent)" in err
    assert err.strip().endswith(f"scope acquire: {reason}")
    frames, table, meta = read_acquisition(out)
    assert meta["state"] == "aborted" and meta["reason"] == reason
    assert frames.shape[0] >= 30
    assert_every_frame_decided(table, meta["summary"]["sets_without_dropped_frames"])
    assert f"{out}: {frames.shape[0]} frames" in stdout
    with tifffile.TiffFile(out) as tif:
        assert tif.is_ome and tif.series[0].shape == frames.shape


def test_ctrl_c_during_cleanup_still_closes_the_file_and_sends_safe(tmp_path):
    """A burst of Ctrl-C (a second one while the light is switched off and the file closed)
    used to leave the file `acquiring`, with asyncio tracebacks."""
    import signal
    import time

    out = tmp_path / "burst.zarr"
    proc = _start_until_frames(out)
    for _ in range(8):  # 8 interrupts 20 ms apart: some land in the cleanup
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGINT)
        time.sleep(0.02)
    _, err = _finish(proc, 60)
    assert proc.returncode == 130, err
    assert "light off (SAFE sent)" in err
    for noise in ("Traceback", "Task was destroyed", "cannot schedule new futures"):
        assert noise not in err
    frames, table, meta = read_acquisition(out)
    assert meta["state"] == "aborted" and "interrupted" in meta["reason"]
    assert frames.shape[0] >= 30
    assert_every_frame_decided(table, meta["summary"]["sets_without_dropped_frames"])


def test_ctrl_c_ends_a_sets_0_run_and_reconstructs_it(tmp_path):
    """`--sets 0 --reconstruct` ends with Ctrl-C, as documented: the valid sets are then
    reconstructed (they used to be skipped silently)."""
    import re
    import signal

    from scope.io.writers import read_image

    out = tmp_path / "day.1.zarr"
    proc = _start_until_frames(out, "--reconstruct", "--sample", "beads", n_frames=40)
    proc.send_signal(signal.SIGINT)
    stdout, err = _finish(proc, 120)
    assert proc.returncode == 130, err
    valid = int(re.search(r"(\d+) valid / \d+ invalid sets", stdout).group(1))
    assert valid >= 4
    assert f"reconstructing the {valid} valid sets acquired before Ctrl-C" in err
    # (and a set kept without a frame: one whose last exposure Ctrl-C cut short, or a frame a
    # loaded machine's camera dropped or exposed off its pulse)
    kept = re.search(r"before Ctrl-C \(and (\d+) without their faulty frames\)", err)
    sim, _, _ = read_image(tmp_path / "day.1.sim.ome.tif")  # the name's dots kept
    assert sim.shape == (valid + (int(kept.group(1)) if kept else 0), 128, 128)
    assert np.isfinite(sim).all()


def test_sigterm_skips_the_reconstruction_and_says_how(tmp_path):
    import signal

    out = tmp_path / "t.zarr"
    proc = _start_until_frames(out, "--reconstruct")
    proc.send_signal(signal.SIGTERM)
    stdout, err = _finish(proc, 60)
    assert proc.returncode == 143, err
    assert f"reconstruction skipped (SIGTERM); to run it: scope reconstruct {out} -o " in stdout
    assert not (tmp_path / "t.sim.ome.tif").exists()


def test_acquire_with_a_build_preset(tmp_path):
    """`--preset`: the build's optics, its device's pattern at the sample, its exposure and
    the dark time its pattern switch needs; flags override it."""
    from pathlib import Path

    preset = Path(__file__).parents[1] / "hardware" / "presets" / "budget.toml"
    out = tmp_path / "budget.zarr"
    proc = _scope("acquire", "--preset", str(preset), "--sets", "1", "-o", str(out),
                  "--shape", "64", "64")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    _, _, meta = read_acquisition(out)
    assert meta["optical_setup"]["na"] == 1.25
    assert meta["optical_setup"]["wavelength_nm"] == 520.0
    assert meta["optical_setup"]["pixel_size_nm"] == 60.0
    assert meta["acquisition"]["exposure_ms"] == 16.7
    assert meta["acquisition"]["dark_ms"] == pytest.approx(33.43)  # switch 33.4 + latency 0.03
    angles = meta["sim_parameters"]["angles"]
    # what `scope patterns --preset budget.toml` makes: 10/70/130° gratings of ~322.6 nm
    assert [round(a["angle_deg"]) for a in angles] == [10, 70, 130]
    assert all(abs(a["period_nm"] - 322.6) < 1.0 for a in angles)
    assert "dark time 33.43 ms" in proc.stderr
    flags = _scope("-q", "acquire", "--preset", str(preset), "--sets", "1", "-o",
                   str(tmp_path / "f.zarr"), "--shape", "64", "64", "--exposure-ms", "3",
                   "--dark-ms", "2", "--na", "1.1", "--angles", "0", "60", "120")  # fmt: skip
    assert flags.returncode == 0, flags.stderr
    _, _, meta = read_acquisition(tmp_path / "f.zarr")
    assert meta["optical_setup"]["na"] == 1.1 and meta["optical_setup"]["pixel_size_nm"] == 60.0
    assert (meta["acquisition"]["exposure_ms"], meta["acquisition"]["dark_ms"]) == (3.0, 2.0)
    assert [a["angle_deg"] for a in meta["sim_parameters"]["angles"]] == [0, 60, 120]


def test_a_preset_s_dark_time_follows_the_exposure_flag(tmp_path):
    """The dark time a preset's camera needs is worked out for the exposure of the run: the
    better build's camera (overlapped readout 6.2 ms, 160 fps: a 6.25 ms frame period) needs
    6.25 - 2 = 4.25 ms dark at --exposure-ms 2, not the 1.25 ms of the preset's 5 ms."""
    from pathlib import Path

    preset = Path(__file__).parents[1] / "hardware" / "presets" / "better.toml"
    out = tmp_path / "better.zarr"
    proc = _scope("acquire", "--preset", str(preset), "--sets", "1", "-o", str(out),
                  "--shape", "64", "64", "--exposure-ms", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    _, _, meta = read_acquisition(out)
    assert meta["acquisition"]["exposure_ms"] == 2.0
    assert meta["acquisition"]["dark_ms"] == pytest.approx(4.25)
    assert "camera frame period 6.25 ms - exposure 2 ms" in proc.stderr


@pytest.fixture
def viky():
    pytest.importorskip("harvesters")
    from scope.devices.genicam import bundled_producer

    cti = bundled_producer()
    if cti is None:
        pytest.skip("the genicam wheel with viky.cti is not installed")
    return str(cti)


def test_a_latched_fault_is_named_and_cleared_from_the_command_line(tmp_path, viky):
    """A watchdog fault latched by a killed run: `scope acquire` refuses, names the command
    that clears it and keeps it latched; `--clear-fault` clears it. Then a follower run whose
    camera (selected by the id `scope devices` prints) is not wired to GP14 stops after 2 s."""
    from scope.devices.emulator import ControllerEmulator
    from test_acquisition_start import latch_watchdog_fault

    emu = ControllerEmulator().start()
    try:
        latch_watchdog_fault(emu.port)
        out = tmp_path / "viky.zarr"
        run = ["acquire", "--camera", "genicam:VikyTL_DEV_green", "--cti", viky,
               "--controller", emu.port, "--trigger", "follower", "--exposure-ms", "5",
               "--dark-ms", "15", "--sets", "2", "-o", str(out)]  # fmt: skip
        refused = _scope("-q", *run)
        assert refused.returncode == 2
        assert "latched WATCHDOG fault" in refused.stderr
        assert f"scope acquire --controller {emu.port} --clear-fault" in refused.stderr
        assert emu.snapshot()["fault"] == "WATCHDOG" and not out.exists()
        cleared = _scope("-q", "acquire", "--controller", emu.port, "--clear-fault")
        assert cleared.returncode == 0, cleared.stderr
        assert "fault WATCHDOG cleared; state IDLE" in cleared.stdout
        assert emu.snapshot()["state"] == "IDLE"
        unwired = _scope(*run)
        assert unwired.returncode == 2
        assert "switched to Mono8" in unwired.stderr  # viky defaults to RGBa8
        assert "camera frames but no exposure events from the controller" in unwired.stderr
        assert "check the wire from the camera's exposure output to GP14" in unwired.stderr
        frames, _, meta = read_acquisition(out)
        assert frames.shape[1:] == (400, 400) and frames.shape[0] >= 20  # 50 frames/s, 2 s
        assert meta["state"] == "aborted" and emu.snapshot()["light"] == 0
    finally:
        emu.close()


def test_pixel_format_flag_and_a_missing_producer(tmp_path, viky):
    from scope.devices.emulator import ControllerEmulator
    from scope.devices.genicam import bundled_producer

    with ControllerEmulator() as emu:
        proc = _scope("-q", "acquire", "--camera", "genicam:0", "--cti", viky, "--controller",
                      emu.port, "--pixel-format", "Mono16", "--sets", "1", "-o",
                      str(tmp_path / "x.zarr"))  # fmt: skip
    assert proc.returncode == 2
    assert "does not offer pixel format Mono16; it offers ['Mono8', 'RGBa8']" in proc.stderr
    proc = _scope("-q", "acquire", "--camera", "genicam", "--controller", "/dev/ttyACM9",
                  "--sets", "1", "-o", str(tmp_path / "y.zarr"),
                  env={"GENICAM_GENTL64_PATH": ""})  # fmt: skip
    assert proc.returncode == 2
    assert "--cti FILE" in proc.stderr and f"--cti {bundled_producer()}" in proc.stderr
    assert "bundled_producer()" not in proc.stderr
    assert _files(tmp_path) == []
