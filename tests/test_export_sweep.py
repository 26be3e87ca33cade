"""Regression tests from a sweep of ``scope export-video`` over presets, layouts and inputs."""

from __future__ import annotations

import numpy as np

from scope.cli import main
from scope.export.clip import build_renderer
from scope.export.timing import format_timestamp


def test_timestamps_count_from_the_first_frame():
    # OME DeltaT counts from the experiment's start: a 5 s run recorded 100 s in must be
    # labelled 0.0 .. 4.5 s, not "1:40" .. "1:44" (whole seconds: two 0.5 s frames alike)
    frames = np.random.default_rng(0).random((10, 48, 48)).astype(np.float32)
    times = 100.0 + 0.5 * np.arange(10)
    renderer = build_renderer(frames, preset="square", pixel_size_nm=65, timestamps_s=times)
    assert renderer.show_time
    labels = [format_timestamp(t, renderer.total_s) for t in renderer.timestamps_s]
    assert labels[0] == "t = 0.0 s"
    assert labels[3] == "t = 1.5 s"
    assert len(set(labels)) == 10


def test_overlay_on_a_raw_run_does_not_suggest_axes(tmp_path, capsys):
    # --axes is refused for raw runs: the refusal of --layout overlay must not suggest it
    raw = "tests/data/bsim-hela-mitochondria/raw_images.tif"
    args = ["export-video", raw, "--raw", "--na", "1.3", "--wavelength", "660"]
    args += ["--pixel-size", "65", "--layout", "overlay", "-o", str(tmp_path / "c.mp4")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--layout overlay" in err and "one channel" in err
    assert "--axes" not in err


def test_a_gif_cut_to_its_size_cap_reports_the_frames_it_holds(tmp_path, capsys):
    """A GIF over its size cap keeps every k-th frame; the summary line still gave the planned
    count (120 frames for a file of 60)."""
    import re

    import numpy as np
    import tifffile
    from PIL import Image

    from scope.cli import main

    still = np.random.default_rng(0).random((480, 480)).astype(np.float32)  # incompressible
    tifffile.imwrite(tmp_path / "noise.tif", still)
    out = tmp_path / "noise.gif"
    assert main(["export-video", str(tmp_path / "noise.tif"), "-o", str(out)]) == 0
    said = int(re.search(r"(\d+) frames", capsys.readouterr().out).group(1))
    with Image.open(out) as gif:
        assert said == gif.n_frames
