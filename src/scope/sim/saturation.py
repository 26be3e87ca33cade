"""Saturated camera pixels in raw SIM frames: where the pattern is clipped.

A pixel at the camera's full scale recorded less light than reached it. The orders no longer
separate there, so bright structures lose their brightness and their SIM detail. Measured on
the simulated acceptance case (400 photons peak, values clipped at a level that a given share of
them reach; error against the ideal-SIM target after a gain/offset fit): 0.1 % of the raw
values clipped 0.104 -> 0.108, 0.5 % -> 0.13, 2 % -> 0.18, 5 % -> 0.25. With the pattern near
the detection cutoff the raw frames are barely modulated, so a pixel clipped in one frame of a
set is clipped in nearly all of them: that light is lost and cannot be recovered from the
other frames (fitting each pixel's unclipped frames changes the error by less than 0.002). The
cure is less light or a shorter exposure; this module finds the clipping and says so.

A camera's full scale is ``2**bits - 1``: from its GenICam pixel format when the file says
(``Mono12`` -> 4095), else from the data type. Cameras that deliver 10, 12 or 14-bit values in
16-bit words are recognised by values piling up at exactly 1023, 4095 or 16383. Floating-point
data have no full scale unless one is given.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: full scales of 10, 12 and 14-bit cameras, whose values often come in 16-bit words
NARROW_FULL_SCALES = (1023, 4095, 16383)

#: share of the raw values at full scale from which the reconstruction warns (a few hot
#: pixels of an sCMOS sensor stay below it: 24 values of a 9 x 512 x 512 set)
WARN_FRACTION = 1e-5

#: values that must sit exactly at 1023, 4095 or 16383 in 16-bit data (and at least this share
#: of a set's values) before that level is taken as the camera's full scale
MIN_PILE_UP = 10


def full_scale_adu(dtype: Any, pixel_format: str | None = None) -> float | None:
    """The camera's full scale in ADU, or None when it cannot be known.

    Parameters
    ----------
    dtype : numpy dtype
        The raw data's type: ``uint8`` -> 255, ``uint16`` -> 65535 (unless ``pixel_format``
        says fewer bits); floating point -> None.
    pixel_format : str, optional
        A GenICam pixel format name such as ``"Mono12"`` or ``"Mono10p"``.
    """
    if pixel_format:
        match = re.fullmatch(r"Mono(\d+)\w*", str(pixel_format))
        if match and 1 <= int(match.group(1)) <= 32:
            return float(2 ** int(match.group(1)) - 1)
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        return float(np.iinfo(dt).max)
    return None


def camera_full_scale(pixel_format: Any) -> float | None:
    """The full scale of a camera's current pixel format (a
    :class:`~scope.devices.camera.PixelFormat`, or its name; 16-bit words when the format does
    not say its type)."""
    return full_scale_adu(getattr(pixel_format, "dtype", np.uint16), str(pixel_format))


def camera_pixel_format(metadata: dict[str, Any]) -> str | None:
    """The pixel format a ``scope acquire`` run recorded (``RawStack.metadata``), if any."""
    run = metadata.get("acquisition")
    camera = run.get("camera") if isinstance(run, dict) else None
    fmt = camera.get("pixel_format") if isinstance(camera, dict) else None
    return str(fmt) if fmt else None


@dataclass
class SaturationCounter:
    """Counts raw values at the camera's full scale, set by set.

    Parameters
    ----------
    level_adu : float, optional
        The full scale (values at or above it count). None: taken from ``dtype`` and
        ``pixel_format`` (:func:`full_scale_adu`).
    dtype : numpy dtype, optional
    pixel_format : str, optional
    """

    level_adu: float | None = None
    dtype: Any = None
    pixel_format: str | None = None
    values: int = 0
    saturated: int = 0
    sets: int = 0
    sets_saturated: int = 0
    source: str = field(default="given", init=False)

    def __post_init__(self) -> None:
        self._narrow = False
        if self.level_adu is not None:
            return
        if self.dtype is None:
            self.source = "unknown"
            return
        self.level_adu = full_scale_adu(self.dtype, self.pixel_format)
        if self.level_adu is None:
            self.source = "unknown"
        elif self.pixel_format and full_scale_adu(self.dtype, None) != self.level_adu:
            self.source = f"{self.pixel_format}"
        else:
            self.source = f"{np.dtype(self.dtype).name}"
            # a 16-bit word may hold a 10, 12 or 14-bit camera's values: watch for pile-ups
            self._narrow = np.dtype(self.dtype) == np.uint16 and not self.pixel_format

    def update(self, frames: Any) -> int:
        """Count one set's values at full scale; returns that count."""
        arr = np.asarray(frames)
        self.values += arr.size
        self.sets += 1
        if self.level_adu is None:
            return 0
        top = float(arr.max())
        if self._narrow and top in NARROW_FULL_SCALES and top < self.level_adu:
            at_top = int(np.count_nonzero(arr == top))
            if at_top >= max(MIN_PILE_UP, WARN_FRACTION * arr.size):
                log.debug("values pile up at %g: a %d-bit camera", top, int(top).bit_length())
                self.level_adu = top
                self.source = f"{int(top).bit_length()}-bit values in 16-bit words"
                self._narrow = False
        if top < self.level_adu:
            return 0
        n = int(np.count_nonzero(arr >= self.level_adu))
        self.saturated += n
        self.sets_saturated += 1
        return n

    @property
    def fraction(self) -> float:
        return self.saturated / self.values if self.values else 0.0

    @property
    def significant(self) -> bool:
        """Whether enough values are clipped to warn about (:data:`WARN_FRACTION`)."""
        return self.saturated > 0 and self.fraction >= WARN_FRACTION

    def summary(self) -> dict[str, Any] | None:
        """For ``.params.json`` and reports (None when the full scale is unknown)."""
        if self.level_adu is None:
            return None
        return {
            "level_adu": self.level_adu,
            "level_from": self.source,
            "fraction": round(self.fraction, 7),
            "values": self.saturated,
            "sets_with_saturation": self.sets_saturated,
            "sets": self.sets,
        }

    def message(self) -> str:
        """One line for the user: how much is clipped and what to do."""
        return (
            f"{100 * self.fraction:.3g} % of the raw values ({self.saturated} in "
            f"{self.sets_saturated} of {self.sets} sets) sit at {self.level_adu:g} ADU, the "
            f"camera's full scale ({self.source}): the pattern is clipped there, so bright "
            "structures lose their brightness and SIM detail. Lower the exposure time or the "
            "light."
        )
