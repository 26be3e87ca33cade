"""Files to clip inputs: images, reconstructed series and raw SIM runs.

* **Images and reconstructed series**: TIFF/OME-TIFF (as written by ``scope reconstruct``,
  Fiji or any OME tool) and OME-Zarr. Axes come from the file's metadata (OME, ImageJ,
  NGFF); a plain TIFF stack without any is a time series, whatever its number of planes
  (tifffile stores 3 or 4 planes as one RGB(A) page with separate planes: those are read as
  time points too). ``axes=`` (``--axes``) says otherwise. The physical pixel size comes
  from the OME ``PhysicalSizeX`` (with its unit), else from ImageJ metadata or the TIFF
  resolution tags (pixels per cm, or per inch when that gives a microscope-sized pixel).
  Frame times come from the OME ``Plane/@DeltaT`` of each time point, else
  ``Pixels/@TimeIncrement`` or ImageJ's ``finterval``. A TIFF series or OME-Zarr image
  larger than :data:`LAZY_BYTES` (as float32) is read one frame at a time while the clip
  renders (:func:`lazy_tcyx`), so a long series does not have to fit in memory.
* **Raw SIM runs** (a raw stack ``(..., angles*phases, Y, X)`` in any format
  :func:`scope.io.raw.open_raw` reads, including ``scope acquire`` runs): reconstructed set by
  set as the clip renders (:class:`scope.sim.pipeline.SetReconstructor`, parameters estimated
  on the first set); the widefield image of each set (the mean of its frames) comes along for
  the side-by-side and wipe layouts. Set times of acquisitions come from their per-frame
  timestamps.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scope.errors import ConfigurationError, DataFormatError, ScopeError
from scope.io.raw import LazyFrames, RawStack, unit_to_nm

log = logging.getLogger(__name__)

#: TIFF series larger than this (as float32 frames) are read lazily, one frame at a time
LAZY_BYTES = 512 * 2**20

_UNIT_S = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "min": 60.0, "h": 3600.0, "ns": 1e-9}
#: largest camera or reconstruction pixel believed from a TIFF resolution tag
MAX_PLAUSIBLE_PIXEL_NM = 10_000.0


@dataclass
class ClipSource:
    """Arrays and metadata ready for :func:`scope.export.export_video`.

    Attributes
    ----------
    frames : ndarray
        ``(T, C, Y, X)`` float32.
    pixel_size_nm : float or None
    timestamps_s : ndarray or None
        Time of each frame.
    channel_names : list of str or None
    widefield : ndarray or None
        ``(T, C, Yw, Xw)`` (raw runs only).
    widefield_pixel_size_nm : float or None
    """

    frames: np.ndarray
    pixel_size_nm: float | None = None
    timestamps_s: np.ndarray | None = None
    channel_names: list[str] | None = None
    widefield: np.ndarray | None = None
    widefield_pixel_size_nm: float | None = None


def _tcyx_axes(axes: str) -> tuple[list[int], list[int], int, int]:
    """Positions of the time axes, channel axes (``C``/``S``), ``Y`` and ``X`` in ``axes``."""
    axes = axes.upper()
    if "Y" not in axes or "X" not in axes:
        raise DataFormatError(f"axes {axes!r} lack Y and X; expected an image")
    rest = [i for i, a in enumerate(axes) if a not in "CSYX"]
    chan = [i for i, a in enumerate(axes) if a in "CS"]
    return rest, chan, axes.index("Y"), axes.index("X")


def _to_tcyx(data: np.ndarray, axes: str) -> tuple[np.ndarray, bool]:
    """Reorder to (T, C, Y, X): ``C``/``S`` become channels, every other axis is flattened to T."""
    rest, chan, y, x = _tcyx_axes(axes)
    arr = np.transpose(data, [*rest, *chan, y, x])
    n_t = math.prod(arr.shape[: len(rest)]) if rest else 1
    n_c = math.prod(arr.shape[len(rest) : len(rest) + len(chan)]) if chan else 1
    has_t = any(axes[i].upper() == "T" for i in rest)
    return arr.reshape(n_t, n_c, *arr.shape[-2:]), has_t


def lazy_tcyx(array: Any, axes: str, *handles: Any) -> LazyFrames:
    """``(T, C, Y, X)`` float32 frames of a stored array, read only when indexed.

    Parameters
    ----------
    array : array-like
        The stored array (a zarr array: an OME-Zarr level or a TIFF series' ``aszarr()``).
    axes : str
        Its axis letters (``C``/``S`` become channels, every axis but ``Y, X`` time).
    *handles
        Objects closed when the frames are garbage-collected (the TIFF file, its store).

    Returns
    -------
    scope.io.raw.LazyFrames
        ``frames[t]`` reads time point ``t`` once, as ``(C, Y, X)``.
    """
    shape = array.shape
    rest, chan, y, x = _tcyx_axes(axes)
    keep = [i for i in range(len(axes)) if i not in rest]
    order = [keep.index(i) for i in (*chan, y, x)]  # of the axes left after indexing time
    rest_shape = tuple(shape[i] for i in rest)
    n_t = math.prod(rest_shape) if rest else 1
    n_c = math.prod(shape[i] for i in chan) if chan else 1
    ny, nx = shape[y], shape[x]

    def time_point(t: int) -> np.ndarray:
        index: list[Any] = [slice(None)] * len(shape)
        for axis, i in zip(rest, np.unravel_index(t, rest_shape) if rest else ()):
            index[axis] = int(i)
        block = np.transpose(np.asarray(array[tuple(index)]), order)
        return block.reshape(n_c, ny, nx)

    def read_frames(flat: Sequence[int]) -> np.ndarray:
        out = np.empty((len(flat), ny, nx), np.float32)
        blocks: dict[int, np.ndarray] = {}
        for k, i in enumerate(flat):
            t, c = divmod(int(i), n_c)
            if t not in blocks:  # each time point read once
                blocks[t] = time_point(t)
            out[k] = blocks[t][c]
        return out

    frames = LazyFrames(read_frames, (n_t, n_c, ny, nx), np.dtype(np.float32))
    weakref.finalize(frames, _close_all, *handles)
    return frames


def _close_all(*handles: Any) -> None:
    for h in handles:
        try:
            h.close()
        except Exception:  # already closed
            log.debug("closing %r failed", h, exc_info=True)


def _ome_times(pixels: dict[str, Any], n_t: int) -> np.ndarray | None:
    planes = pixels.get("Plane")
    if planes:
        planes = planes if isinstance(planes, list) else [planes]
        by_t: dict[int, float] = {}
        for plane in planes:
            if (
                "DeltaT" in plane
                and int(plane.get("TheC", 0)) == 0
                and int(plane.get("TheZ", 0)) == 0
            ):
                unit = _UNIT_S.get(str(plane.get("DeltaTUnit", "s")), 1.0)
                by_t.setdefault(int(plane.get("TheT", 0)), float(plane["DeltaT"]) * unit)
        if len(by_t) == n_t:
            return np.array([by_t[t] for t in sorted(by_t)])
    if "TimeIncrement" in pixels:
        unit = _UNIT_S.get(str(pixels.get("TimeIncrementUnit", "s")), 1.0)
        return np.arange(n_t) * float(pixels["TimeIncrement"]) * unit
    return None


def _tiff_pixel_size_nm(tif: Any) -> float | None:
    page = tif.pages.first
    tags = page.tags
    if "XResolution" not in tags:
        return None
    num, den = tags["XResolution"].value
    if not num or not den:
        return None
    per_unit = num / den
    ij = tif.imagej_metadata or {}
    if ij.get("unit"):
        unit = str(ij["unit"]).replace("\\u00B5", "µ")
        try:
            return unit_to_nm(1.0 / per_unit, unit)
        except DataFormatError:
            return None
    res_unit = int(getattr(tags.get("ResolutionUnit"), "value", 2))
    nm = {2: 2.54e7, 3: 1e7}.get(res_unit)
    if nm is None:
        return None
    size = nm / per_unit
    return size if size <= MAX_PLAUSIBLE_PIXEL_NM else None


def _wavelength_label(channel: dict[str, Any]) -> str:
    """``"525 nm"`` for an OME Channel that states its emission wavelength (in nm), else ""."""
    wavelength = channel.get("EmissionWavelength")
    if isinstance(wavelength, int | float) and channel.get("EmissionWavelengthUnit", "nm") == "nm":
        return f"{wavelength:g} nm"
    return ""


def check_axes(axes: str, shape: Sequence[int], name: str, file_axes: str = "") -> str:
    """``axes`` (upper case) when it names every axis of ``shape`` once, ``Y`` and ``X`` last."""
    letters = str(axes).upper()
    said = f" (the file says {file_axes})" if file_axes else ""
    if len(letters) != len(shape):
        raise ConfigurationError(
            f"axes {axes!r} name {len(letters)} axes, but {name} has {len(shape)} (shape "
            f"{tuple(shape)}){said}; give one letter per axis, Y and X last"
        )
    if not letters.isalpha() or letters[-2:] != "YX" or len(set(letters)) != len(letters):
        raise ConfigurationError(
            f"axes {axes!r}: expected distinct letters ending in YX (T time, C channel, e.g. "
            f"TYX, CYX, TCYX) for {name} of shape {tuple(shape)}{said}"
        )
    return letters


def read_tiff(path: Path, axes: str | None = None) -> ClipSource:
    """An image or series from a TIFF/OME-TIFF file (see the module notes)."""
    import tifffile
    import zarr

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            file_axes = series.axes
            if axes:
                axes = check_axes(axes, series.shape, path.name, file_axes)
            elif not (tif.is_ome or tif.is_imagej) and _planar_samples(file_axes):
                # 3 or 4 planes that tifffile stored as one RGB(A) page: a stack like any
                # other plain stack (2 or 5 planes are pages), so time points, not channels
                axes = file_axes.replace("S", "Q")
                log.info(
                    "%s: a plain TIFF stack of %d planes, read as time points (--axes CYX "
                    "reads them as channels)",
                    path.name,
                    series.shape[file_axes.index("S")],
                )
            else:
                axes = file_axes
            if math.prod(series.shape) * 4 > LAZY_BYTES:
                log.info("%s: %d MB as float32, read one frame at a time", path.name,
                         math.prod(series.shape) * 4 // 10**6)  # fmt: skip
                lazy_tif = tifffile.TiffFile(path)
                store = lazy_tif.series[0].aszarr()
                frames: Any = lazy_tcyx(zarr.open(store, mode="r"), axes, store, lazy_tif)
                has_t = "T" in axes.upper()
            else:
                frames, has_t = _to_tcyx(series.asarray(), axes)
            pixel_size_nm = None
            times = None
            names = None
            if tif.is_ome:
                ome = tifffile.xml2dict(tif.ome_metadata)["OME"]
                image = ome["Image"][0] if isinstance(ome["Image"], list) else ome["Image"]
                pixels = image["Pixels"]
                if "PhysicalSizeX" in pixels:
                    pixel_size_nm = unit_to_nm(
                        pixels["PhysicalSizeX"], pixels.get("PhysicalSizeXUnit")
                    )
                if has_t:
                    times = _ome_times(pixels, frames.shape[0])
                channels = pixels.get("Channel")
                channels = channels if isinstance(channels, list) else [channels or {}]
                got = [str(c.get("Name", "")) or _wavelength_label(c) for c in channels]
                if len(got) == frames.shape[1] and all(got):
                    names = got
            else:
                pixel_size_nm = _tiff_pixel_size_nm(tif)
                ij = tif.imagej_metadata or {}
                if has_t and ij.get("finterval"):
                    times = np.arange(frames.shape[0]) * float(ij["finterval"])
    except ScopeError:
        raise
    except (OSError, ValueError, KeyError, tifffile.TiffFileError) as err:
        raise DataFormatError(f"{path.name} is not a readable TIFF image: {err}") from err
    if isinstance(frames, np.ndarray):
        frames = frames.astype(np.float32, copy=False)
    return ClipSource(frames, pixel_size_nm, times, names)


def _planar_samples(axes: str) -> bool:
    """Samples (``S``) stored as planes in front of ``Y, X`` rather than per pixel."""
    return "S" in axes and "Y" in axes and axes.index("S") < axes.index("Y")


def read_zarr(path: Path, axes: str | None = None) -> ClipSource:
    """An image or series from an OME-Zarr store (level 0)."""
    from scope.io.writers import read_image

    try:
        image, pixel_size_nm, meta = read_image(path, lazy=True)
    except (KeyError, IndexError, StopIteration, ValueError, OSError) as err:
        raise DataFormatError(
            f"{path} is not an OME-Zarr image (expected NGFF multiscales metadata): {err}"
        ) from err
    file_axes = str(meta.get("axes", "YX"))[-image.ndim :]
    axes = check_axes(axes, image.shape, path.name, file_axes) if axes else file_axes
    labels = [str(c.get("label", "")) for c in (meta.get("omero") or {}).get("channels") or []]
    n_channels = image.shape[axes.index("C")] if "C" in axes else 1
    names = labels if n_channels > 1 and len(labels) == n_channels and all(labels) else None
    step = meta.get("time_increment_s")  # the NGFF t axis's scale, where it is in time units
    if math.prod(image.shape) * 4 > LAZY_BYTES:
        log.info("%s: %d MB as float32, read one frame at a time", path.name,
                 math.prod(image.shape) * 4 // 10**6)  # fmt: skip
        frames = lazy_tcyx(image, axes)
    else:
        frames = _to_tcyx(np.asarray(image), axes)[0].astype(np.float32, copy=False)
    times = np.arange(frames.shape[0]) * step if step and "T" in axes else None
    return ClipSource(frames, pixel_size_nm, timestamps_s=times, channel_names=names)


def read_image_source(path: str | Path, *, axes: str | None = None) -> ClipSource:
    """An image, a series or a reconstruction from TIFF/OME-TIFF or OME-Zarr.

    Parameters
    ----------
    path : path
        The file or OME-Zarr folder.
    axes : str, optional
        What each axis holds, one letter per axis, ``Y, X`` last (``T`` time, ``C``
        channel; any other letter is flattened into time): overrides the file's axes.
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: no such file or folder")
    if path.is_dir():
        return read_zarr(path, axes)
    if path.suffix.lower() in (".tif", ".tiff", ".btf"):
        return read_tiff(path, axes)
    raise DataFormatError(
        f"{path.name}: unsupported image format {path.suffix!r}; expected a TIFF/OME-TIFF file "
        "or an OME-Zarr folder (a raw SIM run: add --raw)"
    )


def _set_times(stack: RawStack, n_times: int) -> np.ndarray | None:
    """Start time (s, from the first) of each of a raw run's ``n_times`` time points, where
    the file records them (:attr:`scope.io.raw.RawStack.set_times_s`: a ``scope acquire`` run,
    from its frames' timestamps); None otherwise."""
    times = stack.set_times_s
    if times is None or len(times) != n_times:
        return None
    return np.asarray(times, dtype=np.float64)


#: reconstructed sets (SIM and widefield) a raw-run source keeps, in bytes: a short run is
#: reconstructed once although the contrast is sampled before the clip renders
RECONSTRUCTED_CACHE_BYTES = 256 * 2**20


class _ReconstructedSets:
    """SIM and widefield images of a raw run's sets, reconstructed when first asked for.

    Keeps the most recent sets up to :data:`RECONSTRUCTED_CACHE_BYTES`; the raw stack stays
    open until both lazy arrays built on it are garbage-collected.
    """

    def __init__(self, stack: Any, recs: list[Any]) -> None:
        self.stack = stack
        self.recs = recs  # one per channel
        self.cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, flat: int) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            if flat in self.cache:
                self.cache.move_to_end(flat)
                return self.cache[flat]
            frames = self.stack.read_set(flat)
            channel = self.stack.channel_of_set(flat)
            rec = self.recs[channel]
            missing: tuple[int, ...] = ()
            if flat != self.stack.first_set_of_channel(channel):  # that one sets the pattern
                from scope.sim.pipeline import blank_frame_indices

                missing = blank_frame_indices(frames, getattr(rec.settings, "offset_adu", None))
            if missing:  # a dropped or blank frame: left out (the clip keeps its time point)
                log.info("set %d: frame(s) %s blank, left out", flat, list(missing))
            item = (
                rec(frames, missing_frames=missing),
                rec.widefield(frames, missing_frames=missing),
            )
            self.cache[flat] = item
            per_set = item[0].nbytes + item[1].nbytes
            while len(self.cache) > 1 and len(self.cache) * per_set > RECONSTRUCTED_CACHE_BYTES:
                self.cache.popitem(last=False)
            return item


