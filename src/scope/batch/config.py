"""Batch options, presets and parameter precedence.

Optics and pattern parameters come from three places; the first that states a value wins:

1. command-line flags,
2. a preset TOML (``reconstruction/presets/NAME.toml`` or any path),
3. the input file's own metadata (pixel size, emission wavelength, NA).

A preset has up to three tables::

    [optics]          # na, wavelength_nm, pixel_size_nm, immersion_index, otf_damping,
                      # otf_path (a measured OTF, relative to the preset)
    [pattern]         # n_angles, n_phases, angles_deg and period_nm (priors for estimation)
    [reconstruction]  # offset_adu, wiener, reestimate_every, backend, equalize, saturation_adu,
                      # repair_defects, pattern_map

Other tables (``[camera]``, ``[objective]`` of a hardware preset ...) are left to their tools;
``[calibration.camera].offset_adu`` from ``scope calibrate`` is used when
``[reconstruction].offset_adu`` is absent; per-pixel maps there (``scope calibrate camera
--maps``) convert every frame into photo-electrons instead (offset and gain pixel by pixel).

Pattern priors (search window and fallback of the estimation) come from, first that gives them:
``--prior-angles``/``--prior-period``, the preset's ``[calibration.pattern]`` (measured on this
microscope by ``scope calibrate pattern``), the preset's ``[pattern]`` ``angles_deg`` and
``period_nm`` (nominal, from the design).
"""

from __future__ import annotations

import logging
import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from scope.errors import ConfigurationError
from scope.resources import repository_folder

log = logging.getLogger(__name__)


def preset_dirs() -> tuple[Path, ...]:
    """Folders searched for a preset given by name: ``reconstruction/presets`` under the
    current directory, then the package's own (checkout or wheel, :mod:`scope.resources`)."""
    return (Path.cwd() / "reconstruction" / "presets", repository_folder("reconstruction/presets"))


OPTICS_KEYS = ("na", "wavelength_nm", "pixel_size_nm", "immersion_index", "otf_damping")
#: optics keys that are not fields of OpticalSetup
EXTRA_OPTICS_KEYS = ("otf_path",)
PATTERN_KEYS = ("n_angles", "n_phases", "frame_order", "angles_deg", "period_nm")
RECON_KEYS = (
    "offset_adu",
    "wiener",
    "reestimate_every",
    "backend",
    "equalize",
    "saturation_adu",
    "repair_defects",
    "pattern_map",
)


class BatchOptions(BaseModel):
    """Everything a worker needs to reconstruct one file, with units in the names.

    ``None`` means "not stated here": a lower-precedence source (preset, file) may fill it.
    """

    model_config = ConfigDict(extra="forbid")

    na: float | None = Field(default=None, gt=0, le=1.7)
    wavelength_nm: float | list[float] | None = Field(
        default=None,
        description="emission wavelength, nm; a list gives each channel's (a file with a C axis)",
    )
    pixel_size_nm: float | None = Field(default=None, gt=1, lt=10000)
    immersion_index: float | None = Field(default=None, ge=1.0, le=2.0)
    otf_damping: float | None = Field(default=None, gt=0, le=1.0)
    otf_path: str | list[str] | None = Field(
        default=None,
        description="measured OTF file (TIFF or MRC); a list gives each channel's",
    )
    n_angles: int | None = Field(default=None, ge=2, le=12)
    n_phases: int | None = Field(default=None, ge=3, le=12)
    frame_order: Literal["angle-major", "phase-major"] | None = Field(
        default=None,
        description="how each set's frames lie in the file (default angle-major, phase fastest)",
    )
    angles_deg: list[float] | None = None
    period_nm: float | list[float] | None = None
    offset_adu: float | None = None
    wiener: float | None = Field(default=None, gt=0)
    reestimate_every: int | None = Field(
        default=None, ge=0, description="re-estimate parameters every N time points (0: once)"
    )
    backend: Literal["auto", "numpy", "cupy"] | None = None
    equalize: Literal["auto", "on", "off"] | None = Field(
        default=None,
        description="scale frames lit unequally to equal brightness (auto: when they differ "
        "by more than 2 %)",
    )
    saturation_adu: float | None = Field(
        default=None,
        gt=0,
        description="the camera's full scale in ADU, where values count as clipped (default: "
        "from the pixel format or the data type)",
    )
    repair_defects: bool | None = Field(
        default=None,
        description="replace hot and dead camera pixels by their neighbours' mean (default on)",
    )
    pattern_map: Literal["auto", "on", "off"] | None = Field(
        default=None,
        description="map a pattern bent across the field and take its phase out (auto: when "
        "a corner of the field drifts by more than 0.2 rad)",
    )
    camera_maps: str | None = Field(
        default=None,
        description="a preset whose [calibration.camera] holds per-pixel offset and gain maps "
        "(scope calibrate camera --maps): raw ADU become photo-electrons pixel by pixel",
    )
    prior_table: Literal["pattern", "calibration.pattern"] | None = Field(
        default=None,
        description="the preset table that angles_deg and period_nm (the pattern priors) were "
        "read from: the nominal [pattern] or the measured [calibration.pattern]",
    )

    @field_validator("wavelength_nm")
    @classmethod
    def _emission_in_range(cls, value: float | list[float] | None) -> Any:
        values = value if isinstance(value, list) else [] if value is None else [value]
        if isinstance(value, list) and not value:
            raise ValueError("wavelength_nm: an empty list; give one wavelength per channel")
        for v in values:
            if not 200 < v < 2000:
                raise ValueError(f"emission wavelength {v} nm is outside 200-2000 nm")
        return value


