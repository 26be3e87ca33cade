"""Camera calibration: photon transfer on simulated stacks, B-SIM sCMOS maps on real data."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile

from scope.calibration.camera import (
    CameraCalibration,
    load_camera_calibration,
    photon_transfer,
    pixel_maps,
    read_scmos_maps,
    save_camera_calibration,
    simulate_frames,
    to_electrons,
)
from scope.errors import DataFormatError

GAIN_ADU_PER_E = 2.3  # i.e. 0.4348 e-/ADU
READ_NOISE_E = 1.7
OFFSET_ADU = 100.0
LEVELS_E = (40, 150, 500, 1500, 4000)


def _stacks(rng, shape=(48, 48), n=24, gain=GAIN_ADU_PER_E, read=READ_NOISE_E, offset=OFFSET_ADU):
    # a slightly uneven flat field (vignetting) at each level: the method must not care
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    vignette = 1.0 - 0.2 * (((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2) / shape[0] ** 2)
    kw = dict(gain_adu_per_e=gain, read_noise_e=read, offset_adu=offset, rng=rng)
    dark = simulate_frames(np.zeros(shape), n, **kw)
    flats = [simulate_frames(level * vignette, n, **kw) for level in LEVELS_E]
    return dark, flats


def test_photon_transfer_recovers_gain_and_read_noise():
    dark, flats = _stacks(np.random.default_rng(1))
    cal = photon_transfer(dark, flats)
    assert cal.gain_adu_per_e == pytest.approx(GAIN_ADU_PER_E, rel=0.03)
    assert cal.gain_e_per_adu == pytest.approx(1 / GAIN_ADU_PER_E, rel=0.03)
    assert cal.read_noise_e == pytest.approx(READ_NOISE_E, rel=0.10)
    assert cal.offset_adu == pytest.approx(OFFSET_ADU, abs=0.1)
    assert cal.n_levels == len(LEVELS_E) + 1
    assert cal.fit_rms_rel < 0.05  # a linear sensor gives a straight photon-transfer curve


def test_photon_transfer_on_a_low_gain_camera_with_saturated_level():
    # 0.5 ADU/e- (2 e-/ADU), 3 e- read noise, 12-bit: the brightest level clips and is dropped
    rng = np.random.default_rng(2)
    kw = dict(gain_adu_per_e=0.5, read_noise_e=3.0, offset_adu=64.0, bit_depth=12, rng=rng)
    dark = simulate_frames(np.zeros((40, 40)), 30, **kw)
    flats = [simulate_frames(np.full((40, 40), lv), 30, **kw) for lv in (300, 1200, 4000, 9000)]
    cal = photon_transfer(dark, flats, saturation_adu=4095)
    assert cal.n_levels == 4  # dark + 3 unsaturated levels
    assert cal.gain_e_per_adu == pytest.approx(2.0, rel=0.03)
    assert cal.read_noise_e == pytest.approx(3.0, rel=0.10)


def test_pixel_maps_recover_per_pixel_scmos_parameters():
    rng = np.random.default_rng(3)
    shape = (32, 32)
    gain = rng.normal(2.0, 0.12, shape)
    read = rng.lognormal(np.log(1.6), 0.3, shape)  # sCMOS: skewed read noise, a few noisy pixels
    offset = rng.normal(100, 3, shape)
    kw = dict(gain_adu_per_e=gain, read_noise_e=read, offset_adu=offset, rng=rng)
    # per-pixel relative gain error ~ sqrt(2 / (frames x levels)) = sqrt(2 / 1800) = 3.3 % rms,
    # i.e. a median absolute error of ~0.67 x 3.3 = 2.2 %
    dark = simulate_frames(np.zeros(shape), 300, **kw)
    levels = (150, 300, 600, 1200, 2000, 3000)
    flats = [simulate_frames(np.full(shape, lv), 300, **kw) for lv in levels]
    maps = pixel_maps(dark, flats)
    gain_err = np.abs(maps.gain_adu_per_e / gain - 1)
    read_err = np.abs(maps.read_noise_e / read - 1)
    assert np.median(gain_err) < 0.03
    assert np.median(read_err) < 0.10
    assert np.max(np.abs(maps.offset_adu - offset)) < 1.0
    # the maps track the pixel-to-pixel differences, not just the average
    assert np.corrcoef(maps.gain_adu_per_e.ravel(), gain.ravel())[0, 1] > 0.8
    # and the median summary matches the sensor-wide photon transfer
    assert maps.summary().gain_adu_per_e == pytest.approx(np.median(gain), rel=0.03)


def test_bad_input_is_refused():
    with pytest.raises(DataFormatError, match="stack"):
        photon_transfer(np.zeros((10, 10)), [np.ones((3, 10, 10))])
    dark = np.zeros((3, 8, 8))
    with pytest.raises(DataFormatError, match="region of interest"):
        photon_transfer(dark, [np.ones((3, 8, 9))])
    rng = np.random.default_rng(0)
    d = simulate_frames(np.zeros((8, 8)), 5, read_noise_e=2.0, rng=rng)
    dim = simulate_frames(np.full((8, 8), 1.0), 5, read_noise_e=2.0, rng=rng)
    with pytest.raises(DataFormatError, match="more light"):
        photon_transfer(d, [dim])


BSIM = "bsim-hela-mitochondria"


def test_bsim_scmos_maps_are_read_and_applied(data_dir):
    folder = data_dir / BSIM
    maps = read_scmos_maps(
        folder / "offset_map.tif", folder / "gain_map.tif", folder / "variance_map.tif"
    )
    assert maps.shape == (120, 120)
    raw = tifffile.imread(folder / "raw_images.tif")
    electrons = maps.to_electrons(raw)
    assert electrons.dtype == np.float32
    assert electrons.shape == raw.shape
    # per pixel, exactly (raw - offset) / gain, read independently from the files here
    offset = tifffile.imread(folder / "offset_map.tif").astype(np.float64)
    gain = tifffile.imread(folder / "gain_map.tif").astype(np.float64)
    expected = (raw.astype(np.float64) - offset) / gain
    np.testing.assert_allclose(electrons, expected, rtol=1e-5, atol=1e-4)
    # mean counts over the 9 frames agree per pixel
    np.testing.assert_allclose(
        electrons.mean(axis=0), (raw.mean(axis=0) - offset) / gain, rtol=1e-4, atol=1e-3
    )
    # the maps are those of a real sensor: gain ~1.96 ADU/e-, offset ~100 ADU, and a read noise
    # of about 1.2 e- rms (median), consistent with the ~2 ADU stated by the data set
    summary = maps.summary()
    assert summary.gain_adu_per_e == pytest.approx(1.954, abs=0.01)
    assert summary.offset_adu == pytest.approx(100.0, abs=0.1)
    assert 0.8 < summary.read_noise_e < 1.6
    # a region of interest cut from the frames converts the same with the matching origin
    roi = to_electrons(raw[:, 30:90, 40:100], maps, origin=(30, 40))
    np.testing.assert_array_equal(roi, electrons[:, 30:90, 40:100])
    with pytest.raises(DataFormatError, match="do not fit"):
        to_electrons(raw[:, :60, :60], maps, origin=(80, 0))


def test_calibration_round_trips_through_the_preset(tmp_path, data_dir):
    preset = tmp_path / "mysetup.toml"
    preset.write_text('[camera]\nname = "AR0234"\npixel_pitch_um = 3.0\n')
    cal = CameraCalibration(offset_adu=99.5, gain_adu_per_e=2.5, read_noise_e=1.8, n_levels=6)
    folder = data_dir / BSIM
    maps = read_scmos_maps(
        folder / "offset_map.tif", folder / "gain_map.tif", folder / "variance_map.tif"
    )
    save_camera_calibration(preset, cal, maps)
    text = preset.read_text()
    assert "[calibration.camera]" in text
    assert "gain_e_per_adu = 0.4" in text
    assert 'name = "AR0234"' in text  # the rest of the preset is kept
    cal2, maps2 = load_camera_calibration(preset)
    assert cal2 is not None
    assert maps2 is not None
    assert cal2.gain_adu_per_e == pytest.approx(2.5)
    assert cal2.read_noise_e == pytest.approx(1.8)
    np.testing.assert_array_equal(maps2.gain_adu_per_e, maps.gain_adu_per_e)
    np.testing.assert_array_equal(maps2.variance_adu2, maps.variance_adu2)


def test_batch_applies_the_camera_maps_of_a_preset(tmp_path):
    """An sCMOS-like camera (offset spread 5 ADU, gain spread 10 %, per pixel): its maps,
    saved in a preset by the calibration, turn every frame into photo-electrons in `scope
    batch --preset`, and the SIM image is as good as from an ideal camera's electrons.
    Measured (error against the ideal-SIM target): maps 0.105 (an ideal camera: 0.104), the
    calibration's scalar offset only 0.185."""
    import json

    from scope.calibration.camera import SCMOSMaps
    from scope.cli import main
    from scope.sim import metrics
    from scope.sim.forward import simulate_raw
    from sim_cases import BACKGROUND, MARGIN, SETUP, ideal_target, make_case

    case = make_case(0)
    electrons = simulate_raw(
        case.ground_truth,
        case.truth,
        SETUP,
        photons_peak=400,
        background_photons=BACKGROUND * 400,
        offset_adu=0.0,
        noise=False,
    )
    rng = np.random.default_rng(1)
    offset = (100 + rng.normal(0, 5, (256, 256))).astype(np.float32)
    gain = (2.0 * (1 + rng.normal(0, 0.1, (256, 256)))).astype(np.float32)
    raw = offset + gain * (rng.poisson(electrons) + rng.normal(0, 1.5, electrons.shape))
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "scmos.tif", np.rint(raw).astype(np.uint16))
    target = ideal_target(case.ground_truth, case.truth)
    crop = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]
    optics = ["--na", "1.2", "--wavelength", "525", "--pixel-size", "65"]
    errors = {}
    for name, maps in (("maps", True), ("scalar", False)):
        preset = tmp_path / f"{name}.toml"
        preset.write_text('[camera]\nname = "sCMOS"\n')
        cal = CameraCalibration(offset_adu=100.0, gain_adu_per_e=2.0, read_noise_e=1.5)
        scmos = SCMOSMaps(offset, gain, np.full_like(offset, 9.0)) if maps else None
        save_camera_calibration(preset, cal, scmos)
        out = tmp_path / f"out-{name}"
        args = ["batch", str(folder), "-o", str(out), *optics, "--preset", str(preset)]
        assert main([*args, "--workers", "0", "--format", "tiff"]) == 0
        sim = tifffile.imread(next(out.glob("*.tif")))
        errors[name] = metrics.normalized_rms_error(sim[crop], target[crop])
        report = json.loads((out / "batch-report.json").read_text())
        assert (report["files"][0]["sources"]["offset_adu"] == "camera maps") == maps
    assert errors["maps"] <= 0.11, errors
    assert errors["scalar"] >= errors["maps"] + 0.05, errors