def _lazy_sets(sets: _ReconstructedSets, which: int, shape_yx: tuple[int, int]) -> LazyFrames:
    """``(T, C, Y, X)`` frames of a raw run (``which``: 0 SIM, 1 widefield), each time point
    reconstructed when it is indexed. Leading axes ``C``/``S`` become channels, all others T."""
    stack = sets.stack
    lead_shape = stack.lead_shape or (1,)
    # each (time point, channel) -> the flat index of its set, ordered as _to_tcyx orders data
    set_of, _ = _to_tcyx(
        np.arange(math.prod(lead_shape)).reshape(*lead_shape, 1, 1),
        (stack.lead_axes or "T") + "YX",
    )
    n_t, n_c = set_of.shape[:2]

    def read_frames(flat: Sequence[int]) -> np.ndarray:
        out = np.empty((len(flat), *shape_yx), np.float32)
        for k, i in enumerate(flat):
            t, c = divmod(int(i), n_c)
            out[k] = sets.get(int(set_of[t, c, 0, 0]))[which]
        return out

    return LazyFrames(read_frames, (n_t, n_c, *shape_yx), np.dtype(np.float32))


def reconstruct_raw_source(
    path: str | Path,
    *,
    na: float | None = None,
    wavelength_nm: float | None = None,
    pixel_size_nm: float | None = None,
    n_angles: int | None = None,
    n_phases: int | None = None,
    frame_order: str | None = None,
    frame_interval_s: float | None = None,
    backend: str = "auto",
) -> ClipSource:
    """A raw SIM run as a clip source: SIM and widefield, reconstructed set by set while the
    clip renders (a long run never has to fit in memory).

    The pattern parameters are estimated on the first set of each channel (here, so that a run
    that cannot be reconstructed fails before anything is rendered) and kept for the whole run,
    with one filter per channel (:class:`scope.sim.pipeline.SetReconstructor`); each channel
    has its own emission wavelength where the file states them.

    Parameters
    ----------
    path : path
        Raw stack ``(..., angles*phases, Y, X)`` (TIFF/OME-TIFF, MRC, OME-Zarr, acquisitions).
    na, wavelength_nm, pixel_size_nm : float, optional
        Optical setup; default to what the file states (each channel's wavelength). Required
        where it states nothing; a wavelength given serves every channel.
    n_angles, n_phases : int, optional
        SIM pattern layout; default as the run states it, else 3 x 3.
    frame_order : str, optional
        ``"phase-major"`` for a file holding each set's frames angle fastest (default
        angle-major, phase fastest).
    frame_interval_s : float, optional
        Time between SIM sets when the file does not record it.
    backend : str
        Array backend for the reconstruction (``numpy``, ``cupy``, ``auto``).
    """
    from scope.backend import get_backend
    from scope.io.raw import open_sim_stack
    from scope.optics import OpticalSetup

    path = Path(path)
    stack, n_angles, n_phases = open_sim_stack(
        path, n_angles=n_angles, n_phases=n_phases, frame_order=frame_order
    )
    try:
        na = na or stack.na
        # each channel's emission wavelength: the one given, else the file's (per channel)
        if wavelength_nm:
            stack.warn_one_wavelength(f"{wavelength_nm:g} nm")
        wavelengths = [
            wavelength_nm or stack.channel_wavelength_nm(c) for c in range(stack.n_channels)
        ]
        pixel_size_nm = pixel_size_nm or stack.pixel_size_nm
        missing = [
            name
            for name, value in (
                ("--na", na),
                ("--wavelength", wavelengths[0]),
                ("--pixel-size", pixel_size_nm),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(
                f"{path.name} does not state {', '.join(missing)}; give them to reconstruct "
                "the raw run (e.g. --na 1.2 --wavelength 525 --pixel-size 65)"
            )
        from scope.sim.pipeline import SetReconstructor

        recs = [  # each channel its own optics and pattern; a bent pattern mapped, as scope
            # reconstruct does
            SetReconstructor(
                OpticalSetup(na=na, wavelength_nm=wavelength, pixel_size_nm=pixel_size_nm),
                n_angles=n_angles,
                n_phases=n_phases,
                backend=get_backend(backend),
                pattern_map="auto",
            )
            for wavelength in wavelengths
        ]
        sets = _ReconstructedSets(stack, recs)
        weakref.finalize(sets, _close_all, stack)  # once neither SIM nor widefield is in use
        log.info("reconstructing %d SIM set(s) of %s as the clip renders", stack.n_sets, path.name)
        for c in range(stack.n_channels):  # parameters estimated now: a failure stops the
            sets.get(stack.first_set_of_channel(c))  # export before rendering
            if c == 0:  # a channel too dim to show its pattern: the first's as its prior
                for rec in recs[1:]:
                    rec.fallback_prior = recs[0].params
        ny, nx = stack.frame_shape
        sim = _lazy_sets(sets, 0, (2 * ny, 2 * nx))
        widefield = _lazy_sets(sets, 1, (ny, nx))
        times = _set_times(stack, sim.shape[0])
    except BaseException:
        stack.close()
        raise
    if times is None and frame_interval_s:
        times = np.arange(sim.shape[0]) * frame_interval_s
    return ClipSource(sim, pixel_size_nm / 2, times, None, widefield, pixel_size_nm)
