"""Camera offset, gain and read noise from dark and flat frames (photon transfer).

A camera pixel reports ``ADU = offset + G * n_e + read noise`` where ``n_e`` photo-electrons are
Poisson distributed (variance = mean) and ``G`` is the gain in ADU per electron. Over repeated
frames of a steady scene each pixel therefore has a temporal variance

    var_ADU = G * (mean_ADU - offset) + sigma_read_ADU**2

— a straight line in (mean, variance), the *photon-transfer curve*. Dark frames give the offset
(mean) and the read noise (variance); flat frames at a few light levels give the slope ``G``.
Using temporal variances (each pixel against itself) removes fixed-pattern differences between
pixels. The conversion factor ``1 / G`` (electrons per ADU) turns raw frames into
photo-electrons: ``n_e = (ADU - offset) / G``.

For sCMOS cameras every pixel has its own amplifier, so the same fit is made per pixel, giving an
offset map, a gain map and a read-noise variance map (Huang et al. 2013). Those maps are what
:func:`to_electrons` applies.

References
----------
Janesick, *Photon Transfer: DN -> lambda*, SPIE Press (2007).
Huang, F. et al., "Video-rate nanoscopy using sCMOS camera-specific single-molecule localization
algorithms", Nat. Methods 10, 653-658 (2013), Supplementary Note (per-pixel calibration).
EMVA Standard 1288, release 4.0 (2021), sections 6.1-6.3 (mean-variance method).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> dark = simulate_frames(np.zeros((32, 32)), 50, gain_adu_per_e=2.0, read_noise_e=1.5, rng=rng)
>>> flats = [simulate_frames(np.full((32, 32), s), 50, gain_adu_per_e=2.0, read_noise_e=1.5,
...                          rng=rng) for s in (100, 400, 1600)]
>>> cal = photon_transfer(dark, flats)
>>> round(cal.gain_adu_per_e, 1), round(cal.read_noise_e, 1)
(2.0, 1.5)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from scope.errors import ConfigurationError, DataFormatError

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraCalibration:
    """One offset, gain and read noise for the whole sensor (CCD/CMOS/EMCCD-style).

    Attributes
    ----------
    offset_adu : float
        Mean dark level, ADU.
    gain_adu_per_e : float
        Slope of the photon-transfer curve, ADU per photo-electron.
    read_noise_e : float
        Read noise, electrons rms.
    n_levels : int
        Number of light levels (dark included) in the fit.
    fit_rms_rel : float
        Rms of the relative residuals of the variance fit (linearity check).
    """

    offset_adu: float
    gain_adu_per_e: float
    read_noise_e: float
    n_levels: int = 0
    fit_rms_rel: float = float("nan")

    @property
    def gain_e_per_adu(self) -> float:
        """Conversion factor, photo-electrons per ADU."""
        return 1.0 / self.gain_adu_per_e

    @property
    def read_noise_adu(self) -> float:
        return self.read_noise_e * self.gain_adu_per_e

    def to_electrons(self, raw: np.ndarray) -> np.ndarray:
        """Raw ADU frames to photo-electrons, float32."""
        return (np.asarray(raw, dtype=np.float32) - np.float32(self.offset_adu)) * np.float32(
            self.gain_e_per_adu
        )

    def to_toml(self) -> dict[str, Any]:
        return {
            "method": "photon-transfer",
            "offset_adu": float(self.offset_adu),
            "gain_e_per_adu": float(self.gain_e_per_adu),
            "read_noise_e": float(self.read_noise_e),
            "n_levels": int(self.n_levels),
            "fit_rms_rel": float(self.fit_rms_rel),
        }

    @classmethod
    def from_toml(cls, table: dict[str, Any]) -> CameraCalibration:
        try:
            return cls(
                offset_adu=float(table["offset_adu"]),
                gain_adu_per_e=1.0 / float(table["gain_e_per_adu"]),
                read_noise_e=float(table["read_noise_e"]),
                n_levels=int(table.get("n_levels", 0)),
                fit_rms_rel=float(table.get("fit_rms_rel", float("nan"))),
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
            raise DataFormatError(
                "[calibration.camera] needs offset_adu, gain_e_per_adu (> 0) and read_noise_e: "
                f"{err!r}; re-run the camera calibration"
            ) from err


@dataclass(frozen=True)
class SCMOSMaps:
    """Per-pixel offset (ADU), gain (ADU per electron) and read-noise variance (ADU**2) maps."""

    offset_adu: np.ndarray
    gain_adu_per_e: np.ndarray
    variance_adu2: np.ndarray

    def __post_init__(self) -> None:
        shapes = {self.offset_adu.shape, self.gain_adu_per_e.shape, self.variance_adu2.shape}
        if len(shapes) != 1 or self.offset_adu.ndim != 2:
            raise DataFormatError(
                "sCMOS maps must be three 2D arrays of the same shape (offset, gain, variance); "
                f"got {self.offset_adu.shape}, {self.gain_adu_per_e.shape}, "
                f"{self.variance_adu2.shape}"
            )
        for name, arr in (
            ("offset", self.offset_adu),
            ("gain", self.gain_adu_per_e),
            ("variance", self.variance_adu2),
        ):
            if not np.all(np.isfinite(arr)):
                raise DataFormatError(f"the {name} map has NaN or infinite values: re-measure it")
        if np.any(self.gain_adu_per_e <= 0):
            raise DataFormatError(
                f"the gain map has {int(np.sum(self.gain_adu_per_e <= 0))} pixels <= 0: gains "
                "must be positive (ADU per electron)"
            )
        if np.any(self.variance_adu2 < 0):
            raise DataFormatError("the variance map has negative values: variances are >= 0")

    @property
    def shape(self) -> tuple[int, int]:
        return self.offset_adu.shape  # type: ignore[return-value]

    @property
    def read_noise_e(self) -> np.ndarray:
        """Per-pixel read noise in electrons rms."""
        return np.sqrt(self.variance_adu2) / self.gain_adu_per_e

    def to_electrons(self, raw: np.ndarray, *, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
        """Raw frames ``(..., Y, X)`` to photo-electrons with these maps.

        ``origin`` is the (row, column) of the raw frames' first pixel on the sensor, for frames
        taken with a region of interest smaller than the maps.
        """
        return to_electrons(raw, self, origin=origin)

    def summary(self) -> CameraCalibration:
        """Sensor-wide medians as a :class:`CameraCalibration`."""
        return CameraCalibration(
            offset_adu=float(np.median(self.offset_adu)),
            gain_adu_per_e=float(np.median(self.gain_adu_per_e)),
            read_noise_e=float(np.median(self.read_noise_e)),
        )


# ---------------------------------------------------------------------------------------------
# measurement
# ---------------------------------------------------------------------------------------------


#: a flat pixel is left out of the fit when any of its frames reaches the camera's full scale,
#: or when its temporal mean lies within this many temporal standard deviations of it (some of
#: its frames would be clipped, and a pixel whose frames happen not to be is a biased draw)
CLIP_MARGIN_SIGMA = 4.0

#: a flat level left with fewer unclipped pixels than this share of its pixels is left out
MIN_USABLE_SHARE = 0.05

#: clipped share of a level's pixels from which the exclusion is a warning (below it: info, a
#: few hot pixels)
WARN_CLIPPED_SHARE = 1e-3

#: rms of the relative residuals of the photon-transfer fit above which the gain is questioned
#: (a linear camera under steady light gives well under 1 %; 29 % of a level's pixels clipped at
#: 4095 gave 21 %)
FIT_RMS_WARN = 0.05

#: a flat whose mean lies less than this many dark (read-noise) standard deviations above the
#: dark level is refused: the dark and flat files are probably mixed up
MIN_FLAT_SIGNAL_SIGMA = 3.0


def _as_stack(frames: Any, what: str) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 3 or arr.shape[0] < 2:
        raise DataFormatError(
            f"{what} must be a stack (n_frames >= 2, Y, X) of frames of a steady scene; got "
            f"shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise DataFormatError(f"{what} must be finite numbers; got dtype {arr.dtype} or NaN/inf")
    return arr.astype(np.float64, copy=False)


def temporal_statistics(frames: Any, *, what: str = "frames") -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel temporal mean and unbiased variance of a stack ``(n, Y, X)``."""
    arr = _as_stack(frames, what)
    return arr.mean(axis=0), arr.var(axis=0, ddof=1)


