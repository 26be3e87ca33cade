"""Plan a SIM microscope before buying or building it.

Given a camera, an objective, a pattern illuminator and the emission wavelength, these pure
functions work out what the build will do: the pixel size at the sample and whether it samples
the detection OTF (Nyquist), the pattern period reached at the sample and where it sits relative
to the detection OTF cutoff, the expected widefield and SIM resolution, and the raw and SIM frame
rates allowed by exposure, readout, pattern switching and trigger latency in leader and follower
mode. ``scope plan`` prints them; ``hardware/tools/make_bom.py`` puts them into the bill of
materials.

The formulas
------------
Detection (incoherent imaging, aberration-free circular pupil; Goodman, *Introduction to Fourier
Optics*, ch. 6):

* OTF cutoff ``fc = 2 NA / lambda_em`` (cycles/µm); widefield (Abbe) resolution
  ``d_wf = lambda_em / (2 NA) = 1 / fc``.
* Nyquist sampling of the OTF needs a pixel at the sample of at most
  ``lambda_em / (4 NA) = 1 / (2 fc)``.

SIM (Gustafsson, J. Microsc. 198, 82-87, 2000; Heintzmann & Cremer, Proc. SPIE 3568, 1999): a
sinusoidal illumination of spatial frequency ``p = 1 / period`` shifts copies of the detection
OTF support (a disc of radius ``fc``) by ``±p``. Reconstructed, the support extends to
``fc + p`` along each pattern direction; with three or more directions it is close to a disc of
that radius. Writing ``f = p / fc`` for the pattern frequency as a fraction of the cutoff::

    d_sim = 1 / (fc + p) = 1 / (fc (1 + f)) = lambda_em / (2 NA) / (1 + f)

The copies only join the central band without a gap when ``p <= fc`` (``f <= 1``): that is what
"inside the OTF support" means here; it is also needed to estimate the pattern from the data
(the carrier is found in the overlap). Patterns with ``p > fc`` leave a ring of missing
frequencies between ``fc`` and ``p - fc``; the plan flags them and gives no SIM resolution for
them (nor for a pattern the excitation optics pass with no contrast). In practice the
modulation falls towards the cutoff, so ``f`` of 0.75-0.9 is the useful range.

Pattern period at the sample: a pixelated device (DMD, LCoS, projector) showing a grating of
``period_px`` device pixels (measured perpendicular to the fringes) of pitch ``pitch_um``, imaged
onto the sample with demagnification ``D``, gives ``period = period_px * pitch_um / D``; a printed
grating of period ``g`` µm gives ``g / D``. For a device in the front focal plane of an
illumination lens of focal length ``f_ill`` whose back focal plane is conjugate to the back
focal plane of an infinity objective of magnification ``M`` designed for a tube lens
``f_design``, ``D = M * f_ill / f_design`` (see :func:`projection_demagnification`). With
coherent light and the zero order blocked (``projection="two_beam"``) the +-1 orders interfere
into fringes of half the imaged period. Incoherent projection passes the pattern with the
excitation OTF, so its contrast falls as ``p`` nears ``2 NA / lambda_ex``
(:func:`projected_contrast`).

Frame timing (all times in ms; ``t_e`` exposure, ``t_r`` sensor readout, ``t_s`` pattern switch
and settle, ``t_l`` camera trigger latency — trigger edge to exposure start, and exposure end to
exposure-active output edge — and ``t_c`` the controller's reaction to an input edge):

* The camera alone needs ``T_cam = t_e + t_r`` between frame starts (``max(t_e, t_r)`` when it can
  expose the next frame while reading out the last) and never less than ``1000 / max_fps``.
* Leader mode (the controller switches the pattern, waits for it to settle, triggers the camera,
  and switches again only after the exposure ended): ``T = max(t_s + t_l + t_e, T_cam)`` — the
  readout overlaps the next pattern switch.
* Follower mode (the camera free-runs and its exposure-active output advances the pattern at the
  end of each exposure): the switch has to fit in the gap between exposures, so the camera's frame
  period must be set to ``T = max(t_e + t_l + t_c + t_s, T_cam)``; a shorter period blurs two
  patterns into one frame.
* Raw rate ``1000 / T``; a SIM image needs ``n_angles * n_phases`` raw frames, so the SIM rate is
  ``1000 / (T * n_angles * n_phases)`` (a rolling reconstruction can update at the raw rate).

Examples
--------
>>> cam = Camera(pixel_pitch_um=3.0, sensor_width_px=1920, sensor_height_px=1200,
...              readout_time_ms=8.0, max_fps=120, bit_depth=10, trigger_latency_ms=0.02)
>>> obj = Objective(magnification=40, na=0.65, immersion="air", design_tube_lens_mm=None)
>>> ill = Illuminator(kind="dmd", pixel_pitch_um=5.4, pattern_period_px=4, demagnification=40)
>>> p = plan_setup(cam, obj, ill, Acquisition(emission_wavelength_nm=520, exposure_ms=10))
>>> round(p.pixel_size_nm, 1), round(p.pattern_period_nm, 1)
(75.0, 540.0)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scope.errors import ConfigurationError

log = logging.getLogger(__name__)

#: refractive index of each immersion medium
IMMERSION_INDEX: dict[str, float] = {
    "air": 1.0,
    "water": 1.333,
    "silicone": 1.406,
    "glycerol": 1.47,
    "oil": 1.518,
}

Mode = Literal["leader", "follower"]


class Camera(BaseModel):
    """A camera as the data sheet gives it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = "camera"
    pixel_pitch_um: float = Field(gt=0, lt=100, description="Sensor pixel pitch, µm")
    sensor_width_px: int = Field(gt=0, description="Sensor width, pixels")
    sensor_height_px: int = Field(gt=0, description="Sensor height, pixels")
    readout_time_ms: float = Field(ge=0, description="Sensor readout time per frame, ms")
    max_fps: float = Field(gt=0, description="Maximum frame rate at this sensor size, frames/s")
    bit_depth: int = Field(ge=8, le=16, description="ADC bit depth")
    trigger_latency_ms: float = Field(
        default=0.0,
        ge=0,
        description="Trigger-in to exposure start (and exposure end to exposure-active out), ms",
    )
    overlapped_readout: bool = Field(
        default=False, description="True if the sensor can expose the next frame during readout"
    )

    @property
    def sensor_size_mm(self) -> tuple[float, float]:
        """Active area (width, height) in mm."""
        return (
            self.sensor_width_px * self.pixel_pitch_um * 1e-3,
            self.sensor_height_px * self.pixel_pitch_um * 1e-3,
        )


