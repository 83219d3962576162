"""Per-class logit offsets fitted on the held-out pixels after training.

A U-Net trained for a short time with a Dice term draws its classes' borders a little off:
on real nuclei, about a pixel too wide, which on objects 12 px across costs a tenth of their
IoU. The arg-max of the logits is what a user accepts, so after training the offsets that give
the best mean IoU on the run's **held-out** pixels (never the training pixels) are added to
the logits layer's bias. The model file then carries its calibration: prediction, validation
and export need nothing new.

The search is plain numpy on the held-out pixels' logits (at most a few hundred thousand
pixels, milliseconds a try): coordinate ascent over the classes that have held-out pixels,
but the first (only the differences between offsets matter), on a grid of ``STEP`` up to
``LIMIT`` nats. Offsets that gain less than ``MIN_GAIN`` mean IoU are not applied (a
calibration that merely fits the noise of a few hundred pixels), and among near-equal
scores the smallest offset wins.

Offsets are fitted only when the labels show where borders go: when at least
``MIN_BORDER_SHARE`` of the labelled regions' edges lie between two classes rather than
against unlabelled pixels (dense masks: 0.83-1.0 on the five real sets; scribbles: 0-0.03).
Scribbles lie inside regions, away from every border, so their held-out pixels say nothing
about where a border goes, and fitting them moved borders the wrong way (fluorescence
nuclei, scribbles, 45 s: mean IoU 0.905 without, 0.891 with).

**Off by default** (``TrainConfig.calibrate``). Over 21 paired runs on the five real sets (the
same model scored on other images with and without its offsets, bench/README) the offsets
changed test mean IoU by -0.001 on average (-0.045 to +0.033): they helped on street scenes
(+0.016 over 7 runs) and nuclei (+0.007 over 2) and cost on EM (-0.009 over 7) and cardiac MRI
(-0.021 over 4). The held-out pixels come from the labelled images; where the images to
predict differ from those (other patients, other sections), the offsets fit that difference
in the wrong direction, and fitting them on all held-out crops instead of 64 made cardiac
worse, not better (-0.082 against -0.045): a shift between images, not noise.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence

import numpy as np

from segtool.ml.data import UNLABELLED
from segtool.ml.losses import iou_per_class, mean_iou

logger = logging.getLogger(__name__)

STEP = 0.1
LIMIT = 3.0
MIN_GAIN = 0.003
TIE = 0.0005
PASSES = 2
MIN_BORDER_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The offsets added to each class's logit, and held-out mean IoU before and after."""

    offsets: tuple[float, ...]
    before: float
    after: float
    skipped: str = ""  # why no offsets were fitted at all

    @classmethod
    def none(cls, why: str) -> Calibration:
        return cls((), math.nan, math.nan, why)

    @property
    def applied(self) -> bool:
        return any(offset != 0.0 for offset in self.offsets)

    def reason(self) -> str:
        """One line for the model's recipe reasons."""
        if self.skipped:
            return f"logit offsets: none ({self.skipped})"
        if not self.applied:
            return (f"logit offsets: none (held-out mean IoU {self.before:.3f} "
                    "not raised by more than the noise)")
        offsets = " ".join(f"{offset:+.1f}" for offset in self.offsets)
        return (f"logit offsets {offsets}: held-out mean IoU {self.before:.3f} -> "
                f"{self.after:.3f}")