def _word_dtype(arr: np.ndarray) -> np.dtype:
    """The data type whose full scale applies to ``arr``: its own, or ``uint16`` for whole
    numbers from 0 to 65535 stored as floating point (camera values converted on the way)."""
    if arr.dtype.kind != "f" or arr.size == 0 or not np.all(np.isfinite(arr)):
        return arr.dtype
    if float(arr.min()) >= 0 and float(arr.max()) <= 65535 and np.array_equal(arr, np.rint(arr)):
        return np.dtype(np.uint16)
    return arr.dtype


def full_scale(
    frames: Sequence[Any], saturation_adu: float | None = None, *, pixel_format: str | None = None
) -> tuple[float | None, str]:
    """The camera's full scale for these frames, and where it comes from.

    Parameters
    ----------
    frames : sequence of arrays
        Raw frames as recorded, one array per file (the first one's data type counts).
    saturation_adu : float, optional
        The full scale, when known (``--saturation-adu``): returned as given.
    pixel_format : str, optional
        The camera's GenICam pixel format, where the file records it (``"Mono12"``).

    Returns
    -------
    level : float or None
        From the pixel format, else the data type (whole numbers 0-65535 stored as floating
        point count as 16-bit words), where 10, 12 or 14-bit values in 16-bit words are
        recognised by values piling up at 1023, 4095 or 16383 — as ``scope reconstruct`` finds
        them (:class:`scope.sim.saturation.SaturationCounter`); None for other floating-point
        data.
    source : str
        ``"given"``, the data type's or pixel format's name, ``"12-bit values in 16-bit words"``
        or ``"unknown"``.
    """
    from scope.sim.saturation import SaturationCounter

    arrays = [np.asarray(f) for f in frames]
    dtype = _word_dtype(arrays[0]) if arrays else None
    counter = SaturationCounter(saturation_adu, dtype=dtype, pixel_format=pixel_format)
    for arr in arrays:
        counter.update(arr)
    return counter.level_adu, counter.source


