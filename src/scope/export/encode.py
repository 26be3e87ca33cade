"""Writing frames to files the platforms accept: H.264 MP4 (PyAV/libx264) and GIF (Pillow).

MP4 settings, and why:

* H.264 **High** profile, **yuv420p** (4:2:0, 8 bit): what every phone decodes in hardware
  and every platform ingests without complaint.
* **Constant 30 fps**: frame ``i`` has timestamp ``i / 30`` s; no variable frame rate.
* **Even dimensions**: presets are checked to be even (4:2:0 chroma halves each side).
* ``movflags=+faststart``: the ``moov`` index is moved in front of the media data so a
  clip starts playing (and uploads are validated) before the whole file has arrived.
* **BT.709** primaries, transfer and matrix, limited ("TV") range, written both into the
  H.264 VUI and the container; the RGB to YUV conversion uses the same BT.709 matrix so
  colours come back as rendered.
* Constant quality (CRF) with a **VBV cap** (``maxrate`` = ``bufsize``): the bitrate never
  exceeds :func:`bitrate_cap_kbps`, which keeps the file under the preset's ``max_file_mb``.

GIFs use one global 256-colour palette for the whole clip (computed from frames sampled over
the clip), so colours do not shimmer between frames, and loop forever. A run of identical
frames is stored once with the summed delay (Pillow does this), so a GIF holds fewer frames
than the clip plan while playing for exactly the same time.

References
----------
ITU-T H.264 (profiles, VUI colour description); ITU-R BT.709-6; ISO/IEC 14496-12 (MP4 boxes);
GIF89a specification (graphic control extension delays in 1/100 s).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

import numpy as np

from scope.errors import ConfigurationError, DataFormatError, ScopeError
from scope.export.presets import VideoPreset

log = logging.getLogger(__name__)

#: x264 speed/quality preset: "veryfast" keeps 1080x1920 at 30 fps under real time on 2 cores
X264_PRESET = "veryfast"
#: x264 constant-quality level (lower is better; 18-23 is visually transparent to good)
X264_CRF = 20
#: part of the size limit spent on video (the rest: container overhead, rounding)
SIZE_HEADROOM = 0.92


def bitrate_cap_kbps(preset: VideoPreset, duration_s: float) -> int:
    """Highest video bitrate for a clip of ``duration_s`` seconds with ``preset``.

    The VBV model with ``bufsize = maxrate`` bounds the bits of a clip of ``D`` seconds by
    ``maxrate * (D + 1)``, so the cap is ``min(preset ceiling, headroom * size / (D + 1))``.
    """
    if not duration_s > 0:
        raise ConfigurationError(f"clip duration must be positive, got {duration_s} s")
    by_size = SIZE_HEADROOM * preset.max_file_mb * 8e3 / (duration_s + 1.0)
    return max(100, int(min(preset.max_bitrate_kbps or by_size, by_size)))


def _part_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.part")


def _replace(tmp: Path, path: Path) -> None:
    """Move the finished ``tmp`` file to ``path``; on failure remove it and say why."""
    try:
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ScopeError(
            f"cannot write {path}: {err.strerror or err}"
            + ("; it is a folder, expected a file name" if path.is_dir() else "")
        ) from err


class Mp4Writer:
    """Stream RGB frames into an H.264 MP4 (context manager; the file appears only on success).

    Parameters
    ----------
    path : Path
        Output file; written to a temporary name first and renamed when complete, so an error
        never leaves a half-written clip behind.
    preset : VideoPreset
        Frame size, frame rate, bitrate limits.
    duration_s : float
        Planned clip length (sets the bitrate cap).
    x264_preset : str
        libx264 speed preset.
    threads : int
        Encoder threads (0 = as many as useful).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        preset: VideoPreset,
        duration_s: float,
        *,
        x264_preset: str = X264_PRESET,
        crf: int = X264_CRF,
        threads: int = 0,
    ) -> None:
        try:
            import av
        except ImportError as err:
            raise ConfigurationError(
                "writing MP4 needs PyAV: install the video extra (pip install 'scope-sim[video]')"
            ) from err

        self.path = Path(path)
        self.preset = preset
        self.cap_kbps = bitrate_cap_kbps(preset, duration_s)
        self._tmp = _part_path(self.path)
        self.n_written = 0
        if self.path.is_dir():
            raise ScopeError(f"cannot write {self.path}: it is a folder; expected a file name")
        try:
            self._container = av.open(
                str(self._tmp), "w", format="mp4", options={"movflags": "+faststart"}
            )
        except (OSError, av.FFmpegError) as err:
            self._tmp.unlink(missing_ok=True)
            raise ScopeError(
                f"cannot create {self.path}: {getattr(err, 'strerror', None) or err}; check "
                f"that the folder {self.path.parent} exists and is writable"
            ) from err
        try:
            stream = self._container.add_stream(
                "libx264",
                rate=preset.fps,
                options={
                    "preset": x264_preset,
                    "profile": "high",
                    "crf": str(crf),
                    "maxrate": f"{self.cap_kbps}k",
                    "bufsize": f"{self.cap_kbps}k",
                    "x264-params": "colorprim=bt709:transfer=bt709:colormatrix=bt709:"
                    f"range=tv:threads={threads or 'auto'}",
                },
            )
            stream.width, stream.height = preset.width_px, preset.height_px
            stream.pix_fmt = "yuv420p"
            cc = stream.codec_context
            cc.color_primaries = 1  # BT.709 (ISO/IEC 23091-2 code points)
            cc.color_trc = 1
            cc.colorspace = 1
            cc.color_range = 1  # limited (MPEG/TV) range
            self._stream = stream
        except Exception:
            self._abort()
            raise

    def write(self, rgb: np.ndarray) -> None:
        """Append one ``(H, W, 3) uint8`` RGB frame."""
        import av

        expected = (self.preset.height_px, self.preset.width_px, 3)
        if rgb.shape != expected or rgb.dtype != np.uint8:
            self._abort()
            raise DataFormatError(
                f"frame {self.n_written} is {rgb.dtype} {rgb.shape}; expected uint8 {expected}"
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(
            format="yuv420p",
            src_colorspace="itu709",
            dst_colorspace="itu709",
            dst_color_range="MPEG",
        )
        frame.pts = self.n_written
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.n_written += 1

    def close(self) -> Path:
        """Flush the encoder, finish the file (``moov`` moved to the front) and rename it."""
        if self.n_written == 0:
            self._abort()
            raise DataFormatError("no frames were written; a clip needs at least one frame")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        except Exception:
            self._abort()
            raise
        _replace(self._tmp, self.path)
        log.info(
            "wrote %s (%d frames, %.1f MB)",
            self.path,
            self.n_written,
            self.path.stat().st_size / 1e6,
        )
        return self.path

    def _abort(self) -> None:
        try:
            self._container.close()
        except Exception:  # closing a broken container may itself fail
            log.debug("closing the aborted container failed", exc_info=True)
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()


def global_palette(samples: Iterable[np.ndarray], colors: int = 255):
    """A Pillow palette image built from a montage of sample frames (median cut)."""
    from PIL import Image

    tiles = [np.asarray(s)[::2, ::2] for s in samples]
    if not tiles:
        raise DataFormatError("no frames to build a GIF palette from")
    montage = Image.fromarray(np.concatenate(tiles, axis=0))
    return montage.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)


