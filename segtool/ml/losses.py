"""Losses and metrics for sparse labels: pixels marked 255 (unlabelled) count for nothing.

The loss is masked cross-entropy plus soft Dice. Both multiply every per-pixel term by the
labelled mask, so the gradient of the loss with respect to the logits is exactly zero at
unlabelled pixels, whatever the network predicts there. An optional pairwise term
(:func:`pairwise_loss`, ``TrainConfig.pairwise_weight``) does reach the unlabelled pixels: it
asks neighbours of similar intensity to agree, so a scribble can spread over its region up to
the edges. It is off: on real scribbles it helped cardiac MRI and cost nuclei and street scenes
(bench/README, "How far the four short margins are").
"""

from __future__ import annotations

import numpy as np

from segtool.ml.backend import keras

ops = keras.ops

UNLABELLED = 255
DICE_SMOOTHING = 1.0


def masked_loss(
    labels: keras.KerasTensor,
    logits: keras.KerasTensor,
    dice_weight: float = 1.0,
    class_weights: tuple[float, ...] | None = None,
) -> keras.KerasTensor:
    """Cross-entropy + ``dice_weight`` * soft Dice loss over labelled pixels only.

    Args:
        labels: ``(batch, H, W)`` integer class indices, 255 = unlabelled.
        logits: ``(batch, H, W, num_classes)`` float32 network output (no softmax).
        dice_weight: weight of the Dice term (0 for cross-entropy alone).
        class_weights: per-class weights of the cross-entropy terms (None: all 1); the
            weighted sum is divided by the sum of the labelled pixels' weights.

    Returns:
        A scalar float32 tensor. Cross-entropy is averaged over labelled pixels; Dice is
        ``1 - mean Dice`` over the classes present among the batch's labelled pixels. Zero
        when no pixel is labelled.
    """
    num_classes = logits.shape[-1]
    logits = ops.cast(logits, "float32")
    labels = ops.cast(labels, "int32")
    labelled = ops.cast(ops.not_equal(labels, UNLABELLED), "float32")
    safe_labels = ops.where(labels == UNLABELLED, 0, labels)
    pixel_weights = labelled
    if class_weights is not None:
        weights = ops.convert_to_tensor(np.asarray(class_weights, np.float32))
        pixel_weights = labelled * ops.take(weights, safe_labels)
    weight_sum = ops.sum(pixel_weights)

    cross_entropy = ops.sparse_categorical_crossentropy(safe_labels, logits, from_logits=True)
    cross_entropy = ops.sum(cross_entropy * pixel_weights) / ops.maximum(weight_sum, 1e-6)
    if dice_weight == 0:
        return cross_entropy

    pixel_weight = labelled[..., None]
    probabilities = ops.softmax(logits, axis=-1) * pixel_weight
    truth = ops.one_hot(safe_labels, num_classes) * pixel_weight
    axes = (0, 1, 2)
    intersection = ops.sum(probabilities * truth, axis=axes)
    total = ops.sum(probabilities, axis=axes) + ops.sum(truth, axis=axes)
    dice = (2.0 * intersection + DICE_SMOOTHING) / (total + DICE_SMOOTHING)
    present = ops.cast(ops.sum(truth, axis=axes) > 0, "float32")
    dice_loss = ops.sum((1.0 - dice) * present) / ops.maximum(ops.sum(present), 1.0)
    return cross_entropy + dice_weight * dice_loss


def unlabelled_entropy(labels: keras.KerasTensor, logits: keras.KerasTensor) -> keras.KerasTensor:
    """Mean entropy of the softmax over the unlabelled pixels (255), zero when there are none:
    entropy minimisation (Grandvalet and Bengio, 2004) pushes the class borders into regions
    the labels leave open. A scalar float32 tensor."""
    unlabelled = ops.cast(ops.equal(ops.cast(labels, "int32"), UNLABELLED), "float32")
    log_probabilities = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    entropy = -ops.sum(ops.exp(log_probabilities) * log_probabilities, axis=-1)
    return ops.sum(entropy * unlabelled) / ops.maximum(ops.sum(unlabelled), 1.0)


