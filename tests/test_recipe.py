"""The training recipe's decisions, each from the data or the device, on synthetic inputs."""

from __future__ import annotations

import numpy as np

from segtool.ml.recipe import (
    DARK_LEVEL,
    DARK_POWER,
    FINETUNE_LR_SCALE,
    MIN_STEPS,
    choose_recipe,
    class_weights,
    has_up,
    input_power,
    label_choices,
    model_size,
    needs_per_channel,
    patch_and_batch,
    step_cost,
)

UNLABELLED = 255


def _scene(height=60, width=80, seed=0):
    """Sky (2) on top, road (0) at the bottom, cars (1) in between: a street with an up."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    mask[: height // 3] = 2
    top = height // 2 + int(rng.integers(-3, 4))
    mask[top : top + 8, 10:20] = 1  # rare: 2 % of the pixels
    return mask


def _blobs(size=64, seed=0):
    """Round objects (1) anywhere on background (0): microscopy, no up."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    rows, cols = np.mgrid[:size, :size]
    for _ in range(12):
        r, c = rng.integers(0, size, 2)
        mask[(rows - r) ** 2 + (cols - c) ** 2 < 25] = 1
    return mask


def test_rare_classes_weigh_more_and_balanced_labels_need_no_weights():
    assert class_weights(np.array([500, 520, 490])) is None
    assert class_weights(np.array([900, 100])) is None  # uneven, but no class is rare
    weights = class_weights(np.array([100_000, 10_000, 100, 0]))
    assert weights is not None
    assert weights[2] > weights[1] > weights[0]
    assert weights[3] == 1.0  # no label, no opinion
    counts = np.array([100_000, 10_000, 100])
    w = np.asarray(class_weights(counts))
    assert 0.25 <= w.min() and w.max() <= 8.0


def test_labels_with_sky_above_road_have_an_up_and_blobs_do_not():
    assert has_up([_scene(seed=s) for s in range(4)], 3)
    assert not has_up([_blobs(seed=s) for s in range(4)], 2)
    # Scribbles keep the layout: strokes in the same places still show the up.
    scribbled = []
    for seed in range(4):
        mask = _scene(seed=seed)
        thin = np.full_like(mask, UNLABELLED)
        thin[::7] = mask[::7]
        scribbled.append(thin)
    assert has_up(scribbled, 3)
    assert not has_up([np.full((10, 10), UNLABELLED, np.uint8)], 2)


def test_channels_with_different_ranges_are_normalised_apart():
    photo = [[(10.0, 240.0), (12.0, 235.0), (8.0, 250.0)]] * 3
    mri_sequences = [[(0.0, 40.0), (0.0, 200.0), (30.0, 250.0)]] * 3
    assert not needs_per_channel(photo)
    assert needs_per_channel(mri_sequences)
    assert not needs_per_channel([[(0.0, 1.0)]])


def test_dark_images_reach_the_model_through_a_square_root_and_photos_linear():
    """Where the upper quartile falls in its window: near 0 on fluorescence's dark ground,
    mid-range on a photo or an MRI slice's body; the median image decides."""
    assert input_power([0.02, 0.05, 0.03]) == DARK_POWER < 1
    assert input_power([0.3, 0.5, 0.25]) == 1.0
    assert input_power([0.02, 0.4, 0.5]) == 1.0  # most images are not dark
    assert input_power([]) == 1.0  # nothing measured: as is
    dark = choose_recipe([_blobs()], 2, [(64, 64)], [[(0.0, 1.0)]], 15.0, 120.0,
                         levels=[DARK_LEVEL / 2])
    photo = choose_recipe([_blobs()], 2, [(64, 64)], [[(0.0, 1.0)]], 15.0, 120.0,
                          levels=[0.4])
    assert (dark.input_power, photo.input_power) == (DARK_POWER, 1.0)
    assert any(r.startswith("input raised to the power 0.5") for r in dark.reasons)
    assert "input linear: three quarters of the pixels lie below 40% of the window" in \
        photo.reasons
    assert not any(r.startswith("input") for r in dark.fine_tuning("m.keras").reasons)


