"""Honest training progress (phases, a countdown of the budget) and quitting while training.

The run itself is a stand-in for segtool.ml.session.train_project that reports steps until
told to stop (the real one is tested in test_training_gui.py): these tests are about what
the window says and does around it.
"""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from window_helpers import window_on_fixture  # noqa: F401

from segtool.core.masks import UNLABELLED
from segtool.gui.quit_dialog import QuitChoice
from segtool.gui.workers import running_threads
from segtool.ml import session


class FakeRun:
    """Reports a step every few ms until cancelled (or ``finish`` is set); the model it
    "saves" scores ``iou`` against a current model scoring ``previous_iou``."""

    def __init__(self, iou=0.2, previous_iou=0.6, step_size=1):
        self.iou, self.previous_iou = iou, previous_iou
        self.finish = threading.Event()
        self.step_size = step_size
        self.steps = 0

    def __call__(self, project, max_seconds, from_scratch, progress, cancel, config_overrides,
                 make_current, phase):
        self.max_seconds = max_seconds
        phase("reading 1 labelled image")  # what train_project says, in its order
        phase("compiling")
        self.steps = 0
        while not cancel() and not self.finish.is_set():
            self.steps += self.step_size
            progress(SimpleNamespace(step=self.steps, total_steps_estimate=1000, loss=1.0,
                                     val_iou=[float("nan")] * 2, elapsed=0.0))
            self.finish.wait(0.005)
        path = project.models_dir / "model-new.keras"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"not a real model")
        sidecar = {"classes": [{"name": "background"}, {"name": "foreground"}],
                   "metrics": {"mean_val_iou": self.iou,
                               "val_iou": {"background": 0.99, "foreground": self.iou}}}
        path.with_suffix(".json").write_text(json.dumps(sidecar))
        better = self.iou >= self.previous_iou
        return SimpleNamespace(model_path=path, sidecar=sidecar, became_current=better,
                               previous_model="model-old.keras",
                               previous_val_iou=self.previous_iou, cancelled=cancel(),
                               history=[])


@pytest.fixture
def training_window(window_on, make_project, monkeypatch):
    def factory(run, choice=None):
        project = make_project(n_images=3)
        mask = np.full((64, 64), UNLABELLED, np.uint8)
        mask[:10] = 1
        project.save_mask("img-1", mask)
        monkeypatch.setattr(session, "train_project", run)
        answers = []
        window = window_on(project, answers=answers)
        if choice is not None:
            window.choose_on_quit = lambda: (answers.append(choice), choice)[1]
        return window, answers
    return factory


def test_the_bar_shows_the_phase_and_counts_down_the_budget_from_the_press_of_train(
        training_window, qtbot):
    run = FakeRun()
    window, _ = training_window(run)
    panel = window.training_panel
    now = [1000.0]
    panel.clock = lambda: now[0]
    panel.budget.setValue(90)
    phases = []
    window.training.start()
    window.training.thread.phase.connect(phases.append)
    assert panel.progress.format() == "starting  ·  90 s left"
    now[0] += 25  # TensorFlow loading counts against the budget
    panel.set_phase("loading TensorFlow")
    assert panel.progress.format() == "loading TensorFlow  ·  65 s left"
    qtbot.waitUntil(lambda: panel.curve_points() > 0, timeout=60_000)
    assert phases[-3:] == ["reading 1 labelled image", "compiling", "training"]
    now[0] += 20
    panel.ticker.timeout.emit()
    assert panel.progress.format().startswith("training · step ")
    assert panel.progress.format().endswith("  ·  45 s left")
    assert panel.progress.value() == 500  # half the budget used
    now[0] += 50
    panel.ticker.timeout.emit()
    assert panel.progress.format().endswith("finishing, 5 s over the budget")
    with qtbot.waitSignal(window.training.run_finished, timeout=30_000):
        window.training.stop()
    assert not panel.ticker.isActive() and panel.progress.format() == "done"
    # The run never validated on the way: the saved model's scores are plotted at its end.
    xs, ys = panel.iou_curves[1].getData()
    assert list(xs) == [panel._steps[-1]] and list(ys) == [pytest.approx(0.2)]
    qtbot.waitUntil(lambda: not running_threads())


