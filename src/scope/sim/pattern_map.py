"""A pattern that the illumination optics bend across the field: its phase map.

One wave vector and one phase per frame describe the pattern of an ideal microscope. In a built
one the illumination optics distort the projected grating a little (a stock lens at finite
conjugates, a relay of stock achromats, a tilted pattern plane): the local period and angle drift
across the field, and the phase that a single global pattern predicts departs from the true one by
``2 pi k . (D(r) - r)`` for a distortion ``D``. The error grows with the distance from where
the pattern was estimated (the centre of the field, see ``EstimationSettings.max_size``): on a
1024-pixel field, a radial distortion of 1 % at the corners displaces the pattern there by
nearly two periods, and the SIM image shows each filament twice.

The departure is measured in tiles (:class:`TileGrid`: overlapping, or on a large field an
even sample of at most 6 x 6): each tile's pattern is estimated on the tile alone, with the
global estimate as the search window (:func:`estimate_tiled_parameters`); tiles with too
little structure to estimate on are left out. :func:`pattern_drift_rad` says how far a tile's
pattern lies from the global one (the phase at the tile's centre); the four corner tiles
decide whether the field needs a map at all (:func:`corner_drift`). The tiles' phases,
unwrapped with the help of their wave vectors, are fitted by a smooth polynomial over the
field (:func:`fit_phase_map`, cubic: radial lens distortion makes exactly a cubic phase
error), and the reconstruction takes that phase out of each +1 order pixel by pixel, at no
cost per image (``SIMReconstructor(phase_maps=...)``): one piece, no seams, as fast as a
straight pattern.

References
----------
Patterns distorted by aberrations and their effect on SIM: Yeh, Tian & Waller, "Structured
illumination microscopy with unknown patterns and a statistical prior", Biomed. Opt. Express 8,
695 (2017), which instead estimates the patterns pixel by pixel without a model. Parameter
precision needed per region: Lahrberg et al., "Accurate estimation of the illumination
pattern's orientation and wavelength in sinusoidal structured illumination microscopy", Appl.
Opt. 57, 1019 (2018). Taking a slowly varying phase out of a separated order after the blur is
the first-order approximation used for aberrated patterns in e.g. Wicker, "Non-iterative
determination of pattern phase in structured illumination microscopy using auto-correlations
in Fourier space", Opt. Express 21, 24692 (2013) (phase per order); here it varies across the
field.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from scope.backend import Backend, get_backend
from scope.errors import ConfigurationError, DataFormatError, ReconstructionError
from scope.optics import OTF, OpticalSetup
from scope.sim.defects import DefectPixels
from scope.sim.estimate import EstimationSettings, estimate_parameters
from scope.sim.params import AngleParameters, SIMParameters

log = logging.getLogger(__name__)

#: tile side of the corner check, camera pixels (the estimation's own working size)
TILE_PX = 256

#: default overlap of neighbouring tiles, camera pixels
OVERLAP_PX = 64

#: tile side and overlap of the tiles the phase map is fitted to (measured: 128-pixel tiles
#: give 0.117-0.121 on 512- and 1024-pixel fields bent by 1-2 %, 256-pixel tiles 0.125-0.137;
#: an overlap of 16 rather than 32 pixels the same images from 81 instead of 121 tiles on 1024)
MAP_TILE_PX = 128
MAP_OVERLAP_PX = 16

#: at most this many map tiles along a side: a larger field is sampled by tiles with gaps
#: between them (the cubic map needs the field's shape, not every pixel). Measured on 1024 and
#: 1200 x 1920 fields bent by 0-2 %, at 400 and 60 photons: the same images from 36 tiles as
#: from 81 or 187 (within 0.001 of the simulation's own map), the map in 1.5 instead of 2.4 s
#: (1024) and 2.2 instead of 6.3 s (1200 x 1920) on 2 cores (RESULTS.md, pattern_distortion.py)
MAP_MAX_TILES_PER_SIDE = 6

#: a corner tile whose pattern phase differs from the global pattern's by more than this (at
#: its centre, any angle) makes ``mode="auto"`` map the pattern (a phase error of 0.2 rad raises
#: the error of the acceptance case against the ideal-SIM target from 0.104 to 0.116)
DRIFT_TOLERANCE_RAD = 0.2

#: degree of the phase map's polynomial (radial distortion: a cubic phase error)
MAP_DEGREE = 3

#: the words of ``--pattern-map`` and the ``pattern_map`` settings
MAP_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class TileGrid:
    """Tiles spread evenly over a frame, overlapping or (capped in number) sampling it.

    Tiles are ``tile_px`` square (or the whole side where it is at most ``tile_px +
    overlap_px``) and spread evenly so that neighbours overlap by at least ``overlap_px``;
    with ``max_per_side``, at most that many along an axis, spread evenly from edge to edge
    with gaps between them where more would be needed to cover it.

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
        cls,
        shape: tuple[int, int],
        tile_px: int = TILE_PX,
        overlap_px: int = OVERLAP_PX,
        max_per_side: int | None = None,
    ) -> TileGrid:
        """The grid of ``tile_px`` tiles overlapping by at least ``overlap_px`` over ``shape``
        (at most ``max_per_side`` along an axis: then they sample it, with gaps)."""
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

        if max_per_side is not None and max_per_side < 2:
            raise ConfigurationError(f"max_per_side must be at least 2, got {max_per_side}")

        def starts(n: int) -> tuple[int, ...]:
            if n <= tile_px + overlap_px:  # one tile, the whole side
                return (0,)
            count = math.ceil((n - overlap_px) / (tile_px - overlap_px))
            count = min(count, max_per_side or count)
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


