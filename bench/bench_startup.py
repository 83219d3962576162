"""Time to the first window against ``import tensorflow``, each in fresh interpreters.

Every sample is a new ``python`` process given the wall-clock time at which it was launched
(``time.time()`` in argv); it reports ``time.time()`` minus that once it reaches its goal, so
interpreter start-up is included and interpreter tear-down is not. Rows:

* ``python -c pass``: the bare interpreter, the floor under both others.
* ``import tensorflow``: the baseline, ``python -c "import tensorflow"``.
* ``first window``: ``segtool.gui.app.application()``, ``MainWindow(Project.open(demo))``,
  ``show()``, then ``QApplication.processEvents()`` until the window is exposed and the canvas
  has had its first paint event with the first image of the demo project loaded
  (``QT_QPA_PLATFORM=offscreen``). The child also reports whether ``tensorflow`` is in
  ``sys.modules`` at that point (it must not be: the window opens without TensorFlow).

The demo project (6 images, 512 x 512, 16-bit) is created once in a temporary folder before
any timing; QSettings and the data folder point into that folder too, so nothing of the
user's and nothing in the repository is written. Runs are interleaved (one of each per
round) after one discarded warm-up round, and the median of ``--repeats`` rounds is shown.

    python bench/bench_startup.py [--repeats 5]

On a shared machine the figures move with the load; the ratio moves less than the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_CODE = "import sys, time; print(time.time() - float(sys.argv[1]))"

TENSORFLOW_CODE = (
    "import sys, time; import tensorflow; print(time.time() - float(sys.argv[1]))"
)

WINDOW_CODE = """
import json, sys, time
launched, root = float(sys.argv[1]), sys.argv[2]
from PySide6.QtCore import QEvent, QObject
from segtool.core.project import Project
from segtool.gui.app import application
from segtool.gui.main_window import MainWindow


class PaintSeen(QObject):
    def __init__(self):
        super().__init__()
        self.seen = False

    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint:
            self.seen = True
        return False


app = application()
window = MainWindow(Project.open(root))
painted = PaintSeen()
window.canvas.viewport().installEventFilter(painted)
window.show()
give_up = time.monotonic() + 60
while not (window.windowHandle().isExposed() and painted.seen):
    app.processEvents()
    if time.monotonic() > give_up:
        sys.exit("the window was never exposed and painted")
seconds = time.time() - launched
shown = window.canvas.display_array
print(json.dumps({
    "seconds": seconds,
    "tensorflow_loaded": "tensorflow" in sys.modules,
    "stem": window.current_stem,
    "shape": None if shown is None else list(shown.shape),
}))
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    return parser.parse_args(argv)


def launch(code: str, args: list[str], env: dict[str, str]) -> str:
    """Run ``python -c code <launch time> args...`` and return its last stdout line."""
    launched = time.time()
    result = subprocess.run(
        [sys.executable, "-c", code, repr(launched), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"child failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="segtool-bench-startup-") as scratch:
        folder = Path(scratch)
        env = dict(os.environ)
        env.update(
            QT_QPA_PLATFORM="offscreen",
            XDG_CONFIG_HOME=str(folder / "config"),
            XDG_DATA_HOME=str(folder / "data"),
        )
        from segtool.core.demo import create_demo_project

        project = create_demo_project(folder / "demo")
        print(f"demo project: {len(project.image_names())} images, created before timing")

        samples: dict[str, list[float]] = {"bare": [], "tensorflow": [], "window": []}
        tensorflow_seen = []
        details: dict[str, object] = {}
        for round_index in range(args.repeats + 1):  # round 0 warms the file cache
            bare = float(launch(BARE_CODE, [], env))
            tensorflow = float(launch(TENSORFLOW_CODE, [], env))
            details = json.loads(launch(WINDOW_CODE, [str(project.root)], env))
            if details["shape"] is None:
                raise RuntimeError("the window opened without an image on the canvas")
            if round_index == 0:
                continue
            samples["bare"].append(bare)
            samples["tensorflow"].append(tensorflow)
            samples["window"].append(float(details["seconds"]))
            tensorflow_seen.append(bool(details["tensorflow_loaded"]))
            print(f"round {round_index}: bare {bare:.3f} s, import tensorflow "
                  f"{tensorflow:.3f} s, first window {details['seconds']:.3f} s", flush=True)

    medians = {name: statistics.median(values) for name, values in samples.items()}
    rows = [
        ("python -c pass", "bare"),
        ("import tensorflow (baseline)", "tensorflow"),
        ("first window, image shown", "window"),
    ]
    print()
    print(f"{'run (' + str(args.repeats) + ' rounds)':<30} {'median s':>9} {'min s':>7} "
          f"{'max s':>7} {'/ import tf':>11}")
    for label, key in rows:
        values = samples[key]
        ratio = medians[key] / medians["tensorflow"]
        print(f"{label:<30} {medians[key]:>9.3f} {min(values):>7.3f} {max(values):>7.3f} "
              f"{ratio:>11.2f}")
    print()
    print(f"first image shown: {details['stem']} {details['shape']}")
    print(f"'tensorflow' in sys.modules when the window was up: {any(tensorflow_seen)} "
          f"(in {sum(tensorflow_seen)} of {len(tensorflow_seen)} rounds)")
    print(f"window / import tensorflow: {medians['window'] / medians['tensorflow']:.2f}")
    return 1 if any(tensorflow_seen) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
