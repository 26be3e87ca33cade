"""napari reader: raw SIM stacks (OME-TIFF/TIFF, MRC, OME-Zarr incl. ``scope acquire`` runs)
and SIM results (OME-TIFF/OME-Zarr written by ``scope reconstruct`` or this plugin).

Raw stacks open as one image layer shaped ``(P, lead..., Y, X)`` (``P`` = the ``angles x
phases`` frames of a set, angle-major, first so that the leading axes line up with those of the
SIM and widefield layers: see :mod:`._layers`) with the camera pixel size at the sample as the
scale (µm, in the layer's ``units``); SIM results open on their 2x grid with half that pixel
size, translated by a quarter of a camera pixel so that they overlay the raw stack (SIM pixel
``(i, j)`` covers a quarter of camera pixel ``(i // 2, j // 2)``). What the file states about
the optics and the pattern goes into ``layer.metadata`` (keys of :data:`META_KEYS`), which the
reconstruction widget reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from scope.napari._layers import AXIS_LABELS, frames_first, frames_first_axes, um_units
from scope.napari._result_layers import percentile_limits

log = logging.getLogger(__name__)

#: layer-metadata keys shared by the reader, the widgets and the writer
META_KEYS = (
    "scope_kind",  # "raw", "sim" or "widefield"
    "pixel_size_nm",  # of this layer's pixels
    "camera_pixel_size_nm",
    "wavelength_nm",
    "na",
    "n_angles",
    "n_phases",
    "offset_adu",
    "sim_parameters",
    "source_path",
)

_SUFFIXES = (".tif", ".tiff", ".mrc", ".dv", ".st", ".zarr")
#: raw stacks up to this size are read into memory at once (faster browsing)
IN_MEMORY_BYTES = 1 << 30

LayerData = tuple[Any, dict[str, Any], str]


def napari_get_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """npe2 reader hook: a reader function when we can open ``path``, else None."""
    paths = [path] if isinstance(path, str | Path) else list(path)
    for p in paths:
        p = Path(p)
        if p.is_dir():
            if not ((p / "zarr.json").exists() or (p / ".zattrs").exists()):
                return None
        elif not p.name.lower().endswith(_SUFFIXES):
            return None
        elif p.suffix.lower() in (".tif", ".tiff") and not _tiff_is_ours(p):
            return None  # a photo or a single image: leave it to other readers
    return read_layers


def _tiff_is_ours(path: Path) -> bool:
    """A grey-level stack of frames (raw SIM) or a SIM result, from the header only."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            rgb = series.keyframe.photometric == tifffile.PHOTOMETRIC.RGB
            frames = len(series.shape) >= 3 and not rgb
    except Exception:
        return False
    from scope.io.writers import scope_output_kind

    return frames or scope_output_kind(path) is not None


def read_layers(path: str | list[str]) -> list[LayerData]:
    """Layer data tuples for each path (see the module docstring)."""
    from scope.io.writers import scope_output_kind

    paths = [path] if isinstance(path, str | Path) else list(path)
    out: list[LayerData] = []
    for p in paths:
        p = Path(p)
        kind = scope_output_kind(p)
        if kind == "SIM result":
            out.extend(read_sim_result(p))
        elif kind == "widefield image":
            out.extend(read_widefield(p))
        else:
            out.extend(read_raw(p))
    return out


def _contrast(meta: dict[str, Any], channel: int, image: np.ndarray) -> dict[str, Any]:
    """``contrast_limits`` of a result: the display window the file states for ``channel``
    (OME-Zarr ``omero``, as scope writes it), else those the reconstruction widget sets for
    ``image`` (the channel's data; :func:`~scope.napari._result_layers.percentile_limits`), so
    that a few bright pixels or a ringing edge do not set the contrast (napari's own: the full
    range, which it also keeps for an image without a finite value)."""
    from scope.errors import DataFormatError

    channels = (meta.get("omero") or {}).get("channels") or []
    w = (channels[channel].get("window") or {}) if channel < len(channels) else {}
    start, end = w.get("start"), w.get("end")
    if not (isinstance(start, int | float) and isinstance(end, int | float) and end > start):
        try:
            start, end = percentile_limits(image)
        except DataFormatError:
            return {}
    return {"contrast_limits": (float(start), float(end))}


def _scales(pixel_size_nm: float | None, ndim: int) -> tuple[float, ...]:
    px_um = (pixel_size_nm or 1000.0) / 1000.0
    return (1.0,) * (ndim - 2) + (px_um, px_um)


