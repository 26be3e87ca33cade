"""The ``scope reconstruct`` contract and ``scope demo``, through the real command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from scope.cli import main
from scope.io.writers import read_image
from scope.sim import metrics
from sim_cases import OFFSET, TWO_COLOURS, make_case

CONTRACT = ["--na", "1.2", "--wavelength", "525", "--pixel-size", "65"]


@pytest.fixture(scope="module")
def raw_file(tmp_path_factory):
    case = make_case(3, size=128)
    path = tmp_path_factory.mktemp("raw") / "raw.tif"
    tifffile.imwrite(path, np.stack([case.raw, case.raw]).astype(np.uint16))  # (T, 9, Y, X)
    return path, case


def test_contract_output_and_params(raw_file, tmp_path):
    path, case = raw_file
    out = tmp_path / "sim.tif"
    assert main(["reconstruct", str(path), "-o", str(out), *CONTRACT, "--offset", str(OFFSET)]) == 0
    with tifffile.TiffFile(out) as tif:
        img = tif.asarray()
        ome = tif.ome_metadata
    assert img.shape == (2, 256, 256) and img.dtype == np.float32
    assert 'PhysicalSizeX="0.0325"' in ome and 'PhysicalSizeXUnit="µm"' in ome
    doc = json.loads((tmp_path / "sim.params.json").read_text())
    assert len(doc["angles"]) == 3
    for est, truth in zip(doc["angles"], case.truth.angles):
        assert set(est) >= {"angle_deg", "period_nm", "phases_rad", "modulation"}
        assert abs((est["angle_deg"] - truth.angle_deg + 90) % 180 - 90) < 0.2
        assert abs(est["period_nm"] / truth.period_nm - 1) < 0.005
        assert len(est["phases_rad"]) == 3
    _, _, meta = read_image(out)  # provenance: steady light, frames not equalised
    assert meta["frames_equalised"] is False
    assert max(abs(g - 1) for g in meta["first_set_frame_gains"]) < 0.02


def test_flickering_frames_are_equalised_and_said_so(raw_file, tmp_path):
    _, case = raw_file
    flicker = np.array([1.06, 0.95, 1.0, 0.97, 1.04, 1.0, 0.96, 1.05, 0.98])
    raw = (case.raw - OFFSET) * flicker[:, None, None] + OFFSET
    src = tmp_path / "flicker.tif"
    tifffile.imwrite(src, raw.astype(np.uint16))
    out = tmp_path / "flicker.sim.tif"
    assert main(["reconstruct", str(src), "-o", str(out), *CONTRACT, "--offset", str(OFFSET)]) == 0
    _, _, meta = read_image(out)
    assert meta["frames_equalised"] is True
    gains = np.array(meta["first_set_frame_gains"])
    np.testing.assert_allclose(gains, flicker / flicker.mean(), atol=0.01)
    off = tmp_path / "flicker.off.tif"
    args = ["reconstruct", str(src), "-o", str(off), *CONTRACT, "--offset", str(OFFSET)]
    assert main([*args, "--equalize", "off"]) == 0
    assert read_image(off)[2]["frames_equalised"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--angles", "2"], "not a multiple of 6 (angles x phases)"),
        (["--na", "1.2", "--wavelength", "525"], "--pixel-size"),
        (["--na", "3"], "invalid optics: na"),
        (["--offset", "70000"], "no signal above the offset"),
    ],
)
def test_bad_input_one_clear_line(raw_file, tmp_path, args, message):
    path = tmp_path / "one_set.tif"
    tifffile.imwrite(path, raw_file[1].raw.astype(np.uint16))  # (9, Y, X)
    base = {"--na": "1.2", "--wavelength": "525", "--pixel-size": "65"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    if args == ["--na", "1.2", "--wavelength", "525"]:
        base.pop("--pixel-size")
    flat = [x for kv in base.items() for x in kv]
    extra = [a for a in args if a in ("--angles", "--offset")]
    if extra:
        flat += [extra[0], args[args.index(extra[0]) + 1]]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scope.cli",
            "reconstruct",
            str(path),
            "-o",
            str(tmp_path / "x.tif"),
            *flat,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]
    assert not (tmp_path / "x.tif").exists()


def test_unreadable_and_nan_files(tmp_path, capsys):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    assert main(["reconstruct", str(bad), "-o", str(tmp_path / "o.tif"), *CONTRACT]) != 0
    nan = tmp_path / "nan.tif"
    data = np.ones((9, 32, 32), np.float32)
    data[3, 4, 4] = np.nan
    tifffile.imwrite(nan, data)
    assert main(["reconstruct", str(nan), "-o", str(tmp_path / "o.tif"), *CONTRACT]) != 0
    err = capsys.readouterr().err
    assert "NaN" in err


@pytest.mark.parametrize(("frame", "offset"), [(4, ["--offset", str(OFFSET)]), (0, [])])
def test_a_blank_frame_in_the_first_set_is_refused(raw_file, tmp_path, capsys, frame, offset):
    """A dropped or blank (all-zero) frame in the first set: refused, naming the frame (it
    reconstructed without an error, its angle reading a modulation of 1.55), with the offset
    given or estimated (from the first frame, itself blank in the second case)."""
    frames = raw_file[1].raw.astype(np.uint16)
    frames[frame] = 0
    path = tmp_path / "blank.tif"
    tifffile.imwrite(path, frames)
    out = tmp_path / "blank.sim.tif"
    assert main(["reconstruct", str(path), "-o", str(out), *CONTRACT, *offset]) != 0
    err = capsys.readouterr().err
    assert f"frame {frame} of the first SIM set (counting from 0, of 9) holds almost no" in err
    assert "dropped or blank frame" in err and not out.exists()


def test_a_blank_frame_in_a_later_set_is_kept_and_named(raw_file, tmp_path, caplog):
    """A time series whose third set lost frame 5 and fourth frame 0 (dropped triggers, read as
    zeros; the offset estimated from the data, so not from the blank first frame): every set is
    still reconstructed and written (nothing acquired is left out), those without the blank
    frame (close to the complete set's image; with it, the pattern's stripes) and with a
    widefield image from the frames kept (at the complete set's level: with the blank frame it
    was 8/9 of it); the run warns naming the sets and frames, and params.json records them."""
    case = raw_file[1]
    frames = np.stack([case.raw] * 5).astype(np.uint16)
    frames[2, 5] = 0
    frames[3, 0] = 0
    path = tmp_path / "series.tif"
    tifffile.imwrite(path, frames)
    out = tmp_path / "series.sim.tif"
    with caplog.at_level("WARNING"):
        assert main(["reconstruct", str(path), "-o", str(out), *CONTRACT, "--widefield"]) == 0
    image, _, _ = read_image(out)
    widefield, _, _ = read_image(tmp_path / "series.widefield.tif")
    assert image.shape == (5, 256, 256) and widefield.shape == (5, 128, 128)
    np.testing.assert_array_equal(image[4], image[0])
    for t in (2, 3):
        assert metrics.normalized_rms_error(image[t], image[0]) < 0.1
        assert metrics.normalized_rms_error(widefield[t], widefield[0]) < 0.05
        assert abs(widefield[t].mean() / widefield[0].mean() - 1) < 0.01
    doc = json.loads((tmp_path / "series.params.json").read_text())
    assert doc["blank_frames"] == {
        "sets_checked": 5,
        "sets_with_blank_frames": 2,
        "blank": [{"set": 2, "frames": [5]}, {"set": 3, "frames": [0]}],
    }
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    named = "2 of 5 SIM sets hold a dropped or blank frame: set 2 (frame 5), set 3 (frame 0)"
    assert any(named in m for m in said)


def test_the_output_never_replaces_the_raw_file(raw_file, tmp_path, capsys):
    """-o naming the raw file itself, or a --widefield image that would land on it, is refused
    before anything is written: the output used to replace the raw data."""
    path = tmp_path / "cell.tif"
    tifffile.imwrite(path, raw_file[1].raw.astype(np.uint16))
    before = path.read_bytes()
    for out in (path, tmp_path / "." / "cell.tif"):
        assert main(["reconstruct", str(path), "-o", str(out), *CONTRACT]) == 2
        assert "would overwrite the raw file cell.tif" in capsys.readouterr().err
    raw = tmp_path / "x.widefield.tif"  # a raw file named like a widefield image
    raw.write_bytes(before)
    args = ["reconstruct", str(raw), "-o", str(tmp_path / "x.sim.tif"), *CONTRACT]
    assert main([*args, "--widefield"]) == 2
    assert "would overwrite the raw file x.widefield.tif" in capsys.readouterr().err
    assert path.read_bytes() == before and raw.read_bytes() == before
    assert main(["-q", *args]) == 0  # without --widefield nothing lands on it


def test_frames_stored_phase_major(raw_file, tmp_path, capsys):
    """A set stored phase-major (a0p0 a1p0 a2p0 a0p1 ...): read as scope's order it cannot be
    separated, and the refusal names --frame-order; with it, scope reconstruct and scope batch
    (flag or preset) give the image of the same data stored angle-major."""
    path, _ = raw_file
    data = tifffile.imread(path)  # (T, 9, Y, X), angle-major
    t, _, ny, nx = data.shape
    pm = tmp_path / "pm.tif"
    tifffile.imwrite(pm, data.reshape(t, 3, 3, ny, nx).transpose(0, 2, 1, 3, 4).reshape(data.shape))
    common = [*CONTRACT, "--offset", str(OFFSET)]
    expected = tmp_path / "am.tif"
    assert main(["-q", "reconstruct", str(path), "-o", str(expected), *common]) == 0
    capsys.readouterr()
    assert main(["reconstruct", str(pm), "-o", str(tmp_path / "x.tif"), *common]) == 2
    assert "--frame-order phase-major" in capsys.readouterr().err
    got = tmp_path / "pm.sim.tif"
    args = ["-q", "reconstruct", str(pm), "-o", str(got), *common, "--frame-order", "phase-major"]
    assert main(args) == 0
    np.testing.assert_array_equal(tifffile.imread(got), tifffile.imread(expected))
    preset = tmp_path / "pm.toml"
    preset.write_text('[pattern]\nframe_order = "phase-major"\n')
    for extra in (["--frame-order", "phase-major"], ["--preset", str(preset)]):
        out = tmp_path / f"batch{len(extra[1])}"
        args = ["-q", "batch", str(pm), "-o", str(out), *common, "--format", "tiff", *extra]
        assert main([*args, "--workers", "0"]) == 0
        np.testing.assert_allclose(
            tifffile.imread(next(out.glob("*.sim.ome.tif"))),
            tifffile.imread(expected),
            rtol=0,
            atol=1e-5 * float(np.abs(tifffile.imread(expected)).max()),
        )


def test_a_run_of_five_phases_read_as_three_is_refused(tmp_path, capsys):
    """45 frames of 3 angles x 5 phases split as 3 x 3 (no --phases 5, nothing in the file to
    say so) used to reconstruct without complaint into 5 images of nonsense: two of the sets'
    'angles' then show one orientation, which the estimator refuses, naming --phases."""
    from scope.sim.forward import simulate_raw
    from scope.sim.params import SIMParameters
    from scope.sim.samples import make_sample
    from sim_cases import SETUP

    params = SIMParameters.equidistant([12, 72, 132], period_nm=257, n_phases=5)
    raw = simulate_raw(make_sample((256, 256), "mixed", seed=3), params, SETUP, rng=1)
    path = tmp_path / "fifteen.tif"
    tifffile.imwrite(path, np.concatenate([raw] * 3).astype(np.uint16))  # 45 frames, flat
    out = tmp_path / "x.tif"
    assert main(["reconstruct", str(path), "-o", str(out), *CONTRACT]) == 2
    err = capsys.readouterr().err
    assert "show one and the same pattern orientation" in err and "--phases" in err
    assert not out.exists()
    assert main(["-q", "reconstruct", str(path), "-o", str(out), *CONTRACT, "--phases", "5"]) == 0
    doc = json.loads((tmp_path / "x.params.json").read_text())
    found = sorted(a["angle_deg"] % 180 for a in doc["angles"])
    np.testing.assert_allclose(found, [12, 72, 132], atol=0.1)


def test_demo_writes_images_and_says_where(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path / "demo"), "--size", "128", "--no-view"]) == 0
    out = capsys.readouterr().out
    png = tmp_path / "demo" / "widefield_vs_sim.png"
    assert str(png) in out
    from PIL import Image

    img = Image.open(png)
    assert img.size == (2 * 256 + 8, 256)
    sim = tifffile.imread(tmp_path / "demo" / "sim.ome.tif")
    assert sim.shape == (256, 256)


def test_diagnostics_write_spectrum_modulation_map_and_resolution(raw_file, tmp_path, capsys):
    path, _ = raw_file
    out = tmp_path / "d.tif"
    args = ["reconstruct", str(path), "-o", str(out), *CONTRACT, "--offset", str(OFFSET)]
    assert main([*args, "--diagnostics"]) == 0
    text = capsys.readouterr().out
    assert (tmp_path / "d.spectrum.png").stat().st_size > 1000
    assert (tmp_path / "d.modulation.png").stat().st_size > 1000
    doc = json.loads((tmp_path / "d.params.json").read_text())
    res = doc["resolution_nm"]
    assert res["sim"] < 0.8 * res["widefield"]
    contrast = doc["modulation_contrast"]
    # the simulated pattern (modulation 0.8 at 0.85 of the cutoff, 400 photons) is visible
    # over most of the field
    assert contrast["median_mcnr"] > 3 and contrast["fraction_mcnr_3_or_more"] > 0.5
    assert "modulation contrast-to-noise" in text and "beyond the detection cutoff" not in text


def test_widefield_beside_the_sim_image(raw_file, tmp_path, capsys):
    path, case = raw_file
    out = tmp_path / "w.tif"
    args = ["reconstruct", str(path), "-o", str(out), *CONTRACT, "--offset", str(OFFSET)]
    assert main([*args, "--widefield"]) == 0
    assert "widefield: " in capsys.readouterr().out
    with tifffile.TiffFile(tmp_path / "w.widefield.tif") as tif:
        wf = tif.asarray()
        ome = tif.ome_metadata
    assert wf.shape == (2, 128, 128) and wf.dtype == np.float32  # (T, Y, X), camera pixels
    assert 'PhysicalSizeX="0.065"' in ome
    np.testing.assert_allclose(wf[1], case.raw.mean(axis=0) - OFFSET, rtol=1e-5, atol=1e-3)


def test_several_inputs_go_to_the_batch_engine(raw_file, tmp_path):
    path, _ = raw_file
    second = tmp_path / "second.tif"
    second.write_bytes(path.read_bytes())
    out = tmp_path / "out"
    args = ["reconstruct", str(path), str(second), "-o", str(out), *CONTRACT]
    assert main([*args, "--offset", str(OFFSET), "--widefield"]) == 0
    report = json.loads((out / "batch-report.json").read_text())
    assert report["counts"]["done"] == 2
    # two small files: reconstructed in-process (a local cluster took 8 s to start for them)
    assert report["scheduler"] == "in-process"
    # --widefield goes with them (the README said it was refused): each file's widefield image
    for name in ("raw", "second"):
        wf, pixel_nm, _ = read_image(out / f"{name}.widefield.zarr")
        assert wf.shape == (2, 128, 128) and pixel_nm == pytest.approx(65)
    # flags that only make sense for one file are refused, not ignored
    code = subprocess.run(
        [sys.executable, "-m", "scope", *args, "--diagnostics", "--notch", "0.5"],
        capture_output=True,
        text=True,
    )
    assert code.returncode != 0
    assert "--notch, --diagnostics: for one input file" in code.stderr
    # -q: the report's table, no progress bar
    quiet = ["-q", "reconstruct", str(path), str(second), "-o", str(tmp_path / "q"), *CONTRACT]
    code = subprocess.run(
        [sys.executable, "-m", "scope", *quiet, "--offset", str(OFFSET)],
        capture_output=True,
        text=True,
    )
    assert code.returncode == 0, code.stderr
    assert "files" not in code.stderr and "2 done" in code.stdout


def test_a_bleaching_series_records_how_the_filter_followed(tmp_path):
    """Three sets of one sample at 400, 100 and 60 photons: params.json says how far the MMSE
    regulariser was rescaled (see test_reconstruction: the factor follows the noise-to-signal
    ratio; measured x6.73 for the set dimmed to 15 %, one quarter-octave step from 8)."""
    sets = [make_case(0, size=128, photons=p).raw for p in (400, 100, 60)]
    src = tmp_path / "bleach.tif"
    tifffile.imwrite(src, np.stack(sets).astype(np.uint16))
    out = tmp_path / "bleach.sim.tif"
    assert main(["reconstruct", str(src), "-o", str(out), *CONTRACT, "--offset", str(OFFSET)]) == 0
    doc = json.loads((tmp_path / "bleach.params.json").read_text())
    scale = doc["filter_nsr_scale"]
    assert scale["first"] == scale["min"] == 1.0
    assert 4 <= scale["max"] == scale["last"] <= 12


@pytest.fixture(scope="module")
def two_channel_file(tmp_path_factory):
    from sim_cases import make_two_colour_file

    return make_two_colour_file(tmp_path_factory.mktemp("two-channels"))


def test_each_channel_its_own_wavelength_and_pattern(two_channel_file, tmp_path, caplog):
    """A two-colour file: each channel is reconstructed with its own emission wavelength (from
    the file) and its own pattern, estimated on its own first set — the same image as the
    channel reconstructed alone — and the .params.json lists every channel (the first's
    pattern stays at the top, the contract's place). Measured (error against each channel's
    ideal-SIM target): 0.101 and 0.109; the second channel with the first's pattern and
    wavelength, as before, 0.397."""
    from scope.sim import metrics
    from sim_cases import MARGIN, TWO_COLOURS, angle_error_deg

    crop = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]
    out = tmp_path / "two.tif"
    optics = ["--na", "1.2", "--offset", str(OFFSET)]
    args = ["reconstruct", str(two_channel_file["path"]), "-o", str(out), *optics]
    assert main([*args, "--diagnostics"]) == 0
    sim, pixel_nm, meta = read_image(out)
    assert sim.shape == (2, 512, 512) and meta["axes"] == "CYX" and pixel_nm == 32.5
    with tifffile.TiffFile(out) as tif:  # each channel's wavelength for other readers too
        ome = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]["Channel"]
        assert [c["EmissionWavelength"] for c in ome] == [525.0, 600.0]
    doc = json.loads((tmp_path / "two.params.json").read_text())
    assert doc["angles"] == doc["channels"][0]["angles"]
    resolution = [ch["resolution_nm"]["widefield"] for ch in doc["channels"]]
    assert resolution[1] > resolution[0]
    assert doc["resolution_nm"] == doc["channels"][0]["resolution_nm"]
    for c, (wavelength, _) in enumerate(TWO_COLOURS):
        entry = doc["channels"][c]
        assert entry["channel"] == c and entry["wavelength_nm"] == wavelength
        # each channel's diagnostics: its own files, its resolution (the longer wavelength's
        # widefield the coarser)
        for kind in ("spectrum", "modulation"):
            assert (tmp_path / f"two{'.c1' if c else ''}.{kind}.png").stat().st_size > 1000
        assert entry["resolution_nm"]["sim"] < 0.7 * entry["resolution_nm"]["widefield"]
        for found, true in zip(entry["angles"], two_channel_file["truths"][c].angles, strict=True):
            assert angle_error_deg(found["angle_deg"], true.angle_deg) < 0.1
            assert abs(found["period_nm"] / true.period_nm - 1) < 0.002
        error = metrics.normalized_rms_error(sim[c][crop], two_channel_file["targets"][c][crop])
        assert error < 0.12, (c, error)
        alone = tmp_path / f"alone{c}.tif"
        args = [str(two_channel_file["alone"][c]), "-o", str(alone), *optics]
        assert (
            main(["reconstruct", *args, "--wavelength", str(wavelength), "--pixel-size", "65"]) == 0
        )
        np.testing.assert_allclose(sim[c], tifffile.imread(alone), rtol=0, atol=1e-4 * sim[c].max())
    # the second channel with the first's pattern and wavelength: what a single pattern gives
    wrong = tmp_path / "wrong.tif"
    args = [str(two_channel_file["alone"][1]), "-o", str(wrong), *optics, "--pixel-size", "65"]
    first_params = tmp_path / "first.params.json"
    first_params.write_text(json.dumps({"angles": doc["angles"]}))
    assert main(["reconstruct", *args, "--wavelength", "525", "--params", str(first_params)]) == 0
    wrong_error = metrics.normalized_rms_error(
        tifffile.imread(wrong)[crop], two_channel_file["targets"][1][crop]
    )
    assert wrong_error > 0.3
    # read back: the parameters of every channel, the same images without estimating
    again = tmp_path / "again.tif"
    params = ["--params", str(tmp_path / "two.params.json")]
    assert (
        main(["reconstruct", str(two_channel_file["path"]), "-o", str(again), *optics, *params])
        == 0
    )
    np.testing.assert_allclose(tifffile.imread(again), sim, rtol=0, atol=1e-4 * sim.max())


def test_channel_wavelengths_given_or_refused(two_channel_file, tmp_path, capsys, caplog):
    """--wavelength with one value per channel sets each; one value serves all (with a warning
    where the file says otherwise); any other count, or one channel's parameters for two, is
    refused in one line."""
    path = str(two_channel_file["path"])
    optics = ["--na", "1.2", "--offset", str(OFFSET)]
    out = tmp_path / "w.tif"
    assert main(["reconstruct", path, "-o", str(out), *optics, "--wavelength", "520", "610"]) == 0
    doc = json.loads((tmp_path / "w.params.json").read_text())
    assert [ch["wavelength_nm"] for ch in doc["channels"]] == [520.0, 610.0]
    with caplog.at_level("WARNING"):
        assert main(["reconstruct", path, "-o", str(out), *optics, "--wavelength", "525"]) == 0
    assert "its channels emit at 525, 600 nm, but --wavelength 525 is used for all" in caplog.text
    capsys.readouterr()
    three = ["--wavelength", "520", "610", "700"]
    assert main(["reconstruct", path, "-o", str(out), *optics, *three]) == 2
    assert "one per channel; two.ome.tif has 2 channel(s), got 3 values" in capsys.readouterr().err
    single = tmp_path / "single.params.json"
    single.write_text(json.dumps({"angles": doc["angles"]}))
    assert main(["reconstruct", path, "-o", str(out), *optics, "--params", str(single)]) == 2
    assert "holds one channel's pattern, two.ome.tif has 2 channels" in capsys.readouterr().err


def test_an_imagej_hyperstack_of_two_colours(two_channel_file, tmp_path):
    """The two-colour file saved from Fiji (a hyperstack: the 9 frames in Z, before the
    channels) gives the same images as the OME-TIFF: it used to be read frame by frame in file
    order, each 'set' mixing the two colours."""
    data = tifffile.imread(two_channel_file["path"])  # C, 9, Y, X
    hyper = tmp_path / "two_fiji.tif"
    tifffile.imwrite(hyper, np.moveaxis(data, 0, 1), imagej=True, metadata={"axes": "ZCYX"})
    optics = ["--na", "1.2", "--pixel-size", "65", "--offset", str(OFFSET)]
    optics += ["--wavelength", "525", "600"]
    results = []
    for src in (two_channel_file["path"], hyper):
        out = tmp_path / f"{src.name.split('.')[0]}.sim.tif"
        assert main(["-q", "reconstruct", str(src), "-o", str(out), *optics]) == 0
        results.append(tifffile.imread(out))
    assert results[1].shape == (2, 512, 512)
    np.testing.assert_allclose(results[1], results[0], rtol=0, atol=1e-5 * results[0].max())


def test_a_deltavision_file_of_two_colours(two_channel_file, tmp_path):
    """The two-colour file as an OMX/DeltaVision microscope writes it (channels interleaved
    frame by frame, WZT; written by the ``mrc`` package): each channel's wavelength and the
    pixel size from its header, the same images as the OME-TIFF with those given."""
    import mrc

    data = tifffile.imread(two_channel_file["path"])  # C, 9, Y, X
    dv = tmp_path / "two.dv"
    meta = {"wave0": 525, "wave1": 600, "dxy": 0.065}
    mrc.save(np.ascontiguousarray(np.moveaxis(data, 0, 1)), str(dv), zAxisOrder="zw", metadata=meta)
    optics = ["--na", "1.2", "--offset", str(OFFSET)]
    out = tmp_path / "dv.tif"
    assert main(["-q", "reconstruct", str(dv), "-o", str(out), *optics]) == 0
    doc = json.loads((tmp_path / "dv.params.json").read_text())
    assert [ch["wavelength_nm"] for ch in doc["channels"]] == [525.0, 600.0]
    ref = tmp_path / "ome.tif"
    given = ["--pixel-size", "65", "--wavelength", "525", "600"]
    assert (
        main(["-q", "reconstruct", str(two_channel_file["path"]), "-o", str(ref), *optics, *given])
        == 0
    )
    sim, pixel_nm, _ = read_image(out)
    assert pixel_nm == pytest.approx(32.5, rel=1e-6)
    expected = tifffile.imread(ref)  # (the header's pixel size is a float32: 64.9999976 nm)
    np.testing.assert_allclose(sim, expected, rtol=0, atol=1e-4 * expected.max())


def test_batch_gives_each_channel_its_wavelength(two_channel_file, tmp_path):
    """`scope batch` on the two-colour file: each channel's optics from the file's channels,
    the same images as `scope reconstruct`."""
    out = tmp_path / "batch"
    optics = ["--na", "1.2", "--offset", str(OFFSET)]
    args = ["batch", str(two_channel_file["path"]), "-o", str(out), *optics]
    assert main([*args, "--workers", "0", "--format", "tiff"]) == 0
    report = json.loads((out / "batch-report.json").read_text())
    (entry,) = report["files"]
    assert entry["sources"]["wavelength_nm"] == "file"
    # each channel's figures: its wavelength, its own pattern (12° / 17°), its resolution
    channels = entry["channels"]
    assert [c["wavelength_nm"] for c in channels] == [525.0, 600.0]
    firsts = [min(a["angle_deg"] % 60 for a in c["angles"]) for c in channels]
    np.testing.assert_allclose(firsts, [12.0, 17.0], atol=0.1)
    assert all(c["resolution"]["sim_nm"] < 0.7 * c["resolution"]["widefield_nm"] for c in channels)
    params_doc = json.loads(next(out.glob("*.params.json")).read_text())
    assert params_doc["channels"] == channels
    batch_file = next(out.glob("*.tif"))
    batch = tifffile.imread(batch_file)
    with tifffile.TiffFile(batch_file) as tif:
        ome = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]["Channel"]
        assert [c["EmissionWavelength"] for c in ome] == [525.0, 600.0]
    one = tmp_path / "one.tif"
    assert main(["reconstruct", str(two_channel_file["path"]), "-o", str(one), *optics]) == 0
    single = tifffile.imread(one)
    np.testing.assert_allclose(batch, single, rtol=0, atol=1e-4 * single.max())


def test_each_channel_its_measured_otf(two_channel_file, tmp_path, capsys, caplog):
    """--otf A B gives each channel its own measured OTF (scope reconstruct, scope batch): with
    each channel's OTF measured (here its ideal OTF written as an MRC radial profile) the
    images are those of the ideal OTFs; the 525 nm OTF serving the 600 nm channel too changes
    that channel's image, and both commands warn about it (one implementation:
    scope.sim.pipeline.MeasuredOTFs); any other count is refused in one line."""
    import mrcfile

    from scope.optics import OTF, OpticalSetup

    files = []
    for c, (wavelength, _) in enumerate(TWO_COLOURS):
        otf = OTF.from_setup(OpticalSetup(na=1.2, wavelength_nm=wavelength, pixel_size_nm=65))
        dk = otf.cutoff_per_um / 400
        profile = otf(np.arange(512) * dk).astype(np.float32)
        files.append(tmp_path / f"otf{c}.mrc")
        with mrcfile.new(files[-1]) as mrc:
            mrc.set_data(profile[None, :])
            mrc.voxel_size = dk  # the frequency step, as CUDA-SIMrecon writes it
    path = str(two_channel_file["path"])
    optics = ["--na", "1.2", "--offset", str(OFFSET)]
    ideal, measured, one = tmp_path / "ideal.tif", tmp_path / "measured.tif", tmp_path / "one.tif"
    assert main(["-q", "reconstruct", path, "-o", str(ideal), *optics]) == 0
    otfs = ["--otf", *map(str, files)]
    assert main(["-q", "reconstruct", path, "-o", str(measured), *optics, *otfs]) == 0
    shared = "otf0.mrc serves channel 1 (600 nm) as well as channel 0 (525 nm)"
    with caplog.at_level("WARNING", logger="scope.sim.pipeline"):
        assert main(["reconstruct", path, "-o", str(one), *optics, "--otf", str(files[0])]) == 0
    assert shared in caplog.text
    doc = json.loads((tmp_path / "measured.params.json").read_text())
    assert [ch["otf"] for ch in doc["channels"]] == [str(f) for f in files]
    a, b, c = (tifffile.imread(f) for f in (ideal, measured, one))
    scale = float(np.abs(a).max())
    for ch in (0, 1):
        assert np.abs(b[ch] - a[ch]).max() < 0.01 * scale, ch  # each its own: as ideal
    assert np.abs(c[0] - b[0]).max() < 1e-4 * scale  # the same OTF for channel 0
    assert np.abs(c[1] - a[1]).max() > 0.05 * scale  # the wrong one for channel 1
    batch = tmp_path / "batch"
    args = ["-q", "batch", path, "-o", str(batch), *optics, *otfs, "--format", "tiff"]
    assert main([*args, "--workers", "0"]) == 0
    np.testing.assert_allclose(tifffile.imread(next(batch.glob("*.tif"))), b, atol=1e-4 * scale)
    caplog.clear()
    batch_one = ["batch", path, "-o", str(tmp_path / "batch-one"), *optics, "--otf", str(files[0])]
    with caplog.at_level("WARNING", logger="scope.sim.pipeline"):
        assert main([*batch_one, "--format", "tiff", "--workers", "0"]) == 0
    assert shared in caplog.text
    capsys.readouterr()
    three = ["--otf", *map(str, files), str(files[0])]
    assert main(["reconstruct", path, "-o", str(one), *optics, *three]) == 2
    assert "one per channel; two.ome.tif has 2 channel(s), got 3 files" in capsys.readouterr().err


def test_bad_params_file_one_clear_line(raw_file, tmp_path, capsys):
    path = tmp_path / "one_set.tif"
    tifffile.imwrite(path, raw_file[1].raw.astype(np.uint16))
    args = ["reconstruct", str(path), "-o", str(tmp_path / "x.tif"), *CONTRACT, "--params"]
    broken = tmp_path / "broken.params.json"
    broken.write_text("{angles")
    for given, message in (
        (broken, "is not JSON"),
        (tmp_path / "missing.params.json", "cannot read --params"),
    ):
        assert main([*args, str(given)]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.tif").exists()


def test_video_export_of_a_raw_file_gives_each_channel_its_pattern(two_channel_file):
    """The exporter's raw source (`scope export-video --raw`): the two colours as two channels,
    each reconstructed with its own pattern and wavelength — channel 1 the same as the channel
    exported alone at 600 nm, and close to its ideal-SIM target (measured 0.109)."""
    from scope.export.sources import reconstruct_raw_source
    from scope.sim import metrics
    from sim_cases import MARGIN

    crop = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]
    both = reconstruct_raw_source(two_channel_file["path"], na=1.2)
    assert both.frames.shape == (1, 2, 512, 512)
    second = np.asarray(both.frames[0, 1])
    alone = reconstruct_raw_source(
        two_channel_file["alone"][1], na=1.2, wavelength_nm=600, pixel_size_nm=65
    )
    np.testing.assert_allclose(second, np.asarray(alone.frames[0, 0]), atol=1e-4 * second.max())
    error = metrics.normalized_rms_error(second[crop], two_channel_file["targets"][1][crop])
    assert error < 0.12, error


def test_a_channel_too_sparse_for_its_pattern_borrows_the_first(tmp_path, caplog):
    """A second channel of a few beads shows no clear carrier blind: it is estimated again
    with the first channel's pattern as the prior (said in the log) instead of failing."""
    from scope.optics import OpticalSetup
    from scope.sim.forward import simulate_raw
    from scope.sim.params import SIMParameters
    from scope.sim.samples import make_sample
    from sim_cases import angle_error_deg

    setup = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
    truth = SIMParameters.equidistant([5, 65, 125], period_nm=260, modulation=0.8)
    raw = np.stack(
        [
            simulate_raw(make_sample((128, 128), kind, seed=1), truth, setup, rng=c)
            for c, kind in enumerate(("filaments", "beads"))
        ]
    ).astype(np.uint16)
    path = tmp_path / "sparse.ome.tif"
    tifffile.imwrite(path, raw, ome=True, metadata={"axes": "CQYX"})
    out = tmp_path / "sparse.tif"
    with caplog.at_level("WARNING"):
        assert main(["reconstruct", str(path), "-o", str(out), *CONTRACT]) == 0
    assert "estimated again with another channel's pattern as the prior" in caplog.text
    doc = json.loads((tmp_path / "sparse.params.json").read_text())
    for found, true in zip(doc["channels"][1]["angles"], truth.angles, strict=True):
        assert angle_error_deg(found["angle_deg"], true.angle_deg) < 0.5


