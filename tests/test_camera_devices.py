"""One device test suite, run against every camera implementation available here.

- ``genicam``: :class:`GenICamCamera` through harvesters against ``viky.cti``, the GenTL producer
  shipped inside the ``genicam`` wheel (three simulated cameras), grabbed in a child process;
- ``simulated``: :class:`SimulatedCamera`;
- ``v4l2``: :class:`V4L2Camera` on the first ``/dev/video*`` (skipped when there is none).
"""

from __future__ import annotations

import glob
import itertools
import multiprocessing as mp
import os
import threading
import time

import numpy as np
import pytest

from scope.devices.camera import ROI, Camera
from scope.errors import ConfigurationError, DeviceError, DeviceTimeoutError

KINDS = ["genicam", "simulated", "v4l2"]


def _shm_entries() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def _make(kind: str) -> Camera:
    if kind == "genicam":
        pytest.importorskip("harvesters")
        from scope.devices.genicam import GenICamCamera, bundled_producer

        cti = bundled_producer()
        if cti is None:
            pytest.skip("the genicam wheel with viky.cti is not installed")
        return GenICamCamera(cti, device=0, ring_slots=128)  # 0.6 s at 200 fps: rides out load
    if kind == "simulated":
        from scope.devices.simulated_camera import SimulatedCamera

        return SimulatedCamera(shape=(64, 64))
    devices = sorted(glob.glob("/dev/video*"))
    if not devices:
        pytest.skip("no V4L2 camera (/dev/video*) on this machine")
    pytest.importorskip("av")
    from scope.devices.v4l2 import V4L2Camera

    return V4L2Camera(devices[0])


def _discover(kind: str) -> list:
    if kind == "genicam":
        from scope.devices.genicam import bundled_producer, list_cameras

        return list_cameras(bundled_producer())
    if kind == "simulated":
        from scope.devices.simulated_camera import list_cameras

        return list_cameras()
    from scope.devices.v4l2 import list_cameras

    return list_cameras()


@pytest.fixture(params=KINDS)
def camera(request):
    threads_before = set(threading.enumerate())
    cam = _make(request.param)
    cam.connect()
    cam.kind_param = request.param
    yield cam
    cam.close()
    # clean close: no grab process, no shared memory, no thread left behind (other jobs on the
    # machine create their own /dev/shm entries: only ours are checked)
    assert mp.active_children() == []
    ours = set(getattr(cam, "shared_memory_names", []))
    if request.param == "genicam":
        assert ours, "the GenICam camera should have used a shared-memory ring"
    assert not {n.lstrip("/") for n in ours} & _shm_entries()
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    left = {t.name for t in set(threading.enumerate()) - threads_before if t.is_alive()}
    assert not {n for n in left if "camera" in n or "grab" in n or "reader" in n}, left


def _run_fast(cam: Camera) -> None:
    """Free-run as fast as the device allows, small frames where possible."""
    if "pixel_format" in cam.features and "Mono8" in cam.pixel_formats:
        cam.pixel_format = "Mono8"
    if "exposure" in cam.features:
        cam.exposure_ms = 0.05
    if "frame_rate" in cam.features:
        cam.frame_rate_hz = 1e6  # clamped to the device maximum
    cam.set_trigger("off")


@pytest.mark.parametrize("kind", KINDS)
def test_discovery_lists_the_camera(kind):
    found = _discover(kind)
    if kind == "v4l2" and not found:
        pytest.skip("no V4L2 camera on this machine")
    assert found, f"no {kind} camera discovered"
    if kind == "genicam":  # viky.cti offers exactly three simulated cameras
        assert [c.id for c in found] == ["VikyTL_DEV_red", "VikyTL_DEV_green", "VikyTL_DEV_blue"]
        assert {c.model for c in found} == {"Viky"}
    assert all(c.kind == kind for c in found)


