"""``scope export-video`` end to end: real OME-TIFF/ImageJ/plain TIFF in, decoded clips out."""

from __future__ import annotations

import gc

import numpy as np
import pytest

pytest.importorskip("av")
tifffile = pytest.importorskip("tifffile")

import scope.cli  # noqa: E402
from _video_probe import probe  # noqa: E402
from scope.cli import main  # noqa: E402
from scope.export.sources import read_image_source  # noqa: E402
from scope.sim.samples import make_sample  # noqa: E402


@pytest.fixture(autouse=True)
def only_export_video(monkeypatch):
    """Build ``scope`` with just this subcommand: the others are tested on their own."""
    monkeypatch.setattr(scope.cli, "COMMANDS", ("export-video",))


def _series(n: int = 4, size: int = 64) -> np.ndarray:
    wide = make_sample((size, size + n), "mixed", seed=2)
    return np.stack([wide[:, k : k + size] for k in range(n)]).astype(np.float32)


def test_readers_take_pixel_size_times_and_channels_from_metadata(tmp_path):
    data = (_series(3)[:, None].repeat(2, axis=1) * 1000).astype(np.uint16)
    ome = tmp_path / "sim.ome.tif"
    tifffile.imwrite(
        ome,
        data,
        metadata={
            "axes": "TCYX",
            "PhysicalSizeX": 0.0325,
            "PhysicalSizeXUnit": "µm",
            "Plane": {"DeltaT": [0.0, 0.0, 1.5, 1.5, 3.25, 3.25]},
            "Channel": {"Name": ["GFP", "RFP"]},
        },
    )
    src = read_image_source(ome)
    assert src.frames.shape == (3, 2, 64, 64)
    assert src.pixel_size_nm == pytest.approx(32.5)
    np.testing.assert_allclose(src.timestamps_s, [0.0, 1.5, 3.25])
    assert src.channel_names == ["GFP", "RFP"]
    np.testing.assert_array_equal(src.frames[2, 1], data[2, 1])

    ij = tmp_path / "fiji.tif"
    tifffile.imwrite(
        ij,
        data[:, 0],
        imagej=True,
        resolution=(1 / 0.065, 1 / 0.065),
        metadata={"axes": "TYX", "unit": "um", "finterval": 2.5},
    )
    src = read_image_source(ij)
    assert src.pixel_size_nm == pytest.approx(65.0)
    np.testing.assert_allclose(src.timestamps_s, [0.0, 2.5, 5.0])

    plain = tmp_path / "plain.tif"
    tifffile.imwrite(
        plain, data[0, 0], resolution=(1e7 / 80, 1e7 / 80), resolutionunit="CENTIMETER"
    )
    assert read_image_source(plain).pixel_size_nm == pytest.approx(80.0)
    screen = tmp_path / "screen.tif"  # 72 dpi: a screenshot, not a microscope pixel
    tifffile.imwrite(screen, data[0, 0], resolution=(72, 72), resolutionunit="INCH")
    assert read_image_source(screen).pixel_size_nm is None


def test_channels_are_named_by_their_emission_wavelength(tmp_path):
    """A multi-colour result of scope (OME-TIFF with Channel emission wavelengths, OME-Zarr with
    omero labels) is labelled "525 nm", "600 nm" in the clip instead of ch1, ch2."""
    from scope.io.writers import write_ome_tiff, write_ome_zarr

    image = np.random.default_rng(1).random((2, 2, 32, 32)).astype(np.float32)  # T, C
    common = {"pixel_size_nm": 32.5, "axes": "TCYX", "channel_wavelengths_nm": [525.0, 600.0]}
    tif = write_ome_tiff(tmp_path / "two.ome.tif", image, **common)
    store = write_ome_zarr(tmp_path / "two.zarr", image, **common)
    for path in (tif, store):
        source = read_image_source(path)
        assert source.channel_names == ["525 nm", "600 nm"], path.name
        assert source.frames.shape == (2, 2, 32, 32)


