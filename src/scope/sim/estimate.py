"""Estimation of the illumination parameters from the raw data.

For each pattern orientation the estimator

1. separates the orders with nominal equidistant phases and finds the carrier (wave vector) as
   the peak of the whitened (phase-only) cross-correlation of the +1 order with the 0 order,
   over all integer shifts in one FFT, divided by the noise level of each shift (the square root
   of the two OTFs' overlap) — inside a search annulus, or the window given by priors;
2. refines it to a small fraction of a pixel by maximising the same cross-correlation with
   matched OTF weights (which makes the maximum unbiased), evaluated as a discrete-time Fourier
   transform on two successively finer 9x9 grids (Guizar-Sicairos 2008 matrix DFT) and a
   parabola;
3. finds the phase of every frame — steps need not be equidistant — by least squares against
   the predicted +1 order ``H(k) S(k - p)``, with the sample ``S`` and the 0 order taken from the
   *other* orientations' frames, which are free of this orientation's orders whatever its phases
   (the same information Wicker et al. 2013 use through auto-correlations; separating the
   orders with the current phases and iterating is degenerate for three phases); the 0 order
   is subtracted from the frames as its Wiener estimate (its noise would enter every fit);
4. corrects the carrier by the slope of those phases across the field: fitted in each half
   of the field (left, right; top, bottom), the phases differ by ``2 pi dk . d`` for a carrier
   off by ``dk`` between half-centres ``d`` apart (frequency from phase differences, as in
   Kay 1989); the phases are then fitted again. The cross-correlation peak of step 2 is pulled
   by the sample's own spectrum in the orders' overlap (on the simulated acceptance cases
   0.01-0.02° and 0.03 % in period even without noise); the slope is not;
5. fits the modulation depth from the ratio of the +1 order to the shifted 0 order in their
   overlap, with the noise power of the 0 order subtracted;
6. fits the phases once more by least squares weighted, frequency by frequency, by the inverse
   of the fit's own error variance (the frames' and the 0 order's noise, and the sample
   template's error, which beyond the detection band is the sample's whole power), with the
   template the MMSE estimate of the sample under its fitted power law (see
   ``_PhaseTemplate``). The carrier keeps the unweighted fit's slope correction.

Frames larger than ``EstimationSettings.max_size`` are estimated on their central region and
the phases referred back to pixel (0, 0). The confidence of each carrier is its peak-to-noise
ratio in the cross-correlation map, against the noise of the whole annulus.

References
----------
Gustafsson, J. Microsc. 198, 82-87 (2000).
Wicker, Mandula, Best, Fiolka, Heintzmann, "Phase optimisation for structured illumination
microscopy", Opt. Express 21, 2032 (2013).
Müller, Mönichinger, Wicker, Hübner, Huser, "Open-source image reconstruction of
super-resolution structured illumination microscopy data in ImageJ", Nat. Commun. 7 (2016).
Guizar-Sicairos, Thurman, Fienup, "Efficient subpixel image registration algorithms",
Opt. Lett. 33, 156 (2008).
Kay, "A fast and accurate single frequency estimator", IEEE Trans. Acoust. Speech Signal
Process. 37, 1987-1990 (1989).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from scope.backend import Backend, get_backend
from scope.errors import DataFormatError, ReconstructionError
from scope.optics import OTF, OpticalSetup, pixel_transfer
from scope.sim.defects import DefectPixels, find_defect_pixels
from scope.sim.gratings import check_distinct_angles
from scope.sim.params import AngleParameters, SIMParameters
from scope.sim.spectral import (
    default_taper_px,
    edge_taper,
    freq_grid,
    out_of_band_power,
    pixel_coordinates_um,
    plane_wave,
    power_law,
    radius,
    sample_power_law,
    separation_matrix,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EstimationSettings:
    """Knobs of the parameter estimation (the defaults need no tuning).

    Attributes
    ----------
    search_min_fraction, search_max_fraction : float
        Carrier search annulus, as fractions of the detection cutoff 2NA/λ.
    angle_tolerance_deg, period_tolerance : float
        Search window around prior values (when priors are given).
    min_confidence : float
        Carrier peak-to-noise ratio below which a carrier counts as not found.
    refine_iterations : int
        Rounds of sub-pixel carrier refinement (each re-centres the matched weights).
    slope_correction : bool
        Correct the refined carrier by the slope of the frame phases across the field (see the
        module notes). Measured on the simulated acceptance cases (10 seeds x 3 angles): the
        scatter of each angle's mean phase error falls from 0.053 to 0.038 rad at 60 photons
        and from 0.046 to 0.026 rad at 400, its bias from about -0.03 to -0.008 rad; the worst
        angle error of 5 seeds at 400 photons from 0.018° to 0.006°.
    denoise_zero_order : bool
        Subtract the 0 order from the frames as its Wiener estimate in the phase fit (see
        :class:`_PhaseTemplate`; off: as measured).
    max_size : int or None
        Frames larger than this are estimated on their central ``max_size`` region.
    whitening : float
        Exponent of the spectral whitening used to find the carrier (1: phase correlation).
    refine_whitening : float
        Exponent of the whitening in the sub-pixel refinement. Partial whitening keeps the
        sample's broad spectrum from pulling the peak while weighting strong frequencies more
        than noisy ones. Measured against full whitening (1): on the simulated acceptance cases
        (8 seeds x 3 angles, 400 and 60 photons) 0.75 cuts the RMS angle error from 0.017° to
        0.010° and the period error from 0.030 % to 0.020 %; on the two B-SIM sets the worst
        deviations from the pattern fits become 0.34° (was 0.36°) and 0.74 % (was 0.82 %). Lower
        exponents help the simulations more (0.5: 0.005-0.008°) but drag one B-SIM period
        towards 1 % (0.92 % at 0.5, 1.66 % at 0).
    template_regularization : float
        Wiener regulariser of the sample estimate that serves as the phase template in the
        unweighted fit (``weighted_phase_fit`` off, or no sample power law to be fitted).
    template_regularization_floor : float
        Least regulariser of the weighted fit's MMSE template (see :class:`_PhaseTemplate`).
    weighted_phase_fit : bool
        Fit the frame phases by least squares weighted by the fit's own error (see
        :class:`_PhaseTemplate`; off: unweighted, with a fixed-regulariser template).
    taper_px : int or None
        Edge taper width (None: 1/16 of the smaller side).
    repair_defects : bool
        Replace hot and dead camera pixels by the mean of their neighbours before estimating
        (found from the optics' band limit unless given, see :mod:`scope.sim.defects`): a hot
        pixel's flat spectrum raises the noise floor and pulls the phases.
    """

    search_min_fraction: float = 0.2
    search_max_fraction: float = 1.95
    angle_tolerance_deg: float = 4.0
    period_tolerance: float = 0.06
    min_confidence: float = 5.0
    refine_iterations: int = 1
    slope_correction: bool = True
    denoise_zero_order: bool = True
    max_size: int | None = 256
    whitening: float = 1.0
    refine_whitening: float = 0.75
    template_regularization: float = 0.2
    template_regularization_floor: float = 3e-3
    weighted_phase_fit: bool = True
    taper_px: int | None = None
    repair_defects: bool = True


@dataclass
class _Spectra:
    """Per-angle working data in Fourier space."""

    frames_ft: Any  # (n_phases, Y, X) complex
    frames_tapered: Any  # (n_phases, Y, X) real, tapered
    otf: Any  # (Y, X) real: OTF x pixel transfer
    noise_power: float  # noise power per Fourier pixel of one frame
    overlap: Any  # (Y, X): sum_k H(k)^2 H(k - p)^2 for every integer shift p
    taper: Any  # (Y, X) edge taper applied to the frames
    mean_value: float  # global mean of the frames
    k_radius: Any  # (Y, X) frequency magnitude |k| of each Fourier pixel, cycles/µm


def _otf_grid(shape, setup: OpticalSetup, otf: OTF, xp) -> Any:
    ky, kx = freq_grid(shape, setup.pixel_size_um, xp)
    return (otf(radius(kx, ky, xp), xp) * pixel_transfer(kx, ky, setup.pixel_size_um, xp)).astype(
        xp.float32
    )


def _shifted_otf(shape, setup: OpticalSetup, otf: OTF, k_shift, xp) -> Any:
    """OTF evaluated at k - k_shift (k_shift = (kx, ky) in cycles/µm)."""
    ky, kx = freq_grid(shape, setup.pixel_size_um, xp)
    kxs = (kx - k_shift[0]).astype(xp.float32)
    kys = (ky - k_shift[1]).astype(xp.float32)
    out = otf(radius(kxs, kys, xp), xp) * pixel_transfer(kxs, kys, setup.pixel_size_um, xp)
    return out.astype(xp.float32)


def _phase_ramp(shape, setup: OpticalSetup, k, xp, sign: float = 1.0) -> Any:
    """exp(sign * 2 pi i k.r) on the camera grid, r from the centre of pixel (0, 0)."""
    y, x = pixel_coordinates_um(shape, setup.pixel_size_um, xp)
    return plane_wave(k, y, x, xp, sign)


def _local_dtft(q, center_px, half_width_px: float, n: int, xp) -> tuple[Any, Any, Any]:
    """|DTFT| of ``q`` on an n x n grid of frequencies (in pixels) around ``center_px``."""
    ny, nx = q.shape
    fy = center_px[0] + xp.linspace(-half_width_px, half_width_px, n)
    fx = center_px[1] + xp.linspace(-half_width_px, half_width_px, n)
    ey = xp.exp(-2j * math.pi * fy[:, None] * xp.arange(ny)[None, :] / ny).astype(q.dtype)
    ex = xp.exp(-2j * math.pi * xp.arange(nx)[:, None] * fx[None, :] / nx).astype(q.dtype)
    return (ey @ q) @ ex, fy, fx


def _refine_peak(q, start_px, xp) -> tuple[float, float]:
    """Sub-pixel maximum of |DTFT(q)| near ``start_px``: two zooms, then a parabola."""
    center = (float(start_px[0]), float(start_px[1]))
    mag = np.zeros((1, 1))
    iy = ix = 0
    step = 0.0
    for hw, n in ((1.0, 9), (0.125, 9)):
        vals, fy, fx = _local_dtft(q, center, hw, n, xp)
        mag = np.abs(_to_np(vals))
        iy, ix = np.unravel_index(int(np.argmax(mag)), mag.shape)
        center = (float(fy[iy]), float(fx[ix]))
        step = 2 * hw / (n - 1)

    def vertex(a, b, c):
        den = a - 2 * b + c
        return 0.0 if den >= 0 else 0.5 * (a - c) / den

    # parabola through the maximum of the finest grid and its neighbours
    dy = dx = 0.0
    if 0 < iy < mag.shape[0] - 1:
        dy = float(np.clip(vertex(mag[iy - 1, ix], mag[iy, ix], mag[iy + 1, ix]), -1, 1)) * step
    if 0 < ix < mag.shape[1] - 1:
        dx = float(np.clip(vertex(mag[iy, ix - 1], mag[iy, ix], mag[iy, ix + 1]), -1, 1)) * step
    return center[0] + dy, center[1] + dx


def _combine(weights, stack) -> Any:
    """sum_n weights[n] * stack[n] without a full-size temporary per term."""
    w = _to_np(weights)
    out = stack[0] * complex(w[0])
    for n in range(1, len(w)):
        out += stack[n] * complex(w[n])
    return out


def _to_np(a) -> np.ndarray:
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _whiten(spectrum, exponent: float, xp) -> Any:
    """Divide a spectrum by its magnitude to the power ``exponent`` (1 = phase only)."""
    if exponent == 0:
        return spectrum
    mag = xp.abs(spectrum)
    floor = 1e-6 * float(_to_np(mag.max())) + 1e-30
    return spectrum / (xp.maximum(mag, floor) ** exponent)


def _noise_power(frames_ft, setup: OpticalSetup, otf: OTF, xp) -> float:
    """Mean noise power per Fourier pixel of one frame, from the region beyond the OTF cutoff.

    Falls back to the Poisson estimate when the sampling leaves no such region.
    """
    shape = frames_ft.shape[-2:]
    ky, kx = freq_grid(shape, setup.pixel_size_um, xp)
    k = radius(kx, ky, xp)
    power = out_of_band_power(frames_ft, k, otf.cutoff_per_um, xp)
    if power is not None:
        return power
    # Poisson: variance = mean counts per pixel; power = N * variance for an unnormalised FFT
    mean_counts = float(_to_np(xp.abs(frames_ft[:, 0, 0]).mean())) / (shape[0] * shape[1])
    return max(mean_counts, 1.0) * shape[0] * shape[1]


def _carrier_search_mask(shape, setup, otf, settings, prior_angle, xp) -> Any:
    ky, kx = freq_grid(shape, setup.pixel_size_um, xp)
    k = radius(kx, ky, xp)
    fc = otf.cutoff_per_um
    kmax = min(settings.search_max_fraction * fc, 0.98 * setup.nyquist_per_um)
    mask = (k >= settings.search_min_fraction * fc) & (k <= kmax)
    if prior_angle is not None:
        kp = 1000.0 / prior_angle.period_nm
        mask &= xp.abs(k - kp) <= settings.period_tolerance * kp
        ang = xp.degrees(xp.arctan2(ky, kx))
        d = (ang - prior_angle.angle_deg + 90.0) % 180.0 - 90.0  # either sign of the vector
        mask &= xp.abs(d) <= settings.angle_tolerance_deg
    return mask


#: fewest pattern periods across a field for the carrier search: the field's frequency grid
#: must resolve the carrier from its neighbours (a few pixels of spectrum around it)
MIN_PERIODS_ACROSS = 8


def _check_field_holds_the_pattern(
    shape: tuple[int, int], setup: OpticalSetup, otf: OTF, prior: SIMParameters | None
) -> None:
    """Refuse a field too small to find a pattern carrier in: fewer than
    :data:`MIN_PERIODS_ACROSS` periods of the prior's longest period (without priors, of the
    period at the detection cutoff, the finest a pattern can have and still be seen)."""
    if prior is not None:
        period_nm = max(a.period_nm for a in prior.angles)
    else:
        period_nm = 1000.0 / otf.cutoff_per_um
    across = min(shape) * setup.pixel_size_nm / period_nm
    if across < MIN_PERIODS_ACROSS:
        need = math.ceil(MIN_PERIODS_ACROSS * period_nm / setup.pixel_size_nm)
        raise ReconstructionError(
            f"the field of {shape[1]} x {shape[0]} pixels holds only {across:.1f} periods of a "
            f"{period_nm:.0f} nm pattern: too small to find its carrier; use at least "
            f"{need} x {need} pixels"
        )


def _empty_search_region(index: int, setup: OpticalSetup, prior: AngleParameters | None) -> str:
    """Why no frequency is left to search (the field's size is checked before)."""
    if prior is not None:
        return (
            f"angle {index}: the carrier search region is empty — the prior period "
            f"{prior.period_nm:.1f} nm lies outside what {setup.pixel_size_nm:g} nm pixels can "
            "sample (its frequency must be below the pixels' Nyquist frequency)"
        )
    return (
        f"angle {index}: the carrier search region is empty for {setup.pixel_size_nm:g} nm "
        "pixels: check the pixel size and the optics"
    )


class _HeldLog:
    """The messages of one angle's estimation, held back and logged by :meth:`release`: the
    angles are estimated on parallel threads, and their messages are told in angle order."""

    def __init__(self) -> None:
        self._records: list[tuple[int, str, tuple[Any, ...]]] = []

    def warning(self, message: str, *args: Any) -> None:
        self._records.append((logging.WARNING, message, args))

    def debug(self, message: str, *args: Any) -> None:
        self._records.append((logging.DEBUG, message, args))

    def release(self) -> None:
        for level, message, args in self._records:
            log.log(level, message, *args)
        self._records.clear()


def _say_if_clear_carrier_outside_window(
    corr: Any,
    annulus: Any,
    background: float,
    settings: EstimationSettings,
    dk: tuple[float, float],
    prior: AngleParameters,
    index: int,
    xp: Any,
    held: _HeldLog,
) -> None:
    """Warn when the whole search annulus holds a clear carrier that the prior's window left
    out: the priors then describe another pattern (a stale preset or calibration, a wrong
    magnification) and the pattern used in their place is not the one in the data."""
    ny, nx = corr.shape
    masked = xp.where(annulus, corr, 0)
    py, px = np.unravel_index(int(_to_np(xp.argmax(masked))), (ny, nx))
    confidence = float(_to_np(masked[py, px])) / max(background, 1e-30)
    if confidence < settings.min_confidence:
        return
    fy = py if py < ny / 2 else py - ny
    fx = px if px < nx / 2 else px - nx
    k = (fx * dk[1], fy * dk[0])
    angle = math.degrees(math.atan2(k[1], k[0]))
    angle += 180.0 * round((prior.angle_deg - angle) / 180.0)  # the prior's sign of the vector
    held.warning(
        "angle %d: the data hold a clear carrier (peak-to-noise %.1f) at about %.1f° / %.0f nm, "
        "outside the window around the prior pattern (%.1f° ± %g°, %.1f nm ± %g %%): the priors "
        "do not describe this data's pattern (a stale preset or calibration, another "
        "magnification?). Correct them, or leave them out to use the carrier found",
        index,
        confidence,
        angle,
        1000.0 / math.hypot(*k),
        prior.angle_deg,
        settings.angle_tolerance_deg,
        prior.period_nm,
        100 * settings.period_tolerance,
    )


def estimate_parameters(
    raw: Any,
    setup: OpticalSetup,
    *,
    n_angles: int = 3,
    n_phases: int = 3,
    prior: SIMParameters | None = None,
    otf: OTF | None = None,
    settings: EstimationSettings | None = None,
    backend: Backend | str | None = None,
    defects: DefectPixels | None = None,
) -> SIMParameters:
    """Estimate pattern wave vectors, per-frame phases and modulation depths.

    Parameters
    ----------
    raw : array (n_angles * n_phases, Y, X)
        One raw SIM set, angle-major, phase fastest (camera offset may be included).
    setup : OpticalSetup
        Detection optics and pixel size at the sample.
    prior : SIMParameters, optional
        Nominal pattern (e.g. from the pattern generator). Used as a search window, and as a
        fallback with a warning when a carrier is too weak to find.
    otf : OTF, optional
        Measured OTF (default: the ideal OTF of ``setup``).
    defects : DefectPixels, optional
        Hot and dead camera pixels to repair first (default: found on the frames estimated
        on, unless ``settings.repair_defects`` is off). A pipeline that reconstructs too finds
        them once and hands them to both.

    Returns
    -------
    SIMParameters
        One :class:`AngleParameters` per orientation with ``confidence`` (carrier peak-to-noise)
        and ``source`` ("estimated" or "prior").

    Raises
    ------
    ReconstructionError
        When a carrier cannot be found and no prior is given: the message says why.

    Examples
    --------
    >>> from scope.sim.samples import make_sample
    >>> from scope.sim.forward import simulate_raw
    >>> setup = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
    >>> truth = SIMParameters.equidistant([10, 70, 130], period_nm=260)
    >>> raw = simulate_raw(make_sample((256, 256), seed=3), truth, setup, rng=1)
    >>> est = estimate_parameters(raw, setup)
    >>> round(est.angles[0].period_nm)
    260
    """
    be = get_backend(backend)
    with be.single_threaded_blas():
        return _estimate_parameters(
            raw, setup, n_angles, n_phases, prior, otf, settings, be, defects
        )


def _estimate_parameters(
    raw: Any,
    setup: OpticalSetup,
    n_angles: int,
    n_phases: int,
    prior: SIMParameters | None,
    otf: OTF | None,
    settings: EstimationSettings | None,
    be: Backend,
    defects: DefectPixels | None,
) -> SIMParameters:
    xp = be.xp
    settings = settings or EstimationSettings()
    otf = otf or OTF.from_setup(setup)
    frames = xp.asarray(raw, dtype=xp.float32)
    n_frames = n_angles * n_phases
    if frames.ndim != 3 or frames.shape[0] != n_frames:
        raise DataFormatError(
            f"expected one SIM set of {n_angles} angles x {n_phases} phases = {n_frames} frames "
            f"shaped (frames, Y, X); got shape {tuple(frames.shape)}"
        )
    if prior is not None and (prior.n_angles != n_angles):
        raise DataFormatError(
            f"the prior describes {prior.n_angles} angles but the data has {n_angles}"
        )
    _check_field_holds_the_pattern(tuple(frames.shape[-2:]), setup, otf, prior)
    if settings.repair_defects and defects is not None and len(defects):
        if defects.shape != tuple(frames.shape[-2:]):
            raise DataFormatError(
                f"the defect pixels were found on {defects.shape} frames, these are "
                f"{tuple(frames.shape[-2:])}"
            )
        frames = defects.repaired(frames, xp)
    crop_origin = (0, 0)
    if settings.max_size and max(frames.shape[-2:]) > settings.max_size:
        # the parameters are global: estimate them on the central region (4x faster for 512^2
        # frames) and refer the phases back to pixel (0, 0) of the full frame
        ny0, nx0 = frames.shape[-2:]
        cy = min(ny0, settings.max_size) // 2 * 2
        cx = min(nx0, settings.max_size) // 2 * 2
        crop_origin = ((ny0 - cy) // 2, (nx0 - cx) // 2)
        frames = frames[
            :, crop_origin[0] : crop_origin[0] + cy, crop_origin[1] : crop_origin[1] + cx
        ]
    shape = tuple(frames.shape[-2:])
    if settings.repair_defects and defects is None:  # found on the region estimated on
        found = find_defect_pixels(be.to_numpy(frames), setup, otf=otf)
        frames = found.repaired(frames, xp)
    taper = edge_taper(shape, settings.taper_px or default_taper_px(shape), xp)
    # no mean subtraction: the strong DC of the 0 order is what makes the phase estimate
    # robust (it dominates the correlation of each frame with the shifted 0 order)
    frames_tapered = frames * taper
    frames_ft = be.fft.fft2(frames_tapered)
    h = _otf_grid(shape, setup, otf, xp)
    noise = _noise_power(frames_ft, setup, otf, xp)
    # OTF overlap of two orders for every shift; random phases in the overlap add up to its
    # square root, far larger for small shifts than for the carrier's
    overlap = xp.real(be.fft.fft2(xp.abs(be.fft.ifft2(h * h)) ** 2))
    mean_value = float(_to_np(frames.mean()))
    # each angle's mean frame (Fourier): the 0 order, plus what non-equidistant phase steps
    # leave of its own +-1 orders
    angle_means = frames_ft.reshape(n_angles, n_phases, *shape).mean(axis=1)
    ky, kx = freq_grid(shape, setup.pixel_size_um, xp)
    k_radius = radius(kx, ky, xp)
    # the sample's power law, for the phase fit's weights (one sample: measured once)
    sample_law = None
    if settings.weighted_phase_fit:
        sample_law = sample_power_law(
            angle_means.mean(axis=0), noise / n_frames, h, k_radius, otf.cutoff_per_um, xp
        )
    angles: list[Any] = [None] * n_angles
    held = [_HeldLog() for _ in range(n_angles)]

    def one_angle(a: int) -> None:
        sl = slice(a * n_phases, (a + 1) * n_phases)
        spec = _Spectra(
            frames_ft[sl],
            frames_tapered[sl],
            h,
            noise,
            overlap,
            taper,
            mean_value,
            k_radius,
        )
        # the 0 order seen by the other angles: the same widefield image, free of this angle's
        # +-1 orders whatever its phases are
        others = [b for b in range(n_angles) if b != a]
        widefield_others = angle_means[others].mean(axis=0)
        prior_a = prior.angles[a] if prior is not None else None
        angles[a] = _estimate_angle(
            spec,
            widefield_others,
            len(others) * n_phases,
            sample_law,
            setup,
            otf,
            settings,
            prior_a,
            a,
            be,
            held[a],
        )

    try:
        be.run_blocks(one_angle, n_angles)  # the angles on parallel threads (CPU)
    finally:
        for messages in held:
            messages.release()
    _check_distinct_orientations(angles)
    params = SIMParameters(tuple(angles), notes={"noise_power": noise})
    if crop_origin != (0, 0):  # phases at the crop's origin -> at the frame's pixel (0, 0)
        dx = setup.pixel_size_um
        params = params.seen_from((-crop_origin[0] * dx, -crop_origin[1] * dx))
    return params


#: two estimated carriers closer in orientation than this are one pattern orientation, degrees
SAME_ORIENTATION_DEG = 1.0


def _check_distinct_orientations(angles: list[AngleParameters]) -> None:
    """Refuse carriers of two angles that share one orientation: one pattern orientation cannot
    give two angles' carriers, so the frames were grouped otherwise than they were recorded
    (a 3 x 5 run read as 3 x 3, frames in another order). Only estimated carriers count."""
    found = [(i, a.angle_deg % 180.0) for i, a in enumerate(angles) if a.source == "estimated"]

    def message(i: int, j: int, apart: float) -> str:
        (ai_index, ai), (aj_index, aj) = found[i], found[j]
        return (
            f"angles {ai_index} and {aj_index} show one and the same pattern orientation "
            f"({ai:.1f}°, {aj:.1f}°): the frames are not grouped as they were recorded — check "
            "the angles x phases (--angles/--phases: a 3 x 5 run read as 3 x 3 looks like "
            "this) and the frame order (--frame-order)"
        )

    check_distinct_angles(
        [a for _, a in found],
        min_separation_deg=SAME_ORIENTATION_DEG,
        message=message,
        error=ReconstructionError,
    )


def _refine_carrier(k_start, c0, c1, spec, setup, otf, settings, be) -> tuple[float, float]:
    """Sub-pixel carrier: maximum of the matched-weight cross-correlation of the +1 and 0
    orders near ``k_start`` (two matrix-DFT zooms and a parabola)."""
    xp, fft = be.xp, be.fft
    ny, nx = spec.frames_ft.shape[-2:]
    dk = (1.0 / (ny * setup.pixel_size_um), 1.0 / (nx * setup.pixel_size_um))
    h = spec.otf
    w1 = _whiten(c1, settings.refine_whitening, xp)
    w0 = _whiten(c0, settings.refine_whitening, xp)
    k_est = k_start
    for _ in range(settings.refine_iterations):
        hs = _shifted_otf((ny, nx), setup, otf, k_est, xp)
        hs_plus = _shifted_otf((ny, nx), setup, otf, (-k_est[0], -k_est[1]), xp)
        x_ = fft.ifft2(w1 * h * hs)
        y_ = fft.ifft2(w0 * h * hs_plus)
        q = x_ * xp.conj(y_)
        ry, rx = _refine_peak(q, (k_est[1] / dk[0], k_est[0] / dk[1]), xp)
        k_est = (rx * dk[1], ry * dk[0])
    return k_est


def _zero_order_gain(
    spectrum: Any, noise_power: float, otf: Any, k_radius: Any, pixel_size_um: float, xp
) -> Any:
    """Wiener gain ``1 - N / P(|k|)`` of a noisy 0-order spectrum, clipped to [0, 1]: ``P`` its
    power averaged over rings one frequency step wide, ``N`` the white noise power per Fourier
    pixel (``k_radius``: each pixel's |k|); 0 where the OTF is 0 (only noise there), 1 at DC."""
    shape = spectrum.shape
    step = 1.0 / (max(shape) * pixel_size_um)
    ring = xp.rint(k_radius / step).astype(xp.int64).ravel()
    power = xp.bincount(ring, weights=(xp.abs(spectrum) ** 2).ravel().astype(xp.float64))
    count = xp.bincount(ring)
    mean_power = (power / xp.maximum(count, 1))[ring].reshape(shape)
    gain = xp.clip(1.0 - noise_power / xp.maximum(mean_power, 1e-30), 0.0, 1.0)
    gain = xp.where(otf > 0, gain, 0.0).astype(xp.float32)
    gain[0, 0] = 1.0
    return gain


class _PhaseTemplate:
    """What the frame-phase fit of one angle needs whatever the carrier (see
    :func:`_frame_phases`): the sample estimated from the 0 order, in real space, and each
    frame less the 0 order.

    The 0 order comes from the other angles' frames (``widefield_others``, the FFT of the mean
    of ``n_frames_others`` tapered frames) and is subtracted from every frame of this angle, so
    its noise enters every frame's fit. It is subtracted as its Wiener (MMSE) estimate: the
    noise is white, the signal falls off towards the cutoff (:func:`_zero_order_gain`).

    With ``EstimationSettings.weighted_phase_fit`` (the default) the fit is a weighted least
    squares in Fourier space, each frequency weighted by the inverse of its error variance in
    the model ``frame - 0 order = z c+ + z* c-``: the frame's noise, the subtracted 0 order's
    noise, and ``|z|^2 H^2`` times the error of the sample estimate at the two shifted
    frequencies ``k -+ p`` — its noise where it is known, the sample's whole power beyond the
    detection band where the 0 order cannot know it. The sample is then the MMSE estimate
    from the 0 order, ``H / (H^2 + max(N0 / P_S, floor))`` with the sample's power law ``P_S``
    fitted to it (the floor stands for the 0 order's own model error: the taper's convolution,
    which noise-free frames expose). The unweighted fit against a fixed-regulariser template
    still gives the carrier's slope correction and the phases the modulation is measured
    with (the weighted fit's slope reads the period worse), and is the whole fit without a
    fitted power law or with the setting off. Measured on the simulated acceptance case
    (``reconstruction/benchmarks/estimation_accuracy.py``, 5 seeds x 8 draws; RESULTS.md): the
    frames' phase scatter falls from 0.0249 to 0.0234 rad at 60 photons, 0.0120 to 0.0110 at
    400, 0.0084 to 0.0061 at 2000, and from 0.0078 to 0.0020 without noise.
    """

    def __init__(self, spec, widefield_others, n_frames_others, sample_law, setup, settings, be):
        xp = be.xp
        h = spec.otf
        k = spec.k_radius
        self.otf, self.be, self._setup = h, be, setup
        dc_ratio = float(
            _to_np(xp.real(spec.frames_ft[:, 0, 0].mean()) / xp.real(widefield_others[0, 0]))
        )
        w0 = widefield_others * dc_ratio
        self._noise0 = spec.noise_power * dc_ratio**2 / n_frames_others  # of w0, per pixel
        self._law = None
        if settings.weighted_phase_fit and sample_law is not None:
            self._law = (sample_law[0] * dc_ratio**2, sample_law[1])
        half = h.shape[-1] // 2 + 1  # the images are real: half their spectra holds them

        def real_image(spectrum):
            return be.fft.irfft2(spectrum[..., :half], s=h.shape).astype(xp.float32)

        self.sample = real_image(w0 * h / (h * h + settings.template_regularization))
        if self._law is not None:
            self._floor = settings.template_regularization_floor
            self._mmse_sample = real_image(w0 * self._sample_filter(h, k))
            self._error = self._sample_error(h, k).astype(xp.float32)
        gain = 1.0
        if settings.denoise_zero_order:
            gain = _zero_order_gain(w0, self._noise0, h, k, setup.pixel_size_um, xp)
            w0 = w0 * gain
        self.residuals = spec.frames_tapered - real_image(w0)
        if self._law is not None:
            self._half = half
            self._residuals_ft = (spec.frames_ft - w0)[..., :half]
            self._fixed_variance = spec.noise_power + gain * gain * self._noise0

    @property
    def weighted(self) -> bool:
        return self._law is not None

    def _sample_power(self, k) -> Any:
        return power_law(k, *self._law, self.be.xp)

    def _sample_filter(self, h, k) -> Any:
        """The MMSE filter that takes the 0 order to the sample."""
        xp = self.be.xp
        return h / (h * h + xp.maximum(self._noise0 / self._sample_power(k), self._floor))

    def _sample_error(self, h, k) -> Any:
        """The sample estimate's error power where the transfer is ``h`` and the frequency
        magnitude ``k``: its noise, and what the filter leaves out of the sample."""
        g = self._sample_filter(h, k)
        return (1 - g * h) ** 2 * self._sample_power(k) + g * g * self._noise0

    def _shifted(self, grid, shift) -> Any:
        """``grid`` (on the frame's frequency grid) at ``k - shift``, to the nearest pixel."""
        ny, nx = grid.shape
        dx = self._setup.pixel_size_um
        steps = (round(shift[1] * ny * dx), round(shift[0] * nx * dx))
        return self.be.xp.roll(grid, steps, axis=(0, 1))

    def fit(self, ramp, k, order_amplitude: float | None = None) -> _PlusOrderFit:
        """The fit against the +1 order predicted for the carrier ``k`` (``ramp`` its plane
        wave): ``H(k) S(k - p)``, in real space; weighted for orders of ``order_amplitude``
        (both sides filtered by the square root of the weights), or unweighted with the
        fixed-regulariser template when that is None."""
        fft, xp = self.be.fft, self.be.xp
        h = self.otf
        if order_amplitude is None or not self.weighted:
            cp = fft.ifft2(h * fft.fft2(self.sample * ramp))
            return _PlusOrderFit(xp.real(cp), xp.imag(cp), self.residuals, xp)
        # the sample's error at k - p and k + p: the weights need no sub-pixel shift
        model_error = self._shifted(self._error, k) + self._shifted(self._error, (-k[0], -k[1]))
        variance = self._fixed_variance + order_amplitude**2 * h * h * model_error
        root_weight = (1.0 / xp.sqrt(variance)).astype(xp.float32)
        cp = fft.ifft2(root_weight * h * fft.fft2(self._mmse_sample * ramp))
        residuals = fft.irfft2(root_weight[:, : self._half] * self._residuals_ft, s=h.shape)
        return _PlusOrderFit(xp.real(cp), xp.imag(cp), residuals.astype(xp.float32), xp)


class _PlusOrderFit:
    """Least squares of each frame less the 0 order, ``d_n``, against ``2 Re(z_n c+)`` with
    ``c+ = a + i b`` the predicted +1 order: ``d_n = 2 (x a - y b)``, ``z_n = x + i y``. The
    sums the normal equations need add up over regions of the field (:meth:`sums`)."""

    def __init__(self, a, b, residuals, xp):
        self._a, self._b, self._residuals, self._xp = a, b, residuals, xp
        self.whole = self.sums(slice(None), slice(None))

    def sums(self, rows: slice, cols: slice) -> np.ndarray:
        """``a.a, b.b, a.b``, then ``d_n.a`` and ``d_n.b`` of every frame, over the pixels
        ``[rows, cols]``."""
        xp = self._xp
        a_, b_ = self._a[rows, cols], self._b[rows, cols]
        d = self._residuals[:, rows, cols]
        dot = "ij,ij->"
        pairs = xp.stack([xp.einsum(dot, a_, a_), xp.einsum(dot, b_, b_), xp.einsum(dot, a_, b_)])
        ra = xp.einsum("nij,ij->n", d, a_)
        rb = xp.einsum("nij,ij->n", d, b_)
        return np.concatenate([_to_np(v).astype(np.float64) for v in (pairs, ra, rb)])

    @staticmethod
    def amplitudes(sums: np.ndarray) -> np.ndarray:
        """``z_n = a e^{i phi_n}`` of every frame from the :meth:`sums` of a region."""
        saa, sbb, sab = sums[:3]
        n = (len(sums) - 3) // 2
        mat = np.array([[saa, -sab], [-sab, sbb]]) * 2.0
        x_, y_ = np.linalg.solve(mat, np.stack([sums[3 : 3 + n], -sums[3 + n :]]))
        return x_ + 1j * y_

    def centre_px(self, rows: slice, cols: slice) -> tuple[float, float]:
        """(y, x) in pixels where a fit over ``[rows, cols]`` measures the phase: the centroid
        of the predicted +1 order's power there (a sparse sample's signal may sit off the
        middle of the region)."""
        xp = self._xp
        a_, b_ = self._a[rows, cols], self._b[rows, cols]
        power = a_ * a_ + b_ * b_
        ny, nx = self._a.shape
        y = xp.arange(ny, dtype=xp.float32)[rows]
        x = xp.arange(nx, dtype=xp.float32)[cols]
        total = float(_to_np(xp.sum(power)))
        if not total > 0:
            return float(_to_np(y.mean())), float(_to_np(x.mean()))
        cy = float(_to_np(xp.sum(power.sum(axis=1) * y))) / total
        cx = float(_to_np(xp.sum(power.sum(axis=0) * x))) / total
        return cy, cx


def _frame_phases(
    template: _PhaseTemplate, ramp, k, order_amplitude: float | None = None
) -> tuple[np.ndarray, _PlusOrderFit]:
    """Per-frame phases by a matched filter.

    Each frame minus the 0 order (taken from the other angles' frames, so it is free of this
    angle's ±1 orders whatever their phases) is projected on the predicted +1 order
    H(k) S(k - p), with S an estimate from the 0 order; the weak -1 order cross-talk is
    solved jointly (Wicker et al. 2013 use the same information through auto-correlations).
    Least squares: frame - 0 order = 2 Re(z_n c+(r)), z_n = a e^{i phi_n} (the -1 order is the
    conjugate of the +1 order in real space, so it is included exactly), with frequencies
    weighted by the fit's own error (see :class:`_PhaseTemplate`; Poisson weights in real
    space and leaving out the orders' overlap were tried and did worse).

    Returns the phases and the fit (for :func:`_slope_correction`).
    """
    fit = template.fit(ramp, k, order_amplitude)
    return np.unwrap(np.angle(fit.amplitudes(fit.whole))), fit


def _slope_correction(
    fit: _PlusOrderFit, shape: tuple[int, int], setup: OpticalSetup
) -> tuple[float, float] | None:
    """The carrier's error ``(dkx, dky)`` in cycles/µm from the phase slope across the field.

    The +1 order fitted in the left and the right half of the field (and in the top and the
    bottom half) has phases that differ by ``2 pi dk . d``, ``d`` the distance between where
    the two fits measure (:meth:`_PlusOrderFit.centre_px`), when the ramp's carrier is off by
    ``dk`` (Kay 1989: a frequency from phase differences). All frames' amplitudes are summed
    coherently. None when a correction would be more than a quarter of a frequency bin (the
    refinement before is better than that, so one half holds too little of the pattern to
    tell, e.g. a sample on one side only).
    """
    ny, nx = shape
    dk = []
    for axis, n_px, first, second in (
        (1, nx, (slice(None), slice(0, nx // 2)), (slice(None), slice(nx // 2, nx))),
        (0, ny, (slice(0, ny // 2), slice(None)), (slice(ny // 2, ny), slice(None))),
    ):
        sums_first = fit.sums(*first)
        z_first = fit.amplitudes(sums_first)
        z_second = fit.amplitudes(fit.whole - sums_first)  # the sums add up over the halves
        dphi = float(np.angle(np.sum(z_second * np.conj(z_first))))
        distance_px = fit.centre_px(*second)[axis] - fit.centre_px(*first)[axis]
        if not distance_px > 0:
            return None
        dk.append(dphi / (2 * math.pi * distance_px * setup.pixel_size_um))
        if abs(dk[-1]) > 0.25 / (n_px * setup.pixel_size_um):
            return None
    return dk[0], dk[1]


def _modulation(spec, phases, k_est, ramp, setup, otf, index, be, held) -> float:
    """The modulation depth: twice the ratio of the +1 order to the 0 order shifted by the
    carrier, least squares in their overlap, with the 0 order's noise power subtracted."""
    xp, fft = be.xp, be.fft
    h = spec.otf
    ny, nx = h.shape
    sep = xp.asarray(separation_matrix(phases).astype(np.complex64))
    c1 = _combine(sep[1], spec.frames_ft)
    hs = _shifted_otf((ny, nx), setup, otf, k_est, xp)
    # the constant part (background, mean) is removed from the 0 order: through the taper its
    # spectrum leaks beyond the excluded disc around DC and would lower the modulation
    c0_real = _combine(sep[0], spec.frames_tapered) - spec.mean_value * spec.taper
    y_ = fft.fft2(c0_real * ramp) * h  # C0(k - p) H(k)
    x_ = c1 * hs  # C+(k) H(k - p)
    ky, kx = freq_grid((ny, nx), setup.pixel_size_um, xp)
    k_rel = radius(kx - k_est[0], ky - k_est[1], xp)
    overlap = (h * hs > 0.02) & (k_rel > 0.1 * otf.cutoff_per_um)
    noise0 = spec.noise_power * float(np.sum(np.abs(_to_np(sep[0])) ** 2))
    num = float(_to_np(xp.real(xp.sum((x_ * xp.conj(y_))[overlap]))))
    den = float(_to_np(xp.sum((xp.abs(y_) ** 2)[overlap]) - noise0 * xp.sum((h * h)[overlap])))
    modulation = 2.0 * num / den if den > 0 else float("nan")
    if not np.isfinite(modulation) or modulation <= 0:
        held.warning("angle %d: modulation could not be measured; assuming 0.5", index)
        modulation = 0.5
    elif modulation > 1.05:
        held.warning(
            "angle %d: measured modulation %.2f exceeds 1, which no pattern can have: the signal "
            "in the orders' overlap is too low to measure it (the reconstruction uses 1)",
            index,
            modulation,
        )
    return float(modulation)


def _estimate_angle(
    spec: _Spectra,
    widefield_others: Any,
    n_frames_others: int,
    sample_law: tuple[float, float] | None,
    setup: OpticalSetup,
    otf: OTF,
    settings: EstimationSettings,
    prior: AngleParameters | None,
    index: int,
    be: Backend,
    held: _HeldLog,
) -> AngleParameters:
    xp, fft = be.xp, be.fft
    n = spec.frames_ft.shape[0]
    ny, nx = spec.frames_ft.shape[-2:]
    dk = (1.0 / (ny * setup.pixel_size_um), 1.0 / (nx * setup.pixel_size_um))  # (ky, kx) steps
    nominal = 2 * np.pi * np.arange(n) / n
    sep = xp.asarray(separation_matrix(nominal).astype(np.complex64))
    c0 = _combine(sep[0], spec.frames_ft)
    c1 = _combine(sep[1], spec.frames_ft)
    h = spec.otf

    # 1. coarse carrier: whitened cross-correlation of the +1 and 0 orders at all integer
    #    shifts (phase correlation: natural samples have broad spectral autocorrelations that
    #    would otherwise pull the maximum towards small shifts)
    w1 = _whiten(c1, settings.whitening, xp)
    w0 = _whiten(c0, settings.whitening, xp)
    u = fft.ifft2(w1 * h)
    v = fft.ifft2(w0 * h)
    corr = xp.abs(fft.fft2(u * xp.conj(v)))
    # divide by the noise level of each shift (see estimate_parameters)
    overlap = spec.overlap
    corr = corr / xp.sqrt(xp.maximum(overlap, 1e-30))
    mask = _carrier_search_mask((ny, nx), setup, otf, settings, prior, xp)
    # shifts whose OTF overlap is tiny carry no usable signal (and a noisy ratio)
    # (a prior's narrow window may reach further out, where carriers beyond the cutoff live)
    min_overlap = 3e-3 if prior is None else 1e-4
    mask &= overlap > min_overlap * float(_to_np(overlap.max()))
    if not bool(_to_np(mask.any())):
        raise ReconstructionError(_empty_search_region(index, setup, prior))
    masked = xp.where(mask, corr, 0)
    peak_flat = int(_to_np(xp.argmax(masked)))
    py, px = np.unravel_index(peak_flat, (ny, nx))
    peak = float(_to_np(masked[py, px]))
    # the noise level comes from the whole annulus, not from a prior's small window (which is
    # mostly the peak's own neighbourhood)
    annulus = _carrier_search_mask((ny, nx), setup, otf, settings, None, xp)
    annulus &= overlap > 3e-3 * float(_to_np(overlap.max()))
    ring = corr[annulus] if bool(_to_np(annulus.any())) else corr[mask]
    background = float(_to_np(xp.median(ring)))
    confidence = peak / max(background, 1e-30)
    fy = py if py < ny / 2 else py - ny
    fx = px if px < nx / 2 else px - nx
    k_coarse = (fx * dk[1], fy * dk[0])
    kmag = math.hypot(*k_coarse)
    source = "estimated"
    if confidence < settings.min_confidence:
        candidate = (
            f"best candidate {1000 / kmag:.1f} nm at "
            f"{math.degrees(math.atan2(k_coarse[1], k_coarse[0])):.1f}° vs the detection cutoff "
            f"period {1000 / otf.cutoff_per_um:.1f} nm"
            if kmag > 0
            else "no candidate at all (the orders hold no signal)"
        )
        why = (
            # two decimals: 4.96 against a threshold of 5 must not read "5.0 < 5.0"
            f"angle {index}: no clear pattern carrier (peak-to-noise {confidence:.2f} < "
            f"{settings.min_confidence:g}); {candidate}. The modulation is too weak, the signal "
            "too low, or the carrier lies at or beyond the detection cutoff"
        )
        if prior is None:
            raise ReconstructionError(
                why + ": give the nominal pattern as priors (e.g. --prior-angles/--prior-period "
                "or a preset) to reconstruct with it"
            )
        held.warning("%s: using the prior pattern instead", why)
        _say_if_clear_carrier_outside_window(
            corr, annulus, background, settings, dk, prior, index, xp, held
        )
        kp = prior.k_per_um
        # the prior's sign is ambiguous: take the sign whose correlation is larger
        cands = [kp, (-kp[0], -kp[1])]
        q = u * xp.conj(v)
        vals = [
            abs(_local_dtft(q, (c[1] / dk[0], c[0] / dk[1]), 0.0, 1, xp)[0][0, 0]) for c in cands
        ]
        k_est = cands[int(np.argmax([float(_to_np(x)) for x in vals]))]
        source = "prior"
    else:
        # 2. sub-pixel refinement with matched weights (centred on the current estimate)
        k_est = _refine_carrier(k_coarse, c0, c1, spec, setup, otf, settings, be)

    # 3. per-frame phases (see _frame_phases)
    ramp = _phase_ramp((ny, nx), setup, k_est, xp, +1.0)  # exp(+2 pi i p.r)
    template = _PhaseTemplate(
        spec, widefield_others, n_frames_others, sample_law, setup, settings, be
    )
    phases, fit = _frame_phases(template, ramp, k_est)

    # 4. the carrier corrected by the phases' slope across the field (from the unweighted fit:
    #    the weighted one's slope reads the period worse), and the phases with it (fitted
    #    again, or, when a weighted fit follows, moved to the new carrier for the modulation)
    dk_slope = (
        _slope_correction(fit, (ny, nx), setup)
        if settings.slope_correction and source == "estimated"
        else None
    )
    if dk_slope is not None:
        k_est = (k_est[0] + dk_slope[0], k_est[1] + dk_slope[1])
        ramp = _phase_ramp((ny, nx), setup, k_est, xp, +1.0)
        if template.weighted:  # the same phases where the fit measures, referred to (0, 0)
            cy, cx = fit.centre_px(slice(None), slice(None))
            shift = dk_slope[0] * cx + dk_slope[1] * cy
            phases = phases - 2 * math.pi * shift * setup.pixel_size_um
        else:
            phases, _ = _frame_phases(template, ramp, k_est)
    elif settings.slope_correction and source == "estimated":
        held.debug("angle %d: no slope correction (one half of the field too weak)", index)

    # 5. modulation depth from the overlap of the +1 order with the shifted 0 order (with
    #    the unweighted fit's phases)
    modulation = _modulation(spec, phases, k_est, ramp, setup, otf, index, be, held)
    if template.weighted:  # 6. the phases again, weighted for orders of that amplitude
        phases, _ = _frame_phases(template, ramp, k_est, min(modulation, 1.0) / 2)
    result = AngleParameters.from_k(
        float(k_est[0]),
        float(k_est[1]),
        phases_rad=tuple(float(p) for p in phases),
        modulation=float(modulation),
        confidence=float(confidence),
        source=source,
    )
    held.debug(
        "angle %d: %.2f°, period %.1f nm, modulation %.2f, confidence %.1f (%s)",
        index,
        result.angle_deg,
        result.period_nm,
        result.modulation,
        confidence,
        source,
    )
    return result