def test_settings_round_trip(camera):
    feats = camera.features
    assert {"roi", "pixel_format"} <= feats  # every implementation here has these
    h, w = camera.sensor_shape
    lo_w = 100 if camera.kind_param == "genicam" else 16  # viky's minimum Width/Height is 100
    roi = ROI(0, 0, max(lo_w, w // 2 // 8 * 8), max(lo_w, h // 2 // 8 * 8))
    camera.roi = roi
    assert camera.roi == roi
    for fmt in camera.pixel_formats:
        if fmt.startswith("Mono"):
            camera.pixel_format = fmt
            assert camera.pixel_format == fmt
    with pytest.raises(ConfigurationError):
        camera.pixel_format = "Mono99"
    if "exposure" in feats:
        camera.exposure_ms = 3.0
        assert camera.exposure_ms == pytest.approx(3.0, rel=0.05)
    if "gain" in feats:
        lo, hi = camera._do_get_gain_range()
        target = (lo + hi) / 2 if lo is not None and hi is not None else 2.0
        camera.gain = target
        assert camera.gain == pytest.approx(target, rel=0.05, abs=1)
    if "frame_rate" in feats:
        camera.frame_rate_hz = 50
        assert camera.frame_rate_hz == pytest.approx(50, rel=0.05)
        camera.frame_rate_hz = 1e9  # clamped, logged
        assert camera.frame_rate_hz == pytest.approx(camera._do_get_frame_rate_range_hz()[1])
    else:
        assert camera.frame_rate_hz is None  # a missing node is skipped, not an error
    with pytest.raises(ConfigurationError):
        camera.roi = ROI(0, 0, w + 8, h)
    # frames follow the settings
    _run_fast(camera)
    camera.start()
    frame = camera.get_frame(timeout_s=5)
    camera.stop()
    assert frame.data.shape[:2] == (roi.height, roi.width)
    assert frame.data.dtype == np.uint8


def test_thousand_frames_in_order(camera):
    _run_fast(camera)
    camera.start()
    ids = [camera.get_frame(timeout_s=5).frame_id for _ in range(1000)]
    camera.stop()
    gaps = [(a, b) for a, b in itertools.pairwise(ids) if b != a + 1]
    overruns = getattr(camera, "overruns", 0)
    assert not gaps, f"frame ids not consecutive at {gaps[:5]} (ring overruns {overruns})"


def test_timeout_raises_our_error(camera):
    if "trigger" in camera.features:
        camera.set_trigger("hardware")  # nobody pulses the line
    else:  # viky has no trigger: make frames rare instead
        camera.frame_rate_hz = camera._do_get_frame_rate_range_hz()[0]
        camera.start()
        camera.get_frame(timeout_s=5)
        camera.stop()
    camera.start()
    if "trigger" not in camera.features:
        camera.get_frame(timeout_s=5)  # the next one is ~1 s away
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeoutError) as info:
        camera.get_frame(timeout_s=0.2)
    assert 0.15 < time.monotonic() - t0 < 0.9
    assert isinstance(info.value, TimeoutError)  # also a builtin TimeoutError
    camera.stop()


def test_errors_before_connect_and_start():
    from scope.devices.simulated_camera import SimulatedCamera

    cam = SimulatedCamera(shape=(32, 32))
    with pytest.raises(DeviceError, match="not connected"):
        cam.exposure_ms = 1
    with cam:
        with pytest.raises(DeviceError, match="start"):
            cam.get_frame(0.1)
        cam.set_trigger("software")
        cam.start()
        with pytest.raises(DeviceError, match="while it acquires"):
            cam.roi = (0, 0, 16, 16)
        cam.exposure_ms = -5  # clamped to the minimum, logged
        assert cam.exposure_ms == pytest.approx(0.01)
    assert not cam.is_connected


@pytest.mark.parametrize("marker", [True, False])
def test_simulated_marker_and_pattern_cycle(marker):
    from scope.devices.simulated_camera import SimulatedCamera, decode_marker

    with SimulatedCamera(shape=(32, 32), marker=marker) as cam:
        cam.exposure_ms = 1
        cam.set_trigger("software")
        cam.start()
        frames = []
        for _ in range(10):
            cam.software_trigger()
            frames.append(cam.get_frame(timeout_s=2).data)
    if marker:  # without a controller the camera cycles through the sequence itself
        assert [decode_marker(f) for f in frames] == [(k % 9, None) for k in range(10)]
    else:
        with pytest.raises(ValueError, match="no marker"):
            decode_marker(frames[0])


def test_real_devices_refuse_what_cannot_work():
    """``scope acquire`` and the napari live view open real hardware through one function."""
    from scope.devices.real_devices import open_real_devices

    for port in (None, "", "sim://"):
        with pytest.raises(ConfigurationError, match="serial port of the pattern controller"):
            open_real_devices("genicam", port)
    with pytest.raises(ConfigurationError, match="unknown camera 'usb3'"):
        open_real_devices("usb3", "/dev/ttyACM0")


def test_genicam_camera_selected_by_the_id_it_lists():
    """`--camera genicam:VikyTL_DEV_green` (the id `scope devices` prints) used to fail with
    NotAvailableException: the match read every device's user-defined name, which viky.cti
    does not support."""
    pytest.importorskip("harvesters")
    from scope.devices.genicam import GenICamCamera, bundled_producer

    cti = bundled_producer()
    if cti is None:
        pytest.skip("the genicam wheel with viky.cti is not installed")
    with GenICamCamera(cti, device="VikyTL_DEV_green") as cam:
        assert cam.device_id == "VikyTL_DEV_green"
    with pytest.raises(
        DeviceError, match=r"no camera 'VikyTL_DEV_pink'; cameras: \['VikyTL_DEV_red'"
    ):
        GenICamCamera(cti, device="VikyTL_DEV_pink").connect()
    assert mp.active_children() == []