PAIRWISE_OFFSETS = tuple((dy * d, dx * d) for d in (1, 3, 6)
                         for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)))
"""Neighbour pairs of the pairwise term: four directions at 1, 3 and 6 pixels."""


def _shifted_pair(x: keras.KerasTensor, dy: int, dx: int) -> tuple[keras.KerasTensor, ...]:
    """``x[:, i, j]`` and ``x[:, i + dy, j + dx]`` for every pair inside the patch (dy >= 0)."""
    rows_a, rows_b = slice(None, -dy if dy else None), slice(dy, None)
    if dx >= 0:
        cols_a, cols_b = slice(None, -dx if dx else None), slice(dx, None)
    else:
        cols_a, cols_b = slice(-dx, None), slice(None, dx)
    return x[:, rows_a, cols_a], x[:, rows_b, cols_b]


def pairwise_loss(
    images: keras.KerasTensor, logits: keras.KerasTensor, sigma: float
) -> keras.KerasTensor:
    """A relaxed Potts term over all pixels, labelled or not: the mean over neighbour pairs
    (``PAIRWISE_OFFSETS``) of ``w * (1 - p_i . p_j)``, with ``w = exp(-|I_i - I_j|^2 /
    (2 sigma^2 C))`` from the ``(batch, H, W, C)`` input in [0, 1] and ``p`` the softmax.

    Neighbours of similar intensity are pushed to the same class, neighbours across an edge
    hardly at all: the regularised loss of weakly supervised segmentation (Tang et al.,
    "On Regularized Losses for Weakly-supervised CNN Segmentation", ECCV 2018), with a few
    sparse offsets for a kernel. A scalar float32 tensor in [0, 1].
    """
    images = ops.cast(images, "float32")
    probabilities = ops.softmax(ops.cast(logits, "float32"), axis=-1)
    channels = images.shape[-1] or 1
    scale = 1.0 / (2.0 * sigma * sigma * channels)
    terms = []
    for dy, dx in PAIRWISE_OFFSETS:
        image_a, image_b = _shifted_pair(images, dy, dx)
        prob_a, prob_b = _shifted_pair(probabilities, dy, dx)
        affinity = ops.exp(-ops.sum(ops.square(image_a - image_b), axis=-1) * scale)
        disagreement = 1.0 - ops.sum(prob_a * prob_b, axis=-1)
        terms.append(ops.mean(affinity * disagreement))
    return ops.mean(ops.stack(terms))


def iou_per_class(prediction: np.ndarray, truth: np.ndarray, num_classes: int) -> np.ndarray:
    """Intersection over union of each class, over pixels labelled in ``truth``.

    Args:
        prediction: ``(..., H, W)`` integer predicted classes.
        truth: same shape, integer classes, 255 = unlabelled (ignored).
        num_classes: number of classes.

    Returns:
        ``(num_classes,)`` float64; nan for a class with no labelled pixel in ``truth``.
    """
    if prediction.shape != truth.shape:
        raise ValueError(f"shapes differ: prediction {prediction.shape}, truth {truth.shape}")
    labelled = truth != UNLABELLED
    predicted = prediction[labelled]
    expected = truth[labelled]
    ious = np.full(num_classes, np.nan)
    for class_index in range(num_classes):
        is_expected = expected == class_index
        if not is_expected.any():
            continue
        is_predicted = predicted == class_index
        union = np.count_nonzero(is_expected | is_predicted)
        ious[class_index] = np.count_nonzero(is_expected & is_predicted) / union
    return ious


def mean_iou(ious: np.ndarray) -> float:
    """Mean of the per-class IoUs that are defined; nan when none is."""
    if np.all(np.isnan(ious)):
        return float("nan")
    return float(np.nanmean(ious))
