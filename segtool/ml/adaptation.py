"""Batch-norm statistics moved from the labelled images to the ones the model will predict.

A model trained on one patient's slices (or one microscope's images) meets the others with
the wrong BatchNormalization statistics: its layers' inputs are centred and scaled as they
were on the labelled images. AdaBN (Li et al., "Revisiting batch normalization for practical
domain adaptation", 2016) re-estimates them on the target images, which needs no labels. Re-
estimating them outright on uniform patches also changes what they were trained with (the
patch sampler centres patches on labelled pixels, class by class), which cost nuclei 0.02
mIoU; so here each layer's statistics move by the *difference* between the project's
unlabelled and labelled images, both measured the same way (uniform patches, the model in
training mode, a cumulative average over the batches):

    mean' = mean + (mean_unlabelled - mean_labelled)
    var'  = var * var_unlabelled / var_labelled

Only the moving statistics change, never a weight, and only when the labels are dense
(:func:`declined`: on scribbles it never helped) and the unlabelled images differ from the
labelled ones by more than sampling noise does (``MIN_DIFFERENCE``); a model without
BatchNormalization, or a project with no unlabelled image, is left as it is.
Figures: bench/README.md, "Batch-norm statistics moved to the unlabelled images".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from segtool.ml.backend import keras
from segtool.ml.calibration import MIN_BORDER_SHARE, labelled_border_share

BATCH = 16
"""Patches a forward pass: the statistics of one pass are averaged over the passes."""
PATCHES = 256
"""Patches sampled from each side (labelled, unlabelled)."""
MIN_VARIANCE = 1e-6
MIN_DIFFERENCE = 0.1
"""The statistics move only when the unlabelled images' differ from the labelled images' by
more than this: the mean over layers and channels of |log(variance_unlabelled /
variance_labelled)|. On the five real sets of bench/README: 0.13-0.19 on the two MRI sets
(labelled slices of one patient, the others unlabelled; moving them gained up to +0.06 mIoU),
0.03-0.05 on nuclei, EM and street scenes (where moving them cost up to 0.04), and 0.008-0.017
between two samples of the same labelled images (the noise of the measurement)."""


@dataclasses.dataclass(frozen=True)
class StatisticsShift:
    """What :func:`shift_statistics` did, for the model's sidecar."""

    layers: int
    labelled_images: int
    unlabelled_images: int
    patches: int
    difference: float | None = None  # see MIN_DIFFERENCE; None when not measured
    declined: str | None = None  # why the labels ruled it out (see declined())

    @property
    def applied(self) -> bool:
        return self.layers > 0

    def reason(self) -> str:
        if self.declined is not None:
            return f"batch-norm statistics as trained: {self.declined}"
        if self.difference is not None and not self.applied:
            return (f"batch-norm statistics as trained: the {self.unlabelled_images} unlabelled"
                    f" images differ from the {self.labelled_images} labelled by "
                    f"{self.difference:.3f} (moved above {MIN_DIFFERENCE:g})")
        if not self.applied:
            why = ("no unlabelled image" if not self.unlabelled_images
                   else "no BatchNormalization layer")
            return f"batch-norm statistics as trained: {why}"
        return (f"batch-norm statistics of {self.layers} layers moved from {self.labelled_images}"
                f" labelled to {self.unlabelled_images} unlabelled images: they differ by "
                f"{self.difference:.3f} ({self.patches} patches each)")

    def sidecar(self) -> dict:
        return dataclasses.asdict(self)


def declined(masks: Sequence[np.ndarray]) -> str | None:
    """Why these training masks rule the shift out, or None when they allow it.

    Scribbles (labels that mostly border unlabelled pixels, as the logit offsets judge it):
    on the MRI sets' scribbles it never helped (-0.001 and -0.006 mIoU at 120 s, -0.032 for a
    30-s model) while it helped every dense run (+0.016 to +0.085; bench/README).
    """
    share = labelled_border_share(masks)
    if share < MIN_BORDER_SHARE:
        return (f"labels mostly border unlabelled pixels, as strokes do ({share:.0%} of their"
                " edges border another class)")
    return None


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)]


