"""Text for video frames, drawn with Pillow into small RGBA sprites.

Fonts: a bundled system sans-serif where one is installed (DejaVu, Liberation, Noto), else
Pillow's built-in scalable font (``ImageFont.load_default(size=...)``, Pillow >= 10.1), which
needs no system fonts. The built-in font lacks a few glyphs (``µ``, ``×``, dashes); text meant
for it is rewritten with ASCII stand-ins (``um``, ``x``, ``-``) so no tofu boxes appear.

Characters that the font has no glyph for (emoji, CJK with only DejaVu installed) would be
drawn as empty boxes; :func:`drop_missing_glyphs` leaves them out and warns, naming them.

Text gets a dark outline (Pillow's ``stroke_width``) so it reads on bright and dark images alike.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

_REGULAR = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "NotoSans-Regular.ttf", "Arial.ttf")
_BOLD = ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "NotoSans-Bold.ttf", "Arial Bold.ttf")
_STAND_INS = {"µ": "u", "μ": "u", "×": "x", "—": "-", "–": "-", "…": "...", "·": "-"}

FontType = ImageFont.FreeTypeFont | ImageFont.ImageFont


@cache
def get_font(size_px: int, *, bold: bool = False, builtin: bool = False) -> FontType:
    """A font of ``size_px`` pixels: a system sans-serif, or Pillow's built-in one.

    Parameters
    ----------
    size_px : int
        Font size in pixels.
    bold : bool
        Prefer a bold face (the built-in font has only one weight).
    builtin : bool
        Use Pillow's built-in font even when system fonts exist (tests use this).
    """
    size_px = max(6, int(size_px))
    if not builtin:
        for name in _BOLD if bold else _REGULAR:
            try:
                return ImageFont.truetype(name, size_px)
            except OSError:
                continue
    return ImageFont.load_default(size=size_px)


@cache
def _missing_glyph_mask(font: FontType) -> bytes:
    return bytes(font.getmask("\uffff"))


def printable(text: str, font: FontType) -> str:
    """``text`` with characters the font cannot draw replaced by ASCII stand-ins."""
    notdef = _missing_glyph_mask(font)
    out = []
    for ch in text:
        if ch in _STAND_INS and not ch.isspace() and bytes(font.getmask(ch)) == notdef:
            out.append(_STAND_INS[ch])
        else:
            out.append(ch)
    return "".join(out)


def _is_mark(ch: str) -> bool:
    """Combining marks, variation selectors, joiners: drawn with (or as part of) the
    character before them."""
    return unicodedata.category(ch) in ("Mn", "Me", "Cf")


def missing_glyphs(text: str, font: FontType) -> list[str]:
    """Characters of ``text`` that ``font`` cannot draw (it would draw its empty box), in
    order of first appearance; characters with an ASCII stand-in (:func:`printable`),
    white space and combining marks are not counted."""
    notdef = _missing_glyph_mask(font)
    missing: list[str] = []
    for ch in dict.fromkeys(text):
        if ch.isspace() or ch in _STAND_INS or _is_mark(ch) or ch in missing:
            continue
        if bytes(font.getmask(ch)) == notdef:
            missing.append(ch)
    return missing


def font_name(font: FontType) -> str:
    """``"DejaVu Sans Bold"``, or ``"Pillow's built-in font"``."""
    names = font.getname() if hasattr(font, "getname") else None
    if names and names[0]:
        return " ".join(n for n in names if n and n not in ("Book", "Regular"))
    return "Pillow's built-in font"


def drop_missing_glyphs(text: str, font: FontType, *, what: str = "text") -> str:
    """``text`` without the characters ``font`` lacks (and the marks joined to them), with a
    warning that names them; unchanged when the font has every glyph.

    Examples
    --------
    >>> drop_missing_glyphs("Cells 🔬", get_font(40), what="title")  # doctest: +SKIP
    'Cells'
    """
    missing = set(missing_glyphs(text, font))
    if not missing:
        return text
    out: list[str] = []
    dropping = False
    for ch in text:
        if ch in missing or (dropping and _is_mark(ch)):
            dropping = True
            continue
        dropping = False
        out.append(ch)
    kept = "\n".join(" ".join(line.split()) for line in "".join(out).splitlines())
    names = ", ".join(f"{ch} (U+{ord(ch):04X})" for ch in dict.fromkeys(text) if ch in missing)
    log.warning(
        "%s: the font %s has no glyph for %s: left out (they would show as empty boxes)",
        what,
        font_name(font),
        names,
    )
    return kept


def text_width(text: str, font: FontType, *, stroke_px: int = 0) -> int:
    """Width in pixels of one line of ``text``."""
    left, _, right, _ = font.getbbox(printable(text, font), stroke_width=stroke_px)
    return int(right - left)


def wrap(text: str, font: FontType, max_width_px: int, *, max_lines: int = 3) -> list[str]:
    """Break ``text`` into at most ``max_lines`` lines no wider than ``max_width_px``.

    Words longer than a line are cut; a last line that does not fit ends in ``...``.
    """
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}".strip()
            if text_width(trial, font) <= max_width_px or not line:
                line = trial
            else:
                lines.append(line)
                line = word
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1] + "..."
    return [ellipsize(line, font, max_width_px) for line in lines]


def ellipsize(text: str, font: FontType, max_width_px: int) -> str:
    """``text`` shortened with ``...`` until it fits ``max_width_px``."""
    if text_width(text, font) <= max_width_px:
        return text
    while text and text_width(text + "...", font) > max_width_px:
        text = text[:-1]
    return text.rstrip() + "..."


@dataclass(frozen=True)
class Sprite:
    """An RGBA patch placed at ``(x, y)`` (top-left) on the frame."""

    x: int
    y: int
    rgba: np.ndarray

    @property
    def width(self) -> int:
        return int(self.rgba.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgba.shape[0])


def text_sprite(
    lines: str | list[str],
    font: FontType,
    *,
    fill: tuple[int, int, int] = (255, 255, 255),
    align: str = "left",
    line_spacing: float = 1.2,
    outline: bool = True,
) -> np.ndarray:
    """Render text (one or more lines) into a tight RGBA array with a dark outline."""
    if isinstance(lines, str):
        lines = [lines]
    lines = [printable(line, font) for line in lines]
    size = int(getattr(font, "size", 12))
    stroke = max(1, round(size / 14)) if outline else 0
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (size, size // 4)
    step = round(size * line_spacing)
    widths = [text_width(line, font, stroke_px=stroke) for line in lines]
    width = max([*widths, 1]) + 2 * stroke + 2
    height = step * (len(lines) - 1) + ascent + descent + 2 * stroke + 2
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for k, (line, w) in enumerate(zip(lines, widths)):
        x = {"left": 0, "center": (width - w) // 2, "right": width - w}[align] + stroke + 1
        draw.text(
            (x, stroke + 1 + k * step),
            line,
            font=font,
            fill=(*fill, 255),
            stroke_width=stroke,
            stroke_fill=(0, 0, 0, 170),
        )
    rgba = np.asarray(image)
    rows = np.flatnonzero(rgba[..., 3].any(axis=1))
    if rows.size:  # trim empty rows (fonts reserve room for accents and descenders)
        rgba = rgba[max(0, rows[0] - 1) : rows[-1] + 2]
    return rgba


def composite(frame: np.ndarray, sprite: Sprite) -> None:
    """Alpha-blend ``sprite`` onto ``frame`` (``(H, W, 3) uint8``) in place, clipped to it."""
    h, w = frame.shape[:2]
    x0, y0 = max(sprite.x, 0), max(sprite.y, 0)
    x1, y1 = min(sprite.x + sprite.width, w), min(sprite.y + sprite.height, h)
    if x1 <= x0 or y1 <= y0:
        return
    patch = sprite.rgba[y0 - sprite.y : y1 - sprite.y, x0 - sprite.x : x1 - sprite.x]
    alpha = patch[..., 3:4].astype(np.uint16)
    region = frame[y0:y1, x0:x1]
    blended = (patch[..., :3] * alpha + region * (255 - alpha) + 127) // 255
    region[...] = blended.astype(np.uint8)
