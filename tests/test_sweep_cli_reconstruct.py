"""User-sweep regressions of ``scope reconstruct`` on the real B-SIM HeLa data."""

from __future__ import annotations

from pathlib import Path

import pytest

from scope.cli import main

DATA = Path(__file__).parent / "data"
HELA = DATA / "bsim-hela-mitochondria" / "raw_images.tif"
OPTICS = ["--na", "1.3", "--wavelength", "660", "--pixel-size", "65", "--offset", "100"]


def test_several_inputs_with_a_tif_output_are_refused_not_written_as_a_folder(tmp_path, capsys):
    """``scope reconstruct cell_*.tif -o sim.tif`` (a shell glob): the results of several files
    go into a folder; a folder named ``sim.tif`` full of Zarr stores is not what was asked."""
    a, b = tmp_path / "cell_1.tif", tmp_path / "cell_2.tif"
    a.write_bytes(HELA.read_bytes())
    b.write_bytes(HELA.read_bytes())
    out = tmp_path / "sim.tif"
    assert main(["reconstruct", str(a), str(b), "-o", str(out), *OPTICS]) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "-o" in err[0] and "folder" in err[0], err


def test_angles_zero_is_refused_not_replaced_by_the_default(tmp_path, capsys):
    """``--angles 0`` is a mistake to say, not a request for the default 3 x 3."""
    out = tmp_path / "sim.tif"
    assert main(["reconstruct", str(HELA), "-o", str(out), *OPTICS, "--angles", "0"]) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip()
    assert "--angles 0" in err and "None" not in err, err


@pytest.mark.parametrize(
    ("angle", "said"),
    [
        ({"angle_deg": 1}, "angle 0 has no 'period_nm'"),
        ({"angle_deg": 1, "period_nm": "a", "phases_rad": [0, 1, 2]}, "angle 0: could not"),
    ],
)
def test_a_malformed_params_file_says_what_is_missing(angle, said):
    """A `--params` file lacking a key showed Python's `KeyError('period_nm')` repr."""
    from scope.errors import DataFormatError
    from scope.sim.params import SIMParameters

    with pytest.raises(DataFormatError) as err:
        SIMParameters.from_dict({"angles": [angle]})
    assert said in str(err.value) and "KeyError" not in str(err.value)


def test_params_of_another_pattern_shape_say_which_flags_would_match(tmp_path, capsys):
    """A `--params` file of 2 angles for a 3 x 3 data set named both shapes but not the way
    out (`--angles 2 --phases 3` if the data was taken so)."""
    import json

    from scope.sim.params import SIMParameters

    two = SIMParameters.equidistant([0.0, 90.0], period_nm=357.0, n_phases=3)
    params = tmp_path / "two.params.json"
    params.write_text(json.dumps(two.to_dict()))
    out = tmp_path / "sim.tif"
    argv = ["reconstruct", str(HELA), "-o", str(out), *OPTICS, "--params", str(params)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "describes 2x3 frames, the data is read as 3x3" in err
    assert "give --angles 2 --phases 3" in err
