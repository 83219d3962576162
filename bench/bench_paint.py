"""Cost of one brush mouse-move on the canvas, and the window's memory on a 16384² image.

For each size the canvas (shown offscreen at a fixed size) gets a real press, N moves with
the left button held, and a release. Each move is timed from ``sendEvent`` to the end of
``QApplication.processEvents()``, which includes the label write, the overlay recolour and
the repaint of the changed screen area; the thread's CPU time for the same span is shown
too, as it is less disturbed by other processes on a busy machine. Printed: p50/p95/max
per move, the press/release cost, paint events per move, and the largest/smallest size
ratios (goal: p95 <= 4 ms at the largest size and no more than 1.5x the smallest). Also
the process RSS after opening each image.

``--window SIZE`` then opens a project holding one SIZE x SIZE grey PNG in the real main
window, in a fresh process, paints one stroke, and prints that process's peak RSS (goal:
under 2 GiB at 16384², the default pixel limit).

    python bench/bench_paint.py [--moves 200] [--repeats 3] [--sizes 1024 4096 8192 16384]
                                [--grey] [--window 16384]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from benchlib import isolate_settings, loadavg, percentile, send_mouse
from PySide6.QtCore import QEvent, QObject, QPointF, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from segtool.core.labels import LabelDocument  # noqa: E402
from segtool.gui.canvas import Canvas  # noqa: E402

VIEW_SIZE = (1024, 768)
BRUSH_SIZE = 15


def rss_mib(field: str = "VmRSS") -> float:
    """Resident memory of this process in MiB (Linux /proc; else peak RSS). ``VmHWM`` is
    the peak; unlike getrusage's ru_maxrss it is not inherited from the parent process."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PaintCounter(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


