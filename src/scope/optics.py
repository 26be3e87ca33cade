"""Optical setup and transfer functions.

The reconstruction needs to know how the microscope blurs: the detection optical transfer
function (OTF). It is either computed from the numerical aperture and emission wavelength
(an ideal, aberration-free incoherent OTF, optionally damped to mimic the steeper fall-off of real
objectives) or loaded from a measurement (a 2D image or a radial profile, TIFF or MRC).

References
----------
Goodman, *Introduction to Fourier Optics*, ch. 6 (incoherent OTF of a circular pupil).
Müller et al., "Open-source image reconstruction of super-resolution structured illumination
microscopy data in ImageJ", Nat. Commun. 7, 10980 (2016) — the damping ("a") term of fairSIM.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scope.errors import ConfigurationError, DataFormatError

log = logging.getLogger(__name__)


class OpticalSetup(BaseModel):
    """The detection side of the microscope, with units in the field names.

    Examples
    --------
    >>> setup = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
    >>> round(setup.cutoff_per_um, 3)
    4.571
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    na: float = Field(gt=0, le=1.7, description="Detection numerical aperture")
    wavelength_nm: float = Field(gt=200, lt=2000, description="Emission wavelength in nm")
    pixel_size_nm: float = Field(gt=1, lt=10000, description="Camera pixel size at the sample, nm")
    immersion_index: float = Field(default=1.515, ge=1.0, le=2.0, description="Immersion index")
    otf_damping: float = Field(
        default=1.0,
        gt=0,
        le=1.0,
        description="fairSIM-style damping: the ideal OTF is multiplied by damping**(k/cutoff); "
        "1 = ideal, 0.3-0.6 mimics real objectives",
    )

    @model_validator(mode="after")
    def _na_below_index(self) -> OpticalSetup:
        if self.na > self.immersion_index:
            raise ValueError(
                f"NA {self.na} exceeds the immersion index {self.immersion_index}: "
                "check the objective's NA and the immersion medium"
            )
        return self

    @property
    def cutoff_per_um(self) -> float:
        """Incoherent detection cutoff 2 NA / lambda, in cycles per µm."""
        return 2.0 * self.na / (self.wavelength_nm * 1e-3)

    @property
    def pixel_size_um(self) -> float:
        return self.pixel_size_nm * 1e-3

    @property
    def nyquist_per_um(self) -> float:
        """Nyquist frequency of the camera sampling, cycles per µm."""
        return 0.5 / self.pixel_size_um

    @property
    def abbe_resolution_nm(self) -> float:
        """Widefield Abbe resolution lambda / (2 NA) in nm."""
        return self.wavelength_nm / (2.0 * self.na)


def ideal_otf(k_per_um: Any, cutoff_per_um: float, *, damping: float = 1.0, xp: Any = np) -> Any:
    """Incoherent OTF of an aberration-free circular pupil.

    Parameters
    ----------
    k_per_um : array
        Spatial frequency magnitude in cycles per µm.
    cutoff_per_um : float
        The cutoff 2 NA / lambda.
    damping : float
        Multiplies the OTF by ``damping ** (k / cutoff)`` (fairSIM's attenuation model).

    Returns
    -------
    array
        OTF values in [0, 1], 1 at k = 0 and 0 beyond the cutoff; same dtype kind as the input.

    References
    ----------
    Goodman, *Introduction to Fourier Optics*, eq. 6-32.
    """
    rho = xp.clip(xp.abs(k_per_um) / cutoff_per_um, 0.0, 1.0)
    otf = (2.0 / np.pi) * (xp.arccos(rho) - rho * xp.sqrt(1.0 - rho * rho))
    if damping != 1.0:
        otf = otf * damping**rho
    return otf


