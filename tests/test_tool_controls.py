"""Tools a user can control: hints in the status bar, toolbar icons, the wand's tolerance."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QToolBar, QToolButton
from qt_events import click
from window_helpers import key, square_project, window_on_fixture  # noqa: F401

from segtool.core.brush import fill_holes
from segtool.gui import settings as keys
from segtool.gui.canvas import Tool
from segtool.gui.canvas_tools import TOOL_HINTS

TOOL_KEYS = {Qt.Key_B: Tool.BRUSH, Qt.Key_E: Tool.ERASER, Qt.Key_F: Tool.FILL,
             Qt.Key_L: Tool.POLYGON, Qt.Key_W: Tool.WAND, Qt.Key_G: Tool.GRABCUT,
             Qt.Key_H: Tool.PAN}


def test_each_tool_shows_its_hint_in_the_status_bar(window_on, qtbot):
    window = window_on()
    assert window.tool_hint.text() == TOOL_HINTS[Tool.BRUSH] and window.tool_hint.isVisible()
    for pressed, tool in TOOL_KEYS.items():
        window.statusBar().showMessage("an older message")
        key(qtbot, window, pressed)
        assert window.canvas.tool == tool
        assert window.statusBar().currentMessage() == ""  # the hint is what one reads
        assert window.tool_hint.text() == TOOL_HINTS[tool] and window.tool_hint.isVisible()
    key(qtbot, window, Qt.Key_F)
    assert "fills the connected region of the same label" in window.tool_hint.text()
    key(qtbot, window, Qt.Key_L)
    assert "Enter" in window.tool_hint.text() and "Esc cancels" in window.tool_hint.text()


def test_toolbar_buttons_have_icons_and_text_on_hover_and_fit_1280_px(window_on):
    window = window_on(size=(1280, 800))
    toolbar = window.findChild(QToolBar, "toolbar-tools")
    assert toolbar.toolButtonStyle() == Qt.ToolButtonIconOnly
    buttons = [toolbar.widgetForAction(a) for a in toolbar.actions() if not a.isSeparator()]
    buttons = [b for b in buttons if isinstance(b, QToolButton)]
    assert len(buttons) >= 14
    for button in buttons:
        action = button.defaultAction()
        assert not action.icon().isNull(), action.text()
        assert action.text() in action.toolTip() and "(" in action.toolTip()  # shortcut too
        assert button.isVisible(), f"{action.text()} is pushed off the toolbar"
    assert toolbar.geometry().right() <= 1280
    assert toolbar.sizeHint().width() <= 1280


def test_wand_tolerance_is_a_toolbar_control_and_remembered(window_on, qtbot, tmp_path):
    window = window_on(square_project(tmp_path / "p"))
    assert not window.wand_tolerance.isVisible()  # only with the wand
    key(qtbot, window, Qt.Key_W)
    assert window.wand_tolerance.isVisible()
    spin = window.wand_tolerance.spin
    spin.selectAll()
    qtbot.keyClicks(spin, "2")
    qtbot.keyClick(spin, Qt.Key_Return)
    assert window.canvas.wand_tolerance == 2
    click(window.canvas, (10, 10))  # background noise spans 30 levels: a patch of it
    small = np.count_nonzero(window.opened.document.mask == 1)
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    window.canvas.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "40")
    qtbot.keyClick(spin, Qt.Key_Return)
    window.canvas.setFocus()
    QApplication.processEvents()
    click(window.canvas, (10, 10))
    labelled = window.opened.document.mask == 1
    assert np.count_nonzero(labelled) == 80 * 80 - 30 * 30  # all the background
    assert small < (80 * 80 - 30 * 30) / 2
    assert not labelled[20:50, 30:60].any()  # the bright square is not background
    assert keys.read_int(keys.WAND_TOLERANCE, 0) == 40


def test_wand_on_a_nucleus_labels_it_without_holes(window_on, qtbot):
    window = window_on()
    key(qtbot, window, Qt.Key_W)
    window.wand_tolerance.set_value(60)
    image = window.canvas.display_array
    y, x = np.unravel_index(np.argmax(image), image.shape)  # inside the brightest nucleus
    click(window.canvas, (int(x), int(y)))
    labelled = window.opened.document.mask == 1
    assert 20 < np.count_nonzero(labelled) < labelled.size // 4
    assert np.array_equal(fill_holes(labelled), labelled)
