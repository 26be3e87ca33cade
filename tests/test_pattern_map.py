"""A pattern that the illumination optics bend across the field: measured in tiles, mapped,
and taken out of the reconstruction pixel by pixel.

Ground truth: the simulated pattern ``k . D(r)`` with a radial distortion ``D`` (as a pico
projector's or a relay's lens gives), whose local wave vector at a point is ``J(r)^T k``.
"""

from __future__ import annotations

import itertools
import json
import logging

import numpy as np
import pytest
import tifffile

from scope.batch.config import BatchOptions
from scope.cli import main
from scope.errors import ConfigurationError, DataFormatError
from scope.sim import metrics
from scope.sim.estimate import estimate_parameters
from scope.sim.forward import random_phase_errors, simulate_raw
from scope.sim.params import AngleParameters, SIMParameters
from scope.sim.pattern_map import (
    DRIFT_TOLERANCE_RAD,
    PhaseMap,
    TileGrid,
    estimate_tiled_parameters,
    fit_phase_map,
    pattern_drift_rad,
    plan_pattern_map,
)
from scope.sim.pipeline import reconstruct_stack
from scope.sim.reconstruct import SIMReconstructor
from scope.sim.samples import make_sample
from scope.sim.spectral import pixel_coordinates_um
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


def test_tile_grid_covers_the_frame():
    for shape in [(512, 512), (480, 1000), (513, 700), (1200, 1920)]:
        for tile_px, overlap_px in ((256, 64), (128, 32)):
            grid = TileGrid.covering(shape, tile_px, overlap_px)
            covered = np.zeros(shape, bool)
            for i in range(len(grid)):
                ys, xs = grid.window(i)
                assert ys.stop <= shape[0] and xs.stop <= shape[1]
                covered[ys, xs] = True
            assert covered.all()
            for starts in (grid.row_starts, grid.col_starts):
                steps = [b - a for a, b in itertools.pairwise(starts)]
                assert all(step <= tile_px - overlap_px for step in steps)
    assert len(TileGrid.covering((300, 257))) == 1  # a side within a tile + overlap: one tile
    # capped: the budget build's full sensor sampled by 6 x 6 tiles from edge to edge
    grid = TileGrid.covering((1200, 1920), 128, 16, max_per_side=6)
    assert (len(grid.row_starts), len(grid.col_starts)) == (6, 6)
    for starts, n in ((grid.row_starts, 1200), (grid.col_starts, 1920)):
        assert starts[0] == 0 and starts[-1] == n - 128
        steps = [b - a for a, b in itertools.pairwise(starts)]
        assert max(steps) - min(steps) <= 1  # evenly spread
    assert TileGrid.covering((512, 512), 128, 16, max_per_side=6) == TileGrid.covering(
        (512, 512), 128, 16
    )  # a field that needs fewer tiles is covered as before
    with pytest.raises(ConfigurationError, match="max_per_side"):
        TileGrid.covering((512, 512), max_per_side=1)
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


def _true_phase_maps(raw_shape, truth: SIMParameters, glob: SIMParameters) -> np.ndarray:
    """The simulated pattern's phase minus the global estimate's, at every camera pixel, in
    the global estimate's description (what ``SIMReconstructor(phase_maps=...)`` takes out)."""
    dx = SETUP.pixel_size_um
    y, x = pixel_coordinates_um(raw_shape, dx)
    c = (SIZE - 1) / 2 * dx
    s = 1 + DISTORTION * ((y - c) ** 2 + (x - c) ** 2) / (2 * (SIZE * dx) ** 2 / 4)
    yd, xd = c + (y - c) * s, c + (x - c) * s
    maps = []
    for t, g in zip(truth.angles, glob.angles, strict=True):
        sign = -1.0 if abs((t.angle_deg - g.angle_deg + 180) % 360 - 180) > 90 else 1.0
        kx, ky = t.k_per_um
        true = sign * (2 * np.pi * (kx * xd + ky * yd) + np.mean(t.phases_rad))
        gkx, gky = g.k_per_um
        maps.append(true - (2 * np.pi * (gkx * x + gky * y) + np.mean(g.phases_rad)))
    return np.array(maps)


def test_the_phase_map_follows_the_distortion(field):
    """The map fitted to 25 tiles of 128 pixels matches the simulated pattern's phase at every
    pixel (wrapped difference; measured: within 0.18 rad, the tiles within 0.035 rad of the
    fit), where one pattern for the field is out by up to pi."""
    raw = field["bent"]
    glob = estimate_parameters(raw, SETUP)
    phase_map = plan_pattern_map(raw, SETUP, glob, mode="auto")
    assert phase_map is not None and phase_map.degree == 3
    assert int(phase_map.tiled.estimated.sum()) == 25
    assert phase_map.residual_rad.max() < 0.1
    truth = _true_phase_maps(raw.shape[-2:], field["truth"], glob)
    inside = np.s_[:, 20:-20, 20:-20]
    miss = np.abs(
        np.angle(np.exp(1j * (phase_map.maps(raw.shape[-2:], SETUP.pixel_size_um) - truth)))
    )
    assert miss[inside].max() < 0.25, miss[inside].max()
    assert np.abs(np.angle(np.exp(1j * truth)))[inside].max() > 3.0  # one pattern: out by pi
    doc = json.loads(json.dumps(phase_map.summary()))  # as a .params.json holds it
    assert len(doc["coefficients_rad"]) == 3 and len(doc["coefficients_rad"][0]) == 10
    assert len(doc["tiles"]) == 25
    reread = PhaseMap.from_summary(doc, 3)
    np.testing.assert_allclose(
        reread.maps(raw.shape[-2:], SETUP.pixel_size_um),
        phase_map.maps(raw.shape[-2:], SETUP.pixel_size_um),
        atol=1e-4,
    )
    with pytest.raises(DataFormatError, match="expected"):
        PhaseMap.from_summary(doc, 2)
    with pytest.raises(DataFormatError, match="not a phase map"):
        PhaseMap.from_summary({"degree": 3}, 3)


