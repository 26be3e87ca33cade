"""The budget build's projector program (hardware/pattern-display) shows the right pattern.

Runs the program's event loop against a file standing in for the Linux framebuffer, with the
patterns ``scope patterns`` writes for the budget preset, in every pixel format a Pi's
framebuffer may have; the GPIO edge source itself needs a Raspberry Pi.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scope.cli import main
from scope.sim.gratings import measure_grating

ROOT = Path(__file__).resolve().parents[1]


def _program():
    path = ROOT / "hardware" / "pattern-display" / "pattern_display.py"
    spec = importlib.util.spec_from_file_location("pattern_display", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def budget_patterns(tmp_path_factory):
    out = tmp_path_factory.mktemp("patterns")
    assert main(["-q", "patterns", "--preset", str(ROOT / "hardware/presets/budget.toml"),
                 "-o", str(out)]) == 0  # fmt: skip
    return out


def test_scope_patterns_writes_the_gratings_it_describes(budget_patterns, tmp_path):
    doc = json.loads((budget_patterns / "patterns.json").read_text())
    assert doc["device"]["width_px"] == 640 and doc["device"]["height_px"] == 360
    assert doc["kind"] == "grey" and doc["sequence"] == list(range(9))
    for i, name in enumerate(doc["files"]):
        image = np.asarray(Image.open(budget_patterns / name))
        assert image.shape == (360, 640) and image.dtype == np.uint8
        grating = doc["gratings"][i // 3]
        angle, period, _ = measure_grating(image)
        assert abs(angle - grating["angle_deg"] % 180) < 0.05
        assert period == pytest.approx(grating["period_px"], rel=2e-3)
    for grating in doc["gratings"]:  # quantised within the tolerances on the pixel lattice
        assert abs(grating["angle_error_deg"]) <= 0.1 and abs(grating["period_error"]) <= 2e-3
    # at the sample: the period scope plan predicts for this build (preset [pattern] period_nm)
    for a in doc["at_sample"]["angles"]:
        assert a["period_nm"] == pytest.approx(322.6, rel=3e-3)
    # a DMD build gets 1-bit gratings; a device size that is not WxH is refused clearly
    dmd = tmp_path / "dmd"
    better = str(ROOT / "hardware/presets/better.toml")
    assert main(["-q", "patterns", "--preset", better, "-o", str(dmd),
                 "--device-size", "320x180"]) == 0  # fmt: skip
    assert Image.open(dmd / "pattern_000.png").mode == "1"
    assert main(["-q", "patterns", "--preset", better, "-o", str(dmd),
                 "--device-size", "320"]) == 2  # fmt: skip


def _decode(data: bytes, bpp: int, stride: int, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    rows = np.frombuffer(data, np.uint8).reshape(h, stride)[:, : w * bpp // 8]
    if bpp == 8:
        return rows
    if bpp == 16:
        return ((rows.view("<u2") >> 5) & 0x3F).astype(np.uint8) << 2  # the 6-bit green
    px = rows.reshape(h, w, bpp // 8)
    assert (px[:, :, 0] == px[:, :, 1]).all() and (px[:, :, 1] == px[:, :, 2]).all()
    return px[:, :, 1]


@pytest.mark.parametrize(("bpp", "pad"), [(8, 0), (16, 64), (24, 0), (32, 0), (32, 128)])
def test_each_pulse_shows_the_pattern_the_controller_names(budget_patterns, tmp_path, bpp, pad):
    program = _program()
    patterns = program.read_patterns(budget_patterns)
    assert len(patterns) == 9
    h, w = patterns[0].shape
    stride = w * bpp // 8 + pad
    fb_path = tmp_path / "fb0"
    fb_path.write_bytes(bytes(stride * h))
    fb = program.Framebuffer(str(fb_path), width=w, height=h, bits_per_pixel=bpp, stride=stride)
    expected_mask = 0xFC if bpp == 16 else 0xFF

    shown: list[np.ndarray] = []

    def events(seq):
        for event in seq:
            yield event
            # resumed: the loop has written this event's frame
            shown.append(_decode(fb_path.read_bytes(), bpp, stride, (h, w)))

    # index bus wired: the pattern the controller names, whatever came before
    bus = [0, 1, 2, 5, 8, 3, 0]
    assert program.run(patterns, fb, events(bus)) == len(bus)
    for got, index in zip(shown, bus):
        np.testing.assert_array_equal(got, patterns[index] & expected_mask)
    # no bus: counting pulses from pattern 0
    shown.clear()
    assert program.run(patterns, fb, events([None] * 11)) == 11
    for k, got in enumerate(shown):
        np.testing.assert_array_equal(got, patterns[k % 9] & expected_mask)
    fb.close()


def test_index_bus_is_read_lsb_first():
    program = _program()
    assert program.decode_index([1, 0, 1, 0, 0, 0, 0, 0]) == 5
    assert program.decode_index([0, 0, 0, 1]) == 8
    assert program.decode_index([]) == 0
