"""The Python API: arrays in, a post-ready clip out.

>>> from scope.export import export_video
>>> export_video(sim, "clip.mp4", preset="reel", pixel_size_nm=32.5,
...              widefield=wf, title="Gut bacteria, live")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from scope.errors import ConfigurationError, DataFormatError
from scope.export.encode import Mp4Writer, write_gif
from scope.export.layouts import LAYOUTS, ClipRenderer
from scope.export.presets import VideoPreset, get_preset
from scope.export.render import RenderStyle, View, contrast_samples
from scope.export.timing import ShortMode, plan_timing
from scope.io.raw import LazyFrames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    """What was written."""

    path: Path
    preset: str
    layout: str
    n_frames: int
    fps: int
    duration_s: float
    mode: str
    speed_factor: float | None
    size_bytes: int


def as_tcyx(
    frames: np.ndarray, channel_axis: int | None = None, *, name: str = "image"
) -> np.ndarray:
    """Bring ``(Y, X)``, ``(T, Y, X)``, ``(C, Y, X)`` or ``(T, C, Y, X)`` data to ``(T, C, Y, X)``.

    Parameters
    ----------
    frames : array
        The image(s); the last two axes are ``Y, X``.
    channel_axis : int, optional
        Axis holding channels (needed for 4-D data and for 3-D multi-channel data).
    """
    if isinstance(frames, LazyFrames):  # read frame by frame: it must be (T, C, Y, X) already
        if frames.ndim != 4 or channel_axis not in (1, -3):
            raise ConfigurationError(
                f"{name}: data read frame by frame must be (T, C, Y, X) with channel_axis=1, "
                f"got shape {frames.shape} and channel_axis={channel_axis}"
            )
        return frames  # type: ignore[return-value]
    arr = np.asarray(frames)
    if arr.ndim < 2 or min(arr.shape[-2:]) < 2:
        raise DataFormatError(f"{name}: expected (..., Y, X) image data, got shape {arr.shape}")
    if arr.dtype.kind not in "uif":
        raise DataFormatError(f"{name}: expected numeric intensities, got dtype {arr.dtype}")
    if channel_axis is not None:
        if not -arr.ndim <= channel_axis < arr.ndim or channel_axis % arr.ndim >= arr.ndim - 2:
            raise ConfigurationError(
                f"{name}: channel_axis {channel_axis} must be one of the axes in front of (Y, X) "
                f"for shape {arr.shape}"
            )
        arr = np.moveaxis(arr, channel_axis, -3)
        if arr.ndim == 3:
            arr = arr[None]
        elif arr.ndim > 4:
            arr = arr.reshape(-1, *arr.shape[-3:])
        return arr
    if arr.ndim == 2:
        return arr[None, None]
    if arr.ndim == 3:
        return arr[:, None]
    raise DataFormatError(
        f"{name}: shape {arr.shape} has several axes in front of (Y, X); pass channel_axis= "
        "to say which one holds channels (or reshape to (T, Y, X))"
    )


def _field_text(shape_yx: Sequence[int], pixel_size_nm: float) -> str:
    ny, nx = (int(v) for v in shape_yx)
    return (
        f"{nx * pixel_size_nm / 1000:.3g} x {ny * pixel_size_nm / 1000:.3g} µm "
        f"({nx} x {ny} px of {pixel_size_nm:.3g} nm)"
    )


def check_same_field(
    sim_shape_yx: Sequence[int],
    sim_pixel_size_nm: float,
    widefield_shape_yx: Sequence[int],
    widefield_pixel_size_nm: float,
) -> None:
    """Refuse a widefield image whose field of view differs from the SIM image's.

    Both fields are measured in nm (pixels times pixel size); they may differ by rounding
    (1.5 of the larger pixel and 1 % of the field along each axis), not more: a crop, or an
    image of another field, would be stretched over the SIM image on screen.

    Raises
    ------
    DataFormatError
        Naming both fields of view.
    """
    for n_sim, n_wf in zip(sim_shape_yx, widefield_shape_yx):
        sim_nm, wf_nm = n_sim * sim_pixel_size_nm, n_wf * widefield_pixel_size_nm
        slack = 1.5 * max(sim_pixel_size_nm, widefield_pixel_size_nm) + 0.01 * max(sim_nm, wf_nm)
        if abs(sim_nm - wf_nm) > slack:
            wf_field = _field_text(widefield_shape_yx, widefield_pixel_size_nm)
            raise DataFormatError(
                f"the widefield image shows {wf_field}, the SIM image "
                f"{_field_text(sim_shape_yx, sim_pixel_size_nm)}: expected the "
                "widefield image of the same field (a crop, or another field, would be "
                "stretched over the SIM image); give the widefield image the SIM image was "
                "reconstructed from"
            )


#: below this correlation of the first frames, SIM and widefield look like different fields
UNRELATED_CORRELATION = 0.3


def warn_if_unrelated(sim: np.ndarray, widefield: np.ndarray) -> float | None:
    """Warn when the first frames of SIM and widefield look unrelated (another sample or field).

    The SIM frame is averaged down to the widefield grid, both are smoothed a little and
    compared by their correlation coefficient (an image of the same field: above 0.9).

    Returns
    -------
    float or None
        The correlation (None where it cannot be computed: flat or non-finite images).
    """
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    a = np.asarray(sim[0], dtype=np.float32)[0]
    b = np.asarray(widefield[0], dtype=np.float32)[0]
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    small = np.asarray(Image.fromarray(a).resize((b.shape[1], b.shape[0]), Image.Resampling.BOX))
    a, b = gaussian_filter(small, 1.0).ravel(), gaussian_filter(b, 1.0).ravel()
    if not (a.std() > 0 and b.std() > 0):
        return None
    r = float(np.corrcoef(a, b)[0, 1])
    if r < UNRELATED_CORRELATION:
        log.warning(
            "the widefield and SIM images look unrelated (correlation %.2f of their first "
            "frames; the same field gives over 0.9): is the widefield image of this field?",
            r,
        )
    return r


def check_output_path(path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """``path`` as a :class:`~pathlib.Path`, checked before anything is rendered.

    Raises
    ------
    ConfigurationError
        When ``path`` is a folder, its folder does not exist or cannot be written, or it
        exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigurationError(
            f"the output {path} is a folder; expected a file name (e.g. {path / 'clip.mp4'})"
        )
    folder = path.parent
    if not folder.is_dir():
        raise ConfigurationError(
            f"cannot write {path}: the folder {folder} does not exist; create it or choose "
            "another output path"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigurationError(f"cannot write {path}: the folder {folder} is not writable")
    if path.exists() and not overwrite:
        raise ConfigurationError(
            f"{path} exists: choose another name, or overwrite it (--overwrite on the command "
            "line, overwrite=True in Python)"
        )
    return path


def build_renderer(
    frames: np.ndarray,
    *,
    preset: str | VideoPreset = "reel",
    pixel_size_nm: float | None = None,
    widefield: np.ndarray | None = None,
    widefield_pixel_size_nm: float | None = None,
    layout: str = "auto",
    channel_axis: int | None = None,
    channel_names: Sequence[str] | None = None,
    frame_interval_s: float | None = None,
    timestamps_s: Sequence[float] | None = None,
    duration_s: float | None = None,
    short_mode: ShortMode = "slow",
    style: RenderStyle | None = None,
    **style_options: object,
) -> ClipRenderer:
    """Everything :func:`export_video` does short of encoding: a renderer of every frame.

    Parameters are those of :func:`export_video`; keyword options not listed there go to
    :class:`~scope.export.render.RenderStyle` (``colormap``, ``title``, ``caption``,
    ``credit``, ``gamma`` ...).
    """
    preset = get_preset(preset)
    style = (
        replace(style or RenderStyle(), **style_options)
        if style_options
        else (style or RenderStyle())
    )
    sim = as_tcyx(frames, channel_axis, name="frames")
    wf = None
    if widefield is not None:
        wf = as_tcyx(widefield, channel_axis, name="widefield")
        if wf.shape[:2] != sim.shape[:2]:
            raise DataFormatError(
                f"widefield has {wf.shape[0]} frames x {wf.shape[1]} channels, SIM has "
                f"{sim.shape[0]} x {sim.shape[1]}; expected the same"
            )
        ratio_y, ratio_x = sim.shape[-2] / wf.shape[-2], sim.shape[-1] / wf.shape[-1]
        if abs(ratio_y - ratio_x) > 0.02 * ratio_x:
            raise DataFormatError(
                f"widefield {wf.shape[-2:]} and SIM {sim.shape[-2:]} do not show the same field "
                "(different aspect ratios); expected SIM to be the widefield grid scaled (2x)"
            )
        if widefield_pixel_size_nm is None and pixel_size_nm is not None:
            widefield_pixel_size_nm = pixel_size_nm * ratio_x
        elif widefield_pixel_size_nm is not None and pixel_size_nm is not None:
            check_same_field(sim.shape[-2:], pixel_size_nm, wf.shape[-2:], widefield_pixel_size_nm)
        warn_if_unrelated(sim, wf)

    if layout == "auto":
        layout = "wipe" if wf is not None else ("overlay" if sim.shape[1] > 1 else "sim")
    if layout not in LAYOUTS:
        raise ConfigurationError(f"unknown layout {layout!r}; expected auto or one of {LAYOUTS}")
    if layout in ("side-by-side", "wipe") and wf is None:
        raise ConfigurationError(
            f"layout {layout!r} compares widefield with SIM: give the widefield image too "
            "(widefield= in Python; on the command line --widefield FILE, as scope reconstruct "
            "--widefield writes it, or the raw run with --raw)"
        )
    if layout == "overlay" and sim.shape[1] < 2:
        raise ConfigurationError(
            "layout 'overlay' needs several channels; pass channel_axis= for multi-channel data"
        )
    if layout == "sim" and sim.shape[1] > 1:
        raise ConfigurationError(
            f"layout 'sim' shows one channel, but the image has {sim.shape[1]} channels; use "
            "the 'overlay' layout to show them together (or pass one channel)"
        )

    n = sim.shape[0]
    times = None
    if timestamps_s is not None:
        times = np.asarray(timestamps_s, dtype=float).reshape(-1)
        if times.size != n:
            raise DataFormatError(f"{times.size} timestamps for {n} frames; expected one each")
        if frame_interval_s is None and n > 1:
            steps = np.diff(times)
            if np.all(steps > 0):
                frame_interval_s = float(np.median(steps))
    elif frame_interval_s is not None:
        times = np.arange(n) * float(frame_interval_s)
    plan = plan_timing(
        n, preset, frame_interval_s=frame_interval_s, duration_s=duration_s, short_mode=short_mode
    )

    views = []
    names = list(channel_names) if channel_names else None
    if wf is not None and layout in ("side-by-side", "wipe"):
        corner = "right" if layout == "wipe" else "left"
        wf_sample, sim_sample = contrast_samples(wf, sim)  # each set reconstructed once
        views.append(
            View.build(
                wf,
                widefield_pixel_size_nm,
                style,
                label="Widefield",
                label_corner=corner,
                channel_names=names,
                sample=wf_sample,
            )
        )
        views.append(
            View.build(
                sim, pixel_size_nm, style, label="SIM", channel_names=names, sample=sim_sample
            )
        )
    else:
        views.append(View.build(sim, pixel_size_nm, style, channel_names=names))
    return ClipRenderer(layout, views, preset, style, plan, times)


def render_ahead(renderer: ClipRenderer, depth: int = 4) -> Iterator[np.ndarray]:
    """Every frame of ``renderer``, rendered in a background thread while the caller encodes.

    Pillow's resampling and libx264 both release the GIL, so rendering overlaps encoding.
    An error in the renderer is raised here; leaving the loop early stops the thread.
    """
    frames: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                frames.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for frame in renderer.frames():
                if stop.is_set():
                    return
                put(frame)
            put(done)
        except BaseException as err:  # handed to the consumer, raised there
            put(err)

    worker = threading.Thread(target=produce, name="scope-export-render", daemon=True)
    worker.start()
    try:
        while True:
            item = frames.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def write_clip(
    renderer: ClipRenderer,
    path: str | os.PathLike,
    *,
    overwrite: bool = True,
    **encoder_options: object,
) -> Path:
    """Encode every frame of ``renderer`` to ``path`` (MP4 or GIF after the preset).

    The path is checked first (:func:`check_output_path`): a folder, a missing folder or, with
    ``overwrite=False``, an existing file is refused before anything is rendered.
    """
    path = check_output_path(path, overwrite=overwrite)
    preset = renderer.preset
    if preset.container == "gif":
        picks = np.unique(np.linspace(0, renderer.n_frames - 1, 6).round().astype(int))
        return write_gif(  # a callable: encoded again, smaller, when over the size cap
            path, renderer.frames, preset, palette_samples=[renderer.frame(int(i)) for i in picks]
        )
    with Mp4Writer(path, preset, renderer.plan.duration_s, **encoder_options) as writer:
        for frame in render_ahead(renderer):
            writer.write(frame)
    return path


def _gif_frames_and_rate(path: Path, planned: int, fps: float) -> tuple[int, float]:
    """The frames a GIF plays and their rate, from its frame delays: a run of identical frames
    is stored once with the summed delay, so the shortest delay common to all (their greatest
    common divisor) is one frame; ``(planned, fps)`` where the file gives no delays."""
    from PIL import Image

    delays = []
    with Image.open(path) as gif:
        for i in range(int(getattr(gif, "n_frames", 1))):
            gif.seek(i)
            delays.append(int(gif.info.get("duration", 0)))
    if not delays or min(delays) <= 0:
        return planned, fps
    unit_ms = math.gcd(*delays)
    return round(sum(delays) / unit_ms), 1000.0 / unit_ms


def export_video(
    frames: np.ndarray,
    path: str | os.PathLike,
    *,
    preset: str | VideoPreset = "reel",
    pixel_size_nm: float | None = None,
    widefield: np.ndarray | None = None,
    widefield_pixel_size_nm: float | None = None,
    layout: str = "auto",
    channel_axis: int | None = None,
    channel_names: Sequence[str] | None = None,
    frame_interval_s: float | None = None,
    timestamps_s: Sequence[float] | None = None,
    duration_s: float | None = None,
    short_mode: ShortMode = "slow",
    style: RenderStyle | None = None,
    encoder_options: dict | None = None,
    overwrite: bool = True,
    **style_options: object,
) -> ExportResult:
    """Render and encode a clip for social media.

    Parameters
    ----------
    frames : ndarray
        The SIM reconstruction (or any image): ``(Y, X)`` still, ``(T, Y, X)`` series, or
        with channels (``channel_axis``).
    path : path
        Output ``.mp4`` (or ``.gif`` with the ``gif`` preset).
    preset : str or VideoPreset
        ``reel`` (1080x1920), ``square`` (1080x1080), ``portrait`` (1080x1350),
        ``landscape`` (1920x1080) or ``gif`` (480x480).
    pixel_size_nm : float, optional
        Physical pixel size of ``frames`` (for a SIM reconstruction: half the camera pixel
        size at the sample). Without it there is no scale bar.
    widefield : ndarray, optional
        The widefield image of the same field and frames (enables ``side-by-side``/``wipe``).
    widefield_pixel_size_nm : float, optional
        Defaults to ``pixel_size_nm`` times the size ratio of the two grids.
    layout : str
        ``auto`` (wipe with widefield, overlay for channels, else sim), ``sim``,
        ``overlay``, ``side-by-side`` or ``wipe``.
    channel_axis : int, optional
        Axis of ``frames`` (and ``widefield``) holding channels.
    channel_names : sequence of str, optional
        Legend of a multi-channel overlay.
    frame_interval_s : float, optional
        Time between frames; enables real-time playback, the speed label and timestamps.
    timestamps_s : sequence of float, optional
        Time of each frame (per-frame metadata); shown on screen.
    duration_s : float, optional
        Clip length wanted; default: real time, condensed to the preset's target length,
        stretched to its minimum.
    short_mode : {"slow", "loop"}
        How a run shorter than the platform minimum is stretched.
    style : RenderStyle, optional
        Look of the clip; ``**style_options`` override its fields (``colormap="inferno"``,
        ``title=...``, ``caption=...``, ``credit=...``).
    encoder_options : dict, optional
        Passed to :class:`~scope.export.encode.Mp4Writer` (``x264_preset``, ``crf``,
        ``threads``).
    overwrite : bool
        Replace an existing ``path`` (default); ``False`` refuses it before rendering.

    Returns
    -------
    ExportResult

    Examples
    --------
    >>> export_video(np.random.rand(120, 120), "still.mp4", preset="square",
    ...              pixel_size_nm=30, title="Beads")  # doctest: +SKIP
    """
    check_output_path(path, overwrite=overwrite)  # before the (long) rendering
    renderer = build_renderer(
        frames,
        preset=preset,
        pixel_size_nm=pixel_size_nm,
        widefield=widefield,
        widefield_pixel_size_nm=widefield_pixel_size_nm,
        layout=layout,
        channel_axis=channel_axis,
        channel_names=channel_names,
        frame_interval_s=frame_interval_s,
        timestamps_s=timestamps_s,
        duration_s=duration_s,
        short_mode=short_mode,
        style=style,
        **style_options,
    )
    out = write_clip(renderer, path, overwrite=overwrite, **(encoder_options or {}))
    plan = renderer.plan
    n_frames, fps = plan.n_frames, plan.fps
    if out.suffix.lower() == ".gif":  # one over its size cap keeps every k-th frame
        n_frames, fps = _gif_frames_and_rate(out, n_frames, fps)
    return ExportResult(
        out,
        renderer.preset.name,
        renderer.layout,
        n_frames,
        fps,
        plan.duration_s,
        plan.mode,
        plan.speed_factor,
        out.stat().st_size,
    )