class OTF:
    """A rotationally symmetric detection OTF evaluated at any spatial frequency.

    Build with :meth:`from_setup` (theoretical) or :meth:`from_file` (measured).
    """

    def __init__(
        self,
        cutoff_per_um: float,
        *,
        damping: float = 1.0,
        profile: np.ndarray | None = None,
        dk_per_um: float | None = None,
        source: str = "theoretical",
    ) -> None:
        self.cutoff_per_um = float(cutoff_per_um)
        self.damping = float(damping)
        self.profile = None if profile is None else np.asarray(profile, dtype=np.float64)
        self.dk_per_um = dk_per_um
        self.source = source

    @classmethod
    def from_setup(cls, setup: OpticalSetup) -> OTF:
        """The ideal OTF of ``setup`` (with its damping term)."""
        return cls(setup.cutoff_per_um, damping=setup.otf_damping)

    @classmethod
    def from_radial_profile(
        cls, profile: np.ndarray, dk_per_um: float, *, source: str = "measured"
    ) -> OTF:
        """A measured OTF from its radial profile sampled every ``dk_per_um`` from k = 0.

        The profile is normalised to 1 at k = 0; the cutoff is taken where it first falls below
        1e-3 of its peak.
        """
        prof = np.abs(np.asarray(profile)).astype(np.float64).ravel()
        if prof.size < 4 or not np.all(np.isfinite(prof)) or prof[0] <= 0:
            raise DataFormatError(
                "a measured OTF profile needs at least 4 finite samples with a positive value at "
                f"k = 0; got {prof.size} samples starting with {prof[:1]}"
            )
        if not dk_per_um or dk_per_um <= 0:
            raise DataFormatError(
                "a measured OTF needs its frequency step dk (cycles/µm); none was found in the "
                "file: pass it explicitly"
            )
        prof = prof / prof[0]
        below = np.nonzero(prof < 1e-3)[0]
        cutoff = (below[0] if below.size else prof.size - 1) * dk_per_um
        return cls(cutoff, profile=prof, dk_per_um=float(dk_per_um), source=source)

    @classmethod
    def from_file(cls, path: str | Path, *, dk_per_um: float | None = None) -> OTF:
        """Load a measured OTF from a TIFF or MRC file.

        A 1D array (or a 2D array with one row/column, as written by many SIM packages) is a
        radial profile from k = 0. A square 2D array is a centred OTF image, radially averaged.
        Complex values (MRC mode 4) are reduced to their magnitude. The frequency step is read
        from the MRC header (voxel size = dk in 1/µm, the convention of OTF files written by
        CUDA-SIMrecon and rDL-SIM) unless ``dk_per_um`` is given.
        """
        from scope.io.mrc import read_mrc

        path = Path(path)
        if not path.is_file():
            raise DataFormatError(
                f"OTF file {path} {'is a folder' if path.is_dir() else 'does not exist'}: "
                f"expected {_OTF_FORMATS}"
            )
        suffix = path.suffix.lower()
        if suffix in (".mrc", ".otf", ".dv"):
            try:
                data, voxel = read_mrc(path)
            except DataFormatError as err:
                raise DataFormatError(
                    f"cannot read the OTF file {path} ({err}); expected {_OTF_FORMATS}"
                ) from err
            if dk_per_um is None and voxel and voxel > 0:
                dk_per_um = float(voxel)
        elif suffix in (".tif", ".tiff"):
            data = _read_otf_tiff(path)
        else:
            raise DataFormatError(f"cannot read an OTF from {path.name}: expected {_OTF_FORMATS}")
        arr = np.abs(np.squeeze(np.asarray(data)))
        if arr.ndim == 2 and min(arr.shape) > 1:
            arr = radial_average(arr)
        elif arr.ndim != 1:
            raise DataFormatError(
                f"OTF in {path.name} has shape {data.shape}: expected a radial profile (1D) or a "
                "2D OTF image"
            )
        otf = cls.from_radial_profile(arr, dk_per_um or 0.0, source=str(path))
        log.info("loaded measured OTF %s: cutoff %.3f /µm", path.name, otf.cutoff_per_um)
        return otf

    def __call__(self, k_per_um: Any, xp: Any = np) -> Any:
        """OTF value at spatial frequency magnitude(s) ``k_per_um`` (cycles/µm)."""
        if self.profile is None:
            return ideal_otf(k_per_um, self.cutoff_per_um, damping=self.damping, xp=xp)
        grid = xp.asarray(np.arange(self.profile.size) * self.dk_per_um)
        return xp.interp(xp.abs(k_per_um), grid, xp.asarray(self.profile), right=0.0)


#: what :meth:`OTF.from_file` reads, for its messages
_OTF_FORMATS = (
    "a measured OTF as a TIFF (.tif/.tiff) or MRC (.mrc/.otf) file: a radial profile or a "
    "centred 2D OTF image"
)


def _read_otf_tiff(path: Path) -> np.ndarray:
    """The pixels of a TIFF holding a measured OTF, or a :class:`DataFormatError` naming it."""
    import tifffile

    try:
        return tifffile.imread(path)
    except Exception as err:  # tifffile raises TiffFileError, ValueError, OSError ...
        raise DataFormatError(
            f"cannot read the OTF file {path}: not a readable TIFF ({err}); expected {_OTF_FORMATS}"
        ) from err


def radial_average(image: np.ndarray) -> np.ndarray:
    """Radial profile of a centred 2D array, from its centre pixel outwards."""
    ny, nx = image.shape
    cy, cx = ny // 2, nx // 2
    y, x = np.indices(image.shape)
    r = np.rint(np.hypot(y - cy, x - cx)).astype(int)
    sums = np.bincount(r.ravel(), weights=image.ravel())
    counts = np.bincount(r.ravel())
    n = min(cy, cx) + 1
    return sums[:n] / np.maximum(counts[:n], 1)


def pixel_transfer(kx_per_um: Any, ky_per_um: Any, pixel_size_um: float, xp: Any = np) -> Any:
    """Transfer function of square camera pixels (integration over the pixel area).

    Every camera pixel integrates the light falling on it, which multiplies the spectrum by
    sinc(kx dx) sinc(ky dx). Accounting for it in the reconstruction removes a ~15 % loss of
    contrast near the detection cutoff.
    """
    return xp.sinc(kx_per_um * pixel_size_um) * xp.sinc(ky_per_um * pixel_size_um)


