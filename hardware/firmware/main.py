# Entry point of the pattern controller firmware on the RP2040 (MicroPython runs main.py at boot).
#
# The loop feeds bytes from USB to the state machine, polls it as fast as it can (the poll
# times the exposures in leader mode and reads the camera's edges in follower mode) and feeds the
# chip's hardware watchdog: if the firmware ever hangs, the RP2040 resets and every output pin
# returns to its power-on state (low: light off). The protocol's own watchdog (WDOG) covers a
# silent host.

import time

import hw_rp2040
import machine
import pattern_core

HW_WATCHDOG_MS = 2000


def run():
    hw = hw_rp2040.Hardware()
    if hw.safe_boot_requested():
        hw.release()
        return  # MicroPython's REPL takes over the USB serial link (mpremote works)
    core = pattern_core.PatternCore(hw)
    wdt = machine.WDT(timeout=HW_WATCHDOG_MS)
    try:
        while True:
            data = hw.read_input()
            if data:
                core.feed(data)
            core.poll()
            wdt.feed()
            if hw.repl_requested:
                hw.reboot_to_repl()
    finally:
        hw.all_off()
        time.sleep_ms(10)
        machine.reset()


run()
