"""Reconstruction in tiles, for a pattern that the illumination optics bend across the field.

Ground truth: the simulated pattern ``k . D(r)`` with a radial distortion ``D`` (as a pico
projector's or a relay's lens gives), whose local wave vector at a point is ``J(r)^T k``.
"""

from __future__ import annotations

import itertools
import json
import logging
import math

import numpy as np
import pytest
import tifffile

from scope.batch.config import BatchOptions
from scope.cli import main
from scope.errors import ConfigurationError
from scope.sim import metrics
from scope.sim.estimate import estimate_parameters
from scope.sim.forward import random_phase_errors, simulate_raw
from scope.sim.params import AngleParameters, SIMParameters
from scope.sim.pipeline import SetReconstructor, reconstruct_stack
from scope.sim.reconstruct import ReconstructionSettings, SIMReconstructor
from scope.sim.samples import make_sample
from scope.sim.tiles import (
    DRIFT_TOLERANCE_RAD,
    TiledReconstructor,
    TileGrid,
    bends_within_tiles,
    continuation_miss_rad,
    estimate_tiled_parameters,
    pattern_drift_rad,
    plan_tiles,
)
from sim_cases import MARGIN, OFFSET, SETUP, ideal_target

SIZE = 512
DISTORTION = 0.01  # the pattern displaced by 1 % of the distance from the centre in a corner
CONTRACT = ["--na", "1.2", "--wavelength", "525", "--pixel-size", "65"]


def _truth(seed: int = 0) -> SIMParameters:
    rng = np.random.default_rng(seed)
    nominal = SIMParameters.equidistant(
        [12.0, 72.0, 132.0],
        period_nm=1000.0 / (0.85 * SETUP.cutoff_per_um),
        modulation=0.8,
        phase_offset_rad=1.0,
    )
    return random_phase_errors(nominal, 0.15, rng)


@pytest.fixture(scope="module")
def field():
    """A 512x512 field at 400 photons, with and without a distorted pattern."""
    truth = _truth()
    gt = make_sample((2 * SIZE, 2 * SIZE), "mixed", seed=0)
    kwargs = {"photons_peak": 400, "background_photons": 30, "offset_adu": OFFSET, "rng": 1}
    straight = simulate_raw(gt, truth, SETUP, **kwargs)
    bent = simulate_raw(gt, truth, SETUP, pattern_distortion=DISTORTION, **kwargs)
    return {"truth": truth, "target": ideal_target(gt, truth), "straight": straight, "bent": bent}


def _error(image, target) -> float:
    crop = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]
    return metrics.normalized_rms_error(image[crop], target[crop])


def _local_wave_vector(a: AngleParameters, y_um: float, x_um: float) -> np.ndarray:
    """``J^T k`` of the simulated distortion at a point (µm from camera pixel (0, 0))."""
    c = (SIZE - 1) / 2 * SETUP.pixel_size_um  # the field's centre
    r2 = 2 * (SIZE * SETUP.pixel_size_um) ** 2 / 4
    d = np.array([x_um - c, y_um - c])
    k = np.array(a.k_per_um)
    s = 1 + DISTORTION * d @ d / r2
    return s * k + 2 * DISTORTION / r2 * d * (d @ k)


def test_tile_grid_covers_the_frame_with_weights_summing_to_one():
    for shape in [(512, 512), (480, 1000), (513, 700), (1200, 1920)]:
        grid = TileGrid.covering(shape)
        for up in (1, 2):
            total = np.zeros((shape[0] * up, shape[1] * up))
            for i in range(len(grid)):
                ys, xs = grid.window(i)
                assert ys.stop <= shape[0] and xs.stop <= shape[1]
                total[ys.start * up : ys.stop * up, xs.start * up : xs.stop * up] += grid.weights(
                    i, up
                )
            np.testing.assert_allclose(total, 1.0, atol=1e-6)
        for starts in (grid.row_starts, grid.col_starts):
            assert all(
                b - a <= grid.tile_px - grid.overlap_px for a, b in itertools.pairwise(starts)
            )
    assert len(TileGrid.covering((300, 257))) == 1  # a side within a tile + overlap: one tile
    with pytest.raises(ConfigurationError, match="at least 64"):
        TileGrid.covering((512, 512), tile_px=32)
    with pytest.raises(ConfigurationError, match="overlap"):
        TileGrid.covering((512, 512), tile_px=128, overlap_px=100)


