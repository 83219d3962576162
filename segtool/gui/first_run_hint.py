"""A hint over the canvas of a project with no labels yet: what to do first."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QLabel, QWidget

FIRST_RUN_TEXT = "Paint some of each class, then press Ctrl+T to train"
MARGIN = 12


class FirstRunHint(QLabel):
    """A rounded label at the top centre of ``viewport`` that follows its size; it ignores
    the mouse, so painting goes through to the canvas underneath."""

    def __init__(self, viewport: QWidget) -> None:
        super().__init__(FIRST_RUN_TEXT, viewport)
        self.setObjectName("first-run-hint")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setWordWrap(True)
        self.setStyleSheet("QLabel#first-run-hint { background: rgba(20, 20, 20, 200); "
                           "color: white; border-radius: 8px; padding: 10px 16px; "
                           "font-size: 15px; }")
        viewport.installEventFilter(self)
        self._place()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt
        if watched is self.parent() and event.type() == QEvent.Type.Resize:
            self._place()
        return False

    def _place(self) -> None:
        viewport = self.parentWidget()
        width = max(40, min(viewport.width() - 2 * MARGIN, 520))
        self.setGeometry((viewport.width() - width) // 2, MARGIN, width,
                         self.heightForWidth(width))