def test_auto_maps_a_bent_pattern_and_restores_the_image(field, caplog):
    target = field["target"]
    with caplog.at_level(logging.INFO, logger="scope.sim.pattern_map"):
        bent_one, _ = reconstruct_stack(field["bent"], SETUP, pattern_map="off")
        bent_mapped, _ = reconstruct_stack(field["bent"], SETUP, pattern_map="auto")
    assert "its phase mapped from 25 tiles" in caplog.text
    straight, _ = reconstruct_stack(field["straight"], SETUP, pattern_map="off")
    e_straight, e_one, e_mapped = (_error(img, target) for img in (straight, bent_one, bent_mapped))
    # measured: 0.115 straight, 0.188 bent with one pattern, 0.115 bent with the map
    assert e_one > 0.16
    assert e_mapped < e_straight + 0.005
    twice = simulate_raw(  # 2 % at the corners
        make_sample((2 * SIZE, 2 * SIZE), "mixed", seed=0),
        field["truth"],
        SETUP,
        background_photons=30,
        offset_adu=OFFSET,
        rng=1,
        pattern_distortion=2 * DISTORTION,
    )
    e_twice = _error(reconstruct_stack(twice, SETUP, pattern_map="auto")[0], target)
    assert e_twice < e_straight + 0.01, e_twice  # measured 0.119 (0.258 with one pattern)