def test_drift_of_the_same_pattern_is_zero_whichever_way_it_is_described():
    truth = _truth()
    origin = (192, 320)
    dx = SETUP.pixel_size_um
    tile = truth.seen_from((origin[0] * dx, origin[1] * dx))
    drift = pattern_drift_rad(truth, tile, origin, (256, 256), SETUP.pixel_size_um)
    np.testing.assert_allclose(drift, 0.0, atol=1e-9)
    flipped = SIMParameters(
        tuple(
            AngleParameters(
                a.angle_deg + 180, a.period_nm, tuple(-p for p in a.phases_rad), a.modulation
            )
            for a in tile.angles
        )
    )
    drift = pattern_drift_rad(truth, flipped, origin, (256, 256), SETUP.pixel_size_um)
    np.testing.assert_allclose(drift, 0.0, atol=1e-9)
    shifted = SIMParameters(
        tuple(
            AngleParameters(a.angle_deg, a.period_nm, tuple(p + 0.5 for p in a.phases_rad))
            for a in tile.angles
        )
    )
    drift = pattern_drift_rad(truth, shifted, origin, (256, 256), SETUP.pixel_size_um)
    np.testing.assert_allclose(drift, 0.5, atol=1e-9)


def test_each_tile_finds_its_local_pattern(field):
    """The tiles' wave vectors follow the distortion: each is closer to the local truth than
    the global estimate is, and the tiles' phases agree with the global pattern where the
    distortion vanishes (the centre)."""
    raw = field["bent"]
    glob = estimate_parameters(raw, SETUP)
    grid = TileGrid.covering(raw.shape[-2:])
    tiled = estimate_tiled_parameters(raw, SETUP, glob, grid)
    assert tiled.estimated.all()
    dx = SETUP.pixel_size_um
    ty, tx = grid.tile_shape
    for (y0, x0), tile in zip(grid.origins, tiled.tiles):
        yc, xc = (y0 + (ty - 1) / 2) * dx, (x0 + (tx - 1) / 2) * dx
        for t, g, true in zip(tile.angles, glob.angles, field["truth"].angles):
            local = _local_wave_vector(true, yc, xc)
            k_tile = np.array(t.k_per_um) * np.sign(np.dot(t.k_per_um, local))
            k_glob = np.array(g.k_per_um) * np.sign(np.dot(g.k_per_um, local))
            err_tile = np.linalg.norm(k_tile - local) / np.linalg.norm(local)
            err_glob = np.linalg.norm(k_glob - local) / np.linalg.norm(local)
            assert err_tile < 0.0015, (y0, x0, err_tile)  # 0.15 % of |k|
            if err_glob > 0.003:  # where the distortion is clear, the tile does better
                assert err_tile < err_glob / 2
            # the drift is the phase the distortion adds at the tile's centre
            c = (SIZE - 1) / 2 * dx
            d = np.array([xc - c, yc - c])
            moved = DISTORTION * (d @ d) / (2 * (SIZE * dx) ** 2 / 4) * d
            expected = abs(2 * np.pi * np.dot(true.k_per_um, moved))
            drift = tiled.drift_rad[grid.origins.index((y0, x0)), glob.angles.index(g)]
            assert abs(drift - expected) < 0.15, (y0, x0, drift, expected)
    centre = grid.origins.index((128, 128))
    assert tiled.drift_rad[centre].max() < 0.1
    assert tiled.max_drift_rad > 2 * DRIFT_TOLERANCE_RAD  # the corners are far out


