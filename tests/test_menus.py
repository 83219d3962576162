"""The menu bar: every action in a menu with its shortcut; recent projects; last image."""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QDockWidget
from window_helpers import key, window_on_fixture  # noqa: F401

from segtool.core.lock import ProjectLock
from segtool.core.project import Project
from segtool.gui import settings as keys
from segtool.gui.actions import ACTIONS, ActionName
from segtool.gui.app import open_main_window
from segtool.gui.main_window import MainWindow
from segtool.gui.menus import RECENT, menu_actions


def when_modal(qtbot, handle):
    """Run ``handle(dialog)`` on the next modal dialog once it is open (exec blocks)."""
    def poll():
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            QTimer.singleShot(10, poll)
        else:
            handle(dialog)
    QTimer.singleShot(0, poll)


def test_every_action_is_in_a_menu_and_keeps_its_shortcut(window_on):
    window = window_on()
    titles = [action.text().replace("&", "") for action in window.menuBar().actions()]
    assert titles == ["File", "Edit", "View", "Image", "Tools", "Train", "Help"]
    in_menus = menu_actions(window.menus)
    for spec in ACTIONS:
        action = window.actions_by_name[spec.name]
        assert action in in_menus, spec.text
        assert [s.toString() for s in action.shortcuts()] == list(spec.shortcuts), spec.text
    file_menu = [a.text() for a in window.menus["File"].actions() if not a.isSeparator()]
    assert file_menu[:3] == ["New project…", "Open project…", RECENT]
    assert "Export masks…" in file_menu and file_menu[-1] == "Save and quit"


def test_shortcuts_still_work_with_the_menus_and_f1_lists_them(window_on, qtbot):
    window = window_on()
    key(qtbot, window, Qt.Key_W)
    assert window.canvas.tool.value == "wand"
    seen = []
    when_modal(qtbot, lambda dialog: (seen.append(dialog.label.text()), dialog.accept()))
    key(qtbot, window, Qt.Key_F1)
    assert seen and "Ctrl+T" in seen[0] and "GrabCut box" in seen[0]


def test_about_names_the_versions_without_loading_tensorflow(window_on, qtbot):
    loaded_before = "tensorflow" in sys.modules
    window = window_on()
    seen = []
    when_modal(qtbot, lambda dialog: (seen.append(dialog.label.text()), dialog.accept()))
    window.actions_by_name[ActionName.ABOUT].trigger()
    text = seen[0]
    for name in ("segtool", "TensorFlow", "Keras", "Qt", "Device"):
        assert f"<b>{name}</b>" in text
    assert "not known yet" in text
    assert loaded_before or "tensorflow" not in sys.modules


def test_view_panels_hide_and_show_the_docks(window_on):
    window = window_on()
    training = window.findChild(QDockWidget, "dock-training")
    toggle = next(a for a in window.menus["Panels"].actions() if a.text() == "Training")
    assert training.isVisible()
    toggle.trigger()
    assert not training.isVisible()
    toggle.trigger()
    assert training.isVisible()


def test_open_recent_replaces_the_window_and_frees_the_old_project(
        qtbot, qsettings_tmp, make_project):
    first, second = make_project(), make_project()
    keys.remember_project(str(second.root))
    window = open_main_window(Project.open(first.root), ask=lambda title, question: True)
    qtbot.addWidget(window)
    window.show()
    recent = [a.text() for a in window.menus[RECENT].actions()]
    assert recent == [str(second.root)]  # the open project is not offered
    opened = []
    window.open_project_requested.connect(lambda path: opened.append(path))
    window.menus[RECENT].actions()[0].trigger()
    replacement = next(w for w in QApplication.topLevelWidgets()
                       if isinstance(w, MainWindow) and w is not window and w.isVisible())
    qtbot.addWidget(replacement)
    assert replacement.project.root == second.root and not window.isVisible()
    ProjectLock.acquire(first.root, "test").release()  # the closed window let it go
    assert keys.recent_projects()[:2] == [str(second.root), str(first.root)]


def test_reopening_a_project_shows_the_image_the_user_was_last_on(window_on, qtbot,
                                                                  make_project):
    project = make_project(n_images=3)
    window = window_on(project)
    key(qtbot, window, Qt.Key_PageDown)
    key(qtbot, window, Qt.Key_PageDown)
    assert window.current_stem == "img-3"
    window.close()
    again = window_on(Project.open(project.root))
    assert again.current_stem == "img-3"
    again.close()
    (project.root / "images" / "img-3.png").unlink()
    third = window_on(Project.open(project.root))
    assert third.current_stem == "img-1"  # gone: the first image instead


def test_export_writes_the_masks_where_the_dialog_says(window_on, qtbot, tmp_path):
    window = window_on()
    window.canvas.set_brush_size(5)
    from qt_events import drag
    drag(window.canvas, [(10, 10), (20, 10)])
    out = tmp_path / "exported"

    def fill_in(dialog):
        dialog.folder.setText(str(out))
        dialog.format.setCurrentIndex(dialog.format.findData("color"))
        dialog.export()

    when_modal(qtbot, fill_in)
    window.actions_by_name[ActionName.EXPORT].trigger()
    assert (out / "img-1.png").is_file()  # the open image was saved first
    assert "exported" in window.statusBar().currentMessage()
