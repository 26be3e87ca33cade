"""The simulated acceptance case of the reconstruction (issue 2), shared by tests and benchmarks.

NA 1.2, 525 nm emission, 65 nm camera pixels, 256x256 camera frames; pattern at 0.85 of the
detection cutoff with modulation 0.8; per-frame phase errors uniform in ±0.15 rad; a filament
network with beads over a faint diffuse background; Poisson shot noise, 1.5 e- read noise,
offset 100 ADU; an unmodulated background of 7.5 % of the peak (30 photons at 400 photons peak:
a dimmer exposure of the same sample dims its background too).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from scope.optics import OpticalSetup
from scope.sim import metrics
from scope.sim.forward import add_camera_noise, random_phase_errors, simulate_raw
from scope.sim.params import SIMParameters
from scope.sim.reconstruct import ReconstructionSettings, SIMReconstructor
from scope.sim.samples import make_sample

SETUP = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
OFFSET = 100.0
READ_NOISE_E = 1.5  # the simulated camera's read noise, electrons
BACKGROUND = 30.0 / 400.0  # unmodulated background per pixel, as a fraction of the peak


@dataclass
class Case:
    raw: np.ndarray
    truth: SIMParameters
    ground_truth: np.ndarray


def make_case(
    seed: int,
    *,
    photons: float = 400.0,
    n_angles: int = 3,
    n_phases: int = 3,
    size: int = 256,
    kind: str = "mixed",
    sample: np.ndarray | None = None,
    modulation: float = 0.8,
) -> Case:
    rng = np.random.default_rng(seed)
    a0 = rng.uniform(0, 180 / n_angles)
    angles = [a0 + i * 180.0 / n_angles for i in range(n_angles)]
    period = 1000.0 / (0.85 * SETUP.cutoff_per_um)
    nominal = SIMParameters.equidistant(
        angles,
        period_nm=period,
        n_phases=n_phases,
        modulation=modulation,
        phase_offset_rad=rng.uniform(0, 2 * np.pi),
    )
    truth = random_phase_errors(nominal, 0.15, rng)
    gt = make_sample((2 * size, 2 * size), kind, seed=seed) if sample is None else sample
    return Case(_camera_frames(gt, truth, photons, rng), truth, gt)


def _camera_frames(ground_truth, truth: SIMParameters, photons: float, rng) -> np.ndarray:
    """The acceptance case's camera (background, read noise, offset) recording a sample."""
    return simulate_raw(
        ground_truth,
        truth,
        SETUP,
        photons_peak=photons,
        background_photons=BACKGROUND * photons,
        read_noise_e=READ_NOISE_E,
        offset_adu=OFFSET,
        rng=rng,
    )


def ideal_target(
    ground_truth: np.ndarray, params: SIMParameters, setup: OpticalSetup = SETUP
) -> np.ndarray:
    """The ground truth seen through the ideal SIM OTF of support ``fc + |p|`` (2x grid; the
    acceptance case's optics unless ``setup``, e.g. a simulated microscope's)."""
    kmax = max(np.hypot(*a.k_per_um) for a in params.angles)
    return metrics.ideal_sim_target(
        ground_truth,
        pixel_size_nm=setup.pixel_size_nm / 2,
        cutoff_per_um=setup.cutoff_per_um + kmax,
    )


def make_cropped_case(
    seed: int, *, photons: float = 400.0, size: int = 256, bright_edge: bool = False
) -> tuple[Case, np.ndarray]:
    """The acceptance case seen through a smaller field of view, as a real camera sees it.

    The simulation is periodic (FFT optics); cropping the central ``size`` pixels of a field
    1.5x as large gives frames whose opposite edges do not match. ``bright_edge`` adds a bright
    cell body that the crop's left edge cuts through (the hardest case for edge handling).
    Returns the case (pattern phases referred to the crop's pixel (0, 0), ground truth cropped)
    and the ideal-SIM target computed on the large field and cropped (no wrap-around in it).
    """
    big_size = size * 3 // 2 // 2 * 2
    o = (big_size - size) // 2
    sample = None
    if bright_edge:
        sample = make_sample((2 * big_size, 2 * big_size), "mixed", seed=seed)
        yy, xx = np.mgrid[0 : 2 * big_size, 0 : 2 * big_size]
        body = np.exp(
            -(
                ((yy - big_size) / (0.57 * big_size)) ** 2
                + ((xx - 2 * o - 22) / (0.31 * big_size)) ** 2
            )
        )
        sample = sample + 0.8 * sample.max() * body
    big = make_case(seed, photons=photons, size=big_size, sample=sample)
    x0 = y0 = o * SETUP.pixel_size_um
    angles = [
        replace(
            a,
            phases_rad=tuple(
                p + 2 * np.pi * (a.k_per_um[0] * x0 + a.k_per_um[1] * y0) for p in a.phases_rad
            ),
        )
        for a in big.truth.angles
    ]
    target = ideal_target(big.ground_truth, big.truth)
    crop2 = np.s_[2 * o : 2 * (o + size), 2 * o : 2 * (o + size)]
    case = Case(
        big.raw[:, o : o + size, o : o + size],
        SIMParameters(tuple(angles)),
        big.ground_truth[crop2],
    )
    return case, target[crop2]