class Objective(BaseModel):
    """A microscope objective.

    ``design_tube_lens_mm`` is the tube-lens focal length the magnification refers to for an
    infinity-corrected objective (Nikon, Leica, Thorlabs 200 mm; Olympus 180 mm; Zeiss 165 mm) and
    ``None`` for a finite (160 mm tube length) objective. ``tube_lens_focal_length_mm`` is the tube
    lens actually used (defaults to the design value).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = "objective"
    magnification: float = Field(gt=0, le=200)
    na: float = Field(gt=0, le=1.7)
    immersion: Literal["air", "water", "silicone", "glycerol", "oil"] = "oil"
    correction: Literal["infinity", "finite"] = Field(
        default="infinity", description="'finite' = 160 mm tube length (DIN), no tube lens"
    )
    design_tube_lens_mm: float | None = Field(default=200.0, gt=0)
    tube_lens_focal_length_mm: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _finite(cls, data: Any) -> Any:
        # finite objectives: correction="finite" (TOML) and design_tube_lens_mm=None agree
        if isinstance(data, dict):
            data = dict(data)
            if data.get("correction") == "finite":
                data["design_tube_lens_mm"] = None
            elif "design_tube_lens_mm" in data and data["design_tube_lens_mm"] is None:
                data["correction"] = "finite"
        return data

    @model_validator(mode="after")
    def _check(self) -> Objective:
        n = IMMERSION_INDEX[self.immersion]
        if self.na >= n:
            raise ValueError(
                f"NA {self.na} is not below the index of {self.immersion} ({n}): check the NA "
                "and the immersion medium"
            )
        if self.design_tube_lens_mm is None and self.tube_lens_focal_length_mm is not None:
            raise ValueError(
                "a finite objective (design_tube_lens_mm unset) has no tube lens: drop "
                "tube_lens_focal_length_mm or give design_tube_lens_mm"
            )
        return self

    @property
    def immersion_index(self) -> float:
        return IMMERSION_INDEX[self.immersion]

    @property
    def effective_magnification(self) -> float:
        """Magnification onto the intermediate image with the tube lens actually used."""
        if self.design_tube_lens_mm is None or self.tube_lens_focal_length_mm is None:
            return self.magnification
        return self.magnification * self.tube_lens_focal_length_mm / self.design_tube_lens_mm


class Illuminator(BaseModel):
    """The pattern generator and how it is imaged onto the sample.

    Give either ``projected_period_nm`` (the period at the sample, if known) or the device
    period (``pixel_pitch_um`` x ``pattern_period_px`` for DMD/LCoS/projector,
    ``grating_period_um`` for a printed grating) and ``demagnification`` (device to sample).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = "illuminator"
    kind: Literal["dmd", "lcos", "projector", "printed_grating"]
    pixel_pitch_um: float | None = Field(default=None, gt=0, description="Device pixel pitch, µm")
    pattern_period_px: float | None = Field(
        default=None, gt=0, description="Grating period in device pixels, across the fringes"
    )
    grating_period_um: float | None = Field(
        default=None, gt=0, description="Printed grating period (one line pair), µm"
    )
    demagnification: float | None = Field(default=None, gt=0, description="Device to sample")
    width_px: int | None = Field(default=None, gt=0, description="Device width, pixels")
    height_px: int | None = Field(default=None, gt=0, description="Device height, pixels")
    illumination_lens_focal_mm: float | None = Field(
        default=None,
        gt=0,
        description="Focal length of the lens imaging the device (or a 1:1 relay's image of it, "
        "in a two-beam build: the excitation tube lens) into the objective; gives the "
        "demagnification for any objective (see projection_demagnification)",
    )
    projected_period_nm: float | None = Field(
        default=None, gt=0, description="Pattern period at the sample, nm (overrides the rest)"
    )
    pattern_switch_time_ms: float = Field(
        default=0.0, ge=0, description="Time to switch to the next pattern and settle, ms"
    )
    projection: Literal["incoherent", "two_beam"] = Field(
        default="incoherent",
        description="'incoherent': the device is imaged onto the sample (LED, or laser through a "
        "diffuser); 'two_beam': coherent light, the device acts as a grating and only its +-1 "
        "orders reach the sample (zero order blocked), which halves the period",
    )

    @model_validator(mode="after")
    def _check(self) -> Illuminator:
        if self.projected_period_nm is not None:
            return self
        if self.demagnification is None and self.illumination_lens_focal_mm is None:
            raise ValueError(
                "give the demagnification from the pattern device to the sample (or the "
                "illumination_lens_focal_mm), or the projected_period_nm at the sample"
            )
        if self.kind == "printed_grating":
            if self.grating_period_um is None:
                raise ValueError("a printed grating needs grating_period_um")
        elif self.pixel_pitch_um is None or self.pattern_period_px is None:
            raise ValueError(
                f"a {self.kind} needs pixel_pitch_um and pattern_period_px (the grating period "
                "in device pixels)"
            )
        return self

    @property
    def device_period_um(self) -> float | None:
        """Pattern period on the device, µm (None when only the projected period is known)."""
        if self.kind == "printed_grating":
            return self.grating_period_um
        if self.pixel_pitch_um is None or self.pattern_period_px is None:
            return None
        return self.pixel_pitch_um * self.pattern_period_px


