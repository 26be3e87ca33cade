"""Defects found by running `scope acquire` as a user would (Ctrl-C, odd flags, odd outputs)."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest

from scope.acquisition.engine import (
    AcquisitionConfig,
    AcquisitionEngine,
    Interrupted,
    InterruptGuard,
)
from scope.acquisition.writer import AcquisitionWriter, read_acquisition, valid_sets
from scope.devices.simulated_microscope import SimulatedMicroscope

N = 9  # 3 angles x 3 phases


@pytest.mark.parametrize("trigger", ["hardware", "software"])
def test_ctrl_c_keeps_the_sets_whose_frames_all_came(tmp_path, monkeypatch, trigger):
    """Ctrl-C right after the 18th frame reached the disk: both sets are complete on disk and
    their pulses known, but the last one used to be left untagged (set -1, pattern -1) and
    invalid, uncounted and never reconstructed, because its verdict waited for a grace time
    the interrupt cut short."""
    original = AcquisitionWriter.append
    calls = []

    def append(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 2 * N:
            signal.raise_signal(signal.SIGINT)  # handled right after the frame is counted
        return out

    monkeypatch.setattr(AcquisitionWriter, "append", append)
    out = tmp_path / "stopped.zarr"
    with SimulatedMicroscope((64, 64)) as m:
        cfg = AcquisitionConfig(n_sets=None, exposure_ms=2.0, dark_ms=1.0, trigger=trigger)
        engine = AcquisitionEngine(m.camera, m.controller, out, cfg, setup=m.setup)
        with InterruptGuard(), pytest.raises(Interrupted):
            engine.run()
    frames, table, meta = read_acquisition(out)
    assert meta["state"] == "aborted"
    # (on a loaded machine the simulated camera can be dozens of frames behind the controller:
    # what it delivered by the time the light was off is drained to disk and verified too)
    n_valid = engine.summary.sets_valid
    assert n_valid >= 2, engine.summary.invalid_sets
    assert meta["summary"]["sets_valid"] == n_valid
    ids = valid_sets(frames, table, N)[1]
    assert len(ids) == n_valid and np.array_equal(ids[:2], [0, 1])
    first = slice(0, 2 * N)
    assert (table["valid"][first] == 1).all()
    assert np.array_equal(table["controller_count"][first], np.arange(1, 2 * N + 1))
    assert np.array_equal(table["pattern"][first], np.tile(np.arange(N), 2))


_MAIN = "import sys; from scope.cli import main; sys.exit(main(sys.argv[1:]))"


def _scope(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _MAIN, "-q", "acquire", "--sets", "1", *args],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--na", "5"], "--na 5: Input should be less than or equal to 1.7"),
        (["--pixel-size", "0.5"], "--pixel-size 0.5: Input should be greater than 1"),
    ],
)
def test_optics_out_of_range_is_one_line_not_a_traceback(tmp_path, flags, message):
    """`--na 5` or `--pixel-size 0.5` used to end in a pydantic ValidationError traceback."""
    out = tmp_path / "run.zarr"
    proc = _scope("-o", str(out), *flags)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"scope acquire: error: {message}"
    assert not out.exists()


def test_an_output_inside_a_file_is_refused_before_the_devices_start(tmp_path):
    """`-o notes.txt/run.zarr` used to connect the devices, then fail with "acquisition
    aborted: NotADirectoryError: ... '.run.zarr.starting'", a name the user never gave."""
    (tmp_path / "notes.txt").write_text("a file")
    proc = _scope("-o", str(tmp_path / "notes.txt" / "run.zarr"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"scope acquire: error: cannot write {tmp_path / 'notes.txt' / 'run.zarr'}: "
        f"{tmp_path / 'notes.txt'} is a file, not a folder; choose another -o"
    )
