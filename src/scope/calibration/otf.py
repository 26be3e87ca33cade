"""Measured detection OTF from images of sub-resolution fluorescent beads.

The workflow: find isolated beads (local maxima well above the background, far from the edge
and from each other, not much brighter than the typical bead — aggregates are), locate each to a
fraction of a pixel (three-point Gaussian fit), cut a box around it, shift it onto a common centre
(Fourier shift) and average the boxes normalised to unit sum: that is the measured PSF, sampled
by the camera. Its Fourier transform (zero-padded for a finer frequency step) divided by the bead's
own transfer function (a uniform sphere of the given diameter) and by the camera pixel's (square
pixel integration, which the reconstruction models separately) is the OTF; radially averaged,
with the noise floor beyond the support removed and its lowest frequencies (biased by the box
cutting off the PSF's wings) extrapolated linearly to k = 0, it is the profile the reconstruction
uses
(:class:`scope.optics.OTF`). The result is saved into the preset under ``[calibration.otf]``.

References
----------
Gustafsson et al., "Three-dimensional resolution doubling in wide-field fluorescence microscopy
by structured illumination", Biophys. J. 94, 4957-4970 (2008) (measured OTFs from beads).
Bohren & Huffman, *Absorption and Scattering of Light by Small Particles* (sphere transform
``3 (sin x - x cos x) / x**3``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scope.errors import DataFormatError
from scope.optics import OTF, radial_average

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeasuredOTF:
    """A radially averaged OTF measured from beads.

    Attributes
    ----------
    profile : ndarray
        OTF from k = 0 outwards, 1 at k = 0, every ``dk_per_um``.
    dk_per_um : float
    cutoff_per_um : float
        Where the profile first falls below 1e-3.
    n_beads : int
        Beads averaged.
    bead_diameter_nm : float
    psf : ndarray
        The averaged PSF (box), unit sum.
    positions_px : list of (y, x)
        Sub-pixel positions of the beads used.
    """

    profile: np.ndarray
    dk_per_um: float
    cutoff_per_um: float
    n_beads: int
    bead_diameter_nm: float
    psf: np.ndarray = field(repr=False)
    positions_px: list[tuple[float, float]] = field(default_factory=list, repr=False)

    def to_otf(self) -> OTF:
        return OTF.from_radial_profile(self.profile, self.dk_per_um, source="beads")

    def to_toml(self) -> dict[str, Any]:
        return {
            "method": "beads",
            "n_beads": self.n_beads,
            "bead_diameter_nm": self.bead_diameter_nm,
            "dk_per_um": self.dk_per_um,
            "cutoff_per_um": self.cutoff_per_um,
            "profile": [round(float(v), 6) for v in self.profile],
        }


# ---------------------------------------------------------------------------------------------
# beads
# ---------------------------------------------------------------------------------------------


def _robust_sigma(a: np.ndarray) -> float:
    med = np.median(a)
    return float(1.4826 * np.median(np.abs(a - med))) or float(np.std(a)) or 1.0


def _subpixel(img: np.ndarray, iy: int, ix: int, half: int = 5) -> tuple[float, float]:
    """Phasor localisation: the phase of the first Fourier harmonic of a small window.

    Unbiased for a symmetric spot (Martens et al., J. Chem. Phys. 148, 123311 (2018)); the
    window is clipped at the image edge.
    """
    y0, y1 = max(iy - half, 0), min(iy + half + 1, img.shape[0])
    x0, x1 = max(ix - half, 0), min(ix + half + 1, img.shape[1])
    win = img[y0:y1, x0:x1]
    ny, nx = win.shape
    ey = np.exp(-2j * np.pi * np.arange(ny) / ny)
    ex = np.exp(-2j * np.pi * np.arange(nx) / nx)
    fy = np.sum(win.sum(axis=1) * ey)
    fx = np.sum(win.sum(axis=0) * ex)
    dy = (-np.angle(fy) / (2 * np.pi)) % 1.0 * ny
    dx = (-np.angle(fx) / (2 * np.pi)) % 1.0 * nx
    return y0 + float(dy), x0 + float(dx)


def find_beads(
    image: np.ndarray,
    *,
    box_px: int = 48,
    threshold_sigma: float = 10.0,
    min_separation_px: float | None = None,
    max_brightness_ratio: float = 1.6,
    neighbour_fraction: float = 0.05,
) -> list[tuple[float, float]]:
    """Sub-pixel positions (y, x) of isolated single beads in a background-subtracted image.

    A bead is kept when it is a local maximum above ``threshold_sigma`` x the background noise,
    at least ``box_px / 2`` from the edge, with no other maximum brighter than
    ``neighbour_fraction`` of it within ``min_separation_px`` (default ``0.75 box_px``), and no
    brighter than
    ``max_brightness_ratio`` x the median bead (brighter spots are aggregates).
    """
    from scipy.ndimage import find_objects, label, maximum_filter

    img = np.asarray(image, dtype=np.float64)
    sigma = _robust_sigma(img)
    peaks = (img == maximum_filter(img, size=5)) & (img > threshold_sigma * sigma)
    # a flat top (equal neighbouring pixels) is one maximum, not several
    labels, _ = label(peaks, structure=np.ones((3, 3)))
    firsts = [
        np.argwhere(labels[sl] == i + 1)[0] + [sl[0].start, sl[1].start]
        for i, sl in enumerate(find_objects(labels))
    ]
    ys = np.array([p[0] for p in firsts], dtype=int)
    xs = np.array([p[1] for p in firsts], dtype=int)
    half = box_px // 2
    cand = [
        (int(y), int(x))
        for y, x in zip(ys, xs)
        if half + 1 <= y < img.shape[0] - half - 1 and half + 1 <= x < img.shape[1] - half - 1
    ]
    all_peaks = np.stack([ys, xs], axis=1) if ys.size else np.zeros((0, 2))
    sep = 0.75 * box_px if min_separation_px is None else min_separation_px
    heights_all = img[ys, xs] if ys.size else np.zeros(0)
    isolated = []
    for y, x in cand:
        d = np.hypot(all_peaks[:, 0] - y, all_peaks[:, 1] - x)
        # neighbours that matter: other maxima within the separation brighter than 5 % of this
        # one (the Airy rings of the bead itself are under 2 %)
        near = (d < sep) & (d > 0) & (heights_all > neighbour_fraction * img[y, x])
        if not near.any():
            isolated.append((y, x))
    if not isolated:
        return []
    heights = np.array([img[y, x] for y, x in isolated])
    typical = float(np.median(heights))
    kept = [p for p, h in zip(isolated, heights) if h <= max_brightness_ratio * typical]
    log.info(
        "beads: %d maxima, %d inside, %d isolated, %d kept (aggregates dropped)",
        len(all_peaks),
        len(cand),
        len(isolated),
        len(kept),
    )
    return [_subpixel(img, y, x) for y, x in kept]


def average_psf(
    image: np.ndarray, positions_px: list[tuple[float, float]], *, box_px: int = 48
) -> np.ndarray:
    """Average of the bead boxes, each shifted onto the box centre and normalised to unit sum."""
    from scipy.ndimage import fourier_shift

    img = np.asarray(image, dtype=np.float64)
    half = box_px // 2
    acc = np.zeros((box_px, box_px))
    for y, x in positions_px:
        iy, ix = round(y), round(x)
        box = img[iy - half : iy - half + box_px, ix - half : ix - half + box_px]
        shifted = np.real(np.fft.ifft2(fourier_shift(np.fft.fft2(box), (iy - y, ix - x))))
        total = shifted.sum()
        if total > 0:
            acc += shifted / total
    return acc / max(len(positions_px), 1)


def _drop_clipped_beads(
    raw: np.ndarray,
    positions: list[tuple[float, float]],
    box_px: int,
    saturation_adu: float | None,
    pixel_format: str | None,
) -> tuple[list[tuple[float, float]], int, str]:
    """The beads whose boxes hold no pixel at the camera's full scale in any frame, how many
    were dropped, and the full scale in words."""
    from scope.calibration.camera import _full_scale_hint, full_scale

    frames = raw.reshape(-1, *raw.shape[-2:])
    level, source = full_scale([frames], saturation_adu, pixel_format=pixel_format)
    if level is None or not positions:
        return positions, 0, ""
    at_top = np.any(frames >= level, axis=0)
    if not at_top.any():
        return positions, 0, ""
    half = box_px // 2
    kept = []
    for y, x in positions:
        iy, ix = round(y), round(x)
        if not at_top[iy - half : iy - half + box_px, ix - half : ix - half + box_px].any():
            kept.append((y, x))
    n_clipped = len(positions) - len(kept)
    where = f"{level:g} ADU, the camera's full scale ({source})"
    if n_clipped:
        log.warning(
            "%d of %d beads reach %s: their peaks are clipped, which widens the measured PSF "
            "and lowers the cutoff, so they are left out. Lower the exposure time or the "
            "light%s",
            n_clipped,
            len(positions),
            where,
            _full_scale_hint(source),
        )
    return kept, n_clipped, where


def sphere_transfer(k_per_um: np.ndarray, diameter_nm: float) -> np.ndarray:
    """Fourier transform of a uniform sphere projected along z, 1 at k = 0."""
    x = 2 * np.pi * np.asarray(k_per_um, dtype=np.float64) * (diameter_nm * 1e-3 / 2)
    out = np.ones_like(x)
    nz = x > 1e-6
    xn = x[nz]
    out[nz] = 3 * (np.sin(xn) - xn * np.cos(xn)) / xn**3
    return out


def measure_otf(
    images: Any,
    pixel_size_nm: float,
    *,
    bead_diameter_nm: float = 100.0,
    offset_adu: float = 0.0,
    box_px: int = 48,
    pad_px: int = 128,
    threshold_sigma: float = 10.0,
    min_beads: int = 5,
    saturation_adu: float | None = None,
    pixel_format: str | None = None,
) -> MeasuredOTF:
    """Measure the detection OTF from a bead image.

    Parameters
    ----------
    images : array (Y, X) or (..., Y, X)
        Widefield images of sparse sub-resolution beads in focus; leading axes (repeats, or the
        phase frames of a SIM set, which sum to a widefield image) are summed.
    pixel_size_nm : float
        Camera pixel size at the sample.
    bead_diameter_nm : float
        Bead diameter, divided out of the result.
    offset_adu : float
        Camera offset per frame (subtracted before summing).
    box_px, pad_px : int
        Box cut around each bead, and the zero-padded size of its Fourier transform
        (frequency step ``1 / (pad_px * pixel)``).
    saturation_adu : float, optional
        The camera's full scale. Default: from ``pixel_format``, else the images' data type,
        with 10, 12 and 14-bit values in 16-bit words recognised where they pile up at 1023,
        4095 or 16383 (:func:`scope.calibration.camera.full_scale`). A bead with a pixel of its
        box at the full scale in any frame has a clipped peak, which widens the PSF and lowers
        the cutoff: it is left out, with a warning.
    pixel_format : str, optional
        The camera's pixel format (``"Mono12"``), where the file records it.

    Returns
    -------
    MeasuredOTF
    """
    raw = np.asarray(images)
    arr = raw.astype(np.float64, copy=False)
    if arr.ndim < 2 or min(arr.shape[-2:]) < box_px + 4:
        raise DataFormatError(
            f"expected bead images (..., Y, X) larger than the {box_px}-pixel box; got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise DataFormatError("the bead images contain NaN or infinite values")
    n_frames = int(np.prod(arr.shape[:-2])) if arr.ndim > 2 else 1
    img = arr.reshape(-1, *arr.shape[-2:]).sum(axis=0) - offset_adu * n_frames
    img = img - np.median(img)
    positions = find_beads(img, box_px=box_px, threshold_sigma=threshold_sigma)
    positions, n_clipped, level = _drop_clipped_beads(
        raw, positions, box_px, saturation_adu, pixel_format
    )
    if len(positions) < min_beads:
        clipped = f" with unclipped peaks ({n_clipped} more reach {level})" if n_clipped else ""
        fix = (
            "lower the exposure time or the light so that no bead reaches the camera's full scale"
            if n_clipped
            else "use a sparser bead slide (beads a few µm apart), focus on the beads, or more "
            "exposure"
        )
        raise DataFormatError(
            f"found {len(positions)} isolated beads{clipped}, need at least {min_beads}: {fix}"
        )
    psf = average_psf(img, positions, box_px=box_px)
    padded = np.zeros((pad_px, pad_px))
    padded[:box_px, :box_px] = psf
    otf2d = np.abs(np.fft.fftshift(np.fft.fft2(padded)))
    otf2d /= otf2d[pad_px // 2, pad_px // 2]
    dx_um = pixel_size_nm * 1e-3
    f = np.fft.fftshift(np.fft.fftfreq(pad_px, d=dx_um))
    fx, fy = f[None, :], f[:, None]
    from scope.optics import pixel_transfer

    correction = sphere_transfer(np.hypot(fx, fy), bead_diameter_nm) * np.abs(
        pixel_transfer(fx, fy, dx_um)
    )
    otf2d = otf2d / np.maximum(correction, 0.3)
    profile = radial_average(otf2d)
    dk = 1.0 / (pad_px * dx_um)
    # noise floor: the level in the outer third of the profile (beyond any objective's support
    # when the camera samples at Nyquist) is subtracted
    floor = float(np.median(profile[2 * len(profile) // 3 :]))
    profile = profile - floor
    # The box cuts off the PSF's far wings (an Airy pattern keeps several % of its energy
    # beyond a few µm), which removes energy at frequencies below ~1/box only: the value at
    # k = 0 is too low and the profile, normalised by it, too high. The OTF is close to linear
    # at low k (1 - 4 rho / pi for a circular pupil), so the profile between 1.5 and 3.5 box
    # frequencies is extrapolated to k = 0 instead.
    k = np.arange(profile.size) * dk
    box_freq = 1.0 / (box_px * dx_um)
    fit = (k >= 1.5 * box_freq) & (k <= 3.5 * box_freq)
    if fit.sum() >= 3:
        slope, intercept = np.polyfit(k[fit], profile[fit], 1)
        low = k < 1.5 * box_freq
        profile[low] = intercept + slope * k[low]
        profile = profile / intercept
    else:
        profile = profile / profile[0]
    profile = np.clip(profile, 0.0, None)
    # beyond the first drop to zero only noise is left
    zero = np.nonzero(profile < 1e-3)[0]
    if zero.size:
        profile[zero[0] :] = 0.0
    otf = OTF.from_radial_profile(profile, dk, source="beads")
    log.info("measured OTF from %d beads: cutoff %.3f /µm", len(positions), otf.cutoff_per_um)
    return MeasuredOTF(
        profile=profile,
        dk_per_um=dk,
        cutoff_per_um=otf.cutoff_per_um,
        n_beads=len(positions),
        bead_diameter_nm=bead_diameter_nm,
        psf=psf,
        positions_px=positions,
    )


#: a measured cutoff further than this factor from 2 NA / λ is refused: the optics given do not
#: belong to the images (a pixel size in µm or at the camera, a wavelength in µm), which no
#: objective, focus or aberration explains
CUTOFF_REFUSE_FACTOR = 2.0


def check_cutoff(
    measured: MeasuredOTF, setup: Any, *, sources: dict[str, str] | None = None
) -> float:
    """Compare the measured cutoff with the optics' 2 NA / λ before the OTF is saved.

    Parameters
    ----------
    measured : MeasuredOTF
    setup : OpticalSetup
        The optics the beads were imaged with; its pixel size was used for the measurement.
    sources : dict, optional
        Where each optics value came from (``{"pixel_size_nm": "--pixel-size"}``), for the
        messages.

    Returns
    -------
    float
        The relative difference ``measured / expected - 1``. Beyond
        :data:`scope.optics.OTF_CUTOFF_TOLERANCE` (where ``scope reconstruct`` questions a
        measured OTF) a warning names the likely causes.

    Raises
    ------
    ConfigurationError
        The cutoff is off by more than :data:`CUTOFF_REFUSE_FACTOR`: the pixel size at the
        sample (in nm), the wavelength or the NA is wrong. The message gives the pixel size
        that would fit the images.
    """
    from scope.errors import ConfigurationError
    from scope.optics import OTF_CUTOFF_TOLERANCE

    sources = sources or {}

    def said(key: str) -> str:
        return f" ({sources[key]})" if key in sources else ""

    expected = setup.cutoff_per_um
    ratio = measured.cutoff_per_um / expected
    optics = (
        f"NA {setup.na:g}{said('na')}, emission {setup.wavelength_nm:g} nm"
        f"{said('wavelength_nm')}, pixel at the sample {setup.pixel_size_nm:g} nm"
        f"{said('pixel_size_nm')}"
    )
    fitting_pixel_nm = setup.pixel_size_nm * ratio
    low_causes = (
        "; a cutoff below it also comes from beads out of focus, beads larger than "
        "--bead-diameter-nm, or aberrations"
        if ratio < 1
        else "; the objective alone cannot give a cutoff above 2 NA / λ"
    )
    if not 1 / CUTOFF_REFUSE_FACTOR <= ratio <= CUTOFF_REFUSE_FACTOR:
        raise ConfigurationError(
            f"the measured OTF ends at {measured.cutoff_per_um:.3g} /µm, {ratio:.3g} x the "
            f"2 NA / λ = {expected:.3g} /µm of the optics given ({optics}): they do not fit "
            "these images, and nothing was saved. Most likely the pixel size at the sample is "
            "wrong: it is the camera pixel divided by the magnification, in nm (these images "
            f"fit about {fitting_pixel_nm:.3g} nm); else check the emission wavelength (in nm) "
            f"and the NA{low_causes}"
        )
    difference = ratio - 1.0
    if abs(difference) > OTF_CUTOFF_TOLERANCE:
        log.warning(
            "the measured OTF ends at %.3g /µm, %+.0f %% from the 2 NA / λ = %.3g /µm of the "
            "optics given (%s); scope reconstruct questions a measured OTF off by more than "
            "%.0f %%. Check the pixel size at the sample, in nm (these images fit about %.3g "
            "nm), the emission wavelength, in nm, and the NA%s",
            measured.cutoff_per_um,
            100 * difference,
            expected,
            optics,
            100 * OTF_CUTOFF_TOLERANCE,
            fitting_pixel_nm,
            low_causes,
        )
    return difference


def save_measured_otf(preset: str | Path, measured: MeasuredOTF) -> None:
    """Write ``[calibration.otf]`` into the preset TOML (the rest is kept)."""
    from scope.calibration.preset import update_calibration

    update_calibration(preset, "otf", measured.to_toml())


def read_otf_file(path: str | Path) -> OTF:
    """A measured OTF from a file: a preset TOML holding ``[calibration.otf]`` (what ``scope
    calibrate otf`` writes), else a TIFF or MRC image (:meth:`OTF.from_file`)."""
    if Path(path).suffix.lower() == ".toml":
        otf = load_measured_otf(path)
        if otf is None:
            raise DataFormatError(
                f"{path} holds no [calibration.otf]: run `scope calibrate otf` with this preset, "
                "or give a measured OTF as a TIFF or MRC file"
            )
        return otf
    return OTF.from_file(path)


def load_measured_otf(preset: str | Path) -> OTF | None:
    """The OTF saved in a preset's ``[calibration.otf]``, or None."""
    from scope.calibration.preset import read_calibration

    table = read_calibration(preset, "otf")
    if table is None:
        return None
    try:
        return OTF.from_radial_profile(
            np.asarray(table["profile"], dtype=np.float64),
            float(table["dk_per_um"]),
            source=f"{preset} [calibration.otf]",
        )
    except (KeyError, TypeError, ValueError) as err:
        raise DataFormatError(
            f"[calibration.otf] in {preset} is malformed ({err!r}): re-run the OTF calibration"
        ) from err
