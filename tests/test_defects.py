"""Hot and dead camera pixels: found from the optics' band limit (no dark frames), checked
against the pixels injected into simulated sets and against the clean sets (no false alarms),
and repaired in the estimation, the SIM and the widefield image."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import numpy as np
import pytest
import tifffile

from scope.cli import main
from scope.sim import metrics
from scope.sim.defects import find_defect_pixels
from scope.sim.estimate import EstimationSettings, estimate_parameters
from scope.sim.pipeline import reconstruct_stack
from scope.sim.reconstruct import ReconstructionSettings, SIMReconstructor
from sim_cases import (
    MARGIN,
    OFFSET,
    SETUP,
    angle_error_deg,
    ideal_target,
    make_case,
    with_camera_defects,
    with_hot_blocks,
)

CROP = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]


@pytest.mark.parametrize("photons", [400, 60])
def test_clean_sets_have_no_defects(photons):
    for seed in range(5):
        assert len(find_defect_pixels(make_case(seed, photons=photons).raw, SETUP)) == 0
    for kind in ("beads", "siemens"):  # bright, small and sharp structure is not a defect
        case = make_case(7, photons=10 * photons, kind=kind)
        assert len(find_defect_pixels(case.raw, SETUP)) == 0


@pytest.mark.parametrize("photons", [400, 60])
def test_injected_defects_are_found(photons):
    """Every hot pixel (100 ADU and more, on the edges and side by side too) is found, dead
    pixels where the light they miss stands out of the noise, and hardly anything else."""
    for seed in range(3):
        case = make_case(seed, photons=photons)
        raw, hot, dead = with_camera_defects(case.raw, seed)
        found = set(find_defect_pixels(raw, SETUP).flat.tolist())
        assert hot <= found, sorted(hot - found)
        signal = (case.raw.mean(axis=0) - OFFSET).reshape(-1)
        visible = {int(d) for d in dead if signal[d] > 40}  # > ~8 sigma of the mean image
        assert visible <= found
        assert len(found - hot - dead) <= 1, sorted(found - hot - dead)


def _pixels(defects) -> set[tuple[int, int]]:
    """The (row, column) of each defect found."""
    return set(zip(defects.rows.tolist(), defects.cols.tolist(), strict=True))


def test_rings_around_side_by_side_spikes_are_not_taken_for_defects():
    """Equal spikes side by side cancel in part at their own pixels beyond the band limit and
    add up in the rings around them, so the rings outscore them. A ring pixel is no brighter
    or darker than its neighbours in the mean image, and is not flagged (it was: four ring
    pixels around a hot pair in the corner, six around a clipped pair, each then "repaired"
    with its hot neighbours' values)."""
    case = make_case(2)
    corner_pair = case.raw.copy()
    corner_pair[:, 0:2, 0] += 2000
    found = _pixels(find_defect_pixels(corner_pair, SETUP))
    assert found and found <= {(0, 0), (1, 0)}, sorted(found)
    line = case.raw.copy()
    line[:, 100:103, 128] += 1000
    found = _pixels(find_defect_pixels(line, SETUP))
    assert found == {(100, 128), (101, 128), (102, 128)}, sorted(found)


def test_clipped_hot_pixels_are_defects_and_clipped_structure_is_not():
    """Hot pixels side by side at the camera's full scale form a clipped plateau, which is left
    out as clipped structure is; but their surroundings sit far below half their level, which
    no optics makes (one pixel off a clipped spot's core the PSF keeps about 0.8 of it): they
    are found and repaired, and the estimation works (it failed: the unrepaired pair swamped
    the whitened 0 order, peak-to-noise 2.8). Bead cores clipped to plateaus of 1-6 pixels
    are not flagged."""
    case = make_case(2)
    for value, rows in ((4000.0, slice(100, 102)), (65535.0, slice(100, 103))):
        clipped = case.raw.copy()
        clipped[:, rows, 128] = value  # the stack's maximum: clipped
        found = _pixels(find_defect_pixels(clipped, SETUP))
        assert found == {(r, 128) for r in range(rows.start, rows.stop)}, sorted(found)
    est = estimate_parameters(clipped - OFFSET, SETUP)
    for e, t in zip(est.angles, case.truth.angles):
        assert angle_error_deg(e.angle_deg, t.angle_deg) < 0.1
    for seed in (1, 3, 7):
        beads = make_case(seed, photons=4000, kind="beads").raw
        for level in (0.8, 0.9, 0.95):
            assert len(find_defect_pixels(np.minimum(beads, level * beads.max()), SETUP)) == 0


@pytest.mark.parametrize("photons", [400, 60])
def test_hot_2x2_blocks_are_found_and_repaired(photons):
    """A 2 x 2 block of equal hot pixels puts little of itself beyond the band and was missed;
    it is found as a step the optics cannot make (the ring of 12 pixels around it below the
    lowest ratio a point of light leaves, for optics 1.25x sharper than stated), and repaired:
    the error against the ideal-SIM target returns to the clean set's. Eight blocks of
    300-4000 ADU at random places, on dim and bright parts of the sample; blocks on the edges
    and in the corners, with part of their ring (held to the lowest ratio one ring pixel can
    show, 0.04 for the sharper optics)."""
    from scope.sim.defects import optical_block_contrast

    bound = optical_block_contrast(SETUP.pixel_size_um, SETUP.cutoff_per_um)
    assert 0.5 < bound < 0.6  # a point's ring keeps over half the block (PSF over 3 pixels)
    assert optical_block_contrast(SETUP.pixel_size_um, 1.25 * SETUP.cutoff_per_um) < 0.45
    for seed in range(3):
        case = make_case(seed, photons=photons)
        raw, blocks, _ = with_hot_blocks(
            case.raw, seed, (300, 500, 1000, 2000, 4000, 300, 1000, 4000)
        )
        defects = find_defect_pixels(raw, SETUP)
        assert _pixels(defects) == blocks and defects.hot == len(blocks)
        # on the edges and in the corners, with part of their ring (4000 ADU)
        edges = case.raw.copy()
        corners = [(0, 40), (100, 0), (254, 128), (60, 254), (0, 0), (254, 254)]
        for r, c in corners:
            edges[:, r : r + 2, c : c + 2] += 4000
        expected = {(r + dy, c + dx) for r, c in corners for dy in (0, 1) for dx in (0, 1)}
        assert _pixels(find_defect_pixels(edges, SETUP)) == expected
    target = ideal_target(case.ground_truth, case.truth)
    errors = {}
    for name, image, repair in (
        ("clean", case.raw, True),
        ("hot", raw, False),
        ("repaired", raw, True),
    ):
        settings = ReconstructionSettings(repair_defects=repair)
        rec = SIMReconstructor(SETUP, case.truth, shape=raw.shape[-2:], settings=settings)
        errors[name] = metrics.normalized_rms_error(rec(image)[CROP], target[CROP])
    assert errors["hot"] > 0.3, errors  # measured 0.73 (400 photons), 0.99 (60)
    assert errors["repaired"] <= errors["clean"] + 0.005, errors


def test_repair_restores_estimation_and_reconstruction():
    """0.1 % of pixels hot by 1000 ADU on average: without repair the error against the
    ideal-SIM target goes from 0.10 to 0.5; repaired it is the clean set's within 0.005.
    Measured: clean 0.103-0.104, hot 0.51, repaired 0.103-0.104."""
    for seed in (0, 1):
        case = make_case(seed)
        rng = np.random.default_rng(99)
        hot = np.zeros(case.raw.shape[-2:], np.float32)
        idx = rng.choice(hot.size, hot.size // 1000, replace=False)
        hot.flat[idx] = rng.exponential(1000.0, idx.size)
        raw = case.raw + hot
        target = ideal_target(case.ground_truth, case.truth)
        settings = ReconstructionSettings(offset_adu=OFFSET)
        errors = {}
        for name, image, repair in (
            ("clean", case.raw, True),
            ("hot", raw, False),
            ("repaired", raw, True),
        ):
            est = estimate_parameters(
                image - OFFSET, SETUP, settings=EstimationSettings(repair_defects=repair)
            )
            rec = SIMReconstructor(
                SETUP, est, shape=raw.shape[-2:], settings=replace(settings, repair_defects=repair)
            )
            errors[name] = metrics.normalized_rms_error(rec(image)[CROP], target[CROP])
            if name == "repaired":
                assert len(rec.defect_pixels) >= 0.9 * idx.size
                for e, t in zip(est.angles, case.truth.angles, strict=True):
                    assert angle_error_deg(e.angle_deg, t.angle_deg) < 0.1
                wf = rec.widefield(image)
                clean_wf = rec.widefield(case.raw)
                assert np.abs(wf - clean_wf)[4:-4, 4:-4].max() < 40  # no spike left
        assert errors["hot"] > 0.3, errors
        assert errors["repaired"] <= errors["clean"] + 0.005, errors


def test_pipeline_finds_defects_once_and_repairs_every_set(caplog):
    case = make_case(3, size=128)
    raw, _, _ = with_camera_defects(case.raw, 3, n_hot=12, n_dead=0)
    clean, _ = reconstruct_stack(np.stack([case.raw] * 2), SETUP, params=case.truth)
    with caplog.at_level(logging.INFO, logger="scope.sim.defects"):
        sims, _ = reconstruct_stack(np.stack([raw] * 2), SETUP, params=case.truth)
    found = [r for r in caplog.records if "camera pixels are hot" in r.getMessage()]
    assert len(found) == 1  # once for the stack, not once per set
    for s in sims:
        err = metrics.normalized_rms_error(s[8:-8, 8:-8], clean[0][8:-8, 8:-8])
        assert err < 0.02, err


def test_real_bsim_frame_has_two_dark_pixels(data_dir):
    """The B-SIM HeLa set: two pixels, (36, 62) and (112, 69), are 20-25 % darker than the mean
    of their four neighbours (over the nine frames), a one-pixel dip that light through the
    objective cannot make (their sCMOS offset and gain maps are normal: dust or low-response
    pixels). Nothing else is flagged."""
    from scope.optics import OpticalSetup

    raw = tifffile.imread(data_dir / "bsim-hela-mitochondria" / "raw_images.tif")
    setup = OpticalSetup(na=1.3, wavelength_nm=660, pixel_size_nm=65)
    d = find_defect_pixels(raw, setup)
    assert sorted(zip(d.rows.tolist(), d.cols.tolist(), strict=True)) == [(36, 62), (112, 69)]
    assert d.hot == 0
    mean = raw.mean(axis=0)
    for r, c in zip(d.rows, d.cols, strict=True):
        neighbours = mean[[r - 1, r + 1, r, r], [c, c, c - 1, c + 1]]
        assert mean[r, c] < 0.85 * neighbours.mean()


def test_cli_records_the_defects(tmp_path):
    case = make_case(4, size=128)
    raw, hot, _ = with_camera_defects(case.raw, 4, n_hot=8, n_dead=0)
    src = tmp_path / "hot.tif"
    tifffile.imwrite(src, raw.astype(np.uint16))
    out = tmp_path / "hot.sim.tif"
    args = ["--na", "1.2", "--wavelength", "525", "--pixel-size", "65", "--offset", str(OFFSET)]
    assert main(["reconstruct", str(src), "-o", str(out), *args]) == 0
    doc = json.loads((tmp_path / "hot.params.json").read_text())
    assert doc["defect_pixels"]["pixels"] == len(hot) and doc["defect_pixels"]["hot"] == len(hot)
    assert main(["reconstruct", str(src), "-o", str(out), *args, "--keep-defects"]) == 0
    doc = json.loads((tmp_path / "hot.params.json").read_text())
    assert doc["defect_pixels"]["pixels"] == 0


def test_odd_frames_and_every_backend(backend):
    """Defects on an odd-sided field (the operator pads it) are repaired as on an even one,
    and the GPU code path (cupy, or its emulation) gives numpy's image."""
    case = make_case(5, size=128)
    raw, hot, _ = with_camera_defects(case.raw, 5, n_hot=10, n_dead=0)
    settings = ReconstructionSettings(offset_adu=OFFSET)
    odd = np.s_[:, :127, :125]
    inside = {(h // 128, h % 128) for h in hot if h // 128 < 127 and h % 128 < 125}
    clean = SIMReconstructor(SETUP, case.truth, shape=(127, 125), settings=settings)(case.raw[odd])
    ref = SIMReconstructor(SETUP, case.truth, shape=(127, 125), settings=settings)
    repaired = ref(raw[odd])
    found = ref.defect_pixels
    assert set(zip(found.rows.tolist(), found.cols.tolist(), strict=True)) == inside
    inner = np.s_[8:-8, 8:-8]
    assert metrics.normalized_rms_error(repaired[inner], clean[inner]) < 0.02
    out = SIMReconstructor(SETUP, case.truth, shape=(127, 125), settings=settings, backend=backend)
    b = backend.to_numpy(out(backend.asarray(raw[odd])))
    np.testing.assert_allclose(b, repaired, rtol=1e-4, atol=1e-4 * float(np.abs(repaired).max()))
    np.testing.assert_allclose(
        backend.to_numpy(out.widefield(raw[odd])), ref.widefield(raw[odd]), rtol=1e-5, atol=1e-3
    )


@pytest.mark.parametrize("given", ["noise model", "wiener"])
def test_defects_are_found_when_the_filter_is_ready_before_the_first_set(given):
    """A reconstructor handed a noise model (napari previews, re-estimation) or a constant
    Wiener parameter still finds and repairs the defects of its first set."""
    case = make_case(6, size=128)
    raw, hot, _ = with_camera_defects(case.raw, 6, n_hot=10, n_dead=0)
    settings = ReconstructionSettings(offset_adu=OFFSET)
    first = SIMReconstructor(SETUP, case.truth, shape=(128, 128), settings=settings)
    first(case.raw)
    if given == "wiener":
        rec = SIMReconstructor(
            SETUP, case.truth, shape=(128, 128), settings=replace(settings, wiener=0.05)
        )
    else:
        rec = SIMReconstructor(
            SETUP, case.truth, shape=(128, 128), settings=settings, noise_model=first.noise_model
        )
    rec(raw)
    found = set(rec.defect_pixels.flat.tolist())
    assert found == set(find_defect_pixels(raw, SETUP).flat.tolist())
    assert found <= hot and len(found) >= 8


def test_batch_reports_the_defects_per_file(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    case = make_case(8, size=128)
    raw, hot, _ = with_camera_defects(case.raw, 8, n_hot=8, n_dead=0)
    tifffile.imwrite(folder / "hot.tif", raw.astype(np.uint16))
    out = tmp_path / "out"
    args = ["--na", "1.2", "--wavelength", "525", "--pixel-size", "65", "--offset", str(OFFSET)]
    assert main(["batch", str(folder), "-o", str(out), *args, "--workers", "0"]) == 0
    report = json.loads((out / "batch-report.json").read_text())
    found = report["files"][0]["defect_pixels"]["0"]
    expected = find_defect_pixels(raw.astype(np.uint16), SETUP)
    assert found["pixels"] == len(expected) >= 6 and set(expected.flat.tolist()) <= hot