def _geometry(pixel_size_nm: float | None, ndim: int) -> dict[str, Any]:
    """``scale`` and ``units`` of a layer with ``pixel_size_nm`` pixels (µm; one pixel where
    the file states no pixel size: the reconstruction widget asks for it)."""
    if not pixel_size_nm:
        return {"scale": (1.0,) * ndim, "units": ("pixel",) * ndim}
    return {"scale": _scales(pixel_size_nm, ndim), "units": um_units(ndim)}


def read_raw(path: Path) -> list[LayerData]:
    """A raw SIM stack as an image layer (lazy above :data:`IN_MEMORY_BYTES`); a stack of
    several colours as one layer per channel (napari's way), each with its own emission
    wavelength, so that each is reconstructed with its own pattern and optics."""
    from scope.io.raw import DEFAULT_N_ANGLES, DEFAULT_N_PHASES, open_raw

    stack = open_raw(path)  # sets as the file's axes give them, or as the run states them
    n_angles, n_phases = stack.pattern_shape or (None, None)
    n_default = DEFAULT_N_ANGLES * DEFAULT_N_PHASES
    lead = stack.shape[:-2]
    # a flat time series, or the frames on another axis (a hyperstack's Z): sets of 3 x 3
    # frames, as scope reconstruct reads them
    if (
        n_angles is None
        and lead[-1] != n_default
        and (lead[-1] % n_default == 0 or n_default in lead)
    ):
        stack.close()
        stack = open_raw(path, n_frames_per_set=n_default)
    if n_angles is None and stack.n_frames_per_set == n_default:
        n_angles, n_phases = DEFAULT_N_ANGLES, DEFAULT_N_PHASES
    nbytes = int(np.prod(stack.shape)) * stack.dtype.itemsize
    data: Any = np.asarray(stack.data[...]) if nbytes <= IN_MEMORY_BYTES else stack.data
    if nbytes <= IN_MEMORY_BYTES:
        stack.close()
    meta = stack.metadata.get("acquisition") or {}
    offset = None
    with_offset = meta.get("camera") or {}
    if isinstance(with_offset, dict):
        offset = with_offset.get("offset_adu")
    metadata: dict[str, Any] = {
        "scope_kind": "raw",
        "pixel_size_nm": stack.pixel_size_nm,
        "camera_pixel_size_nm": stack.pixel_size_nm,
        "wavelength_nm": stack.wavelength_nm,
        "na": stack.na,
        "n_angles": n_angles,
        "n_phases": n_phases,
        "offset_adu": offset,
        "sim_parameters": meta.get("sim_parameters"),
        "source_path": str(path),
        "axes": stack.axes,
        "file": {k: v for k, v in stack.metadata.items() if k != "acquisition"},
        "acquisition": meta,
    }
    if stack.pixel_size_nm is None:
        log.warning(
            "%s states no pixel size: shown in camera pixels; enter the camera pixel size at "
            "the sample in the SIM reconstruction widget",
            path,
        )

    def layer(data: Any, axes: str, name: str, metadata: dict[str, Any]) -> LayerData:
        axes = frames_first_axes(axes)  # the frames first: t, z line up with SIM's
        kwargs = {
            "name": name,
            **_geometry(stack.pixel_size_nm, len(axes)),
            "metadata": {**metadata, "axes": axes},
            "axis_labels": tuple(AXIS_LABELS[a] for a in axes),
            "colormap": "gray",
        }
        return frames_first(data), kwargs, "image"

    if stack.n_channels == 1:
        return [layer(data, stack.axes, f"{path.name} raw", metadata)]
    axes = stack.axes.replace("C", "")
    layers = []
    for c in range(stack.n_channels):
        wavelength = stack.channel_wavelength_nm(c)
        if isinstance(data, np.ndarray):  # read whole: cut out the channel
            frames = np.take(data, c, axis=stack.axes.index("C"))
        else:
            frames = stack.channel_data(c)
        channel_meta = {**metadata, "axes": axes, "channel": c, "wavelength_nm": wavelength}
        name = f"{path.name} c{c}" + (f" ({wavelength:g} nm)" if wavelength else "") + " raw"
        layers.append(layer(frames, axes, name, channel_meta))
    return layers


def _result_axes(meta: dict[str, Any], ndim: int) -> str:
    """The axis letters of a result as read (an OME-TIFF's ``Q`` of one plane dropped)."""
    axes = str(meta.get("axes", "")).upper()
    if len(axes) == ndim + 1 and axes.startswith("Q"):
        axes = axes[1:]
    return axes