def test_batch_refuses_camera_maps_of_another_size(tmp_path):
    import json

    from scope.calibration.camera import SCMOSMaps
    from scope.cli import main

    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "raw.tif", np.full((9, 64, 64), 120, np.uint16))
    preset = tmp_path / "cam.toml"
    preset.write_text('[camera]\nname = "sCMOS"\n')
    small = np.full((32, 32), 100.0, np.float32)
    save_camera_calibration(preset, None, SCMOSMaps(small, small * 0 + 2.0, small * 0 + 4.0))
    out = tmp_path / "out"
    optics = ["--na", "1.2", "--wavelength", "525", "--pixel-size", "65"]
    assert main(["batch", str(folder), "-o", str(out), *optics, "--preset", str(preset)]) == 2
    error = json.loads((out / "batch-report.json").read_text())["files"][0]["error"]
    assert "maps in cam.toml are 32x32 pixels, the frames 64x64" in error


def test_reconstruct_applies_camera_maps(tmp_path):
    """`scope reconstruct --camera-maps PRESET`: the one-file command converts with the same
    maps as the batch (same image as `scope batch --preset` and `scope batch --camera-maps`,
    and as `scope reconstruct` given several files, which hands them to the batch), and both
    commands refuse an --offset beside them."""
    from scope.calibration.camera import SCMOSMaps
    from scope.cli import main
    from sim_cases import make_case

    case = make_case(2, size=128)
    rng = np.random.default_rng(2)
    offset = (100 + rng.normal(0, 5, (128, 128))).astype(np.float32)
    gain = (2.0 * (1 + rng.normal(0, 0.1, (128, 128)))).astype(np.float32)
    raw = np.rint(offset + gain * (case.raw - 100.0)).astype(np.uint16)
    src = tmp_path / "scmos.tif"
    tifffile.imwrite(src, raw)
    preset = tmp_path / "cam.toml"
    preset.write_text('[camera]\nname = "sCMOS"\n')
    save_camera_calibration(preset, None, SCMOSMaps(offset, gain, np.full_like(offset, 9.0)))
    optics = ["--na", "1.2", "--wavelength", "525", "--pixel-size", "65"]
    out = tmp_path / "one.tif"
    assert (
        main(["reconstruct", str(src), "-o", str(out), *optics, "--camera-maps", str(preset)]) == 0
    )
    batch_out = tmp_path / "batch"
    args = ["batch", str(src), "-o", str(batch_out), *optics, "--preset", str(preset)]
    assert main([*args, "--workers", "0", "--format", "tiff"]) == 0
    one = tifffile.imread(out)
    batch = tifffile.imread(next(batch_out.glob("*.tif")))
    assert np.abs(one - batch).max() <= 1e-4 * np.abs(one).max()
    flag_out = tmp_path / "flag"
    args = ["batch", str(src), "-o", str(flag_out), *optics, "--camera-maps", str(preset)]
    assert main([*args, "--workers", "0", "--format", "tiff"]) == 0
    np.testing.assert_array_equal(tifffile.imread(next(flag_out.glob("*.tif"))), batch)
    twin = tmp_path / "scmos2.tif"
    twin.write_bytes(src.read_bytes())
    several = tmp_path / "several"
    args = ["reconstruct", str(src), str(twin), "-o", str(several), *optics]
    assert main([*args, "--camera-maps", str(preset), "--immersion", "1.515"]) == 0
    results = sorted(several.glob("*.zarr"))
    assert len(results) == 2
    for result in results:
        from scope.io.writers import read_image

        image, _, _ = read_image(result)
        assert np.abs(image - batch).max() <= 1e-4 * np.abs(batch).max(), result.name
    args = ["batch", str(src), "-o", str(tmp_path / "no"), *optics, "--camera-maps", str(preset)]
    assert main([*args, "--offset", "100"]) == 2
    # every shared flag reaches the batch: NA 1.2 in air is refused (--immersion was dropped)
    args = ["reconstruct", str(src), str(twin), "-o", str(tmp_path / "air"), *optics]
    assert main([*args, "--immersion", "1.0"]) == 2
    code = main(
        [
            "reconstruct",
            str(src),
            "-o",
            str(out),
            *optics,
            "--camera-maps",
            str(preset),
            "--offset",
            "100",
        ]
    )
    assert code != 0