#: output pixels left out of quality measures: beyond the edge taper (16 camera pixels = 32)
MARGIN = 40


def evaluate(
    case: Case, params: SIMParameters, settings=None, noise_model=None, threshold: float = 1 / 7
):
    """(NRMSE vs ideal-SIM target, SIM resolution / widefield resolution) of one case.

    The resolution is where the ring correlation with the ground truth falls below
    ``threshold`` (1/7).
    """
    settings = settings or ReconstructionSettings(offset_adu=OFFSET)
    rec = SIMReconstructor(
        SETUP, params, shape=case.raw.shape[-2:], settings=settings, noise_model=noise_model
    )
    sim = rec(case.raw)
    wf = metrics.upsample2x(rec.widefield(case.raw))
    target = ideal_target(case.ground_truth, case.truth)
    crop = np.s_[MARGIN:-MARGIN, MARGIN:-MARGIN]
    nrmse = metrics.normalized_rms_error(sim[crop], target[crop])
    gt = case.ground_truth[crop]
    res_sim, res_wf = (
        metrics.resolution_from_frc(
            *metrics.fourier_ring_correlation(img[crop], gt), threshold=threshold
        )
        for img in (sim, wf)
    )
    return nrmse, res_sim / res_wf


def angle_error_deg(a: float, b: float) -> float:
    """Difference of two pattern angles modulo 180° (k and -k are the same pattern)."""
    return abs((a - b + 90.0) % 180.0 - 90.0)


def phase_errors(
    estimated,
    truth,
    at_px: tuple[float, float] = (0.0, 0.0),
    pixel_size_um: float = SETUP.pixel_size_um,
) -> np.ndarray:
    """Each frame's phase error, wrapped, at the pixel position ``at_px`` = (y, x) (the phases
    are quoted at pixel (0, 0)); k and -k reconciled: the same pattern described by -k has
    negated phases."""
    est = np.asarray(estimated.phases_rad)
    k_est = np.asarray(estimated.k_per_um)
    if abs((estimated.angle_deg - truth.angle_deg + 180) % 360 - 180) > 90:
        est, k_est = -est, -k_est
    at_um = np.array([at_px[1], at_px[0]]) * pixel_size_um  # (x, y), as k is (kx, ky)
    est_at = est + 2 * np.pi * float(k_est @ at_um)
    tru_at = np.asarray(truth.phases_rad) + 2 * np.pi * float(np.asarray(truth.k_per_um) @ at_um)
    return np.angle(np.exp(1j * (est_at - tru_at)))


def phase_step_errors(estimated, truth) -> np.ndarray:
    """Errors of the phase steps (phi_n - phi_0), wrapped, with k and -k reconciled."""
    err = phase_errors(estimated, truth)
    return np.abs(np.angle(np.exp(1j * (err - err[0]))))


def phase_errors_at_centre(
    estimated, truth, shape: tuple[int, int], pixel_size_um: float = SETUP.pixel_size_um
) -> np.ndarray:
    """Each frame's phase error at the centre of a ``shape`` field (see :func:`phase_errors`):
    the phase the pattern has where the fit weighs most, free of the lever arm by which a
    carrier error moves the phase quoted at pixel (0, 0)."""
    centre = ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    return phase_errors(estimated, truth, centre, pixel_size_um)


def frame_phase_variance(errors: np.ndarray) -> float:
    """One angle's frames' phase errors -> the variance of one frame's error about the angle's
    mean error (the n/(n-1) of taking the mean out put back): the frames' phase scatter,
    squared, free of what the angle's frames share."""
    err = np.asarray(errors, dtype=float)
    return float(np.mean((err - err.mean()) ** 2) * len(err) / (len(err) - 1))


def redraw_noise(case: Case, photons: float, rng: int) -> np.ndarray:
    """Another noise draw of ``case``'s raw frames (same sample, same pattern)."""
    return _camera_frames(case.ground_truth, case.truth, photons, rng)


