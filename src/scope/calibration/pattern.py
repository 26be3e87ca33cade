"""Pattern angle, period and phase-step calibration.

Two workflows, both on raw SIM sets of the real microscope (angle-major, phase fastest):

* **Uniform fluorescent slide** (``sample="uniform"``, recommended): the camera sees the
  illumination pattern itself, blurred by the detection OTF. Each frame's spectrum is first
  divided by the detection OTF x pixel transfer inside the OTF support: the OTF falls across the
  carrier's spectral width (broadened by uneven illumination) and would otherwise pull the carrier
  to lower frequencies and skew the phases. The mean of an angle's phase frames (the unmodulated
  image) is removed; the wave vector is the peak of the summed power spectrum of what is left
  (Hann-windowed), refined off the pixel grid by maximising the windowed discrete-time Fourier
  transform ``|sum_r w F e^{-2 pi i k.r}|^2`` (Nelder-Mead). With the wave vector fixed, every
  frame is fitted by weighted linear least squares with ``E(r) (c0 + c1 cos 2 pi k.r + c2 sin
  2 pi k.r)``, ``E`` a first-order envelope (uneven illumination), which gives each frame's phase
  at the centre of pixel (0, 0) and the illumination's modulation ``hypot(c1, c2) / c0`` (a lower
  bound: unmodulated background lowers it); the same fit on the unrestored frames gives the
  modulation the camera sees.
* **Beads or any structured sample** (``sample="structured"``): the reconstruction's estimator
  (:func:`scope.sim.estimate.estimate_parameters`, cross-correlation of the separated orders).

Several sets (e.g. from different slide positions) are calibrated one by one and averaged
(circular mean for the phases); their scatter is reported. The result is saved into the setup's
preset TOML under ``[calibration.pattern]`` and can be handed to the reconstruction as a prior.
Each angle is reported with one sign of its wave vector (k and -k are one grating, with the
phases negated): nearest the prior's angle, else in ``[-15, 165)`` deg
(:data:`ANGLE_RANGE_START_DEG`), whichever method measured it.

Checks before anything is saved: an offset at or above the data, or a set with no signal above
the offset, is refused (as ``scope reconstruct`` refuses them); on a "uniform slide" whose
widefield image shows a structured sample (:data:`STRUCTURED_SAMPLE_CONTRAST`) a warning says to
use ``sample="structured"``; sets whose angles or periods differ far beyond their measurement
precision (expected from each carrier's peak-to-noise, :func:`_carrier_precision`, and the
agreement of the sets of one file) hold different patterns and are refused, naming the files.
Figures not measured (the observed modulation of a structured sample, the scatter of a single
set) are None, and left out of the preset.

References
----------
Gustafsson, J. Microsc. 198, 82-87 (2000) (the pattern model).
Wicker et al., Opt. Express 21, 2032 (2013) (non-equidistant phase steps).
Lal, Shan, Xi, "Structured illumination microscopy image reconstruction algorithm", IEEE J. Sel.
Top. Quantum Electron. 22, 6803414 (2016) (parameter estimation from the raw spectra).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from scope.errors import DataFormatError, ReconstructionError
from scope.optics import OTF, OpticalSetup
from scope.sim.params import AngleParameters, SIMParameters

log = logging.getLogger(__name__)


#: figures of a pattern calibration that may be left out of a preset as not measured
_MEASURED_FIGURES = ("modulation", "modulation_observed", "angle_std_deg", "period_std_nm")

#: without a prior, a calibrated angle is reported in ``[ANGLE_RANGE_START_DEG,
#: ANGLE_RANGE_START_DEG + 180)`` (k and -k are the same grating; the phases are negated with
#: k). The edge sits 15 deg below the horizontal, away from the usual designs (0/60/120,
#: 0/45/90/135, 0/90 deg and rotations of them by up to +-15 deg), so a pattern near 0 deg is
#: never reported once as ~0 and once as ~180 deg
ANGLE_RANGE_START_DEG = -15.0

#: relative structure of the widefield image (pattern averaged out, smooth illumination and
#: noise removed, :func:`_widefield_structure`) above which a "uniform slide" is taken for a
#: structured sample. Measured, offset known / unknown: simulated uniform slides (32-256 px,
#: 10-3000 photons, vignetting up to 60 %) at most 0.026 / 0.022; slides with ten dust specks
#: half deep 0.044 / 0.081 on 64-256 px fields (0.15 / 0.30 on a 32 px field they cover);
#: the B-SIM HeLa cells 0.43 / 0.51, the B-SIM cristae 0.65 / 0.72, a scope acquire run's
#: simulated cells 0.25 / 0.30, simulated filaments, beads and cells at 400-5000 photons
#: 0.29-1.3 (dimmer ones, 30 photons, 0.07-0.19, which the uniform fit got right all the same)
STRUCTURED_SAMPLE_CONTRAST = 0.12
#: ... and the structure must be this many times its noise (a noise-only image is not structure)
STRUCTURED_SAMPLE_SIGNIFICANCE = 3.0

#: precision of a carrier's wave vector from its peak-to-noise R (summed power spectrum of the
#: frames less their mean, Hann window): sigma_k = C / (sqrt(R) L), L the field size in µm.
#: C = 0.5: fitted on simulated uniform slides and structured samples (both methods, 64-256 px,
#: 30-3000 photons, 8 sets each) it came out 0.01-0.77, mostly 0.1-0.4
_PRECISION_C = 0.5
#: sets disagree when their angle or period differs by more than this many expected
#: standard deviations ...
SET_DISAGREEMENT_SIGMAS = 6.0
#: ... and more than these floors: a pattern that drifted this little between slide positions
#: (focus, tilt, temperature) is still one pattern for the reconstruction, whose estimate
#: refines the prior anyway. Measured with these values: 0 of 54 runs of 4 sets of one pattern
#: refused (uniform slides at other positions and brightness, different simulated cells;
#: 64-256 px, 30-3000 photons); two files 0.15 deg apart refused on a 256 px slide, 1 deg apart
#: on 64 px (slide) and 2 deg apart on 64 px cells (structured)
ANGLE_AGREEMENT_FLOOR_DEG = 0.1
PERIOD_AGREEMENT_FLOOR = 2e-3


def _known(value: float | None) -> float | None:
    """A figure or None when it was not measured (None or NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class PatternCalibration:
    """Calibrated pattern of a microscope.

    Attributes
    ----------
    params : SIMParameters
        Angles, periods, per-frame phases (at the centre of pixel (0, 0)) and illumination
        modulation, averaged over the sets (``source="calibrated"``). Without a prior the angles
        lie in ``[ANGLE_RANGE_START_DEG, ANGLE_RANGE_START_DEG + 180)``, with one nearest to its
        angles (:data:`ANGLE_RANGE_START_DEG`).
    phase_steps_rad : tuple of tuple of float
        Per angle, the step from each phase to the next, in [0, 2 pi).
    modulation_observed : tuple of (float or None)
        Per angle, the modulation depth in the raw frames (before OTF correction); None where
        not measured (a structured sample shows no bare pattern).
    angle_std_deg, period_std_nm : tuple of (float or None)
        Per angle, the scatter over sets; None for a single set (not measured). NaN given for
        any of these figures is read as None.
    n_sets : int
    method : str
        ``"uniform"`` or ``"structured"``.
    """

    params: SIMParameters
    phase_steps_rad: tuple[tuple[float, ...], ...]
    modulation_observed: tuple[float | None, ...]
    angle_std_deg: tuple[float | None, ...]
    period_std_nm: tuple[float | None, ...]
    n_sets: int
    method: str
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "modulation_observed", tuple(_known(v) for v in self.modulation_observed)
        )
        for name in ("angle_std_deg", "period_std_nm"):
            values = getattr(self, name)
            object.__setattr__(
                self, name, tuple(None if self.n_sets < 2 else _known(v) for v in values)
            )

    def to_toml(self) -> dict[str, Any]:
        """The ``[calibration.pattern]`` table. TOML has no None (and no NaN a reader can take):
        a figure that was not measured for every angle (the observed modulation of a structured
        sample, which shows no bare pattern; the scatter over sets of a single set) is left out
        and named in ``not_measured``."""
        a = self.params.angles
        table: dict[str, Any] = {
            "method": self.method,
            "n_sets": self.n_sets,
            "n_angles": len(a),
            "n_phases": a[0].n_phases,
            "angles_deg": [x.angle_deg for x in a],
            "period_nm": [x.period_nm for x in a],
            "phases_rad": [list(x.phases_rad) for x in a],
            "phase_steps_rad": [list(s) for s in self.phase_steps_rad],
        }
        not_measured = []
        for key, values in (
            ("modulation", [_known(x.modulation) for x in a]),
            ("modulation_observed", list(self.modulation_observed)),
            ("angle_std_deg", list(self.angle_std_deg)),
            ("period_std_nm", list(self.period_std_nm)),
        ):
            if all(v is not None for v in values):
                table[key] = values
            else:
                not_measured.append(key)
        if not_measured:
            table["not_measured"] = not_measured
            log.info("pattern calibration: %s not measured: not written", not_measured)
        return table

    @classmethod
    def from_toml(cls, t: dict[str, Any]) -> PatternCalibration:
        """Read a ``[calibration.pattern]`` table back; figures left out as not measured (see
        :meth:`to_toml`) become None (the modulation, which the reconstruction needs, NaN)."""
        try:
            unknown = [None] * len(t["angles_deg"])
            t = {k: t.get(k, unknown) for k in _MEASURED_FIGURES} | dict(t)
            angles = tuple(
                AngleParameters(
                    angle_deg=float(ang),
                    period_nm=float(per),
                    phases_rad=tuple(float(p) for p in ph),
                    modulation=float("nan") if m is None else float(m),
                    source="calibrated",
                )
                for ang, per, ph, m in zip(
                    t["angles_deg"], t["period_nm"], t["phases_rad"], t["modulation"], strict=True
                )
            )

            def figures(key: str) -> tuple[float | None, ...]:
                return tuple(None if v is None else float(v) for v in t[key])

            return cls(
                params=SIMParameters(angles),
                phase_steps_rad=tuple(tuple(float(s) for s in st) for st in t["phase_steps_rad"]),
                modulation_observed=figures("modulation_observed"),
                angle_std_deg=figures("angle_std_deg"),
                period_std_nm=figures("period_std_nm"),
                n_sets=int(t["n_sets"]),
                method=str(t["method"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataFormatError(
                f"[calibration.pattern] is incomplete or malformed ({err!r}): re-run the pattern "
                "calibration"
            ) from err


# ---------------------------------------------------------------------------------------------
# uniform slide: direct fit of the pattern
# ---------------------------------------------------------------------------------------------


def _coords_um(shape: tuple[int, int], pixel_size_um: float) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = shape
    y = np.arange(ny, dtype=np.float64)[:, None] * pixel_size_um
    x = np.arange(nx, dtype=np.float64)[None, :] * pixel_size_um
    return y, x


def _summed_power(frames: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Sum over frames of the power spectrum of each frame less its mean, windowed."""
    spec = np.zeros(frames.shape[-2:])
    for f in frames:
        spec += np.abs(np.fft.fft2((f - f.mean()) * window)) ** 2
    return spec


def _frequencies(shape: tuple[int, ...], setup: OpticalSetup) -> tuple[np.ndarray, np.ndarray]:
    """FFT frequencies (fy column, fx row) in cycles/µm of a (Y, X) field."""
    fy = np.fft.fftfreq(shape[0], d=setup.pixel_size_um)[:, None]
    fx = np.fft.fftfreq(shape[1], d=setup.pixel_size_um)[None, :]
    return fy, fx


def _power_peak(
    frames: np.ndarray,
    setup: OpticalSetup,
    window: np.ndarray,
    prior: AngleParameters | None,
    min_fraction: float,
    *,
    check: bool = True,
) -> tuple[float, float]:
    """Integer-pixel carrier (kx, ky) in cycles/µm from the summed power spectrum."""
    spec = _summed_power(frames, window)
    fy, fx = _frequencies(frames.shape[-2:], setup)
    kmag = np.hypot(fx, fy)
    fc = setup.cutoff_per_um
    mask = (kmag >= min_fraction * fc) & (kmag <= 1.05 * fc)
    # one half-plane: k and -k are the same pattern
    mask &= (fx > 0) | ((fx == 0) & (fy > 0))
    if prior is not None:
        pkx, pky = prior.k_per_um
        near = np.minimum(np.hypot(fx - pkx, fy - pky), np.hypot(fx + pkx, fy + pky))
        mask &= near <= 0.15 * math.hypot(pkx, pky)
    if not mask.any():
        raise ReconstructionError(
            "no spatial frequencies left to search for the pattern: check the optics "
            "(NA, wavelength, pixel size) and the prior"
        )
    masked = np.where(mask, spec, 0.0)
    iy, ix = np.unravel_index(int(np.argmax(masked)), spec.shape)
    peak = masked[iy, ix]
    ring = spec[mask]
    ratio = float(peak) / max(float(np.median(ring)), 1e-300)
    if check and not ratio > 20:
        raise ReconstructionError(
            f"no pattern found: the strongest carrier is only {ratio:.1f}x the median power. "
            "Check that the pattern is on and in focus on a uniform fluorescent slide, and the "
            "optics (NA, wavelength, pixel size)"
        )
    return float(fx[0, ix]), float(fy[iy, 0])


def _inverse_otf(frames: np.ndarray, setup: OpticalSetup, otf: OTF, k_carrier: float) -> np.ndarray:
    """Divide each frame's spectrum by the detection OTF x pixel transfer.

    Inside 0.97 fc only, and never by less than half the transfer at the carrier frequency
    (so noise near the cutoff is not blown up).
    """
    from scope.optics import pixel_transfer

    fy, fx = _frequencies(frames.shape[-2:], setup)
    h = otf(np.hypot(fx, fy)) * pixel_transfer(fx, fy, setup.pixel_size_um)
    h_carrier = float(otf(k_carrier)) * float(pixel_transfer(k_carrier, 0.0, setup.pixel_size_um))
    inside = np.hypot(fx, fy) < 0.97 * setup.cutoff_per_um
    inv = np.where(inside, 1.0 / np.maximum(np.abs(h), 0.5 * max(h_carrier, 1e-3)), 0.0)
    return np.real(np.fft.ifft2(np.fft.fft2(frames) * inv))


def _refine_k(
    frames: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    window: np.ndarray,
    k0: tuple[float, float],
    dk: float,
) -> tuple[float, float]:
    """Maximise the windowed DTFT power summed over frames around k0 (cycles/µm)."""
    from scipy.optimize import minimize

    centred = [(f - f.mean()) * window for f in frames]

    def negpower(k: np.ndarray) -> float:
        e = np.exp(-2j * np.pi * (k[0] * x + k[1] * y))
        return -float(sum(abs(np.sum(c * e)) ** 2 for c in centred))

    res = minimize(
        negpower,
        np.asarray(k0),
        method="Nelder-Mead",
        options={"xatol": dk * 1e-5, "fatol": 1e-12, "initial_simplex": _simplex(k0, dk / 2)},
    )
    return float(res.x[0]), float(res.x[1])


def _simplex(k0: tuple[float, float], step: float) -> np.ndarray:
    return np.array([k0, (k0[0] + step, k0[1]), (k0[0], k0[1] + step)])


def _fit_frame(
    frame: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    k: tuple[float, float],
    weight: np.ndarray,
) -> tuple[float, float]:
    """Phase at pixel (0, 0) and observed modulation of one frame, with a linear envelope.

    Weighted least squares (weights: the analysis window) so that the frame edges, where real
    optics vignette and FFT-based simulations ring, count little.
    """
    theta = 2 * np.pi * (k[0] * x + k[1] * y)
    c, s = np.cos(theta), np.sin(theta)
    ny, nx = frame.shape
    yy = np.broadcast_to(y, (ny, nx)) / (y.max() or 1.0)
    xx = np.broadcast_to(x, (ny, nx)) / (x.max() or 1.0)
    ones = np.ones((ny, nx))
    basis = [ones, xx, yy, c, s, xx * c, xx * s, yy * c, yy * s]
    sw = np.sqrt(weight).ravel()
    a = np.stack([b.ravel() * sw for b in basis], axis=1)
    coef, *_ = np.linalg.lstsq(a, frame.ravel().astype(np.float64) * sw, rcond=None)
    c0, c1, c2 = coef[0], coef[3], coef[4]
    # c1 cos + c2 sin = A cos(theta + phi) with c1 = A cos phi, c2 = -A sin phi
    phase = math.atan2(-c2, c1)
    return phase, float(math.hypot(c1, c2) / c0) if c0 > 0 else float("nan")


def _calibrate_uniform_set(
    raw: np.ndarray,
    setup: OpticalSetup,
    n_angles: int,
    n_phases: int,
    prior: SIMParameters | None,
    otf: OTF,
    min_fraction: float,
) -> list[tuple[float, float, list[float], float]]:
    """Per angle: (kx, ky, phases, modulation, observed modulation) for one set."""
    ny, nx = raw.shape[-2:]
    y, x = _coords_um((ny, nx), setup.pixel_size_um)
    window = np.outer(np.hanning(ny), np.hanning(nx))
    dk = 1.0 / (max(ny, nx) * setup.pixel_size_um)
    out = []
    for a in range(n_angles):
        frames = raw[a * n_phases : (a + 1) * n_phases].astype(np.float64)
        prior_a = prior.angles[a] if prior is not None else None
        # 1. a first carrier from the raw frames, less their mean over the phases (the
        #    unmodulated image): only the carrier terms are left
        k_raw = _power_peak(frames - frames.mean(axis=0), setup, window, prior_a, min_fraction)
        # 2. the detection OTF falls across the carrier's spectral width (which an uneven
        #    illumination envelope broadens) and would pull the carrier to lower frequencies and
        #    skew the phases: undo it, amplifying no more than twice the carrier's own gain
        restored = _inverse_otf(frames, setup, otf, math.hypot(*k_raw))
        carrier = restored - restored.mean(axis=0)
        k0 = _power_peak(carrier, setup, window, prior_a, min_fraction, check=False)
        kx, ky = _refine_k(carrier, y, x, window, k0, dk)
        fits = [_fit_frame(f, y, x, (kx, ky), window) for f in restored]
        observed = [_fit_frame(f, y, x, (kx, ky), window)[1] for f in frames]
        out.append(
            (
                kx,
                ky,
                [p for p, _ in fits],
                float(np.mean([m for _, m in fits])),
                float(np.mean(observed)),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# checks: signal, sample, agreement between sets
# ---------------------------------------------------------------------------------------------


def _set_names(n_sets: int, sources: Sequence[str] | None) -> list[str]:
    """A name per set for messages: ``"cell01.tif"`` (its file's only set), ``"cell01.tif set
    2"``, or ``"set 2"`` without sources."""
    if sources is None:
        return [f"set {i}" for i in range(n_sets)]
    if len(sources) != n_sets:
        raise DataFormatError(
            f"set_sources names {len(sources)} sets but the raw data hold {n_sets}: give one "
            "source (file name) per set"
        )
    counts: dict[str, int] = {}
    for src in sources:
        counts[src] = counts.get(src, 0) + 1
    seen: dict[str, int] = {}
    names = []
    for src in sources:
        i = seen[src] = seen.get(src, -1) + 1
        names.append(str(src) if counts[src] == 1 else f"{src} set {i}")
    return names


def _check_signal(arr: np.ndarray, offsets: np.ndarray | None, names: list[str]) -> None:
    """Refuse a set with nothing above the camera offset (``arr`` has it subtracted; ``offsets``
    per set, None when unknown): an empty or dark file would otherwise be "calibrated" into a
    zero wave vector or noise. Worded as ``scope reconstruct`` and ``scope batch`` word it
    (:func:`scope.sim.pipeline.check_camera_offset`)."""
    for i, s in enumerate(arr):
        off = 0.0 if offsets is None else float(offsets[i])
        brightest, darkest = float(s.max()), float(s.min())
        if brightest <= darkest:
            raise DataFormatError(
                f"no signal above the offset in {names[i]}: every value is {brightest + off:g} "
                "ADU (nothing but a constant); check that the camera recorded light (light "
                "source on, exposure, the pattern shown), or leave that file out"
            )
        if offsets is not None and brightest <= 0:
            raise DataFormatError(
                f"no signal above the offset in {names[i]}: the brightest value is "
                f"{brightest + off:g} ADU but the camera offset is {off:g} ADU; check the camera "
                "offset and that the camera recorded light (light source on, exposure, the "
                "pattern shown), or leave that file out"
            )


def _widefield_structure(
    frames: np.ndarray, n_angles: int, n_phases: int, setup: OpticalSetup
) -> tuple[float, float] | None:
    """Relative structure of a set's widefield image and its noise, ``(s, n)``.

    The widefield image ``W`` is the mean of all frames (offset subtracted), which averages the
    pattern out. A quadratic surface (uneven illumination) is removed, then the Hann-windowed
    power spectrum is summed over ``0.2 fc < |f| < 0.8 fc`` (sample structure, not the smooth
    envelope, not the noise-only band beyond the cutoff). The noise power of ``W`` in the same
    band comes from the differences of the per-angle means, which hold the same sample and
    illumination and differ by noise only: ``|F(W_a - W_b)|^2 / (2 n_angles)`` averaged over
    the pairs. ``s = sqrt(max(P_W - P_noise, 0) / P_mean)`` and ``n = sqrt(P_noise /
    P_mean)``, ``P_mean`` the windowed power of ``W``'s mean (Parseval): the structure's rms
    relative to the mean intensity. None with fewer than two angles or no mean signal.
    """
    if n_angles < 2:
        return None
    ny, nx = frames.shape[-2:]
    per_angle = frames.reshape(n_angles, n_phases, ny, nx).mean(axis=1)
    wide = per_angle.mean(axis=0)
    mean = float(wide.mean())
    if not mean > 0:
        return None
    yy, xx = np.mgrid[:ny, :nx]
    yy = yy / ny - 0.5
    xx = xx / nx - 0.5
    basis = np.stack([np.ones_like(xx), xx, yy, xx * xx, xx * yy, yy * yy]).reshape(6, -1).T
    window = np.outer(np.hanning(ny), np.hanning(nx))
    fy, fx = _frequencies((ny, nx), setup)
    f = np.hypot(fx, fy) / setup.cutoff_per_um
    band = (f > 0.2) & (f < 0.8)

    def band_power(image: np.ndarray) -> float:
        coef, *_ = np.linalg.lstsq(basis, image.ravel(), rcond=None)
        flat = image - (basis @ coef).reshape(ny, nx)
        return float(np.sum((np.abs(np.fft.fft2(flat * window)) ** 2)[band]))

    p_wide = band_power(wide)
    pairs = [(a, b) for a in range(n_angles) for b in range(a + 1, n_angles)]
    p_noise = np.mean([band_power(per_angle[a] - per_angle[b]) for a, b in pairs]) / (2 * n_angles)
    p_mean = ny * nx * float(np.sum(window**2)) * mean**2
    return math.sqrt(max(p_wide - p_noise, 0.0) / p_mean), math.sqrt(p_noise / p_mean)


def _warn_if_structured(
    arr: np.ndarray,
    n_angles: int,
    n_phases: int,
    setup: OpticalSetup,
    names: list[str],
    offset_known: bool,
) -> list[float | None]:
    """Warn when a "uniform slide" shows a structured sample (:func:`_widefield_structure`
    above :data:`STRUCTURED_SAMPLE_CONTRAST` and :data:`STRUCTURED_SAMPLE_SIGNIFICANCE` x its
    noise): the uniform-slide fit then takes the sample's structure for the pattern (on the
    B-SIM HeLa cells one angle came out 54.3 deg / 444 nm instead of 58.2 deg / 357 nm). With
    the offset unknown the darkest values stand in for it, as for a structured sample
    (:func:`scope.sim.reconstruct.estimate_camera_offset`). Returns the structure per set."""
    from scope.sim.reconstruct import estimate_camera_offset

    found: list[float | None] = []
    flagged = []
    for name, s in zip(names, arr):
        frames = s if offset_known else s - estimate_camera_offset(s)
        measured = _widefield_structure(frames, n_angles, n_phases, setup)
        found.append(None if measured is None else measured[0])
        if measured is None:
            continue
        structure, noise = measured
        if (
            structure > STRUCTURED_SAMPLE_CONTRAST
            and structure > STRUCTURED_SAMPLE_SIGNIFICANCE * noise
        ):
            flagged.append((name, structure))
    if flagged:
        log.warning(
            "this looks like a structured sample, not a uniform fluorescent slide: the widefield "
            "image (the frames' mean) of %s varies by %s of its mean beyond the smooth "
            "illumination and the noise%s (a uniform slide: a few %%; warned above %.0f %%). "
            "The uniform-slide fit takes such structure for the pattern and can find a wrong "
            "angle and period: calibrate these data with sample='structured' (scope calibrate "
            "pattern --sample structured), or image a clean, uniform fluorescent slide",
            flagged[0][0]
            if len(flagged) == 1
            else f"all {len(flagged)} sets"
            if len(flagged) == len(names)
            else ", ".join(n for n, _ in flagged),
            f"{100 * min(c for _, c in flagged):.0f}"
            + (f"-{100 * max(c for _, c in flagged):.0f} %" if len(flagged) > 1 else " %"),
            ""
            if offset_known
            else " (camera offset unknown: taken as the darkest values for this check)",
            100 * STRUCTURED_SAMPLE_CONTRAST,
        )
    return found


def _carrier_precision(
    frames: np.ndarray, setup: OpticalSetup, k: tuple[float, float], min_fraction: float
) -> float:
    """Expected standard deviation (cycles/µm) of one set's wave-vector estimate for one angle.

    From the carrier's peak-to-noise ``R``: the summed power spectrum of the phase frames less
    their mean (Hann window), its largest value within 1.5 frequency bins of +-k over the median
    between ``min_fraction`` and 1.05 of the detection cutoff. A sinusoid's frequency estimate in
    white noise has a standard deviation ``~ sqrt(6) / (2 pi sqrt(R) L)`` (Cramer-Rao bound,
    e.g. Rife & Boorstyn, IEEE Trans. Inf. Theory 20, 591 (1974)), ``L`` the field size; the
    constant :data:`_PRECISION_C` was fitted on simulations (both methods).
    """
    ny, nx = frames.shape[-2:]
    window = np.outer(np.hanning(ny), np.hanning(nx))
    spec = _summed_power(frames - frames.mean(axis=0), window)
    fy, fx = _frequencies((ny, nx), setup)
    f = np.hypot(fx, fy)
    ring = (f >= min_fraction * setup.cutoff_per_um) & (f <= 1.05 * setup.cutoff_per_um)
    size_um = math.sqrt(nx * ny) * setup.pixel_size_um
    near = np.minimum(np.hypot(fx - k[0], fy - k[1]), np.hypot(fx + k[0], fy + k[1]))
    peak = float(spec[near <= 1.5 / (min(nx, ny) * setup.pixel_size_um)].max())
    ratio = peak / max(float(np.median(spec[ring])), 1e-300) if ring.any() else 1.0
    return _PRECISION_C / (math.sqrt(max(ratio, 1.0)) * size_um)


def _angle_diff_deg(a: float, b: float) -> float:
    """a - b in (-90, 90]: orientations, k and -k alike."""
    return -((b - a + 90.0) % 180.0 - 90.0)


def _check_sets_agree(
    per_set: list[list[tuple[Any, ...]]],
    sigma_k: np.ndarray,
    names: list[str],
    sources: Sequence[str] | None,
) -> None:
    """Refuse sets that hold different patterns (e.g. files of two microscopes or settings):
    their average is a pattern none of them has.

    Sets ``i`` and ``j`` agree when, for every angle, their angles and periods differ by at most
    :data:`SET_DISAGREEMENT_SIGMAS` x ``sqrt(sigma_i^2 + sigma_j^2)`` (the expected precision
    of each set, :func:`_carrier_precision`, scaled up by the scatter of the sets of one source
    where that is larger) or by the floors :data:`ANGLE_AGREEMENT_FLOOR_DEG` and
    :data:`PERIOD_AGREEMENT_FLOOR`. Sets linked by agreement form a group; more than one group
    is refused, naming each group's files and pattern.
    """
    n_sets, n_angles = len(per_set), len(per_set[0])
    if n_sets < 2:
        return
    ang = np.array(
        [[math.degrees(math.atan2(p[a][1], p[a][0])) for a in range(n_angles)] for p in per_set]
    )  # aligned (:func:`_align`): differences are taken modulo 180 deg all the same
    kmag = np.array([[math.hypot(p[a][0], p[a][1]) for a in range(n_angles)] for p in per_set])
    per = 1e3 / kmag
    rel = sigma_k / kmag  # relative precision: angle (rad) and period alike

    def deviations(i: int, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d_ang = np.array([_angle_diff_deg(ang[i, a], ang[j, a]) for a in range(n_angles)])
        d_per = per[i] / per[j] - 1.0
        sig = np.sqrt(rel[i] ** 2 + rel[j] ** 2)
        return d_ang, d_per, sig

    # the precision model, checked against the agreement of sets from one source
    scale = 1.0
    if sources is not None:
        z = []
        for i in range(n_sets):
            for j in range(i + 1, n_sets):
                if sources[i] == sources[j]:
                    d_ang, d_per, sig = deviations(i, j)
                    z += list(np.abs(np.radians(d_ang)) / sig) + list(np.abs(d_per) / sig)
        if z:
            scale = max(1.0, float(np.median(z)) / 0.6745)
    parent = list(range(n_sets))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    pairs = {}
    for i in range(n_sets):
        for j in range(i + 1, n_sets):
            d_ang, d_per, sig = deviations(i, j)
            tol_ang = np.maximum(
                np.degrees(SET_DISAGREEMENT_SIGMAS * scale * sig), ANGLE_AGREEMENT_FLOOR_DEG
            )
            tol_per = np.maximum(SET_DISAGREEMENT_SIGMAS * scale * sig, PERIOD_AGREEMENT_FLOOR)
            pairs[i, j] = (np.abs(d_ang), np.abs(d_per), tol_ang, tol_per)
            if np.all(np.abs(d_ang) <= tol_ang) and np.all(np.abs(d_per) <= tol_per):
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(n_sets):
        groups.setdefault(root(i), []).append(i)
    if len(groups) < 2:
        return
    ordered = sorted(groups.values(), key=len, reverse=True)

    def who(members: list[int]) -> str:
        if sources is None:
            return ", ".join(names[i] for i in members)
        by_source: dict[str, list[int]] = {}
        for i in members:
            by_source.setdefault(sources[i], []).append(i)
        parts = []
        for src, idx in by_source.items():
            total = sum(1 for s in sources if s == src)
            if len(idx) == total:
                parts.append(str(src))
            else:
                within = [sum(1 for s in sources[:i] if s == src) for i in idx]
                parts.append(f"{src} (set {', '.join(map(str, within))} of {total})")
        return ", ".join(parts)

    def pattern(members: list[int]) -> str:
        k = np.mean([[p[:2] for p in per_set[i]] for i in members], axis=0)  # (angles, 2)
        angles = [
            (math.degrees(math.atan2(ky, kx)) - ANGLE_RANGE_START_DEG) % 180.0
            + ANGLE_RANGE_START_DEG
            for kx, ky in k
        ]
        return (
            f"angles {', '.join(f'{x:.2f}' for x in angles)} deg, periods "
            f"{', '.join(f'{1e3 / math.hypot(*v):.1f}' for v in k)} nm"
        )

    apart = [v for (i, j), v in pairs.items() if root(i) != root(j)]
    d_ang = max(float(v[0].max()) for v in apart)
    d_per = max(float(v[1].max()) for v in apart)
    tol_ang = float(np.median([v[2] for v in pairs.values()]))
    tol_per = float(np.median([v[3] for v in pairs.values()]))
    differ = ordered[1:] if len(ordered[0]) > len(ordered[1]) else ordered
    raise DataFormatError(
        "the raw sets hold different patterns, and their average would be a pattern none of "
        f"them has: {'; '.join(f'{who(g)}: {pattern(g)}' for g in ordered)}. They differ by up "
        f"to {d_ang:.3g} deg in angle and {100 * d_per:.3g} % in period, where the measurement "
        f"allows about {tol_ang:.2g} deg and {100 * tol_per:.2g} %. The pattern differs in "
        f"{'; '.join(who(g) for g in differ)}: calibrate each pattern from its own files (leave "
        "out the files of another microscope, grating or setting)"
    )


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------


def _canonical(
    kx: float, ky: float, phases: list[float], ref_deg: float | None
) -> tuple[float, float, list[float]]:
    """Choose the sign of k, (k, phi) ~ (-k, -phi): the angle nearest to a reference, else in
    ``[ANGLE_RANGE_START_DEG, ANGLE_RANGE_START_DEG + 180)``."""
    ang = math.degrees(math.atan2(ky, kx))
    if ref_deg is None:
        flip = not (ANGLE_RANGE_START_DEG <= ang < ANGLE_RANGE_START_DEG + 180.0)
    else:
        d = (ang - ref_deg + 180.0) % 360.0 - 180.0
        flip = abs(d) > 90.0
    if flip:
        return -kx, -ky, [-p for p in phases]
    return kx, ky, list(phases)


def calibrate_pattern(
    raw: Any,
    setup: OpticalSetup,
    *,
    n_angles: int = 3,
    n_phases: int = 3,
    sample: Literal["uniform", "structured"] = "uniform",
    prior: SIMParameters | None = None,
    otf: OTF | None = None,
    offset_adu: float | None = None,
    min_fraction: float = 0.2,
    set_sources: Sequence[str] | None = None,
    offset_given_as: str = "the camera offset",
) -> PatternCalibration:
    """Calibrate pattern angles, periods, phase steps and modulation.

    Parameters
    ----------
    raw : array (n_angles * n_phases, Y, X) or (n_sets, n_angles * n_phases, Y, X)
        Raw SIM sets of a uniform fluorescent slide (``sample="uniform"``) or of beads / any
        structured sample (``sample="structured"``).
    setup : OpticalSetup
        Detection optics and pixel size at the sample.
    prior : SIMParameters, optional
        Nominal pattern (e.g. from the pattern generator): search window, and the reference that
        fixes the sign of each wave vector (without one the angles are reported in
        ``[ANGLE_RANGE_START_DEG, ANGLE_RANGE_START_DEG + 180)``, -15 to 165 deg).
    otf : OTF, optional
        Detection OTF for the modulation correction (default: ideal from ``setup``).
    offset_adu : float or None
        Camera offset subtracted first (from the camera calibration; 0 for frames without
        one). One at or above every value is refused, one above most values warned about
        (:func:`scope.sim.pipeline.check_camera_offset`, as ``scope reconstruct`` does). None:
        unknown. A structured sample's dark background then gives it, as in
        ``scope reconstruct``: the 0.5th percentile of each set's first frame
        (:func:`scope.sim.reconstruct.estimate_camera_offset`), with a warning. A uniform slide
        has no dark area to estimate it from: nothing is subtracted, and a warning says that
        the modulation reads low (angles, periods and phases do not depend on the offset).
    min_fraction : float
        Lower edge of the carrier search, as a fraction of the detection cutoff.
    set_sources : sequence of str, optional
        Per set, the file it comes from (sets of one file share it): messages name the files,
        and the sets of one file tell how well sets of one pattern agree.
    offset_given_as : str
        How the offset was given, for the messages (``"--offset"``, ``"the preset's
        [calibration.camera] offset_adu"``).

    Returns
    -------
    PatternCalibration
        Its ``notes["offset_adu"]`` is the offset subtracted (per set when estimated; None when
        none was), ``notes["offset_source"]`` ``"given"``, ``"estimated"`` or ``"unknown"``,
        ``notes["widefield_structure"]`` (uniform slide) the relative structure of each set's
        widefield image (:func:`_widefield_structure`). A modulation above 1 (impossible: a
        structured sample's estimate that the sample's own contrast inflates, or an offset set
        too high) is saved as 1, with a warning.

    Raises
    ------
    DataFormatError
        Wrong shape, non-finite values, an offset at or above every value, a set with no
        signal above the offset, or sets that hold different patterns (their angles or periods
        differ far beyond the measurement precision; the message names the files).
    ReconstructionError
        No pattern carrier found (uniform slide).

    Notes
    -----
    On a uniform slide, a widefield image with more structure than a uniform slide shows
    (:data:`STRUCTURED_SAMPLE_CONTRAST`) is warned about: use ``sample="structured"``.
    """
    arr = np.asarray(raw, dtype=np.float64)
    n_frames = n_angles * n_phases
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] != n_frames or min(arr.shape[-2:]) < 32:
        raise DataFormatError(
            f"expected raw SIM sets shaped ({n_frames}, Y, X) or (n_sets, {n_frames}, Y, X) with "
            f"Y, X >= 32 ({n_angles} angles x {n_phases} phases); got {np.shape(raw)}"
        )
    if sample not in ("uniform", "structured"):
        raise DataFormatError(f"sample must be 'uniform' or 'structured', got {sample!r}")
    if not np.all(np.isfinite(arr)):
        raise DataFormatError("the raw frames contain NaN or infinite values")
    names = _set_names(arr.shape[0], set_sources)
    notes: dict[str, Any] = {}
    offsets: np.ndarray | None
    if offset_adu is not None:
        if not math.isfinite(offset_adu):
            raise DataFormatError(f"the camera offset must be a number, got {offset_adu}")
        from scope.sim.pipeline import check_camera_offset

        check_camera_offset(arr, offset_adu, given_as=offset_given_as)
        arr = arr - offset_adu
        offsets = np.full(arr.shape[0], float(offset_adu))
        notes.update(offset_adu=float(offset_adu), offset_source="given")
    elif sample == "structured":
        from scope.sim.reconstruct import estimate_camera_offset

        offsets = np.asarray([estimate_camera_offset(s) for s in arr])
        arr = arr - offsets[:, None, None, None]
        notes.update(offset_adu=float(np.mean(offsets)), offset_source="estimated")
        log.warning(
            "no camera offset known (no camera calibration, no offset given): estimated from "
            "the sample's dark background as the 0.5th percentile of each set's first frame, "
            "%.1f ADU%s, as scope reconstruct does. The modulation depends on it: calibrate the "
            "camera first (scope calibrate camera --preset ...) or give the offset (--offset)",
            float(np.mean(offsets)),
            f" ({min(offsets):.1f}-{max(offsets):.1f} over the sets)"
            if max(offsets) > min(offsets)
            else "",
        )
    else:
        offsets = None
        notes.update(offset_adu=None, offset_source="unknown")
        log.warning(
            "no camera offset known (no camera calibration, no offset given) and a uniform "
            "slide has no dark area to estimate it from: nothing subtracted, so the modulation "
            "reads low by the offset's share of the signal (the darkest 0.5 %% of the values "
            "are at %.1f ADU). Calibrate the camera first (scope calibrate camera --preset ...) "
            "or give the offset (--offset); angles, periods and phases are not affected",
            float(np.percentile(arr[0, 0], 0.5)),
        )
    _check_signal(arr, offsets, names)
    otf = otf or OTF.from_setup(setup)
    per_set: list[list[tuple[Any, ...]]] = []
    if sample == "uniform":
        notes["widefield_structure"] = _warn_if_structured(
            arr, n_angles, n_phases, setup, names, offset_known=offsets is not None
        )
        for s in arr:
            per_set.append(
                _calibrate_uniform_set(s, setup, n_angles, n_phases, prior, otf, min_fraction)
            )
    else:
        from scope.sim.estimate import estimate_parameters

        for name, s in zip(names, arr, strict=True):
            try:
                est = estimate_parameters(
                    s.astype(np.float32),
                    setup,
                    n_angles=n_angles,
                    n_phases=n_phases,
                    prior=prior,
                    otf=otf,
                )
            except ReconstructionError as err:
                # the estimator's advice (priors, to reconstruct anyway) does not serve a
                # calibration, which is there to measure the pattern
                why = str(err).split(": give the nominal pattern as priors")[0]
                raise ReconstructionError(
                    f"{name}: {why}. A calibration measures the pattern, so it needs it clearly "
                    "visible: check that the pattern is on and in focus, the light and the "
                    "exposure, and the optics (NA, wavelength, pixel size); a uniform "
                    "fluorescent slide (the default --sample uniform) shows it best"
                ) from None
            per_set.append(
                [(*a.k_per_um, list(a.phases_rad), a.modulation, None) for a in est.angles]
            )
    for res in per_set:
        for a, r in enumerate(res):
            if not math.hypot(r[0], r[1]) > 0:
                raise ReconstructionError(
                    f"pattern angle {a}: no carrier found (zero wave vector): check that the "
                    "pattern is on and in focus, and the optics (NA, wavelength, pixel size)"
                )
    sigma_k = np.array(
        [
            [
                _carrier_precision(
                    s[a * n_phases : (a + 1) * n_phases], setup, res[a][:2], min_fraction
                )
                for a in range(n_angles)
            ]
            for s, res in zip(arr, per_set)
        ]
    )
    aligned = _align(per_set, prior)
    _check_sets_agree(aligned, sigma_k, names, set_sources)
    notes["precision_k_per_um"] = sigma_k.tolist()
    return _combine(aligned, prior, sample, notes)


def _align(
    per_set: list[list[tuple[Any, ...]]], prior: SIMParameters | None
) -> list[list[tuple[Any, ...]]]:
    """Give each angle's wave vector the same sign in every set: the prior's, else the first
    set's, taken in the canonical range (:func:`_canonical`)."""
    out = [list(sets) for sets in per_set]
    for a in range(len(per_set[0])):
        ref = prior.angles[a].angle_deg if prior is not None else None
        for s, sets in enumerate(per_set):
            kx, ky, ph, m, o = sets[a]
            kx, ky, ph = _canonical(kx, ky, ph, ref)
            if ref is None:
                ref = math.degrees(math.atan2(ky, kx))
            out[s][a] = (kx, ky, ph, m, o)
    return out


def _combine(
    per_set: list[list[tuple[Any, ...]]],
    prior: SIMParameters | None,
    method: str,
    notes: dict[str, Any] | None = None,
) -> PatternCalibration:
    """Average aligned sets (:func:`_align`): wave vectors, phases (circular mean),
    modulations; the mean is put back in the canonical range without a prior."""
    n_angles = len(per_set[0])
    n_sets = len(per_set)
    angles, steps, mod_obs, angle_std, period_std = [], [], [], [], []
    clipped: list[int] = []
    for a in range(n_angles):
        ks = np.asarray([sets[a][:2] for sets in per_set], dtype=np.float64)
        phases = np.asarray([sets[a][2] for sets in per_set], dtype=np.float64)
        mods = [sets[a][3] for sets in per_set]
        obs = [_known(sets[a][4]) for sets in per_set]
        ang = [math.degrees(math.atan2(ky, kx)) for kx, ky in ks]
        per = [1e3 / math.hypot(kx, ky) for kx, ky in ks]
        k = np.mean(ks, axis=0)
        ph = list(np.angle(np.mean(np.exp(1j * phases), axis=0)))
        ref = prior.angles[a].angle_deg if prior is not None else None
        kx, ky, ph = _canonical(float(k[0]), float(k[1]), ph, ref)
        observed = None if any(o is None for o in obs) else float(np.mean(obs))
        modulation = float(np.mean(mods))
        if modulation > 1.0:
            log.warning(
                "pattern angle %d: modulation measured as %.3f, above 1, which no pattern can "
                "have: saved as 1. %s",
                a,
                modulation,
                "On a structured sample (beads) the estimate is inflated by the sample's own "
                "contrast; calibrate the modulation on a uniform fluorescent slide (--sample "
                "uniform). Angles, periods and phases are not affected"
                if method == "structured"
                else "Check the camera offset: one set too high inflates the modulation",
            )
            clipped.append(a)
            modulation = 1.0
        angles.append(
            AngleParameters.from_k(
                kx,
                ky,
                phases_rad=tuple(float(p) for p in ph),
                modulation=modulation,
                source="calibrated",
            )
        )
        steps.append(
            tuple(
                float((ph[(i + 1) % len(ph)] - ph[i]) % (2 * math.pi)) for i in range(len(ph) - 1)
            )
        )
        mod_obs.append(observed)
        angle_std.append(float(np.std([_angle_diff_deg(x, ang[0]) for x in ang])))
        period_std.append(float(np.std(per)))
    cal = PatternCalibration(
        params=SIMParameters(tuple(angles)),
        phase_steps_rad=tuple(steps),
        modulation_observed=tuple(mod_obs),
        angle_std_deg=tuple(angle_std),
        period_std_nm=tuple(period_std),
        n_sets=n_sets,
        method=method,
        notes={**(notes or {}), "modulation_clipped": clipped},
    )
    for i, a in enumerate(cal.params.angles):
        log.info(
            "pattern angle %d: %.3f deg, period %.2f nm, steps %s rad, modulation %.3f "
            "(observed %s)%s",
            i,
            a.angle_deg,
            a.period_nm,
            ", ".join(f"{s:.3f}" for s in cal.phase_steps_rad[i]),
            a.modulation,
            "not measured: a structured sample shows no bare pattern"
            if cal.modulation_observed[i] is None
            else f"{cal.modulation_observed[i]:.3f}",
            ""
            if n_sets < 2
            else f", scatter over {n_sets} sets {cal.angle_std_deg[i]:.3f} deg, "
            f"{cal.period_std_nm[i]:.2f} nm",
        )
    return cal


def save_pattern_calibration(preset: str | Path, calibration: PatternCalibration) -> None:
    """Write ``[calibration.pattern]`` into the preset TOML (the rest is kept)."""
    from scope.calibration.preset import update_calibration

    update_calibration(preset, "pattern", calibration.to_toml())


def load_pattern_calibration(preset: str | Path) -> PatternCalibration | None:
    """The pattern calibration saved in a preset, or None."""
    from scope.calibration.preset import read_calibration

    table = read_calibration(preset, "pattern")
    return None if table is None else PatternCalibration.from_toml(table)


__all__ = [
    "PatternCalibration",
    "calibrate_pattern",
    "load_pattern_calibration",
    "save_pattern_calibration",
]