#: what a GIF gives up, in turn, to fit ``max_file_mb``: (colours, keep every n-th frame, scale)
GIF_FALLBACKS: tuple[tuple[int, int, float], ...] = (
    (255, 1, 1.0),
    (128, 1, 1.0),
    (64, 2, 1.0),
    (64, 2, 0.75),
    (32, 3, 0.5),
)


def write_gif(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray] | Callable[[], Iterable[np.ndarray]],
    preset: VideoPreset,
    *,
    palette_samples: Iterable[np.ndarray],
) -> Path:
    """Write a looping GIF with one global palette at ``preset.fps``, within its size cap.

    Parameters
    ----------
    path : Path
        Output file (written under a temporary name, renamed when complete).
    frames : iterable of ndarray, or a callable returning one
        ``(H, W, 3) uint8`` frames. A callable lets the GIF be encoded again when it comes out
        over ``preset.max_file_mb``: with fewer colours, then every second frame (same
        duration), then smaller (:data:`GIF_FALLBACKS`); the first that fits is kept, and a
        warning says what it gave up. With a plain iterable an oversized GIF is only reported.
    preset : VideoPreset
        Frame size and rate; ``1000 / fps`` ms must be a whole number of centiseconds for an
        exact rate (the ``gif`` preset uses 20 fps: 5 cs per frame).
    palette_samples : iterable of ndarray
        A few frames spread over the clip, to build the palette from.
    """
    path = Path(path)
    delay_ms = 1000 / preset.fps
    if abs(delay_ms / 10 - round(delay_ms / 10)) > 1e-9:
        log.warning(
            "GIF delays are whole centiseconds: %d fps is played at %.2f fps",
            preset.fps,
            100 / round(delay_ms / 10),
        )
    samples = list(palette_samples)
    attempts = GIF_FALLBACKS if callable(frames) else GIF_FALLBACKS[:1]
    size_mb = 0.0
    for colours, stride, scale in attempts:
        source = frames() if callable(frames) else frames
        _encode_gif(path, source, preset, samples, colours=colours, stride=stride, scale=scale)
        size_mb = path.stat().st_size / 1e6
        if size_mb <= preset.max_file_mb:
            if (colours, stride, scale) != GIF_FALLBACKS[0]:
                log.warning(
                    "%s: %d colours, %.0f fps, %d x %d px to stay under %g MB (%.2f MB)",
                    path,
                    colours,
                    preset.fps / stride,
                    round(preset.width_px * scale),
                    round(preset.height_px * scale),
                    preset.max_file_mb,
                    size_mb,
                )
            return path
    log.warning(
        "%s is %.1f MB, over the %g MB that chats accept; make it shorter",
        path,
        size_mb,
        preset.max_file_mb,
    )
    return path


