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


def test_new_from_the_start_page_refuses_the_root_and_a_non_empty_folder(
    qtbot, qsettings_tmp, tmp_path
):
    import cv2

    from segtool.core.synthetic import nuclei_image

    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), nuclei_image(size=32, seed=1)[0])
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me", encoding="utf-8")
    start = StartWindow()
    qtbot.addWidget(start)
    warnings = []
    start.warn = lambda title, text: warnings.append(text)
    from pathlib import Path

    start.create_project(images, Path("/"))
    start.create_project(images, busy)
    assert start.main_window is None
    assert "root of the file system" in warnings[0] and "not empty" in warnings[1]
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    start.create_project(images, tmp_path / "fresh")
    window = start.main_window
    qtbot.addWidget(window)
    assert window.project.image_names() == ["a"]
    window.close()


def test_a_last_project_that_no_longer_opens_shows_the_start_page_with_why(
    qtbot, qsettings_tmp, make_project
):
    from segtool.gui import settings as keys

    project = make_project(n_images=1, size=32)
    project.project_file.write_text('{"version": 1, "classes": [', encoding="utf-8")
    keys.settings().setValue(keys.LAST_PROJECT, str(project.root))

    window = first_window(None)
    qtbot.addWidget(window)

    assert isinstance(window, StartWindow)
    message = window.page.message
    assert not message.isHidden() and str(project.project_file) in message.text()
