"""Shared set-up for tests that drive the real main window (imported by test modules)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from segtool.core.project import Project
from segtool.gui.main_window import MainWindow


@pytest.fixture(name="window_on")
def window_on_fixture(qtbot, qsettings_tmp, make_project):
    """``window_on(project=None, answers=None, size=(900, 700))``: a shown MainWindow whose
    yes/no questions are answered yes (their titles are appended to ``answers``)."""

    def factory(project=None, answers=None, size=(900, 700)):
        project = project or make_project(n_images=3, size=64)
        answers = [] if answers is None else answers

        def ask(title, question):
            answers.append(title)
            return True

        window = MainWindow(project, ask=ask)
        qtbot.addWidget(window)
        window.resize(*size)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        window.canvas.setFocus()
        QApplication.processEvents()
        return window

    return factory


def square_project(root: Path, size: int = 80) -> Project:
    """A project with one grey image ``square`` holding a bright square at [20:50, 30:60]."""
    project = Project.create(root)
    rng = np.random.default_rng(0)
    image = rng.integers(20, 50, (size, size)).astype(np.uint8)
    image[20:50, 30:60] = rng.integers(200, 230, (30, 30))
    source = root.parent / f"{root.name}-source"
    source.mkdir()
    cv2.imwrite(str(source / "square.png"), image)
    assert not project.import_images([source / "square.png"]).skipped
    return project


def key(qtbot, window, sequence, modifier=Qt.NoModifier):
    """Press a key in the canvas, where the user's focus is; window shortcuts apply."""
    qtbot.keyClick(window.canvas.viewport(), sequence, modifier)
    QApplication.processEvents()
