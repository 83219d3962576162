"""The one bridge between Qt threads and TensorFlow.

Each worker is a QThread with explicit signals, an abort flag checked between steps and a
``stop()`` that waits. ``segtool.ml`` (and so TensorFlow) is imported inside ``run()``, on the
worker's thread, never when the window opens.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QThread, Signal

from segtool.core.errors import SegtoolError

log = logging.getLogger(__name__)

CURRENT = 0  # priority of the image on screen
BACKGROUND = 1  # priority of the other images' stale predictions
PROGRESS_INTERVAL_S = 0.2  # at most five progress reports a second reach the GUI thread


def gui_threads() -> int:
    """TensorFlow threads when the GUI runs beside it: one core is left for the window."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) - 1)


def _lower_this_thread_priority() -> None:
    """Make the calling worker thread (and threads it starts: TensorFlow's pools) yield to
    the GUI thread. On Linux the nice value is per thread and inherited by new threads."""
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except OSError:
            log.debug("could not lower the worker thread's priority")


_THREADS: weakref.WeakSet[BackgroundThread] = weakref.WeakSet()
_ALIVE: set[BackgroundThread] = set()  # strong references: Qt aborts if a running QThread dies


def running_threads() -> list[BackgroundThread]:
    """Worker threads still running (a test fixture fails any test that leaves one)."""
    return [thread for thread in list(_THREADS) if thread.isRunning()]


class BackgroundThread(QThread):
    """A QThread with an abort flag and a ``stop()`` that waits for the thread to end."""

    def __init__(self, parent: object | None = None) -> None:
        super().__init__(parent)
        self._abort = threading.Event()
        _THREADS.add(self)
        self.finished.connect(self._forget)

    def start(self, priority: QThread.Priority = QThread.Priority.InheritPriority) -> None:
        """Start the thread; it is kept alive until it has finished, whoever drops it."""
        _ALIVE.add(self)
        super().start(priority)

    def _forget(self) -> None:
        _ALIVE.discard(self)

    def aborted(self) -> bool:
        """True once ``stop()`` was asked; checked by the worker between steps."""
        return self._abort.is_set()

    def stop(self, timeout_ms: int = 10000) -> bool:
        """Ask the worker to end and wait for it; True when it has ended."""
        self._abort.set()
        self._wake()
        return self.wait(timeout_ms) if self.isRunning() else True

    def _wake(self) -> None:
        """Wake a worker waiting for work (overridden by queue-driven workers)."""


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
    model_name, classes, confidence)`` with (H, W) uint8 arrays.
    """

    prediction_ready = Signal(str, str, object, object)
    failed = Signal(str, str)  # stem, message
    device_ready = Signal(str)

    def __init__(self, project_root: Path, parent: object | None = None) -> None:
        super().__init__(parent)
        self._project_root = Path(project_root)
        self._queue: list[_Request] = []
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._models: dict[str, tuple[object, dict]] = {}

    def request(self, stem: str, model_name: str, priority: int = CURRENT) -> None:
        """Queue a prediction of ``stem`` with ``models/<model_name>``; drops older duplicates."""
        with self._condition:
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
            return heapq.heappop(self._queue)

    def run(self) -> None:  # noqa: D102 - QThread entry point
        from segtool.core.project import Project
        from segtool.ml.device import configure_devices
        from segtool.ml.session import predict_stem

        _lower_this_thread_priority()
        self.device_ready.emit(configure_devices(gui_threads()))
        while (item := self._next_request()) is not None:
            try:
                project = Project.open(self._project_root)
                model, sidecar = self._model(project, item.model_name)
                if self.aborted():
                    break
                classes, confidence = predict_stem(model, sidecar, project, item.stem)
            except SegtoolError as error:
                self.failed.emit(item.stem, str(error))
                continue
            except Exception as error:  # a worker must report, never die silently
                log.exception("prediction of %s failed", item.stem)
                self.failed.emit(item.stem, f"prediction failed: {error}")
                continue
            self.prediction_ready.emit(item.stem, item.model_name, classes, confidence)

    def _model(self, project: object, name: str) -> tuple[object, dict]:
        from segtool.ml.modelfile import load_model
        from segtool.ml.session import project_channels

        if name not in self._models:
            path = project.models_dir / name  # type: ignore[attr-defined]
            self._models = {name: load_model(path, num_classes=project.num_classes,  # type: ignore[attr-defined]
                                             channels=project_channels(project))}
        return self._models[name]


class TrainingThread(BackgroundThread):
    """Fine-tunes the project's model on a snapshot of its saved masks.

    Signals: ``progress(TrainProgress)`` (throttled), ``finished_training(TrainOutcome)``,
    ``failed(message)``, ``device_ready(description)``. ``stop()`` ends training early; the
    best model so far is still saved. The new model is *not* made current here: the window
    does that on its own Project, so two threads never write segtool.json.
    """

    progress = Signal(object)
    finished_training = Signal(object)
    failed = Signal(str)
    device_ready = Signal(str)

    def __init__(self, project_root: Path, max_seconds: float, from_scratch: bool = False,
                 config_overrides: dict | None = None, parent: object | None = None) -> None:
        super().__init__(parent)
        self.project_root = Path(project_root)
        self.max_seconds = max_seconds
        self.from_scratch = from_scratch
        self.config_overrides = dict(config_overrides or {})
        self._last_report = 0.0

    def _report(self, progress: object) -> None:
        now = time.monotonic()
        if now - self._last_report >= PROGRESS_INTERVAL_S:
            self._last_report = now
            self.progress.emit(progress)

    def run(self) -> None:  # noqa: D102 - QThread entry point
        _lower_this_thread_priority()
        try:
            from segtool.core.project import Project
            from segtool.ml.device import configure_devices
            from segtool.ml.session import train_project

            self.device_ready.emit(configure_devices(gui_threads()))
            outcome = train_project(
                Project.open(self.project_root),
                max_seconds=self.max_seconds,
                from_scratch=self.from_scratch,
                progress=self._report,
                cancel=self.aborted,
                config_overrides=self.config_overrides,
                make_current=False,
            )
        except SegtoolError as error:
            self.failed.emit(str(error))
        except MemoryError:
            self.failed.emit("training ran out of memory: label a smaller area or close other "
                             "programs")
        except Exception as error:  # reported in the window, never a silent dead thread
            log.exception("training failed")
            name = type(error).__name__
            if "ResourceExhausted" in name:
                self.failed.emit("training ran out of memory on the device")
            else:
                self.failed.emit(f"training failed: {name}: {error}")
        else:
            self.finished_training.emit(outcome)
