"""Garbage collection on the GUI thread only.

Python's cyclic garbage collector runs in whichever thread happens to allocate when a
generation fills up. In segtool that is often a worker thread (TensorFlow allocates a lot
while it traces a training step), and if the cycles it frees hold Qt widgets (a closed
dialog, an old menu), their C++ destructors run in that worker thread while the GUI thread
may be deleting other widgets: PySide6 then deadlocks (seen in the test suite: the training
thread destroying a QMenu while the GUI thread destroyed a QAction, each waiting for the
other). pyqtgraph's ``GarbageCollector`` answers this the same way: automatic collection is
switched off and a timer on the GUI thread collects, generation by generation, when the
allocation counts pass the usual thresholds.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 1000


class GuiThreadCollector(QObject):
    """While it exists (and until :meth:`stop`), cyclic garbage is collected by a timer on
    the thread that made it: the GUI thread."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        self._was_enabled = gc.isenabled()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        self.timer.start(interval_ms)

    def check(self) -> None:
        """Collect the generations whose counts passed their thresholds (as gc would)."""
        young, middle, old = gc.get_count()
        if young > self.thresholds[0]:
            generation = 0
            if middle > self.thresholds[1]:
                generation = 2 if old > self.thresholds[2] else 1
            gc.collect(generation)

    def stop(self) -> None:
        """Give collection back to Python (as it was before)."""
        self.timer.stop()
        if self._was_enabled:
            gc.enable()
