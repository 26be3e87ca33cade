"""Shared by the napari widget tests: screenshots of the whole viewer window."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def screenshot(viewer, name: str, tmp_path: Path, *, size: tuple[int, int]) -> Path:
    """Save the viewer window (widgets included) as ``name`` under ``$SCOPE_SCREENSHOTS``
    (``docs/images`` when refreshing the docs) or ``tmp_path``; returns the file."""
    from PIL import Image

    viewer.window._qt_window.resize(*size)
    folder = Path(os.environ.get("SCOPE_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    img = viewer.screenshot(canvas_only=False, flash=False)
    path = folder / name
    Image.fromarray(np.asarray(img)).save(path)
    return path