def _full_scale_hint(source: str) -> str:
    """What to do when the full scale found is not the camera's."""
    if source == "given":
        return ""
    return " (if that is not the camera's full scale, give it with --saturation-adu)"


@dataclass(frozen=True)
class _Level:
    """One flat level: per-pixel temporal statistics and the pixels the fit may use."""

    label: str
    mean: np.ndarray
    var: np.ndarray
    usable: np.ndarray
    #: the usable pixels' mean signal above the dark level and mean temporal variance (ADU,
    #: ADU²): the level's point of the sensor-wide photon-transfer fit
    signal: float
    variance: float


@dataclass(frozen=True)
class _PhotonData:
    """Dark statistics and the flat levels that go into the photon-transfer fits."""

    offset: np.ndarray
    read_var: np.ndarray
    levels: list[_Level]


def _prepare(
    dark: Any,
    flats: Sequence[Any],
    *,
    saturation_adu: float | None,
    pixel_format: str | None,
    dark_name: str | None,
    flat_names: Sequence[str] | None,
) -> _PhotonData:
    """Temporal statistics of the dark and flat stacks, with clipped flat pixels marked unusable
    (levels mostly clipped left out) and flats that are no brighter than the dark refused."""
    if len(flats) < 1:
        raise DataFormatError(
            "photon transfer needs flat stacks at one light level at least (better 4-8 levels "
            "from ~10 % to ~70 % of full scale)"
        )
    if flat_names is not None and len(flat_names) != len(flats):
        raise DataFormatError(f"{len(flat_names)} flat names for {len(flats)} flat stacks")
    dark_label = f"the dark frames ({dark_name})" if dark_name else "the dark frames"
    offset, read_var = temporal_statistics(dark, what=dark_label)
    dark_level = float(offset.mean())
    read_sd = float(np.sqrt(read_var.mean()))
    labels = [
        f"flat level {i}" + (f" ({flat_names[i]})" if flat_names is not None else "")
        for i in range(len(flats))
    ]
    for label, flat in zip(labels, flats, strict=True):
        shape = np.shape(flat)
        if len(shape) == 3 and shape[1:] != offset.shape:
            raise DataFormatError(
                f"{label} has frames of {shape[1:]} but the dark frames are {offset.shape}: "
                "take them with the same region of interest"
            )
    if not read_sd > 0:
        raise DataFormatError(
            f"{dark_label} do not vary from frame to frame (all at {dark_level:.1f} ADU): the "
            "camera clips its dark level (raise its black level / offset so the dark frames "
            "sit above 0 with visible noise) or the frames are copies of one"
        )
    level_adu, source = full_scale(flats, saturation_adu, pixel_format=pixel_format)
    where = f"{level_adu:g} ADU, the camera's full scale ({source})"
    levels = []
    for label, flat in zip(labels, flats, strict=True):
        raw = np.asarray(flat)
        mean, var = temporal_statistics(raw, what=label)
        usable = np.ones(mean.shape, dtype=bool)
        if level_adu is not None:
            clipped = np.any(raw >= level_adu, axis=0)
            clipped |= mean + CLIP_MARGIN_SIGMA * np.sqrt(var) >= level_adu
            share = float(clipped.mean())
            if share > 1.0 - MIN_USABLE_SHARE:
                log.warning(
                    "%s: %.0f %% of its pixels reach %s, or come within noise of it: left out "
                    "of the fit. Use less light or a shorter exposure for this level%s",
                    label,
                    100 * share,
                    where,
                    _full_scale_hint(source),
                )
                continue
            if share > 0:
                log.log(
                    logging.WARNING if share >= WARN_CLIPPED_SHARE else logging.INFO,
                    "%s: %.3g %% of its pixels reach %s, or come within noise of it: those "
                    "pixels are left out of the fit%s",
                    label,
                    100 * share,
                    where,
                    _full_scale_hint(source),
                )
                usable = ~clipped
        signal = float(np.mean((mean - offset)[usable]))
        variance = float(np.mean(var[usable]))
        flat_level = float(np.mean(mean[usable]))
        if signal < MIN_FLAT_SIGNAL_SIGMA * read_sd:
            relation = (
                f"{-signal:.1f} ADU below"
                if signal < 0
                else f"only {signal:.1f} ADU (< {MIN_FLAT_SIGNAL_SIGMA:g} x the read noise of "
                f"{read_sd:.1f} ADU) above"
            )
            raise DataFormatError(
                f"{label} averages {flat_level:.1f} ADU, {relation} the {dark_level:.1f} ADU of "
                f"{dark_label}: a flat must be clearly brighter than the dark frames. The files "
                "may be mixed up: --dark takes frames with no light, --flat frames of a "
                "uniform light field; if they are right, use more light for this level"
            )
        if not variance > 0:
            raise DataFormatError(
                f"{label} at {flat_level:.1f} ADU does not vary from frame to "
                "frame: it is clipped at full scale (use less light, or give the saturation "
                "level, --saturation-adu, to leave it out) or its frames are copies of one"
            )
        levels.append(_Level(label, mean, var, usable, signal, variance))
    if not levels:
        raise DataFormatError(
            f"every flat level is clipped at {where}: use less light or a shorter exposure"
            f"{_full_scale_hint(source)}"
        )
    return _PhotonData(offset, read_var, levels)


