"""Image-quality measures: ring correlation, resolution, errors against a target.

- :func:`fourier_ring_correlation` — FRC between two images (Saxton & Baumeister 1982;
  Nieuwenhuizen et al., Nat. Methods 10, 557 (2013)).
- :func:`resolution_from_frc` — where the FRC first drops below a threshold.
- :func:`split_photons` — binomial thinning of photon counts into two statistically independent
  halves (Rieger et al., "Single image Fourier ring correlation", Opt. Express 32 (2024)),
  the basis of a resolution estimate that needs no ground truth.
- :func:`decorrelation_resolution` — resolution of a single image from the decorrelation of
  its spectrum with its phase-only version (Descloux, Grußmayer, Radenovic, "Parameter-free
  image resolution estimation based on decorrelation analysis", Nat. Methods 16, 918 (2019)).
- :func:`normalized_rms_error` — RMS error after a least-squares gain/offset fit.
- :func:`ideal_sim_target` — the ground truth seen through an ideal SIM OTF (support
  ``fc + |p|``), what a faithful reconstruction should look like (Wen et al. 2021).
"""

from __future__ import annotations

import numpy as np

from scope.optics import ideal_otf
from scope.sim.spectral import edge_taper, freq_grid


def fourier_ring_correlation(
    a: np.ndarray, b: np.ndarray, *, n_rings: int | None = None, taper_px: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """FRC of two equally shaped 2D images.

    Returns
    -------
    freq : ndarray
        Ring centres in cycles per pixel (0 .. 0.5).
    frc : ndarray
        Correlation per ring.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"FRC needs two 2D images of one shape, got {a.shape} and {b.shape}")
    w = edge_taper(a.shape, taper_px)
    fa = np.fft.fft2((a - a.mean()) * w)
    fb = np.fft.fft2((b - b.mean()) * w)
    ky, kx = freq_grid(a.shape, 1.0)
    k = np.hypot(kx, ky)
    n_rings = n_rings or min(a.shape) // 2
    edges = np.linspace(0, 0.5, n_rings + 1)
    idx = np.digitize(k.ravel(), edges) - 1
    valid = (idx >= 0) & (idx < n_rings)
    num = np.bincount(idx[valid], (fa * np.conj(fb)).real.ravel()[valid], n_rings)
    da = np.bincount(idx[valid], (np.abs(fa) ** 2).ravel()[valid], n_rings)
    db = np.bincount(idx[valid], (np.abs(fb) ** 2).ravel()[valid], n_rings)
    frc = num / np.sqrt(np.maximum(da * db, 1e-300))
    return 0.5 * (edges[1:] + edges[:-1]), frc


def resolution_from_frc(
    freq: np.ndarray, frc: np.ndarray, *, threshold: float = 1 / 7, smooth: int = 3
) -> float:
    """First frequency (cycles/pixel) where the (smoothed) FRC falls below ``threshold``.

    Returns 0.5 when it never falls below it.
    """
    if smooth > 1:
        kernel = np.ones(smooth) / smooth
        frc = np.convolve(np.pad(frc, smooth // 2, mode="edge"), kernel, mode="valid")
    start = max(1, len(freq) // 50)  # skip the noisy innermost rings
    below = np.nonzero(frc[start:] < threshold)[0]
    if below.size == 0:
        return 0.5
    i = below[0] + start
    if i == 0:
        return float(freq[0])
    # linear interpolation between the rings around the crossing
    f0, f1 = freq[i - 1], freq[i]
    c0, c1 = frc[i - 1], frc[i]
    t = (c0 - threshold) / (c0 - c1) if c0 != c1 else 0.0
    return float(f0 + t * (f1 - f0))


def split_photons(
    counts: np.ndarray, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split photon counts into two independent halves by binomial thinning.

    ``counts`` must be in photo-electrons (offset removed, divided by the gain); values are
    rounded to whole photons and negative values clipped to zero.
    """
    rng = np.random.default_rng(rng)
    n = np.clip(np.rint(np.asarray(counts, np.float64)), 0, None).astype(np.int64)
    half = rng.binomial(n, 0.5)
    return half.astype(np.float32), (n - half).astype(np.float32)


def normalized_rms_error(image: np.ndarray, target: np.ndarray, *, margin: int = 0) -> float:
    """RMS of ``g * image + o - target`` with the least-squares gain g and offset o,
    divided by the standard deviation of ``target``; ``margin`` pixels at each edge ignored."""
    if margin:
        image = image[margin:-margin, margin:-margin]
        target = target[margin:-margin, margin:-margin]
    x = np.asarray(image, np.float64).ravel()
    t = np.asarray(target, np.float64).ravel()
    design = np.stack([x, np.ones_like(x)], axis=1)
    coef, *_ = np.linalg.lstsq(design, t, rcond=None)
    resid = design @ coef - t
    return float(np.sqrt(np.mean(resid**2)) / np.std(t))


def ideal_sim_target(
    ground_truth_2x: np.ndarray, *, pixel_size_nm: float, cutoff_per_um: float
) -> np.ndarray:
    """The ground truth (2x grid, pixel ``pixel_size_nm``) filtered by an ideal incoherent OTF
    with the given cutoff (for SIM: ``fc + |p|``)."""
    gt = np.asarray(ground_truth_2x, np.float64)
    ky, kx = freq_grid(gt.shape, pixel_size_nm * 1e-3)
    otf = ideal_otf(np.hypot(kx, ky), cutoff_per_um)
    return np.fft.ifft2(np.fft.fft2(gt) * otf).real.astype(np.float32)


def upsample2x(image: np.ndarray) -> np.ndarray:
    """Fourier (band-limited) 2x upsampling on the SIM grid convention.

    Output pixel (i, j) covers a quarter of camera pixel (i // 2, j // 2), like a SIM image,
    so widefield and SIM images can be compared pixel by pixel.
    """
    img = np.asarray(image, np.float64)
    ny, nx = img.shape
    spec = np.fft.fftshift(np.fft.fft2(img))
    big = np.zeros((2 * ny, 2 * nx), complex)
    big[ny - ny // 2 : ny - ny // 2 + ny, nx - nx // 2 : nx - nx // 2 + nx] = spec
    big = np.fft.ifftshift(big)
    ky, kx = freq_grid((2 * ny, 2 * nx), 0.5)  # cycles per camera pixel
    big *= np.exp(-2j * np.pi * (kx + ky) * 0.25)
    return (np.fft.ifft2(big).real * 4).astype(np.float32)


def decorrelation_resolution(
    image: np.ndarray, *, n_radii: int = 50, n_filters: int = 10, min_amplitude: float = 0.05
) -> float:
    """Resolution of one image in pixels by decorrelation analysis (Descloux et al. 2019).

    The correlation ``d(r)`` of the image spectrum with its phase-only (normalised) version,
    within a disc of radius ``r``, peaks where signal gives way to noise. Repeating with
    Gaussian high-pass filters of decreasing width moves the peak outwards until the noise
    floor; the highest peak radius ``r_max`` (as a fraction of Nyquist) gives the resolution
    ``2 / r_max`` pixels. Needs no ground truth and no second image, and is insensitive to
    noise that is not Poisson (sCMOS pixels, processed data).
    """
    img = np.asarray(image, np.float64)
    ny, nx = img.shape
    img = (img - img.mean()) * edge_taper(img.shape, max(4, min(ny, nx) // 16))
    spec = np.fft.fft2(img)
    ky, kx = freq_grid(img.shape, 1.0)
    k = 2 * np.hypot(kx, ky)  # 1 at Nyquist along an axis
    radii = np.linspace(0, 1, n_radii + 1)[1:]
    order = np.argsort(k.ravel())
    k_sorted = k.ravel()[order]
    ends = np.searchsorted(k_sorted, radii)

    def peak(s: np.ndarray) -> tuple[float, float]:
        flat = s.ravel()[order]
        mag = np.abs(flat)
        energy = float(np.sum(mag**2))
        # sum over the disc of Re(I conj(I/|I|)) = |I|, and |I/|I||^2 = 1 per pixel
        num = np.cumsum(mag)[np.maximum(ends - 1, 0)]
        den = np.sqrt(energy * np.maximum(ends, 1))
        d = np.where(ends > 0, num / den, 0.0)
        i = int(np.argmax(d))
        return float(radii[i]), float(d[i])

    peaks = [peak(spec)]
    for sigma in np.exp(np.linspace(np.log(0.15), np.log(0.005), n_filters)):
        r, a = peak(spec * (1 - np.exp(-0.5 * (k / 2) ** 2 / sigma**2)))
        if a > min_amplitude and r < 0.99:
            peaks.append((r, a))
    r_max = max(p[0] for p in peaks)
    return 2.0 / r_max
