"""The training recipe, chosen from the project's own labels and images and the device.

Nothing here looks at a project's or an image's name: every decision comes from numbers
measured on the data (label counts, where labels lie, image sizes, channel ranges) or on the
device (a timed convolution). Each decision is a small pure function, tested on synthetic
inputs; :func:`choose_recipe` puts them together and records a one-line reason for each.
The figures behind the rules are in ``bench/README.md`` (real-data benchmark).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

UNLABELLED = 255

UP_ROW_SPREAD = 0.2
"""Images "have an up" when, on a typical image, the mean rows of two classes' labels lie
more than this share of the height apart (sky above road), so no 90-degree turns or
vertical flips are used."""
UP_MIN_SHARE = 0.02
"""Classes holding less than this share of an image's labels do not count for "up"."""

CLASS_WEIGHT_POWER = 0.5
CLASS_WEIGHT_RANGE = (0.25, 8.0)
"""Cross-entropy weights ~ frequency ** -0.5, clipped to this range, mean 1 per pixel."""
RARE_SHARE = 0.1
"""Weights are used only when some class holds less than this share of an even split of
the labels: they helped there (EM dense +0.047, cardiac dense +0.014 mIoU) and cost where
classes were only mildly uneven (street scribbles -0.033, nuclei dense -0.006)."""
WEIGHT_CHANGE = 0.25
"""A model that keeps training takes new class weights when one moves by this share
(continuous learning; smaller drifts as labels grow keep the compiled step)."""

PER_CHANNEL_SPREAD = 0.25
"""Channels are normalised apart when their percentile windows differ by more than this
share of the pooled window (stacked MRI sequences), together for photos."""

DARK_QUANTILE = 75
DARK_LEVEL = 0.1
DARK_POWER = 0.5
"""Projects whose median image (labelled and a sample of unlabelled: session.project_levels)
has its upper quartile (``DARK_QUANTILE``) below ``DARK_LEVEL`` of its percentile window,
three quarters dark ground with sparse bright objects (fluorescence), reach the model
raised to ``DARK_POWER`` (a square root), which lifts dim objects against the ground: nuclei
dense +0.041 mIoU (4 of 4 paired runs up), scribbles +0.010 (two up, two level) at 120 s.
MRI slices are dark only outside the body (upper quartile at 13-29% of the window), and
there the root lost or tied (brain MRI -0.12 and -0.19, cardiac 0.00 and -0.02, one seed;
bench/README, "A square root for dark ground")."""

PATCH_CONTEXT = 0.5
"""A patch should see at least this share of the shorter image side (scene context)."""
MIN_PATCH, MAX_PATCH = 64, 256
PIXELS_PER_BATCH = 16 * 64 * 64
"""Patch pixels a training step sees; bigger patches come with smaller batches."""
MIN_BATCH = 4

USE_EMA = False
"""Weight averaging (EMA) throughout is off: on the real sets where the batch-norm statistics
stay (nuclei, EM, street, and all scribbles) it lost 6 of 8 rows at 120 s (mean -0.011;
bench/README, "EMA again")."""
AVERAGE_WHERE_STATISTICS_MOVE = False
"""With this on, where the batch-norm statistics may move to the unlabelled images (dense
labels, some unlabelled images), training also keeps the weight average (EMA, decay 0.999;
TrainConfig.keep_average) and the run ends with it when they do move (ml/adaptation.py) and
the run made at least the average's window of steps (1 / (1 - ema_decay)). Off: on the two
dense MRI sets at 120 s it won 6 of 12 seed pairs, cardiac +0.047 mIoU over three seeds but
brain MRI -0.042 over nine (median -0.005, one seed -0.29); a 30-s brain MRI run (~220 steps,
shorter than the window) lost with it on 5 of 6 seeds (bench/README, "The weight average
where the statistics move"). ``--set keep_average=true`` measures it again."""
MIN_STEPS = 4000
"""The model grows while the budget still affords this many steps at the device's speed:
on 2 CPU cores every budget up to ~500 s keeps the 8-filter U-Net that the real-data table
measured (16 filters at equal time scored no better: nuclei 0.897 against 0.901), while a
GPU's speed buys a wider and deeper one."""
WIDTHS = (8, 12, 16, 24, 32)
DEPTHS = (3, 4)
FINETUNE_LR_SCALE = 1 / 3
"""Fine-tuning (Ctrl+T, ``segtool train`` from the current model) peaks at this share of a
new model's learning rate: a restart at the full rate first undoes part of what the model
knows. On five real sets (nine runs), 120 s after a 120 s scratch run: +0.016 mIoU over
scratch on average and none below by more than 0.002, against +0.009 and four of nine below
at the full rate (bench/README, "The window's training and Ctrl+T")."""