def _fit_sensor(data: _PhotonData) -> CameraCalibration:
    """The sensor-wide fit of :func:`photon_transfer` on prepared statistics."""
    read_var_adu2 = float(data.read_var.mean())
    s = np.asarray([0.0] + [lv.signal for lv in data.levels])
    v = np.asarray([read_var_adu2] + [lv.variance for lv in data.levels])
    if s.max() <= 10 * np.sqrt(read_var_adu2):
        raise DataFormatError(
            f"the flats are only {s.max():.1f} ADU above the dark level (read noise "
            f"{np.sqrt(read_var_adu2):.1f} ADU): use more light so the shot noise dominates"
        )
    w = 1.0 / v  # sqrt of the weights 1 / v**2
    design = np.stack([s * w, w], axis=1)
    (slope, intercept), *_ = np.linalg.lstsq(design, v * w, rcond=None)
    if not slope > 0:
        raise DataFormatError(
            f"the variance does not grow with the signal (slope {slope:.3g}): check that the "
            "flats are lit and the scene is steady"
        )
    resid = (v - (slope * s + intercept)) / v
    cal = CameraCalibration(
        offset_adu=float(data.offset.mean()),
        gain_adu_per_e=float(slope),
        read_noise_e=float(np.sqrt(read_var_adu2) / slope),
        n_levels=len(s),
        fit_rms_rel=float(np.sqrt(np.mean(resid**2))),
    )
    if cal.fit_rms_rel > FIT_RMS_WARN:
        per_level = ", ".join(
            f"{lv.label} {100 * r:+.1f} %" for lv, r in zip(data.levels, resid[1:], strict=True)
        )
        log.warning(
            "photon transfer: the variances depart from a straight line by %.1f %% rms (a "
            "linear camera under steady light gives under %.0f %%), so the gain %.4f ADU/e- is "
            "doubtful. Residuals: dark %+.1f %%, %s. Look for flats clipped at the camera's "
            "full scale (give it with --saturation-adu if it is not the data type's), "
            "flickering light, or levels beyond the camera's linear range, and leave those "
            "levels out",
            100 * cal.fit_rms_rel,
            100 * FIT_RMS_WARN,
            cal.gain_adu_per_e,
            100 * resid[0],
            per_level,
        )
    log.info(
        "photon transfer: offset %.2f ADU, gain %.4f ADU/e- (%.4f e-/ADU), read noise %.3f e-",
        cal.offset_adu,
        cal.gain_adu_per_e,
        cal.gain_e_per_adu,
        cal.read_noise_e,
    )
    return cal