class Acquisition(BaseModel):
    """How the microscope is run."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    emission_wavelength_nm: float = Field(gt=200, lt=2000)
    exposure_ms: float = Field(default=10.0, gt=0)
    n_angles: int = Field(default=3, ge=1)
    n_phases: int = Field(default=3, ge=3)
    controller_latency_ms: float = Field(
        default=0.01, ge=0, description="Controller reaction to an input edge (follower mode), ms"
    )
    camera_relay_magnification: float = Field(
        default=1.0, gt=0, description="Extra magnification between intermediate image and camera"
    )
    excitation_wavelength_nm: float | None = Field(
        default=None,
        gt=200,
        lt=2000,
        description="Excitation wavelength, nm (for the contrast of the projected pattern)",
    )

    @property
    def frames_per_sim(self) -> int:
        return self.n_angles * self.n_phases


# ---------------------------------------------------------------------------------------------
# pure figures
# ---------------------------------------------------------------------------------------------


def pixel_size_at_sample_nm(
    camera: Camera, objective: Objective, *, relay_magnification: float = 1.0
) -> float:
    """Camera pixel pitch divided by the total magnification, nm."""
    return camera.pixel_pitch_um * 1e3 / (objective.effective_magnification * relay_magnification)


def detection_cutoff_per_um(na: float, wavelength_nm: float) -> float:
    """Incoherent OTF cutoff ``2 NA / lambda`` in cycles/µm."""
    return 2.0 * na / (wavelength_nm * 1e-3)


def nyquist_pixel_size_nm(na: float, wavelength_nm: float) -> float:
    """Largest pixel at the sample that samples the detection OTF: ``lambda / (4 NA)``."""
    return wavelength_nm / (4.0 * na)


def widefield_resolution_nm(na: float, wavelength_nm: float) -> float:
    """Abbe resolution ``lambda / (2 NA)``, nm."""
    return wavelength_nm / (2.0 * na)


def sim_resolution_nm(na: float, wavelength_nm: float, pattern_period_nm: float) -> float:
    """SIM resolution ``1 / (fc + p)`` = ``lambda / (2 NA) / (1 + p / fc)``, nm.

    This is the extent of the reconstructed support; it is only gap-free when ``p <= fc``
    (see :func:`pattern_inside_otf`).
    """
    fc = detection_cutoff_per_um(na, wavelength_nm)
    p = 1e3 / pattern_period_nm
    return 1e3 / (fc + p)


def pattern_inside_otf(na: float, wavelength_nm: float, pattern_period_nm: float) -> bool:
    """True if the pattern frequency lies inside the detection OTF support (``p <= fc``)."""
    return 1e3 / pattern_period_nm <= detection_cutoff_per_um(na, wavelength_nm)


def projection_demagnification(objective: Objective, illumination_lens_focal_mm: float) -> float:
    """Demagnification from a pattern device to the sample through an illumination lens.

    Infinity-corrected objective: the device sits in the front focal plane of a lens of focal
    length ``f_ill`` (the excitation tube lens) whose back focal plane is the objective's back
    focal plane, so the device is imaged with ``f_obj / f_ill`` where ``f_obj = f_design / M``:
    ``D = M * f_ill / f_design``. Finite objective (``f_design`` = the 160 mm design tube
    length): the lens forms a real image of the device, magnified ``f_design / f_ill``, in the
    objective's image plane (device ``f_ill (1 + f_ill / f_design)`` before the lens, image
    ``f_ill + f_design`` after it), which the objective demagnifies ``M`` times: the same ``D``.
    """
    f_design = objective.design_tube_lens_mm or 160.0
    return objective.magnification * illumination_lens_focal_mm / f_design


def illuminator_demagnification(
    illuminator: Illuminator, objective: Objective | None = None
) -> float | None:
    """Device-to-sample demagnification: given, or from the illumination lens and objective."""
    if illuminator.demagnification is not None:
        return illuminator.demagnification
    if illuminator.illumination_lens_focal_mm is not None and objective is not None:
        return projection_demagnification(objective, illuminator.illumination_lens_focal_mm)
    return None


def pattern_period_at_sample_nm(
    illuminator: Illuminator, objective: Objective | None = None
) -> float:
    """Pattern period at the sample in nm.

    The device period divided by the demagnification (given, or computed from
    ``illumination_lens_focal_mm`` and ``objective``); halved for ``two_beam`` projection,
    where the interference of the +1 and -1 diffraction orders of a grating of period ``g``
    gives fringes of period ``g / 2``.
    """
    if illuminator.projected_period_nm is not None:
        return illuminator.projected_period_nm
    device = illuminator.device_period_um
    demag = illuminator_demagnification(illuminator, objective)
    if device is None or demag is None:
        raise ConfigurationError(
            "the illuminator needs a device period and a demagnification (or an "
            "illumination_lens_focal_mm and the objective)"
        )
    period = device * 1e3 / demag
    return period / 2.0 if illuminator.projection == "two_beam" else period


def projected_contrast(
    illuminator: Illuminator, na: float, excitation_wavelength_nm: float, pattern_period_nm: float
) -> float:
    """Modulation depth the excitation optics let through for a pattern of this period.

    Incoherent projection transfers a sinusoid of frequency ``p`` with the excitation OTF,
    ``OTF_ex(p)`` with cutoff ``2 NA / lambda_ex`` (ideal, aberration-free; a binary grating's
    fundamental carries ``4 / pi`` times more, not counted here). Two-beam interference gives full
    contrast (equal beams, s-polarised) as long as both orders pass the pupil, ``p <= 2 NA /
    lambda_ex``, and none beyond.
    """
    from scope.optics import ideal_otf

    p = 1e3 / pattern_period_nm
    cutoff = detection_cutoff_per_um(na, excitation_wavelength_nm)
    if illuminator.projection == "two_beam":
        return 1.0 if p <= cutoff else 0.0
    return float(ideal_otf(p, cutoff))


#: projected contrast below which a pattern is taken to give no SIM at all (prints as 0.000)
MIN_PATTERN_CONTRAST = 5e-4


@dataclass(frozen=True)
class FrameTiming:
    """Frame period and rates in one trigger mode."""

    mode: Mode
    frame_period_ms: float
    raw_fps: float
    sim_fps: float
    limited_by: str
    camera_period_ms: float
    pattern_cycle_ms: float


def camera_min_period_ms(camera: Camera, exposure_ms: float) -> float:
    """Shortest time between frame starts the camera allows at this exposure."""
    if camera.overlapped_readout:
        sensor = max(exposure_ms, camera.readout_time_ms)
    else:
        sensor = exposure_ms + camera.readout_time_ms
    return max(sensor, 1e3 / camera.max_fps)


def frame_timing(
    camera: Camera,
    illuminator: Illuminator,
    acquisition: Acquisition,
    mode: Mode,
) -> FrameTiming:
    """Raw and SIM frame rates in ``mode`` (see the module docstring for the model)."""
    t_e = acquisition.exposure_ms
    t_s = illuminator.pattern_switch_time_ms
    t_l = camera.trigger_latency_ms
    if mode == "leader":
        cycle = t_s + t_l + t_e
    elif mode == "follower":
        cycle = t_e + t_l + acquisition.controller_latency_ms + t_s
    else:
        raise ConfigurationError(f"mode must be 'leader' or 'follower', got {mode!r}")
    cam = camera_min_period_ms(camera, t_e)
    period = max(cycle, cam)
    if cycle >= cam:
        limited_by = "pattern switch + trigger latency + exposure"
    elif cam == 1e3 / camera.max_fps:
        limited_by = "camera maximum frame rate"
    else:
        limited_by = "camera exposure + readout"
    raw = 1e3 / period
    return FrameTiming(
        mode=mode,
        frame_period_ms=period,
        raw_fps=raw,
        sim_fps=raw / acquisition.frames_per_sim,
        limited_by=limited_by,
        camera_period_ms=cam,
        pattern_cycle_ms=cycle,
    )


@dataclass(frozen=True)
class Plan:
    """Everything ``scope plan`` reports about one build.

    ``sim_resolution_nm`` is NaN when the pattern cannot give SIM — its frequency lies beyond
    the detection OTF support, or the excitation optics pass no contrast (below
    :data:`MIN_PATTERN_CONTRAST`) — and ``sim_unavailable_reason`` says which.
    """

    pixel_size_nm: float
    nyquist_pixel_size_nm: float
    nyquist_ok: bool
    field_of_view_um: tuple[float, float]
    cutoff_per_um: float
    demagnification: float | None
    pattern_period_nm: float
    pattern_frequency_per_um: float
    pattern_fraction_of_cutoff: float
    pattern_inside_otf: bool
    pattern_period_px: float
    pattern_contrast: float | None
    widefield_resolution_nm: float
    sim_resolution_nm: float
    timing: dict[str, FrameTiming] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    sim_unavailable_reason: str | None = None

    @property
    def sim_available(self) -> bool:
        """False when the pattern cannot give SIM (``sim_resolution_nm`` is then NaN and
        ``sim_unavailable_reason`` says why)."""
        return self.sim_unavailable_reason is None

    def to_dict(self) -> dict[str, Any]:
        """The figures as plain JSON-ready values; a SIM resolution that is not available is
        ``None`` (JSON ``null``)."""
        from dataclasses import asdict

        figures = asdict(self)
        if not self.sim_available:
            figures["sim_resolution_nm"] = None
        return figures


def plan_setup(
    camera: Camera, objective: Objective, illuminator: Illuminator, acquisition: Acquisition
) -> Plan:
    """Compute every figure of a build (pure; no I/O).

    Examples
    --------
    See the module docstring.
    """
    wl = acquisition.emission_wavelength_nm
    na = objective.na
    px = pixel_size_at_sample_nm(
        camera, objective, relay_magnification=acquisition.camera_relay_magnification
    )
    nyq = nyquist_pixel_size_nm(na, wl)
    fc = detection_cutoff_per_um(na, wl)
    period = pattern_period_at_sample_nm(illuminator, objective)
    p = 1e3 / period
    inside = p <= fc
    warnings: list[str] = []
    if px > nyq:
        warnings.append(
            f"pixel {px:.1f} nm at the sample is larger than Nyquist ({nyq:.1f} nm): the camera "
            "under-samples the detection OTF; use more magnification or smaller pixels"
        )
    if not inside:
        warnings.append(
            f"pattern frequency {p:.3f}/µm is beyond the detection cutoff {fc:.3f}/µm: the "
            "reconstructed support has a gap and the pattern cannot be estimated from the data; "
            "use a coarser pattern or less demagnification"
        )
    elif p / fc < 0.5:
        warnings.append(
            f"pattern at {p / fc:.2f} of the cutoff gains little resolution: use a finer pattern "
            "or more demagnification (aim for 0.75-0.9)"
        )
    contrast = None
    if acquisition.excitation_wavelength_nm is not None:
        contrast = projected_contrast(illuminator, na, acquisition.excitation_wavelength_nm, period)
        if contrast < 0.2:
            warnings.append(
                f"the excitation optics pass only {contrast:.2f} of the pattern contrast: use a "
                "coarser pattern, or coherent two-beam illumination"
            )
    if period / px < 2.0:
        warnings.append(
            f"pattern period is {period / px:.2f} camera pixels (< 2): the raw frames alias it"
        )
    reasons = []
    if not inside:
        reasons.append(
            f"the pattern ({p:.3f}/µm) is beyond the detection cutoff ({fc:.3f}/µm): the "
            "reconstruction would have a gap and the pattern cannot be estimated from the data"
        )
    if contrast is not None and contrast < MIN_PATTERN_CONTRAST:
        reasons.append(
            f"the excitation optics pass no pattern contrast ({contrast:.3f}): the sample sees "
            "no pattern"
        )
    unavailable = "; ".join(reasons) or None
    timing = {m: frame_timing(camera, illuminator, acquisition, m) for m in ("leader", "follower")}
    return Plan(
        pixel_size_nm=px,
        nyquist_pixel_size_nm=nyq,
        nyquist_ok=px <= nyq,
        field_of_view_um=(camera.sensor_width_px * px * 1e-3, camera.sensor_height_px * px * 1e-3),
        cutoff_per_um=fc,
        demagnification=illuminator_demagnification(illuminator, objective),
        pattern_period_nm=period,
        pattern_frequency_per_um=p,
        pattern_fraction_of_cutoff=p / fc,
        pattern_inside_otf=inside,
        pattern_period_px=period / px,
        pattern_contrast=contrast,
        widefield_resolution_nm=widefield_resolution_nm(na, wl),
        sim_resolution_nm=float("nan") if unavailable else 1e3 / (fc + p),
        timing=timing,
        warnings=tuple(warnings),
        sim_unavailable_reason=unavailable,
    )


def format_plan(plan: Plan) -> str:
    """The plan as the lines ``scope plan`` prints."""
    yes = {True: "yes", False: "NO"}
    lines = [
        f"pixel size at the sample   {plan.pixel_size_nm:8.1f} nm "
        f"(Nyquist needs <= {plan.nyquist_pixel_size_nm:.1f} nm: {yes[plan.nyquist_ok]})",
        f"field of view              {plan.field_of_view_um[0]:8.1f} x "
        f"{plan.field_of_view_um[1]:.1f} µm",
        f"detection OTF cutoff       {plan.cutoff_per_um:8.3f} /µm (2 NA / lambda)",
        f"pattern period at sample   {plan.pattern_period_nm:8.1f} nm "
        f"({plan.pattern_period_px:.2f} camera pixels, {plan.pattern_frequency_per_um:.3f} /µm)",
        f"pattern / OTF cutoff       {plan.pattern_fraction_of_cutoff:8.3f} "
        f"(inside the OTF support: {yes[plan.pattern_inside_otf]})",
        *(
            [f"projected contrast         {plan.pattern_contrast:8.3f} (excitation OTF)"]
            if plan.pattern_contrast is not None
            else []
        ),
        f"widefield resolution       {plan.widefield_resolution_nm:8.1f} nm (lambda / 2NA)",
        f"SIM resolution             {plan.sim_resolution_nm:8.1f} nm "
        "(lambda / 2NA / (1 + fraction))"
        if plan.sim_available
        else f"SIM resolution             not available: {plan.sim_unavailable_reason}",
    ]
    for t in plan.timing.values():
        lines.append(
            f"{t.mode + ' mode':<27}{t.raw_fps:8.1f} raw fps, {t.sim_fps:.2f} SIM fps "
            f"(frame period {t.frame_period_ms:.2f} ms, limited by {t.limited_by})"
        )
    lines.extend(f"warning: {w}" for w in plan.warnings)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------------------------

PRESET_TABLES = ("camera", "objective", "illuminator", "acquisition")


def load_preset(path: str | Path) -> dict[str, Any]:
    """Read a setup preset TOML into a dict (tables ``camera``, ``objective``, ...)."""
    import tomllib

    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as err:
        raise ConfigurationError(f"preset {path} does not exist: check the path") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigurationError(f"preset {path} is not valid TOML: {err}") from err


def _problem(table: str, error: Any) -> str:
    """One pydantic error as ``table.field: what is wrong``; a NaN or infinity is called what it
    is rather than measured against the field's bounds."""
    where = f"{table}.{'.'.join(str(x) for x in error['loc'])}"
    if error["type"] == "finite_number":
        return f"{where}: {error['input']!r} is not a number (give a finite value)"
    return f"{where}: {error['msg']}"


def parts_from_preset(
    preset: dict[str, Any], overrides: dict[str, dict[str, Any]] | None = None
) -> tuple[Camera, Objective, Illuminator, Acquisition]:
    """Build the four typed inputs from preset tables, with per-table ``overrides`` on top."""
    overrides = overrides or {}
    models = {
        "camera": Camera,
        "objective": Objective,
        "illuminator": Illuminator,
        "acquisition": Acquisition,
    }
    built: dict[str, Any] = {}
    for name, model in models.items():
        values = dict(preset.get(name, {}))
        values.update({k: v for k, v in overrides.get(name, {}).items() if v is not None})
        try:
            built[name] = model(**values)
        except ValidationError as err:
            problems = "; ".join(_problem(name, e) for e in err.errors())
            raise ConfigurationError(
                f"the [{name}] settings are incomplete or invalid ({problems}); give them in the "
                "preset TOML or as flags (see scope plan --help)"
            ) from err
    return built["camera"], built["objective"], built["illuminator"], built["acquisition"]
