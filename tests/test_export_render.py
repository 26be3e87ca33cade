"""Rendering: scale bar measured on the rendered (and decoded) frame, the wipe's end frames,
clip-wide contrast, safe areas, colormaps, fonts and timestamps."""

from __future__ import annotations

import numpy as np
import pytest

from scope.errors import ConfigurationError, DataFormatError
from scope.export import RenderStyle, VideoPreset, build_renderer, get_preset
from scope.export.colormaps import COLORMAPS, get_lut, srgb_to_oklab
from scope.export.layouts import ClipRenderer
from scope.export.presets import SafeArea
from scope.export.render import View, contrast_limits, nice_length_nm
from scope.export.text import get_font, printable, text_sprite
from scope.export.timing import format_timestamp
from scope.sim.samples import make_sample


def ruler_image(n: int = 200, cols: tuple[int, int] = (30, 130)) -> np.ndarray:
    """Dark image with two thin bright vertical lines a known number of pixels apart."""
    img = np.zeros((n, n), np.float32)
    img[:, cols[0]] = img[:, cols[1]] = 1.0
    img[0, 0] = 0.0
    return img


def line_centres(frame: np.ndarray, rows: slice) -> np.ndarray:
    """Sub-pixel x centres of the bright vertical lines, from a row-averaged profile."""
    profile = frame[rows].astype(float).mean(axis=(0, 2))
    profile = np.clip(profile - 0.2 * profile.max(), 0, None)
    on = profile > 0
    edges = np.flatnonzero(np.diff(on.astype(int)))
    starts, stops = edges[::2] + 1, edges[1::2] + 1
    x = np.arange(profile.size)
    return np.array(
        [(profile[a:b] * x[a:b]).sum() / profile[a:b].sum() for a, b in zip(starts, stops)]
    )


def white_run(frame: np.ndarray, region: tuple[slice, slice], threshold: int = 255) -> int:
    """Longest horizontal run of white pixels in ``region`` (the scale bar)."""
    white = (frame[region] >= threshold).all(axis=-1)
    best = 0
    for row in white:
        padded = np.concatenate([[0], row.astype(int), [0]])
        d = np.diff(padded)
        runs = np.flatnonzero(d == -1) - np.flatnonzero(d == 1)
        best = max(best, int(runs.max()) if runs.size else 0)
    return best