def fit_offsets(logits: np.ndarray, truth: np.ndarray) -> Calibration:
    """The offsets for ``logits`` ((N, K) float, one row a held-out pixel) that best match
    ``truth`` ((N,) class indices) by mean IoU over the classes present in ``truth``."""
    num_classes = logits.shape[1]
    truth = truth.astype(np.int64)
    offsets = np.zeros(num_classes, np.float32)

    def score(candidate: np.ndarray) -> float:
        return mean_iou(iou_per_class(np.argmax(logits + candidate, axis=1), truth,
                                      num_classes))

    before = best = score(offsets)
    if np.isnan(before) or np.unique(truth).size < 2:
        return Calibration(tuple([0.0] * num_classes), before, before)
    # A class with no held-out pixel keeps its logit: pushing it down would only remove
    # its false positives here, and it would never be predicted anywhere again.
    movable = [klass for klass in range(1, num_classes) if np.any(truth == klass)]
    grid = np.round(np.arange(-LIMIT, LIMIT + STEP / 2, STEP), 6)
    grid = grid[np.argsort(np.abs(grid), kind="stable")]  # smallest first: ties keep it
    for _ in range(PASSES):
        changed = False
        for klass in movable:
            chosen, chosen_score = offsets[klass], best
            for value in grid:
                trial = offsets.copy()
                trial[klass] = value
                trial_score = score(trial)
                if trial_score > chosen_score + TIE:
                    chosen, chosen_score = value, trial_score
            if chosen != offsets[klass]:
                offsets[klass], best, changed = chosen, chosen_score, True
        if not changed:
            break
    if best - before < MIN_GAIN:
        return Calibration(tuple([0.0] * num_classes), before, before)
    return Calibration(tuple(float(v) for v in offsets), before, best)


def labelled_border_share(masks: Sequence[np.ndarray]) -> float:
    """Of the edges of the labelled regions of ``masks`` ((H, W), 255 = unlabelled), the
    share that lies between two classes rather than between a class and unlabelled pixels
    (4-neighbour pairs, pooled over the masks): 1 for dense masks, near 0 for scribbles."""
    between = beside = 0
    for mask in masks:
        for ahead, behind in ((mask[:, 1:], mask[:, :-1]), (mask[1:], mask[:-1])):
            labelled_ahead, labelled_behind = ahead != UNLABELLED, behind != UNLABELLED
            between += int(np.count_nonzero(labelled_ahead & labelled_behind & (ahead != behind)))
            beside += int(np.count_nonzero(labelled_ahead ^ labelled_behind))
    return between / (between + beside) if between + beside else 0.0


def held_out_logits(
    logits_of: Callable[[np.ndarray], np.ndarray], crops: np.ndarray, labels: np.ndarray,
    batch: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """The logits ((N, K)) and classes ((N,)) of every labelled pixel of ``labels``
    ((B, H, W), 255 = not held out), from ``logits_of`` on ``crops`` ((B, H, W, C))."""
    rows, truths = [], []
    for start in range(0, len(crops), batch):
        logits = logits_of(crops[start : start + batch])
        labelled = labels[start : start + batch] != UNLABELLED
        rows.append(logits[labelled])
        truths.append(labels[start : start + batch][labelled])
    if not rows:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.uint8)
    return np.concatenate(rows), np.concatenate(truths)


def calibrate_model(model: object, masks: Sequence[np.ndarray], crops: np.ndarray,
                    labels: np.ndarray) -> Calibration:
    """Fit offsets on the held-out ``crops``/``labels`` and add them to ``model``'s logits
    layer bias (in place), when the training ``masks`` show where borders go."""
    from segtool.ml.backend import inference_function, keras
    from segtool.ml.unet import LOGITS_LAYER

    if labelled_border_share(masks) < MIN_BORDER_SHARE:
        return Calibration.none("the labels show no borders between classes")
    try:
        head = model.get_layer(LOGITS_LAYER)
    except ValueError:
        head = None
    if head is None or getattr(head, "bias", None) is None or model.layers[-1] is not head:
        return Calibration.none("the model has no logits layer to offset")

    logits_of = inference_function(
        model, lambda outputs_of, batch: keras.ops.cast(outputs_of(batch), "float32"))
    logits, truth = held_out_logits(
        lambda batch: keras.ops.convert_to_numpy(logits_of(batch)), crops, labels)
    if truth.size == 0:
        return Calibration.none("no held-out pixels")
    calibration = fit_offsets(logits, truth)
    if calibration.applied:
        head.bias.assign(head.bias + np.asarray(calibration.offsets, np.float32))
        logger.info("logit offsets %s: held-out mean IoU %.4f -> %.4f",
                    calibration.offsets, calibration.before, calibration.after)
    return calibration
