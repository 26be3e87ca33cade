"""Fourier-space building blocks shared by estimation and reconstruction.

Grids are in cycles/µm. A raw image of ``(ny, nx)`` pixels of size ``dx`` µm has frequency
steps ``1/(ny dx)`` and ``1/(nx dx)``; the 2x SIM grid ``(2ny, 2nx)`` with pixels ``dx/2`` has
the same steps, so a raw spectrum sits unchanged inside the SIM spectrum (zero-padding).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scope.errors import ReconstructionError


def freq_grid(
    shape: tuple[int, int], pixel_size_um: float, xp: Any = np, *, rfft: bool = False
) -> tuple[Any, Any]:
    """Frequency coordinates (ky, kx) in cycles/µm, broadcastable, in FFT order."""
    ny, nx = shape
    ky = np.fft.fftfreq(ny, pixel_size_um)[:, None]
    kx = (np.fft.rfftfreq if rfft else np.fft.fftfreq)(nx, pixel_size_um)[None, :]
    return xp.asarray(ky), xp.asarray(kx)


def radius(kx: Any, ky: Any, xp: Any = np) -> Any:
    """``sqrt(kx^2 + ky^2)`` for broadcastable grids (several times faster than ``hypot``)."""
    return xp.sqrt(kx * kx + ky * ky)


def plane_wave(
    k_per_um: tuple[float, float], y_um: Any, x_um: Any, xp: Any = np, sign: float = -1.0
) -> Any:
    """``exp(sign 2 pi i (kx x + ky y))`` as the outer product of two 1D factors, complex64.

    ``y_um`` (Y, 1) and ``x_um`` (1, X) are broadcastable coordinates; one complex
    exponential per row and column instead of one per pixel.
    """
    kx, ky = k_per_um
    ey = xp.exp(sign * 2j * np.pi * ky * y_um).astype(xp.complex64)
    ex = xp.exp(sign * 2j * np.pi * kx * x_um).astype(xp.complex64)
    return ey * ex


def pixel_coordinates_um(
    shape: tuple[int, int], pixel_size_um: float, xp: Any = np, *, origin_px: float = 0.0
) -> tuple[Any, Any]:
    """Pixel-centre coordinates (y, x) in µm, broadcastable.

    ``origin_px`` shifts the origin: pixel ``j`` sits at ``(j - origin_px) * pixel_size_um``.
    """
    ny, nx = shape
    y = (np.arange(ny) - origin_px)[:, None] * pixel_size_um
    x = (np.arange(nx) - origin_px)[None, :] * pixel_size_um
    return xp.asarray(y), xp.asarray(x)


def edge_taper(shape: tuple[int, int], width_px: int, xp: Any = np) -> Any:
    """Separable window: 1 inside, a cosine fall-off to 0 over ``width_px`` at each edge.

    Tapering the raw frames before any FFT removes the cross of edge artefacts that periodic
    boundaries produce (Müller et al. 2016, fairSIM).
    """

    def ramp(n: int) -> np.ndarray:
        w = np.ones(n)
        k = int(min(width_px, n // 4))
        if k > 0:
            t = (np.arange(k) + 0.5) / k
            edge = 0.5 - 0.5 * np.cos(np.pi * t)
            w[:k] = edge
            w[n - k :] = edge[::-1]
        return w

    ny, nx = shape
    return xp.asarray((ramp(ny)[:, None] * ramp(nx)[None, :]).astype(np.float32))


def default_taper_px(shape: tuple[int, int]) -> int:
    """Taper width used by default: 1/16 of the smaller side, between 4 and 32 pixels."""
    return int(np.clip(min(shape) // 16, 4, 32))


def separation_matrix(phases_rad: Any) -> np.ndarray:
    """Pseudo-inverse that separates the 0, +1 and -1 orders of one pattern orientation.

    Raw frame ``n`` is ``D_n = C0 + exp(i phi_n) C+ + exp(-i phi_n) C-``; this returns the
    (3, n_phases) complex matrix ``P`` with ``[C0, C+, C-] = P @ D``. Works for any
    ``n_phases >= 3`` and any (non-equidistant) steps (Wicker et al. 2013).

    Raises
    ------
    ReconstructionError
        When the phases cannot separate the orders (e.g. two equal phases out of three).
    """
    ph = np.asarray(phases_rad, dtype=np.float64)
    m = np.stack([np.ones_like(ph), np.exp(1j * ph), np.exp(-1j * ph)], axis=1)
    cond = np.linalg.cond(m)
    if not np.isfinite(cond) or cond > 1e3:
        raise ReconstructionError(
            f"phase steps {np.round(ph, 3).tolist()} rad cannot separate the orders (matrix "
            f"condition {cond:.3g}): the phases of one angle must be distinct, ideally 2π/N apart"
        )
    return np.linalg.pinv(m)


def out_of_band_power(
    spectra: Any, k_per_um: Any, cutoff_per_um: float, xp: Any = np
) -> float | None:
    """Mean power per Fourier pixel beyond 1.1x the OTF cutoff, where only noise lives.

    ``spectra`` is (..., Y, X') with frequency magnitudes ``k_per_um`` (full or rfft grid).
    Returns None when the sampling leaves less than 5 % of the pixels out there (pixels close
    to Nyquist), so callers fall back to a model of the noise.
    """
    outside = k_per_um > 1.1 * cutoff_per_um
    if float(outside.mean()) <= 0.05:
        return None
    return float(xp.mean(xp.abs(spectra[..., outside]) ** 2))
