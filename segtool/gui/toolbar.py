"""The tools toolbar: icon buttons (text on hover) and the magic wand's tolerance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSpinBox, QToolBar, QWidget

from segtool.core.brush import DEFAULT_WAND_TOLERANCE
from segtool.gui.actions import ActionName
from segtool.gui.icons import icon


class WandTolerance(QWidget):
    """"Tolerance [16]": how far (in display grey levels) the wand may stray from the seed."""

    changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spin = QSpinBox()
        self.spin.setRange(0, 255)
        self.spin.setValue(DEFAULT_WAND_TOLERANCE)
        self.spin.setToolTip("Magic wand tolerance: how much brighter or darker than the "
                             "clicked spot a pixel may be (0-255 display levels)")
        self.spin.valueChanged.connect(self.changed.emit)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        label = QLabel("Tolerance")
        label.setBuddy(self.spin)
        layout.addWidget(label)
        layout.addWidget(self.spin)

    def value(self) -> int:
        return self.spin.value()

    def set_value(self, value: int) -> None:
        self.spin.setValue(value)


def build_toolbar(
    parent: QWidget, actions: Mapping[ActionName, QAction], layout: Sequence[ActionName | None]
) -> tuple[QToolBar, WandTolerance, QAction]:
    """The toolbar with ``layout``'s actions (None: a separator), each with its icon and
    its text as tooltip, then the wand's tolerance (its action is returned to show it only
    while the wand is chosen)."""
    toolbar = QToolBar("Tools", parent)
    toolbar.setObjectName("toolbar-tools")
    toolbar.setIconSize(QSize(22, 22))
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
    for name in layout:
        if name is None:
            toolbar.addSeparator()
            continue
        action = actions[name]
        action.setIcon(icon(name.value))
        toolbar.addAction(action)
    tolerance = WandTolerance(toolbar)
    tolerance_action = toolbar.addWidget(tolerance)
    return toolbar, tolerance, tolerance_action