def sample_patches(
    images: Sequence[np.ndarray], patch: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` (patch, patch, C) float32 patches at uniform places, images taken in turn.

    An image smaller than ``patch`` is reflect-padded to it first.
    """
    channels = images[0].shape[-1]
    patches = np.empty((count, patch, patch, channels), np.float32)
    for index in range(count):
        image = images[index % len(images)]
        height, width = image.shape[:2]
        if height < patch or width < patch:
            image = np.pad(image, ((0, max(patch - height, 0)), (0, max(patch - width, 0)),
                                   (0, 0)), mode="reflect")
            height, width = image.shape[:2]
        top = int(rng.integers(0, height - patch + 1))
        left = int(rng.integers(0, width - patch + 1))
        patches[index] = image[top:top + patch, left:left + patch]
    return patches


def measure_statistics(
    model: keras.Model, patches: np.ndarray, batch_size: int = BATCH
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each BatchNormalization layer's (mean, variance) over ``patches``, in training mode.

    The cumulative average of the per-batch statistics that training mode computes; the
    layers' moving statistics and momentum are restored afterwards.
    """
    layers = batch_norm_layers(model)
    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy(), layer.momentum)
             for layer in layers]
    try:
        for count, start in enumerate(range(0, len(patches), batch_size), start=1):
            for layer in layers:  # moving = moving * m + batch * (1 - m): a running mean
                layer.momentum = 1.0 - 1.0 / count
            model(patches[start:start + batch_size], training=True)
        return [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    finally:
        for layer, (mean, variance, momentum) in zip(layers, saved, strict=True):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
            layer.momentum = momentum


def difference(
    source: Sequence[tuple[np.ndarray, np.ndarray]],
    target: Sequence[tuple[np.ndarray, np.ndarray]],
) -> float:
    """Mean over layers of the channels' mean |log(target variance / source variance)|."""
    return float(np.mean([
        np.mean(np.abs(np.log(np.maximum(target_var, MIN_VARIANCE)
                              / np.maximum(source_var, MIN_VARIANCE))))
        for (_, source_var), (_, target_var) in zip(source, target, strict=True)]))


def shift_statistics(
    model: keras.Model,
    labelled: Sequence[np.ndarray],
    unlabelled: Sequence[np.ndarray],
    patch: int,
    seed: int = 0,
    patches: int = PATCHES,
    min_difference: float = MIN_DIFFERENCE,
) -> StatisticsShift:
    """Move ``model``'s batch-norm statistics from ``labelled`` to ``unlabelled`` images
    when the two differ by more than ``min_difference`` (see :func:`difference`).

    Both are model input ((H, W, C) float32, normalised as for prediction); ``patch`` must
    suit the network (a multiple of its downsampling).
    """
    layers = batch_norm_layers(model)
    if not layers or not labelled or not unlabelled:
        return StatisticsShift(0, len(labelled), len(unlabelled), 0)
    rng = np.random.default_rng(seed)
    source = measure_statistics(model, sample_patches(labelled, patch, patches, rng))
    target = measure_statistics(model, sample_patches(unlabelled, patch, patches, rng))
    measured = difference(source, target)
    if measured <= min_difference:
        return StatisticsShift(0, len(labelled), len(unlabelled), patches, measured)
    for layer, (source_mean, source_var), (target_mean, target_var) in zip(
        layers, source, target, strict=True
    ):
        mean, variance = layer.moving_mean.numpy(), layer.moving_variance.numpy()
        layer.moving_mean.assign(mean + target_mean - source_mean)
        layer.moving_variance.assign(
            variance * np.maximum(target_var, MIN_VARIANCE) / np.maximum(source_var, MIN_VARIANCE))
    return StatisticsShift(len(layers), len(labelled), len(unlabelled), patches, measured)