def test_cli_series_to_square_mp4(tmp_path, capsys):
    data = (_series(4) * 1000).astype(np.uint16)
    path = tmp_path / "series.ome.tif"
    tifffile.imwrite(
        path,
        data,
        metadata={"axes": "TYX", "PhysicalSizeX": 0.04, "Plane": {"DeltaT": [0, 20, 40, 60]}},
    )
    out = tmp_path / "clip.mp4"
    rc = main(
        [
            "export-video",
            str(path),
            "-o",
            str(out),
            "--preset",
            "square",
            "--colormap",
            "inferno",
            "--title",
            "Mitochondria",
            "--duration",
            "3",
            "--credit",
            "me",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "square sim" in text
    assert "condensed, 26.7x speed" in text  # 4 frames 20 s apart: 80 s shown in 3 s
    p = probe(out)
    assert (p["width"], p["height"], p["profile"]) == (1080, 1080, "High")
    assert p["n_frames"] == 90


def test_cli_still_to_gif(tmp_path, capsys):
    path = tmp_path / "still.tif"
    tifffile.imwrite(path, (_series(1)[0] * 255).astype(np.uint8))
    out = tmp_path / "chat.gif"
    assert main(["export-video", str(path), "-o", str(out)]) == 0  # .gif picks the gif preset
    assert "gif sim" in capsys.readouterr().out
    p = probe(out)
    assert (p["width"], p["height"]) == (480, 480)
    assert p["duration_s"] == pytest.approx(4.0)  # the gif preset's still length
    assert p["n_frames"] == 80  # the zoom changes every frame


def test_cli_two_channels_make_an_overlay(tmp_path, capsys):
    s = _series(1)[0]
    data = np.stack([s, s[::-1]])[None]  # T=1, C=2
    path = tmp_path / "two.ome.tif"
    tifffile.imwrite(path, data, metadata={"axes": "TCYX", "PhysicalSizeX": 0.05})
    out = tmp_path / "two.mp4"
    assert (
        main(
            [
                "export-video",
                str(path),
                "-o",
                str(out),
                "--preset",
                "portrait",
                "--duration",
                "3",
                "--channel-colormaps",
                "cyan,magenta",
            ]
        )
        == 0
    )
    assert "portrait overlay" in capsys.readouterr().out
    last = probe(out)["last_frame"].astype(int)
    # cyan has no red, magenta no green: both colours present, added where they overlap
    assert (last[..., 1] - last[..., 0] > 100).sum() > 500  # cyan-ish pixels
    assert (last[..., 0] - last[..., 1] > 100).sum() > 500  # magenta-ish pixels


def test_large_series_is_read_frame_by_frame_to_the_same_clip(tmp_path, monkeypatch):
    """Past LAZY_BYTES a TIFF series is read one frame at a time while the clip renders (a
    long series need not fit in memory); the clip is the one the whole array gives."""
    import scope.export.sources as sources
    from scope.io.raw import LazyFrames

    s = _series(6)
    data = np.stack([s, s[:, ::-1]], axis=1)  # T=6, C=2, Y, X
    path = tmp_path / "series.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": "TCYX", "PhysicalSizeX": 0.05})
    eager = read_image_source(path)
    monkeypatch.setattr(sources, "LAZY_BYTES", 0)
    lazy = read_image_source(path)
    assert isinstance(lazy.frames, LazyFrames) and isinstance(eager.frames, np.ndarray)
    assert lazy.frames.shape == eager.frames.shape == (6, 2, 64, 64)
    for t in (0, 3, -1):
        np.testing.assert_array_equal(lazy.frames[t], eager.frames[t])
    assert lazy.pixel_size_nm == eager.pixel_size_nm == pytest.approx(50.0)
    clips = {}
    for name in ("eager", "lazy"):
        out = tmp_path / f"{name}.mp4"
        monkeypatch.setattr(sources, "LAZY_BYTES", 0 if name == "lazy" else 10**12)
        argv = ["export-video", str(path), "-o", str(out), "--preset", "square"]
        assert main([*argv, "--interval", "0.5"]) == 0
        clips[name] = probe(out)
    assert clips["lazy"]["n_frames"] == clips["eager"]["n_frames"]
    np.testing.assert_array_equal(clips["lazy"]["last_frame"], clips["eager"]["last_frame"])
    # an OME-Zarr image too
    from scope.io.writers import write_ome_zarr

    write_ome_zarr(tmp_path / "series.zarr", data, pixel_size_nm=50, axes="TCYX")
    from_zarr = read_image_source(tmp_path / "series.zarr")
    assert isinstance(from_zarr.frames, LazyFrames) and from_zarr.frames.shape == data.shape
    for t in range(6):
        np.testing.assert_array_equal(from_zarr.frames[t], data[t])


