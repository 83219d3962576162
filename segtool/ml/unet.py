"""The U-Net: a Keras 3 functional builder, and the head swap used when classes are added.

The network takes a normalised image ``(batch, H, W, C)`` float32 (C = 1 or 3; H and W
multiples of ``2 ** depth``) and returns per-class logits ``(batch, H, W, num_classes)``
float32 with no softmax. Layers are named so ``model.get_layer("logits")`` finds the head.
"""

from __future__ import annotations

import enum

from segtool.ml.backend import keras

layers = keras.layers

LOGITS_LAYER = "logits"


class Normalization(str, enum.Enum):
    """Feature normalisation after each convolution."""

    BATCH = "batch"
    """BatchNormalization(momentum=0.9): fast; the moving statistics settle in a few
    dozen steps (the default 0.99 lags behind short fine-tuning runs and breaks
    inference mode)."""
    GROUP = "group"
    """GroupNormalization: identical in training and inference mode; slower on a CPU."""


def _group_count(filters: int) -> int:
    """The largest group count <= 8 that divides ``filters`` with >= 4 channels a group."""
    for groups in range(min(8, max(1, filters // 4)), 0, -1):
        if filters % groups == 0:
            return groups
    return 1


def _conv_block(
    features: keras.KerasTensor, filters: int, normalization: Normalization, name: str
) -> keras.KerasTensor:
    """Two 3x3 convolutions, each followed by normalisation and ReLU."""
    for index in (1, 2):
        features = layers.Conv2D(
            filters, 3, padding="same", use_bias=False, name=f"{name}_conv{index}"
        )(features)
        if normalization is Normalization.BATCH:
            features = layers.BatchNormalization(momentum=0.9, name=f"{name}_norm{index}")(features)
        else:
            features = layers.GroupNormalization(
                groups=_group_count(filters), name=f"{name}_norm{index}"
            )(features)
        features = layers.Activation("relu", name=f"{name}_relu{index}")(features)
    return features


def build_unet(
    input_channels: int,
    num_classes: int,
    depth: int = 3,
    base_filters: int = 16,
    normalization: Normalization | str = Normalization.BATCH,
    name: str = "unet",
) -> keras.Model:
    """Build a U-Net that maps ``(batch, H, W, input_channels)`` to class logits.

    Args:
        input_channels: 1 (grayscale) or 3 (RGB).
        num_classes: number of output channels, one logit per class (>= 2).
        depth: number of 2x down-samplings; H and W of the input must be multiples of
            ``2 ** depth``.
        base_filters: filters at full resolution, doubled at each level down.
        normalization: "batch" (BatchNormalization, momentum 0.9) or "group".
        name: the model's name.

    Returns:
        An uncompiled functional model with input shape ``(None, None, input_channels)``
        and output ``(None, None, None, num_classes)`` float32 logits.
    """
    if input_channels not in (1, 3):
        raise ValueError(f"input_channels must be 1 or 3, got {input_channels}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if base_filters < 1:
        raise ValueError(f"base_filters must be >= 1, got {base_filters}")
    normalization = Normalization(normalization)

    filter_counts = [base_filters * 2**level for level in range(depth + 1)]
    inputs = keras.Input(shape=(None, None, input_channels), name="image")

    features = inputs
    skips = []
    for level, filters in enumerate(filter_counts[:-1]):
        features = _conv_block(features, filters, normalization, f"down{level}")
        skips.append(features)
        features = layers.MaxPooling2D(2, name=f"down{level}_pool")(features)

    features = _conv_block(features, filter_counts[-1], normalization, "bottom")

    for level in reversed(range(depth)):
        filters = filter_counts[level]
        features = layers.Conv2DTranspose(
            filters, 2, strides=2, padding="same", name=f"up{level}_upsample"
        )(features)
        features = layers.Concatenate(name=f"up{level}_concat")([features, skips[level]])
        features = _conv_block(features, filters, normalization, f"up{level}")

    logits = layers.Conv2D(num_classes, 1, dtype="float32", name=LOGITS_LAYER)(features)
    return keras.Model(inputs, logits, name=name)


def model_channels(model: keras.Model) -> int:
    """Input channels a model expects (1 or 3)."""
    return int(model.input_shape[-1])


def model_classes(model: keras.Model) -> int:
    """Number of classes (logit channels) a model predicts."""
    return int(model.output_shape[-1])


def copy_model(model: keras.Model) -> keras.Model:
    """A functional model with the same layers and a copy of the weights (no shared state)."""
    copied = keras.models.clone_model(model)
    copied.set_weights(model.get_weights())
    return copied


def adapt_classes(model: keras.Model, num_classes: int) -> keras.Model:
    """Return a copy of ``model`` predicting ``num_classes`` classes.

    Only the last layer (the 1x1 ``logits`` convolution) is rebuilt; every other layer
    keeps its weights. The kernel and bias of the classes the model already had are copied
    into the new head, so existing classes keep their predictions until training; the new
    classes start from the default initialisation. ``model`` itself is left untouched.

    Raises:
        ValueError: ``num_classes`` is smaller than the model's, or the model has no
            layer named ``logits``.
    """
    old_classes = model_classes(model)
    if num_classes < old_classes:
        raise ValueError(
            f"cannot adapt a model with {old_classes} classes to fewer ({num_classes})"
        )
    copied = copy_model(model)
    if num_classes == old_classes:
        return copied
    try:
        old_head = copied.get_layer(LOGITS_LAYER)
    except ValueError as error:
        raise ValueError(f"model {model.name!r} has no layer named {LOGITS_LAYER!r}") from error

    new_head = layers.Conv2D(num_classes, 1, dtype="float32", name=LOGITS_LAYER)
    adapted = keras.Model(copied.input, new_head(old_head.input), name=model.name)
    old_kernel, old_bias = old_head.get_weights()
    new_kernel, new_bias = new_head.get_weights()
    new_kernel[..., :old_classes] = old_kernel
    new_bias[:old_classes] = old_bias
    new_head.set_weights([new_kernel, new_bias])
    return adapted