def test_auto_leaves_a_straight_pattern_alone(field):
    raw = field["straight"]
    glob = estimate_parameters(raw, SETUP)
    assert plan_pattern_map(raw, SETUP, glob, mode="auto") is None
    assert plan_pattern_map(raw, SETUP, glob, mode="off") is None
    with pytest.raises(ConfigurationError, match="pattern_map"):
        plan_pattern_map(raw, SETUP, glob, mode="sometimes")
    phase_map = plan_pattern_map(raw, SETUP, glob, mode="on")  # mapped all the same
    maps = phase_map.maps(raw.shape[-2:], SETUP.pixel_size_um)
    assert np.abs(maps[:, MARGIN // 2 : -MARGIN // 2, MARGIN // 2 : -MARGIN // 2]).max() < 0.3
    one = SIMReconstructor(SETUP, glob, shape=raw.shape[-2:])(raw)
    mapped = SIMReconstructor(SETUP, glob, shape=raw.shape[-2:], phase_maps=maps)(raw)
    assert abs(_error(mapped, field["target"]) - _error(one, field["target"])) < 0.005
    assert plan_pattern_map(raw[:, :140, :140], SETUP, glob, mode="on") is None  # one tile
    with pytest.raises(DataFormatError, match="phase maps"):
        SIMReconstructor(SETUP, glob, shape=raw.shape[-2:], phase_maps=maps[:, :-1])


def test_dark_tiles_are_left_out_of_the_map(caplog):
    """Tiles with nothing in them cannot show their pattern: left out, said once, and the
    map is fitted to the others."""
    truth = _truth(2)
    gt = make_sample((2 * SIZE, 2 * SIZE), "mixed", seed=2)
    gt[:, : 2 * 140] = 0  # the left column of 128-pixel tiles sees only background
    raw = simulate_raw(gt, truth, SETUP, photons_peak=400, background_photons=5, rng=3)
    glob = estimate_parameters(raw, SETUP)
    grid = TileGrid.covering(raw.shape[-2:], 128, 32)
    with caplog.at_level(logging.INFO):
        tiled = estimate_tiled_parameters(raw, SETUP, glob, grid)
    dark = [i for i, (y0, x0) in enumerate(grid.origins) if x0 == 0]
    assert not tiled.estimated[dark].any()
    assert tiled.estimated.sum() >= 15
    assert "too little structure" in caplog.text
    assert "no clear pattern carrier" not in caplog.text  # per-tile warnings summarised
    for i in dark:
        np.testing.assert_allclose(tiled.drift_rad[i], 0.0, atol=1e-9)
    phase_map = fit_phase_map(tiled)
    assert np.isfinite(phase_map.coefficients).all() and phase_map.residual_rad.max() < 0.2


def test_cli_maps_a_bent_pattern_and_records_it(field, tmp_path, capsys):
    src = tmp_path / "bent.tif"
    tifffile.imwrite(src, field["bent"].astype(np.uint16))
    out = tmp_path / "bent.sim.tif"
    assert main(["reconstruct", str(src), "-o", str(out), *CONTRACT, "--diagnostics"]) == 0
    said = capsys.readouterr().out
    # each diagnostic names its own file
    assert "drifting up to" in said and f"{tmp_path / 'bent.pattern-map.png'}" in said
    assert f"(map: {tmp_path / 'bent.modulation.png'})" in said
    doc = json.loads((tmp_path / "bent.params.json").read_text())
    assert len(doc["angles"]) == 3  # the contract: the whole frame's pattern
    phase_map = doc["pattern_map"]
    assert phase_map["degree"] == 3 and len(phase_map["coefficients_rad"]) == 3
    assert phase_map["max_drift_rad"] > DRIFT_TOLERANCE_RAD and len(phase_map["tiles"]) == 25
    assert all(len(t["angles"]) == 3 and len(t["drift_rad"]) == 3 for t in phase_map["tiles"])
    assert _error(tifffile.imread(out), field["target"]) < 0.125
    # the map of the pattern across the field: one panel of 5 x 5 tiles per orientation
    from PIL import Image

    with Image.open(tmp_path / "bent.pattern-map.png") as png:
        assert png.width > 2.5 * png.height and png.height > 5 * 24
    assert doc["resolution_nm"]["sim"] < 0.7 * doc["resolution_nm"]["widefield"]
    off = tmp_path / "off.sim.tif"
    assert main(["reconstruct", str(src), "-o", str(off), *CONTRACT, "--pattern-map", "off"]) == 0
    assert "pattern_map" not in json.loads((tmp_path / "off.params.json").read_text())
    assert _error(tifffile.imread(off), field["target"]) > 0.16
    # the parameters with their map, read back: the same image without estimating anything
    again = tmp_path / "again.sim.tif"
    params = [*CONTRACT, "--params", str(tmp_path / "bent.params.json")]
    assert main(["reconstruct", str(src), "-o", str(again), *params]) == 0
    np.testing.assert_allclose(
        tifffile.imread(again),
        tifffile.imread(out),
        rtol=1e-4,
        atol=1e-4 * float(np.abs(tifffile.imread(out)).max()),
    )
    reread = json.loads((tmp_path / "again.params.json").read_text())["pattern_map"]
    assert reread["coefficients_rad"] == phase_map["coefficients_rad"]
    # without the map: as one pattern; and --pattern-map on cannot measure one from --params
    plain = [*CONTRACT, "--params", str(tmp_path / "off.params.json")]
    assert main(["reconstruct", str(src), "-o", str(again), *plain, "--pattern-map", "on"]) != 0


def test_batch_maps_a_bent_pattern_and_reports_it(field, tmp_path):
    from scope.batch.config import load_preset
    from scope.batch.job import _Reconstruction

    preset = tmp_path / "p.toml"
    preset.write_text('[reconstruction]\npattern_map = "off"\n')
    assert load_preset(preset)[0].pattern_map == "off"
    preset.write_text('[reconstruction]\npattern_map = "sometimes"\n')
    with pytest.raises(ConfigurationError, match="pattern_map"):
        load_preset(preset)
    options = BatchOptions(na=1.2, wavelength_nm=525, pixel_size_nm=65)
    engine = _Reconstruction([SETUP], options)
    image = engine((0, 0), field["bent"], {"t": 0})
    assert _error(image, field["target"]) < 0.125
    assert engine.epochs[0]["pattern_map"]["tiles"] == 25
    assert engine.epochs[0]["pattern_map"]["max_drift_rad"] > DRIFT_TOLERANCE_RAD
    engine = _Reconstruction([SETUP], options.model_copy(update={"pattern_map": "off"}))
    engine((0, 0), field["bent"], {"t": 0})
    assert "pattern_map" not in engine.epochs[0]


def test_pattern_map_agrees_across_backends(backend, field):
    """Tile estimation and the reconstruction with a phase map give the numpy result (1e-4)
    on every backend (on the emulated GPU: the host/device rules of cupy in every call)."""
    raw = field["bent"][:, :320, :320]
    grid = TileGrid.covering(raw.shape[-2:], 128, 32)
    glob = estimate_parameters(raw, SETUP)
    ref_tiles = estimate_tiled_parameters(raw, SETUP, glob, grid, backend="numpy")
    be_tiles = estimate_tiled_parameters(backend.asarray(raw), SETUP, glob, grid, backend=backend)
    np.testing.assert_allclose(be_tiles.drift_rad, ref_tiles.drift_rad, atol=1e-3)
    maps = fit_phase_map(ref_tiles).maps(raw.shape[-2:], SETUP.pixel_size_um)
    ref = SIMReconstructor(SETUP, glob, shape=raw.shape[-2:], backend="numpy", phase_maps=maps)
    out = SIMReconstructor(SETUP, glob, shape=raw.shape[-2:], backend=backend, phase_maps=maps)
    a = ref(raw)
    b = backend.to_numpy(out(backend.asarray(raw)))
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * float(np.abs(a).max()))
