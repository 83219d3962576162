"""Which image the model is least sure of: uncertainty away from the predicted edges."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segtool.core.uncertainty import BOUNDARY_BAND, MAX_SCORED_PIXELS, image_uncertainty


def prediction_of(centres, radius, size=128):
    """Discs of class 1 whose rims the model is unsure of (confidence 130 within 1 px of the
    edge), everything else at confidence 250."""
    classes = np.zeros((size, size), np.uint8)
    for centre in centres:
        cv2.circle(classes, centre, radius, 1, -1)
    rim = cv2.morphologyEx(classes, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    confidence = np.where(rim, 130, 250).astype(np.uint8)
    return classes, confidence


def test_many_crisp_objects_rank_below_one_unknown_region():
    crowded = prediction_of([(x, y) for x in range(10, 128, 18) for y in range(10, 128, 18)], 6)
    plain, unknown_confidence = prediction_of([(64, 64)], 20)
    unknown_confidence[5:25, 5:35] = 120  # a patch the model does not know (no edge there)
    unknown = (plain, unknown_confidence)

    def plain_mean(prediction):
        return 1 - prediction[1].mean() / 255

    # The plain mean picks the crowded image (its many rims); the score picks the unknown.
    assert plain_mean(crowded) > plain_mean(unknown)
    assert image_uncertainty(*unknown) > image_uncertainty(*crowded)
    assert image_uncertainty(*crowded) == pytest.approx(1 - 250 / 255)


def test_all_edges_and_volumes_and_big_images():
    stripes = np.tile(np.array([0, 1], np.uint8), (8, 4))  # every pixel beside an edge
    confidence = np.full(stripes.shape, 200, np.uint8)
    assert image_uncertainty(stripes, confidence) == pytest.approx(1 - 200 / 255)

    classes, confidence = prediction_of([(30, 30)], 10)
    volume = image_uncertainty(np.stack([classes, classes]), np.stack([confidence, confidence]))
    assert volume == pytest.approx(image_uncertainty(classes, confidence))

    side = int(np.sqrt(MAX_SCORED_PIXELS)) * 3  # scored on a strided grid
    big = np.zeros((side, side), np.uint8)
    big[:, side // 2:] = 1
    big_confidence = np.full(big.shape, 240, np.uint8)
    big_confidence[:, side // 2 - BOUNDARY_BAND * 3: side // 2 + BOUNDARY_BAND * 3] = 10
    assert image_uncertainty(big, big_confidence) == pytest.approx(1 - 240 / 255, abs=0.01)
    with pytest.raises(ValueError, match="shapes differ"):
        image_uncertainty(big, confidence)
