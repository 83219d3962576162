"""The prediction layer of the window: asks the worker, caches results, shows the current one."""

from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QObject, Signal

from segtool.core.project import ImageStatus, Project
from segtool.core.uncertainty import image_uncertainty
from segtool.gui.workers import BACKGROUND, CURRENT, PredictionThread

log = logging.getLogger(__name__)

KEEP_PREDICTIONS = 8  # full-size results kept in memory; the rest keep only their uncertainty
KEEP_BYTES = 512 * 1024 * 1024  # and at most this much of them (volumes are large)


class PredictionLayer(QObject):
    """Predictions of the project's current model, computed on a worker thread.

    The thread (and TensorFlow) starts only when a prediction is first needed. Results are
    kept per image for the model that made them (the last few in full, all as a mean
    uncertainty); a new current model makes them all stale. It knows the project and which
    image is on screen (the last ``show_for``); the window shows what it emits:
    ``current_prediction(classes, confidence)`` for the image on screen (the slice on screen
    of a volume, whose prediction is made and kept whole), ``message(text)`` news and
    ``failed(text)`` problems.
    """

    updated = Signal(str)  # stem whose prediction arrived
    # (H, W) uint8 classes and confidence, and the runner-up (second, second confidence)
    # or None (see workers/prediction.py)
    current_prediction = Signal(object, object, object)
    message = Signal(str, int)  # status-bar news, shown for that many ms
    failed = Signal(str)

    def __init__(self, project: Project, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self.current_stem: str | None = None
        self.current_z: int | None = None  # the slice on screen of a volume
        self.thread: PredictionThread | None = None
        # stem -> (model name, classes, confidence, runner-up or None)
        self.results: OrderedDict[str, tuple[str, np.ndarray, np.ndarray, tuple | None]] = \
            OrderedDict()
        self.uncertainties: dict[str, tuple[str, float]] = {}
        self.device = ""
        self.closed = False

    @property
    def model_name(self) -> str | None:
        """The project's current model (the one predictions are for)."""
        return self.project.current_model

    def show_for(self, stem: str, z: int | None = None) -> None:
        """``stem`` (slice ``z`` of a volume) is on screen: emit its prediction if fresh, else
        ask the worker for it."""
        self.current_stem, self.current_z = stem, z
        cached = self.results.get(stem)
        if cached is not None and cached[0] == self.model_name:
            self._emit_current(*cached[1:])
            return
        if self.model_name is None or self.closed:
            return
        self._ensure_thread().request(stem, self.model_name, CURRENT)

    def refresh_all(self) -> None:
        """The current model changed: recompute the open image first, the others after."""
        if self.closed:
            return
        self._ensure_thread().clear_background()
        if self.current_stem is not None:
            self.show_for(self.current_stem, self.current_z)
        for stem in self.project.image_names():
            if stem != self.current_stem and self.model_name is not None:
                self._ensure_thread().request(stem, self.model_name, BACKGROUND)

    def _emit_current(self, classes: np.ndarray, confidence: np.ndarray,
                      runner_up: tuple | None = None) -> None:
        if classes.ndim == 3:  # a volume: the slice on screen
            if self.current_z is None or not 0 <= self.current_z < classes.shape[0]:
                return
            classes, confidence = classes[self.current_z], confidence[self.current_z]
            runner_up = None
        self.current_prediction.emit(classes, confidence, runner_up)

    def fresh(self, stem: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``(classes, confidence)`` of ``stem`` by the current model, if computed."""
        cached = self.results.get(stem)
        if cached is None or cached[0] != self.model_name:
            return None
        return cached[1], cached[2]

    def uncertainty(self, stem: str) -> float | None:
        """Mean uncertainty (1 - confidence) of ``stem`` under the current model, away from
        its predicted edges (see core/uncertainty.py)."""
        entry = self.uncertainties.get(stem)
        if entry is None or entry[0] != self.model_name:
            return None
        return entry[1]

    def least_certain(self, exclude: str | None = None) -> str | None:
        """The not-reviewed image the current model is least sure of (None if none known)."""
        project = self.project
        candidates = [
            (value, stem) for stem in project.image_names()
            if stem != exclude and project.status(stem) not in
            (ImageStatus.REVIEWED, ImageStatus.UNREADABLE)
            and (value := self.uncertainty(stem)) is not None
        ]
        # Ties go to the earlier image in the list (max keeps the first of equal values).
        return max(candidates, key=lambda pair: pair[0])[1] if candidates else None

    def _ensure_thread(self) -> PredictionThread:
        if self.thread is None:
            self.thread = PredictionThread(self.project.root)
            self.thread.prediction_ready.connect(self._on_ready)
            self.thread.failed.connect(self._on_failed)
            self.thread.device_ready.connect(self._on_device)
            self.thread.volume_progress.connect(self._on_volume_progress)
            self.thread.start(PredictionThread.Priority.LowPriority)
        return self.thread

    def _on_ready(self, stem: str, model_name: str, classes: np.ndarray,
                  confidence: np.ndarray, runner_up: tuple | None = None) -> None:
        self.results[stem] = (model_name, classes, confidence, runner_up)
        self.results.move_to_end(stem)
        while len(self.results) > 1 and (
                len(self.results) > KEEP_PREDICTIONS
                or sum(sum(a.nbytes for a in (c, p, *(r or ())))
                       for _, c, p, r in self.results.values()) > KEEP_BYTES):
            self.results.popitem(last=False)
        self.uncertainties[stem] = (model_name, image_uncertainty(classes, confidence))
        left = self.thread.pending() if self.thread is not None else 0
        if left:
            self.message.emit(f"Updating predictions: {left} image(s) left", 3000)
        if stem == self.current_stem and model_name == self.model_name:
            self._emit_current(classes, confidence, runner_up)
        self.updated.emit(stem)

    def _on_failed(self, stem: str, message: str) -> None:
        self.failed.emit(message)

    def _on_volume_progress(self, stem: str, done: int, total: int) -> None:
        self.message.emit(f"Predicting {stem}: slice {done} / {total}", 2000)

    def _on_device(self, device: str) -> None:
        self.device = device
        self.message.emit(f"Model runs on {device}", 5000)

    def shutdown(self) -> None:
        """Stop the worker and wait for it; no new one starts after this."""
        self.closed = True
        if self.thread is not None:
            self.thread.blockSignals(True)
            self.thread.stop()
            self.thread = None
