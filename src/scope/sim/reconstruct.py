"""2D-SIM reconstruction: band separation, shifts on the 2x grid, generalised Wiener filter.

With the pattern parameters fixed, :class:`SIMReconstructor` precomputes everything that does
not depend on the data (separation coefficients, sub-pixel shift ramps, per-order weights with
the common denominator and the apodisation folded in, placement of each order in the 2x
spectrum), so each SIM image costs a fixed, small set of FFTs:

- one real FFT of the combined 0 order (camera grid),
- one complex FFT per angle for the +1 order (the -1 order is its mirrored conjugate: real
  data), shifted by a sub-pixel ramp before the FFT and by whole pixels when placed,
- one inverse real FFT on the 2x grid,
- one inverse real FFT on the camera grid (the zero order's smooth part, see Edges),

and four element-wise passes (separate the orders, weigh, place; add the smooth part), which
the CPU backend splits into blocks of rows across its threads. Each order is zero beyond the
detection cutoff in its own frame, so only that disc's bounding box is weighed and placed.

Edges: a camera's field of view does not wrap around, and the jump between opposite edges
would put a cross of artefacts into every spectrum. The zero order, which carries the image's
brightness, is not tapered: it is split into a periodic and a smooth part (Moisan 2011); the
periodic part is reconstructed; the smooth part (its spectrum computed from the borders alone,
brought into real space by one inverse FFT of the camera grid and taken off the zero order
before its FFT) is added back in real space, interpolated onto the 2x grid (one pass over the
image): filtered in Fourier space like the rest, it carried a bright
structure cut by one edge over to the opposite edge (a ghost at 10-50 % of its brightness on
real data; on a simulated cell cut by the edge the error in the border strip falls from 0.22 to
0.05). So the image keeps its content up to the edges. The ±1 orders (whose sub-pixel shift
ramps are not periodic either) are split the same way, so SIM detail reaches the edges too;
their smooth parts, small, keep a filtered weight. Measured on noise-free simulated data, error
against the ideal-SIM target in the interior / in all but the last 16 pixels: 0.4 % / 0.6 %
(tapering the ±1 orders: 0.3 % / 2.0 %; leaving them as they are: 1.1 % / 1.7 %).

Unequal light: when the first set's frames differ in brightness by more than
:data:`FLICKER_TOLERANCE` (a flickering source, bleaching within a set, angles lit unequally),
every set's frames are scaled to their mean before separation, by folding the gains into the
separation matrices (no extra pass over the data); the offset, which then no longer cancels in
the +1 orders, is taken off them as a constant.

The combination is the generalised Wiener filter of Gustafsson et al. (2008) with the
regulariser chosen per frequency as the noise-to-signal power ratio (the minimum-mean-square-
error choice), from the measured noise floor and a power-law fit of the sample spectrum, so the
result needs no hand-tuning. The noise model is measured on the first set; later sets rescale
its regulariser to their own noise-to-signal ratio, read from the zero order (bleaching through
a time series, a change of light or exposure; ``ReconstructionSettings.follow_brightness``).
The apodisation is the transfer function the reconstruction aims at: an ideal incoherent OTF
with the extended support ``fc + |p|`` (the target of HiFi-SIM, Wen et al. 2021). A classic
constant Wiener parameter, a zero-order notch and a HiFi-SIM-style two-step filter are
options.

References
----------
Gustafsson et al., "Three-dimensional resolution doubling in wide-field fluorescence
microscopy by structured illumination", Biophys. J. 94, 4957 (2008).
Wen et al., "High-fidelity structured illumination microscopy by point-spread-function
engineering", Light Sci. Appl. 10, 70 (2021) (HiFi-SIM).
Müller et al., Nat. Commun. 7, 10980 (2016) (fairSIM: OTF attenuation / notch).
Moisan, "Periodic plus smooth image decomposition", J. Math. Imaging Vis. 39, 161 (2011).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from scope.backend import Backend, get_backend
from scope.errors import ConfigurationError, DataFormatError, ReconstructionError
from scope.optics import OTF, OpticalSetup, ideal_otf, pixel_transfer
from scope.sim.defects import DefectPixels, find_defect_pixels, no_defects
from scope.sim.params import SIMParameters
from scope.sim.spectral import (
    SmoothComponent,
    add_upsampled_2x,
    default_taper_px,
    edge_taper,
    freq_grid,
    out_of_band_power,
    pixel_coordinates_um,
    plane_wave,
    power_law,
    radius,
    sample_power_law,
    separable_without,
    separation_matrix,
)

log = logging.getLogger(__name__)

#: frames of the first set brighter or dimmer than the set's mean by more than this switch on
#: frame equalisation (``ReconstructionSettings.equalize_frames=None``). The sample's own
#: structure at the pattern frequency makes steadily lit frames differ a little (at most 0.5 %
#: on the simulated acceptance case, 8 seeds at 400 and 60 photons); equalising that away
#: neither helps nor harms
FLICKER_TOLERANCE = 0.02

#: steps of the MMSE regulariser as the light changes (``follow_brightness`` of
#: :class:`ReconstructionSettings`): a quarter octave. A set whose noise-to-signal ratio is
#: within about 9 % of that of the set the noise model was measured on gets exactly that
#: filter (a steady series: one filter, as without following); each step further rescales the
#: regulariser by this factor
NSR_STEP = 2.0**0.25

#: the command-line / preset words for ``ReconstructionSettings.equalize_frames``
EQUALIZE_MODES: dict[str, bool | None] = {"auto": None, "on": True, "off": False}


@dataclass(frozen=True)
class ReconstructionSettings:
    """How the orders are combined (defaults need no tuning).

    Attributes
    ----------
    wiener : float or None
        ``None``: per-frequency MMSE regulariser from the data's noise and spectrum.
        A number: the classic constant Wiener parameter ``w`` (fairSIM-style, e.g. 0.05).
    apodization_cutoff : float
        Support of the target transfer function relative to ``fc + |p|``.
    apodization_bend : float
        Exponent applied to the target (values < 1 keep more high frequencies).
    notch_strength : float
        Zero-order notch: each order's weight is reduced by this fraction at its own origin
        (suppresses out-of-focus light and background), 0 disables.
    notch_width : float
        Gaussian width of the notch in units of the detection cutoff.
    filter : {"wiener", "hifi"}
        ``"hifi"``: two-step filter in the spirit of HiFi-SIM (Wen et al. 2021).
    hifi_w1, hifi_w2 : float
        Regularisers of the two HiFi-SIM steps.
    offset_adu : float or None
        Camera offset subtracted before reconstruction (None: the 0.5th percentile of the data,
        an estimate of offset plus background).
    taper_px : int or None
        Edge taper of the spectra the noise model is measured on, in camera pixels (None: 1/16
        of the smaller side). The reconstruction itself does not taper (see the module notes).
    pixel_integration : bool
        Include the camera pixels' sinc transfer in the OTF.
    equalize_frames : bool or None
        Scale every frame of a set to the set's mean brightness before the orders are
        separated: a light source that flickers from frame to frame (LED PWM, a projector's
        colour sequence), bleaching within a set or angles lit unequally otherwise leak the
        widefield image into the +-1 orders as stripes. ``None`` (default): on when the first
        set's frames differ by more than :data:`FLICKER_TOLERANCE`; then every set is measured
        and equalised.
    follow_brightness : bool
        MMSE filter only: when a set's noise-to-signal ratio differs from that of the set the
        noise model was measured on (bleaching through a time series, a change of exposure or
        light, live imaging moved to a brighter or dimmer field), rescale the regulariser to
        it, in steps of :data:`NSR_STEP`. Measured per set at almost no cost from the zero
        order's spectrum (its mean and the noise in its corners beyond the detection cutoff);
        each set's filter depends only on that set and the noise model, not on the order in
        which sets are reconstructed. ``False``: one filter for the whole series.
    repair_defects : bool
        Find hot and dead camera pixels on the first set (from the optics' band limit, see
        :mod:`scope.sim.defects`) and replace them in every set by the mean of their
        neighbours, in the SIM and the widefield image alike.
    """

    wiener: float | None = None
    apodization_cutoff: float = 1.0
    apodization_bend: float = 1.0
    notch_strength: float = 0.0
    notch_width: float = 0.1
    filter: Literal["wiener", "hifi"] = "wiener"
    hifi_w1: float = 0.2
    hifi_w2: float = 0.1
    offset_adu: float | None = None
    taper_px: int | None = None
    pixel_integration: bool = True
    equalize_frames: bool | None = None
    follow_brightness: bool = True
    repair_defects: bool = True

    def __post_init__(self) -> None:
        if self.wiener is not None and not self.wiener > 0:
            raise ConfigurationError(f"the Wiener parameter must be positive, got {self.wiener}")
        if not 0 <= self.notch_strength < 1:
            raise ConfigurationError(f"notch_strength must be in [0, 1), got {self.notch_strength}")
        if self.filter not in ("wiener", "hifi"):
            raise ConfigurationError(f"filter must be 'wiener' or 'hifi', got {self.filter!r}")
        if not 0.3 <= self.apodization_cutoff <= 1.5:
            raise ConfigurationError(
                f"apodization_cutoff must be in [0.3, 1.5], got {self.apodization_cutoff}"
            )


@dataclass(frozen=True)
class NoiseModel:
    """What the MMSE regulariser needs: noise and sample power in Fourier units of one frame.

    ``noise_power`` is the white noise power per Fourier pixel of one tapered raw frame;
    the sample power spectrum is ``amplitude * k**-exponent`` (k in cycles/µm).

    ``signal_level_adu`` and ``frame_noise_adu2`` describe the set the model was measured on:
    its mean above the camera offset and the noise variance of one frame's pixel, read by the
    reconstructor from the zero order (see ``ReconstructionSettings.follow_brightness``).
    They are filled in by the :class:`SIMReconstructor` that measured the model, travel with
    it to other reconstructors, and are None for a model made by hand (which is then used as
    it is for every set).
    """

    noise_power: float
    amplitude: float
    exponent: float
    signal_level_adu: float | None = None
    frame_noise_adu2: float | None = None

    def signal_power(self, k_per_um: Any, xp: Any = np) -> Any:
        return power_law(k_per_um, self.amplitude, self.exponent, xp)


@dataclass
class _Separation:
    """The separation of one set other than the operator's own (frames left out): the zero
    row and each angle's +1 columns (re, im) over all frames, on the device; the zero row's
    sum (its share of the offset at DC) and power (its noise factor); each +1 order's share
    of the offset and noise factor; the offset."""

    zero_row: Any
    plus_columns: list[Any]
    dc: float
    row_power: float
    leaks: list[complex]
    var_plus: list[float]
    offset: float  # the camera offset taken off (estimated on a frame that is there)


def _modulation_used(angle: Any) -> float:
    """The modulation depth an angle's +1 order is scaled by: its measured one, held to
    [0.05, 1] (a measured m > 1 is noise)."""
    return float(np.clip(angle.modulation, 0.05, 1.0))


def _runs(src: np.ndarray, dst: np.ndarray) -> list[tuple[slice, slice]]:
    """Split an index mapping into contiguous (dst slice, src slice) runs."""
    out: list[tuple[slice, slice]] = []
    if src.size == 0:
        return out
    start = 0
    for j in range(1, src.size + 1):
        if j == src.size or dst[j] != dst[j - 1] + 1 or src[j] != src[j - 1] + 1:
            out.append(
                (
                    slice(int(dst[start]), int(dst[j - 1]) + 1),
                    slice(int(src[start]), int(src[j - 1]) + 1),
                )
            )
            start = j
    return out


def _support_runs(n: int, radius: int, *, rfft: bool = False) -> list[slice]:
    """Index runs of an FFT-ordered axis (or an rfft axis) with ``|frequency| <= radius``."""
    if rfft:
        return [slice(0, min(radius, n // 2) + 1)]
    if 2 * radius + 1 >= n:
        return [slice(0, n)]
    return [slice(0, radius + 1), slice(n - radius, n)]


def _intersect(a: slice, b: slice) -> slice | None:
    lo, hi = max(a.start, b.start), min(a.stop, b.stop)
    return slice(lo, hi) if lo < hi else None


def estimate_camera_offset(raw: Any, xp: Any = np) -> float:
    """Camera offset of a raw set when none is given: the 0.5th percentile of its first frame
    (the offset plus the darkest background)."""
    return float(_to_np(xp.percentile(xp.asarray(raw[0]), 0.5)))


def _to_np(a: Any) -> np.ndarray:
    return a.get() if hasattr(a, "get") else np.asarray(a)


class SIMReconstructor:
    """Reconstructs SIM images with fixed pattern parameters (a cached operator).

    Parameters
    ----------
    setup : OpticalSetup
        Detection optics and camera pixel size at the sample.
    params : SIMParameters
        Pattern parameters (estimated or given).
    shape : (int, int)
        Camera frame shape (Y, X); the output is (2Y, 2X).
    settings : ReconstructionSettings, optional
    backend : Backend or str, optional
        ``"numpy"``, ``"cupy"`` or ``"auto"``.
    otf : OTF, optional
        Measured OTF (default: ideal OTF of ``setup``).
    defect_pixels : DefectPixels, optional
        Hot and dead camera pixels to repair (default: found on the first set, see
        ``ReconstructionSettings.repair_defects``).
    noise_model : NoiseModel, optional
        The noise and sample spectrum of the MMSE regulariser; by default it is measured on the
        first set reconstructed and kept (a time series gets one filter, rescaled only as its
        brightness changes: ``ReconstructionSettings.follow_brightness``). A model made by
        hand is used as it is for every set.
    phase_maps : ndarray (n_angles, Y, X), optional
        How far each orientation's pattern departs in phase from the straight pattern of
        ``params`` at every camera pixel (radians): a pattern bent by the illumination optics
        (:mod:`scope.sim.pattern_map`). Each +1 order is demodulated by it together with its
        sub-pixel shift ramp, so the reconstruction costs what it costs without (the phase
        varies slowly against the PSF, so it can be taken out after the blur).

    Examples
    --------
    >>> from scope.sim.samples import make_sample
    >>> from scope.sim.forward import simulate_raw
    >>> setup = OpticalSetup(na=1.2, wavelength_nm=525, pixel_size_nm=65)
    >>> params = SIMParameters.equidistant([10, 70, 130], period_nm=260, modulation=0.8)
    >>> raw = simulate_raw(make_sample((128, 128)), params, setup, rng=0)
    >>> rec = SIMReconstructor(setup, params, shape=raw.shape[-2:])
    >>> rec(raw).shape
    (128, 128)
    """

    def __init__(
        self,
        setup: OpticalSetup,
        params: SIMParameters,
        *,
        shape: tuple[int, int],
        settings: ReconstructionSettings | None = None,
        backend: Backend | str | None = None,
        otf: OTF | None = None,
        noise_model: NoiseModel | None = None,
        defect_pixels: DefectPixels | None = None,
        phase_maps: Any = None,
    ) -> None:
        self.setup = setup
        self.params = params
        self.shape = (int(shape[0]), int(shape[1]))
        if min(self.shape) < 16:
            raise DataFormatError(
                f"camera frames must be at least 16x16 pixels, got {self.shape}: SIM needs "
                "several pattern periods in the field"
            )
        # the operator works on even sides (the 2x grid places each order by halves); an odd
        # side is padded by repeating the last row or column, and the image cropped back
        self._grid = (self.shape[0] + self.shape[0] % 2, self.shape[1] + self.shape[1] % 2)
        self._grid_output = (2 * self._grid[0], 2 * self._grid[1])
        self.settings = settings or ReconstructionSettings()
        self.backend = get_backend(backend)
        self.otf = otf or OTF.from_setup(setup)
        self.noise_model = noise_model
        s = self.settings
        self._follows = s.follow_brightness and s.wiener is None and s.filter == "wiener"
        self._fill_reference = False  # set when this reconstructor measures the noise model
        self._nsr_step = 0  # the regulariser is scaled by NSR_STEP ** this (follow_brightness)
        self._nsr_steps_seen = {0}
        #: hot and dead camera pixels repaired in every set (found on the first set unless
        #: given; empty when ``settings.repair_defects`` is off)
        self.defect_pixels: DefectPixels | None = defect_pixels
        if not s.repair_defects:
            self.defect_pixels = no_defects(self.shape)
        if self.defect_pixels is not None and self.defect_pixels.shape != self.shape:
            raise DataFormatError(
                f"the defect pixels were found on {self.defect_pixels.shape} frames, these are "
                f"{self.shape}"
            )
        self._defects_on_grid: DefectPixels | None = None
        self.phase_maps = None
        if phase_maps is not None:
            maps = np.asarray(phase_maps, np.float32)
            if maps.shape != (params.n_angles, *self.shape):
                raise DataFormatError(
                    f"phase maps must be shaped (angles, Y, X) = {(params.n_angles, *self.shape)}, "
                    f"got {maps.shape}"
                )
            self.phase_maps = maps
        self._prepare_data_independent()
        self._filter_ready = False
        if noise_model is not None or self.settings.wiener is not None:
            self._prepare_filter()

    # ------------------------------------------------------------------ set-up
    @property
    def n_frames(self) -> int:
        return self.params.n_frames

    @property
    def output_shape(self) -> tuple[int, int]:
        """Shape of the SIM image, ``(2Y, 2X)`` for camera frames ``(Y, X)``."""
        return (2 * self.shape[0], 2 * self.shape[1])

    @property
    def output_pixel_size_nm(self) -> float:
        return self.setup.pixel_size_nm / 2

    def _transfer(self, kx: Any, ky: Any) -> Any:
        xp = self.backend.xp
        h = self.otf(radius(kx, ky, xp), xp)
        if self.settings.pixel_integration:
            h = h * pixel_transfer(kx, ky, self.setup.pixel_size_um, xp)
        return h

    def _notch(self, kx: Any, ky: Any) -> Any:
        xp = self.backend.xp
        s = self.settings
        if s.notch_strength == 0:
            return 1.0
        width = s.notch_width * self.otf.cutoff_per_um
        return 1.0 - s.notch_strength * xp.exp(-(kx * kx + ky * ky) / (2 * width * width))

    def _prepare_data_independent(self) -> None:
        xp = self.backend.xp
        ny, nx = self._grid
        dx = self.setup.pixel_size_um
        p = self.params
        n_ph = p.n_phases
        taper = edge_taper(self._grid, self.settings.taper_px or default_taper_px(self._grid), xp)
        self._taper = taper  # for the spectra the noise model is measured on (and frame gains)
        self._taper_sum = float(_to_np(taper.sum()))
        self._smooth = SmoothComponent(self._grid, xp)  # for the zero order
        self._smooth_plus = SmoothComponent(self._grid, xp, complex_images=True)  # +1 orders
        # separation: the zero order summed over angles, then the +1 order of each angle
        # scaled by 2/m so that every order holds S(k) H(k) (noise variances tracked below)
        zero_row = np.zeros(p.n_frames)
        plus_rows = np.zeros((p.n_angles, p.n_frames), np.complex128)
        self._var_plus = []
        for a, ang in enumerate(p.angles):
            sep = separation_matrix(ang.phases_rad)
            m = _modulation_used(ang)
            zero_row[a * n_ph : (a + 1) * n_ph] = sep[0].real / p.n_angles
            plus_rows[a, a * n_ph : (a + 1) * n_ph] = sep[1] / (m / 2)
            self._var_plus.append(float(np.sum(np.abs(sep[1]) ** 2)) / (m / 2) ** 2)
        self._var0 = float(np.sum(zero_row**2))  # noise variance factor (x frame noise)
        # the zero order: one row over all frames; each +1 order: a (phases, 2) real matrix
        # (re, im) over its own angle's frames, whose C-contiguous product (pixels, 2) reads as
        # complex64 pixels without a copy
        self._zero_row_host = zero_row
        self._plus_rows_host = [plus_rows[a, a * n_ph : (a + 1) * n_ph] for a in range(p.n_angles)]
        self._zero_row, self._plus_columns = self._separation_matrices(None)
        self._equalize = bool(self.settings.equalize_frames)
        # pixel coordinates of the camera grid (r = 0 at the centre of pixel (0, 0))
        y, x = pixel_coordinates_um(self._grid, dx, xp)
        dky, dkx = 1.0 / (ny * dx), 1.0 / (nx * dx)
        self._shifts = []  # per angle: (integer shift (py, px), sub-pixel ramp)
        for ang in p.angles:
            kx, ky = ang.k_per_um
            py, px = ky / dky, kx / dkx
            iy, ix = round(py), round(px)
            fy, fx = (py - iy) * dky, (px - ix) * dkx
            # the +1 order holds S(k - p): shift it by -p; the fractional part as a ramp here,
            # the integer part when the spectrum is placed on the 2x grid (separable ramp)
            ramp = plane_wave((fx, fy), y, x, xp)
            if self.phase_maps is not None:  # a bent pattern: its phase taken out as well
                a = len(self._shifts)
                bend = np.pad(
                    self.phase_maps[a],
                    ((0, self._grid[0] - self.shape[0]), (0, self._grid[1] - self.shape[1])),
                    mode="edge",
                )
                ramp = ramp * xp.exp(-1j * xp.asarray(bend))
            self._shifts.append(((iy, ix), ramp.astype(xp.complex64)))
        # output convention: output pixel (i, j) covers the quarter of camera pixel
        # (i // 2, j // 2), so its centre lies a quarter camera pixel before the zero-padded
        # FFT sample (which sits where camera pixels sit): a shift of +dx/4 along x and y
        self._out_shift_um = dx / 4
        # every order is zero beyond the detection cutoff in its own frame: only that disc (its
        # bounding box, one pixel wider for the fractional shift) is weighed and placed
        fc = self.otf.cutoff_per_um
        self._support = (math.ceil(fc * ny * dx) + 1, math.ceil(fc * nx * dx) + 1)
        ry, rx = self._support
        self._rect0 = [
            (r, c) for r in _support_runs(ny, ry) for c in _support_runs(nx, rx, rfft=True)
        ]
        self._rect_plus = [(r, c) for r in _support_runs(ny, ry) for c in _support_runs(nx, rx)]
        # placement of each order on the half-plane of the 2x spectrum
        self._half_cols = self._grid_output[1] // 2 + 1
        self._place0 = self._placement(ny, nx, 0, 0, rfft_source=True)
        self._place_plus = [self._placement(ny, nx, -iy, -ix) for (iy, ix), _ in self._shifts]
        # the -1 order is read from the flipped view b[::-1, ::-1] of the +1 order's spectrum
        # (no copy): flipped index i holds frequency -f(n - 1 - i)
        self._place_minus = [
            self._placement(ny, nx, iy, ix, flipped=True) for (iy, ix), _ in self._shifts
        ]
        # element-wise work is split into row blocks (threads on the CPU): blocks of camera
        # rows before the FFTs, blocks of 2x-spectrum rows for the placement
        be = self.backend
        self._src_blocks = be.row_blocks(ny)
        self._acc_blocks = be.row_blocks(2 * ny)
        self._acc_plan = [self._placement_plan(blk) for blk in self._acc_blocks]
        # per block, the box the orders land in (the rest of the 2x spectrum stays zero)
        self._acc_boxes = [
            (
                slice(min(p[2].start for p in plan), max(p[2].stop for p in plan)),
                slice(min(p[4].start for p in plan), max(p[4].stop for p in plan)),
            )
            if plan
            else None
            for plan in self._acc_plan
        ]
        # where each set's noise is read (follow_brightness): the corner of the zero order's
        # half-plane beyond 1.1x the cutoff along both axes, where only noise lives (the jumps
        # at the untapered edges put power along the axes, up to the cutoff across them): 14 %
        # of the half-plane at 65 nm pixels and NA 1.2, a noise figure good to about 2 % at
        # 256 x 256 (sets at steady light stay within the first step of NSR_STEP)
        self._noise_probe = None
        fy = np.abs(np.fft.fftfreq(ny, dx))
        fx = np.fft.rfftfreq(nx, dx)
        rows = np.flatnonzero(fy > 1.1 * fc)
        cols = np.flatnonzero(fx > 1.1 * fc)
        if rows.size * cols.size >= 256:  # contiguous in FFT order: one rectangle
            self._noise_probe = (
                slice(int(rows[0]), int(rows[-1]) + 1),
                slice(int(cols[0]), int(cols[-1]) + 1),
            )
        self._buffers: tuple[Any, Any, Any] | None = None
        self._lock = threading.Lock()

    def _placement_plan(self, block: slice) -> list[tuple[int, int, slice, slice, slice, slice]]:
        """All (kind, angle, dst rows, src rows, dst cols, src cols) landing in rows ``block``.

        kind 0: the zero order, 1: a +1 order, 2: a -1 order (flipped conjugate of the +1).
        """
        plan = []
        sources = [(0, 0, self._place0)]
        sources += [(1, a, pl) for a, pl in enumerate(self._place_plus)]
        sources += [(2, a, pl) for a, pl in enumerate(self._place_minus)]
        for kind, a, placement in sources:
            for rd, rs, cd, cs in placement:
                lo, hi = max(rd.start, block.start), min(rd.stop, block.stop)
                if lo < hi:
                    s0 = rs.start + lo - rd.start
                    plan.append((kind, a, slice(lo, hi), slice(s0, s0 + hi - lo), cd, cs))
        return plan

    def _placement(
        self,
        ny: int,
        nx: int,
        off_y: int,
        off_x: int,
        *,
        rfft_source: bool = False,
        flipped: bool = False,
    ):
        """Slice pairs that add a camera-grid spectrum block into the 2x half-plane.

        The block is FFT-ordered (``rfft_source``: an rfft half-plane), or the flipped view of
        an FFT-ordered block (``flipped``); its frequency ``f`` lands at ``f + offset``.
        """
        oy, ox = self._grid_output

        ry, rx = self._support

        def freqs(n: int) -> np.ndarray:
            f = np.fft.fftfreq(n, 1.0 / n).astype(int)
            return -f[::-1] if flipped else f

        fy = freqs(ny)
        inside = np.abs(fy) <= ry
        rows = _runs(np.arange(ny)[inside], ((fy + off_y) % oy)[inside])
        if rfft_source:
            cols_src = np.arange(nx // 2 + 1)
            cols_dst = cols_src + off_x
            inside = cols_src <= rx
        else:
            cols_src = np.arange(nx)
            fx = freqs(nx)
            cols_dst = (fx + off_x) % ox
            inside = np.abs(fx) <= rx
        keep = (cols_dst < self._half_cols) & inside
        cols = _runs(cols_src[keep], cols_dst[keep])
        return [(rd, rs, cd, cs) for rd, rs in rows for cd, cs in cols]

    def _band_grids(self) -> tuple[Any, Any, Any]:
        """Frequencies of the camera grid (full and rfft) and of the 2x half-plane."""
        xp = self.backend.xp
        dx = self.setup.pixel_size_um
        f32 = xp.float32
        ky, kx = (a.astype(f32) for a in freq_grid(self._grid, dx, xp))
        ky_r, kx_r = (a.astype(f32) for a in freq_grid(self._grid, dx, xp, rfft=True))
        oky, okx = (a.astype(f32) for a in freq_grid(self._grid_output, dx / 2, xp, rfft=True))
        return (ky, kx), (ky_r, kx_r), (oky, okx)

    def _out_phase(self, kx: Any, ky: Any) -> Any:
        """The output shift (a quarter camera pixel) as a separable phase factor."""
        xp = self.backend.xp
        shift = self._out_shift_um
        return xp.exp(-2j * math.pi * ky * shift).astype(xp.complex64) * xp.exp(
            -2j * math.pi * kx * shift
        ).astype(xp.complex64)

    def _prepare_filter(self) -> None:
        """Per-order weights with the common filter folded in (needs the noise model unless
        ``wiener`` is set).

        The denominator sums ``H^2 notch / variance`` over all orders on the 2x grid. Each
        order's share is computed on its own camera-grid block and placed exactly as its data
        will be, so only the apodisation and the signal model are evaluated on the 2x grid.
        The common filter is real and even in ``k`` (both ±1 orders of each angle are in it),
        so it is folded into each order's weights: the -1 orders, read as mirrored conjugates
        of the weighted +1 spectra, receive the filter at their own frequencies.
        """
        xp = self.backend.xp
        s = self.settings
        p = self.params
        (ky, kx), (ky_r, kx_r), (oky, okx) = self._band_grids()
        noise = 1.0
        if self.noise_model is not None:
            noise = self.noise_model.noise_power * NSR_STEP**self._nsr_step
        half = (self._grid_output[0], self._half_cols)
        den = xp.zeros(half, xp.float32)

        def place(block: Any, placement: list, flipped: bool = False) -> None:
            src = block[::-1, ::-1] if flipped else block
            for rd, rs, cd, cs in placement:
                den[rd, cd] += src[rs, cs]

        var0 = self._var0 * noise
        t0 = self._transfer(kx_r, ky_r)
        h0 = t0 * self._notch(kx_r, ky_r)
        w0 = h0 / var0 * self._out_phase(kx_r, ky_r)
        place((t0 * h0 / var0).astype(xp.float32), self._place0)
        w_plus = []
        band_transfer = []
        dky, dkx = float(ky[1, 0]), float(kx[0, 1])
        for a, ang in enumerate(p.angles):
            (iy, ix), _ = self._shifts[a]
            pkx, pky = ang.k_per_um
            fy, fx = pky - iy * dky, pkx - ix * dkx  # fractional part of the shift (1/µm)
            var = self._var_plus[a] * noise
            # block value at integer index j holds the order at kappa = j + frac; it lands at
            # k = kappa - p = j - integer shift
            kap_x, kap_y = kx + fx, ky + fy
            tb = self._transfer(kap_x, kap_y)
            band_transfer.append(tb)
            hb = tb * self._notch(kap_x, kap_y)
            w_plus.append(hb / var * self._out_phase(kx - ix * dkx, ky - iy * dky))
            share = (tb * hb / var).astype(xp.float32)
            place(share, self._place_plus[a])
            place(share, self._place_minus[a], flipped=True)
        k_out = radius(okx, oky, xp)
        kmax = max(math.hypot(*a.k_per_um) for a in p.angles)
        cutoff = (self.otf.cutoff_per_um + kmax) * s.apodization_cutoff
        apod = ideal_otf(k_out, cutoff, xp=xp) ** s.apodization_bend
        # normalise so that the zero order at k = 0 has unit weight
        norm = float(_to_np(den[0, 0]))
        if s.filter == "hifi":
            t1 = den / (den + (s.hifi_w1**2) * norm)
            filt = apod * t1 / (t1 * t1 + s.hifi_w2**2) / (den + (s.hifi_w1**2) * norm)
        elif s.wiener is not None:
            filt = apod / (den + (s.wiener**2) * norm)
        else:
            if self.noise_model is None:
                raise ReconstructionError("internal: MMSE filter needs a noise model")
            power = self.noise_model.signal_power(k_out, xp)
            filt = apod / (den + 1.0 / power)
        # 4x: the 2x grid has four times the pixels (keeps the intensity of the widefield)
        filt = (4.0 * filt).astype(xp.float32)
        w0 = w0 * self._gather(filt, self._place0, t0.shape)
        self._w0 = w0.astype(xp.complex64)
        # the zero order's smooth part (see the module notes) is taken off before the filter
        # and added back in real space, interpolated onto the 2x grid at the zero order's DC
        # weight: any filter applied to it in Fourier space mixes opposite edges, where the
        # smooth part jumps (a bright cell cut by one edge put a ghost of it on the other)
        self._smooth_dc_weight = float(_to_np(w0[0, 0].real)) / 4.0  # in image units
        # the +1 orders' weights stacked (angle, Y, X): each rectangle of the spectra is
        # weighed for all angles at once
        self._w_plus = xp.empty((len(w_plus), *self._grid), xp.complex64)
        self._w_smooth_plus = xp.empty_like(self._w_plus)
        for a, w in enumerate(w_plus):
            f = self._gather(filt, self._place_plus[a], w.shape)
            self._gather(filt, self._place_minus[a], w.shape, out=f[::-1, ::-1])
            w = w * f
            self._w_plus[a] = w
            # the same split for the +1 order (its sub-pixel ramp is not periodic either)
            smooth_weight = self._smooth_plus.inverse_laplacian * w * (1 - band_transfer[a])
            self._w_smooth_plus[a] = smooth_weight
        self._filter_ready = True

    def _gather(self, filt: Any, placement: list, shape: tuple, out: Any = None) -> Any:
        """The 2x-grid filter read back at the positions where a block's elements land."""
        xp = self.backend.xp
        if out is None:
            out = xp.zeros(shape, xp.float32)
        for rd, rs, cd, cs in placement:
            out[rs, cs] = filt[rd, cd]
        return out

    # ----------------------------------------------------------- noise model
    def measure_noise_model(self, raw: Any) -> NoiseModel:
        """Noise floor and sample power-law spectrum of one raw set (for the MMSE filter)."""
        xp, fft = self.backend.xp, self.backend.fft
        frames = self._check(raw)
        offset = self.camera_offset(frames)
        tap = (frames - offset) * self._taper
        spec = fft.rfft2(tap)
        _, (ky_r, kx_r), _ = self._band_grids()
        k = radius(kx_r, ky_r, xp)
        fc = self.otf.cutoff_per_um
        noise = out_of_band_power(spec, k, fc, xp)
        if noise is None:
            var = float(_to_np(xp.mean(xp.clip(tap, 0, None))))
            noise = max(var, 1.0) * float(_to_np(xp.sum(self._taper**2)))
        # sample power from the widefield (mean of all frames): |C0|^2 = |S|^2 H^2 + noise/N
        wf = spec.mean(axis=0)
        h = self._transfer(kx_r, ky_r)
        fitted = sample_power_law(wf, noise / frames.shape[0], h, k, fc, xp)
        if fitted is None:
            log.warning("sample spectrum could not be fitted; using a 1/k^2 model")
            amplitude, exponent = max(noise, 1.0) * 100, 2.0
        else:
            amplitude, exponent = fitted
        model = NoiseModel(noise_power=noise, amplitude=amplitude, exponent=exponent)
        log.debug("noise model: %s", model)
        return model

    # --------------------------------------------------------------- running
    def _separation_matrices(self, gains: np.ndarray | None) -> tuple[Any, list[Any]]:
        """The zero-order row and each angle's +1 columns (re, im) on the device, with each
        frame divided by its gain when ``gains`` are given."""
        xp = self.backend.xp
        inv = np.ones(self.n_frames) if gains is None else 1.0 / np.asarray(gains, float)
        n_ph = self.params.n_phases
        zero = xp.asarray((self._zero_row_host * inv).astype(np.float32))
        columns = []
        for a, c in enumerate(self._plus_rows_host):
            c = c * inv[a * n_ph : (a + 1) * n_ph]
            columns.append(xp.asarray(np.stack([c.real, c.imag], 1).astype(np.float32)))
        return zero, columns

    def frame_gains(self, raw: Any, offset: float | None = None) -> np.ndarray:
        """Brightness of each frame of one set relative to the set's mean (offset removed).

        The taper-weighted mean of each frame: the pattern averages out under the smooth
        window, so what remains is the light each frame received (flicker, bleaching) and,
        below the 1 % level, the sample's own structure at the pattern frequency.
        """
        frames = self._check(raw, as_float32=False)
        if offset is None:
            offset = self.camera_offset(frames)
        sums = self._frame_sums(frames, offset)
        if not np.all(sums > 0):
            return np.ones(self.n_frames)  # no signal above the offset: leave the frames be
        return sums / sums.mean()

    def _frame_sums(self, frames: Any, offset: float) -> np.ndarray:
        """Each frame's taper-weighted sum above the offset (a set on the operator's grid)."""
        xp = self.backend.xp
        flat = frames.reshape(self.n_frames, -1)
        if flat.dtype != xp.float32:
            flat = flat.astype(xp.float32)
        taper = self._taper.reshape(-1)
        with self.backend.single_threaded_blas():  # idle BLAS threads would starve the FFTs
            weighted = _to_np(flat @ taper).astype(np.float64)
        return weighted - offset * self._taper_sum

    def _separation_without(
        self, frames: Any, offset: float, missing: tuple[int, ...]
    ) -> _Separation | None:
        """The separation of a set with ``missing`` frames (dropped or blank) left out.

        An angle that keeps at least 3 frames separates its orders from them as usual
        (Wicker et al. 2013's pseudo-inverse for any steps); one that keeps 2 cannot tell its
        zero order from its +-1 orders on its own, so the zero order of the complete angles,
        scaled to its own level (each angle's mean frame: angles may be lit unequally), is
        taken off its two frames and the +-1 orders solved from what is left. When the
        operator equalises frames (flicker), each kept frame is divided by its level first, as
        in a complete set, and the angles' levels are then equal. None when an angle keeps
        fewer than 2 frames, or none keeps 3.
        """
        p = self.params
        n_ph = p.n_phases
        if not separable_without(p.n_angles, n_ph, missing):
            return None
        kept = np.ones(self.n_frames, bool)
        kept[list(missing)] = False
        sums = self._frame_sums(frames, offset)
        level = sums / max(float(sums[kept].mean()), 1e-30)  # each frame's, kept frames ~1
        # frames equalised: each kept frame's coefficients divided by its level (below), so
        # every angle's zero order comes at one level
        inverse = np.where(kept & (level > 0), 1 / np.where(level > 0, level, 1), 0.0)
        if self._equalize:
            level = np.where(kept, 1.0, level)
        complete, partial = [], []
        for a in range(p.n_angles):
            n_kept = int(kept[a * n_ph : (a + 1) * n_ph].sum())
            (complete if n_kept >= 3 else partial).append(a)
        zero = np.zeros(self.n_frames)
        plus = np.zeros((p.n_angles, self.n_frames), np.complex128)
        gain = np.zeros(p.n_angles)  # each angle's level (the mean of its kept frames)
        try:
            for a in complete:
                idx = np.flatnonzero(kept[a * n_ph : (a + 1) * n_ph]) + a * n_ph
                sep = separation_matrix(np.asarray(p.angles[a].phases_rad)[idx - a * n_ph])
                zero[idx] = sep[0].real / len(complete)
                plus[a, idx] = sep[1]
                gain[a] = level[idx].mean()
            for a in partial:
                idx = np.flatnonzero(kept[a * n_ph : (a + 1) * n_ph]) + a * n_ph
                phases = np.asarray(p.angles[a].phases_rad)[idx - a * n_ph]
                z = np.exp(1j * phases)
                pair = np.linalg.inv(np.stack([z, z.conj()], axis=1))  # [C+, C-] = pair @ D
                if not np.all(np.isfinite(pair)):
                    return None
                gain[a] = level[idx].mean()
                share = gain[a] / gain[complete].mean()  # its zero order from the complete's
                plus[a, idx] = pair[0]
                plus[a] -= share * pair[0].sum() * zero
        except (ReconstructionError, np.linalg.LinAlgError):
            return None
        # the zero order at the level of all angles, as for a complete set
        zero *= gain.mean() / gain[complete].mean()
        if self._equalize:
            zero *= inverse
            plus *= inverse[None, :]
        for a, ang in enumerate(p.angles):
            plus[a] /= _modulation_used(ang) / 2
        xp = self.backend.xp
        columns = [xp.asarray(np.stack([row.real, row.imag], 1).astype(np.float32)) for row in plus]
        return _Separation(
            zero_row=xp.asarray(zero.astype(np.float32)),
            plus_columns=columns,
            dc=float(zero.sum()),
            row_power=float(np.sum(zero**2)),
            leaks=[complex(offset * row.sum()) for row in plus],
            var_plus=[float(np.sum(np.abs(row) ** 2)) for row in plus],
            offset=float(offset),
        )

    def _check(self, raw: Any, *, as_float32: bool = True, pad: bool = True) -> Any:
        """The raw set on the backend's device, checked for shape (and an odd side padded by
        repeating its last row or column, unless ``pad=False``).

        ``as_float32=False`` keeps the camera's integer type (the per-frame path converts row
        blocks on its threads, while they are in cache).
        """
        xp = self.backend.xp
        frames = xp.asarray(raw)
        if as_float32 or frames.dtype.kind not in "ui":
            frames = frames.astype(xp.float32, copy=False)
        expected = (self.n_frames, *self.shape)
        if self._grid != self.shape and tuple(frames.shape) == (self.n_frames, *self._grid):
            return frames  # padded already (a set handed on inside the operator)
        if tuple(frames.shape) != expected:
            raise DataFormatError(
                f"expected one SIM set shaped {expected} ({self.params.n_angles} angles x "
                f"{self.params.n_phases} phases, angle-major); got {tuple(frames.shape)}"
            )
        if pad and self._grid != self.shape:
            extra = (self._grid[0] - self.shape[0], self._grid[1] - self.shape[1])
            frames = xp.pad(frames, ((0, 0), (0, extra[0]), (0, extra[1])), mode="edge")
        return frames

    def camera_offset(self, raw: Any, missing_frames: Sequence[int] = ()) -> float:
        """The camera offset subtracted from this set: ``settings.offset_adu``, or when that is
        not set :func:`estimate_camera_offset` (on the first frame not ``missing``)."""
        if self.settings.offset_adu is not None:
            return float(self.settings.offset_adu)
        gone = set(missing_frames)
        first = next((i for i in range(len(raw)) if i not in gone), 0)
        return estimate_camera_offset(raw[first:], self.backend.xp)

    def widefield(self, raw: Any, *, missing_frames: Sequence[int] = ()) -> Any:
        """Widefield image (mean of all frames, offset subtracted), camera grid, float32.

        With ``missing_frames`` (dropped or blank), the mean of the frames kept: an angle short
        of a frame leaves a trace of its pattern (a ninth of one frame's modulation for one
        frame of nine), but more light than the complete angles alone give (against the
        noise-free widefield image, 0.078 against 0.085 at 400 photons, 0.200 against 0.227
        at 60; all nine frames 0.069 and 0.187)."""
        xp = self.backend.xp
        frames = self._check(raw, pad=False)
        offset = self.camera_offset(frames, missing_frames)
        used = frames
        if len(missing_frames):
            gone = {int(i) for i in missing_frames}
            used = frames[[i for i in range(self.n_frames) if i not in gone]]
        image = (used.mean(axis=0) - offset).astype(xp.float32)
        return self._find_defects(frames).repaired(image, xp)

    def __call__(self, raw: Any, *, missing_frames: Sequence[int] = ()) -> Any:
        """Reconstruct one raw SIM set (n_frames, Y, X) into a float32 (2Y, 2X) image.

        The result stays on the backend's device (cupy array on a GPU). Calls from several
        threads are serialised (the operator reuses its work buffers). ``missing_frames``
        (indices in the set) are left out: a dropped or blank frame of a later set (see
        :meth:`_separation_without`; the first set, which the filter is measured on, must be
        complete).
        """
        missing = tuple(sorted({int(i) for i in missing_frames}))
        if missing and not all(0 <= i < self.n_frames for i in missing):
            raise ConfigurationError(
                f"missing_frames must index the set's {self.n_frames} frames, got {missing}"
            )
        frames = self._check(raw, as_float32=False)
        if missing and not self._filter_ready:
            raise ConfigurationError(
                "the first set an operator reconstructs sets its filter (the noise it measures "
                f"there): it must be complete, got frame(s) {', '.join(map(str, missing))} "
                "missing; start from a complete set"
            )
        # BLAS limited once for the whole image (the blocks' matrix products run inside)
        with self._lock, self.backend.single_threaded_blas():
            self._find_defects(frames)  # on the first set (a given noise model or Wiener
            # parameter leaves the filter ready before any set is seen)
            if not self._filter_ready:
                repaired = self._repaired(frames)
                if self.noise_model is None:
                    self.noise_model = self.measure_noise_model(repaired)
                    self._fill_reference = True
                if self.settings.equalize_frames is None:
                    self._equalize = self._detect_flicker(repaired)
                self._prepare_filter()
            if missing:
                return self._reconstruct_without(frames, missing)
            return self._reconstruct(frames)

    def _reconstruct_without(self, frames: Any, missing: tuple[int, ...]) -> Any:
        """A set with ``missing`` frames left out of the separation
        (:meth:`_separation_without`), its filter weighing each order by its own noise then
        (an angle with two frames left has about twice the noise of a complete one): the
        filter is rebuilt for the set (about the time of one image, at 512 x 512) and the
        complete sets' filter put back after it."""
        offset = self.camera_offset(frames, missing)
        without = self._separation_without(frames, offset, missing)
        if without is None:
            log.warning(
                "frame(s) %s of this set are missing and too many of one angle's (or of every "
                "angle's) to separate the orders without them: reconstructed as they are",
                ", ".join(map(str, missing)),
            )
            return self._reconstruct(frames)
        kept = (self._var0, self._var_plus, self._nsr_step)
        weights = (self._w0, self._w_plus, self._w_smooth_plus, self._smooth_dc_weight)
        self._var0, self._var_plus = without.row_power, without.var_plus
        try:
            self._prepare_filter()
            return self._reconstruct(frames, without)
        finally:
            self._var0, self._var_plus = kept[0], kept[1]
            if self._nsr_step == kept[2]:  # the complete sets' filter, as it was
                self._w0, self._w_plus, self._w_smooth_plus, self._smooth_dc_weight = weights
            else:  # this set moved the regulariser (follow_brightness): rebuilt at its step
                self._prepare_filter()

    def _find_defects(self, frames: Any) -> DefectPixels:
        """The defect pixels (found on ``frames``, a set on the device, the first time)."""
        if self.defect_pixels is None:
            ny, nx = self.shape
            host = self.backend.to_numpy(frames[:, :ny, :nx])
            self.defect_pixels = find_defect_pixels(host, self.setup, otf=self.otf)
        return self.defect_pixels

    def _repaired(self, frames: Any) -> Any:
        """A float32 copy of a set (operator's grid) with its defect pixels repaired."""
        return self._grid_defects().repaired(frames, self.backend.xp)

    def _grid_defects(self) -> DefectPixels:
        """The defect pixels indexed on the operator's (even-sided) grid, their index arrays on
        the backend's device (copied there once, not for every set)."""
        if self._defects_on_grid is None:
            assert self.defect_pixels is not None, "defects are found on the first set"
            d = self.defect_pixels.on_grid(self._grid)
            xp = self.backend.xp
            self._defects_on_grid = replace(
                d,
                rows=xp.asarray(d.rows),
                cols=xp.asarray(d.cols),
                neighbours=xp.asarray(d.neighbours),
                weights=xp.asarray(d.weights),
            )
        return self._defects_on_grid

    @property
    def equalizes_frames(self) -> bool:
        """Whether each set's frames are scaled to equal brightness before separation (decided
        on the first set reconstructed when ``settings.equalize_frames`` is None)."""
        return self._equalize

    def _detect_flicker(self, frames: Any) -> bool:
        gains = self.frame_gains(frames)
        spread = float(np.max(np.abs(gains - 1)))
        if spread <= FLICKER_TOLERANCE:
            return False
        log.info(
            "the frames of a set differ in brightness by up to %.1f %% (%s): equalising every "
            "set's frames before separating the orders (a flickering light source, bleaching "
            "within a set, or pattern angles lit unequally)",
            100 * spread,
            ", ".join(f"{g:.3f}" for g in gains),
        )
        return True

    def _reconstruct(self, frames: Any, without: _Separation | None = None) -> Any:
        be = self.backend
        xp, fft = be.xp, be.fft
        ny, nx = self._grid
        n_ang = self.params.n_angles
        n_ph = self.params.n_phases
        if self._buffers is None:
            self._buffers = (
                xp.empty((ny, nx), xp.float32),
                xp.empty((n_ang, ny, nx), xp.complex64),
                xp.zeros((2 * ny, self._half_cols), xp.complex64),  # zero outside the boxes
            )
        zero, bands, acc = self._buffers
        flat = frames.reshape(self.n_frames, ny * nx)
        zero_flat = zero.reshape(ny * nx)
        offset = without.offset if without is not None else self.camera_offset(frames)
        zero_row, plus_columns, leaks, dc = self._zero_row, self._plus_columns, None, 1.0
        row_power = self._var0  # sum of the squared zero-order weights (noise of the order)
        # each +1 order from its own angle's frames (from all: a set with missing frames)
        own_frames = [slice(a * n_ph, (a + 1) * n_ph) for a in range(n_ang)]
        if without is not None:
            zero_row, plus_columns, leaks = without.zero_row, without.plus_columns, without.leaks
            dc, row_power = without.dc, without.row_power
            own_frames = [slice(None)] * n_ang
        elif self._equalize:
            # frame n divided by its gain g_n: the offset no longer cancels in the +1 orders
            # (sum_n c_n / g_n != 0); that constant is taken off each +1 order before its ramp,
            # and the zero order's share of the offset at DC follows its new row sum
            gains = self.frame_gains(frames, offset)
            zero_row, plus_columns = self._separation_matrices(gains)
            inv = 1.0 / gains
            dc = float(np.sum(self._zero_row_host * inv))
            row_power = float(np.sum((self._zero_row_host * inv) ** 2))
            leaks = [
                complex(offset * np.sum(c * inv[a * n_ph : (a + 1) * n_ph]))
                for a, c in enumerate(self._plus_rows_host)
            ]

        def separate(i: int) -> None:
            # the orders of one block of camera rows, by small matrix products
            rows = self._src_blocks[i]
            n_rows = rows.stop - rows.start
            px = slice(rows.start * nx, rows.stop * nx)
            block = flat[:, px]
            if block.dtype != xp.float32:  # camera integers: converted here, block by block
                block = block.astype(xp.float32)
            xp.matmul(zero_row, block, out=zero_flat[px])
            for a in range(n_ang):
                # the +1 order's (re, im) pairs written straight into its complex rows
                dst = bands[a, rows]
                pairs = dst.reshape(n_rows * nx).view(xp.float32).reshape(n_rows * nx, 2)
                xp.matmul(block[own_frames[a]].T, plus_columns[a], out=pairs)
                if leaks is not None:
                    dst -= xp.complex64(leaks[a])
                dst *= self._shifts[a][1][rows]  # the sub-pixel shift ramp

        be.run_blocks(separate, len(self._src_blocks))
        if self.defect_pixels is not None and len(self.defect_pixels):
            # the orders at the defect pixels, again from their neighbours' values
            defects = self._grid_defects()
            index = xp.asarray(defects.flat)
            values = defects.replacement(flat, xp).astype(xp.float32)
            zero_flat[index] = zero_row @ values
            for a in range(n_ang):
                plus = (values[own_frames[a]].T @ plus_columns[a]).view(xp.complex64)
                plus = plus.reshape(-1)
                if leaks is not None:
                    plus = plus - xp.complex64(leaks[a])
                band = bands[a].reshape(-1)
                band[index] = plus * self._shifts[a][1].reshape(-1)[index]
        # no order is tapered: the smooth part of each one's periodic-plus-smooth split (from
        # its borders alone) is weighed apart from the rest (see _prepare_filter)
        borders_plus = self._smooth_plus.border_spectra(bands)  # all angles at once
        # the zero order's smooth part, in real space (from its borders alone), taken off
        # before its FFT and added back after the filter (see _prepare_filter)
        smooth = fft.irfft2(self._smooth.spectrum(self._smooth.border_spectra(zero)), s=self._grid)
        smooth = smooth.astype(xp.float32, copy=False)
        zero -= smooth
        z = fft.rfft2(zero)
        z[0, 0] -= offset * dc * (ny * nx)
        if self._follows:
            self._follow_brightness(z, dc, row_power)  # may rebuild the weights used below
        spectra = fft.fft2(bands)

        def weigh(i: int) -> None:
            block = self._src_blocks[i]
            for rows, cols in self._rect0:
                rows = _intersect(rows, block)
                if rows is None:
                    continue
                z[rows, cols] *= self._w0[rows, cols]
            for rows, cols in self._rect_plus:
                rows = _intersect(rows, block)
                if rows is None:
                    continue
                spectra[:, rows, cols] *= self._w_plus[:, rows, cols]
                w_s = self._w_smooth_plus[:, rows, cols]
                spectra[:, rows, cols] -= self._smooth_plus.spectrum(
                    borders_plus, rows, cols, weight=w_s
                )

        be.run_blocks(weigh, len(self._src_blocks))
        flipped = [spectra[a, ::-1, ::-1] for a in range(n_ang)]

        def combine(i: int) -> None:
            if self._acc_boxes[i] is not None:
                acc[self._acc_boxes[i]] = 0
            for kind, a, rd, rs, cd, cs in self._acc_plan[i]:
                if kind == 0:
                    acc[rd, cd] += z[rs, cs]
                elif kind == 1:
                    acc[rd, cd] += spectra[a, rs, cs]
                else:  # -1 order: conjugate of the +1 order at mirrored frequencies
                    acc[rd, cd] += xp.conj(flipped[a][rs, cs])

        be.run_blocks(combine, len(self._acc_blocks))
        image = fft.irfft2(acc, s=self._grid_output).astype(xp.float32, copy=False)
        # the zero order's smooth part added back at its DC weight (see _prepare_filter)
        smooth *= xp.float32(self._smooth_dc_weight)  # in place: not needed otherwise now
        padded = xp.pad(smooth, 1, mode="edge")
        chunk = 32 if be.name == "numpy" else ny  # rows in cache; a GPU takes all at once
        be.run_blocks(
            lambda i: add_upsampled_2x(image, padded, self._src_blocks[i], xp, chunk),
            len(self._src_blocks),
        )
        if self._grid != self.shape:  # an odd side was padded: back to 2Y x 2X
            image = xp.ascontiguousarray(image[: self.output_shape[0], : self.output_shape[1]])
        return image

    @property
    def nsr_scale(self) -> float:
        """The factor on the noise model's regulariser used for the latest set (1 when its
        noise-to-signal ratio is that of the set the model was measured on; see
        ``ReconstructionSettings.follow_brightness``)."""
        return float(NSR_STEP**self._nsr_step)

    def _follow_brightness(self, z: Any, dc: float, row_power: float) -> None:
        """Rescale the MMSE regulariser to this set's noise-to-signal ratio.

        ``z`` is the zero order's spectrum with the offset taken off at DC, ``dc`` and
        ``row_power`` the sum and the sum of squares of the weights that made the zero order.
        The set's level is the zero order's mean; its noise, the mean power in the probe
        corner (white noise of variance ``s2`` per frame pixel gives ``N s2 row_power`` per
        Fourier pixel of an ``N``-pixel unnormalised FFT). Where the sampling leaves no such
        corner, shot noise is assumed (noise proportional to the level). The sample's power
        goes with the level squared, so the noise-to-signal ratio relative to the reference set
        is ``(noise / noise_ref) / (level / level_ref) ** 2``; its nearest power of
        :data:`NSR_STEP` scales the noise model's regulariser.
        """
        model = self.noise_model
        if model is None or (model.signal_level_adu is None and not self._fill_reference):
            return  # a model made by hand: used as it is
        xp = self.backend.xp
        n_px = self._grid[0] * self._grid[1]
        level = float(_to_np(z[0, 0].real)) / (n_px * dc)
        noise = None
        if self._noise_probe is not None:
            rows, cols = self._noise_probe
            corner = z.view(xp.float32)[rows, 2 * cols.start : 2 * cols.stop]  # (re, im) pairs
            power = float(_to_np(xp.einsum("ij,ij->", corner, corner))) / (corner.size / 2)
            noise = power / (n_px * row_power)
        if model.signal_level_adu is None:  # the set this reconstructor measured the model on
            self.noise_model = replace(model, signal_level_adu=level, frame_noise_adu2=noise)
            self._fill_reference = False
            return
        ref_level, ref_noise = model.signal_level_adu, model.frame_noise_adu2
        if not (level > 0 and ref_level > 0):
            return  # nothing above the offset to compare: keep the filter
        brightness = level / ref_level
        if noise is not None and ref_noise is not None and noise > 0 and ref_noise > 0:
            noise_ratio = noise / ref_noise
        else:
            noise_ratio = brightness
        nsr = noise_ratio / brightness**2
        step = max(-40, min(40, round(math.log(nsr) / math.log(NSR_STEP))))
        if step == self._nsr_step:
            return
        self._nsr_step = step
        report = log.info if step not in self._nsr_steps_seen else log.debug
        self._nsr_steps_seen.add(step)
        report(
            "set brightness %.0f %% of the set the noise model was measured on (noise %.2fx): "
            "MMSE regulariser x%.2f (bleaching, or a change of light or exposure)",
            100 * brightness,
            noise_ratio,
            self.nsr_scale,
        )
        self._prepare_filter()

    def with_settings(self, **changes: Any) -> SIMReconstructor:
        """A new reconstructor with some settings changed (same parameters and noise model)."""
        return SIMReconstructor(
            self.setup,
            self.params,
            shape=self.shape,
            settings=replace(self.settings, **changes),
            backend=self.backend,
            otf=self.otf,
            noise_model=self.noise_model,
            defect_pixels=self.defect_pixels,
            phase_maps=self.phase_maps,
        )
