"""Opening: a project, the last project, or the start page; the demo from the start page."""

from __future__ import annotations

from segtool.gui.app import StartWindow, application, first_window
from segtool.gui.main_window import MainWindow


def test_no_project_and_no_history_shows_the_start_page(qtbot, qsettings_tmp):
    application()
    window = first_window(None)
    qtbot.addWidget(window)
    assert isinstance(window, StartWindow)


def test_segtool_alone_reopens_the_last_project(qtbot, qsettings_tmp, make_project):
    project = make_project(n_images=1, size=32)
    opened = MainWindow(project, ask=lambda *_: True)
    qtbot.addWidget(opened)
    opened.close()
    window = first_window(None)
    qtbot.addWidget(window)
    assert isinstance(window, MainWindow) and window.project.root == project.root
    window.close()


def test_demo_button_creates_and_opens_the_demo(qtbot, qsettings_tmp):
    start = first_window(None)
    qtbot.addWidget(start)
    start.page.demo_requested.emit()
    window = start.main_window
    qtbot.addWidget(window)
    assert window.project.root.name == "demo"
    assert [c.name for c in window.project.classes] == ["background", "nucleus"]
    assert len(window.project.image_names()) == 6
    assert window.current_stem == "nuclei-01"
    assert (window.opened.document.mask != 255).any()  # partly labelled
    assert window.predictions.thread is None  # no model yet: no worker, no TensorFlow
    window.close()