def bright_set(seed: int, bit_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """One SIM set exposed so that its brightest structures pass a 12-bit camera's full
    scale: (frames as the camera delivers them, the same noise draw before clipping)."""
    case = make_case(seed, size=128, photons=400)
    signal = (case.raw - OFFSET).clip(0)
    expected = signal * (4000 / np.quantile(signal, 0.99))  # ~1 % of the values pass 4095
    kwargs = {"offset_adu": OFFSET, "read_noise_e": READ_NOISE_E}
    unclipped = add_camera_noise(expected, rng=seed, bit_depth=16, **kwargs)
    frames = add_camera_noise(expected, rng=seed, bit_depth=bit_depth, **kwargs)
    return frames.astype(np.uint16), unclipped


def with_camera_defects(raw: np.ndarray, seed: int, n_hot: int = 65, n_dead: int = 10):
    """``raw`` with hot pixels (extra counts of 100-4000 ADU, the same in every frame) and dead
    pixels (at the offset) at random places, some on the edges and one pair side by side."""
    rng = np.random.default_rng(seed)
    ny, nx = raw.shape[-2:]
    hot = rng.choice(ny * nx, n_hot, replace=False)
    hot[:4] = [3 * nx + 0, (ny - 1) * nx + 40, 70 * nx + nx - 1, 0 * nx + 90]  # on the edges
    hot[4:6] = [100 * nx + 100, 100 * nx + 101]  # side by side
    amplitude = rng.choice([100.0, 300.0, 1000.0, 4000.0], n_hot)
    dead = rng.choice(np.setdiff1d(np.arange(ny * nx), hot), n_dead, replace=False)
    out = raw.copy()
    flat = out.reshape(out.shape[0], -1)
    flat[:, hot] += amplitude.astype(np.float32)
    flat[:, dead] = OFFSET
    return out, set(hot.tolist()), set(dead.tolist())


def with_hot_blocks(
    raw: np.ndarray, seed: int, amplitudes: tuple[float, ...] = (300, 500, 1000, 2000, 4000)
) -> tuple[np.ndarray, set[tuple[int, int]], list[tuple[int, int]]]:
    """``raw`` with one 2 x 2 block of equal hot pixels per amplitude (ADU extra in every
    frame) at random places apart from each other (corners on a 4-pixel grid); the (row,
    column) of every pixel of them; and each block's top-left corner, in the amplitudes'
    order."""
    rng = np.random.default_rng(seed)
    ny, nx = raw.shape[-2:]
    rows, cols = (ny - 8) // 4, (nx - 8) // 4
    out = raw.copy()
    pixels, corners = set(), []
    for corner, amplitude in zip(
        rng.choice(rows * cols, len(amplitudes), replace=False), amplitudes
    ):
        r, c = 4 + 4 * int(corner // cols), 4 + 4 * int(corner % cols)
        out[:, r : r + 2, c : c + 2] += np.float32(amplitude)
        pixels |= {(r + dy, c + dx) for dy in (0, 1) for dx in (0, 1)}
        corners.append((r, c))
    return out, pixels, corners


TWO_COLOURS = ((525.0, 12.0), (600.0, 17.0))  # emission wavelength, first pattern angle


def make_two_colour_file(folder: Path) -> dict:
    """An OME-TIFF (C, 9, Y, X) of two colours in ``folder``: each channel its own emission
    wavelength (stated in the OME Channel elements), sample and pattern (angles 5° apart, the
    period scaled with the wavelength, own phases), as two lasers through one grating give.
    Also each channel alone as a TIFF (``alone``), its truth and ideal-SIM target."""
    import tifffile

    raws, truths, targets, alone = [], [], [], []
    for c, (wavelength, angle) in enumerate(TWO_COLOURS):
        setup = OpticalSetup(na=1.2, wavelength_nm=wavelength, pixel_size_nm=65)
        nominal = SIMParameters.equidistant(
            [angle, angle + 60, angle + 120],
            period_nm=1000 / (0.85 * setup.cutoff_per_um),
            modulation=0.8,
            phase_offset_rad=1.0 + c,
        )
        truth = random_phase_errors(nominal, 0.15, np.random.default_rng(c))
        gt = make_sample((512, 512), "mixed", seed=10 + c)
        raw = simulate_raw(
            gt, truth, setup, photons_peak=400, background_photons=BACKGROUND * 400, rng=c
        ).astype(np.uint16)
        raws.append(raw)
        truths.append(truth)
        targets.append(ideal_target(gt, truth))
        alone.append(folder / f"channel{c}.tif")
        tifffile.imwrite(alone[-1], raw)
    path = folder / "two.ome.tif"
    metadata = {
        "axes": "CQYX",
        "PhysicalSizeX": 0.065,
        "PhysicalSizeY": 0.065,
        "Channel": {
            "Name": ["green", "red"],
            "EmissionWavelength": [w for w, _ in TWO_COLOURS],
            "EmissionWavelengthUnit": ["nm", "nm"],
        },
    }
    tifffile.imwrite(path, np.stack(raws), ome=True, metadata=metadata)
    return {"path": path, "truths": truths, "targets": targets, "alone": alone}
