# ruff: noqa: UP031  (%-formatting: cheap on MicroPython, and its str.format lacks some specs)
# Pattern and trigger controller: the command-handling state machine.
#
# This one module is the firmware's logic. It runs unchanged
#   * on the RP2040 under MicroPython (main.py with the hardware layer in hw_rp2040.py), and
#   * in CPython inside scope's emulator (scope.devices.emulator, with a simulated hardware layer),
# so the tests of the emulator exercise the code that ships. Keep it MicroPython-compatible:
# no typing, dataclasses, enum, f-strings or imports; integers and %-formatting only
# (tests/test_protocol_conformance.py checks the subset).
#
# The protocol it speaks is specified in hardware/PROTOCOL.md.
#
# The hardware layer ``hw`` passed to PatternCore provides:
#   ticks_us() -> int                 a microsecond tick counter (may wrap)
#   ticks_diff(a, b) -> int           a - b, accounting for the wrap
#   write(data)                       send bytes to the host
#   set_pattern(index)                show pattern ``index`` (select bus and/or advance pulse)
#   set_trigger(level)                camera trigger output (True = exposing)
#   set_light(mask)                   light channel enables (0 = all dark)
#   read_exposure_edges() -> list     [(rising, tick_us), ...] from the camera's exposure-active
#                                     input captured since the last call (follower mode)
#   enter_repl() -> bool              leave the firmware for the MicroPython REPL if supported
#   BOARD, N_PATTERNS, N_CHANNELS, MIN_DWELL_US, MIN_EXPOSURE_US, TIMING_TOL_US   (attributes)

FW_NAME = "scope-pattern-controller"
FW_VERSION = "1.0.0"
PROTO_MAJOR = 1
PROTO_MINOR = 0

# error codes (hardware/PROTOCOL.md, section "Errors"); scope.devices.protocol mirrors them
E_SYNTAX = 1
E_UNKNOWN = 2
E_ARGS = 3
E_RANGE = 4
E_STATE = 5
E_TOO_LONG = 6
E_VERSION = 7
E_SEQUENCE = 8
E_FAULT = 9
E_UNSUPPORTED = 10
E_INTERNAL = 11

ERROR_NAMES = {
    E_SYNTAX: "SYNTAX",
    E_UNKNOWN: "UNKNOWN_COMMAND",
    E_ARGS: "BAD_ARGUMENTS",
    E_RANGE: "OUT_OF_RANGE",
    E_STATE: "BAD_STATE",
    E_TOO_LONG: "LINE_TOO_LONG",
    E_VERSION: "VERSION_MISMATCH",
    E_SEQUENCE: "SEQUENCE",
    E_FAULT: "FAULT_LATCHED",
    E_UNSUPPORTED: "UNSUPPORTED",
    E_INTERNAL: "INTERNAL",
}

IDLE = "IDLE"
ARMED = "ARMED"
RUNNING = "RUNNING"
FAULT = "FAULT"

LEADER = "LEADER"
FOLLOWER = "FOLLOWER"

MAX_LINE = 256  # bytes per line, terminator excluded
MAX_SEQ = 4096  # entries in the pattern sequence
MAX_CHUNK = 32  # entries per SEQ DATA line
MAX_EXPOSURE_US = 10000000
MAX_DARK_US = 10000000
MAX_FRAMES = 1000000000
WD_MIN_MS = 50
WD_MAX_MS = 600000
WD_DEFAULT_MS = 1000
MAX_ID_DIGITS = 9

COMMANDS = (
    "HELLO",
    "CAPS",
    "HELP",
    "PING",
    "STATUS",
    "CLOCK",
    "MODE",
    "TIMING",
    "CHANNELS",
    "WDOG",
    "EVENTS",
    "SEQ",
    "ARM",
    "START",
    "STOP",
    "SAFE",
    "CLEAR",
    "LIGHT",
    "PATTERN",
    "REPL",
)


