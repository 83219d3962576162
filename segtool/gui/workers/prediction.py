"""Predictions on a worker thread: a priority queue of images, one model kept loaded."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import Signal

from segtool.core.errors import SegtoolError
from segtool.gui.workers.base import (
    BackgroundThread,
    gui_threads,
    load_tensorflow_quietly,
    lower_this_thread_priority,
)

log = logging.getLogger(__name__)

CURRENT = 0  # priority of the image on screen
BACKGROUND = 1  # priority of the other images' stale predictions


@dataclass(order=True)
class _Request:
    priority: int
    order: int
    stem: str = field(compare=False)
    model_name: str = field(compare=False)


class PredictionThread(BackgroundThread):
    """Predicts project images with a model, one at a time, on its own thread.

    ``request(stem, model_name, priority)`` queues work; the image on screen (CURRENT)
    goes before background refreshes. Results arrive as ``prediction_ready(stem,
    model_name, classes, confidence, runner_up)`` with (H, W) uint8 arrays, (Z, H, W) for a
    volume; ``runner_up`` is None, or for a 2D image and a model of more than two classes
    ``(second, second_confidence)`` (the window's class thresholds use it). A volume is
    predicted slice by slice (``volume_progress(stem, done, total)`` after each),
    and a stop, or a request for another image on screen, cancels it between slices.
    """

    prediction_ready = Signal(str, str, object, object, object)
    failed = Signal(str, str)  # stem, message
    device_ready = Signal(str)
    volume_progress = Signal(str, int, int)

    def __init__(self, project_root: Path, parent: object | None = None) -> None:
        super().__init__(parent)
        self._project_root = Path(project_root)
        self._queue: list[_Request] = []
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._models: dict[str, tuple[object, dict]] = {}
        self._working_on: tuple[str, str] | None = None  # (stem, model) being predicted

    def request(self, stem: str, model_name: str, priority: int = CURRENT) -> None:
        """Queue a prediction of ``stem`` with ``models/<model_name>``; drops older duplicates
        (and asks nothing while that very prediction runs: a volume's next slice on screen)."""
        with self._condition:
            if self._working_on == (stem, model_name):
                return
            self._queue = [r for r in self._queue if r.stem != stem]
            heapq.heapify(self._queue)
            heapq.heappush(self._queue, _Request(priority, next(self._counter), stem, model_name))
            self._condition.notify()

    def clear_background(self) -> None:
        """Forget queued background refreshes (the current image's request stays)."""
        with self._condition:
            self._queue = [r for r in self._queue if r.priority == CURRENT]
            heapq.heapify(self._queue)

    def pending(self) -> int:
        with self._condition:
            return len(self._queue)

    def _wake(self) -> None:
        with self._condition:
            self._condition.notify_all()

    def _next_request(self) -> _Request | None:
        with self._condition:
            while not self._queue and not self.aborted():
                self._condition.wait(0.5)
            if self.aborted():
                return None
            request = heapq.heappop(self._queue)
            self._working_on = (request.stem, request.model_name)
            return request

    def run(self) -> None:  # noqa: D102 - QThread entry point
        load_tensorflow_quietly()
        from segtool.core.project import Project
        from segtool.ml.device import configure_devices
        from segtool.ml.session import predict_stem, predict_volume
        from segtool.ml.unet import model_classes

        lower_this_thread_priority()
        self.device_ready.emit(configure_devices(gui_threads()))
        while (item := self._next_request()) is not None:
            try:
                project = Project.open(self._project_root)
                model, sidecar = self._model(project, item.model_name)
                if self.aborted():
                    break
                if project.is_volume(item.stem):
                    result = predict_volume(
                        model, sidecar, project, item.stem,
                        progress=lambda done, total, stem=item.stem:
                            self.volume_progress.emit(stem, done, total),
                        cancelled=lambda stem=item.stem: self._cancel_volume(stem))
                    if result is None:
                        continue  # stopped, or the user wants another image first
                    classes, confidence = result
                    runner_up = None
                else:
                    classes, confidence, *second = predict_stem(
                        model, sidecar, project, item.stem,
                        runner_up=model_classes(model) > 2)
                    runner_up = tuple(second) or None
            except SegtoolError as error:
                self.failed.emit(item.stem, str(error))
                continue
            except Exception as error:  # a worker must report, never die silently
                log.exception("prediction of %s failed", item.stem)
                self.failed.emit(item.stem, f"prediction failed: {error}")
                continue
            finally:
                with self._condition:
                    self._working_on = None
            self.prediction_ready.emit(item.stem, item.model_name, classes, confidence,
                                       runner_up)

    def _cancel_volume(self, stem: str) -> bool:
        """Stop predicting volume ``stem``: the thread stops, or another image is on screen
        (its request waits at CURRENT priority; this volume's is queued again behind it)."""
        if self.aborted():
            return True
        with self._condition:
            waiting = [r for r in self._queue if r.priority == CURRENT and r.stem != stem]
        if waiting:
            with self._condition:
                if not any(r.stem == stem for r in self._queue):
                    model = waiting[0].model_name
                    heapq.heappush(self._queue, _Request(BACKGROUND, next(self._counter),
                                                         stem, model))
            return True
        return False

    def _model(self, project: object, name: str) -> tuple[object, dict]:
        from segtool.ml.modelfile import load_model
        from segtool.ml.session import project_channels

        if name not in self._models:
            path = project.models_dir / name  # type: ignore[attr-defined]
            self._models = {name: load_model(path, num_classes=project.num_classes,  # type: ignore[attr-defined]
                                             channels=project_channels(project))}
        return self._models[name]
