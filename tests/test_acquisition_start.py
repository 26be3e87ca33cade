"""How a run starts: every setting checked before the output is touched, a colour camera
switched to a monochrome format, a latched controller fault refused, and a follower run whose
exposure events never come stopped.

The controller is the firmware emulator on a real pseudo-terminal, started here and spoken to
by ``SerialPatternController`` (and, to latch a fault, by plain pyserial); cameras are the
simulated camera and a GenICam camera of ``viky.cti`` (the genicam wheel) through harvesters.
"""

from __future__ import annotations

import contextlib
import logging
import time

import numpy as np
import pytest

from scope.acquisition.engine import AcquisitionConfig, AcquisitionEngine
from scope.acquisition.writer import AcquisitionWriter, read_acquisition
from scope.devices.emulator import ControllerEmulator
from scope.devices.serial_controller import SerialPatternController
from scope.devices.simulated_camera import SimulatedCamera
from scope.errors import AcquisitionError, ConfigurationError


@pytest.fixture
def emulator():
    emu = ControllerEmulator().start()
    yield emu
    emu.close()


def latch_watchdog_fault(port: str) -> None:
    """What a killed host leaves behind: the light on, then silence past the watchdog."""
    import serial

    with serial.Serial(port, 115200, timeout=0.5) as link:
        for line in (b"wdog 50\n", b"light 1\n"):
            link.write(line)
            time.sleep(0.1)
        time.sleep(0.3)


def _earlier_run(path):
    with AcquisitionWriter(path, (32, 32), np.uint16) as w:
        for i in range(5):
            w.append(np.full((32, 32), i + 1, np.uint16))


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ({"exposure_ms": 0.01}, ConfigurationError, "exposure 0.01 ms is outside"),
        ({"exposure_ms": 20000}, ConfigurationError, "exposure 20000 ms is outside"),
        ({"dark_ms": 0.05}, ConfigurationError, "dark time 0.05 ms is outside"),
        ({"n_angles": 22}, ConfigurationError, "22 angles x 3 phases need patterns 0..65"),
        ("fault", AcquisitionError, "latched WATCHDOG fault"),
    ],
)
@pytest.mark.parametrize("name", ["run.zarr", "run.ome.tif"])
def test_a_run_that_cannot_start_touches_no_file(tmp_path, emulator, case, error, message, name):
    """Refused settings and a latched fault: the earlier run survives ``overwrite``, a new name
    gets no (empty) file, and the fault stays latched."""
    if case == "fault":
        latch_watchdog_fault(emulator.port)
        assert emulator.snapshot()["fault"] == "WATCHDOG"
        settings = {}
    else:
        settings = case
    old = tmp_path / name
    _earlier_run(old)
    before = sorted(p.name for p in tmp_path.iterdir())
    cfg = AcquisitionConfig(n_sets=1, **{"exposure_ms": 2.0, "dark_ms": 1.0, **settings})
    with SimulatedCamera((32, 32)) as cam, SerialPatternController(emulator.port) as ctrl:
        for out, overwrite in ((old, True), (tmp_path / f"new-{name}", False)):
            engine = AcquisitionEngine(cam, ctrl, out, cfg, overwrite=overwrite)
            with pytest.raises(error, match=message) as info:
                engine.run()
            assert engine.summary.state == "aborted"
    if case == "fault":
        assert "--clear-fault" in str(info.value)
        assert emulator.snapshot()["fault"] == "WATCHDOG"  # kept until asked
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no new or hidden file
    frames, _, meta = read_acquisition(old)
    assert frames.shape == (5, 32, 32) and int(np.asarray(frames[4])[0, 0]) == 5
    assert meta["state"] == "complete"


def test_unknown_output_names_are_refused():
    with pytest.raises(ConfigurationError, match=r"run.zarr .*run.ome.tif"):
        AcquisitionEngine(None, None, "run.h5")


def test_follower_mode_without_exposure_events_stops(tmp_path):
    """The camera free-runs but its exposure output is not wired to the controller (the
    emulator's GP14 is left unfed): the run stops after ``frame_timeout_s`` with the wire to
    check, every frame on disk, the light off (SAFE, not the watchdog)."""
    from scope.devices.simulated_microscope import SimulatedMicroscope

    out = tmp_path / "follow.zarr"
    with SimulatedMicroscope((64, 64)) as m:
        m.camera.exposure_output = None  # the wire from the exposure output to GP14 is off
        cfg = AcquisitionConfig(
            n_sets=None, exposure_ms=2.0, dark_ms=4.0, trigger="follower", frame_timeout_s=1.0
        )
        engine = AcquisitionEngine(m.camera, m.controller, out, cfg)
        t0 = time.monotonic()
        engine.start()
        try:  # (it used to run until the disk was full)
            with pytest.raises(AcquisitionError, match="no exposure events from the contr") as e:
                engine.wait(timeout_s=10)
        finally:
            engine.stop()
            with contextlib.suppress(Exception):
                engine.wait(timeout_s=10)
        elapsed = time.monotonic() - t0
        snap = m.emulator.snapshot()
        delivered = m.camera.frames_delivered
    assert "GP14" in str(e.value)
    assert 1.0 < elapsed < 5.0  # bounded, not until the disk is full
    assert snap["pulses"] == 0 and snap["light"] == 0 and snap["pin_light"] == 0
    assert snap["state"] == "IDLE" and snap["fault"] == "NONE"
    frames, table, meta = read_acquisition(out)
    # every frame the camera delivered is on disk (the free-running camera may finish one
    # more exposure while it is being stopped, after the last was written)
    assert delivered - 1 <= frames.shape[0] <= delivered
    assert frames.shape[0] >= 100  # ~166 frames/s for 1 s
    assert meta["state"] == "aborted" and "GP14" in meta["reason"]
    assert set(table["valid"].tolist()) == {0}


def test_a_colour_genicam_camera_is_switched_to_mono(tmp_path, emulator, caplog):
    """viky.cti's cameras default to RGBa8 (and offer Mono8): the engine switches to Mono8 and
    says so, instead of aborting on "frame shape (400, 400, 4)". Follower mode with the
    camera's exposure output unwired: the run then stops for want of exposure events."""
    pytest.importorskip("harvesters")
    from scope.devices.genicam import GenICamCamera, bundled_producer

    cti = bundled_producer()
    if cti is None:
        pytest.skip("the genicam wheel with viky.cti is not installed")
    out = tmp_path / "viky.zarr"
    cfg = AcquisitionConfig(
        n_sets=2, exposure_ms=5.0, dark_ms=15.0, trigger="follower", frame_timeout_s=1.0
    )
    camera = GenICamCamera(cti, device="VikyTL_DEV_green")  # selected by the id it lists
    with camera, SerialPatternController(emulator.port) as ctrl:
        assert camera.pixel_format == "RGBa8"
        engine = AcquisitionEngine(camera, ctrl, out, cfg)
        with (
            caplog.at_level(logging.WARNING, logger="scope.acquisition.engine"),
            pytest.raises(AcquisitionError, match="no exposure events"),
        ):
            engine.run()
        assert camera.pixel_format == "Mono8"
    assert "delivered RGBa8 (colour); switched to Mono8" in caplog.text
    frames, _, meta = read_acquisition(out)
    assert frames.shape[1:] == (400, 400) and frames.dtype == np.uint8
    assert frames.shape[0] >= 10  # 50 frames/s for 1 s
    assert meta["camera"]["pixel_format"] == "Mono8"
    assert emulator.snapshot()["light"] == 0
