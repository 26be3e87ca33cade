"""Raw readers and image writers: real files written and read back, hostile input refused."""

from __future__ import annotations

import json
import pickle
import shutil
import struct
import tracemalloc
import warnings

import numpy as np
import pytest
import tifffile
import zarr

from scope.errors import DataFormatError
from scope.io.raw import LazyFrames, open_raw
from scope.io.writers import (
    auto_multiscale_levels,
    read_image,
    write_ome_tiff,
    write_ome_zarr,
)


def _raw(shape=(4, 9, 32, 32), seed=0, dtype=np.uint16):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 1000 + 100).astype(dtype)


# --------------------------------------------------------------------------------- writers


def test_ome_tiff_round_trip_units_and_metadata(tmp_path):
    image = np.random.default_rng(1).random((3, 64, 48)).astype(np.float64)
    meta = {"angles": [{"angle_deg": 12.5, "period_nm": 250.0}], "software": "scope 0.1.0"}
    out = write_ome_tiff(
        tmp_path / "sim.ome.tif", image, pixel_size_nm=32.5, axes="TYX", metadata=meta
    )
    with tifffile.TiffFile(out) as tif:
        assert tif.is_ome
        series = tif.series[0]
        assert series.shape == (3, 64, 48)
        assert series.axes == "TYX"
        assert series.dtype == np.float32
        np.testing.assert_array_equal(series.asarray(), image.astype(np.float32))
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
        assert pixels["PhysicalSizeX"] == pytest.approx(0.0325)
        assert pixels["PhysicalSizeXUnit"] == "µm"
        assert pixels["PhysicalSizeY"] == pytest.approx(0.0325)
    back, px, md = read_image(out)
    assert back.dtype == np.float32
    assert px == pytest.approx(32.5)
    assert md["angles"] == meta["angles"]
    assert md["software"] == "scope 0.1.0"
    assert [p.name for p in tmp_path.iterdir()] == ["sim.ome.tif"]  # no temporary left


def test_ome_tiff_streaming_failure_leaves_nothing(tmp_path):
    def planes():
        yield np.zeros((16, 16), np.float32)
        raise RuntimeError("reconstruction failed half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        write_ome_tiff(
            tmp_path / "x.ome.tif", planes(), pixel_size_nm=30, axes="TYX", shape=(3, 16, 16)
        )
    assert list(tmp_path.iterdir()) == []


