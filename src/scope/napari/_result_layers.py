"""The layers the reconstruction widget adds: SIM and widefield results, the spectrum with its
carriers, the modulation map, the repaired camera pixels, and how they follow the raw layer.

Every layer made from a raw layer records it (``metadata["source_layer"]``), so that when the
user corrects the camera pixel size all of them move to the new scale together
(:func:`rescale_from`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from scope.napari._layers import (
    UM,
    frame_axis,
    move_frames_first,
    set_image_scale,
    sim_layer_geometry,
)

log = logging.getLogger(__name__)

#: where a layer lies: ``(scale, translate, units)`` of its axes
Grid = tuple[tuple, tuple, tuple]


def put_image(viewer: Any, name: str, data: np.ndarray, grid: Grid, **new_layer: Any) -> Any:
    """The image layer ``name`` showing ``data`` on ``grid`` (scale, translate, units): updated
    when it exists (keeping what the user set: colormap, visibility, contrast), else added with
    ``new_layer`` options."""
    scale, translate, units = grid
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        layer.scale, layer.translate, layer.units = scale, translate, units
        return layer
    return viewer.add_image(
        data, name=name, scale=scale, translate=translate, units=units, **new_layer
    )


def put_points(viewer: Any, name: str, pts: np.ndarray, grid: Grid, **new_layer: Any) -> Any:
    """The points layer ``name`` (hollow circles, hidden when new), updated or added."""
    scale, translate, units = grid
    if name in viewer.layers:
        points = viewer.layers[name]
        points.data = pts
        points.scale, points.translate, points.units = scale, translate, units
        return points
    points = viewer.add_points(
        pts,
        name=name,
        scale=scale,
        translate=translate,
        units=units,
        face_color="transparent",
        border_width=0.15,
        **new_layer,
    )
    points.visible = False
    return points


def grid_units(raw_layer: Any, ndim: int) -> tuple[str, ...]:
    """Units of a layer of ``ndim`` axes made from ``raw_layer``: its ``(Y, X)`` units (µm
    where the raw layer's scale is in µm; napari's ``pixel`` where it is not, as napari cannot
    draw a scale bar over layers of mixed units)."""
    yx = (UM, UM) if raw_layer is None else tuple(str(u) for u in raw_layer.units[-2:])
    return ("pixel",) * (ndim - 2) + yx


def camera_grid(raw_layer: Any) -> Grid:
    """``(scale, translate, units)`` of the raw layer's ``(Y, X)`` axes (one camera pixel
    each)."""
    if raw_layer is None:
        return (1.0, 1.0), (0.0, 0.0), (UM, UM)
    scale, translate = tuple(raw_layer.scale[-2:]), tuple(raw_layer.translate[-2:])
    return scale, translate, grid_units(raw_layer, 2)


def sim_grid(raw_layer: Any, ndim: int) -> Grid:
    """``(scale, translate, units)`` of a SIM layer of ``ndim`` axes over ``raw_layer``."""
    raw_scale = raw_layer.scale if raw_layer is not None else (1.0, 1.0, 1.0)
    fa = frame_axis(raw_layer) if raw_layer is not None else 0
    scale, translate = sim_layer_geometry(raw_scale, ndim, fa)
    return scale, translate, grid_units(raw_layer, ndim)


#: the percentiles of an image shown as black and full colour (results, live images, and the
#: results the reader opens): a few bright pixels or a ringing edge set no contrast
DISPLAY_PERCENTILES = (0.5, 99.9)


def percentile_limits(image: np.ndarray) -> tuple[float, float]:
    """``contrast_limits`` for ``image``: the :data:`DISPLAY_PERCENTILES` of its finite values,
    by the rule of the video export (:func:`scope.export.render.contrast_limits`: at most a few
    million values looked at; ``high > low`` always).

    Raises
    ------
    DataFormatError
        The image holds no finite value.
    """
    from scope.export.render import contrast_limits

    return contrast_limits(image, *DISPLAY_PERCENTILES)


def result_look(raw_layer: Any, wavelength_nm: float | None, kind: str) -> dict[str, Any]:
    """Colormap and blending of a result: one channel of several (the raw layer is one of a
    file's channels) coloured by its emission wavelength and blended additively, as the reader
    opens a multi-colour result (a composite); else magma (SIM) or grey (widefield)."""
    from scope.optics import emission_colour

    if raw_layer.metadata.get("channel") is not None:
        return {"colormap": emission_colour(wavelength_nm), "blending": "additive"}
    return {"colormap": "magma" if kind == "sim" else "gray"}


def add_results(
    viewer: Any,
    raw_layer: Any,
    image: np.ndarray,
    widefield: np.ndarray | None,
    meta: dict[str, Any],
) -> tuple[Any, Any, bool]:
    """Add (or replace) the SIM layer ``image`` and its widefield layer over ``raw_layer``.

    The raw layer's frames move to its first axis first (:func:`move_frames_first`), so that
    its other axes (time, z) line up with the results'. Returns ``(sim layer, widefield layer
    or None, whether the raw layer's axes moved)``.
    """
    from scope.io.writers import WIDEFIELD_DESCRIPTION

    moved = move_frames_first(raw_layer)
    scale, translate, units = sim_grid(raw_layer, image.ndim)
    base = raw_layer.name.removesuffix(" raw")
    name = f"{base} SIM"
    if name in viewer.layers:
        viewer.layers.remove(name)
    out = viewer.add_image(
        image,
        name=name,
        scale=scale,
        translate=translate,
        units=units,
        metadata=meta,
        contrast_limits=percentile_limits(image),
        **result_look(raw_layer, meta.get("wavelength_nm"), "sim"),
    )
    if widefield is None:
        return out, None, moved
    wf_name = f"{base} widefield"
    if wf_name in viewer.layers:
        viewer.layers.remove(wf_name)
    wf_meta = {
        **meta,
        "scope_kind": "widefield",
        "pixel_size_nm": meta["camera_pixel_size_nm"],
        "image": WIDEFIELD_DESCRIPTION,
    }
    del wf_meta["sim_parameters"], wf_meta["settings"]
    wf_layer = viewer.add_image(
        widefield,
        name=wf_name,
        scale=(*scale[:-2], 2 * scale[-2], 2 * scale[-1]),
        units=units,
        metadata=wf_meta,
        contrast_limits=percentile_limits(widefield),
        **result_look(raw_layer, meta.get("wavelength_nm"), "widefield"),
    )
    layers = viewer.layers  # under the SIM layer: hide SIM to compare
    layers.move(layers.index(wf_layer), layers.index(out))
    layers.selection.active = out
    return out, wf_layer, moved


def rescale_from(viewer: Any, raw_layer: Any, pixel_size_nm: float) -> list[str]:
    """Give ``raw_layer`` camera pixels of ``pixel_size_nm`` at the sample, and every layer
    made from it (SIM on the 2x grid, widefield, maps and marks on the camera grid) the
    matching scale; the names of the layers changed."""
    px_um = pixel_size_nm / 1000.0
    set_image_scale(raw_layer, px_um)
    raw_layer.metadata.update(pixel_size_nm=pixel_size_nm, camera_pixel_size_nm=pixel_size_nm)
    changed = [raw_layer.name]
    for layer in viewer.layers:
        meta = layer.metadata
        if layer is raw_layer or meta.get("source_layer") != raw_layer.name:
            continue
        if meta.get("scope_kind") == "sim":
            set_image_scale(layer, px_um / 2, half_grid=True)
            meta.update(pixel_size_nm=pixel_size_nm / 2, camera_pixel_size_nm=pixel_size_nm)
        else:
            set_image_scale(layer, px_um)
            if meta.get("scope_kind") == "widefield":
                meta.update(pixel_size_nm=pixel_size_nm, camera_pixel_size_nm=pixel_size_nm)
        if isinstance(meta.get("optics"), dict):
            meta["optics"] = {**meta["optics"], "pixel_size_nm": pixel_size_nm}
        changed.append(layer.name)
    log.info("camera pixel %g nm: rescaled %s", pixel_size_nm, changed)
    return changed
