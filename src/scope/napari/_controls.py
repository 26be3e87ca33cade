"""Small Qt control factories shared by the scope widgets."""

from __future__ import annotations

from qtpy.QtWidgets import QDoubleSpinBox


def spin_box(
    lo: float, hi: float, value: float, step: float, decimals: int, suffix: str = ""
) -> QDoubleSpinBox:
    """A double spin box with range, step, decimals and a unit suffix."""
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setSuffix(suffix)
    return box