def _fit_pixels(data: _PhotonData) -> SCMOSMaps:
    """The per-pixel fits of :func:`pixel_maps` on prepared statistics."""
    offset, read_var = data.offset, data.read_var
    s = np.stack([lv.mean - offset for lv in data.levels])
    v = np.stack([lv.var - read_var for lv in data.levels])
    m = np.stack([lv.usable for lv in data.levels]).astype(np.float64)
    den = np.sum(m * s * s, axis=0)
    if np.any(den <= 0):
        none_usable = m.sum(axis=0) == 0
        raise DataFormatError(
            f"{int(np.sum(den <= 0))} pixels see no light above the dark level"
            + (
                f" ({int(none_usable.sum())} of them clipped at full scale in every flat level: "
                "add a level with less light)"
                if none_usable.any()
                else ""
            )
            + ": light the whole sensor evenly"
        )
    # first pass: plain least squares; second: weights 1 / var(v) ~ 1 / (g s + r)**2 from the
    # first-pass model (not from the measured v, which would bias towards low noise draws);
    # clipped (pixel, level) pairs weigh nothing
    gain = np.sum(m * v * s, axis=0) / den
    w = m / np.maximum(np.abs(gain) * s + read_var, 1e-12) ** 2
    gain = np.sum(w * v * s, axis=0) / np.sum(w * s * s, axis=0)
    bad = ~(gain > 0)
    if np.any(bad):
        log.warning("%d pixels have a non-positive gain estimate: set to the median", bad.sum())
        gain[bad] = np.median(gain[~bad])
    return SCMOSMaps(
        offset.astype(np.float32), gain.astype(np.float32), read_var.astype(np.float32)
    )


def calibrate_camera(
    dark: Any,
    flats: Sequence[Any],
    *,
    maps: bool = False,
    saturation_adu: float | None = None,
    pixel_format: str | None = None,
    dark_name: str | None = None,
    flat_names: Sequence[str] | None = None,
) -> tuple[CameraCalibration, SCMOSMaps | None]:
    """Sensor-wide photon transfer and, with ``maps``, per-pixel maps from one reading of the
    stacks (what ``scope calibrate camera`` does).

    Parameters
    ----------
    dark, flats, saturation_adu, pixel_format, dark_name, flat_names
        As for :func:`photon_transfer`.
    maps : bool
        Also fit the per-pixel maps (:func:`pixel_maps`).

    Returns
    -------
    (CameraCalibration, SCMOSMaps or None)
    """
    data = _prepare(
        dark,
        flats,
        saturation_adu=saturation_adu,
        pixel_format=pixel_format,
        dark_name=dark_name,
        flat_names=flat_names,
    )
    return _fit_sensor(data), _fit_pixels(data) if maps else None


