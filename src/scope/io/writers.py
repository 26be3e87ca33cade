"""Writers for reconstructed images: float32 OME-TIFF and OME-Zarr (NGFF), with provenance.

Every writer writes under a temporary name beside the target and renames it into place only when
the file is complete, so an interrupted run never leaves something that looks finished.

Physical pixel sizes are written in µm with their unit (``PhysicalSizeX`` +
``PhysicalSizeXUnit="µm"`` in OME-XML; ``unit: "micrometer"`` axes and ``scale`` transforms in
NGFF). SIM parameters and provenance travel as JSON: in the OME ``Image/Description`` of an
OME-TIFF and under the ``"scope"`` key of the Zarr group attributes.

References
----------
OME-TIFF: https://ome-model.readthedocs.io/en/stable/ome-tiff/specification.html
OME-Zarr (NGFF) 0.5: https://ngff.openmicroscopy.org/0.5/
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scope.errors import ConfigurationError, DataFormatError
from scope.optics import emission_colour

log = logging.getLogger(__name__)

#: NGFF omero colours (RRGGBB) of the display colours of :func:`scope.optics.emission_colour`
_OMERO_COLOURS = {
    "cyan": "00FFFF",
    "green": "00FF00",
    "yellow": "FFFF00",
    "red": "FF0000",
    "magenta": "FF00FF",
    "gray": "FFFFFF",
}
#: what a widefield image written beside a SIM result says it is (``"image"`` in its metadata)
WIDEFIELD_DESCRIPTION = "widefield: mean of each SIM set's frames, camera offset subtracted"
_NGFF_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
#: NGFF time units (UDUNITS-2 names) in seconds
_SECONDS_PER_UNIT = {"second": 1.0, "millisecond": 1e-3, "microsecond": 1e-6, "minute": 60.0,
                     "hour": 3600.0}  # fmt: skip


#: image file suffixes taken off a name to find its base (longest first)
IMAGE_SUFFIXES = (".ome.tiff", ".ome.zarr", ".ome.tif", ".tiff", ".zarr", ".tif", ".mrc", ".dv")


def output_base(path: str | Path) -> str:
    """The name the files written beside an image share: its name without the image suffix
    and without a ``.sim`` tag (``cell.t1.sim.ome.tif`` -> ``cell.t1``, ``day.2.zarr`` ->
    ``day.2``). Other dots are part of the name: two outputs that differ only after a dot
    (``cell.t1`` / ``cell.t2``) keep their own ``.params.json`` and widefield images."""
    name = Path(path).name
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    if name.lower().endswith(".sim") and len(name) > 4:
        name = name[:-4]
    return name


def beside(path: str | Path, suffix: str) -> Path:
    """A file written beside the image ``path``: its :func:`output_base` plus ``suffix``
    (``cell.sim.ome.tif`` -> ``cell.params.json``, ``cell.widefield.tif``; ``cell.t1.sim.tif``
    -> ``cell.t1.params.json``)."""
    return Path(path).with_name(output_base(path) + suffix)


def temporary_path(path: Path) -> Path:
    """A unique hidden name beside ``path`` for writing before the final rename."""
    return path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")


def prepare_output_folder(path: str | Path) -> Path:
    """Create the folder that is to hold the output ``path`` and check that it can be written,
    before any work is done; return the folder.

    Raises
    ------
    ConfigurationError
        The folder, or one above it, is a file; it cannot be created; or no file can be
        created in it (permissions, a read-only or virtual file system such as ``/proc``).

    Examples
    --------
    >>> prepare_output_folder(tmp / "results" / "sim.ome.tif")  # doctest: +SKIP
    PosixPath('.../results')
    """
    path = Path(path)
    folder = path.parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigurationError(
            f"cannot write {path}: its folder {existing} is a file, not a folder; name an "
            "output in a folder"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigurationError(
            f"cannot create the output folder {folder} ({err.strerror}): choose an output in "
            "a folder you can write to"
        ) from err
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".scope-write-test-")
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise ConfigurationError(
            f"the output folder {folder} cannot be written (creating a file there fails: "
            f"{err.strerror}): choose an output in a folder you can write to"
        ) from err
    return folder


def remove_path(path: str | Path, *, ignore_errors: bool = False) -> None:
    """Remove a file, a folder with its contents, or a link (never what it points to), if it
    is there.

    Parameters
    ----------
    path : path
    ignore_errors : bool
        Leave what cannot be removed without an error (cleanup after another error, which it
        must not hide).
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=ignore_errors)
    elif path.exists() or path.is_symlink():
        try:
            path.unlink()
        except OSError:
            if not ignore_errors:
                raise