def test_patch_sees_context_of_the_image_and_batch_keeps_the_pixels():
    small_patch, small_batch = patch_and_batch([(100, 120)] * 3, max_patch=128)
    assert small_patch == 64 and small_batch == 16
    big_patch, big_batch = patch_and_batch([(1024, 1024)], max_patch=128)
    assert big_patch == 128 and big_batch == 4
    assert patch_and_batch([(2000, 3000)], max_patch=256)[0] == 256
    assert patch_and_batch([(227, 320)], max_patch=128)[0] == 128


def test_faster_device_or_longer_budget_affords_a_larger_model():
    cpu = model_size(steps_per_second=15.0, budget=120.0, patch=64, batch=16)
    gpu = model_size(steps_per_second=600.0, budget=120.0, patch=64, batch=16)
    assert cpu == (3, 8)
    assert gpu[0] >= cpu[0] and gpu[1] > cpu[1]
    depth, width = gpu
    assert 600.0 / step_cost(64, 16, depth, width) * 120.0 >= MIN_STEPS
    assert model_size(15.0, None, 64, 16) == (3, 8)
    assert model_size(15.0, 1200.0, 64, 16) > cpu


def test_choose_recipe_for_a_fast_device_and_a_street_like_project():
    masks = [_scene(seed=s) for s in range(3)]
    windows = [[(0.0, 255.0)] * 3] * 3
    slow = choose_recipe(masks, 3, [(227, 320)] * 3, windows, 15.0, 120.0)
    fast = choose_recipe(masks, 3, [(227, 320)] * 3, windows, 600.0, 120.0)
    assert not slow.rotations and not fast.rotations
    assert (fast.depth, fast.base_filters) > (slow.depth, slow.base_filters)
    assert slow.class_weights is not None and slow.class_weights[1] > slow.class_weights[2]
    assert len(slow.reasons) == 6 and any("up" in r for r in slow.reasons)
    blobs = choose_recipe([_blobs()], 2, [(64, 64)], [[(0.0, 1.0)]], 15.0, 120.0)
    assert blobs.rotations and not blobs.per_channel


def test_fine_tuning_keeps_the_data_decisions_and_peaks_lower():
    masks = [_scene(seed=s) for s in range(3)]
    new = choose_recipe(masks, 3, [(227, 320)] * 3, [[(0.0, 255.0)] * 3] * 3, 15.0, 120.0)
    tuned = new.fine_tuning("model-1.keras")
    assert new.learning_rate_scale == 1.0 and 0 < tuned.learning_rate_scale == FINETUNE_LR_SCALE < 1
    assert (tuned.patch_size, tuned.class_weights, tuned.rotations) == (
        new.patch_size, new.class_weights, new.rotations)
    assert tuned.reasons[0].startswith("continues model-1.keras")
    assert "fine-tuning" in tuned.reasons[1]
    assert not any(r.startswith("U-Net") for r in tuned.reasons)  # the model keeps its own


def test_label_choices_change_only_when_training_should():
    """What a model that keeps training re-decides on new masks: weights when a rare class
    appears or its share moves a lot, turns when the labels show an up; not small drifts."""
    background = np.zeros((60, 80), np.uint8)
    first = label_choices([background], 3)
    assert first.class_weights is None and first.rotations
    street = label_choices([background, _scene(seed=1)], 3)
    assert street.differs(first) and street.class_weights is not None
    assert not street.rotations  # sky above road: an up
    more = label_choices([background, _scene(seed=1), _scene(seed=2)], 3)
    assert not more.differs(street)  # the same kind of labels: weights within 25%
    assert not street.differs(street) and first.differs(None)
    assert any(r.startswith("class weights") for r in street.reasons)
