"""What `scope acquire` prints: progress, the summary and its log, as a first-time user sees
them on the simulated microscope."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from scope.acquisition.engine import AcquisitionConfig, AcquisitionEngine, AcquisitionSummary
from scope.acquisition.writer import read_acquisition
from scope.cli.acquire import _report
from scope.devices.simulated_microscope import SimulatedMicroscope

_MAIN = "import sys; from scope.cli import main; sys.exit(main(sys.argv[1:]))"
_FAST = ["--shape", "64", "64", "--exposure-ms", "2", "--dark-ms", "1"]


def _scope(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _MAIN, *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120, check=False)  # fmt: skip


def test_progress_counts_the_frames_of_the_sets_done(tmp_path):
    """It read `set 1/3: ... 10 frames`: a set is verified once the next set's first frame has
    arrived, and the count was of every frame on disk, that one included."""
    out = tmp_path / "run.zarr"
    proc = _scope("acquire", "--sets", "3", "-o", str(out), *_FAST)
    assert proc.returncode == 0, proc.stderr
    assert "3 valid / 0 invalid sets" in proc.stdout
    progress = [line for line in proc.stderr.splitlines() if line.startswith("set ")]
    counts = [re.search(r"set (\d)/3: .*, (\d+) frames,", line).groups() for line in progress]
    assert counts == [("1", "9"), ("2", "18"), ("3", "27")], proc.stderr


def test_routine_device_messages_only_with_v(tmp_path):
    """By default about 20 `INFO scope.devices...` lines (emulator serving, connected, armed,
    started, closed ...) came before and after the progress; they are routine, shown with -v.
    Warnings still show by default (a set found invalid, here from injected dropped frames)."""
    proc = _scope("acquire", "--sets", "2", "-o", str(tmp_path / "a.zarr"), *_FAST)
    assert proc.returncode == 0, proc.stderr
    assert "INFO" not in proc.stderr, proc.stderr
    assert all(line.startswith("set ") for line in proc.stderr.splitlines()), proc.stderr
    verbose = _scope("-v", "acquire", "--sets", "2", "-o", str(tmp_path / "b.zarr"), *_FAST)
    assert verbose.returncode == 0, verbose.stderr
    assert "INFO scope.devices.controller: controller armed for 18 frames" in verbose.stderr
    assert "INFO scope.acquisition.writer: closed" in verbose.stderr
    faulty = _scope("acquire", "--sets", "4", "-o", str(tmp_path / "c.zarr"), *_FAST,
                    "--drop-prob", "0.3")  # fmt: skip
    assert faulty.returncode == 0, faulty.stderr
    assert "WARNING scope.acquisition.engine: set " in faulty.stderr
    assert "frame dropped" in faulty.stdout
    assert "INFO" not in faulty.stderr


def _summary(**kw) -> AcquisitionSummary:
    base = dict(path="run.zarr", state="complete", frames_written=180, pulses=180, sets_valid=20,
                controller_counts={"pulses": 180, "advances": 180, "overruns": 23},
                controller_timing_tolerance_us=2000)  # fmt: skip
    return AcquisitionSummary(**(base | kw))


def test_the_summary_says_what_the_controller_s_overruns_are(capsys):
    """The log said `overruns=18` and the summary `0 late frames`: two figures that seemed to
    contradict each other. The summary now says what the overruns are."""
    _report(_summary(), simulated={"faults_asked": False, "camera_faults": 0})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("0 dropped, 0 extra, 0 late frames (0.0 s)")
    assert lines[1] == (
        "  23 of 180 exposures started over 2 ms late (controller overruns): the controller "
        "delayed its next steps instead of cutting them short, so these frames are fine; the "
        "emulated controller shares this computer's processor"
    )
    assert len(lines) == 2
    _report(_summary(controller_timing_tolerance_us=200))  # a real board
    assert "over 0.2 ms late (controller overruns)" in capsys.readouterr().out
    _report(_summary(), trigger="follower")
    assert "began before the pattern had settled (overruns)" in capsys.readouterr().out
    _report(_summary(controller_counts={"pulses": 180, "advances": 180, "overruns": 0}))
    assert len(capsys.readouterr().out.splitlines()) == 1  # none: nothing to explain


def test_overruns_of_a_run_are_reported_with_the_controller_s_tolerance(tmp_path, capsys):
    """End to end: an emulator with a 1 µs tolerance counts (nearly) every step as an overrun;
    the run records the tolerance from the controller's CAPS, and the summary says it."""
    with SimulatedMicroscope((64, 64), emulator_options={"timing_tol_us": 1}) as m:
        cfg = AcquisitionConfig(n_sets=2, exposure_ms=2.0, dark_ms=1.0)
        summary = AcquisitionEngine(m.camera, m.controller, tmp_path / "o.zarr", cfg).run()
    n = summary.controller_counts["overruns"]
    assert n > 0 and summary.controller_timing_tolerance_us == 1
    meta = read_acquisition(tmp_path / "o.zarr")[2]
    assert meta["summary"]["controller_timing_tolerance_us"] == 1
    _report(summary, simulated={"faults_asked": False, "camera_faults": 0})
    out = capsys.readouterr().out
    assert f"  {n} of 18 exposures started over 0.001 ms late (controller overruns)" in out


