"""Where scope's layers sit in napari's world: axis order, physical units and geometry.

napari lines up the axes of layers from the last one backwards. A raw stack ``(T, P, Y, X)``
(``P`` = the ``angles x phases`` frames of a set) beside its SIM result ``(T, Y, X)`` would put
the result's ``T`` on the raw stack's ``P``: the *t* slider would move nothing and the
*angle·phase* slider would step through time. scope's raw layers therefore hold their frames on
the first axis, ``(P, T, Y, X)``: ``T`` lines up with the ``T`` of the SIM and widefield layers
made from them, so the *t* slider moves all three. :func:`frames_first` gives that view
without copying (or reading) the frames; :func:`frame_axis` finds the frames of any layer.

Every layer whose scale is in µm says so (``units``), so napari's scale bar reads µm.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: napari's name of the frames axis of a raw layer
FRAME_LABEL = "angle·phase"
#: the unit of the image axes of scope's layers
UM = "µm"
#: axis letters as napari labels them
AXIS_LABELS = {"T": "t", "Z": "z", "C": "c", "P": FRAME_LABEL, "Y": "y", "X": "x"}


def um_units(ndim: int) -> tuple[str, ...]:
    """Units of a layer of ``ndim`` axes whose ``(Y, X)`` scale is in µm."""
    return ("pixel",) * (ndim - 2) + (UM, UM)


def adopt_um(layer: Any, pixel_size_nm: float | None) -> bool:
    """Give a layer whose ``(Y, X)`` scale is its stated pixel size in µm (napari's unit-less
    scale, as microscopy readers use it) µm units, so the scale bar reads µm; True when it
    changed."""
    if not pixel_size_nm or str(layer.units[-1]) != "pixel":
        return False
    if not math.isclose(float(layer.scale[-1]) * 1000.0, pixel_size_nm, rel_tol=1e-6):
        return False
    layer.units = (*(str(u) for u in layer.units[:-2]), UM, UM)
    return True


def camera_pixel_size_nm(layer: Any) -> float | None:
    """The camera pixel size at the sample (nm) a raw layer states: its metadata, else its
    scale in its unit (napari's unit-less scale taken as µm, except the default of 1); None
    where it states none."""
    m = layer.metadata
    px = m.get("camera_pixel_size_nm") or m.get("pixel_size_nm")
    if px:
        return float(px)
    scale = float(layer.scale[-1])
    unit = layer.units[-1]
    if str(unit) != "pixel":
        try:
            return float((scale * unit).to("nanometer").magnitude)
        except Exception:  # not a length
            return None
    return scale * 1000.0 if scale != 1.0 else None


def frame_axis(layer: Any) -> int:
    """The axis of ``layer`` holding the frames of a SIM set: the ``P`` of its
    ``metadata["axes"]``, else the axis labelled *angle·phase*, else the third from last."""
    axes = str(layer.metadata.get("axes") or "")
    if len(axes) == layer.ndim and "P" in axes:
        return axes.index("P")
    labels = tuple(getattr(layer, "axis_labels", ()) or ())
    if FRAME_LABEL in labels:
        return labels.index(FRAME_LABEL)
    return layer.ndim - 3


def lead_axes(layer: Any) -> list[int]:
    """The axes of ``layer`` in front of ``(Y, X)`` other than its frames (time, z ...)."""
    fa = frame_axis(layer)
    return [i for i in range(layer.ndim - 2) if i != fa]


def _is_int(key: Any) -> bool:
    return isinstance(key, int | np.integer)


def _full_key(key: Any, ndim: int) -> tuple:
    """``key`` as one entry per axis (``Ellipsis`` expanded, missing axes whole)."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        at = next(i for i, k in enumerate(key) if k is Ellipsis)
        fill = (slice(None),) * (ndim - len(key) + 1)
        key = key[:at] + fill + key[at + 1 :]
    return key + (slice(None),) * (ndim - len(key))


class FramesFirst:
    """A ``(lead..., P, Y, X)`` array-like seen as ``(P, lead..., Y, X)``, read on indexing.

    Indexing reorders the key and the result, so a lazy source (frames read from the file as
    they are shown) stays lazy.

    Parameters
    ----------
    source : array-like
        Indexable with integers and slices, with ``shape`` and ``dtype``.

    Examples
    --------
    >>> a = np.arange(2 * 9 * 4 * 4).reshape(2, 9, 4, 4)
    >>> FramesFirst(a)[3, 1].tolist() == a[1, 3].tolist()
    True
    """

    def __init__(self, source: Any) -> None:
        self.source = source
        shape = tuple(int(s) for s in source.shape)
        self.shape = (shape[-3], *shape[:-3], *shape[-2:])
        self.dtype = np.dtype(source.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        frames, *lead, ky, kx = _full_key(key, self.ndim)
        out = np.asarray(self.source[(*lead, frames, ky, kx)])
        kept_lead = sum(not _is_int(k) for k in lead)
        if not _is_int(frames) and kept_lead:
            out = np.moveaxis(out, kept_lead, 0)
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out.astype(dtype) if dtype is not None else out

    def __repr__(self) -> str:
        return f"FramesFirst(shape={self.shape}, dtype={self.dtype})"


def frames_first(data: Any) -> Any:
    """``(lead..., P, Y, X)`` frames as ``(P, lead..., Y, X)``: a view of a numpy array, a
    :class:`FramesFirst` over anything else; a single set ``(P, Y, X)`` as it is."""
    if data.ndim <= 3:
        return data
    if isinstance(data, np.ndarray):
        return np.moveaxis(data, -3, 0)
    return FramesFirst(data)


def frames_first_axes(axes: str) -> str:
    """Axis letters of :func:`frames_first`'s view (``"TPYX"`` -> ``"PTYX"``)."""
    return axes if len(axes) <= 3 else axes[-3] + axes[:-3] + axes[-2:]


def move_frames_first(layer: Any) -> bool:
    """Put the frames of a raw layer on its first axis (in place, without copying), so that
    its other axes line up with those of the SIM and widefield layers made from it; True when
    the layer changed."""
    fa = frame_axis(layer)
    if layer.ndim <= 3 or fa == 0:
        return False
    data = layer.data
    if isinstance(data, np.ndarray):
        moved = np.moveaxis(data, fa, 0)
    elif fa == layer.ndim - 3:
        moved = FramesFirst(data)
    else:
        log.info("layer %r: frames on axis %d of a lazy array stay there", layer.name, fa)
        return False
    order = [fa, *(i for i in range(layer.ndim) if i != fa)]
    scale, translate = np.asarray(layer.scale), np.asarray(layer.translate)
    labels, units = tuple(layer.axis_labels), tuple(layer.units)
    layer.data = moved
    layer.scale, layer.translate = scale[order], translate[order]
    layer.axis_labels = tuple(labels[i] for i in order)
    layer.units = tuple(units[i] for i in order)
    axes = str(layer.metadata.get("axes") or "")
    if len(axes) != layer.ndim or "P" not in axes:
        others = iter("TCZ"[: layer.ndim - 3])
        axes = "".join("P" if i == fa else next(others) for i in range(layer.ndim - 2)) + "YX"
    layer.metadata["axes"] = "".join(axes[i] for i in order)
    if all(label.lstrip("-").isdigit() for label in labels):  # napari's defaults: name them
        layer.axis_labels = tuple(AXIS_LABELS[a] for a in layer.metadata["axes"])
    return True


def sim_layer_geometry(
    raw_layer_scale: Any, ndim_out: int, frames_at: int = -3
) -> tuple[tuple, tuple]:
    """(scale, translate) of a SIM layer over a raw layer with ``raw_layer_scale`` (Y, X last,
    its frames on axis ``frames_at``).

    SIM pixel ``(i, j)`` covers a quarter of camera pixel ``(i // 2, j // 2)``: half the pixel
    size, and the centre of SIM pixel 0 sits a quarter of a camera pixel before the centre of
    camera pixel 0. Its leading axes take the scale of the raw layer's axes other than the
    frames.
    """
    n = len(raw_layer_scale)
    dy, dx = float(raw_layer_scale[-2]), float(raw_layer_scale[-1])
    fa = frames_at % n if n >= 3 else -1
    lead = [float(s) for i, s in enumerate(raw_layer_scale[:-2]) if i != fa]
    lead = lead[len(lead) - (ndim_out - 2) :] if ndim_out > 2 else []
    lead = [1.0] * (ndim_out - 2 - len(lead)) + lead
    scale = (*lead, dy / 2, dx / 2)
    translate = (0.0,) * (ndim_out - 2) + (-dy / 4, -dx / 4)
    return scale, translate


def set_image_scale(layer: Any, pixel_um: float, *, half_grid: bool = False) -> None:
    """Give ``layer``'s ``(Y, X)`` axes ``pixel_um`` µm pixels (in µm units); ``half_grid``: a
    SIM layer on the 2x grid of camera pixels of ``2 * pixel_um``, placed to overlay them."""
    scale = np.array(layer.scale, float)
    translate = np.array(layer.translate, float)
    scale[-2:] = pixel_um
    if half_grid:
        translate[-2:] = -pixel_um / 2
    layer.scale, layer.translate = scale, translate
    layer.units = um_units(layer.ndim)
