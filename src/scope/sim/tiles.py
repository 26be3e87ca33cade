"""Reconstruction in overlapping tiles, for a pattern that changes across the field.

One wave vector and one phase per frame describe the pattern of an ideal microscope. In a built
one the illumination optics distort the projected grating a little (a pico projector's lens, a
relay of stock achromats, a tilted pattern plane): the local period and angle drift across the
field, and the phase that a single global pattern predicts falls behind the true one by
``2 pi k . (D(r) - r)`` for a distortion ``D``. The error grows with the distance from where
the pattern was estimated (the centre of the field, see ``EstimationSettings.max_size``): on a
1024-pixel field, a radial distortion of 1 % at the corners displaces the pattern there by
nearly two periods, and the SIM image shows each filament twice.

Here the frame is cut into overlapping square tiles (:class:`TileGrid`); each tile's pattern is
estimated on the tile alone, with the global estimate as the search window
(:func:`estimate_tiled_parameters`); tiles with too little structure to estimate on keep the
global pattern, referred to their own origin. :func:`pattern_drift_rad` says how far each
tile's pattern lies from the global one (the phase at the tile's centre), which decides
whether tiles are needed at all. :class:`TiledReconstructor` reconstructs each tile with its own
cached operator and blends the tiles with linear ramps across their overlaps (weights that sum
to one), after one camera-defect repair and with one camera offset for the whole frame, so that
neighbouring tiles agree.

References
----------
Patterns distorted by aberrations and their effect on SIM: Yeh, Tian & Waller, "Structured
illumination microscopy with unknown patterns and a statistical prior", Biomed. Opt. Express 8,
695 (2017), which instead estimates the patterns pixel by pixel. Parameter precision needed per
region: Lahrberg et al., "Accurate estimation of the illumination pattern's orientation and
wavelength in sinusoidal structured illumination microscopy", Appl. Opt. 57, 1019 (2018).
Here the pattern is taken as locally straight (piecewise-constant parameters), which keeps each
tile's reconstruction the fast linear one.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from scope.backend import Backend, get_backend
from scope.errors import ConfigurationError, ReconstructionError
from scope.optics import OTF, OpticalSetup
from scope.sim.defects import DefectPixels, find_defect_pixels, no_defects
from scope.sim.estimate import EstimationSettings, estimate_parameters
from scope.sim.params import AngleParameters, SIMParameters
from scope.sim.reconstruct import ReconstructionSettings, SIMReconstructor, estimate_camera_offset

log = logging.getLogger(__name__)

#: default tile side, camera pixels (the estimation's own working size)
TILE_PX = 256

#: default overlap of neighbouring tiles, camera pixels
OVERLAP_PX = 64

#: a tile whose pattern phase differs from the global pattern's by more than this (at the tile's
#: centre, any angle) makes ``tiles="auto"`` reconstruct in tiles (a phase error of 0.2 rad raises
#: the error of the acceptance case against the ideal-SIM target from 0.104 to 0.116)
DRIFT_TOLERANCE_RAD = 0.2

#: the smallest tiles ``tiles="auto"`` goes down to, camera pixels
MIN_TILE_PX = 128

#: the finer tiles are used only when at least this share of them show their pattern
MIN_ESTIMATED_SHARE = 0.75

#: the words of ``--tiles`` and the ``tiles`` settings
TILE_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class TileGrid:
    """Overlapping tiles covering a frame.

    Tiles are ``tile_px`` square (or the whole side where it is at most ``tile_px +
    overlap_px``) and spread evenly so that neighbours overlap by at least ``overlap_px``.

    Attributes
    ----------
    shape : (int, int)
        Frame shape (camera pixels).
    tile_px, overlap_px : int
    row_starts, col_starts : tuple of int
        First row and column of each tile row and column.
    """

    shape: tuple[int, int]
    tile_px: int
    overlap_px: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    @classmethod
    def covering(
        cls, shape: tuple[int, int], tile_px: int = TILE_PX, overlap_px: int = OVERLAP_PX
    ) -> TileGrid:
        """The grid of ``tile_px`` tiles overlapping by at least ``overlap_px`` over ``shape``."""
        if tile_px < 64:
            raise ConfigurationError(
                f"tiles must be at least 64 camera pixels wide to hold enough pattern periods "
                f"for estimation, got {tile_px}"
            )
        if not 8 <= 2 * overlap_px <= tile_px:
            raise ConfigurationError(
                f"the tile overlap must be 4 to {tile_px // 2} pixels (half a tile), got "
                f"{overlap_px}"
            )

        def starts(n: int) -> tuple[int, ...]:
            if n <= tile_px + overlap_px:  # one tile, the whole side
                return (0,)
            count = math.ceil((n - overlap_px) / (tile_px - overlap_px))
            return tuple(round(i * (n - tile_px) / (count - 1)) for i in range(count))

        shape = (int(shape[0]), int(shape[1]))
        return cls(shape, tile_px, overlap_px, starts(shape[0]), starts(shape[1]))

    @property
    def tile_shape(self) -> tuple[int, int]:
        """Tiles are ``tile_px`` along an axis, or the whole axis where it holds one tile."""
        return tuple(  # type: ignore[return-value]
            n if len(starts) == 1 else self.tile_px
            for n, starts in zip(self.shape, (self.row_starts, self.col_starts), strict=True)
        )

    @property
    def origins(self) -> list[tuple[int, int]]:
        """Top-left pixel of each tile, row by row."""
        return [(y, x) for y in self.row_starts for x in self.col_starts]

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def window(self, index: int) -> tuple[slice, slice]:
        """The frame region of tile ``index`` (camera pixels)."""
        y0, x0 = self.origins[index]
        ty, tx = self.tile_shape
        return slice(y0, y0 + ty), slice(x0, x0 + tx)

    def weights(self, index: int, upsampling: int = 1) -> np.ndarray:
        """Blending weights of tile ``index`` on a grid ``upsampling`` times finer.

        Linear ramps across each overlap, 1 elsewhere, normalised so that the weights of all
        tiles sum to one at every pixel of the frame.
        """
        n_cols = len(self.col_starts)
        iy, ix = divmod(index, n_cols)
        wy = _axis_weights(self.row_starts, self.tile_shape[0], self.shape[0], upsampling)[iy]
        wx = _axis_weights(self.col_starts, self.tile_shape[1], self.shape[1], upsampling)[ix]
        return np.outer(wy, wx).astype(np.float32)


def _axis_weights(starts: tuple[int, ...], size: int, n: int, up: int) -> list[np.ndarray]:
    """1D weights of each tile of a row of tiles along an axis of ``n`` pixels: ramps across
    the overlaps with the neighbours, divided by their sum over all tiles (neighbours that
    overlap by more than half a tile would otherwise not add up to one)."""
    raw = []
    for i, start in enumerate(starts):
        w = np.ones(size * up)
        if i > 0:
            m = (starts[i - 1] + size - start) * up
            w[:m] = (np.arange(m) + 0.5) / m
        if i < len(starts) - 1:
            m = (start + size - starts[i + 1]) * up
            w[size * up - m :] = np.minimum(w[size * up - m :], 1 - (np.arange(m) + 0.5) / m)
        raw.append(w)
    total = np.zeros(n * up)
    for start, w in zip(starts, raw, strict=True):
        total[start * up : (start + size) * up] += w
    return [
        w / total[start * up : (start + size) * up] for start, w in zip(starts, raw, strict=True)
    ]


def _global_seen_from(
    params: SIMParameters, origin_px: tuple[int, int], pixel_um: float
) -> SIMParameters:
    """The whole frame's pattern as a tile starting at ``origin_px`` sees it."""
    return SIMParameters(params.angles).seen_from(
        (origin_px[0] * pixel_um, origin_px[1] * pixel_um)
    )


