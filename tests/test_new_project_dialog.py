"""File > New project: one dialog (name, parent folder, images, classes) and its refusals."""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtWidgets import QApplication, QDialog
from test_menus import when_modal

from segtool.core.project import Project
from segtool.gui.actions import ActionName
from segtool.gui.app import open_main_window
from segtool.gui.main_window import MainWindow
from segtool.gui.new_project_dialog import NewProjectDialog


def images_folder(root, count=2):
    root.mkdir(parents=True)
    for index in range(count):
        cv2.imwrite(str(root / f"photo-{index}.png"), np.full((16, 16), 40 * index, np.uint8))
    return root


def filled_dialog(qtbot, parent, name, images, classes=None):
    dialog = NewProjectDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.parent_folder.setText(str(parent))
    qtbot.keyClicks(dialog.name, name)
    dialog.images_folder.setText(str(images))
    if classes is not None:
        dialog.classes.setText(classes)
    return dialog


def test_create_makes_a_new_folder_under_a_parent_that_does_not_exist_yet(qtbot, tmp_path):
    images = images_folder(tmp_path / "photos")
    parent = tmp_path / "work" / "projects"  # neither exists: created, no "not found"
    dialog = filled_dialog(qtbot, parent, "cells", images)
    assert dialog.classes.text() == "background, object"
    assert dialog.target_label.text().endswith(str(parent / "cells"))
    dialog.create_button.click()
    assert dialog.result() == QDialog.DialogCode.Accepted and not dialog.problem.isVisible()
    project = Project.open(parent / "cells")
    assert project.image_names() == ["photo-0", "photo-1"]
    assert [c.name for c in project.classes] == ["background", "object"]
    assert (parent / "cells" / "images").is_dir() and (images / "photo-0.png").is_file()


def test_refusals_are_said_in_the_dialog_which_stays_open(qtbot, tmp_path):
    images = images_folder(tmp_path / "photos")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    cases = [
        (tmp_path, "busy", "is not empty"),  # a non-empty target
        (tmp_path, "photos", "inside the folder of images"),  # the images folder itself
        (images, "inner", "inside the folder of images"),
        (tmp_path, ".", "not a folder name"),
        (tmp_path, "", "give the project a name"),
    ]
    for parent, name, problem in cases:
        dialog = filled_dialog(qtbot, parent, name, images)
        dialog.create_button.click()
        assert dialog.result() != QDialog.DialogCode.Accepted, name
        assert dialog.problem.isVisible() and problem in dialog.problem.text(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "photos"]
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    dialog = filled_dialog(qtbot, tmp_path, "p", images, classes="background")
    dialog.create_button.click()
    assert "at least two class names" in dialog.problem.text()
    dialog = filled_dialog(qtbot, tmp_path, "p", tmp_path / "nowhere")
    dialog.create_button.click()
    assert "is not a folder" in dialog.problem.text()


def test_file_new_project_opens_the_new_project_in_the_window(
        qtbot, qsettings_tmp, make_project, tmp_path):
    images = images_folder(tmp_path / "photos", count=3)
    window = open_main_window(make_project(), ask=lambda title, question: True)
    qtbot.addWidget(window)
    window.show()

    def fill_in(dialog):
        dialog.parent_folder.setText(str(tmp_path / "new"))
        dialog.name.setText("leaves")
        dialog.images_folder.setText(str(images))
        dialog.classes.setText("background, leaf, stem")
        dialog.create_button.click()

    when_modal(qtbot, fill_in)
    window.actions_by_name[ActionName.NEW_PROJECT].trigger()
    replacement = next(w for w in QApplication.topLevelWidgets()
                       if isinstance(w, MainWindow) and w is not window and w.isVisible())
    qtbot.addWidget(replacement)
    assert replacement.project.root == tmp_path / "new" / "leaves"
    assert replacement.current_stem == "photo-0" and not window.isVisible()
    assert [c.name for c in replacement.project.classes] == ["background", "leaf", "stem"]
