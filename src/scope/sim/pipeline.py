"""High-level entry points: reconstruct a stack of SIM sets with estimated parameters."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scope.backend import Backend, get_backend
from scope.errors import ConfigurationError, DataFormatError, ReconstructionError
from scope.optics import OTF, OpticalSetup
from scope.sim.defects import DefectPixels, find_defect_pixels, no_defects
from scope.sim.estimate import EstimationSettings, estimate_parameters
from scope.sim.params import SIMParameters
from scope.sim.pattern_map import MAP_MODES, PhaseMap, plan_pattern_map
from scope.sim.reconstruct import ReconstructionSettings, SIMReconstructor, estimate_camera_offset

log = logging.getLogger(__name__)


def check_raw(raw: Any, n_frames: int) -> np.ndarray:
    """Validate a raw stack ``(..., n_frames, Y, X)`` and return it as an array view.

    Raises
    ------
    DataFormatError
        Wrong number of frames, too small frames, non-finite values or no signal.
    """
    arr = np.asarray(raw)
    if arr.ndim < 3:
        raise DataFormatError(
            f"raw SIM data must be shaped (..., angles*phases, Y, X); got {arr.ndim}D {arr.shape}"
        )
    if arr.shape[-3] != n_frames:
        raise DataFormatError(
            f"expected {n_frames} frames per SIM set (angles x phases, angle-major) on axis -3, "
            f"found {arr.shape[-3]} in shape {arr.shape}: check --angles/--phases"
        )
    if arr.dtype.kind not in "uif":
        raise DataFormatError(f"raw data must be numeric, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DataFormatError(
            "raw data holds NaN or infinite values: expected finite camera counts"
        )
    return arr


#: a camera offset above more than this share of a set's raw values is questioned: a camera
#: offset lies at or below the darkest background, so only noise falls below it (measured on the
#: B-SIM data at their stated offset: 0.02 % and 0.004 % of the values)
OFFSET_ABOVE_DATA_FRACTION = 0.5


def check_camera_offset(
    frames: Any,
    offset_adu: float | None,
    *,
    given_as: str = "the camera offset",
    unit: str = "ADU",
) -> float:
    """Check a camera offset against the raw values of one set before reconstructing.

    An offset at or above every value leaves no signal: refused. One above most values
    (more than :data:`OFFSET_ABOVE_DATA_FRACTION`) turns the background negative and the image
    into nonsense that still looks sharp: a warning naming the share, the data's 0.5th
    percentile (the estimate used when no offset is given,
    :func:`scope.sim.reconstruct.estimate_camera_offset`) and what to do.

    Parameters
    ----------
    frames : array
        One raw set ``(n_frames, Y, X)`` in the offset's units (ADU, or photo-electrons).
    offset_adu : float or None
        The offset to be subtracted (None: each set's own estimate, nothing to check).
    given_as : str
        How the offset was given, for the messages (``"--offset"``, a widget's field ...).
    unit : str
        The values' unit, for the messages (``"e-"`` for frames converted by camera maps).

    Returns
    -------
    float
        The share of the values below the offset (0 for None).

    Raises
    ------
    DataFormatError
        The offset is at or above the brightest value.

    Examples
    --------
    >>> frames = np.full((9, 8, 8), 110.0); frames[:, 0, 0] = 500
    >>> check_camera_offset(frames, 100.0)
    0.0
    """
    if offset_adu is None:
        return 0.0
    values = np.asarray(frames)
    brightest = float(values.max())
    if brightest <= offset_adu:
        raise DataFormatError(
            f"no signal above the offset: the brightest value is {brightest:g} {unit} but "
            f"{given_as} is {offset_adu:g}; check {given_as} and that the camera recorded light"
        )
    below = float(np.count_nonzero(values < offset_adu)) / values.size
    if below > OFFSET_ABOVE_DATA_FRACTION:
        low = float(np.percentile(values, 0.5))
        log.warning(
            "%.0f %% of the raw values lie below %s %g %s (the data's 0.5th percentile: %g "
            "%s), so the background turns negative and the image is meaningless: a camera "
            "offset lies at or below the darkest background; check %s (about %g %s or less "
            "here), or leave it out to have it estimated from each set's darkest values",
            100 * below,
            given_as,
            offset_adu,
            unit,
            low,
            unit,
            given_as,
            low,
            unit,
        )
    return below


def check_signal(
    frames: Any,
    offset_adu: float | None,
    *,
    given_as: str = "the camera offset",
    unit: str = "ADU",
) -> float:
    """Refuse a SIM set with nothing to reconstruct, before any estimation: the offset checks
    of :func:`check_camera_offset`, and a constant set. Returns the share of the values below
    the offset.

    Raises
    ------
    DataFormatError
        No value above the offset, or every value the same; the message says what was found.
    """
    below = check_camera_offset(frames, offset_adu, given_as=given_as, unit=unit)
    values = np.asarray(frames)
    brightest = float(values.max())
    if brightest <= float(values.min()):
        raise DataFormatError(
            f"the first SIM set is constant (every value {brightest:g}): there is no image to "
            "reconstruct"
        )
    check_no_blank_frame(values, offset_adu, unit=unit)
    return below


#: a frame of a set with less than this share of the set's median signal (above the offset) is
#: taken for a dropped or blank frame; no pattern or light source dims one frame that much
BLANK_FRAME_SHARE = 0.05


def blank_frames(frames: Any, offset_adu: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    """The frames of one set that hold (almost) no signal: less than
    :data:`BLANK_FRAME_SHARE` of the set's typical (median) frame above the offset (given, or
    the estimate :func:`~scope.sim.reconstruct.estimate_camera_offset`).

    Returns
    -------
    blank : ndarray of int
        Their indices in the set (empty for a set of fewer than 2 frames, or one with no
        signal at all).
    signal : ndarray
        Every frame's mean above the offset.
    typical : float
        The median of ``signal``.
    """
    values = np.asarray(frames)
    if values.ndim != 3 or values.shape[0] < 2:
        return np.zeros(0, int), np.zeros(0), 0.0
    # every 4th row and column: a frame without light is dark everywhere, and a set of a
    # series is checked in 0.3 ms instead of 4 (9 x 512 x 512)
    sample = values[:, ::4, ::4] if min(values.shape[1:]) >= 64 else values
    offset = estimate_camera_offset(sample) if offset_adu is None else float(offset_adu)
    signal = sample.reshape(sample.shape[0], -1).mean(axis=1, dtype=np.float64) - offset
    typical = float(np.median(signal))
    if typical <= 0:
        return np.zeros(0, int), signal, typical
    return np.flatnonzero(signal < BLANK_FRAME_SHARE * typical), signal, typical


def blank_frame_indices(frames: Any, offset_adu: float | None) -> tuple[int, ...]:
    """The indices of a set's blank frames (:func:`blank_frames`), as ``missing_frames`` for
    :meth:`~scope.sim.reconstruct.SIMReconstructor.__call__` takes them."""
    return tuple(int(i) for i in blank_frames(frames, offset_adu)[0])


def check_no_blank_frame(
    frames: Any, offset_adu: float | None, *, unit: str = "ADU", which: str = "the first SIM set"
) -> None:
    """Refuse a set with a frame that holds (almost) no signal (:func:`blank_frames`). Its
    orders cannot be separated, and a pattern estimated on it would mislead every set after it
    (a blank frame read a modulation of 1.55 and reconstructed without an error). ``which``
    names the set in the message.

    Raises
    ------
    DataFormatError
        Naming the frame and what to do.
    """
    blank, signal, typical = blank_frames(frames, offset_adu)
    if len(blank):
        listed = ("frames " if len(blank) > 1 else "frame ") + ", ".join(map(str, blank))
        its = "the first one's" if len(blank) > 1 else "its"
        raise DataFormatError(
            f"{listed} of {which} (counting from 0, of {len(signal)}) hold"
            f"{'' if len(blank) > 1 else 's'} almost no signal: {its} mean lies "
            f"{float(signal[blank[0]]):+.3g} {unit} from the "
            f"offset, the set's typical frame's {typical:+.3g} {unit}. A dropped or blank frame "
            "cannot be separated into the pattern's orders: check the acquisition, or start "
            "from a complete set"
        )


@dataclass
class BlankFrameLog:
    """The sets of a series, after its first, that hold a dropped or blank frame.

    The first set is refused outright (:func:`check_no_blank_frame`): the pattern is estimated
    on it. A later set is reconstructed without its blank frames
    (:meth:`~scope.sim.reconstruct.SIMReconstructor.__call__`, ``missing_frames``), so that
    nothing acquired is left out of the result: this log names it, for the warning at the end
    of a run and for ``.params.json``.

    Parameters
    ----------
    offset_adu : float, optional
        The camera offset taken off (None: each set's own estimate).
    sets : int
        Sets already checked elsewhere (each channel's first, by
        :func:`check_no_blank_frame`): the count starts there.
    run_sets : list of int, optional
        Each set's number in the run it was read from (a ``scope acquire`` run's
        ``RawStack.metadata["sets"]``, which counts its invalid sets too).
    """

    offset_adu: float | None = None
    sets: int = 0
    run_sets: Sequence[int] | None = None
    found: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)

    #: sets listed in :meth:`summary` at most (the count covers all)
    LISTED = 100

    def update(self, index: int, frames: Any) -> tuple[int, ...]:
        """Check set ``index`` (counting from 0 in the file's order); its blank frames."""
        self.sets += 1
        blank = blank_frame_indices(frames, self.offset_adu)
        if blank:
            self.found.append((index, blank))
            log.debug("set %d: blank frame(s) %s", index, blank)
        return blank

    def missing(self, index: int) -> tuple[int, ...]:
        """The blank frames found in set ``index`` (none when it was not checked, or clean)."""
        return next((f for i, f in self.found if i == index), ())

    def summary(self) -> dict[str, Any]:
        """For ``.params.json`` and batch reports (with ``run_sets``, each entry's number in
        its run as ``run_set``)."""
        listed = []
        for i, f in self.found[: self.LISTED]:
            entry: dict[str, Any] = {"set": i, "frames": list(f)}
            if self.run_sets is not None and i < len(self.run_sets):
                entry["run_set"] = int(self.run_sets[i])
            listed.append(entry)
        return {
            "sets_checked": self.sets,
            "sets_with_blank_frames": len(self.found),
            "blank": listed,
        }

    def message(self) -> str:
        """One line for the user: which sets, and what it means."""
        named = ", ".join(
            f"set {i} (frame{'s' if len(f) > 1 else ''} {', '.join(map(str, f))})"
            for i, f in self.found[:5]
        )
        more = f" and {len(self.found) - 5} more" if len(self.found) > 5 else ""
        return (
            f"{len(self.found)} of {self.sets} SIM sets hold{'s' if len(self.found) == 1 else ''}"
            f" a dropped or blank frame: {named}"
            f"{more} (counting from 0). Each is reconstructed without them where every angle "
            "keeps two frames and one at least three (a little noisier; otherwise with the "
            "pattern's stripes); check the acquisition (camera trigger, light source)"
        )


def estimate_with_fallback(
    frames: Any,
    setup: OpticalSetup,
    *,
    prior: SIMParameters | None,
    fallback_prior: SIMParameters | None,
    **kwargs: Any,
) -> SIMParameters:
    """:func:`~scope.sim.estimate.estimate_parameters` with ``prior``; without one, blind and,
    where the carrier is too weak to find blind, again with ``fallback_prior`` as the prior
    (another channel's pattern, for a channel too dim or too sparse to show its own)."""
    try:
        return estimate_parameters(frames, setup, prior=prior, **kwargs)
    except ReconstructionError as err:
        if prior is not None or fallback_prior is None:
            raise
        log.warning("%s; estimated again with another channel's pattern as the prior", err)
        return estimate_parameters(frames, setup, prior=fallback_prior, **kwargs)


def stated_by(raw: Any) -> str:
    """Where a value a raw file states comes from, for messages (``"x.mrc's header (voxel
    size 0.65)"``, ``"x.ome.tif's metadata"``).

    Parameters
    ----------
    raw : RawStack
        The open file (:func:`scope.io.raw.open_sim_stack`).
    """
    name = Path(raw.path).name
    if raw.metadata.get("format") == "mrc":
        voxel = raw.metadata.get("voxel_size_header")
        return f"{name}'s header" + (f" (voxel size {voxel:g})" if voxel else "")
    return f"{name}'s metadata"


def check_square_pixels(raw: Any, override: str | None = None) -> None:
    """Refuse a file that states pixels that are not square (the reconstruction's grid is
    square), unless a pixel size given instead overrides the file's sizes (then say so).

    Parameters
    ----------
    raw : RawStack
        The open file; its ``pixel_size_xy_nm`` is set only where X and Y differ.
    override : str, optional
        The pixel size given instead, as the user gave it (``"--pixel-size 65"``); None: none.

    Raises
    ------
    ConfigurationError
        Pixels that are not square and no ``override``.
    """
    if raw.pixel_size_xy_nm is None:
        return
    x, y = raw.pixel_size_xy_nm
    stated = f"{stated_by(raw)} states pixels of {x:g} x {y:g} nm (X x Y)"
    if override is None:
        raise ConfigurationError(
            f"{stated}, not square: the reconstruction needs square pixels; resample the frames "
            "to square pixels first, or give --pixel-size NM if the file's sizes are wrong"
        )
    log.warning(
        "%s, not square: %s is used for both (the reconstruction assumes square pixels)",
        stated,
        override,
    )


class MeasuredOTFs:
    """The measured OTFs of a file's channels: none, one for every channel, or one per
    channel; each file read once, checked against the optics of each channel it serves.

    Parameters
    ----------
    paths : sequence of str
        The OTF files (TIFF, MRC or a preset TOML with ``[calibration.otf]``): empty, one, or
        one per channel (the caller checks their number against the channels).
    """

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        self._loaded: dict[str, OTF] = {}

    def for_channel(
        self, channel: int, setup: OpticalSetup, first_setup: OpticalSetup | None = None
    ) -> OTF | None:
        """Channel ``channel``'s measured OTF, or None where no file is given (the ideal OTF
        of its setup then).

        Warns where the OTF does not fit the channel's optics
        (:func:`scope.optics.check_measured_otf`), or where one OTF serves channels of other
        emission wavelengths than channel 0's (``first_setup``).
        """
        from scope.calibration.otf import read_otf_file
        from scope.optics import check_measured_otf

        if not self.paths:
            return None
        path = self.paths[channel if len(self.paths) > 1 else 0]
        if path not in self._loaded:
            self._loaded[path] = read_otf_file(path)  # unreadable: an error naming the file
        otf = self._loaded[path]
        check_measured_otf(otf, setup)
        shared = len(self.paths) == 1 and channel > 0 and first_setup is not None
        if shared and setup.wavelength_nm != first_setup.wavelength_nm:
            log.warning(
                "--otf %s serves channel %d (%g nm) as well as channel 0 (%g nm), but a measured "
                "OTF belongs to one emission wavelength: its cutoff is %.2f /µm, channel %d's "
                "2 NA / λ %.2f /µm; give each channel its own: --otf A.mrc B.mrc ...",
                Path(path).name,
                channel,
                setup.wavelength_nm,
                first_setup.wavelength_nm,
                otf.cutoff_per_um,
                channel,
                setup.cutoff_per_um,
            )
        return otf


class SetReconstructor:
    """Reconstructs SIM sets one at a time with one cached operator.

    The pattern parameters are estimated on the first set handed to it (unless given) and the
    noise model of the MMSE filter is measured on that set and kept, even when the parameters
    are estimated again, so a time series gets one consistent filter (rescaled to each set's
    noise-to-signal ratio as the sample bleaches: ``ReconstructionSettings.follow_brightness``).
    Sets can come in any order (a video exporter reads them as it renders): each set's image
    depends on that set and the first one, not on the order.

    Parameters
    ----------
    setup : OpticalSetup
    n_angles, n_phases : int
    params : SIMParameters, optional
        Known parameters (no estimation).
    prior : SIMParameters, optional
        The nominal pattern: the estimation's search window and fallback.
    settings : ReconstructionSettings, optional
        Filter, offset, frame equalisation, defect repair (default settings when None).
    estimation : EstimationSettings, optional
        How the parameters are estimated.
    otf : OTF, optional
        A measured OTF (default: the ideal one of ``setup``).
    backend : Backend or str, optional
        Array backend (``"numpy"``, ``"cupy"``; default: the best available).
    pattern_map : {"auto", "on", "off"}
        Map the pattern's phase across large frames (measured in tiles) and take it out pixel
        by pixel, when the illumination optics bend the pattern (``"auto"``, default) or always
        (``"on"``); see :func:`scope.sim.pattern_map.plan_pattern_map`. Needs estimated
        parameters (not ``params``).
    fallback_prior : SIMParameters, optional
        Where a set's carrier is too weak to find without a prior (and ``prior`` is None), the
        pattern is estimated again with these as the prior (search window and fallback):
        another channel's pattern, for a channel too dim or too sparse to show its own. Can be
        set once that channel is estimated.
    """

    def __init__(
        self,
        setup: OpticalSetup,
        *,
        n_angles: int = 3,
        n_phases: int = 3,
        params: SIMParameters | None = None,
        prior: SIMParameters | None = None,
        settings: ReconstructionSettings | None = None,
        estimation: EstimationSettings | None = None,
        otf: OTF | None = None,
        backend: Backend | str | None = None,
        pattern_map: str = "auto",
        fallback_prior: SIMParameters | None = None,
    ) -> None:
        if pattern_map not in MAP_MODES:
            raise ConfigurationError(
                f"pattern_map must be one of {', '.join(MAP_MODES)}, got {pattern_map!r}"
            )
        self.pattern_map_mode = pattern_map
        self.setup = setup
        self.n_angles, self.n_phases = n_angles, n_phases
        self.n_frames = n_angles * n_phases
        self.given = params
        self.prior, self.settings, self.estimation, self.otf = prior, settings, estimation, otf
        self.fallback_prior = fallback_prior
        self.backend = get_backend(backend)
        #: parameters used for the first set reconstructed
        self.params: SIMParameters | None = None
        self.reconstructor: SIMReconstructor | None = None
        #: the pattern's phase map when the illumination optics bend it (else None)
        self.pattern_map: PhaseMap | None = None
        #: hot and dead camera pixels, found once on the first set and repaired in every set
        #: (for the estimation and the reconstruction alike)
        self.defects: DefectPixels | None = None

    def __call__(
        self, frames: Any, *, reestimate: bool = False, missing_frames: Sequence[int] = ()
    ) -> np.ndarray:
        """One set ``(n_frames, Y, X)`` -> float32 ``(2Y, 2X)`` (numpy).

        ``reestimate`` estimates the parameters again on this set (unless they were given).
        ``missing_frames``: dropped or blank frames of this set, left out of the separation
        (:meth:`~scope.sim.reconstruct.SIMReconstructor.__call__`); such a set is never
        estimated on (the pattern found so far is kept), and cannot be the first.
        The values are not checked here: readers and :func:`reconstruct_stack` check whole
        stacks once (:func:`check_raw`).
        """
        if getattr(frames, "ndim", None) != 3 or frames.shape[0] != self.n_frames:
            raise DataFormatError(
                f"expected one SIM set of {self.n_frames} frames shaped (n_frames, Y, X), got "
                f"{getattr(frames, 'shape', type(frames).__name__)}"
            )
        rec = self.reconstructor
        if len(missing_frames) and (rec is None or rec.shape != frames.shape[-2:]):
            raise DataFormatError(
                f"frame(s) {', '.join(map(str, missing_frames))} of the first SIM set are "
                "missing: the pattern is estimated on the first set, which must be complete"
            )
        reestimate = reestimate and not len(missing_frames)
        if rec is None or (reestimate and self.given is None) or rec.shape != frames.shape[-2:]:
            if self.defects is None or self.defects.shape != tuple(frames.shape[-2:]):
                self.defects = self._find_defects(frames)
            p = self.given or self._estimate(frames)
            same_field = rec is not None and rec.shape == frames.shape[-2:]
            self.pattern_map = None
            if self.given is None:
                self.pattern_map = plan_pattern_map(
                    frames,
                    self.setup,
                    p,
                    mode=self.pattern_map_mode,
                    otf=self.otf,
                    settings=self.estimation,
                    backend=self.backend,
                    defects=self.defects,
                )
            maps = None
            if self.pattern_map is not None:
                maps = self.pattern_map.maps(frames.shape[-2:], self.setup.pixel_size_um)
            rec = self.reconstructor = SIMReconstructor(
                self.setup,
                p,
                shape=frames.shape[-2:],
                settings=self.settings,
                backend=self.backend,
                otf=self.otf,
                noise_model=rec.noise_model if same_field else None,
                defect_pixels=self.defects,
                phase_maps=maps,
            )
            self.params = self.params or p
        image = rec(frames, missing_frames=missing_frames)
        return np.asarray(self.backend.to_numpy(image), dtype=np.float32)

    def _estimate(self, frames: Any) -> SIMParameters:
        return estimate_with_fallback(
            frames,
            self.setup,
            prior=self.prior,
            fallback_prior=self.fallback_prior,
            n_angles=self.n_angles,
            n_phases=self.n_phases,
            otf=self.otf,
            settings=self.estimation,
            backend=self.backend,
            defects=self.defects,
        )

    def _find_defects(self, frames: Any) -> DefectPixels:
        return defects_to_repair(frames, self.setup, self.settings, self.otf, self.backend)

    def widefield(self, frames: Any, *, missing_frames: Sequence[int] = ()) -> np.ndarray:
        """The widefield image of one set (mean of its frames, offset removed as for SIM;
        ``missing_frames`` left out, see
        :meth:`~scope.sim.reconstruct.SIMReconstructor.widefield`)."""
        if self.reconstructor is None:
            self(frames)
        assert self.reconstructor is not None
        image = self.reconstructor.widefield(frames, missing_frames=missing_frames)
        return np.asarray(self.backend.to_numpy(image), np.float32)


def defects_to_repair(
    frames: Any,
    setup: OpticalSetup,
    settings: ReconstructionSettings | None = None,
    otf: OTF | None = None,
    backend: Backend | None = None,
) -> DefectPixels:
    """The hot and dead camera pixels of one set that a pipeline repairs (none when
    ``settings.repair_defects`` is off), found once and handed to both the estimation and the
    reconstruction (:func:`scope.sim.defects.find_defect_pixels`)."""
    if not (settings or ReconstructionSettings()).repair_defects:
        return no_defects(tuple(frames.shape[-2:]))
    host = backend.to_numpy(frames) if backend is not None else np.asarray(frames)
    return find_defect_pixels(host, setup, otf=otf)


def reconstruct_stack(
    raw: Any,
    setup: OpticalSetup,
    *,
    n_angles: int = 3,
    n_phases: int = 3,
    params: SIMParameters | None = None,
    prior: SIMParameters | None = None,
    settings: ReconstructionSettings | None = None,
    estimation: EstimationSettings | None = None,
    otf: OTF | None = None,
    backend: Backend | str | None = None,
    estimate_every: int | None = None,
    pattern_map: str = "auto",
) -> tuple[np.ndarray, SIMParameters]:
    """Reconstruct every SIM set of ``raw`` (``(..., n_angles*n_phases, Y, X)``).

    Parameters are estimated on the first set (unless given) and reused — re-estimated every
    ``estimate_every`` sets when set — with one cached :class:`SIMReconstructor`, whose
    noise model is also measured once, so a time series gets one consistent filter, following
    the sample's brightness (see :class:`SetReconstructor`). ``pattern_map``: map a pattern
    that the illumination optics bend across the field (:func:`scope.sim.pattern_map.
    plan_pattern_map`). One pattern and one setup for every set: give each colour of a
    multi-channel stack its own call (``scope reconstruct`` and ``scope batch`` do).

    Returns
    -------
    sim : ndarray float32 ``(..., 2Y, 2X)``
    params : SIMParameters
        The parameters used for the first set.
    """
    n_frames = n_angles * n_phases
    arr = check_raw(raw, n_frames)
    lead = arr.shape[:-3]
    ny, nx = arr.shape[-2:]
    sets = arr.reshape(-1, n_frames, ny, nx)
    out = np.empty((len(sets), 2 * ny, 2 * nx), np.float32)
    rec = SetReconstructor(
        setup,
        n_angles=n_angles,
        n_phases=n_phases,
        params=params,
        prior=prior,
        settings=settings,
        estimation=estimation,
        otf=otf,
        backend=backend,
        pattern_map=pattern_map,
    )
    for i, frames in enumerate(sets):
        out[i] = rec(frames, reestimate=bool(estimate_every and i % estimate_every == 0))
        if len(sets) > 1 and (i + 1) % max(1, len(sets) // 10) == 0:
            log.info("reconstructed %d/%d SIM sets", i + 1, len(sets))
    assert rec.params is not None
    return out.reshape(*lead, 2 * ny, 2 * nx), rec.params


def widefield_stack(raw: Any, *, n_frames: int, offset_adu: float = 0.0) -> np.ndarray:
    """Widefield images (mean of each set's frames minus the offset), ``(..., Y, X)``."""
    arr = check_raw(raw, n_frames)
    return (arr.astype(np.float32).mean(axis=-3) - offset_adu).astype(np.float32)


def expected_resolution_nm(setup: OpticalSetup, params: SIMParameters) -> tuple[float, float]:
    """Theoretical (widefield, SIM) resolution 1/cutoff in nm for these parameters."""
    fc = setup.cutoff_per_um
    kmin = min(math.hypot(*a.k_per_um) for a in params.angles)
    return 1000.0 / fc, 1000.0 / (fc + kmin)