def commit_path(tmp: Path, path: Path) -> None:
    """Move a completed temporary file or folder to its final name (replacing an old one).

    A file that replaces a file keeps the old one's permissions (a result kept private with
    ``chmod 600``, or shared with a group, stays so)."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.is_file() and tmp.is_file():
        shutil.copymode(path, tmp)
    os.replace(tmp, path)


def write_atomically(
    path: str | Path, write: Callable[[Path], object], *, tmp: str | Path | None = None
) -> Path:
    """Write ``path`` in one step: ``write(tmp)`` writes a temporary name beside it, which then
    replaces ``path`` (:func:`commit_path`). On any error (also Ctrl-C) the temporary is
    removed and ``path`` is left as it was; a reader sees the old file or the new one, never
    half of one.

    Parameters
    ----------
    path : path
        The final name.
    write : callable
        ``write(tmp)`` writes the whole file (or folder) at ``tmp``.
    tmp : path, optional
        The temporary name; default a unique hidden one beside ``path``
        (:func:`temporary_path`).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    tmp = temporary_path(path) if tmp is None else Path(tmp)
    try:
        write(tmp)
        commit_path(tmp, path)
    except BaseException:
        remove_path(tmp, ignore_errors=True)
        raise
    return path


def write_bytes_atomically(path: str | Path, data: bytes, *, tmp: str | Path | None = None) -> Path:
    """Write ``data`` to ``path`` in one step (:func:`write_atomically`)."""

    def write(t: Path) -> None:
        with open(t, "wb") as fh:
            fh.write(data)

    return write_atomically(path, write, tmp=tmp)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    raise TypeError(f"cannot store {type(obj).__name__} in metadata")


def _check_axes(image_shape: tuple[int, ...], axes: str) -> str:
    axes = axes.upper()
    if len(axes) != len(image_shape) or not axes.endswith("YX") or len(set(axes)) != len(axes):
        raise DataFormatError(
            f"axes {axes!r} do not describe an image of shape {image_shape}; expected one "
            "distinct letter per axis ending in 'YX' (e.g. 'TYX')"
        )
    if not set(axes) <= set("TCZYX"):
        raise DataFormatError(f"axes {axes!r}: only T, C, Z, Y, X are allowed in outputs")
    return axes


# ---------------------------------------------------------------------------------------------
# OME-TIFF


def _ome_tiff_metadata(
    pixel_size_nm: float,
    axes: str,
    metadata: dict[str, Any] | None,
    channel_wavelengths_nm: Sequence[float] | None = None,
    time_increment_s: float | None = None,
    name: str | None = None,
) -> dict:
    size_um = float(pixel_size_nm) / 1000.0
    if name is None:  # what the image is, by what its metadata says
        widefield = (metadata or {}).get("image") == WIDEFIELD_DESCRIPTION
        name = "scope widefield image" if widefield else "scope SIM reconstruction"
    out = {
        "axes": axes,
        "PhysicalSizeX": size_um,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": size_um,
        "PhysicalSizeYUnit": "µm",
        "Name": name,
        "Description": json.dumps(metadata or {}, default=_json_default),
    }
    if channel_wavelengths_nm:  # OME Channel elements: each channel's emission wavelength
        out["Channel"] = {
            "EmissionWavelength": [float(w) for w in channel_wavelengths_nm],
            "EmissionWavelengthUnit": ["nm"] * len(channel_wavelengths_nm),
        }
    if time_increment_s is not None and "T" in axes:
        out["TimeIncrement"] = float(time_increment_s)
        out["TimeIncrementUnit"] = "s"
    return out


