# Runs the RP2040 firmware (main.py, hw_rp2040.py, pattern_core.py) under the MicroPython unix
# port with stand-ins for the RP2040-only modules `machine` and `rp2` that record what the pins
# do. tests/test_protocol_conformance.py drives it.
#
#   micropython tests/firmware_board.py hardware/firmware main  < requests
#   micropython tests/firmware_board.py hardware/firmware unit

import sys
import time

sys.path.insert(0, sys.argv[1])
MODE = sys.argv[2]
PINS = {}
PUTS = []
SIO_OUT = 0xD0000010
SIO_XOR = 0xD000001C


class Reset(Exception):
    pass


class Pin:
    OUT = 1
    IN = 0
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 4
    IRQ_FALLING = 8

    def __init__(self, pin_id, mode=-1, pull=-1, value=None):
        self.id = pin_id
        self.mode = mode
        self.level = 1 if pull == Pin.PULL_UP else 0
        if value is not None:
            self.level = value
        self.handler = None
        PINS[pin_id] = self

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0
        return None

    def irq(self, handler=None, trigger=0, hard=False):
        self.handler = handler


class Mem32:
    def __getitem__(self, addr):
        if addr != SIO_OUT:
            raise ValueError("unexpected register read")
        out = 0
        for p in PINS.values():
            if p.mode == Pin.OUT and p.level:
                out |= 1 << p.id
        return out

    def __setitem__(self, addr, bits):
        if addr != SIO_XOR:
            raise ValueError("unexpected register write")
        for p in PINS.values():
            if p.mode == Pin.OUT and (bits >> p.id) & 1:
                p.level ^= 1


class WDT:
    def __init__(self, timeout=0):
        self.t0 = time.ticks_ms()

    def feed(self):
        if time.ticks_diff(time.ticks_ms(), self.t0) > 3000:
            raise Reset("test stand-in: the session took too long")


def _reset():
    raise Reset("machine.reset")


class _Module:
    pass


machine = _Module()
machine.Pin = Pin
machine.mem32 = Mem32()
machine.WDT = WDT
machine.reset = _reset
machine.disable_irq = lambda: 0
machine.enable_irq = lambda state: None
sys.modules["machine"] = machine


class StateMachine:
    def __init__(self, n, program, freq=0, set_base=None):
        self.program = program

    def active(self, on=None):
        return 1

    def put(self, word):
        PUTS.append(word)


class _PIO:
    OUT_LOW = 0


def asm_pio(**kwargs):
    def wrap(fn):
        return fn  # the assembler body only runs on the board

    return wrap


rp2 = _Module()
rp2.PIO = _PIO
rp2.StateMachine = StateMachine
rp2.asm_pio = asm_pio
sys.modules["rp2"] = rp2


def bus():
    return sum(PINS[4 + i].level << i for i in range(8))


def report(tag):
    lights = "".join(str(PINS[p].level) for p in (12, 13))
    print(f"# {tag} trigger={PINS[2].level} lights={lights} bus={bus()} puts={len(PUTS)}")


if MODE == "main":
    try:
        import main  # noqa: F401  (runs the firmware's main loop until it resets)
    except Reset as err:
        print("# reset:", err)
    report("end")
else:
    import hw_rp2040

    hw = hw_rp2040.Hardware()
    report("boot")
    hw.set_pattern(0xA5)
    report("pattern165")
    hw.set_pattern(0x3C)
    report("pattern60")
    hw.set_light(3)
    report("light3")
    hw.set_light(0)
    report("light0")
    exp_in = PINS[14]
    for level in (1, 0, 1, 0):
        exp_in.level = level
        exp_in.handler(exp_in)
    edges = hw.read_exposure_edges()
    print("# edges", [e[0] for e in edges], len(edges), hw.read_exposure_edges())
    for _ in range(100):
        exp_in.handler(exp_in)
    print("# ring", len(hw.read_exposure_edges()), "lost", hw._edge_lost)
