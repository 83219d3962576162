"""The layers panel: image window (level/width, presets), mask opacity and visibility,
prediction layer."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QWidget,
)

from segtool.core.window import CT_PRESETS, Preset, Window

DICOM_PRESET = "dicom"  # the window the DICOM file itself gives
CUSTOM_PRESET = "custom"  # a window set by hand (fields, right-drag)
_PRESET_LABELS = {
    Preset.AUTO.value: "Auto (percentiles)",
    **{preset.value: f"{preset.value.capitalize()} {window.width:g}/{window.level:g}"
       for preset, window in CT_PRESETS.items()},
}


def _slider(minimum: int, maximum: int, value: int) -> QSlider:
    slider = QSlider(Qt.Horizontal)
    slider.setRange(minimum, maximum)
    slider.setValue(value)
    return slider


class LayersPanel(QWidget):
    """Controls for the three layers.

    The image's window is a level (centre) and a width in the image's own values (Hounsfield
    units, 16-bit counts...), as radiologists set it: typed in, dragged with the right mouse
    button on the canvas, or picked from the presets (CT brain, soft tissue, lung, bone in
    W/L; "Auto", the 1st to 99.8th percentile; "DICOM", the file's own). "Same window for all
    images" keeps one window across the project (a CT series); otherwise each image keeps its
    own.
    """

    window_changed = Signal(float, float)  # level, width: typed in
    preset_chosen = Signal(str)  # a Preset value or DICOM_PRESET
    window_for_all_changed = Signal(bool)
    mask_opacity_changed = Signal(float)
    mask_visible_changed = Signal(bool)
    prediction_visible_changed = Signal(bool)
    threshold_changed = Signal(int)
    class_threshold_changed = Signal(float)  # p(selected class) it is proposed at, 0..1

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.level = QDoubleSpinBox()
        self.width = QDoubleSpinBox()
        for box, name in ((self.level, "Level (centre)"), (self.width, "Width")):
            box.setRange(-1e9, 1e9)
            box.setDecimals(1)
            box.setMinimumWidth(70)  # the +-1e9 range would otherwise widen the whole dock
            box.setKeyboardTracking(False)
            box.setToolTip(f"{name} of the display window, in the image's values; "
                           "right-drag on the image: horizontal = width, vertical = level")
            box.valueChanged.connect(self._on_fields)
        self.width.setMinimum(1e-3)
        self.width.setPrefix("W ")
        self.level.setPrefix("L ")
        fields = QHBoxLayout()
        fields.addWidget(self.width)
        fields.addWidget(self.level)
        self.preset = QComboBox()
        for value, label in _PRESET_LABELS.items():
            self.preset.addItem(label, value)
        self.preset.addItem("Set by hand", CUSTOM_PRESET)
        self.preset.setToolTip("Window presets: CT ones in HU as width/level")
        self.preset.activated.connect(self._on_preset)
        self.for_all = QCheckBox("Same window for all images")
        self.for_all.setToolTip("Keep one window across the project (a CT series); off: each "
                                "image keeps the window last set for it")
        self.for_all.toggled.connect(self.window_for_all_changed.emit)

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

        self.class_threshold = _slider(5, 95, 50)
        self.class_threshold.setToolTip(
            "Grow or shrink the prediction of the class selected in the Classes panel: it is "
            "proposed where the model gives it at least this probability (with more than two "
            "classes: this share of the two most likely classes' probability). 50%: the "
            "model's own choice; higher: tighter outlines, lower: wider. Each class keeps "
            "its own setting; Accept takes what is shown")
        self.class_threshold.valueChanged.connect(self._on_class_threshold)
        self.class_threshold_value = QLabel()
        self.class_threshold_value.setMinimumWidth(36)
        class_row = QHBoxLayout()
        class_row.addWidget(self.class_threshold)
        class_row.addWidget(self.class_threshold_value)
        self._show_class_threshold(50)

        form = QFormLayout(self)
        form.addRow("Window", fields)
        form.addRow("Preset", self.preset)
        form.addRow(self.for_all)
        form.addRow(self.mask_visible)
        form.addRow("Label opacity", self.mask_opacity)
        form.addRow(self.prediction_visible)
        form.addRow("Min. confidence", self.threshold)
        form.addRow("Selected class at p >=", class_row)

    def set_class_threshold(self, threshold: float) -> None:
        """Show the selected class's threshold (0..1) without emitting."""
        self.class_threshold.blockSignals(True)
        self.class_threshold.setValue(round(threshold * 100))
        self.class_threshold.blockSignals(False)
        self._show_class_threshold(self.class_threshold.value())

    def _show_class_threshold(self, percent: int) -> None:
        self.class_threshold_value.setText(f"{percent}%")

    def _on_class_threshold(self, percent: int) -> None:
        self._show_class_threshold(percent)
        self.class_threshold_changed.emit(percent / 100)

    def set_window(self, window: Window, preset: str = CUSTOM_PRESET) -> None:
        """Show ``window`` and the preset it came from, without emitting anything."""
        for box, value in ((self.level, window.level), (self.width, window.width)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        index = self.preset.findData(preset)
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(index if index >= 0 else self.preset.findData(CUSTOM_PRESET))
        self.preset.blockSignals(False)

    def set_dicom_preset(self, window: Window | None) -> None:
        """Offer the image's own DICOM window as a preset (None: the image has none)."""
        index = self.preset.findData(DICOM_PRESET)
        if index >= 0:
            self.preset.removeItem(index)
        if window is not None:
            self.preset.insertItem(1, f"DICOM {window.width:g}/{window.level:g}", DICOM_PRESET)

    def set_window_for_all(self, enabled: bool) -> None:
        """Tick "same window for all images" without emitting."""
        self.for_all.blockSignals(True)
        self.for_all.setChecked(enabled)
        self.for_all.blockSignals(False)

    def _on_fields(self, _value: float) -> None:
        width = self.width.value()
        if width > 0:
            self.set_window(Window(self.level.value(), width))
            self.window_changed.emit(self.level.value(), width)

    def _on_preset(self, index: int) -> None:
        value = self.preset.itemData(index)
        if value != CUSTOM_PRESET:
            self.preset_chosen.emit(value)
