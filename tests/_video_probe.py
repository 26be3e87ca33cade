"""Helpers for the video export tests: decode a clip with PyAV (and ffprobe where installed)
and list the top-level boxes of an MP4 file."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np


def mp4_top_level_boxes(path: Path) -> list[str]:
    """Types of the top-level ISO-BMFF boxes, in file order (ISO/IEC 14496-12, 4.2)."""
    data = Path(path).read_bytes()
    boxes, i = [], 0
    while i + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        if size == 1:
            size = struct.unpack(">Q", data[i + 8 : i + 16])[0]
        elif size == 0:
            size = len(data) - i
        if size < 8:
            raise ValueError(f"corrupt box at byte {i}")
        boxes.append(kind.decode("latin-1"))
        i += size
    assert i == len(data), "boxes do not tile the file"
    return boxes


def probe(path: Path, *, keep: tuple[int, ...] = ()) -> dict:
    """Decode every frame; codec facts, frame count, timing and the frames asked for (RGB)."""
    import av

    out: dict = {"frames": {}}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        cc = stream.codec_context
        out.update(
            codec=cc.name,
            profile=cc.profile,
            width=stream.width,
            height=stream.height,
            pix_fmt=cc.pix_fmt,
            average_rate=stream.average_rate,
            time_base=stream.time_base,
            color_primaries=cc.color_primaries,
            color_trc=cc.color_trc,
            colorspace=cc.colorspace,
            color_range=cc.color_range,
            format=container.format.name,
        )
        pts, durations = [], []
        n = 0
        for frame in container.decode(stream):
            pts.append(frame.pts)
            durations.append(frame.duration)
            if n in keep:
                out["frames"][n] = frame.to_ndarray(format="rgb24")
            last = frame
            n += 1
        out["last_frame"] = last.to_ndarray(format="rgb24")
        out["decoded_pix_fmt"] = last.format.name
    tb = out["time_base"]
    out["n_frames"] = n
    out["pts_s"] = np.array([float(p * tb) for p in pts])
    out["frame_durations_s"] = np.array([float((d or 0) * tb) for d in durations])
    out["duration_s"] = float(out["pts_s"][-1] + out["frame_durations_s"][-1] - out["pts_s"][0])
    return out


def ffprobe(path: Path) -> dict | None:
    """ffprobe's view of the first video stream, or None where ffprobe is not installed."""
    exe = shutil.which("ffprobe")
    if exe is None:
        return None
    text = subprocess.run(
        [
            exe,
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,profile,pix_fmt,width,height,avg_frame_rate,nb_read_frames,"
            "color_primaries,color_transfer,color_space",
            "-of",
            "json",
            str(path),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(text)["streams"][0]


def as_fraction(rate) -> Fraction:
    return Fraction(rate.numerator, rate.denominator)
