"""Forward model: raw 2D-SIM frames from a ground-truth sample.

The sample lives on the 2x SIM grid (pixel ``dx/2``); camera pixel ``(i, j)`` integrates sample
pixels ``2i..2i+1`` x ``2j..2j+1``, so camera pixel centres sit between sample pixels. Each frame
is ``camera[ OTF * ( sample * pattern ) ]`` where the camera integrates over square pixels
(sinc transfer) and samples every ``dx``; then background, Poisson shot noise, Gaussian read
noise, gain and offset give ADU counts.

The pattern follows the package convention ``I(r) = 1 + m cos(2 pi k.r + phi)`` with ``r``
measured in µm from the centre of camera pixel (0, 0).

References
----------
Gustafsson, "Surpassing the lateral resolution limit by a factor of two using structured
illumination microscopy", J. Microsc. 198, 82-87 (2000).
"""

from __future__ import annotations

import numpy as np

from scope.errors import ConfigurationError, DataFormatError
from scope.optics import OTF, OpticalSetup, pixel_transfer
from scope.sim.params import AngleParameters, SIMParameters
from scope.sim.spectral import freq_grid, pixel_coordinates_um


def pattern_image(
    angle: AngleParameters,
    phase_rad: float,
    shape: tuple[int, int],
    pixel_size_um: float,
    *,
    modulation: float | None = None,
    origin_px: float = 0.0,
    distortion: float = 0.0,
) -> np.ndarray:
    """Illumination ``1 + m cos(2 pi k.r + phi)`` sampled at pixel centres.

    ``origin_px`` is the pixel coordinate of the origin (0 for the camera grid; 0.5 on the 2x
    grid, where camera pixel (0, 0)'s centre lies between sample pixels 0 and 1).

    ``distortion`` bends the pattern as imperfect illumination optics do, radially about the
    field's centre ``c``: the pattern at ``r`` is the straight pattern at
    ``c + (r - c)(1 + d |r - c|^2 / R^2)``, ``R`` the half-diagonal of the field, so in the
    corners it is displaced by the fraction ``d`` of the distance from the centre (0.01: 1 %).
    ``d > 0`` squeezes the pattern towards the corners (its period there shorter by 1-3 d,
    tangentially and radially), ``d < 0`` stretches it. The pattern is then no longer one wave
    vector: its period and angle change across the field (see :mod:`scope.sim.pattern_map`).
    """
    m = angle.modulation if modulation is None else modulation
    kx, ky = angle.k_per_um
    y, x = pixel_coordinates_um(shape, pixel_size_um, origin_px=origin_px)
    if distortion:
        ny, nx = shape
        # the field's centre and half-diagonal (the same on the camera and the 2x grid)
        cy = ((ny - 1) / 2 - origin_px) * pixel_size_um
        cx = ((nx - 1) / 2 - origin_px) * pixel_size_um
        r2 = (ny * pixel_size_um) ** 2 / 4 + (nx * pixel_size_um) ** 2 / 4
        stretch = 1 + distortion * ((y - cy) ** 2 + (x - cx) ** 2) / r2
        y, x = cy + (y - cy) * stretch, cx + (x - cx) * stretch
    return 1.0 + m * np.cos(2 * np.pi * (kx * x + ky * y) + phase_rad)