class CommandError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _parse_uint(tok, name, lo, hi):
    """A decimal integer in [lo, hi]; CommandError otherwise."""
    neg = tok[:1] == "-"
    digits = tok[1:] if neg else tok
    if not digits or len(digits) > 10:
        raise CommandError(E_ARGS, "%s: expected an integer, got '%s'" % (name, tok))
    for c in digits:
        if c < "0" or c > "9":
            raise CommandError(E_ARGS, "%s: expected an integer, got '%s'" % (name, tok))
    value = int(digits)
    if neg:
        value = -value
    if value < lo or value > hi:
        raise CommandError(E_RANGE, "%s=%d out of range: expected %d..%d" % (name, value, lo, hi))
    return value


def sequence_checksum(indices):
    """Checksum of a pattern sequence: h = (h * 31 + index + 1) mod 2**32, from h = 17."""
    h = 17
    for i in indices:
        h = (h * 31 + i + 1) & 0xFFFFFFFF
    return h


class PatternCore:
    """The controller's state machine. Feed it bytes; call poll() as often as possible."""

    def __init__(self, hw):
        self.hw = hw
        self.proto_major = PROTO_MAJOR
        self.proto_minor = PROTO_MINOR
        self._buf = bytearray()
        self._overlong = False
        self._last_ticks = hw.ticks_us()
        self.now_us = 0  # extended (non-wrapping) controller clock, µs since boot
        self.state = IDLE
        self.mode = LEADER
        self.exposure_us = 10000
        self.dark_us = 2000
        self.channels = 1
        self.wd_ms = WD_DEFAULT_MS
        self.frame_events = True
        self.frames = 0  # frames of the armed run, 0 = until STOP
        self.fault = "NONE"
        self.seq = []
        self.seq_committed = False
        self._upload = None  # list being uploaded, None when no upload is open
        self._upload_set = 0
        self.pulses = 0
        self.advances = 0
        self.overruns = 0
        self.light = 0
        self.trigger = False
        self.pattern = -1
        self._last_rx_us = 0
        self._phase = 0  # leader: 0 idle, 1 dark (pattern settling), 2 exposing
        self._deadline_us = 0
        self._exposing = False  # follower: inside an exposure
        self._frame_late = False
        self._switch_us = 0
        self.lines_in = 0
        self._all_off()
        self._send("EVT READY fw=%s proto=%d.%d" % (FW_VERSION, self.proto_major, self.proto_minor))

    # ----------------------------------------------------------------- time and output
    def _update_clock(self):
        t = self.hw.ticks_us()
        d = self.hw.ticks_diff(t, self._last_ticks)
        if d > 0:
            self.now_us += d
        self._last_ticks = t
        return self.now_us

    def _send(self, text):
        self.hw.write((text + "\r\n").encode())

    def _reply_ok(self, rid, text):
        if text:
            self._send("OK %s %s" % (rid, text))
        else:
            self._send("OK %s" % rid)

    def _reply_err(self, rid, code, message):
        # messages are one line of printable ASCII
        clean = "".join(c if " " <= c <= "~" else "?" for c in message)
        self._send("ERR %s %d %s: %s" % (rid, code, ERROR_NAMES.get(code, "ERROR"), clean))

    def _counts(self):
        return "pulses=%d advances=%d overruns=%d" % (self.pulses, self.advances, self.overruns)

    def _set_light(self, mask):
        self.light = mask
        self.hw.set_light(mask)

    def _set_trigger(self, level):
        self.trigger = level
        self.hw.set_trigger(level)

    def _show(self, index):
        self.pattern = index
        self.hw.set_pattern(index)

    def _all_off(self):
        self._set_light(0)
        self._set_trigger(False)

    def _end_run(self):
        """Stop any run: light off first, then the trigger; counts are kept."""
        self._set_light(0)
        self._set_trigger(False)
        self._phase = 0
        self._exposing = False

    def _raise_fault(self, code):
        self._end_run()
        self.state = FAULT
        self.fault = code
        self._send("EVT FAULT code=%s %s" % (code, self._counts()))

    # ----------------------------------------------------------------- input
    def feed(self, data):
        """Bytes from the host. Each complete line gets exactly one OK/ERR reply."""
        self._update_clock()
        for b in data:
            if b == 10 or b == 13:
                if self._overlong:
                    self._overlong = False
                    self._buf = bytearray()
                    self._last_rx_us = self.now_us
                    self.lines_in += 1
                    self._reply_err("-", E_TOO_LONG, "line longer than %d bytes" % MAX_LINE)
                elif len(self._buf) > 0:
                    line = bytes(self._buf)
                    self._buf = bytearray()
                    self._last_rx_us = self.now_us
                    self.lines_in += 1
                    self._line(line)
            elif self._overlong:
                pass
            elif len(self._buf) >= MAX_LINE:
                self._overlong = True
                self._buf = bytearray()
            else:
                self._buf.append(b)

    def _line(self, raw):
        n = len(raw)
        i = 0
        while i < n and (raw[i] == 32 or raw[i] == 9):
            i += 1
        j = i
        while j < n and 48 <= raw[j] <= 57:
            j += 1
        rid = "-"
        if j > i:
            if (j < n and raw[j] != 32 and raw[j] != 9) or j - i > MAX_ID_DIGITS:
                self._reply_err(
                    "-", E_SYNTAX, "bad request id: expected 1 to %d digits" % MAX_ID_DIGITS
                )
                return
            rid = raw[i:j].decode()
        rest = raw[j:]
        for b in rest:
            if (b < 32 and b != 9) or b > 126:
                self._reply_err(rid, E_SYNTAX, "line holds bytes that are not printable ASCII")
                return
        toks = rest.decode().replace("\t", " ").split()
        if not toks:
            if rid != "-":
                self._reply_err(rid, E_SYNTAX, "request id without a command")
            return  # a blank line gets no answer
        cmd = toks[0].upper()
        args = toks[1:]
        try:
            handler = getattr(self, "_cmd_" + cmd) if cmd in COMMANDS else None
            if handler is None:
                raise CommandError(
                    E_UNKNOWN, "unknown command '%s'; HELP lists them" % toks[0][:32]
                )
            text = handler(args)
            self._reply_ok(rid, text)
        except CommandError as err:
            self._reply_err(rid, err.code, err.message)
        except Exception as err:  # never let a bug leave the light on
            self._end_run()
            self.state = FAULT
            self.fault = "INTERNAL"
            self._reply_err(
                rid,
                E_INTERNAL,
                "internal error %s; controller is safe, CLEAR to go on" % repr(err)[:80],
            )

    # ----------------------------------------------------------------- helpers for commands
    def _nargs(self, args, lo, hi, usage):
        if len(args) < lo or len(args) > hi:
            raise CommandError(E_ARGS, "usage: %s" % usage)

    def _need_idle(self, what):
        if self.state == ARMED or self.state == RUNNING:
            raise CommandError(
                E_STATE, "%s needs an idle controller (state %s): STOP first" % (what, self.state)
            )

    # ----------------------------------------------------------------- commands
    def _cmd_HELLO(self, args):
        self._nargs(args, 0, 1, "HELLO [host_major.minor]")
        if args:
            parts = args[0].split(".")
            major = _parse_uint(parts[0], "protocol major", 0, 999)
            if major != self.proto_major:
                raise CommandError(
                    E_VERSION,
                    "host speaks protocol %d.x, this firmware speaks %d.%d: update the %s"
                    % (
                        major,
                        self.proto_major,
                        self.proto_minor,
                        "firmware" if major > self.proto_major else "host software",
                    ),
                )
        return "name=%s fw=%s proto=%d.%d board=%s" % (
            FW_NAME,
            FW_VERSION,
            self.proto_major,
            self.proto_minor,
            self.hw.BOARD,
        )

    def _cmd_CAPS(self, args):
        self._nargs(args, 0, 0, "CAPS")
        hw = self.hw
        return (
            "patterns=%d max_seq=%d max_chunk=%d channels=%d trig_out=1 trig_in=1 "
            "min_dwell_us=%d min_exposure_us=%d max_exposure_us=%d max_dark_us=%d "
            "timing_tol_us=%d wd_min_ms=%d wd_max_ms=%d max_line=%d"
            % (
                hw.N_PATTERNS,
                MAX_SEQ,
                MAX_CHUNK,
                hw.N_CHANNELS,
                hw.MIN_DWELL_US,
                hw.MIN_EXPOSURE_US,
                MAX_EXPOSURE_US,
                MAX_DARK_US,
                hw.TIMING_TOL_US,
                WD_MIN_MS,
                WD_MAX_MS,
                MAX_LINE,
            )
        )

    def _cmd_HELP(self, args):
        return "commands=" + ",".join(COMMANDS)

    def _cmd_PING(self, args):
        self._nargs(args, 0, 0, "PING")
        return ""

    def _cmd_STATUS(self, args):
        self._nargs(args, 0, 0, "STATUS")
        return (
            "state=%s mode=%s fault=%s light=%d pattern=%d seq_len=%d committed=%d frames=%d "
            "exposure_us=%d dark_us=%d channels=%d wd_ms=%d events=%d %s t_us=%d"
            % (
                self.state,
                self.mode,
                self.fault,
                self.light,
                self.pattern,
                len(self.seq),
                1 if self.seq_committed else 0,
                self.frames,
                self.exposure_us,
                self.dark_us,
                self.channels,
                self.wd_ms,
                1 if self.frame_events else 0,
                self._counts(),
                self.now_us,
            )
        )

    def _cmd_CLOCK(self, args):
        self._nargs(args, 0, 0, "CLOCK")
        return "t_us=%d" % self._update_clock()

    def _cmd_MODE(self, args):
        self._nargs(args, 1, 1, "MODE LEADER|FOLLOWER")
        self._need_idle("MODE")
        m = args[0].upper()
        if m != LEADER and m != FOLLOWER:
            raise CommandError(E_ARGS, "MODE: expected LEADER or FOLLOWER, got '%s'" % args[0][:32])
        self.mode = m
        return "mode=%s" % m

    def _cmd_TIMING(self, args):
        self._nargs(args, 2, 2, "TIMING exposure_us dark_us")
        self._need_idle("TIMING")
        e = _parse_uint(args[0], "exposure_us", self.hw.MIN_EXPOSURE_US, MAX_EXPOSURE_US)
        d = _parse_uint(args[1], "dark_us", self.hw.MIN_DWELL_US, MAX_DARK_US)
        self.exposure_us = e
        self.dark_us = d
        return "exposure_us=%d dark_us=%d period_us=%d" % (e, d, e + d)

    def _cmd_CHANNELS(self, args):
        self._nargs(args, 1, 1, "CHANNELS mask")
        self._need_idle("CHANNELS")
        self.channels = _parse_uint(args[0], "mask", 1, (1 << self.hw.N_CHANNELS) - 1)
        return "channels=%d" % self.channels

    def _cmd_WDOG(self, args):
        self._nargs(args, 1, 1, "WDOG timeout_ms")
        self.wd_ms = _parse_uint(args[0], "timeout_ms", WD_MIN_MS, WD_MAX_MS)
        return "wd_ms=%d" % self.wd_ms

    def _cmd_EVENTS(self, args):
        self._nargs(args, 1, 1, "EVENTS 0|1")
        self.frame_events = _parse_uint(args[0], "frame events", 0, 1) == 1
        return "events=%d" % (1 if self.frame_events else 0)

    def _cmd_SEQ(self, args):
        if not args:
            raise CommandError(
                E_ARGS,
                "usage: SEQ BEGIN n | SEQ DATA offset i,i,... | SEQ END checksum"
                " | SEQ GET offset n",
            )
        sub = args[0].upper()
        if sub == "GET":
            self._nargs(args, 3, 3, "SEQ GET offset n")
            off = _parse_uint(args[1], "offset", 0, max(0, len(self.seq) - 1))
            n = _parse_uint(args[2], "n", 1, MAX_CHUNK)
            part = self.seq[off : off + n]
            return "offset=%d data=%s" % (off, ",".join([str(i) for i in part]))
        self._need_idle("SEQ " + sub)
        if sub == "BEGIN":
            self._nargs(args, 2, 2, "SEQ BEGIN n")
            n = _parse_uint(args[1], "n", 1, MAX_SEQ)
            self.seq = []
            self.seq_committed = False
            self._upload = [-1] * n
            self._upload_set = 0
            return "n=%d max_chunk=%d" % (n, MAX_CHUNK)
        if sub == "DATA":
            self._nargs(args, 3, 3, "SEQ DATA offset i,i,...")
            if self._upload is None:
                raise CommandError(E_SEQUENCE, "no upload open: SEQ BEGIN n first")
            n = len(self._upload)
            off = _parse_uint(args[1], "offset", 0, n - 1)
            items = args[2].split(",")
            if len(items) > MAX_CHUNK:
                raise CommandError(
                    E_RANGE, "chunk of %d entries: at most %d per line" % (len(items), MAX_CHUNK)
                )
            if off + len(items) > n:
                raise CommandError(
                    E_RANGE,
                    "chunk ends at %d beyond the announced length %d" % (off + len(items), n),
                )
            values = [_parse_uint(t, "pattern index", 0, self.hw.N_PATTERNS - 1) for t in items]
            for k in range(len(values)):
                if self._upload[off + k] < 0:
                    self._upload_set += 1
                self._upload[off + k] = values[k]
            return "received=%d n=%d" % (self._upload_set, n)
        if sub == "END":
            self._nargs(args, 2, 2, "SEQ END checksum")
            if self._upload is None:
                raise CommandError(E_SEQUENCE, "no upload open: SEQ BEGIN n first")
            want = _parse_uint(args[1], "checksum", 0, 0xFFFFFFFF)
            if self._upload_set != len(self._upload):
                missing = len(self._upload) - self._upload_set
                raise CommandError(
                    E_SEQUENCE,
                    "%d of %d entries missing: send them and SEQ END again"
                    % (missing, len(self._upload)),
                )
            got = sequence_checksum(self._upload)
            if got != want:
                self._upload = None
                raise CommandError(
                    E_SEQUENCE,
                    "checksum %d does not match the received entries (%d): upload again"
                    % (want, got),
                )
            self.seq = self._upload
            self._upload = None
            self.seq_committed = True
            return "n=%d checksum=%d" % (len(self.seq), got)
        raise CommandError(E_ARGS, "SEQ: expected BEGIN, DATA, END or GET, got '%s'" % args[0][:32])

    def _cmd_ARM(self, args):
        self._nargs(args, 1, 1, "ARM frames (0 = until STOP)")
        frames = _parse_uint(args[0], "frames", 0, MAX_FRAMES)
        if self.state == FAULT:
            raise CommandError(E_FAULT, "fault %s latched: CLEAR first" % self.fault)
        if self.state != IDLE:
            raise CommandError(E_STATE, "ARM needs state IDLE (state %s): STOP first" % self.state)
        if not self.seq_committed:
            raise CommandError(E_SEQUENCE, "no committed sequence: SEQ BEGIN/DATA/END first")
        self._set_light(0)  # the alignment light goes off when a run is armed
        self.frames = frames
        self.pulses = 0
        self.advances = 0
        self.overruns = 0
        self.state = ARMED
        return "frames=%d mode=%s" % (frames, self.mode)

    def _cmd_START(self, args):
        self._nargs(args, 0, 0, "START")
        if self.state == FAULT:
            raise CommandError(E_FAULT, "fault %s latched: CLEAR first" % self.fault)
        if self.state != ARMED:
            raise CommandError(
                E_STATE, "START needs state ARMED (state %s): ARM first" % self.state
            )
        now = self._update_clock()
        self.state = RUNNING
        self._switch_to(0, now)
        if self.mode == LEADER:
            self._phase = 1
            self._deadline_us = now + self.dark_us
        else:
            self.hw.read_exposure_edges()  # edges from before START do not count
            self._exposing = False
        return "t_us=%d" % now

    def _cmd_STOP(self, args):
        self._nargs(args, 0, 0, "STOP")
        self._end_run()
        if self.state != FAULT:
            self.state = IDLE
        return "%s state=%s" % (self._counts(), self.state)

    def _cmd_SAFE(self, args):
        self._nargs(args, 0, 0, "SAFE")
        self._end_run()
        if self.state != FAULT:
            self.state = IDLE
        return "%s state=%s light=%d" % (self._counts(), self.state, self.light)

    def _cmd_CLEAR(self, args):
        self._nargs(args, 0, 0, "CLEAR")
        if self.state == FAULT:
            self._end_run()
            self.state = IDLE
            self.fault = "NONE"
        return "state=%s" % self.state

    def _cmd_LIGHT(self, args):
        self._nargs(args, 1, 1, "LIGHT mask (0 = off)")
        mask = _parse_uint(args[0], "mask", 0, (1 << self.hw.N_CHANNELS) - 1)
        if mask != 0:
            if self.state == FAULT:
                raise CommandError(E_FAULT, "fault %s latched: CLEAR first" % self.fault)
            self._need_idle("LIGHT")
        elif self.state == ARMED or self.state == RUNNING:
            self._need_idle("LIGHT")
        self._set_light(mask)
        return "light=%d" % mask

    def _cmd_PATTERN(self, args):
        self._nargs(args, 1, 1, "PATTERN index")
        self._need_idle("PATTERN")
        idx = _parse_uint(args[0], "index", 0, self.hw.N_PATTERNS - 1)
        self._show(idx)
        return "pattern=%d" % idx

    def _cmd_REPL(self, args):
        self._nargs(args, 0, 0, "REPL")
        self._need_idle("REPL")
        self._all_off()
        if not self.hw.enter_repl():
            raise CommandError(E_UNSUPPORTED, "this board has no REPL to return to")
        return "repl=1"

    # ----------------------------------------------------------------- run logic
    def _switch_to(self, k, now):
        self._show(self.seq[k % len(self.seq)])
        self.advances += 1
        self._switch_us = now

    def _frame_done(self):
        return self.frames != 0 and self.pulses >= self.frames

    def _finish(self):
        self._end_run()
        self.state = IDLE
        self._send("EVT DONE %s" % self._counts())

    def _start_exposure(self, t_us):
        self.pulses += 1
        self._set_trigger(True)
        self._set_light(self.channels)
        if self.frame_events:
            self._send("EVT FRAME n=%d idx=%d t_us=%d" % (self.pulses, self.pattern, t_us))

    def next_deadline_us(self):
        """Controller time of the next scheduled step (None when nothing is scheduled)."""
        if self.state == RUNNING and self.mode == LEADER and self._phase:
            return self._deadline_us
        return None

    def poll(self):
        """Advance the run and the watchdog to the present time. Call it in the main loop."""
        now = self._update_clock()
        if self.state == RUNNING:
            if self.mode == LEADER:
                self._poll_leader(now)
            else:
                self._poll_follower(now)
        watched = self.state == ARMED or self.state == RUNNING or self.light != 0
        if watched and now - self._last_rx_us > self.wd_ms * 1000:
            self._raise_fault("WATCHDOG")

    def _poll_leader(self, now):
        tol = self.hw.TIMING_TOL_US
        # at most one step per poll keeps every step observable; a late poll delays the
        # schedule instead of shortening an exposure or switching a pattern during one
        if self._phase == 1 and now >= self._deadline_us:
            self._frame_late = now - self._deadline_us > tol
            self._start_exposure(now)
            self._phase = 2
            self._deadline_us = now + self.exposure_us
        elif self._phase == 2 and now >= self._deadline_us:
            self._set_light(0)
            self._set_trigger(False)
            if self._frame_late or now - self._deadline_us > tol:
                self.overruns += 1
            if self._frame_done():
                self._finish()
                return
            self._switch_to(self.pulses, now)
            self._phase = 1
            self._deadline_us = now + self.dark_us

    def _poll_follower(self, now):
        edges = self.hw.read_exposure_edges()
        for rising, tick in edges:
            t = now - self.hw.ticks_diff(self._last_ticks, tick)
            if rising:
                if self._exposing:
                    continue
                self._exposing = True
                if t - self._switch_us < self.hw.MIN_DWELL_US:
                    self.overruns += 1  # exposure began before the pattern had settled
                self._start_exposure(t)
            else:
                if not self._exposing:
                    continue
                self._exposing = False
                self._set_light(0)
                self._set_trigger(False)
                if self._frame_done():
                    self._finish()
                    return
                self._switch_to(self.pulses, now)