def test_cli_reports_bad_input_clearly(tmp_path, capsys):
    missing = tmp_path / "nope.tif"
    assert main(["export-video", str(missing), "-o", str(tmp_path / "a.mp4")]) == 2
    assert "no such file" in capsys.readouterr().err
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, np.ones((32, 32), np.uint16))
    assert main(["export-video", str(path), "-o", str(tmp_path / "a.gif"), "--preset", "reel"]) == 2
    assert "name it *.mp4" in capsys.readouterr().err
    assert main(["export-video", str(path), "-o", str(tmp_path / "a.mp4"), "--layout", "wipe"]) == 2
    assert "widefield" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.mp4"))


def test_cli_raw_run_is_reconstructed_into_a_wipe(tmp_path, capsys, monkeypatch):
    from scope.optics import OpticalSetup
    from scope.sim.forward import simulate_raw
    from scope.sim.params import SIMParameters

    setup = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
    params = SIMParameters.equidistant([0, 60, 120], period_nm=260)
    truth = make_sample((128, 128), "filaments", seed=4)
    raw = np.stack([simulate_raw(truth, params, setup, rng=k) for k in range(2)])
    path = tmp_path / "raw.tif"
    tifffile.imwrite(path, raw.astype(np.uint16))
    out = tmp_path / "raw.mp4"
    rc = main(
        [
            "export-video",
            str(path),
            "--raw",
            "--na",
            "1.2",
            "--wavelength",
            "525",
            "--pixel-size",
            "65",
            "--interval",
            "1",
            "-o",
            str(out),
            "--backend",
            "numpy",
        ]
    )
    assert rc == 0
    assert "reel wipe" in capsys.readouterr().out
    p = probe(out, keep=(10, 60))
    assert (p["width"], p["height"]) == (1080, 1920)
    assert p["n_frames"] == 90  # 2 s of sets stretched to the 3 s minimum
    # the same run reconstructed first (scope reconstruct --widefield) makes the same clip:
    # the widefield image beside the result is found for a comparison layout, or given
    monkeypatch.setattr(scope.cli, "COMMANDS", ("export-video", "reconstruct"))
    sim = tmp_path / "raw.sim.tif"
    optics = ["--na", "1.2", "--wavelength", "525", "--pixel-size", "65"]
    rc = main(["-q", "reconstruct", str(path), "-o", str(sim), *optics, "--widefield"])
    assert rc == 0 and (tmp_path / "raw.widefield.tif").is_file()
    for extra in ([], ["--widefield", str(tmp_path / "raw.widefield.tif")]):
        again = tmp_path / "again.mp4"
        args = ["export-video", str(sim), "--layout", "wipe", "--interval", "1", "-o", str(again)]
        assert main([*args, *extra, "--overwrite"]) == 0
        q = probe(again, keep=(10, 60))
        for i in (10, 60):  # the wipe's widefield half and SIM half
            np.testing.assert_array_equal(q["frames"][i], p["frames"][i])
    assert (
        main(
            [
                "export-video",
                str(sim),
                "--layout",
                "wipe",
                "-o",
                str(again),
                "--widefield",
                str(path),
                "--overwrite",
            ]
        )
        == 2
    )
    assert "expected the widefield image of the same series" in capsys.readouterr().err
    # and by scope batch --widefield (OME-Zarr, the batch's default): found beside it too
    monkeypatch.setattr(scope.cli, "COMMANDS", ("export-video", "batch"))
    out = tmp_path / "batch"
    assert (
        main(["-q", "batch", str(path), "-o", str(out), *optics, "--widefield", "--workers", "0"])
        == 0
    )
    assert (out / "raw.widefield.zarr").is_dir()
    args = ["export-video", str(out / "raw.sim.zarr"), "--layout", "wipe", "--interval", "1"]
    assert main([*args, "-o", str(again), "--overwrite"]) == 0
    q = probe(again, keep=(10, 60))
    for i in (10, 60):
        np.testing.assert_array_equal(q["frames"][i], p["frames"][i])


