"""What every worker shares: a QThread with an abort flag and a ``stop()`` that waits."""

from __future__ import annotations

import logging
import os
import threading
import weakref

from PySide6.QtCore import QThread

log = logging.getLogger(__name__)


def gui_threads() -> int:
    """TensorFlow threads when the GUI runs beside it: one core is left for the window."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) - 1)


def lower_this_thread_priority() -> None:
    """Make the calling worker thread (and threads it starts: TensorFlow's pools) yield to
    the GUI thread. On Linux the nice value is per thread and inherited by new threads."""
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except OSError:
            log.debug("could not lower the worker thread's priority")


def load_tensorflow_quietly() -> None:
    """Import TensorFlow on a worker thread without its start-up notices on the terminal
    (segtool.ml.backend captures them; they show with ``segtool --debug``)."""
    import segtool.ml.backend  # noqa: F401


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


