"""GrabCut in the window runs on a worker thread: busy cursor, Esc cancels, one undo step."""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import Qt, QTimer
from qt_events import drag
from window_helpers import key, square_project, window_on_fixture  # noqa: F401

from segtool.core.masks import UNLABELLED
from segtool.gui.canvas import Tool
from segtool.gui.tool_events import tool_events
from segtool.gui.workers import grabcut as grabcut_worker
from segtool.gui.workers import running_threads


def cursor_shape(window):
    return window.canvas.viewport().cursor().shape()


def test_the_window_keeps_running_while_grabcut_computes_and_esc_cancels(
        window_on, qtbot, tmp_path, monkeypatch):
    window = window_on(square_project(tmp_path / "p"))
    release = threading.Event()
    started = threading.Event()
    real = grabcut_worker.grabcut_region

    def slow_grabcut(image, box, iterations, should_stop):
        started.set()
        while not release.is_set() and not should_stop():  # as long as the user waits
            release.wait(0.01)
        return real(image, box, iterations, should_stop=should_stop)

    monkeypatch.setattr(grabcut_worker, "grabcut_region", slow_grabcut)
    key(qtbot, window, Qt.Key_G)
    assert window.canvas.tool == Tool.GRABCUT
    drag(window.canvas, [(25, 15), (45, 35), (65, 55)])
    assert started.wait(5)
    assert cursor_shape(window) == Qt.BusyCursor
    assert tool_events(window.canvas).busy
    assert "Esc cancels" in window.statusBar().currentMessage()
    ticks = []
    QTimer.singleShot(0, lambda: ticks.append("tick"))
    qtbot.waitUntil(lambda: ticks == ["tick"])  # the event loop runs meanwhile
    assert running_threads()

    key(qtbot, window, Qt.Key_Escape)
    assert cursor_shape(window) == Qt.CrossCursor
    assert not tool_events(window.canvas).busy
    assert window.statusBar().currentMessage() == "GrabCut cancelled"
    qtbot.waitUntil(lambda: not running_threads())
    qtbot.wait(20)  # anything the thread sent has been delivered
    assert (window.opened.document.mask == UNLABELLED).all()
    assert not window.opened.document.can_undo


def test_a_grabcut_box_labels_the_object_as_one_undo_step(window_on, qtbot, tmp_path):
    window = window_on(square_project(tmp_path / "p"))
    edits = []
    window.canvas.edited.connect(lambda: edits.append(1))
    key(qtbot, window, Qt.Key_G)
    drag(window.canvas, [(25, 15), (45, 35), (65, 55)])
    qtbot.waitUntil(lambda: not tool_events(window.canvas).busy)
    qtbot.waitUntil(lambda: not running_threads())
    mask = np.array(window.opened.document.mask)
    truth = np.zeros(mask.shape, bool)
    truth[20:50, 30:60] = True
    labelled = mask == 1
    assert (labelled & truth).sum() / (labelled | truth).sum() > 0.85
    assert not labelled[:15].any() and not labelled[:, :25].any()  # only inside the box
    assert edits == [1] and cursor_shape(window) == Qt.CrossCursor
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier)
    assert (window.opened.document.mask == UNLABELLED).all()  # one step undoes it all
    key(qtbot, window, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert np.array_equal(window.opened.document.mask, mask)


def test_switching_image_while_grabcut_runs_drops_its_result(window_on, qtbot, monkeypatch):
    window = window_on()
    release = threading.Event()
    real = grabcut_worker.grabcut_region

    def held_grabcut(image, box, iterations, should_stop):
        release.wait(5)
        return real(image, box, iterations)  # ignores the cancel: the result comes back

    monkeypatch.setattr(grabcut_worker, "grabcut_region", held_grabcut)
    key(qtbot, window, Qt.Key_G)
    drag(window.canvas, [(5, 5), (60, 60)])
    first = window.opened.document
    key(qtbot, window, Qt.Key_PageDown)
    assert window.current_stem == "img-2" and cursor_shape(window) == Qt.CrossCursor
    release.set()
    qtbot.waitUntil(lambda: not running_threads())
    qtbot.wait(20)
    assert (first.mask == UNLABELLED).all() and (window.opened.document.mask == UNLABELLED).all()