#: the suffix of a SIM result of ``scope batch`` in each output format
RESULT_SUFFIXES = {"zarr": ".sim.zarr", "tiff": ".sim.ome.tif"}


class OutputOptions(BaseModel):
    """How results are written."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["zarr", "tiff"] = "zarr"
    multiscale_levels: int | None = Field(default=None, ge=1, le=8)
    overwrite: bool = False
    widefield: bool = Field(
        default=False,
        description="also write each set's widefield image (camera grid) beside the SIM result",
    )


def find_preset(name: str | Path) -> Path:
    """Path of a preset given as a file path or a name in ``reconstruction/presets/``."""
    p = Path(name)
    if p.suffix == ".toml" and p.is_file():
        return p
    dirs = preset_dirs()
    for folder in dirs:
        candidate = folder / f"{p.stem if p.suffix == '.toml' else name}.toml"
        if candidate.is_file():
            return candidate
    known = sorted({f.stem for d in dirs if d.is_dir() for f in d.glob("*.toml")})
    raise ConfigurationError(
        f"preset {str(name)!r} not found; expected a .toml file or one of {known}"
    )


def load_preset(name: str | Path) -> tuple[BatchOptions, str]:
    """Read a preset TOML into options; returns them with the preset's name."""
    path = find_preset(name)
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigurationError(f"preset {path.name}: not valid TOML ({err})") from err
    flat: dict[str, Any] = {}
    allowed = {
        "optics": OPTICS_KEYS + EXTRA_OPTICS_KEYS,
        "pattern": PATTERN_KEYS,
        "reconstruction": RECON_KEYS,
    }
    for table, keys in allowed.items():
        section = doc.get(table, {})
        unknown = set(section) - set(keys)
        if unknown:
            raise ConfigurationError(
                f"preset {path.name}: unknown keys {sorted(unknown)} in [{table}]; expected "
                f"some of {list(keys)}"
            )
        flat.update(section)
    if flat.get("otf_path"):  # relative paths: beside the preset
        given = flat["otf_path"]
        paths = [
            str((path.parent / p).resolve())
            for p in (given if isinstance(given, list) else [given])
        ]
        flat["otf_path"] = paths if isinstance(given, list) else paths[0]
    flat.update(_pattern_priors(doc, path))
    if not flat.get("otf_path") and "otf" in doc.get("calibration", {}):
        flat["otf_path"] = str(path.resolve())  # the OTF measured by `scope calibrate otf`
    camera = doc.get("calibration", {}).get("camera", {})
    if "maps" in camera:  # per-pixel maps (sCMOS) written by the camera calibration
        flat["camera_maps"] = str(path.resolve())
    elif "offset_adu" not in flat and "offset_adu" in camera:
        flat["offset_adu"] = camera["offset_adu"]  # written by the camera calibration
    try:
        return BatchOptions(**flat), path.stem
    except ValidationError as err:
        raise ConfigurationError(f"preset {path.name}: {validation_message(err)}") from err


def validation_message(err: ValidationError, names: dict[str, str] | None = None) -> str:
    """A pydantic error as one plain sentence: each problem's field and message, without the
    model's name, the input echoed back or the documentation link (the command line's and the
    napari widgets' messages alike).

    Parameters
    ----------
    err : pydantic.ValidationError
    names : dict, optional
        What to call a field instead of its name (the command line's flag: ``{"n_angles":
        "--angles"}``), with the value given.

    Returns
    -------
    str
        ``"field: message"`` (``"--angles 0: message"``) per problem (the message alone for a
        check of the whole model), joined by ``"; "``; pydantic's own text where it lists no
        problem.
    """
    parts = []
    for e in err.errors():
        msg = str(e.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        loc = e.get("loc", ())
        where = ".".join(str(x) for x in loc)
        if names and len(loc) == 1 and str(loc[0]) in names:
            given = e.get("input")
            values = given if isinstance(given, list) else [given]
            shown = " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
            where = f"{names[str(loc[0])]} {shown}"
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts) or str(err)


