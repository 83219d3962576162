"""Time from Ctrl+T to a refreshed, better prediction on the demo project, in the window.

For each budget (default: the training panel's default, then 30 s) a fresh demo project
(6 generated nuclei images, 512 x 512, 16-bit; the first two have their top-left quarter
labelled) opens in the real :class:`MainWindow` (``QT_QPA_PLATFORM=offscreen``, QSettings
and data folder in a temporary folder). Ctrl+T is pressed twice: first from scratch, then
again, fine-tuning the model the first run made current. For each run:

* first progress: Ctrl+T to the first progress report (the first run in the process also
  pays for importing TensorFlow);
* finished: Ctrl+T to ``training.run_finished`` (model validated, saved, made current);
* on screen: Ctrl+T to ``predictions.fresh(current image)`` being the new model's result;
* IoU: nucleus IoU of that prediction against the generator's truth
  (``nuclei_image(size, seed=100 + index)``, as demo.py makes the images) on the three
  unlabelled quarters of the open image, against Otsu's threshold of the percentile
  normalised 8-bit image on the same pixels;
* others: the same on the images that have no labels at all, once their background
  predictions have arrived.

    python bench/bench_retrain.py [--budgets 90 30]

Writes only into a temporary folder. Timings are wall clock on a shared machine: the load
average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from benchlib import isolate_settings, loadavg, run_loop, wait_for
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402

from segtool.core.demo import DEMO_SIZE, create_demo_project  # noqa: E402
from segtool.core.normalize import normalize  # noqa: E402
from segtool.core.synthetic import nuclei_image  # noqa: E402
from segtool.gui.training_panel import DEFAULT_BUDGET_S  # noqa: E402

NUCLEUS = 1
LABELLED_IMAGES = 2  # demo.py labels the top-left quarter of the first two images
WAIT_S = 900.0


@dataclass
class Run:
    """One Ctrl+T, seconds from the key press; IoUs of the prediction shown after it."""

    budget: int
    label: str
    first_progress: float = float("nan")
    finished: float = float("nan")
    on_screen: float = float("nan")
    steps: int = 0
    val_iou: float | None = None
    previous_val_iou: float | None = None
    became_current: bool = False
    iou: float = float("nan")
    otsu: float = float("nan")
    others_iou: float = float("nan")
    others_otsu: float = float("nan")


def truth_of(stem: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The demo image and its truth ((H, W) uint8, 1 = nucleus) for ``nuclei-NN``."""
    index = int(stem.rsplit("-", 1)[1]) - 1
    return nuclei_image(size=size, seed=100 + index)


