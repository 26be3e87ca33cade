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
from typing import Any

import numpy as np

from scope.errors import DataFormatError

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
    lead = image.ndim - 2
    if lead > 3:
        raise DataFormatError(f"cannot write a {image.ndim}-D image: at most T, C, Z + Y, X")
    axes = str(lmeta.get("axes") or "")
    if len(axes) != image.ndim or not set(axes) <= set("TCZYX"):
        axes = "TCZ"[:lead] + "YX"
    stored = {
        k: _jsonable(v)
        for k, v in lmeta.items()
        if k not in ("file", "acquisition") and v is not None
    }
    stored["scope_kind"] = lmeta.get("scope_kind", "sim")
    stored["layer_name"] = meta.get("name")
    return image, float(px), axes, stored


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
