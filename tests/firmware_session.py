# A scripted session with the firmware state machine on a fake board, printing everything the
# board sends and every pin change. Runs unchanged under MicroPython and CPython;
# tests/test_protocol_conformance.py compares the two transcripts.
#
#   micropython tests/firmware_session.py hardware/firmware
#   python tests/firmware_session.py hardware/firmware

import sys

sys.path.insert(0, sys.argv[1])
import pattern_core

WRAP = 1 << 30  # the RP2040's time.ticks_us() wraps here


class FakeBoard:
    BOARD = "fake"
    N_PATTERNS = 16
    N_CHANNELS = 2
    MIN_DWELL_US = 100
    MIN_EXPOSURE_US = 100
    TIMING_TOL_US = 50

    def __init__(self):
        self.t = WRAP - 20000  # wraps during the session
        self.edges = []

    def ticks_us(self):
        return self.t % WRAP

    def ticks_diff(self, a, b):
        d = (a - b) % WRAP
        if d >= WRAP // 2:
            d -= WRAP
        return d

    def write(self, data):
        for line in data.decode().split("\r\n"):
            if line:
                print("<", line)

    def set_pattern(self, index):
        print("  pattern", index)

    def set_trigger(self, level):
        print("  trigger", 1 if level else 0)

    def set_light(self, mask):
        print("  light", mask)

    def read_exposure_edges(self):
        e = self.edges
        self.edges = []
        return e

    def enter_repl(self):
        return False


SESSION = [
    (b"1 HELLO 1.0\n2 CAPS\n", 0),
    (b"3 HELLO 2.0\n", 0),
    (b"4 PI", 0),
    (b"NG\r\n", 0),
    (b"\x00\xff garbage\n", 0),
    (b"x" * 300 + b"\n", 0),
    (b"5 TIMING 1000 200\n6 CHANNELS 3\n7 WDOG 50\n", 0),
    (b"8 SEQ BEGIN 3\n9 SEQ DATA 0 4,5\n10 SEQ DATA 2 6\n", 0),
    (b"11 SEQ END 1\n", 0),
    (b"12 SEQ BEGIN 3\n12 SEQ DATA 0 4,5,6\n", 0),
    (b"12 SEQ END %d\n" % pattern_core.sequence_checksum([4, 5, 6]), 0),
    (b"13 ARM 4\n14 START\n", 6000),
    (b"15 STATUS\n", 0),
    (b"16 ARM 0\n17 START\n", 80000),  # the host goes silent: the watchdog fires
    (b"18 ARM 1\n19 CLEAR\n20 MODE FOLLOWER\n21 ARM 2\n22 START\n", 1000),
    (None, 1),  # camera exposure-active edges: rising, falling, ...
    (None, 0),
    (None, 1),
    (None, 0),
    (b"23 STOP\n24 LIGHT 1\n25 SAFE\n26 FROB\n27 CLOCK\n", 0),
]


def main():
    hw = FakeBoard()
    core = pattern_core.PatternCore(hw)
    for item, wait_us in SESSION:
        if item is None:
            hw.edges.append((wait_us == 1, hw.ticks_us()))
            hw.t += 10
            core.poll()
            hw.t += 1000
            core.poll()
            continue
        print(">", repr(item[:40]))
        core.feed(item)
        core.poll()
        end = hw.t + wait_us
        while hw.t < end:
            hw.t += 50
            core.poll()
    print("clock", core.now_us)


main()
