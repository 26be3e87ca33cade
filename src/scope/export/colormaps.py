"""Colour lookup tables for fluorescence images, written here (no matplotlib).

Two families:

* **perceptual** maps (``magma``, ``inferno``, ``viridis``): a handful of anchor colours
  joined by straight lines in the OKLab colour space, whose lightness rises monotonically, so
  equal steps in intensity look like equal steps in brightness. The anchors are the well-known
  nine-step palettes of these maps (van der Walt & Smith, 2015, released into the public
  domain); the tables between the anchors are computed here.
* **fluorophore-like** maps (``green`` for GFP, ``magenta``, ``cyan``, ``red``, ``yellow``,
  ``blue``, ``grey``): black to a full-intensity colour, linear in the encoded sRGB value as in
  ImageJ/Fiji's single-colour LUTs, and ``hot`` (black, red, yellow, white). Green and magenta
  together stay distinguishable for red-green colour-blind viewers.

Every table is ``(256, 3) uint8`` sRGB.

References
----------
B. Ottosson, "A perceptual color space for image processing" (OKLab), 2020,
https://bottosson.github.io/posts/oklab/
S. van der Walt, N. Smith, "A better default colormap for Matplotlib", SciPy 2015.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from scope.errors import ConfigurationError

_ANCHORS: dict[str, tuple[str, ...]] = {
    "magma": (
        "000004",
        "1c1044",
        "4f127b",
        "812581",
        "b5367a",
        "e55064",
        "fb8761",
        "fec287",
        "fcfdbf",
    ),
    "inferno": (
        "000004",
        "1f0c48",
        "550f6d",
        "88226a",
        "ba3655",
        "e35933",
        "f98e09",
        "fac228",
        "fcffa4",
    ),
    "viridis": (
        "440154",
        "472d7b",
        "3b528b",
        "2c728e",
        "21918c",
        "28ae80",
        "5ec962",
        "addc30",
        "fde725",
    ),
}

_SINGLE_HUE: dict[str, tuple[float, float, float]] = {
    "grey": (1.0, 1.0, 1.0),
    "green": (0.0, 1.0, 0.0),
    "magenta": (1.0, 0.0, 1.0),
    "cyan": (0.0, 1.0, 1.0),
    "red": (1.0, 0.0, 0.0),
    "yellow": (1.0, 1.0, 0.0),
    "blue": (0.0, 0.35, 1.0),
}

_ALIASES = {"gray": "grey", "gfp": "green", "rfp": "magenta", "fire": "hot"}

#: every colormap name accepted (aliases ``gray``, ``gfp``, ``rfp``, ``fire`` also work)
COLORMAPS: tuple[str, ...] = (*_ANCHORS, "hot", *_SINGLE_HUE)
#: colours given to channels of a multi-channel overlay, in order
CHANNEL_COLORMAPS: tuple[str, ...] = ("green", "magenta", "cyan", "yellow", "red", "blue")


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


# OKLab matrices (Ottosson 2020)
_M1 = np.array(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ]
)
_M2 = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ]
)


def srgb_to_oklab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1], shape ``(..., 3)``, to OKLab ``(L, a, b)``."""
    lms = _srgb_to_linear(np.asarray(rgb, dtype=np.float64)) @ _M1.T
    return np.cbrt(lms) @ _M2.T


def oklab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """OKLab ``(..., 3)`` to sRGB in [0, 1] (out-of-gamut values clipped)."""
    lms = (np.asarray(lab, dtype=np.float64) @ np.linalg.inv(_M2).T) ** 3
    return _linear_to_srgb(lms @ np.linalg.inv(_M1).T)


def _from_anchors(hexes: tuple[str, ...] | list[str]) -> np.ndarray:
    rgb = np.array([[int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)] for h in hexes])
    lab = srgb_to_oklab(rgb)
    x = np.linspace(0.0, 1.0, len(hexes))
    t = np.linspace(0.0, 1.0, 256)
    lab_t = np.stack([np.interp(t, x, lab[:, k]) for k in range(3)], axis=-1)
    return np.round(oklab_to_srgb(lab_t) * 255).astype(np.uint8)


def _hot() -> np.ndarray:
    t = np.linspace(0.0, 1.0, 256)
    r = np.clip(3 * t, 0, 1)
    g = np.clip(3 * t - 1, 0, 1)
    b = np.clip(3 * t - 2, 0, 1)
    return np.round(np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)


def canonical_name(name: str) -> str:
    """The canonical colormap name for ``name`` (aliases resolved).

    Raises
    ------
    ConfigurationError
        For an unknown name; the message lists the known ones.
    """
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in COLORMAPS:
        raise ConfigurationError(
            f"unknown colormap {name!r}; expected one of {', '.join(COLORMAPS)}"
        )
    return key


@cache
def _lut(name: str) -> np.ndarray:
    if name in _ANCHORS:
        lut = _from_anchors(_ANCHORS[name])
    elif name == "hot":
        lut = _hot()
    else:
        ramp = np.linspace(0.0, 1.0, 256)[:, None] * np.array(_SINGLE_HUE[name])[None, :]
        lut = np.round(ramp * 255).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def get_lut(name: str) -> np.ndarray:
    """The ``(256, 3) uint8`` sRGB table of colormap ``name`` (read-only).

    Examples
    --------
    >>> get_lut("magma").shape
    (256, 3)
    """
    return _lut(canonical_name(name))


def apply_colormap(normalised: np.ndarray, name: str) -> np.ndarray:
    """Map values in [0, 1] (clipped) to ``uint8`` RGB with colormap ``name``.

    Parameters
    ----------
    normalised : ndarray
        Any shape; values outside [0, 1] are clipped.
    name : str
        A name from :data:`COLORMAPS`.

    Returns
    -------
    ndarray
        ``normalised.shape + (3,)``, ``uint8``.
    """
    idx = np.clip(np.asarray(normalised, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return get_lut(name)[idx]
