"""One file of a batch: open lazily, estimate parameters, reconstruct set by set, write atomically.

:func:`process_file` is what a Dask worker (or the driver, in-process) runs. It takes a plain,
picklable :class:`FileJob` and returns a plain dict (the file's line of the batch report); it
never raises for a bad input file — the error is the result — so one bad file never stops the
others. Memory stays bounded by a few SIM sets whatever the file size: frames are read one set
at a time and each reconstructed image is written before the next set is read.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from scope.batch.config import (
    RESULT_SUFFIXES,
    BatchOptions,
    OutputOptions,
    given_pattern,
    merge_options,
    optical_setup,
    otf_paths,
)
from scope.errors import DataFormatError, ScopeError
from scope.io.raw import DEFAULT_N_ANGLES, DEFAULT_N_PHASES

if TYPE_CHECKING:
    from scope.sim.pipeline import BlankFrameLog
    from scope.sim.saturation import SaturationCounter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileJob:
    """Everything needed to reconstruct one input; plain data, cheap to send to a worker."""

    input: str
    output: str
    params_path: str
    flags: dict[str, Any] = field(default_factory=dict)
    preset: dict[str, Any] | None = None
    preset_name: str | None = None
    output_options: dict[str, Any] = field(default_factory=dict)
    #: CPU FFT threads (None: all cores; 1 on Dask workers that each own a core)
    fft_workers: int | None = None


def software_version() -> str:
    from scope import __version__

    return f"scope {__version__}"


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    from scope.io.writers import _json_default, temporary_path

    tmp = temporary_path(path)
    try:
        tmp.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _prior(options: BatchOptions, n_phases: int) -> Any:
    if not options.angles_deg or not options.period_nm:
        return None
    from scope.sim.params import SIMParameters

    return SIMParameters.equidistant(
        options.angles_deg, period_nm=options.period_nm, n_phases=n_phases
    )


def _origin(source: str | None, flag: str) -> str:
    """Where an option's value came from, as a user would name it: ``flag`` (``"--offset"``)
    for the ``sources`` label ``"flag"``, ``"the preset NAME"`` for ``"preset:NAME"``."""
    if source == "flag":
        return flag
    if source and source.startswith("preset:"):
        return f"the preset {source.removeprefix('preset:')}"
    return source or "the options"


def _pixel_size_override(options: BatchOptions, sources: dict[str, str]) -> str | None:
    """The pixel size that the flags or the preset give instead of the file's (None: none), as
    the user gave it (``"--pixel-size 65"``), for :func:`~scope.sim.pipeline.
    check_square_pixels`."""
    size = options.pixel_size_nm
    if size is None:
        return None
    source = sources.get("pixel_size_nm")
    if source == "flag":
        return f"--pixel-size {size:g}"
    return f"the pixel size {size:g} nm of {_origin(source, '--pixel-size')}"


def widefield_path(sim_output: str | Path) -> Path:
    """Where the widefield images of a SIM result of ``scope batch`` go: beside it
    (:func:`scope.io.writers.beside`), in its format: ``cell.t1.sim.zarr`` ->
    ``cell.t1.widefield.zarr``, ``cell.sim.ome.tif`` -> ``cell.widefield.ome.tif``.

    Raises
    ------
    ValueError
        ``sim_output`` is not named as ``scope batch`` names its results
        (:data:`~scope.batch.config.RESULT_SUFFIXES`).
    """
    from scope.io.writers import beside

    name = Path(sim_output).name
    for suffix in RESULT_SUFFIXES.values():
        if name.endswith(suffix):
            return beside(sim_output, suffix.replace(".sim", ".widefield", 1))
    raise ValueError(f"not a SIM result's name: {name}")


def _reconstruction_settings(options: BatchOptions) -> Any:
    """The reconstructor's settings carrying the options given (wiener, offset, frame
    equalisation, camera defect repair); the rest keep their defaults."""
    from scope.sim.reconstruct import EQUALIZE_MODES, ReconstructionSettings

    wanted = {
        "wiener": options.wiener,
        "offset_adu": options.offset_adu,
        "repair_defects": options.repair_defects,
    }
    wanted = {k: v for k, v in wanted.items() if v is not None}
    if options.equalize not in (None, "auto"):
        wanted["equalize_frames"] = EQUALIZE_MODES[options.equalize]
    return ReconstructionSettings(**wanted)


class _Reconstruction:
    """Per-file reconstruction state: parameters per (channel, epoch), one cached operator per
    channel, each channel with its own optics (``setups``, one per channel: its emission
    wavelength)."""

    def __init__(
        self,
        setups: list[Any],
        options: BatchOptions,
        fft_workers: int | None = None,
        *,
        offset_source: str | None = None,
    ) -> None:
        from scope.backend import get_backend
        from scope.sim.pipeline import MeasuredOTFs

        self.setups = setups
        self.options = options
        self.offset_source = offset_source
        self.n_angles = options.n_angles or DEFAULT_N_ANGLES
        self.n_phases = options.n_phases or DEFAULT_N_PHASES
        self.backend = get_backend(options.backend or "auto", workers=fft_workers)
        self.settings = _reconstruction_settings(options)
        self.prior = _prior(options, self.n_phases)
        # each channel's measured OTF (None: its ideal one), checked against its optics
        measured = MeasuredOTFs(otf_paths(options, n_channels=len(setups)))
        self.otfs = [measured.for_channel(c, setup, setups[0]) for c, setup in enumerate(setups)]
        self.params: dict[tuple[int, int], Any] = {}
        self.epochs: list[dict[str, Any]] = []
        self._channels: dict[int, Any] = {}

    def widefield(
        self, channel: int, raw: np.ndarray, missing_frames: tuple[int, ...] = ()
    ) -> np.ndarray:
        """The widefield image of one set of ``channel`` (its camera offset and defects, its
        blank frames left out), on the camera grid; the channel's first set has been
        reconstructed."""
        rec = self._channels[channel].reconstructor
        image = rec.widefield(raw, missing_frames=missing_frames)
        return np.asarray(self.backend.to_numpy(image), np.float32)

    def __call__(
        self,
        key: tuple[int, int],
        raw: np.ndarray,
        where: dict[str, int],
        *,
        blank_frames: tuple[int, ...] = (),
    ) -> np.ndarray:
        """Reconstruct one set of channel ``key[0]``; a new ``key`` (a new epoch) estimates the
        parameters again. One :class:`~scope.sim.pipeline.SetReconstructor` per channel keeps
        the channel's noise model over re-estimations (one filter for the whole series,
        following its brightness) and one operator in memory. A later epoch whose first set
        holds ``blank_frames`` (dropped or blank frames, see
        :class:`~scope.sim.pipeline.BlankFrameLog`) keeps the previous epoch's pattern: one
        estimated on it would read the missing frame as a pattern."""
        from scope.sim.pipeline import SetReconstructor, check_signal

        rec = self._channels.get(key[0])
        if rec is None:  # a channel's first set: nothing to estimate from without signal
            try:
                unit = "e-" if self.offset_source == "camera maps" else "ADU"
                check_signal(
                    raw,
                    self.options.offset_adu,
                    given_as=f"the offset ({_origin(self.offset_source, '--offset')})",
                    unit=unit,
                )
            except DataFormatError as err:
                many = len(self.setups) > 1
                raise DataFormatError(f"{err} (channel {key[0]})" if many else str(err)) from None
            rec = self._channels[key[0]] = SetReconstructor(
                self.setups[key[0]],
                n_angles=self.n_angles,
                n_phases=self.n_phases,
                prior=self.prior,
                settings=self.settings,
                otf=self.otfs[key[0]],
                backend=self.backend,
                pattern_map=self.options.pattern_map or "auto",
                # a channel too dim to show its own pattern: the first channel's as the prior
                fallback_prior=self._channels[0].params if 0 in self._channels else None,
            )
        new_epoch = key not in self.params
        # a set with blank frames is never estimated on (SetReconstructor keeps its pattern)
        kept = new_epoch and bool(blank_frames)
        if kept:
            log.warning(
                "channel %d, time point %d: frame(s) %s of the set that starts a new parameter "
                "epoch hold almost no signal; the previous epoch's pattern is kept for it",
                where["channel"],
                where["first_time_point"],
                ", ".join(map(str, blank_frames)),
            )
        sim = rec(raw, reestimate=new_epoch, missing_frames=blank_frames)
        if new_epoch:
            params = rec.reconstructor.params
            self.params[key] = params
            epoch = {**where, **params.to_dict()}
            if kept:
                epoch["kept_from_previous_epoch"] = "blank frame"
            if rec.pattern_map is not None:  # a pattern bent across the field, mapped
                epoch["pattern_map"] = {
                    "tiles": int(rec.pattern_map.tiled.estimated.sum()),
                    "max_drift_rad": round(rec.pattern_map.max_drift_rad, 3),
                    "fit_residual_rad": round(float(rec.pattern_map.residual_rad.max()), 3),
                }
            self.epochs.append(epoch)
            log.debug("parameters for %s: %s", where, params.to_dict())
        return sim

    def defect_pixels(self) -> dict[str, Any]:
        """Per channel, the hot and dead camera pixels repaired (found on its first set)."""
        return {
            str(c): rec.defects.summary()
            for c, rec in sorted(self._channels.items())
            if rec.defects is not None
        }


def _camera_offset(raw: np.ndarray, options: BatchOptions) -> float:
    """The offset given, else the reconstructor's own estimate
    (:func:`scope.sim.reconstruct.estimate_camera_offset`)."""
    from scope.sim.reconstruct import estimate_camera_offset

    if options.offset_adu is not None:
        return float(options.offset_adu)
    return estimate_camera_offset(raw)


def resolution_estimate(
    raw: np.ndarray,
    setup: Any,
    params: Any,
    options: BatchOptions,
    otf: Any = None,
    images: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float] | None:
    """Widefield and SIM resolution (nm) of one raw set, without ground truth.

    Decorrelation analysis of :func:`scope.sim.diagnostics.estimate_resolution` (Descloux et
    al. 2019). ``images``: the set's SIM and widefield images as written (pattern map
    included), measured instead of a second reconstruction (which would find the set's camera
    defects and flicker again, and log them twice). A diagnostic: its failure never fails the
    file.
    """
    from scope.sim.diagnostics import estimate_resolution

    offset = _camera_offset(raw, options)
    try:
        res = estimate_resolution(
            raw,
            setup,
            params,
            offset_adu=offset,
            settings=_reconstruction_settings(options),
            otf=otf,
            images=images,
        )
    except Exception as err:
        log.warning("resolution estimate failed: %s", err)
        return None
    return {"widefield_nm": round(res.widefield_nm, 1), "sim_nm": round(res.sim_nm, 1)}


def modulation_summary(
    raw: np.ndarray, setup: Any, params: Any, options: BatchOptions, otf: Any = None
) -> dict[str, float] | None:
    """How well the pattern is modulated in one raw set (:func:`scope.sim.diagnostics.
    modulation_map`, summarised): low values flag a defocused pattern or out-of-focus light.
    A diagnostic: its failure never fails the file."""
    from scope.sim.diagnostics import modulation_map

    offset = _camera_offset(raw, options)
    try:
        return modulation_map(raw, setup, params, offset_adu=offset, otf=otf).summary()
    except Exception as err:
        log.warning("modulation map failed: %s", err)
        return None


def process_file(job: FileJob, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Reconstruct one input file into its output; the report line as a dict.

    Parameters
    ----------
    job : FileJob
    progress : callable, optional
        Called with the number of SIM sets done so far (in-process runs only).

    Returns
    -------
    dict
        ``input``, ``output``, ``status`` (``"done"``, ``"prior-only"`` — written, but no
        pattern angle was found in the data: all came from the priors — or ``"error"``),
        ``error``, ``n_sets``, ``axes``, ``parameters``, ``angles_from_prior`` (``{"count",
        "of"}`` over every channel and parameter epoch), ``optics``, ``sources``, ``resolution``,
        ``modulation_contrast``,
        ``saturation`` (values at the camera's full scale, or None), ``blank_frames`` (later
        sets with a dropped or blank frame; ``note`` says so in words), ``defect_pixels`` (per
        channel, the camera pixels repaired), ``seconds``, ``host``.
    """
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "input": job.input,
        "output": job.output,
        "params": job.params_path,
        "status": "error",
        "error": None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    try:
        result.update(_reconstruct_file(job, progress))
        result["status"] = status_of(result["angles_from_prior"])
    except ScopeError as err:
        result["error"] = str(err).splitlines()[0]
        name = Path(job.input).name
        said = result["error"]  # most errors name the file already
        log.error("%s", said if said.startswith(name) else f"{name}: {said}")
    except Exception as err:  # one file's failure must never stop the batch
        result["error"] = f"unexpected {type(err).__name__}: {err}".splitlines()[0]
        log.error("%s failed:\n%s", job.input, traceback.format_exc())
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def angles_from_prior(epochs: list[dict[str, Any]]) -> dict[str, int]:
    """How many pattern angles, over every channel and parameter epoch, were not found in the
    data but taken from the priors (``source`` other than ``"estimated"``)."""
    sources = [a.get("source") for e in epochs for a in e.get("angles", [])]
    return {"count": sum(s != "estimated" for s in sources), "of": len(sources)}


