"""Helpers shared by the GUI benchmarks (run as ``python bench/NAME.py``, so importable)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QObject, QPointF, QSettings, Qt, QTimer
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` (0..1) percentile of ``values`` by rank; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_loop(seconds: float) -> None:
    """Let the event loop run for ``seconds`` (timers fire, signals arrive)."""
    loop = QEventLoop()
    QTimer.singleShot(max(0, round(seconds * 1000)), loop.quit)
    loop.exec()


def wait_for(condition: Callable[[], bool], timeout_s: float) -> float:
    """Run the event loop until ``condition()``; seconds waited (TimeoutError after timeout)."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout_s:
            raise TimeoutError(f"still waiting after {timeout_s:.0f} s")
        run_loop(0.01)
    return time.perf_counter() - start


def send_mouse(viewport: QObject, kind: object, position: QPointF, button: Qt.MouseButton,
               buttons: Qt.MouseButton) -> None:
    """A real mouse event (buttons held, unlike QTest.mouseMove) sent to ``viewport``."""
    event = QMouseEvent(kind, position, viewport.mapToGlobal(position), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewport, event)


def isolate_settings(root: Path) -> None:
    """QSettings and the user's data folder inside ``root``: the bench touches no real HOME."""
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(root / "settings"))
    os.environ["XDG_DATA_HOME"] = str(root / "data")


def loadavg() -> str:
    """The machine's load average, to judge how noisy a run was."""
    path = Path("/proc/loadavg")
    return path.read_text().strip() if path.exists() else str(os.getloadavg())


class ChildFailed(RuntimeError):
    """A bench's child process exited with an error (the message ends with its stderr)."""


def child_result(script: str, *args: str) -> dict:
    """Run ``script`` with ``args`` in a fresh interpreter and return the JSON object its
    last line of output holds; ChildFailed with the tail of its stderr if it fails."""
    done = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise ChildFailed(f"{Path(script).name} {' '.join(args)} failed:\n"
                          f"{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