def test_outputs_that_differ_after_a_dot_keep_their_own_files(raw_file, tmp_path):
    """cell.t1.sim.tif and cell.t2.sim.tif: each its own .params.json and widefield image (both
    were cell.params.json, cell.widefield.tif: the second run replaced the first's)."""
    path, _ = raw_file
    for tag in ("t1", "t2"):
        out = tmp_path / f"cell.{tag}.sim.tif"
        args = ["-q", "reconstruct", str(path), "-o", str(out), *CONTRACT, "--widefield"]
        assert main([*args, "--offset", str(OFFSET)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "cell.t1.params.json",
        "cell.t1.sim.tif",
        "cell.t1.widefield.tif",
        "cell.t2.params.json",
        "cell.t2.sim.tif",
        "cell.t2.widefield.tif",
    ]


def test_a_run_s_set_times_travel_into_the_results(tmp_path):
    """A `scope acquire` run states when each frame was taken: the SIM and widefield results of
    `scope reconstruct` and `scope batch` (OME-TIFF TimeIncrement, the NGFF t scale in seconds)
    carry the time from one set to the next, the median of the run's set start times (the
    exporter's timestamps and speed labels read them; the results had none)."""
    from scope.acquisition.writer import read_acquisition
    from scope.io.raw import open_sim_stack

    run = tmp_path / "run.zarr"
    assert main(["-q", "acquire", "--sets", "3", "-o", str(run)]) == 0
    _, table, _ = read_acquisition(run)
    starts = [table["timestamp_ns"][table["set"] == s].min() for s in np.unique(table["set"])]
    expected = float(np.median(np.diff(starts))) * 1e-9
    stack, _, _ = open_sim_stack(run)
    with stack:
        assert stack.time_increment_s == pytest.approx(expected, rel=1e-9)
    assert expected > 0
    out = tmp_path / "run.sim.ome.tif"
    assert main(["-q", "reconstruct", str(run), "-o", str(out), "--widefield"]) == 0
    for path in (out, tmp_path / "run.widefield.tif"):
        with tifffile.TiffFile(path) as tif:
            pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
        assert pixels["TimeIncrement"] == pytest.approx(expected, rel=1e-6)
        assert pixels["TimeIncrementUnit"] == "s"
    batch = tmp_path / "batch"
    assert main(["-q", "batch", str(run), "-o", str(batch), "--workers", "0"]) == 0
    attrs = json.loads((batch / "run.sim.zarr" / "zarr.json").read_text())["attributes"]
    ms = attrs["ome"]["multiscales"][0]
    assert ms["axes"][0] == {"name": "t", "type": "time", "unit": "second"}
    scale = ms["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale[0] == pytest.approx(expected, rel=1e-9)
    # the exporter reads them back: its clip's timestamps
    from scope.export.sources import read_image_source

    for path in (out, batch / "run.sim.zarr"):
        times = read_image_source(path).timestamps_s
        np.testing.assert_allclose(times, np.arange(3) * expected, rtol=1e-6)


def test_the_widefield_image_of_two_colours_names_its_channels(two_channel_file, tmp_path):
    """`--widefield` on a two-colour file: the widefield OME-TIFF states each channel's emission
    wavelength like the SIM result (it stated none: napari showed its channels grey)."""
    out = tmp_path / "two.tif"
    args = ["-q", "reconstruct", str(two_channel_file["path"]), "-o", str(out), "--widefield"]
    assert main([*args, "--na", "1.2", "--offset", str(OFFSET)]) == 0
    for path in (out, tmp_path / "two.widefield.tif"):
        with tifffile.TiffFile(path) as tif:
            ome = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]["Channel"]
        assert [c["EmissionWavelength"] for c in ome] == [525.0, 600.0]