def _phase_gap(a: AngleParameters, at_a: tuple[float, float], b: AngleParameters, at_b) -> float:
    """|phase of ``a`` at ``at_a`` - phase of ``b`` at ``at_b``| (rad, 0..pi; points (y, x) in
    µm from each one's own origin), averaged over the phase steps; the two descriptions of a
    pattern (``k`` and ``-k`` with negated phases) are reconciled."""

    def phase(p: AngleParameters, at: tuple[float, float]) -> np.ndarray:
        kx, ky = p.k_per_um
        return np.asarray(p.phases_rad) + 2 * math.pi * (kx * at[1] + ky * at[0])

    pa, pb = phase(a, at_a), phase(b, at_b)
    if abs((a.angle_deg - b.angle_deg + 180.0) % 360.0 - 180.0) > 90.0:
        pb = -pb  # the same pattern described by -k
    return abs(float(np.angle(np.mean(np.exp(1j * (pa - pb))))))


def pattern_drift_rad(
    global_params: SIMParameters,
    tile_params: SIMParameters,
    origin_px: tuple[int, int],
    tile_shape: tuple[int, int],
    pixel_um: float,
) -> np.ndarray:
    """How far a tile's pattern lies from the global pattern, per angle (radians, 0..pi).

    The mean over the phase steps of the phase difference at the tile's centre, between the
    tile's own estimate and the global pattern continued to that point; the two descriptions of
    a pattern (``k`` and ``-k`` with negated phases) are reconciled.
    """
    centre = ((tile_shape[0] - 1) / 2 * pixel_um, (tile_shape[1] - 1) / 2 * pixel_um)
    in_frame = (origin_px[0] * pixel_um + centre[0], origin_px[1] * pixel_um + centre[1])
    return np.asarray(
        [
            _phase_gap(t, centre, g, in_frame)
            for g, t in zip(global_params.angles, tile_params.angles, strict=True)
        ]
    )


