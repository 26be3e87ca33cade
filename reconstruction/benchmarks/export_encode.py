"""Video export speed: a 10 s 1080x1920 (reel) clip at 30 fps, against real time.

Measures, in one run on the same input (a drifting 300-frame SIM-like series, 256x256):

1. **encode only**: 300 pre-rendered 1080x1920 frames through ``Mp4Writer`` (RGB->YUV BT.709
   conversion + libx264 at the shipped settings);
2. **render + encode**: ``export_video`` end to end (contrast, colormap, Lanczos upscaling,
   title/scale bar/timestamp/speed, encoding).

and prints wall time / clip length (below 1 = faster than real time; the requirement is < 2).

Usage: ``python reconstruction/benchmarks/export_encode.py [--x264-preset veryfast]``
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--x264-preset", default=None, help="override the shipped libx264 preset")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()

    from scope.export import build_renderer, export_video, get_preset
    from scope.export.encode import X264_PRESET, Mp4Writer
    from scope.sim.samples import make_sample

    preset = get_preset("reel")
    if not preset.min_duration_s <= args.seconds <= preset.max_duration_s:
        ap.error(
            f"--seconds must be between {preset.min_duration_s:g} and {preset.max_duration_s:g} "
            "(the reel preset's clip length: a shorter series is slowed or looped)"
        )
    n = round(args.seconds * preset.fps)
    x264 = args.x264_preset or X264_PRESET
    wide = make_sample((256, 256 + n), "mixed", seed=1)
    series = np.stack([wide[:, k : k + 256] for k in range(n)])  # 1 px drift per frame
    options = dict(
        preset="reel",
        pixel_size_nm=32.5,
        frame_interval_s=1 / 30,
        title="Benchmark clip",
        caption="10 s at 30 fps",
        credit="scope",
    )

    renderer = build_renderer(series, **options)
    assert renderer.n_frames == n, renderer.n_frames
    t0 = time.perf_counter()
    frames = [renderer.frame(i) for i in range(n)]
    render_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "encode.mp4"
        t0 = time.perf_counter()
        with Mp4Writer(out, preset, args.seconds, x264_preset=x264) as writer:
            for frame in frames:
                writer.write(frame)
        encode_s = time.perf_counter() - t0
        size_mb = out.stat().st_size / 1e6
        del frames

        t0 = time.perf_counter()
        result = export_video(
            series, Path(tmp) / "full.mp4", encoder_options={"x264_preset": x264}, **options
        )
        full_s = time.perf_counter() - t0

    clip_s = n / preset.fps
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; libx264 preset {x264}")
    print(f"clip: {preset.width_px}x{preset.height_px}, {n} frames, {clip_s:.1f} s")
    print(f"render only      {render_s:6.2f} s  ratio {render_s / clip_s:.2f}")
    print(f"encode only      {encode_s:6.2f} s  ratio {encode_s / clip_s:.2f}  ({size_mb:.1f} MB)")
    print(
        f"render + encode  {full_s:6.2f} s  ratio {full_s / clip_s:.2f}  "
        f"({result.size_bytes / 1e6:.1f} MB)"
    )


if __name__ == "__main__":
    main()
