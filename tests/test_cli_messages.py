"""`scope reconstruct` on the real B-SIM HeLa data (NA 1.3, 660 nm, 65 nm, offset 100 ADU) with
input a user sweep found mishandled: each refusal is one line with exit status 2 that says what
was expected and what to do; each doubtful input that is still reconstructed is warned about,
naming the figures."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile

from scope.cli import main
from scope.errors import DataFormatError
from scope.optics import OTF, OpticalSetup

OPTICS = ["--na", "1.3", "--wavelength", "660", "--pixel-size", "65"]


@pytest.fixture
def hela(data_dir):
    return data_dir / "bsim-hela-mitochondria" / "raw_images.tif"


def _refused(args, capsys) -> str:
    """Run ``scope reconstruct ARGS``: exit status 2 and one line on stderr, returned."""
    assert main(["reconstruct", *map(str, args)]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("scope reconstruct: error: ")
    return lines[0]


# ------------------------------------------------------------------------------- refusals


def test_na_above_the_immersion_index_is_the_models_message(hela, tmp_path, capsys):
    """NA 1.6 with the default oil immersion used to crash (IndexError, exit 1): the model's
    check of two values has no field to name."""
    args = [hela, "-o", tmp_path / "x.tif", "--na", "1.6", "--wavelength", "660"]
    line = _refused([*args, "--pixel-size", "65"], capsys)
    assert "invalid optics: NA 1.6 exceeds the immersion index 1.515" in line
    assert "--immersion N sets the immersion index" in line
    assert not (tmp_path / "x.tif").exists()


def test_an_unreadable_otf_file_is_named(hela, tmp_path, capsys):
    fake = tmp_path / "fake.tif"
    fake.write_text("hi\n")
    line = _refused([hela, "-o", tmp_path / "x.tif", *OPTICS, "--otf", fake], capsys)
    assert f"cannot read the OTF file {fake}: not a readable TIFF" in line
    assert "expected a measured OTF as a TIFF (.tif/.tiff) or MRC (.mrc/.otf) file" in line


def test_an_output_folder_that_cannot_be_written(hela, tmp_path, capsys):
    """An output in a folder that is a file, or in one where no file can be created, is refused
    before any work, naming the folder (it used to be the OS's errno of a temporary file)."""
    fake = tmp_path / "fake.tif"
    fake.write_text("hi\n")
    for out in (fake / "x.tif", fake / "a" / "b" / "x.tif"):
        line = _refused([hela, "-o", out, *OPTICS], capsys)
        assert f"cannot write {out}: its folder {fake} is a file, not a folder" in line
    if Path("/proc/self").is_dir():  # a virtual file system: no file can be created there
        line = _refused([hela, "-o", "/proc/x.tif", *OPTICS], capsys)
        assert "the output folder /proc cannot be written (creating a file there fails" in line
        assert "choose an output in a folder you can write to" in line


def test_a_wavelength_that_is_not_a_number(hela, tmp_path, capsys):
    """--wavelength nan used to be refused as 'Input should be less than 2000'."""
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", str(hela), "-o", str(tmp_path / "x.tif"), "--wavelength", "nan"])
    assert exit_.value.code == 2
    assert "argument --wavelength: 'nan' is not a number: give a finite value" in (
        capsys.readouterr().err
    )


def test_what_the_file_does_not_state_is_named(hela, tmp_path, capsys):
    out = tmp_path / "x.tif"
    line = _refused([hela, "-o", out, "--na", "1.3", "--pixel-size", "65"], capsys)
    assert line.endswith(
        "raw_images.tif does not state the emission wavelength: give --wavelength NM"
    )
    line = _refused([hela, "-o", out, "--pixel-size", "65"], capsys)
    assert line.endswith(
        "does not state the numerical aperture or the emission wavelength: give --na NA "
        "--wavelength NM"
    )


def test_a_wrong_pixel_size_the_file_states_is_named_with_it(hela, tmp_path, capsys):
    """A negative OME PhysicalSizeX, and an MRC voxel of 0.65 (Å by MRC2014) read as 650 nm:
    the message says the file states it and that --pixel-size overrides it (not 'check
    --pixel-size', which the user never gave); with --pixel-size the file reconstructs."""
    frames = tifffile.imread(hela)
    neg = tmp_path / "neg.ome.tif"
    meta = {"axes": "ZYX", "PhysicalSizeX": -0.065, "PhysicalSizeY": -0.065}
    tifffile.imwrite(neg, frames, ome=True, metadata=meta)
    mrc = tmp_path / "angstrom.mrc"
    with mrcfile.new(mrc) as m:
        m.set_data(frames.astype(np.float32))
        m.voxel_size = 0.65
    optics = ["--na", "1.3", "--wavelength", "660", "--offset", "100"]
    line = _refused([neg, "-o", tmp_path / "x.tif", *optics], capsys)
    assert line.endswith(
        "the pixel size -65 nm, stated by neg.ome.tif's metadata, is invalid (Input should be "
        "greater than 1): give --pixel-size NM to override the file's value"
    )
    line = _refused([mrc, "-o", tmp_path / "x.tif", *optics], capsys)
    assert (
        "pixel size 650 nm, stated by angstrom.mrc's header (voxel size 0.65), under-samples"
        in (line)
    )
    assert "give --pixel-size NM (the camera pixel divided by the magnification) to override" in (
        line
    )
    for src in (neg, mrc):
        out = tmp_path / f"{src.stem}.sim.tif"
        assert (
            main(["-q", "reconstruct", str(src), "-o", str(out), *optics, "--pixel-size", "65"])
            == 0
        )
        assert tifffile.imread(out).shape == (240, 240)


def test_pixels_that_are_not_square_are_refused_unless_given(hela, tmp_path, capsys, caplog):
    """X 65 nm, Y 80 nm: the output used to be written with square 32.5 nm pixels. Refused;
    --pixel-size overrides the file's sizes (said in a warning)."""
    src = tmp_path / "an.ome.tif"
    meta = {"axes": "ZYX", "PhysicalSizeX": 0.065, "PhysicalSizeY": 0.080}
    tifffile.imwrite(src, tifffile.imread(hela), ome=True, metadata=meta)
    out = tmp_path / "an.tif"
    optics = ["--na", "1.3", "--wavelength", "660", "--offset", "100"]
    line = _refused([src, "-o", out, *optics], capsys)
    assert line.endswith(
        "an.ome.tif's metadata states pixels of 65 x 80 nm (X x Y), not square: the "
        "reconstruction needs square pixels; resample the frames to square pixels first, or "
        "give --pixel-size NM if the file's sizes are wrong"
    )
    assert not out.exists()
    with caplog.at_level("WARNING"):
        assert main(["reconstruct", str(src), "-o", str(out), *optics, "--pixel-size", "65"]) == 0
    assert "65 x 80 nm (X x Y), not square: --pixel-size 65 is used for both" in caplog.text
    with tifffile.TiffFile(out) as tif:
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
    assert pixels["PhysicalSizeX"] == pixels["PhysicalSizeY"] == pytest.approx(0.0325)


# ------------------------------------------------------------------------------- warnings


def test_an_offset_above_most_of_the_data_is_warned(hela, tmp_path, caplog):
    """--offset 300 on data whose background lies near 110 ADU: 89 % of the values below it,
    the SIM mean negative. Warned with the share and the data's 0.5th percentile; the stated
    offset of 100 ADU is not."""
    out = tmp_path / "x.tif"
    args = ["reconstruct", str(hela), "-o", str(out), *OPTICS]
    with caplog.at_level("WARNING"):
        assert main([*args, "--offset", "100"]) == 0
    assert "raw values lie below" not in caplog.text
    with caplog.at_level("WARNING"):
        assert main([*args, "--offset", "300"]) == 0
    assert (
        "89 % of the raw values lie below --offset 300 ADU (the data's 0.5th percentile: 113 ADU)"
        in caplog.text
    )
    assert "check --offset (about 113 ADU or less here), or leave it out" in caplog.text
    assert float(tifffile.imread(out).mean()) < 0  # what the warning is about


def test_check_camera_offset_refuses_none_above_and_warns_most_below(caplog):
    """The library check (for the napari widget and batch too): no value above the offset is
    refused, most values below it warned, a plausible offset or none passes silently."""
    from scope.sim.pipeline import check_camera_offset

    frames = np.full((9, 16, 16), 110.0)
    frames[:, :4] = 500.0  # a quarter of the field bright
    with caplog.at_level("WARNING"):
        assert check_camera_offset(frames, None) == 0.0
        assert check_camera_offset(frames, 100.0) == 0.0
        assert caplog.text == ""
        assert check_camera_offset(frames, 200.0, given_as="the offset field") == 0.75
    assert "75 % of the raw values lie below the offset field 200 ADU" in caplog.text
    with pytest.raises(DataFormatError, match="brightest value is 500 ADU but --offset is 500"):
        check_camera_offset(frames, 500.0, given_as="--offset")


def test_a_measured_otf_of_other_optics_is_warned(hela, data_dir, tmp_path, caplog):
    """The rDL-SIM TIRF OTF (cutoff 5.80 /µm) for NA 1.3 at 660 nm (3.94 /µm)."""
    otf = data_dir / "rdl-tirf-microtubules" / "TIRF488_cam1_0_z30_OTF2d.mrc"
    args = ["reconstruct", str(hela), "-o", str(tmp_path / "x.tif"), *OPTICS, "--offset", "100"]
    with caplog.at_level("WARNING"):
        assert main([*args, "--otf", str(otf)]) == 0
    assert (
        "measured OTF TIRF488_cam1_0_z30_OTF2d.mrc: its cutoff 5.80 /µm differs by +47 % from "
        "2 NA / λ = 3.94 /µm (NA 1.3, 660 nm)"
    ) in caplog.text


def _ideal_otf_mrc(path: Path, wavelength_nm: float) -> Path:
    """The ideal OTF of NA 1.3 at ``wavelength_nm`` as an MRC radial profile (dk in the
    header, as CUDA-SIMrecon writes it)."""
    otf = OTF.from_setup(OpticalSetup(na=1.3, wavelength_nm=wavelength_nm, pixel_size_nm=65))
    dk = otf.cutoff_per_um / 200
    with mrcfile.new(path) as mrc:
        mrc.set_data(otf(np.arange(256) * dk).astype(np.float32)[None, :])
        mrc.voxel_size = dk
    return path


def test_one_otf_for_channels_of_two_wavelengths_is_warned(hela, tmp_path, caplog):
    """A two-channel OME-TIFF (660 and 569 nm): one --otf measured at 660 nm serving both is
    warned with each channel's wavelength and cutoff; one OTF per channel is not."""
    src = tmp_path / "two.ome.tif"
    frames = tifffile.imread(hela)
    meta = {
        "axes": "CQYX",
        "PhysicalSizeX": 0.065,
        "PhysicalSizeY": 0.065,
        "Channel": {"EmissionWavelength": [660.0, 569.0], "EmissionWavelengthUnit": ["nm"] * 2},
    }
    tifffile.imwrite(src, np.stack([frames, frames]), ome=True, metadata=meta)
    red, orange = (_ideal_otf_mrc(tmp_path / f"{w}.mrc", w) for w in (660, 569))
    args = ["reconstruct", str(src), "-o", str(tmp_path / "x.tif"), "--na", "1.3"]
    args += ["--offset", "100"]
    with caplog.at_level("WARNING"):
        assert main([*args, "--otf", str(red), str(orange)]) == 0
    assert "measured OTF" not in caplog.text and "serves channel" not in caplog.text
    with caplog.at_level("WARNING"):
        assert main([*args, "--otf", str(red)]) == 0
    assert (
        "--otf 660.mrc serves channel 1 (569 nm) as well as channel 0 (660 nm), but a measured "
        "OTF belongs to one emission wavelength: its cutoff is 3.92 /µm, channel 1's 2 NA / λ "
        "4.57 /µm"
    ) in caplog.text
    doc = json.loads((tmp_path / "x.params.json").read_text())
    assert [ch["otf"] for ch in doc["channels"]] == [str(red), str(red)]


def test_given_parameters_are_logged_and_recorded_as_given(hela, tmp_path, caplog):
    """--params used to log each angle as '(estimated)'."""
    args = ["reconstruct", str(hela), *OPTICS, "--offset", "100"]
    assert main([*args, "-o", str(tmp_path / "a.tif")]) == 0
    estimated = json.loads((tmp_path / "a.params.json").read_text())
    assert {a["source"] for a in estimated["angles"]} == {"estimated"}
    caplog.clear()
    with caplog.at_level("INFO"):
        given = ["-o", str(tmp_path / "b.tif"), "--params", str(tmp_path / "a.params.json")]
        assert main([*args, *given]) == 0
    report = [ln for ln in caplog.text.splitlines() if ln.startswith("angle ")]
    assert len(report) == 3 and all(ln.endswith("(given)") for ln in report), report
    doc = json.loads((tmp_path / "b.params.json").read_text())
    assert {a["source"] for a in doc["angles"]} == {"given"}
    for a, b in zip(doc["angles"], estimated["angles"], strict=True):
        assert a["angle_deg"] == b["angle_deg"] and a["phases_rad"] == b["phases_rad"]
