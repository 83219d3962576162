"""The input pipeline in numpy: hold-out split, patch sampling where labels are, augmentation.

Everything here works on normalised images ``(H, W, C)`` float32 and masks ``(H, W)``
uint8 with 255 = unlabelled. Batches come out as numpy arrays ready for one training step;
keeping them in numpy (not tf.data) costs well under a millisecond a batch at the patch sizes
used and keeps the sampler simple to test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

UNLABELLED = 255
MAX_CENTRES_PER_CLASS = 1_000_000


def split_holdout(
    mask: np.ndarray, fraction: float, rng: np.random.Generator, block_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out square blocks of labelled pixels for validation.

    Whole ``block_size`` blocks go to validation (never scattered single pixels, which
    would sit next to training pixels and leak), chosen at random among the blocks holding
    labels until they hold at least ``fraction`` of the labelled pixels. At least one
    labelled block always stays in training; with a single labelled block nothing is
    held out.

    Args:
        mask: ``(H, W)`` uint8 classes, 255 = unlabelled.
        fraction: share of labelled pixels to hold out, 0 <= fraction < 1.
        rng: random generator choosing the blocks.
        block_size: side of the held-out squares in pixels.

    Returns:
        ``(train_mask, val_mask)``, each ``(H, W)`` uint8 and 255 where the pixel is not in
        that split; every labelled pixel is in exactly one of them.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    labelled = mask != UNLABELLED
    height, width = mask.shape
    rows, cols = -(-height // block_size), -(-width // block_size)
    padded = np.zeros((rows * block_size, cols * block_size), dtype=bool)
    padded[:height, :width] = labelled
    counts = padded.reshape(rows, block_size, cols, block_size).sum(axis=(1, 3)).ravel()

    candidates = np.flatnonzero(counts)
    rng.shuffle(candidates)
    wanted = fraction * counts.sum()
    held = []
    held_count = 0
    for block in candidates[:-1]:  # the last candidate always stays in training
        if held_count >= wanted:
            break
        held.append(block)
        held_count += counts[block]

    in_validation = np.zeros(rows * cols, dtype=bool)
    in_validation[held] = True
    pixel_in_validation = np.repeat(
        np.repeat(in_validation.reshape(rows, cols), block_size, axis=0), block_size, axis=1
    )[:height, :width]
    train_mask = np.where(pixel_in_validation, UNLABELLED, mask).astype(np.uint8)
    val_mask = np.where(pixel_in_validation, mask, UNLABELLED).astype(np.uint8)
    return train_mask, val_mask


@dataclass(frozen=True)
class Augmentation:
    """Random changes applied to each training patch.

    Geometric: one of the 8 flips/90-degree rotations, uniformly; with ``rotations`` False
    (images that have an up) only left-right flips; with ``scale`` above 1, the patch is cut
    from a window ``s`` times its side (``s`` log-uniform within 1/scale..scale) and resized
    to the patch (bilinear image, nearest labels). Intensity (per patch,
    on the normalised 0..1 image): ``gain * clip(x, 0, 1) ** gamma + offset`` with gamma,
    gain log-uniform within the given factors and offset uniform within +-offset.
    """

    gamma: float = 1.4
    gain: float = 1.25
    offset: float = 0.1
    rotations: bool = True
    scale: float = 1.0  # off: +0.001 mIoU on average over seven real-data rows (bench/README)


def augment_patch(
    image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, augmentation: Augmentation
) -> tuple[np.ndarray, np.ndarray]:
    """Flip/rotate ``image`` (P, P, C) and ``labels`` (P, P) alike; jitter the intensity."""
    if augmentation.rotations:
        turns = int(rng.integers(4))
        image = np.rot90(image, turns)
        labels = np.rot90(labels, turns)
    if rng.random() < 0.5:
        image = image[:, ::-1]
        labels = labels[:, ::-1]
    gamma = np.exp(rng.uniform(-1, 1) * np.log(augmentation.gamma))
    gain = np.exp(rng.uniform(-1, 1) * np.log(augmentation.gain))
    offset = rng.uniform(-augmentation.offset, augmentation.offset)
    image = gain * np.clip(image, 0.0, 1.0) ** gamma + offset
    return image.astype(np.float32), labels


class PatchSampler:
    """Draws training batches of square patches centred near labelled pixels.

    Each patch is centred on a labelled pixel (for half the patches the class is chosen
    first, uniformly among the classes present, so rare classes are seen), moved by up to
    a quarter patch so labels also fall near patch borders, then augmented. Images are
    reflect-padded and masks padded with 255, so patches near the border are full size.

    Args:
        images: normalised images, each ``(H, W, C)`` float32, same C.
        masks: matching ``(H, W)`` uint8 masks, 255 = unlabelled (training split only).
        patch_size: side of the square patches in pixels.
        rng: random generator (the only source of randomness).
        augmentation: intensity ranges; None for no augmentation at all.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray],
        patch_size: int,
        rng: np.random.Generator,
        augmentation: Augmentation | None = Augmentation(),
    ) -> None:
        if len(images) != len(masks):
            raise ValueError(f"{len(images)} images but {len(masks)} masks")
        self.patch_size = patch_size
        self.rng = rng
        self.augmentation = augmentation
        self.scale = augmentation.scale if augmentation is not None else 1.0
        # room for the largest scaled window around any labelled pixel
        self.pad = int(np.ceil(patch_size * max(1.0, self.scale)))
        self._images = [
            np.pad(image, ((self.pad, self.pad), (self.pad, self.pad), (0, 0)), mode="reflect")
            for image in images
        ]
        self._masks = [np.pad(mask, self.pad, constant_values=UNLABELLED) for mask in masks]
        self._centres: dict[int, np.ndarray] = {}  # class -> (n, 3) image, row, col
        for class_index in np.unique(np.concatenate([np.unique(m) for m in masks])):
            if class_index == UNLABELLED:
                continue
            parts = []
            for image_index, mask in enumerate(masks):
                rows, cols = np.nonzero(mask == class_index)
                parts.append(np.stack([np.full_like(rows, image_index), rows, cols], axis=1))
            centres = np.concatenate(parts)
            if len(centres) > MAX_CENTRES_PER_CLASS:
                keep = rng.choice(len(centres), MAX_CENTRES_PER_CLASS, replace=False)
                centres = centres[keep]
            self._centres[int(class_index)] = centres
        if not self._centres:
            raise ValueError("no labelled pixel to sample patches from")
        self._all_centres = np.concatenate(list(self._centres.values()))

    @property
    def classes_present(self) -> list[int]:
        """Class indices with at least one labelled training pixel."""
        return sorted(self._centres)

    def _centre(self) -> np.ndarray:
        if self.rng.random() < 0.5:
            classes = self.classes_present
            centres = self._centres[classes[int(self.rng.integers(len(classes)))]]
        else:
            centres = self._all_centres
        return centres[int(self.rng.integers(len(centres)))]

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(images (B, P, P, C) float32, labels (B, P, P) uint8)``."""
        size = self.patch_size
        shift = size // 4
        channels = self._images[0].shape[-1]
        batch_images = np.empty((batch_size, size, size, channels), dtype=np.float32)
        batch_labels = np.empty((batch_size, size, size), dtype=np.uint8)
        for index in range(batch_size):
            image_index, row, col = self._centre()
            window = size
            if self.scale > 1.0:
                window = int(round(size * np.exp(self.rng.uniform(-1, 1) * np.log(self.scale))))
            # The labelled pixel lands within the central half, symmetric under flips.
            row += self.pad - window // 2 + int(self.rng.integers(1 - shift, shift + 1))
            col += self.pad - window // 2 + int(self.rng.integers(1 - shift, shift + 1))
            image = self._images[image_index][row : row + window, col : col + window]
            labels = self._masks[image_index][row : row + window, col : col + window]
            if window != size:
                image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR
                                   ).reshape(size, size, channels)
                labels = cv2.resize(labels, (size, size), interpolation=cv2.INTER_NEAREST_EXACT)
            if self.augmentation is not None:
                image, labels = augment_patch(image, labels, self.rng, self.augmentation)
            batch_images[index] = image
            batch_labels[index] = labels
        return batch_images, batch_labels


def validation_crops(
    images: Sequence[np.ndarray],
    val_masks: Sequence[np.ndarray],
    block_size: int,
    margin: int,
    multiple: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut one crop around each block of held-out pixels, with context.

    Each crop covers a ``block_size`` block plus ``margin`` pixels of image context on every
    side (reflect-padded at the image border), rounded up to a multiple of ``multiple`` so
    the network accepts it. Only the block's own held-out pixels are labelled in the crop's
    labels, so no pixel counts twice.

    Returns:
        ``(crops (N, S, S, C) float32, labels (N, S, S) uint8)``; N = 0 when nothing is
        held out.
    """
    size = -(-(block_size + 2 * margin) // multiple) * multiple
    before = (size - block_size) // 2
    crops, crop_labels = [], []
    for image, mask in zip(images, val_masks, strict=True):
        height, width = mask.shape
        padded_image = np.pad(image, ((size, size), (size, size), (0, 0)), mode="reflect")
        for top in range(0, height, block_size):
            for left in range(0, width, block_size):
                block = mask[top : top + block_size, left : left + block_size]
                if not np.any(block != UNLABELLED):
                    continue
                row, col = top + size - before, left + size - before
                crops.append(padded_image[row : row + size, col : col + size])
                labels = np.full((size, size), UNLABELLED, dtype=np.uint8)
                labels[before : before + block.shape[0], before : before + block.shape[1]] = block
                crop_labels.append(labels)
    channels = images[0].shape[-1] if images else 1
    if not crops:
        return (
            np.zeros((0, size, size, channels), np.float32),
            np.zeros((0, size, size), np.uint8),
        )
    return np.stack(crops).astype(np.float32), np.stack(crop_labels)
