"""Measured OTF from simulated bead images, against the OTF they were made with."""

from __future__ import annotations

import numpy as np
import pytest

from scope.calibration.camera import simulate_frames
from scope.calibration.otf import (
    load_measured_otf,
    measure_otf,
    save_measured_otf,
    sphere_transfer,
)
from scope.errors import DataFormatError
from scope.optics import ideal_otf, pixel_transfer

N = 256
PIXEL_UM = 0.065
NA, WAVELENGTH_NM = 1.2, 525.0
FC = 2 * NA / (WAVELENGTH_NM * 1e-3)  # 4.571 cycles/µm
DAMPING = 0.6  # a real objective's OTF falls faster than the ideal one
BEAD_NM = 100.0


def _bead_image(positions, amplitudes, rng, photons_peak=3000.0):
    """Band-limited camera image of beads: sum of shifted (OTF x pixel x sphere) transfers."""
    f = np.fft.fftfreq(N, d=PIXEL_UM)
    fx, fy = f[None, :], f[:, None]
    k = np.hypot(fx, fy)
    h = ideal_otf(k, FC, damping=DAMPING) * pixel_transfer(fx, fy, PIXEL_UM)
    h = h * sphere_transfer(k, BEAD_NM)
    spectrum = np.zeros((N, N), complex)
    for (y, x), a in zip(positions, amplitudes):
        spectrum += a * np.exp(-2j * np.pi * (fx * x + fy * y) * PIXEL_UM)
    img = np.real(np.fft.ifft2(spectrum * h))
    img = img / img.max() * photons_peak + 40.0  # photo-electrons, with background
    return simulate_frames(img, 1, gain_adu_per_e=1.0, read_noise_e=1.5, offset_adu=100.0, rng=rng)[
        0
    ]


def _scene(rng):
    singles = [
        (40.3, 44.7),
        (42.8, 120.2),
        (45.1, 200.6),
        (118.6, 42.2),
        (122.4, 205.9),
        (200.7, 40.9),
        (204.2, 121.3),
        (210.9, 203.4),
    ]
    pair = [(120.0, 118.0), (126.0, 125.0)]  # 9 px apart: not isolated
    amplitudes = [*rng.uniform(0.9, 1.1, len(singles)), 1.0, 1.0]
    aggregate = [(165.0, 165.0)]  # four beads stuck together: 4x brighter
    return singles, singles + pair + aggregate, [*amplitudes, 4.0]


def test_measured_otf_matches_the_true_otf():
    rng = np.random.default_rng(0)
    singles, everything, amplitudes = _scene(rng)
    raw = _bead_image(everything, amplitudes, rng)
    measured = measure_otf(raw, PIXEL_UM * 1e3, offset_adu=100.0, bead_diameter_nm=BEAD_NM)
    # only the isolated single beads are used, each located to a small fraction of a pixel
    assert measured.n_beads == len(singles)
    found = np.array(sorted(measured.positions_px))
    np.testing.assert_allclose(found, np.array(sorted(singles)), atol=0.1)
    # the radial profile follows the OTF the images were made with
    k = np.arange(measured.profile.size) * measured.dk_per_um
    truth = ideal_otf(k, FC, damping=DAMPING)
    inside = k < 0.9 * FC
    assert np.max(np.abs(measured.profile[inside] - truth[inside])) < 0.03
    # where the measured profile ends: the last few % before the cutoff carry under 2 % of
    # contrast (damped OTF) and drown in the noise
    assert 0.9 * FC < measured.cutoff_per_um < 1.03 * FC
    otf = measured.to_otf()
    assert float(otf(0.5 * FC)) == pytest.approx(
        float(ideal_otf(0.5 * FC, FC, damping=DAMPING)), abs=0.03
    )


def test_measured_otf_round_trips_through_the_preset(tmp_path):
    rng = np.random.default_rng(1)
    _, everything, amplitudes = _scene(rng)
    measured = measure_otf(_bead_image(everything, amplitudes, rng), 65.0, offset_adu=100.0)
    preset = tmp_path / "setup.toml"
    preset.write_text('[camera]\nname = "test"\n')
    save_measured_otf(preset, measured)
    otf = load_measured_otf(preset)
    assert otf is not None
    k = np.linspace(0, FC, 7)
    np.testing.assert_allclose(otf(k), measured.to_otf()(k), atol=1e-5)
    assert 'name = "test"' in preset.read_text()


def test_too_few_beads_is_a_clear_error():
    rng = np.random.default_rng(2)
    raw = _bead_image([(128.0, 128.0)], [1.0], rng)
    with pytest.raises(DataFormatError, match="isolated beads"):
        measure_otf(raw, 65.0, offset_adu=100.0)
    with pytest.raises(DataFormatError, match="larger than"):
        measure_otf(np.ones((20, 20)), 65.0)


def test_the_calibrated_otf_in_a_preset_is_used_by_reconstruct_and_batch(tmp_path):
    """`scope calibrate otf` writes [calibration.otf] into a preset: `scope batch --preset` now
    reconstructs with it (it was read by nothing), and `scope reconstruct --otf PRESET.toml`
    too; the two give the same image, another than the ideal OTF's."""
    import json

    import tifffile

    from scope.cli import main
    from scope.io.writers import read_image
    from sim_cases import OFFSET, make_case

    rng = np.random.default_rng(1)
    _, everything, amplitudes = _scene(rng)
    measured = measure_otf(_bead_image(everything, amplitudes, rng), 65.0, offset_adu=100.0)
    preset = tmp_path / "setup.toml"
    preset.write_text(
        "# our microscope\n[optics]\nna = 1.2\nwavelength_nm = 525.0\npixel_size_nm = 65.0\n"
    )
    save_measured_otf(preset, measured)
    raw = tmp_path / "cell.tif"
    tifffile.imwrite(raw, make_case(0, size=128).raw.astype(np.uint16))
    offset = ["--offset", str(OFFSET)]
    optics = ["--na", "1.2", "--wavelength", "525", "--pixel-size", "65", *offset]
    assert main(["-q", "reconstruct", str(raw), "-o", str(tmp_path / "r.tif"), *optics,
                 "--otf", str(preset)]) == 0  # fmt: skip
    assert read_image(tmp_path / "r.tif")[2]["otf"] == f"{preset} [calibration.otf]"
    assert main(["-q", "reconstruct", str(raw), "-o", str(tmp_path / "ideal.tif"), *optics]) == 0
    out = tmp_path / "batch"
    args = ["-q", "batch", str(raw), "-o", str(out), "--preset", str(preset), *offset]
    assert main([*args, "--workers", "0", "--format", "tiff"]) == 0
    record = json.loads((out / "cell.params.json").read_text())
    assert record["options"]["otf_path"] == str(preset.resolve())
    batch_image = read_image(out / "cell.sim.ome.tif")[0]
    with_otf, ideal = tifffile.imread(tmp_path / "r.tif"), tifffile.imread(tmp_path / "ideal.tif")
    np.testing.assert_allclose(batch_image, with_otf, rtol=0, atol=1e-4 * with_otf.max())
    assert np.abs(with_otf - ideal).max() > 0.01 * with_otf.max()