@pytest.mark.parametrize(
    ("simulated", "note"),
    [
        ({"faults_asked": False, "camera_faults": 0}, True),
        ({"faults_asked": True, "camera_faults": 0}, False),  # --drop-prob: faults were asked
        ({"faults_asked": False, "camera_faults": 1}, False),  # the camera missed a trigger
        (None, False),  # real devices
    ],
)
def test_faults_the_simulated_camera_did_not_make_are_put_down_to_a_busy_computer(
    capsys, simulated, note
):
    """No fault injected, the simulated camera delivered every frame, yet the engine counted
    dropped frames: the emulation fell behind on a loaded computer, and the summary says so
    instead of leaving a user to suspect the devices."""
    _report(
        _summary(sets_valid=19, sets_invalid=1, dropped_pulses=[90],
                 invalid_sets={9: ["pulse 90: frame dropped"]}),
        simulated=simulated,
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "  set 9 invalid: pulse 90: frame dropped" in out
    assert ("simulated microscope: no fault was injected" in out) is note
    _report(_summary(), simulated=simulated)  # a clean run: no note
    assert "simulated microscope" not in capsys.readouterr().out


def test_the_summary_says_which_invalid_sets_are_kept_without_a_dropped_frame(capsys):
    """A set whose only fault is a frame the camera dropped keeps its other frames (a
    reconstruction of the run leaves the dropped one out): the summary says how many, and which
    sets; a set with another fault is said to be invalid only."""
    _report(
        _summary(sets_valid=6, sets_invalid=2, dropped_pulses=[14],
                 invalid_sets={1: ["pulse 14: frame dropped"],
                               3: ["pulse 30: frame 31 +2.10 ms off its pulse"]},
                 sets_without_dropped_frames=[1]),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "6 valid / 2 invalid sets (1 of them kept without their faulty frames)" in out
    assert "  set 1 invalid: pulse 14: frame dropped (kept: reconstructed from its good " in out
    assert "  set 3 invalid: pulse 30: frame 31 +2.10 ms off its pulse\n" in out
    # an exposure the end of the run cut short (Ctrl-C during it) is said, and its set kept
    _report(
        _summary(sets_valid=1, sets_invalid=1, cut_exposures=[18], sets_without_dropped_frames=[1],
                 invalid_sets={1: ["pulse 18: exposure cut short by the end of the run (light "
                                   "off)"]}),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "0 late frames, 1 cut short by the end of the run (0.0 s)" in out
    assert "(1 of them kept without their faulty frames)" in out
    assert "pulse 18: exposure cut short by the end of the run (light off) (kept: " in out
    # many invalid sets: the lost ones first (each costs a time point), ten lines at most
    many = {i: ["pulse 1: frame dropped"] for i in range(12)}
    many[11] = ["pulse 100: frame dropped", "pulse 101: frame dropped", "not kept: too few"]
    _report(
        _summary(sets_invalid=12, invalid_sets=many, sets_without_dropped_frames=list(range(11)))
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  set 11 invalid: pulse 100: frame dropped")
    assert "(kept" not in lines[1] and "(kept: reconstructed" in lines[2]
    assert lines[11] == (
        "  ... and 2 more invalid sets (all of them in the run's metadata: summary.invalid_sets)"
    )
