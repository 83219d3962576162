"""What every worker shares: a QThread with an abort flag and a ``stop()`` that waits."""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
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


# What TensorFlow's C++ side writes to stderr while it loads, whatever TF_CPP_MIN_LOG_LEVEL
# says (absl's "All log messages before absl::InitializeLog()", oneDNN and CUDA notices).
# The CPU-feature notice goes on over a second line of its own.
_TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:\d\d"
                       r"|To enable the following instructions: )")
_LOADING = threading.Lock()


def load_tensorflow_quietly() -> None:
    """Import TensorFlow with the process's stderr captured, on a worker thread.

    Its start-up notices ("failed call to cuInit", "Could not find cuda drivers", oneDNN,
    CPU features) go to the debug log (devices are listed here too: CUDA starts then);
    anything else written meanwhile goes on to stderr. With logging at DEBUG
    (``segtool --debug``) nothing is captured. The first call does the work.
    """
    with _LOADING:
        if "tensorflow" in sys.modules:
            return
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            import tensorflow  # noqa: F401 - loaded here so its notices show as they come
            return
        with tempfile.TemporaryFile() as capture:
            sys.stderr.flush()
            saved = os.dup(2)
            os.dup2(capture.fileno(), 2)
            try:
                import tensorflow

                tensorflow.config.list_physical_devices()  # CUDA's cuInit speaks here
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
    for line in text.splitlines():
        if _TF_NOISE.match(line):
            log.debug("tensorflow: %s", line)
        elif line.strip():
            print(line, file=sys.stderr)


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