def _pattern_priors(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """The pattern priors of a preset: ``[calibration.pattern]`` (measured by ``scope
    calibrate pattern``) when there is one, else ``[pattern]``'s nominal ``angles_deg`` and
    ``period_nm``; ``prior_table`` says which. Empty when neither gives them."""
    nominal = doc.get("pattern", {})
    table = doc.get("calibration", {}).get("pattern")
    if not table:
        if nominal.get("angles_deg") and nominal.get("period_nm"):
            return {"prior_table": "pattern"}
        return {}
    from scope.calibration.pattern import PatternCalibration
    from scope.errors import ScopeError

    try:
        calibrated = PatternCalibration.from_toml(table).params
    except ScopeError as err:
        raise ConfigurationError(f"preset {path.name}: {err}") from err
    stated = nominal.get("n_angles")
    if stated is not None and stated != calibrated.n_angles:
        raise ConfigurationError(
            f"preset {path.name}: [calibration.pattern] holds {calibrated.n_angles} angles but "
            f"[pattern] says n_angles = {stated}; re-run `scope calibrate pattern` on this "
            "microscope's pattern, or correct [pattern]"
        )
    angles = [a.angle_deg for a in calibrated.angles]
    periods = [a.period_nm for a in calibrated.angles]
    log.info(
        "preset %s: pattern priors from [calibration.pattern] (%s, %s set(s)): angles %s deg, "
        "periods %s nm%s",
        path.name,
        table.get("method", "calibrated"),
        table.get("n_sets", "?"),
        ", ".join(f"{a:.2f}" for a in angles),
        ", ".join(f"{p:.1f}" for p in periods),
        " (instead of [pattern]'s nominal angles_deg and period_nm)"
        if nominal.get("angles_deg")
        else "",
    )
    return {"angles_deg": angles, "period_nm": periods, "prior_table": "calibration.pattern"}


def merge_options(
    flags: BatchOptions,
    preset: BatchOptions | None,
    file_values: dict[str, float | None],
    *,
    preset_name: str = "preset",
) -> tuple[BatchOptions, dict[str, str]]:
    """Combine flags > preset > file metadata; returns the options and each value's source."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in BatchOptions.model_fields:
        for label, value in (
            ("flag", getattr(flags, key)),
            (f"preset:{preset_name}", getattr(preset, key) if preset else None),
            ("file", file_values.get(key)),
        ):
            if value is not None and not (isinstance(value, float) and not math.isfinite(value)):
                merged[key] = value
                sources[key] = label
                break
    table = merged.pop("prior_table", None)
    sources.pop("prior_table", None)
    if table and sources.get("angles_deg", "").startswith("preset:"):
        merged["prior_table"] = table  # the priors came from the preset: say which table
        for key in ("angles_deg", "period_nm"):
            if sources.get(key, "").startswith("preset:"):
                sources[key] += f" [{table}]"
    return BatchOptions(**merged), sources


def given_pattern(flags: BatchOptions, preset: BatchOptions | None) -> dict[str, Any]:
    """``n_angles``, ``n_phases`` and ``frame_order`` as the flags, else the preset, give
    them; None where neither does (then the file's own, else 3 x 3, angle-major): the keyword
    arguments of :func:`scope.io.raw.open_sim_stack`."""
    return {
        key: getattr(flags, key) or (getattr(preset, key) if preset else None)
        for key in ("n_angles", "n_phases", "frame_order")
    }


def otf_paths(options: BatchOptions, *, source: str = "", n_channels: int = 1) -> list[str]:
    """The measured OTF files the options name: none (each channel's ideal OTF), one serving
    every channel, or one per channel (a list); see :class:`scope.sim.pipeline.MeasuredOTFs`.

    Raises
    ------
    ConfigurationError
        A list of other than ``n_channels`` files.
    """
    given = options.otf_path
    if not isinstance(given, list):
        return [given] if given else []
    if len(given) != n_channels:
        raise ConfigurationError(
            f"{source + ': ' if source else ''}{len(given)} measured OTFs for {n_channels} "
            "channel(s); give one, or one per channel"
        )
    return list(given)


def optical_setup(
    options: BatchOptions, *, source: str = "", channel: int = 0, n_channels: int = 1
) -> Any:
    """The :class:`~scope.optics.OpticalSetup` of channel ``channel`` (of ``n_channels``) for
    merged options, or a clear error. A list of wavelengths gives each channel's; one value
    serves every channel."""
    from scope.optics import OpticalSetup

    missing = [k for k in ("na", "wavelength_nm", "pixel_size_nm") if getattr(options, k) is None]
    if missing:
        flags = ", ".join("--" + k.replace("_nm", "").replace("_", "-") for k in missing)
        raise ConfigurationError(
            f"{source}: {', '.join(missing)} not known from the flags, the preset or the file; "
            f"give {flags} or a --preset"
        )
    kwargs = {k: getattr(options, k) for k in OPTICS_KEYS if getattr(options, k) is not None}
    if isinstance(options.wavelength_nm, list):
        if len(options.wavelength_nm) != n_channels:
            raise ConfigurationError(
                f"{source}: {len(options.wavelength_nm)} emission wavelengths for "
                f"{n_channels} channel(s); give one, or one per channel"
            )
        kwargs["wavelength_nm"] = options.wavelength_nm[channel]
    try:
        return OpticalSetup(**kwargs)
    except ValidationError as err:
        raise ConfigurationError(
            f"{source}: inconsistent optics: {validation_message(err)}"
        ) from err