@dataclasses.dataclass(frozen=True)
class LabelChoices:
    """The recipe's decisions that follow the labels alone (not the images or the device):
    what a model that keeps training while labels grow re-decides on every new mask
    (segtool/ml/continuous.py)."""

    class_weights: tuple[float, ...] | None
    rotations: bool
    reasons: tuple[str, ...]  # the weights' line and the turns' line

    def differs(self, other: LabelChoices | None) -> bool:
        """Whether training should change from ``other`` to these choices: the turns
        differ, weights came or went, or some class's weight moved by more than
        ``WEIGHT_CHANGE`` of its value (small drifts as labels grow do not recompile)."""
        if other is None or self.rotations != other.rotations:
            return True
        if (self.class_weights is None) != (other.class_weights is None):
            return True
        if self.class_weights is None:
            return False
        new, old = np.asarray(self.class_weights), np.asarray(other.class_weights)
        return new.shape != old.shape or bool(np.any(np.abs(new - old) > WEIGHT_CHANGE * old))


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a training run does, and why (``reasons``: one line per decision).

    ``labels`` holds the choices that follow the labels alone, with their reasons;
    ``model_reasons`` the reasons for the rest (patch, model, normalisation, rate), which a
    model keeps for its life while its labels grow (segtool/ml/continuous.py)."""

    patch_size: int = 64
    batch_size: int = 16
    depth: int = 3
    base_filters: int = 8
    labels: LabelChoices = LabelChoices(None, True, ())
    per_channel: bool = False
    ema: bool = False
    learning_rate_scale: float = 1.0
    input_power: float = 1.0
    model_reasons: tuple[str, ...] = ()

    @property
    def class_weights(self) -> tuple[float, ...] | None:
        return self.labels.class_weights

    @property
    def rotations(self) -> bool:
        return self.labels.rotations

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every decision's reason: the model's, then the labels'."""
        return (*self.model_reasons, *self.labels.reasons)

    def config_fields(self) -> dict[str, object]:
        """The TrainConfig fields this recipe sets."""
        return {
            "patch_size": self.patch_size,
            "batch_size": self.batch_size,
            "depth": self.depth,
            "base_filters": self.base_filters,
            "class_weights": self.class_weights,
            "rotations": self.rotations,
            "ema": self.ema,
        }

    def continuing(self, parent: str) -> Recipe:
        """This recipe continuing ``parent``: the model keeps its own architecture and input
        normalisation, so the reasons about those give way to one that says so."""
        kept = (r for r in self.model_reasons
                if not r.startswith(("U-Net", "per-channel", "channels", "input")))
        return dataclasses.replace(self, model_reasons=(
            f"continues {parent}: its architecture and input normalisation", *kept))

    def fine_tuning(self, parent: str) -> Recipe:
        """This recipe fine-tuning ``parent`` (Ctrl+T): continuing it, at a lower peak rate."""
        continued = self.continuing(parent)
        first, *rest = continued.model_reasons
        return dataclasses.replace(continued, learning_rate_scale=FINETUNE_LR_SCALE, model_reasons=(
            first, f"learning rate peaks at {FINETUNE_LR_SCALE:.2g} of a new model's: fine-tuning",
            *rest))


# --- decisions ------------------------------------------------------------------------------


