"""Illuminator-to-camera registration from a calibrated pattern.

The gratings shown on the pattern device are known exactly on its pixel lattice (wave vector
``q`` in cycles per device pixel and the phase ``psi`` of each step, :mod:`scope.sim.gratings`);
the pattern calibration measures what arrives at the sample in camera coordinates (wave vector
``k`` in cycles/µm and phase ``phi`` at the centre of camera pixel (0, 0),
:mod:`scope.calibration.pattern`). With an affine map ``r = A u + t`` from device pixels ``u`` to
the sample (µm), ``q.u = (A^-T q).r - q.A^-1 t``, so

    k = f A^-T q        phi = f (psi - 2 pi q.A^-1 t)   (mod 2 pi)

with ``f = 2`` for two-beam projection (the +-1 orders interfere: twice the frequency, twice
the phase) and 1 otherwise. Three or more orientations over-determine ``A`` (4 unknowns from 2
per orientation), which is fitted by least squares over the sign choices of the measured ``k``
(``k`` and ``-k`` describe the same pattern); the residual tells whether the map is affine. ``A``
is then split into scale (device pixel size at the sample, hence the demagnification), rotation,
mirror and anisotropy (polar decomposition), the terms of
:class:`scope.sim.gratings.ProjectionGeometry`. The phases give, per orientation, the offset
between the device phase and the camera phase, and the translation ``t`` modulo the pattern's
repeat (the solution nearest the device origin is reported).

A fit to gratings passed in another order than the device showed them (or to another pattern
set's gratings) still returns a map, a wrong one: its relative residual, far above what a correct
fit leaves (:data:`RESIDUAL_WARN_REL`), is warned about, with the order of the given gratings that
does fit when there is one.

References
----------
Higham, "Computing the polar decomposition — with applications", SIAM J. Sci. Stat. Comput. 7,
1160 (1986).
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scope.errors import DataFormatError

log = logging.getLogger(__name__)

#: relative wave-vector residual above which a registration is warned about. Measured on
#: simulated calibrations (0/60/120, 10/70/130 and 0/45/90/135 deg gratings of 4-16 device
#: pixels, one- and two-beam, mirrored or not, 128-256 px, 200-2000 photons, two sets): the
#: gratings in the order shown leave 2e-6 to 1.4e-4; in another order 5e-4 to 0.5 (0.016 for
#: 0/60/120 deg with two gratings swapped). Some orders cannot be told from the right one by
#: the wave vectors alone: a cyclic shift of equal-period gratings 360/n deg apart is the same
#: pattern rotated. Raised to 3x the scatter of the calibration's sets where that is larger
RESIDUAL_WARN_REL = 1e-3


@dataclass(frozen=True)
class IlluminatorRegistration:
    """Affine map from pattern-device pixels to the sample, ``r_um = A u_px + t_um``.

    Attributes
    ----------
    matrix_um_per_px : ndarray (2, 2)
        ``A``; columns are the device's x and y pixel steps at the sample, µm (x along camera
        columns, y along rows).
    scale_um_per_px : float
        ``sqrt(|det A|)``: one device pixel at the sample.
    rotation_deg : float
        Rotation of the device's x axis in the camera frame (after ``mirror``).
    mirror : bool
        The projection flips handedness (``det A < 0``); as in ProjectionGeometry, the device's
        y axis is flipped before the rotation.
    anisotropy : float
        Ratio of the singular values of ``A`` minus 1 (0 for a similarity).
    residual_rel : float
        Rms residual of the wave-vector fit relative to ``|k|``.
    phase_offsets_rad : tuple of float
        Per orientation, camera phase minus ``f`` x device phase (mod 2 pi): the camera phase of
        any step is predicted as ``f psi + offset``.
    device_px_at_camera_origin : tuple of float
        Device pixel ``(x, y)`` imaged on the centre of camera pixel (0, 0), modulo the repeat of
        the pattern set.
    two_beam : bool
    """

    matrix_um_per_px: np.ndarray
    scale_um_per_px: float
    rotation_deg: float
    mirror: bool
    anisotropy: float
    residual_rel: float
    phase_offsets_rad: tuple[float, ...]
    device_px_at_camera_origin: tuple[float, float]
    two_beam: bool

    def demagnification(self, pixel_pitch_um: float) -> float:
        """Device-to-sample demagnification for a device of this pixel pitch."""
        return pixel_pitch_um / self.scale_um_per_px

    def to_geometry(self, pixel_pitch_um: float) -> Any:
        """The :class:`scope.sim.gratings.ProjectionGeometry` this registration measured."""
        from scope.sim.gratings import ProjectionGeometry

        return ProjectionGeometry(
            pixel_pitch_um=pixel_pitch_um,
            demagnification=self.demagnification(pixel_pitch_um),
            rotation_deg=self.rotation_deg,
            mirror=self.mirror,
            two_beam=self.two_beam,
        )

    def to_toml(self) -> dict[str, Any]:
        return {
            "matrix_um_per_px": [[float(v) for v in row] for row in self.matrix_um_per_px],
            "scale_um_per_px": self.scale_um_per_px,
            "rotation_deg": self.rotation_deg,
            "mirror": self.mirror,
            "anisotropy": self.anisotropy,
            "residual_rel": self.residual_rel,
            "phase_offsets_rad": list(self.phase_offsets_rad),
            "device_px_at_camera_origin": list(self.device_px_at_camera_origin),
            "two_beam": self.two_beam,
        }


def _polar(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A = R S with R orthogonal and S symmetric positive (via the SVD)."""
    u, s, vt = np.linalg.svd(a)
    return u @ vt, vt.T @ np.diag(s) @ vt


