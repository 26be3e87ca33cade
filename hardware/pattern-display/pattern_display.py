"""Show SIM patterns on a projector driven by a Raspberry Pi, one per controller pulse.

The budget build's projector (TI DLP2000 EVM) is a display of the Raspberry Pi. The pattern
controller (the Pico) puts the pattern index on its index bus (GP4-GP11, LSB on GP4) and then
pulses its advance line (GP3). This program waits for each rising edge of the advance line,
reads the index bus and writes that pattern straight into the Linux framebuffer — no desktop,
no compositor, so the projector shows it in the next video frame. Without an index bus it
counts pulses instead (the first pulse of a run shows pattern 0), which loses step if a pulse
is missed: wire the bus if you can.

The patterns come from ``scope patterns --preset my_setup.toml -o patterns/`` on the host
computer; copy that folder to the Pi.

Run on the Pi (Raspberry Pi OS Lite, python3-numpy, python3-pil, python3-libgpiod >= 2)::

    sudo python3 pattern_display.py patterns/ --advance 17 --index 5,6,12,13,16,19,20,21

``--advance`` and ``--index`` are the Pi's GPIO numbers (BCM) the Pico's GP3 and GP4..GP11 are
wired to (3.3 V on both sides, grounds joined). ``--step`` shows the patterns one per Enter
key instead, to focus and align the projector without the controller.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def read_patterns(folder: str | Path) -> list[np.ndarray]:
    """The pattern frames, in sequence order (``patterns.json``'s file list)."""
    folder = Path(folder)
    manifest = folder / "patterns.json"
    if manifest.is_file():
        names = json.loads(manifest.read_text())["files"]
    else:
        names = sorted(p.name for p in folder.glob("pattern_*.png"))
    if not names:
        raise SystemExit(f"no patterns in {folder}: run `scope patterns ... -o {folder}` first")
    return [np.asarray(Image.open(folder / name).convert("L")) for name in names]


def decode_index(levels: Sequence[int]) -> int:
    """Pattern index from the index-bus levels, least significant bit first."""
    return sum((1 << i) for i, level in enumerate(levels) if level)


class Framebuffer:
    """A Linux framebuffer device (``/dev/fbN``) written with ``pwrite``.

    Parameters
    ----------
    path : str
        The device (or a plain file of the right size, for tests).
    width, height, bits_per_pixel, stride : int, optional
        Read from ``/sys/class/graphics/fbN`` when not given.
    """

    def __init__(
        self,
        path: str = "/dev/fb0",
        *,
        width: int | None = None,
        height: int | None = None,
        bits_per_pixel: int | None = None,
        stride: int | None = None,
    ) -> None:
        sysfs = Path("/sys/class/graphics") / Path(path).name
        if width is None or height is None:
            width, height = (int(v) for v in (sysfs / "virtual_size").read_text().split(","))
        if bits_per_pixel is None:
            bits_per_pixel = int((sysfs / "bits_per_pixel").read_text())
        if bits_per_pixel not in (8, 16, 24, 32):
            raise SystemExit(f"{path}: {bits_per_pixel} bits per pixel is not supported")
        self.width, self.height, self.bpp = width, height, bits_per_pixel
        if stride is None:
            f = sysfs / "stride"
            stride = int(f.read_text()) if f.exists() else width * bits_per_pixel // 8
        self.stride = stride
        self.fd = os.open(path, os.O_RDWR)

    def encode(self, grey: np.ndarray) -> bytes:
        """The bytes of a grey image in this framebuffer's format, top-left aligned, black
        around (a pattern pixel must land on the same projector pixel every time)."""
        h, w = self.height, self.width
        canvas = np.zeros((h, w), np.uint8)
        gh, gw = min(h, grey.shape[0]), min(w, grey.shape[1])
        canvas[:gh, :gw] = grey[:gh, :gw]
        if self.bpp == 8:
            pixels = canvas
        elif self.bpp == 16:  # RGB565
            g = canvas.astype(np.uint16)
            pixels = ((g >> 3) << 11) | ((g >> 2) << 5) | (g >> 3)
            pixels = pixels.astype("<u2")
        elif self.bpp == 24:  # BGR888
            pixels = np.repeat(canvas[:, :, None], 3, axis=2)
        else:  # XRGB8888, little endian: B, G, R, X
            pixels = np.repeat(canvas[:, :, None], 4, axis=2)
            pixels[:, :, 3] = 255
        rows = pixels.reshape(h, -1).view(np.uint8)
        if rows.shape[1] < self.stride:  # padded scan lines
            rows = np.pad(rows, ((0, 0), (0, self.stride - rows.shape[1])))
        return rows.tobytes()

    def write(self, data: bytes) -> None:
        os.pwrite(self.fd, data, 0)

    def close(self) -> None:
        os.close(self.fd)


def gpio_events(chip: str, advance: int, index: Sequence[int]) -> Iterator[int | None]:
    """Pattern index (or None without an index bus) at each rising edge of ``advance``."""
    import gpiod  # python3-libgpiod >= 2 (Raspberry Pi OS bookworm)
    from gpiod.line import Direction, Edge

    settings = {advance: gpiod.LineSettings(direction=Direction.INPUT, edge_detection=Edge.RISING)}
    for line in index:
        settings[line] = gpiod.LineSettings(direction=Direction.INPUT)
    with gpiod.request_lines(
        f"/dev/{chip}", consumer="scope-pattern-display", config=settings
    ) as request:
        while True:
            if request.wait_edge_events(timeout=1.0):
                request.read_edge_events()
                if index:
                    values = request.get_values(list(index))
                    yield decode_index([v == gpiod.line.Value.ACTIVE for v in values])
                else:
                    yield None


def keyboard_events() -> Iterator[int | None]:
    """One advance per line on stdin (a number: show that pattern)."""
    for line in sys.stdin:
        text = line.strip()
        yield int(text) if text.isdigit() else None


def run(patterns: Sequence[np.ndarray], display: Framebuffer, events: Iterable[int | None]) -> int:
    """Show a pattern for every event; returns how many were shown."""
    frames = [display.encode(p) for p in patterns]  # converted once: each switch is one write
    n = len(frames)
    count = 0
    for event in events:
        index = count % n if event is None else event
        if not 0 <= index < n:
            sys.stderr.write(f"index {index} from the controller, {n} patterns loaded\n")
            continue
        display.write(frames[index])
        count += 1
    return count


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("patterns", help="folder written by `scope patterns`")
    ap.add_argument("--fb", default="/dev/fb0", help="framebuffer device (default /dev/fb0)")
    ap.add_argument("--chip", default="gpiochip0", help="GPIO chip (gpiochip4 on a Pi 5)")
    ap.add_argument("--advance", type=int, default=17, help="GPIO wired to the Pico's GP3")
    ap.add_argument("--index", default="", help="GPIOs wired to GP4..GP11, LSB first, commas")
    ap.add_argument("--step", action="store_true", help="advance on Enter instead of GPIO")
    args = ap.parse_args(argv)
    patterns = read_patterns(args.patterns)
    display = Framebuffer(args.fb)
    if (display.width, display.height) != patterns[0].shape[::-1]:
        sys.stderr.write(
            f"warning: the patterns are {patterns[0].shape[1]}x{patterns[0].shape[0]} but "
            f"{args.fb} is {display.width}x{display.height}: set the Pi's video mode to the "
            "projector's resolution\n"
        )
    index = [int(v) for v in args.index.split(",") if v.strip()]
    events = keyboard_events() if args.step else gpio_events(args.chip, args.advance, index)
    try:
        display.write(display.encode(patterns[0]))
        run(patterns, display, events)
    except KeyboardInterrupt:
        pass
    finally:
        display.write(display.encode(np.zeros_like(patterns[0])))  # dark when we stop
        display.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
