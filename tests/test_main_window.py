"""The real main window on a temporary project, driven with mouse and key events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QApplication
from qt_events import capsule, click, double_click, drag, send_mouse
from window_helpers import window_on_fixture  # noqa: F401

from segtool.core.masks import UNLABELLED, read_mask
from segtool.core.project import ImageStatus
from segtool.core.synthetic import nuclei_image
from segtool.gui.actions import ActionName
from segtool.gui.canvas import Tool

SIZE = 64


@pytest.fixture
def open_window(window_on):
    """``open_window(project=None, answers=None)``: a shown MainWindow (on a new 3-image
    project by default); window_helpers' factory."""
    return window_on


def key(qtbot, window, sequence, modifier=Qt.NoModifier):
    """Press a key in the canvas, where the user's focus is; window shortcuts apply."""
    qtbot.keyClick(window.canvas.viewport(), sequence, modifier)
    QApplication.processEvents()


def saved_mask(window, stem=None):
    return read_mask(window.project.mask_path(stem or window.current_stem))


def test_defaults_first_image_fitted_brush_first_foreground_class(open_window):
    window = open_window()
    assert window.current_stem == window.project.image_names()[0] == "img-1"
    assert window.canvas.tool == Tool.BRUSH
    assert window.canvas.current_class == 1
    viewport = window.canvas.viewport().rect()
    corner = window.canvas.image_to_viewport(SIZE, SIZE)
    origin = window.canvas.image_to_viewport(0, 0)
    # Fitted: the whole image is visible and fills the viewport along one side.
    assert viewport.contains(origin) and 0 <= corner.x() <= viewport.width() + 1
    assert corner.y() <= viewport.height() + 1
    # fitInView keeps a few pixels of margin; otherwise the image spans the viewport.
    spans = (corner.x() - origin.x() >= viewport.width() - 8
             or corner.y() - origin.y() >= viewport.height() - 8)
    assert spans


def test_brush_stroke_then_ctrl_s_writes_exactly_the_stroke(open_window, qtbot):
    window = open_window()
    window.canvas.set_brush_size(5)
    drag(window.canvas, [(10, 20), (25, 20), (40, 30)])
    key(qtbot, window, Qt.Key_S, Qt.ControlModifier)
    mask = saved_mask(window)
    expected = capsule(mask.shape, (10, 20), (25, 20), 2.5) | capsule(mask.shape, (25, 20),
                                                                      (40, 30), 2.5)
    assert np.array_equal(mask != UNLABELLED, expected)
    assert set(np.unique(mask[expected])) == {1}
    assert window.project.status("img-1") == ImageStatus.IN_PROGRESS


def test_undo_redo_with_shortcuts(open_window, qtbot):
    window = open_window()
    drag(window.canvas, [(10, 10), (30, 10)])
    painted = np.array(window.opened.document.mask)
    assert (painted != UNLABELLED).any()
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    assert (window.opened.document.mask == UNLABELLED).all()
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert np.array_equal(window.opened.document.mask, painted)
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    key(qtbot, window, Qt.Key_Y, Qt.ControlModifier)
    assert np.array_equal(window.opened.document.mask, painted)


def test_fill_floods_the_clicked_region(open_window, qtbot):
    window = open_window()
    window.canvas.set_brush_size(3)
    # A closed ring of class 1 around (20, 20); fill its inside with class 0 (key 0).
    ring = [(10, 10), (30, 10), (30, 30), (10, 30), (10, 10)]
    drag(window.canvas, ring)
    key(qtbot, window, Qt.Key_0)
    key(qtbot, window, Qt.Key_F)
    assert window.canvas.tool == Tool.FILL and window.canvas.current_class == 0
    click(window.canvas, (20, 20))
    mask = window.opened.document.mask
    assert mask[20, 20] == 0 and mask[13, 13] == 0
    assert mask[10, 20] == 1  # the ring itself is another region
    assert mask[50, 50] == UNLABELLED  # outside the ring: untouched


