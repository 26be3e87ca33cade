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


@dataclass(frozen=True)
class PatternCalibration:
    """Calibrated pattern of a microscope.

    Attributes
    ----------
    params : SIMParameters
        Angles, periods, per-frame phases (at the centre of pixel (0, 0)) and illumination
        modulation, averaged over the sets (``source="calibrated"``).
    phase_steps_rad : tuple of tuple of float
        Per angle, the step from each phase to the next, in [0, 2 pi).
    modulation_observed : tuple of float
        Per angle, the modulation depth in the raw frames (before OTF correction).
    angle_std_deg, period_std_nm : tuple of float
        Per angle, the scatter over sets (0 for a single set).
    n_sets : int
    method : str
        ``"uniform"`` or ``"structured"``.
    """

    params: SIMParameters
    phase_steps_rad: tuple[tuple[float, ...], ...]
    modulation_observed: tuple[float, ...]
    angle_std_deg: tuple[float, ...]
    period_std_nm: tuple[float, ...]
    n_sets: int
    method: str
    notes: dict[str, Any] = field(default_factory=dict)

    def to_toml(self) -> dict[str, Any]:
        """The ``[calibration.pattern]`` table. TOML has no NaN a reader can take: a figure
        that could not be measured for every angle (the observed modulation of a structured
        sample, which shows no bare pattern) is left out and named in ``not_measured``."""
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
            ("modulation", [x.modulation for x in a]),
            ("modulation_observed", list(self.modulation_observed)),
            ("angle_std_deg", list(self.angle_std_deg)),
            ("period_std_nm", list(self.period_std_nm)),
        ):
            if all(math.isfinite(v) for v in values):
                table[key] = values
            else:
                not_measured.append(key)
        if not_measured:
            table["not_measured"] = not_measured
            log.info("pattern calibration: %s could not be measured: not written", not_measured)
        return table

    @classmethod
    def from_toml(cls, t: dict[str, Any]) -> PatternCalibration:
        """Read a ``[calibration.pattern]`` table back; figures left out as not measured (see
        :meth:`to_toml`) become NaN."""
        try:
            unknown = [float("nan")] * len(t["angles_deg"])
            t = {k: t.get(k, unknown) for k in _MEASURED_FIGURES} | dict(t)
            angles = tuple(
                AngleParameters(
                    angle_deg=float(ang),
                    period_nm=float(per),
                    phases_rad=tuple(float(p) for p in ph),
                    modulation=float(m),
                    source="calibrated",
                )
                for ang, per, ph, m in zip(
                    t["angles_deg"], t["period_nm"], t["phases_rad"], t["modulation"], strict=True
                )
            )
            return cls(
                params=SIMParameters(angles),
                phase_steps_rad=tuple(tuple(float(s) for s in st) for st in t["phase_steps_rad"]),
                modulation_observed=tuple(float(m) for m in t["modulation_observed"]),
                angle_std_deg=tuple(float(s) for s in t["angle_std_deg"]),
                period_std_nm=tuple(float(s) for s in t["period_std_nm"]),
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
    ny, nx = frames.shape[-2:]
    spec = np.zeros((ny, nx))
    for f in frames:
        spec += np.abs(np.fft.fft2((f - f.mean()) * window)) ** 2
    fy = np.fft.fftfreq(ny, d=setup.pixel_size_um)[:, None]
    fx = np.fft.fftfreq(nx, d=setup.pixel_size_um)[None, :]
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
    if check and peak < 20 * np.median(ring):
        raise ReconstructionError(
            f"no pattern found: the strongest carrier is only {peak / np.median(ring):.1f}x the "
            "median power. Check that the pattern is on and in focus on a uniform fluorescent "
            "slide, and the optics (NA, wavelength, pixel size)"
        )
    return float(fx[0, ix]), float(fy[iy, 0])


def _inverse_otf(frames: np.ndarray, setup: OpticalSetup, otf: OTF, k_carrier: float) -> np.ndarray:
    """Divide each frame's spectrum by the detection OTF x pixel transfer.

    Inside 0.97 fc only, and never by less than half the transfer at the carrier frequency
    (so noise near the cutoff is not blown up).
    """
    from scope.optics import pixel_transfer

    ny, nx = frames.shape[-2:]
    fy = np.fft.fftfreq(ny, d=setup.pixel_size_um)[:, None]
    fx = np.fft.fftfreq(nx, d=setup.pixel_size_um)[None, :]
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
# public API
# ---------------------------------------------------------------------------------------------


def _canonical(kx: float, ky: float, phases: list[float], ref_deg: float | None):
    """Choose the sign of k (k, phi) ~ (-k, -phi): nearest to a reference angle, else [0, 180)."""
    ang = math.degrees(math.atan2(ky, kx))
    if ref_deg is None:
        flip = not (0.0 <= ang < 180.0)
    else:
        d = (ang - ref_deg + 180.0) % 360.0 - 180.0
        flip = abs(d) > 90.0
    if flip:
        return -kx, -ky, [-p for p in phases]
    return kx, ky, phases


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
        fixes the sign of each wave vector.
    otf : OTF, optional
        Detection OTF for the modulation correction (default: ideal from ``setup``).
    offset_adu : float or None
        Camera offset subtracted first (from the camera calibration; 0 for frames without
        one). None: unknown. A structured sample's dark background then gives it, as in
        ``scope reconstruct``: the 0.5th percentile of each set's first frame
        (:func:`scope.sim.reconstruct.estimate_camera_offset`), with a warning. A uniform slide
        has no dark area to estimate it from: nothing is subtracted, and a warning says that
        the modulation reads low (angles, periods and phases do not depend on the offset).
    min_fraction : float
        Lower edge of the carrier search, as a fraction of the detection cutoff.

    Returns
    -------
    PatternCalibration
        Its ``notes["offset_adu"]`` is the offset subtracted (per set when estimated; None when
        none was), ``notes["offset_source"]`` ``"given"``, ``"estimated"`` or ``"unknown"``.
        A modulation above 1 (impossible: a structured sample's estimate that the sample's own
        contrast inflates, or an offset set too high) is saved as 1, with a warning.
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
    if not np.all(np.isfinite(arr)):
        raise DataFormatError("the raw frames contain NaN or infinite values")
    notes: dict[str, Any] = {}
    if offset_adu is not None:
        if not math.isfinite(offset_adu):
            raise DataFormatError(f"the camera offset must be a number, got {offset_adu}")
        arr = arr - offset_adu
        notes.update(offset_adu=float(offset_adu), offset_source="given")
    elif sample == "structured":
        from scope.sim.reconstruct import estimate_camera_offset

        offsets = [estimate_camera_offset(s) for s in arr]
        arr = arr - np.asarray(offsets)[:, None, None, None]
        notes.update(offset_adu=float(np.mean(offsets)), offset_source="estimated")
        log.warning(
            "no camera offset known (no camera calibration, no offset given): estimated from "
            "the sample's dark background as the 0.5th percentile of each set's first frame, "
            "%.1f ADU%s, as scope reconstruct does. The modulation depends on it: calibrate the "
            "camera first (scope calibrate camera --preset ...) or give the offset (--offset-adu)",
            float(np.mean(offsets)),
            f" ({min(offsets):.1f}-{max(offsets):.1f} over the sets)"
            if max(offsets) > min(offsets)
            else "",
        )
    else:
        notes.update(offset_adu=None, offset_source="unknown")
        log.warning(
            "no camera offset known (no camera calibration, no offset given) and a uniform "
            "slide has no dark area to estimate it from: nothing subtracted, so the modulation "
            "reads low by the offset's share of the signal (the darkest 0.5 %% of the values "
            "are at %.1f ADU). Calibrate the camera first (scope calibrate camera --preset ...) "
            "or give the offset (--offset-adu); angles, periods and phases are not affected",
            float(np.percentile(arr[0, 0], 0.5)),
        )
    otf = otf or OTF.from_setup(setup)
    per_set: list[list[tuple[float, float, list[float], float]]] = []
    if sample == "uniform":
        for s in arr:
            per_set.append(
                _calibrate_uniform_set(s, setup, n_angles, n_phases, prior, otf, min_fraction)
            )
    elif sample == "structured":
        from scope.sim.estimate import estimate_parameters

        for s in arr:
            est = estimate_parameters(
                s.astype(np.float32),
                setup,
                n_angles=n_angles,
                n_phases=n_phases,
                prior=prior,
                otf=otf,
            )
            per_set.append(
                [(*a.k_per_um, list(a.phases_rad), a.modulation, float("nan")) for a in est.angles]
            )
    else:
        raise DataFormatError(f"sample must be 'uniform' or 'structured', got {sample!r}")
    return _combine(per_set, prior, sample, notes)


def _combine(per_set, prior, method, notes=None) -> PatternCalibration:
    n_angles = len(per_set[0])
    angles, steps, mod_obs, angle_std, period_std = [], [], [], [], []
    clipped: list[int] = []
    for a in range(n_angles):
        ref = prior.angles[a].angle_deg if prior is not None else None
        ks, phases, mods, obs = [], [], [], []
        for s, sets in enumerate(per_set):
            kx, ky, ph, m, o = sets[a]
            if s > 0 or ref is not None:
                ref_a = ref if ref is not None else math.degrees(math.atan2(ks[0][1], ks[0][0]))
            else:
                ref_a = None
            kx, ky, ph = _canonical(kx, ky, ph, ref_a)
            ks.append((kx, ky))
            phases.append(ph)
            mods.append(m)
            obs.append(o)
        k = np.mean(np.asarray(ks), axis=0)
        ang = [math.degrees(math.atan2(ky, kx)) for kx, ky in ks]
        per = [1e3 / math.hypot(kx, ky) for kx, ky in ks]
        ph = np.angle(np.mean(np.exp(1j * np.asarray(phases)), axis=0))
        observed = float(np.mean(obs))
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
                float(k[0]),
                float(k[1]),
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
        angle_std.append(float(np.std(ang)))
        period_std.append(float(np.std(per)))
    cal = PatternCalibration(
        params=SIMParameters(tuple(angles)),
        phase_steps_rad=tuple(steps),
        modulation_observed=tuple(mod_obs),
        angle_std_deg=tuple(angle_std),
        period_std_nm=tuple(period_std),
        n_sets=len(per_set),
        method=method,
        notes={**(notes or {}), "modulation_clipped": clipped},
    )
    for i, a in enumerate(cal.params.angles):
        log.info(
            "pattern angle %d: %.3f deg, period %.2f nm, steps %s rad, modulation %.3f "
            "(observed %.3f)",
            i,
            a.angle_deg,
            a.period_nm,
            ", ".join(f"{s:.3f}" for s in cal.phase_steps_rad[i]),
            a.modulation,
            mod_obs[i],
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
