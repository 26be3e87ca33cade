"""Small Qt control factories shared by the scope widgets."""

from __future__ import annotations

from collections.abc import Sequence

from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLayout,
    QSpinBox,
    QWidget,
)

#: a form's row: its label and its field (a widget, or a layout holding a row of them)
Row = tuple[str, QWidget | QLayout]


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


def int_spin_box(
    lo: int, hi: int, value: int, *, step: int = 1, suffix: str = "", tooltip: str = ""
) -> QSpinBox:
    """An integer spin box with range, value, step, a unit suffix and a tooltip.

    Parameters
    ----------
    lo, hi : int
        The range.
    value : int
        The value shown first.
    step : int
        What one click of its arrows adds.
    suffix : str
        The unit shown after the value (``" px"``).
    tooltip : str
        What the box sets, shown on hovering (none when empty).
    """
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setValue(value)
    box.setSuffix(suffix)
    if tooltip:
        box.setToolTip(tooltip)
    return box


def form_layout(rows: Sequence[Row]) -> QFormLayout:
    """A form of ``(label, field)`` rows, in order."""
    form = QFormLayout()
    for label, field in rows:
        form.addRow(label, field)
    return form


def form_box(title: str, rows: Sequence[Row]) -> QGroupBox:
    """A group box titled ``title`` holding a form of ``(label, field)`` rows."""
    box = QGroupBox(title)
    box.setLayout(form_layout(rows))
    return box