@pytest.mark.parametrize(
    ("preset", "pixel_size_nm", "still"),
    [
        ("square", 32.5, False),
        ("reel", 65.0 / 2, False),
        ("landscape", 110.3, False),
        ("portrait", 47.0, True),
    ],
)
def test_scale_bar_matches_physical_pixel_size(preset, pixel_size_nm, still):
    img = ruler_image()
    frames = img if still else np.stack([img, img])
    r = build_renderer(
        frames,
        preset=preset,
        pixel_size_nm=pixel_size_nm,
        colormap="grey",
        frame_interval_s=None if still else 1.0,
        duration_s=3.0,
    )
    for i in [0, r.n_frames - 1] if still else [0]:
        frame = r.frame(i)
        h, w = frame.shape[:2]
        # output pixels per nm, measured from the two lines 100 data pixels apart
        centres = line_centres(frame, slice(h // 2 - 20, h // 2 + 20))
        assert centres.size == 2, centres
        nm_per_out_px = 100 * pixel_size_nm / (centres[1] - centres[0])
        bar_px = white_run(frame, (slice(h // 2, h), slice(w // 2, w)))
        assert bar_px > 80
        assert bar_px * nm_per_out_px == pytest.approx(r.scale_bar_nm, rel=0.01)
    assert r.scale_bar_nm in {1000 * m * 10.0**k for m in (1, 2, 5) for k in range(-1, 3)}


def test_scale_bar_survives_encoding(tmp_path):
    av = pytest.importorskip("av")
    from _video_probe import probe

    small = VideoPreset(
        "small", 640, 480, "mp4", 30, 0.2, 10, 1, 1, 10, 4000, SafeArea(20, 20, 20, 20)
    )
    img = ruler_image()
    r = build_renderer(
        np.stack([img] * 6),
        preset=small,
        pixel_size_nm=40.0,
        colormap="grey",
        frame_interval_s=1 / 30,
    )
    from scope.export import write_clip

    out = write_clip(r, tmp_path / "bar.mp4")
    assert av is not None
    decoded = probe(out)["last_frame"]
    rendered = r.frame(r.n_frames - 1)
    region = (slice(240, 480), slice(320, 640))
    assert abs(white_run(decoded, region, 200) - white_run(rendered, region)) <= 1


def test_nice_lengths():
    assert nice_length_nm(1999) == 1000
    assert nice_length_nm(2000) == 2000
    assert nice_length_nm(4999) == 2000
    assert nice_length_nm(730) == 500
    assert nice_length_nm(12_000) == 10_000


def _wipe_setup(preset="reel", n_frames=3):
    sim = make_sample((128, 128), "filaments", seed=5)
    from scipy.ndimage import gaussian_filter

    wf = gaussian_filter(sim, 2.5)[::2, ::2]
    sims = np.stack([sim] * n_frames)
    wfs = np.stack([wf] * n_frames)
    wipe = build_renderer(
        sims,
        widefield=wfs,
        layout="wipe",
        preset=preset,
        pixel_size_nm=32.5,
        frame_interval_s=2.0,
        title="Before / after",
        credit="test",
    )
    return wipe, sims, wfs


def test_wipe_starts_on_widefield_and_ends_on_sim():
    wipe, _, _ = _wipe_setup()
    wf_view, sim_view = wipe.views
    assert wf_view.pixel_size_nm == pytest.approx(65.0)
    args = (wipe.preset, wipe.style, wipe.plan, wipe.timestamps_s)
    wf_only = ClipRenderer("sim", [wf_view], *args)
    sim_only = ClipRenderer("sim", [sim_view], *args)
    last = wipe.n_frames - 1
    np.testing.assert_array_equal(wipe.frame(0), wf_only.frame(0))
    np.testing.assert_array_equal(wipe.frame(last), sim_only.frame(last))
    # half way: SIM on the left of the divider, widefield on its right
    mid = wipe.n_frames // 2
    frame, a, b = wipe.frame(mid), sim_only.frame(mid), wf_only.frame(mid)
    rect = wipe.rects[0]
    rows = slice(rect[1] + 200, rect[3] - 200)
    x = rect[0] + round(0.5 * (rect[2] - rect[0]))
    np.testing.assert_array_equal(frame[rows, rect[0] + 5 : x - 20], a[rows, rect[0] + 5 : x - 20])
    np.testing.assert_array_equal(frame[rows, x + 20 : rect[2] - 5], b[rows, x + 20 : rect[2] - 5])
    assert not np.array_equal(a[rows], b[rows])


def test_wipe_end_frames_survive_encoding(tmp_path):
    pytest.importorskip("av")
    from _video_probe import probe
    from scope.export import write_clip

    small = VideoPreset(
        "small", 480, 480, "mp4", 30, 0.5, 10, 1, 1, 10, 4000, SafeArea(20, 20, 20, 20)
    )
    wipe, _, _ = _wipe_setup(small)
    out = write_clip(wipe, tmp_path / "wipe.mp4")
    p = probe(out, keep=(0,))
    wf_only = ClipRenderer("sim", [wipe.views[0]], small, wipe.style, wipe.plan, wipe.timestamps_s)
    sim_only = ClipRenderer("sim", [wipe.views[1]], small, wipe.style, wipe.plan, wipe.timestamps_s)
    first_wf, last_sim = wf_only.frame(0).astype(int), sim_only.frame(wipe.n_frames - 1).astype(int)
    err_first = np.abs(p["frames"][0].astype(int) - first_wf).mean()
    err_last = np.abs(p["last_frame"].astype(int) - last_sim).mean()
    gap = np.abs(first_wf - sim_only.frame(0).astype(int)).mean()  # widefield vs SIM
    assert err_first < 3.0
    assert err_last < 3.0
    assert gap > 5 * max(err_first, err_last)


def test_contrast_is_fixed_over_the_clip():
    rng = np.random.default_rng(0)
    base = rng.random((64, 64)).astype(np.float32)
    frames = np.stack([base, base.copy()])
    frames[1, :8, :8] = 50.0  # a flash in one corner of one frame
    view = View.build(frames[:, None], 30.0, RenderStyle(colormap="inferno", high_percentile=99.5))
    np.testing.assert_array_equal(view.rgb(0)[16:], view.rgb(1)[16:])  # no flicker elsewhere
    low, high = view.limits[0]
    assert (low, high) == pytest.approx(tuple(np.percentile(frames, [0.5, 99.5])), rel=1e-5)
    assert contrast_limits(np.ones((4, 4))) == (1.0, 2.0)  # flat image: a valid range


@pytest.mark.parametrize("preset", ["reel", "square", "portrait", "landscape", "gif"])
@pytest.mark.parametrize("layout", ["side-by-side", "wipe"])
def test_text_stays_inside_the_safe_area(preset, layout):
    dark = np.zeros((3, 100, 100), np.float32)
    r = build_renderer(
        dark,
        widefield=dark[:, ::2, ::2],
        layout=layout,
        preset=preset,
        pixel_size_nm=50.0,
        colormap="grey",
        frame_interval_s=7.0,
        title="A rather long title that has to wrap onto a second line somewhere",
        caption="And a caption that is long enough to need wrapping as well, on any frame size",
        credit="Credit: a very long credit line that will have to be shortened to fit the frame",
    )
    frame = r.frame(0)
    left, top, right, bottom = get_preset(preset).safe_rect
    lit = frame.max(axis=-1) > 0
    assert lit.sum() > 2000  # title, caption, credit, labels, time, speed, scale bar
    outside = lit.copy()
    outside[top:bottom, left:right] = False
    assert not outside.any(), np.argwhere(outside)[:5]


def test_perceptual_colormaps_rise_in_lightness():
    for name in ("magma", "inferno", "viridis"):
        lightness = srgb_to_oklab(get_lut(name) / 255.0)[:, 0]
        assert np.all(np.diff(lightness) > -2e-3), name
        assert lightness[-1] - lightness[0] > 0.6
    assert tuple(get_lut("magma")[0]) == (0, 0, 4)
    assert tuple(get_lut("magma")[-1]) == (252, 253, 191)
    green = get_lut("gfp")
    assert np.all(green[:, [0, 2]] == 0)
    assert np.array_equal(green[:, 1], np.arange(256))
    assert tuple(get_lut("hot")[-1]) == (255, 255, 255)
    assert len(COLORMAPS) >= 10
    with pytest.raises(ConfigurationError, match="magma"):
        get_lut("jet")


def test_builtin_font_needs_no_system_fonts():
    font = get_font(30, builtin=True)
    assert printable("5 µm, 12× speed", font) == "5 um, 12x speed"
    sprite = text_sprite("2 µm", font)
    assert sprite[..., 3].max() == 255
    assert 20 < sprite.shape[0] < 60


def test_timestamps_come_from_per_frame_metadata():
    times = [0.0, 0.4, 1.9, 7.25]
    img = np.zeros((4, 64, 64), np.float32)
    r = build_renderer(img, preset="square", timestamps_s=times, colormap="grey", duration_s=4)
    assert r.plan.speed_factor == pytest.approx(4 * np.median(np.diff(times)) / 4.0)
    box = r.info_boxes[0]
    for i in (0, r.n_frames - 1):
        frame = r.frame(i)
        source = int(r.plan.source_index[i])
        for t in times:
            sprite = text_sprite(format_timestamp(t, 7.25), r.small_font)
            opaque = sprite[..., 3] == 255
            patch = frame[box[1] : box[1] + sprite.shape[0], box[0] : box[0] + sprite.shape[1]]
            shows = bool(np.array_equal(patch[opaque], sprite[opaque][:, :3]))
            assert shows == (t == times[source]), (i, t)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_time_and_speed_are_stacked_on_a_tall_narrow_image():
    """A 400 x 100 series on the landscape frame is 270 px wide: "t = 4.0 s" and "real time"
    side by side overlapped; the speed now goes under the time, both inside the image."""
    r = build_renderer(
        np.random.default_rng(0).random((10, 400, 100)).astype(np.float32),
        preset="landscape",
        pixel_size_nm=80.0,
        frame_interval_s=1.0,
    )
    box = r.info_boxes[0]
    time_sprite = text_sprite(format_timestamp(9.0, r.total_s), r.small_font)
    time_rect = (box[0], box[1], box[0] + time_sprite.shape[1], box[1] + time_sprite.shape[0])
    speed = r.speed_sprite
    speed_rect = (speed.x, speed.y, speed.x + speed.width, speed.y + speed.height)
    assert not _overlap(time_rect, speed_rect), (time_rect, speed_rect)
    assert speed.y >= time_rect[3]  # under the time
    image = r.rects[0]
    assert image[0] <= speed.x and speed_rect[2] <= image[2]  # on the image
    assert r.row_height == speed_rect[3] - box[1]  # labels go under both
    # a wide image keeps them on one row
    wide = build_renderer(np.zeros((10, 100, 400), np.float32) + np.arange(400), preset="landscape",
                          frame_interval_s=1.0)  # fmt: skip
    assert wide.speed_sprite.y == wide.info_boxes[0][1]


@pytest.mark.parametrize("preset", ["reel", "landscape", "square", "gif"])
def test_a_thin_strip_gets_its_annotations_above_and_below(preset):
    """A 40 x 600 strip used to be refused ("no room for annotations ... shorten the
    title/caption" without any title); the time row now sits above it, the scale bar below,
    neither on the image, all inside the safe area."""
    strip = np.random.default_rng(1).random((10, 40, 600)).astype(np.float32)
    r = build_renderer(strip, preset=preset, pixel_size_nm=80.0, frame_interval_s=1.0,
                       colormap="grey", credit="me")  # fmt: skip
    image = r.rects[0]
    box = r.info_boxes[0]
    assert box[1] + r.row_height <= image[1]  # time and speed above the image
    bar = r.bar_sprite(r.bar_length_px(0))
    assert r.bar_box[3] - bar.shape[0] >= image[3]  # the scale bar below it
    frame = r.frame(r.n_frames - 1)
    left, top, right, bottom = get_preset(preset).safe_rect
    outside = frame.max(axis=-1) > 0
    outside[image[1] : image[3], image[0] : image[2]] = False  # the image may run under
    lit_text = outside.sum()
    outside[top:bottom, left:right] = False
    assert lit_text > 500 and not outside.any()
    # with nothing to draw there is nothing to make room for
    bare = build_renderer(strip, preset=preset, frame_interval_s=1.0, timestamp=False,
                          speed=False, scale_bar=False)  # fmt: skip
    assert bare.n_frames > 0


def test_no_room_for_annotations_names_the_aspect_ratio():
    """When even the band around a strip does not fit the safe area, the error says it is the
    image's shape, not a title that is not there."""
    cramped = VideoPreset(
        "cramped", 320, 240, "mp4", 30, 1, 10, 2, 2, 10, 4000, SafeArea(100, 100, 8, 8)
    )
    strip = np.random.default_rng(1).random((3, 40, 600)).astype(np.float32)
    with pytest.raises(ConfigurationError, match=r"600 x 40 px \(aspect ratio 15.0:1\)") as err:
        build_renderer(strip, preset=cramped, pixel_size_nm=80.0, frame_interval_s=1.0)
    assert "title" not in str(err.value)


def test_characters_the_font_lacks_are_left_out_with_a_warning(caplog):
    """Emoji and CJK in a title drew empty boxes (DejaVu has neither); they are left out, named
    in a warning, and the title renders exactly as the text without them."""
    img = make_sample((128, 128), "filaments", seed=2)
    common = {"preset": "square", "pixel_size_nm": 40.0, "colormap": "grey"}
    plain = build_renderer(img, title="Cells", credit="lab", **common)
    with caplog.at_level("WARNING", logger="scope.export.text"):
        fancy = build_renderer(img, title="Cells 🔬 細胞", credit="lab 🦠", **common)
    text = caplog.text
    assert "🔬 (U+1F52C)" in text and "細 (U+7D30)" in text and "胞 (U+80DE)" in text
    assert "🦠 (U+1F9A0)" in text and "credit" in text
    np.testing.assert_array_equal(fancy.frame(0), plain.frame(0))
    caplog.clear()
    with caplog.at_level("WARNING", logger="scope.export.text"):
        build_renderer(img, title="Zellen: 5 µm × 2 — 10 s", **common)
    assert caplog.text == ""  # glyphs the font has (or ASCII stand-ins) pass without a word


def test_a_constant_image_is_warned_about(caplog):
    flat = np.full((5, 64, 64), 7, np.uint16)
    with caplog.at_level("WARNING", logger="scope.export.render"):
        r = build_renderer(flat, preset="square", frame_interval_s=1.0, colormap="grey")
    assert "the image is constant (every value 7)" in caplog.text
    image = r.rects[0]
    frame = r.frame(0)
    assert frame[image[1] + 200 : image[3] - 200, image[0] + 200 : image[2] - 200].max() == 0
    caplog.clear()
    with caplog.at_level("WARNING", logger="scope.export.render"):
        build_renderer(flat + np.arange(64, dtype=np.uint16), preset="square")
    assert "constant" not in caplog.text


def test_widefield_of_another_field_is_refused_naming_both_fields(caplog):
    """A 60 x 60 crop at 65 nm (3.9 µm) of the widefield was stretched over a 240 x 240 SIM
    image at 32.5 nm (7.8 µm); now refused. The whole widefield passes; one of another sample
    with the same field size is warned about."""
    from scipy.ndimage import gaussian_filter

    sim = make_sample((240, 240), "filaments", seed=5)
    wf = gaussian_filter(sim, 2.5)[::2, ::2]
    common = {"layout": "side-by-side", "preset": "landscape", "pixel_size_nm": 32.5}
    with pytest.raises(DataFormatError) as err:
        build_renderer(sim, widefield=wf[30:90, 30:90], widefield_pixel_size_nm=65.0, **common)
    message = str(err.value)
    assert "3.9 x 3.9 µm (60 x 60 px of 65 nm)" in message
    assert "7.8 x 7.8 µm (240 x 240 px of 32.5 nm)" in message
    with caplog.at_level("WARNING", logger="scope.export.clip"):
        r = build_renderer(sim, widefield=wf, widefield_pixel_size_nm=65.0, **common)
    assert r.views[0].pixel_size_nm == 65.0 and "unrelated" not in caplog.text
    other = gaussian_filter(make_sample((240, 240), "beads", seed=9), 2.5)[::2, ::2]
    with caplog.at_level("WARNING", logger="scope.export.clip"):
        build_renderer(sim, widefield=other, widefield_pixel_size_nm=65.0, **common)
    assert "look unrelated" in caplog.text
