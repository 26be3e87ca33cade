"""The user sweep of ``scope calibrate``: clipped flats and beads, mixed-up files, optics in the
wrong units, outputs that cannot be written, and the permissions of a new preset."""

from __future__ import annotations

import argparse
import logging
import os
import stat
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from scope.calibration.camera import photon_transfer, pixel_maps, simulate_frames
from scope.calibration.otf import measure_otf, sphere_transfer
from scope.errors import ConfigurationError, DataFormatError
from scope.optics import ideal_otf, pixel_transfer

GAIN_ADU_PER_E = 2.2
CAMERA = dict(gain_adu_per_e=GAIN_ADU_PER_E, read_noise_e=1.6, offset_adu=100.0)

N = 256
PIXEL_NM = 65.0
NA, WAVELENGTH_NM = 1.2, 525.0
FC = 2 * NA / (WAVELENGTH_NM * 1e-3)  # 4.571 cycles/µm
OPTICS = ["--na", "1.2", "--wavelength", "525", "--offset-adu", "100"]
SINGLES = [
    (40.3, 44.7),
    (42.8, 120.2),
    (45.1, 200.6),
    (118.6, 42.2),
    (122.4, 205.9),
    (200.7, 40.9),
    (204.2, 121.3),
    (210.9, 203.4),
    (125.2, 124.6),
]


def _run(argv: list[str]) -> int:
    from scope.cli import calibrate

    parser = argparse.ArgumentParser(prog="scope")
    calibrate.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["calibrate", *argv])
    return args.func(args)


def _ramp_flats(tmp_path: Path, rng: np.random.Generator) -> tuple[str, list[str]]:
    """A 12-bit camera in 16-bit words: dark and four flats of a left-to-right ramp (0.3 to 1.3
    x the level), the brightest clipped at 4095 on about a third of its pixels."""
    kw = dict(CAMERA, rng=rng)
    ramp = np.linspace(0.3, 1.3, 48)[None, :] * np.ones((48, 1))
    dark = tmp_path / "dark.tif"
    tifffile.imwrite(dark, simulate_frames(np.zeros((48, 48)), 40, **kw).astype(np.uint16))
    flats = []
    for level in (200, 600, 1200, 1800):
        frames = np.minimum(simulate_frames(ramp * level, 40, **kw), 4095).astype(np.uint16)
        flats.append(str(tmp_path / f"flat{level}.tif"))
        tifffile.imwrite(flats[-1], frames)
    return str(dark), flats


def _bead_image(rng, amplitudes, peak=3000.0):
    """Band-limited camera image (photo-electrons = ADU above a 100 ADU offset) of the beads at
    ``SINGLES``, 65 nm pixels, NA 1.2, 525 nm, 100 nm beads."""
    dx_um = PIXEL_NM * 1e-3
    f = np.fft.fftfreq(N, d=dx_um)
    fx, fy = f[None, :], f[:, None]
    k = np.hypot(fx, fy)
    h = ideal_otf(k, FC, damping=0.6) * pixel_transfer(fx, fy, dx_um) * sphere_transfer(k, 100.0)
    spectrum = np.zeros((N, N), complex)
    for (y, x), a in zip(SINGLES, amplitudes, strict=True):
        spectrum += a * np.exp(-2j * np.pi * (fx * x + fy * y) * dx_um)
    img = np.real(np.fft.ifft2(spectrum * h))
    img = img / img.max() * peak + 40.0
    return simulate_frames(img, 1, gain_adu_per_e=1.0, read_noise_e=1.5, offset_adu=100.0, rng=rng)[
        0
    ]


