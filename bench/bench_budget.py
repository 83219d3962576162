"""Does the window's Ctrl+T end within its budget? Press-to-finish wall time per budget.

The real :class:`MainWindow` opens (offscreen) on the demo project (which comes with labels)
in a temporary folder; Ctrl+T is pressed with each
``--budgets`` value in turn (a fresh process each, so TensorFlow's loading is counted the
way a user meets it), and the phases the Training panel shows are time-stamped from the key
press to ``run_finished``. Printed per budget: each phase's start, the wall time from the
press to the end, and the overrun (wall - budget). Goal: the whole run within the budget
plus a few seconds (saving the model and scoring the previous one come after the budget).
First, quitting the window a few seconds into a long run is timed (goal: closed within 2 s).

    python bench/bench_budget.py [--budgets 30 90] [--quit-after 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchlib import (  # noqa: E402
    ChildFailed,
    child_result,
    isolate_settings,
    loadavg,
    run_loop,
    wait_for,
)


def one_run(budget: int, folder: Path, quit_after: float | None = None) -> dict:
    """In this process: the window on a demo project, Ctrl+T with ``budget``, timings.
    With ``quit_after``, the window is closed that many seconds into training (the quit
    question answered "stop and quit") and the close is timed instead."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from segtool.core.demo import create_demo_project

    isolate_settings(folder)
    app = QApplication.instance() or QApplication(sys.argv)
    from segtool.gui.main_window import MainWindow

    window = MainWindow(create_demo_project(folder / "demo"), ask=lambda title, question: True)
    window.resize(1280, 800)
    window.show()
    app.processEvents()
    window.training_panel.budget.setValue(budget)
    phases: list[tuple[float, str]] = []
    outcomes: list[object] = []
    window.training.run_finished.connect(outcomes.append)
    pressed = time.monotonic()
    QTest.keyClick(window.canvas.viewport(), Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    thread = window.training.thread
    if thread is None:
        raise SystemExit(f"Ctrl+T did not start: {window.statusBar().currentMessage()}")
    thread.phase.connect(lambda text: phases.append((time.monotonic() - pressed, text)))
    if quit_after is not None:
        wait_for(lambda: any(text == "training" for _, text in phases), 600)
        run_loop(quit_after)
        closing = time.monotonic()
        window.close()
        closed = time.monotonic() - closing
        return {"budget": budget, "close": closed, "phases": phases,
                "visible": window.isVisible(), "running": thread.isRunning()}
    wait_for(lambda: bool(outcomes), budget + 600)
    wall = time.monotonic() - pressed
    run_loop(0.2)
    outcome = outcomes[0]
    window.close()
    return {"budget": budget, "wall": wall, "phases": phases,
            "steps": None if outcome is None else outcome.sidecar.get("steps"),
            "failed": outcome is None}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        quit_after = float(argv[2]) if len(argv) > 2 else None
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(one_run(int(argv[1]), Path(folder), quit_after)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[30, 90])
    parser.add_argument("--quit-after", type=float, default=5.0,
                        help="then quit the window this many seconds into a 300 s run")
    args = parser.parse_args(argv)
    print(f"load before: {loadavg()}")
    try:
        row = child_result(__file__, "--child", "300", str(args.quit_after))
    except ChildFailed as error:
        print(f"quit during training: {error}")
    else:
        print(f"quit {args.quit_after:.0f} s into training: the window closed in "
              f"{row['close']:.2f} s (worker still running: {row['running']})")
    for budget in args.budgets:
        try:
            row = child_result(__file__, "--child", str(budget))
        except ChildFailed as error:
            print(f"budget {budget} s: {error}")
            continue
        timeline = ", ".join(f"{text} at {at:.1f} s" for at, text in row["phases"])
        print(f"budget {budget:>4} s: wall {row['wall']:.1f} s from Ctrl+T to the end "
              f"(overrun {row['wall'] - budget:+.1f} s), {row['steps']} steps; {timeline}")
    print(f"load after: {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