def _global_seen_from(
    params: SIMParameters, origin_px: tuple[int, int], pixel_um: float
) -> SIMParameters:
    """The whole frame's pattern as a tile starting at ``origin_px`` sees it."""
    return SIMParameters(params.angles).seen_from(
        (origin_px[0] * pixel_um, origin_px[1] * pixel_um)
    )


def _phase_difference(
    a: AngleParameters, at_a: tuple[float, float], b: AngleParameters, at_b: tuple[float, float]
) -> float:
    """Phase of ``a`` at ``at_a`` minus phase of ``b`` at ``at_b`` (rad, wrapped to -pi..pi;
    points (y, x) in µm from each one's own origin), averaged over the phase steps, in ``a``'s
    description of the pattern (``b`` given by ``-k`` is turned round first)."""

    def phase(p: AngleParameters, at: tuple[float, float]) -> np.ndarray:
        kx, ky = p.k_per_um
        return np.asarray(p.phases_rad) + 2 * math.pi * (kx * at[1] + ky * at[0])

    pa, pb = phase(a, at_a), phase(b, at_b)
    if _opposite(a, b):
        pb = -pb  # the same pattern described by -k
    return float(np.angle(np.mean(np.exp(1j * (pa - pb)))))


def _opposite(a: AngleParameters, b: AngleParameters) -> bool:
    """Whether ``b`` describes ``a``'s pattern by the opposite wave vector."""
    return abs((a.angle_deg - b.angle_deg + 180.0) % 360.0 - 180.0) > 90.0


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
            abs(_phase_difference(g, in_frame, t, centre))
            for g, t in zip(global_params.angles, tile_params.angles, strict=True)
        ]
    )


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
        global pattern is used there and the phase map leaves them out).
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
            "%d of %d tiles have too little structure to estimate their pattern on: left out",
            n_fallback,
            len(wanted),
        )
    return result


