"""Virtual samples (ground truths) for the simulated microscope, the tests and the demo.

Samples are drawn on the 2x SIM grid: each raw camera pixel covers 2x2 sample pixels.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

from scope.errors import ConfigurationError

SampleKind = Literal["filaments", "beads", "mixed", "siemens"]


def _splat(canvas: np.ndarray, ys: np.ndarray, xs: np.ndarray, weights: np.ndarray) -> None:
    """Add point weights at sub-pixel positions with bilinear interpolation."""
    ny, nx = canvas.shape
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    fy = ys - y0
    fx = xs - x0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy = y0 + dy
            xx = x0 + dx
            ok = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
            np.add.at(canvas, (yy[ok], xx[ok]), (weights * wy * wx)[ok])


def filaments(shape: tuple[int, int], *, n: int | None = None, seed: int = 0) -> np.ndarray:
    """Smoothly curved filaments (microtubule-like), one sample pixel wide.

    Each filament is a random walk with slowly drifting direction, sampled every 0.25 pixel.
    """
    rng = np.random.default_rng(seed)
    ny, nx = shape
    n = n if n is not None else max(4, int(np.sqrt(ny * nx) / 4))
    canvas = np.zeros(shape, np.float64)
    step = 0.25
    for _ in range(n):
        length = rng.uniform(0.5, 1.5) * max(ny, nx) / step
        k = int(length)
        theta0 = rng.uniform(0, 2 * np.pi)
        # curvature: a mean-reverting random walk (gently bending, no loops)
        curvature = np.zeros(k)
        kick = rng.normal(0, 0.004, k)
        for i in range(1, k):
            curvature[i] = 0.995 * curvature[i - 1] + kick[i]
        theta = theta0 + np.cumsum(curvature) * step
        y = rng.uniform(0, ny) + np.cumsum(np.sin(theta)) * step
        x = rng.uniform(0, nx) + np.cumsum(np.cos(theta)) * step
        brightness = rng.uniform(0.5, 1.0)
        _splat(canvas, y, x, np.full(k, brightness * step))
    return canvas


def beads(shape: tuple[int, int], *, n: int | None = None, seed: int = 0) -> np.ndarray:
    """Point-like beads of random brightness."""
    rng = np.random.default_rng(seed + 7919)
    ny, nx = shape
    n = n if n is not None else max(4, ny * nx // 400)
    canvas = np.zeros(shape, np.float64)
    _splat(
        canvas,
        rng.uniform(0, ny - 1, n),
        rng.uniform(0, nx - 1, n),
        rng.uniform(0.3, 1.0, n) * 1.5,
    )
    return canvas


def diffuse(shape: tuple[int, int], *, seed: int = 0) -> np.ndarray:
    """Smooth, cell-like diffuse fluorescence between 0 and 1 (cytoplasm, out-of-focus haze)."""
    rng = np.random.default_rng(seed + 104729)
    noise = rng.normal(size=shape)
    smooth = ndimage.gaussian_filter(noise, min(shape) / 16, mode="wrap")
    smooth = (smooth - smooth.min()) / max(float(np.ptp(smooth)), 1e-12)
    return np.clip(2 * smooth - 0.5, 0, 1)


def siemens_star(shape: tuple[int, int], *, spokes: int = 36) -> np.ndarray:
    """A Siemens star: spokes whose spacing sweeps all spatial frequencies."""
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    theta = np.arctan2(y - ny / 2 + 0.5, x - nx / 2 + 0.5)
    r = np.hypot(y - ny / 2 + 0.5, x - nx / 2 + 0.5)
    star = (np.cos(spokes * theta) > 0).astype(np.float64)
    star[r > 0.45 * min(ny, nx)] = 0
    return star


def make_sample(
    shape_2x: tuple[int, int],
    kind: SampleKind = "mixed",
    *,
    seed: int = 0,
    blur_px: float = 0.6,
) -> np.ndarray:
    """A virtual fluorescent sample on the 2x SIM grid, float32 scaled to a maximum of 1.

    Parameters
    ----------
    shape_2x : (int, int)
        Shape on the SIM grid (twice the camera shape).
    kind : {"filaments", "beads", "mixed", "siemens"}
        Filament network, scattered beads, both over a diffuse cell-like background, or a
        Siemens star.
    seed : int
        Random seed (samples are reproducible).
    blur_px : float
        Gaussian width (sample pixels) of the structures: a finite fluorophore size.

    Examples
    --------
    >>> s = make_sample((128, 128), "beads", seed=1)
    >>> s.shape, s.dtype, float(s.max())
    ((128, 128), dtype('float32'), 1.0)
    """
    if len(shape_2x) != 2 or min(shape_2x) < 8:
        raise ConfigurationError(f"sample shape must be 2D and at least 8x8, got {shape_2x}")
    if kind == "filaments":
        img = filaments(shape_2x, seed=seed)
    elif kind == "beads":
        img = beads(shape_2x, seed=seed)
    elif kind == "mixed":
        img = filaments(shape_2x, seed=seed) + 0.5 * beads(shape_2x, seed=seed)
        img = img / max(float(ndimage.gaussian_filter(img, blur_px).max()), 1e-12)
        img = img + 0.05 * diffuse(shape_2x, seed=seed)
    elif kind == "siemens":
        img = siemens_star(shape_2x)
    else:
        raise ConfigurationError(
            f"unknown sample kind {kind!r}: expected filaments, beads, mixed or siemens"
        )
    if blur_px > 0:
        img = ndimage.gaussian_filter(img, blur_px, mode="wrap")
    img = img / max(float(img.max()), 1e-12)
    return img.astype(np.float32)
