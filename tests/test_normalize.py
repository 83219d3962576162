"""Percentile normalisation for the model and window/level for the display."""

from __future__ import annotations

import numpy as np
import pytest

from segtool.core.normalize import normalize, percentiles, quantile_level, to_display


def test_16bit_image_using_a_narrow_range_spans_zero_to_one():
    rng = np.random.default_rng(0)
    image = rng.integers(1000, 1401, size=(96, 96), dtype=np.uint16)
    out = normalize(image)
    assert out.shape == (96, 96, 1) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    # Most pixels land inside (0, 1): the range is used, not squashed near one end.
    assert 0.4 < float(out.mean()) < 0.6
    assert np.percentile(out, 5) < 0.1 and np.percentile(out, 95) > 0.9


def test_percentiles_ignore_outliers():
    image = np.full((100, 100), 500, dtype=np.uint16)
    image[:50] = 300
    image[0, 0] = 65535  # one hot pixel must not decide the window
    lo, hi = percentiles(image)
    assert (lo, hi) == (300.0, 500.0)
    out = normalize(image)
    assert out[60, 60, 0] == 1.0 and out[10, 10, 0] == 0.0


def test_rgb_keeps_three_channels_and_colour_balance():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    image[..., 0] = 200  # red image: channels pooled, so it stays red, not white
    image[:4] = 0
    out = normalize(image)
    assert out.shape == (8, 8, 3)
    np.testing.assert_array_equal(out[6, 6], [1.0, 0.0, 0.0])


def test_flat_and_nan_images_do_not_divide_by_zero():
    flat = np.full((10, 10), 7, dtype=np.uint8)
    assert np.all(normalize(flat) == 0.0)
    values = np.linspace(-1000, 1000, 100, dtype=np.float32).reshape(10, 10)
    values[0, 0] = np.nan
    out = normalize(values)
    assert np.isfinite(out).all() and out[0, 0, 0] == 0.0


def test_large_images_are_subsampled_but_close():
    rng = np.random.default_rng(1)
    image = rng.normal(1000, 100, size=(1500, 1500)).astype(np.float32)
    lo, hi = percentiles(image)
    exact_lo, exact_hi = np.percentile(image, (1.0, 99.8))
    assert abs(lo - exact_lo) < 5 and abs(hi - exact_hi) < 10


def test_percentile_arguments_are_checked():
    with pytest.raises(ValueError):
        percentiles(np.zeros((4, 4)), low=50, high=10)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_to_display_windows_into_uint8(dtype):
    image = np.array([[100, 150, 200], [50, 250, 175]], dtype=dtype)
    out = to_display(image, 100, 200)
    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(out, [[0, 128, 255], [0, 255, 191]])


def test_to_display_keeps_rgb_and_defaults_to_percentiles():
    rng = np.random.default_rng(2)
    image = rng.integers(1000, 1401, size=(32, 32, 3), dtype=np.uint16)
    out = to_display(image)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255


def test_quantile_level_is_that_percentile_of_the_windowed_image():
    rng = np.random.default_rng(1)
    ground = rng.integers(90, 110, size=(80, 80), dtype=np.uint16)
    ground[20:30, 20:30] = 4000  # a few bright objects on a dark ground
    window = percentiles(ground)
    for q in (50, 75):
        assert quantile_level(ground, window, q) == pytest.approx(
            float(np.percentile(normalize(ground), q)), abs=1e-6)
    assert quantile_level(ground, window, 75) < 0.05
    colour = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)  # channels pooled
    assert quantile_level(colour, percentiles(colour), 75) == pytest.approx(
        float(np.percentile(normalize(colour), 75)), abs=0.01)
    assert quantile_level(np.full((5, 5), 7.0), (7.0, 8.0), 75) == 0.0  # flat
