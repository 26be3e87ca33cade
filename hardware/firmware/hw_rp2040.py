# ruff: noqa: F821  (PIO assembler names exist only inside @rp2.asm_pio under MicroPython)
# Hardware layer of the pattern controller for the RP2040 (Raspberry Pi Pico) under MicroPython.
#
# It gives pattern_core.PatternCore the pins, the clock and the USB serial link. The emulator in
# scope.devices.emulator provides the same interface with simulated pins (SimulatedHardware).
#
# Pins (3.3 V logic; see README.md for wiring and level shifting):
#   GP2        camera trigger output        high while the camera should expose (leader mode)
#   GP3        pattern advance output       10 us pulse (PIO) after every pattern change
#   GP4..GP11  pattern index bus (8 bit)    index of the pattern shown, LSB on GP4
#   GP12,GP13  light channel enables        LED driver / laser TTL modulation inputs
#   GP14       camera exposure-active input (follower mode), both edges captured by IRQ
#   GP15       safe-boot input              tie to GND at power-up to stay in the REPL
#   GP25       on-board LED                 lit while any light channel is on

import os
import select
import sys
import time

import machine
import micropython
import rp2

TRIGGER_PIN = 2
ADVANCE_PIN = 3
BUS_FIRST_PIN = 4
BUS_BITS = 8
LIGHT_PINS = (12, 13)
EXPOSURE_IN_PIN = 14
SAFE_BOOT_PIN = 15
LED_PIN = 25
ADVANCE_PULSE_US = 10
REPL_FLAG = "repl.flag"

_SIO_BASE = 0xD0000000
_GPIO_OUT = _SIO_BASE + 0x010
_GPIO_OUT_XOR = _SIO_BASE + 0x01C
_EDGE_SLOTS = 64


@rp2.asm_pio(set_init=rp2.PIO.OUT_LOW)
def _pulse_program():
    # one pulse per word put into the FIFO; the word is the pulse length in PIO cycles (1 us)
    pull(block)
    mov(x, osr)
    set(pins, 1)
    label("hold")
    jmp(x_dec, "hold")
    set(pins, 0)


class Hardware:
    """Pins, clock and USB serial of the RP2040 board, in the interface PatternCore expects."""

    BOARD = "rp2040"
    N_PATTERNS = 1 << BUS_BITS
    N_CHANNELS = len(LIGHT_PINS)
    MIN_DWELL_US = 100
    MIN_EXPOSURE_US = 500
    TIMING_TOL_US = 200

    def __init__(self):
        # outputs first, all low: the light is dark from the first instruction on
        self._lights = [machine.Pin(p, machine.Pin.OUT, value=0) for p in LIGHT_PINS]
        self._led = machine.Pin(LED_PIN, machine.Pin.OUT, value=0)
        self._trigger = machine.Pin(TRIGGER_PIN, machine.Pin.OUT, value=0)
        self._bus = [
            machine.Pin(BUS_FIRST_PIN + i, machine.Pin.OUT, value=0) for i in range(BUS_BITS)
        ]
        self._bus_mask = ((1 << BUS_BITS) - 1) << BUS_FIRST_PIN
        self._advance = rp2.StateMachine(
            0, _pulse_program, freq=1000000, set_base=machine.Pin(ADVANCE_PIN)
        )
        self._advance.active(1)
        self._safe_boot = machine.Pin(SAFE_BOOT_PIN, machine.Pin.IN, machine.Pin.PULL_UP)
        # exposure-active input: edges captured in a hard IRQ into preallocated slots
        self._edge_level = [0] * _EDGE_SLOTS
        self._edge_tick = [0] * _EDGE_SLOTS
        self._edge_head = 0
        self._edge_tail = 0
        self._edge_lost = 0
        self._exp_in = machine.Pin(EXPOSURE_IN_PIN, machine.Pin.IN, machine.Pin.PULL_DOWN)
        self._exp_in.irq(
            handler=self._on_edge,
            trigger=machine.Pin.IRQ_RISING | machine.Pin.IRQ_FALLING,
            hard=True,
        )
        # USB serial: raw bytes, Ctrl-C is data (not KeyboardInterrupt)
        micropython.kbd_intr(-1)
        self._stdin = sys.stdin.buffer
        self._stdout = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)
        self.repl_requested = False

    # --- clock
    def ticks_us(self):
        return time.ticks_us()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    # --- serial link
    def write(self, data):
        self._stdout.write(data)

    def read_input(self, limit=256):
        """Bytes waiting on the USB serial link (never blocks)."""
        out = b""
        while len(out) < limit and self._poll.poll(0):
            b = self._stdin.read(1)
            if not b:
                break
            out += b
        return out

    # --- outputs
    def set_pattern(self, index):
        cur = machine.mem32[_GPIO_OUT]
        want = (index << BUS_FIRST_PIN) & self._bus_mask
        machine.mem32[_GPIO_OUT_XOR] = (cur ^ want) & self._bus_mask  # all bus bits at once
        self._advance.put(ADVANCE_PULSE_US)

    def set_trigger(self, level):
        self._trigger.value(1 if level else 0)

    def set_light(self, mask):
        for i in range(len(self._lights)):
            self._lights[i].value((mask >> i) & 1)
        self._led.value(1 if mask else 0)

    # --- follower input
    def _on_edge(self, pin):
        t = time.ticks_us()
        nxt = (self._edge_head + 1) % _EDGE_SLOTS
        if nxt == self._edge_tail:
            self._edge_lost += 1
            return
        self._edge_level[self._edge_head] = pin.value()
        self._edge_tick[self._edge_head] = t
        self._edge_head = nxt

    def read_exposure_edges(self):
        out = []
        state = machine.disable_irq()
        try:
            while self._edge_tail != self._edge_head:
                i = self._edge_tail
                out.append((self._edge_level[i] == 1, self._edge_tick[i]))
                self._edge_tail = (i + 1) % _EDGE_SLOTS
        finally:
            machine.enable_irq(state)
        return out

    # --- leaving the firmware
    def safe_boot_requested(self):
        """GP15 tied to GND, or a REPL command before the last reset."""
        if self._safe_boot.value() == 0:
            return True
        try:
            os.remove(REPL_FLAG)
            return True
        except OSError:
            return False

    def enter_repl(self):
        # answered first, then main.py writes the flag and resets into the REPL
        self.repl_requested = True
        return True

    def reboot_to_repl(self):
        self.all_off()
        with open(REPL_FLAG, "w") as f:
            f.write("1")
        time.sleep_ms(50)  # let the OK reach the host
        machine.reset()

    def all_off(self):
        self.set_light(0)
        self._trigger.value(0)

    def release(self):
        """Everything dark and the serial link back to the REPL's hands."""
        self.all_off()
        self._exp_in.irq(handler=None)
        self._advance.active(0)
        micropython.kbd_intr(3)
