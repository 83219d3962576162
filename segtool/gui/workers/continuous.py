"""Continuous learning on a worker thread: slices of training while the user labels."""

from __future__ import annotations

import logging
import threading
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

WAIT_S = 2.0  # how often a waiting worker looks at the labels again (or sooner, when woken)


class ContinuousThread(BackgroundThread):
    """Runs a :class:`segtool.ml.continuous.ContinuousTrainer` until stopped.

    Signals: ``slice_done(SliceReport)`` after every slice, ``published(model file name)``
    when a better model was saved under models/ (the window makes it current: one writer of
    segtool.json), ``state(text)`` ("loading TensorFlow", "learning", "waiting for new
    labels", "paused"), ``device_ready(description)``, ``failed(message)`` for a problem the
    user must fix, once: a mask that does not fit (the worker then waits for the masks to
    change, reading them again only when a mask file changes), or a better model that could
    not be saved (a full disk: learning goes on, and the next better model is saved when
    there is room).
    ``pause()``/``resume()`` make room for a Ctrl+T run; ``labels_saved()`` wakes a waiting
    worker at once.
    """

    slice_done = Signal(object)
    published = Signal(str)
    state = Signal(str)
    device_ready = Signal(str)
    failed = Signal(str)

    def __init__(self, project_root: Path, config_overrides: dict | None = None,
                 slice_seconds: float | None = None, parent: object | None = None) -> None:
        super().__init__(parent)
        self.project_root = Path(project_root)
        self.config_overrides = dict(config_overrides or {})
        self.slice_seconds = slice_seconds
        self._wake_up = threading.Event()
        self._paused = threading.Event()

    def pause(self) -> None:
        """Stop training at the end of the current step until :meth:`resume`."""
        self._paused.set()

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused.is_set()

    def resume(self) -> None:
        self._paused.clear()
        self._wake_up.set()

    def labels_saved(self) -> None:
        """A mask was saved: look at the labels now rather than after the wait."""
        self._wake_up.set()

    def _wake(self) -> None:
        self._wake_up.set()

    def _wait(self) -> None:
        self._wake_up.wait(WAIT_S)
        self._wake_up.clear()

    def _interrupted(self) -> bool:
        return self.aborted() or self._paused.is_set()

    def run(self) -> None:  # noqa: D102 - QThread entry point
        lower_this_thread_priority()
        try:
            self.state.emit("loading TensorFlow")
            load_tensorflow_quietly()
            from segtool.ml.continuous import SLICE_S, ContinuousTrainer, PublishError
            from segtool.ml.device import configure_devices
            from segtool.ml.session import NothingLabelledError

            device = configure_devices(gui_threads())
            self.device_ready.emit(device)
            trainer = ContinuousTrainer(self.project_root, self.config_overrides)
            trainer.device = device
            seconds = self.slice_seconds or SLICE_S
            shown = reported = unsaved = ""
            while not self.aborted():
                if self._paused.is_set():
                    shown = self._show("paused", shown)
                    self._wait()
                    continue
                try:
                    report = trainer.run_slice(seconds, cancel=self._interrupted)
                except PublishError as error:  # a full disk: learning goes on
                    if error.problem != unsaved:  # once, until a model is saved again
                        unsaved = error.problem
                        self.failed.emit(str(error))
                    shown = self._show("learning (its last model could not be saved)", shown)
                    continue
                except NothingLabelledError:
                    shown = self._show("waiting for labels", shown)
                    self._wait()
                    continue
                except SegtoolError as error:
                    if str(error) != reported:  # once, not at every look
                        reported = str(error)
                        self.failed.emit(reported)
                    shown = self._show("waiting for the labels to be fixed", shown)
                    self._wait()
                    continue
                reported = ""
                self.slice_done.emit(report)
                if report.published is not None:
                    unsaved = ""
                    self.published.emit(report.published.name)
                if report.idle:
                    shown = self._show("waiting for new labels", shown)
                    self._wait()
                else:
                    shown = self._show("learning", shown)
        except MemoryError:
            self.failed.emit("continuous learning ran out of memory")
        except Exception as error:  # reported in the window, never a silent dead thread
            log.exception("continuous learning failed")
            self.failed.emit(f"continuous learning failed: {type(error).__name__}: {error}")

    def _show(self, text: str, shown: str) -> str:
        if text != shown:
            self.state.emit(text)
        return text
