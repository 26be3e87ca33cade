"""User-sweep regressions of ``scope batch`` on the real B-SIM HeLa data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scope.cli import main

DATA = Path(__file__).parent / "data"
HELA = DATA / "bsim-hela-mitochondria" / "raw_images.tif"
OPTICS = ["--na", "1.3", "--pixel-size", "65", "--offset", "100", "--backend", "numpy"]


def _batch(inputs, out, *extra):
    argv = ["batch", *map(str, inputs), "-o", str(out), "--workers", "0", "--no-progress"]
    return main([*argv, "--format", "tiff", *OPTICS, *extra])


def test_outdated_output_is_kept_when_widefield_is_asked_for_later(tmp_path):
    """An output made with another wavelength is kept (``outdated``) -- also when this run adds
    --widefield, whose missing file must not make the batch redo (overwrite) it silently."""
    raw = tmp_path / "cell.tif"
    raw.write_bytes(HELA.read_bytes())
    out = tmp_path / "out"
    _batch([raw], out, "--wavelength", "660")
    sim, params = out / "cell.sim.ome.tif", out / "cell.params.json"
    before = (sim.read_bytes(), params.read_bytes())
    _batch([raw], out, "--wavelength", "600", "--widefield")
    assert (sim.read_bytes(), params.read_bytes()) == before
    entry = json.loads((out / "batch-report.json").read_text())["files"][0]
    assert entry["status"] == "outdated", entry
    assert json.loads(params.read_text())["optics"]["wavelength_nm"] == pytest.approx(660)


def test_same_stem_with_other_suffixes_in_one_folder_gets_distinct_outputs(tmp_path):
    """``a.tif`` and ``a.ome.tif`` side by side (a folder of exports) each get their output;
    a clash that is left names the inputs."""
    from scope.batch.discovery import output_stems
    from scope.errors import ConfigurationError

    paths = [tmp_path / "d" / "a.tif", tmp_path / "d" / "a.ome.tif", tmp_path / "d" / "b.tif"]
    stems = output_stems(paths)
    assert len(set(stems.values())) == 3, stems
    assert stems[paths[2]] == "b"
    clash = [tmp_path / "x" / "d" / "c.tif", tmp_path / "y" / "d" / "c.tif"]
    with pytest.raises(ConfigurationError, match=r"x/d/c\.tif.*y/d/c\.tif"):
        output_stems(clash)


def test_option_errors_name_the_flag_and_the_value(tmp_path, capsys):
    """`scope batch --angles 0` said "n_angles: Input should be >= 2" (the model's field, not
    the flag the user typed)."""
    assert _batch([HELA], tmp_path / "out", "--wavelength", "660", "--angles", "0") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("invalid option: --angles 0: Input should be greater than or equal to 2")


def test_a_file_s_error_names_it_once(tmp_path, caplog):
    """The log line of a failed file read "nan.tif: nan.tif: SIM set 0 holds ..."."""
    import numpy as np
    import tifffile

    frames = np.full((9, 64, 64), 200, np.float32)
    frames[0, 0, 0] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", frames)
    _batch([tmp_path / "nan.tif"], tmp_path / "out", "--wavelength", "660")
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors and errors[0].startswith("nan.tif: SIM set 0 holds 1 NaN")
    assert "nan.tif: nan.tif" not in caplog.text
