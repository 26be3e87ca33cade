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
    best = None
    for signs in itertools.product((1.0, -1.0), repeat=n):
        k = k_meas * np.asarray(signs)
        # k = B q with B = A^-T: least squares B = k q^+ (2 x 2)
        b = k @ np.linalg.pinv(q)
        resid = float(np.sqrt(np.mean(np.sum((b @ q - k) ** 2, axis=0) / np.sum(k**2, axis=0))))
        if best is None or resid < best[0]:
            best = (resid, signs, b)
    assert best is not None
    resid, signs, b = best
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


def save_registration(preset: str | Path, registration: IlluminatorRegistration) -> None:
    """Write ``[calibration.registration]`` into the preset TOML (the rest is kept)."""
    from scope.calibration.preset import update_calibration

    update_calibration(preset, "registration", registration.to_toml())
