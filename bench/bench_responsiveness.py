"""Does the window stay responsive while a model trains? Idle against training, one run.

The real :class:`MainWindow` opens (``QT_QPA_PLATFORM=offscreen``) on the demo project
(6 images, 512 x 512, 16-bit) in a temporary folder; QSettings and the data folder point
there too. A 5 ms ``Qt.PreciseTimer`` runs throughout and records its lateness (time since
its previous tick minus 5 ms). Every second the canvas gets one brush stroke: a real press,
``--moves`` mouse moves with the left button held (about 4 ms apart, the event loop running
in between) and a release, sent as QMouseEvents to ``window.canvas.viewport()``; each move
is timed from ``sendEvent`` to the end of ``processEvents`` as in bench_paint.py, but here
the window's whole reaction counts (label write, overlay, repaint, crash journal).

Phases, in one process:

* idle: ``--seconds`` of strokes, then ``--saves`` times a short stroke and Ctrl+S, timing
  until the mask file on disk has changed (inode, mtime or size);
* start-up: Ctrl+T with the default model (no config overrides) and a budget of
  ``--budget`` s, strokes go on until the first progress report; TensorFlow's import and
  the graph tracing happen here, on the worker thread; the worst lateness in the first 5 s
  after Ctrl+T is reported apart;
* training: the same as idle, with the model training;
* stop: ``training.stop()`` until ``run_finished`` (validation and saving of the model);
* predicting: strokes go on while the new model predicts every image in the background,
  until all six predictions have arrived.

Printed: timer lateness p50/p95/p99/max per phase, brush-move p50/p95 and the training/idle
ratio, save-to-disk latency, CPU per thread group (the GUI thread, the lowered-priority
worker threads and any other), and the TensorFlow threads as the training panel shows them.
Goals: p99 lateness <= 50 ms and brush p95 <= 2x idle during training; a save reaches the
disk within 0.5 s.

    python bench/bench_responsiveness.py [--seconds 10] [--training-seconds 15]
    python bench/bench_responsiveness.py --continuous   (continuous learning instead)

Writes only into a temporary folder. On a shared 2-core machine the figures move with the
load average, which is printed before and after.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchlib import isolate_settings, loadavg, percentile, run_loop, send_mouse, wait_for  # noqa: E402
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

TICK_MS = 5
STARTUP_WINDOW_S = 5.0
BRUSH_SIZE = 15
MOVE_GAP_MS = 4
LATENESS_GOAL_S = 0.050
BRUSH_RATIO_GOAL = 2.0
SAVE_GOAL_S = 0.5


class LatenessProbe(QObject):
    """A precise 5 ms timer; records ``(time, lateness)`` per tick, lateness in seconds."""

    def __init__(self, interval_ms: int = TICK_MS) -> None:
        super().__init__()
        self.interval = interval_ms / 1000
        self.samples: list[tuple[float, float]] = []
        self._last: float | None = None
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._last = None
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.samples.append((now, max(0.0, now - self._last - self.interval)))
        self._last = now

    def between(self, start: float, end: float) -> list[float]:
        return [late for when, late in self.samples if start <= when <= end]


@dataclass
class Phase:
    """What one phase measured (seconds throughout)."""

    name: str
    start: float = 0.0
    end: float = 0.0
    moves: list[float] = field(default_factory=list)
    releases: list[float] = field(default_factory=list)
    saves: list[float] = field(default_factory=list)
    gui_cpu: float = 0.0
    threads: dict[str, float] = field(default_factory=dict)


def thread_cpu() -> dict[int, tuple[int, float]]:
    """``{tid: (nice, cpu seconds)}`` for every thread of this process (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    result: dict[int, tuple[int, float]] = {}
    tasks = Path("/proc/self/task")
    if not tasks.exists():
        return result
    for task in tasks.iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        fields = text[text.rindex(")") + 2:].split()
        result[int(task.name)] = (int(fields[16]), (int(fields[11]) + int(fields[12])) / ticks)
    return result


def cpu_by_group(before: dict[int, tuple[int, float]],
                 after: dict[int, tuple[int, float]]) -> dict[str, float]:
    """CPU seconds spent between two snapshots: GUI thread, niced threads, other threads,
    and ``busy niced`` = how many niced threads used more than 0.1 s."""
    groups = {"gui": 0.0, "niced": 0.0, "other": 0.0, "busy niced": 0.0}
    main = os.getpid()
    for tid, (nice, cpu) in after.items():
        used = cpu - before.get(tid, (nice, 0.0))[1]
        if tid == main:
            groups["gui"] += used
        elif nice > 0:
            groups["niced"] += used
            groups["busy niced"] += used > 0.1
        else:
            groups["other"] += used
    return groups


def stroke(window: object, index: int, moves: int) -> tuple[list[float], float]:
    """One brush stroke of ``moves`` moves on the open image.

    Returns each move's seconds and the release's (which ends the undo step and appends
    the stroke to the crash journal).

    Strokes wander over the image (a wavy circle about a centre that moves with ``index``)
    and alternate between the two classes, so every stroke changes the mask.
    """
    canvas = window.canvas
    viewport = canvas.viewport()
    window.select_class(index % 2 if window.project.num_classes > 1 else 0)
    height, width = window.opened.document.shape
    centre_x = width * (0.3 + 0.4 * ((index * 0.37) % 1.0))
    centre_y = height * (0.3 + 0.4 * ((index * 0.61) % 1.0))
    radius = min(width, height) * 0.12
    points = []
    for step in range(moves + 1):
        angle = index * 0.9 + 2 * math.pi * step / moves
        wobble = radius * (1 + 0.15 * math.sin(6 * angle))
        points.append(QPointF(canvas.image_to_viewport(centre_x + wobble * math.cos(angle),
                                                       centre_y + wobble * math.sin(angle))))
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    send_mouse(viewport, QEvent.Type.MouseButtonPress, points[0], left, left)
    QApplication.processEvents()
    times = []
    for position in points[1:]:
        run_loop(MOVE_GAP_MS / 1000)
        start = time.perf_counter()
        send_mouse(viewport, QEvent.Type.MouseMove, position, none, left)
        QApplication.processEvents()
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    send_mouse(viewport, QEvent.Type.MouseButtonRelease, points[-1], left, none)
    QApplication.processEvents()
    return times, time.perf_counter() - start


def file_state(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size


def timed_save(window: object, index: int, timeout_s: float = 10.0) -> float:
    """Paint a short stroke, press Ctrl+S; seconds until the mask file on disk changed."""
    stroke(window, index, moves=20)
    path = window.project.mask_path(window.current_stem)
    before = file_state(path)
    start = time.perf_counter()
    QTest.keyClick(window.canvas.viewport(), Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    while file_state(path) == before:
        if time.perf_counter() - start > timeout_s:
            return float("inf")
        QApplication.processEvents()
        time.sleep(0.0005)
    return time.perf_counter() - start


def measure(phase: Phase, window: object, seconds: float, moves: int, saves: int,
            counter: list[int], until: Callable[[], bool] | None = None) -> Phase:
    """Strokes once a second for ``seconds`` (or until ``until()``), then ``saves`` saves."""
    cpu_before, gui_before = thread_cpu(), time.thread_time()
    phase.start = time.perf_counter()
    while True:
        cycle = time.perf_counter()
        if until is not None and until():
            break
        if until is None and cycle - phase.start >= seconds:
            break
        if until is not None and cycle - phase.start >= seconds:
            raise TimeoutError(f"{phase.name}: nothing happened within {seconds:.0f} s")
        times, release = stroke(window, counter[0], moves)
        phase.moves += times
        phase.releases.append(release)
        counter[0] += 1
        while time.perf_counter() < cycle + 1.0 and not (until is not None and until()):
            run_loop(min(0.05, cycle + 1.0 - time.perf_counter()))
    for _ in range(saves):
        phase.saves.append(timed_save(window, counter[0]))
        counter[0] += 1
        run_loop(0.5)
    phase.end = time.perf_counter()
    phase.gui_cpu = time.thread_time() - gui_before
    phase.threads = cpu_by_group(cpu_before, thread_cpu())
    return phase


def tensorflow_threads() -> str:
    """Thread settings TensorFlow reports, read without importing it on this thread."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return "TensorFlow not loaded"
    threading_config = tf.config.threading
    return (f"intra-op {threading_config.get_intra_op_parallelism_threads()}, "
            f"inter-op {threading_config.get_inter_op_parallelism_threads()} "
            "(0 = one per core)")


def open_window(root: Path) -> object:
    """Temporary QSettings and data folder, the demo project, the shown MainWindow."""
    isolate_settings(root)
    from segtool.core.demo import create_demo_project
    from segtool.gui.app import application
    from segtool.gui.main_window import MainWindow

    application()
    project = create_demo_project(root / "demo")
    window = MainWindow(project, ask=lambda title, question: True)
    window.resize(1280, 800)
    window.show()
    QApplication.processEvents()
    window.canvas.set_brush_size(BRUSH_SIZE)
    window.canvas.setFocus()
    run_loop(0.5)
    return window


def lateness_row(name: str, values: list[float]) -> str:
    cells = " ".join(f"{percentile(values, q) * 1e3:8.1f}" for q in (0.5, 0.95, 0.99))
    worst = max(values) * 1e3 if values else float("nan")
    return f"{name:<22} {len(values):>6} {cells} {worst:8.1f}"


def cpu_row(phase: Phase) -> str:
    span = max(phase.end - phase.start, 1e-9)
    groups = phase.threads
    return (f"{phase.name:<22} {span:6.1f} {groups['gui'] / span * 100:7.0f}% "
            f"{groups['niced'] / span * 100:7.0f}% {groups['other'] / span * 100:7.0f}% "
            f"{groups['busy niced']:>8.0f}")


def start_idle(scratch: Path, args: argparse.Namespace
               ) -> tuple[object, LatenessProbe, list[int], Phase]:
    """The window on the demo project in ``scratch``, the lateness probe running, and the
    idle phase measured: ``(window, probe, stroke counter, idle phase)``."""
    window = open_window(scratch)
    probe = LatenessProbe()
    probe.start()
    counter = [0]
    run_loop(1.0)
    idle = measure(Phase("idle"), window, args.seconds, args.moves, args.saves, counter)
    return window, probe, counter, idle


def continuous_main(args: argparse.Namespace) -> int:
    """Idle, then continuous learning on (its start-up until the first slice, then
    ``--training-seconds`` of strokes and saves, each save joining the training data)."""
    load_before = loadavg()
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        window, probe, counter, idle = start_idle(Path(scratch), args)
        reports: list[object] = []
        published: list[str] = []
        started = time.perf_counter()
        QTest.keyClick(window.canvas.viewport(), Qt.Key.Key_L,
                       Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
        thread = window.continuous.thread
        if thread is None:
            raise SystemExit("Ctrl+Shift+L did not start continuous learning")
        thread.slice_done.connect(reports.append)
        thread.published.connect(published.append)
        startup = measure(Phase("start-up"), window, 600.0, args.moves, 0, counter,
                          until=lambda: bool(reports))
        learning = measure(Phase("continuous"), window, args.training_seconds, args.moves,
                           args.saves, counter)
        state = window.training_panel.continuous_state.text()
        probe.timer.stop()
        window.close()
    late = probe.between(learning.start, learning.end)
    header = f"{'timer lateness (ms)':<22} {'ticks':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}"
    print(header)
    print("-" * len(header))
    for phase in (idle, startup, learning):
        print(lateness_row(phase.name, probe.between(phase.start, phase.end)))
    print()
    for phase in (idle, startup, learning):
        if phase.moves:
            print(f"brush {phase.name:<16} p50 {statistics.median(phase.moves) * 1e3:6.2f} ms, "
                  f"p95 {percentile(phase.moves, 0.95) * 1e3:6.2f} ms, "
                  f"p95/idle {percentile(phase.moves, 0.95) / percentile(idle.moves, 0.95):.2f}")
    for phase in (idle, learning):
        print(cpu_row(phase))
    ratio = percentile(learning.moves, 0.95) / percentile(idle.moves, 0.95)
    print(f"first slice {startup.end - started:.1f} s after Ctrl+Shift+L; {len(reports)} slices, "
          f"{reports[-1].total_steps if reports else 0} steps, {len(published)} models "
          f"published; panel: {state!r}")
    print(f"goals while learning: p99 lateness {percentile(late, 0.99) * 1e3:.1f} ms "
          f"(<= {LATENESS_GOAL_S * 1e3:.0f}: "
          f"{'ok' if percentile(late, 0.99) <= LATENESS_GOAL_S else 'MISSED'}); brush p95 "
          f"{ratio:.2f}x idle (<= {BRUSH_RATIO_GOAL:.0f}x: "
          f"{'ok' if ratio <= BRUSH_RATIO_GOAL else 'MISSED'})")
    print(f"load average before {load_before}, after {loadavg()}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="idle phase length")
    parser.add_argument("--training-seconds", type=float, default=15.0)
    parser.add_argument("--moves", type=int, default=100, help="mouse moves per stroke")
    parser.add_argument("--saves", type=int, default=5, help="Ctrl+S timings per phase")
    parser.add_argument("--budget", type=int, default=600,
                        help="training budget in s (training is stopped after measuring)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="folder for the temporary project (default: the system's)")
    parser.add_argument("--continuous", action="store_true",
                        help="measure continuous learning (Ctrl+Shift+L) instead of Ctrl+T")
    args = parser.parse_args(argv)
    if args.continuous:
        return continuous_main(args)

    load_before = loadavg()
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        window, probe, counter, idle = start_idle(Path(scratch), args)

        outcomes: list[object] = []
        window.training.run_finished.connect(outcomes.append)
        window.training_panel.budget.setValue(args.budget)
        if window.training.config_overrides:
            raise SystemExit(f"expected the default model, got {window.training.config_overrides}")
        started = time.perf_counter()
        QTest.keyClick(window.canvas.viewport(), Qt.Key.Key_T,
                       Qt.KeyboardModifier.ControlModifier)
        key_cost = time.perf_counter() - started
        if not window.training.running:
            raise SystemExit(f"Ctrl+T did not start training: "
                             f"{window.statusBar().currentMessage()}")
        startup = measure(Phase("start-up"), window, 600.0, args.moves, 0, counter,
                          until=lambda: window.training_panel.curve_points() > 0 or outcomes)
        if outcomes:
            raise SystemExit(f"training ended before its first progress report: "
                             f"{window.training_panel.message.text()}")
        first_progress = startup.end - started
        training = measure(Phase("training"), window, args.training_seconds, args.moves,
                           args.saves, counter)
        still_running = window.training.running
        points = window.training_panel.curve_points()
        tf_threads = tensorflow_threads()

        stopping = Phase("stop")
        cpu_before = thread_cpu()
        stopping.start = time.perf_counter()
        window.training.stop()
        wait_for(lambda: bool(outcomes), 300.0)
        stopping.end = time.perf_counter()
        stopping.threads = cpu_by_group(cpu_before, thread_cpu())
        outcome = outcomes[0]
        device_text = window.training_panel.device_label.text()
        stems = window.project.image_names()
        predicting = measure(Phase("predicting"), window, 600.0, args.moves, 0, counter,
                             until=lambda: all(window.predictions.fresh(stem) is not None
                                               for stem in stems))
        probe.timer.stop()
        started_close = time.perf_counter()
        window.close()
        close_s = time.perf_counter() - started_close
    load_after = loadavg()

    first_window = probe.between(started, started + STARTUP_WINDOW_S)
    header = f"{'timer lateness (ms)':<22} {'ticks':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}"
    print(header)
    print("-" * len(header))
    for phase in (idle, startup, training, stopping, predicting):
        print(lateness_row(phase.name, probe.between(phase.start, phase.end)))
    print(lateness_row(f"first {STARTUP_WINDOW_S:.0f} s after Ctrl+T", first_window))
    worst = max((late, when) for when, late in probe.samples if when >= started)
    print(f"worst tick after Ctrl+T: {worst[0] * 1e3:.0f} ms late, "
          f"{worst[1] - started:.1f} s after Ctrl+T")
    print()
    header = (f"{'brush move (ms)':<22} {'moves':>6} {'p50':>8} {'p95':>8} {'max':>8} "
              f"{'p95/idle':>8} {'release p50':>11} {'release max':>11}")
    print(header)
    print("-" * len(header))
    for phase in (idle, startup, training, predicting):
        if not phase.moves:
            print(f"{phase.name:<22} {0:>6}  (ended before a stroke)")
            continue
        ratio = percentile(phase.moves, 0.95) / percentile(idle.moves, 0.95)
        print(f"{phase.name:<22} {len(phase.moves):>6} {statistics.median(phase.moves) * 1e3:8.2f} "
              f"{percentile(phase.moves, 0.95) * 1e3:8.2f} {max(phase.moves) * 1e3:8.2f} "
              f"{ratio:8.2f} {statistics.median(phase.releases) * 1e3:11.2f} "
              f"{max(phase.releases) * 1e3:11.2f}")
    print()
    header = f"{'Ctrl+S to disk (ms)':<22} {'saves':>6} {'p50':>8} {'max':>8}"
    print(header)
    print("-" * len(header))
    for phase in (idle, training):
        print(f"{phase.name:<22} {len(phase.saves):>6} "
              f"{statistics.median(phase.saves) * 1e3:8.1f} {max(phase.saves) * 1e3:8.1f}")
    print()
    header = (f"{'CPU per thread group':<22} {'span s':>6} {'GUI':>8} {'niced':>8} {'other':>8} "
              f"{'busy niced':>8}")
    print(header)
    print("-" * len(header))
    for phase in (idle, startup, training, stopping, predicting):
        print(cpu_row(phase))
    print()
    training_late = probe.between(training.start, training.end)
    brush_ratio = percentile(training.moves, 0.95) / percentile(idle.moves, 0.95)
    print(f"training panel: {device_text!r}; TensorFlow reports {tf_threads}; "
          f"model sidecar device {outcome.sidecar.get('device')!r}" if outcome else
          f"training panel: {device_text!r}; TensorFlow reports {tf_threads}; run failed")
    print(f"cores: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"Ctrl+T handler {key_cost * 1e3:.0f} ms; first progress {first_progress:.1f} s after "
          f"Ctrl+T; {points} progress points plotted; still training at the end of the "
          f"phase: {still_running}")
    if outcome is not None:
        print(f"stop -> run_finished {stopping.end - stopping.start:.1f} s "
              f"({outcome.sidecar.get('steps')} steps, cancelled {outcome.cancelled}); "
              f"window close {close_s:.1f} s")
    print(f"goals during training: p99 lateness {percentile(training_late, 0.99) * 1e3:.1f} ms "
          f"(<= {LATENESS_GOAL_S * 1e3:.0f}: "
          f"{'ok' if percentile(training_late, 0.99) <= LATENESS_GOAL_S else 'MISSED'}); "
          f"brush p95 {brush_ratio:.2f}x idle (<= {BRUSH_RATIO_GOAL:.0f}x: "
          f"{'ok' if brush_ratio <= BRUSH_RATIO_GOAL else 'MISSED'}); save max "
          f"{max(training.saves) * 1e3:.0f} ms (<= {SAVE_GOAL_S * 1e3:.0f}: "
          f"{'ok' if max(training.saves) <= SAVE_GOAL_S else 'MISSED'})")
    print(f"load average before {load_before}; after {load_after} (2 cores: above ~2 means "
          f"other processes shared them)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