def write_ome_tiff(
    path: str | Path,
    image: np.ndarray | Iterable[np.ndarray],
    *,
    pixel_size_nm: float,
    axes: str,
    metadata: dict[str, Any] | None = None,
    shape: tuple[int, ...] | None = None,
    before_commit: Callable[[], None] | None = None,
    channel_wavelengths_nm: Sequence[float] | None = None,
    time_increment_s: float | None = None,
    name: str | None = None,
) -> Path:
    """Write a float32 OME-TIFF, atomically.

    Parameters
    ----------
    path : str or Path
        Target file (``.ome.tif`` recommended).
    image : ndarray or iterable of ndarray
        The image, or an iterable yielding its 2D planes in order (streaming; then ``shape`` is
        required). Converted to float32.
    pixel_size_nm : float
        Pixel size at the sample, nm (written as µm with ``PhysicalSizeXUnit``).
    axes : str
        One letter per axis from ``TCZYX``, ending in ``YX``.
    metadata : dict, optional
        JSON-serialisable SIM parameters and provenance, stored in the OME Image Description.
    shape : tuple of int, optional
        Full shape when ``image`` is an iterable of planes.
    before_commit : callable, optional
        Called once the file is complete, just before it is renamed into place (e.g. to write
        a side-car that must exist whenever the output does).
    channel_wavelengths_nm : sequence of float, optional
        Each channel's emission wavelength (one per index of the ``C`` axis), written into the
        OME ``Channel`` elements.
    time_increment_s : float, optional
        Time from one index of the ``T`` axis to the next (OME ``TimeIncrement``, seconds).
    name : str, optional
        The OME Image Name; default "scope widefield image" for a widefield image (its
        ``metadata["image"]`` says so), else "scope SIM reconstruction".

    Returns
    -------
    Path
        The written file.
    """
    import tifffile

    path = Path(path)
    if not (pixel_size_nm and pixel_size_nm > 0 and math.isfinite(pixel_size_nm)):
        raise DataFormatError(f"pixel size must be positive, got {pixel_size_nm} nm")
    if isinstance(image, np.ndarray):
        data: Any = np.ascontiguousarray(image, dtype=np.float32)
        shape = data.shape
    else:
        if shape is None:
            raise DataFormatError("streaming OME-TIFF writes need the full shape")
        data = (np.ascontiguousarray(p, dtype=np.float32) for p in image)
    axes = _check_axes(tuple(shape), axes)
    if channel_wavelengths_nm is not None and (
        "C" not in axes or shape[axes.index("C")] != len(channel_wavelengths_nm)
    ):
        raise DataFormatError(
            f"{len(channel_wavelengths_nm)} channel wavelengths for axes {axes} {tuple(shape)}: "
            "give one per index of the C axis"
        )

    def write(tmp: Path) -> None:
        with tifffile.TiffWriter(tmp, bigtiff=math.prod(shape) * 4 > 2**31, ome=True) as tw:
            tw.write(
                data,
                shape=None if isinstance(data, np.ndarray) else shape,
                dtype=np.float32,
                photometric="minisblack",
                metadata=_ome_tiff_metadata(
                    pixel_size_nm, axes, metadata, channel_wavelengths_nm, time_increment_s, name
                ),
            )
        if before_commit is not None:
            before_commit()

    write_atomically(path, write)
    return path


# ---------------------------------------------------------------------------------------------
# OME-Zarr


def auto_multiscale_levels(
    shape_yx: tuple[int, int], *, max_side: int = 512, max_levels: int = 5
) -> int:
    """Number of resolution levels: halve until the larger side is at most ``max_side``."""
    levels, side = 1, max(shape_yx)
    while side > max_side and levels < max_levels:
        side = (side + 1) // 2
        levels += 1
    return levels


def downsample2(plane: np.ndarray) -> np.ndarray:
    """2x2 mean binning of the last two axes (odd edges dropped)."""
    y, x = plane.shape[-2] // 2 * 2, plane.shape[-1] // 2 * 2
    p = plane[..., :y, :x]
    return (
        (p[..., 0::2, 0::2] + p[..., 1::2, 0::2] + p[..., 0::2, 1::2] + p[..., 1::2, 1::2]) * 0.25
    ).astype(np.float32)