def test_auto_tiles_a_bent_pattern_and_restores_the_image(field, caplog):
    target = field["target"]
    with caplog.at_level(logging.INFO, logger="scope.sim.tiles"):
        bent_global, _ = reconstruct_stack(field["bent"], SETUP, tiles="off")
        bent_tiled, _ = reconstruct_stack(field["bent"], SETUP, tiles="auto")
    assert "reconstructing in 25 tiles of 128 pixels" in caplog.text  # it bends within 256
    straight, _ = reconstruct_stack(field["straight"], SETUP, tiles="off")
    e_straight, e_global, e_tiled = (
        _error(img, target) for img in (straight, bent_global, bent_tiled)
    )
    # measured: 0.115 straight, 0.188 bent in one piece, 0.116 bent in tiles
    assert e_global > 0.16
    assert e_tiled < e_straight + 0.01
    assert e_tiled < 0.125


def test_auto_halves_the_tiles_where_the_pattern_bends_within_them(field):
    """At 2 % distortion a 256-pixel tile's own pattern misses its neighbour's by about 1 rad;
    auto goes down to 128-pixel tiles (measured: 0.258 in one piece, 0.142 in 256-pixel tiles,
    0.116 in 128-pixel tiles; 0.115 for a straight pattern)."""
    gt = make_sample((2 * SIZE, 2 * SIZE), "mixed", seed=0)
    truth = field["truth"]
    raw = simulate_raw(
        gt, truth, SETUP, background_photons=30, offset_adu=OFFSET, rng=1, pattern_distortion=0.02
    )
    glob = estimate_parameters(raw, SETUP)
    coarse = plan_tiles(raw, SETUP, glob, mode="on")
    assert coarse is not None and bends_within_tiles(coarse)
    rec = SetReconstructor(SETUP, tiles="auto")
    image = rec(raw)
    assert rec.tiled is not None and rec.tiled.grid.tile_px == 128
    assert _error(image, field["target"]) < 0.125
    straight = plan_tiles(field["straight"], SETUP, glob, mode="on")
    assert not bends_within_tiles(straight)
    assert continuation_miss_rad(straight) < 0.25  # the estimates' noise only


def test_auto_leaves_a_straight_pattern_in_one_piece(field):
    raw = field["straight"]
    glob = estimate_parameters(raw, SETUP)
    assert plan_tiles(raw, SETUP, glob, mode="auto") is None
    assert plan_tiles(raw, SETUP, glob, mode="off") is None
    tiled = plan_tiles(raw, SETUP, glob, mode="on")
    assert tiled is not None and len(tiled.grid) == 9
    # tiles of a straight pattern: the same image quality as one piece, no seams
    rec = TiledReconstructor(SETUP, tiled, settings=ReconstructionSettings(offset_adu=OFFSET))
    one = SIMReconstructor(SETUP, glob, shape=raw.shape[-2:])(raw)
    tiles = rec(raw)
    assert abs(_error(tiles, field["target"]) - _error(one, field["target"])) < 0.01
    assert rec.widefield(raw).shape == raw.shape[-2:]
    np.testing.assert_allclose(rec.frame_gains(raw), 1.0, atol=0.02)


def test_dark_tiles_keep_the_global_pattern(caplog):
    """A tile with nothing in it cannot show its pattern: it uses the whole frame's, said once."""
    truth = _truth(2)
    gt = make_sample((2 * SIZE, 2 * SIZE), "mixed", seed=2)
    gt[:, : 2 * 260] = 0  # the left tiles (columns 0-255) see only background
    raw = simulate_raw(gt, truth, SETUP, photons_peak=400, background_photons=5, rng=3)
    glob = estimate_parameters(raw, SETUP)
    with caplog.at_level(logging.INFO):
        tiled = estimate_tiled_parameters(raw, SETUP, glob, TileGrid.covering(raw.shape[-2:]))
    dark = [i for i, (y0, x0) in enumerate(tiled.grid.origins) if x0 == 0]
    assert not tiled.estimated[dark].any()
    assert tiled.estimated.sum() >= 3
    assert "too little structure" in caplog.text
    assert "no clear pattern carrier" not in caplog.text  # per-tile warnings summarised
    for i in dark:
        np.testing.assert_allclose(tiled.drift_rad[i], 0.0, atol=1e-9)
    image = TiledReconstructor(SETUP, tiled)(raw)
    assert np.isfinite(image).all()