def _encode_gif(
    path: Path,
    frames: Iterable[np.ndarray],
    preset: VideoPreset,
    samples: list[np.ndarray],
    *,
    colours: int,
    stride: int,
    scale: float,
) -> None:
    from PIL import Image

    expected = (preset.height_px, preset.width_px, 3)
    size = (round(preset.width_px * scale) // 2 * 2, round(preset.height_px * scale) // 2 * 2)

    def shrink(rgb: np.ndarray) -> Image.Image:
        image = Image.fromarray(rgb)
        return image if scale == 1.0 else image.resize(size, Image.Resampling.BICUBIC)

    palette = global_palette([np.asarray(shrink(s)) for s in samples], colors=colours)

    def quantised():
        for k, rgb in enumerate(frames):
            if rgb.shape != expected or rgb.dtype != np.uint8:
                raise DataFormatError(
                    f"frame {k} is {rgb.dtype} {rgb.shape}; expected uint8 {expected}"
                )
            if k % stride == 0:
                yield shrink(rgb).quantize(palette=palette, dither=Image.Dither.NONE)

    images = quantised()
    first = next(images, None)
    if first is None:
        raise DataFormatError("no frames were written; a clip needs at least one frame")
    tmp = _part_path(path)
    try:
        first.save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images,
            loop=0,
            duration=round(1000 * stride / preset.fps),
            disposal=1,
            optimize=False,
        )
        _replace(tmp, path)
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
