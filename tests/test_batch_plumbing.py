"""Batch plumbing that needs no reconstruction: discovery, presets, reports, locks, progress."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from scope.batch.config import BatchOptions, load_preset, merge_options, optical_setup
from scope.batch.discovery import discover_inputs, output_stems
from scope.batch.engine import outdir_lock, remove_stale_partials, run_batch
from scope.batch.progress import ProgressBar, format_seconds
from scope.batch.report import EXIT_ALL_FAILED, EXIT_PARTIAL_FAILURE, BatchReport
from scope.errors import ConfigurationError


def _touch_tiff(path, n=9):
    tifffile.imwrite(path, np.zeros((n, 8, 8), np.uint16))


def test_discovery_of_files_folders_and_globs(tmp_path):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    for name in ("a.tif", "b.ome.tif", "c.mrc", "sub/d.tif", ".hidden.tif", ".e.tif.partial-1234"):
        (data / name).write_bytes(b"x")
    (data / "run.zarr").mkdir()
    (data / "notes.txt").write_text("not data")
    out = data / "out"
    out.mkdir()
    (out / "a.sim.ome.tif").write_bytes(b"x")

    names = lambda paths: sorted(p.relative_to(data).as_posix() for p in paths)  # noqa: E731
    assert names(discover_inputs([data], exclude=[out])) == [
        "a.tif",
        "b.ome.tif",
        "c.mrc",
        "run.zarr",
    ]
    assert names(discover_inputs([data], recursive=True, exclude=[out])) == [
        "a.tif",
        "b.ome.tif",
        "c.mrc",
        "run.zarr",
        "sub/d.tif",
    ]
    assert names(discover_inputs([str(data / "**" / "*.tif")], exclude=[out])) == [
        "a.tif",
        "b.ome.tif",
        "sub/d.tif",
    ]
    # the same file named twice is taken once
    assert len(discover_inputs([data / "a.tif", str(data / "a.*")])) == 1
    with pytest.raises(ConfigurationError, match="no such file or folder"):
        discover_inputs([data / "missing.tif"])
    with pytest.raises(ConfigurationError, match="matches no raw"):
        discover_inputs([str(data / "*.czi")])


def test_scopes_own_results_are_not_taken_for_raw_stacks(tmp_path, capsys, caplog):
    """A folder holding raw stacks beside their results (scope reconstruct's SIM image and
    --widefield image, scope batch's OME-Zarr, a layer saved from napari) gives only the raw
    stacks to the batch, saying what it left out; a result named on its own is refused with
    that said (it used to fail as 'not a multiple of 9 frames')."""
    from scope.cli import main
    from scope.io.writers import scope_output_kind, write_ome_zarr
    from scope.napari._writer import write_ome_tiff_layer
    from sim_cases import make_case

    data = tmp_path / "data"
    data.mkdir()
    tifffile.imwrite(data / "cell.tif", make_case(0, size=128).raw.astype(np.uint16))
    optics = ["--na", "1.2", "--wavelength", "525", "--pixel-size", "65"]
    sim = data / "cell.sim.ome.tif"
    assert (
        main(["-q", "reconstruct", str(data / "cell.tif"), "-o", str(sim), *optics, "--widefield"])
        == 0
    )
    assert main(["-q", "batch", str(data / "cell.tif"), "-o", str(data / "out"), *optics]) == 0
    assert "files" not in capsys.readouterr().err  # -q: no progress bar either
    batch_zarr = data / "cell.sim.zarr"
    (data / "out" / "cell.sim.zarr").rename(batch_zarr)
    image = tifffile.imread(sim)
    write_ome_tiff_layer(
        str(data / "saved.ome.tif"),
        image,
        {"metadata": {"pixel_size_nm": 32.5}, "scale": (0.0325, 0.0325)},
    )
    write_ome_zarr(data / "plain.zarr", image, pixel_size_nm=32.5, axes="YX")  # no scope metadata
    kinds = {p.name: scope_output_kind(p) for p in sorted(data.iterdir()) if p.name != "out"}
    assert kinds == {
        "cell.params.json": None,
        "cell.sim.ome.tif": "SIM result",
        "cell.sim.zarr": "SIM result",
        "cell.tif": None,
        "cell.widefield.tif": "widefield image",
        "plain.zarr": None,
        "saved.ome.tif": "SIM result",
    }
    caplog.set_level("WARNING")
    found = discover_inputs([data], exclude=[data / "out"])
    assert [p.name for p in found] == ["cell.tif", "plain.zarr"]
    assert "left out 4 image(s) that scope wrote" in caplog.text
    capsys.readouterr()
    assert main(["reconstruct", str(sim), "-o", str(tmp_path / "again.tif"), *optics]) == 2
    assert "is a SIM result that scope wrote, not a raw stack" in capsys.readouterr().err
    with pytest.raises(ConfigurationError, match="only scope's own results"):
        discover_inputs([data / "cell.widefield.tif"])
    # scope batch --widefield: the same widefield images as scope reconstruct --widefield; an
    # output without them is not complete for a run that asks for them
    tiffs = tmp_path / "tiffs"
    args = ["-q", "batch", str(data / "cell.tif"), "-o", str(tiffs), *optics, "--format", "tiff"]
    assert main(args) == 0 and not (tiffs / "cell.widefield.ome.tif").exists()
    assert main([*args, "--widefield"]) == 0
    wide = tiffs / "cell.widefield.ome.tif"
    assert scope_output_kind(wide) == "widefield image"
    np.testing.assert_allclose(
        tifffile.imread(wide), tifffile.imread(data / "cell.widefield.tif"), rtol=1e-6
    )
    report = json.loads((tiffs / "batch-report.json").read_text())
    assert report["files"][0]["status"] == "done"
    assert report["files"][0]["widefield_output"] == str(wide)
    # the output folder given as the input folder: said so (its files are never inputs)
    with pytest.raises(ConfigurationError, match="the inputs lie in the output folder"):
        discover_inputs([data], exclude=[data])


def test_output_stems_are_distinct(tmp_path):
    paths = [tmp_path / "x" / "cell.tif", tmp_path / "y" / "cell.tif", tmp_path / "y" / "b.ome.tif"]
    stems = output_stems(paths)
    assert stems[paths[2]] == "b"
    assert len(set(stems.values())) == 3
    assert stems[paths[0]] == "x_cell"


def test_preset_and_precedence():
    preset, name = load_preset("bsim-hela-660nm")
    assert name == "bsim-hela-660nm"
    assert (preset.na, preset.wavelength_nm, preset.pixel_size_nm) == (1.3, 660.0, 65.0)
    flags = BatchOptions(wavelength_nm=600.0)
    file_values = {"pixel_size_nm": 80.0, "wavelength_nm": 500.0, "na": 1.4}
    merged, sources = merge_options(flags, preset, file_values, preset_name=name)
    assert merged.wavelength_nm == 600.0  # flag beats preset and file
    assert sources["wavelength_nm"] == "flag"
    assert merged.pixel_size_nm == 65.0  # preset beats file
    assert sources["pixel_size_nm"] == "preset:bsim-hela-660nm"
    merged, sources = merge_options(BatchOptions(), None, file_values)
    assert (merged.pixel_size_nm, sources["na"]) == (80.0, "file")  # file when nothing else
    setup = optical_setup(merged)
    assert setup.na == 1.4


def test_wavelength_per_channel():
    """A list of emission wavelengths gives each channel's optics; one value serves all; a list
    of the wrong length or a wavelength out of range is refused."""
    from pydantic import ValidationError

    options = BatchOptions(na=1.2, pixel_size_nm=65.0, wavelength_nm=[525.0, 600.0])
    setups = [optical_setup(options, channel=c, n_channels=2) for c in range(2)]
    assert [s.wavelength_nm for s in setups] == [525.0, 600.0]
    single = BatchOptions(na=1.2, pixel_size_nm=65.0, wavelength_nm=525.0)
    assert optical_setup(single, channel=1, n_channels=2).wavelength_nm == 525.0
    with pytest.raises(ConfigurationError, match="2 emission wavelengths for 3 channel"):
        optical_setup(options, source="x.tif", channel=0, n_channels=3)
    with pytest.raises(ValidationError, match="outside 200-2000 nm"):
        BatchOptions(wavelength_nm=[525.0, 60.0])


def test_frame_equalisation_option_reaches_the_reconstructor(tmp_path):
    """``--equalize`` / ``[reconstruction] equalize``: auto (the reconstructor decides), on or
    off; anything else is refused with the choices."""
    from scope.batch.job import _reconstruction_settings

    assert _reconstruction_settings(BatchOptions()).equalize_frames is None
    assert _reconstruction_settings(BatchOptions(equalize="auto")).equalize_frames is None
    assert _reconstruction_settings(BatchOptions(equalize="on")).equalize_frames is True
    assert _reconstruction_settings(BatchOptions(equalize="off")).equalize_frames is False
    preset = tmp_path / "p.toml"
    preset.write_text('[reconstruction]\nequalize = "off"\n')
    assert load_preset(preset)[0].equalize == "off"
    preset.write_text('[reconstruction]\nequalize = "sometimes"\n')
    with pytest.raises(ConfigurationError, match="equalize"):
        load_preset(preset)


def test_missing_optics_and_bad_presets_are_clear(tmp_path):
    with pytest.raises(ConfigurationError, match="give --na, --wavelength or a --preset"):
        optical_setup(BatchOptions(pixel_size_nm=65.0), source="x.tif")
    with pytest.raises(ConfigurationError, match=r"not found; expected a \.toml file or one of"):
        load_preset("no-such-preset")
    bad = tmp_path / "bad.toml"
    bad.write_text("[optics]\nna = 1.2\nfocus = 3\n")
    with pytest.raises(ConfigurationError, match=r"unknown keys \['focus'\] in \[optics\]"):
        load_preset(bad)
    other = tmp_path / "hw.toml"  # a hardware preset: its tables belong to other tools
    other.write_text('[camera]\nname = "x"\n[calibration.camera]\noffset_adu = 99.5\n')
    assert load_preset(other)[0].offset_adu == 99.5


def test_report_table_and_exit_status(tmp_path):
    report = BatchReport(str(tmp_path), "scope 0", "in-process", 1, "2026-01-01T00:00:00")
    angles = [{"angle_deg": 10.0, "period_nm": 250.0}, {"angle_deg": 70.0, "period_nm": 251.0}]
    report.files = [
        {"input": "/d/a.tif", "status": "done", "n_sets": 4, "seconds": 1.25,
         "parameters": {"angles": angles},
         "resolution": {"widefield_nm": 230.0, "sim_nm": 130.0}},
        {"input": "/d/b.tif", "status": "skipped", "seconds": 0.0},
        {"input": "/d/c.tif", "status": "error", "error": "c.tif: holds 8 frames"},
    ]  # fmt: skip
    assert report.exit_status == EXIT_PARTIAL_FAILURE
    table = report.table()
    assert "a.tif  done" in table
    assert "10.0 70.0" in table
    assert "230/130" in table
    assert "c.tif: holds 8 frames" in table
    assert "c.tif: c.tif" not in table  # the file is named once
    assert "1 done, 1 already complete, 1 failed" in table
    report.write(tmp_path)
    doc = json.loads((tmp_path / "batch-report.json").read_text())
    assert doc["counts"] == {
        "done": 1,
        "prior-only": 0,
        "skipped": 1,
        "outdated": 0,
        "error": 1,
        "interrupted": 0,
    }
    assert doc["exit_status"] == 3
    report.files = report.files[2:]
    assert report.exit_status == EXIT_ALL_FAILED


def test_progress_bar_eta(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("scope.batch.progress.time.monotonic", lambda: clock[0])
    stream = io.StringIO()
    bar = ProgressBar(4, 40, stream, min_interval_s=0)
    clock[0] = 110.0
    bar.update(files=1, units=10)
    # 10 of 40 sets in 10 s: 30 s to go
    assert (
        stream.getvalue()
        .splitlines()[-1]
        .endswith("1/4 files  10/40 sets  00:10 elapsed  ETA 00:30")
    )
    clock[0] = 120.0
    bar.update(files=1, failed=1)
    assert "1 failed" in stream.getvalue().splitlines()[-1]
    assert format_seconds(3725) == "1:02:05"


def test_outdir_lock_refuses_a_live_run_and_takes_over_a_dead_one(tmp_path):
    with (
        outdir_lock(tmp_path),
        pytest.raises(ConfigurationError, match="another scope batch"),
        outdir_lock(tmp_path),
    ):
        pass
    assert not (tmp_path / ".scope-batch.lock").exists()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (tmp_path / ".scope-batch.lock").write_text(f"{os.uname().nodename} {dead.stdout.strip()}")
    with outdir_lock(tmp_path):
        pass
    (tmp_path / ".x.sim.zarr.partial-abcd").mkdir()
    (tmp_path / ".x.params.json.partial-abcd").write_text("{")
    (tmp_path / "y.sim.zarr").mkdir()
    assert remove_stale_partials(tmp_path) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["y.sim.zarr"]


def test_bad_files_reported_on_a_real_local_cluster(tmp_path):
    """Two broken inputs on a 2-process LocalCluster: each is an error line, nothing written."""
    data = tmp_path / "data"
    data.mkdir()
    _touch_tiff(data / "eight.tif", n=8)
    good = data / "cut.tif"
    tifffile.imwrite(good, np.ones((2, 9, 16, 16), np.uint16))
    good.write_bytes(good.read_bytes()[:3000])
    report = run_batch(
        [data],
        tmp_path / "out",
        flags=BatchOptions(na=1.2, wavelength_nm=525, pixel_size_nm=65),
        n_workers=2,
    )
    assert report.scheduler == "local Dask cluster on 127.0.0.1"
    assert report.n_workers == 2
    # the scheduler and both workers listen on loopback only
    addresses = [report.addresses["scheduler"], *report.addresses["workers"]]
    assert len(addresses) == 3
    assert all(a.startswith("tcp://127.0.0.1:") for a in addresses), addresses
    errors = {os.path.basename(f["input"]): f["error"] for f in report.files}
    assert "holds 8 frames, not a multiple of 9" in errors["eight.tif"]
    assert "truncated" in errors["cut.tif"]
    assert report.exit_status == EXIT_ALL_FAILED
    assert {f["pid"] for f in report.files} != {os.getpid()}  # ran in worker processes
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "batch-report.json",
        "batch-report.txt",
    ]


CRISTAE = ("bsim-mitochondria-cristae", "raw_images.tif")


def test_unreadable_otf_and_impossible_optics_are_said_plainly(data_dir, tmp_path):
    """An --otf file that is not a TIFF is named as the unreadable one (not the raw file, not
    as an "unexpected TiffFileError"); an NA above the immersion index gives the optics
    model's own sentence, the raw file named once in the table."""
    raw = data_dir.joinpath(*CRISTAE)
    not_tiff = tmp_path / "otf.tif"
    not_tiff.write_text("a measured OTF? no: text\n")
    optics = {"wavelength_nm": 569.0, "pixel_size_nm": 65.0, "offset_adu": 100.0}
    report = run_batch(
        [raw],
        tmp_path / "b5",
        flags=BatchOptions(na=1.3, otf_path=str(not_tiff), **optics),
        n_workers=0,
    )
    error = report.files[0]["error"]
    assert str(not_tiff) in error and "OTF" in error
    assert "unexpected" not in error
    assert "raw_images.tif" not in error  # the raw file is fine
    report = run_batch([raw], tmp_path / "b5b", flags=BatchOptions(na=1.6, **optics), n_workers=0)
    expected = (
        "raw_images.tif: inconsistent optics: NA 1.6 exceeds the immersion index 1.515: check "
        "the objective's NA and the immersion medium"
    )
    assert report.files[0]["error"] == expected
    table = (tmp_path / "b5b" / "batch-report.txt").read_text()
    assert table.splitlines()[-3] == expected


def _calibrated_preset(path, n_angles: int = 3) -> None:
    """A preset with nominal [pattern] priors and a [calibration.pattern] table as ``scope
    calibrate pattern`` writes it (structured sample: no observed modulation)."""
    from scope.calibration.pattern import PatternCalibration
    from scope.calibration.preset import update_calibration
    from scope.sim.params import SIMParameters

    path.write_text(
        "[optics]\nna = 1.3\nwavelength_nm = 569.0\npixel_size_nm = 65.0\n"
        f"[pattern]\nn_angles = {n_angles}\nn_phases = 3\n"
        "angles_deg = [120.72, 58.18, 2.29]\nperiod_nm = [357.7, 357.0, 332.9]\n"
    )
    params = SIMParameters.equidistant([120.4, 58.2, 1.2], period_nm=[320.8, 319.5, 303.3])
    nan3 = (float("nan"),) * 3
    calibration = PatternCalibration(
        params, ((2.1, 2.1),) * 3, nan3, (0.0,) * 3, (0.0,) * 3, 1, "structured"
    )
    update_calibration(path, "pattern", calibration.to_toml())


def test_calibrated_pattern_wins_over_the_nominal_pattern(tmp_path, caplog):
    """Pattern priors: --prior-angles/--prior-period > [calibration.pattern] > [pattern]; the
    sources say which table; a calibration of another number of angles is refused."""
    preset_path = tmp_path / "my.toml"
    _calibrated_preset(preset_path)
    caplog.set_level("INFO")
    preset, name = load_preset(preset_path)
    assert preset.angles_deg == pytest.approx([120.4, 58.2, 1.2])
    assert preset.period_nm == pytest.approx([320.8, 319.5, 303.3])
    assert "instead of [pattern]'s nominal angles_deg" in caplog.text
    merged, sources = merge_options(BatchOptions(), preset, {}, preset_name=name)
    assert merged.angles_deg == pytest.approx([120.4, 58.2, 1.2])
    assert sources["angles_deg"] == "preset:my [calibration.pattern]"
    flags = BatchOptions(angles_deg=[10.0, 70.0, 130.0], period_nm=300.0)
    merged, sources = merge_options(flags, preset, {}, preset_name=name)
    assert (merged.angles_deg, merged.period_nm) == ([10.0, 70.0, 130.0], 300.0)
    assert sources["angles_deg"] == sources["period_nm"] == "flag"
    assert merged.prior_table is None
    nominal, _ = load_preset("bsim-hela-660nm")
    assert nominal.prior_table == "pattern"
    assert nominal.angles_deg == [120.72, 58.18, 2.29]
    _calibrated_preset(preset_path, n_angles=2)
    with pytest.raises(ConfigurationError, match=r"holds 3 angles but \[pattern\] says n_angles"):
        load_preset(preset_path)


def test_preset_comments_name_only_commands_that_take_a_preset():
    """A preset's "Used by ..." sentence names commands a user can hand the preset to."""
    import re

    from scope.batch.config import preset_dirs
    from scope.cli import build_parser, subcommands

    commands = subcommands(build_parser())
    presets = sorted({p for d in preset_dirs() if d.is_dir() for p in d.glob("*.toml")})
    assert presets
    for path in presets:
        comments = " ".join(
            line.lstrip("# ").strip() for line in path.read_text().splitlines() if line[:1] == "#"
        )
        used_by = re.search(r"Used by (.*?)(?:\.\s|\.$)", comments)
        if used_by is None:
            continue
        for command in re.findall(r"`scope ([\w-]+)", used_by.group(1)):
            options = commands[command]._option_string_actions
            assert "--preset" in options, f"{path.name}: `scope {command}` takes no --preset"


def test_pixels_that_are_not_square_are_refused_unless_given(data_dir, tmp_path, caplog):
    """A file stating 65 x 80 nm pixels: refused in one line (the reconstruction's grid is
    square), as by `scope reconstruct`; --pixel-size overrides the file's sizes."""
    frames = tifffile.imread(data_dir.joinpath(*CRISTAE))
    path = tmp_path / "aniso.ome.tif"
    meta = {"axes": "ZYX", "PhysicalSizeX": 0.065, "PhysicalSizeY": 0.080}
    tifffile.imwrite(path, frames, ome=True, metadata=meta)
    optics = {"na": 1.3, "wavelength_nm": 569.0, "offset_adu": 100.0}
    report = run_batch([path], tmp_path / "b", flags=BatchOptions(**optics), n_workers=0)
    assert report.files[0]["error"] == (  # scope reconstruct's words (one check for both)
        "aniso.ome.tif's metadata states pixels of 65 x 80 nm (X x Y), not square: the "
        "reconstruction needs square pixels; resample the frames to square pixels first, or "
        "give --pixel-size NM if the file's sizes are wrong"
    )
    given = BatchOptions(pixel_size_nm=65.0, **optics)
    with caplog.at_level("WARNING"):
        report = run_batch([path], tmp_path / "c", flags=given, n_workers=0)
    assert report.files[0]["status"] == "done"
    assert "65 x 80 nm (X x Y), not square: --pixel-size 65 is used for both" in caplog.text


@pytest.mark.parametrize(
    ("result", "widefield"),
    [
        ("cell.t1.sim.zarr", "cell.t1.widefield.zarr"),
        ("cell.t1.sim.ome.tif", "cell.t1.widefield.ome.tif"),
        ("cell.ome.sim.ome.tif", "cell.ome.widefield.ome.tif"),
        ("x.sim.sim.zarr", "x.sim.widefield.zarr"),
    ],
)
def test_widefield_and_params_names_are_those_beside_the_result(tmp_path, result, widefield):
    """The widefield images and the .params.json of a batch result are named as `scope
    reconstruct` names the files beside its output (scope.io.writers.beside): dots inside the
    name stay; only a name scope batch gives its results has a widefield name of its own."""
    from scope.batch.engine import output_paths
    from scope.batch.job import widefield_path
    from scope.io.writers import beside

    assert widefield_path(tmp_path / result) == tmp_path / widefield
    stem = result.removesuffix(".zarr").removesuffix(".ome.tif").removesuffix(".sim")
    fmt = "zarr" if result.endswith(".zarr") else "tiff"
    assert output_paths(tmp_path, stem, fmt) == (
        tmp_path / result,
        tmp_path / f"{stem}.params.json",
    )
    assert beside(tmp_path / result, ".params.json") == tmp_path / f"{stem}.params.json"
    with pytest.raises(ValueError, match="not a SIM result's name"):
        widefield_path(tmp_path / "cell.t1.sim.tif")  # scope reconstruct's: beside(.widefield.tif)


def test_an_output_folder_that_is_a_file_is_refused(tmp_path):
    """-o naming a file (or a folder inside one) is refused in one line naming it, before any
    input is read (it used to be the OS's FileExistsError)."""
    afile = tmp_path / "out"
    afile.write_text("not a folder\n")
    for outdir in (afile, afile / "sub"):
        with pytest.raises(ConfigurationError, match=f"its folder {afile} is a file"):
            run_batch([tmp_path / "nothing.tif"], outdir, n_workers=0)


def test_validation_messages_are_one_plain_line():
    """One rendering of a pydantic error for the command line and the napari widgets
    (scope.batch.config.validation_message): each field named, pydantic's prefixes, input
    values and links left out; a check of the whole model (no field) as the model says it."""
    from pydantic import ValidationError

    from scope.batch.config import validation_message
    from scope.optics import OpticalSetup

    with pytest.raises(ValidationError) as model:
        OpticalSetup(na=1.6, wavelength_nm=525, pixel_size_nm=65)
    assert validation_message(model.value) == (
        "NA 1.6 exceeds the immersion index 1.515: check the objective's NA and the immersion "
        "medium"
    )
    with pytest.raises(ValidationError) as fields:
        BatchOptions(na=0, wavelength_nm=100.0)
    assert validation_message(fields.value) == (
        "na: Input should be greater than 0; wavelength_nm: emission wavelength 100.0 nm is "
        "outside 200-2000 nm"
    )


def test_an_invalid_batch_flag_is_one_plain_line(tmp_path, capsys):
    """`scope batch --na 3`: the option named in one line (it used to append pydantic's whole
    multi-line report, input value and link included)."""
    from scope.cli import main

    assert main(["batch", str(tmp_path), "-o", str(tmp_path / "out"), "--na", "3"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert lines[-1].endswith("invalid option: --na 3: Input should be less than or equal to 1.7")
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_errors_of_files_of_one_name_name_their_folders(tmp_path):
    """Three failed inputs all named raw_images.tif: the error lines said only
    "raw_images.tif:" each; they now name the file as its row does (folder/name)."""
    report = BatchReport(str(tmp_path), "scope 0", "in-process", 1, "2026-01-01T00:00:00")
    for folder in ("hela", "cristae"):
        report.files.append(
            {
                "input": f"/data/{folder}/raw_images.tif",
                "output": f"{folder}.sim.zarr",
                "status": "error",
                "error": f"{folder} is broken",
            }
        )
    table = report.table()
    assert "hela/raw_images.tif: hela is broken" in table
    assert "cristae/raw_images.tif: cristae is broken" in table


def test_a_files_camera_defects_are_said_once(tmp_path, caplog):
    """The resolution estimate reconstructed the first set a second time and found its hot
    pixels again: the batch said so twice. It now measures the images written."""
    import logging

    from scope.sim.forward import simulate_raw
    from scope.sim.params import SIMParameters
    from scope.sim.samples import make_sample

    setup = {"na": 1.2, "wavelength_nm": 525.0, "pixel_size_nm": 65.0, "offset_adu": 100.0}
    params = SIMParameters.equidistant([8.0, 68.0, 128.0], period_nm=265.0)
    sample = make_sample((256, 256), "filaments", seed=1)
    raw = simulate_raw(sample, params, optical_setup(BatchOptions(**setup)), rng=1)
    raw[:, 40, 50] = 4000.0  # two hot pixels
    raw[:, 90, 20] = 4000.0
    path = tmp_path / "hot.tif"
    tifffile.imwrite(path, np.clip(np.round(raw), 0, 65535).astype(np.uint16))
    with caplog.at_level(logging.INFO, logger="scope"):
        report = run_batch([path], tmp_path / "out", flags=BatchOptions(**setup), n_workers=0)
    assert report.files[0]["status"] == "done"
    said = [r.message for r in caplog.records if "camera pixels are hot" in r.message]
    assert len(said) == 1 and said[0].startswith("2 camera pixels are hot (2)"), said
    res = report.files[0]["resolution"]
    assert res["sim_nm"] < res["widefield_nm"]
