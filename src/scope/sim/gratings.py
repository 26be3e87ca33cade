"""Illumination gratings for pixelated pattern devices (DMD, LCoS, projector).

A grating shown on a device's pixel grid can only take angles and periods the grid allows if it
is to repeat exactly from pixel to pixel (no beat patterns, equal phase steps). We use gratings
that depend on the pixel ``(x, y)`` (``x`` along columns, ``y`` along rows) only through the
integer ``u = (a x + b y + s) mod P``: their wave vector is exactly ``k = (a, b) / P`` cycles per
pixel, so

* angle ``= atan2(b, a)`` and period ``= P / sqrt(a² + b²)`` pixels (both reported),
* a phase step is a shift ``s`` of ``u``: with ``P`` a multiple of the number of phases the steps
  are exactly ``2 pi / n_phases``,
* binary (DMD) and grey (LCoS, projector) patterns are functions of ``u`` alone.

:func:`quantise_grating` finds the lattice grating nearest to a requested angle and period,
:func:`render_grating` draws it, :func:`make_pattern_set` builds the frames of a SIM acquisition
(angle-major, phase fastest, as the controller's sequence ``0..n-1``) and
:meth:`PatternSet.nominal_parameters` hands the reconstruction its prior
:class:`~scope.sim.params.SIMParameters` in sample coordinates. :func:`measure_grating`
measures a grating's wave vector from an image (FFT peak refined by maximising the windowed
discrete-time Fourier transform), which the tests use to verify the reported values.

References
----------
The integer-lattice construction of DMD gratings follows the approach described in
Lu-Walther et al., "fastSIM: a practical implementation of fast structured illumination
microscopy", Methods Appl. Fluoresc. 3, 014001 (2015), and Brown et al., "Multicolor structured
illumination microscopy and quantitative control of polychromatic light with a digital
micromirror device", Biomed. Opt. Express 12, 3700 (2021) (periodic patterns on the pixel lattice
with exact phase shifts). The sub-bin peak refinement is a windowed DTFT maximisation (see e.g.
Wicker et al., Opt. Express 21, 2032 (2013), for the role of precise pattern parameters in SIM).

Examples
--------
>>> q = quantise_grating(angle_deg=30.0, period_px=6.0, n_phases=3)
>>> (q.a, q.b, q.P), round(q.angle_deg, 3), round(q.period_px, 4)
((26, 15, 180), 29.982, 5.9967)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from scope.errors import ConfigurationError, DataFormatError
from scope.sim.params import AngleParameters, SIMParameters

log = logging.getLogger(__name__)

GratingKind = Literal["binary", "grey"]


@dataclass(frozen=True)
class QuantisedGrating:
    """A grating on the device pixel lattice: ``u = (a x + b y + shift) mod P``.

    Attributes
    ----------
    a, b, P : int
        The lattice wave vector is ``(a, b) / P`` cycles per pixel.
    requested_angle_deg, requested_period_px : float
        What was asked for.
    phase_shifts : tuple of int
        The shift ``s`` of each phase step.
    """

    a: int
    b: int
    P: int
    requested_angle_deg: float
    requested_period_px: float
    phase_shifts: tuple[int, ...]

    @property
    def k_per_px(self) -> tuple[float, float]:
        """Wave vector (kx, ky), cycles per device pixel."""
        return self.a / self.P, self.b / self.P

    @property
    def angle_deg(self) -> float:
        """Quantised angle, ``atan2(b, a)`` in degrees."""
        return math.degrees(math.atan2(self.b, self.a))

    @property
    def period_px(self) -> float:
        """Quantised period across the fringes, device pixels."""
        return self.P / math.hypot(self.a, self.b)

    @property
    def angle_error_deg(self) -> float:
        """Quantised minus requested angle, degrees (in [-180, 180))."""
        return (self.angle_deg - self.requested_angle_deg + 180.0) % 360.0 - 180.0

    @property
    def period_error(self) -> float:
        """Relative period error, (quantised - requested) / requested."""
        return self.period_px / self.requested_period_px - 1.0

    @property
    def n_phases(self) -> int:
        return len(self.phase_shifts)

    def lattice_phases_rad(self) -> tuple[float, ...]:
        """``2 pi s / P`` of each phase step (the phase of ``u``, before the pattern shape)."""
        return tuple(2.0 * math.pi * s / self.P for s in self.phase_shifts)

    def as_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "P": self.P,
            "angle_deg": self.angle_deg,
            "period_px": self.period_px,
            "requested_angle_deg": self.requested_angle_deg,
            "requested_period_px": self.requested_period_px,
            "angle_error_deg": self.angle_error_deg,
            "period_error": self.period_error,
            "phase_shifts": list(self.phase_shifts),
        }


def quantise_grating(
    angle_deg: float,
    period_px: float,
    *,
    n_phases: int = 3,
    kind: GratingKind = "binary",
    duty: float = 0.5,
    max_lattice_period: int = 1024,
    angle_tol_deg: float = 0.1,
    period_tol: float = 0.002,
    max_sideband: float = 0.02,
    exact_phase_steps: bool = True,
    warn: bool = True,
) -> QuantisedGrating:
    """The lattice grating nearest to a requested angle and period.

    Parameters
    ----------
    angle_deg : float
        Requested direction of the wave vector on the device, ``atan2(ky, kx)``.
    period_px : float
        Requested period across the fringes, device pixels (at least 2).
    n_phases : int
        Phase steps (at least 3).
    kind, duty : str, float
        The pattern to be drawn (see :func:`render_grating`); binary patterns have harmonics
        that the pixel grid folds back, possibly next to the carrier.
    max_lattice_period : int
        Largest lattice period ``P`` searched.
    angle_tol_deg, period_tol, max_sideband : float
        The smallest ``P`` whose angle error, relative period error and
        :func:`sideband_ratio` are all within these is chosen; when none is, the one with the
        smallest combined (tolerance-normalised) error, with a warning.
    exact_phase_steps : bool
        Only ``P`` that are multiples of ``n_phases`` (phase steps exactly ``2 pi / n``);
        otherwise the shifts are rounded (the exact phases are reported either way).
    warn : bool
        Log a warning when no lattice grating is within the tolerances (False: a search that
        tries many gratings, most of which do not fit, e.g. :func:`best_grating_angles`).

    Returns
    -------
    QuantisedGrating
    """
    if not (math.isfinite(period_px) and period_px >= 2.0):
        raise ConfigurationError(
            f"grating period must be at least 2 device pixels (Nyquist), got {period_px}"
        )
    if not math.isfinite(angle_deg):
        raise ConfigurationError(f"grating angle must be finite, got {angle_deg}")
    if n_phases < 3:
        raise ConfigurationError(f"SIM needs at least 3 phase steps, got {n_phases}")
    if max_lattice_period < n_phases:
        raise ConfigurationError(f"max_lattice_period must be >= n_phases ({n_phases})")
    _profile(3, kind, contrast=1.0, duty=duty)  # validates kind
    kx = math.cos(math.radians(angle_deg)) / period_px
    ky = math.sin(math.radians(angle_deg)) / period_px
    step = n_phases if exact_phase_steps else 1
    best: tuple[float, int, int, int] | None = None
    chosen: tuple[int, int, int] | None = None
    for P in range(step, max_lattice_period + 1, step):
        a, b = round(kx * P), round(ky * P)
        if (a, b) == (0, 0) or math.gcd(math.gcd(a, b), P) != 1:
            continue
        q_period = P / math.hypot(a, b)
        if q_period < 2.0:
            continue
        d_angle = abs((math.degrees(math.atan2(b, a)) - angle_deg + 180.0) % 360.0 - 180.0)
        d_period = abs(q_period / period_px - 1.0)
        cost = (d_angle / angle_tol_deg) ** 2 + (d_period / period_tol) ** 2
        if best is not None and cost > best[0]:
            continue  # cannot win: skip the sideband computation
        side = _sideband_ratio(a, b, P, kind, duty)
        if d_angle <= angle_tol_deg and d_period <= period_tol and side <= max_sideband:
            chosen = (a, b, P)
            break
        # sidebands beyond the limit are worse than a period or angle off target: the period
        # and angle are reported and estimated, a beat in the pattern is not
        cost += 100.0 * max(0.0, side / max_sideband - 1.0) ** 2 if max_sideband > 0 else 0.0
        if best is None or cost < best[0]:
            best = (cost, a, b, P)
    if chosen is None:
        if best is None:
            raise ConfigurationError(
                f"no lattice grating near angle {angle_deg} deg, period {period_px} px with "
                f"P <= {max_lattice_period}: raise max_lattice_period"
            )
        chosen = best[1:]
        if warn:
            log.warning(
                "grating %.3f deg / %.4f px: no lattice grating within %.3g deg, %.3g %% and "
                "sidebands <= %.3g up to P=%d; using the closest, (a, b, P) = %s (another "
                "period, or exact_phase_steps=False, may fit better)",
                angle_deg,
                period_px,
                angle_tol_deg,
                100 * period_tol,
                max_sideband,
                max_lattice_period,
                chosen,
            )
    a, b, P = chosen
    shifts = tuple(round(n * P / n_phases) % P for n in range(n_phases))
    return QuantisedGrating(a, b, P, float(angle_deg), float(period_px), shifts)


def _sideband_ratio(a: int, b: int, P: int, kind: GratingKind, duty: float) -> float:
    prof = _profile(P, kind, contrast=1.0, duty=duty)
    spec = np.abs(np.fft.fft(prof)) / P
    m = np.arange(P)
    fx = (m * a / P + 0.5) % 1.0 - 0.5  # the pixel grid folds harmonic m to here
    fy = (m * b / P + 0.5) % 1.0 - 0.5
    kx, ky = a / P, b / P
    kmag = math.hypot(kx, ky)
    dist = np.minimum(np.hypot(fx - kx, fy - ky), np.hypot(fx + kx, fy + ky))
    near = (m > 1) & (m < P - 1) & (dist <= 0.25 * kmag)
    if not near.any() or spec[1] == 0:
        return 0.0
    return float(spec[near].max() / spec[1])


def sideband_ratio(
    q: QuantisedGrating, kind: GratingKind = "binary", *, duty: float = 0.5
) -> float:
    """Strongest folded harmonic within ``|k| / 4`` of the carrier, relative to the carrier.

    On a pixel grid the harmonics ``m k`` of a binary grating fold back into ``[-1/2, 1/2)``
    cycles per pixel; some can land next to the carrier, where they beat with it (a slowly
    varying pattern contrast) and bias its estimate. A pure cosine (``kind="grey"``) has none.
    """
    return _sideband_ratio(q.a, q.b, q.P, kind, duty)


def _profile(P: int, kind: GratingKind, *, contrast: float, duty: float) -> np.ndarray:
    """One period of the pattern as a function of ``u`` (floats in [0, 1])."""
    u = np.arange(P)
    if kind == "grey":
        return 0.5 + 0.5 * contrast * np.cos(2.0 * np.pi * u / P)
    if kind == "binary":
        width = min(P - 1, max(1, round(duty * P)))
        half = width // 2
        return (((u + half) % P) < width).astype(np.float64)  # centred on u = 0
    raise ConfigurationError(f"grating kind must be 'binary' or 'grey', got {kind!r}")


def fundamental(q: QuantisedGrating, kind: GratingKind, *, contrast: float = 1.0,
                duty: float = 0.5) -> tuple[float, float]:  # fmt: skip
    """Modulation ``2 |F1| / F0`` and phase ``arg F1`` of the pattern's fundamental.

    The pattern is ``F0 + 2 |F1| cos(2 pi k.r + 2 pi s / P + arg F1) + harmonics``.
    """
    prof = _profile(q.P, kind, contrast=contrast, duty=duty)
    u = np.arange(q.P)
    f1 = np.sum(prof * np.exp(-2j * np.pi * u / q.P)) / q.P
    f0 = prof.mean()
    return float(2.0 * abs(f1) / f0), float(np.angle(f1))


def render_grating(
    q: QuantisedGrating,
    shape: tuple[int, int],
    phase_index: int,
    *,
    kind: GratingKind = "binary",
    contrast: float = 1.0,
    duty: float = 0.5,
    bit_depth: int = 8,
) -> np.ndarray:
    """Draw one phase step of a lattice grating.

    Returns
    -------
    ndarray
        ``uint8`` 0/1 for ``kind="binary"`` (a DMD bit plane); for ``"grey"``, ``uint8``
        (bit_depth <= 8) or ``uint16`` values ``round((0.5 + 0.5 contrast cos(2 pi u / P))
        * (2**bit_depth - 1))``.
    """
    h, w = (int(n) for n in shape)
    if h < 1 or w < 1:
        raise ConfigurationError(f"pattern shape must be positive, got {shape}")
    if not 0 <= phase_index < q.n_phases:
        raise ConfigurationError(f"phase_index {phase_index} outside 0..{q.n_phases - 1}")
    if not 0 < contrast <= 1:
        raise ConfigurationError(f"contrast must be in (0, 1], got {contrast}")
    if not 0 < duty < 1:
        raise ConfigurationError(f"duty cycle must be in (0, 1), got {duty}")
    prof = _profile(q.P, kind, contrast=contrast, duty=duty)
    y = np.arange(h, dtype=np.int64)[:, None]
    x = np.arange(w, dtype=np.int64)[None, :]
    u = (q.a * x + q.b * y + q.phase_shifts[phase_index]) % q.P
    if kind == "binary":
        return prof.astype(np.uint8)[u]
    if not 1 <= bit_depth <= 16:
        raise ConfigurationError(f"bit_depth must be 1..16, got {bit_depth}")
    levels = np.rint(prof * (2**bit_depth - 1))
    dtype = np.uint8 if bit_depth <= 8 else np.uint16
    return levels.astype(dtype)[u]


@dataclass(frozen=True)
class ProjectionGeometry:
    """How device pixels map onto the sample (camera coordinates).

    Attributes
    ----------
    pixel_pitch_um : float
        Device pixel pitch.
    demagnification : float
        Device to sample (see :mod:`scope.planning`).
    rotation_deg : float
        Angle of the device's x axis in the camera frame, after ``mirror``.
    mirror : bool
        The projection flips the device's y axis relative to the camera.
    two_beam : bool
        Coherent light with the zero order blocked: the +-1 orders interfere into fringes of
        half the imaged period (and twice the phase steps).
    """

    pixel_pitch_um: float
    demagnification: float
    rotation_deg: float = 0.0
    mirror: bool = False
    two_beam: bool = False

    def __post_init__(self) -> None:
        if not (self.pixel_pitch_um > 0 and self.demagnification > 0):
            raise ConfigurationError(
                "pixel_pitch_um and demagnification must be positive, got "
                f"{self.pixel_pitch_um} and {self.demagnification}"
            )

    @classmethod
    def from_illuminator(
        cls, illuminator: Any, objective: Any = None, *, rotation_deg: float = 0.0,
        mirror: bool = False,
    ) -> ProjectionGeometry:  # fmt: skip
        """From a :class:`scope.planning.Illuminator` (and its objective when the
        demagnification comes from the illumination lens)."""
        from scope.planning import illuminator_demagnification

        demag = illuminator_demagnification(illuminator, objective)
        if illuminator.pixel_pitch_um is None or demag is None:
            raise ConfigurationError(
                f"illuminator {illuminator.name!r} needs pixel_pitch_um and a demagnification "
                "(or illumination_lens_focal_mm and the objective) to map gratings to the sample"
            )
        return cls(
            pixel_pitch_um=illuminator.pixel_pitch_um,
            demagnification=demag,
            rotation_deg=rotation_deg,
            mirror=mirror,
            two_beam=illuminator.projection == "two_beam",
        )

    @property
    def device_pixel_at_sample_nm(self) -> float:
        return 1000.0 * self.pixel_pitch_um / self.demagnification


@dataclass(frozen=True)
class PatternSet:
    """The frames of one SIM acquisition and what they are.

    ``frames[angle * n_phases + phase]`` (angle-major, phase fastest): upload them to the
    illuminator in this order and the controller sequence is ``range(n_frames)``.
    """

    frames: np.ndarray
    gratings: tuple[QuantisedGrating, ...]
    kind: GratingKind
    contrast: float = 1.0
    duty: float = 0.5
    notes: dict = field(default_factory=dict, compare=False)

    @property
    def n_angles(self) -> int:
        return len(self.gratings)

    @property
    def n_phases(self) -> int:
        return self.gratings[0].n_phases

    @property
    def sequence(self) -> list[int]:
        """Pattern indices to upload to the controller (``PatternController.upload_sequence``)."""
        return list(range(self.n_angles * self.n_phases))

    def device_phases_rad(self, angle_index: int) -> tuple[float, ...]:
        """Phase of the fundamental of each step on the device grid (origin: pixel (0, 0))."""
        q = self.gratings[angle_index]
        _, psi = fundamental(q, self.kind, contrast=self.contrast, duty=self.duty)
        return tuple((p + psi) % (2 * math.pi) for p in q.lattice_phases_rad())

    def report(self) -> list[dict]:
        """Requested and quantised angle/period of each angle, with the errors."""
        out = []
        for i, q in enumerate(self.gratings):
            m, _ = fundamental(q, self.kind, contrast=self.contrast, duty=self.duty)
            d = q.as_dict()
            d["fundamental_modulation"] = m
            d["sideband_ratio"] = sideband_ratio(q, self.kind, duty=self.duty)
            d["phases_rad"] = list(self.device_phases_rad(i))
            out.append(d)
        return out

    def nominal_parameters(self, geometry: ProjectionGeometry) -> SIMParameters:
        """Prior pattern parameters at the sample for the reconstruction.

        Angles and periods are the quantised ones mapped through ``geometry``; phases assume
        the device's pixel (0, 0) lands on the camera's pixel (0, 0) (the estimate refines
        them). ``modulation`` is the pattern's fundamental contrast (at most 1), before the
        optics attenuate it.
        """
        angles = []
        for i, q in enumerate(self.gratings):
            angle = -q.angle_deg if geometry.mirror else q.angle_deg
            # rotating or mirroring both k and r leaves k.r, hence the phases, unchanged
            phases = self.device_phases_rad(i)
            angle += geometry.rotation_deg
            period_nm = q.period_px * geometry.device_pixel_at_sample_nm
            m, _ = fundamental(q, self.kind, contrast=self.contrast, duty=self.duty)
            if geometry.two_beam:
                period_nm /= 2.0
                phases = tuple((2.0 * p) % (2 * math.pi) for p in phases)
                m = 1.0
            angle = (angle + 180.0) % 360.0 - 180.0
            angles.append(
                AngleParameters(
                    angle_deg=angle,
                    period_nm=period_nm,
                    phases_rad=phases,
                    modulation=min(1.0, m),
                    source="given",
                )
            )
        return SIMParameters(
            tuple(angles),
            notes={"origin": "scope.sim.gratings", "kind": self.kind, "report": self.report()},
        )


#: smallest difference between two grating orientations (mod 180 degrees) a pattern set takes
MIN_ANGLE_SEPARATION_DEG = 1.0


def orientation_difference_deg(a_deg: float, b_deg: float) -> float:
    """How far apart two orientations are, degrees in [0, 90] (``a`` and ``a + 180`` are one).

    Examples
    --------
    >>> orientation_difference_deg(10.0, 189.5)
    0.5
    """
    return abs((a_deg - b_deg + 90.0) % 180.0 - 90.0)


def same_orientation_pair(
    angles_deg: Sequence[float], *, min_separation_deg: float = MIN_ANGLE_SEPARATION_DEG
) -> tuple[int, int, float] | None:
    """The first two angles closer than ``min_separation_deg`` modulo 180 degrees.

    Parameters
    ----------
    angles_deg : sequence of float
        Angles in degrees; a non-finite one is never close to another.
    min_separation_deg : float
        Smallest difference of two distinct orientations.

    Returns
    -------
    (i, j, apart) or None
        Indices ``i < j`` of the pair and their :func:`orientation_difference_deg`; None when
        every orientation is distinct.
    """
    values = [float(a) for a in angles_deg]
    for i, a in enumerate(values):
        for j in range(i + 1, len(values)):
            apart = orientation_difference_deg(a, values[j])
            if apart < min_separation_deg:
                return i, j, apart
    return None


def _same_grating_message(angles: list[float], i: int, j: int, apart: float,
                          min_separation_deg: float) -> str:  # fmt: skip
    """What :func:`check_distinct_angles` says by default (a pattern set's gratings)."""
    n = len(angles)
    spaced = " ".join(f"{k * 180 / n:g}" for k in range(n))
    return (
        f"grating angles {angles[i]:g}° and {angles[j]:g}° are the same orientation "
        f"({apart:.3g}° apart, modulo 180°): give distinct angles at least "
        f"{min_separation_deg:g}° apart, e.g. {n} equally spaced over 180° ({spaced})"
    )


def check_distinct_angles(
    angles_deg: Sequence[float],
    *,
    min_separation_deg: float = MIN_ANGLE_SEPARATION_DEG,
    message: Callable[[int, int, float], str] | None = None,
    error: type[Exception] = ConfigurationError,
) -> None:
    """Refuse orientations closer than ``min_separation_deg`` (mod 180 degrees).

    A grating at ``a`` and one at ``a + 180`` are the same orientation; two of one orientation
    give no extra direction of resolution and make the reconstruction's angles ambiguous. The
    one check of distinct orientations for pattern sets, ``scope acquire --angles`` and the
    estimated carriers of a reconstruction; each caller words the error for its context.

    Parameters
    ----------
    angles_deg : sequence of float
        The angles, degrees.
    min_separation_deg : float
        Smallest difference of two distinct orientations.
    message : callable, optional
        ``message(i, j, apart)``: the error text for angles ``i`` and ``j`` that are ``apart``
        degrees apart (say what was given and what to do). Default: the pattern set's wording.
    error : exception type
        Raised with the message; default :class:`~scope.errors.ConfigurationError`.

    Raises
    ------
    error
        Naming the two angles and how far apart they are.
    """
    values = [float(a) for a in angles_deg]
    pair = same_orientation_pair(values, min_separation_deg=min_separation_deg)
    if pair is None:
        return
    if message is None:
        raise error(_same_grating_message(values, *pair, min_separation_deg))
    raise error(message(*pair))


def make_pattern_set(
    angles_deg: Sequence[float],
    period_px: float | Sequence[float],
    *,
    shape: tuple[int, int],
    n_phases: int = 3,
    kind: GratingKind = "binary",
    contrast: float = 1.0,
    duty: float = 0.5,
    bit_depth: int = 8,
    **quantise_options: float | int | bool,
) -> PatternSet:
    """Quantised gratings for every angle and their phase-step frames.

    Angles closer than 1 degree (modulo 180, :func:`check_distinct_angles`) are refused with a
    :class:`~scope.errors.ConfigurationError`: they would be one orientation twice.

    Examples
    --------
    >>> ps = make_pattern_set([0, 60, 120], 6.0, shape=(64, 64))
    >>> ps.frames.shape, ps.frames.dtype.name
    ((9, 64, 64), 'uint8')
    """
    if len(angles_deg) < 1:
        raise ConfigurationError("give at least one grating angle")
    check_distinct_angles(angles_deg)
    periods = (
        [float(period_px)] * len(angles_deg)
        if isinstance(period_px, int | float)
        else [float(p) for p in period_px]
    )
    if len(periods) != len(angles_deg):
        raise ConfigurationError(
            f"got {len(periods)} periods for {len(angles_deg)} angles: give one or one each"
        )
    gratings = tuple(
        quantise_grating(float(a), p, n_phases=n_phases, kind=kind, duty=duty, **quantise_options)  # type: ignore[arg-type]
        for a, p in zip(angles_deg, periods)
    )
    frames = np.stack(
        [
            render_grating(
                q, shape, n, kind=kind, contrast=contrast, duty=duty, bit_depth=bit_depth
            )
            for q in gratings
            for n in range(n_phases)
        ]
    )
    for q in gratings:  # scope patterns prints them; a log line only for debugging
        log.debug(
            "grating %.3f deg / %.4f px -> (a, b, P) = (%d, %d, %d): %.4f deg / %.5f px "
            "(errors %+.4f deg, %+.4f %%)",
            q.requested_angle_deg,
            q.requested_period_px,
            q.a,
            q.b,
            q.P,
            q.angle_deg,
            q.period_px,
            q.angle_error_deg,
            100 * q.period_error,
        )
    return PatternSet(frames, gratings, kind, contrast=contrast, duty=duty)


def _dtft(img: np.ndarray, kx: float, ky: float) -> complex:
    h, w = img.shape
    ex = np.exp(-2j * np.pi * kx * np.arange(w))
    ey = np.exp(-2j * np.pi * ky * np.arange(h))
    return complex(ey @ (img @ ex))


def measure_grating(
    image: np.ndarray, *, near_k_per_px: tuple[float, float] | None = None
) -> tuple[float, float, float]:
    """Measure the dominant grating of an image: its angle, period and phase.

    The strongest peak of the windowed (Hann) power spectrum away from zero frequency (or the one
    nearest ``near_k_per_px``) is refined below the FFT bin by maximising ``|DTFT(k)|`` of the
    windowed, mean-free image (parabolic steps on ``log |DTFT|``, axis by axis).

    Returns
    -------
    angle_deg : float
        ``atan2(ky, kx)`` folded into [0, 180).
    period_px : float
        ``1 / |k|``, pixels.
    phase_rad : float
        Phase ``phi`` of ``cos(2 pi k.r + phi)`` with ``r`` from pixel (0, 0), for the folded k.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 16:
        raise DataFormatError(f"need a 2D image of at least 16x16 pixels, got {img.shape}")
    h, w = img.shape
    win = np.hanning(h)[:, None] * np.hanning(w)[None, :]
    data = (img - img.mean()) * win
    power = np.abs(np.fft.fft2(data)) ** 2
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    kr = np.hypot(fx, fy)
    power[kr < 3.0 / min(h, w)] = 0.0  # the window's DC lobe
    power[fy[:, 0] < 0, :] = 0.0  # one of each +-k pair
    if near_k_per_px is not None:
        dist = np.hypot(fx - near_k_per_px[0], fy - near_k_per_px[1])
        dist2 = np.hypot(fx + near_k_per_px[0], fy + near_k_per_px[1])
        power[np.minimum(dist, dist2) > 4.0 / min(h, w)] = 0.0
    iy, ix = np.unravel_index(int(np.argmax(power)), power.shape)
    k = np.array([fx[0, ix], fy[iy, 0]], dtype=np.float64)

    def log_abs(kk: np.ndarray) -> float:
        return math.log(abs(_dtft(data, kk[0], kk[1])) + 1e-300)

    # the window's transform is separable, so is log|DTFT| near the peak: refine each axis by
    # a parabola through three samples, shrinking the step (about 60 DTFT evaluations)
    step = 0.5 / max(h, w)
    while step > 1e-7 / max(h, w):
        for axis in (0, 1):
            e = np.zeros(2)
            e[axis] = step
            fm, f0, fp = log_abs(k - e), log_abs(k), log_abs(k + e)
            curv = fm - 2.0 * f0 + fp
            delta = 0.5 * (fm - fp) / curv if curv < 0 else (1.0 if fp > fm else -1.0)
            k[axis] += float(np.clip(delta, -1.0, 1.0)) * step
        step /= 4.0
    kx, ky = float(k[0]), float(k[1])
    if ky < 0 or (ky == 0 and kx < 0):
        kx, ky = -kx, -ky
    phase = float(np.angle(_dtft(data, kx, ky)))
    angle = math.degrees(math.atan2(ky, kx)) % 180.0
    return angle, 1.0 / math.hypot(kx, ky), phase % (2 * math.pi)


def best_grating_angles(n_angles: int, period_px: float, n_phases: int, kind: str) -> list[float]:
    """Equally spaced angles whose first one (0, 1, ... degrees) lets every grating land on the
    device's pixel lattice closest to the requested period and angle.

    Gratings along a pixel axis often cannot take exact phase steps at the requested period
    (a binary 5 px grating at 0° comes out 2.9 % long); a few degrees off the axes they can.
    """
    step = 180.0 / n_angles
    best: tuple[float, float] | None = None
    for start in range(int(step)):
        badness = 0.0
        for i in range(n_angles):
            # the search tries many gratings that do not fit: no warning for each
            q = quantise_grating(
                start + i * step, period_px, n_phases=n_phases, kind=kind, warn=False
            )
            # errors in units of the quantiser's tolerances (0.1 deg, 0.2 %)
            badness = max(badness, abs(q.angle_error_deg) / 0.1, abs(q.period_error) / 2e-3)
        if best is None or badness < best[1] - 1e-9:
            best = (float(start), badness)
    if best is None:
        raise ValueError(f"{n_angles} angles leave no starting angle to search")
    return [best[0] + i * step for i in range(n_angles)]