def fit_registration(
    device_k_per_px: list[tuple[float, float]],
    device_phases_rad: list[tuple[float, ...]],
    calibration: Any,
    *,
    two_beam: bool = False,
) -> IlluminatorRegistration:
    """Fit the device-to-sample map from known gratings and a pattern calibration.

    Parameters
    ----------
    device_k_per_px : list of (qx, qy)
        Wave vector of each grating on the device, cycles per device pixel
        (``QuantisedGrating.k_per_px``), in acquisition order.
    device_phases_rad : list of tuples
        Phase of each step on the device (``PatternSet.device_phases_rad(i)``).
    calibration : PatternCalibration
        The measured pattern (:func:`scope.calibration.pattern.calibrate_pattern`).
    two_beam : bool
        Coherent two-beam projection (frequency and phases doubled).

    Returns
    -------
    IlluminatorRegistration

    Notes
    -----
    A relative residual above :data:`RESIDUAL_WARN_REL` (or 3x the calibration's scatter over
    its sets) is warned about: no affine map takes these gratings onto the calibrated pattern,
    most likely because they were given in another order than the device showed them; the
    warning names an order of them that fits. Two orientations determine the map exactly (no
    residual to check), and a cyclic shift of equal-period gratings evenly spread over 180 deg
    fits as well as the right order (the same pattern, rotated): check the rotation against the
    optics layout.
    """
    angles = calibration.params.angles
    n = len(angles)
    if len(device_k_per_px) != n or len(device_phases_rad) != n:
        raise DataFormatError(
            f"the calibration has {n} orientations but {len(device_k_per_px)} device gratings "
            "were given: pass the gratings of the pattern set that was calibrated"
        )
    if n < 2:
        raise DataFormatError("registration needs at least two grating orientations")
    f = 2.0 if two_beam else 1.0
    q = np.asarray(device_k_per_px, dtype=np.float64).T  # (2, n)
    k_meas = np.asarray([a.k_per_um for a in angles], dtype=np.float64).T / f
    resid, signs, b = _fit_linear(q, k_meas)
    expected = _calibration_scatter_rel(calibration)
    limit = max(RESIDUAL_WARN_REL, 3.0 * expected)
    if resid > limit:
        _warn_misfit(q, k_meas, resid, limit, expected)
    a_mat = np.linalg.inv(b).T  # µm per device pixel
    det = float(np.linalg.det(a_mat))
    mirror = det < 0
    flip = np.diag([1.0, -1.0]) if mirror else np.eye(2)
    rot, _ = _polar(a_mat @ flip)
    rotation = math.degrees(math.atan2(rot[1, 0], rot[0, 0]))
    sv = np.linalg.svd(a_mat, compute_uv=False)
    # phase offsets: phi = f psi + offset, with the sign chosen for k applied to phi
    offsets = []
    for i, ang in enumerate(angles):
        phi = np.asarray(ang.phases_rad) * signs[i]
        psi = np.asarray(device_phases_rad[i], dtype=np.float64)
        if psi.size != phi.size:
            raise DataFormatError(
                f"orientation {i}: {phi.size} calibrated phases but {psi.size} device phases"
            )
        offsets.append(float(np.angle(np.mean(np.exp(1j * (phi - f * psi))))))
    # translation: offset_a = -2 pi f q_a.v (mod 2 pi) with v = A^-1 t; v is found modulo the
    # lattice of the gratings: search small integer ambiguities, keep the best-fitting and then
    # the shortest solution
    rhs = -np.asarray(offsets) / (2 * math.pi * f)
    cands = []
    for m in itertools.product(range(-3, 4), repeat=n):
        target = rhs + np.asarray(m) / f
        v, *_ = np.linalg.lstsq(q.T, target, rcond=None)
        err = float(np.sqrt(np.mean((q.T @ v - target) ** 2)))
        cands.append((round(err, 6), float(np.hypot(*v)), v))
    cands.sort(key=lambda c: (c[0], c[1]))
    v = cands[0][2]
    reg = IlluminatorRegistration(
        matrix_um_per_px=a_mat,
        scale_um_per_px=math.sqrt(abs(det)),
        rotation_deg=rotation,
        mirror=mirror,
        anisotropy=float(sv[0] / sv[1] - 1.0),
        residual_rel=resid,
        phase_offsets_rad=tuple(offsets),
        device_px_at_camera_origin=(float(-v[0]), float(-v[1])),
        two_beam=two_beam,
    )
    log.info(
        "registration: %.5f µm per device pixel, rotation %.3f deg, mirror %s, anisotropy %.2e,"
        " residual %.2e",
        reg.scale_um_per_px,
        reg.rotation_deg,
        reg.mirror,
        reg.anisotropy,
        reg.residual_rel,
    )
    return reg