class OmeZarrWriter:
    """Streaming NGFF 0.5 writer: create, write one leading index at a time, then commit.

    Writes into a temporary folder beside ``path``; :meth:`commit` renames it into place.
    Chunks hold one time point (one leading index) and the full plane, so concurrent writers of
    different time points never share a chunk.

    Parameters
    ----------
    path : Path
        Target ``.zarr`` folder.
    shape : tuple of int
        Full image shape, ``(lead..., Y, X)``.
    pixel_size_nm : float
        Level-0 pixel size at the sample, nm.
    axes : str
        One letter per axis from ``TCZYX``, ending in ``YX``.
    metadata : dict, optional
        SIM parameters and provenance, stored under the group attribute ``"scope"``.
    multiscale_levels : int, optional
        Number of resolution levels (default: :func:`auto_multiscale_levels`).
    channel_wavelengths_nm : sequence of float, optional
        Each channel's emission wavelength (one per index of the ``C`` axis): the channel's
        label and display colour in the NGFF ``omero`` metadata.
    time_increment_s : float, optional
        Time from one index of the ``T`` axis to the next: the ``t`` axis's scale, in seconds.

    Notes
    -----
    The ``omero`` metadata (NGFF's rendering settings, read by napari-ome-zarr, Fiji/MoBIE
    and OMERO) give every channel a label, a colour (by emission wavelength where several
    channels are given; white for one) and a display window: the data's range (``min``,
    ``max``) and the 0.1-99.9 percentiles (``start``, ``end``) of every plane written, read
    on a 4x subsampled grid, so a few hot pixels do not set the contrast.
    """

    def __init__(
        self,
        path: str | Path,
        shape: tuple[int, ...],
        *,
        pixel_size_nm: float,
        axes: str,
        metadata: dict[str, Any] | None = None,
        chunks_time: int = 1,
        multiscale_levels: int | None = None,
        tmp_path: str | Path | None = None,
        channel_wavelengths_nm: Sequence[float] | None = None,
        time_increment_s: float | None = None,
    ) -> None:
        import zarr

        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.axes = _check_axes(self.shape, axes)
        if not (pixel_size_nm and pixel_size_nm > 0 and math.isfinite(pixel_size_nm)):
            raise DataFormatError(f"pixel size must be positive, got {pixel_size_nm} nm")
        self._c_axis = self.axes.index("C") if "C" in self.axes else None
        n_channels = 1 if self._c_axis is None else self.shape[self._c_axis]
        if channel_wavelengths_nm is not None and len(channel_wavelengths_nm) != n_channels:
            raise DataFormatError(
                f"{len(channel_wavelengths_nm)} channel wavelengths for axes {self.axes} "
                f"{self.shape}: give one per index of the C axis"
            )
        self.channel_wavelengths_nm = channel_wavelengths_nm
        # per channel: min, max, lowest 0.1 and highest 99.9 percentile of the planes written
        self._windows = np.tile([np.inf, -np.inf, np.inf, -np.inf], (n_channels, 1))
        levels = multiscale_levels or auto_multiscale_levels(self.shape[-2:])
        self.tmp = Path(tmp_path) if tmp_path else temporary_path(self.path)
        n_lead = len(self.shape) - 2
        self.group = zarr.open_group(str(self.tmp), mode="w", zarr_format=3)
        self.arrays = []
        datasets = []
        size_um = float(pixel_size_nm) / 1000.0
        for level in range(levels):
            f = 2**level
            lshape = (*self.shape[:-2], self.shape[-2] // f, self.shape[-1] // f)
            chunks = (*([1] * n_lead), *lshape[-2:])
            if n_lead:
                chunks = (max(1, int(chunks_time)), *chunks[1:])
            self.arrays.append(
                self.group.create_array(
                    str(level), shape=lshape, chunks=chunks, dtype="float32", fill_value=np.nan
                )
            )
            scale = [
                float(time_increment_s) if a == "T" and time_increment_s else 1.0
                for a in self.axes[:n_lead]
            ] + [size_um * f, size_um * f]
            datasets.append(
                {
                    "path": str(level),
                    "coordinateTransformations": [{"type": "scale", "scale": scale}],
                }
            )
        axes_meta = []
        for a in self.axes.lower():
            entry: dict[str, Any] = {"name": a, "type": _NGFF_AXIS_TYPES[a]}
            if _NGFF_AXIS_TYPES[a] == "space":
                entry["unit"] = "micrometer"
            elif a == "t" and time_increment_s:
                entry["unit"] = "second"
            axes_meta.append(entry)
        self.group.attrs.update(
            {
                "ome": {
                    "version": "0.5",
                    "multiscales": [
                        {"name": self.path.stem, "axes": axes_meta, "datasets": datasets}
                    ],
                },
                "scope": json.loads(json.dumps(metadata or {}, default=_json_default)),
            }
        )

    def write(self, index: tuple[int, ...] | int, plane: np.ndarray) -> None:
        """Write the image at one leading index (e.g. a time point), all levels."""
        idx = (index,) if isinstance(index, int) else tuple(index)
        level = np.asarray(plane, dtype=np.float32)
        self._update_window(0 if self._c_axis is None else idx[self._c_axis], level)
        for k, arr in enumerate(self.arrays):
            if k:
                level = downsample2(level)
            arr[idx] = level[..., : arr.shape[-2], : arr.shape[-1]]

    def update_metadata(self, metadata: dict[str, Any]) -> None:
        self.group.attrs["scope"] = json.loads(json.dumps(metadata, default=_json_default))

    def _update_window(self, channel: int, plane: np.ndarray) -> None:
        finite = np.isfinite(plane)
        if not finite.any():
            return
        sample = plane[::4, ::4][finite[::4, ::4]]
        lo, hi = np.percentile(sample, [0.1, 99.9]) if sample.size else (np.inf, -np.inf)
        w = self._windows[channel]
        mn, mx = float(plane[finite].min()), float(plane[finite].max())
        w[:] = min(w[0], mn), max(w[1], mx), min(w[2], lo), max(w[3], hi)

    def _omero(self) -> dict[str, Any]:
        """NGFF ``omero`` rendering metadata: each channel's label, colour and window."""
        waves = self.channel_wavelengths_nm
        several = len(self._windows) > 1
        channels = []
        for c, (mn, mx, start, end) in enumerate(self._windows):
            if not np.isfinite(mn):  # nothing written to this channel
                mn = mx = start = end = 0.0
            wavelength = float(waves[c]) if waves is not None else None
            channels.append(
                {
                    "label": f"{wavelength:g} nm" if wavelength else f"channel {c}",
                    "color": _OMERO_COLOURS[emission_colour(wavelength)] if several else "FFFFFF",
                    "window": {
                        "min": float(mn),
                        "max": float(mx),
                        "start": float(start),
                        "end": float(max(end, start)),
                    },
                    "active": True,
                    "coefficient": 1.0,
                    "family": "linear",
                    "inverted": False,
                }
            )
        return {
            "channels": channels,
            "rdefs": {"model": "color" if several else "greyscale", "defaultT": 0, "defaultZ": 0},
        }

    def commit(self) -> Path:
        ome = dict(self.group.attrs["ome"])
        ome["omero"] = self._omero()
        self.group.attrs["ome"] = ome
        commit_path(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        remove_path(self.tmp, ignore_errors=True)


def write_ome_zarr(
    path: str | Path,
    image: np.ndarray,
    *,
    pixel_size_nm: float,
    axes: str,
    metadata: dict[str, Any] | None = None,
    chunks_time: int = 1,
    multiscale_levels: int | None = None,
    channel_wavelengths_nm: Sequence[float] | None = None,
    time_increment_s: float | None = None,
) -> Path:
    """Write an image as an OME-Zarr (NGFF 0.5, Zarr v3) store, atomically.

    Parameters
    ----------
    path : str or Path
        Target folder (``.zarr``).
    image : ndarray
        ``(lead..., Y, X)``, stored as float32, chunked by one leading index (time point).
    pixel_size_nm : float
        Level-0 pixel size, nm (written as a µm ``scale`` transform).
    axes : str
        One letter per axis from ``TCZYX`` ending in ``YX``.
    metadata : dict, optional
        SIM parameters and provenance (group attribute ``"scope"``).
    chunks_time : int
        Leading indices per chunk.
    multiscale_levels : int, optional
        Resolution levels (2x mean binning each); default by image size.
    channel_wavelengths_nm : sequence of float, optional
        Each channel's emission wavelength (its label and colour; see :class:`OmeZarrWriter`).
    time_increment_s : float, optional
        Time from one index of the ``T`` axis to the next, seconds.
    """
    image = np.asarray(image)
    writer = OmeZarrWriter(
        path,
        image.shape,
        pixel_size_nm=pixel_size_nm,
        axes=axes,
        metadata=metadata,
        chunks_time=chunks_time,
        multiscale_levels=multiscale_levels,
        channel_wavelengths_nm=channel_wavelengths_nm,
        time_increment_s=time_increment_s,
    )
    try:
        for idx in np.ndindex(*image.shape[:-2]):
            writer.write(idx, image[idx])
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


def write_planes(
    path: str | Path,
    planes: Iterable[tuple[tuple[int, ...], np.ndarray]],
    *,
    fmt: str,
    shape: tuple[int, ...],
    pixel_size_nm: float,
    axes: str,
    metadata: dict[str, Any],
    multiscale_levels: int | None = None,
    channel_wavelengths_nm: Sequence[float] | None = None,
    final_metadata: Callable[[], dict[str, Any]] | None = None,
    before_commit: Callable[[], None] | None = None,
    time_increment_s: float | None = None,
) -> Path:
    """Stream an image, plane by plane in C order, into an OME-Zarr (``fmt="zarr"``) or an
    OME-TIFF (``"tiff"``), atomically.

    Parameters
    ----------
    planes : iterable of (index, plane)
        Each leading index (C order) with its 2D plane.
    channel_wavelengths_nm : sequence of float, optional
        One per index of the ``C`` axis (a single channel's labels an OME-Zarr only).
    final_metadata : callable, optional
        OME-Zarr: the metadata once every plane is written (it replaces ``metadata``; an
        OME-TIFF keeps what it was started with).
    before_commit : callable, optional
        Called once the image is complete, before it is put in place (side-cars).
    time_increment_s : float, optional
        Time from one index of the ``T`` axis to the next, seconds (OME ``TimeIncrement``, the
        NGFF ``t`` scale).
    """
    if fmt == "zarr":
        writer = OmeZarrWriter(
            path,
            shape,
            pixel_size_nm=pixel_size_nm,
            axes=axes,
            metadata=metadata,
            multiscale_levels=multiscale_levels,
            channel_wavelengths_nm=channel_wavelengths_nm,
            time_increment_s=time_increment_s,
        )
        try:
            for index, plane in planes:
                writer.write(index, plane)
            if final_metadata is not None:
                writer.update_metadata(final_metadata())
            if before_commit is not None:
                before_commit()
            return writer.commit()
        except BaseException:
            writer.abort()
            raise
    if fmt != "tiff":
        raise DataFormatError(f"unknown output format {fmt!r}: expected zarr or tiff")
    return write_ome_tiff(
        path,
        (plane for _, plane in planes),
        pixel_size_nm=pixel_size_nm,
        axes=axes,
        metadata=metadata,
        shape=shape,
        before_commit=before_commit,
        channel_wavelengths_nm=channel_wavelengths_nm if "C" in axes.upper() else None,
        time_increment_s=time_increment_s,
    )


# ---------------------------------------------------------------------------------------------
# reading back


def read_image(
    path: str | Path, *, lazy: bool = False
) -> tuple[np.ndarray, float | None, dict[str, Any]]:
    """Read an image written by this module (or any OME-TIFF/OME-Zarr).

    Parameters
    ----------
    lazy : bool
        OME-Zarr: return level 0 as the zarr array (read on indexing) instead of loading it.

    Returns
    -------
    image : ndarray
        Level 0, as stored.
    pixel_size_nm : float or None
    metadata : dict
        The stored SIM parameters/provenance plus ``"axes"`` (and ``"levels"`` for Zarr).
    """
    path = Path(path)
    if path.is_dir():
        return _read_zarr(path, lazy=lazy)
    import tifffile

    from scope.io.raw import unit_to_nm

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        image = series.asarray()
        meta: dict[str, Any] = {"axes": series.axes}
        pixel_size_nm = None
        if tif.is_ome:
            ome = tifffile.xml2dict(tif.ome_metadata)["OME"]
            img = ome["Image"][0] if isinstance(ome["Image"], list) else ome["Image"]
            pixels = img["Pixels"]
            if "PhysicalSizeX" in pixels:
                pixel_size_nm = unit_to_nm(pixels["PhysicalSizeX"], pixels.get("PhysicalSizeXUnit"))
            desc = img.get("Description")
            if isinstance(desc, str) and desc.startswith("{"):
                meta.update(json.loads(desc))
    return image, pixel_size_nm, meta


def _read_zarr(path: Path, *, lazy: bool = False) -> tuple[Any, float | None, dict[str, Any]]:
    import zarr

    from scope.io.raw import unit_to_nm

    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    ome = attrs.get("ome", attrs)
    ms = ome["multiscales"][0]
    names = [a["name"] for a in ms["axes"]]
    ds = ms["datasets"][0]
    scale = next(t["scale"] for t in ds["coordinateTransformations"] if t["type"] == "scale")
    unit = next((a.get("unit") for a in ms["axes"] if a["name"] == "x"), None)
    pixel_size_nm = unit_to_nm(scale[names.index("x")], unit)
    image = group[ds["path"]] if lazy else np.asarray(group[ds["path"]][...])
    meta = dict(attrs.get("scope", {}))
    meta["axes"] = "".join(names).upper()
    meta["levels"] = len(ms["datasets"])
    time_unit = next((a.get("unit") for a in ms["axes"] if a["name"] == "t"), None)
    if time_unit in _SECONDS_PER_UNIT and scale[names.index("t")] > 0:
        meta["time_increment_s"] = float(scale[names.index("t")]) * _SECONDS_PER_UNIT[time_unit]
    if isinstance(ome.get("omero"), dict):
        meta["omero"] = ome["omero"]
    return image, pixel_size_nm, meta


def _zarr_scope_attrs(path: Path) -> dict[str, Any] | None:
    meta_path = path / "zarr.json"
    if not meta_path.is_file():
        return None
    try:
        attrs = json.loads(meta_path.read_text()).get("attributes") or {}
    except (OSError, ValueError):
        return None
    scope = attrs.get("scope")
    return scope if isinstance(scope, dict) else None


def _tiff_description(path: Path) -> dict[str, Any] | None:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.is_ome:
                return None
            ome = tifffile.xml2dict(tif.ome_metadata)["OME"]
    except Exception:  # not a TIFF, or not one we can read: not ours either
        return None
    img = ome.get("Image")
    img = img[0] if isinstance(img, list) else img
    desc = (img or {}).get("Description")
    if isinstance(desc, str) and desc.startswith("{"):
        try:
            doc = json.loads(desc)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None
    return None


def scope_output_kind(path: str | Path) -> str | None:
    """What scope wrote ``path`` as, by the metadata it stored: ``"SIM result"`` (``scope
    reconstruct``, ``scope batch``, the napari writer), ``"widefield image"`` (``scope
    reconstruct --widefield``), or None for anything else — raw stacks, runs of ``scope
    acquire`` (which state their nominal pattern too) and other software's files."""
    path = Path(path)
    if path.is_dir():
        meta = _zarr_scope_attrs(path)
    elif path.suffix.lower() in (".tif", ".tiff", ".btf"):
        meta = _tiff_description(path)
    else:
        return None
    if not meta or "layout" in meta:  # a run of scope acquire states its layout
        return None
    if meta.get("image") == WIDEFIELD_DESCRIPTION:
        return "widefield image"
    if meta.get("scope_kind") == "sim" or "sim_parameters" in meta or "parameters" in meta:
        return "SIM result"
    return None


def iter_planes(image: np.ndarray) -> Iterator[np.ndarray]:
    """The 2D planes of an image in C order (for streaming writers)."""
    for idx in np.ndindex(*image.shape[:-2]):
        yield image[idx]
