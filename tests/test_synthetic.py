"""The synthetic nuclei generator: deterministic, realistic enough, hard for Otsu."""

from __future__ import annotations

import cv2
import numpy as np

from segtool.core.synthetic import nuclei_image


def otsu_threshold(image: np.ndarray) -> int:
    """Otsu's threshold on a uint16 image (OpenCV's Otsu takes 8-bit only)."""
    hist = np.bincount(image.ravel()).astype(np.float64)
    levels = np.arange(hist.size)
    weight_low = np.cumsum(hist)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(hist * levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_low = sum_low / weight_low
        mean_high = (sum_low[-1] - sum_low) / weight_high
        between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return int(np.nanargmax(between))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_shapes_dtypes_and_values():
    image, truth = nuclei_image(size=96, seed=3)
    assert image.shape == truth.shape == (96, 96)
    assert image.dtype == np.uint16 and truth.dtype == np.uint8
    assert set(np.unique(truth)) == {0, 1}
    assert 0.08 < truth.mean() < 0.35
    assert image.max() > 255  # really 16-bit, not 8-bit in a 16-bit container


def test_deterministic_per_seed():
    first = nuclei_image(size=64, seed=5)
    again = nuclei_image(size=64, seed=5)
    other = nuclei_image(size=64, seed=6)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_nuclei_are_brighter_than_background_on_average():
    image, truth = nuclei_image(size=128, seed=1)
    assert image[truth == 1].mean() > 1.5 * image[truth == 0].mean()


def test_nucleus_sizes_span_small_to_large():
    _, truth = nuclei_image(size=512, seed=0)
    count, _, stats, _ = cv2.connectedComponentsWithStats(truth, connectivity=4)
    areas = stats[1:, cv2.CC_STAT_AREA]
    # Radii 6-20 px: areas from ~70 px (small, elongated) to ~1250 px; clusters of
    # touching nuclei make some components bigger still.
    assert count > 60
    assert areas.min() < 250 and np.median(areas) > 250 and areas.max() > 900


def test_global_otsu_is_imperfect_but_not_useless():
    scores = []
    for seed in range(3):
        image, truth = nuclei_image(size=256, seed=seed)
        scores.append(iou(image > otsu_threshold(image), truth.astype(bool)))
    assert 0.55 < np.mean(scores) < 0.88, scores


def test_background_is_uneven():
    image, truth = nuclei_image(size=256, seed=2)
    background = np.where(truth == 0, image.astype(np.float32), np.nan)
    blocks = background.reshape(8, 32, 8, 32)
    block_means = np.nanmedian(blocks, axis=(1, 3))
    assert np.nanmax(block_means) - np.nanmin(block_means) > 150  # photons