def test_cli_reconstructs_in_tiles_and_records_them(field, tmp_path):
    src = tmp_path / "bent.tif"
    tifffile.imwrite(src, field["bent"].astype(np.uint16))
    out = tmp_path / "bent.sim.tif"
    assert main(["reconstruct", str(src), "-o", str(out), *CONTRACT, "--diagnostics"]) == 0
    doc = json.loads((tmp_path / "bent.params.json").read_text())
    # the map of the pattern across the field: one panel of 5 x 5 tiles per orientation
    from PIL import Image

    with Image.open(tmp_path / "bent.pattern-map.png") as png:
        assert png.width > 2.5 * png.height and png.height > 5 * 24
    assert doc["resolution_nm"]["sim"] < 0.7 * doc["resolution_nm"]["widefield"]
    assert len(doc["angles"]) == 3  # the contract: the whole frame's pattern
    tiles = doc["tiles"]
    assert tiles["tile_px"] == 128 and len(tiles["tiles"]) == 25
    assert tiles["max_drift_rad"] > DRIFT_TOLERANCE_RAD
    assert all(len(t["angles"]) == 3 and len(t["drift_rad"]) == 3 for t in tiles["tiles"])
    assert _error(tifffile.imread(out), field["target"]) < 0.13
    off = tmp_path / "off.sim.tif"
    assert main(["reconstruct", str(src), "-o", str(off), *CONTRACT, "--tiles", "off"]) == 0
    assert "tiles" not in json.loads((tmp_path / "off.params.json").read_text())
    assert _error(tifffile.imread(off), field["target"]) > 0.16
    params = tmp_path / "bent.params.json"
    with_params = [*CONTRACT, "--params", str(params), "--tiles", "on"]
    code = main(["reconstruct", str(src), "-o", str(off), *with_params])
    assert code != 0  # each tile's pattern needs estimating


def test_batch_reconstructs_in_tiles_and_reports_them(field, tmp_path):
    from scope.batch.config import load_preset
    from scope.batch.job import _Reconstruction

    preset = tmp_path / "p.toml"
    preset.write_text('[reconstruction]\ntiles = "off"\ntile_px = 128\n')
    assert load_preset(preset)[0].tiles == "off" and load_preset(preset)[0].tile_px == 128
    preset.write_text('[reconstruction]\ntiles = "sometimes"\n')
    with pytest.raises(ConfigurationError, match="tiles"):
        load_preset(preset)

    options = BatchOptions(na=1.2, wavelength_nm=525, pixel_size_nm=65, tile_px=256)
    engine = _Reconstruction(SETUP, options)
    image = engine((0, 0), field["bent"], {"t": 0})
    assert _error(image, field["target"]) < 0.13
    assert engine.epochs[0]["tiles"]["count"] == 25
    assert not math.isnan(engine.epochs[0]["tiles"]["max_drift_rad"])
    engine = _Reconstruction(SETUP, options.model_copy(update={"tiles": "off"}))
    engine((0, 0), field["bent"], {"t": 0})
    assert "tiles" not in engine.epochs[0]


def test_tiles_agree_across_backends(backend):
    """Tile estimation and the tiled operator give the numpy result (1e-4) on every backend
    (on the emulated GPU: the host/device rules of cupy in every call)."""
    truth = _truth(4)
    gt = make_sample((640, 640), "mixed", seed=4)
    raw = simulate_raw(
        gt, truth, SETUP, background_photons=30, offset_adu=OFFSET, rng=4, pattern_distortion=0.02
    )
    grid = TileGrid.covering(raw.shape[-2:], 128, 32)
    glob = estimate_parameters(raw, SETUP)
    ref_tiles = estimate_tiled_parameters(raw, SETUP, glob, grid, backend="numpy")
    be_tiles = estimate_tiled_parameters(backend.asarray(raw), SETUP, glob, grid, backend=backend)
    np.testing.assert_allclose(be_tiles.drift_rad, ref_tiles.drift_rad, atol=1e-3)
    ref = TiledReconstructor(SETUP, ref_tiles, backend="numpy")(raw)
    out = TiledReconstructor(SETUP, ref_tiles, backend=backend)(backend.asarray(raw))
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))
