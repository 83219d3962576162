"""The slice bar under the canvas: which slice of a volume is shown, and a slider to move."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget


class SliceBar(QWidget):
    """A slider over the slices of a volume (hidden for 2D images).

    ``slice_requested(z)`` when the user moves the slider; :meth:`show_slice` follows the
    window's slice without emitting.
    """

    slice_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the canvas
        self.slider.setToolTip("Slice (Up/Down or , and . step one slice)")
        self.slider.valueChanged.connect(self.slice_requested.emit)
        self.label = QLabel()
        self.label.setMinimumWidth(110)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 2, 6, 2)
        row.addWidget(QLabel("Slice"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.label)
        self.setVisible(False)

    def show_slice(self, z: int, slices: int) -> None:
        """Show slice ``z`` of ``slices`` (counted from 0; shown from 1); hidden for 1 slice
        of a 2D image (``slices`` 0)."""
        self.setVisible(slices > 0)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, slices - 1))
        self.slider.setValue(z)
        self.slider.blockSignals(False)
        self.label.setText(slice_text(z, slices))


def slice_text(z: int, slices: int) -> str:
    """``"slice 43 / 300"`` for index 42 of 300 (one-based, as ITK-SNAP and Slicer count)."""
    return f"slice {z + 1} / {slices}"
