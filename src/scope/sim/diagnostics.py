"""Diagnostics of a SIM data set: the spectrum with the carriers, a map of where the pattern is
modulated, and resolution without ground truth.

The modulation map (:func:`modulation_map`) is in the spirit of SIMcheck's modulation
contrast-to-noise ratio (Ball et al., "SIMcheck: a toolbox for successful super-resolution
structured illumination microscopy", Sci. Rep. 5, 15915 (2015)): per pixel, the pattern's
local modulation amplitude against its shot noise. Low values mark out-of-focus light, a
defocused pattern or too few photons — places where the SIM image holds little real detail.
Our definition (demodulated +1 order, averaged over a window of about one pattern period)
works for 3 phases and gives different numbers than SIMcheck's per-pixel, 5-phase one.

Two resolution estimates need no ground truth. The default, decorrelation analysis
(Descloux et al., Nat. Methods 16, 918 (2019)), reads each image alone and tolerates camera
noise that is not Poisson. The split-photon estimate splits the photons of the raw frames
into two independent halves by binomial thinning (Rieger et al., Opt. Express 32 (2024)),
reconstructs both with the same parameters, and reads the resolution where their Fourier ring
correlation drops below 1/7 (Nieuwenhuizen et al., Nat. Methods 10, 557 (2013)); the
widefield halves give the widefield figure in the same way. Beyond the SIM support the
reconstructions hold no signal and no noise, so the FRC is read inside the support only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from scope.errors import DataFormatError
from scope.optics import OTF, OpticalSetup
from scope.sim.metrics import (
    decorrelation_resolution,
    fourier_ring_correlation,
    resolution_from_frc,
    split_photons,
)
from scope.sim.params import SIMParameters
from scope.sim.pattern_map import TiledParameters
from scope.sim.reconstruct import ReconstructionSettings, SIMReconstructor


@dataclass(frozen=True)
class ResolutionEstimate:
    """Resolution (nm) of the widefield and SIM images, and how it was measured."""

    widefield_nm: float
    sim_nm: float
    method: str = "decorrelation"

    @property
    def improvement(self) -> float:
        return self.widefield_nm / self.sim_nm


def estimate_resolution(
    raw: np.ndarray,
    setup: OpticalSetup,
    params: SIMParameters,
    *,
    offset_adu: float = 0.0,
    gain_adu_per_e: float | None = None,
    settings: ReconstructionSettings | None = None,
    otf: OTF | None = None,
    seed: int = 0,
    method: str = "decorrelation",
    images: tuple[np.ndarray, np.ndarray] | None = None,
) -> ResolutionEstimate:
    """Resolution of widefield and SIM from one raw set, with no ground truth.

    ``method="decorrelation"`` (default) measures the widefield image and the SIM image each
    by decorrelation analysis. ``method="split-frc"`` splits the photons in two, reconstructs
    both halves and reads their FRC at 1/7: the more rigorous choice for shot-noise-limited
    cameras with a known gain, but fooled by read noise that is not Poisson (sCMOS).

    ``offset_adu`` and ``gain_adu_per_e`` convert the counts to photo-electrons (binomial
    splitting needs photon counts: with a wrong gain the halves share noise and the FRC
    overstates the resolution). Without a gain, it is measured from the data itself: the noise
    beyond the OTF cutoff against the mean signal (:func:`estimate_gain`).

    ``images`` (decorrelation only): the set's SIM and widefield images as the caller made them
    (e.g. with a phase map, :mod:`scope.sim.pattern_map`), measured instead of a
    reconstruction with ``params`` alone.
    """
    frames = np.asarray(raw, np.float64)
    if method == "decorrelation":
        if images is None:
            rec = SIMReconstructor(
                setup,
                params,
                shape=frames.shape[-2:],
                settings=settings or ReconstructionSettings(offset_adu=offset_adu),
                otf=otf,
            )
            images = (
                rec.backend.to_numpy(rec(frames)),
                rec.backend.to_numpy(rec.widefield(frames)),
            )
        sim, wf = (np.asarray(image, np.float64) for image in images)
        margin = max(4, min(frames.shape[-2:]) // 16)
        return ResolutionEstimate(
            widefield_nm=setup.pixel_size_nm
            * decorrelation_resolution(wf[margin:-margin, margin:-margin]),
            sim_nm=setup.pixel_size_nm
            / 2
            * decorrelation_resolution(sim[2 * margin : -2 * margin, 2 * margin : -2 * margin]),
            method="decorrelation",
        )
    if method != "split-frc":
        raise ValueError(f"method must be 'decorrelation' or 'split-frc', got {method!r}")
    if gain_adu_per_e is None:
        gain_adu_per_e = estimate_gain(frames, setup, offset_adu=offset_adu, otf=otf)
    electrons = repair_hot_pixels((frames - offset_adu) / gain_adu_per_e)
    half_a, half_b = split_photons(electrons, seed)
    settings = settings or ReconstructionSettings()
    settings = ReconstructionSettings(**{**settings.__dict__, "offset_adu": 0.0})
    rec = SIMReconstructor(setup, params, shape=frames.shape[-2:], settings=settings, otf=otf)
    sim_a = rec.backend.to_numpy(rec(half_a))
    rec_b = SIMReconstructor(
        setup,
        params,
        shape=frames.shape[-2:],
        settings=settings,
        otf=otf,
        noise_model=rec.noise_model,
    )
    sim_b = rec_b.backend.to_numpy(rec_b(half_b))
    margin = max(4, min(frames.shape[-2:]) // 16)
    crop = np.s_[2 * margin : -2 * margin, 2 * margin : -2 * margin]
    f, c = fourier_ring_correlation(sim_a[crop], sim_b[crop])
    kmax = max(math.hypot(*a.k_per_um) for a in params.angles)
    support = (rec.otf.cutoff_per_um + kmax) * setup.pixel_size_um / 2  # cycles per SIM pixel
    inside = f < 0.98 * support
    sim_res = min(resolution_from_frc(f[inside], c[inside]), float(f[inside][-1]))
    wf_a, wf_b = half_a.mean(axis=0), half_b.mean(axis=0)
    cw = np.s_[margin:-margin, margin:-margin]
    f, c = fourier_ring_correlation(wf_a[cw], wf_b[cw])
    wf_res = resolution_from_frc(f, c)
    return ResolutionEstimate(
        widefield_nm=setup.pixel_size_nm / wf_res,
        sim_nm=(setup.pixel_size_nm / 2) / sim_res,
        method="split-frc",
    )


def repair_hot_pixels(frames: np.ndarray, *, threshold: float = 6.0) -> np.ndarray:
    """Replace isolated outliers (hot or noisy sCMOS pixels) by their 3x3 median.

    A pixel counts as an outlier when it departs from the median of its neighbours by more
    than ``threshold`` robust standard deviations of such departures; in photon counts these
    spikes are not shot noise and would correlate the two halves of a photon split.
    """
    from scipy import ndimage

    frames = np.asarray(frames, np.float64)
    med = ndimage.median_filter(frames, size=(1, 3, 3), mode="reflect")
    resid = frames - med
    scale = 1.4826 * np.median(np.abs(resid - np.median(resid))) + 1e-12
    bad = np.abs(resid) > threshold * np.sqrt(np.maximum(med, 0) + scale**2)
    out = frames.copy()
    out[bad] = med[bad]
    return out


def estimate_gain(
    raw: np.ndarray, setup: OpticalSetup, *, offset_adu: float = 0.0, otf: OTF | None = None
) -> float:
    """Camera gain (ADU per photo-electron) from the shot noise in the raw frames.

    Beyond the detection cutoff the spectrum holds only noise; its power gives the noise
    variance per pixel, which for shot-noise-limited frames is ``gain * mean signal``
    (the photon-transfer relation, here read off a single data set).
    """
    from scope.sim.spectral import edge_taper, freq_grid, out_of_band_power

    frames = np.asarray(raw, np.float64)
    ny, nx = frames.shape[-2:]
    otf = otf or OTF.from_setup(setup)
    w = edge_taper((ny, nx), max(4, min(ny, nx) // 16))
    ky, kx = freq_grid((ny, nx), setup.pixel_size_um)
    centred = frames - frames.mean(axis=(-2, -1), keepdims=True)
    power = out_of_band_power(np.fft.fft2(centred * w), np.hypot(kx, ky), otf.cutoff_per_um)
    if power is None:
        return 1.0
    variance = power / float(np.sum(w * w))
    signal = float(((frames - offset_adu) * w * w).sum() / (np.sum(w * w) * len(frames)))
    if signal <= 0:
        return 1.0
    return max(variance / signal, 1e-3)


def spectrum_with_carriers(
    raw: np.ndarray, setup: OpticalSetup, params: SIMParameters
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Log-magnitude spectrum of the frames minus the widefield (where the carriers stand out),
    centred, and the carrier positions (row, column) in its pixels."""
    frames = np.asarray(raw, np.float64)
    mod = frames - frames.mean(axis=0, keepdims=True)
    ny, nx = frames.shape[-2:]
    from scope.sim.spectral import edge_taper

    w = edge_taper((ny, nx), max(4, min(ny, nx) // 16))
    power = (np.abs(np.fft.fft2(mod * w)) ** 2).sum(axis=0)
    spec = np.log1p(np.fft.fftshift(power) / max(power.mean(), 1e-30))
    marks = []
    for a in params.angles:
        kx, ky = a.k_per_um
        for s in (1, -1):
            marks.append(
                (
                    ny // 2 + s * ky * ny * setup.pixel_size_um,
                    nx // 2 + s * kx * nx * setup.pixel_size_um,
                )
            )
    return spec.astype(np.float32), marks


def _enlarged(rgb: np.ndarray) -> tuple[Any, int]:
    """``(Y, X, 3) uint8`` as a PIL image enlarged by a whole factor to about 512 pixels (each
    pixel a visible square), and that factor."""
    from PIL import Image

    ny, nx = rgb.shape[:2]
    scale = max(1, 512 // max(ny, nx))
    return Image.fromarray(rgb).resize((nx * scale, ny * scale), Image.NEAREST), scale


def spectrum_png(path: Any, raw: np.ndarray, setup: OpticalSetup, params: SIMParameters) -> None:
    """Save the spectrum with the found carriers circled (and the OTF cutoff) as a PNG, with a
    legend below it saying what the marks are."""
    from PIL import Image, ImageDraw

    from scope.export.text import get_font

    spec, marks = spectrum_with_carriers(raw, setup, params)
    lo, hi = np.percentile(spec, [1, 99.9])
    img = np.clip((spec - lo) / max(hi - lo, 1e-12), 0, 1)
    ny, nx = img.shape
    rgb, scale = _enlarged(np.repeat((img * 255).astype(np.uint8)[..., None], 3, axis=-1))
    draw = ImageDraw.Draw(rgb)
    r = 6
    for y, x in marks:
        cx, cy = x * scale, y * scale
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(255, 80, 80), width=2)
    rc = setup.cutoff_per_um * nx * setup.pixel_size_um * scale
    c = (nx // 2 * scale, ny // 2 * scale)
    draw.ellipse([c[0] - rc, c[1] - rc, c[0] + rc, c[1] + rc], outline=(80, 160, 255), width=1)
    font = get_font(13)
    lines = [
        ((255, 80, 80), "o  pattern carriers found (+k and -k of each angle)"),
        ((80, 160, 255), f"O  detection cutoff 2NA/λ = {setup.cutoff_per_um:.2f} /µm"),
    ]
    line_h, pad = 18, 6
    canvas = Image.new("RGB", (rgb.width, rgb.height + pad + line_h * len(lines)), (0, 0, 0))
    canvas.paste(rgb, (0, 0))
    legend = ImageDraw.Draw(canvas)
    for i, (colour, text) in enumerate(lines):
        legend.text((4, rgb.height + pad + i * line_h), text, fill=colour, font=font)
    canvas.save(path)


@dataclass(frozen=True)
class ModulationMap:
    """Where the pattern is modulated, per camera pixel (see :func:`modulation_map`).

    Attributes
    ----------
    mcnr : ndarray (Y, X)
        Modulation contrast-to-noise ratio, the mean over the angles. About 0.9 where there
        is no pattern at all (the noise floor); well above 3 where SIM has signal to work with.
    modulation : ndarray (Y, X)
        Local modulation depth of the recorded pattern (mean over the angles), 0..1: the
        illumination's modulation times the OTF at the pattern frequency, lower where
        out-of-focus light adds unmodulated background.
    per_angle_mcnr : ndarray (A, Y, X)
    window_px : float
        Gaussian window (sigma, camera pixels) the pattern is averaged over.
    """

    mcnr: np.ndarray
    modulation: np.ndarray
    per_angle_mcnr: np.ndarray
    window_px: float

    def summary(self) -> dict[str, float]:
        """Medians and the share of pixels with MCNR >= 3, for reports."""
        return {
            "median_mcnr": round(float(np.median(self.mcnr)), 2),
            "median_modulation": round(float(np.median(self.modulation)), 3),
            "fraction_mcnr_3_or_more": round(float(np.mean(self.mcnr >= 3)), 3),
            "window_px": round(self.window_px, 2),
        }


def modulation_map(
    raw: np.ndarray,
    setup: OpticalSetup,
    params: SIMParameters,
    *,
    offset_adu: float = 0.0,
    gain_adu_per_e: float | None = None,
    read_noise_e: float = 0.0,
    window_px: float | None = None,
    otf: OTF | None = None,
) -> ModulationMap:
    """Local modulation contrast-to-noise ratio of one raw set.

    Per angle, the +1 order is separated pixel by pixel with the estimated phases and
    demodulated with the estimated carrier, ``a(r) = C+(r) exp(-2 pi i p.r)``; for a pattern
    ``1 + m cos(2 pi p.r + phi)`` it is ``C0 m / 2``. Averaged over a Gaussian window ``w``
    (sigma: one pattern period, at least 1.5 pixels), its amplitude is compared with its shot
    noise, ``var = (w^2 * sum_n |c_n|^2 (D_n + sigma_read^2))``, with the frames in
    photo-electrons (``gain_adu_per_e`` measured from the data when not given,
    :func:`estimate_gain`).
    """
    from scipy import ndimage

    from scope.sim.spectral import pixel_coordinates_um, separation_matrix

    frames = np.asarray(raw, np.float64)
    n_ph = params.n_phases
    if frames.ndim != 3 or frames.shape[0] != params.n_frames:
        raise DataFormatError(
            f"expected one SIM set of {params.n_frames} frames (angles x phases, Y, X) for "
            f"the modulation map; got shape {frames.shape}"
        )
    if gain_adu_per_e is None:
        gain_adu_per_e = estimate_gain(frames, setup, offset_adu=offset_adu, otf=otf)
    electrons = (frames - offset_adu) / gain_adu_per_e
    y, x = pixel_coordinates_um(frames.shape[-2:], setup.pixel_size_um)
    if window_px is None:
        period_px = max(a.period_nm for a in params.angles) / setup.pixel_size_nm
        window_px = max(1.5, period_px)
    sigma = float(window_px)

    def smooth(a: np.ndarray, s: float) -> np.ndarray:
        return ndimage.gaussian_filter(a, s, mode="reflect")

    per_angle, depth = [], []
    for i, ang in enumerate(params.angles):
        d = electrons[i * n_ph : (i + 1) * n_ph]
        c = separation_matrix(ang.phases_rad)
        kx, ky = ang.k_per_um
        demod = np.tensordot(c[1], d, axes=1) * np.exp(-2j * np.pi * (kx * x + ky * y))
        amplitude = np.abs(smooth(demod.real, sigma) + 1j * smooth(demod.imag, sigma))
        zero = smooth(np.tensordot(c[0].real, d, axes=1), sigma)
        # the window's squared weights: a Gaussian of sigma / sqrt(2), scaled by 1/(4 pi s^2)
        counts = np.clip(d, 0, None) + read_noise_e**2
        var_pixel = np.tensordot(np.abs(c[1]) ** 2, counts, axes=1)
        var = smooth(var_pixel, sigma / math.sqrt(2)) / (4 * math.pi * sigma**2)
        per_angle.append(amplitude / np.sqrt(np.maximum(var, 1e-12)))
        depth.append(np.clip(2 * amplitude / np.maximum(zero, 1e-12), 0, 1))
    per = np.stack(per_angle).astype(np.float32)
    return ModulationMap(
        mcnr=per.mean(axis=0),
        modulation=np.mean(depth, axis=0).astype(np.float32),
        per_angle_mcnr=per,
        window_px=sigma,
    )


def modulation_png(path: Any, mmap: ModulationMap, *, top: float | None = None) -> None:
    """Save the MCNR map in a perceptual colormap with a colour bar and its scale."""
    from PIL import Image, ImageDraw

    from scope.export.colormaps import apply_colormap
    from scope.export.text import get_font

    top = top or max(3.0, float(np.percentile(mmap.mcnr, 99)))
    rgb = apply_colormap(np.clip(mmap.mcnr / top, 0, 1).astype(np.float32), "inferno")
    img, _ = _enlarged(rgb)
    bar_h, pad = 14, 6
    font = get_font(13)
    canvas = Image.new("RGB", (img.width, img.height + bar_h + 3 * pad + 14), (0, 0, 0))
    canvas.paste(img, (0, 0))
    ramp = np.linspace(0, 1, img.width, dtype=np.float32)[None, :].repeat(bar_h, 0)
    canvas.paste(Image.fromarray(apply_colormap(ramp, "inferno")), (0, img.height + pad))
    draw = ImageDraw.Draw(canvas)
    ty = img.height + bar_h + 2 * pad
    draw.text((2, ty), "MCNR 0", fill=(230, 230, 230), font=font)
    label = f"{top:.0f}"
    draw.text((img.width - 8 * len(label) - 4, ty), label, fill=(230, 230, 230), font=font)
    if top > 3:
        x3 = int(3 / top * (img.width - 1))
        draw.line([(x3, img.height + pad), (x3, img.height + pad + bar_h)], fill=(80, 200, 255))
        draw.text((x3 - 4, ty), "3", fill=(80, 200, 255), font=font)
    canvas.save(path)


def carrier_report(params: SIMParameters) -> str:
    """One line per angle: orientation (the angle modulo 180°, as patterns are quoted; the
    ``.params.json`` keeps the wave vector's direction), period, modulation, confidence,
    source. The carrier's peak-to-noise is what the estimate rests on: below 5 (the
    estimator's ``min_confidence``) no carrier is taken, above about 10 it is clear."""
    lines = []
    for i, a in enumerate(params.angles):
        conf = "n/a" if math.isnan(a.confidence) else f"{a.confidence:.1f}"
        lines.append(
            f"angle {i}: {a.orientation_deg:7.2f}°  period {a.period_nm:7.1f} nm  "
            f"modulation {a.modulation:.2f}  carrier peak/noise {conf}  ({a.source})"
        )
    if any(not math.isnan(a.confidence) for a in params.angles):
        from scope.sim.estimate import EstimationSettings

        lines.append(
            f"(carrier peak/noise: {EstimationSettings().min_confidence:g} at least to be "
            "taken, above 10 clear)"
        )
    return "\n".join(lines)


def tile_pattern_png(path: Any, tiled: TiledParameters) -> None:
    """Save a map of the pattern across the field, one panel per orientation: each tile's
    cell coloured by how far its pattern's phase drifts from the whole frame's (0 to pi rad)
    and labelled with its local period's difference from the whole frame's (%). A picture of
    the illumination optics' distortion (:mod:`scope.sim.pattern_map`); grey cells: too little
    structure to estimate (the whole frame's pattern used). The cells keep the field's
    aspect (a large field is sampled by tiles with gaps between them: each cell stands for its
    tile's share of the field)."""
    from PIL import Image, ImageDraw

    from scope.export.colormaps import apply_colormap
    from scope.export.text import get_font

    grid = tiled.grid
    n_rows, n_cols = len(grid.row_starts), len(grid.col_starts)
    scale = min(480, 72 * max(n_rows, n_cols)) / max(grid.shape)  # panel pixels per camera pixel
    cell_h = max(24, round(grid.shape[0] * scale / n_rows))
    cell_w = max(24, round(grid.shape[1] * scale / n_cols))
    pad, title_h, bar_h = 8, 20, 12
    font, small = get_font(13), get_font(max(9, min(cell_w, 2 * cell_h) // 5))
    n_angles = tiled.global_params.n_angles
    width = n_angles * (n_cols * cell_w + pad) + pad
    height = title_h + n_rows * cell_h + 2 * pad + bar_h + 18
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    colours = apply_colormap(np.clip(tiled.drift_rad / math.pi, 0, 1).astype(np.float32), "inferno")
    for a, g in enumerate(tiled.global_params.angles):
        x0 = pad + a * (n_cols * cell_w + pad)
        draw.text(
            (x0, 2), f"{g.angle_deg:.1f}°, {g.period_nm:.1f} nm", fill=(230, 230, 230), font=font
        )
        for i in range(len(grid)):
            r, c = divmod(i, n_cols)
            box = (
                x0 + c * cell_w,
                title_h + r * cell_h,
                x0 + (c + 1) * cell_w - 1,
                title_h + (r + 1) * cell_h - 1,
            )
            if not tiled.estimated[i]:
                draw.rectangle(box, fill=(70, 70, 70))
                continue
            draw.rectangle(box, fill=tuple(int(v) for v in colours[i, a]))
            local = tiled.tiles[i].angles[a].period_nm
            text = f"{100 * (local / g.period_nm - 1):+.1f}%"
            shade = (0, 0, 0) if tiled.drift_rad[i, a] > 0.6 * math.pi else (235, 235, 235)
            draw.text((box[0] + 3, box[1] + cell_h // 2 - 6), text, fill=shade, font=small)
    ramp = np.linspace(0, 1, width - 2 * pad, dtype=np.float32)[None, :].repeat(bar_h, 0)
    by = title_h + n_rows * cell_h + pad
    canvas.paste(Image.fromarray(apply_colormap(ramp, "inferno")), (pad, by))
    draw.text(
        (pad, by + bar_h + 3),
        "phase drift from the whole frame's pattern: 0 … π rad   "
        "(labels: local period vs the frame's)",
        fill=(230, 230, 230),
        font=get_font(11),
    )
    canvas.save(path)