def class_counts(masks: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """(num_classes,) int64 labelled pixels of each class over all masks."""
    counts = np.zeros(num_classes, np.int64)
    for mask in masks:
        histogram = np.bincount(mask.ravel(), minlength=256)
        counts += histogram[:num_classes]
    return counts


def class_weights(counts: np.ndarray) -> tuple[float, ...] | None:
    """Cross-entropy weight per class from its labelled-pixel count, or None if balanced.

    ``frequency ** -CLASS_WEIGHT_POWER``, clipped to ``CLASS_WEIGHT_RANGE`` and scaled so the
    average labelled pixel weighs 1; classes without labels get weight 1. None (plain
    cross-entropy) unless some labelled class is rare: below ``RARE_SHARE`` of an even split.
    """
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    if total <= 0:
        return None
    present = counts > 0
    frequency = np.where(present, counts / total, 1.0)
    if frequency[present].min() >= RARE_SHARE / np.count_nonzero(present):
        return None
    weights = np.clip(frequency**-CLASS_WEIGHT_POWER, 0, None)
    weights[present] /= (weights[present] * frequency[present]).sum()
    weights = np.clip(weights, *CLASS_WEIGHT_RANGE)
    weights[~present] = 1.0
    if np.all(np.abs(weights[present] - 1.0) <= 0.1):
        return None
    return tuple(round(float(w), 4) for w in weights)


def has_up(masks: Sequence[np.ndarray], num_classes: int) -> bool:
    """Whether the labels show that images have an up (classes sit at different heights).

    For every image, the mean row (as a share of the height) of each class's labelled
    pixels is taken, for classes with at least ``UP_MIN_SHARE`` of the image's labels; the
    image's spread is the largest difference between two of them. Images have an up when
    the median spread over images with two or more such classes exceeds ``UP_ROW_SPREAD``.
    """
    spreads = []
    for mask in masks:
        labelled = mask != UNLABELLED
        total = int(np.count_nonzero(labelled))
        if total == 0:
            continue
        rows = np.arange(mask.shape[0], dtype=np.float64)[:, None] / max(mask.shape[0] - 1, 1)
        means = []
        for class_index in range(num_classes):
            is_class = mask == class_index
            count = int(np.count_nonzero(is_class))
            if count < UP_MIN_SHARE * total:
                continue
            means.append(float((is_class * rows).sum() / count))
        if len(means) >= 2:
            spreads.append(max(means) - min(means))
    return bool(spreads) and float(np.median(spreads)) > UP_ROW_SPREAD


def needs_per_channel(windows: Sequence[Sequence[tuple[float, float]]]) -> bool:
    """Whether channels need their own windows, from each image's per-channel windows.

    ``windows[i]`` holds image i's (lo, hi) per channel. Channels differ when, on the
    median image, some channel's lo or hi is further than ``PER_CHANNEL_SPREAD`` of the
    pooled span from another channel's.
    """
    differences = []
    for channel_windows in windows:
        if len(channel_windows) < 2:
            continue
        lows = [lo for lo, _ in channel_windows]
        highs = [hi for _, hi in channel_windows]
        span = max(max(highs) - min(lows), 1e-9)
        differences.append(max(max(lows) - min(lows), max(highs) - min(highs)) / span)
    return bool(differences) and float(np.median(differences)) > PER_CHANNEL_SPREAD


def input_power(levels: Sequence[float]) -> float:
    """``DARK_POWER`` when the median image's upper quartile lies below ``DARK_LEVEL`` of its
    window (``levels[i]``: where image i's ``DARK_QUANTILE`` falls, 0..1), else 1 (linear)."""
    return DARK_POWER if levels and float(np.median(levels)) < DARK_LEVEL else 1.0


def patch_and_batch(image_shapes: Sequence[tuple[int, int]], max_patch: int) -> tuple[int, int]:
    """Patch side and batch size: the patch sees ``PATCH_CONTEXT`` of the median short side.

    The side is a multiple of 32 between ``MIN_PATCH`` and ``max_patch``; the batch keeps
    the pixels of a step at ``PIXELS_PER_BATCH`` (at least ``MIN_BATCH`` patches).
    """
    short = float(np.median([min(h, w) for h, w in image_shapes])) if image_shapes else 64
    wanted = 32 * math.ceil(PATCH_CONTEXT * short / 32)
    patch = int(min(max(wanted, MIN_PATCH), max_patch))
    batch = max(MIN_BATCH, PIXELS_PER_BATCH // (patch * patch))
    return patch, batch


def step_cost(patch: int, batch: int, depth: int, base_filters: int) -> float:
    """Relative cost of one training step (1.0 = patch 64, batch 16, depth 3, 8 filters).

    Each U-Net level costs about the same (half the side, twice the filters), so the cost
    grows with batch * patch^2 * filters^2 * (2 * depth + 1).
    """
    return (batch * patch**2 * base_filters**2 * (2 * depth + 1)) / (16 * 64**2 * 8**2 * 7)


def model_size(
    steps_per_second: float, budget: float | None, patch: int, batch: int
) -> tuple[int, int]:
    """The U-Net that still makes ``MIN_STEPS`` steps in ``budget`` at the device's speed.

    ``steps_per_second`` is the device's measured speed for the reference step (patch 64,
    batch 16, depth 3, 8 filters). Width grows first (8 up to 32 filters at depth 3), depth
    only once the widest depth-3 model is affordable: on a 2-core CPU a deeper model at the
    same budget scored lower (cardiac MRI, 45 s: 0.466 against 0.532 mIoU; bench/README.md).
    Without a time budget the smallest model is used.
    """
    choice = (DEPTHS[0], WIDTHS[0])
    if budget is None:
        return choice
    for depth in DEPTHS:
        for width in WIDTHS:
            if steps_per_second / step_cost(patch, batch, depth, width) * budget < MIN_STEPS:
                return choice
            choice = (depth, width)
    return choice


def choose_recipe(
    masks: Sequence[np.ndarray],
    num_classes: int,
    image_shapes: Sequence[tuple[int, int]],
    channel_windows: Sequence[Sequence[tuple[float, float]]],
    steps_per_second: float,
    budget: float | None,
    max_patch: int = 128,
    levels: Sequence[float] = (),
) -> Recipe:
    """Decide the recipe from the labelled masks, the images and the device's speed;
    ``levels`` are where each image's upper quartile falls in its window (0..1)."""
    labels = label_choices(masks, num_classes)
    per_channel = needs_per_channel(channel_windows)
    power = input_power(levels)
    where = (f": three quarters of the pixels lie below {float(np.median(levels)):.0%} of "
             "the window" if levels else "")
    patch, batch = patch_and_batch(image_shapes, max_patch)
    depth, width = model_size(steps_per_second, budget, patch, batch)
    reasons = (
        f"patch {patch} px, batch {batch}: sees {PATCH_CONTEXT:.0%} of the median short side",
        f"U-Net depth {depth}, {width} filters: {steps_per_second:.1f} reference steps/s",
        "per-channel normalisation" if per_channel else "channels normalised together",
        (f"input raised to the power {power:g} (lifts dim objects){where}, a dark ground"
         if power != 1.0 else f"input linear{where}"),
    )
    return Recipe(patch, batch, depth, width, labels, per_channel, USE_EMA,
                  input_power=power, model_reasons=reasons)


def label_choices(masks: Sequence[np.ndarray], num_classes: int) -> LabelChoices:
    """Class weights and turns from the labelled masks, each with its reason."""
    counts = class_counts(masks, num_classes)
    weights = class_weights(counts)
    up = has_up(masks, num_classes)
    return LabelChoices(weights, not up, (
        "class weights " + (", ".join(f"{w:.2f}" for w in weights) if weights else "none")
        + f" from label counts {counts.tolist()}",
        "no 90-degree turns or vertical flips: labels show an up" if up
        else "all 8 flips/turns: labels show no up",
    ))
