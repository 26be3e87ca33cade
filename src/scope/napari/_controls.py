"""Small Qt control factories shared by the scope widgets."""

from __future__ import annotations

from collections.abc import Sequence

from qtpy.QtCore import QEvent, QObject, QSize, Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QLabel,
    QLayout,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
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


def wrapping_label(text: str = "") -> QLabel:
    """A label whose text wraps at the width the dock gives it: a long message makes it
    taller, never the dock wider.

    Parameters
    ----------
    text : str
        The text shown first.

    Returns
    -------
    QLabel
        The label.
    """
    label = QLabel(text)
    label.setWordWrap(True)  # also marks its height as following its width
    policy = label.sizePolicy()
    policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
    label.setSizePolicy(policy)
    return label


def layer_choice(min_chars: int = 12) -> QComboBox:
    """A combo box of layer names whose width does not follow the longest name (a file's
    long name would else widen the dock): ``min_chars`` characters wide at least, wider as
    the dock allows; the list shows every name whole, the box's tooltip the chosen one.

    Parameters
    ----------
    min_chars : int
        The characters of a name it shows at its narrowest.

    Returns
    -------
    QComboBox
        The box, empty.
    """
    box = QComboBox()
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(min_chars)
    box.currentTextChanged.connect(box.setToolTip)
    return box


def form_layout(rows: Sequence[Row]) -> QFormLayout:
    """A form of ``(label, field)`` rows, in order; a field without a label (a check box, a
    button) spans the label's column too, so it needs no width beside the labels."""
    form = QFormLayout()
    for label, field in rows:
        if label:
            form.addRow(label, field)
        else:
            form.addRow(field)
    return form


def form_box(title: str, rows: Sequence[Row]) -> QGroupBox:
    """A group box titled ``title`` holding a form of ``(label, field)`` rows."""
    box = QGroupBox(title)
    box.setLayout(form_layout(rows))
    return box


class VerticalScroll(QScrollArea):
    """A frameless area that scrolls its widget up and down, never sideways: as wide as the
    widget needs (and the scroll bar), as high as the widget when there is room, shorter
    (scrolling) when there is not.

    A dock taller than the window would else force the window taller than the screen, or
    squeeze its controls over each other.

    Parameters
    ----------
    content : QWidget
        What scrolls; it takes the area's width.
    """

    def __init__(self, content: QWidget) -> None:
        super().__init__()
        self.setWidget(content)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def _width_for(self, content_width: int) -> int:
        return content_width + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()

    def minimumSizeHint(self) -> QSize:
        """The widget's least width (it never scrolls sideways), a few lines of height."""
        hint = super().minimumSizeHint()
        return QSize(self._width_for(self.widget().minimumSizeHint().width()), hint.height())

    def sizeHint(self) -> QSize:
        """The widget's own size (plus the scroll bar's width)."""
        content = self.widget().sizeHint()
        return QSize(self._width_for(content.width()), content.height() + 2 * self.frameWidth())

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The widget's size hints changed (a style applied, a field shown): so do ours."""
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(watched, event)


def vertical_scroll(widgets: Sequence[QWidget]) -> VerticalScroll:
    """``widgets`` stacked top to bottom in a :class:`VerticalScroll`.

    Parameters
    ----------
    widgets : sequence of QWidget
        Stacked in order, with room below them.

    Returns
    -------
    VerticalScroll
        The area holding them.
    """
    content = QWidget()
    column = QVBoxLayout(content)
    column.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        column.addWidget(widget)
    column.addStretch(1)
    return VerticalScroll(content)
