"""A project with no labels shows what to do first on the canvas, until there are labels."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from qt_events import drag
from window_helpers import key, window_on_fixture  # noqa: F401

from segtool.core.masks import UNLABELLED
from segtool.gui.first_run_hint import FIRST_RUN_TEXT


def test_the_hint_shows_on_an_unlabelled_project_and_goes_with_the_first_stroke(
        window_on, qtbot):
    window = window_on()
    hint = window.first_run_hint
    assert hint.isVisible() and hint.text() == FIRST_RUN_TEXT
    assert "Ctrl+T" in hint.text()
    viewport = window.canvas.viewport().rect()
    assert viewport.contains(hint.geometry())  # on the canvas, not clipped
    drag(window.canvas, [(20, 20), (40, 20)])  # painting goes through the hint
    assert (window.opened.document.mask != UNLABELLED).any()
    assert not hint.isVisible()
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)  # undone: the user knows how by now
    key(qtbot, window, Qt.Key_PageDown)
    assert not hint.isVisible()


def test_no_hint_when_the_project_has_labels(window_on, make_project):
    project = make_project(n_images=2, size=64)
    mask = np.full((64, 64), UNLABELLED, np.uint8)
    mask[:5, :5] = 1
    project.save_mask("img-2", mask)
    window = window_on(project)
    assert window.current_stem == "img-1"
    assert not window.first_run_hint.isVisible()