#: a pixel whose Nyquist frequency exceeds the detection cutoff by more than this factor is
#: questioned: no microscope samples that finely (65 nm at NA 1.2, 525 nm reads 1.7; the
#: better build's 34.5 nm, 3.3); a camera pitch given in µm as nm reads 10-20
OVERSAMPLING_WARN = 8.0


def check_setup(setup: OpticalSetup, *, pixel_size_from: str | None = None) -> None:
    """Refuse setups that under-sample the OTF (information lost before any SIM), and warn
    about pixel sizes far finer than any microscope samples (the camera pitch given for the
    pixel at the sample, or µm for nm), which would otherwise show up later as a pattern
    "too coarse for the field".

    Parameters
    ----------
    setup : OpticalSetup
    pixel_size_from : str, optional
        Where the pixel size came from when nobody gave it (e.g. ``"raw.mrc's header (voxel
        size 0.65)"``): the message then names it and says how to override it.

    Raises
    ------
    ConfigurationError
        The camera's Nyquist frequency lies below the detection cutoff 2 NA / λ.
    """
    if setup.nyquist_per_um < setup.cutoff_per_um:
        what = f"pixel size {setup.pixel_size_nm:g} nm"
        fix = "check --pixel-size (it is the camera pixel divided by the magnification)"
        if pixel_size_from:
            what += f", stated by {pixel_size_from},"
            fix = (
                "give --pixel-size NM (the camera pixel divided by the magnification) to "
                "override the file's value"
            )
        raise ConfigurationError(
            f"{what} under-samples the detection OTF (Nyquist {setup.nyquist_per_um:.2f} /µm < "
            f"cutoff {setup.cutoff_per_um:.2f} /µm): {fix}"
        )
    ratio = setup.nyquist_per_um / setup.cutoff_per_um
    if ratio > OVERSAMPLING_WARN:
        nyquist_nm = setup.abbe_resolution_nm / 2.0  # λ / (4 NA): half the finest period
        source = f" (stated by {pixel_size_from})" if pixel_size_from else ""
        log.warning(
            "pixel size %g nm%s samples %.0fx finer than the optics resolve (Nyquist pixel "
            "%.0f nm for NA %g at %g nm): is it the camera's pixel pitch rather than the pixel "
            "at the sample (pitch / magnification), or µm rather than nm? Give --pixel-size in "
            "nm at the sample",
            setup.pixel_size_nm,
            source,
            ratio,
            nyquist_nm,
            setup.na,
            setup.wavelength_nm,
        )


#: a measured OTF whose cutoff differs from 2 NA / λ by more than this share is questioned
OTF_CUTOFF_TOLERANCE = 0.2


def check_measured_otf(
    otf: OTF, setup: OpticalSetup, *, tolerance: float = OTF_CUTOFF_TOLERANCE
) -> float | None:
    """Warn when a measured OTF does not belong to ``setup``'s optics.

    A measured OTF reaches the detection cutoff 2 NA / λ of the objective and emission
    wavelength it was measured with; one that ends far from ``setup``'s cutoff was measured on
    another microscope, at another wavelength, or with another frequency step, and would weight
    the orders wrongly.

    Parameters
    ----------
    otf : OTF
        The OTF to check (an ideal one, from the setup, is not checked).
    setup : OpticalSetup
    tolerance : float
        Relative difference of the cutoffs tolerated without a warning.

    Returns
    -------
    float or None
        The relative difference ``measured / expected - 1`` (None for an ideal OTF).
    """
    if otf.profile is None:
        return None
    expected = setup.cutoff_per_um
    difference = otf.cutoff_per_um / expected - 1.0
    if abs(difference) > tolerance:
        log.warning(
            "measured OTF %s: its cutoff %.2f /µm differs by %+.0f %% from 2 NA / λ = %.2f /µm "
            "(NA %g, %g nm): it was measured on other optics, at another emission wavelength or "
            "with another frequency step; check the OTF file, the NA and the wavelength",
            Path(otf.source).name,
            otf.cutoff_per_um,
            100 * difference,
            expected,
            setup.na,
            setup.wavelength_nm,
        )
    return difference


#: (upper emission wavelength bound, nm; colour name): how an emission band looks on screen
_EMISSION_COLOURS = ((490, "cyan"), (560, "green"), (590, "yellow"), (640, "red"))


def emission_colour(wavelength_nm: float | None) -> str:
    """The display colour of an emission wavelength: ``cyan``, ``green``, ``yellow``, ``red``,
    ``magenta`` (far red), or ``gray`` where it is not known (for composites of channels)."""
    if not wavelength_nm:
        return "gray"
    for upper, name in _EMISSION_COLOURS:
        if wavelength_nm < upper:
            return name
    return "magenta"
