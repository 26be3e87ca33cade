"""Streaming writer for raw SIM acquisitions: every frame on disk as it arrives.

Layout (OME-Zarr, zarr v3, NGFF 0.5-style metadata)
---------------------------------------------------
We store frames **in arrival order**, one chunk per frame, not in a ``(set, frame, y, x)`` grid:
an extra frame (one the camera shot without a controller pulse) has no slot in a grid, and a
dropped frame would leave a hole. Arrival order keeps every frame exactly once; the per-frame
table says where each belongs::

    run.zarr/
      zarr.json          group attributes: "ome" (NGFF multiscales, axes t/y/x) and "scope"
      0/                 uint8/uint16 (n_frames, Y, X), chunks (1, Y, X)
      frame_table/       int64 (n_frames, 10), columns FRAME_COLUMNS, chunks (256, 10)

The NGFF axis ``t`` is the frame index in arrival order (type ``time``); ``y`` and ``x`` are in
micrometres (scale = pixel size at the sample). ``attrs["scope"]`` holds the layout name
(``"scope-sim-raw/arrival-order"``), the table's column names, the optical setup, the SIM
pattern parameters, the acquisition settings, and the run's ``state`` (``acquiring`` while
running, then ``complete`` or ``aborted`` with the ``reason``).

Frame-table columns: ``set`` (SIM set index, -1 when unknown), ``angle``, ``phase``, ``pattern``
(index in the controller's sequence; -1 for a frame without a pulse), ``camera_frame_id``,
``controller_count`` (the controller's pulse number, 1-based; -1 when none), ``timestamp_ns``
(host monotonic clock), ``valid`` (1 = part of a verified set, 0 = not, 2 = a verified frame
of a set whose only faults are missing, unusable or extra frames: the camera dropped a frame,
exposed one off its pulse or an extra one, or the end of the run cut an exposure short; -1 =
not decided yet),
``written`` (1 once the pixels are on disk), ``index`` (arrival index).

Crash safety: capacity grows in blocks and the pixels of each frame are written before its table
row says ``written = 1``, so a reader after a crash (even SIGKILL) trims to the rows written. No
metadata has to be rewritten per frame.

OME-TIFF option: frames are appended page by page (BigTIFF, tifffile) and the OME-XML (axes
TYX, physical pixel size) is put into the first page's description at close; the table goes to a
JSON-lines journal ``<name>.frames.jsonl`` flushed per frame (validity decisions appended as
they are made) and the metadata to ``<name>.meta.json``. The Zarr layout is the robust choice
for runs that might be killed; the TIFF is closed (and readable) on every Python error path.

Staged start (``staged=True``, what the acquisition engine uses): the run is written under a
hidden name beside the target (``.run.zarr.starting``) until its first frame is on disk; only
then does it take its name, replacing an earlier run when ``overwrite`` was asked for. A run
that fails before its first frame leaves nothing behind and an earlier run untouched.

A full disk (or a file-size limit) stops the run with :class:`DiskFullError`, which says how
many frames are on disk; :func:`read_acquisition` reads every complete frame of a file cut
short that way.

References
----------
OME-NGFF 0.5: https://ngff.openmicroscopy.org/0.5/ ; zarr v3 spec:
https://zarr-specs.readthedocs.io/en/latest/v3/core/v3.0.html
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from scope.errors import AcquisitionError, ConfigurationError, DataFormatError
from scope.io.raw import tiff_run_sidecars
from scope.io.writers import remove_path, write_atomically, write_bytes_atomically

log = logging.getLogger(__name__)

FRAME_COLUMNS: tuple[str, ...] = (
    "set",
    "angle",
    "phase",
    "pattern",
    "camera_frame_id",
    "controller_count",
    "timestamp_ns",
    "valid",
    "written",
    "index",
)
_COL = {name: i for i, name in enumerate(FRAME_COLUMNS)}
LAYOUT = "scope-sim-raw/arrival-order"
_TABLE_CHUNK = 256
_GROW = 256
#: suffixes of the formats the writer knows (case does not matter)
ZARR_SUFFIXES = (".zarr",)
TIFF_SUFFIXES = (".tif", ".tiff")


class DiskFullError(AcquisitionError, OSError):
    """The disk (or the file-size limit) ran out while frames were written; the frames before
    it are on disk and readable."""


def output_format(path: str | Path) -> Literal["zarr", "tiff"]:
    """``"zarr"`` for ``*.zarr``, ``"tiff"`` for ``*.ome.tif``/``*.tif``/``*.tiff``; any other
    name is refused (a run named ``run.h5`` would otherwise be a Zarr folder in disguise)."""
    suffix = Path(path).suffix.lower()
    if suffix in ZARR_SUFFIXES:
        return "zarr"
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    raise ConfigurationError(
        f"cannot tell the format of the output {Path(path).name!r}: name it run.zarr (OME-Zarr, "
        "the robust choice) or run.ome.tif (OME-TIFF)"
    )


@dataclass
class FrameTag:
    """Where a frame belongs; -1 where unknown."""

    set: int = -1
    angle: int = -1
    phase: int = -1
    pattern: int = -1
    camera_frame_id: int = -1
    controller_count: int = -1
    timestamp_ns: int = 0
    valid: int = -1


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return _jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return str(obj)


def _ngff_attrs(pixel_size_um: float | None, name: str) -> dict[str, Any]:
    scale = [1.0, pixel_size_um or 1.0, pixel_size_um or 1.0]
    space = {"type": "space", "unit": "micrometer"} if pixel_size_um else {"type": "space"}
    return {
        "version": "0.5",
        "multiscales": [
            {
                "name": name,
                "axes": [
                    {"name": "t", "type": "time"},
                    {"name": "y", **space},
                    {"name": "x", **space},
                ],
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
                ],
            }
        ],
    }


class AcquisitionWriter:
    """Streams frames of a run to OME-Zarr (default) or OME-TIFF.

    Parameters
    ----------
    path : path
        ``*.zarr`` for OME-Zarr, ``*.tif``/``*.tiff`` for OME-TIFF (or give ``format``).
    frame_shape : (Y, X)
    dtype : numpy dtype of the frames
    metadata : dict
        Optical setup, pattern parameters, acquisition settings ... (JSON-able; pydantic models
        and dataclasses are converted).
    pixel_size_nm : float, optional
        Pixel size at the sample, for the NGFF/OME physical scale.
    overwrite : bool
        Replace an existing file; otherwise an existing path is an error.
    staged : bool
        Write under a hidden name beside ``path`` until the first frame is on disk, then take
        ``path`` (replacing an earlier run only then); a writer closed with no frame leaves
        nothing behind. Default False: ``path`` is created at once.

    Examples
    --------
    >>> with AcquisitionWriter("run.zarr", (64, 64), "uint16") as w:  # doctest: +SKIP
    ...     i = w.append(frame, FrameTag(camera_frame_id=1, timestamp_ns=0))
    ...     w.update(i, set=0, angle=0, phase=0, pattern=0, controller_count=1)
    ...     w.set_valid([i], True)
    """

    def __init__(
        self,
        path: str | Path,
        frame_shape: tuple[int, int],
        dtype: Any,
        *,
        metadata: dict[str, Any] | None = None,
        pixel_size_nm: float | None = None,
        format: Literal["zarr", "tiff"] | None = None,
        overwrite: bool = False,
        staged: bool = False,
    ) -> None:
        self.path = Path(path)
        fmt = format or output_format(self.path)
        if fmt not in ("zarr", "tiff"):
            raise ConfigurationError(f"format must be 'zarr' or 'tiff', got {fmt!r}")
        if self.path.exists() and not overwrite:
            raise ConfigurationError(
                f"{self.path} exists: choose another name or pass overwrite=True (--overwrite)"
            )
        #: where the run ends up; ``path`` is the hidden staging name until the first frame
        self.final_path = self.path
        self.overwrite = overwrite
        self.staged = bool(staged)
        #: True once the run carries its final name (at once unless ``staged``)
        self.published = not self.staged
        #: True when a staged run was closed before its first frame and removed
        self.discarded = False
        if self.staged:
            self.path = self.final_path.with_name(f".{self.final_path.name}.starting")
            # a start that crashed left no frame: clear its leftovers
            for leftover in (self.path, *tiff_run_sidecars(self.path)):
                remove_path(leftover)
        if len(frame_shape) != 2:
            raise ConfigurationError(f"frame_shape must be (Y, X), got {frame_shape}")
        self.format = fmt
        self.frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        self.dtype = np.dtype(dtype)
        self.pixel_size_nm = pixel_size_nm
        self.n_frames = 0
        self.closed = False
        self._rows: np.ndarray = np.zeros((0, len(FRAME_COLUMNS)), np.int64)
        self._dirs: set[str] = set()
        self._attrs: dict[str, Any] = {
            "layout": LAYOUT,
            "frame_columns": list(FRAME_COLUMNS),
            "frame_shape": list(self.frame_shape),
            "dtype": self.dtype.str,
            "pixel_size_nm": pixel_size_nm,
            "state": "acquiring",
            "reason": "",
            "started_unix_s": time.time(),
            **_jsonable(metadata or {}),
        }
        try:
            if fmt == "zarr":
                self._open_zarr(overwrite or self.staged)
            else:
                self._open_tiff(overwrite or self.staged)
        except OSError as err:
            if self.staged:  # (an error here must not hide the one being raised)
                for leftover in (self.path, *tiff_run_sidecars(self.path)):
                    remove_path(leftover, ignore_errors=True)
            raise self._storage_error(err, "creating") from err
        staging = f" (as {self.path.name} until its first frame)" if self.staged else ""
        log.info("writing %s (%s, %s %s)%s", self.final_path, fmt, self.frame_shape,
                 self.dtype, staging)  # fmt: skip

    # -- opening ---------------------------------------------------------------------------
    def _open_zarr(self, overwrite: bool) -> None:
        import zarr

        self._group = zarr.open_group(self.path, mode="w" if overwrite else "w-", zarr_format=3)
        self._group.attrs.update(
            {"ome": _ngff_attrs(self._px_um(), self.final_path.stem), "scope": self._attrs}
        )
        # uncompressed, default chunk-key encoding ("c/<i>/<j>/<k>"), so that chunks can be
        # written straight to their files (see _write_chunk)
        self._frames = self._group.create_array(
            "0", shape=(_GROW, *self.frame_shape), chunks=(1, *self.frame_shape),
            dtype=self.dtype, fill_value=0, compressors=None,
        )  # fmt: skip
        self._table = self._group.create_array(
            "frame_table", shape=(_GROW, len(FRAME_COLUMNS)),
            chunks=(_TABLE_CHUNK, len(FRAME_COLUMNS)), dtype="int64", fill_value=0,
            compressors=None,
        )  # fmt: skip
        for arr in (self._frames, self._table):
            codecs = [c.get("name") for c in arr.metadata.to_dict().get("codecs", [])]
            if codecs != ["bytes"]:
                raise DataFormatError(f"unexpected codecs {codecs} for a streaming array")

    def _write_chunk(
        self, array: str, key: tuple[int, ...], data: np.ndarray, *, atomic: bool = True
    ) -> None:
        """Write one chunk file directly (zarr v3 "bytes" codec, little-endian, uncompressed).

        zarr-python's own path goes through its asyncio loop thread and costs ~3-5 ms per call
        on a busy machine; a plain file write costs ~0.05 ms, which keeps the emulator's and
        camera's threads on time. The file layout is the zarr v3 default chunk-key encoding, so
        any zarr reader reads it. ``atomic``: written to a temporary name and renamed, so a
        table chunk is either the old or the new one, never half written.
        """
        path = os.path.join(self.path, array, "c", *map(str, key))
        parent = os.path.dirname(path)
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        raw = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<")).tobytes()
        if not atomic:  # a torn pixel chunk can only be the newest frame, whose row is unwritten
            with open(path, "wb") as fh:
                fh.write(raw)
            return
        write_bytes_atomically(path, raw, tmp=path + ".partial")

    def _px_um(self) -> float | None:
        return self.pixel_size_nm / 1000.0 if self.pixel_size_nm else None

    def _open_tiff(self, overwrite: bool) -> None:
        import tifffile

        self._journal_path, self._meta_path = tiff_run_sidecars(self.path)
        for p in (self._journal_path, self._meta_path):
            if p.exists() and overwrite:
                p.unlink()
        self._tiff = tifffile.TiffWriter(self.path, bigtiff=True)
        self._journal = open(self._journal_path, "w", encoding="utf-8")  # noqa: SIM115
        self._write_meta()

    def _write_meta(self) -> None:
        if self.format == "zarr":
            self._group.attrs["scope"] = self._attrs
        else:  # written whole, then renamed: a full disk keeps the previous version
            text = json.dumps({"scope": self._attrs}, indent=1)
            write_atomically(
                self._meta_path,
                lambda tmp: tmp.write_text(text),
                tmp=self._meta_path.with_name(self._meta_path.name + ".partial"),
            )

    # -- staging ---------------------------------------------------------------------------
    def _publish(self) -> None:
        """The first frame is on disk: the staged run takes its final name (an earlier run
        there, replaced with ``overwrite``, is moved aside first and removed last)."""
        final = self.final_path
        moves = [(self.path, final)]
        if self.format == "tiff":
            moves += list(zip(tiff_run_sidecars(self.path), tiff_run_sidecars(final), strict=True))
        if (final.exists() or final.is_symlink()) and not self.overwrite:
            raise ConfigurationError(
                f"{final} appeared while the run started; its frames are in {self.path}"
            )
        replaced = []
        for _, dst in moves:
            if dst.exists() or dst.is_symlink():
                aside = dst.with_name(f".{dst.name}.replaced")
                remove_path(aside)
                os.replace(dst, aside)
                replaced.append(aside)
        for src, dst in moves:
            if src.exists():
                os.replace(src, dst)
        self.path = final
        self.published = True
        if self.format == "zarr":  # reopen where it now lies
            import zarr

            self._group = zarr.open_group(self.path, mode="r+", zarr_format=3)
            self._frames = self._group["0"]
            self._table = self._group["frame_table"]
            self._dirs.clear()
        else:  # the open TIFF and journal handles follow their files
            self._journal_path, self._meta_path = tiff_run_sidecars(self.path)
        for old in replaced:
            remove_path(old)
        if replaced:
            log.info("the earlier run %s is replaced by this one (--overwrite)", final)

    def _discard(self) -> None:
        """A staged run closed before its first frame: nothing to keep."""
        if self.format == "tiff":
            for fh in (self._tiff, self._journal):
                try:
                    fh.close()
                except Exception as err:  # nothing was written that could be lost
                    log.debug("closing %s: %s", self.path, err)
        for leftover in (self.path, *tiff_run_sidecars(self.path)):
            remove_path(leftover)
        self.discarded = True

    def _storage_error(self, err: OSError, doing: str) -> OSError:
        """``err`` as :class:`DiskFullError` when the disk or the file-size limit ran out."""
        full = err.errno in (errno.ENOSPC, errno.EDQUOT)
        if err.errno is None:  # a short write (tifffile: "N requested and M written")
            with_free = self.path.parent if self.path.parent.exists() else Path(".")
            try:
                full = shutil.disk_usage(with_free).free < 4 * max(self._frame_bytes, 65536)
            except OSError:
                full = False
        if not (full or err.errno == errno.EFBIG):
            return err
        what = (
            "the file reached this process's file-size limit (ulimit -f)"
            if err.errno == errno.EFBIG
            else "the disk is full"
        )
        where = self.final_path if self.published else self.path
        kept = (
            f"{self.n_frames} frames are on disk in {where}"
            if self.published
            else f"nothing was written and {self.final_path} was left as it was"
        )
        return DiskFullError(
            f"{what} ({doing} frame {self.n_frames + 1}: {err}): {kept}; free some space or "
            "write to another disk, then acquire again"
        )

    @property
    def _frame_bytes(self) -> int:
        return self.frame_shape[0] * self.frame_shape[1] * self.dtype.itemsize

    # -- writing ---------------------------------------------------------------------------
    def append(self, data: np.ndarray, tag: FrameTag | None = None) -> int:
        """Write one frame now; returns its arrival index."""
        if self.closed:
            raise DataFormatError(f"{self.path} is closed: no more frames can be written")
        data = np.asarray(data)
        if data.shape != self.frame_shape:
            raise DataFormatError(
                f"frame shape {data.shape} differs from the run's {self.frame_shape}: "
                "the ROI must not change during a run"
            )
        tag = tag or FrameTag()
        i = self.n_frames
        row = np.array(
            [tag.set, tag.angle, tag.phase, tag.pattern, tag.camera_frame_id,
             tag.controller_count, tag.timestamp_ns, tag.valid, 1, i], np.int64,
        )  # fmt: skip
        if i >= self._rows.shape[0]:
            self._rows = np.concatenate(
                [self._rows, np.zeros((_GROW, len(FRAME_COLUMNS)), np.int64)]
            )
        self._rows[i] = row
        try:
            if self.format == "zarr":
                if i >= self._frames.shape[0]:
                    n = self._frames.shape[0] + _GROW
                    self._frames.resize((n, *self.frame_shape))
                    self._table.resize((n, len(FRAME_COLUMNS)))
                pixels = data.astype(self.dtype, copy=False)
                self._write_chunk("0", (i, 0, 0), pixels, atomic=False)  # pixels first ...
                self._flush_rows(i, i + 1)  # ... then the row that says they are there
            else:
                # plain pages while streaming (readable after a crash); OME-XML added at close
                self._tiff.write(
                    data.astype(self.dtype, copy=False), contiguous=False, metadata=None,
                    description=(
                        f"{LAYOUT} (streaming; OME-XML written at close)" if i == 0 else None
                    ),
                )  # fmt: skip
                self._journal.write(json.dumps({"row": row.tolist()}) + "\n")
                self._journal.flush()
        except OSError as err:
            self._rows[i] = 0
            raise self._storage_error(err, "writing") from err
        self.n_frames += 1
        if not self.published:
            self._publish()
        return i

    def _flush_rows(self, start: int, stop: int) -> None:
        if self.format == "zarr":
            c0 = start // _TABLE_CHUNK * _TABLE_CHUNK
            c1 = min(-(-stop // _TABLE_CHUNK) * _TABLE_CHUNK, self._table.shape[0])
            for c in range(c0, c1, _TABLE_CHUNK):
                self._write_chunk(
                    "frame_table", (c // _TABLE_CHUNK, 0), self._rows[c : c + _TABLE_CHUNK]
                )
        else:
            for i in range(start, stop):
                self._journal.write(json.dumps({"row": self._rows[i].tolist()}) + "\n")
            self._journal.flush()

    def update(self, index: int | list[int], **columns: Any) -> None:
        """Change table columns of written frames (e.g. the tag once a frame is matched).

        Each column value is one number for all ``index`` entries or one per entry; all rows
        are written in one go (one chunk write per table chunk touched).
        """
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        if idx.size == 0:
            return
        if idx.min() < 0 or idx.max() >= self.n_frames:
            raise DataFormatError(f"frame index out of range 0..{self.n_frames - 1}: {idx}")
        for name, value in columns.items():
            if name not in _COL or name in ("written", "index"):
                raise ConfigurationError(f"unknown or read-only column {name!r}")
            self._rows[idx, _COL[name]] = np.asarray(value, dtype=np.int64)
        if self.format == "zarr":
            for chunk in np.unique(idx // _TABLE_CHUNK):
                self._flush_rows(int(chunk) * _TABLE_CHUNK, int(chunk) * _TABLE_CHUNK + 1)
        else:
            for i in idx:
                self._journal.write(json.dumps({"row": self._rows[i].tolist()}) + "\n")
            self._journal.flush()

    def set_valid(self, indices: list[int], valid: bool) -> None:
        """Record the verdict on a set's frames (1 = verified, 0 = invalid)."""
        self.update(list(indices), valid=1 if valid else 0)

    def row(self, index: int) -> dict[str, int]:
        return dict(zip(FRAME_COLUMNS, self._rows[index].tolist()))

    def set_metadata(self, **items: Any) -> None:
        """Add or replace entries of the run's metadata (written at once)."""
        self._attrs.update(_jsonable(items))
        if not self.closed:
            self._write_meta()

    def close(self, *, state: str = "complete", reason: str = "") -> None:
        """Finish the file: trim to the frames written and record the state. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if not self.published:
            if self.n_frames == 0:
                self._discard()
                log.info("no frame was written: %s not created (%s %s)", self.final_path, state,
                         reason)  # fmt: skip
                return
            log.error("the run could not take the name %s: its %d frames are in %s",
                      self.final_path, self.n_frames, self.path)  # fmt: skip
        self._attrs.update(
            state=state, reason=reason, n_frames=self.n_frames, stopped_unix_s=time.time()
        )
        try:
            if self.format == "zarr":
                self._frames.resize((self.n_frames, *self.frame_shape))
                self._table.resize((self.n_frames, len(FRAME_COLUMNS)))
                if self.n_frames:
                    self._flush_rows(0, self.n_frames)
                self._write_meta()
            else:
                try:
                    self._tiff.close()
                    if self.n_frames:
                        self._write_ome_xml()
                finally:
                    try:
                        self._journal.close()
                    finally:
                        self._write_meta()
        finally:
            log.info("closed %s: %d frames, %s %s", self.path, self.n_frames, state, reason)

    def _write_ome_xml(self) -> None:
        import tifffile

        n, (y, x) = self.n_frames, self.frame_shape
        px = self._px_um()
        physical = (
            {"PhysicalSizeX": px, "PhysicalSizeY": px, "PhysicalSizeXUnit": "µm",
             "PhysicalSizeYUnit": "µm"} if px else {}
        )  # fmt: skip
        ome = tifffile.OmeXml()
        ome.addimage(self.dtype, (n, y, x), (n, 1, 1, y, x, 1), axes="TYX", **physical)
        tifffile.tiffcomment(self.path, ome.tostring().encode("utf-8"))

    def __enter__(self) -> AcquisitionWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.close(state="aborted", reason=f"{exc_type.__name__}: {exc}")


# ----------------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------------
def _table_as_dict(rows: np.ndarray) -> dict[str, np.ndarray]:
    return {name: rows[:, i].copy() for i, name in enumerate(FRAME_COLUMNS)}


def read_acquisition(path: str | Path) -> tuple[Any, dict[str, np.ndarray], dict[str, Any]]:
    """Open a run written by :class:`AcquisitionWriter` (also after a crash).

    Returns
    -------
    frames : array-like (n_frames, Y, X)
        A zarr array (lazy) for OME-Zarr, a numpy array for OME-TIFF; arrival order.
    frame_table : dict of str -> numpy.ndarray
        One int64 array per column of :data:`FRAME_COLUMNS`, ``n_frames`` long.
    metadata : dict
        The run's metadata (``attrs["scope"]``), ``state`` says whether it finished.
    """
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path} does not exist: give the path of an acquired run")
    if path.is_dir():
        import zarr

        try:
            group = zarr.open_group(path, mode="r")
            meta = dict(group.attrs["scope"])
            rows = np.asarray(group["frame_table"][:])
            frames = group["0"]
        except (KeyError, FileNotFoundError, ValueError) as err:
            raise DataFormatError(
                f"{path} is not a scope acquisition (expected a zarr group with '0', "
                f"'frame_table' and attrs['scope']): {err}"
            ) from err
        # rows are written in order after their pixels: trim at the first row not written
        written = rows[:, _COL["written"]] == 1
        n = int(np.argmin(written)) if not written.all() else len(written)
        n = min(n, frames.shape[0])
        return frames[:n] if n < frames.shape[0] else frames, _table_as_dict(rows[:n]), meta
    journal, meta_path = tiff_run_sidecars(path)
    meta = json.loads(meta_path.read_text())["scope"] if meta_path.exists() else {}
    latest = read_frame_journal(path)
    # rows are journalled after their page: a page beyond them may be cut short
    n_rows = journal_frame_count(latest)
    shape = tuple(meta.get("frame_shape") or ())
    pages = _complete_pages(path, shape, n_rows if journal.exists() else None)
    if pages:
        frames = np.stack(pages)
    else:
        frames = np.zeros((0, *(shape or (0, 0))), np.dtype(meta.get("dtype", "uint16")))
    n = journal_frame_count(latest, limit=len(frames))
    return frames[:n], journal_frame_table(latest, limit=n), meta


def read_frame_journal(path: str | Path) -> dict[int, list[int]]:
    """The frame table rows an OME-TIFF run journalled (``<name>.frames.jsonl``), by frame
    index: the last row written for each frame (validity decisions come as later rows). Lines
    cut short by a crash are skipped; no journal gives no rows. The pixels are not read."""
    path = Path(path)
    journal = tiff_run_sidecars(path)[0]
    latest: dict[int, list[int]] = {}
    if not journal.is_file():
        return latest
    with open(journal, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = [int(v) for v in json.loads(line)["row"]]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
            if len(row) == len(FRAME_COLUMNS):
                latest[row[_COL["index"]]] = row
    return latest


def journal_frame_count(latest: dict[int, list[int]], limit: int | None = None) -> int:
    """How many frames, from the first, a frame journal confirms: frame indices ``0, 1, ...``
    up to the first gap (at most ``limit``).

    Rows are journalled after their pixels, so a frame after a gap (or with no row) was never
    confirmed on disk.

    Parameters
    ----------
    latest : dict of int -> list of int
        The journal's rows by frame index (:func:`read_frame_journal`).
    limit : int, optional
        At most this many (e.g. the pages the file holds).

    Returns
    -------
    int
    """
    n = 0
    while (limit is None or n < limit) and n in latest:
        n += 1
    return n


def journal_frame_table(
    latest: dict[int, list[int]], limit: int | None = None
) -> dict[str, np.ndarray]:
    """The frame table of the frames a journal confirms (:func:`journal_frame_count`): one
    int64 array per column of :data:`FRAME_COLUMNS`."""
    n = journal_frame_count(latest, limit)
    rows = np.array([latest[i] for i in range(n)], np.int64).reshape(n, len(FRAME_COLUMNS))
    return _table_as_dict(rows)


def _complete_pages(path: Path, shape: tuple[int, ...], limit: int | None) -> list[np.ndarray]:
    """The frames of a streamed TIFF up to the first page that is cut short or unreadable
    (a run stopped by a full disk ends in one), at most ``limit``."""
    import tifffile

    pages: list[np.ndarray] = []
    with tifffile.TiffFile(path) as tif:
        try:
            for page in tif.pages:
                if limit is not None and len(pages) >= limit:
                    break
                data = page.asarray()
                if shape and data.shape != shape:
                    raise DataFormatError(f"page {len(pages)} is {data.shape}, not {shape}")
                pages.append(data)
        except Exception as err:  # a truncated file: keep the complete frames before it
            log.warning("%s: the frames end after frame %d (%s); the file was cut short, e.g. "
                        "by a full disk", path, len(pages), err)  # fmt: skip
    return pages


def complete_sets(
    frame_table: dict[str, np.ndarray], n_frames_per_set: int, *, with_dropped: bool = False
) -> tuple[list[np.ndarray], list[int]]:
    """The verified, complete SIM sets of a run: each set's frame indices in pattern order,
    and its set number.

    Only frames with ``valid == 1`` count; a set counts only when all ``n`` of its frames are
    there, each pattern once (others are skipped with a warning). ``with_dropped`` also
    returns the sets kept without their faulty frames (``valid == 2``), after the
    first complete set, with -1 where a pattern's frame is missing (a reconstruction leaves it
    out: :class:`~scope.sim.pipeline.BlankFrameLog`).
    """
    t = frame_table
    ok = t["valid"] == 1
    partial = (t["valid"] == 2) if with_dropped else np.zeros_like(ok)
    rows: list[np.ndarray] = []
    numbers: list[int] = []
    index = t["index"] if "index" in t else np.arange(len(t["valid"]))
    for s in np.unique(t["set"][ok | partial]):
        sel = np.flatnonzero(ok & (t["set"] == s))
        if not len(sel):  # frames kept from a set with a dropped frame
            if not rows:
                continue  # a series starts at a complete set (its pattern is estimated there)
            sel = np.flatnonzero(partial & (t["set"] == s))
            patterns = t["pattern"][sel]
            if len(np.unique(patterns)) != len(sel) or not np.all(
                (patterns >= 0) & (patterns < n_frames_per_set)
            ):
                continue
            order = np.full(n_frames_per_set, -1, np.int64)
            order[patterns] = index[sel]
            rows.append(order)
            numbers.append(int(s))
            continue
        order = sel[np.argsort(t["pattern"][sel], kind="stable")]
        if len(order) != n_frames_per_set or not np.array_equal(
            t["pattern"][order], np.arange(n_frames_per_set)
        ):
            log.warning(
                "set %d has %d valid frames, expected one per pattern (%d): skipped",
                int(s),
                len(order),
                n_frames_per_set,
            )
            continue
        rows.append(index[order])
        numbers.append(int(s))
    return rows, numbers


def valid_sets(
    frames: Any, frame_table: dict[str, np.ndarray], n_frames_per_set: int
) -> tuple[np.ndarray, np.ndarray]:
    """The verified SIM sets of a run, stacked ``(n_sets, n, Y, X)`` in pattern order.

    Only frames with ``valid == 1`` are used; a set appears only when all ``n`` of its frames
    are there, each pattern once (:func:`complete_sets`).

    Returns
    -------
    sets : numpy.ndarray (n_sets, n, Y, X)
    set_indices : numpy.ndarray (n_sets,) the set numbers.
    """
    rows, numbers = complete_sets(frame_table, n_frames_per_set)
    if not rows:
        y, x = frames.shape[-2:] if len(frames.shape) == 3 else (0, 0)
        return np.zeros((0, n_frames_per_set, y, x)), np.zeros(0, np.int64)
    sets = [np.stack([np.asarray(frames[int(i)]) for i in order]) for order in rows]
    return np.stack(sets), np.array(numbers, np.int64)
