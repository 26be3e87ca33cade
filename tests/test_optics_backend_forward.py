"""Optics model, measured OTF loading, backend selection and the forward model's noise."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import tifffile

from scope.backend import get_backend
from scope.errors import ConfigurationError, DataFormatError
from scope.optics import OTF, OpticalSetup, check_setup, ideal_otf, radial_average
from scope.sim.forward import SIMForwardModel, simulate_raw
from scope.sim.params import SIMParameters
from scope.sim.spectral import SmoothComponent

SETUP = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)


def test_setup_figures_and_validation():
    assert SETUP.cutoff_per_um == pytest.approx(2 * 1.2 / 0.525)
    assert SETUP.abbe_resolution_nm == pytest.approx(525 / 2.4)
    with pytest.raises(ValueError, match="exceeds the immersion index"):
        OpticalSetup(na=1.6, wavelength_nm=525, pixel_size_nm=65)
    with pytest.raises(ConfigurationError, match="under-samples"):
        check_setup(OpticalSetup(na=1.4, wavelength_nm=450, pixel_size_nm=120))


def test_a_pixel_far_finer_than_any_microscope_samples_is_warned(caplog):
    """6.5 nm (the camera's 6.5 µm pitch typed as the pixel at the sample) used to pass, and
    the user was told later to record a larger field; 65 nm and the better build's 34.5 nm
    pass quietly."""
    import logging

    with caplog.at_level(logging.WARNING, logger="scope.optics"):
        for fine in (65.0, 34.5):
            check_setup(OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=fine))
        assert not caplog.records
        check_setup(OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=6.5))
    (record,) = caplog.records
    assert "pixel size 6.5 nm samples 17x finer than the optics resolve" in record.message
    assert "Nyquist pixel 109 nm" in record.message and "pitch / magnification" in record.message


def test_ideal_otf_shape_and_damping():
    k = np.linspace(0, 5, 501)
    otf = ideal_otf(k, 4.0)
    assert otf[0] == pytest.approx(1.0)
    assert np.all(np.diff(otf) <= 1e-12) and np.all(otf[k >= 4.0] == 0)
    # the incoherent OTF at half the cutoff: (2/pi)(acos(0.5) - 0.5 sqrt(0.75)) = 0.3910
    assert ideal_otf(np.array([2.0]), 4.0)[0] == pytest.approx(0.39100, abs=1e-4)
    damped = ideal_otf(np.array([2.0]), 4.0, damping=0.5)[0]
    assert damped == pytest.approx(0.39100 * 0.5**0.5, abs=1e-4)


def test_measured_otf_from_tiff_image_and_mrc_profile(tmp_path, data_dir):
    # a centred 2D OTF image written as TIFF: radially averaged on load
    n, dk = 129, 0.08  # radius 64 samples = 5.1 /µm, beyond the 4 /µm cutoff
    y, x = np.indices((n, n)) - n // 2
    img = ideal_otf(np.hypot(x, y) * dk, 4.0)
    tifffile.imwrite(tmp_path / "otf.tif", img.astype(np.float32))
    otf = OTF.from_file(tmp_path / "otf.tif", dk_per_um=dk)
    k = np.array([0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(otf(k), ideal_otf(k, 4.0), atol=0.02)
    assert otf.cutoff_per_um == pytest.approx(4.0, abs=2 * dk)
    with pytest.raises(DataFormatError, match="frequency step"):
        OTF.from_file(tmp_path / "otf.tif")
    # a radial profile in MRC with dk in the header (the rDL-SIM file)
    mt = OTF.from_file(data_dir / "rdl-tirf-microtubules" / "TIRF488_cam1_0_z30_OTF2d.mrc")
    assert mt.profile.size == 257 and mt(np.array([0.0]))[0] == pytest.approx(1.0)
    with mrcfile.new(tmp_path / "p.mrc") as m:
        m.set_data(img[n // 2, n // 2 :].astype(np.float32)[None, :])
        m.voxel_size = dk
    prof = OTF.from_file(tmp_path / "p.mrc")
    np.testing.assert_allclose(prof(k), ideal_otf(k, 4.0), atol=0.01)
    assert radial_average(img)[0] == pytest.approx(1.0)


def test_unreadable_otf_files_are_refused_naming_them(tmp_path):
    """Any caller of OTF.from_file gets scope's DataFormatError naming the file and the formats
    expected (a text file named .tif used to raise tifffile's TiffFileError)."""
    fake_tif, fake_mrc = tmp_path / "fake.tif", tmp_path / "fake.mrc"
    fake_tif.write_text("hi\n")
    fake_mrc.write_bytes(b"\0" * 100)
    for path, why in ((fake_tif, "not a readable TIFF"), (fake_mrc, "not a readable MRC")):
        with pytest.raises(DataFormatError) as err:
            OTF.from_file(path)
        assert f"cannot read the OTF file {path}" in str(err.value) and why in str(err.value)
        assert "expected a measured OTF as a TIFF (.tif/.tiff) or MRC (.mrc/.otf) file" in str(
            err.value
        )
    with pytest.raises(DataFormatError, match="is a folder: expected a measured OTF"):
        OTF.from_file(tmp_path)


def test_a_measured_otf_is_checked_against_the_optics(data_dir, caplog):
    """The rDL-SIM TIRF OTF ends at 5.80 /µm: for NA 1.3 at 660 nm (3.94 /µm) it is warned
    about with both figures; an ideal OTF, and a measured one of the same optics, are not."""
    from scope.optics import check_measured_otf

    mt = OTF.from_file(data_dir / "rdl-tirf-microtubules" / "TIRF488_cam1_0_z30_OTF2d.mrc")
    red = OpticalSetup(na=1.3, wavelength_nm=660, pixel_size_nm=65)
    with caplog.at_level("WARNING"):
        assert check_measured_otf(OTF.from_setup(red), red) is None
        dk = red.cutoff_per_um / 200
        same = OTF.from_radial_profile(OTF.from_setup(red)(np.arange(256) * dk), dk)
        assert abs(check_measured_otf(same, red)) < 0.02
        assert caplog.text == ""
        assert check_measured_otf(mt, red) == pytest.approx(5.803 / 3.939 - 1, abs=0.002)
    assert (
        "measured OTF TIRF488_cam1_0_z30_OTF2d.mrc: its cutoff 5.80 /µm differs by +47 % from "
        "2 NA / λ = 3.94 /µm (NA 1.3, 660 nm)"
    ) in caplog.text


def test_an_undersampling_pixel_size_from_a_file_names_it():
    coarse = OpticalSetup(na=1.3, wavelength_nm=660, pixel_size_nm=650)
    with pytest.raises(ConfigurationError, match="check --pixel-size"):
        check_setup(coarse)
    with pytest.raises(ConfigurationError) as err:
        check_setup(coarse, pixel_size_from="x.mrc's header (voxel size 0.65)")
    message = str(err.value)
    assert message.startswith("pixel size 650 nm, stated by x.mrc's header (voxel size 0.65), ")
    assert message.endswith(
        "give --pixel-size NM (the camera pixel divided by the "
        "magnification) to override the file's value"
    )


def test_backend_choice(monkeypatch):
    assert get_backend("numpy").name == "numpy"
    monkeypatch.setenv("SCOPE_BACKEND", "numpy")
    assert get_backend().name == "numpy"
    monkeypatch.setenv("SCOPE_BACKEND", "tpu")
    with pytest.raises(ConfigurationError, match="SCOPE_BACKEND"):
        get_backend()
    be = get_backend("numpy")
    x = np.random.default_rng(0).random((8, 8)).astype(np.float32)
    assert be.fft.rfft2(x).dtype == np.complex64  # single precision kept


def test_emulated_gpu_keeps_cupys_host_device_rules():
    """The CPU stand-in for cupy (tests/device_emulator.py) refuses what cupy refuses, so the
    GPU code path's host/device boundaries are tested without a GPU."""
    import scipy.fft

    from device_emulator import emulated_gpu_backend

    be = emulated_gpu_backend()
    assert be.name == "cupy"
    host = np.arange(12.0).reshape(3, 4)
    dev = be.asarray(host)
    refused = {
        "np.asarray(device)": lambda: np.asarray(dev),
        "host[:] = device": lambda: host.__setitem__(slice(None), dev),
        "device + host": lambda: dev + host,
        "xp function on host": lambda: be.xp.exp(host),
        "scipy on device": lambda: scipy.fft.fft2(dev),
    }
    for name, attempt in refused.items():
        try:
            attempt()
        except TypeError:
            continue
        pytest.fail(f"{name} was allowed")
    total = (dev * 2).sum()  # reductions stay on the device as 0-d arrays
    assert not isinstance(total, (np.ndarray, np.generic)) and float(total) == 132.0
    np.testing.assert_array_equal(be.to_numpy(be.fft.rfft2(dev)), scipy.fft.rfft2(host))


def test_blas_held_to_one_thread_only_inside_and_restored_after():
    """The element-wise blocks hold BLAS to one thread (a process-wide setting): nested and
    overlapping users share one limit, and the last one out restores the user's setting."""
    from threadpoolctl import ThreadpoolController

    def blas_threads():
        return [i["num_threads"] for i in ThreadpoolController().select(user_api="blas").info()]

    be = get_backend("numpy", workers=2)
    with ThreadpoolController().limit(limits=2, user_api="blas"):
        before = blas_threads()
        seen = []
        with be.single_threaded_blas():
            with be.single_threaded_blas():
                seen.append(blas_threads())
            seen.append(blas_threads())
            be.run_blocks(lambda i: seen.append(blas_threads()), 2)
        assert all(t == [1] * len(before) for t in seen), seen
        assert blas_threads() == before


def test_forward_model_photon_statistics():
    """Uniform sample, uniform light: counts follow gain * (Poisson + read noise) + offset."""
    sample = np.ones((128, 128), np.float32)
    params = SIMParameters.equidistant([0, 60, 120], period_nm=260, modulation=0.0)
    raw = simulate_raw(
        sample,
        params,
        SETUP,
        photons_peak=200,
        background_photons=0,
        read_noise_e=2.0,
        offset_adu=100,
        gain_adu_per_e=2.0,
        rng=0,
    )
    inner = raw[:, 8:-8, 8:-8]
    assert inner.mean() == pytest.approx(100 + 2.0 * 200, rel=0.01)
    # variance = gain^2 (photons + read^2) (+ 1/12 from rounding)
    assert inner.var() == pytest.approx(4.0 * (200 + 4.0) + 1 / 12, rel=0.05)


def test_forward_model_pattern_follows_the_convention():
    """A uniform sample shows the pattern 1 + m H(p) cos(2 pi k.r + phi), r from pixel (0,0)."""
    sample = np.ones((128, 128))
    model = SIMForwardModel(sample, SETUP)
    angle = SIMParameters.equidistant([25.0], period_nm=400, modulation=0.8).angles[0]
    frame = model.frame(angle, 0.7)[8:-8, 8:-8]  # away from the FFT blur's wrapped edges
    kx, ky = angle.k_per_um
    y, x = np.mgrid[8:56, 8:56] * SETUP.pixel_size_um
    design = np.stack(
        [
            np.ones(x.size),
            np.cos(2 * np.pi * (kx * x + ky * y)).ravel(),
            np.sin(2 * np.pi * (kx * x + ky * y)).ravel(),
        ],
        axis=1,
    )
    c = np.linalg.lstsq(design, frame.ravel(), rcond=None)[0]
    assert np.arctan2(-c[2], c[1]) == pytest.approx(0.7, abs=1e-3)


def test_forward_model_camera_adjoint():
    """camera_adjoint is the adjoint of camera: <A x, y> = <x, A^T y>, and A^T 1 = 1/4 (the
    camera averages four sample pixels)."""
    rng = np.random.default_rng(3)
    model = SIMForwardModel(np.ones((96, 128)), SETUP)
    x = rng.random((96, 128))
    y = rng.random((48, 64))
    lhs = np.vdot(model.camera(x), y)
    rhs = np.vdot(x, model.camera_adjoint(y))
    assert lhs == pytest.approx(rhs, rel=1e-10)
    assert model.camera_adjoint(np.ones((48, 64))) == pytest.approx(0.25, abs=1e-12)


@pytest.mark.parametrize("complex_images", [False, True])
def test_periodic_plus_smooth_split(complex_images):
    """p = u - s has the periodic Laplacian that u has without wrapping (Moisan 2011)."""
    rng = np.random.default_rng(0)
    u = rng.random((64, 48)) + np.linspace(0, 5, 48)[None, :] + np.linspace(0, 3, 64)[:, None]
    if complex_images:  # a +1 order: complex, with a ramp that does not wrap either
        u = u * np.exp(2j * np.pi * 0.137 * np.arange(48))[None, :]
    u = u.astype(np.complex64 if complex_images else np.float32)
    p, s = SmoothComponent(u.shape, complex_images=complex_images).split(u)

    def periodic(x):
        return sum(np.roll(x, d, ax) for d in (1, -1) for ax in (0, 1)) - 4 * x

    def free(x):  # neighbours outside the image do not count
        out = np.zeros_like(x)
        out[1:] += x[:-1] - x[1:]
        out[:-1] += x[1:] - x[:-1]
        out[:, 1:] += x[:, :-1] - x[:, 1:]
        out[:, :-1] += x[:, 1:] - x[:, :-1]
        return out

    np.testing.assert_allclose(periodic(p.astype(np.complex128)), free(u), atol=2e-4)
    assert abs(s.mean()) < 1e-6
    # the jump across the periodic boundary is gone: p's edges continue each other smoothly
    assert np.abs(p[-1] - p[0]).mean() < 0.5 * np.abs(u[-1] - u[0]).mean()
