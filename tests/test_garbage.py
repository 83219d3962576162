"""Cyclic garbage (which may hold Qt widgets) is collected on the GUI thread only."""

from __future__ import annotations

import gc
import threading

from PySide6.QtWidgets import QWidget

from segtool.gui.garbage import GuiThreadCollector


class Holder:
    """A window-like object in a reference cycle; notes the thread that frees it."""

    def __init__(self, freed_in: list[str]) -> None:
        self.freed_in = freed_in
        self.self = self  # only the cyclic collector frees it
        self.widget = QWidget()

    def __del__(self) -> None:
        self.freed_in.append(threading.current_thread().name)


def _allocate_in_a_worker() -> None:
    def churn() -> None:
        for _ in range(20):
            _ = [[] for _ in range(gc.get_threshold()[0] * 2)]  # would trigger a collection

    worker = threading.Thread(target=churn, name="worker")
    worker.start()
    worker.join()


def test_cycles_are_freed_on_the_gui_thread_not_a_workers(qtbot):
    collector = GuiThreadCollector(interval_ms=10)
    try:
        assert not gc.isenabled()
        freed_in: list[str] = []
        Holder(freed_in)
        _allocate_in_a_worker()
        assert freed_in == []  # the worker's allocations collected nothing
        _ = [[] for _ in range(collector.thresholds[0] * 3)]  # the GUI thread allocates
        qtbot.waitUntil(lambda: freed_in == ["MainThread"], timeout=5000)
    finally:
        collector.stop()
    assert gc.isenabled()


def test_without_it_a_worker_thread_frees_them(qtbot):
    """What the collector prevents, with Python's own collection (so the test above can
    fail): the worker's allocations free the cycle in the worker."""
    assert gc.isenabled()
    gc.collect()
    freed_in: list[str] = []
    Holder(freed_in)
    _allocate_in_a_worker()
    assert freed_in == ["worker"]