def continuation_miss_rad(tiled: TiledParameters) -> float:
    """How well one constant pattern describes a tile: the largest phase difference (rad)
    between a tile's pattern continued to the centre of a neighbouring tile (left-right or
    up-down) and that neighbour's own, over the tiles estimated on their data. A pattern that
    bends within a tile misses; a straight one misses by the estimates' noise only."""
    grid = tiled.grid
    dx = tiled.pixel_um
    ty, tx = grid.tile_shape
    n_cols = len(grid.col_starts)
    worst = 0.0
    for i, (y0, x0) in enumerate(grid.origins):
        right = i + 1 if (i + 1) % n_cols else None
        below = i + n_cols if i + n_cols < len(grid) else None
        for j in (right, below):
            if j is None or not (tiled.estimated[i] and tiled.estimated[j]):
                continue
            y1, x1 = grid.origins[j]
            own = ((ty - 1) / 2 * dx, (tx - 1) / 2 * dx)  # the neighbour's centre, from it
            continued = ((y1 - y0) * dx + own[0], (x1 - x0) * dx + own[1])  # from this tile
            for a, b in zip(tiled.tiles[i].angles, tiled.tiles[j].angles, strict=True):
                worst = max(worst, _phase_gap(a, continued, b, own))
    return worst


def bends_within_tiles(tiled: TiledParameters) -> bool:
    """Whether the pattern bends so much within a tile that its own (straight) pattern is out
    by more than :data:`DRIFT_TOLERANCE_RAD` towards its edges.

    A straight pattern fitted at a tile's centre departs from a bending one quadratically with
    the distance; continued to a neighbour's centre one grid step ``L`` away it misses by
    ``continuation_miss_rad``, so at the tile's own edge, half a tile ``T / 2`` out, by about
    ``miss (T / 2 L)^2`` (0.44 x the miss for 256-pixel tiles overlapping by 64). Measured on
    ``pattern_distortion.py``: 256-pixel tiles miss by 0.1-0.15 rad for a straight pattern and
    0.5-2.3 rad for 1-2 % of distortion, where 128-pixel tiles lower the error by up to 0.026.
    """
    grid = tiled.grid
    steps = [b - a for s in (grid.row_starts, grid.col_starts) for a, b in itertools.pairwise(s)]
    if not steps:
        return False
    reach = (grid.tile_px / 2 / min(steps)) ** 2
    return continuation_miss_rad(tiled) * reach > DRIFT_TOLERANCE_RAD


@dataclass(frozen=True)
class TiledParameters:
    """The pattern of each tile of a :class:`TileGrid` (phases at each tile's pixel (0, 0)).

    Attributes
    ----------
    grid : TileGrid
    tiles : tuple of SIMParameters
        One per tile, in the grid's order.
    global_params : SIMParameters
        The pattern estimated for the whole frame (phases at the frame's pixel (0, 0)).
    drift_rad : ndarray (n_tiles, n_angles)
        :func:`pattern_drift_rad` of each tile.
    estimated : ndarray of bool (n_tiles,)
        Whether the tile's pattern was estimated on it (False: too little structure, the
        global pattern is used there).
    pixel_um : float
        Camera pixel at the sample, µm.
    """

    grid: TileGrid
    tiles: tuple[SIMParameters, ...]
    global_params: SIMParameters
    drift_rad: np.ndarray
    estimated: np.ndarray
    pixel_um: float

    @property
    def max_drift_rad(self) -> float:
        return float(self.drift_rad.max()) if self.drift_rad.size else 0.0

    def summary(self) -> dict[str, Any]:
        """For ``.params.json``: the grid, and each tile's origin, pattern and drift."""
        return {
            "tile_px": self.grid.tile_px,
            "overlap_px": self.grid.overlap_px,
            "max_drift_rad": round(self.max_drift_rad, 4),
            "continuation_miss_rad": round(continuation_miss_rad(self), 4),
            "tiles": [
                {
                    "origin_px": list(origin),
                    "estimated": bool(est),
                    "drift_rad": [round(float(d), 4) for d in drift],
                    "angles": params.to_dict()["angles"],
                }
                for origin, params, drift, est in zip(
                    self.grid.origins, self.tiles, self.drift_rad, self.estimated, strict=True
                )
            ],
        }


