"""Lazy, defensive readers for raw SIM stacks: TIFF/OME-TIFF, MRC and OME-Zarr.

:func:`open_raw` looks at a file's header only and returns a :class:`RawStack` whose ``data``
reads frames on demand (plain reads at computed offsets where the pixels are stored
contiguously, page-by-page or chunk-by-chunk reading otherwise). Nothing is allocated in
proportion to the file before its header has been checked, and nothing is ever unpickled: Zarr
arrays with object dtypes or pickle codecs are refused from their JSON metadata, before zarr
touches them.

Axes are named with one letter each: ``T`` (time), ``Z``, ``C`` (channel) in front, then ``P``
(the ``angles * phases`` frames of one SIM set, angle-major, phase fastest) and ``Y``, ``X``.

References
----------
OME-TIFF: https://ome-model.readthedocs.io/en/stable/ome-tiff/specification.html
OME-Zarr (NGFF) 0.4/0.5: https://ngff.openmicroscopy.org/
MRC2014: Cheng et al., J. Struct. Biol. 192, 146 (2015).
DeltaVision / Priism (the MRC variant of OMX and DeltaVision microscopes): the header fields
``NumTimes``, ``ImgSequence``, ``NumWaves`` and the wavelengths, as documented with the IVE
library (UCSF Priism) and read by Bio-Formats' DeltavisionReader.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from scope.errors import DataFormatError

log = logging.getLogger(__name__)

#: largest frame (Y * X pixels) accepted from a header: 16384 x 16384
MAX_FRAME_PIXELS = 2**28
#: largest number of 2D frames a header may claim
MAX_FRAMES = 10**7
#: largest intensity (ADU or photons) a float stack may hold: beyond it the single-precision
#: power spectra of a large frame overflow; no camera comes near it (a 32-bit sum of 10^4
#: 16-bit frames is 6.6e8), a stack rescaled by mistake does
MAX_INTENSITY = 1e11
#: largest single storage chunk (bytes) we agree to read at once
MAX_CHUNK_BYTES = 2**31
#: pixel types a raw SIM stack may have
SUPPORTED_DTYPES = tuple(
    np.dtype(t)
    for t in (
        "uint8",
        "uint16",
        "uint32",
        "int8",
        "int16",
        "int32",
        "float16",
        "float32",
        "float64",
    )
)

#: X and Y pixel sizes differing by more than this share are not square
SQUARE_PIXEL_TOLERANCE = 0.01

#: what the layout a ``scope acquire`` run states begins with
#: (:data:`scope.acquisition.writer.LAYOUT`)
RUN_LAYOUT_PREFIX = "scope-sim-raw/"
#: largest JSON metadata file read (a Zarr node's or a TIFF run's side-car)
_MAX_JSON_BYTES = 16 * 2**20
_TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
_MRC_SUFFIXES = (".mrc", ".dv", ".st", ".map")
_LEAD_LETTERS = "TZC"


def _fail(path: Path, message: str) -> DataFormatError:
    return DataFormatError(f"{path.name}: {message}")


def _pixel_sizes(x_nm: float | None, y_nm: float | None) -> dict[str, Any]:
    """``pixel_size_nm`` (and ``pixel_size_xy_nm``) of a :class:`RawStack` from the X and Y
    sizes a file states: X where they agree within :data:`SQUARE_PIXEL_TOLERANCE` (or Y is not
    stated), else None with both kept in ``pixel_size_xy_nm``."""
    if x_nm is None or y_nm is None or not (x_nm and math.isfinite(x_nm) and math.isfinite(y_nm)):
        return {"pixel_size_nm": x_nm}
    if abs(abs(y_nm) / abs(x_nm) - 1.0) <= SQUARE_PIXEL_TOLERANCE:
        return {"pixel_size_nm": x_nm}
    return {"pixel_size_nm": None, "pixel_size_xy_nm": (float(x_nm), float(y_nm))}


class LazyFrames:
    """Array-like over ``(lead..., P, Y, X)`` frames that reads only what is indexed.

    Integer and slice indexing of the leading axes is supported (``stack[t]``, ``stack[t, :3]``,
    ``stack[2:4]``); the result is a numpy array in the file's dtype.

    Parameters
    ----------
    read_frames : callable
        ``read_frames(flat_indices) -> ndarray (k, Y, X)``: reads frames by their flat index.
    shape : tuple of int
        Full shape, the last two axes being ``Y, X``.
    dtype : numpy dtype
    """

    def __init__(
        self,
        read_frames: Callable[[Sequence[int]], np.ndarray],
        shape: tuple[int, ...],
        dtype: np.dtype,
    ) -> None:
        self._read_frames = read_frames
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        n_lead = len(self.shape) - 2
        lead_key = key[:n_lead]
        rest = key[n_lead:]
        flat = np.arange(math.prod(self.shape[:-2]), dtype=np.int64).reshape(self.shape[:-2])
        picked = flat[lead_key] if lead_key else flat
        frames = self._read_frames([int(i) for i in np.ravel(picked)])
        out = frames.reshape(np.shape(picked) + self.shape[-2:])
        return out[(Ellipsis, *rest)] if rest else out

    def __repr__(self) -> str:
        return f"LazyFrames(shape={self.shape}, dtype={self.dtype})"


@dataclass
class RawStack:
    """A raw SIM stack opened lazily.

    Attributes
    ----------
    data : ndarray or LazyFrames
        Shaped like ``shape``; indexing the leading axes reads only those frames.
    shape : tuple of int
        ``(lead..., P, Y, X)``.
    dtype : numpy dtype
        Pixel type in the file.
    axes : str
        One letter per axis, e.g. ``"TPYX"`` or ``"PYX"``; ``P`` holds ``angles * phases`` frames.
    path : Path
        The file (or Zarr store) read.
    pixel_size_nm, wavelength_nm, na : float or None
        Camera pixel size at the sample, emission wavelength and NA where the file states them
        (``wavelength_nm``: the first channel's). ``pixel_size_nm`` is None where the file
        states pixels that are not square (``pixel_size_xy_nm``).
    offset_adu : float, optional
        The camera offset (dark level) where the file states it (``offset_adu`` in the JSON
        metadata scope writes, e.g. ``scope demo``'s raw stack).
    channel_wavelengths_nm : tuple of float, optional
        Each channel's emission wavelength, where the file states one for every channel of its
        ``C`` axis (an OME-TIFF's ``Channel`` elements).
    pixel_size_xy_nm : tuple of float, optional
        ``(X, Y)`` pixel sizes at the sample where the file states sizes that differ by more
        than :data:`SQUARE_PIXEL_TOLERANCE` (a SIM reconstruction assumes square pixels, so
        ``pixel_size_nm`` is then None).
    pattern_shape : tuple of int, optional
        ``(angles, phases)`` where the file states them (a run of ``scope acquire`` records its
        pattern sequence); see :func:`open_sim_stack`.
    set_times_s : tuple of float, optional
        When each SIM set along ``T`` started, in seconds from the first (a ``scope acquire``
        run: from its frames' timestamps); see :attr:`time_increment_s`.
    metadata : dict
        Everything else worth keeping (format, original axes, acquisition details).
    """

    data: Any
    shape: tuple[int, ...]
    dtype: np.dtype
    axes: str
    path: Path
    pixel_size_nm: float | None = None
    wavelength_nm: float | None = None
    na: float | None = None
    offset_adu: float | None = None
    channel_wavelengths_nm: tuple[float, ...] | None = None
    pixel_size_xy_nm: tuple[float, float] | None = None
    pattern_shape: tuple[int, int] | None = None
    set_times_s: tuple[float, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    _closer: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def lead_shape(self) -> tuple[int, ...]:
        """Shape of the axes in front of the SIM frames (time, z, channel)."""
        return self.shape[:-3]

    @property
    def lead_axes(self) -> str:
        return self.axes[:-3]

    @property
    def n_frames_per_set(self) -> int:
        return self.shape[-3]

    @property
    def time_increment_s(self) -> float | None:
        """The time from one SIM set to the next (the median of :attr:`set_times_s`), for the
        outputs' OME ``TimeIncrement`` and NGFF time scale; None where the file states no
        times or holds one set."""
        times = self.set_times_s
        if times is None or len(times) < 2 or "T" not in self.lead_axes:
            return None
        step = float(np.median(np.diff(times)))
        return step if step > 0 else None

    @property
    def n_sets(self) -> int:
        """Number of SIM sets (time points x z x channels)."""
        return math.prod(self.lead_shape)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.shape[-2], self.shape[-1]

    @property
    def n_channels(self) -> int:
        """Length of the ``C`` axis (1 without one)."""
        return self.lead_shape[self.lead_axes.index("C")] if "C" in self.lead_axes else 1

    def channel_of_set(self, index: int) -> int:
        """The channel of SIM set ``index`` (sets counted over the leading axes, C order)."""
        if "C" not in self.lead_axes:
            return 0
        return int(np.unravel_index(index, self.lead_shape)[self.lead_axes.index("C")])

    def channel_wavelength_nm(self, channel: int) -> float | None:
        """Channel ``channel``'s emission wavelength as the file states it: its own where the
        file states one per channel, else the file's one wavelength (None: none stated)."""
        if self.channel_wavelengths_nm is not None:
            return self.channel_wavelengths_nm[channel]
        return self.wavelength_nm

    def warn_one_wavelength(self, given: str) -> None:
        """Say so when one wavelength (``given``, e.g. ``"--wavelength 525"``) is to serve
        channels that the file says emit at different wavelengths."""
        stated = self.channel_wavelengths_nm
        if stated is not None and len(set(stated)) > 1:
            log.warning(
                "%s: its channels emit at %s nm, but %s is used for all of them (give one "
                "wavelength per channel)",
                self.path.name,
                ", ".join(f"{w:g}" for w in stated),
                given,
            )

    def channel_data(self, channel: int) -> Any:
        """The frames of one channel, shaped like ``data`` without its ``C`` axis, as lazy as
        ``data`` (a file without one: ``data`` itself)."""
        if "C" not in self.lead_axes:
            return self.data
        axis = self.lead_axes.index("C")
        if isinstance(self.data, np.ndarray):
            return np.take(self.data, channel, axis=axis)
        full = self.shape[:-2]  # the leading axes and P
        sub = full[:axis] + full[axis + 1 :]
        read_all = self.data

        def read_frames(indices: Sequence[int]) -> np.ndarray:
            where = np.unravel_index(np.asarray(indices, np.int64), sub)
            index = (*where[:axis], np.full(len(indices), channel), *where[axis:])
            flat = np.ravel_multi_index(index, full)
            return read_all._read_frames([int(i) for i in flat])

        return LazyFrames(read_frames, (*sub, *self.shape[-2:]), self.dtype)

    def first_set_of_channel(self, channel: int) -> int:
        """The index of channel ``channel``'s first SIM set (every other axis at 0)."""
        if "C" not in self.lead_axes:
            return 0
        where = [0] * len(self.lead_shape)
        where[self.lead_axes.index("C")] = channel
        return int(np.ravel_multi_index(where, self.lead_shape))

    @property
    def sensor_origin(self) -> tuple[int, int] | None:
        """Where the frames' first pixel sat on the sensor (row, column), for a ``scope
        acquire`` run that recorded its camera's region of interest; None where the file does
        not say (then per-pixel camera maps must be the frames' own size)."""
        acquisition = self.metadata.get("acquisition")
        camera = acquisition.get("camera") if isinstance(acquisition, dict) else None
        roi = camera.get("roi") if isinstance(camera, dict) else None
        if not (isinstance(roi, list | tuple) and len(roi) == 4):
            return None
        x, y, width, height = (int(v) for v in roi)
        if (height, width) != self.frame_shape:
            log.warning(
                "%s: the recorded region of interest (%dx%d) is not the frames' size %s; "
                "its position is not used",
                self.path,
                width,
                height,
                self.frame_shape,
            )
            return None
        return (y, x)

    @property
    def set_nbytes(self) -> int:
        """Bytes of one SIM set in the file's dtype."""
        return math.prod(self.shape[-3:]) * self.dtype.itemsize

    def set_index(self, flat: int) -> tuple[int, ...]:
        """Leading index of the ``flat``-th SIM set."""
        return (
            tuple(int(i) for i in np.unravel_index(flat, self.lead_shape))
            if self.lead_shape
            else ()
        )

    def read_set(self, flat: int = 0) -> np.ndarray:
        """Read one SIM set as float32 ``(P, Y, X)``, refusing NaN or infinite values.

        Parameters
        ----------
        flat : int
            Flat index over the leading axes (``0 .. n_sets - 1``).
        """
        if not 0 <= flat < self.n_sets:
            raise IndexError(f"SIM set {flat} out of range 0..{self.n_sets - 1}")
        index = self.set_index(flat)
        try:
            frames = np.asarray(self.data[index] if index else self.data[...])
        except DataFormatError:
            raise
        except Exception as err:
            raise _fail(
                self.path, f"cannot read SIM set {index or 0} ({err}); the file may be truncated"
            ) from err
        out = frames.astype(np.float32, copy=True)
        if out.shape != self.shape[-3:]:
            raise _fail(
                self.path, f"SIM set {index} has shape {out.shape}, expected {self.shape[-3:]}"
            )
        if self.dtype.kind == "f" and out.size:
            # one pass each for the extremes: NaN and inf show in them (then counted)
            lowest, highest = float(out.min()), float(out.max())
            if not (np.isfinite(lowest) and np.isfinite(highest)):
                bad = int(np.count_nonzero(~np.isfinite(out)))
                raise _fail(
                    self.path,
                    f"SIM set {index or 0} holds {bad} NaN/inf values; expected finite "
                    "intensities — fix or drop those frames",
                )
            peak = max(highest, -lowest)
            if peak > MAX_INTENSITY:
                raise _fail(
                    self.path,
                    f"SIM set {index or 0} holds values up to {peak:.3g}; expected intensities "
                    f"(ADU or photons) within +-{MAX_INTENSITY:.0e} — rescale the stack (e.g. to "
                    "the camera's range, 0-65535)",
                )
        return out

    def iter_sets(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Yield SIM sets one by one (memory: one set at a time)."""
        for flat in range(start, self.n_sets if stop is None else stop):
            yield self.read_set(flat)

    def in_pattern_order(self, n_angles: int, n_phases: int) -> RawStack:
        """This stack seen angle-major (phase fastest) when the file holds each set
        phase-major: all angles at the first phase, then at the next (``a0p0 a1p0 a2p0 a0p1
        ...``). Frames are read from this stack's data as they are asked for."""
        n = self.n_frames_per_set
        if n != n_angles * n_phases:
            raise DataFormatError(
                f"{self.path.name}: sets of {n} frames, not {n_angles} angles x {n_phases} phases"
            )
        in_file = frames_in_file(n_angles, n_phases, "phase-major")
        lead = self.shape[:-2]
        source = self.data

        def read(indices: Sequence[int]) -> np.ndarray:
            frames = []
            for i in indices:
                s, k = divmod(int(i), n)
                frames.append(np.asarray(source[np.unravel_index(s * n + int(in_file[k]), lead)]))
            return np.stack(frames) if frames else np.empty((0, *self.shape[-2:]), self.dtype)

        reordered = replace(self, data=LazyFrames(read, self.shape, self.dtype))
        reordered.metadata = {**self.metadata, "frame_order": "phase-major"}
        return reordered

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self) -> RawStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# shared checks


def _file_stack(
    path: Path,
    data: Any,
    lead_axes: str,
    dtype: np.dtype,
    metadata: dict[str, Any],
    **fields: Any,
) -> RawStack:
    """The :class:`RawStack` of a file's frames.

    Parameters
    ----------
    path : Path
        The file (or Zarr store).
    data : array-like
        The frames, shaped ``(lead..., P, Y, X)`` (:class:`LazyFrames` or a Zarr array).
    lead_axes : str
        The letters of the axes in front of ``Y, X`` (``P`` last).
    dtype : numpy dtype
        The pixel type as read.
    metadata : dict
        What else the file states (format, original axes).
    **fields
        Further :class:`RawStack` fields (pixel sizes, wavelengths, NA, ``_closer``).
    """
    shape = tuple(int(n) for n in data.shape)
    return RawStack(data, shape, dtype, lead_axes + "YX", path, metadata=metadata, **fields)


def _check_dtype(path: Path, dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise _fail(path, f"unsupported pixel type {dtype!r}") from err
    if dt.newbyteorder("=") not in SUPPORTED_DTYPES:
        raise _fail(
            path,
            f"unsupported pixel type {dt}; expected one of "
            f"{', '.join(str(d) for d in SUPPORTED_DTYPES)} — convert the stack to uint16 or "
            "float32",
        )
    return dt


def _check_frames(path: Path, n_frames: int, frame_shape: Sequence[int]) -> None:
    ny, nx = (int(s) for s in frame_shape)
    if ny < 1 or nx < 1 or ny * nx > MAX_FRAME_PIXELS:
        raise _fail(
            path,
            f"header claims frames of {ny} x {nx} pixels; expected 1..{MAX_FRAME_PIXELS} pixels "
            "per frame — the file is corrupt or not a raw SIM stack",
        )
    if n_frames < 1 or n_frames > MAX_FRAMES:
        raise _fail(
            path,
            f"header claims {n_frames} frames; expected 1..{MAX_FRAMES} — the file is corrupt",
        )


def _assign_axes(
    path: Path,
    lead: Sequence[int],
    lead_letters: str,
    n_frames_per_set: int | None,
    frame_shape: Sequence[int] = (),
) -> tuple[tuple[int, ...], str, tuple[int, ...]]:
    """Shape and axes ``(lead..., P)`` for the leading dimensions of a stack of frames, and
    the order of the file's leading axes they take (``frame_shape``, the last two axes, only
    for a helpful refusal).

    The frames of a set are the last leading axis; else the one axis of their number that
    only channel axes follow (an ImageJ hyperstack keeps them in Z, before its channels:
    ``ZCYX`` becomes ``CPYX``); else the frames are taken in file order, a flat time series.
    """
    lead = tuple(int(s) for s in lead)
    total = math.prod(lead)
    order = tuple(range(len(lead)))
    if not lead:
        raise _fail(path, "holds a single 2D frame; expected a stack of angles x phases frames")
    if n_frames_per_set is not None:
        n = int(n_frames_per_set)
        if lead[-1] == n and len(lead) > 1:
            kept = lead[:-1]
        elif _frames_before_channels(lead, lead_letters, n):  # moved last
            i = lead.index(n)
            order = (*(j for j in order if j != i), i)
            kept = tuple(lead[j] for j in order[:-1])
            lead_letters = "".join(lead_letters[j] for j in order)
        elif total % n == 0:
            kept = (total // n,) if total > n else ()
            lead_letters = "T" * len(kept)
        else:
            hint = "check --angles/--phases or whether the file is complete"
            if len(frame_shape) == 2 and int(frame_shape[-1]) % n == 0 and frame_shape[-1] < 64:
                hint = (  # (Y, X, frames): stored like the colours of a picture
                    f"its {total} x {frame_shape[0]} x {frame_shape[1]} layout looks like "
                    f"(Y, X, frames): store the frames first, as (frames, Y, X)"
                )
            raise _fail(
                path, f"holds {total} frames, not a multiple of {n} (angles x phases); {hint}"
            )
        shape = (*kept, n)
        letters = _lead_letters(lead_letters[: len(kept)], len(kept))
        return shape, letters + "P", order
    shape = lead
    return shape, _lead_letters(lead_letters[: len(lead) - 1], len(lead) - 1) + "P", order


def _frames_before_channels(lead: tuple[int, ...], letters: str, n: int) -> bool:
    """True where the one axis of ``n`` frames is followed only by channel axes (``C``)."""
    if len(lead) < 2 or lead.count(n) != 1 or len(letters) != len(lead):
        return False
    after = letters[lead.index(n) + 1 :].upper()
    return bool(after) and set(after) <= {"C"}


def _in_file_order(
    read_frames: Callable[[Sequence[int]], np.ndarray],
    file_lead: Sequence[int],
    order: Sequence[int],
) -> Callable[[Sequence[int]], np.ndarray]:
    """``read_frames`` (by flat index in the file) as read by flat index over the file's
    leading axes taken in ``order``."""
    if tuple(order) == tuple(range(len(order))):
        return read_frames
    in_file = np.arange(math.prod(file_lead)).reshape(tuple(file_lead)).transpose(order).ravel()

    def read(indices: Sequence[int]) -> np.ndarray:
        return read_frames([int(in_file[i]) for i in indices])

    return read


def _lead_letters(letters: str, n: int) -> str:
    """Map file axis letters onto distinct T/Z/C letters (unknown ones become the first unused)."""
    letters = letters.upper()[-n:] if n else ""
    out: list[str] = []
    for ch in letters.rjust(n, "?"):
        if ch in _LEAD_LETTERS and ch not in out:
            out.append(ch)
        else:
            out.append(next(c for c in _LEAD_LETTERS + "QRS" if c not in out and c not in letters))
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# TIFF


class _ContiguousReader:
    """Reads frames stored back to back from ``offset``, with plain reads (no memory map).

    A memory map would leave every page it touched resident in the process (its RSS grows to
    the file size over a long time-lapse); explicit reads keep memory at the frames asked for.
    """

    def __init__(
        self, path: Path, offset: int, dtype: np.dtype, frame_shape: Sequence[int]
    ) -> None:
        self.path = path
        self.offset = int(offset)
        self.dtype = np.dtype(dtype)
        self.frame_shape = tuple(int(s) for s in frame_shape)
        self.frame_bytes = math.prod(self.frame_shape) * self.dtype.itemsize

    def __call__(self, indices: Sequence[int]) -> np.ndarray:
        out = np.empty((len(indices), *self.frame_shape), dtype=self.dtype.newbyteorder("="))
        count = math.prod(self.frame_shape)
        with open(self.path, "rb") as fh:
            for k, i in enumerate(indices):
                fh.seek(self.offset + int(i) * self.frame_bytes)
                frame = np.fromfile(fh, dtype=self.dtype, count=count)
                if frame.size != count:
                    raise DataFormatError(
                        f"{self.path.name}: frame {i} is cut short; the file is truncated"
                    )
                out[k] = frame.reshape(self.frame_shape)
        return out


class _TiffPageReader:
    """Reads pages of one TIFF series by index; reopens the file after pickling."""

    def __init__(self, path: Path, series: int = 0, *, direct_pages: bool = False) -> None:
        self.path = path
        self.series = series
        self.direct_pages = direct_pages  # index pages of the file, not of the series
        self._tif: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tif": None}

    def __call__(self, indices: Sequence[int]) -> np.ndarray:
        import tifffile

        if self._tif is None:
            self._tif = tifffile.TiffFile(self.path)
        if self.direct_pages:
            data = np.stack([self._tif.pages[int(i)].asarray() for i in indices])
        else:
            data = self._tif.asarray(key=list(indices), series=self.series, maxworkers=1)
        n_y, n_x = data.shape[-2:]
        return data.reshape(len(indices), n_y, n_x)

    def close(self) -> None:
        if self._tif is not None:
            self._tif.close()
            self._tif = None


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


_NM_PER_UNIT = {
    "pm": 1e-3,
    "å": 0.1,
    "angstrom": 0.1,
    "nm": 1.0,
    "nanometer": 1.0,
    "µm": 1e3,
    "μm": 1e3,  # Greek mu
    "um": 1e3,
    "\\u00b5m": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "cm": 1e7,
    "centimeter": 1e7,
    "m": 1e9,
    "meter": 1e9,
}


def unit_to_nm(value: float, unit: str | None, default: str = "µm") -> float:
    """A length in ``unit`` (OME's default µm when None) in nm.

    Raises
    ------
    DataFormatError
        For a unit it does not know (a ``ValueError``).
    """
    key = (unit or default).strip().lower().replace("micron", "µm")
    if key not in _NM_PER_UNIT:
        raise DataFormatError(
            f"unknown length unit {unit!r}; expected one of {sorted(_NM_PER_UNIT)}"
        )
    return float(value) * _NM_PER_UNIT[key]


def _tiff_physical(tif: Any, page: Any) -> dict[str, Any]:
    """Pixel size, emission wavelength (each channel's too) and NA from OME, shaped-JSON or
    ImageJ metadata."""
    out: dict[str, Any] = {
        "pixel_size_nm": None,
        "wavelength_nm": None,
        "na": None,
        "offset_adu": None,
    }
    try:
        if tif.is_ome and tif.ome_metadata:
            import tifffile

            ome = tifffile.xml2dict(tif.ome_metadata).get("OME", {})
            image = ome.get("Image", {})
            image = image[0] if isinstance(image, list) else image
            pixels = image.get("Pixels", {})
            if "PhysicalSizeX" in pixels:
                x = unit_to_nm(pixels["PhysicalSizeX"], pixels.get("PhysicalSizeXUnit"))
                y = (
                    unit_to_nm(pixels["PhysicalSizeY"], pixels.get("PhysicalSizeYUnit"))
                    if "PhysicalSizeY" in pixels
                    else None
                )
                out.update(_pixel_sizes(x, y))
            channels = pixels.get("Channel", {})
            channels = channels if isinstance(channels, list) else [channels]
            emission = [
                unit_to_nm(c["EmissionWavelength"], c.get("EmissionWavelengthUnit"), "nm")
                if isinstance(c, dict) and "EmissionWavelength" in c
                else None
                for c in channels
            ]
            out["wavelength_nm"] = emission[0] if emission else None
            if len(emission) > 1 and None not in emission:
                out["channel_wavelengths_nm"] = tuple(emission)
            instrument = ome.get("Instrument", {})
            objective = instrument.get("Objective", {}) if isinstance(instrument, dict) else {}
            if isinstance(objective, dict) and "LensNA" in objective:
                out["na"] = float(objective["LensNA"])
            desc = image.get("Description")
            if isinstance(desc, str) and desc.startswith("{"):
                _update_from_json(out, json.loads(desc))
        elif tif.is_shaped and tif.shaped_metadata:
            _update_from_json(out, tif.shaped_metadata[0])
        elif tif.is_imagej:
            ij = tif.imagej_metadata or {}
            xres = page.tags.get("XResolution")
            if xres is not None:
                num, den = xres.value
                px_per_unit = num / den if den else 0
                # ImageJ writes 1 pixel per unit when nobody calibrated the image: unknown
                if px_per_unit > 0 and not math.isclose(px_per_unit, 1.0):
                    x = unit_to_nm(1.0 / px_per_unit, ij.get("unit"))
                    out.update(_pixel_sizes(x, _imagej_y_nm(page, ij)))
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as err:
        log.warning("%s: ignoring unreadable physical metadata (%s)", tif.filename, err)
    return out


def _imagej_y_nm(page: Any, ij: dict[str, Any]) -> float | None:
    """The Y pixel size of an ImageJ TIFF (its ``YResolution``), nm; None where not stated."""
    yres = page.tags.get("YResolution")
    if yres is None:
        return None
    num, den = yres.value
    px_per_unit = num / den if den else 0
    return unit_to_nm(1.0 / px_per_unit, ij.get("unit")) if px_per_unit > 0 else None


def _update_from_json(out: dict[str, float | None], meta: Any) -> None:
    if not isinstance(meta, dict):
        return
    for key in ("pixel_size_nm", "wavelength_nm", "na"):
        value = meta.get(key)
        if isinstance(value, int | float) and math.isfinite(value) and value > 0:
            out[key] = float(value)
    offset = meta.get("offset_adu")  # 0 is a stated offset too
    number = isinstance(offset, int | float) and not isinstance(offset, bool)
    if number and math.isfinite(offset) and offset >= 0:
        out["offset_adu"] = float(offset)


def _open_tiff(path: Path, n_frames_per_set: int | None) -> RawStack:
    import tifffile

    tlog = logging.getLogger("tifffile")
    capture = _LogCapture()
    tlog.addHandler(capture)
    try:
        tif = tifffile.TiffFile(path)
    except Exception as err:
        raise _fail(path, f"not a readable TIFF file ({err})") from err
    finally:
        tlog.removeHandler(capture)
    try:
        return _tiff_stack(tif, path, n_frames_per_set, capture)
    except BaseException:
        tif.close()
        raise


def _tiff_stack(
    tif: Any, path: Path, n_frames_per_set: int | None, capture: _LogCapture
) -> RawStack:
    size = os.path.getsize(path)
    tlog = logging.getLogger("tifffile")
    tlog.addHandler(capture)
    try:
        if not tif.series:
            raise _fail(path, "TIFF holds no image series")
        series = tif.series[0]
        shape, axes, dtype = tuple(series.shape), series.axes, series.dtype
        n_series = len(tif.series)
        keyframe = series.keyframe
    except DataFormatError:
        raise
    except Exception as err:
        raise _fail(path, f"corrupt TIFF structure ({err})") from err
    finally:
        tlog.removeHandler(capture)
    broken = [m for m in capture.messages if "invalid" in m or "corrupt" in m or "truncat" in m]
    if broken:
        raise _fail(
            path,
            f"TIFF is truncated or corrupt ({broken[0]}); expected a complete file — "
            "copy it again or re-export it",
        )
    if "S" in axes and shape[axes.index("S")] > 1:
        raise _fail(path, f"has {shape[axes.index('S')]} samples per pixel (RGB?); expected grey")
    if "S" in axes:
        i = axes.index("S")
        shape, axes = shape[:i] + shape[i + 1 :], axes[:i] + axes[i + 1 :]
    if len(shape) < 2:
        raise _fail(path, f"holds a {shape} image; expected a stack of angles x phases frames")
    n_frames = math.prod(shape[:-2])
    _check_frames(path, n_frames, shape[-2:])
    dtype = _check_dtype(path, dtype)
    if len(shape) < 3:
        raise _fail(path, f"holds one {shape} image; expected a stack of angles x phases frames")
    lead_shape, lead_axes, order = _assign_axes(
        path, shape[:-2], axes[:-2], n_frames_per_set, shape[-2:]
    )
    full_shape = (*lead_shape, *shape[-2:])
    nbytes = n_frames * shape[-2] * shape[-1] * dtype.itemsize

    physical = _tiff_physical(tif, keyframe)
    waves = physical.get("channel_wavelengths_nm")
    n_channels = lead_shape[lead_axes.index("C")] if "C" in lead_axes else 1
    if waves is not None and len(waves) != n_channels:
        log.warning(
            "%s: %d channel wavelengths for %d channels; only the first is used",
            path,
            len(waves),
            n_channels,
        )
        physical["channel_wavelengths_nm"] = None
    meta: dict[str, Any] = {"format": "ome-tiff" if tif.is_ome else "tiff", "file_axes": axes}
    if n_series > 1:
        meta["n_series"] = n_series
        log.warning(
            "%s holds %d image series; only the first (%s, axes %s) is read: save each series "
            "as its own file to reconstruct the others",
            path.name,
            n_series,
            " x ".join(map(str, series.shape)),
            series.axes,
        )
    offset = series.dataoffset
    if offset is not None:
        # contiguous, uncompressed pixels: read at computed offsets, after checking the size
        if offset + nbytes > size:
            raise _fail(
                path,
                f"TIFF is truncated: its header promises {nbytes} bytes of pixels from offset "
                f"{offset} but the file has {size} bytes — copy it again or re-export it",
            )
        tif.close()
        file_dtype = dtype.newbyteorder(tif.byteorder)
        contiguous = _ContiguousReader(path, offset, file_dtype, shape[-2:])
        data: Any = LazyFrames(_in_file_order(contiguous, shape[:-2], order), full_shape, dtype)
        closer = None
    else:
        pages = series.pages
        for page in pages:
            if page is None:
                raise _fail(path, "TIFF is missing pages; the file is truncated or corrupt")
            ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts) if c]
            if not ends and page.compression == 1:
                raise _fail(path, "TIFF page has no pixel data; the file is truncated")
            if ends and max(ends) > size:
                raise _fail(
                    path,
                    f"TIFF is truncated: page {page.index} needs {max(ends)} bytes, the file "
                    f"has {size} — copy it again or re-export it",
                )
            if page.compression != 1:
                largest = max(page.databytecounts or (0,))
                if largest > MAX_CHUNK_BYTES:
                    raise _fail(path, f"TIFF strip/tile of {largest} bytes exceeds the limit")
        tif.close()
        reader = _TiffPageReader(path)
        data = LazyFrames(_in_file_order(reader, shape[:-2], order), full_shape, dtype)
        closer = reader.close
    return _file_stack(path, data, lead_axes, dtype, meta, _closer=closer, **physical)


# ---------------------------------------------------------------------------------------------
# MRC


def _mrc_pixel_size_nm(voxel: float) -> float | None:
    """MRC voxel size to nm: Priism-era SIM files store µm, MRC2014 stores Å."""
    if not (voxel > 0 and math.isfinite(voxel)) or voxel == 1.0:
        return None  # 1.0: a Priism/DeltaVision writer's uncalibrated default, not a pixel size
    if voxel < 5.0:  # no camera pixel at the sample is 5 Å; values this small are µm
        return voxel * 1e3
    return voxel * 0.1


#: the DeltaVision/Priism marker in bytes 96-97 of an MRC header, by byte order
_DV_ID = {b"\xa0\xc0": "<", b"\xc0\xa0": ">"}
#: a DeltaVision file's sections in file order, slowest axis first, by its ``ImgSequence``
#: field (0: ZTW, 1: WZT, 2: ZWT, named fastest first; W is the channel)
_DV_SECTION_ORDER = {0: "CTZ", 1: "TZC", 2: "TCZ"}
_DV_SEQUENCE_NAMES = {0: "ZTW", 1: "WZT", 2: "ZWT"}


@dataclass(frozen=True)
class _DVLayout:
    """How a DeltaVision file interleaves its sections: times, channels (waves), planes."""

    n_times: int
    n_channels: int
    sequence: int
    wavelengths_nm: tuple[float, ...]  # one per channel; 0 where the header states none

    @property
    def order(self) -> str:
        return _DV_SECTION_ORDER[self.sequence]


def _dv_layout(head: bytes, n_sections: int, name: str) -> _DVLayout | None:
    """The interleaving a DeltaVision/Priism header states (None: a plain MRC file, or a
    DeltaVision header whose counts do not fit its sections, which is then read flat).

    Parameters
    ----------
    head : bytes
        The file's MRC header as stored (at least its first 224 bytes).
    n_sections : int
        The sections (2D frames) the header says the file holds.
    name : str
        The file's name, for the warning about a header that does not fit.
    """
    order = _DV_ID.get(head[96:98]) if len(head) >= 224 else None
    if order is None:
        return None
    n_times, sequence = struct.unpack_from(order + "2h", head, 180)
    n_channels, *waves = struct.unpack_from(order + "6h", head, 196)
    n_times, n_channels = max(int(n_times), 1), max(int(n_channels), 1)
    if sequence not in _DV_SECTION_ORDER or n_channels > 5 or n_sections % (n_times * n_channels):
        log.warning(
            "%s: DeltaVision header with %d time points x %d channels (image sequence %d) does "
            "not fit its %d sections; reading the sections in file order",
            name,
            n_times,
            n_channels,
            sequence,
            n_sections,
        )
        return None
    return _DVLayout(
        n_times, n_channels, int(sequence), tuple(float(w) for w in waves[:n_channels])
    )


def _dv_axes(
    path: Path, dv: _DVLayout, n_sections: int, n_frames_per_set: int | None
) -> tuple[tuple[int, ...], str, tuple[int, ...], tuple[int, ...]]:
    """Shape and axes ``(T, Z, C, P)`` (those longer than 1, and ``P``) of a DeltaVision
    file's frames, with the file's leading shape and the order of its axes they take (for
    :func:`_in_file_order`).

    The planes of each time point and channel hold the SIM frames (an OMX 2D-SIM set: angle-
    major, phase fastest); more planes than one set are further sets, along Z where the file
    also has time points, else along T.
    """
    planes = n_sections // (dv.n_times * dv.n_channels)
    n = planes if n_frames_per_set is None else int(n_frames_per_set)
    if planes % n:
        raise _fail(
            path,
            f"holds {planes} planes per time point and channel (DeltaVision header: "
            f"{dv.n_times} x {dv.n_channels}), not a multiple of {n} (angles x phases); check "
            "--angles/--phases",
        )
    # the file's axes, slowest first, with each channel's planes split into sets (S) of frames
    file_axes = dv.order.replace("Z", "SP")
    sizes = {"T": dv.n_times, "C": dv.n_channels, "S": planes // n, "P": n}
    file_lead = tuple(sizes[a] for a in file_axes)
    order = tuple(file_axes.index(a) for a in "TSCP")
    set_letter = "Z" if dv.n_times > 1 else "T"
    kept = [(a, sizes[a]) for a in "TSC" if sizes[a] > 1]
    letters = "".join(set_letter if a == "S" else a for a, _ in kept) + "P"
    return (*(size for _, size in kept), n), letters, file_lead, order


def _open_mrc(path: Path, n_frames_per_set: int | None) -> RawStack:
    import mrcfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with mrcfile.open(path, permissive=True, header_only=True) as m:
                h = m.header
                head = h.tobytes()  # as stored: the DeltaVision fields are read from it
                nz, ny, nx = int(h.nz), int(h.ny), int(h.nx)
                mode = int(h.mode)
                ext_bytes = int(h.nsymbt)
                mx, my = int(h.mx) or nx, int(h.my) or ny
                voxel = float(h.cella.x) / mx if mx else 0.0
                voxel_y = float(h.cella.y) / my if my else 0.0
                try:
                    dtype = mrcfile.utils.data_dtype_from_header(h)
                except ValueError as err:
                    raise _fail(path, f"unsupported MRC mode {mode}") from err
    except DataFormatError:
        raise
    except Exception as err:
        raise _fail(path, f"not a readable MRC file ({err})") from err
    dtype = _check_dtype(path, dtype)
    _check_frames(path, nz, (ny, nx))
    if ext_bytes < 0:
        raise _fail(path, f"MRC header claims a negative extended header ({ext_bytes} bytes)")
    offset = 1024 + ext_bytes
    nbytes = nz * ny * nx * dtype.itemsize
    size = os.path.getsize(path)
    if offset + nbytes > size:
        raise _fail(
            path,
            f"MRC file is truncated: its header promises {nz} x {ny} x {nx} {dtype} values "
            f"({offset + nbytes} bytes) but the file has {size} bytes — copy it again",
        )
    read = _ContiguousReader(path, offset, dtype, (ny, nx))
    meta: dict[str, Any] = {"format": "mrc", "mrc_mode": mode, "voxel_size_header": voxel}
    dv = _dv_layout(head, nz, path.name)
    wavelengths: tuple[float, ...] = ()
    if dv is None:
        lead_shape, lead_axes, _ = _assign_axes(path, (nz,), "Z", n_frames_per_set)
    else:
        lead_shape, lead_axes, file_lead, order = _dv_axes(path, dv, nz, n_frames_per_set)
        read = _in_file_order(read, file_lead, order)
        meta["deltavision_image_sequence"] = _DV_SEQUENCE_NAMES[dv.sequence]
        wavelengths = dv.wavelengths_nm
    full_shape = (*lead_shape, ny, nx)
    data = LazyFrames(read, full_shape, dtype)
    return _file_stack(
        path,
        data,
        lead_axes,
        dtype.newbyteorder("="),
        meta,
        **_pixel_sizes(_mrc_pixel_size_nm(voxel), _mrc_pixel_size_nm(voxel_y)),
        # a DeltaVision header's wavelengths (Priism: the emission of each channel)
        wavelength_nm=wavelengths[0] if wavelengths and wavelengths[0] > 0 else None,
        channel_wavelengths_nm=wavelengths
        if len(wavelengths) > 1 and min(wavelengths) > 0
        else None,
    )


# ---------------------------------------------------------------------------------------------
# Zarr


def _zarr_json(path: Path) -> dict[str, Any] | None:
    for name in ("zarr.json", ".zarray", ".zgroup"):
        f = path / name
        if f.is_file():
            if f.stat().st_size > _MAX_JSON_BYTES:
                raise _fail(path, f"{name} is larger than 16 MiB; not a Zarr store we trust")
            try:
                meta = json.loads(f.read_text())
            except (OSError, ValueError) as err:
                raise _fail(path, f"unreadable Zarr metadata {name} ({err})") from err
            if name == ".zgroup":
                attrs = path / ".zattrs"
                meta = {"node_type": "group", "zarr_format": 2}
                if attrs.is_file():
                    try:
                        meta["attributes"] = json.loads(attrs.read_text())
                    except (OSError, ValueError) as err:
                        raise _fail(path, f"unreadable Zarr attributes ({err})") from err
            elif name == ".zarray":
                meta["node_type"] = "array"
            return meta
    return None


def _zarr_attributes(path: Path) -> Any:
    """The attributes of the Zarr node at ``path`` (empty where there are none)."""
    return (_zarr_json(path) or {}).get("attributes") or {}


def _refuse_unsafe_zarr_array(path: Path, meta: dict[str, Any]) -> None:
    """Refuse object dtypes and pickle codecs from the array's JSON, before zarr opens it."""
    text = json.dumps(meta).lower()
    dtype = meta.get("dtype", meta.get("data_type"))
    if "pickle" in text or meta.get("object_codec") is not None or str(dtype) in ("|O", "object"):
        raise _fail(
            path,
            f"Zarr array uses an object dtype or a pickle codec ({dtype}); expected plain numeric "
            "pixels — nothing is unpickled from input files",
        )


def _open_zarr(path: Path, n_frames_per_set: int | None) -> RawStack:
    meta = _zarr_json(path)
    if meta is None:
        raise _fail(path, "not a Zarr store (no zarr.json/.zarray/.zgroup)")
    # a run written by ``scope acquire`` is read through its own reader
    attrs = meta.get("attributes", {}) or {}
    array_path = ""
    axes_names: list[str] | None = None
    pixel_size_nm: float | None = None
    pixel_size_y_nm: float | None = None
    extra: dict[str, Any] = {"format": "ome-zarr"}
    if meta.get("node_type") == "group":
        ome = attrs.get("ome", attrs)
        multiscales = ome.get("multiscales") if isinstance(ome, dict) else None
        raw_path = (
            attrs.get("scope", {}).get("raw_array")
            if isinstance(attrs.get("scope"), dict)
            else None
        )
        if raw_path:
            array_path = str(raw_path)
        elif multiscales:
            ms = multiscales[0]
            dataset = ms["datasets"][0]
            array_path = str(dataset["path"])
            axes_names = [a["name"] if isinstance(a, dict) else str(a) for a in ms.get("axes", [])]
            units = {
                (a["name"] if isinstance(a, dict) else a): (
                    a.get("unit") if isinstance(a, dict) else None
                )
                for a in ms.get("axes", [])
            }
            for t in dataset.get("coordinateTransformations", []):
                if t.get("type") == "scale" and axes_names and "x" in axes_names:
                    scale = t["scale"][axes_names.index("x")]
                    try:
                        pixel_size_nm = unit_to_nm(scale, units.get("x"), "µm")
                        if "y" in axes_names:
                            scale_y = t["scale"][axes_names.index("y")]
                            pixel_size_y_nm = unit_to_nm(scale_y, units.get("y"), "µm")
                    except ValueError:
                        pixel_size_nm = pixel_size_y_nm = None
        else:
            children = sorted(p.name for p in path.iterdir() if p.is_dir())
            arrays = [
                c for c in children if (_zarr_json(path / c) or {}).get("node_type") == "array"
            ]
            if len(arrays) != 1:
                raise _fail(
                    path,
                    f"Zarr group without OME multiscales metadata holds arrays {arrays}; expected "
                    "exactly one raw array — point at the array itself",
                )
            array_path = arrays[0]
        extra["zarr_attributes"] = {k: v for k, v in attrs.items() if k != "ome"}
    array_dir = path / array_path if array_path else path
    ameta = _zarr_json(array_dir)
    if ameta is None or ameta.get("node_type") != "array":
        raise _fail(path, f"Zarr array {array_path!r} not found; the store is incomplete")
    _refuse_unsafe_zarr_array(path, ameta)
    # dtype, shape and chunk sizes from the JSON, before zarr allocates anything
    shape = tuple(int(s) for s in ameta["shape"])
    chunks = ameta.get("chunks") or ameta.get("chunk_grid", {}).get("configuration", {}).get(
        "chunk_shape"
    )
    dtype_spec = ameta.get("dtype", ameta.get("data_type"))
    try:
        dtype = _check_dtype(path, dtype_spec)
    except DataFormatError:
        raise
    except Exception as err:
        raise _fail(path, f"unsupported Zarr data type {dtype_spec!r}") from err
    if len(shape) < 3:
        raise _fail(path, f"Zarr array has shape {shape}; expected (..., angles*phases, Y, X)")
    n_frames = math.prod(shape[:-2])
    _check_frames(path, n_frames, shape[-2:])
    if chunks and math.prod(int(c) for c in chunks) * dtype.itemsize > MAX_CHUNK_BYTES:
        raise _fail(path, f"Zarr chunks {tuple(chunks)} exceed {MAX_CHUNK_BYTES} bytes each")

    import zarr

    try:
        arr = zarr.open_array(str(array_dir), mode="r")
    except Exception as err:
        raise _fail(path, f"cannot open the Zarr array ({err})") from err
    if arr.nchunks_initialized < arr.nchunks:
        raise _fail(
            path,
            f"Zarr array is incomplete: {arr.nchunks_initialized} of {arr.nchunks} chunks "
            "written — the run was interrupted or the copy is partial",
        )
    letters = ""
    if axes_names:
        letters = "".join(n[0].upper() for n in axes_names[:-2])
    lead_shape, lead_axes, order = _assign_axes(
        path, shape[:-2], letters, n_frames_per_set, shape[-2:]
    )
    full_shape = (*lead_shape, *shape[-2:])
    if full_shape == shape and order == tuple(range(len(order))):
        data: Any = arr
    else:

        def read_frames(indices: Sequence[int]) -> np.ndarray:
            out = np.empty((len(indices), *shape[-2:]), dtype=dtype)
            for k, i in enumerate(indices):
                out[k] = arr[np.unravel_index(i, shape[:-2])]
            return out

        assert n_frames == math.prod(full_shape[:-2])
        data = LazyFrames(_in_file_order(read_frames, shape[:-2], order), full_shape, dtype)
    return _file_stack(
        path, data, lead_axes, dtype, extra, **_pixel_sizes(pixel_size_nm, pixel_size_y_nm)
    )


# ---------------------------------------------------------------------------------------------


def open_raw(path: str | Path, *, n_frames_per_set: int | None = None) -> RawStack:
    """Open a raw SIM stack lazily, after checking its header.

    Parameters
    ----------
    path : str or Path
        A TIFF/OME-TIFF, MRC file, or OME-Zarr store (a folder, including runs written by
        ``scope acquire``).
    n_frames_per_set : int, optional
        ``angles * phases``. When given, the frames are grouped into sets of this size and a
        frame count that is not a multiple of it is refused.

    Returns
    -------
    RawStack
        Shaped ``(lead..., P, Y, X)``; frames are read only when indexed.

    Raises
    ------
    DataFormatError
        Unreadable, truncated or corrupt file; absurd dimensions; wrong frame count;
        unsupported pixel type; object dtypes or pickle codecs.

    Examples
    --------
    >>> stack = open_raw("raw.tif", n_frames_per_set=9)  # doctest: +SKIP
    >>> first = stack.read_set(0)  # float32 (9, Y, X)  # doctest: +SKIP
    """
    path = Path(path)
    if n_frames_per_set is not None and n_frames_per_set < 1:
        raise DataFormatError(f"n_frames_per_set must be positive, got {n_frames_per_set}")
    if not path.exists():
        raise DataFormatError(f"{path}: no such file or folder")
    run_reader = _run_reader(path)
    if run_reader is not None:  # a ``scope acquire`` run: arrival order and a frame table
        return run_reader(path, n_frames_per_set)
    if path.is_dir():
        return _open_zarr(path, n_frames_per_set)
    suffix = path.suffix.lower()
    if suffix in _TIFF_SUFFIXES:
        return _open_tiff(path, n_frames_per_set)
    if suffix in _MRC_SUFFIXES:
        return _open_mrc(path, n_frames_per_set)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _open_tiff(path, n_frames_per_set)
    raise DataFormatError(
        f"{path.name}: unknown raw format {suffix!r}; expected TIFF/OME-TIFF (.tif), MRC (.mrc) "
        "or an OME-Zarr folder (.zarr)"
    )


#: the pattern sequence assumed where neither the user nor the file says otherwise
DEFAULT_N_ANGLES = 3
DEFAULT_N_PHASES = 3
#: how a set's frames can lie in a file: angle-major, phase fastest (scope's own, the default),
#: or phase-major, angle fastest
FRAME_ORDERS = ("angle-major", "phase-major")


def frames_in_file(n_angles: int, n_phases: int, frame_order: str | None) -> np.ndarray:
    """Where the frames of a set lie in the file, in scope's order (angle-major, phase
    fastest): ``frames_in_set[frames_in_file(...)]`` is the set as scope reads it."""
    n = n_angles * n_phases
    if frame_order in (None, "angle-major"):
        return np.arange(n)
    if frame_order == "phase-major":  # file index p * n_angles + a for (angle a, phase p)
        return np.arange(n).reshape(n_phases, n_angles).T.ravel()
    raise DataFormatError(f"frame order {frame_order!r}: expected one of {FRAME_ORDERS}")


def open_sim_stack(
    path: str | Path,
    *,
    n_angles: int | None = None,
    n_phases: int | None = None,
    frame_order: str | None = None,
) -> tuple[RawStack, int, int]:
    """Open a raw file split into SIM sets of ``n_angles x n_phases`` frames.

    What is given wins; what is not comes from the file where it states it (a run of
    ``scope acquire`` records its pattern sequence, e.g. 3 angles x 5 phases), else
    3 x 3. ``frame_order="phase-major"`` reads a file whose sets hold all angles at one phase,
    then at the next (:meth:`RawStack.in_pattern_order`); the default is angle-major, phase
    fastest (:data:`FRAME_ORDERS`).

    Returns
    -------
    stack : RawStack
        As :func:`open_raw` with ``n_frames_per_set = n_angles * n_phases``.
    n_angles, n_phases : int
        The pattern sequence the sets were split by.
    """
    frames_in_file(1, 3, frame_order)  # a known order, or a clear refusal
    stack = None
    if not (n_angles and n_phases):
        stack = _run_in_its_own_sequence(Path(path))
        stated = stack.pattern_shape if stack is not None else None
        n_angles = n_angles or (stated[0] if stated else DEFAULT_N_ANGLES)
        n_phases = n_phases or (stated[1] if stated else DEFAULT_N_PHASES)
        if stack is not None and stated != (n_angles, n_phases):  # overridden: split again
            stack.close()
            stack = None
    if stack is None:
        stack = open_raw(path, n_frames_per_set=n_angles * n_phases)
    if frame_order == "phase-major":
        stack = stack.in_pattern_order(n_angles, n_phases)
    return stack, n_angles, n_phases


def _run_in_its_own_sequence(path: Path) -> RawStack | None:
    """A ``scope acquire`` run opened as its own pattern sequence splits it (its
    ``pattern_shape``); None for other files, or where the run cannot be read so (then
    :func:`open_raw` says what is wrong)."""
    try:
        if _run_reader(path) is None:
            return None  # only acquisition runs state their pattern sequence
        return open_raw(path)
    except DataFormatError:
        return None


def tiff_run_sidecars(path: str | Path) -> tuple[Path, Path]:
    """The files a ``scope acquire`` TIFF run keeps beside its frames ``path``: the frame
    journal ``<name>.frames.jsonl`` and the metadata ``<name>.meta.json``."""
    path = Path(path)
    return path.with_name(path.name + ".frames.jsonl"), path.with_name(path.name + ".meta.json")


def _states_run_layout(attrs: Any) -> bool:
    """True where metadata attributes name a ``scope acquire`` layout (``scope.layout``)."""
    scope_attrs = attrs.get("scope") if isinstance(attrs, dict) else None
    return isinstance(scope_attrs, dict) and str(scope_attrs.get("layout", "")).startswith(
        RUN_LAYOUT_PREFIX
    )


def _run_metadata(path: Path) -> Any:
    """The parsed ``<name>.meta.json`` beside a TIFF run; None where there is none (or it is
    larger than 16 MiB).

    Raises
    ------
    DataFormatError
        Where it cannot be read or parsed.
    """
    meta_path = tiff_run_sidecars(path)[1]
    if not meta_path.is_file() or meta_path.stat().st_size > _MAX_JSON_BYTES:
        return None
    try:
        return json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise _fail(path, f"unreadable acquisition metadata {meta_path.name} ({err})") from err


def _tiff_run_scope(path: Path) -> dict[str, Any]:
    """What a TIFF run's ``<name>.meta.json`` says of the run (its ``scope`` object); empty
    where there is no such file.

    Raises
    ------
    DataFormatError
        Where it cannot be read, or holds no such object.
    """
    attrs = _run_metadata(path)
    if attrs is None:
        return {}
    scope_attrs = attrs.get("scope", {}) if isinstance(attrs, dict) else None
    if not isinstance(scope_attrs, dict):
        raise _fail(
            path,
            f"unreadable acquisition metadata {path.name}.meta.json (expected a JSON object "
            "with a 'scope' object)",
        )
    return dict(scope_attrs)


def _run_reader(path: Path) -> Callable[[Path, int | None], RawStack] | None:
    """The reader of a run written by ``scope acquire`` (arrival order and a frame table):
    an OME-Zarr group whose metadata names the layout, or a TIFF with the run's frame journal
    (``<name>.frames.jsonl``) beside it; None for anything else.

    Raises
    ------
    DataFormatError
        Where a Zarr group's metadata cannot be read.
    """
    if path.is_dir():
        return _open_acquisition if _states_run_layout(_zarr_attributes(path)) else None
    if path.suffix.lower() in _TIFF_SUFFIXES and tiff_run_sidecars(path)[0].is_file():
        return _open_acquisition_tiff
    return None


def is_acquisition_run(path: str | Path) -> bool:
    """True for a run written by ``scope acquire``, judged by its metadata alone.

    An OME-Zarr group whose metadata names the run's layout, or a TIFF with the run's frame
    journal (``<name>.frames.jsonl``) or metadata (``<name>.meta.json``, layout
    ``scope-sim-raw/...``) beside it. Metadata that cannot be read makes no run (opening it
    then says what is wrong).

    Parameters
    ----------
    path : str or Path
        A file or an OME-Zarr folder.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_acquisition_run("run.zarr")  # doctest: +SKIP
    True
    """
    path = Path(path)
    try:
        if _run_reader(path) is not None:
            return True
        return not path.is_dir() and _states_run_layout(_run_metadata(path))
    except DataFormatError:
        return False


def _find_number(meta: dict[str, Any], key: str) -> float | None:
    """``key`` at the top level of the run's metadata or one level down (setup, optics ...)."""
    candidates = [meta.get(key)] + [v.get(key) for v in meta.values() if isinstance(v, dict)]
    for value in candidates:
        if isinstance(value, int | float) and math.isfinite(value) and value > 0:
            return float(value)
    return None


def _open_acquisition(path: Path, n_frames_per_set: int | None) -> RawStack:
    """A ``scope acquire`` run in OME-Zarr (arrival order + frame table)."""
    frames_meta = _zarr_json(path / "0")
    if frames_meta is None:
        raise _fail(path, "acquisition has no frame array '0'; the run is incomplete")
    _refuse_unsafe_zarr_array(path, frames_meta)
    _check_dtype(path, frames_meta.get("data_type", frames_meta.get("dtype")))
    _check_frames(path, int(frames_meta["shape"][0]), frames_meta["shape"][1:])
    from scope.acquisition.writer import read_acquisition

    frames, table, meta = read_acquisition(path)
    dtype = _check_dtype(path, frames.dtype)
    return _acquisition_stack(
        path, table, meta, lambda i: frames[i], frames.shape[-2:], dtype, n_frames_per_set
    )


def _open_acquisition_tiff(path: Path, n_frames_per_set: int | None) -> RawStack:
    """A ``scope acquire`` run in TIFF: pages in arrival order, a JSON-lines frame journal and
    a metadata side-car. Pages are read one by one (the run's reader would load them all)."""
    import tifffile

    meta = _tiff_run_scope(path)
    try:
        with tifffile.TiffFile(path) as tif:
            n_pages = len(tif.pages)
            first = tif.pages[0] if n_pages else None
            frame_shape = tuple(first.shape) if first is not None else (0, 0)
            dtype = first.dtype if first is not None else np.dtype("uint16")
    except Exception as err:
        raise _fail(path, f"not a readable TIFF file ({err})") from err
    if len(frame_shape) != 2:
        raise _fail(path, f"acquisition pages are {frame_shape}; expected 2D grey frames")
    dtype = _check_dtype(path, dtype)
    _check_frames(path, max(n_pages, 1), frame_shape)
    from scope.acquisition.writer import journal_frame_table, read_frame_journal

    table = journal_frame_table(read_frame_journal(path), n_pages)
    reader = _TiffPageReader(path, direct_pages=True)
    stack = _acquisition_stack(
        path, table, meta, lambda i: reader([i])[0], frame_shape, dtype, n_frames_per_set
    )
    stack._closer = reader.close
    return stack


def _acquisition_stack(
    path: Path,
    table: dict[str, np.ndarray],
    meta: dict[str, Any],
    read_frame: Callable[[int], np.ndarray],
    frame_shape: Sequence[int],
    dtype: np.dtype,
    n_frames_per_set: int | None,
) -> RawStack:
    """The verified SIM sets of a run, frames in pattern order, read lazily: the complete
    ones, and after the first of them those kept without their faulty frames (dropped by the
    camera, exposed off their pulse, or lit only in part as the run ended; an extra frame
    costs none): their missing frames read as zeros, which a reconstruction leaves out as
    blank frames (:class:`~scope.sim.pipeline.BlankFrameLog`), so a time point is not lost for
    one frame."""
    # the engine records its configuration (n_angles, n_phases) under "acquisition"
    conf = meta.get("acquisition") if isinstance(meta.get("acquisition"), dict) else {}
    n_a = meta.get("n_angles") or conf.get("n_angles")
    n_p = meta.get("n_phases") or conf.get("n_phases")
    stated = (int(n_a), int(n_p)) if n_a and n_p else None
    if n_frames_per_set is None and stated is not None:
        n_frames_per_set = stated[0] * stated[1]
    if n_frames_per_set is None:
        raise _fail(path, "acquisition does not state angles x phases; give --angles/--phases")
    n = int(n_frames_per_set)
    from scope.acquisition.writer import complete_sets

    sets, set_numbers = complete_sets(table, n, with_dropped=True)
    if not sets:
        said = f": the run states {stated[0]} x {stated[1]}" if stated else ""
        raise _fail(
            path,
            f"acquisition holds no complete, verified set of {n} frames (state "
            f"{meta.get('state', '?')}){said}; check --angles/--phases or the run's frame table",
        )
    index = np.stack(sets).astype(np.int64)
    ny, nx = (int(v) for v in frame_shape)
    stamps = np.asarray(table["timestamp_ns"], dtype=np.float64)[np.maximum(index, 0)]
    starts = np.where(index >= 0, stamps, np.inf).min(axis=1)
    set_times = tuple(float(t) for t in (starts - starts[0]) * 1e-9)
    with_dropped = [int(set_numbers[k]) for k in np.flatnonzero((index < 0).any(axis=1))]
    if with_dropped:
        log.info(
            "%s: %d set(s) lost a frame (%s): read with that frame blank",
            path.name,
            len(with_dropped),
            ", ".join(map(str, with_dropped[:10])) + (" ..." if len(with_dropped) > 10 else ""),
        )

    def read_frames(indices: Sequence[int]) -> np.ndarray:
        out = np.empty((len(indices), ny, nx), dtype=dtype)
        for k, i in enumerate(indices):
            frame = int(index.flat[i])
            out[k] = read_frame(frame) if frame >= 0 else 0  # dropped by the camera: blank
        return out

    full_shape = (len(sets), n, ny, nx) if len(sets) > 1 else (n, ny, nx)
    if meta.get("state") != "complete":
        log.warning(
            "%s: run state is %r; using its %d complete sets", path, meta.get("state"), len(sets)
        )
    return RawStack(
        data=LazyFrames(read_frames, full_shape, dtype),
        shape=full_shape,
        dtype=dtype,
        axes=("TPYX" if len(sets) > 1 else "PYX"),
        path=path,
        pixel_size_nm=_find_number(meta, "pixel_size_nm"),
        wavelength_nm=_find_number(meta, "wavelength_nm"),
        na=_find_number(meta, "na"),
        pattern_shape=stated,
        set_times_s=set_times,
        metadata={
            "format": "scope-acquisition",
            "state": meta.get("state"),
            "acquisition": meta,
            "sets": set_numbers,  # the run's set number of each SIM set read
            "sets_with_dropped_frames": with_dropped,  # of those, the ones missing a frame
        },
    )
