"""napari writers: a SIM image layer as OME-TIFF or OME-Zarr, with its metadata.

The pixel size comes from ``layer.metadata["pixel_size_nm"]`` (set by the reader and the
reconstruction widget), else from the layer's scale (µm). The optics, the pattern parameters,
the reconstruction settings and the provenance in the layer's metadata are stored with the
image (OME Image Description / the group attribute ``scope``), so reading the file back gives
the same layer (scale, position and metadata).
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from scope.errors import DataFormatError
from scope.io.writers import WIDEFIELD_DESCRIPTION, beside

log = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [_jsonable(v) for v in value]
        if hasattr(value, "model_dump"):
            return value.model_dump()
        if hasattr(value, "to_dict"):
            return value.to_dict()
        if isinstance(value, np.generic):
            return value.item()
        return str(value)


def layer_to_file_args(data: Any, meta: dict[str, Any]) -> tuple[np.ndarray, float, str, dict]:
    """``(image float32, pixel_size_nm, axes, metadata)`` for the scope writers."""
    image = np.asarray(data[0] if meta.get("multiscale") else data, np.float32)
    lmeta = dict(meta.get("metadata") or {})
    px = lmeta.get("pixel_size_nm")
    if not px:
        scale = meta.get("scale")
        px = float(scale[-1]) * 1000.0 if scale is not None else None
    if not px or not math.isfinite(px) or px <= 0:
        raise DataFormatError(
            "the layer states no pixel size: set layer.metadata['pixel_size_nm'] or its scale"
        )
    axes = str(lmeta.get("axes") or "")
    if len(axes) == image.ndim and "P" in axes:  # a raw layer, its frames first (see _layers)
        image, axes = _frames_as_z(image, axes)
    lead = image.ndim - 2
    if lead > 3:
        raise DataFormatError(f"cannot write a {image.ndim}-D image: at most T, C, Z + Y, X")
    if len(axes) != image.ndim or not set(axes) <= set("TCZYX"):
        axes = "TCZ"[:lead] + "YX"
    stored = {
        k: _jsonable(v)
        for k, v in lmeta.items()
        if k not in ("file", "acquisition") and v is not None
    }
    stored["scope_kind"] = lmeta.get("scope_kind", "sim")
    if stored["scope_kind"] == "widefield":  # what the reader knows a widefield image by (a
        # layer the reader opened keeps it in "file", which is not stored again)
        stored.setdefault("image", WIDEFIELD_DESCRIPTION)
    stored["layer_name"] = meta.get("name")
    return image, float(px), axes, stored


def _frames_as_z(image: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    """A raw layer's frames (``P``) back in front of ``(Y, X)`` as the ``Z`` of an OME file,
    where the reader finds them (``(P, T, Y, X)`` -> ``(T, Z, Y, X)``)."""
    if "Z" in axes:
        raise DataFormatError(
            f"a raw layer with axes {axes} (z and the angle·phase frames) cannot be written "
            "as OME (it has one Z axis): save it with napari's own TIFF writer"
        )
    p = axes.index("P")
    image = np.moveaxis(image, p, -3)
    axes = axes[:p] + axes[p + 1 : -2] + "Z" + axes[-2:]
    return image, axes


def write_ome_tiff_layer(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer: OME-TIFF (float32, physical pixel size, metadata)."""
    from scope.io.writers import write_ome_tiff

    image, px, axes, stored = layer_to_file_args(data, meta)
    if not path.lower().endswith((".tif", ".tiff")):
        path = path + ".ome.tif"
    write_ome_tiff(path, image, pixel_size_nm=px, axes=axes, metadata=stored)
    log.info("wrote %s (%s, %.2f nm pixels)", path, image.shape, px)
    return [path]


def write_ome_zarr_layer(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer: OME-Zarr (NGFF 0.5, multiscale, metadata)."""
    from scope.io.writers import write_ome_zarr

    image, px, axes, stored = layer_to_file_args(data, meta)
    if not path.lower().endswith(".zarr"):
        path = path + ".zarr"
    wavelength = stored.get("wavelength_nm")  # the layer's one channel: its label
    waves = [wavelength] if "C" not in axes and isinstance(wavelength, int | float) else None
    write_ome_zarr(
        path, image, pixel_size_nm=px, axes=axes, metadata=stored, channel_wavelengths_nm=waves
    )
    log.info("wrote %s (%s, %.2f nm pixels)", path, image.shape, px)
    return [path]


def _file_names(path: Path, layers: list[tuple[Any, dict, str]], extension: str) -> list[Path]:
    """Where each layer of a multi-layer save goes: the first SIM layer (else the first layer)
    to ``path``, a widefield layer beside it as ``NAME.widefield``, every other layer as
    ``NAME.<layer name>`` (as ``scope reconstruct`` names the widefield image of a result)."""
    kinds = [(meta.get("metadata") or {}).get("scope_kind") for _, meta, _ in layers]
    main = kinds.index("sim") if "sim" in kinds else 0
    widefields = [i for i, k in enumerate(kinds) if k == "widefield" and i != main]
    names: list[Path] = []
    for i, (_, meta, _) in enumerate(layers):
        if i == main:
            names.append(path)
        elif i in widefields and len(widefields) == 1:
            names.append(beside(path, ".widefield" + extension))
        else:
            slug = re.sub(r"[^A-Za-z0-9_-]+", "_", str(meta.get("name") or i)).strip("_")
            names.append(beside(path, f".{slug}{extension}"))
    return names


def _write_layers(path: str, layers: list[tuple[Any, dict, str]], extension: str) -> list[str]:
    """Each layer of a multi-layer save with the single-layer writer of ``extension``."""
    write = write_ome_zarr_layer if extension == ".zarr" else write_ome_tiff_layer
    target = Path(path)
    if not target.name.lower().endswith((".tif", ".tiff", ".zarr")):
        target = target.with_name(target.name + extension)
    written: list[str] = []
    for name, (data, meta, _) in zip(_file_names(target, layers, extension), layers, strict=True):
        written += write(str(name), data, meta)
    return written


def write_ome_tiff_layers(path: str, layers: list[tuple[Any, dict, str]]) -> list[str]:
    """npe2 multi-layer writer: a SIM layer and its widefield layer (or several) as OME-TIFFs,
    the SIM one to ``path``, the widefield one beside it (``NAME.widefield.ome.tif``)."""
    return _write_layers(path, layers, ".ome.tif")


def write_ome_zarr_layers(path: str, layers: list[tuple[Any, dict, str]]) -> list[str]:
    """npe2 multi-layer writer: as :func:`write_ome_tiff_layers`, as OME-Zarr stores."""
    return _write_layers(path, layers, ".zarr")