class _ThisThreadOnly(logging.Filter):
    """Drops the records of one thread (the tiles' own warnings, summarised once instead)."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Silence ``logger`` for this thread (a dark tile's "carrier too weak" is summarised once
    by the caller); other threads' records pass."""
    drop = _ThisThreadOnly()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _estimate_tile(
    frames: np.ndarray,
    setup: OpticalSetup,
    global_params: SIMParameters,
    grid: TileGrid,
    index: int,
    otf: OTF | None,
    settings: EstimationSettings,
    be: Backend,
) -> tuple[SIMParameters, bool]:
    """One tile's pattern (phases at its origin) and whether it was estimated on the tile."""
    ys, xs = grid.window(index)
    try:
        with _quiet(logging.getLogger("scope.sim.estimate")):
            p = estimate_parameters(
                frames[:, ys, xs],
                setup,
                n_angles=global_params.n_angles,
                n_phases=global_params.n_phases,
                prior=global_params,
                otf=otf,
                settings=settings,
                backend=be,
            )
        if all(a.source == "estimated" for a in p.angles):
            return SIMParameters(p.angles), True
    except ReconstructionError:
        pass
    return _global_seen_from(global_params, grid.origins[index], setup.pixel_size_um), False


def estimate_tiled_parameters(
    raw: Any,
    setup: OpticalSetup,
    global_params: SIMParameters,
    grid: TileGrid,
    *,
    otf: OTF | None = None,
    settings: EstimationSettings | None = None,
    backend: Backend | str | None = None,
    defects: DefectPixels | None = None,
    only: list[int] | None = None,
) -> TiledParameters:
    """Estimate the pattern of every tile of one set, within the window of the global pattern.

    Parameters
    ----------
    raw : array (n_frames, Y, X)
        One SIM set (camera offset may be included).
    global_params : SIMParameters
        The whole frame's pattern: each tile's search window, and the pattern of tiles whose
        carrier is too weak to estimate (confidence below ``settings.min_confidence``).
    defects : DefectPixels, optional
        The frame's camera defects, repaired before the tiles are cut (default: none).
    only : list of int, optional
        Estimate these tiles only; the others get the global pattern (and a drift of 0).
    """
    be = get_backend(backend)
    settings = replace(settings or EstimationSettings(), max_size=None, repair_defects=False)
    frames = np.asarray(be.to_numpy(raw))
    if defects is not None and len(defects):
        frames = defects.repaired(frames)
    pixel_um = setup.pixel_size_um
    wanted = set(range(len(grid)) if only is None else only)
    tiles, drifts, estimated = [], [], []
    for i, origin in enumerate(grid.origins):
        if i in wanted:
            p, ok = _estimate_tile(frames, setup, global_params, grid, i, otf, settings, be)
        else:
            p, ok = _global_seen_from(global_params, origin, pixel_um), False
        tiles.append(p)
        estimated.append(ok)
        drifts.append(pattern_drift_rad(global_params, p, origin, grid.tile_shape, pixel_um))
    result = TiledParameters(
        grid, tuple(tiles), global_params, np.asarray(drifts), np.asarray(estimated), pixel_um
    )
    n_fallback = len(wanted) - int(np.sum(result.estimated))
    if n_fallback:
        log.info(
            "%d of %d tiles have too little structure to estimate their pattern on: they use "
            "the whole frame's",
            n_fallback,
            len(wanted),
        )
    return result


