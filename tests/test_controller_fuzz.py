"""Property-based fuzzing of the controller's command stream (hypothesis).

Two levels:

* the firmware state machine itself, on a simulated clock, with many examples: random (valid,
  out-of-range and malformed) commands, garbage bytes, split and merged lines, camera edges and
  pauses long enough for the watchdog;
* the emulator served on a real pseudo-terminal, fewer examples, in real time.

Properties: nothing crashes or gets stuck (the controller still answers and completes a run
afterwards), every non-blank line gets exactly one OK/ERR, and the light is off whenever SAFE or
STOP is answered, a FAULT is reported, or the watchdog is overdue.
"""

from __future__ import annotations

import time

import pytest
import serial
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scope.devices.emulator import ControllerEmulator, SimulatedHardware, load_firmware_core
from scope.devices.protocol import (
    MAX_LINE,
    ErrorCode,
    EventLine,
    Reply,
    parse_line,
    sequence_checksum,
)

FW = load_firmware_core()

_INT = st.one_of(
    st.integers(-3, 12),
    st.integers(0, 5000),
    st.integers(40, 400),
    st.integers(-(10**6), 10**11),
    st.sampled_from(["x", "1.5", "", "0x10", "--1", "07"]),
)


def _args(n: int):
    return st.lists(_INT, min_size=n, max_size=n).map(lambda xs: " ".join(map(str, xs)))


_COMMAND = st.one_of(
    st.sampled_from(
        ["PING", "STATUS", "CLOCK", "CAPS", "HELP", "START", "STOP", "SAFE", "CLEAR", "HELLO"]
    ),
    st.sampled_from(["START", "STOP", "SAFE", "ARM 0", "ARM 3", "LIGHT 1", "LIGHT 0"]),
    st.sampled_from(["MODE LEADER", "MODE FOLLOWER", "MODE X", "EVENTS 0", "EVENTS 1"]),
    st.sampled_from(["HELLO 1.0", "HELLO 2.0", "HELLO 0", "REPL", "stop", "Safe", "FROB 1"]),
    _args(2).map(lambda a: "TIMING " + a),
    _args(1).map(lambda a: "WDOG " + a),
    _args(1).map(lambda a: "ARM " + a),
    _args(1).map(lambda a: "LIGHT " + a),
    _args(1).map(lambda a: "CHANNELS " + a),
    _args(1).map(lambda a: "PATTERN " + a),
    _args(1).map(lambda a: "SEQ BEGIN " + a),
    st.tuples(_INT, st.lists(_INT, min_size=1, max_size=40)).map(
        lambda t: f"SEQ DATA {t[0]} " + ",".join(map(str, t[1]))
    ),
    _args(1).map(lambda a: "SEQ END " + a),
    _args(2).map(lambda a: "SEQ GET " + a),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)

# one action of the host or the world: a command line (with an id or typed without one),
# raw bytes, a pause (µs), a camera edge, or a complete valid run set-up
_ACTION = st.one_of(
    st.tuples(st.just("cmd"), _COMMAND, st.booleans(), st.integers(0, 3)),
    st.tuples(st.just("raw"), st.binary(max_size=40)),
    st.tuples(
        st.just("raw"), st.sampled_from([b"\n", b"\r\n", b"\r", b" " * 300, b"1 PI", b"x" * 257])
    ),
    st.tuples(st.just("wait"), st.integers(0, 3000)),
    st.tuples(st.just("wait"), st.integers(0, 400_000)),
    st.tuples(st.just("wait"), st.sampled_from([49_000, 51_000, 120_000, 450_000])),
    st.tuples(st.just("edge"), st.booleans()),
    st.tuples(st.just("setup"), st.integers(1, 5), st.sampled_from(["LEADER", "FOLLOWER"])),
)


class FakeClockHardware(SimulatedHardware):
    """Simulated pins on a simulated microsecond clock."""

    def __init__(self) -> None:
        self.t_us = 1_000_000
        super().__init__(
            n_patterns=16, n_channels=2, min_dwell_us=100, min_exposure_us=100,
            timing_tol_us=50, clock=lambda: self.t_us * 1e-6,
        )  # fmt: skip

    def ticks_us(self) -> int:
        return self.t_us