def test_raw_run_source_reconstructs_set_by_set(tmp_path, monkeypatch):
    """A raw run becomes a clip source that reconstructs each set when it is read: the same
    images as reconstructing each channel's series (the sparse second channel, too weak to
    show its pattern blind, with the first channel's as its prior), time and channels mapped
    from the file's axes, at most a cache's worth of sets kept, and the file closed once the
    source is dropped."""
    from scope.export import sources
    from scope.io.raw import LazyFrames, RawStack
    from scope.optics import OpticalSetup
    from scope.sim.forward import simulate_raw
    from scope.sim.params import SIMParameters
    from scope.sim.pipeline import SetReconstructor, reconstruct_stack

    setup = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
    params = SIMParameters.equidistant([5, 65, 125], period_nm=260, modulation=0.8)
    samples = [make_sample((128, 128), kind, seed=1) for kind in ("filaments", "beads")]
    raw = np.stack(  # 3 time points x 2 channels (different samples), 9 frames each
        [
            [
                simulate_raw(samples[c], params, setup, photons_peak=300, rng=10 * t + c)
                for c in (0, 1)
            ]
            for t in range(3)
        ]
    ).astype(np.uint16)
    path = tmp_path / "raw.ome.tif"
    tifffile.imwrite(path, raw, ome=True, metadata={"axes": "TCZYX"})
    first, params = reconstruct_stack(raw[:, 0].astype(np.float32), setup, backend="numpy")
    second, _ = reconstruct_stack(
        raw[:, 1].astype(np.float32), setup, prior=params, backend="numpy"
    )
    expected = np.stack([first, second], axis=1)
    calls = []
    reconstruct_set = SetReconstructor.__call__
    monkeypatch.setattr(
        SetReconstructor, "__call__", lambda *a, **k: calls.append(1) or reconstruct_set(*a, **k)
    )

    src = sources.reconstruct_raw_source(
        path, na=1.2, wavelength_nm=525, pixel_size_nm=65, backend="numpy"
    )
    assert isinstance(src.frames, LazyFrames) and isinstance(src.widefield, LazyFrames)
    assert src.frames.shape == (3, 2, 128, 128) and src.widefield.shape == (3, 2, 64, 64)
    assert src.pixel_size_nm == pytest.approx(32.5) and src.widefield_pixel_size_nm == 65
    for t in range(3):
        sim, wf = src.frames[t], src.widefield[t]
        for c in (0, 1):
            np.testing.assert_allclose(sim[c], expected[t, c], rtol=1e-5, atol=1e-3)
            frames = raw[t, c].astype(np.float32)
            offset = np.percentile(frames[0], 0.5)
            np.testing.assert_allclose(wf[c], frames.mean(axis=0) - offset, rtol=1e-5, atol=1e-3)
    assert calls == [1] * 6  # each set reconstructed once, SIM and widefield from one reading
    src.frames[0], src.widefield[2]
    assert len(calls) == 6  # a short run is kept whole

    monkeypatch.setattr(sources, "RECONSTRUCTED_CACHE_BYTES", 1)  # one set kept at a time
    calls.clear()
    small = sources.reconstruct_raw_source(
        path, na=1.2, wavelength_nm=525, pixel_size_nm=65, backend="numpy"
    )
    for _ in range(2):
        for t in range(3):
            np.testing.assert_allclose(small.frames[t], expected[t], rtol=1e-5, atol=1e-3)
    assert len(calls) == 2 + 12  # each channel's first set at opening, then every set not kept
    closed = []
    monkeypatch.setattr(RawStack, "close", lambda self: closed.append(self.path))
    del src, small
    gc.collect()
    assert closed == [path, path]