def photon_transfer(
    dark: Any,
    flats: Sequence[Any],
    *,
    saturation_adu: float | None = None,
    pixel_format: str | None = None,
    dark_name: str | None = None,
    flat_names: Sequence[str] | None = None,
) -> CameraCalibration:
    """Sensor-wide offset, gain and read noise by the mean-variance method.

    Parameters
    ----------
    dark : array (n, Y, X)
        Frames with no light (same exposure as the flats).
    flats : sequence of arrays (n, Y, X)
        Frames of a uniform, steady light field, one stack per light level, each clearly
        brighter than the dark frames (else refused: the files may be mixed up).
    saturation_adu : float, optional
        The camera's full scale. Default: from ``pixel_format``, else the flats' data type, with
        10, 12 and 14-bit values in 16-bit words recognised where they pile up at 1023, 4095 or
        16383 (:func:`full_scale`); none for floating-point data of other than whole numbers.
        Flat pixels that reach it in any frame, or whose mean lies within
        :data:`CLIP_MARGIN_SIGMA` temporal standard deviations of it, are left out of the fit
        (with a warning); a level left with under :data:`MIN_USABLE_SHARE` of its pixels is
        left out whole.
    pixel_format : str, optional
        The camera's pixel format (``"Mono12"``), where the file records it.
    dark_name, flat_names : str, optional
        File names of the stacks, for the messages.

    Returns
    -------
    CameraCalibration
        Gain is the slope of the mean temporal variance against the mean signal above offset
        (weighted least squares over the levels, weights ~ 1/variance**2 since the variance of
        a variance estimate grows with its square); read noise comes from the dark frames. A
        fit whose relative residuals exceed :data:`FIT_RMS_WARN` rms is warned about.
    """
    cal, _ = calibrate_camera(
        dark,
        flats,
        saturation_adu=saturation_adu,
        pixel_format=pixel_format,
        dark_name=dark_name,
        flat_names=flat_names,
    )
    return cal


def pixel_maps(
    dark: Any,
    flats: Sequence[Any],
    *,
    saturation_adu: float | None = None,
    pixel_format: str | None = None,
    dark_name: str | None = None,
    flat_names: Sequence[str] | None = None,
) -> SCMOSMaps:
    """Per-pixel offset, gain and read-noise variance maps (sCMOS).

    Per pixel ``i``: offset and read variance from the dark stack; the gain is the least-squares
    slope through the dark point, ``g_i = sum_l (v_il - r_i) s_il / sum_l s_il**2`` with
    ``s_il`` the mean above offset and ``v_il`` the temporal variance at level ``l`` (Huang et al.
    2013), weighted by the inverse variance of each variance estimate; a pixel clipped at a
    level (see :func:`photon_transfer`, whose parameters these are) leaves that level out of its
    own fit. Each pixel's gain has a relative error of about ``sqrt(2 / (n_frames * n_levels))``:
    6 levels of 200 frames give ~4 % per pixel.
    """
    data = _prepare(
        dark,
        flats,
        saturation_adu=saturation_adu,
        pixel_format=pixel_format,
        dark_name=dark_name,
        flat_names=flat_names,
    )
    return _fit_pixels(data)


# ---------------------------------------------------------------------------------------------
# applying
# ---------------------------------------------------------------------------------------------