def _channel_parameters(meta: dict[str, Any], channel: int) -> dict[str, Any] | None:
    """Channel ``channel``'s pattern parameters where a result states them (``scope
    reconstruct``: per channel; ``scope batch``: each channel's first parameter epoch)."""
    channels = meta.get("channels") or []
    if channel < len(channels) and channels[channel].get("sim_parameters"):
        return channels[channel]["sim_parameters"]
    epochs = [e for e in meta.get("parameter_epochs") or [] if e.get("channel") == channel]
    return {"angles": epochs[0]["angles"]} if epochs else None


def _split_channels(
    image: Any, meta: dict[str, Any], kwargs: dict[str, Any], *, single_colormap: str
) -> list[LayerData]:
    """A result as one layer, or one of several colours as one layer per channel, each
    coloured by its emission wavelength and blended additively (a composite)."""
    from scope.optics import emission_colour

    metadata = kwargs["metadata"]
    axes = metadata["axes"]
    if "C" not in axes or image.shape[axes.index("C")] == 1:
        contrast = _contrast(meta, 0, image)
        return [(image, {**kwargs, "colormap": single_colormap, **contrast}, "image")]
    axis = axes.index("C")
    channels = meta.get("channels") or []  # scope reconstruct: each channel's optics, pattern
    waves = meta.get("channel_wavelengths_nm") or [c.get("wavelength_nm") for c in channels]
    layers = []
    for c in range(image.shape[axis]):
        wavelength = waves[c] if c < len(waves) else None
        channel_meta = {**metadata, "axes": axes.replace("C", ""), "channel": c}
        channel_meta["wavelength_nm"] = wavelength or metadata["wavelength_nm"]
        params = _channel_parameters(meta, c)
        if params is not None and metadata.get("scope_kind") == "sim":
            channel_meta["sim_parameters"] = params
        nm = f" ({wavelength:g} nm)" if wavelength else ""
        frames = np.take(image, c, axis=axis)
        layer_kwargs = {
            **kwargs,
            "name": f"{kwargs['name']} c{c}{nm}",
            "metadata": channel_meta,
            "colormap": emission_colour(wavelength),  # as it looks
            "blending": "additive",
            **{k: tuple(v for i, v in enumerate(kwargs[k]) if i != axis) for k in _PER_AXIS},
            **_contrast(meta, c, frames),
        }
        layers.append((frames, layer_kwargs, "image"))
    return layers


#: layer options with one value per axis (a channel layer has the C axis taken out)
_PER_AXIS = ("scale", "translate", "units")


def read_widefield(path: Path) -> list[LayerData]:
    """A widefield image of ``scope reconstruct --widefield`` on the camera grid (it overlays
    the raw stack and, at half its pixel size, the SIM result); one of several colours as one
    layer per channel, as :func:`read_sim_result` opens the SIM result."""
    from scope.io.writers import read_image

    image, pixel_size_nm, meta = read_image(path)
    image = np.asarray(image, np.float32)
    axes = _result_axes(meta, image.ndim)
    optics = meta.get("optics") or {}
    metadata = {
        "scope_kind": "widefield",
        "pixel_size_nm": pixel_size_nm,
        "wavelength_nm": optics.get("wavelength_nm"),
        "na": optics.get("na"),
        "source_path": str(path),
        "axes": axes,
        "file": meta,
    }
    geometry = _geometry(pixel_size_nm, image.ndim)
    kwargs = {
        "name": path.name,
        **geometry,
        "translate": (0.0,) * image.ndim,
        "metadata": metadata,
    }
    return _split_channels(image, meta, kwargs, single_colormap="gray")


def read_sim_result(path: Path) -> list[LayerData]:
    """A reconstructed SIM image on the 2x grid, positioned to overlay its raw stack; one of
    several colours as one layer per channel, each coloured by its emission wavelength and
    blended additively (a composite)."""
    from scope.io.writers import read_image

    image, pixel_size_nm, meta = read_image(path)
    image = np.asarray(image, np.float32)
    axes = _result_axes(meta, image.ndim)
    px_nm = pixel_size_nm or meta.get("pixel_size_nm")
    geometry = _geometry(px_nm, image.ndim)
    scale = geometry["scale"]
    translate = (0.0,) * (image.ndim - 2) + (-scale[-2] / 2, -scale[-1] / 2)
    optics = meta.get("optics") or {}
    metadata = {
        "scope_kind": "sim",
        "pixel_size_nm": px_nm,
        "camera_pixel_size_nm": 2 * px_nm if px_nm else None,
        "wavelength_nm": optics.get("wavelength_nm"),
        "na": optics.get("na"),
        "sim_parameters": meta.get("sim_parameters") or meta.get("parameters"),
        "source_path": str(path),
        "axes": axes,
        "file": meta,
    }
    kwargs = {"name": path.name, **geometry, "translate": translate, "metadata": metadata}
    return _split_channels(image, meta, kwargs, single_colormap="magma")
