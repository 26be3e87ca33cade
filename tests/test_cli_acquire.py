"""``scope devices`` and ``scope acquire`` through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from scope.acquisition.writer import read_acquisition

_MAIN = "import sys; from scope.cli import main; sys.exit(main(sys.argv[1:]))"


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
        [sys.executable, "-c", _MAIN, "acquire", "--sets", "0", "-o", str(out),
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
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "light off (SAFE sent)" in err
    frames, table, meta = read_acquisition(out)
    assert meta["state"] == "aborted"
    assert "interrupted" in meta["reason"]
    assert frames.shape[0] >= 30
    assert set(table["valid"].tolist()) <= {0, 1}
    assert (table["valid"] == 1).sum() >= 9