def test_ome_zarr_round_trip_ngff(tmp_path):
    image = np.random.default_rng(2).random((3, 64, 64)).astype(np.float32)
    out = write_ome_zarr(
        tmp_path / "sim.zarr",
        image,
        pixel_size_nm=32.5,
        axes="TYX",
        metadata={"input": "raw.tif", "software": "scope"},
        multiscale_levels=2,
    )
    group = zarr.open_group(str(out), mode="r")
    ome = group.attrs["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["t", "y", "x"]
    assert ms["axes"][0]["type"] == "time"
    assert ms["axes"][2]["unit"] == "micrometer"
    scales = [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]]
    assert scales[0] == pytest.approx([1.0, 0.0325, 0.0325])
    assert scales[1] == pytest.approx([1.0, 0.065, 0.065])
    level0, level1 = group["0"], group["1"]
    assert level0.chunks == (1, 64, 64)  # one chunk per time point
    assert level1.shape == (3, 32, 32)
    np.testing.assert_array_equal(level0[...], image)
    np.testing.assert_allclose(
        level1[1], image[1].reshape(32, 2, 32, 2).mean(axis=(1, 3)), rtol=1e-6
    )
    back, px, md = read_image(out)
    np.testing.assert_array_equal(back, image)
    assert px == pytest.approx(32.5)
    assert md["input"] == "raw.tif"
    assert md["levels"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["sim.zarr"]


def test_ome_zarr_states_each_channels_label_colour_and_window(tmp_path):
    """NGFF ``omero`` rendering metadata: a label and colour per channel from its emission
    wavelength (white for a single channel), and a display window whose start and end are the
    0.1-99.9 percentiles of the data (a few hot pixels do not set it) within its min and max."""
    rng = np.random.default_rng(4)
    image = rng.normal(100.0, 10.0, (2, 2, 256, 256)).astype(np.float32)  # T, C
    image[:, 1] += 400.0  # the second colour brighter
    image[1, 0, 8, 8] = 1e5  # one hot pixel (on the subsampled grid)
    out = write_ome_zarr(
        tmp_path / "two.zarr",
        image,
        pixel_size_nm=32.5,
        axes="TCYX",
        channel_wavelengths_nm=[525.0, 600.0],
    )
    omero = zarr.open_group(str(out), mode="r").attrs["ome"]["omero"]
    assert [c["label"] for c in omero["channels"]] == ["525 nm", "600 nm"]
    assert [c["color"] for c in omero["channels"]] == ["00FF00", "FF0000"]
    assert omero["rdefs"]["model"] == "color"
    for c, channel in enumerate(omero["channels"]):
        window = channel["window"]
        data = image[:, c]
        assert window["min"] == pytest.approx(data.min()) and window["max"] == pytest.approx(
            data.max()
        )
        # +-3.1 sigma of the noise around each channel's level, far below the hot pixel
        level = 100.0 + 400.0 * c
        assert level - 40 < window["start"] < level - 20 and level + 20 < window["end"] < level + 40
    _, _, meta = read_image(out)
    assert meta["omero"]["channels"][1]["label"] == "600 nm"
    one = write_ome_zarr(tmp_path / "one.zarr", image[:, 0], pixel_size_nm=32.5, axes="TYX")
    omero = zarr.open_group(str(one), mode="r").attrs["ome"]["omero"]
    assert [c["color"] for c in omero["channels"]] == ["FFFFFF"]
    assert omero["rdefs"]["model"] == "greyscale"
    with pytest.raises(DataFormatError, match="one per index of the C axis"):
        write_ome_zarr(
            tmp_path / "bad.zarr",
            image,
            pixel_size_nm=32.5,
            axes="TCYX",
            channel_wavelengths_nm=[525.0],
        )


def test_multiscale_levels_for_big_images():
    assert auto_multiscale_levels((128, 128)) == 1
    assert auto_multiscale_levels((1024, 1024)) == 2
    assert auto_multiscale_levels((4096, 2048)) == 4


def test_writer_refuses_bad_axes(tmp_path):
    with pytest.raises(DataFormatError, match="do not describe an image of shape"):
        write_ome_tiff(tmp_path / "a.tif", np.zeros((2, 8, 8)), pixel_size_nm=30, axes="YX")


# --------------------------------------------------------------------------------- real data


def test_real_bsim_float_tiff(data_dir):
    path = data_dir / "bsim-hela-mitochondria" / "raw_images.tif"
    stack = open_raw(path, n_frames_per_set=9)
    assert stack.shape == (9, 120, 120)
    assert stack.axes == "PYX"
    assert stack.dtype == np.float32
    assert stack.pixel_size_nm is None  # ImageJ's uncalibrated 1 px/µm is not a pixel size
    frames = stack.read_set(0)
    np.testing.assert_array_equal(frames, tifffile.imread(path))
    # integer counts 72..783 per the data README
    assert frames.min() >= 70
    assert frames.max() <= 800


def test_real_mrc_uint16(data_dir):
    import mrcfile

    path = data_dir / "rdl-tirf-microtubules" / "MT.mrc"
    stack = open_raw(path, n_frames_per_set=9)
    assert stack.shape == (9, 256, 256)
    assert stack.dtype == np.uint16
    assert stack.pixel_size_nm == pytest.approx(62.6, abs=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mrcfile.open(path, permissive=True) as m:
            expected = np.asarray(m.data, dtype=np.float32)
    np.testing.assert_array_equal(stack.read_set(0), expected)
    # a Priism/DeltaVision header: its emission wavelength (525 nm, as in the data README)
    assert stack.wavelength_nm == 525.0
    assert stack.metadata["deltavision_image_sequence"] == "ZTW"


def _dv_file(path, sections, *, n_times, n_channels, sequence, waves=(525, 600)):
    """A DeltaVision file of ``sections`` (in file order) written by the ``mrc`` package, its
    interleaving then stated in the header (NumTimes at byte 180, ImgSequence at 182,
    NumWaves and the wavelengths from 196)."""
    import mrc

    mrc.save(sections, str(path), zAxisOrder="z", metadata={"dxy": 0.065})
    with open(path, "r+b") as fh:
        fh.seek(180)
        fh.write(struct.pack("<2h", n_times, sequence))
        fh.seek(196)
        fh.write(struct.pack("<6h", n_channels, *waves, *(0,) * (5 - len(waves))))


@pytest.mark.parametrize("sequence", [0, 1, 2])
def test_deltavision_interleaving_read_as_the_mrc_package_reads_it(tmp_path, sequence):
    """2 time points x 2 channels x 18 planes (two sets of 9 each) in each of DeltaVision's
    three section orders (ZTW, WZT, ZWT): every set holds the frames the independent reader of
    the ``mrc`` package puts at that time point and channel, and each channel its wavelength.
    Read flat, as before, a "set" of the WZT file mixed the two colours frame by frame."""
    sections = _raw((2 * 2 * 18, 8, 6))
    path = tmp_path / f"seq{sequence}.dv"
    _dv_file(path, sections, n_times=2, n_channels=2, sequence=sequence)
    expected = _read_by_mrc_package(path)  # (T, C, Z, Y, X)
    stack = open_raw(path, n_frames_per_set=9)
    assert stack.axes == "TZCPYX" and stack.shape == (2, 2, 2, 9, 8, 6)
    assert stack.channel_wavelengths_nm == (525.0, 600.0)
    assert stack.pixel_size_nm == pytest.approx(65.0, rel=1e-6)
    for t, z, c in np.ndindex(2, 2, 2):
        np.testing.assert_array_equal(stack.data[t, z, c], expected[t, c, 9 * z : 9 * z + 9])
    # one time point: the second set of each channel is the next time point
    _dv_file(path, sections[:36], n_times=1, n_channels=2, sequence=sequence)
    expected = _read_by_mrc_package(path)
    stack = open_raw(path, n_frames_per_set=9)
    assert stack.axes == "TCPYX" and stack.shape == (2, 2, 9, 8, 6)
    for t, c in np.ndindex(2, 2):
        np.testing.assert_array_equal(stack.data[t, c], expected[0, c, 9 * t : 9 * t + 9])


def _read_by_mrc_package(path):
    """The sections of a DeltaVision file as the ``mrc`` package reads them, as (T, C, Z, Y, X)."""
    import mrc

    theirs = mrc.DVFile(str(path))
    try:
        data = theirs.asarray(squeeze=False)
        return np.moveaxis(data, [theirs.axes.index(a) for a in "TCZ"], [0, 1, 2])
    finally:
        theirs.close()


def test_deltavision_header_that_does_not_fit_is_read_flat_or_refused(tmp_path, caplog):
    """A header whose counts do not divide its sections is said and read in file order; planes
    per channel that are not whole sets are refused naming the header's counts; a file without
    a pixel calibration (Priism's default of 1 µm) states no pixel size."""
    import mrc

    path = tmp_path / "odd.dv"
    _dv_file(path, _raw((27, 8, 6)), n_times=2, n_channels=1, sequence=0)
    with caplog.at_level("WARNING"):
        stack = open_raw(path, n_frames_per_set=9)
    assert "does not fit its 27 sections; reading the sections in file order" in caplog.text
    assert stack.shape == (3, 9, 8, 6)
    _dv_file(path, _raw((20, 8, 6)), n_times=1, n_channels=2, sequence=1)
    with pytest.raises(DataFormatError, match=r"10 planes per time point and channel .* 1 x 2"):
        open_raw(path, n_frames_per_set=9)
    mrc.save(_raw((9, 8, 6)), str(path), zAxisOrder="z")
    assert open_raw(path, n_frames_per_set=9).pixel_size_nm is None


# --------------------------------------------------------------------------------- layouts


def test_time_lapse_tiff_is_lazy_and_grouped(tmp_path):
    raw = _raw((4, 9, 32, 32))
    path = tmp_path / "lapse.tif"
    tifffile.imwrite(path, raw, metadata={"pixel_size_nm": 65.0, "wavelength_nm": 525, "na": 1.2})
    stack = open_raw(path, n_frames_per_set=9)
    assert (stack.shape, stack.axes, stack.n_sets) == ((4, 9, 32, 32), "TPYX", 4)
    assert (stack.pixel_size_nm, stack.wavelength_nm, stack.na) == (65.0, 525.0, 1.2)
    assert isinstance(stack.data, LazyFrames)  # read per set, never loaded whole
    np.testing.assert_array_equal(stack.read_set(3), raw[3].astype(np.float32))

    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, raw.reshape(36, 32, 32))
    stack = open_raw(flat, n_frames_per_set=9)
    assert (stack.shape, stack.axes) == ((4, 9, 32, 32), "TPYX")
    np.testing.assert_array_equal(stack.read_set(2), raw[2].astype(np.float32))


def test_ome_tiff_channels_and_their_wavelengths(tmp_path):
    """A time-lapse of two colours (T, C, 9, Y, X): each channel's emission wavelength from the
    OME Channel elements (units converted), and which channel each SIM set belongs to (C
    order); a file of one channel has no per-channel list."""
    raw = _raw((3, 2, 9, 32, 32))
    path = tmp_path / "two.ome.tif"
    channels = {"EmissionWavelength": [525.0, 0.6], "EmissionWavelengthUnit": ["nm", "µm"]}
    tifffile.imwrite(path, raw, ome=True, metadata={"axes": "TCQYX", "Channel": channels})
    with open_raw(path, n_frames_per_set=9) as stack:
        assert stack.axes == "TCPYX" and stack.n_channels == 2
        assert stack.channel_wavelengths_nm == (525.0, 600.0) and stack.wavelength_nm == 525.0
        assert [stack.channel_of_set(i) for i in range(6)] == [0, 1, 0, 1, 0, 1]
        assert stack.first_set_of_channel(1) == 1
        np.testing.assert_array_equal(stack.read_set(3), raw[1, 1].astype(np.float32))
    one = tmp_path / "one.ome.tif"
    channels = {"EmissionWavelength": [525.0]}
    tifffile.imwrite(one, raw[:, 0], ome=True, metadata={"axes": "TQYX", "Channel": channels})
    with open_raw(one, n_frames_per_set=9) as stack:
        assert stack.n_channels == 1 and stack.channel_wavelengths_nm is None
        assert stack.wavelength_nm == 525.0 and stack.first_set_of_channel(0) == 0
        assert stack.channel_of_set(2) == 0


def test_pixels_that_are_not_square_are_not_taken_for_square(tmp_path):
    """OME-TIFF, ImageJ TIFF and MRC stating X and Y pixel sizes 65 and 80 nm: no pixel size
    (X used to be taken for both), both sizes kept; sizes within 1 % are one square pixel."""
    import mrcfile

    raw = _raw((9, 32, 32))
    ome = tmp_path / "an.ome.tif"
    tifffile.imwrite(ome, raw, ome=True, metadata={"PhysicalSizeX": 0.065, "PhysicalSizeY": 0.08})
    imagej = tmp_path / "an_ij.tif"
    tifffile.imwrite(
        imagej, raw, imagej=True, resolution=(1 / 0.065, 1 / 0.08), metadata={"unit": "um"}
    )
    mrc = tmp_path / "an.mrc"
    with mrcfile.new(mrc) as m:
        m.set_data(raw)
        m.voxel_size = (0.065, 0.08, 0.1)  # x, y, z in µm (Priism)
    for path in (ome, imagej, mrc):
        with open_raw(path, n_frames_per_set=9) as stack:
            assert stack.pixel_size_nm is None, path.name
            np.testing.assert_allclose(stack.pixel_size_xy_nm, (65.0, 80.0), rtol=1e-6)
    near = tmp_path / "near.ome.tif"
    tifffile.imwrite(
        near, raw, ome=True, metadata={"PhysicalSizeX": 0.065, "PhysicalSizeY": 0.0655}
    )
    with open_raw(near, n_frames_per_set=9) as stack:
        assert stack.pixel_size_nm == pytest.approx(65.0) and stack.pixel_size_xy_nm is None


def test_only_the_first_of_several_tiff_series_is_read_and_said_so(tmp_path, caplog):
    """An OME-TIFF written as two series (two writes): the first is read, and a warning names
    how many the file holds (the second used to be ignored silently)."""
    first, second = _raw((9, 32, 32), seed=1), _raw((9, 16, 32), seed=2)
    path = tmp_path / "two_series.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(first, metadata={"axes": "ZYX"})
        tif.write(second, metadata={"axes": "ZYX"})
    with caplog.at_level("WARNING"), open_raw(path, n_frames_per_set=9) as stack:
        assert stack.shape == (9, 32, 32) and stack.metadata["n_series"] == 2
        np.testing.assert_array_equal(stack.read_set(0), first.astype(np.float32))
    assert (
        "two_series.ome.tif holds 2 image series; only the first (9 x 32 x 32, axes ZYX) is "
        "read: save each series as its own file to reconstruct the others"
    ) in caplog.text
    caplog.clear()
    one = tmp_path / "one.ome.tif"
    tifffile.imwrite(one, first, ome=True)
    with caplog.at_level("WARNING"), open_raw(one, n_frames_per_set=9) as stack:
        assert "n_series" not in stack.metadata
    assert "image series" not in caplog.text


def test_an_output_folder_is_made_and_checked_before_any_work(tmp_path):
    from scope.errors import ConfigurationError
    from scope.io.writers import prepare_output_folder

    assert prepare_output_folder(tmp_path / "a" / "b" / "sim.tif") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and list((tmp_path / "a" / "b").iterdir()) == []
    afile = tmp_path / "afile.tif"
    afile.write_bytes(b"")
    with pytest.raises(ConfigurationError, match=f"its folder {afile} is a file, not a folder"):
        prepare_output_folder(afile / "sub" / "sim.tif")


def test_compressed_ome_tiff_reads_page_by_page(tmp_path):
    raw = _raw((3, 9, 32, 32))
    path = tmp_path / "lapse.ome.tif"
    tifffile.imwrite(
        path,
        raw,
        ome=True,
        compression="zlib",
        metadata={"axes": "TZYX", "PhysicalSizeX": 65, "PhysicalSizeXUnit": "nm"},
    )
    stack = open_raw(path, n_frames_per_set=9)
    assert isinstance(stack.data, LazyFrames)
    assert (stack.shape, stack.axes) == ((3, 9, 32, 32), "TPYX")
    assert stack.pixel_size_nm == pytest.approx(65.0)
    np.testing.assert_array_equal(stack.read_set(1), raw[1].astype(np.float32))
    np.testing.assert_array_equal(stack.data[2, 4:6], raw[2, 4:6])
    stack.close()


def test_ome_zarr_raw_input(tmp_path):
    raw = _raw((3, 9, 32, 32))
    path = write_ome_zarr(
        tmp_path / "raw.zarr",
        raw.reshape(27, 32, 32).astype(np.float32),
        pixel_size_nm=65,
        axes="TYX",
    )
    stack = open_raw(path, n_frames_per_set=9)
    assert (stack.shape, stack.axes, stack.pixel_size_nm) == ((3, 9, 32, 32), "TPYX", 65.0)
    np.testing.assert_array_equal(stack.read_set(2), raw[2].astype(np.float32))


def test_frames_on_another_axis_are_taken_as_the_set(tmp_path):
    """An ImageJ hyperstack keeps a set's frames in Z, before its channels (ZCYX): the frames
    are the axis of their number wherever it is (it was read in file order, mixing the
    channels frame by frame), for plain and compressed TIFF pages and for Zarr."""
    raw = _raw((2, 9, 2, 32, 32))  # T, Z = the 9 frames, C
    expected = np.moveaxis(raw, 1, 2)  # T, C, P
    paths = {
        "imagej": (tmp_path / "hyper.tif", {"imagej": True, "metadata": {"axes": "TZCYX"}}),
        "compressed": (
            tmp_path / "packed.ome.tif",
            {"ome": True, "metadata": {"axes": "TZCYX"}, "compression": "zlib"},
        ),
    }
    for path, kwargs in paths.values():
        tifffile.imwrite(path, raw, **kwargs)
    zarr_path = write_ome_zarr(
        tmp_path / "hyper.zarr", raw.astype(np.float32), pixel_size_nm=65, axes="TZCYX"
    )
    for path in [p for p, _ in paths.values()] + [zarr_path]:
        stack = open_raw(path, n_frames_per_set=9)
        assert (stack.shape, stack.axes, stack.n_channels) == ((2, 2, 9, 32, 32), "TCPYX", 2)
        np.testing.assert_array_equal(np.asarray(stack.data[...]), expected, err_msg=path.name)
        np.testing.assert_array_equal(stack.read_set(3), expected[1, 1].astype(np.float32))
    # a frame count matching no single axis: still a flat time series in file order
    tifffile.imwrite(tmp_path / "flat.tif", raw.reshape(36, 32, 32))
    flat = open_raw(tmp_path / "flat.tif", n_frames_per_set=9)
    assert flat.shape == (4, 9, 32, 32)
    np.testing.assert_array_equal(flat.read_set(1), raw.reshape(4, 9, 32, 32)[1])
    # nine along T but phases along Z after it (3 time points x 3 angles, 3 phases): only an
    # axis followed by channels is taken for the frames, so this stays in file order
    t9 = raw.reshape(2, 9, 2, 32, 32)[0].reshape(9, 2, 32, 32)[:, :2]
    tifffile.imwrite(tmp_path / "t9.tif", t9, imagej=True, metadata={"axes": "TZYX"})
    t9_stack = open_raw(tmp_path / "t9.tif", n_frames_per_set=9)
    assert t9_stack.shape == (2, 9, 32, 32)
    np.testing.assert_array_equal(t9_stack.read_set(1), t9.reshape(2, 9, 32, 32)[1])


def test_sets_stored_phase_major_are_read_in_scopes_order(tmp_path):
    """A file holding each set phase-major (all angles at one phase, then the next) is read
    angle-major, phase fastest, with frame_order="phase-major": here 2 angles x 4 phases."""
    from scope.io.raw import frames_in_file, open_sim_stack

    raw = _raw((3, 8, 16, 16))  # T, P in scope's order: angle a, phase p at a * 4 + p
    in_file = raw.reshape(3, 2, 4, 16, 16).transpose(0, 2, 1, 3, 4).reshape(3, 8, 16, 16)
    tifffile.imwrite(tmp_path / "pm.tif", in_file)
    stack, n_angles, n_phases = open_sim_stack(
        tmp_path / "pm.tif", n_angles=2, n_phases=4, frame_order="phase-major"
    )
    assert (n_angles, n_phases, stack.shape) == (2, 4, (3, 8, 16, 16))
    np.testing.assert_array_equal(np.asarray(stack.data[...]), raw)
    np.testing.assert_array_equal(stack.read_set(2), raw[2].astype(np.float32))
    np.testing.assert_array_equal(in_file[1][frames_in_file(2, 4, "phase-major")], raw[1])
    with pytest.raises(DataFormatError, match="expected one of"):
        open_sim_stack(tmp_path / "pm.tif", frame_order="angle-fastest")


# --------------------------------------------------------------------------------- hostile input


def _tiff_claiming(width: int, height: int) -> bytes:
    """A minimal little-endian TIFF whose header claims a width x height uint16 image."""
    entries = [
        (256, 4, 1, width),  # ImageWidth
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 16),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: minisblack
        (273, 4, 1, 8 + 2 + 12 * 9 + 4),  # StripOffsets: right after the IFD
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, 2 * width * height % 2**32),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        fmt = "<HHIHH" if typ == 3 else "<HHII"
        ifd += (
            struct.pack(fmt, tag, typ, count, value, 0)
            if typ == 3
            else struct.pack(fmt, tag, typ, count, value)
        )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\x00" * 64


