"""Hot and dead camera pixels: found from the optics' band limit, repaired from neighbours.

A camera pixel with extra dark current (hot) or no response (dead) puts the same wrong value
into every frame of a set. The reconstruction reads it as a point of light seen through the
zero order alone: a deconvolved spike with rings around it; and its flat spectrum inflates the
noise floor the MMSE filter is tuned to and disturbs the parameter estimation. On the simulated
acceptance case, 0.1 % of pixels hot by 1000 ADU on average raise the error against the
ideal-SIM target from 0.10 to 0.44 at 400 photons peak and from 0.21 to 0.85 at 60; repaired,
the error is the clean set's (``reconstruction/benchmarks/camera_defects.py``).

Detection needs no dark frames. Light reaches the camera through the objective, so the image
holds no spatial frequency beyond the detection cutoff ``fc = 2 NA / lambda``: with pixels
finer than Nyquist's (the usual SIM sampling), the part of the set's mean image beyond
:data:`BAND_MARGIN` x ``fc`` is noise alone. A single-pixel spike puts a fixed share ``f`` of
itself there (``f`` = the share of the spectrum beyond that radius). Each pixel's residual is
compared with the residual's local spread (an 11 x 11 neighbourhood without its central 5 x 5,
where a spike's own ringing lies; it follows the shot noise of bright and dim regions alike);
beyond :data:`THRESHOLD` it is a camera defect. Spikes are found a round at a time, each
round judging the pixels on the residual without the spikes found so far (as CLEAN does in
radio astronomy, Högbom 1974), so a strong spike's rings are not taken for defects and a
weaker defect beside it is found. Equal spikes side by side cancel in part at their own pixels
beyond the band and add up in the rings around them, where the rings then score highest: a
candidate must also stand out of the median of its 8 neighbours in the mean image, by half the
spike its residual implies and with its sign, which a ring pixel does not. Real structure,
however bright or small, is blurred by the optics and stays below the cutoff: the bright beads
of the simulated samples are never flagged. Clipped plateaus (the camera's full scale in a pixel
and a neighbour) are left out, except groups of a few pixels whose surroundings sit below half
their level: hot pixels at full scale (see ``_clipped_hot_clusters``). A 2 x 2 block of equal
hot pixels puts little of itself beyond the band; it is found in real space as a step the
optics cannot make (see ``_hot_blocks``).

The defects found on one set are repaired in every set by the mean of their unflagged direct
neighbours, frame by frame (camera defects do not move).

References
----------
Högbom, "Aperture synthesis with a non-regular distribution of interferometer baselines",
Astron. Astrophys. Suppl. 15, 417 (1974) (CLEAN).
Moisan, "Periodic plus smooth image decomposition", J. Math. Imaging Vis. 39, 161 (2011).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from scope.optics import OTF, OpticalSetup, ideal_otf, pixel_transfer
from scope.sim.spectral import SmoothComponent, freq_grid, radius

log = logging.getLogger(__name__)

#: the residual is taken beyond this multiple of the detection cutoff (margin for optics a
#: little better than stated: a 20 % larger NA still leaves real structure inside)
BAND_MARGIN = 1.25

#: a pixel whose residual exceeds this many local standard deviations is a defect (Gaussian
#: noise: about 1e-11 false alarms per pixel)
THRESHOLD = 7.0

#: the mean image is mirrored by this many pixels at each edge before the high-pass
PAD_PX = 16

#: at least this share of the spectrum must lie beyond the margin, or only 2 x 2 blocks are sought
#: (pixels near Nyquist's sampling leave too little room to see spikes)
MIN_BAND_SHARE = 0.1

#: more defects than this share of the pixels means the stated optics do not fit the data
#: (real structure beyond the assumed cutoff): nothing is repaired, with a warning
MAX_DEFECT_SHARE = 0.01

_NEIGHBOURS4 = ((-1, 0), (1, 0), (0, -1), (0, 1))
_NEIGHBOURS8 = (*_NEIGHBOURS4, (-1, -1), (-1, 1), (1, -1), (1, 1))


@dataclass(frozen=True)
class DefectPixels:
    """Camera pixels to repair and, for each, the neighbours whose mean replaces it.

    Attributes
    ----------
    rows, cols : ndarray of int
        The defect pixels.
    neighbours : ndarray of int, shape (n_defects, 8)
        Flat indices (``row * X + col``) of each defect's unflagged neighbours, padded with the
        defect's first neighbour (``weights`` 0 there).
    weights : ndarray of float32, shape (n_defects, 8)
        Each neighbour's weight (1 / number of neighbours used).
    shape : (int, int)
        The frame shape the indices refer to.
    hot : int
        How many of the defects are brighter than their surroundings (the rest are dark).
    """

    rows: np.ndarray
    cols: np.ndarray
    neighbours: np.ndarray
    weights: np.ndarray
    shape: tuple[int, int]
    hot: int = 0

    def __len__(self) -> int:
        return int(self.rows.size)

    @property
    def flat(self) -> np.ndarray:
        """Flat indices of the defects in a frame."""
        return self.rows * self.shape[1] + self.cols

    def replacement(self, frames: Any, xp: Any = np) -> Any:
        """The repaired values ``(n_frames, n_defects)`` of a set ``(n_frames, Y, X)``."""
        flat = frames.reshape(frames.shape[0], -1)
        values = flat[:, xp.asarray(self.neighbours.ravel())].reshape(
            frames.shape[0], len(self), self.neighbours.shape[1]
        )
        return (values * xp.asarray(self.weights)[None]).sum(axis=2)

    def repaired(self, frames: Any, xp: Any = np) -> Any:
        """A float32 copy of a set ``(n_frames, Y, X)`` (or an image) with the defects
        replaced (``frames`` itself when there are none)."""
        if not len(self):
            return frames
        out = xp.asarray(frames).astype(xp.float32, copy=True)
        flat = out.reshape(-1, self.shape[0] * self.shape[1])
        flat[:, xp.asarray(self.flat)] = self.replacement(flat, xp)
        return out

    def on_grid(self, shape: tuple[int, int]) -> DefectPixels:
        """The same pixels indexed on a larger frame ``shape`` that holds this one in its
        top-left corner (an odd frame padded to even sides)."""
        nx = self.shape[1]
        neighbours = (self.neighbours // nx) * shape[1] + self.neighbours % nx
        return DefectPixels(self.rows, self.cols, neighbours, self.weights, shape, self.hot)

    def summary(self) -> dict[str, Any]:
        """For ``.params.json`` and logs."""
        n = len(self)
        return {
            "pixels": n,
            "hot": self.hot,
            "dead": n - self.hot,
            "share": round(n / (self.shape[0] * self.shape[1]), 7),
        }


def no_defects(shape: tuple[int, int]) -> DefectPixels:
    """An empty :class:`DefectPixels` for frames of ``shape``."""
    empty = np.zeros(0, np.int64)
    return DefectPixels(
        empty, empty, np.zeros((0, 8), np.int64), np.zeros((0, 8), np.float32), shape
    )


def _local_maxima(score: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels above ``threshold`` that are the largest of their 3 x 3 neighbourhood."""
    out = score > threshold
    rows, cols = np.nonzero(out)
    padded = np.pad(score, 1)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                out[rows, cols] &= score[rows, cols] >= padded[rows + 1 + dy, cols + 1 + dx]
    return out


