"""Sparse labels: unlabelled pixels (255) contribute nothing to the loss, gradients or metrics.

A note on what "nothing" can honestly mean. A convolution at a labelled pixel sees the image
around it, so image content near labels does shape the loss; and in training mode batch
normalisation's statistics pool the whole patch. What must hold, and is tested here:

* the gradient of the loss with respect to the logits is exactly zero at unlabelled pixels,
  so whatever the network predicts there is never pushed anywhere;
* the loss does not change when the predictions at unlabelled pixels change;
* image content outside the receptive field of every labelled pixel changes no weight
  gradient (normalisation in inference mode, so the only path is through convolutions);
* metrics ignore unlabelled pixels.
"""

from __future__ import annotations

import numpy as np
import pytest

from segtool.ml.backend import keras, tf
from segtool.ml.losses import (
    iou_per_class,
    masked_loss,
    mean_iou,
    pairwise_loss,
    unlabelled_entropy,
)
from segtool.ml.unet import build_unet


def sparse_labels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random classes 0..2 on ~10% of the pixels, 255 elsewhere."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=shape).astype(np.uint8)
    labels[rng.random(shape) > 0.1] = 255
    return labels


@pytest.mark.parametrize("dice_weight", [0.0, 1.0])
def test_loss_gradient_is_exactly_zero_at_unlabelled_pixels(dice_weight):
    labels = sparse_labels((2, 24, 24))
    logits = tf.Variable(np.random.default_rng(1).normal(size=(2, 24, 24, 3)).astype("float32"))

    with tf.GradientTape() as tape:
        loss = masked_loss(labels, logits, dice_weight)
    gradient = tape.gradient(loss, logits).numpy()

    unlabelled = labels == 255
    assert np.all(gradient[unlabelled] == 0.0)
    assert np.all(np.abs(gradient[~unlabelled]).sum(axis=-1) > 0)


def test_loss_ignores_predictions_at_unlabelled_pixels():
    labels = sparse_labels((2, 24, 24), seed=2)
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 24, 24, 3)).astype("float32")
    changed = logits.copy()
    changed[labels == 255] = rng.normal(scale=10.0, size=changed[labels == 255].shape)

    assert float(masked_loss(labels, changed)) == pytest.approx(float(masked_loss(labels, logits)))


def test_loss_falls_as_predictions_match_labels():
    labels = sparse_labels((1, 16, 16), seed=4)
    safe = np.where(labels == 255, 0, labels)
    right = 5.0 * np.eye(3, dtype="float32")[safe]
    wrong = 5.0 * np.eye(3, dtype="float32")[(safe + 1) % 3]

    assert float(masked_loss(labels, right)) < 0.05
    assert float(masked_loss(labels, wrong)) > 2.0


def test_no_labelled_pixel_gives_zero_loss():
    labels = np.full((1, 8, 8), 255, np.uint8)
    assert float(masked_loss(labels, np.ones((1, 8, 8, 2), "float32"))) == 0.0


def weight_gradients(model: keras.Model, image: np.ndarray, labels: np.ndarray) -> list:
    with tf.GradientTape() as tape:
        loss = masked_loss(labels, model(image, training=False))
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def test_image_content_far_from_labels_changes_no_weight_gradient():
    model = build_unet(1, 2, depth=2, base_filters=8)
    rng = np.random.default_rng(5)
    image = rng.random((1, 128, 128, 1), dtype=np.float32)
    labels = np.full((1, 128, 128), 255, np.uint8)
    labels[0, :16, :16] = rng.integers(0, 2, size=(16, 16))
    # The receptive field of a depth-2 U-Net is under 50 px across: content 64 px away from
    # every labelled pixel cannot reach their logits.
    far = image.copy()
    far[0, 80:, :] = rng.random((48, 128, 1))
    far[0, :, 80:] = rng.random((128, 48, 1))
    near = image.copy()
    near[0, 16:24, :16] = 1.0 - near[0, 16:24, :16]

    reference = weight_gradients(model, image, labels)
    after_far_change = weight_gradients(model, far, labels)
    after_near_change = weight_gradients(model, near, labels)

    for expected, got in zip(reference, after_far_change, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-8)
    # Control: content next to the labels does change the gradients (the test can fail).
    assert any(
        not np.allclose(got, expected, rtol=1e-3, atol=1e-6)
        for expected, got in zip(reference, after_near_change, strict=True)
    )