def _refused_cheaply(path, match, **kwargs):
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match=match) as info:
            open_raw(path, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"refusing took {peak / 2**20:.0f} MiB"
    assert "\n" not in str(info.value)
    return str(info.value)


def test_absurd_tiff_header_refused_before_allocation(tmp_path):
    path = tmp_path / "huge.tif"
    path.write_bytes(_tiff_claiming(100_000, 100_000))
    msg = _refused_cheaply(path, "header claims frames of 100000 x 100000 pixels")
    assert msg.startswith("huge.tif:")


def test_absurd_mrc_header_refused_before_allocation(tmp_path, data_dir):
    header = bytearray((data_dir / "rdl-tirf-microtubules" / "MT.mrc").read_bytes()[:1024])
    header[0:12] = struct.pack("<3i", 60_000, 60_000, 9)  # nx, ny, nz
    path = tmp_path / "huge.mrc"
    path.write_bytes(bytes(header) + b"\x00" * 4096)
    _refused_cheaply(path, "header claims frames of 60000 x 60000 pixels", n_frames_per_set=9)


def test_truncated_files_refused(tmp_path, data_dir):
    src = data_dir / "rdl-tirf-microtubules" / "MT.mrc"
    cut = tmp_path / "cut.mrc"
    cut.write_bytes(src.read_bytes()[:700_000])
    msg = _refused_cheaply(cut, "MRC file is truncated", n_frames_per_set=9)
    assert "1180672 bytes" in msg
    assert "700000 bytes" in msg

    raw = _raw((4, 9, 32, 32))
    for name, kwargs in (("plain.tif", {}), ("ome.ome.tif", {"ome": True})):
        path = tmp_path / name
        tifffile.imwrite(path, raw, **kwargs)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * 0.6)])
        _refused_cheaply(path, "truncated", n_frames_per_set=9)


