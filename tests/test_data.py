"""Hold-out split, patch sampling where labels are, augmentation, validation crops."""

from __future__ import annotations

import numpy as np
import pytest

from segtool.ml.data import (
    Augmentation,
    PatchSampler,
    augment_patch,
    split_holdout,
    validation_crops,
)


def corner_mask(size: int = 128, labelled: int = 96, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.full((size, size), 255, np.uint8)
    mask[:labelled, :labelled] = rng.integers(0, 3, size=(labelled, labelled))
    return mask


def test_holdout_split_is_disjoint_and_covers_every_labelled_pixel():
    mask = corner_mask()

    train, val = split_holdout(mask, 0.2, np.random.default_rng(0), block_size=16)

    in_train, in_val = train != 255, val != 255
    assert not np.any(in_train & in_val)
    np.testing.assert_array_equal(in_train | in_val, mask != 255)
    np.testing.assert_array_equal(train[in_train], mask[in_train])
    np.testing.assert_array_equal(val[in_val], mask[in_val])
    share = in_val.sum() / (mask != 255).sum()
    assert 0.2 <= share < 0.2 + 256 / (96 * 96) + 1e-9  # at most one block over


def test_holdout_takes_whole_blocks_not_scattered_pixels():
    mask = corner_mask()

    _, val = split_holdout(mask, 0.3, np.random.default_rng(1), block_size=16)

    held = (val != 255).reshape(8, 16, 8, 16)
    labelled = (mask != 255).reshape(8, 16, 8, 16)
    held_blocks = 0
    for row in range(8):
        for col in range(8):
            if held[row, :, col].any():
                held_blocks += 1
                # Every labelled pixel of a held-out block is held out.
                np.testing.assert_array_equal(held[row, :, col], labelled[row, :, col])
    assert held_blocks >= 0.3 * 36  # 36 labelled blocks in the 96 x 96 corner


def test_holdout_keeps_a_lone_block_for_training():
    mask = np.full((64, 64), 255, np.uint8)
    mask[3:9, 3:9] = 1

    train, val = split_holdout(mask, 0.5, np.random.default_rng(0), block_size=32)

    assert np.all(val == 255)
    np.testing.assert_array_equal(train, mask)


def test_holdout_fraction_zero_holds_nothing_out():
    mask = corner_mask()
    train, val = split_holdout(mask, 0.0, np.random.default_rng(0))
    assert np.all(val == 255)
    np.testing.assert_array_equal(train, mask)


def test_patches_are_centred_near_labelled_pixels():
    mask = np.full((200, 200), 255, np.uint8)
    mask[150:160, 20:30] = 1
    mask[40:44, 170:174] = 0
    image = np.random.default_rng(0).random((200, 200, 1), dtype=np.float32)
    sampler = PatchSampler([image], [mask], 32, np.random.default_rng(1))

    images, labels = sampler.sample(64)

    assert images.shape == (64, 32, 32, 1)
    assert images.dtype == np.float32
    assert labels.shape == (64, 32, 32)
    assert labels.dtype == np.uint8
    central = labels[:, 8:24, 8:24]
    assert np.all((central != 255).any(axis=(1, 2)))
    # Both classes are drawn although class 0 has 16 pixels against 100 of class 1.
    assert 0.3 < np.mean((labels == 0).any(axis=(1, 2))) < 0.9


def test_augmentation_moves_image_and_labels_together():
    rng = np.random.default_rng(2)
    labels = np.zeros((24, 24), np.uint8)
    labels[2:9, 3:20] = 1  # an asymmetric shape: any flip or rotation moves it
    labels[15:22, 2:5] = 2
    image = (0.1 + 0.35 * labels)[..., None].astype(np.float32)
    seen = set()
    for _ in range(40):
        new_image, new_labels = augment_patch(image, labels, rng, Augmentation())
        seen.add(new_labels.tobytes())
        values = new_image[..., 0]
        # Intensity changes are monotonic, so brighter classes stay brighter pixel by pixel.
        assert values[new_labels == 0].max() < values[new_labels == 1].min()
        assert values[new_labels == 1].max() < values[new_labels == 2].min()
    assert len(seen) == 8  # all flips and rotations occur


def test_augmentation_jitters_intensity_within_range():
    rng = np.random.default_rng(3)
    image = np.full((8, 8, 1), 0.5, np.float32)
    labels = np.zeros((8, 8), np.uint8)
    values = [augment_patch(image, labels, rng, Augmentation())[0][0, 0, 0] for _ in range(200)]
    assert np.std(values) > 0.05
    lowest = 0.5**1.4 / 1.25 - 0.1
    highest = 0.5 ** (1 / 1.4) * 1.25 + 0.1
    assert lowest - 1e-6 <= min(values) and max(values) <= highest + 1e-6


def test_validation_crops_put_labels_over_their_pixels():
    size = 70
    rng = np.random.default_rng(4)
    mask = np.full((size, size), 255, np.uint8)
    mask[5:20, 40:70] = rng.integers(0, 2, size=(15, 30))
    mask[60:70, 0:12] = 1
    image = (mask.astype(np.float32) / 255)[..., None]  # the crop's pixels say their label

    crops, labels = validation_crops([image], [mask], block_size=16, margin=8, multiple=8)

    assert crops.shape[1:] == (32, 32, 1) and labels.shape[1:] == (32, 32)
    labelled = labels != 255
    np.testing.assert_allclose(crops[..., 0][labelled], labels[labelled] / 255)
    assert labelled.sum() == (mask != 255).sum()  # each held-out pixel counted once


def test_validation_crops_of_nothing_are_empty():
    mask = np.full((40, 40), 255, np.uint8)
    crops, labels = validation_crops(
        [np.zeros((40, 40, 3), np.float32)], [mask], block_size=16, margin=8, multiple=8
    )
    assert crops.shape == (0, 32, 32, 3) and labels.shape == (0, 32, 32)


def test_sampler_refuses_masks_without_labels():
    with pytest.raises(ValueError, match="no labelled pixel"):
        PatchSampler(
            [np.zeros((16, 16, 1), np.float32)],
            [np.full((16, 16), 255, np.uint8)],
            8,
            np.random.default_rng(0),
        )


def test_scale_augmentation_resizes_image_and_labels_together():
    # Vertical stripes 8 px wide: a patch cut from a window s times its side and resized
    # shows stripes 8 / s px wide, labels and image alike.
    size, patch = 200, 32
    columns = (np.arange(size) // 8) % 2
    labels = np.tile(columns.astype(np.uint8), (size, 1))
    image = (0.2 + 0.6 * labels)[..., None].astype(np.float32)
    still = Augmentation(gamma=1.0, gain=1.0, offset=0.0, rotations=False, scale=1.0)
    scaled = Augmentation(gamma=1.0, gain=1.0, offset=0.0, rotations=False, scale=1.5)

    def stripe_widths(augmentation: Augmentation) -> set[int]:
        sampler = PatchSampler([image], [labels], patch, np.random.default_rng(4), augmentation)
        images, batch_labels = sampler.sample(64)
        labelled = batch_labels != 255  # not the padding beyond the image's border
        agree = ((images[..., 0] > 0.5) == (batch_labels == 1))[labelled]
        assert agree.mean() > 0.95  # over their pixels (a misplaced window: ~0.5)
        widths = set()
        for row in batch_labels[:, patch // 2]:
            edges = np.flatnonzero(np.diff(row.astype(int)) != 0)
            widths.update(int(width) for width in np.diff(edges))
        return widths

    assert stripe_widths(still) == {8}
    widths = stripe_widths(scaled)
    assert min(widths) <= 6 and max(widths) >= 10  # from 8 / 1.5 to 8 * 1.5
