"""One-click training in the window: background run, live progress, stop, close, failures."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from qt_events import drag

from segtool.core.masks import UNLABELLED
from segtool.core.models import list_models
from segtool.core.synthetic import nuclei_image
from segtool.gui.main_window import MainWindow

SIZE = 64
TINY = {"depth": 2, "base_filters": 8, "patch_size": 32, "batch_size": 4}


@pytest.fixture
def labelled_window(qtbot, qsettings_tmp, make_project):
    """A window on a 2-image project whose first image is half labelled with the truth."""
    project = make_project(n_images=2, size=SIZE)
    _, truth = nuclei_image(size=SIZE, seed=1)
    mask = np.full((SIZE, SIZE), UNLABELLED, np.uint8)
    mask[:, : SIZE // 2] = truth[:, : SIZE // 2]
    project.save_mask("img-1", mask)
    window = MainWindow(project, ask=lambda title, question: True)
    window.training.config_overrides = dict(TINY)
    qtbot.addWidget(window)
    window.resize(1000, 700)
    window.show()
    qtbot.waitExposed(window)
    window.canvas.setFocus()
    return window


def test_ctrl_t_trains_a_new_model_and_the_prediction_refreshes(labelled_window, qtbot):
    window = labelled_window
    window.training_panel.budget.setValue(10)  # TensorFlow loads within it on a busy CI
    with qtbot.waitSignal(window.training.run_finished, timeout=180_000) as finished:
        qtbot.keyClick(window.canvas.viewport(), Qt.Key_T, Qt.ControlModifier)
        assert window.training.running
    outcome = finished.args[0]
    assert outcome is not None and outcome.became_current
    assert window.project.current_model == outcome.model_path.name
    assert window.models_panel.names() == [outcome.model_path.name]
    # Its tooltip says how it was trained, the recipe's lines included.
    tip = window.models_panel.table.item(0, 1).toolTip()
    assert outcome.model_path.name in tip and "validation IoU" in tip
    assert "recipe:" in tip and "class weights" in tip
    assert window.training_panel.curve_points() > 0
    assert window.training_panel.device_label.text().startswith("device: CPU")
    assert window.training_panel.device_label.text().endswith("1 replica (single device)")
    qtbot.waitUntil(lambda: window.predictions.fresh("img-1") is not None, timeout=120_000)
    classes, _ = window.predictions.fresh("img-1")
    assert classes.shape == (SIZE, SIZE)
    window.close()


def test_second_train_is_refused_and_stop_keeps_the_best_model(labelled_window, qtbot):
    window = labelled_window
    window.training_panel.budget.setValue(120)
    assert window.training.start()
    qtbot.waitUntil(lambda: window.training_panel.curve_points() > 0, timeout=120_000)
    assert not window.training.start()
    assert "already running" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.training.run_finished, timeout=60_000) as finished:
        window.training_panel.stop_button.click()
    outcome = finished.args[0]
    assert outcome.cancelled and outcome.model_path.exists()
    assert "stopped early" in window.training_panel.message.text()
    window.close()


def test_edits_during_training_go_into_the_next_run(labelled_window, qtbot):
    window = labelled_window
    window.training_panel.budget.setValue(8)
    labelled_before = int(np.count_nonzero(window.opened.document.mask != UNLABELLED))
    with qtbot.waitSignal(window.training.run_finished, timeout=180_000) as finished:
        window.training.start()
        qtbot.waitUntil(lambda: window.training_panel.curve_points() > 0, timeout=120_000)
        window.canvas.set_brush_size(9)
        drag(window.canvas, [(40, 10), (60, 50)])
        qtbot.keyClick(window.canvas.viewport(), Qt.Key_S, Qt.ControlModifier)
    assert finished.args[0].sidecar["labelled_pixels"] == labelled_before
    window.close()


def test_closing_during_training_stops_the_worker_cleanly(labelled_window, qtbot):
    window = labelled_window
    window.training_panel.budget.setValue(300)
    window.training.start()
    qtbot.waitUntil(lambda: window.training_panel.curve_points() > 0, timeout=120_000)
    thread = window.training.thread
    window.close()  # waits for the worker: the step under way ends, then the thread
    assert not thread.isRunning()
    assert not list(window.project.models_dir.glob("*.tmp*"))
    assert not [p for p in window.project.models_dir.iterdir() if p.name.startswith(".")]
    for record in list_models(window.project.models_dir):
        assert record.path.stat().st_size > 0


def test_failure_is_shown_in_the_window_and_changes_nothing(qtbot, qsettings_tmp, make_project):
    project = make_project(n_images=1, size=SIZE)
    before = {p: p.read_bytes() for p in project.root.rglob("*") if p.is_file()}
    window = MainWindow(project, ask=lambda title, question: True)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.training.run_finished, timeout=120_000) as finished:
        window.training.start()
    assert finished.args[0] is None
    assert "nothing is labelled" in window.training_panel.message.text()
    assert "nothing is labelled" in window.statusBar().currentMessage()
    QApplication.processEvents()
    after = {p: p.read_bytes() for p in project.root.rglob("*") if p.is_file()}
    assert after == before
    window.close()


def test_a_budget_spent_loading_tensorflow_is_named_as_such(qtbot, make_project):
    """On a slow start (TensorFlow loading longer than the budget) the message says what
    took the time, not a negative budget."""
    from segtool.gui.workers.training import TrainingThread

    project = make_project(n_images=1, size=SIZE)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    project.save_mask("img-1", mask)
    worker = TrainingThread(project.root, max_seconds=5)
    worker.created -= 30  # as if loading TensorFlow had taken half a minute
    messages, outcomes = [], []
    worker.failed.connect(messages.append)
    worker.finished_training.connect(outcomes.append)
    worker.run()  # in this thread: the signals are delivered directly
    assert outcomes == []
    assert len(messages) == 1
    assert "loading TensorFlow took 3" in messages[0] and "of the 5 s budget" in messages[0]
    assert list_models(project.models_dir) == []


def test_controller_and_prediction_layer_work_without_a_window(qtbot, qsettings_tmp,
                                                               make_project):
    from segtool.gui.models_panel import ModelsPanel
    from segtool.gui.predictions import PredictionLayer
    from segtool.gui.training import TrainingController
    from segtool.gui.training_panel import TrainingPanel

    project = make_project(n_images=1, size=SIZE)
    panel, models = TrainingPanel(), ModelsPanel()
    qtbot.addWidget(panel)
    qtbot.addWidget(models)
    asked = []
    controller = TrainingController(project, panel, models,
                                    before_start=lambda: asked.append(1) and False)
    assert not controller.start() and asked == [1] and controller.thread is None

    layer = PredictionLayer(project)
    shown = []
    layer.current_prediction.connect(lambda *args: shown.append(args))
    layer.show_for("img-1")  # no model yet: nothing to compute, no thread started
    assert layer.thread is None and shown == [] and layer.current_stem == "img-1"
    layer.shutdown()
