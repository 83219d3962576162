"""Real Qt input for GUI tests: mouse, wheel and key events sent to a canvas's viewport.

QTest.mouseMove does not carry pressed buttons, so drags are sent as QMouseEvents with the
buttons set, straight to the viewport.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication


def send_mouse(view, kind, pixel, button=Qt.LeftButton, buttons=None, modifiers=Qt.NoModifier):
    """Send a mouse event to ``view``'s viewport over the centre of image ``pixel`` (x, y)."""
    position = QPointF(view.image_to_viewport(*pixel))
    if buttons is None:
        buttons = Qt.NoButton if kind == QEvent.MouseButtonRelease else button
    event = QMouseEvent(kind, position, view.viewport().mapToGlobal(position), button, buttons,
                        modifiers)
    QApplication.sendEvent(view.viewport(), event)


def drag(view, pixels, button=Qt.LeftButton):
    """Press at the first pixel, move through the others with the button held, release."""
    send_mouse(view, QEvent.MouseButtonPress, pixels[0], button)
    for pixel in pixels[1:]:
        send_mouse(view, QEvent.MouseMove, pixel, Qt.NoButton, button)
    send_mouse(view, QEvent.MouseButtonRelease, pixels[-1], button)
    QApplication.processEvents()


def click(view, pixel):
    send_mouse(view, QEvent.MouseButtonPress, pixel)
    send_mouse(view, QEvent.MouseButtonRelease, pixel)
    QApplication.processEvents()


def double_click(view, pixel):
    send_mouse(view, QEvent.MouseButtonDblClick, pixel)
    send_mouse(view, QEvent.MouseButtonRelease, pixel)
    QApplication.processEvents()


def send_wheel(view, position, notches, modifiers=Qt.NoModifier):
    position = QPointF(position)
    event = QWheelEvent(position, view.viewport().mapToGlobal(position), QPoint(),
                        QPoint(0, int(120 * notches)), Qt.NoButton, modifiers,
                        Qt.NoScrollPhase, False)
    QApplication.sendEvent(view.viewport(), event)


def capsule(shape, start, end, radius):
    """Pixels (bool (H, W)) whose centre lies within ``radius`` of segment start-end (x, y)."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(float)
    (x0, y0), (x1, y1) = start, end
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / max(length2, 1e-9), 0, 1)
    return (xs - x0 - t * dx) ** 2 + (ys - y0 - t * dy) ** 2 <= radius * radius + 1e-4