def test_shift_click_fill_labels_every_pixel_of_the_label_connected_or_not(open_window,
                                                                           qtbot):
    window = open_window()
    window.canvas.set_brush_size(5)
    drag(window.canvas, [(32, 0), (32, SIZE - 1)])  # a bar of class 1 cuts the image in two
    key(qtbot, window, Qt.Key_0)
    key(qtbot, window, Qt.Key_F)
    click(window.canvas, (10, 10))
    mask = window.opened.document.mask
    assert mask[10, 10] == 0 and mask[10, 50] == UNLABELLED  # a click: its side only
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    send_mouse(window.canvas, QEvent.MouseButtonPress, (10, 10), modifiers=Qt.ShiftModifier)
    send_mouse(window.canvas, QEvent.MouseButtonRelease, (10, 10), modifiers=Qt.ShiftModifier)
    QApplication.processEvents()
    mask = window.opened.document.mask
    assert mask[10, 10] == 0 and mask[10, 50] == 0 and mask[60, 60] == 0  # both sides
    assert mask[20, 32] == 1  # the bar keeps its own label
    assert "Shift+click" in window.tool_hint.text()  # the status bar says how
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)  # one undo step
    assert (window.opened.document.mask[:, :28] == UNLABELLED).all()


def test_polygon_fills_the_outline_as_one_undo_step(open_window, qtbot):
    window = open_window()
    key(qtbot, window, Qt.Key_L)
    for point in [(10, 10), (40, 10), (40, 40)]:
        click(window.canvas, point)
    double_click(window.canvas, (10, 40))
    mask = window.opened.document.mask
    assert mask[25, 25] == 1 and mask[12, 38] == 1
    assert mask[50, 50] == UNLABELLED
    inside = np.count_nonzero(mask == 1)
    assert 30 * 30 * 0.8 < inside < 32 * 32 * 1.1
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    assert (window.opened.document.mask == UNLABELLED).all()


def test_eraser_sets_pixels_back_to_unlabelled(open_window, qtbot):
    window = open_window()
    window.canvas.set_brush_size(9)
    drag(window.canvas, [(10, 30), (50, 30)])
    key(qtbot, window, Qt.Key_E)
    window.canvas.set_brush_size(5)
    drag(window.canvas, [(30, 20), (30, 40)])
    mask = window.opened.document.mask
    assert mask[30, 30] == UNLABELLED and mask[30, 15] == 1


def test_only_unlabelled_toggle_protects_existing_labels(open_window, qtbot):
    window = open_window()
    window.canvas.set_brush_size(7)
    drag(window.canvas, [(10, 30), (50, 30)])
    key(qtbot, window, Qt.Key_U)
    key(qtbot, window, Qt.Key_0)
    drag(window.canvas, [(30, 20), (30, 40)])
    mask = window.opened.document.mask
    assert mask[30, 30] == 1  # protected
    assert mask[22, 30] == 0  # was unlabelled


def test_switching_image_autosaves_and_keeps_undo_history(open_window, qtbot):
    window = open_window()
    drag(window.canvas, [(10, 10), (30, 10)])
    key(qtbot, window, Qt.Key_PageDown)
    assert window.current_stem == "img-2"
    assert (saved_mask(window, "img-1") == 1).any()
    key(qtbot, window, Qt.Key_PageUp)
    assert window.current_stem == "img-1"
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)  # the history survived the switch
    assert (window.opened.document.mask == UNLABELLED).all()


def test_autosave_timer_saves_changes(open_window):
    window = open_window()
    drag(window.canvas, [(5, 5), (20, 5)])
    assert not window.project.mask_path("img-1").exists()
    window.autosave_timer.timeout.emit()
    assert (saved_mask(window, "img-1") == 1).any()


def test_broken_image_is_marked_and_others_stay_usable(make_project, open_window, qtbot):
    project = make_project(n_images=3, size=SIZE)
    project.image_path("img-2").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    window = open_window(project)
    key(qtbot, window, Qt.Key_PageDown)
    assert window.current_stem == "img-1"  # stayed on the readable image
    assert window.project.status("img-2") == ImageStatus.UNREADABLE
    assert "img-2" in window.statusBar().currentMessage()
    window.open_image("img-3")
    drag(window.canvas, [(5, 5), (20, 5)])
    assert (window.opened.document.mask == 1).any()


