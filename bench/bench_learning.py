"""How fast the U-Net learns on a CPU from one labelled corner, against Otsu thresholding.

A synthetic fluorescence nuclei image (512 x 512) has only its top-left 256 x 256 corner
labelled (background 0, nucleus 1; 255 elsewhere). Training runs for each time budget; the
nucleus IoU is measured in inference mode on the three unlabelled quarters and compared
with Otsu thresholding of the same normalised image on the same pixels, in the same run.

    python bench/bench_learning.py                     # budgets 15 30 60 s, seed 0
    python bench/bench_learning.py --seeds 0 1 2 --threads 2
    python bench/bench_learning.py --budgets 30 --set base_filters=24 patch_size=96

Writes nothing. Timings are wall clock: on a shared machine compare step counts too.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np

from segtool.core.normalize import normalize
from segtool.core.synthetic import nuclei_image
from segtool.ml.device import configure_devices
from segtool.ml.losses import iou_per_class
from segtool.ml.train import TrainConfig, train_model

SIZE = 512
CORNER = 256
NUCLEUS = 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        default=[15.0, 30.0, 60.0],
        help="training budgets in seconds (default 15 30 60)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        help="synthetic image seeds; figures are averaged over them",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="TensorFlow intra- and inter-op threads (default 2)"
    )
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="FIELD=VALUE",
        help="TrainConfig overrides, e.g. base_filters=24 patch_size=96",
    )
    return parser.parse_args(argv)


def config_overrides(pairs: list[str]) -> dict[str, object]:
    """Parse FIELD=VALUE pairs using each TrainConfig field's default's type."""
    defaults = TrainConfig()
    overrides: dict[str, object] = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        default = getattr(defaults, name)
        if isinstance(default, bool):
            overrides[name] = text.lower() in ("1", "true", "yes")
        elif isinstance(default, int):
            overrides[name] = int(text)
        elif isinstance(default, float):
            overrides[name] = float(text)
        else:
            overrides[name] = text
    return overrides


def scene(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised image (H, W, 1), the sparse training mask, and the test truth (255 = skip)."""
    image, truth = nuclei_image(size=SIZE, seed=seed)
    normalised = normalize(image)
    mask = np.full(truth.shape, 255, np.uint8)
    mask[:CORNER, :CORNER] = truth[:CORNER, :CORNER]
    test_truth = truth.astype(np.uint8).copy()
    test_truth[:CORNER, :CORNER] = 255
    return normalised, mask, test_truth


def otsu_iou(normalised: np.ndarray, test_truth: np.ndarray) -> float:
    """Nucleus IoU of Otsu thresholding (bright = nucleus) on the test pixels."""
    grey = np.clip(normalised[..., 0] * 255.0, 0, 255).astype(np.uint8)
    _, foreground = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(iou_per_class(foreground, test_truth, 2)[NUCLEUS])


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    device = configure_devices(args.threads)
    overrides = config_overrides(args.set)
    load_before = os.getloadavg()[0]
    print(f"{device}, overrides {overrides or 'none'}, load average before {load_before:.2f}")
    print(
        f"{'seed':>4} {'budget s':>8} {'steps':>6} {'steps/s':>7} {'val IoU':>7} "
        f"{'IoU':>6} {'Otsu':>6} {'ratio':>6}"
    )
    rows: dict[float, list[tuple[float, float, float, float]]] = {b: [] for b in args.budgets}
    for seed in args.seeds:
        normalised, mask, test_truth = scene(seed)
        otsu = otsu_iou(normalised, test_truth)
        for budget in args.budgets:
            config = dataclasses.replace(TrainConfig(max_seconds=budget, seed=seed), **overrides)
            started = time.monotonic()
            result = train_model([normalised], [mask], 2, config)
            elapsed = time.monotonic() - started
            logits = result.model(normalised[None], training=False)
            prediction = np.argmax(np.asarray(logits)[0], axis=-1)
            iou = float(iou_per_class(prediction, test_truth, 2)[NUCLEUS])
            steps_per_second = result.steps / elapsed
            rows[budget].append((iou, otsu, result.steps, steps_per_second))
            print(
                f"{seed:>4} {budget:>8.0f} {result.steps:>6} {steps_per_second:>7.1f} "
                f"{result.val_iou[NUCLEUS]:>7.3f} {iou:>6.3f} {otsu:>6.3f} "
                f"{iou / otsu:>6.2f}",
                flush=True,
            )
    print()
    print(f"mean over seeds {args.seeds}:")
    print(f"{'budget s':>8} {'steps':>6} {'steps/s':>7} {'IoU':>6} {'Otsu':>6} {'ratio':>6}")
    for budget, values in rows.items():
        iou, otsu, steps, speed = np.mean(np.asarray(values), axis=0)
        print(
            f"{budget:>8.0f} {steps:>6.0f} {speed:>7.1f} {iou:>6.3f} {otsu:>6.3f} "
            f"{iou / otsu:>6.2f}"
        )
    print(
        f"load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f} "
        f"(above ~{args.threads} means other work shared the cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
