"""Every preset's output decoded back (PyAV, and ffprobe where installed): codec, profile,
pixel format, size, frame rate, frame count, duration, colour tags and faststart; the bitrate
cap; colours surviving the BT.709 round trip."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from _video_probe import as_fraction, ffprobe, mp4_top_level_boxes, probe  # noqa: E402
from scope.errors import ConfigurationError, DataFormatError  # noqa: E402
from scope.export import VideoPreset, build_renderer, export_video, get_preset  # noqa: E402
from scope.export.encode import Mp4Writer, bitrate_cap_kbps  # noqa: E402
from scope.export.presets import SafeArea  # noqa: E402
from scope.sim.samples import make_sample  # noqa: E402


@pytest.fixture(scope="module")
def series() -> np.ndarray:
    """A small drifting filament sample, 24 frames of 96x96."""
    base = make_sample((96, 192), "mixed", seed=3)
    return np.stack([base[:, k : k + 96] for k in range(24)]).astype(np.float32)


# input, timing and expected (mode, speed) per preset: each clip lasts the 3 s minimum
CASES = {
    "reel": ({"frame_interval_s": 0.05}, "slowed", 1.2 / 3.0),  # 24 x 0.05 s = 1.2 s
    "square": ({"still": True, "duration_s": 3.0}, "still", None),
    "portrait": ({"frame_interval_s": 0.05, "short_mode": "loop"}, "looped", 1.0),
    "landscape": ({"frame_interval_s": 5.0, "duration_s": 3.0}, "condensed", 120 / 3.0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_mp4_preset_decodes_to_spec(name, series, tmp_path):
    preset = get_preset(name)
    options, mode, speed = CASES[name]
    options = dict(options)
    frames = series[0] if options.pop("still", False) else series
    out = tmp_path / f"{name}.mp4"
    result = export_video(
        frames,
        out,
        preset=name,
        pixel_size_nm=32.5,
        title="Test clip",
        credit="scope tests",
        **options,
    )
    assert result.mode == mode
    if speed is None:
        assert result.speed_factor is None
    else:
        assert result.speed_factor == pytest.approx(speed, rel=1e-6)

    p = probe(out)
    n_expected = 90 if mode != "looped" else 108  # whole loops: 3 x 36 frames (1.2 s each)
    assert p["format"].startswith("mov")
    assert p["codec"] == "h264"
    assert p["profile"] == "High"
    assert p["pix_fmt"] == "yuv420p"
    assert p["decoded_pix_fmt"] == "yuv420p"
    assert (p["width"], p["height"]) == preset.size
    assert p["width"] % 2 == 0
    assert p["height"] % 2 == 0
    assert as_fraction(p["average_rate"]) == Fraction(30)
    assert p["n_frames"] == result.n_frames == n_expected
    # constant frame rate: every frame 1/30 s after the previous one
    np.testing.assert_allclose(np.diff(p["pts_s"]), 1 / 30, atol=1e-6)
    assert p["duration_s"] == pytest.approx(n_expected / 30, abs=1e-3)
    assert (p["color_primaries"], p["color_trc"], p["colorspace"]) == (1, 1, 1)  # BT.709
    assert p["color_range"] == 1  # limited range
    boxes = mp4_top_level_boxes(out)
    assert "moov" in boxes
    assert "mdat" in boxes
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # faststart
    assert out.stat().st_size <= preset.max_file_mb * 1e6
    assert not list(tmp_path.glob(".*.part"))

    info = ffprobe(out)
    if info is not None:
        assert info["codec_name"] == "h264"
        assert info["profile"] == "High"
        assert info["pix_fmt"] == "yuv420p"
        assert (info["width"], info["height"]) == preset.size
        assert info["avg_frame_rate"] == "30/1"
        assert int(info["nb_read_frames"]) == n_expected
        assert info["color_primaries"] == "bt709"
        assert info["color_space"] == "bt709"


def test_gif_preset_decodes_to_spec(series, tmp_path):
    preset = get_preset("gif")
    out = tmp_path / "chat.gif"
    result = export_video(series, out, preset="gif", pixel_size_nm=32.5, frame_interval_s=0.05)
    p = probe(out)
    assert p["codec"] == "gif"
    assert (p["width"], p["height"]) == preset.size == (480, 480)
    # 2 s minimum at 20 fps = 40 frames of 5 cs; the GIF writer stores a run of identical
    # frames (a slowed clip holds each source frame) once, with the summed delay
    ticks = p["frame_durations_s"] / 0.05
    np.testing.assert_allclose(ticks, np.round(ticks), atol=1e-9)
    assert int(np.round(ticks).sum()) == result.n_frames == 40
    assert p["n_frames"] == 24  # one stored frame per source frame
    assert p["duration_s"] == pytest.approx(2.0, abs=1e-6)
    assert out.stat().st_size <= preset.max_file_mb * 1e6
    # the GIF's last frame matches the rendered one up to the 255-colour palette
    rendered = build_renderer(
        series, preset="gif", pixel_size_nm=32.5, frame_interval_s=0.05
    ).frame(result.n_frames - 1)
    assert np.abs(p["last_frame"].astype(int) - rendered).mean() < 4


def test_bitrate_cap_keeps_noise_under_the_size_limit(tmp_path):
    """Pure noise is the worst case for an encoder; the VBV cap must still hold the limit."""
    tiny = VideoPreset(
        "tiny",
        320,
        240,
        "mp4",
        30,
        1.0,
        10.0,
        2.0,
        2.0,
        max_file_mb=0.25,
        max_bitrate_kbps=50_000,
        safe_area=SafeArea(8, 8, 8, 8),
    )
    roomy = VideoPreset(
        "roomy",
        320,
        240,
        "mp4",
        30,
        1.0,
        10.0,
        2.0,
        2.0,
        max_file_mb=100.0,
        max_bitrate_kbps=50_000,
        safe_area=SafeArea(8, 8, 8, 8),
    )
    noise = np.random.default_rng(0).random((60, 48, 64)).astype(np.float32)
    sizes = {}
    for preset in (tiny, roomy):
        out = tmp_path / f"{preset.name}.mp4"
        export_video(noise, out, preset=preset, frame_interval_s=1 / 30, scale_bar=False)
        sizes[preset.name] = out.stat().st_size
        assert probe(out)["n_frames"] == 60
    assert sizes["roomy"] > 2 * tiny.max_file_mb * 1e6  # uncapped, noise is big ...
    assert sizes["tiny"] <= tiny.max_file_mb * 1e6  # ... and the cap holds it under the limit
    assert bitrate_cap_kbps(get_preset("reel"), 90.0) < get_preset("reel").max_bitrate_kbps


def test_gif_size_cap_holds_by_giving_up_colours_frames_and_size(tmp_path, caplog):
    """Noise in a GIF is far over a small cap; the writer re-encodes until it fits, keeping the
    duration, and says what it gave up."""
    import logging
    from dataclasses import replace

    noise = np.random.default_rng(1).random((40, 48, 64)).astype(np.float32)
    roomy = replace(get_preset("gif"), name="roomy-gif", width_px=240, height_px=240,
                    max_file_mb=100.0)  # fmt: skip
    tight = replace(roomy, name="tight-gif", max_file_mb=0.4)
    out = {}
    for preset in (roomy, tight):
        out[preset.name] = tmp_path / f"{preset.name}.gif"
        with caplog.at_level(logging.WARNING, logger="scope.export.encode"):
            export_video(noise, out[preset.name], preset=preset, frame_interval_s=0.05,
                         scale_bar=False)  # fmt: skip
    full, capped = probe(out["roomy-gif"]), probe(out["tight-gif"])
    assert out["roomy-gif"].stat().st_size > 2 * tight.max_file_mb * 1e6  # noise is big ...
    assert out["tight-gif"].stat().st_size <= tight.max_file_mb * 1e6  # ... the cap holds
    assert capped["duration_s"] == pytest.approx(full["duration_s"], abs=0.05)
    assert capped["n_frames"] < full["n_frames"] or capped["width"] < full["width"]
    assert any("to stay under" in r.getMessage() for r in caplog.records)


def test_colours_survive_bt709_round_trip(tmp_path):
    """Flat colour patches come back as rendered (the RGB->YUV matrix matches the tags)."""
    preset = VideoPreset(
        "patch", 128, 64, "mp4", 30, 0.1, 10.0, 1.0, 1.0, 10.0, 8000, SafeArea(4, 4, 4, 4)
    )
    colours = np.array(
        [
            [230, 40, 40],
            [40, 200, 60],
            [50, 60, 220],
            [250, 250, 250],
            [255, 0, 255],
            [0, 255, 255],
            [20, 20, 20],
            [128, 128, 128],
        ],
        np.uint8,
    )
    frame = np.repeat(np.repeat(colours[None], 64, axis=0), 16, axis=1)  # 8 patches 16 px wide
    out = tmp_path / "patches.mp4"
    with Mp4Writer(out, preset, 0.2) as writer:
        for _ in range(6):
            writer.write(frame)
    decoded = probe(out)["last_frame"].astype(int)
    centres = decoded[24:40, [8 + 16 * k for k in range(8)]].mean(axis=0)
    np.testing.assert_allclose(centres, colours, atol=6)


def test_writer_refuses_bad_frames_and_leaves_no_file(tmp_path):
    out = tmp_path / "bad.mp4"
    preset = get_preset("square")
    writer = Mp4Writer(out, preset, 3.0)
    with pytest.raises(DataFormatError, match="expected uint8"):
        writer.write(np.zeros((1080, 1078, 3), np.uint8))
    assert not out.exists()
    assert not list(tmp_path.iterdir())
    with pytest.raises(DataFormatError, match="no frames"), Mp4Writer(out, preset, 3.0):
        pass
    assert not list(tmp_path.iterdir())


def test_presets_are_even_and_unknown_names_are_refused():
    with pytest.raises(ConfigurationError, match="even"):
        VideoPreset("odd", 1081, 1920, "mp4", 30, 3, 90, 15, 6, 64, 8000, SafeArea(0, 0, 0, 0))
    with pytest.raises(ConfigurationError, match="reel"):
        get_preset("tiktok4k")


def test_no_part_file_is_left_when_the_clip_cannot_be_put_in_place(tmp_path):
    """The output became a folder while the clip was encoded: the error names it and the
    temporary .part file is removed (it used to stay behind)."""
    from scope.errors import ScopeError

    preset = VideoPreset("tiny", 64, 64, "mp4", 30, 0.1, 10, 1, 1, 10, 1000, SafeArea(4, 4, 4, 4))
    out = tmp_path / "clip.mp4"
    writer = Mp4Writer(out, preset, 0.2)
    for _ in range(3):
        writer.write(np.zeros((64, 64, 3), np.uint8))
    out.mkdir()
    with pytest.raises(ScopeError, match=r"cannot write .*clip\.mp4.*it is a folder"):
        writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"] and out.is_dir()
    with pytest.raises(ScopeError, match="it is a folder"):
        Mp4Writer(out, preset, 0.2)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_export_video_checks_the_path_before_rendering(tmp_path, monkeypatch):
    """From Python too: a folder, a missing folder or (with overwrite=False) an existing file
    is refused before any frame is rendered; the default still replaces an existing clip."""
    import scope.export.clip as clip

    rendered = []
    monkeypatch.setattr(clip, "build_renderer", lambda *a, **k: rendered.append(1))
    frames = np.zeros((3, 32, 32), np.float32)
    with pytest.raises(ConfigurationError, match="is a folder"):
        export_video(frames, tmp_path, preset="square")
    with pytest.raises(ConfigurationError, match=r"the folder .*nodir does not exist"):
        export_video(frames, tmp_path / "nodir" / "x.mp4", preset="square")
    (tmp_path / "old.mp4").write_bytes(b"keep me")
    with pytest.raises(ConfigurationError, match=r"old\.mp4 exists"):
        export_video(frames, tmp_path / "old.mp4", preset="square", overwrite=False)
    assert rendered == [] and (tmp_path / "old.mp4").read_bytes() == b"keep me"