def corner_drift(
    raw: Any,
    setup: OpticalSetup,
    global_params: SIMParameters,
    grid: TileGrid,
    **kwargs: Any,
) -> TiledParameters:
    """The four corner tiles' patterns (the others keep the global one): where distortion and
    an error of the global period add up most. ``max_drift_rad`` of the result says whether
    one pattern fits the whole field. ``kwargs`` as for :func:`estimate_tiled_parameters`."""
    n_rows, n_cols = len(grid.row_starts), len(grid.col_starts)
    corners = sorted({0, n_cols - 1, (n_rows - 1) * n_cols, n_rows * n_cols - 1})
    return estimate_tiled_parameters(raw, setup, global_params, grid, only=corners, **kwargs)


def plan_tiles(
    raw: Any,
    setup: OpticalSetup,
    global_params: SIMParameters,
    *,
    mode: str = "auto",
    tile_px: int = TILE_PX,
    overlap_px: int = OVERLAP_PX,
    otf: OTF | None = None,
    settings: EstimationSettings | None = None,
    backend: Backend | str | None = None,
    defects: DefectPixels | None = None,
) -> TiledParameters | None:
    """Whether (and with which patterns) to reconstruct a frame in tiles.

    ``mode`` ``"off"``: never (None). ``"on"``: always when the frame holds more than one tile.
    ``"auto"``: when the pattern drifts from the global one by more than
    :data:`DRIFT_TOLERANCE_RAD` somewhere; the four corner tiles (where distortion and an error
    of the global period add up most) are estimated first and the rest only when one of them
    drifts, so a frame that needs no tiles costs four tile estimations.
    """
    if mode not in TILE_MODES:
        raise ConfigurationError(f"tiles must be one of {', '.join(TILE_MODES)}, got {mode!r}")
    if mode == "off":
        return None
    grid = TileGrid.covering(tuple(np.shape(raw)[-2:]), tile_px, overlap_px)
    if len(grid) == 1:
        return None
    kwargs = {"otf": otf, "settings": settings, "backend": backend, "defects": defects}
    if mode == "auto":
        probe = corner_drift(raw, setup, global_params, grid, **kwargs)
        if probe.max_drift_rad <= DRIFT_TOLERANCE_RAD:
            log.debug(
                "the pattern holds across the field (corner tiles within %.2f rad): one "
                "pattern for the whole frame",
                probe.max_drift_rad,
            )
            return None
    tiled = estimate_tiled_parameters(raw, setup, global_params, grid, **kwargs)
    finer_px = tile_px // 2
    if mode == "auto" and bends_within_tiles(tiled) and finer_px >= MIN_TILE_PX:
        # the pattern bends within a tile: halve the tiles if they still show their pattern
        finer_grid = TileGrid.covering(grid.shape, finer_px, overlap_px // 2)
        finer = estimate_tiled_parameters(raw, setup, global_params, finer_grid, **kwargs)
        if finer.estimated.mean() >= MIN_ESTIMATED_SHARE:
            log.debug(
                "tiles of %d pixels miss their neighbours' pattern by up to %.2f rad: using "
                "tiles of %d",
                tile_px,
                continuation_miss_rad(tiled),
                finer_px,
            )
            tiled, grid = finer, finer_grid
    log.info(
        "the pattern drifts across the field by up to %.2f rad from the whole frame's (the "
        "illumination optics distort it, or the frame is too large for one pattern): "
        "reconstructing in %d tiles of %d pixels, each with its own pattern",
        tiled.max_drift_rad,
        len(grid),
        grid.tile_px,
    )
    return tiled


class TiledReconstructor:
    """Reconstructs sets tile by tile, each tile with its own pattern and cached operator.

    Parameters
    ----------
    setup : OpticalSetup
    tiled : TiledParameters
        The grid and each tile's pattern (:func:`estimate_tiled_parameters`).
    settings, backend, otf
        As for :class:`~scope.sim.reconstruct.SIMReconstructor` (each tile measures its own
        noise model on the first set).
    defect_pixels : DefectPixels, optional
        The frame's camera defects, repaired in every set before it is cut into tiles (found
        on the first set when not given, unless ``settings.repair_defects`` is off).

    Examples
    --------
    >>> rec = TiledReconstructor(setup, tiled)           # doctest: +SKIP
    >>> sim = rec(raw)  # (2Y, 2X), numpy float32        # doctest: +SKIP
    """

    def __init__(
        self,
        setup: OpticalSetup,
        tiled: TiledParameters,
        *,
        settings: ReconstructionSettings | None = None,
        backend: Backend | str | None = None,
        otf: OTF | None = None,
        defect_pixels: DefectPixels | None = None,
        operators: list[SIMReconstructor] | None = None,
    ) -> None:
        self.setup = setup
        self.tiled = tiled
        self.grid = tiled.grid
        self.shape = self.grid.shape
        self.settings = settings or ReconstructionSettings()
        self.backend = get_backend(backend)
        self.otf = otf
        self.params = tiled.global_params
        if not self.settings.repair_defects:
            defect_pixels = no_defects(self.shape)
        self.defect_pixels = defect_pixels
        tile_defects = no_defects(self.grid.tile_shape)  # repaired on the whole frame
        #: one cached operator per tile
        self.tiles = operators or [
            SIMReconstructor(
                setup,
                p,
                shape=self.grid.tile_shape,
                settings=self.settings,
                backend=self.backend,
                otf=otf,
                defect_pixels=tile_defects,
            )
            for p in tiled.tiles
        ]
        self._weights = [self.grid.weights(i, 2) for i in range(len(self.grid))]

    def with_settings(self, **changes: Any) -> TiledReconstructor:
        """A new tiled reconstructor with some settings changed (same patterns, each tile's
        noise model and the camera defects kept)."""
        return TiledReconstructor(
            self.setup,
            self.tiled,
            settings=replace(self.settings, **changes),
            backend=self.backend,
            otf=self.otf,
            defect_pixels=self.defect_pixels,
            operators=[t.with_settings(**changes) for t in self.tiles],
        )

    @property
    def n_frames(self) -> int:
        return self.tiles[0].n_frames

    @property
    def output_shape(self) -> tuple[int, int]:
        return (2 * self.shape[0], 2 * self.shape[1])

    @property
    def output_pixel_size_nm(self) -> float:
        return self.tiles[0].output_pixel_size_nm

    @property
    def equalizes_frames(self) -> bool:
        """Whether any tile equalises its frames' brightness (decided on the first set)."""
        return any(t.equalizes_frames for t in self.tiles)

    @property
    def nsr_scale(self) -> float:
        """The median over the tiles of the MMSE regulariser's factor for the latest set
        (:attr:`SIMReconstructor.nsr_scale`)."""
        return float(np.median([t.nsr_scale for t in self.tiles]))

    def frame_gains(self, raw: Any) -> np.ndarray:
        """Brightness of each frame of one set above the offset, relative to the set's mean."""
        frames, offset = self._prepared(raw)
        sums = frames.reshape(len(frames), -1).mean(axis=1, dtype=np.float64) - offset
        if not np.all(sums > 0):
            return np.ones(len(frames))
        return sums / sums.mean()

    def _prepared(self, raw: Any) -> tuple[np.ndarray, float]:
        frames = np.asarray(self.backend.to_numpy(raw))
        expected = (self.n_frames, *self.shape)
        if frames.shape != expected:
            raise ReconstructionError(
                f"expected one SIM set shaped {expected} for this tiled reconstructor, got "
                f"{frames.shape}"
            )
        if self.defect_pixels is None:  # the first set
            self.defect_pixels = find_defect_pixels(frames, self.setup, otf=self.otf)
        frames = self.defect_pixels.repaired(frames)
        if self.settings.offset_adu is not None:
            offset = float(self.settings.offset_adu)
        else:
            offset = estimate_camera_offset(frames)
        return frames, offset

    def camera_offset(self, raw: Any) -> float:
        """The camera offset subtracted from this set (one for all tiles)."""
        return self._prepared(raw)[1]

    def __call__(self, raw: Any) -> np.ndarray:
        """One set ``(n_frames, Y, X)`` -> float32 ``(2Y, 2X)`` (numpy)."""
        frames, offset = self._prepared(raw)
        out = np.zeros(self.output_shape, np.float32)
        for i, rec in enumerate(self.tiles):
            ys, xs = self.grid.window(i)
            image = self.backend.to_numpy(rec(frames[:, ys, xs], offset_adu=offset))
            big = (slice(2 * ys.start, 2 * ys.stop), slice(2 * xs.start, 2 * xs.stop))
            out[big] += self._weights[i] * image
        return out

    def widefield(self, raw: Any) -> np.ndarray:
        """The widefield image (mean of the frames, offset removed), camera grid."""
        frames, offset = self._prepared(raw)
        return (frames.mean(axis=0) - offset).astype(np.float32)
