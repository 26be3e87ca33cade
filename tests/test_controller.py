"""SerialPatternController against the firmware emulator on a real pseudo-terminal."""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time

import pytest

from scope.devices.controller import (
    ControllerCommandError,
    PatternController,
    RunCounts,
    TriggerMode,
)
from scope.devices.emulator import ControllerEmulator
from scope.devices.protocol import ErrorCode
from scope.devices.serial_controller import SerialPatternController, probe_controller
from scope.errors import ConfigurationError, DeviceError, DeviceTimeoutError, ProtocolError

SEQ9 = list(range(9))


@pytest.fixture
def ctrl():
    with SerialPatternController("sim://", timeout_s=1.0) as c:
        c.set_watchdog(1000)
        yield c


def assert_no_switch_during_exposure(hw):
    bad = hw.exposures_with_pattern_change()
    assert bad == [], f"pattern changed during an exposure: {bad[:3]}"
    # every exposure saw the pattern that was on the output when it started and when it ended
    for rec in hw.trigger_log:
        shown = [s for s in hw.switch_log if s.t_s <= rec.t_start_s]
        assert shown
        assert shown[-1].pattern_index == rec.pattern_index


def test_construction_does_no_io_and_sim_is_explicit():
    c = SerialPatternController("sim://")
    assert c.emulator is None
    assert not c.connected
    with pytest.raises(DeviceError, match="connect"):
        c.status()
    with pytest.raises(ConfigurationError, match="sim://"):
        SerialPatternController("simulator://x")


def test_handshake_reports_identity_and_capabilities(ctrl):
    assert ctrl.info.name == "scope-pattern-controller"
    assert ctrl.info.protocol_version == (1, 0)
    assert ctrl.info.port == ctrl.emulator.port
    assert ctrl.info.port.startswith("/dev/")
    caps = ctrl.capabilities
    assert caps.n_patterns == 64
    assert caps.light_channels == 2
    assert caps.max_chunk == 32
    assert isinstance(ctrl, PatternController)


def test_leader_run_counts_match_trigger_log_and_no_switch_during_exposure(ctrl):
    hw = ctrl.emulator.hardware
    seen: queue.Queue = queue.Queue()
    hw.on_trigger.append(lambda n, idx, t, exp: seen.put((n, idx, exp)))
    frames: list = []
    ctrl.add_event_callback(lambda ev: frames.append(ev) if ev.kind == "FRAME" else None)
    ctrl.set_mode(TriggerMode.LEADER)
    assert ctrl.set_timing(exposure_ms=1.5, dark_ms=0.5) == (1500, 500)
    ctrl.set_channels(0b11)
    seq = [3, 1, 4, 1, 5, 9, 2, 6, 5]
    ctrl.upload_sequence(seq)
    assert ctrl.read_sequence() == seq
    ctrl.arm(n_frames=25)
    ctrl.start()
    done = ctrl.wait_for_event({"DONE", "FAULT"}, timeout_s=3)
    assert done.kind == "DONE"
    counts = ctrl.stop()
    assert counts == done.counts
    assert counts.pulses == 25 == len(hw.trigger_log)
    assert counts.advances == 25
    assert [r.pattern_index for r in hw.trigger_log] == [seq[k % 9] for k in range(25)]
    assert all(r.light_mask == 0b11 for r in hw.trigger_log)
    assert all(r.t_end_s - r.t_start_s >= 1.5e-3 for r in hw.trigger_log)
    assert_no_switch_during_exposure(hw)
    # the light was only ever on inside exposures
    for t, mask in hw.light_log:
        if mask:
            assert any(r.t_start_s <= t <= r.t_end_s for r in hw.trigger_log)
    hooks = [seen.get_nowait() for _ in range(seen.qsize())]
    assert [(n, idx) for n, idx, _ in hooks] == [(k + 1, seq[k % 9]) for k in range(25)]
    assert all(exp == pytest.approx(1.5e-3) for _, _, exp in hooks)
    time.sleep(0.05)
    assert [(e.pulse, e.pattern_index) for e in frames] == [(k + 1, seq[k % 9]) for k in range(25)]
    ts = [e.t_us for e in frames]
    assert all(b - a >= 2000 for a, b in itertools.pairwise(ts))
    assert ctrl.status().light_mask == 0
    assert hw.light == 0


def test_continuous_run_stopped_by_host_reports_exactly_the_pulses_triggered(ctrl):
    hw = ctrl.emulator.hardware
    ctrl.set_timing(exposure_ms=1, dark_ms=0.5)
    ctrl.upload_sequence(SEQ9)
    ctrl.arm(0)
    ctrl.start()
    time.sleep(0.08)
    counts = ctrl.stop()
    assert counts.pulses >= 10
    assert counts.pulses == len(hw.trigger_log)
    assert counts.advances - counts.pulses in (0, 1)
    assert all(r.t_end_s is not None for r in hw.trigger_log)
    assert_no_switch_during_exposure(hw)
    assert hw.light == 0
    assert not hw.trigger
    # a second STOP returns the same counts
    assert ctrl.stop() == counts