def test_ome_zarr_image_is_read_with_its_pixel_size(tmp_path):
    from scope.io.writers import write_ome_zarr

    data = _series(3)
    path = write_ome_zarr(tmp_path / "sim.zarr", data, pixel_size_nm=32.5, axes="TYX")
    src = read_image_source(path)
    assert src.frames.shape == (3, 1, 64, 64)
    assert src.pixel_size_nm == pytest.approx(32.5)
    np.testing.assert_allclose(src.frames[:, 0], data, rtol=1e-6)


@pytest.mark.parametrize("name", ["run.zarr", "run.ome.tif"])
def test_cli_scope_acquire_run_is_recognised_and_timed(name, tmp_path, capsys):
    """Both layouts `scope acquire -o` writes are raw runs by themselves (the OME-TIFF one, with
    its frames journal and metadata beside it, used to play its raw patterned frames as SIM)."""
    from scope.acquisition.writer import AcquisitionWriter, FrameTag
    from scope.optics import OpticalSetup
    from scope.sim.forward import simulate_raw
    from scope.sim.params import SIMParameters

    setup = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
    params = SIMParameters.equidistant([0, 60, 120], period_nm=260)
    truth = make_sample((128, 128), "filaments", seed=8)
    run = tmp_path / name
    meta = {"n_angles": 3, "n_phases": 3, "na": 1.2, "wavelength_nm": 525.0}
    with AcquisitionWriter(run, (64, 64), "uint16", metadata=meta, pixel_size_nm=65) as w:
        for s in range(2):  # two SIM sets started 2.5 s apart
            raw = simulate_raw(truth, params, setup, rng=s).astype(np.uint16)
            rows = []
            for p in range(9):
                t_ns = int(s * 2.5e9 + p * 10e6)
                i = w.append(raw[p], FrameTag(camera_frame_id=9 * s + p, timestamp_ns=t_ns))
                w.update(
                    i, set=s, angle=p // 3, phase=p % 3, pattern=p, controller_count=9 * s + p + 1
                )
                rows.append(i)
            w.set_valid(rows, True)
    out = tmp_path / "run.mp4"
    rc = main(
        [
            "export-video",
            str(run),
            "-o",
            str(out),
            "--preset",
            "square",
            "--duration",
            "3",
            "--backend",
            "numpy",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "square wipe" in text  # recognised as a raw run: reconstructed, widefield kept
    assert "1.67x speed" in text  # 2 sets x 2.5 s (from the frame timestamps) in 3 s
    p = probe(out, keep=(0,))
    assert p["n_frames"] == 90
    # the wipe: starts on the widefield image (64 px grid), ends on SIM (128 px grid), which
    # holds more detail: its frame differs from the first in the image
    first, last = p["frames"][0].astype(int), p["last_frame"].astype(int)
    assert np.abs(first - last)[300:780, 300:780].mean() > 3


def _moving_series(n: int = 40) -> np.ndarray:
    """``n`` frames of 120 x 160 uint16 with a bright blob crossing the field."""
    yy, xx = np.mgrid[:120, :160]
    frames = [
        200 + 3000 * np.exp(-((yy - 60) ** 2 + (xx - 20 - 3 * t) ** 2) / (2 * 6.0**2))
        for t in range(n)
    ]
    return np.array(frames).astype(np.uint16)


def test_cli_fast_run_loops_its_frames_with_a_true_speed(tmp_path, capsys):
    """40 frames 1 ms apart with --short loop: the clip was 90 copies of frame 0 labelled
    "1.2x speed"; now every loop plays all 40 frames and says 0.03x."""
    path = tmp_path / "fast.tif"
    tifffile.imwrite(path, _moving_series(40), photometric="minisblack")
    out = tmp_path / "fast.mp4"
    argv = ["export-video", str(path), "-o", str(out), "--interval", "0.001", "--short", "loop"]
    assert main(argv) == 0
    assert "reel sim, 120 frames, 4.0 s (looped, 0.03x speed)" in capsys.readouterr().out
    p = probe(out, keep=(0, 20, 40))
    assert p["n_frames"] == 120
    rows = slice(700, 1300)  # the image band of the reel frame
    moved = np.abs(p["frames"][0][rows].astype(int) - p["frames"][20][rows]).mean()
    again = np.abs(p["frames"][0][rows].astype(int) - p["frames"][40][rows]).mean()
    assert moved > 1.0 and moved > 10 * again  # frame 20 moved on; frame 40 starts loop 2


def test_cli_plain_stacks_are_time_series_whatever_their_length(tmp_path, capsys):
    """Plain TIFF stacks (no axis metadata) of 2 to 5 planes are all time series: 3 and 4 planes
    (which tifffile stores as one RGB page) were read as channels ("ch1 ch2 ch3" overlay).
    --axes CYX reads them as channels; --layout sim on channels is refused, not ignored."""
    data = _moving_series(5)
    for n in (2, 3, 4, 5):
        # as `tifffile.imwrite(path, stack)` stores them: 3 or 4 planes as one RGB(A) page
        # with separate planes (its default until now), 2 and 5 as pages
        rgb = {"photometric": "rgb", "planarconfig": "separate"} if n in (3, 4) else {}
        tifffile.imwrite(tmp_path / f"plain_{n}.tif", data[:n], **rgb)
        src = read_image_source(tmp_path / f"plain_{n}.tif")
        assert src.frames.shape == (n, 1, 120, 160), n
        np.testing.assert_array_equal(src.frames[:, 0], data[:n])
    channels = read_image_source(tmp_path / "plain_3.tif", axes="CYX")
    assert channels.frames.shape == (1, 3, 120, 160)
    out = tmp_path / "p3.mp4"
    assert main(["export-video", str(tmp_path / "plain_3.tif"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "reel sim, 90 frames" in text
    # no frame interval: the summary says so (it used to say "realtime")
    assert "(slowed from an assumed 10 frames/s: frame interval unknown" in text
    assert "realtime" not in text
    tifffile.imwrite(tmp_path / "plain_40.tif", _moving_series(40), photometric="minisblack")
    assert (
        main(["export-video", str(tmp_path / "plain_40.tif"), "-o", str(tmp_path / "40.mp4")]) == 0
    )
    text = capsys.readouterr().out
    assert "120 frames, 4.0 s (played at an assumed 10 frames/s: frame interval unknown" in text
    argv = ["export-video", str(tmp_path / "plain_3.tif"), "--axes", "CYX", "--overwrite"]
    assert main([*argv, "-o", str(out)]) == 0
    assert "reel overlay" in capsys.readouterr().out
    assert main([*argv, "-o", str(out), "--layout", "sim"]) == 2
    err = capsys.readouterr().err
    assert "--layout sim shows one channel, but plain_3.tif holds 3 (ch1, ch2, ch3)" in err
    argv = ["export-video", str(tmp_path / "plain_2.tif"), "-o", str(tmp_path / "o.mp4")]
    assert main([*argv, "--layout", "overlay"]) == 2
    err = capsys.readouterr().err
    assert "--axes CYX" in err and "channel_axis" not in err
    assert main([*argv, "--axes", "TCYX"]) == 2
    assert "axes 'TCYX' name 4 axes, but plain_2.tif has 3" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--duration", "nan"),
        ("--duration", "inf"),
        ("--interval", "nan"),
        ("--pixel-size", "0"),
        ("--pixel-size", "-inf"),
        ("--gamma", "nan"),
    ],
)
def test_cli_refuses_numbers_that_are_not_finite_and_positive(flag, value, tmp_path, capsys):
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, _moving_series(4), photometric="minisblack")
    out = tmp_path / "x.mp4"
    assert main(["export-video", str(path), "-o", str(out), f"{flag}={value}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err  # one line
    assert f"{flag} {float(value):g}: expected a finite number above 0" in err
    assert not out.exists()


def test_cli_checks_the_output_path_before_rendering(tmp_path, capsys, monkeypatch):
    """A missing folder or a folder named like the clip is named at once (it used to render
    the whole clip, then fail with "Is a directory" and leave .outdir.mp4.part behind); an
    existing clip is kept unless --overwrite."""
    import scope.export.sources as sources

    path = tmp_path / "s.tif"
    tifffile.imwrite(path, _moving_series(4), photometric="minisblack")
    reads = []
    real_read = sources.read_image_source

    def read(*args, **kwargs):
        reads.append(args)
        return real_read(*args, **kwargs)

    monkeypatch.setattr(sources, "read_image_source", read)
    argv = ["export-video", str(path), "-o"]
    assert main([*argv, str(tmp_path / "nodir" / "x.mp4")]) == 2
    assert f"the folder {tmp_path / 'nodir'} does not exist" in capsys.readouterr().err
    (tmp_path / "outdir.mp4").mkdir()
    assert main([*argv, str(tmp_path / "outdir.mp4")]) == 2
    assert f"the output {tmp_path / 'outdir.mp4'} is a folder" in capsys.readouterr().err
    assert reads == []  # refused before the input was read
    clip = tmp_path / "clip.mp4"
    assert main([*argv, str(clip), "--title", "first"]) == 0
    before = clip.read_bytes()
    assert main([*argv, str(clip), "--title", "second"]) == 2
    assert f"{clip} exists: choose another name, or --overwrite" in capsys.readouterr().err
    assert clip.read_bytes() == before
    assert main([*argv, str(clip), "--title", "second", "--overwrite"]) == 0
    assert clip.read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "outdir.mp4", "s.tif"]


def test_cli_warns_about_constant_images_and_unused_channel_colormaps(tmp_path, caplog):
    path = tmp_path / "const.tif"
    tifffile.imwrite(path, np.full((5, 64, 64), 7, np.uint16))
    out = tmp_path / "c.mp4"
    argv = ["export-video", str(path), "-o", str(out), "--channel-colormaps", "cyan,magenta"]
    with caplog.at_level("WARNING"):
        assert main(argv) == 0
    assert "the image is constant (every value 7)" in caplog.text
    assert "--channel-colormaps is for images with several channels; const.tif holds one" in (
        caplog.text
    )
    frame = probe(out)["last_frame"]
    assert frame[700:1300, 100:980].max() <= 16  # all but black: the warning was due


def test_cli_refuses_a_widefield_crop(tmp_path, capsys):
    """The widefield file of a different field of view (a 60 x 60 crop at 65 nm for a
    240 x 240 SIM image at 32.5 nm) was stretched over the SIM panel; refused, both named."""
    from scope.io.writers import write_ome_tiff

    sim = make_sample((240, 240), "filaments", seed=5).astype(np.float32)
    write_ome_tiff(tmp_path / "hela.tif", sim, pixel_size_nm=32.5, axes="YX")
    wf = sim.reshape(120, 2, 120, 2).mean(axis=(1, 3))
    write_ome_tiff(tmp_path / "crop.tif", wf[30:90, 30:90].copy(), pixel_size_nm=65.0, axes="YX")
    out = tmp_path / "w.mp4"
    argv = ["export-video", str(tmp_path / "hela.tif"), "--layout", "side-by-side", "-o", str(out)]
    assert main([*argv, "--widefield", str(tmp_path / "crop.tif")]) == 2
    err = capsys.readouterr().err
    assert "3.9 x 3.9 µm (60 x 60 px of 65 nm)" in err
    assert "7.8 x 7.8 µm (240 x 240 px of 32.5 nm)" in err
    assert not out.exists()
    write_ome_tiff(tmp_path / "whole.tif", wf, pixel_size_nm=65.0, axes="YX")
    assert main([*argv, "--widefield", str(tmp_path / "whole.tif")]) == 0