def _fit_linear(q: np.ndarray, k_meas: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares ``k = B q`` over the sign choices of the measured ``k``: the relative rms
    residual, the signs and ``B`` of the best."""
    n = q.shape[1]
    best = None
    for signs in itertools.product((1.0, -1.0), repeat=n):
        k = k_meas * np.asarray(signs)
        # k = B q with B = A^-T: least squares B = k q^+ (2 x 2)
        b = k @ np.linalg.pinv(q)
        resid = float(np.sqrt(np.mean(np.sum((b @ q - k) ** 2, axis=0) / np.sum(k**2, axis=0))))
        if best is None or resid < best[0]:
            best = (resid, np.asarray(signs), b)
    assert best is not None
    return best


def _calibration_scatter_rel(calibration: Any) -> float:
    """Relative scatter of the calibrated wave vectors over the calibration's sets (rms over the
    angles of the angle's and the period's relative scatter; 0 when not measured)."""
    terms = []
    for a, ang_std, per_std in zip(
        calibration.params.angles, calibration.angle_std_deg, calibration.period_std_nm
    ):
        if ang_std is None or per_std is None:
            continue
        if not (math.isfinite(ang_std) and math.isfinite(per_std)):
            continue
        terms.append(math.radians(ang_std) ** 2 + (per_std / a.period_nm) ** 2)
    return math.sqrt(float(np.mean(terms))) if terms else 0.0


def _warn_misfit(
    q: np.ndarray, k_meas: np.ndarray, resid: float, limit: float, expected: float
) -> None:
    """Warn that no affine map fits the gratings as given, and say which order would fit."""
    n = q.shape[1]
    fits = []
    if n <= 6:
        for order in itertools.permutations(range(n)):
            if order != tuple(range(n)):
                fits.append((_fit_linear(q[:, list(order)], k_meas)[0], order))
    fits.sort()
    good = [(r, order) for r, order in fits if r <= limit]
    hint = ""
    if good:
        orders = " or ".join(f"({', '.join(map(str, order))})" for _, order in good[:3])
        hint = (
            f" The given gratings taken in the order {orders} fit (residual "
            f"{good[0][0]:.1e}): pass them in the order the device showed them (angle-major, "
            "as calibrated)."
        )
    log.warning(
        "registration: the device gratings do not map onto the calibrated pattern: relative "
        "residual %.1e, where a correct fit leaves below %.0e%s. The geometry (rotation, "
        "scale, mirror) is then wrong. Likely cause: the gratings were given in another order "
        "than the device displayed them, or they are not the gratings of the pattern set that "
        "was calibrated (another period, angle list or device).%s",
        resid,
        limit,
        f" (the calibration's own scatter is {expected:.1e})" if expected > 0 else "",
        hint,
    )


def save_registration(preset: str | Path, registration: IlluminatorRegistration) -> None:
    """Write ``[calibration.registration]`` into the preset TOML (the rest is kept)."""
    from scope.calibration.preset import update_calibration

    update_calibration(preset, "registration", registration.to_toml())
