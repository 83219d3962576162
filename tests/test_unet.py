"""The U-Net builder and the head swap used when a class is added."""

from __future__ import annotations

import numpy as np
import pytest

from segtool.ml.backend import keras
from segtool.ml.unet import adapt_classes, build_unet, model_channels, model_classes


@pytest.mark.parametrize("channels", [1, 3])
def test_unet_maps_an_image_to_one_logit_per_class(channels):
    model = build_unet(channels, num_classes=4, depth=2, base_filters=8)
    images = np.random.default_rng(0).random((2, 48, 64, channels), dtype=np.float32)

    logits = np.asarray(model(images, training=False))

    assert logits.shape == (2, 48, 64, 4)
    assert logits.dtype == np.float32
    # Logits, not probabilities: they do not sum to 1 over the classes.
    assert not np.allclose(logits.sum(axis=-1), 1.0)
    assert model_channels(model) == channels
    assert model_classes(model) == 4


def test_depth_and_base_filters_shape_the_network():
    model = build_unet(1, 2, depth=3, base_filters=12)

    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert len(pools) == 3
    assert model.get_layer("down0_conv1").filters == 12
    assert model.get_layer("bottom_conv1").filters == 12 * 2**3


def test_batch_norm_tracks_short_runs():
    model = build_unet(1, 2, depth=2, base_filters=8)

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms
    assert all(layer.momentum == pytest.approx(0.9) for layer in norms)


def test_group_normalization_variant_builds():
    model = build_unet(3, 2, depth=2, base_filters=8, normalization="group")

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.GroupNormalization)]
    assert norms
    assert model(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 32, 32, 2)


@pytest.mark.parametrize(("channels", "classes", "depth"), [(2, 2, 2), (1, 1, 2), (1, 2, 0)])
def test_bad_arguments_are_refused(channels, classes, depth):
    with pytest.raises(ValueError):
        build_unet(channels, classes, depth=depth, base_filters=8)


def test_adapt_classes_rebuilds_only_the_last_layer():
    model = build_unet(1, 2, depth=2, base_filters=8)
    images = np.random.default_rng(1).random((1, 32, 32, 1), dtype=np.float32)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}
    old_logits = np.asarray(model(images, training=False))

    adapted = adapt_classes(model, 3)

    assert model_classes(adapted) == 3
    for layer in adapted.layers:
        if layer.name == "logits":
            continue
        for kept, original in zip(layer.get_weights(), before[layer.name], strict=True):
            np.testing.assert_array_equal(kept, original)
    # The classes the model knew keep their predictions; the new class gets a logit.
    new_logits = np.asarray(adapted(images, training=False))
    np.testing.assert_allclose(new_logits[..., :2], old_logits, atol=1e-5)
    # The original model is untouched and does not share variables with the copy.
    assert model_classes(model) == 2
    adapted.get_layer("down0_conv1").kernel.assign(np.zeros_like(before["down0_conv1"][0]))
    np.testing.assert_array_equal(
        model.get_layer("down0_conv1").get_weights()[0], before["down0_conv1"][0]
    )


def test_adapt_classes_refuses_fewer_classes():
    model = build_unet(1, 3, depth=2, base_filters=8)
    with pytest.raises(ValueError, match="fewer"):
        adapt_classes(model, 2)
