"""The class-probability threshold (core/proposal.py): grow or shrink one class of a
prediction as the Layers panel's slider does, checked against the full probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from segtool.core.masks import UNLABELLED
from segtool.core.proposal import NEUTRAL, apply_thresholds, threshold_class


def _two_class_prediction(seed=0, shape=(40, 50)):
    """(p(class 1), classes, confidence) as predict_tiled gives them for two classes."""
    p1 = np.random.default_rng(seed).random(shape)
    classes = (p1 > 0.5).astype(np.uint8)
    confidence = np.rint(np.where(classes == 1, p1, 1 - p1) * 255).astype(np.uint8)
    return p1, classes, confidence


@pytest.mark.parametrize("threshold", [0.2, 0.35, 0.65, 0.8, 0.93])
def test_two_classes_propose_class_one_exactly_where_its_probability_reaches_the_threshold(
        threshold):
    p1, classes, confidence = _two_class_prediction()
    before = (classes.copy(), confidence.copy())
    shown, shown_confidence = threshold_class(classes, confidence, 1, threshold, 2)
    # Within the uint8 rounding of the confidence (half a level), the rule is p1 >= threshold.
    clear = np.abs(p1 - threshold) > 1 / 255
    assert np.array_equal(shown[clear], (p1 >= threshold)[clear].astype(np.uint8))
    assert 0 < np.count_nonzero(shown != classes)  # the test moves real pixels
    # The confidence stays the probability of the class shown.
    p_shown = np.where(shown == 1, p1, 1 - p1)
    assert np.abs(shown_confidence / 255 - p_shown).max() <= 0.5 / 255 + 1e-9
    assert np.array_equal(classes, before[0]) and np.array_equal(confidence, before[1])


def test_a_threshold_on_class_zero_moves_the_boundary_the_other_way():
    p1, classes, confidence = _two_class_prediction(seed=1)
    shown, _ = threshold_class(classes, confidence, 0, 0.7, 2)  # background needs p >= 0.7
    clear = np.abs((1 - p1) - 0.7) > 1 / 255
    assert np.array_equal(shown[clear], ((1 - p1) < 0.7)[clear].astype(np.uint8))


def test_neutral_returns_the_prediction_and_bad_thresholds_are_refused():
    _, classes, confidence = _two_class_prediction()
    shown = threshold_class(classes, confidence, 1, NEUTRAL, 2)
    assert shown[0] is classes and shown[1] is confidence
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="strictly between"):
            threshold_class(classes, confidence, 1, bad, 2)
    with pytest.raises(ValueError, match="does not match"):
        threshold_class(classes, confidence[:, :-1], 1, 0.6, 2)


def test_more_classes_shrink_to_unproposed_pixels_and_do_not_grow():
    classes = np.array([[0, 1, 2, 1, UNLABELLED]], np.uint8)
    confidence = np.array([[200, 90, 150, 230, 0]], np.uint8)
    shrunk, shrunk_confidence = threshold_class(classes, confidence, 1, 0.6, 3)
    # the runner-up of a three-class pixel is not known: the weak class-1 pixel is left
    # for the person (255 is neither shown nor accepted), the confident one stays
    assert shrunk.tolist() == [[0, UNLABELLED, 2, 1, UNLABELLED]]
    assert np.array_equal(shrunk_confidence, confidence)
    grown, _ = threshold_class(classes, confidence, 1, 0.2, 3)
    assert np.array_equal(grown, classes)
    # an unknown class count is treated the same way
    assert np.array_equal(threshold_class(classes, confidence, 1, 0.6, None)[0], shrunk)


def test_thresholds_of_several_classes_apply_in_class_order():
    p1, classes, confidence = _two_class_prediction(seed=2)
    both, _ = apply_thresholds(classes, confidence, {1: 0.7, 0: 0.5}, 2)
    one, _ = threshold_class(classes, confidence, 1, 0.7, 2)
    assert np.array_equal(both, one)
    none, _ = apply_thresholds(classes, confidence, {}, 2)
    assert none is classes


@pytest.mark.parametrize("class_id, threshold", [(1, 0.3), (1, 0.7), (2, 0.2), (0, 0.85)])
def test_more_classes_with_the_runner_up_use_the_top_two_share(class_id, threshold):
    probabilities = np.random.default_rng(class_id).dirichlet((1.0, 1.0, 1.0, 1.0), (30, 40))
    order = np.argsort(-probabilities, axis=-1)
    top, runner = order[..., 0], order[..., 1]
    p_top = np.take_along_axis(probabilities, order[..., :1], -1)[..., 0]
    p_runner = np.take_along_axis(probabilities, order[..., 1:2], -1)[..., 0]
    classes, confidence = top.astype(np.uint8), np.rint(p_top * 255).astype(np.uint8)
    runner_up = (runner.astype(np.uint8), np.rint(p_runner * 255).astype(np.uint8))
    shown, _ = threshold_class(classes, confidence, class_id, threshold, 4, runner_up)
    p_class = probabilities[..., class_id]
    share = p_class / (p_top + p_runner)
    expected = top.copy()
    in_pair = (top == class_id) | (runner == class_id)
    expected[in_pair & (share >= threshold)] = class_id
    loses = (top == class_id) & (share < threshold)
    expected[loses] = runner[loses]
    clear = np.abs(share - threshold) > 0.02
    assert np.array_equal(shown[clear], expected[clear])
    assert np.count_nonzero(shown != classes) > 10
    # 50% is the arg-max itself
    assert threshold_class(classes, confidence, class_id, NEUTRAL, 4, runner_up)[0] is classes