def test_mask_of_wrong_size_is_set_aside_with_a_message(make_project, open_window):
    project = make_project(n_images=2, size=SIZE)
    wrong = np.zeros((10, 10), np.uint8)
    cv2.imwrite(str(project.mask_path("img-1")), wrong)
    window = open_window(project)
    assert (window.opened.document.mask == UNLABELLED).all()
    backups = list(project.masks_dir.glob("img-1.png.bad-*"))
    assert len(backups) == 1 and cv2.imread(str(backups[0]), 0).shape == (10, 10)
    assert "does not match" in window.statusBar().currentMessage() or \
        "size" in window.statusBar().currentMessage()


def test_journal_restores_edits_after_kill_9(make_project, open_window, tmp_path):
    project = make_project(n_images=1, size=SIZE)
    script = textwrap.dedent(f"""
        import os, signal
        from segtool.core.project import Project
        from segtool.core.workspace import Workspace
        workspace = Workspace(Project.open({str(project.root)!r}))
        opened = workspace.open("img-1")
        opened.document.paint_segment((5, 5), (40, 5), 3.0, 1)
        workspace.commit("img-1")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert result.returncode == -signal.SIGKILL
    assert not project.mask_path("img-1").exists()
    answers = []
    window = open_window(project, answers)
    assert answers == ["Restore unsaved edits?"]
    mask = window.opened.document.mask
    assert mask[5, 20] == 1 and mask[5, 40] == 1
    window.save_current()
    assert read_mask(project.mask_path("img-1"))[5, 20] == 1
    assert not window.workspace.journal("img-1").exists()


def test_mark_reviewed_and_filter(open_window, qtbot):
    window = open_window()
    key(qtbot, window, Qt.Key_R)
    assert window.project.status("img-1") == ImageStatus.REVIEWED
    panel = window.image_list
    panel.filter_box.setCurrentIndex(panel.filter_box.findData("reviewed"))
    visible = [panel.list.item(i).text() for i in range(panel.list.count())
               if not panel.list.item(i).isHidden()]
    assert len(visible) == 1 and visible[0].startswith("img-1")


def test_settings_persist_brush_size_and_opacity(open_window, make_project):
    project = make_project(n_images=1, size=SIZE)
    window = open_window(project)
    window.canvas.set_brush_size(23)
    window.layers_panel.mask_opacity.setValue(70)
    window.close()
    again = open_window(project)
    assert again.canvas.brush_size == 23
    assert again.layers_panel.mask_opacity.value() == 70


def test_zoom_shortcuts_and_status_bar(open_window, qtbot):
    window = open_window()
    key(qtbot, window, Qt.Key_1, Qt.ControlModifier)
    assert window.canvas.zoom() == pytest.approx(1.0)
    key(qtbot, window, Qt.Key_0, Qt.ControlModifier)
    viewport = window.canvas.viewport().rect()
    fit = min(viewport.width() / SIZE, viewport.height() / SIZE)
    assert window.canvas.zoom() == pytest.approx(fit, abs=8 / SIZE)
    window.canvas.cursor_moved.emit(3, 4)
    text = window.position_label.text()
    assert "x 3" in text and "y 4" in text and "unlabelled" in text
    value = window.opened.image[4, 3]
    assert f"value {value:g}" in text
    assert os.environ["QT_QPA_PLATFORM"] == "offscreen"


def _tiny_model(project):
    from segtool.ml.modelfile import save_model
    from segtool.ml.unet import build_unet

    model = build_unet(1, project.num_classes, depth=2, base_filters=4)
    path = project.models_dir / "tiny.keras"
    sidecar = {"classes": [{"name": c.name, "colour": list(c.colour)} for c in project.classes],
               "channels": 1, "normalisation": {"method": "percentile", "low": 1.0, "high": 99.8}}
    save_model(model, path, sidecar)
    project.set_current_model(path.name)


def test_accept_prediction_fills_only_unlabelled_pixels(make_project, open_window, qtbot):
    project = make_project(n_images=2, size=SIZE)
    _tiny_model(project)
    window = open_window(project)
    qtbot.waitUntil(lambda: window.predictions.fresh("img-1") is not None, timeout=120_000)
    classes, confidence = window.predictions.fresh("img-1")
    assert classes.shape == (SIZE, SIZE) and confidence.shape == (SIZE, SIZE)
    key(qtbot, window, Qt.Key_0)
    window.canvas.set_brush_size(5)
    drag(window.canvas, [(10, 10), (50, 10)])
    painted = np.array(window.opened.document.mask)
    key(qtbot, window, Qt.Key_A)
    mask = window.opened.document.mask
    user = painted != UNLABELLED
    assert np.array_equal(mask[user], painted[user])  # never over what the user painted
    assert np.array_equal(mask[~user], classes[~user])
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)  # one undo step
    assert np.array_equal(window.opened.document.mask, painted)
    window.close()


def test_class_threshold_slider_shrinks_the_shown_prediction_and_accept_takes_it(
        make_project, open_window, qtbot):
    project = make_project(n_images=2, size=SIZE)
    _tiny_model(project)
    window = open_window(project)
    qtbot.waitUntil(lambda: window.predictions.fresh("img-1") is not None, timeout=120_000)
    classes, confidence = window.predictions.fresh("img-1")
    slider = window.layers_panel.class_threshold
    key(qtbot, window, Qt.Key_1)  # the foreground class
    assert slider.value() == 50
    for _ in range(10):  # 50% -> 60%: foreground needs p >= 0.6 (PgUp is "previous image")
        qtbot.keyClick(slider, Qt.Key_Right)
    assert slider.value() == 60 and window.layers_panel.class_threshold_value.text() == "60%"
    # p(foreground) * 255 from what the prediction holds (two classes)
    foreground = np.where(classes == 1, confidence, 255 - confidence.astype(np.int16))
    expected = (foreground >= 0.6 * 255).astype(np.uint8)
    assert np.count_nonzero(expected != classes) > 0  # the slider really moves pixels here
    shown, _ = window.canvas.shown_prediction()
    assert np.array_equal(shown, expected)
    key(qtbot, window, Qt.Key_0)  # each class keeps its own threshold
    assert slider.value() == 50
    key(qtbot, window, Qt.Key_1)
    assert slider.value() == 60
    key(qtbot, window, Qt.Key_A)
    assert np.array_equal(window.opened.document.mask, expected)
    window.close()


def test_class_threshold_grows_a_class_of_three_through_the_runner_up(
        make_project, open_window, qtbot):
    project = make_project(n_images=1, size=SIZE, class_names=["background", "cell", "edge"])
    _tiny_model(project)
    window = open_window(project)
    qtbot.waitUntil(lambda: window.predictions.fresh("img-1") is not None, timeout=120_000)
    _, classes, confidence, runner_up = window.predictions.results["img-1"]
    second, second_confidence = runner_up  # the worker asks for it with three classes
    key(qtbot, window, Qt.Key_2)
    slider = window.layers_panel.class_threshold
    for _ in range(30):  # 50% -> 20%: "edge" wherever it holds 20% of the top two
        qtbot.keyClick(slider, Qt.Key_Left)
    assert slider.value() == 20
    pair = confidence.astype(float) + second_confidence
    expected = classes.copy()
    expected[(second == 2) & (second_confidence >= 0.2 * pair)] = 2
    assert np.count_nonzero(expected != classes) > 0
    key(qtbot, window, Qt.Key_A)
    assert np.array_equal(window.opened.document.mask, expected)
    window.close()


def test_close_and_ctrl_q_save(open_window, qtbot):
    window = open_window()
    drag(window.canvas, [(5, 5), (20, 5)])
    key(qtbot, window, Qt.Key_Q, Qt.ControlModifier)
    assert not window.isVisible()
    assert (read_mask(window.project.mask_path("img-1")) == 1).any()


def test_next_unlabelled_and_mask_toggle(open_window, qtbot):
    window = open_window()
    drag(window.canvas, [(5, 5), (20, 5)])
    window.save_current()
    window.open_image("img-2")
    drag(window.canvas, [(5, 5), (20, 5)])
    window.open_image("img-1")
    key(qtbot, window, Qt.Key_N)
    assert window.current_stem == "img-3"  # img-2 has labels now
    opacity = window.canvas.overlay_opacity()
    key(qtbot, window, Qt.Key_M)
    assert window.canvas.overlay_opacity() == 0.0
    key(qtbot, window, Qt.Key_M)
    assert window.canvas.overlay_opacity() == pytest.approx(opacity)


def test_delete_class_asks_with_the_pixel_count(make_project, open_window):
    project = make_project(n_images=1, size=SIZE, class_names=["background", "cell", "debris"])
    window = open_window(project)
    window.select_class(2)
    drag(window.canvas, [(5, 5), (20, 5)])
    window.save_current()
    window.canvas.set_class_threshold(2, 0.7)  # kept by class number: dropped on delete
    questions = []
    window.classes_panel.confirm = lambda title, text: questions.append(text) or True
    window.classes_panel.select(2)
    window.classes_panel.delete_current()
    labelled = np.count_nonzero(window.opened.document.mask != UNLABELLED)
    assert labelled == 0
    assert questions and "'debris'" in questions[0]
    count = int(questions[0].split("? ")[1].split(" ")[0])
    assert count > 0
    assert [c.name for c in window.project.classes] == ["background", "cell"]
    assert window.classes_panel.list.count() == 2
    assert window.canvas.class_threshold(2) == 0.5


def test_model_list_switches_back_to_an_earlier_model(make_project, open_window, qtbot):
    project = make_project(n_images=2, size=SIZE)
    _tiny_model(project)
    first = project.current_model
    from segtool.ml.modelfile import save_model
    from segtool.ml.unet import build_unet

    save_model(build_unet(1, 2, depth=2, base_filters=4), project.models_dir / "later.keras",
               {"channels": 1, "created": "2099-01-01T00:00:00"})
    project.set_current_model("later.keras")
    window = open_window(project)
    assert window.models_panel.names() == ["later.keras", first]  # newest first
    qtbot.waitUntil(lambda: window.predictions.fresh("img-1") is not None, timeout=120_000)
    window.models_panel.table.selectRow(1)
    window.models_panel.use_button.click()
    assert window.project.current_model == first
    assert window.predictions.fresh("img-1") is None  # stale: made by the other model
    qtbot.waitUntil(lambda: window.predictions.fresh("img-1") is not None, timeout=120_000)
    assert window.predictions.results["img-1"][0] == first
    window.close()


def test_label_next_opens_the_least_certain_unreviewed_image(make_project, open_window, qtbot):
    project = make_project(n_images=4, size=SIZE)
    _tiny_model(project)
    window = open_window(project)
    window.project.set_status("img-2", "reviewed")
    key(qtbot, window, Qt.Key_L, Qt.ControlModifier)  # nothing known yet: computes them all
    stems = project.image_names()
    qtbot.waitUntil(lambda: all(window.predictions.uncertainty(s) is not None for s in stems),
                    timeout=120_000)
    candidates = {s: window.predictions.uncertainty(s) for s in ("img-3", "img-4")}
    key(qtbot, window, Qt.Key_L, Qt.ControlModifier)
    assert window.current_stem == max(candidates, key=candidates.get)
    panel = window.image_list
    panel.sort_box.setCurrentIndex(panel.sort_box.findData("uncertainty"))
    order = panel.ordered_stems()
    values = [window.predictions.uncertainty(s) for s in order]
    assert values == sorted(values, reverse=True)
    window.close()


def test_window_level_changes_the_display_and_auto_restores_it(open_window):
    window = open_window()
    auto = np.array(window.canvas.display_array)
    level, width = window.opened.window.level, window.opened.window.width
    window.layers_panel.level.setValue(level - width / 4)  # a lower level: brighter
    brighter = np.array(window.canvas.display_array)
    assert brighter.mean() > auto.mean() + 10
    panel = window.layers_panel
    panel.preset_chosen.emit("auto")
    assert np.array_equal(window.canvas.display_array, auto)
    assert panel.level.value() == pytest.approx(level, abs=0.1)
    assert panel.width.value() == pytest.approx(width, abs=0.1)
    assert panel.preset.currentData() == "auto"


def test_add_images_action_copies_a_folder_into_the_open_project(open_window, tmp_path):
    window = open_window()
    more = tmp_path / "more"
    more.mkdir()
    for name, seed in (("late-1.png", 7), ("img-1.png", 8)):  # img-1 is taken
        cv2.imwrite(str(more / name), nuclei_image(size=SIZE, seed=seed)[0])
    assert window.actions_by_name[ActionName.ADD_IMAGES].shortcut().toString() == "Ctrl+I"

    assert window.add_images(more) == 1

    assert "late-1" in window.project.image_names()
    assert "late-1" in window.image_list.ordered_stems()
    assert "skipped 1" in window.statusBar().currentMessage()


HOLD_LOCK = (
    "import sys\n"
    "from segtool.core.lock import ProjectLock\n"
    "lock = ProjectLock.acquire(sys.argv[1], 'segtool train')\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


def test_a_project_held_elsewhere_opens_read_only_with_a_banner(
    make_project, open_window, qtbot
):
    import socket

    from segtool.gui.app import open_main_window

    project = make_project(n_images=2, size=SIZE)
    other = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(project.root)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        before = {p: p.read_bytes() for p in project.root.rglob("*") if p.is_file()
                  and ".segtool" not in p.parts}
        questions = []
        assert open_main_window(project, lambda title, text: questions.append(text)
                                and False) is None  # the user said no
        assert f"process {other.pid} on {socket.gethostname()}" in questions[0]

        window = open_window(project)
        banner = window.read_only_banner
        assert banner.isVisible() and "segtool train" in banner.text()
        assert f"process {other.pid}" in banner.text() and "since" in banner.text()
        assert "read-only" in window.windowTitle()
        drag(window.canvas, [(10, 20), (40, 20)])
        assert (window.opened.document.mask == UNLABELLED).all()  # painting does nothing
        key(qtbot, window, Qt.Key_S, Qt.ControlModifier)
        key(qtbot, window, Qt.Key_R)
        window.autosave_timer.timeout.emit()
        window.open_image("img-2")
        window.close()
        after = {p: p.read_bytes() for p in project.root.rglob("*") if p.is_file()
                 and ".segtool" not in p.parts}
        assert after == before
    finally:
        other.kill()
        other.wait(timeout=30)


def test_the_window_holds_the_project_until_it_closes(open_window):
    from segtool.core.lock import ProjectBusy, ProjectLock

    window = open_window()
    assert not window.read_only_banner.isVisible()
    with pytest.raises(ProjectBusy, match="the segtool window"):
        ProjectLock.acquire(window.project.root, "segtool train")
    window.close()
    with ProjectLock.acquire(window.project.root, "segtool train"):
        pass


def test_a_fifo_as_mask_is_refused_and_the_window_opens(make_project, open_window):
    project = make_project(n_images=2, size=SIZE)
    os.mkfifo(project.mask_path("img-1"))

    window = open_window(project)  # would block forever opening the FIFO

    assert window.current_stem == "img-1"
    assert (window.opened.document.mask == UNLABELLED).all()
    assert "FIFO" in window.statusBar().currentMessage()
    window.close()


def test_a_masks_link_leading_out_of_the_project_is_never_written(
    make_project, open_window, tmp_path
):
    project = make_project(n_images=2, size=SIZE)
    elsewhere = tmp_path / "someone-elses-folder"
    elsewhere.mkdir()
    cv2.imwrite(str(elsewhere / "img-1.png"), np.zeros((10, 10), np.uint8))  # wrong size
    project.masks_dir.rmdir()
    project.masks_dir.symlink_to(elsewhere)

    window = open_window(project)
    drag(window.canvas, [(10, 20), (40, 20)])
    window.save_current()

    assert sorted(p.name for p in elsewhere.iterdir()) == ["img-1.png"]  # nothing renamed
    assert cv2.imread(str(elsewhere / "img-1.png"), 0).shape == (10, 10)
    assert "leads out of the project" in window.statusBar().currentMessage()
    window.close()


def test_a_read_only_project_opens_for_viewing(make_project, open_window, monkeypatch):
    project = make_project(n_images=2, size=SIZE)
    cv2.imwrite(str(project.mask_path("img-1")), np.zeros((10, 10), np.uint8))  # wrong size
    before = {p: p.read_bytes() for p in project.root.rglob("*") if p.is_file()}
    real_statvfs = os.statvfs

    class ReadOnlyMount:
        def __init__(self, path):
            self._real = real_statvfs(path)
            self.f_flag = self._real.f_flag | os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", ReadOnlyMount)  # as a read-only mount reports it

    window = open_window(project)

    assert window.read_only and window.read_only_banner.isVisible()
    assert "read-only file system" in window.read_only_banner.text()
    assert "left alone" in window.statusBar().currentMessage()
    drag(window.canvas, [(10, 20), (40, 20)])
    window.autosave_timer.timeout.emit()
    window.close()
    after = {p: p.read_bytes() for p in project.root.rglob("*") if p.is_file()}
    assert after == before  # no mask set aside, nothing written


def test_a_current_model_with_a_malformed_sidecar_does_not_stop_the_window(
    make_project, open_window, qtbot
):
    import json

    project = make_project(n_images=2, size=SIZE)
    _tiny_model(project)
    sidecar = project.models_dir / "tiny.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "trained_on": 5,
                                   "channels": "rgb"}), encoding="utf-8")

    window = open_window(project)

    assert window.current_stem == "img-1" and window.isVisible()
    qtbot.waitUntil(lambda: "malformed model sidecar" in window.statusBar().currentMessage(),
                    timeout=120_000)
    assert str(sidecar) in window.statusBar().currentMessage()
    drag(window.canvas, [(10, 10), (30, 10)])
    assert (window.opened.document.mask == 1).any()  # labelling goes on
    window.close()


def test_a_full_disk_turns_crash_protection_off_with_a_message(open_window, monkeypatch):
    import errno

    from segtool.core.journal import EditJournal

    window = open_window()

    def full(self, rect, pixels):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path))

    monkeypatch.setattr(EditJournal, "append", full)
    drag(window.canvas, [(10, 10), (30, 10)])  # an exception here would fail the test

    message = window.statusBar().currentMessage()
    assert "crash protection is off: disk full" in message
    assert str(window.workspace.journal("img-1").path) in message
    assert (window.opened.document.mask == 1).any()  # the stroke is kept
    monkeypatch.undo()
    window.save_current()
    assert (saved_mask(window) == 1).any()


def test_the_workspace_settings_drive_canvas_actions_and_panels(open_window):
    from segtool.core.editing import Tool as CoreTool

    window = open_window()
    settings = window.workspace.settings
    assert window.canvas.settings is settings  # one place, not a copy per widget

    settings.tool = CoreTool.FILL
    assert window.canvas.tool == Tool.FILL
    assert window.actions_by_name[ActionName.FILL].isChecked()
    assert not window.actions_by_name[ActionName.BRUSH].isChecked()

    settings.brush_size = 17
    assert window.canvas.brush_size == 17 and "brush 17px" in window.brush_label.text()

    settings.current_class = 0
    assert window.canvas.current_class == 0 and "background" in window.brush_label.text()

    settings.mask_visible = False
    assert window.canvas.overlay_opacity() == 0.0
    assert not window.layers_panel.mask_visible.isChecked()
    assert not window.actions_by_name[ActionName.TOGGLE_MASK].isChecked()

    settings.paint_unlabelled_only = True
    assert window.opened.document.paint_unlabelled_only
    assert window.actions_by_name[ActionName.ONLY_UNLABELLED].isChecked()