def to_electrons(
    raw: Any, calibration: CameraCalibration | SCMOSMaps, *, origin: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """Convert raw ADU frames ``(..., Y, X)`` into photo-electrons (float32).

    ``n_e = (ADU - offset) / gain`` with a sensor-wide calibration or per-pixel maps; with maps,
    ``origin`` places the frames on the sensor (region of interest).
    """
    arr = np.asarray(raw)
    if arr.ndim < 2 or not np.issubdtype(arr.dtype, np.number):
        raise DataFormatError(
            f"raw frames must be numeric (..., Y, X); got {arr.shape} {arr.dtype}"
        )
    if isinstance(calibration, CameraCalibration):
        return calibration.to_electrons(arr)
    y0, x0 = origin
    ny, nx = arr.shape[-2:]
    my, mx = calibration.shape
    if y0 < 0 or x0 < 0 or y0 + ny > my or x0 + nx > mx:
        raise DataFormatError(
            f"frames of {ny}x{nx} at origin {origin} do not fit inside the {my}x{mx} camera "
            "maps: check the region of interest or re-measure the maps at this size"
        )
    sl = (slice(y0, y0 + ny), slice(x0, x0 + nx))
    offset = calibration.offset_adu[sl].astype(np.float32)
    inv_gain = (1.0 / calibration.gain_adu_per_e[sl]).astype(np.float32)
    return (arr.astype(np.float32) - offset) * inv_gain


# ---------------------------------------------------------------------------------------------
# files and presets
# ---------------------------------------------------------------------------------------------


def read_scmos_maps(
    offset: str | Path,
    gain: str | Path,
    variance: str | Path,
    *,
    gain_units: str = "adu_per_e",
) -> SCMOSMaps:
    """Read offset, gain and variance maps from TIFF files.

    ``gain_units`` is ``"adu_per_e"`` (the usual convention of sCMOS maps, e.g. B-SIM's) or
    ``"e_per_adu"``; the variance map is in ADU**2.
    """
    import tifffile

    arrays = []
    for name, path in (("offset", offset), ("gain", gain), ("variance", variance)):
        path = Path(path)
        if not path.exists():
            raise DataFormatError(f"{name} map {path} does not exist")
        try:
            arrays.append(np.squeeze(tifffile.imread(path)).astype(np.float32))
        except Exception as err:  # tifffile raises several types for a bad file
            raise DataFormatError(f"cannot read the {name} map {path}: {err}") from err
    off, g, var = arrays
    if gain_units == "e_per_adu":
        g = (1.0 / g).astype(np.float32)
    elif gain_units != "adu_per_e":
        raise DataFormatError(f"gain_units must be 'adu_per_e' or 'e_per_adu', got {gain_units!r}")
    return SCMOSMaps(off, g, var)


def map_paths(preset: str | Path, prefix: str = "camera") -> dict[str, Path]:
    """Where :func:`save_camera_calibration` writes the maps: ``<prefix>_offset_map.tif``,
    ``<prefix>_gain_map.tif`` and ``<prefix>_variance_map.tif`` beside the preset."""
    folder = Path(preset).parent
    return {key: folder / f"{prefix}_{key}_map.tif" for key in ("offset", "gain", "variance")}


def save_camera_calibration(
    preset: str | Path,
    calibration: CameraCalibration | None = None,
    maps: SCMOSMaps | None = None,
    *,
    maps_prefix: str = "camera",
) -> dict[str, Any]:
    """Save a calibration (and maps, as float32 TIFFs beside the preset) into the preset.

    Writes table ``[calibration.camera]``; map files are named ``<prefix>_offset_map.tif`` etc.
    and referenced by paths relative to the preset. Each file is written under a temporary name
    and renamed into place when complete (:func:`scope.io.writers.write_atomically`).
    """
    import tifffile

    from scope.calibration.preset import update_calibration
    from scope.io.writers import write_atomically

    if calibration is None and maps is None:
        raise DataFormatError("nothing to save: give a calibration, maps or both")
    preset = Path(preset)
    table: dict[str, Any] = (calibration or maps.summary()).to_toml()  # type: ignore[union-attr]
    if maps is not None:
        files = {}
        paths = map_paths(preset, maps_prefix)
        for key, arr in (
            ("offset", maps.offset_adu),
            ("gain", maps.gain_adu_per_e),
            ("variance", maps.variance_adu2),
        ):
            data = np.asarray(arr, dtype=np.float32)
            write_atomically(paths[key], lambda tmp, data=data: tifffile.imwrite(tmp, data))
            files[key] = paths[key].name
        table["maps"] = {**files, "gain_units": "adu_per_e", "variance_units": "adu2"}
    update_calibration(preset, "camera", table)
    return table


def load_camera_calibration(
    preset: str | Path,
) -> tuple[CameraCalibration | None, SCMOSMaps | None]:
    """The camera calibration saved in a preset: (sensor-wide, maps), each None if absent."""
    from scope.calibration.preset import read_calibration

    table = read_calibration(preset, "camera")
    if table is None:
        return None, None
    cal = CameraCalibration.from_toml(table)
    maps = None
    if "maps" in table:
        m = table["maps"]
        base = Path(preset).parent
        maps = read_scmos_maps(
            base / m["offset"],
            base / m["gain"],
            base / m["variance"],
            gain_units=m.get("gain_units", "adu_per_e"),
        )
    return cal, maps


def electrons_from_maps(
    preset: str | Path, frame_shape: Sequence[int], origin: tuple[int, int] | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """Raw ADU frames -> photo-electrons with the per-pixel maps saved in ``preset``.

    The maps cover frames of ``frame_shape`` exactly, or, given ``origin`` (the frames' first
    pixel on the sensor, row and column: a ``scope acquire`` run records its region of
    interest, see ``RawStack.sensor_origin``), the part of them under the frames.
    """
    _, maps = load_camera_calibration(preset)
    if maps is None:
        raise ConfigurationError(
            f"{Path(preset).name} holds no camera maps: measure them with scope calibrate "
            "camera --maps"
        )
    ny, nx = (int(n) for n in frame_shape)
    if tuple(maps.shape) == (ny, nx) and origin in (None, (0, 0)):
        return maps.to_electrons
    my, mx = maps.shape
    if origin is None:
        raise ConfigurationError(
            f"the camera maps in {Path(preset).name} are {my}x{mx} pixels, the frames "
            f"{ny}x{nx}, and the file does not say where they sat on the sensor: record with "
            "scope acquire (it keeps the region of interest) or measure the maps with the same "
            "sensor region (scope calibrate camera --maps)"
        )
    y0, x0 = origin
    if y0 < 0 or x0 < 0 or y0 + ny > my or x0 + nx > mx:
        raise ConfigurationError(
            f"frames of {ny}x{nx} at row {y0}, column {x0} of the sensor do not fit inside the "
            f"{my}x{mx} camera maps in {Path(preset).name}: measure the maps on the whole "
            "sensor (scope calibrate camera --maps)"
        )
    log.info("camera maps cut to the frames' region of the sensor (row %d, column %d)", y0, x0)
    return partial(to_electrons, calibration=maps, origin=(y0, x0))


# ---------------------------------------------------------------------------------------------
# simulation (tests, notebooks, the simulated camera)
# ---------------------------------------------------------------------------------------------


def simulate_frames(
    photoelectrons: np.ndarray,
    n_frames: int,
    *,
    gain_adu_per_e: float | np.ndarray = 1.0,
    read_noise_e: float | np.ndarray = 1.5,
    offset_adu: float | np.ndarray = 100.0,
    bit_depth: int = 16,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Frames of a steady scene: Poisson electrons x gain + Gaussian read noise + offset.

    Values are rounded and clipped to ``[0, 2**bit_depth - 1]`` like a real ADC; float32 out.
    Per-pixel arrays for gain, read noise and offset simulate an sCMOS sensor.
    """
    rng = np.random.default_rng() if rng is None else rng
    mean_e = np.broadcast_to(np.asarray(photoelectrons, dtype=np.float64), np.shape(photoelectrons))
    shape = (n_frames, *mean_e.shape)
    electrons = rng.poisson(mean_e, size=shape).astype(np.float64)
    gain = np.asarray(gain_adu_per_e, dtype=np.float64)
    read_adu = np.asarray(read_noise_e, dtype=np.float64) * gain
    adu = np.asarray(offset_adu, dtype=np.float64) + gain * electrons
    adu += rng.standard_normal(shape) * read_adu
    return np.clip(np.rint(adu), 0, 2**bit_depth - 1).astype(np.float32)