def corner_drift(
    raw: Any, setup: OpticalSetup, global_params: SIMParameters, **kwargs: Any
) -> float | None:
    """How far the pattern of the four corner tiles (:data:`TILE_PX`), where distortion and an
    error of the global period add up most, drifts from the global pattern (rad, the largest;
    over :data:`DRIFT_TOLERANCE_RAD` one pattern does not fit the field). None for a frame of
    one such tile. ``kwargs`` as for :func:`estimate_tiled_parameters`."""
    grid = TileGrid.covering(tuple(np.shape(raw)[-2:]), TILE_PX, OVERLAP_PX)
    if len(grid) == 1:
        return None
    n_rows, n_cols = len(grid.row_starts), len(grid.col_starts)
    corners = sorted({0, n_cols - 1, (n_rows - 1) * n_cols, n_rows * n_cols - 1})
    probe = estimate_tiled_parameters(raw, setup, global_params, grid, only=corners, **kwargs)
    return probe.max_drift_rad


@dataclass(frozen=True)
class PhaseMap:
    """A smooth map of how far each orientation's pattern departs in phase from the global one.

    ``phase(y, x) = sum_ij c_ij u^i v^j`` with ``u = (x - cx) / scale``, ``v = (y - cy) / scale``
    (µm from the centre of camera pixel (0, 0)), in the global pattern's description (its
    ``k``), radians: add it to the global pattern's phase to get the pattern at that point.

    Attributes
    ----------
    degree : int
        Polynomial degree (terms ``u^i v^j`` with ``i + j <= degree``, in :attr:`terms` order).
    centre_um : (float, float)
        ``(cy, cx)``, the field's centre.
    scale_um : float
        Half the field's larger side.
    coefficients : ndarray (n_angles, n_terms)
    residual_rad : ndarray (n_angles,)
        The largest misfit at a tile's centre (wrapped): how well a smooth map describes the
        tiles (the tiles' own estimates are good to about 0.05-0.1 rad).
    max_drift_rad : float
        The tiles' largest drift from the global pattern (wrapped, 0..pi).
    tiled : TiledParameters or None
        The tiles it was fitted to (None for a map read back from a ``.params.json``).
    """

    degree: int
    centre_um: tuple[float, float]
    scale_um: float
    coefficients: np.ndarray
    residual_rad: np.ndarray
    max_drift_rad: float
    tiled: TiledParameters | None = None

    @classmethod
    def from_summary(cls, doc: dict[str, Any], n_angles: int) -> PhaseMap:
        """The map that :meth:`summary` wrote (``"pattern_map"`` of a ``.params.json``), for
        the ``n_angles`` orientations of its parameters.

        Raises
        ------
        DataFormatError
            The entry is not such a map, or is one for another number of orientations.
        """
        try:
            degree = int(doc["degree"])
            coefficients = np.asarray(doc["coefficients_rad"], float)
            phase_map = cls(
                degree,
                (float(doc["centre_um"][0]), float(doc["centre_um"][1])),
                float(doc["scale_um"]),
                coefficients,
                np.asarray(doc.get("fit_residual_rad", [np.nan] * len(coefficients)), float),
                float(doc.get("max_drift_rad", np.nan)),
            )
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise DataFormatError(
                f"the pattern_map entry is not a phase map written by scope ({err!r})"
            ) from None
        if coefficients.shape != (n_angles, len(_terms(degree))):
            raise DataFormatError(
                f"the pattern_map holds {coefficients.shape} coefficients; expected "
                f"({n_angles}, {len(_terms(degree))}) for {n_angles} angles of degree {degree}"
            )
        return phase_map

    @property
    def terms(self) -> list[tuple[int, int]]:
        return _terms(self.degree)

    def at(self, y_um: Any, x_um: Any) -> np.ndarray:
        """The map at points ``(y_um, x_um)`` (broadcastable): ``(n_angles, *shape)``."""
        basis = _basis(self.terms, *self._uv(y_um, x_um))
        return np.einsum("...t,at->a...", basis, self.coefficients)

    def maps(self, shape: tuple[int, int], pixel_um: float) -> np.ndarray:
        """The map at every camera pixel, ``(n_angles, Y, X)`` float32, for
        ``SIMReconstructor(phase_maps=...)``."""
        y = np.arange(shape[0])[:, None] * pixel_um
        x = np.arange(shape[1])[None, :] * pixel_um
        return self.at(y, x).astype(np.float32)

    def _uv(self, y_um: Any, x_um: Any) -> tuple[Any, Any]:
        cy, cx = self.centre_um
        y, x = np.broadcast_arrays(np.asarray(y_um, float), np.asarray(x_um, float))
        return (x - cx) / self.scale_um, (y - cy) / self.scale_um

    def summary(self) -> dict[str, Any]:
        """For ``.params.json``: the polynomial, its fit and the tiles it was fitted to
        (read back by :meth:`from_summary`)."""
        return {
            "degree": self.degree,
            "centre_um": [round(v, 6) for v in self.centre_um],
            "scale_um": round(self.scale_um, 6),
            "terms_uv": [list(t) for t in self.terms],
            "coefficients_rad": [[round(float(c), 6) for c in row] for row in self.coefficients],
            "fit_residual_rad": [round(float(r), 4) for r in self.residual_rad],
            "max_drift_rad": round(self.max_drift_rad, 4),
            **(self.tiled.summary() if self.tiled is not None else {}),
        }


