"""Training on a worker thread: progress throttled for the GUI, the outcome as a signal."""

from __future__ import annotations

import logging
import time
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

PROGRESS_INTERVAL_S = 0.2  # at most five progress reports a second reach the GUI thread


class TrainingThread(BackgroundThread):
    """Fine-tunes the project's model on a snapshot of its saved masks.

    Signals: ``progress(TrainProgress)`` (throttled), ``finished_training(TrainOutcome)``,
    ``failed(message)``, ``device_ready(description)``. ``stop()`` ends training early; the
    best model so far is still saved. The new model is *not* made current here: the window
    does that on its own Project, so two threads never write segtool.json.
    """

    progress = Signal(object)
    phase = Signal(str)  # "loading TensorFlow", "reading 3 labelled images", "training"
    finished_training = Signal(object)
    failed = Signal(str)
    device_ready = Signal(str)

    def __init__(self, project_root: Path, max_seconds: float, from_scratch: bool = False,
                 config_overrides: dict | None = None, parent: object | None = None) -> None:
        super().__init__(parent)
        self.project_root = Path(project_root)
        self.max_seconds = max_seconds
        self.created = time.monotonic()  # the press of Train: the budget counts from here
        self.from_scratch = from_scratch
        self.config_overrides = dict(config_overrides or {})
        self._last_report = 0.0
        self._training = False

    def _phase(self, text: str) -> None:
        if text == "scoring and saving":
            self._training = True  # no "training" after this
        self.phase.emit(text)

    def _report(self, progress: object) -> None:
        if not self._training:
            self._training = True
            self.phase.emit("training")
        now = time.monotonic()
        if now - self._last_report >= PROGRESS_INTERVAL_S:
            self._last_report = now
            self.progress.emit(progress)

    def run(self) -> None:  # noqa: D102 - QThread entry point
        lower_this_thread_priority()
        try:
            self.phase.emit("loading TensorFlow")
            load_tensorflow_quietly()
            from segtool.core.project import Project
            from segtool.ml.device import configure_devices
            from segtool.ml.distribute import local_distribution
            from segtool.ml.session import train_project

            device = configure_devices(gui_threads())
            # Every GPU of the host, mirrored when there are several; train_project agrees.
            self.device_ready.emit(f"{device} · {local_distribution().describe()}")
            project = Project.open(self.project_root)
            # Loading TensorFlow came out of the budget too (the panel counts it down).
            spent = time.monotonic() - self.created
            if spent >= self.max_seconds:
                raise SegtoolError(
                    f"loading TensorFlow took {spent:.1f} s of the {self.max_seconds:g} s "
                    "budget: no time was left to train, no model saved; give training more "
                    "time", self.project_root)
            outcome = train_project(
                project,
                max_seconds=self.max_seconds - spent,
                from_scratch=self.from_scratch,
                progress=self._report,
                cancel=self.aborted,
                config_overrides=self.config_overrides,
                make_current=False,
                phase=self._phase,
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
