"""The layers panel: image window/level, mask opacity and visibility, prediction layer."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QSlider,
    QWidget,
)


def _slider(minimum: int, maximum: int, value: int) -> QSlider:
    slider = QSlider(Qt.Horizontal)
    slider.setRange(minimum, maximum)
    slider.setValue(value)
    return slider


class LayersPanel(QWidget):
    """Controls for the three layers.

    The image's display range is a window (black to white point, in the image's own values:
    16-bit counts, Hounsfield units...) set automatically from percentiles; "Auto" restores it.
    """

    display_range_changed = Signal(float, float)
    auto_range_requested = Signal()
    mask_opacity_changed = Signal(float)
    mask_visible_changed = Signal(bool)
    prediction_visible_changed = Signal(bool)
    threshold_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.low = QDoubleSpinBox()
        self.high = QDoubleSpinBox()
        for box in (self.low, self.high):
            box.setRange(-1e9, 1e9)
            box.setDecimals(1)
            box.setMinimumWidth(70)  # the +-1e9 range would otherwise widen the whole dock
            box.setKeyboardTracking(False)
            box.valueChanged.connect(self._on_range)
        auto = QPushButton("Auto")
        auto.setToolTip("Window from the 1st to the 99.8th percentile")
        auto.clicked.connect(self.auto_range_requested.emit)
        window = QHBoxLayout()
        window.addWidget(self.low)
        window.addWidget(self.high)
        window.addWidget(auto)

        self.mask_visible = QCheckBox("Show labels (M)")
        self.mask_visible.setChecked(True)
        self.mask_visible.toggled.connect(self.mask_visible_changed.emit)
        self.mask_opacity = _slider(0, 100, 50)
        self.mask_opacity.valueChanged.connect(lambda v: self.mask_opacity_changed.emit(v / 100))
        self.prediction_visible = QCheckBox("Show prediction (P)")
        self.prediction_visible.setChecked(True)
        self.prediction_visible.toggled.connect(self.prediction_visible_changed.emit)
        self.threshold = _slider(0, 100, 0)
        self.threshold.setToolTip("Accept and show only predicted pixels at least this confident")
        self.threshold.valueChanged.connect(lambda v: self.threshold_changed.emit(round(v * 2.55)))

        form = QFormLayout(self)
        form.addRow("Window", window)
        form.addRow(self.mask_visible)
        form.addRow("Label opacity", self.mask_opacity)
        form.addRow(self.prediction_visible)
        form.addRow("Min. confidence", self.threshold)

    def set_display_range(self, low: float, high: float) -> None:
        """Show ``low``..``high`` without emitting ``display_range_changed``."""
        for box, value in ((self.low, low), (self.high, high)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)

    def _on_range(self, _value: float) -> None:
        low, high = self.low.value(), self.high.value()
        if high > low:
            self.display_range_changed.emit(low, high)