def _terms(degree: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)]


def _basis(terms: list[tuple[int, int]], u: Any, v: Any) -> np.ndarray:
    return np.stack([u**i * v**j for i, j in terms], axis=-1)


def _basis_gradient(terms: list[tuple[int, int]], u: Any, v: Any) -> tuple[Any, Any]:
    """d/du and d/dv of each term."""
    du = np.stack([i * u ** max(i - 1, 0) * v**j for i, j in terms], axis=-1)
    dv = np.stack([j * u**i * v ** max(j - 1, 0) for i, j in terms], axis=-1)
    return du, dv


def fit_phase_map(tiled: TiledParameters, degree: int = MAP_DEGREE) -> PhaseMap:
    """Fit a smooth phase map to the tiles' patterns (those estimated on their data).

    Each tile gives, at its centre, its phase minus the global pattern's (known modulo 2 pi)
    and the gradient of that difference, ``2 pi (k_tile - k_global)`` (known outright). A
    polynomial fitted to the gradients alone unwraps the phases (the nearest whole number of
    turns to it); the map is then the least-squares polynomial through the unwrapped phases
    (the tiles' phases are far more precise than their wave vectors). The degree is lowered
    when too few tiles show their pattern for it.

    Raises
    ------
    ReconstructionError
        Fewer than three tiles estimated: no map can be fitted.
    """
    grid, dx = tiled.grid, tiled.pixel_um
    ty, tx = grid.tile_shape
    ok = np.flatnonzero(tiled.estimated)
    if ok.size < 3:
        raise ReconstructionError(
            f"only {ok.size} tiles show their pattern: too few to map it across the field"
        )
    while degree > 1 and ok.size < len(_terms(degree)):
        degree -= 1
    terms = _terms(degree)
    ny, nx = grid.shape
    centre = ((ny - 1) / 2 * dx, (nx - 1) / 2 * dx)
    scale = max(ny, nx) * dx / 2
    rows = []
    for t in ok:
        y0, x0 = grid.origins[t]
        own = ((ty - 1) / 2 * dx, (tx - 1) / 2 * dx)
        rows.append((y0 * dx + own[0], x0 * dx + own[1], own, t))
    ys = np.array([r[0] for r in rows])
    xs = np.array([r[1] for r in rows])
    u, v = (xs - centre[1]) / scale, (ys - centre[0]) / scale
    basis = _basis(terms, u, v)
    du, dv = _basis_gradient(terms, u, v)
    coefficients, residuals = [], []
    for a, g in enumerate(tiled.global_params.angles):
        values, grads = [], []
        for y, x, own, t in rows:
            tile = tiled.tiles[t].angles[a]
            values.append(-_phase_difference(g, (y, x), tile, own))  # tile minus global
            k_tile = np.array(tile.k_per_um) * (-1.0 if _opposite(g, tile) else 1.0)
            grads.append(2 * math.pi * (k_tile - np.array(g.k_per_um)) * scale)  # d/du, d/dv
        values_arr, grads_arr = np.array(values), np.array(grads)
        # 1. the gradients alone (no constant): a guide to unwrap the phases
        design = np.concatenate([du[:, 1:], dv[:, 1:]])
        target = np.concatenate([grads_arr[:, 0], grads_arr[:, 1]])
        guide, *_ = np.linalg.lstsq(design, target, rcond=None)
        guess = basis[:, 1:] @ guide
        guess += np.angle(np.mean(np.exp(1j * (values_arr - guess))))
        unwrapped = values_arr + 2 * math.pi * np.round((guess - values_arr) / (2 * math.pi))
        # 2. the map through the unwrapped phases
        coef, *_ = np.linalg.lstsq(basis, unwrapped, rcond=None)
        misfit = np.angle(np.exp(1j * (basis @ coef - unwrapped)))
        coefficients.append(coef)
        residuals.append(float(np.abs(misfit).max()))
    return PhaseMap(
        degree,
        centre,
        scale,
        np.array(coefficients),
        np.array(residuals),
        tiled.max_drift_rad,
        tiled,
    )


