"""Training from the window: one background run at a time, results applied on the GUI thread."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Signal

from segtool.core.errors import SegtoolError
from segtool.core.models import ModelSidecar, list_models, sidecar_path
from segtool.core.project import Project
from segtool.gui import settings as keys
from segtool.gui.models_panel import ModelsPanel
from segtool.gui.training_panel import TrainingPanel
from segtool.gui.workers import TrainingThread

log = logging.getLogger(__name__)


class TrainingController(QObject):
    """Starts a :class:`TrainingThread` on Ctrl+T, feeds the panel, adopts the new model.

    A second Train while one runs is refused with a message. When a run ends, the new model
    becomes current if it scored at least as well on validation, and predictions refresh.
    It knows the project and its two panels, nothing else: ``before_start()`` (the window
    saves the open mask there) may refuse the start, and what the user should read goes out
    as ``message(text, milliseconds)`` and ``failed(text)``.
    """

    model_changed = Signal(str)
    run_started = Signal()
    run_finished = Signal(object)  # TrainOutcome, or None after a failure
    message = Signal(str, int)  # status-bar news, shown for that many ms
    failed = Signal(str)  # a problem to show until the next message

    def __init__(
        self,
        project: Project,
        panel: TrainingPanel,
        models_panel: ModelsPanel,
        before_start: Callable[[], bool] = lambda: True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.project = project
        self.panel = panel
        self.models_panel = models_panel
        self.before_start = before_start
        self.thread: TrainingThread | None = None
        self.config_overrides: dict = {}
        panel.budget.setValue(keys.read_int(keys.TRAIN_SECONDS, panel.budget.value()))
        panel.budget.valueChanged.connect(lambda v: keys.settings().setValue(keys.TRAIN_SECONDS, v))
        panel.train_requested.connect(self.start)
        panel.stop_requested.connect(self.stop)
        models_panel.use_requested.connect(self.use_model)
        self.refresh_models()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.isRunning()

    def start(self) -> bool:
        """Save the current mask and start training; False (with a message) if refused."""
        if self.running:
            self.failed.emit("Training is already running: wait for it or press Stop")
            return False
        if not self.before_start():
            return False
        project, panel = self.project, self.panel
        panel.start([c.name for c in project.classes], project.colours)
        self.thread = TrainingThread(project.root, float(panel.budget.value()),
                                     config_overrides=self.config_overrides)
        self.thread.progress.connect(panel.update_progress)
        self.thread.phase.connect(panel.set_phase)
        self.thread.device_ready.connect(panel.set_device)
        self.thread.finished_training.connect(self._on_finished)
        self.thread.failed.connect(self._on_failed)
        self.thread.start()
        self.run_started.emit()
        self.message.emit("Training started in the background", 3000)
        return True

    def stop(self) -> None:
        """End the run early; the best model so far is still saved."""
        if self.thread is not None:
            self.thread.stop(timeout_ms=0)

    def stop_and_wait(self, timeout_ms: int = 10000) -> None:
        """Stop the run, wait for its thread and apply its outcome now (the window is
        closing): the best model so far becomes current if it scores at least as well as
        the current one; otherwise it is not kept."""
        thread = self.thread
        if thread is None:
            return
        if thread.stop(timeout_ms):
            # Its last signals are queued for this object: take them before the window goes.
            QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)
        self.shutdown(0)

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop the run and wait for its thread (window closing); its results are ignored."""
        if self.thread is not None:
            self.thread.blockSignals(True)
            self.thread.stop(timeout_ms)
            self.thread = None

    def use_model(self, name: str) -> None:
        """Make ``models/<name>`` current (rolling back or forward) and refresh predictions."""
        try:
            self.project.set_current_model(name)
        except (SegtoolError, ValueError) as error:
            self.failed.emit(str(error))
            return
        self.refresh_models()
        self.model_changed.emit(name)

    def refresh_models(self) -> None:
        """Show the project's models, the current one marked."""
        self.models_panel.set_models(list_models(self.project.models_dir),
                                     self.project.current_model)

    def _on_finished(self, outcome: object) -> None:
        self.thread = None
        record = ModelSidecar.from_dict(outcome.sidecar, outcome.model_path)
        iou = record.mean_val_iou
        self.panel.show_final_validation([record.val_iou.get(info.name)
                                          for info in self.project.classes])
        scored = "n/a" if iou is None else f"{iou:.3f}"
        name = outcome.model_path.name
        if outcome.became_current:
            message = f"New model {name}: validation IoU {scored}"
            self.use_model(name)
        elif outcome.cancelled:  # half trained and worse: not worth a place in the list
            self._discard(outcome.model_path)
            message = (f"Stopped early; the half-trained model scored {scored}, below "
                       f"{outcome.previous_model} ({outcome.previous_val_iou:.3f}): not kept")
            self.refresh_models()
        else:
            message = (f"Kept {outcome.previous_model}: it scored {outcome.previous_val_iou:.3f} "
                       f"against {scored} for the new model ({name}, kept in the model list)")
            self.refresh_models()
        if outcome.cancelled and outcome.became_current:
            message += " (stopped early)"
        self.panel.finish(message)
        self.message.emit(message, 10000)
        self.run_finished.emit(outcome)

    def _discard(self, model_path: Path) -> None:
        for path in (model_path, sidecar_path(model_path)):
            try:
                path.unlink(missing_ok=True)
            except OSError as error:
                log.warning("could not remove %s: %s", path, error)

    def _on_failed(self, message: str) -> None:
        self.thread = None
        self.panel.finish(message, failed=True)
        self.failed.emit(message)
        self.run_finished.emit(None)
