"""Images referenced where they are (big datasets) instead of copied into the project."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PySide6.QtWidgets import QDialog
from store_helpers import plant_row, stored_records

from segtool.core.errors import SegtoolError
from segtool.core.masks import UNLABELLED
from segtool.core.project import ImageStatus, Project
from segtool.gui.main_window import MainWindow
from segtool.gui.new_project_dialog import NewProjectDialog


def photos(folder, count=3):
    folder.mkdir(parents=True)
    for index in range(count):
        cv2.imwrite(str(folder / f"photo-{index}.png"), np.full((16, 20), 30 * index, np.uint8))
    return folder


def test_referenced_images_stay_where_they_are_and_read_like_copies(tmp_path):
    source = photos(tmp_path / "data")
    project = Project.create(tmp_path / "p")
    report = project.import_images(sorted(source.iterdir()), reference=True)
    assert report.imported == ["photo-0", "photo-1", "photo-2"]
    assert list(project.images_dir.iterdir()) == []  # nothing copied
    assert project.image_path("photo-1") == source / "photo-1.png"
    assert project.is_referenced("photo-1")
    entry = stored_records(project.root)["photo-1"]
    assert entry["path"] == str(source / "photo-1.png") and entry["file"] == "photo-1.png"
    again = Project.open(project.root)
    assert again.read_image("photo-2").shape == (16, 20)
    mask = np.full((16, 20), UNLABELLED, np.uint8)
    mask[:4] = 1
    again.save_mask("photo-2", mask)  # masks still live in the project
    assert (again.masks_dir / "photo-2.png").is_file()
    copied = Project.create(tmp_path / "q")
    copied.import_images([source / "photo-0.png"])
    assert not copied.is_referenced("photo-0")
    assert copied.image_path("photo-0") == copied.images_dir / "photo-0.png"


@pytest.mark.parametrize("path", ["relative/photo-0.png", "/elsewhere/other.png",
                                  "/data/photo-0.png\u0000", 7])
def test_a_malformed_path_in_the_project_file_is_one_clear_error(tmp_path, path):
    source = photos(tmp_path / "data", count=1)
    project = Project.create(tmp_path / "p")
    project.import_images([source / "photo-0.png"], reference=True)
    plant_row(project.root, "photo-0", "photo-0.png", "unlabelled", json.dumps({"path": path}))
    with pytest.raises(SegtoolError, match="'path' must be the absolute path") as caught:
        Project.open(project.root)
    assert caught.value.path == str(project.store_file)


def test_new_and_add_reference_on_the_command_line(tmp_path):
    source = photos(tmp_path / "data", count=2)
    more = photos(tmp_path / "more", count=1)
    (more / "photo-0.png").rename(more / "extra.png")
    root = tmp_path / "p"
    run = [sys.executable, "-m", "segtool"]
    done = subprocess.run([*run, "new", str(root), "--images", str(source), "--reference"],
                          capture_output=True, text=True, check=True)
    assert "with 2 image(s)" in done.stdout
    done = subprocess.run([*run, "add", str(root), "--images", str(more), "--reference"],
                          capture_output=True, text=True, check=True)
    assert "referenced 1 image(s)" in done.stdout
    project = Project.open(root)
    assert all(project.is_referenced(stem) for stem in project.image_names())
    assert list(project.images_dir.iterdir()) == []


def test_a_referenced_image_that_went_missing_is_shown_as_such(qtbot, qsettings_tmp, tmp_path):
    source = photos(tmp_path / "data")
    project = Project.create(tmp_path / "p")
    project.import_images(sorted(source.iterdir()), reference=True)
    (source / "photo-0.png").unlink()  # moved away after the project was made
    window = MainWindow(Project.open(project.root), ask=lambda title, question: True)
    qtbot.addWidget(window)
    window.show()
    assert window.current_stem == "photo-1"  # the first image that opens
    assert window.project.status("photo-0") == ImageStatus.UNREADABLE
    assert not window.open_image("photo-0")
    item = window.image_list._item("photo-0")
    assert "unreadable" in item.text() and "file not found" in item.toolTip()
    window.close()


def test_the_new_project_dialog_can_reference_instead_of_copying(qtbot, tmp_path):
    source = photos(tmp_path / "data", count=2)
    dialog = NewProjectDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.parent_folder.setText(str(tmp_path / "projects"))
    qtbot.keyClicks(dialog.name, "cells")
    dialog.images_folder.setText(str(source))
    assert dialog.copy_images.isChecked()  # copying is the default
    dialog.copy_images.click()
    dialog.create()
    assert dialog.result() == QDialog.DialogCode.Accepted
    project = dialog.project
    assert [project.is_referenced(stem) for stem in project.image_names()] == [True, True]
    assert list(project.images_dir.iterdir()) == []