def test_follower_mode_advances_on_camera_exposure(ctrl):
    emu = ctrl.emulator
    hw = emu.hardware
    ctrl.set_mode("follower")
    ctrl.upload_sequence([7, 8, 9])
    ctrl.arm(6)
    ctrl.start()
    emu.run_camera(8, exposure_s=0.002, period_s=0.006).join()
    done = ctrl.wait_for_event("DONE", timeout_s=2)
    # (overruns are not asserted: a starved emulator thread may see an edge before it has
    # switched, which the board would count as one as well)
    assert (done.counts.pulses, done.counts.advances) == (6, 6)
    # the camera shot 8 frames; the controller lit and counted only the 6 it was armed for
    lit = [r for r in hw.trigger_log if r.light_mask]
    assert [r.pattern_index for r in lit] == [7, 8, 9, 7, 8, 9]
    assert_no_switch_during_exposure(hw)
    assert hw.light == 0


def test_safe_and_context_manager_leave_the_light_off():
    with SerialPatternController("sim://") as c:
        emu = c.emulator
        c.set_light(0b10)
        assert emu.snapshot()["pin_light"] == 0b10
        counts = c.safe()
        assert isinstance(counts, RunCounts)
        assert emu.hardware.light == 0
        c.set_timing(exposure_ms=50, dark_ms=1)
        c.upload_sequence(SEQ9)
        c.arm(0)
        c.start()
        assert emu.wait_for(lambda s: s["pin_light"] != 0, 1.0)
        hw = emu.hardware
    # leaving the block sent SAFE before closing (the emulator was closed after it)
    assert hw.light == 0
    assert not hw.trigger
    assert hw.light_log[-1][1] == 0


def test_context_manager_turns_light_off_when_the_body_raises():
    seen = {}

    def body():
        with SerialPatternController("sim://") as c:
            seen["hw"] = c.emulator.hardware
            c.set_light(1)
            assert seen["hw"].light == 1
            raise RuntimeError("acquisition failed")

    with pytest.raises(RuntimeError, match="acquisition failed"):
        body()
    assert seen["hw"].light == 0


def test_validation_happens_before_any_io(ctrl):
    n_lines = ctrl.emulator.snapshot()["lines_in"]
    with pytest.raises(ConfigurationError, match="outside"):
        ctrl.upload_sequence([0, 64])
    with pytest.raises(ConfigurationError, match="exposure"):
        ctrl.set_timing(exposure_ms=0.01, dark_ms=1)
    with pytest.raises(ConfigurationError, match="dark"):
        ctrl.set_timing(exposure_ms=1, dark_ms=0.05)
    with pytest.raises(ConfigurationError, match="mode"):
        ctrl.set_mode("sideways")
    with pytest.raises(ConfigurationError, match="channel"):
        ctrl.set_channels(4)
    with pytest.raises(ConfigurationError, match="watchdog"):
        ctrl.set_watchdog(10)
    with pytest.raises(ConfigurationError):
        ctrl.arm(-1)
    assert ctrl.emulator.snapshot()["lines_in"] == n_lines


def test_controller_refusals_are_typed_errors(ctrl):
    with pytest.raises(ControllerCommandError) as err:
        ctrl.arm(5)  # no sequence uploaded
    assert err.value.code == ErrorCode.SEQUENCE
    ctrl.upload_sequence(SEQ9)
    ctrl.set_timing(exposure_ms=20, dark_ms=1)
    ctrl.arm(0)
    with pytest.raises(ControllerCommandError) as err:
        ctrl.set_timing(exposure_ms=1, dark_ms=1)  # not while armed
    assert err.value.code == ErrorCode.BAD_STATE
    ctrl.stop()


def test_clock_is_monotonic_and_in_microseconds(ctrl):
    t0 = ctrl.clock_us()
    time.sleep(0.05)
    t1 = ctrl.clock_us()
    assert 40_000 <= t1 - t0 <= 500_000


def test_port_that_does_not_answer_is_an_error_not_a_fallback():
    master, slave = os.openpty()  # a real tty with nothing behind it
    try:
        port = os.ttyname(slave)
        c = SerialPatternController(port, timeout_s=0.2)
        with pytest.raises(DeviceTimeoutError, match="did not answer HELLO"):
            c.connect()
        assert c.emulator is None
        assert not c.connected
        assert probe_controller(port, timeout_s=0.2) is None
    finally:
        os.close(master)
        os.close(slave)
    with pytest.raises(DeviceError, match="cannot open"):
        SerialPatternController("/dev/does-not-exist-ttyACM9").connect()