class SIMForwardModel:
    """Renders noiseless camera frames of a sample on the 2x grid under any pattern.

    Parameters
    ----------
    sample_2x : ndarray (2Y, 2X)
        Fluorophore density on the SIM grid (non-negative).
    setup : OpticalSetup
        Detection optics; ``setup.pixel_size_nm`` is the camera pixel at the sample.
    otf : OTF, optional
        Detection OTF (default: the ideal OTF of ``setup``).

    Examples
    --------
    >>> from scope.sim.samples import make_sample
    >>> setup = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
    >>> model = SIMForwardModel(make_sample((64, 64), "beads"), setup)
    >>> p = SIMParameters.equidistant([0, 60, 120], period_nm=260)
    >>> model.frame(p.angles[0], 0.0).shape
    (32, 32)
    """

    def __init__(self, sample_2x: np.ndarray, setup: OpticalSetup, otf: OTF | None = None):
        sample = np.asarray(sample_2x, dtype=np.float64)
        if sample.ndim != 2 or sample.shape[0] % 2 or sample.shape[1] % 2:
            raise DataFormatError(
                f"the sample must be a 2D array with even sides on the 2x grid, got {sample.shape}"
            )
        if np.any(sample < 0) or not np.all(np.isfinite(sample)):
            raise DataFormatError("the sample must be finite and non-negative")
        self.sample = sample
        self.setup = setup
        self.otf = otf or OTF.from_setup(setup)
        self.shape_2x = sample.shape
        self.shape = (sample.shape[0] // 2, sample.shape[1] // 2)
        dx = setup.pixel_size_um
        ky, kx = freq_grid(self.shape_2x, dx / 2)
        transfer = self.otf(np.hypot(kx, ky)) * pixel_transfer(kx, ky, dx)
        # camera pixel centres lie half a sample pixel after sample pixel centres
        transfer = transfer * np.exp(2j * np.pi * (kx + ky) * dx / 4)
        self._transfer = transfer

    def camera(self, intensity_2x: np.ndarray) -> np.ndarray:
        """What the camera records of an emission image on the 2x grid (noiseless, relative units):
        blurred by the OTF, integrated over camera pixels and sampled every camera pixel."""
        spec = np.fft.fft2(intensity_2x) * self._transfer
        ny, nx = self.shape
        spec = np.fft.fftshift(spec)
        cy, cx = self.shape_2x[0] // 2 - ny // 2, self.shape_2x[1] // 2 - nx // 2
        spec = np.fft.ifftshift(spec[cy : cy + ny, cx : cx + nx])
        return np.fft.ifft2(spec).real / 4.0

    def camera_adjoint(self, frame: np.ndarray) -> np.ndarray:
        """The adjoint of :meth:`camera`: a camera frame spread back onto the 2x grid.

        ``<camera(x), y> == <x, camera_adjoint(y)>`` for real ``x`` and ``y``; the basis of
        iterative (e.g. Richardson-Lucy) reconstructions.
        """
        ny, nx = self.shape
        big = np.zeros(self.shape_2x, complex)
        cy, cx = self.shape_2x[0] // 2 - ny // 2, self.shape_2x[1] // 2 - nx // 2
        big[cy : cy + ny, cx : cx + nx] = np.fft.fftshift(np.fft.fft2(frame))
        return np.fft.ifft2(np.fft.ifftshift(big) * np.conj(self._transfer)).real

    def frame(
        self,
        angle: AngleParameters,
        phase_rad: float,
        modulation: float | None = None,
        *,
        distortion: float = 0.0,
    ):
        """Noiseless camera frame (relative units: a uniform sample of 1 gives 1); the pattern
        bent by ``distortion`` as in :func:`pattern_image`."""
        pat = pattern_image(
            angle,
            phase_rad,
            self.shape_2x,
            self.setup.pixel_size_um / 2,
            modulation=modulation,
            origin_px=0.5,
            distortion=distortion,
        )
        return self.camera(self.sample * pat)

    def widefield(self) -> np.ndarray:
        """Noiseless widefield camera frame (uniform illumination)."""
        return self.camera(self.sample)

    def frames(self, params: SIMParameters, *, distortion: float = 0.0) -> np.ndarray:
        """All noiseless frames of a SIM set, angle-major, phase fastest."""
        return np.stack(
            [self.frame(a, ph, distortion=distortion) for a in params.angles for ph in a.phases_rad]
        ).astype(np.float64)


def add_camera_noise(
    expected_photons: np.ndarray,
    *,
    read_noise_e: float = 1.5,
    offset_adu: float | np.ndarray = 100.0,
    gain_adu_per_e: float | np.ndarray = 1.0,
    rng: np.random.Generator | int | None = None,
    bit_depth: int = 16,
) -> np.ndarray:
    """Poisson shot noise, Gaussian read noise, gain, offset, rounding and clipping to ADU
    (offset and gain: one for the sensor, or one per pixel)."""
    rng = np.random.default_rng(rng)
    electrons = rng.poisson(np.clip(expected_photons, 0, None)).astype(np.float64)
    electrons += rng.normal(0.0, read_noise_e, electrons.shape)
    adu = np.rint(electrons * gain_adu_per_e + offset_adu)
    return np.clip(adu, 0, 2**bit_depth - 1).astype(np.float32)


def simulate_raw(
    ground_truth_2x: np.ndarray,
    params: SIMParameters,
    setup: OpticalSetup,
    *,
    photons_peak: float = 400.0,
    background_photons: float = 20.0,
    read_noise_e: float = 1.5,
    offset_adu: float = 100.0,
    gain_adu_per_e: float = 1.0,
    otf: OTF | None = None,
    rng: np.random.Generator | int | None = None,
    noise: bool = True,
    pattern_distortion: float = 0.0,
) -> np.ndarray:
    """Simulate a raw 2D-SIM stack.

    Parameters
    ----------
    ground_truth_2x : ndarray (2Y, 2X)
        Sample on the 2x grid.
    params : SIMParameters
        Pattern angles, periods, per-frame phases and modulation depths.
    setup : OpticalSetup
        Detection optics and camera pixel size at the sample.
    photons_peak : float
        Expected photo-electrons at the brightest pixel of the brightest frame, background
        excluded.
    background_photons : float
        Uniform unmodulated background per pixel (out-of-focus light, autofluorescence).
    read_noise_e, offset_adu, gain_adu_per_e : float
        Camera model: ``ADU = gain * (Poisson(signal) + N(0, read_noise)) + offset``.
    noise : bool
        ``False`` returns the expected photo-electrons (with background, no offset).
    pattern_distortion : float
        Radial distortion of the illumination pattern at the field's corners (a fraction,
        see :func:`pattern_image`); ``params`` then hold at the field's centre only.

    Returns
    -------
    ndarray, float32, shape (n_angles * n_phases, Y, X)
        Angle-major, phase fastest.
    """
    if photons_peak <= 0:
        raise ConfigurationError(f"photons_peak must be positive, got {photons_peak}")
    model = SIMForwardModel(ground_truth_2x, setup, otf)
    frames = model.frames(params, distortion=pattern_distortion)
    frames = np.clip(frames, 0, None)
    peak = frames.max()
    if peak <= 0:
        raise DataFormatError("the sample is empty: nothing to image")
    expected = frames * (photons_peak / peak) + background_photons
    if not noise:
        return expected.astype(np.float32)
    return add_camera_noise(
        expected,
        read_noise_e=read_noise_e,
        offset_adu=offset_adu,
        gain_adu_per_e=gain_adu_per_e,
        rng=rng,
    )


def render_pattern_frame(
    ground_truth_2x: np.ndarray,
    angle: AngleParameters,
    phase_index: int,
    setup: OpticalSetup,
    *,
    photons_per_unit: float = 400.0,
    model: SIMForwardModel | None = None,
    distortion: float = 0.0,
) -> np.ndarray:
    """One noiseless frame in expected photo-electrons (no background, no noise).

    ``photons_per_unit`` converts the model's relative units (a uniform sample of 1 under a
    uniform illumination of 1 gives 1). Pass a cached ``model`` when rendering many frames.
    ``distortion`` bends the pattern (:func:`pattern_image`).
    """
    model = model or SIMForwardModel(ground_truth_2x, setup)
    frame = model.frame(angle, angle.phases_rad[phase_index], distortion=distortion)
    return np.clip(frame, 0, None) * photons_per_unit


def random_phase_errors(
    params: SIMParameters, max_error_rad: float, rng: np.random.Generator | int | None = None
) -> SIMParameters:
    """Copy of ``params`` with each phase moved by a uniform error in ``±max_error_rad``."""
    rng = np.random.default_rng(rng)
    angles = []
    for a in params.angles:
        ph = np.asarray(a.phases_rad) + rng.uniform(-max_error_rad, max_error_rad, a.n_phases)
        angles.append(AngleParameters(a.angle_deg, a.period_nm, tuple(ph), a.modulation))
    return SIMParameters(tuple(angles))
