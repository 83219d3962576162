"""Volumes in the window: one slice at a time, slice keys, painting on the shown slice,
width/level with presets, right-drag and DICOM defaults, remembered windows."""

from __future__ import annotations

import nibabel
import numpy as np
import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QApplication
from qt_events import click, drag, send_mouse
from volume_helpers import ct_like, write_dicom_series
from window_helpers import key, window_on_fixture  # noqa: F401

from segtool.core.creation import create_project_from_folder
from segtool.core.project import Project
from segtool.core.window import Window
from segtool.gui.canvas import Tool


@pytest.fixture
def ct_project(tmp_path):
    """A project with a 5-slice CT series ``head`` (DICOM window 400/40) and a second one
    ``chest`` without a window."""
    source = tmp_path / "source"
    write_dicom_series(source / "head", ct_like(slices=5, height=40, width=48))
    write_dicom_series(source / "chest", ct_like(slices=3, height=40, width=48, seed=1),
                       window=None)
    project, report = create_project_from_folder(tmp_path / "project", source)
    assert not report.skipped
    return project


def test_a_volume_opens_on_its_middle_slice_and_the_keys_page_through_it(
        window_on, ct_project, qtbot):
    window = window_on(ct_project)
    window.open_image("head")
    assert window.opened.z == 2 and window.slice_bar.isVisible()
    assert window.slice_label.text() == "slice 3 / 5"
    key(qtbot, window, Qt.Key_Up)
    assert window.opened.z == 3 and window.slice_label.text() == "slice 4 / 5"
    key(qtbot, window, Qt.Key_Period)
    key(qtbot, window, Qt.Key_Period)  # past the last slice: stays on it
    assert window.opened.z == 4 and window.slice_bar.slider.value() == 4
    key(qtbot, window, Qt.Key_Comma)
    key(qtbot, window, Qt.Key_Down)
    assert window.opened.z == 2
    shown = ct_project.read_volume("head").array[2]
    np.testing.assert_array_equal(window.opened.image, shown)
    window.slice_bar.slider.setValue(0)  # the slider too
    assert window.opened.z == 0 and window.slice_label.text() == "slice 1 / 5"
    level = window.layers_panel.level
    level.setFocus()
    qtbot.keyClick(level, Qt.Key_Up)  # in the level field Up steps the level, not the slice
    assert window.opened.z == 0 and level.value() == 41


def test_painting_on_the_shown_slice_saves_those_voxels_and_undo_stays_on_the_slice(
        window_on, ct_project, qtbot):
    window = window_on(ct_project)
    window.open_image("head")
    key(qtbot, window, Qt.Key_Up)  # slice 3
    window.canvas.set_brush_size(1)
    drag(window.canvas, [(10, 12), (14, 12)])
    key(qtbot, window, Qt.Key_Up)  # slice 4: its own undo history
    window.canvas.set_tool(Tool.FILL)
    click(window.canvas, (1, 1))  # the whole slice becomes class 1
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)  # undoes the fill of slice 4 only
    key(qtbot, window, Qt.Key_S, Qt.ControlModifier)
    info = ct_project.volume_info("head")
    saved = np.asanyarray(nibabel.load(str(ct_project.mask_path("head"))).dataobj)
    voxels = {tuple(int(v) for v in index) for index in np.argwhere(saved != 255)}
    # DICOM axial: voxel (i, j, k) is column i, row j of slice k.
    assert voxels == {(x, 12, 3) for x in range(10, 15)}
    assert saved[10, 12, 3] == 1
    np.testing.assert_allclose(nibabel.load(str(ct_project.mask_path("head"))).affine,
                               info.affine)
    item = window.image_list._item("head")
    assert "1/5 slices" in item.text()


def test_dicom_window_is_the_default_and_presets_and_fields_are_width_level(
        window_on, ct_project, qtbot):
    window = window_on(ct_project)
    window.open_image("head")
    panel = window.layers_panel
    assert (panel.width.value(), panel.level.value()) == (400, 40)
    assert panel.preset.currentData() == "dicom"
    lung = panel.preset.findData("lung")
    panel.preset.activated.emit(lung)
    assert (panel.width.value(), panel.level.value()) == (1500, -600)
    expected = np.clip((window.opened.image.astype(np.float64) + 1350) * 255 / 1500 + 0.5,
                       0, 255).astype(np.uint8)
    np.testing.assert_array_equal(window.canvas.display_array, expected)
    window.open_image("chest")  # no DICOM window: automatic percentiles
    assert panel.preset.currentData() == "auto" and panel.preset.findData("dicom") == -1
    window.open_image("head")  # its window was remembered
    assert (panel.width.value(), panel.level.value()) == (1500, -600)
    assert Project.open(ct_project.root).window("head") == Window(-600, 1500)


def test_right_drag_changes_width_horizontally_and_level_vertically(window_on, ct_project):
    window = window_on(ct_project)
    window.open_image("head")
    canvas = window.canvas
    before = Window(40, 400)
    send_mouse(canvas, QEvent.MouseButtonPress, (10, 10), Qt.RightButton)
    send_mouse(canvas, QEvent.MouseMove, (30, 10), Qt.NoButton, Qt.RightButton)
    wider = window.view.window
    assert wider.width > before.width and wider.level == before.level
    send_mouse(canvas, QEvent.MouseMove, (30, 30), Qt.NoButton, Qt.RightButton)
    send_mouse(canvas, QEvent.MouseButtonRelease, (30, 30), Qt.RightButton)
    QApplication.processEvents()
    after = window.view.window
    assert after.level > before.level and after.width == wider.width
    assert np.all(window.opened.document.mask == 255)  # the right button paints nothing
    assert Project.open(ct_project.root).window("head") == after  # remembered on release