def test_noiseless_dark_or_clipped_flat_is_refused_with_a_reason(caplog):
    # a cheap 8-bit camera that clamps its black level at 0 gives dark frames with no noise,
    # and a flat level clipped at full scale has none either: a clear error, not a LinAlgError
    rng = np.random.default_rng(4)
    kw = dict(gain_adu_per_e=0.5, read_noise_e=3.0, offset_adu=64.0, bit_depth=12, rng=rng)
    dark = simulate_frames(np.zeros((16, 16)), 10, **kw)
    flats = [simulate_frames(np.full((16, 16), lv), 10, **kw) for lv in (300, 1200)]
    with pytest.raises(DataFormatError, match="dark frames do not vary"):
        photon_transfer(np.zeros((10, 16, 16), np.uint8), flats)
    # a level all at 4095 in 16-bit words: the camera's 12-bit full scale, left out with a
    # warning naming the flag that sets another full scale
    caplog.set_level(logging.WARNING)
    clipped = np.full((10, 16, 16), 4095, np.uint16)
    cal = photon_transfer(dark, [*flats, clipped])
    assert cal.n_levels == 3
    assert cal.gain_adu_per_e == pytest.approx(0.5, rel=0.1)
    assert any("left out of the fit" in r.getMessage() for r in caplog.records)
    assert any("--saturation-adu" in r.getMessage() for r in caplog.records)
    # a constant level below any full scale: clipped by something else, or copies of a frame
    copies = np.full((10, 16, 16), 2000.5, np.float32)
    with pytest.raises(DataFormatError, match="clipped at full scale"):
        photon_transfer(dark, [*flats, copies])