def test_region(stem: str, shape: tuple[int, int], labelled: bool) -> np.ndarray:
    """Pixels scored: (H, W) bool, all but the labelled top-left quarter when labelled."""
    region = np.ones(shape, bool)
    if labelled:
        region[: shape[0] // 2, : shape[1] // 2] = False
    return region


def nucleus_iou(prediction: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    predicted, actual = prediction[region] == NUCLEUS, truth[region] == NUCLEUS
    union = np.count_nonzero(predicted | actual)
    return np.count_nonzero(predicted & actual) / union if union else float("nan")


def otsu(image: np.ndarray) -> np.ndarray:
    """Otsu's threshold of the percentile-normalised 8-bit image: (H, W) uint8, 1 = bright."""
    grey = np.clip(normalize(image)[..., 0] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    _, foreground = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return foreground


def score(window: object, stems: list[str], labelled: set[str]) -> tuple[float, float]:
    """Mean nucleus IoU of the window's fresh predictions of ``stems`` and of Otsu."""
    model_scores, otsu_scores = [], []
    for stem in stems:
        image, truth = truth_of(stem, DEMO_SIZE)
        region = test_region(stem, truth.shape, stem in labelled)
        classes, _ = window.predictions.fresh(stem)
        model_scores.append(nucleus_iou(classes, truth, region))
        otsu_scores.append(nucleus_iou(otsu(image), truth, region))
    return float(np.mean(model_scores)), float(np.mean(otsu_scores))


def train_once(window: object, run: Run, labelled: set[str], others: list[str]) -> Run:
    """Press Ctrl+T, follow the run to the refreshed prediction, score it."""
    outcomes: list[object] = []
    window.training.run_finished.connect(outcomes.append)
    stem = window.current_stem
    started = time.perf_counter()
    QTest.keyClick(window.canvas.viewport(), Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    if not window.training.running:
        raise SystemExit(f"Ctrl+T did not start training: {window.statusBar().currentMessage()}")
    wait_for(lambda: window.training_panel.curve_points() > 0 or bool(outcomes), WAIT_S)
    run.first_progress = time.perf_counter() - started
    wait_for(lambda: bool(outcomes), WAIT_S)
    run.finished = time.perf_counter() - started
    window.training.run_finished.disconnect(outcomes.append)
    outcome = outcomes[0]
    if outcome is None:
        raise SystemExit(f"training failed: {window.training_panel.message.text()}")
    metrics = outcome.sidecar["metrics"]
    run.steps = int(outcome.sidecar["steps"])
    run.val_iou = metrics.get("mean_val_iou")
    run.previous_val_iou = metrics.get("previous_model_val_iou")
    run.became_current = outcome.became_current
    wait_for(lambda: window.predictions.fresh(stem) is not None, WAIT_S)
    if outcome.became_current:
        run.on_screen = time.perf_counter() - started
    run.iou, run.otsu = score(window, [stem], labelled)
    wait_for(lambda: all(window.predictions.fresh(s) is not None for s in others), WAIT_S)
    run.others_iou, run.others_otsu = score(window, others, labelled)
    return run


def bench_budget(root: Path, budget: int) -> list[Run]:
    """A fresh demo project and window; Ctrl+T twice with ``budget`` seconds."""
    from segtool.gui.main_window import MainWindow

    project = create_demo_project(root / f"demo-{budget}")
    stems = project.image_names()
    labelled = set(stems[:LABELLED_IMAGES])
    others = [stem for stem in stems if stem not in labelled]
    window = MainWindow(project, ask=lambda title, question: True)
    window.resize(1280, 800)
    window.show()
    window.canvas.setFocus()
    run_loop(0.5)
    window.training_panel.budget.setValue(budget)
    runs = [train_once(window, Run(budget, "first"), labelled, others),
            train_once(window, Run(budget, "fine-tune"), labelled, others)]
    window.close()
    return runs


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[DEFAULT_BUDGET_S, 30],
                        help=f"training budgets in s (default {DEFAULT_BUDGET_S} 30)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="folder for the temporary projects (default: the system's)")
    args = parser.parse_args(argv)
    load_before = loadavg()
    rows: list[Run] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        root = Path(scratch)
        isolate_settings(root)
        from segtool.gui.app import application

        application()
        for budget in args.budgets:
            rows += bench_budget(root, budget)
    load_after = loadavg()

    header = (f"{'budget':>6} {'run':>9} {'1st prog':>8} {'finished':>8} {'on screen':>9} "
              f"{'steps':>5} {'val IoU':>7} {'prev val':>8} {'current':>7} {'IoU':>6} "
              f"{'Otsu':>6} {'others':>6} {'Otsu':>6}")
    print(header)
    print("-" * len(header))

    def number(value: float | None, width: int, digits: int = 3) -> str:
        if value is None or value != value:
            return f"{'-':>{width}}"
        return f"{value:{width}.{digits}f}"

    for run in rows:
        print(f"{run.budget:>5}s {run.label:>9} {run.first_progress:8.1f} {run.finished:8.1f} "
              f"{number(run.on_screen, 9, 1)} {run.steps:5d} {number(run.val_iou, 7)} "
              f"{number(run.previous_val_iou, 8)} {str(run.became_current):>7} "
              f"{run.iou:6.3f} {run.otsu:6.3f} {run.others_iou:6.3f} {run.others_otsu:6.3f}")
    print()
    print("seconds from Ctrl+T; IoU = nucleus IoU of the prediction on screen, on the "
          "unlabelled three quarters of the open image; others = mean over the images with "
          "no labels; Otsu on the same pixels; '-' on screen = the new model was not made "
          "current, the previous prediction stays")
    for first, second in zip(rows[::2], rows[1::2], strict=True):
        change = second.iou - first.iou
        verdict = "improved" if change > 0.005 else "held" if change > -0.005 else "LOWERED"
        print(f"{first.budget} s: fine-tuning {verdict} the open image's IoU by {change:+.3f} "
              f"(others {second.others_iou - first.others_iou:+.3f})")
    print(f"load average before {load_before}; after {load_after}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
