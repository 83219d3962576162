"""Grow or shrink one class of a prediction: the class-probability threshold.

A model's arg-max draws each boundary where two classes are equally likely. Where the
person's idea of a boundary differs (nuclei annotated tighter than the model draws them, a
tumour drawn wider), moving that boundary for the whole image is one slider, not a polygon
per object: cellpose's GUI offers the same for cells ("cell probability threshold"). The
window's Layers panel sets a threshold per class, and what it shows is what Accept takes.

A prediction here is what :func:`segtool.ml.predict.predict_tiled` returns: ``classes`` (the
most probable class, 255 = no prediction) and ``confidence`` (its probability * 255). With
two classes that is the whole distribution: the other class has ``255 - confidence``. With
more, the runner-up is not kept, so raising a class's threshold leaves its less probable
pixels unproposed (255: neither shown nor accepted; the person paints them), and lowering
it below 50% changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from segtool.core.masks import UNLABELLED

NEUTRAL = 0.5  # the model's own arg-max


def threshold_class(
    classes: np.ndarray, confidence: np.ndarray, class_id: int, threshold: float,
    num_classes: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Propose ``class_id`` where the model gives it a probability of at least
    ``threshold`` (0 < threshold < 1), its neighbours elsewhere.

    ``num_classes`` is the model's class count (None: not known, treated as more than two).
    Returns new ``(classes, confidence)``; the inputs are not changed. At ``NEUTRAL`` the
    inputs themselves are returned.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be strictly between 0 and 1, got {threshold}")
    if classes.shape != confidence.shape:
        raise ValueError(f"confidence {confidence.shape} does not match {classes.shape}")
    if threshold == NEUTRAL:
        return classes, confidence
    level = threshold * 255.0
    shrink = (classes == class_id) & (confidence < level)
    out_classes, out_confidence = classes.copy(), confidence.copy()
    if num_classes == 2 and class_id in (0, 1):
        other = 1 - class_id
        grow = (classes == other) & (255 - confidence.astype(np.int16) >= level)
        changed = shrink | grow
        out_classes[shrink] = other
        out_classes[grow] = class_id
        out_confidence[changed] = 255 - confidence[changed]
    else:
        out_classes[shrink] = UNLABELLED
    return out_classes, out_confidence


def apply_thresholds(
    classes: np.ndarray, confidence: np.ndarray, thresholds: Mapping[int, float],
    num_classes: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`threshold_class` for every class of ``thresholds`` (class -> threshold) that
    is not neutral, in class order."""
    for class_id in sorted(thresholds):
        classes, confidence = threshold_class(classes, confidence, class_id,
                                              thresholds[class_id], num_classes)
    return classes, confidence