def status_of(from_prior: dict[str, int] | None) -> str:
    """``"prior-only"`` when every angle came from the priors (the result is only as right as
    they are), else ``"done"``."""
    if from_prior and from_prior["of"] and from_prior["count"] == from_prior["of"]:
        return "prior-only"
    return "done"


def _reconstruct_file(job: FileJob, progress: Callable[[int], None] | None) -> dict[str, Any]:
    from scope.calibration.camera import electrons_from_maps
    from scope.io.raw import open_sim_stack
    from scope.io.writers import WIDEFIELD_DESCRIPTION, write_planes
    from scope.sim.pipeline import BlankFrameLog, check_square_pixels
    from scope.sim.saturation import SaturationCounter, camera_pixel_format

    flags = BatchOptions(**job.flags)
    preset = BatchOptions(**job.preset) if job.preset is not None else None
    out_opts = OutputOptions(**job.output_options)
    src = Path(job.input)
    out = Path(job.output)
    stack, n_angles, n_phases = open_sim_stack(src, **given_pattern(flags, preset))
    with stack:
        file_values = {
            "pixel_size_nm": stack.pixel_size_nm,
            "wavelength_nm": list(stack.channel_wavelengths_nm)
            if stack.channel_wavelengths_nm is not None
            else stack.wavelength_nm,
            "na": stack.na,
            "offset_adu": stack.offset_adu,  # where the file states it (scope demo's raw)
        }
        options, sources = merge_options(
            flags, preset, file_values, preset_name=job.preset_name or "preset"
        )
        options = options.model_copy(update={"n_angles": n_angles, "n_phases": n_phases})
        check_square_pixels(stack, _pixel_size_override(options, sources))
        if isinstance(options.wavelength_nm, float):  # one for all channels
            source = sources.get("wavelength_nm", "flag")
            stack.warn_one_wavelength(f"the {source}'s {options.wavelength_nm:g} nm")
        setups = [
            optical_setup(options, source=src.name, channel=c, n_channels=stack.n_channels)
            for c in range(stack.n_channels)
        ]
        setup = setups[0]
        wavelengths = [s.wavelength_nm for s in setups]
        otf_paths(options, source=src.name, n_channels=stack.n_channels)  # one, or each
        to_electrons = (
            electrons_from_maps(options.camera_maps, stack.frame_shape, stack.sensor_origin)
            if options.camera_maps
            else None
        )
        if to_electrons is not None:  # the frames are in photo-electrons: no offset left
            options = options.model_copy(update={"offset_adu": 0.0})
            sources["offset_adu"] = "camera maps"
        engine = _Reconstruction(
            setups, options, job.fft_workers, offset_source=sources.get("offset_adu")
        )
        lead_axes = stack.lead_axes
        # outputs put the leading axes in OME order, time, channel, z (OME-NGFF requires it;
        # an ImageJ hyperstack comes as T, Z, C): sets are read in the output's order
        order = sorted(range(len(lead_axes)), key=lambda i: "TCZQRS".index(lead_axes[i]))
        out_axes = "".join(lead_axes[i] for i in order) + "YX"
        out_lead_shape = tuple(stack.lead_shape[i] for i in order)
        out_shape = (*out_lead_shape, 2 * stack.frame_shape[0], 2 * stack.frame_shape[1])

        def input_flat(out_flat: int) -> tuple[int, tuple[int, ...]]:
            """Flat input set index of the ``out_flat``-th output plane, and its output index."""
            out_index = tuple(int(i) for i in np.unravel_index(out_flat, out_lead_shape))
            index = [0] * len(order)
            for k, i in enumerate(order):
                index[i] = out_index[k]
            flat = int(np.ravel_multi_index(index, stack.lead_shape)) if index else 0
            return flat, out_index

        every = options.reestimate_every or 0
        t_axis = lead_axes.find("T")
        c_axis = lead_axes.find("C")

        def key_of(index: tuple[int, ...]) -> tuple[tuple[int, int], dict[str, int]]:
            t = index[t_axis] if t_axis >= 0 else 0
            c = index[c_axis] if c_axis >= 0 else 0
            epoch = t // every if every else 0
            return (c, epoch), {"channel": c, "first_time_point": t}

        first_adu = stack.read_set(0)
        clipped = SaturationCounter(
            options.saturation_adu,
            dtype=stack.dtype,
            pixel_format=camera_pixel_format(stack.metadata),
        )
        clipped.update(first_adu)
        # later sets with a dropped or blank frame (the first set is refused for one)
        # (the first set: checked above; a scope acquire run's own set numbers named too)
        blanks = BlankFrameLog(options.offset_adu, sets=1, run_sets=stack.metadata.get("sets"))
        first_raw = to_electrons(first_adu) if to_electrons else first_adu
        key0, where0 = key_of(stack.set_index(0))
        first_sim = engine(key0, first_raw, where0)
        first_widefield = engine.widefield(key0[0], first_raw)  # its resolution, and its file
        resolution = resolution_estimate(
            first_raw,
            setup,
            engine.params[key0],
            options,
            engine.otfs[0],
            images=(np.asarray(first_sim), first_widefield),
        )
        contrast = modulation_summary(
            first_raw, setup, engine.params[key0], options, engine.otfs[0]
        )
        provenance: dict[str, Any] = {
            "software": software_version(),
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "input": str(src.resolve()),
            "input_format": stack.metadata.get("format"),
            "input_shape": list(stack.shape),
            "n_sets": stack.n_sets,
            "input_axes": stack.axes,
            "optics": setup.model_dump(),
            "sources": sources,
            "options": options.model_dump(exclude_none=True),
            "channel_wavelengths_nm": [s.wavelength_nm for s in setups],
            "preset": job.preset_name,
            "reestimate_every": every,
            "parameters": engine.params[key0].to_dict(),
        }

        per_channel: list[dict[str, Any]] = []  # several colours: each one's figures

        def summarise_channels() -> list[dict[str, Any]]:
            """Each channel's wavelength, first pattern, resolution and modulation (once every
            set is written: every channel's pattern is known by then)."""
            if stack.n_channels == 1 or per_channel:
                return per_channel
            for c, channel_setup in enumerate(setups):
                params = engine.params[(c, 0)]
                if c == 0:
                    res, con = resolution, contrast
                else:
                    raw_c = stack.read_set(stack.first_set_of_channel(c))
                    raw_c = to_electrons(raw_c) if to_electrons else raw_c
                    res = resolution_estimate(raw_c, channel_setup, params, options, engine.otfs[c])
                    con = modulation_summary(raw_c, channel_setup, params, options, engine.otfs[c])
                per_channel.append(
                    {
                        "channel": c,
                        "wavelength_nm": channel_setup.wavelength_nm,
                        "angles": params.to_dict()["angles"],
                        "resolution": res,
                        "modulation_contrast": con,
                    }
                )
            return per_channel

        def planes():
            for out_flat in range(stack.n_sets):
                flat, out_index = input_flat(out_flat)
                if flat == 0:
                    sim = first_sim
                else:
                    key, where = key_of(stack.set_index(flat))
                    frames = stack.read_set(flat)
                    clipped.update(frames)
                    if to_electrons is not None:
                        frames = to_electrons(frames)
                    blank = blanks.update(flat, frames)
                    sim = engine(key, frames, where, blank_frames=blank)
                yield out_index, sim
                if progress is not None:
                    progress(out_flat + 1)

        def write_widefield() -> None:
            """Each set's widefield image beside the SIM result (a second pass: the sets are
            read again), written whole before the SIM result is put in place."""
            wf_out = widefield_path(out)
            meta = {
                "software": provenance["software"],
                "input": provenance["input"],
                "image": WIDEFIELD_DESCRIPTION,
                "optics": setup.model_dump(),
            }

            def wf_planes():
                for out_flat in range(stack.n_sets):
                    flat, out_index = input_flat(out_flat)
                    if flat == 0:
                        yield out_index, first_widefield
                        continue
                    frames = stack.read_set(flat)
                    frames = to_electrons(frames) if to_electrons is not None else frames
                    (channel, _), _ = key_of(stack.set_index(flat))
                    yield out_index, engine.widefield(channel, frames, blanks.missing(flat))

            write_planes(
                wf_out,
                wf_planes(),
                fmt=out_opts.format,
                shape=(*out_lead_shape, *stack.frame_shape),
                pixel_size_nm=setup.pixel_size_nm,
                axes=out_axes,
                metadata=meta,
                multiscale_levels=out_opts.multiscale_levels,
                channel_wavelengths_nm=wavelengths,
                time_increment_s=stack.time_increment_s,
            )
            log.info("%s: widefield images in %s", src.name, wf_out.name)

        def before_commit() -> None:  # the side-cars exist whenever the SIM result does
            _write_params(
                job,
                engine,
                provenance,
                resolution,
                contrast,
                clipped,
                summarise_channels(),
                blanks,
            )
            if out_opts.widefield:
                write_widefield()

        write_planes(
            out,
            planes(),
            fmt=out_opts.format,
            shape=out_shape,
            pixel_size_nm=setup.pixel_size_nm / 2,
            axes=out_axes,
            metadata=provenance,
            multiscale_levels=out_opts.multiscale_levels,
            channel_wavelengths_nm=wavelengths,
            final_metadata=lambda: {**provenance, "parameter_epochs": engine.epochs},
            before_commit=before_commit,
            time_increment_s=stack.time_increment_s,
        )
    if clipped.significant:
        log.warning("%s: %s", src.name, clipped.message())
    if blanks.found:
        log.warning("%s: %s", src.name, blanks.message())
    return {
        "n_sets": stack.n_sets,
        "axes": stack.axes,
        "output_axes": out_axes,
        "shape": list(stack.shape),
        "parameters": engine.params[key0].to_dict(),
        "angles_from_prior": angles_from_prior(engine.epochs),
        "n_parameter_sets": len(engine.epochs),
        "optics": setup.model_dump(),
        "sources": sources,
        "resolution": resolution,
        "modulation_contrast": contrast,
        "saturation": clipped.summary(),
        "blank_frames": blanks.summary(),
        **({"note": blanks.message()} if blanks.found else {}),
        "defect_pixels": engine.defect_pixels(),
        **({"widefield_output": str(widefield_path(out))} if out_opts.widefield else {}),
        **({"channels": per_channel} if per_channel else {}),
    }


def _write_params(
    job: FileJob,
    engine: _Reconstruction,
    provenance: dict,
    resolution: Any,
    contrast: Any,
    clipped: SaturationCounter,
    channels: list[dict[str, Any]],
    blanks: BlankFrameLog,
) -> None:
    """``.params.json``: the contract's ``{"angles": [...]}`` plus provenance and all epochs
    (and, for several colours, each channel's pattern, resolution and modulation)."""
    first = engine.epochs[0]
    doc = {
        "angles": first["angles"],
        "software": provenance["software"],
        "input": provenance["input"],
        "output": job.output,
        "n_sets": provenance["n_sets"],
        "optics": provenance["optics"],
        "options": provenance["options"],
        "preset": provenance["preset"],
        "sources": provenance["sources"],
        "resolution": resolution,
        "modulation_contrast": contrast,
        "saturation": clipped.summary(),
        "blank_frames": blanks.summary(),
        "defect_pixels": engine.defect_pixels(),
        "parameter_epochs": engine.epochs,
    }
    if channels:
        doc["channels"] = channels
    _write_json_atomic(Path(job.params_path), doc)