def test_image(size: int, grey: bool = False) -> np.ndarray:
    ramp = (np.arange(size, dtype=np.uint32) * 251 // size).astype(np.uint8)
    if grey:
        return (ramp[None, :] // 2 + ramp[:, None] // 2).astype(np.uint8)
    image = np.empty((size, size, 3), np.uint8)
    image[..., 0] = ramp[None, :]
    image[..., 1] = ramp[:, None]
    image[..., 2] = 128
    return image


def stroke(view: Canvas, moves: int, counter: PaintCounter, phase: float) -> dict[str, object]:
    """One press, ``moves`` moves along a wavy circle about the viewport centre, release."""
    centre = QPointF(view.viewport().rect().center())
    path = []
    for index in range(moves + 1):
        angle = phase + 2 * math.pi * index / moves
        radius = 200 + 30 * math.sin(8 * angle)
        path.append(centre + QPointF(radius * math.cos(angle), 0.8 * radius * math.sin(angle)))
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    start = time.perf_counter()
    send_mouse(view.viewport(), QEvent.Type.MouseButtonPress, path[0], left, left)
    QApplication.processEvents()
    press = time.perf_counter() - start
    counter.count = 0
    times, cpu_times = [], []
    for position in path[1:]:
        start, cpu_start = time.perf_counter(), time.thread_time()
        send_mouse(view.viewport(), QEvent.Type.MouseMove, position, none, left)
        QApplication.processEvents()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.thread_time() - cpu_start)
    paints = counter.count
    start = time.perf_counter()
    send_mouse(view.viewport(), QEvent.Type.MouseButtonRelease, path[-1], left, none)
    QApplication.processEvents()
    release = time.perf_counter() - start
    return {"times": times, "cpu_times": cpu_times, "press": press, "release": release,
            "paints": paints}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="strokes per size and zoom")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 8192, 16384])
    parser.add_argument("--grey", action="store_true", help="grey images instead of RGB")
    parser.add_argument("--window", type=int, metavar="SIZE",
                        help="also measure the main window's peak RSS on a SIZE² grey image")
    parser.add_argument("--child-window", nargs=2, metavar=("SIZE", "DIR"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_window:
        return window_child(int(args.child_window[0]), Path(args.child_window[1]))

    app = QApplication.instance() or QApplication(sys.argv)
    view = Canvas()
    view.resize(*VIEW_SIZE)
    view.show()
    counter = PaintCounter()
    view.viewport().installEventFilter(counter)
    view.set_brush_size(BRUSH_SIZE)
    app.processEvents()

    rows = []
    rss_lines = []
    for size in args.sizes:
        image = test_image(size, args.grey)
        rss_before = rss_mib()
        start = time.perf_counter()
        document = LabelDocument(np.full((size, size), 255, np.uint8))
        view.set_document(document, image)
        app.processEvents()
        opened = time.perf_counter() - start
        rss_lines.append(f"{size}²: RSS {rss_mib():.0f} MiB after opening "
                         f"(+{rss_mib() - rss_before:.0f} MiB for document + overlay)")
        del image
        for mode in ("100%", "fit"):
            if mode == "100%":
                view.zoom_100()
            else:
                view.fit_to_window()
            app.processEvents()
            times, cpu_times, presses, releases, paints = [], [], [], [], 0
            for repeat in range(args.repeats):
                result = stroke(view, args.moves, counter, phase=repeat * 0.7)
                times += result["times"]
                cpu_times += result["cpu_times"]
                presses.append(result["press"])
                releases.append(result["release"])
                paints += result["paints"]
            rows.append({
                "size": size, "mode": mode, "open": opened,
                "p50": statistics.median(times), "p95": percentile(times, 0.95),
                "max": max(times), "cpu50": statistics.median(cpu_times),
                "cpu95": percentile(cpu_times, 0.95), "press": statistics.median(presses),
                "release": statistics.median(releases),
                "paints": paints / (args.moves * args.repeats),
                "history": document.history_bytes,
            })
        view.set_document(None, None)
        del document

    header = (f"{'image':>7} {'zoom':>5} {'open ms':>8} {'p50 ms':>7} {'p95 ms':>7} "
              f"{'max ms':>7} {'cpu p50':>7} {'cpu p95':>7} {'press ms':>8} {'release ms':>10} "
              f"{'paints/move':>11} "
              f"{'undo KiB':>8}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['size']:>6}² {row['mode']:>5} {row['open'] * 1e3:8.0f} "
              f"{row['p50'] * 1e3:7.2f} {row['p95'] * 1e3:7.2f} {row['max'] * 1e3:7.2f} "
              f"{row['cpu50'] * 1e3:7.2f} {row['cpu95'] * 1e3:7.2f} "
              f"{row['press'] * 1e3:8.2f} {row['release'] * 1e3:10.2f} "
              f"{row['paints']:11.2f} {row['history'] / 1024:8.0f}")
    print()
    sizes = [row["size"] for row in rows]
    small, large = min(sizes), max(sizes)
    for mode in ("100%", "fit"):
        by_size = {row["size"]: row for row in rows if row["mode"] == mode}
        if small != large:
            print(f"ratio {large}²/{small}² at {mode:>4}: "
                  f"p50 {by_size[large]['p50'] / by_size[small]['p50']:.2f}x, "
                  f"p95 {by_size[large]['p95'] / by_size[small]['p95']:.2f}x; CPU time "
                  f"p50 {by_size[large]['cpu50'] / by_size[small]['cpu50']:.2f}x, "
                  f"p95 {by_size[large]['cpu95'] / by_size[small]['cpu95']:.2f}x")
    for line in rss_lines:
        print(line)
    print(f"moves per stroke {args.moves}, strokes {args.repeats}, view {VIEW_SIZE}, "
          f"brush {BRUSH_SIZE} px, {'grey' if args.grey else 'RGB'} images; timings on a "
          f"shared machine are noisy; load {loadavg()}")
    if args.window:
        view.close()
        with tempfile.TemporaryDirectory(prefix="bench-paint-") as folder:
            make_project(args.window, Path(folder))
            result = subprocess.run(
                [sys.executable, __file__, "--child-window", str(args.window), folder],
                capture_output=True, text=True, check=False)
            print(result.stdout.strip() or result.stderr.strip()[-2000:])
    return 0


def make_project(size: int, folder: Path) -> None:
    """A project in ``folder``/project holding one ``size``² grey PNG."""
    import cv2

    from segtool.core.project import Project

    source = folder / f"grey{size}.png"
    cv2.imwrite(str(source), test_image(size, grey=True), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    Project.create(folder / "project").import_images([source])


def window_child(size: int, folder: Path) -> int:
    """In a fresh process: the project of :func:`make_project` opened in the main window
    (1280x800), one brush stroke on it; prints the process's peak RSS."""
    from segtool.core.project import Project

    isolate_settings(folder)
    baseline = rss_mib("VmHWM")
    app = QApplication.instance() or QApplication(sys.argv)
    from segtool.gui.main_window import MainWindow

    start = time.perf_counter()
    window = MainWindow(Project.open(folder / "project"), ask=lambda title, question: True)
    window.resize(1280, 800)
    window.show()
    app.processEvents()
    opened = time.perf_counter() - start
    counter = PaintCounter()
    window.canvas.viewport().installEventFilter(counter)
    result = stroke(window.canvas, 50, counter, phase=0.0)
    peak = rss_mib("VmHWM")
    print(f"main window on a {size}² grey image: opened in {opened:.1f} s, one 50-move "
          f"stroke p95 {percentile(result['times'], 0.95) * 1e3:.2f} ms; peak RSS "
          f"{peak:.0f} MiB (the process before the window: {baseline:.0f} MiB)")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