def test_iou_ignores_unlabelled_pixels_and_marks_absent_classes():
    truth = np.array([[0, 0, 1, 255], [1, 1, 255, 255]], np.uint8)
    prediction = np.array([[0, 1, 1, 2], [1, 0, 2, 2]], np.uint8)

    ious = iou_per_class(prediction, truth, 3)

    # class 0: truth {(0,0),(0,1)}, predicted {(0,0),(1,1)} -> 1 / 3
    # class 1: truth {(0,2),(1,0),(1,1)}, predicted {(0,1),(0,2),(1,0)} -> 2 / 4
    np.testing.assert_allclose(ious[:2], [1 / 3, 2 / 4])
    assert np.isnan(ious[2])  # only predicted where nothing is labelled
    assert mean_iou(ious) == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert np.isnan(mean_iou(np.full(2, np.nan)))


def _two_region_image() -> np.ndarray:
    """(1, 32, 32, 1): dark left half, bright right half."""
    image = np.zeros((1, 32, 32, 1), np.float32)
    image[:, :, 16:] = 1.0
    return image


def _split_logits(column: int) -> np.ndarray:
    """Confident class 0 left of ``column``, class 1 from it on."""
    logits = np.zeros((1, 32, 32, 2), np.float32)
    logits[:, :, :column, 0] = 10.0
    logits[:, :, column:, 1] = 10.0
    return logits


def test_pairwise_term_prefers_class_edges_on_image_edges():
    image = _two_region_image()
    on_edge = float(pairwise_loss(image, _split_logits(16), 0.1))
    inside_region = float(pairwise_loss(image, _split_logits(8), 0.1))

    assert on_edge < 1e-3
    assert inside_region > 50 * on_edge


def test_pairwise_term_reaches_unlabelled_pixels():
    """Unlike the masked loss, its gradient is non-zero at pixels no label covers."""
    image = _two_region_image()
    logits = tf.Variable(_split_logits(8))

    with tf.GradientTape() as tape:
        loss = pairwise_loss(image, logits, 0.1)
    gradient = np.abs(tape.gradient(loss, logits).numpy()).sum(axis=-1)[0]

    assert gradient[:, 7:9].min() > 0  # the class edge inside the dark region is pulled
    assert gradient[:, 0:2].max() < 1e-6  # agreeing neighbours far from it are not


def test_entropy_term_counts_only_unlabelled_pixels():
    labels = np.full((1, 4, 4), 255, np.uint8)
    labels[0, :2] = 1  # the top half is labelled
    logits = np.zeros((1, 4, 4, 3), np.float32)  # uniform: entropy log 3 everywhere
    logits[0, :2, :, 1] = 50.0  # confident where labelled
    assert float(unlabelled_entropy(labels, logits)) == pytest.approx(np.log(3), rel=1e-5)
    logits[0, 2:, :, 0] = 50.0  # confident everywhere: no entropy left
    assert float(unlabelled_entropy(labels, logits)) == pytest.approx(0.0, abs=1e-5)
    everything = np.ones((1, 4, 4), np.uint8)  # nothing unlabelled
    assert float(unlabelled_entropy(everything, np.zeros((1, 4, 4, 3), np.float32))) == 0.0


def test_training_loss_adds_the_weighted_entropy_term():
    from segtool.ml.train import TrainConfig, _loss_function

    rng = np.random.default_rng(5)
    images = rng.random((2, 8, 8, 1)).astype(np.float32)
    labels = np.full((2, 8, 8), 255, np.uint8)
    labels[:, :3] = rng.integers(0, 2, (2, 3, 8))
    logits = rng.normal(size=(2, 8, 8, 2)).astype(np.float32)
    plain = float(_loss_function(TrainConfig())(images, labels, logits))
    weighted = float(_loss_function(TrainConfig(entropy_weight=0.5))(images, labels, logits))
    entropy = float(unlabelled_entropy(labels, logits))
    assert entropy > 0.1
    assert weighted == pytest.approx(plain + 0.5 * entropy, rel=1e-5)
