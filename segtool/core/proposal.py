"""Grow or shrink one class of a prediction: the class-probability threshold.

A model's arg-max draws each boundary where two classes are equally likely. Where the
person's idea of a boundary differs (nuclei annotated tighter than the model draws them, a
tumour drawn wider), moving that boundary for the whole image is one slider, not a polygon
per object: cellpose's GUI offers the same for cells ("cell probability threshold"). The
window's Layers panel sets a threshold per class, and what it shows is what Accept takes.

A prediction here is what :func:`segtool.ml.predict.predict_tiled` returns: ``classes`` (the
most probable class, 255 = no prediction) and ``confidence`` (its probability * 255), and
for more than two classes the runner-up ``(second, second_confidence)``. The rule works on
the two most probable classes of each pixel: ``class_id`` is shown where it is one of them
and holds at least ``threshold`` of their summed probability; where it is the first and does
not, the second is shown. With two classes that share is the class's probability, and the
runner-up is the other class (``255 - confidence``). At 50% the rule is the arg-max. With
more classes and no runner-up given (volumes), raising a class's threshold leaves its pixels
below the threshold unproposed (255: neither shown nor accepted; the person paints them),
and lowering it below 50% changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from segtool.core.masks import UNLABELLED

NEUTRAL = 0.5  # the model's own arg-max

RunnerUp = tuple[np.ndarray, np.ndarray]  # (second class, its confidence), (H, W) uint8


def threshold_class(
    classes: np.ndarray, confidence: np.ndarray, class_id: int, threshold: float,
    num_classes: int | None, runner_up: RunnerUp | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Propose ``class_id`` where it holds at least ``threshold`` (0 < threshold < 1) of
    the probability of the pixel's two most probable classes (see the module docstring).

    ``num_classes`` is the model's class count (None: not known); ``runner_up`` as
    ``predict_tiled(..., runner_up=True)`` gives it. Returns new ``(classes, confidence)``;
    the inputs are not changed. At ``NEUTRAL`` the inputs themselves are returned.
    """
    return _threshold(classes, confidence, class_id, threshold, num_classes, runner_up)[:2]


def apply_thresholds(
    classes: np.ndarray, confidence: np.ndarray, thresholds: Mapping[int, float],
    num_classes: int | None, runner_up: RunnerUp | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`threshold_class` for every class of ``thresholds`` (class -> threshold), in
    class order, each on the result of the one before."""
    for class_id in sorted(thresholds):
        classes, confidence, runner_up = _threshold(
            classes, confidence, class_id, thresholds[class_id], num_classes, runner_up)
    return classes, confidence


def _threshold(
    classes: np.ndarray, confidence: np.ndarray, class_id: int, threshold: float,
    num_classes: int | None, runner_up: RunnerUp | None,
) -> tuple[np.ndarray, np.ndarray, RunnerUp | None]:
    """The rule, also returning the runner-up after it (None where it is implied or not
    known)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be strictly between 0 and 1, got {threshold}")
    arrays = (confidence, *(runner_up or ()))
    if any(array.shape != classes.shape for array in arrays):
        raise ValueError(f"confidence or runner-up does not match {classes.shape}")
    if threshold == NEUTRAL:
        return classes, confidence, runner_up  # the arg-max, as it stands
    implied = runner_up is None and num_classes == 2 and class_id in (0, 1)
    if implied:  # two classes: the runner-up is the other one
        runner_up = (np.where(classes == UNLABELLED, UNLABELLED, 1 - classes).astype(np.uint8),
                     255 - confidence)
    out_classes, out_confidence = classes.copy(), confidence.copy()
    if runner_up is None:  # more classes, second not known: leave the pixels to the person
        out_classes[(classes == class_id) & (confidence < threshold * 255.0)] = UNLABELLED
        return out_classes, out_confidence, None
    second, second_confidence = runner_up
    pair = confidence.astype(np.float32) + second_confidence  # the top two's probability
    shrink = (classes == class_id) & (confidence < threshold * pair) & (second != UNLABELLED)
    grow = ((second == class_id) & (classes != class_id) & (classes != UNLABELLED)
            & (second_confidence >= threshold * pair))
    swap = shrink | grow
    out_classes[swap] = second[swap]
    out_confidence[swap] = second_confidence[swap]
    if implied:
        return out_classes, out_confidence, None
    out_second, out_second_confidence = second.copy(), second_confidence.copy()
    out_second[swap] = classes[swap]
    out_second_confidence[swap] = confidence[swap]
    return out_classes, out_confidence, (out_second, out_second_confidence)