def test_same_window_for_all_images(window_on, ct_project):
    window = window_on(ct_project)
    window.open_image("head")
    panel = window.layers_panel
    panel.preset.activated.emit(panel.preset.findData("bone"))
    panel.for_all.setChecked(True)
    window.open_image("chest")
    assert (panel.width.value(), panel.level.value()) == (2000, 500)
    assert Project.open(ct_project.root).shared_window == Window(500, 2000)
    panel.for_all.setChecked(False)  # chest keeps what it shows; head goes back to its own
    window.open_image("head")
    assert (panel.width.value(), panel.level.value()) == (2000, 500)  # set on head before
    panel.preset.activated.emit(panel.preset.findData("dicom"))
    window.open_image("chest")
    assert (panel.width.value(), panel.level.value()) == (2000, 500)
    assert Project.open(ct_project.root).shared_window is None


def test_monochrome1_is_shown_inverted(window_on, tmp_path):
    source = tmp_path / "source"
    volume = ct_like(slices=2, height=16, width=16)
    write_dicom_series(source / "m1", volume, photometric="MONOCHROME1")
    write_dicom_series(source / "m2", volume, photometric="MONOCHROME2")
    project, _ = create_project_from_folder(tmp_path / "project", source)
    window = window_on(project)
    window.open_image("m2")
    normal = np.array(window.canvas.display_array)
    window.open_image("m1")
    np.testing.assert_array_equal(window.canvas.display_array, 255 - normal)


def test_a_2d_image_has_no_slice_bar(window_on):
    window = window_on()
    assert not window.slice_bar.isVisible() and window.slice_label.text() == ""


def test_the_export_dialog_writes_nifti_label_volumes(qtbot, ct_project, tmp_path):
    from segtool.core.workspace import Workspace
    from segtool.gui.export_dialog import NIFTI_ZERO, ExportDialog

    workspace = Workspace(ct_project)
    workspace.open("head", 1).document.paint_segment((3, 3), (3, 3), 0.5, 1)
    workspace.save("head")
    dialog = ExportDialog(ct_project)
    qtbot.addWidget(dialog)
    dialog.folder.setText(str(tmp_path / "out"))
    dialog.format.setCurrentIndex(dialog.format.findData(NIFTI_ZERO))
    dialog.export()
    assert dialog.summary.startswith("exported 1 mask(s) as nifti")
    saved = np.asanyarray(nibabel.load(str(tmp_path / "out" / "head.nii.gz")).dataobj)
    assert saved[3, 3, 1] == 2 and int(np.count_nonzero(saved)) == 1  # class 1 -> 2, rest 0


def test_a_volume_is_predicted_slice_by_slice_and_the_shown_slice_accepts_it(
        window_on, ct_project, qtbot):
    from segtool.ml.modelfile import save_model
    from segtool.ml.unet import build_unet

    sidecar = {"classes": [{"name": c.name, "colour": list(c.colour)}
                           for c in ct_project.classes],
               "channels": 1, "normalisation": {"method": "percentile", "low": 1.0,
                                                "high": 99.8}}
    save_model(build_unet(1, 2, depth=2, base_filters=4), ct_project.models_dir / "t.keras",
               sidecar)
    ct_project.set_current_model("t.keras")
    window = window_on(ct_project)
    progress = []
    window.open_image("head")
    qtbot.waitUntil(lambda: window.predictions.thread is not None, timeout=10_000)
    window.predictions.thread.volume_progress.connect(lambda *done: progress.append(done))
    qtbot.waitUntil(lambda: window.predictions.fresh("head") is not None, timeout=120_000)
    classes, confidence = window.predictions.fresh("head")
    assert classes.shape == confidence.shape == (5, 40, 48)  # the whole volume
    # ``chest``, opened first, may be predicted in part, stopped for ``head`` and resumed.
    assert [done for stem, *done in progress if stem == "head"][-1] == [5, 5]
    key(qtbot, window, Qt.Key_Up)  # slice 3 shows its own slice of the prediction
    key(qtbot, window, Qt.Key_A)
    np.testing.assert_array_equal(window.opened.document.mask, classes[3])
    assert np.all(window.workspace.label_volume("head")[[0, 1, 2, 4]] == 255)
    window.close()


def test_the_window_offers_back_volume_strokes_after_a_kill_9(window_on, ct_project):
    import signal
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import os, signal
        from segtool.core.project import Project
        from segtool.core.workspace import Workspace
        workspace = Workspace(Project.open({str(ct_project.root)!r}))
        workspace.open("head", 1).document.paint_segment((5, 6), (9, 6), 0.5, 1)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert subprocess.run([sys.executable, "-c", script],
                          check=False).returncode == -signal.SIGKILL
    answers = []
    window = window_on(ct_project, answers)
    window.open_image("head")
    assert "Restore unsaved edits?" in answers
    assert window.workspace.label_volume("head")[1, 6, 5:10].tolist() == [1] * 5
    window.view.go_to_slice(1)
    assert window.opened.document.mask[6, 5:10].tolist() == [1] * 5
    assert window.opened.document.can_undo  # the restore is one undo step of that slice
