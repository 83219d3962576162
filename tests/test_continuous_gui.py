"""Continuous learning in the window: the toggle, a newly saved mask joining, models made
current, Ctrl+T pausing it, and the toggle surviving a restart."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from qt_events import drag
from test_session import SIZE, TINY
from window_helpers import window_on_fixture  # noqa: F401

from segtool.core.lock import ProjectLock
from segtool.core.masks import UNLABELLED
from segtool.core.models import read_sidecar
from segtool.core.synthetic import nuclei_image
from segtool.gui.actions import ActionName
from segtool.ml import continuous


@pytest.fixture(autouse=True)
def short_cycles(monkeypatch):
    """Learning-rate cycles as long as the window's slices here: each slice ends one."""
    monkeypatch.setattr(continuous, "FIRST_CYCLE_S", 1.0)
    monkeypatch.setattr(continuous, "CYCLE_S", 1.0)


def _open(window_on, project):
    window = window_on(project, size=(1000, 700))
    window.training.config_overrides = dict(TINY)
    window.continuous.config_overrides = dict(TINY)
    window.continuous.slice_seconds = 1.0
    return window


@pytest.fixture
def project(make_project):
    project = make_project(n_images=2, size=SIZE)
    _, truth = nuclei_image(size=SIZE, seed=1)
    mask = np.full((SIZE, SIZE), UNLABELLED, np.uint8)
    mask[:, : SIZE // 2] = truth[:, : SIZE // 2]
    project.save_mask("img-1", mask)
    return project


def test_learns_while_the_user_labels_and_the_toggle_survives_a_restart(
        qtbot, window_on, project, monkeypatch):
    monkeypatch.setattr(continuous, "PUBLISH_GAP_S", 0.0)
    window = _open(window_on, project)
    action = window.actions_by_name[ActionName.CONTINUOUS]
    assert action in window.toolbar.actions() and not action.isChecked()
    with qtbot.waitSignal(window.training.model_changed, timeout=120_000) as changed:
        qtbot.keyClick(window.canvas.viewport(), Qt.Key_L,
                       Qt.ControlModifier | Qt.ShiftModifier)
        assert window.continuous.running and window.training_panel.continuous.isChecked()
    first = changed.args[0]
    assert window.project.current_model == first
    # The Training panel plots the trainer's loss and held-out IoU per class as it learns.
    panel = window.training_panel
    assert panel.plots_owner == "continuous" and panel.curve_points() > 0
    steps, ious = panel.iou_curves[0].getData()  # a class that is held out
    assert len(steps) > 0 and all(0.0 <= v <= 1.0 for v in ious)
    shown = float(panel.continuous_state.text().split("current model ")[1].split()[0])
    published = read_sidecar(window.project.models_dir / first)["metrics"]["mean_val_iou"]
    assert shown == pytest.approx(published, abs=1e-3)  # the model just made current
    assert first in window.models_panel.names()
    assert read_sidecar(window.project.models_dir / first)["trained_on"] == ["img-1"]

    # The user labels the second image and saves: it joins the training data.
    assert window.open_image("img-2")
    window.select_class(1)
    drag(window.canvas, [(10, 10), (40, 40)])
    thread = window.continuous.thread
    with qtbot.waitSignal(thread.slice_done, timeout=60_000,
                          check_params_cb=lambda report: report.labelled_images == 2):
        qtbot.keyClick(window.canvas.viewport(), Qt.Key_S, Qt.ControlModifier)

    # Ctrl+T pauses it for the run and lets it go on afterwards.
    window.training_panel.budget.setValue(5)
    # Wait for the run's end as the window hears it (the training thread may have ended
    # before its queued result reaches the window, which is what resumes learning).
    with qtbot.waitSignal(window.training.run_finished, timeout=120_000):
        qtbot.keyClick(window.canvas.viewport(), Qt.Key_T, Qt.ControlModifier)
        assert window.training.running and thread.paused
        assert panel.plots_owner == "run"
    assert not thread.paused and thread.isRunning()
    with qtbot.waitSignal(thread.slice_done, timeout=60_000,  # the plots are its again
                          check_params_cb=lambda report: report.steps > 0):
        pass
    qtbot.waitUntil(lambda: panel.plots_owner == "continuous", timeout=10_000)
    window.close()  # stops the worker (waiting for a step that is under way to end)
    qtbot.waitUntil(lambda: not thread.isRunning(), timeout=60_000)

    again = _open(window_on, type(project).open(project.root))
    assert again.actions_by_name[ActionName.CONTINUOUS].isChecked()
    assert again.continuous.running
    worker = again.continuous.thread
    qtbot.keyClick(again.canvas.viewport(), Qt.Key_L, Qt.ControlModifier | Qt.ShiftModifier)
    assert not again.continuous.running  # off at once; the worker ends after its step
    qtbot.waitUntil(lambda: not worker.isRunning(), timeout=60_000)
    assert again.training_panel.continuous_state.text() == "continuous learning: off"
    again.close()
    third = _open(window_on, type(project).open(project.root))
    assert not third.continuous.running  # off is remembered too
    third.close()


def test_class_weights_follow_what_the_user_paints(qtbot, window_on, make_project,
                                                   monkeypatch):
    """Continuous learning started on masks of background only has no class weights; a
    rare class painted in the window and saved brings them into the next published model
    (as a Ctrl+T run would decide them from the same masks)."""
    monkeypatch.setattr(continuous, "PUBLISH_GAP_S", 0.0)
    monkeypatch.setattr(continuous, "MIN_GAIN", -1.0)  # every cycle's end publishes
    project = make_project(n_images=3, size=SIZE)
    for stem in ("img-1", "img-3"):
        project.save_mask(stem, np.zeros((SIZE, SIZE), np.uint8))
    window = _open(window_on, project)
    with qtbot.waitSignal(window.training.model_changed, timeout=120_000) as changed:
        qtbot.keyClick(window.canvas.viewport(), Qt.Key_L,
                       Qt.ControlModifier | Qt.ShiftModifier)
    sidecar = read_sidecar(window.project.models_dir / changed.args[0])
    assert sidecar["recipe"]["class_weights"] is None

    assert window.open_image("img-2")
    window.select_class(1)
    drag(window.canvas, [(20, 20), (30, 30)])
    qtbot.keyClick(window.canvas.viewport(), Qt.Key_S, Qt.ControlModifier)
    painted = int(np.count_nonzero(window.project.load_mask("img-2") == 1))
    assert 0 < painted < 0.05 * 2 * SIZE * SIZE  # rare: under a tenth of an even split

    def trained_on_all(name: str) -> bool:
        return len(read_sidecar(window.project.models_dir / name)["trained_on"]) == 3

    with qtbot.waitSignal(window.training.model_changed, timeout=120_000,
                          check_params_cb=trained_on_all) as changed:
        pass
    weights = read_sidecar(window.project.models_dir / changed.args[0])["recipe"]["class_weights"]
    assert weights is not None and weights[1] > 2 * weights[0]
    thread = window.continuous.thread
    window.close()
    qtbot.waitUntil(lambda: not thread.isRunning(), timeout=60_000)


def test_a_broken_mask_is_reported_once_and_learning_resumes_once_fixed(
        qtbot, make_project, monkeypatch):
    """A mask file that cannot be read (another program wrote it) stops learning with one
    message naming the file, not one at every look; the masks are not read again until a
    mask file changes; a good mask saved over it lets learning go on."""
    from segtool.gui.workers import continuous as worker
    from segtool.ml import session

    monkeypatch.setattr(worker, "WAIT_S", 0.05)  # the worker looks again often
    reads, looks = [], []
    collect = session.collect_training_set
    monkeypatch.setattr(continuous, "collect_training_set",
                        lambda *args, **kwargs: reads.append(1) or collect(*args, **kwargs))
    run_slice = continuous.ContinuousTrainer.run_slice
    monkeypatch.setattr(continuous.ContinuousTrainer, "run_slice",
                        lambda self, *args, **kwargs: looks.append(1)
                        or run_slice(self, *args, **kwargs))
    project = make_project(n_images=2, size=SIZE)
    good = np.zeros((SIZE, SIZE), np.uint8)
    good[5:20, 5:20] = 1
    project.save_mask("img-1", good)
    broken = project.mask_path("img-2")
    broken.write_bytes(b"not a png")
    # The window holds the project's lock while it is open: the worker's looks (each opens
    # the project) then leave the temporary files of the window's saves alone.
    lock = ProjectLock.acquire(project.root, "the test's window")
    thread = worker.ContinuousThread(project.root, TINY, slice_seconds=0.5)
    failures: list[str] = []
    thread.failed.connect(failures.append)
    try:
        with qtbot.waitSignal(thread.failed, timeout=60_000):
            thread.start()
        qtbot.waitUntil(lambda: len(looks) >= 10, timeout=30_000)
        assert len(failures) == 1 and str(broken) in failures[0]
        assert "not a PNG" in failures[0]
        assert len(reads) == 1  # looked ten times, read the masks once

        project.save_mask("img-2", good)
        with qtbot.waitSignal(thread.slice_done, timeout=60_000,
                              check_params_cb=lambda report: report.labelled_images == 2):
            thread.labels_saved()
        assert len(failures) == 1
    finally:
        thread.stop(30_000)
        qtbot.waitUntil(lambda: not thread.isRunning(), timeout=60_000)
        lock.release()


def test_a_full_disk_is_reported_once_and_learning_goes_on(qtbot, make_project, monkeypatch):
    """Better models that cannot be saved (a full disk) give one message, not one a cycle;
    the worker keeps learning and saves the next better model once there is room."""
    import errno
    import os

    from segtool.gui.workers import continuous as worker

    monkeypatch.setattr(continuous, "PUBLISH_GAP_S", 0.0)
    monkeypatch.setattr(continuous, "MIN_GAIN", -1.0)  # every cycle's end tries to publish
    monkeypatch.setattr(continuous, "FIRST_CYCLE_S", 0.3)
    monkeypatch.setattr(continuous, "CYCLE_S", 0.3)
    attempts: list[int] = []
    real_fsync = os.fsync

    def full(fd: int) -> None:
        attempts.append(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    project = make_project(n_images=2, size=SIZE)
    good = np.zeros((SIZE, SIZE), np.uint8)
    good[5:30, 5:30] = 1
    project.save_mask("img-1", good)
    monkeypatch.setattr(os, "fsync", full)
    thread = worker.ContinuousThread(project.root, TINY, slice_seconds=0.3)
    failures: list[str] = []
    states: list[str] = []
    thread.failed.connect(failures.append)
    thread.state.connect(states.append)
    try:
        thread.start()
        qtbot.waitUntil(lambda: len(attempts) >= 3, timeout=60_000)  # three models unsaved
        assert len(failures) == 1 and "No space left on device" in failures[0]
        assert str(project.models_dir) in failures[0]
        assert "learning (its last model could not be saved)" in states
        assert not list(project.models_dir.iterdir())

        with qtbot.waitSignal(thread.published, timeout=60_000):
            monkeypatch.setattr(os, "fsync", real_fsync)
        assert len(failures) == 1
    finally:
        monkeypatch.setattr(os, "fsync", real_fsync)
        thread.stop(30_000)
        qtbot.waitUntil(lambda: not thread.isRunning(), timeout=60_000)
