"""Frame layouts and the renderer that assembles every frame of a clip.

Layouts
-------
``sim``
    One image (a SIM reconstruction, or any single series) filling the frame.
``overlay``
    Like ``sim`` for a multi-channel image: channels added in their colours, with a legend.
``side-by-side``
    Widefield and SIM next to each other (stacked on tall frames), same physical scale.
``wipe``
    Before/after: a divider sweeps across the image, widefield on its right, SIM on its left.
    The first frame is exactly the widefield render and the last exactly the SIM render
    (a short hold at both ends, an eased sweep in between).

Geometry: the title and caption sit at the top of the safe area; on tall frames (reel,
portrait) they get a band of their own above the image, on wide ones they are drawn over it
(with a dark outline). The timestamp and speed sit in the top corners of the image, the scale
bar at its bottom right and the credit line at its bottom left — all inside the safe area.
On a narrow image the speed goes under the timestamp; a thin strip gets the timestamp row just
above it and the scale bar just below it (on the black around the image), so that any aspect
ratio can be annotated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np

from scope.errors import ConfigurationError
from scope.export.presets import VideoPreset
from scope.export.render import (
    RenderStyle,
    View,
    fit_rect,
    format_length,
    nice_length_nm,
    resample,
    scale_bar_sprite,
)
from scope.export.text import (
    Sprite,
    composite,
    drop_missing_glyphs,
    ellipsize,
    get_font,
    text_sprite,
    wrap,
)
from scope.export.timing import TimingPlan, format_speed, format_timestamp

log = logging.getLogger(__name__)

LayoutName = Literal["sim", "overlay", "side-by-side", "wipe"]
LAYOUTS: tuple[str, ...] = ("sim", "overlay", "side-by-side", "wipe")
#: fraction of a wipe clip held still at each end
WIPE_HOLD = 0.15
#: least width for annotations (fraction of the frame's short side): a narrower image gets
#: them in a band this wide centred on it
MIN_ANNOTATION_W = 0.25

Rect = tuple[int, int, int, int]


def _intersect(a: Rect, b: Rect) -> Rect:
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def _inset(r: Rect, pad: int) -> Rect:
    return (r[0] + pad, r[1] + pad, r[2] - pad, r[3] - pad)


def wipe_progress(n_frames: int) -> np.ndarray:
    """Divider position (0 = all widefield, 1 = all SIM) for each of ``n_frames`` frames."""
    if n_frames == 1:
        return np.ones(1)
    t = np.arange(n_frames) / (n_frames - 1)
    s = np.clip((t - WIPE_HOLD) / (1 - 2 * WIPE_HOLD), 0.0, 1.0)
    return s * s * (3 - 2 * s)


class ClipRenderer:
    """Renders frame ``i`` of a clip: images in their layout plus every annotation.

    Parameters
    ----------
    layout : str
        One of :data:`LAYOUTS`.
    views : list of View
        ``[view]`` for ``sim``/``overlay``; ``[widefield, sim]`` for ``side-by-side``/``wipe``.
    preset : VideoPreset
        Frame size and safe area.
    style : RenderStyle
        Title, caption, credit and what to draw.
    plan : TimingPlan
        Source frame (and zoom) of every output frame.
    timestamps_s : array, optional
        Time of each source frame, seconds; drawn when ``style.timestamp``.

    Examples
    --------
    >>> renderer = ClipRenderer("sim", [view], preset, RenderStyle(), plan)  # doctest: +SKIP
    >>> frame = renderer.frame(0)  # (H, W, 3) uint8  # doctest: +SKIP
    """

    def __init__(
        self,
        layout: str,
        views: Sequence[View],
        preset: VideoPreset,
        style: RenderStyle,
        plan: TimingPlan,
        timestamps_s: np.ndarray | None = None,
    ) -> None:
        if layout not in LAYOUTS:
            raise ConfigurationError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
        two = layout in ("side-by-side", "wipe")
        if len(views) != (2 if two else 1):
            raise ConfigurationError(
                f"layout {layout!r} needs {'a widefield and a SIM view' if two else 'one view'}"
                f", got {len(views)}; pass widefield= for side-by-side and wipe"
            )
        n = views[0].n_frames
        if any(v.n_frames != n for v in views):
            raise ConfigurationError(
                f"widefield and SIM have {views[0].n_frames} and {views[1].n_frames} frames; "
                "expected the same number"
            )
        if int(plan.source_index.max()) >= n:
            raise ConfigurationError("the timing plan points past the last frame")
        if timestamps_s is not None and len(timestamps_s) != n:
            raise ConfigurationError(
                f"{len(timestamps_s)} timestamps for {n} frames; expected one per frame"
            )
        self.layout = layout
        self.views = list(views)
        self.preset = preset
        self.style = style
        self.plan = plan
        self.timestamps_s = None if timestamps_s is None else np.asarray(timestamps_s, float)
        if self.timestamps_s is not None and np.isfinite(self.timestamps_s).any():
            # labels count from the first frame: OME DeltaT (or an epoch) may start much
            # earlier, which would also pick too coarse a format (whole seconds, minutes)
            self.timestamps_s = self.timestamps_s - np.nanmin(self.timestamps_s)
        self._progress = wipe_progress(plan.n_frames) if layout == "wipe" else None
        self._bar_cache: dict[int, np.ndarray] = {}
        self._stamp_cache: dict[str, np.ndarray] = {}
        self._resized: dict[int, tuple[tuple, np.ndarray]] = {}
        self._layout_geometry()

    # ------------------------------------------------------------------ geometry
    def _font(self, fraction: float, *, bold: bool = False):
        return get_font(round(self._base * fraction), bold=bold, builtin=self.style.builtin_font)

    def _layout_geometry(self) -> None:
        w, h = self.preset.size
        self._base = min(w, h)
        self.pad = max(4, round(self._base * 0.022))
        safe = self.preset.safe_rect
        self.safe = safe
        safe_w = safe[2] - safe[0]
        style = self.style

        # title and caption block, centred at the top of the safe area
        lines_sprites = []
        title = caption = None
        if style.title:
            font = self._font(0.056, bold=True)
            title = drop_missing_glyphs(style.title, font, what="title")
        if title:
            lines_sprites.append(
                text_sprite(wrap(title, font, safe_w, max_lines=2), font, align="center")
            )
        if style.caption:
            font = self._font(0.036)
            caption = drop_missing_glyphs(style.caption, font, what="caption")
        if caption:
            lines_sprites.append(
                text_sprite(wrap(caption, font, safe_w, max_lines=3), font, align="center")
            )
        self.static: list[Sprite] = []
        y = safe[1]
        for k, rgba in enumerate(lines_sprites):
            x = safe[0] + (safe_w - rgba.shape[1]) // 2
            self.static.append(Sprite(x, y, rgba))
            y += rgba.shape[0] + (self.pad // 2 if k < len(lines_sprites) - 1 else 0)
        text_bottom = y if lines_sprites else safe[1]

        tall = h >= 1.2 * w
        if tall:
            top = text_bottom + self.pad if lines_sprites else safe[1]
            bottom = h if self.layout == "side-by-side" else h - self.preset.safe_area.bottom_px
            content: Rect = (0, top, w, bottom)
        else:
            content = (0, 0, w, h)

        y_img, x_img = self.views[-1].shape_yx
        aspect = (x_img, y_img)
        if self.layout == "side-by-side":
            gap = max(2, self.pad // 3)
            cx0, cy0, cx1, cy1 = content
            mid_x, mid_y = (cx0 + cx1) // 2, (cy0 + cy1) // 2
            horiz = [(cx0, cy0, mid_x - gap // 2, cy1), (mid_x + gap - gap // 2, cy0, cx1, cy1)]
            vert = [(cx0, cy0, cx1, mid_y - gap // 2), (cx0, mid_y + gap - gap // 2, cx1, cy1)]
            rh = [fit_rect(aspect, b) for b in horiz]
            rv = [fit_rect(aspect, b) for b in vert]
            boxes = rh if rh[0][2] - rh[0][0] >= rv[0][2] - rv[0][0] else rv
            # pull the two panels together (fit_rect centres each in its half)
            if boxes is rh:
                shift = (boxes[1][0] - boxes[0][2] - gap) // 2
                boxes = [(b[0] + s, b[1], b[2] + s, b[3]) for b, s in zip(boxes, (shift, -shift))]
            else:
                shift = (boxes[1][1] - boxes[0][3] - gap) // 2
                boxes = [(b[0], b[1] + s, b[2], b[3] + s) for b, s in zip(boxes, (shift, -shift))]
            self.rects: list[Rect] = boxes
        else:
            self.rects = [fit_rect(aspect, content)]

        # where annotations may go: image ∩ safe area, below the title block. An image too
        # thin to hold the time row and the scale bar (a strip) gets the row just above it and
        # the bar just below; one too narrow, a band of MIN_ANNOTATION_W centred on it (the
        # text has an outline: it reads on the black beside the image too)
        self.small_font = self._font(0.032)
        self.bar_thickness = max(3, round(self._base * 0.011))
        row_h = text_sprite("t = 0.0 s", self.small_font).shape[0]
        bar_h = scale_bar_sprite(
            10, "10 µm", self.small_font, thickness_px=self.bar_thickness
        ).shape[0]
        min_w = round(self._base * MIN_ANNOTATION_W)
        gap = max(2, self.pad // 3)

        def info(rect: Rect) -> Rect:
            x0, y0, x1, y1 = _intersect(rect, safe)
            if x1 - x0 - 2 * self.pad < min_w:
                cx = (x0 + x1) // 2
                x0, x1 = cx - min_w // 2 - self.pad, cx + min_w - min_w // 2 + self.pad
            if y1 - y0 - 2 * self.pad < row_h + bar_h + self.pad:
                y0, y1 = y0 - row_h - gap - self.pad, y1 + bar_h + gap + self.pad
            r = _inset(_intersect((x0, y0, x1, y1), safe), self.pad)
            if lines_sprites and r[1] < text_bottom + self.pad:
                r = (r[0], text_bottom + self.pad, r[2], r[3])
            return r

        self.info_boxes = [info(r) for r in self.rects]
        union = (
            min(r[0] for r in self.rects),
            min(r[1] for r in self.rects),
            max(r[2] for r in self.rects),
            max(r[3] for r in self.rects),
        )
        self.info_union = info(union)
        sim = self.views[-1]
        annotated = bool(
            (style.speed and self.plan.speed_factor is not None and self.plan.mode != "still")
            or (style.timestamp and self.timestamps_s is not None and self.plan.mode != "still")
            or (style.scale_bar and sim.pixel_size_nm)
            or style.credit
            or any(v.label or v.legend() for v in self.views)
        )
        for box in [*self.info_boxes, self.info_union] if annotated else []:
            if box[2] - box[0] < 40 or box[3] - box[1] < 40:
                ratio = max(x_img, y_img) / min(x_img, y_img)
                raise ConfigurationError(
                    f"no room for the annotations on the {self.preset.name} frame: the image "
                    f"is {x_img} x {y_img} px (aspect ratio {ratio:.1f}:1)"
                    + (" and the title/caption fill the top" if lines_sprites else "")
                    + "; crop the image nearer to square"
                    + (", shorten the title/caption" if lines_sprites else "")
                    + ", choose another preset or leave out the timestamp and scale bar"
                )

        row_box = self.info_boxes[0]
        self.row_height = 0
        self.speed_sprite: Sprite | None = None
        if style.speed and self.plan.speed_factor is not None and self.plan.mode != "still":
            rgba = text_sprite(format_speed(self.plan.speed_factor), self.small_font)
            self.speed_sprite = Sprite(row_box[2] - rgba.shape[1], row_box[1], rgba)
            self.row_height = rgba.shape[0]
        self.show_time = bool(
            style.timestamp and self.timestamps_s is not None and self.plan.mode != "still"
        )
        if self.show_time:
            self.total_s = float(np.nanmax(self.timestamps_s)) if self.timestamps_s.size else 0.0
            probe = max(  # the widest label of the clip
                (text_sprite(format_timestamp(t, self.total_s), self.small_font)
                 for t in (0.0, self.total_s)),
                key=lambda a: a.shape[1],
            )  # fmt: skip
            self.row_height = max(self.row_height, probe.shape[0])
            speed = self.speed_sprite
            if speed is not None and probe.shape[1] + self.pad + speed.width > (
                row_box[2] - row_box[0]
            ):  # no room side by side (a narrow image): the speed goes under the time
                y = row_box[1] + probe.shape[0] + self.pad // 3
                self.speed_sprite = Sprite(row_box[0], y, speed.rgba)
                self.row_height = y + speed.height - row_box[1]

        # labels per panel (drawn on the panel's own canvas, so a wipe reveals them)
        label_font = self._font(0.036, bold=True)
        self.panel_labels: list[list[Sprite]] = []
        for k, view in enumerate(self.views):
            box = self.info_boxes[0 if self.layout == "wipe" else k]
            y0 = box[1] + (
                self.row_height + self.pad // 2
                if self.row_height and (k == 0 or self.layout == "wipe")
                else 0
            )
            # on its own image (a strip's band reaches above it, over the panel before)
            y0 = max(y0, self.rects[0 if self.layout == "wipe" else k][1] + gap)
            sprites = []
            label = drop_missing_glyphs(view.label, label_font, what="panel label")
            if label:
                rgba = text_sprite(label, label_font)
                x = box[0] if view.label_corner == "left" else box[2] - rgba.shape[1]
                sprites.append(Sprite(x, y0, rgba))
                y0 += rgba.shape[0] + self.pad // 3
            x = box[0]
            for name, colour in view.legend():
                name = drop_missing_glyphs(name, label_font, what="channel name")
                rgba = text_sprite(name, label_font, fill=colour)
                sprites.append(Sprite(x, y0, rgba))
                x += rgba.shape[1] + self.pad
            self.panel_labels.append(sprites)

        # scale bar: chosen once (at zoom 1) so its label never changes
        bar_box = self.info_boxes[-1] if self.layout == "side-by-side" else self.info_union
        self.bar_box = bar_box
        self.scale_bar_nm: float | None = None
        if style.scale_bar and sim.pixel_size_nm:
            nm_per_px = self.display_nm_per_px(0.0, 1.0)
            room_px = style.scale_bar_fraction * (self.rects[-1][2] - self.rects[-1][0])
            room_px = min(room_px, 0.5 * (bar_box[2] - bar_box[0]))
            self.scale_bar_nm = nice_length_nm(room_px * nm_per_px)
            self.bar_label = format_length(self.scale_bar_nm)
        elif style.scale_bar:
            log.info("no pixel size known: the clip gets no scale bar")

        # credit line: bottom left, clear of the scale bar
        if style.credit:
            font = self._font(0.028)
            room = bar_box[2] - bar_box[0]
            if self.scale_bar_nm is not None:
                room -= self.bar_sprite(self.bar_length_px(0)).shape[1] + self.pad
            credit = drop_missing_glyphs(style.credit, font, what="credit")
            rgba = text_sprite(ellipsize(credit, font, max(room, 40)), font)
            box = self.info_union
            self.static.append(Sprite(box[0], box[3] - rgba.shape[0], rgba))

    # ------------------------------------------------------------------ scale
    def display_nm_per_px(self, x0: float, x1: float) -> float:
        """Physical size of one output pixel of the (last) panel for crop ``x0..x1``."""
        sim = self.views[-1]
        rect = self.rects[-1]
        if not sim.pixel_size_nm:
            raise ConfigurationError("no pixel size known")
        return sim.pixel_size_nm * (x1 - x0) * sim.shape_yx[1] / (rect[2] - rect[0])

    def bar_length_px(self, i: int) -> int:
        """Scale bar length in output pixels on frame ``i`` (follows a still's zoom)."""
        if self.scale_bar_nm is None:
            raise ConfigurationError("this clip has no scale bar (no pixel size known)")
        x0, _, x1, _ = self.plan.crop_box(i)
        return round(self.scale_bar_nm / self.display_nm_per_px(x0, x1))

    def bar_sprite(self, length_px: int) -> np.ndarray:
        if length_px not in self._bar_cache:
            self._bar_cache[length_px] = scale_bar_sprite(
                length_px, self.bar_label, self.small_font, thickness_px=self.bar_thickness
            )
        return self._bar_cache[length_px]

    # ------------------------------------------------------------------ frames
    @property
    def n_frames(self) -> int:
        return self.plan.n_frames

    @property
    def size(self) -> tuple[int, int]:
        return self.preset.size

    def _panel_canvas(self, k: int, rect: Rect, source: int, crop) -> np.ndarray:
        w, h = self.preset.size
        canvas = np.zeros((h, w, 3), dtype=np.uint8)
        self._paste(canvas, k, rect, source, crop)
        return canvas

    def _paste(self, canvas: np.ndarray, k: int, rect: Rect, source: int, crop) -> None:
        key = (k, source, crop, rect)
        img = self._resized.get(k)
        if img is None or img[0] != key:  # frames repeat when a clip is slowed or held
            view = self.views[k]
            size = (rect[2] - rect[0], rect[3] - rect[1])
            self._resized[k] = img = (key, resample(view.rgb(source), crop, size))
        img = img[1]
        canvas[rect[1] : rect[3], rect[0] : rect[2]] = img
        for sprite in self.panel_labels[k]:
            composite(canvas, sprite)

    def frame(self, i: int) -> np.ndarray:
        """Output frame ``i`` as ``(H, W, 3) uint8`` RGB."""
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range 0..{self.n_frames - 1}")
        w, h = self.preset.size
        source = int(self.plan.source_index[i])
        crop = self.plan.crop_box(i)
        if self.layout == "wipe":
            rect = self.rects[0]
            progress = float(self._progress[i])
            canvas = self._panel_canvas(0, rect, source, crop)
            if progress > 0:
                sim = self._panel_canvas(1, rect, source, crop)
                x = rect[0] + round(progress * (rect[2] - rect[0]))
                canvas[:, :x] = sim[:, :x]
                if progress < 1:
                    half = max(1, self.bar_thickness // 2)
                    canvas[rect[1] : rect[3], max(rect[0], x - half) : x + half] = 255
        else:
            canvas = np.zeros((h, w, 3), dtype=np.uint8)
            for k, rect in enumerate(self.rects):
                self._paste(canvas, k, rect, source, crop)
        for sprite in self.static:
            composite(canvas, sprite)
        if self.speed_sprite is not None:
            composite(canvas, self.speed_sprite)
        if self.show_time:
            label = format_timestamp(float(self.timestamps_s[source]), self.total_s)
            if label not in self._stamp_cache:
                self._stamp_cache[label] = text_sprite(label, self.small_font)
            box = self.info_boxes[0]
            composite(canvas, Sprite(box[0], box[1], self._stamp_cache[label]))
        if self.scale_bar_nm is not None:
            rgba = self.bar_sprite(self.bar_length_px(i))
            box = self.bar_box
            composite(canvas, Sprite(box[2] - rgba.shape[1], box[3] - rgba.shape[0], rgba))
        return canvas

    def frames(self) -> Iterator[np.ndarray]:
        """Every output frame in order."""
        for i in range(self.n_frames):
            yield self.frame(i)