def test_wrong_frame_count_refused(tmp_path):
    path = tmp_path / "eight.tif"
    tifffile.imwrite(path, _raw((8, 32, 32)))
    msg = _refused_cheaply(path, "holds 8 frames, not a multiple of 9", n_frames_per_set=9)
    assert "--angles/--phases" in msg
    # frames stored last, like the colours of a picture: say so
    last = tmp_path / "frames_last.tif"
    tifffile.imwrite(last, np.moveaxis(_raw((9, 40, 40)), 0, -1).copy())
    msg = _refused_cheaply(last, "holds 40 frames, not a multiple of 9", n_frames_per_set=9)
    assert "looks like (Y, X, frames): store the frames first" in msg
    stack = open_raw(path, n_frames_per_set=8)  # the same file is fine as 2 angles x 4 phases
    assert stack.shape == (8, 32, 32)


def test_nan_data_refused_per_set(tmp_path):
    raw = _raw((3, 9, 16, 16)).astype(np.float32)
    raw[1, 4, 3, 3] = np.nan
    raw[2, 0, 0, 0] = np.inf
    path = tmp_path / "nan.tif"
    tifffile.imwrite(path, raw)
    stack = open_raw(path, n_frames_per_set=9)
    np.testing.assert_array_equal(stack.read_set(0), raw[0])
    with pytest.raises(DataFormatError, match=r"SIM set \(1,\) holds 1 NaN/inf values"):
        stack.read_set(1)
    with pytest.raises(DataFormatError, match="NaN/inf"):
        stack.read_set(2)