@pytest.fixture(scope="module")
def beads_tif(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("beads") / "beads.tif"
    image = _bead_image(np.random.default_rng(3), [1.0] * len(SINGLES))
    tifffile.imwrite(path, image.astype(np.uint16))
    return path


# --- 1. flats clipped at a 12-bit full scale --------------------------------------------------


def test_flats_clipped_at_4095_in_16_bit_words_leave_their_clipped_pixels_out(tmp_path, caplog):
    """About a third of the brightest flat sits at 4095 in a uint16 file: it gave a gain of 1.77
    ADU/e- against the true 2.2 (20 % off), with a fit rms of 21 %, silently saved. The pile-up
    at 4095 is the 12-bit camera's full scale: those pixels are left out, with a warning that
    names it and the flag that sets another."""
    dark, flats = _ramp_flats(tmp_path, np.random.default_rng(5))
    preset = tmp_path / "cam.toml"
    caplog.set_level(logging.WARNING)
    assert (
        _run(["camera", "--dark", dark, "--flat", *flats, "--preset", str(preset), "--create"]) == 0
    )
    table = tomllib.loads(preset.read_text())["calibration"]["camera"]
    assert 1 / table["gain_e_per_adu"] == pytest.approx(GAIN_ADU_PER_E, rel=0.02)
    assert table["read_noise_e"] == pytest.approx(1.6, rel=0.05)
    assert table["fit_rms_rel"] < 0.01
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(
        "flat1800.tif" in m and "4095 ADU" in m and "12-bit" in m and "--saturation-adu" in m
        for m in warned
    ), warned
    # the same with the full scale given: the same pixels are left out, the same gain
    again = tmp_path / "again.toml"
    argv = ["camera", "--dark", dark, "--flat", *flats, "--preset", str(again), "--create"]
    assert _run([*argv, "--saturation-adu", "4095"]) == 0
    given = tomllib.loads(again.read_text())["calibration"]["camera"]
    assert given["gain_e_per_adu"] == pytest.approx(table["gain_e_per_adu"], rel=1e-9)


def test_clipped_pixels_leave_only_their_own_level_out_of_the_per_pixel_maps(tmp_path):
    """Per-pixel maps: a pixel clipped at the brightest level is fitted from the levels where it
    is not (its gain came out ~25 % low)."""
    dark, flats = _ramp_flats(tmp_path, np.random.default_rng(6))
    stacks = [tifffile.imread(f) for f in flats]
    maps = pixel_maps(tifffile.imread(dark), stacks)
    clipped = np.any(stacks[-1] >= 4095, axis=0)
    assert clipped.mean() > 0.2
    assert np.median(maps.gain_adu_per_e[clipped]) == pytest.approx(GAIN_ADU_PER_E, rel=0.03)
    assert np.median(maps.gain_adu_per_e[~clipped]) == pytest.approx(GAIN_ADU_PER_E, rel=0.03)


def test_whole_numbers_stored_as_floats_are_checked_against_their_16_bit_full_scale():
    """The same clipped flats converted to float32 on the way (a camera's values, whole
    numbers): the pile-up at 4095 is found all the same."""
    rng = np.random.default_rng(7)
    kw = dict(CAMERA, rng=rng)
    ramp = np.linspace(0.3, 1.3, 32)[None, :] * np.ones((32, 1))
    dark = simulate_frames(np.zeros((32, 32)), 30, **kw)
    flats = [
        np.minimum(simulate_frames(ramp * lv, 30, **kw), 4095) for lv in (200, 600, 1200, 1800)
    ]
    assert flats[-1].dtype == np.float32 and np.mean(flats[-1] >= 4095) > 0.1
    cal = photon_transfer(dark, flats)
    assert cal.gain_adu_per_e == pytest.approx(GAIN_ADU_PER_E, rel=0.03)


def test_a_photon_transfer_fit_far_from_a_straight_line_is_warned(caplog):
    """Flickering light at one level (3 % from frame to frame) adds variance the gain does not
    explain: the fit's rms is large and the gain doubtful, which is said (it was saved
    silently)."""
    rng = np.random.default_rng(8)
    kw = dict(CAMERA, rng=rng)
    dark = simulate_frames(np.zeros((32, 32)), 30, **kw)
    flats = [simulate_frames(np.full((32, 32), lv), 30, **kw) for lv in (200, 600, 1200)]
    flicker = 1 + 0.03 * rng.standard_normal((30, 1, 1))
    flats.append((simulate_frames(np.full((32, 32), 2500), 30, **kw) - 100) * flicker + 100)
    caplog.set_level(logging.WARNING)
    cal = photon_transfer(dark, flats, flat_names=["a.tif", "b.tif", "c.tif", "flicker.tif"])
    assert cal.fit_rms_rel > 0.05
    warned = [r.getMessage() for r in caplog.records if "straight line" in r.getMessage()]
    assert len(warned) == 1
    assert "flicker.tif" in warned[0] and "flickering light" in warned[0]


# --- 2. a dark file brighter than the flats ---------------------------------------------------


def test_a_dark_brighter_than_the_flats_is_refused_naming_the_files(tmp_path):
    """--dark given a flat of 600 e- and --flat a dimmer one among others: it saved an offset
    of 1420 ADU. Refused, naming both files and saying they may be mixed up."""
    rng = np.random.default_rng(9)
    kw = dict(CAMERA, rng=rng)
    names = {}
    for level in (200, 600, 1500):
        names[level] = str(tmp_path / f"flat{level}.tif")
        tifffile.imwrite(
            names[level], simulate_frames(np.full((32, 32), level), 20, **kw).astype(np.uint16)
        )
    preset = tmp_path / "cam.toml"
    argv = ["camera", "--dark", names[600], "--flat", names[200], names[1500]]
    with pytest.raises(DataFormatError) as err:
        _run([*argv, "--preset", str(preset), "--create"])
    message = str(err.value)
    assert "flat200.tif" in message and "flat600.tif" in message
    assert "below" in message and "mixed up" in message
    assert not preset.exists()


# --- 3. OTF: clipped beads, a cutoff far from 2 NA / λ ----------------------------------------


def test_beads_with_clipped_peaks_are_left_out_of_the_otf(caplog):
    """Three of nine beads 4x brighter than the rest, clipped at 4095 (12-bit values in 16-bit
    words): they flattened the averaged PSF's peak and the cutoff came out 3.85 /µm (-16 %).
    They are left out with a warning; the six others give the right cutoff."""
    rng = np.random.default_rng(0)
    image = _bead_image(rng, [1, 1, 1, 1, 1, 1, 4, 4, 4], peak=12000.0)
    raw = np.minimum(image, 4095).astype(np.uint16)
    caplog.set_level(logging.WARNING)
    measured = measure_otf(raw, PIXEL_NM, offset_adu=100.0)
    assert measured.n_beads == 6
    assert 0.95 * FC < measured.cutoff_per_um < 1.03 * FC
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("3 of 9 beads reach 4095 ADU" in m and "12-bit" in m for m in warned), warned
    # floating-point data has no full scale of its own: --saturation-adu gives it
    scaled = np.minimum(image, 4095) * 0.5 + 0.25
    measured = measure_otf(scaled, PIXEL_NM, offset_adu=50.25, saturation_adu=2047.75)
    assert measured.n_beads == 6


def test_an_otf_from_beads_that_are_all_clipped_is_refused(tmp_path, caplog):
    image = np.minimum(_bead_image(np.random.default_rng(1), [1.0] * 9, peak=60000.0), 4095)
    path = tmp_path / "sat.tif"
    tifffile.imwrite(path, image.astype(np.uint16))
    argv = ["otf", str(path), *OPTICS, "--pixel-size", "65", "--preset", str(tmp_path / "o.toml")]
    with pytest.raises(DataFormatError, match="0 isolated beads with unclipped peaks") as err:
        _run([*argv, "--create"])
    assert "9 more reach 4095 ADU" in str(err.value)
    assert "lower the exposure" in str(err.value)
    assert not (tmp_path / "o.toml").exists()


def test_a_pixel_size_far_off_is_refused_and_a_cutoff_20_percent_off_warned(
    beads_tif, tmp_path, capsys, caplog
):
    """The beads were imaged with 65 nm pixels. --pixel-size 6500 (the camera's pixel, not the
    pixel at the sample) and 25 nm were saved (cutoff 0.044 /µm against 4.57); refused before
    saving, the latter with the pixel size that fits the images. A wavelength off by 30 % (the
    cutoff 23 % off, where scope reconstruct questions a measured OTF) is saved with a
    warning naming the likely causes."""
    preset = tmp_path / "o.toml"
    base = ["otf", str(beads_tif), *OPTICS, "--preset", str(preset), "--create"]
    with pytest.raises(ConfigurationError, match="6500 nm under-samples") as err:
        _run([*base, "--pixel-size", "6500"])
    assert "camera pixel divided by the magnification" in str(err.value)
    with pytest.raises(ConfigurationError, match="do not fit these images") as err:
        _run([*base, "--pixel-size", "25"])
    message = str(err.value)
    assert "pixel at the sample 25 nm (--pixel-size)" in message
    fit_nm = float(message.split("these images fit about ")[1].split(" nm")[0])
    assert fit_nm == pytest.approx(PIXEL_NM, rel=0.05)
    assert not preset.exists()
    caplog.set_level(logging.WARNING)
    assert _run([*base, "--pixel-size", "65"]) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert _run([*base, "--pixel-size", "65", "--wavelength", "700"]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1
    assert "emission 700 nm (--wavelength)" in warned[0] and "20 %" in warned[0]
    assert "+" in capsys.readouterr().out.split("theory")[-1]


# --- 4. optics out of range -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value", "unit"),
    [
        ("--pixel-size", "0.065", "at the sample, nm"),
        ("--wavelength", "0.66", "wavelength, nm"),
        ("--na", "13", "numerical aperture"),
    ],
)
@pytest.mark.parametrize("what", ["otf", "pattern"])
def test_optics_out_of_range_are_one_line_naming_the_flag(
    beads_tif, tmp_path, capsys, what, flag, value, unit
):
    from scope.cli import main

    raw = beads_tif
    if what == "pattern":  # a set of 3 x 3 frames
        raw = tmp_path / "set.tif"
        tifffile.imwrite(raw, np.full((9, 64, 64), 100.0, np.float32))
    optics = {"--na": "1.2", "--wavelength": "525", "--pixel-size": "65", flag: value}
    argv = ["calibrate", what, str(raw), "--preset", str(tmp_path / "o.toml"), "--create"]
    for name, given in optics.items():
        argv += [name, given]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pydantic" not in err and "Traceback" not in err
    assert f"invalid optics: {flag} {value}:" in err
    assert unit in err
    assert not (tmp_path / "o.toml").exists()


# --- 5. an output folder that cannot be written -----------------------------------------------


def _no_computation(*args, **kwargs):
    raise AssertionError("the output should have been checked before any computation")


def test_a_preset_in_a_folder_that_is_a_file_is_refused_before_any_work(
    tmp_path, beads_tif, capsys, monkeypatch
):
    from scope.cli import main

    monkeypatch.setattr("scope.calibration.camera.calibrate_camera", _no_computation)
    monkeypatch.setattr("scope.calibration.otf.measure_otf", _no_computation)
    dark, flats = _ramp_flats(tmp_path, np.random.default_rng(2))
    (tmp_path / "afile").write_text("")
    preset = str(tmp_path / "afile" / "x.toml")
    camera = ["calibrate", "camera", "--dark", dark, "--flat", *flats, "--maps"]
    assert main([*camera, "--preset", preset, "--create"]) == 2
    err = capsys.readouterr().err
    assert "afile is a file, not a folder" in err and "Errno" not in err
    otf = ["calibrate", "otf", str(beads_tif), *OPTICS, "--pixel-size", "65"]
    assert main([*otf, "--preset", preset, "--create"]) == 2
    assert "afile is a file, not a folder" in capsys.readouterr().err


def _write_protection_holds(folder: Path) -> bool:
    """Whether a folder without write permission keeps this process out (not for root)."""
    try:
        (folder / ".probe").write_text("")
    except PermissionError:
        return True
    (folder / ".probe").unlink()
    return False


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_preset_in_a_read_only_folder_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    from scope.calibration.preset import update_calibration
    from scope.cli import main

    monkeypatch.setattr("scope.calibration.camera.calibrate_camera", _no_computation)
    dark, flats = _ramp_flats(tmp_path, np.random.default_rng(2))
    folder = tmp_path / "ro"
    folder.mkdir()
    update_calibration(folder / "x.toml", "otf", {"n_beads": 1})
    folder.chmod(0o500)
    try:
        if not _write_protection_holds(folder):
            pytest.skip("this user (root) writes into a folder without write permission")
        argv = ["calibrate", "camera", "--dark", dark, "--flat", *flats, "--maps"]
        assert main([*argv, "--preset", str(folder / "x.toml")]) == 2
    finally:
        folder.chmod(0o700)
    err = capsys.readouterr().err
    assert f"the output folder {folder} cannot be written" in err
    assert ".tmp" not in err and ".partial" not in err


def test_a_map_name_taken_by_a_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr("scope.calibration.camera.calibrate_camera", _no_computation)
    dark, flats = _ramp_flats(tmp_path, np.random.default_rng(2))
    (tmp_path / "x_camera_gain_map.tif").mkdir()
    (tmp_path / "x_camera_gain_map.tif" / "keep.txt").write_text("mine")
    argv = ["camera", "--dark", dark, "--flat", *flats, "--maps", "--preset"]
    with pytest.raises(ConfigurationError, match=r"x_camera_gain_map\.tif is a folder"):
        _run([*argv, str(tmp_path / "x.toml"), "--create"])
    assert (tmp_path / "x_camera_gain_map.tif" / "keep.txt").read_text() == "mine"


# --- 6. the permissions of a preset -----------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_a_new_preset_gets_the_umask_mode_and_an_old_one_keeps_its_own(tmp_path, umask):
    """A preset made with --create was 0600 (a mkstemp file) though the umask was 0022."""
    from scope.calibration.preset import update_calibration

    old = os.umask(umask)
    try:
        new = tmp_path / "new.toml"
        update_calibration(new, "camera", {"offset_adu": 100.0})
        assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask
        mine = tmp_path / "mine.toml"
        mine.write_text("[camera]\n")
        mine.chmod(0o640)
        update_calibration(mine, "camera", {"offset_adu": 100.0})
        assert stat.S_IMODE(mine.stat().st_mode) == 0o640
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.toml", "new.toml"]
    finally:
        os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_a_preset_that_is_a_link_stays_a_link(tmp_path):
    from scope.calibration.preset import update_calibration

    (tmp_path / "shared").mkdir()
    target = tmp_path / "shared" / "setup.toml"
    target.write_text('[camera]\nname = "x"\n')
    link = tmp_path / "setup.toml"
    link.symlink_to(target)
    update_calibration(link, "camera", {"offset_adu": 100.0})
    assert link.is_symlink()
    assert tomllib.loads(target.read_text())["calibration"]["camera"]["offset_adu"] == 100.0
