"""Logit offsets fitted on held-out pixels: where borders are known, they move; else not."""

from __future__ import annotations

import numpy as np
import pytest

from segtool.ml.calibration import (
    MIN_BORDER_SHARE,
    MIN_GAIN,
    fit_offsets,
    held_out_logits,
    labelled_border_share,
)

UNLABELLED = 255


def _row_logits(border: float, true_border: int, width: int = 200, rows: int = 40):
    """Pixels along rows: class 1 left of ``true_border``; the logits favour class 1 up to
    ``border`` (a model drawing the object too wide when border > true_border)."""
    x = np.tile(np.arange(width, dtype=np.float32), rows)
    logit_one = (border - x) / 10.0  # crosses zero at ``border``
    logits = np.stack([np.zeros_like(logit_one), logit_one], axis=1)
    truth = (x < true_border).astype(np.uint8)
    return logits, truth


def test_offsets_move_a_border_drawn_too_wide_back_to_the_truth():
    logits, truth = _row_logits(border=60.0, true_border=40)
    calibration = fit_offsets(logits, truth)
    assert calibration.applied
    assert calibration.offsets[0] == 0.0
    assert calibration.offsets[1] < 0  # less of class 1
    assert calibration.after > calibration.before + 0.05
    moved = np.argmax(logits + np.asarray(calibration.offsets, np.float32), axis=1)
    first_row = moved[:200]
    assert abs(int(np.count_nonzero(first_row == 1)) - 40) <= 2


def test_a_border_already_in_place_keeps_the_model_as_it_is():
    logits, truth = _row_logits(border=40.0, true_border=40)
    calibration = fit_offsets(logits, truth)
    assert not calibration.applied
    assert calibration.offsets == (0.0, 0.0)
    assert calibration.after == calibration.before == pytest.approx(1.0)


def test_a_gain_below_the_noise_floor_is_not_taken():
    # One pixel too wide on a 400-px object: worth less than MIN_GAIN of mean IoU.
    logits, truth = _row_logits(border=401.0, true_border=400, width=1000)
    assert fit_offsets(logits, truth).before > 1 - MIN_GAIN
    assert not fit_offsets(logits, truth).applied
    # The same pixel on a 40-px object is worth it.
    logits, truth = _row_logits(border=41.0, true_border=40, width=1000)
    assert fit_offsets(logits, truth).applied


def test_one_class_held_out_fits_nothing():
    logits = np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32)
    calibration = fit_offsets(logits, np.ones(500, np.uint8))
    assert not calibration.applied


def test_three_classes_each_get_their_own_offset():
    logits, truth = _row_logits(border=60.0, true_border=40)
    # A third class, drawn too narrow: it is right of 150 but the model says right of 170.
    x = np.tile(np.arange(200, dtype=np.float32), 40)
    logit_two = (x - 170.0) / 10.0
    logits = np.concatenate([logits, logit_two[:, None]], axis=1)
    truth = np.where(x >= 150, 2, truth).astype(np.uint8)
    calibration = fit_offsets(logits, truth)
    assert calibration.offsets[1] < 0 < calibration.offsets[2]
    assert calibration.after > calibration.before + 0.05


def test_a_class_with_no_held_out_pixel_keeps_its_logit():
    logits, truth = _row_logits(border=60.0, true_border=40)
    # A third class the held-out pixels never show, predicted (wrongly) at a few pixels.
    x = np.tile(np.arange(200, dtype=np.float32), 40)
    logit_two = np.where((x > 100) & (x < 110), 5.0, -5.0).astype(np.float32)
    logits = np.concatenate([logits, logit_two[:, None]], axis=1)
    calibration = fit_offsets(logits, truth)
    assert calibration.offsets[1] < 0
    assert calibration.offsets[2] == 0.0


def test_held_out_logits_keeps_only_held_out_pixels():
    crops = np.zeros((3, 8, 8, 1), np.float32)
    labels = np.full((3, 8, 8), UNLABELLED, np.uint8)
    labels[0, :2, :2] = 1
    labels[2, 5, 5] = 0

    def logits_of(batch):
        return np.ones(batch.shape[:3] + (2,), np.float32)

    logits, truth = held_out_logits(logits_of, crops, labels, batch=2)
    assert logits.shape == (5, 2)
    assert sorted(truth.tolist()) == [0, 1, 1, 1, 1]


def test_dense_masks_show_borders_scribbles_do_not():
    dense = np.zeros((40, 40), np.uint8)
    dense[10:20, 10:20] = 1
    assert labelled_border_share([dense]) == 1.0
    scribbles = np.full((40, 40), UNLABELLED, np.uint8)
    scribbles[14:16, 12:18] = 1  # a stroke inside the object
    scribbles[30:32, 5:35] = 0  # a stroke in the background
    assert labelled_border_share([scribbles]) == 0.0
    assert labelled_border_share([scribbles]) < MIN_BORDER_SHARE <= labelled_border_share([dense])
    # Half the image labelled densely: the edge along the unlabelled half counts against.
    half = dense.copy()
    half[:, 20:] = UNLABELLED
    assert 0.0 < labelled_border_share([half]) < 1.0
    assert labelled_border_share([np.full((5, 5), UNLABELLED, np.uint8)]) == 0.0


def test_a_model_without_a_logits_layer_is_left_alone():
    from segtool.ml.backend import keras
    from segtool.ml.calibration import calibrate_model

    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Softmax()(keras.layers.Conv2D(2, 1)(inputs))
    model = keras.Model(inputs, outputs)
    before = [w.copy() for w in model.get_weights()]
    dense = np.zeros((8, 8), np.uint8)
    dense[2:6, 2:6] = 1
    calibration = calibrate_model(model, [dense], np.zeros((1, 8, 8, 1), np.float32),
                                  dense[None])
    assert not calibration.applied
    assert calibration.reason() == "logit offsets: none (the model has no logits layer to offset)"
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