def test_intensities_beyond_single_precision_spectra_are_refused(tmp_path):
    """A float stack scaled by mistake (values near 1e30) overflowed the power spectra in
    float32 and ended in a misleading "no clear pattern carrier" after overflow warnings."""
    raw = _raw((2, 9, 16, 16)).astype(np.float64)
    raw[1] *= 1e28
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, raw)
    stack = open_raw(path, n_frames_per_set=9)
    np.testing.assert_allclose(stack.read_set(0), raw[0], rtol=1e-6)
    with pytest.raises(DataFormatError, match=r"SIM set \(1,\) holds values up to [0-9.]+e\+3"):
        stack.read_set(1)


def test_unsupported_dtype_refused(tmp_path):
    path = tmp_path / "complex.tif"
    tifffile.imwrite(path, np.zeros((9, 16, 16), np.complex64))
    _refused_cheaply(path, "unsupported pixel type complex64", n_frames_per_set=9)
    zpath = tmp_path / "bool.zarr"
    zarr.create_array(str(zpath), shape=(9, 16, 16), dtype=bool)
    _refused_cheaply(zpath, "unsupported pixel type bool", n_frames_per_set=9)


class _Bomb:
    """Unpickling this creates a file: the test checks it never happens."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_zarr_object_dtype_never_unpickled(tmp_path):
    store = tmp_path / "evil.zarr"
    store.mkdir()
    sentinel = tmp_path / "UNPICKLED"
    (store / ".zarray").write_text(
        json.dumps(
            {
                "zarr_format": 2,
                "shape": [9, 4, 4],
                "chunks": [9, 4, 4],
                "dtype": "|O",
                "compressor": None,
                "fill_value": None,
                "filters": [{"id": "pickle", "protocol": 4}],
                "order": "C",
            }
        )
    )
    (store / "0.0.0").write_bytes(pickle.dumps(np.array([_Bomb(str(sentinel))], dtype=object)))
    _refused_cheaply(store, "object dtype or a pickle codec", n_frames_per_set=9)
    assert not sentinel.exists()


def test_incomplete_zarr_refused(tmp_path):
    path = write_ome_zarr(
        tmp_path / "raw.zarr", _raw((18, 16, 16)).astype(np.float32), pixel_size_nm=65, axes="TYX"
    )
    chunk_dir = path / "0" / "c"
    victim = sorted(p for p in chunk_dir.rglob("*") if p.is_file())[5]
    victim.unlink()
    _refused_cheaply(path, "17 of 18 chunks written", n_frames_per_set=9)


def test_unknown_format_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    _refused_cheaply(path, "unknown raw format '.txt'")
    shutil.copy(path, tmp_path / "fake.tif")
    _refused_cheaply(tmp_path / "fake.tif", "not a readable TIFF file")


@pytest.mark.parametrize("name", ["run.zarr", "run.tif"])
def test_scope_acquire_run_is_read_in_pattern_order(tmp_path, name):
    import scope.acquisition.writer as writer_mod

    raw = _raw((2, 9, 16, 16))
    path = tmp_path / name
    w = writer_mod.AcquisitionWriter(
        path,
        (16, 16),
        "uint16",
        pixel_size_nm=65.0,
        metadata={"setup": {"na": 1.2, "wavelength_nm": 525.0}, "n_angles": 3, "n_phases": 3},
    )
    # an extra frame the camera shot without a pulse arrives first; set 1 arrives reversed
    w.append(np.full((16, 16), 7, np.uint16), writer_mod.FrameTag(valid=0))
    for s, order in ((0, range(9)), (1, reversed(range(9)))):
        idx = []
        for p in order:
            i = w.append(
                raw[s, p], writer_mod.FrameTag(set=s, pattern=p, angle=p // 3, phase=p % 3)
            )
            idx.append(i)
        w.set_valid(idx, True)
    w.close()
    stack = open_raw(path, n_frames_per_set=9)
    assert (stack.shape, stack.axes) == ((2, 9, 16, 16), "TPYX")
    assert (stack.pixel_size_nm, stack.wavelength_nm, stack.na) == (65.0, 525.0, 1.2)
    np.testing.assert_array_equal(stack.read_set(0), raw[0].astype(np.float32))
    np.testing.assert_array_equal(stack.read_set(1), raw[1].astype(np.float32))


def test_absurd_zarr_shape_refused_before_allocation(tmp_path):
    path = write_ome_zarr(
        tmp_path / "raw.zarr", _raw((9, 16, 16)).astype(np.float32), pixel_size_nm=65, axes="TYX"
    )
    meta_file = path / "0" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    meta["shape"] = [9, 200_000, 200_000]
    meta["chunk_grid"]["configuration"]["chunk_shape"] = [1, 200_000, 200_000]
    meta_file.write_text(json.dumps(meta))
    _refused_cheaply(path, "header claims frames of 200000 x 200000 pixels", n_frames_per_set=9)


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("cell.t1.sim.ome.tif", "cell.t1"),
        ("cell.t2.sim.tif", "cell.t2"),
        ("day.1.zarr", "day.1"),
        ("x.tif", "x"),
        ("x.ome.tif", "x"),
        ("sim.ome.tif", "sim"),
        ("CELL.SIM.OME.TIF", "CELL"),
        ("notes.v2", "notes.v2"),
    ],
)
def test_output_base_keeps_every_dot_but_the_image_suffix_and_sim_tag(name, base):
    """The files beside an output share its base: two outputs that differ only after a dot
    (cell.t1 / cell.t2, runs day.1 / day.2) no longer share one .params.json (the base was the
    name up to its first dot)."""
    from scope.io.writers import output_base

    assert output_base(name) == base