def test_the_plots_start_afresh_on_a_new_run(training_window, qtbot):
    run = FakeRun(iou=0.9, step_size=1000)
    window, _ = training_window(run)
    panel = window.training_panel
    x_ranges = []
    for step_size in (1000, 1):  # a long run, then a short one
        run.step_size = step_size
        window.training.start()
        qtbot.waitUntil(lambda: panel.curve_points() > 3, timeout=60_000)
        with qtbot.waitSignal(window.training.run_finished, timeout=30_000):
            window.training.stop()
        panel.loss_plot.getViewBox().updateAutoRange()
        x_ranges.append(panel.loss_plot.getViewBox().viewRange()[0])
        assert panel.curve_points() * step_size <= run.steps  # only this run's points
    assert x_ranges[0][1] > 3000
    assert x_ranges[1][1] < 1000  # the x axis follows the new run, not the old one
    window.close()  # stops the prediction worker the new model started
    qtbot.waitUntil(lambda: not running_threads())


def test_quitting_while_training_can_be_cancelled(training_window, qtbot):
    window, answers = training_window(FakeRun(), choice=QuitChoice.CANCEL)
    window.training.start()
    qtbot.waitUntil(lambda: window.training_panel.curve_points() > 0, timeout=60_000)
    window.close()
    assert answers == [QuitChoice.CANCEL]
    assert window.isVisible() and window.training.running
    with qtbot.waitSignal(window.training.run_finished, timeout=30_000):
        window.training.stop()
    window.close()
    assert not window.isVisible() and answers == [QuitChoice.CANCEL]  # not asked again
    qtbot.waitUntil(lambda: not running_threads())


def test_stop_and_quit_closes_at_once_and_drops_a_worse_half_trained_model(
        training_window, qtbot):
    window, answers = training_window(FakeRun(iou=0.2, previous_iou=0.6),
                                      choice=QuitChoice.STOP)
    models = window.project.models_dir
    window.training.start()
    qtbot.waitUntil(lambda: window.training_panel.curve_points() > 0, timeout=60_000)
    window.close()
    assert answers == [QuitChoice.STOP] and not window.isVisible()
    assert not running_threads()
    assert not (models / "model-new.keras").exists()  # scored below the current model
    assert not (models / "model-new.json").exists()


def test_stop_and_quit_keeps_a_better_model(training_window, qtbot):
    window, _ = training_window(FakeRun(iou=0.8, previous_iou=0.6), choice=QuitChoice.STOP)
    window.training.start()
    qtbot.waitUntil(lambda: window.training_panel.curve_points() > 0, timeout=60_000)
    window.close()
    assert not window.isVisible()
    assert (window.project.models_dir / "model-new.keras").exists()


def test_quit_when_training_ends_closes_the_window_then(training_window, qtbot):
    run = FakeRun(iou=0.8)
    window, answers = training_window(run, choice=QuitChoice.KEEP_TRAINING)
    window.training.start()
    qtbot.waitUntil(lambda: window.training_panel.curve_points() > 0, timeout=60_000)
    window.close()
    assert window.isVisible() and window.training.running
    assert "closes when training ends" in window.statusBar().currentMessage()
    run.finish.set()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=30_000)
    assert answers == [QuitChoice.KEEP_TRAINING]
    assert (window.project.models_dir / "model-new.keras").exists()
    qtbot.waitUntil(lambda: not running_threads())


def test_loading_tensorflow_comes_out_of_the_run_budget(training_window, qtbot, monkeypatch):
    import time

    from segtool.gui.workers import training as training_worker

    real_load = training_worker.load_tensorflow_quietly

    def slow_load():
        time.sleep(1.0)  # a machine where TensorFlow takes a second to load
        real_load()

    monkeypatch.setattr(training_worker, "load_tensorflow_quietly", slow_load)
    run = FakeRun()
    run.finish.set()
    window, _ = training_window(run)
    window.training_panel.budget.setValue(30)
    with qtbot.waitSignal(window.training.run_finished, timeout=60_000):
        window.training.start()
    assert run.max_seconds <= 29.0  # what was left of the 30 s once TensorFlow had loaded
