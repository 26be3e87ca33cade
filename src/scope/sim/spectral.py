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


class SmoothComponent:
    """The smooth part of Moisan's periodic-plus-smooth decomposition, from an image's borders.

    An image ``u`` is split into ``p + s``: ``p`` has the same content as ``u`` but no jumps
    across its periodic boundaries, so its FFT has none of the cross of edge artefacts, and
    ``s`` is smooth. ``s`` depends only on the jumps between opposite borders: its spectrum is
    ``(E_y A + B E_x) / L`` with ``A``, ``B`` the 1D FFTs of those jumps, ``E`` the phase
    factors of one-pixel differences and ``L`` the periodic discrete Laplacian — two outer
    products, no 2D FFT. Unlike a taper it leaves every pixel's content in place (Moisan,
    "Periodic plus smooth image decomposition", J. Math. Imaging Vis. 39, 161 (2011)).

    Parameters
    ----------
    shape : (int, int)
        Image shape (Y, X); the spectra are in ``rfft2`` layout (Y, X // 2 + 1) for real
        images, or in ``fft2`` layout (Y, X) with ``complex_images``.
    """

    def __init__(self, shape: tuple[int, int], xp: Any = np, *, complex_images: bool = False):
        ny, nx = shape
        self.complex_images = complex_images
        q = 2 * np.pi * np.fft.fftfreq(ny)[:, None]
        r = 2 * np.pi * (np.fft.fftfreq if complex_images else np.fft.rfftfreq)(nx)[None, :]
        lap = 2 * np.cos(q) + 2 * np.cos(r) - 4
        lap[0, 0] = 1.0
        inv = 1.0 / lap
        inv[0, 0] = 0.0  # s has no mean
        self.shape = (ny, nx)
        self.inverse_laplacian = xp.asarray(inv.astype(np.float32))
        self._ey = xp.asarray((1 - np.exp(1j * q)).astype(np.complex64))
        self._ex = xp.asarray((1 - np.exp(1j * r)).astype(np.complex64))
        self._xp = xp

    def border_spectra(self, image: Any) -> tuple[Any, Any]:
        """1D spectra of the jumps between the last and first row, and column (of each image of
        a stack ``(..., Y, X)``)."""
        xp = self._xp
        row_fft = xp.fft.fft if self.complex_images else xp.fft.rfft
        a = row_fft(image[..., -1, :] - image[..., 0, :], axis=-1).astype(xp.complex64)
        b = xp.fft.fft(image[..., :, -1] - image[..., :, 0], axis=-1).astype(xp.complex64)
        return a, b

    def spectrum(
        self,
        borders: tuple[Any, Any],
        rows: slice = slice(None),
        cols: slice = slice(None),
        weight: Any = None,
    ):
        """The block ``[rows, cols]`` of the rfft2 of ``s``, times ``weight`` if given.

        ``weight`` (the same block) replaces the inverse Laplacian: pass
        ``inverse_laplacian * w`` to get ``s * w`` in one pass. Borders of a stack of images
        give the blocks of all of them, ``(..., rows, cols)``.
        """
        a, b = borders
        factor = self.inverse_laplacian[rows, cols] if weight is None else weight
        ey, ex = self._ey[rows], self._ex[:, cols]
        return (ey * a[..., None, cols] + b[..., rows, None] * ex) * factor

    def split(self, image: Any) -> tuple[Any, Any]:
        """(periodic part, smooth part) of a 2D image, in real space (for inspection)."""
        xp = self._xp
        s_hat = self.spectrum(self.border_spectra(image))
        if self.complex_images:
            s = xp.fft.ifft2(s_hat).astype(image.dtype)
        else:
            s = xp.fft.irfft2(s_hat, s=self.shape).astype(image.dtype)
        return image - s, s