def test_probe_controller_returns_identity():
    with ControllerEmulator() as emu:
        info = probe_controller(emu.port, timeout_s=1.0)
    assert info is not None
    assert info["name"] == "scope-pattern-controller"
    assert info["protocol_version"] == "1.0"
    assert info["capabilities"]["n_patterns"] == 64
    assert probe_controller("sim://", timeout_s=1.0)["board"] == "emulator"


@pytest.mark.parametrize("version", [(2, 0), (0, 9)])
def test_host_refuses_another_protocol_major(version):
    with ControllerEmulator(protocol_version=version) as emu:
        c = SerialPatternController(emu.port, timeout_s=1.0)
        with pytest.raises(ProtocolError, match="protocol"):
            c.connect()
        assert not c.connected


def test_one_port_one_controller():
    with ControllerEmulator() as emu, SerialPatternController(emu.port) as first:
        first.ping()
        with pytest.raises(DeviceError, match="already open"):
            SerialPatternController(emu.port).connect()


def test_concurrent_requests_are_serialised_and_matched_by_id(ctrl):
    errors: list = []
    results: list = []

    def worker():
        try:
            for _ in range(15):
                results.append(ctrl.clock_us())
                ctrl.status()
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(results) == 60
    assert ctrl.stale_lines == 0


def test_stale_input_is_flushed_on_connect():
    with ControllerEmulator() as emu:
        # an earlier session left a half-typed line and unread replies behind
        fd = os.open(emu.port, os.O_RDWR | os.O_NOCTTY)
        os.write(fd, b"1 PING\n2 STATUS\n3 TIMI")
        time.sleep(0.05)
        os.close(fd)
        with SerialPatternController(emu.port, timeout_s=1.0) as c:
            assert c.status().state == "IDLE"
            assert c.clock_us() > 0


def test_unplugged_port_raises_device_error_and_watchdog_darkens():
    with ControllerEmulator() as emu:
        c = SerialPatternController(emu.port, timeout_s=1.0)
        c.connect()
        try:
            c.set_watchdog(200)
            c.set_timing(exposure_ms=5, dark_ms=1)
            c.upload_sequence(SEQ9)
            c.arm(0)
            c.start()
            assert emu.wait_for(lambda s: s["pulses"] > 2, 1.0)
            emu.unplug()
            ev = c.wait_for_event("DISCONNECTED", timeout_s=1.0)
            assert ev.kind == "DISCONNECTED"
            with pytest.raises(DeviceError):
                c.status()
            # with the host gone the board's watchdog turns the light off by itself
            assert emu.wait_for(lambda s: s["state"] == "FAULT", 1.0)
            snap = emu.snapshot()
            assert snap["fault"] == "WATCHDOG"
            assert snap["pin_light"] == 0
            assert not snap["pin_trigger"]
        finally:
            c.close()  # SAFE fails (port gone): logged, never raised
        assert not c.connected


def test_a_request_times_out_and_its_late_reply_is_dropped(ctrl):
    emu = ctrl.emulator
    ctrl.timeout_s = 0.2
    t0 = time.monotonic()
    with emu.frozen(), pytest.raises(DeviceTimeoutError, match="CLOCK"):
        ctrl.clock_us()
    assert 0.15 < time.monotonic() - t0 < 1.0
    # the board wakes up and answers the old request: that reply matches nothing and is dropped
    ctrl.timeout_s = 1.0
    status = ctrl.status()
    assert status.state == "IDLE"
    assert ctrl.stale_lines == 1


def test_a_port_held_by_another_program_says_so():
    """Another program (another `scope acquire`, picocom ...) holding the port exclusively:
    the error says so, instead of "Check the cable and the port name"."""
    import serial

    with ControllerEmulator() as emu, serial.Serial(emu.port, exclusive=True):
        ctrl = SerialPatternController(emu.port, timeout_s=0.5)
        with pytest.raises(DeviceError, match="is held by another program") as info:
            ctrl.connect()
        assert "Check the cable" not in str(info.value)
        assert not ctrl.connected


def test_a_latched_fault_warning_names_the_command_that_clears_it(caplog):
    import logging

    import serial

    with ControllerEmulator() as emu:
        with serial.Serial(emu.port, 115200, timeout=0.5) as link:  # a host that died
            link.write(b"wdog 50\nlight 1\n")
            assert emu.wait_for(lambda s: s["fault"] == "WATCHDOG", 2.0)
        with (
            caplog.at_level(logging.WARNING, logger="scope.devices.serial_controller"),
            SerialPatternController(emu.port) as ctrl,
        ):
            assert ctrl.status().state == "FAULT"  # connecting does not clear it
        assert f"scope acquire --controller {emu.port} --clear-fault" in caplog.text
        assert emu.snapshot()["fault"] == "WATCHDOG"
