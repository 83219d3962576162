"""Continuous learning from the window: a toggle, a worker, and its models made current."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction

from segtool.gui import settings as keys
from segtool.gui.training import TrainingController
from segtool.gui.training_panel import TrainingPanel
from segtool.gui.workers.continuous import ContinuousThread

log = logging.getLogger(__name__)


class ContinuousController(QObject):
    """Keeps a :class:`ContinuousThread` running while the toggle is on.

    The toggle is ``action`` (toolbar and Train menu) and the panel's check box, kept in
    step; its state is remembered in the settings and restored by :meth:`restore`. A model
    the worker publishes is made current through the training controller (as a Ctrl+T run's
    would be), so predictions refresh and the model list shows it. A Ctrl+T run pauses the
    worker until it ends.
    """

    message = Signal(str, int)
    failed = Signal(str)

    def __init__(self, training: TrainingController, panel: TrainingPanel, action: QAction,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.training = training
        self.panel = panel
        self.action = action
        self.thread: ContinuousThread | None = None
        self.config_overrides: dict = {}
        self.slice_seconds: float | None = None
        action.toggled.connect(self.set_enabled)
        panel.continuous.toggled.connect(action.setChecked)
        training.run_started.connect(self._pause)
        training.run_finished.connect(lambda _outcome: self._resume())

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.isRunning()

    def restore(self) -> None:
        """Turn continuous learning on if it was on when the window last closed."""
        if keys.read_bool(keys.CONTINUOUS, False):
            self.action.setChecked(True)

    def set_enabled(self, on: bool) -> None:
        """Start or stop continuous learning (and remember the choice)."""
        keys.settings().setValue(keys.CONTINUOUS, bool(on))
        self.panel.continuous.setChecked(on)
        if on and self.thread is None:
            thread = ContinuousThread(self.training.project.root, self.config_overrides,
                                      self.slice_seconds)
            thread.state.connect(self.panel.set_continuous_state)
            thread.slice_done.connect(self._slice_done)
            thread.device_ready.connect(self.panel.set_device)
            thread.published.connect(self._adopt)
            thread.failed.connect(self.failed.emit)
            self.thread = thread
            if self.training.running:
                thread.pause()
            thread.start()
            self.message.emit("Continuous learning on: the model learns while you label", 4000)
        elif not on and self.thread is not None:
            self.shutdown(0)
            self.panel.set_continuous_state("off")
            self.message.emit("Continuous learning off", 3000)

    def labels_saved(self) -> None:
        """A mask was saved: the worker looks at the labels now."""
        if self.thread is not None:
            self.thread.labels_saved()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop the worker (its current step ends; nothing half-written stays)."""
        thread, self.thread = self.thread, None
        if thread is not None:
            thread.blockSignals(True)
            thread.stop(timeout_ms)

    def _slice_done(self, report: object) -> None:
        project = self.training.project
        self.panel.show_continuous_slice(report, [c.name for c in project.classes],
                                         project.colours)

    def _adopt(self, name: str) -> None:
        self.training.use_model(name)
        self.message.emit(f"Continuous learning: new model {name}", 4000)

    def _pause(self) -> None:
        if self.thread is not None:
            self.thread.pause()

    def _resume(self) -> None:
        if self.thread is not None:
            self.thread.resume()