def add_upsampled_2x(out: Any, padded: Any, rows: slice, xp: Any = np, chunk: int = 32) -> None:
    """Add an image, linearly interpolated onto the 2x grid, to rows ``2 * rows`` of ``out``.

    ``padded`` is the camera-grid image with one edge-replicated pixel around it (``pad(s, 1,
    mode="edge")``); ``out`` is ``(2Y, 2X)``, output pixel ``(2i + a, 2j + b)`` centred a
    quarter of a camera pixel before (``a, b = 0``) or after (``1``) the centre of camera pixel
    ``(i, j)``: weights 3/4 for that pixel and 1/4 for its neighbour on that side, in each
    direction. Real space, so nothing wraps from one edge to the other; ``rows`` lets
    :meth:`Backend.run_blocks` split the work, done ``chunk`` rows at a time (in cache).
    """
    n = padded.shape[1] - 2
    out3 = out.reshape(out.shape[0] // 2, 2, out.shape[1])
    for r0 in range(rows.start, rows.stop, chunk):
        r1 = min(r0 + chunk, rows.stop)
        band = padded[r0 : r1 + 2]  # the chunk's rows and one on either side
        along_x = xp.empty((r1 - r0 + 2, n, 2), xp.float32)
        middle = 0.75 * band[:, 1:-1]
        xp.add(middle, 0.25 * band[:, :-2], out=along_x[..., 0])
        xp.add(middle, 0.25 * band[:, 2:], out=along_x[..., 1])
        along_x = along_x.reshape(r1 - r0 + 2, 2 * n)
        quarter = 0.25 * along_x
        centre = along_x[1:-1] - quarter[1:-1]  # 3/4
        rows_out = centre + quarter[:-2]  # built in cache, added to the image in one pass
        out3[r0:r1, 0] += rows_out
        xp.add(centre, quarter[2:], out=rows_out)
        out3[r0:r1, 1] += rows_out


def default_taper_px(shape: tuple[int, int]) -> int:
    """Taper width used by default: 1/16 of the smaller side, between 4 and 32 pixels."""
    return int(np.clip(min(shape) // 16, 4, 32))


def separable_without(n_angles: int, n_phases: int, missing: Any) -> bool:
    """Whether a set's orders can still be separated with the frames ``missing`` (indices,
    angle-major, phase fastest) left out: every angle keeps at least 2 frames and one keeps at
    least 3 (an angle with 2 takes its zero order from the complete ones; see
    :class:`~scope.sim.reconstruct.SIMReconstructor`'s ``missing_frames``)."""
    gone = {int(i) for i in missing}
    kept = [n_phases - sum(a * n_phases + p in gone for p in range(n_phases))
            for a in range(n_angles)]  # fmt: skip
    return min(kept) >= 2 and max(kept) >= 3


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
            f"condition {cond:.3g}): the phases of one angle must be distinct, ideally 2π/N "
            "apart; nearly equal phases come from frames in another order (a file holding each "
            "set phase-major, all angles at one phase then the next: --frame-order phase-major)"
        )
    return np.linalg.pinv(m)


#: band of a widefield spectrum (fractions of the cutoff) where the sample's power law is fitted:
#: its upper part, nearest to the frequencies where the fit is extrapolated (a diffuse
#: background steepens the spectrum at low frequencies and would under-weight fine detail)
FIT_LOW, FIT_HIGH = 0.3, 0.85


def sample_power_law(
    spectrum: Any,
    noise_power: float,
    transfer: Any,
    k_per_um: Any,
    cutoff_per_um: float,
    xp: Any = np,
) -> tuple[float, float] | None:
    """``(amplitude, exponent)`` of the sample's power spectrum ``amplitude * k**-exponent``.

    From a widefield spectrum ``|C0|^2 = |S|^2 H^2 + noise`` (``noise_power`` the white noise
    per Fourier pixel of ``spectrum``, ``transfer`` H on the same grid as ``k_per_um``): the
    median of the positive values of ``(|C0|^2 - noise) / H^2`` in radial bins of the band
    ``FIT_LOW..FIT_HIGH`` of the cutoff where H > 0.08 (medians: robust to carrier peaks), then
    a line in log-log. The exponent is clipped to [0.5, 4]. None when fewer than 4 bins hold
    more than 8 values above the noise.
    """
    fc = cutoff_per_um
    band = (k_per_um > FIT_LOW * fc) & (k_per_um < FIT_HIGH * fc) & (transfer > 0.08)
    ps = (xp.abs(spectrum) ** 2 - noise_power) / xp.maximum(transfer * transfer, 1e-6)
    kk, pp = (a.get() if hasattr(a, "get") else np.asarray(a) for a in (k_per_um[band], ps[band]))
    if kk.size == 0:
        return None
    edges = np.linspace(kk.min(), kk.max(), 25)
    idx = np.digitize(kk, edges)
    lk, lp = [], []
    for i in range(1, len(edges)):
        sel = (idx == i) & (pp > 0)
        if sel.sum() > 8:
            lk.append(np.log(np.median(kk[sel])))
            lp.append(np.log(np.median(pp[sel])))
    if len(lk) < 4:
        return None
    slope, intercept = np.polyfit(lk, lp, 1)
    return float(np.exp(intercept)), float(np.clip(-slope, 0.5, 4.0))


def power_law(k_per_um: Any, amplitude: float, exponent: float, xp: Any = np) -> Any:
    """``amplitude * k**-exponent`` (a :func:`sample_power_law` fit) at ``k_per_um``, with
    ``k`` held above 1e-3 cycles/µm so DC stays finite."""
    return amplitude * xp.maximum(k_per_um, 1e-3) ** (-exponent)


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