def plan_pattern_map(
    raw: Any,
    setup: OpticalSetup,
    global_params: SIMParameters,
    *,
    mode: str = "auto",
    otf: OTF | None = None,
    settings: EstimationSettings | None = None,
    backend: Backend | str | None = None,
    defects: DefectPixels | None = None,
) -> PhaseMap | None:
    """Whether (and how) the pattern departs from the global one across the field.

    ``mode`` ``"off"``: never (None). ``"on"``: map it whenever the frame holds four map tiles.
    ``"auto"``: when a corner tile (where distortion and an error of the global period add up
    most) drifts from the global pattern by more than :data:`DRIFT_TOLERANCE_RAD`; a frame that
    needs no map costs four tile estimations. The map is fitted to tiles of
    :data:`MAP_TILE_PX`, at most :data:`MAP_MAX_TILES_PER_SIDE` along a side
    (:func:`fit_phase_map`).
    """
    if mode not in MAP_MODES:
        raise ConfigurationError(f"pattern_map must be one of {', '.join(MAP_MODES)}, got {mode!r}")
    if mode == "off":
        return None
    shape = tuple(np.shape(raw)[-2:])
    grid = TileGrid.covering(shape, MAP_TILE_PX, MAP_OVERLAP_PX, MAP_MAX_TILES_PER_SIDE)
    if len(grid) < 4:
        return None  # too small a field to map (and to need it)
    kwargs = {"otf": otf, "settings": settings, "backend": backend, "defects": defects}
    if mode == "auto":
        drift = corner_drift(raw, setup, global_params, **kwargs)
        if drift is None or drift <= DRIFT_TOLERANCE_RAD:
            log.debug("the pattern holds across the field (corner drift %s rad)", drift)
            return None
    tiled = estimate_tiled_parameters(raw, setup, global_params, grid, **kwargs)
    try:
        phase_map = fit_phase_map(tiled)
    except ReconstructionError as err:
        log.warning("%s: one pattern for the whole frame", err)
        return None
    log.info(
        "the pattern drifts across the field by up to %.2f rad from the whole frame's (the "
        "illumination optics bend it, or the frame is too large for one pattern): its phase "
        "mapped from %d tiles (fit within %.2f rad) and taken out pixel by pixel",
        tiled.max_drift_rad,
        int(tiled.estimated.sum()),
        float(phase_map.residual_rad.max()),
    )
    return phase_map
