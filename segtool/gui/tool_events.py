"""What a canvas's tools tell the window, and the background work they start.

The tools act on the canvas's document and never see the window; what the user should
read (a one-line message) and whether a tool is busy go out through the canvas's one
:class:`ToolEvents`, a child object of the canvas (``tool_events(canvas)``). Work a tool
runs on a worker thread (GrabCut) is tracked here so the window can stop it on closing.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from segtool.gui.workers.base import BackgroundThread


class ToolEvents(QObject):
    """News from one canvas's tools.

    Signals: ``message(text, milliseconds)`` for the status bar (0 = until the next one),
    ``busy_changed(bool)`` while a tool computes in the background. ``background``: run
    slow tools (GrabCut) on a worker thread; off for a bare canvas, whose tools then finish
    before the mouse release returns; the window turns it on.
    """

    message = Signal(str, int)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.background = False
        self._threads: list[BackgroundThread] = []
        self._busy = False

    @property
    def busy(self) -> bool:
        """True while a tool's background work runs for the user (not yet cancelled)."""
        return self._busy

    def set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    def track(self, thread: BackgroundThread) -> None:
        """Remember ``thread`` until it finishes (``shutdown`` stops it)."""
        self._threads.append(thread)
        thread.finished.connect(self._forget_finished)

    def _forget_finished(self) -> None:
        self._threads = [thread for thread in self._threads if thread.isRunning()]

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop every background job and wait for its thread (the window is closing)."""
        for thread in list(self._threads):
            thread.blockSignals(True)
            thread.stop(timeout_ms)
        self._threads = []
        self.set_busy(False)


def tool_events(canvas: QObject) -> ToolEvents:
    """The :class:`ToolEvents` of ``canvas`` (made on first use, a child of the canvas)."""
    events = canvas.findChild(ToolEvents)
    if events is None:
        events = ToolEvents(canvas)
    return events