def _with_mirror_images(spikes: np.ndarray, shape: tuple[int, int], reach: int = 6) -> np.ndarray:
    """``spikes`` (on the frame mirrored by :data:`PAD_PX`) with the mirror image of each one
    within ``reach`` pixels of an edge (``np.pad`` mode ``symmetric``: padded index
    ``PAD_PX - 1 - k`` repeats frame index ``k``)."""
    out = spikes.copy()
    rows, cols = np.nonzero(spikes)
    for n, axis in ((shape[0], 0), (shape[1], 1)):
        pos = rows if axis == 0 else cols
        lo, hi = PAD_PX, PAD_PX + n - 1
        twin = np.where(
            pos - lo < reach, 2 * lo - 1 - pos, np.where(hi - pos < reach, 2 * hi + 1 - pos, -1)
        )
        sel = twin >= 0
        if axis == 0:
            out[twin[sel], cols[sel]] = True
        else:
            out[rows[sel], twin[sel]] = True
    return out


#: clipped groups of at most this many pixels can be hot-pixel clusters (2 x 2 and smaller)
MAX_HOT_CLUSTER = 4


def _clipped_hot_clusters(top: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The clipped groups (``top``: pixels at the stack's maximum) of at most
    :data:`MAX_HOT_CLUSTER` pixels whose surroundings in the ``mean`` image sit below half
    their level, both above the image's floor (its 1st percentile). The optics cannot make
    that: a spot clipped at its core has its 1-pixel surroundings at about 0.8 of the core
    (the PSF's half width is over 3 pixels at the usual SIM sampling) or higher, so such a
    group is hot pixels at the camera's full scale, not clipped structure."""
    from scipy import ndimage

    out = np.zeros(top.shape, bool)
    labels, n = ndimage.label(top)
    if n == 0:
        return out
    floor = float(np.percentile(mean, 1))
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        rows = slice(max(box[0].start - 1, 0), box[0].stop + 1)
        cols = slice(max(box[1].start - 1, 0), box[1].stop + 1)
        group = labels[rows, cols] == index
        if group.sum() > MAX_HOT_CLUSTER:
            continue
        around = ndimage.binary_dilation(group) & ~group & (labels[rows, cols] == 0)
        if not around.any():
            continue
        level = float(mean[rows, cols][group].mean()) - floor
        if float(np.median(mean[rows, cols][around])) - floor < 0.5 * level:
            out[rows, cols] |= group
    return out


#: a 2 x 2 block stands above the brightest the optics allow, given the 12 pixels around it,
#: by at least this many standard deviations of its noise to be a block of hot pixels
BLOCK_THRESHOLD = 7.0


@functools.lru_cache(maxsize=32)
def optical_block_contrast(
    pixel_size_um: float, cutoff_per_um: float, n: int = 32, *, per_pixel: bool = False
) -> float:
    """The lowest ratio of the 12 pixels around a 2 x 2 block to the block itself (each a mean,
    above the background) that an aberration-free optical system of this cutoff can make: a
    point of light seen through its OTF and the camera's pixels, at sub-pixel positions over
    the block. Any other sample is a positive sum of points and reads at least the lowest
    ratio; aberrations and defocus only raise it. 0.56 at NA 1.2, 525 nm and 65 nm pixels
    (bright beads read 0.55-0.65), 0.40 for a cutoff 1.25x higher; at Nyquist's sampling
    (109 nm) 0.19. ``per_pixel``: the lowest ratio of any one of the 12 to the block's mean
    instead (what a block on the frame's edge, with part of its ring, can rely on)."""
    ky, kx = freq_grid((n, n), pixel_size_um, np)
    transfer = ideal_otf(radius(kx, ky), cutoff_per_um) * pixel_transfer(kx, ky, pixel_size_um)
    fy, fx = np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :]  # cycles per pixel
    block = np.s_[n // 2 : n // 2 + 2, n // 2 : n // 2 + 2]
    outer = np.s_[n // 2 - 1 : n // 2 + 3, n // 2 - 1 : n // 2 + 3]
    ring = np.ones((4, 4), bool)
    ring[1:3, 1:3] = False
    lowest = 1.0
    steps = 4  # the point's position in quarter pixels over the block's pixel centres 0..1
    for i in range(steps + 1):
        for j in range(i + 1):  # x <= y: the block is symmetric
            y, x = i / steps, j / steps
            at = np.exp(-2j * np.pi * (fy * (n // 2 + y) + fx * (n // 2 + x)))
            image = np.fft.ifft2(transfer * at).real
            inner = image[block].mean()
            around = image[outer][ring]
            lowest = min(lowest, (around.min() if per_pixel else around.mean()) / inner)
    return float(lowest)


def _hot_blocks(
    mean: np.ndarray, variance: np.ndarray, optical_contrast: float, edge_contrast: float
) -> np.ndarray:
    """2 x 2 blocks of hot pixels in the set's ``mean`` image (``variance``: each pixel's noise
    variance in it), as a mask.

    A 2 x 2 block of equal hot pixels puts little of itself beyond the band (its spectrum has
    zeros at Nyquist's frequency along both axes), so the out-of-band residual misses it. It is
    found in real space instead, as a step the optics cannot make. Above the image's floor (its
    1st percentile), optics whose lowest ring-to-block ratio is ``optical_contrast``
    (:func:`optical_block_contrast`) can raise a block at most to ``ring / optical_contrast``;
    a block beyond that by :data:`BLOCK_THRESHOLD` standard deviations of its noise, whose four
    pixels each stand above the ring by at least half the block's mean excess (so a single hot
    pixel does not take its neighbours along), is hot. A block on the frame's edge has only
    part of its ring, and the lowest ratio of any one ring pixel (``edge_contrast``) bounds it.
    Dead blocks are not sought: near the floor the optics' dark gaps pass any such test.
    """
    ny, nx = mean.shape
    mask = np.zeros((ny, nx), bool)
    if ny < 3 or nx < 3:  # no ring to compare with
        return mask
    floor = float(np.percentile(mean[::4, ::4], 1))  # a sample does (and is 16x faster)
    # zeros around the frame: a block's ring is what of it lies inside (12 pixels, fewer on
    # the edges); blocks' top-left corners at every pixel but the last row and column
    padded_mean = np.pad(mean.astype(np.float32, copy=False), 1)

    def box(image: np.ndarray, size: int, start: int) -> np.ndarray:
        """Sums over ``size`` x ``size`` boxes of a padded image starting ``start`` pixels
        after each block's top-left corner (in padded coordinates, 1 = the corner itself)."""
        rows = sum(image[start + k : start + k + ny - 1] for k in range(size))
        return sum(rows[:, start + k : start + k + nx - 1] for k in range(size))

    # how many of a block's ring pixels lie inside the frame: 12, fewer along the edges
    top, left = np.arange(ny - 1), np.arange(nx - 1)  # blocks' corners; rings span -1 .. +2
    rows_in = np.minimum(top + 3, ny) - np.maximum(top - 1, 0)
    cols_in = np.minimum(left + 3, nx) - np.maximum(left - 1, 0)
    ring_count = (rows_in[:, None] * cols_in[None, :] - 4).astype(np.float32)
    inverse_contrast = np.full((ny - 1, nx - 1), 1 / optical_contrast, np.float32)
    edge = np.float32(1 / edge_contrast)
    inverse_contrast[[0, -1], :] = edge
    inverse_contrast[:, [0, -1]] = edge
    block_sum = box(padded_mean, 2, 1)
    block = block_sum / 4
    ring = (box(padded_mean, 4, 0) - block_sum) / ring_count
    beyond = (block - floor) - np.maximum(ring - floor, 0.0) * inverse_contrast
    # the noise and the four pixels only where a block exceeds what the optics allow (few)
    rows, cols = np.nonzero(beyond > 0)
    padded_var = np.pad(variance.astype(np.float64), 1)
    r, c = rows + 1, cols + 1  # the blocks' top-left pixels, padded coordinates
    inner = [(r + dy, c + dx) for dy in (0, 1) for dx in (0, 1)]
    outer = [(r + dy, c + dx) for dy in range(-1, 3) for dx in range(-1, 3)]
    var_block = sum(padded_var[i] for i in inner)
    var_ring = sum(padded_var[i] for i in outer) - var_block
    n_ring, k = ring_count[rows, cols], inverse_contrast[rows, cols]
    noise = np.sqrt(var_block / 16 + var_ring / n_ring.astype(np.float64) ** 2 * k**2)
    excess = block[rows, cols] - ring[rows, cols]
    weakest = np.min([padded_mean[i] for i in inner], axis=0) - ring[rows, cols]
    hot = (beyond[rows, cols] > BLOCK_THRESHOLD * noise) & (weakest > 0.5 * excess)
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        mask[rows[hot] + dy, cols[hot] + dx] = True
    return mask


def find_defect_pixels(
    frames: Any, setup: OpticalSetup, *, otf: OTF | None = None, threshold: float = THRESHOLD
) -> DefectPixels:
    """Hot and dead pixels of one raw set ``(n_frames, Y, X)`` (see the module notes).

    Parameters
    ----------
    frames : array (n_frames, Y, X)
        One SIM set (any offset).
    setup : OpticalSetup
        Detection optics and pixel size: they set the band limit.
    otf : OTF, optional
        A measured OTF (its cutoff replaces the ideal one).
    threshold : float
        Local standard deviations of the out-of-band residual beyond which a pixel is a defect.
    """
    import scipy.fft

    arr = np.asarray(frames, dtype=np.float32)
    ny, nx = arr.shape[-2:]
    # the mean image mirrored by PAD_PX at each edge (a pixel at the border is then a pair of
    # neighbours, which the rounds below handle) and split into its periodic part (Moisan
    # 2011): the high-pass is periodic, and edge jumps or spikes near one edge would ring into
    # the opposite one
    stack = arr.reshape(-1, ny, nx)
    mean_image = stack.mean(axis=0)
    mean = np.pad(mean_image, PAD_PX, mode="symmetric")
    py, px = mean.shape
    cutoff = (otf or OTF.from_setup(setup)).cutoff_per_um
    ky, kx = freq_grid((py, px), setup.pixel_size_um, np, rfft=True)
    beyond = (radius(kx, ky) > BAND_MARGIN * cutoff).astype(np.float32)
    fy, fx = freq_grid((py, px), setup.pixel_size_um, np)
    share = float(np.mean(radius(fx, fy) > BAND_MARGIN * cutoff))
    searchable = share >= MIN_BAND_SHARE
    if not searchable:  # 2 x 2 blocks are still sought (see _hot_blocks)
        log.debug("pixels too coarse for the band limit to show defects (%.0f %%)", 100 * share)
    # each pixel's own noise in the mean image, from its spread over the frames (shot noise
    # is the pixel's own: a bright, small bead has more of it than its surroundings)
    own_variance = np.pad(stack.var(axis=0, ddof=1) / stack.shape[0], PAD_PX, mode="symmetric")
    own_floor = (share * share) * own_variance.astype(np.float32)
    # a clipped plateau (values at the stack's maximum in a pixel and a neighbour) has sharp
    # edges the optics did not make, but it is no camera defect: left out, unless it is a
    # clipped cluster of hot pixels (see _clipped_hot_clusters)
    top = stack.max(axis=0) >= stack.max()
    plateau = top & (
        np.roll(top, 1, 0) | np.roll(top, -1, 0) | np.roll(top, 1, 1) | np.roll(top, -1, 1)
    )
    plateau &= ~_clipped_hot_clusters(top, mean_image)
    excluded = np.pad(plateau, PAD_PX, mode="symmetric")
    # spikes are sought in the frame only; each one near an edge brings its mirror image in
    # the border along (see _with_mirror_images)
    excluded[:PAD_PX] = excluded[-PAD_PX:] = True
    excluded[:, :PAD_PX] = excluded[:, -PAD_PX:] = True
    real = np.zeros((py, px), np.float32)
    real[PAD_PX : PAD_PX + ny, PAD_PX : PAD_PX + nx] = 1.0
    dy, dx = np.mgrid[-5:6, -5:6]
    ring = (np.abs(dy) > 2) | (np.abs(dx) > 2)  # 11 x 11 without the central 5 x 5
    dy, dx = dy[ring], dx[ring]

    def high_pass(image: np.ndarray) -> np.ndarray:
        spectrum = scipy.fft.rfft2(image, workers=-1)
        spectrum *= beyond
        return scipy.fft.irfft2(spectrum, s=(py, px), workers=-1).astype(np.float32)

    def score_at(own: np.ndarray, others: np.ndarray, rows: np.ndarray, cols: np.ndarray):
        """|own| over the standard deviation of the residual's noise at these pixels.

        Around a pixel: the residual's power over an 11 x 11 box without its central 5 x 5
        (a spike's own ringing stays inside that core), from the frame's own pixels only (the
        mirrored border holds mirror images of spikes near the edge). At the pixel itself, its
        own noise, which reaches the residual with weight ``share**2`` (the rest, ``share -
        share**2``, from the surroundings): ``var = share**2 v + (1 - share) local``.
        """
        rr = np.clip(rows[:, None] + dy, 0, py - 1)
        cc = np.clip(cols[:, None] + dx, 0, px - 1)
        w = real[rr, cc]
        local = (w * others[rr, cc] ** 2).sum(axis=1) / np.maximum(w.sum(axis=1), 1.0)
        variance = own_floor[rows, cols] + (1 - share) * local
        return np.abs(own[rows, cols]) / np.sqrt(np.maximum(variance, 1e-12))

    if searchable:
        residual = high_pass(SmoothComponent((py, px)).split(mean)[0])
    else:  # nothing to find beyond the band: the rounds below find nothing
        residual = np.zeros((py, px), np.float32)
    # spikes found one round at a time (CLEAN-like): each round takes the spikes found so far
    # off the residual (a spike of amplitude a leaves a * share at its own pixel and rings
    # around it), judges every other pixel on what is left, and adds the local extremes beyond
    # the threshold; so a strong spike's rings are not taken for defects and a weaker defect
    # beside it is found in a later round. Only pixels beyond the threshold against their own
    # noise alone (a lower bound of the full noise) are scored: a few in a clean frame
    candidates = np.zeros((py, px), bool)
    rejected = np.zeros((py, px), bool)
    amplitude = np.zeros((py, px), np.float32)
    others = own = residual
    bound = threshold * threshold

    def stands_out(rows: np.ndarray, cols: np.ndarray, own: np.ndarray) -> np.ndarray:
        """Whether each pixel differs from the median of its 8 neighbours in the mean image
        by at least half the spike its residual implies, and with its sign. Side by side,
        equal defects cancel in part at their own pixels and add up in the rings around them
        (a pair's neighbours then outscore the pair itself): a ring is no brighter or darker
        than its surroundings, a defect is."""
        around = np.stack([mean[rows + dy, cols + dx] for dy, dx in _NEIGHBOURS8])
        step = mean[rows, cols] - np.median(around, axis=0)
        spike = own[rows, cols] / share
        return step * np.sign(spike) > 0.5 * np.abs(spike)

    for _ in range(6):
        open_power = np.where(candidates | excluded | rejected, 0.0, own * own)
        rows, cols = np.nonzero(open_power > bound * own_floor)
        scores = np.zeros((py, px), np.float32)
        scores[rows, cols] = score_at(own, others, rows, cols)
        new = _local_maxima(scores, threshold)
        for _ in range(4):  # rings taken for defects step aside for what made them
            rows, cols = np.nonzero(new)
            ring_only = ~stands_out(rows, cols, own)
            if not ring_only.any():
                break
            rejected[rows[ring_only], cols[ring_only]] = True
            scores[rows[ring_only], cols[ring_only]] = 0.0
            new = _local_maxima(scores, threshold)
        if not new.any():
            break
        new = _with_mirror_images(new, (ny, nx))
        candidates |= new
        # neighbouring spikes (a defect beside another, or beside its own mirror image at the
        # border) share their rings: their amplitudes are refined together (Jacobi)
        for _ in range(6):  # converges by ~0.35 per pass for a pair of neighbours
            amplitude = np.where(candidates, own / share, 0.0).astype(np.float32)
            others = residual - high_pass(amplitude)
            own = others + amplitude * share
    rows, cols = np.nonzero(candidates)
    keep = score_at(own, others, rows, cols) > threshold
    flagged = np.zeros((py, px), bool)
    flagged[rows[keep], cols[keep]] = True
    inside = np.s_[PAD_PX : PAD_PX + ny, PAD_PX : PAD_PX + nx]
    flagged = flagged[inside]
    # 2 x 2 blocks of hot pixels, which the residual beyond the band hardly sees (clipped
    # structure left out; clipped hot pixels are not in it)
    # optics up to BAND_MARGIN better than stated, as for the band limit above
    sharper = BAND_MARGIN * cutoff
    contrast = optical_block_contrast(setup.pixel_size_um, sharper)
    edge_contrast = optical_block_contrast(setup.pixel_size_um, sharper, per_pixel=True)
    blocks = _hot_blocks(mean_image, own_variance[inside], contrast, edge_contrast) & ~plateau
    flagged |= blocks
    bright = (own[inside] > 0) | blocks
    rows, cols = np.nonzero(flagged)
    if rows.size > MAX_DEFECT_SHARE * ny * nx:
        log.warning(
            "%d pixels (%.1f %%) look like camera defects: more than real cameras have, so the "
            "stated optics (NA %.2f, %g nm emission, %g nm pixels) probably do not fit the data "
            "(structure beyond the assumed detection cutoff); no pixel was repaired",
            rows.size,
            100 * rows.size / (ny * nx),
            setup.na,
            setup.wavelength_nm,
            setup.pixel_size_nm,
        )
        return no_defects((ny, nx))
    mask = np.zeros((ny, nx), bool)
    mask[rows, cols] = True
    neighbours = np.zeros((rows.size, 8), np.int64)
    weights = np.zeros((rows.size, 8), np.float32)
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        for ring in (_NEIGHBOURS4, _NEIGHBOURS8):
            usable = [
                (r + dy) * nx + (c + dx)
                for dy, dx in ring
                if 0 <= r + dy < ny and 0 <= c + dx < nx and not mask[r + dy, c + dx]
            ]
            if usable:
                break
        if not usable:  # a defect inside a block of defects: its own value stays
            usable = [r * nx + c]
        neighbours[i, : len(usable)] = usable
        neighbours[i, len(usable) :] = usable[0]
        weights[i, : len(usable)] = 1.0 / len(usable)
    hot = int(np.count_nonzero(bright[rows, cols]))
    found = DefectPixels(rows, cols, neighbours, weights, (ny, nx), hot)
    if len(found):
        log.info(
            "%d camera pixels are hot (%d) or dead (%d): each is replaced by the mean of its "
            "neighbours in every frame",
            len(found),
            hot,
            len(found) - hot,
        )
    return found
