"""``scope demo`` through the real command: its files are ones every other command reads."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest
import tifffile

from scope.cli import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One small demo run (numpy, so that a rerun is bit for bit the same): its folder and
    what it printed."""
    folder = tmp_path_factory.mktemp("demo") / "scope-demo"
    argv = ["demo", "-o", str(folder), "--size", "128", "--backend", "numpy", "--no-view"]
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        assert main(argv) == 0
    return folder, said.getvalue()


def _ome_name(path) -> str:
    with tifffile.TiffFile(path) as tif:
        return re.search(r'<Image ID="Image:0" Name="([^"]*)"', tif.ome_metadata).group(1)


def test_raw_reconstructs_to_the_demos_image_with_no_flags(demo, tmp_path, capsys):
    """The raw stack states its optics: `scope reconstruct RAW -o X` needs no optics flags
    and gives the demo's SIM image."""
    folder, _ = demo
    out = tmp_path / "x.tif"
    assert main(["reconstruct", str(folder / "raw.ome.tif"), "-o", str(out)]) == 0
    capsys.readouterr()
    again, shown = tifffile.imread(out), tifffile.imread(folder / "sim.ome.tif")
    assert again.shape == shown.shape == (256, 256)
    assert np.abs(again - shown).max() <= 1e-4 * np.abs(shown).max()


def test_raw_stack_is_frames_with_optics_and_offset(demo):
    from scope.io.raw import open_raw
    from scope.io.writers import read_image

    folder, _ = demo
    raw = folder / "raw.ome.tif"
    with tifffile.TiffFile(raw) as tif:
        assert tif.series[0].axes == "ZYX"  # frames, not 9 colour channels
        assert 'SizeC="1"' in tif.ome_metadata and 'SizeZ="9"' in tif.ome_metadata
    with open_raw(raw) as stack:
        assert stack.shape == (9, 128, 128) and stack.axes == "PYX"
        assert (stack.na, stack.wavelength_nm, stack.pixel_size_nm) == (1.2, 525.0, 65.0)
        assert stack.offset_adu == 100.0  # the simulated camera's, read back
    _, _, meta = read_image(raw)
    assert meta["offset_adu"] == 100.0 and meta["scope_kind"] == "raw"


def test_every_file_is_named_for_what_it_is(demo):
    folder, _ = demo
    assert _ome_name(folder / "raw.ome.tif") == "scope raw SIM frames (simulated)"
    assert _ome_name(folder / "sim.widefield.tif") == "scope widefield image"
    assert _ome_name(folder / "sim.ome.tif") == "scope SIM reconstruction"
    assert _ome_name(folder / "ground_truth.ome.tif") == "scope ground truth (simulated sample)"


def test_widefield_is_where_other_commands_look_and_every_file_is_listed(demo):
    from scope.io.writers import beside, scope_output_kind

    folder, said = demo
    sim = folder / "sim.ome.tif"
    assert beside(sim, ".widefield.tif").is_file()  # as scope reconstruct --widefield names it
    assert scope_output_kind(beside(sim, ".widefield.tif")) == "widefield image"
    listed = said.split("\nwrote:\n", 1)[1]
    written = sorted(p.name for p in folder.iterdir())
    assert written == sorted(re.findall(r"/([^/\s]+)(?:\s|$)", listed))
    assert "sim.params.json" in written and "sim.widefield.tif" in written


def test_export_video_reads_the_demos_files(demo, tmp_path, capsys):
    folder, _ = demo
    wipe = tmp_path / "wipe.gif"
    argv = ["export-video", str(folder / "sim.ome.tif"), "-o", str(wipe), "--layout", "wipe"]
    assert main(argv) == 0  # finds the widefield image beside the SIM image
    raw_clip = tmp_path / "raw.gif"
    assert main(["export-video", str(folder / "raw.ome.tif"), "-o", str(raw_clip)]) == 0
    capsys.readouterr()
    assert wipe.stat().st_size > 0 and raw_clip.stat().st_size > 0


def test_widefield_panel_says_what_it_is(demo):
    """The side-by-side PNG's widefield panel is a plain mean, not regularised like the SIM
    panel: a line under its label says so (yellow text; the images themselves are grey)."""
    from PIL import Image

    folder, _ = demo
    png = np.asarray(Image.open(folder / "widefield_vs_sim.png").convert("RGB")).astype(int)
    assert png.shape == (256, 2 * 256 + 8, 3)
    yellow = (png[..., 0] > 180) & (png[..., 1] > 180) & (png[..., 2] < 80)
    under_label = yellow[28:44]  # below the 14 px labels drawn at y = 8
    assert under_label[:, :256].sum() > 20
    assert under_label[:, 264:].sum() == 0  # the SIM panel has its label only


def test_too_small_a_field_says_which_size_works(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path / "d"), "--size", "32", "--no-view"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--size 64" in err and "--prior" not in err
    assert not (tmp_path / "d").exists()  # refused before any work


def test_too_little_light_says_what_to_raise(tmp_path, capsys):
    argv = ["demo", "-o", str(tmp_path / "d"), "--size", "64", "--photons", "2", "--no-view"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--photons" in err and "--prior" not in err


def test_the_offset_the_raw_stack_states_is_used_unless_a_flag_says_otherwise(demo, tmp_path):
    """The true offset (100 ADU) the file states, not the darkest values' estimate (about 121
    with the background): scope reconstruct and scope batch both take it; --offset wins."""
    import json

    from scope.batch.config import BatchOptions
    from scope.batch.engine import run_batch

    folder, _ = demo
    raw = folder / "raw.ome.tif"
    said = json.loads((folder / "sim.params.json").read_text())["camera_offset"]
    assert said == {"adu": 100.0, "from": "the offset raw.ome.tif states"}
    out = tmp_path / "given.tif"
    assert main(["reconstruct", str(raw), "-o", str(out), "--offset", "90"]) == 0
    given = json.loads(out.with_name("given.params.json").read_text())["camera_offset"]
    assert given == {"adu": 90.0, "from": "--offset"}
    report = run_batch([raw], tmp_path / "batch", flags=BatchOptions(), n_workers=0)
    entry = report.files[0]
    assert entry["status"] == "done"
    assert entry["sources"]["offset_adu"] == "file"