class SafetyMonitor:
    """Sits on the controller's output: checks every line the moment it is sent."""

    def __init__(self, hw: SimulatedHardware) -> None:
        self.hw = hw
        self.buf = b""
        self.replies: list[Reply] = []
        self.events: list[EventLine] = []
        self.darkening_ids: set[str] = set()
        self.violations: list[str] = []

    def __call__(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            try:
                msg = parse_line(line)
            except Exception as err:
                self.violations.append(f"malformed line {line!r}: {err}")
                continue
            dark = self.hw.light == 0 and not self.hw.trigger
            if isinstance(msg, Reply):
                self.replies.append(msg)
                if msg.ok and msg.request_id in self.darkening_ids and not dark:
                    self.violations.append(f"light on when answering {msg.raw!r}")
            elif isinstance(msg, EventLine):
                self.events.append(msg)
                if msg.kind in ("FAULT", "DONE") and not dark:
                    self.violations.append(f"light on at {msg.raw!r}")


def expected_replies(stream: bytes) -> tuple[int, int]:
    """Complete non-blank lines in ``stream`` (each must get exactly one reply), and how many
    of them are longer than the protocol allows."""
    n = overlong = 0
    for seg in stream.replace(b"\r", b"\n").split(b"\n")[:-1]:
        if len(seg) > MAX_LINE:
            overlong += 1
        if len(seg) > MAX_LINE or seg.strip(b" \t"):
            n += 1
    return n, overlong


class CoreHarness:
    def __init__(self) -> None:
        self.hw = FakeClockHardware()
        self.monitor = SafetyMonitor(self.hw)
        self.hw.output = self.monitor
        self.core = FW.PatternCore(self.hw)
        self.stream = b""
        self.next_id = 0

    def feed(self, data: bytes) -> None:
        self.stream += data
        self.core.feed(data)
        self.check()

    def command(self, text: str, *, with_id: bool = True, pieces: int = 0) -> str:
        rid = "-"
        if with_id:
            self.next_id += 1
            rid = str(self.next_id)
            text = f"{rid} {text}"
            word = text.split()[1].upper() if len(text.split()) > 1 else ""
            if word in ("SAFE", "STOP"):
                self.monitor.darkening_ids.add(rid)
        data = (text + "\n").encode()
        cuts = sorted({max(1, len(data) * (k + 1) // (pieces + 1)) for k in range(pieces)})
        start = 0
        for cut in [*cuts, len(data)]:
            self.feed(data[start:cut])
            self.poll()
            start = cut
        return rid

    def poll(self) -> None:
        self.core.poll()
        self.check()

    def wait(self, us: int) -> None:
        end = self.hw.t_us + us
        while self.hw.t_us < end:
            deadline = self.core.next_deadline_us()
            step = 1000
            if deadline is not None:
                step = max(1, min(step, deadline - self.core.now_us))
            self.hw.t_us = min(end, self.hw.t_us + step)
            self.poll()

    def check(self) -> None:
        core, hw = self.core, self.hw
        assert hw.light == core.light
        if hw.light:
            assert core.state in ("IDLE", "RUNNING"), core.state
            if core.state == "RUNNING":
                assert hw.trigger, "light on outside an exposure"
        watched = core.state in ("ARMED", "RUNNING") or core.light
        if watched:
            assert core.now_us - core._last_rx_us <= core.wd_ms * 1000, "watchdog overdue"
        assert not self.monitor.violations, self.monitor.violations

    def setup_run(self, n: int, mode: str) -> None:
        seq = list(range(n))
        for text in (
            "SAFE",
            "CLEAR",
            f"MODE {mode}",
            "TIMING 1000 200",
            f"SEQ BEGIN {n}",
            "SEQ DATA 0 " + ",".join(map(str, seq)),
            f"SEQ END {sequence_checksum(seq)}",
            "ARM 0",
            "START",
        ):
            self.command(text)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # fmt: skip
@given(
    watchdog_ms=st.integers(50, 400),
    prelude=st.sampled_from(["none", "LEADER", "FOLLOWER", "light"]),
    actions=st.lists(_ACTION, max_size=30),
)
def test_state_machine_survives_any_command_stream(watchdog_ms, prelude, actions):
    h = CoreHarness()
    h.command(f"WDOG {watchdog_ms}")
    if prelude == "light":
        h.command("LIGHT 3")
    elif prelude != "none":
        h.setup_run(3, prelude)
    for action in actions:
        kind = action[0]
        if kind == "cmd":
            h.command(action[1], with_id=action[2], pieces=action[3])
        elif kind == "raw":
            h.feed(action[1])
            h.poll()
        elif kind == "wait":
            h.wait(action[1])
        elif kind == "edge":
            h.hw.camera_exposure(action[1])
            h.poll()
        else:
            h.setup_run(action[1], action[2])
    for ev in h.monitor.events:
        if ev.kind in ("FAULT", "DONE"):
            event(f"{ev.kind} {ev.fields.get('code', '')}")
    event(f"max light-on {'yes' if any(m for _, m in h.hw.light_log) else 'no'}")
    # every complete non-blank line got exactly one reply
    h.feed(b"\n")
    n_lines, n_overlong = expected_replies(h.stream)
    assert len(h.monitor.replies) == n_lines
    assert sum(r.code == ErrorCode.LINE_TOO_LONG for r in h.monitor.replies) == n_overlong
    # no pattern changed inside an exposure
    assert h.hw.exposures_with_pattern_change() == []
    # SAFE always darkens, and the controller is not stuck: a clean run still completes
    h.command("SAFE")
    assert h.hw.light == 0
    assert not h.hw.trigger
    h.command("CLEAR")
    assert h.core.state == "IDLE"
    h.command("WDOG 1000")
    h.command("EVENTS 1")
    h.setup_run(3, "LEADER")
    h.command("STOP")
    h.command("ARM 4")
    pulses_before = len(h.hw.trigger_log)
    h.command("START")
    h.wait(20_000)
    assert h.monitor.events[-1].kind == "DONE", h.monitor.events[-1]
    assert h.monitor.events[-1].fields["pulses"] == "4"
    assert len(h.hw.trigger_log) - pulses_before == 4
    assert h.hw.light == 0


def test_watchdog_fires_on_the_simulated_clock_at_the_set_time():
    h = CoreHarness()
    h.command("WDOG 300")
    h.setup_run(2, "LEADER")
    h.wait(299_000)  # 299 ms after the last line (START)
    assert h.core.state == "RUNNING"
    h.wait(2_000)
    assert h.core.state == "FAULT"
    fault = [e for e in h.monitor.events if e.kind == "FAULT"]
    assert fault[0].fields["code"] == "WATCHDOG"
    assert h.hw.light == 0


# --------------------------------------------------------------------------- over the pty


@pytest.fixture(scope="module")
def served():
    with ControllerEmulator(n_patterns=16, min_dwell_us=100, min_exposure_us=100) as emu:
        monitor = SafetyMonitor(emu.hardware)
        inner = emu.hardware.output

        def tee(data: bytes) -> None:
            monitor(data)
            inner(data)

        emu.hardware.output = tee
        ser = serial.Serial(emu.port, 115200, timeout=0.01, exclusive=True)
        try:
            yield emu, ser, monitor
        finally:
            ser.close()


def _answer(ser: serial.Serial, rid: str, timeout_s: float = 1.0) -> str | None:
    buf = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        buf += ser.read(max(1, ser.in_waiting))
        for line in buf.split(b"\n"):
            toks = line.split()
            if len(toks) >= 2 and toks[0] in (b"OK", b"ERR") and toks[1] == rid.encode():
                return line.decode().strip()
    return None


# a command (sent with a fresh id, so SAFE/STOP answers can be checked) or raw bytes
_PTY_CHUNK = st.one_of(
    _COMMAND,
    st.sampled_from(["WDOG 50", "ARM 0", "START", "LIGHT 3", "SAFE", "STOP"]),
    st.binary(max_size=30),
    st.sampled_from([b"1 PI", b"NG\n", b"\n"]),
)


@settings(
    max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)  # fmt: skip
@given(
    chunks=st.lists(st.tuples(_PTY_CHUNK, st.integers(0, 80)), max_size=10),
)
def test_served_emulator_never_crashes_or_sticks(served, chunks):
    emu, ser, monitor = served
    ser.reset_input_buffer()
    monitor.darkening_ids.clear()  # ids are reused between examples
    for n, (chunk, pause_ms) in enumerate(chunks):
        if isinstance(chunk, str):
            rid = str(50000 + n)
            if chunk.split()[:1] in (["SAFE"], ["STOP"]):
                monitor.darkening_ids.add(rid)
            chunk = f"{rid} {chunk}\n".encode()
        ser.write(chunk)
        time.sleep(pause_ms / 1000)
    monitor.darkening_ids.add("99999")
    ser.write(b"\n99999 SAFE\n")
    answer = _answer(ser, "99999")
    assert answer is not None, "emulator stuck: no answer to SAFE"
    assert answer.startswith("OK 99999")
    assert emu.alive
    assert emu.crashed is None
    snap = emu.snapshot()
    assert snap["pin_light"] == 0
    assert not snap["pin_trigger"]
    assert not monitor.violations, monitor.violations
    ser.write(b"99998 CLEAR\n99997 WDOG 1000\n")
    assert _answer(ser, "99997") is not None
