"""Training from sparse labels: learning, budgets, cancel, progress, best weights, fine-tuning."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from segtool.core.errors import SegtoolError
from segtool.ml.losses import iou_per_class
from segtool.ml.train import TrainConfig, learning_rate_at, train_model
from segtool.ml.unet import LOGITS_LAYER, build_unet, model_classes

SIZE = 96
TINY = TrainConfig(
    max_seconds=None,
    epochs=6,
    steps_per_epoch=20,
    patch_size=32,
    batch_size=8,
    learning_rate=1e-2,
    holdout_fraction=0.2,
    holdout_block=16,
    validation_margin=16,
    depth=2,
    base_filters=8,
    calibrate=True,  # the tests below check the offsets' fit (off by default)
)


def disks(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A normalised (96, 96, 1) image of bright disks on a background ramp (top to bottom)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:SIZE, :SIZE]
    truth = np.zeros((SIZE, SIZE), np.uint8)
    for _ in range(14):
        centre_row, centre_col = rng.uniform(0, SIZE, 2)
        radius = rng.uniform(4, 9)
        truth[(rows - centre_row) ** 2 + (cols - centre_col) ** 2 < radius**2] = 1
    brightness = rng.uniform(0.25, 0.6)
    image = 0.1 + 0.35 * rows / SIZE + brightness * truth + rng.normal(0, 0.06, truth.shape)
    return np.clip(image, 0, 1).astype(np.float32)[..., None], truth


def left_half_labelled(truth: np.ndarray) -> np.ndarray:
    mask = np.full(truth.shape, 255, np.uint8)
    mask[:, : SIZE // 2] = truth[:, : SIZE // 2]
    return mask


def right_half_iou(model, image: np.ndarray, truth: np.ndarray) -> float:
    """Foreground IoU on the unlabelled right half, in inference mode."""
    logits = np.asarray(model(image[None], training=False))[0]
    prediction = np.argmax(logits, axis=-1)
    test_truth = truth.copy()
    test_truth[:, : SIZE // 2] = 255
    return float(iou_per_class(prediction, test_truth, 2)[1])


@pytest.fixture(scope="module")
def scene():
    return disks(0)


@pytest.fixture(scope="module")
def trained(scene):
    image, truth = scene
    reports = []
    result = train_model([image], [left_half_labelled(truth)], 2, TINY, progress=reports.append)
    return result, reports


def test_learns_from_half_labelled_image(scene, trained):
    image, truth = scene
    result, _ = trained
    # Predicting "disk" everywhere would score the disk share, about 0.2.
    assert truth[:, SIZE // 2 :].mean() < 0.3
    assert result.steps == TINY.epochs * TINY.steps_per_epoch
    assert not result.cancelled
    assert right_half_iou(result.model, image, truth) > 0.85
    assert result.val_iou[1] > 0.85


def test_progress_is_reported_every_step(trained):
    result, reports = trained
    assert [report.step for report in reports] == list(range(1, result.steps + 1))
    assert reports == result.history
    assert all(report.total_steps_estimate == result.steps for report in reports)
    elapsed = [report.elapsed for report in reports]
    assert elapsed == sorted(elapsed)
    assert all(np.isfinite(report.loss) for report in reports)
    assert reports[-1].loss < reports[0].loss
    # Validation is reported from the first epoch on.
    assert np.all(np.isnan(reports[0].val_iou))
    assert np.all(np.isfinite(reports[TINY.steps_per_epoch - 1].val_iou))


def test_returns_the_best_weights_on_validation(scene, trained):
    image, _ = scene
    result, reports = trained
    scores = [np.mean(r.val_iou) for r in reports[TINY.steps_per_epoch - 1 :: TINY.steps_per_epoch]]
    # The best weights are kept; then training fits logit offsets on the same held-out
    # pixels (the labels are dense: borders are known), which may only raise the score.
    calibration = result.calibration
    assert calibration is not None
    assert calibration.before == pytest.approx(max(scores))
    assert result.mean_val_iou == pytest.approx(calibration.after)
    assert calibration.after >= calibration.before
    # The returned model is the one that scored it, measured on the held-out pixels.
    (val_mask,) = result.val_masks
    logits = np.asarray(result.model(image[None], training=False))[0]
    measured = iou_per_class(np.argmax(logits, axis=-1), val_mask, 2)
    np.testing.assert_allclose(measured, result.val_iou, atol=0.03)


def test_held_out_pixels_are_labelled_pixels(scene, trained):
    _, truth = scene
    result, _ = trained
    (val_mask,) = result.val_masks
    held = val_mask != 255
    labelled = left_half_labelled(truth) != 255
    assert held.any()
    assert np.all(labelled[held])
    assert 0.2 <= held.sum() / labelled.sum() < 0.4


def test_cancel_stops_between_steps(scene):
    image, truth = scene
    reports = []

    result = train_model(
        [image],
        [left_half_labelled(truth)],
        2,
        TINY,
        progress=reports.append,
        cancel=lambda: len(reports) >= 3,
    )

    assert result.cancelled
    assert result.steps == 3
    assert model_classes(result.model) == 2


def test_time_budget_ends_training(scene):
    image, truth = scene
    config = dataclasses.replace(TINY, max_seconds=4.0, epochs=None)
    ticks = iter(range(10_000))  # a clock that moves 0.25 s each time it is read

    result = train_model([image], [left_half_labelled(truth)], 2, config,
                         clock=lambda: 0.25 * next(ticks))

    # Nothing but the budget could stop it (no epochs): the clock ran out after a few steps.
    assert 0 < result.steps < 16
    assert 4.0 <= result.elapsed < 4.0 + 1.0
    assert not result.cancelled


def test_fine_tuning_starts_from_the_initial_model(scene, trained):
    image, truth = scene
    initial = trained[0].model
    before = [w.copy() for w in initial.get_weights()]
    config = dataclasses.replace(TINY, epochs=1, steps_per_epoch=2, learning_rate=1e-7)

    tuned = train_model([image], [left_half_labelled(truth)], 2, config, initial_model=initial)
    scratch = train_model([image], [left_half_labelled(truth)], 2, config)

    # Two steps at a tiny learning rate: the fine-tuned model is still the trained one ...
    assert right_half_iou(tuned.model, image, truth) > 0.85
    assert right_half_iou(scratch.model, image, truth) < 0.5
    kernel = tuned.model.get_layer("down0_conv1").get_weights()[0]
    np.testing.assert_allclose(kernel, initial.get_layer("down0_conv1").get_weights()[0], atol=1e-4)
    # ... and the caller's model was copied, not trained in place.
    for kept, original in zip(initial.get_weights(), before, strict=True):
        np.testing.assert_array_equal(kept, original)


def test_fine_tuning_with_an_added_class_widens_the_head(scene, trained):
    image, truth = scene
    mask = left_half_labelled(truth)
    mask[:8, :] = 2  # a third class painted along the top
    config = dataclasses.replace(TINY, epochs=1, steps_per_epoch=2)

    result = train_model([image], [mask], 3, config, initial_model=trained[0].model)

    assert model_classes(result.model) == 3
    assert np.asarray(result.model(image[None], training=False)).shape == (1, SIZE, SIZE, 3)


def test_mismatched_initial_model_is_refused(scene):
    image, truth = scene
    colour_model = build_unet(3, 2, depth=2, base_filters=8)
    with pytest.raises(ValueError, match="channels"):
        train_model([image], [left_half_labelled(truth)], 2, TINY, initial_model=colour_model)


def test_nothing_labelled_is_a_user_error(scene):
    image, _ = scene
    with pytest.raises(SegtoolError, match="nothing is labelled"):
        train_model([image], [np.full((SIZE, SIZE), 255, np.uint8)], 2, TINY)


def test_learning_rate_warms_up_then_decays():
    rates = [learning_rate_at(f, 1.0, 0.1) for f in np.linspace(0, 1, 21)]
    peak = int(np.argmax(rates))
    assert rates[peak] == pytest.approx(1.0)
    assert rates[0] < 0.2
    assert np.all(np.diff(rates[: peak + 1]) > 0)
    assert np.all(np.diff(rates[peak:]) < 0)
    assert rates[-1] == pytest.approx(0.01)


def test_weight_average_follows_the_weights_and_swaps_back():
    from segtool.ml.train import _WeightAverage
    from segtool.ml.unet import build_unet

    model = build_unet(1, 2, depth=1, base_filters=2)
    start = [w.copy() for w in model.get_weights()]
    average = _WeightAverage(model, decay=0.5)
    kernel = model.trainable_variables[0]
    kernel.assign(kernel.value + 1.0)
    average.update()  # decay min(0.5, 2 / 11): the average moves 9/11 of the way
    average.swap()
    np.testing.assert_allclose(kernel.numpy(), start[0] + 9 / 11, rtol=1e-5, atol=1e-6)
    average.swap()
    np.testing.assert_allclose(kernel.numpy(), start[0] + 1.0, rtol=1e-5, atol=1e-6)


def test_training_with_weight_averaging_returns_the_averaged_model(scene):
    image, truth = scene
    config = dataclasses.replace(TINY, ema=True)
    result = train_model([image], [left_half_labelled(truth)], 2, config)
    assert result.steps == config.epochs * config.steps_per_epoch
    assert right_half_iou(result.model, image, truth) > 0.85  # as good as without (above)


def test_kept_average_is_returned_beside_the_models_own_weights(scene, trained):
    image, truth = scene
    assert trained[0].averaged is None  # only kept when asked
    config = dataclasses.replace(TINY, keep_average=True)
    result = train_model([image], [left_half_labelled(truth)], 2, config)
    averaged = result.averaged
    assert averaged is not None and len(averaged.val_iou) == 2
    own = result.model.get_weights()
    assert len(averaged.weights) == len(own)
    assert any(not np.allclose(a, b) for a, b in zip(averaged.weights, own, strict=True))
    assert right_half_iou(result.model, image, truth) > 0.85  # the model's own, as without
    result.model.set_weights(averaged.weights)
    assert right_half_iou(result.model, image, truth) > 0.85  # and the average, as with EMA


def test_logit_offsets_are_fitted_only_where_the_labels_show_borders(scene, trained):
    image, truth = scene
    dense, _ = trained
    assert dense.calibration is not None  # fitted (applied or not) on dense labels
    # Scribbles: strokes inside the disks and the background, no border between classes.
    strokes = np.full(truth.shape, 255, np.uint8)
    inside = cv2.erode(truth, np.ones((5, 5), np.uint8))
    outside = cv2.erode(1 - truth, np.ones((5, 5), np.uint8))
    strokes[::6][inside[::6] == 1] = 1
    strokes[::6][outside[::6] == 1] = 0
    config = dataclasses.replace(TINY, epochs=2)
    calibration = train_model([image], [strokes], 2, config).calibration
    assert calibration is not None and not calibration.applied
    assert calibration.reason() == ("logit offsets: none (the labels show no borders "
                                    "between classes)")
    off = dataclasses.replace(TINY, epochs=2, calibrate=False)
    assert train_model([image], [left_half_labelled(truth)], 2, off).calibration is None


def test_fitted_offsets_are_in_the_model_itself(scene):
    """The offsets live in the logits layer's bias: a saved and reloaded model has them."""
    image, truth = scene
    config = dataclasses.replace(TINY, epochs=2, calibrate=False)
    plain = train_model([image], [left_half_labelled(truth)], 2, config)
    calibrated = train_model([image], [left_half_labelled(truth)], 2,
                             dataclasses.replace(config, calibrate=True))
    assert calibrated.calibration is not None and calibrated.calibration.applied
    offsets = np.asarray(calibrated.calibration.offsets, np.float32)
    plain_bias = plain.model.get_layer(LOGITS_LAYER).bias.numpy()
    calibrated_bias = calibrated.model.get_layer(LOGITS_LAYER).bias.numpy()
    np.testing.assert_allclose(calibrated_bias - offsets, plain_bias, atol=1e-6)
