"""The real-data protocol of ``../shared/data/README.md``: splits, scribbles, forest, score.

Shared by ``bench_realdata.py`` (the end-to-end benchmark through the CLI) and the bench
scripts that compare recipes. Nothing here writes into the data folder.

Scribbles (the "scribbles" regime) are made from a dense mask by a fixed, seeded rule that
imitates a person painting thin strokes for a minute or two:

- every connected region of every class is eroded by ``SCRIBBLE_INSET`` px (strokes stay
  clear of the boundaries a person would avoid) and skeletonised;
- regions too small to survive the erosion get one short stroke: their own skeleton,
  clipped to a disc of radius ``SCRIBBLE_SMALL_RADIUS`` around the region's centroid;
- skeleton pixels are widened to ``SCRIBBLE_WIDTH`` px (a 3-px brush), kept inside the region;
- long strokes are cut into pieces of ``SCRIBBLE_PIECE`` px of skeleton and a seeded random
  ``SCRIBBLE_KEEP`` share of the pieces is kept (a person strokes part of a big region, not its
  whole medial axis); every region keeps at least one piece.

The share of labelled pixels is reported by the benchmark (aim: 1-5%).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from segtool.core.images import read_image
from segtool.core.normalize import normalize

VOID = 255
SCRIBBLE_INSET = 2
SCRIBBLE_WIDTH = 3
SCRIBBLE_SMALL_RADIUS = 4
SCRIBBLE_PIECE = 24
SCRIBBLE_KEEP = 0.25


def _street_sequence(stem: str) -> int:
    return int(stem.split("_")[2])


def _em_section(stem: str) -> int:
    return int(stem.rsplit("_", 1)[1])


@dataclasses.dataclass(frozen=True)
class SetProtocol:
    """One data set of the protocol: its classes and which images train and which test."""

    name: str
    classes: tuple[str, ...]
    is_train: Callable[[str], bool]
    is_test: Callable[[str], bool]


PROTOCOLS = {
    p.name: p
    for p in (
        SetProtocol(
            "fluo_dsb2018",
            ("background", "nucleus"),
            lambda s: s in {f"dsb_{i:03d}" for i in range(8)},
            lambda s: s not in {f"dsb_{i:03d}" for i in range(8)},
        ),
        SetProtocol(
            "em_drosophila_vnc",
            ("cytoplasm", "membrane", "glia", "mitochondria", "synapse"),
            lambda s: _em_section(s) <= 2,
            lambda s: 10 <= _em_section(s) <= 19,
        ),
        SetProtocol(
            "radiology_lgg_brain_mri",
            ("background", "flair"),
            lambda s: s.startswith("TCGA_CS_6669_"),
            lambda s: not s.startswith("TCGA_CS_6669_"),
        ),
        SetProtocol(
            "radiology_sunnybrook_cardiac_mri",
            ("background", "blood_pool", "myocardium"),
            lambda s: s.startswith("SCD0000101_"),
            lambda s: not s.startswith("SCD0000101_"),
        ),
        SetProtocol(
            "street_idd_lite",
            ("drivable", "non_drivable", "living", "vehicle", "roadside", "far", "sky"),
            lambda s: _street_sequence(s) in (3, 17, 18, 21),
            lambda s: _street_sequence(s) >= 119,
        ),
    )
}


@dataclasses.dataclass
class Split:
    """Image paths (by stem) of the labelled and test images of a set, and mask paths."""

    protocol: SetProtocol
    train: dict[str, Path]
    test: dict[str, Path]
    masks: dict[str, Path]


def split(data: Path, name: str, max_test: int | None = None) -> Split:
    """The protocol's split of set ``name`` under ``data``; ``max_test`` keeps an even subset."""
    protocol = PROTOCOLS[name]
    folder = data / name
    images = {p.stem: p for p in sorted((folder / "images").iterdir())}
    masks = {p.stem: p for p in sorted((folder / "masks").iterdir())}
    train = {s: p for s, p in images.items() if protocol.is_train(s) and s in masks}
    test = {s: p for s, p in images.items() if protocol.is_test(s) and s in masks}
    if max_test is not None and len(test) > max_test:
        stems = sorted(test)
        pick = np.linspace(0, len(stems) - 1, max_test).round().astype(int)
        test = {stems[i]: test[stems[i]] for i in sorted(set(pick))}
    return Split(protocol, train, test, masks)


def read_truth(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.ndim != 2:
        raise ValueError(f"{path}: not a single-channel mask")
    return mask


def scribbles(mask: np.ndarray, seed: int) -> np.ndarray:
    """Thin strokes inside each class region of ``mask`` (see the module docstring)."""
    from skimage.morphology import skeletonize

    rng = np.random.default_rng(seed)
    out = np.full(mask.shape, VOID, np.uint8)
    inset = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * SCRIBBLE_INSET + 1,) * 2)
    widen = np.ones((SCRIBBLE_WIDTH, SCRIBBLE_WIDTH), np.uint8)
    for class_index in np.unique(mask):
        if class_index == VOID:
            continue
        region = (mask == class_index).astype(np.uint8)
        count, components, stats, centroids = cv2.connectedComponentsWithStats(region, 8)
        eroded = cv2.erode(region, inset)
        skeleton = skeletonize(eroded.astype(bool))
        strokes = np.zeros(mask.shape, bool)
        for label in range(1, count):
            x, y, w, h, _ = stats[label]
            window = (slice(y, y + h), slice(x, x + w))
            own = components[window] == label
            bone = skeleton[window] & own
            if not bone.any():  # too small to survive the inset: one short stroke
                bone = skeletonize(own)
                rows, cols = np.mgrid[y : y + h, x : x + w]
                cx, cy = centroids[label]
                bone &= (rows - cy) ** 2 + (cols - cx) ** 2 <= SCRIBBLE_SMALL_RADIUS**2
                if not bone.any():
                    bone[int(round(cy)) - y, int(round(cx)) - x] = own[
                        int(round(cy)) - y, int(round(cx)) - x
                    ]
            strokes[window] |= _keep_pieces(bone, rng)
        widened = cv2.dilate(strokes.astype(np.uint8), widen).astype(bool) & (region > 0)
        out[widened] = class_index
    return out


def _keep_pieces(bone: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cut a skeleton into ~SCRIBBLE_PIECE-px pieces (by grid cells) and keep a share."""
    rows, cols = np.nonzero(bone)
    if len(rows) <= SCRIBBLE_PIECE:
        return bone
    cell = SCRIBBLE_PIECE // 2
    keys = (rows // cell) * 100_003 + cols // cell
    unique = np.unique(keys)
    keep = unique[rng.random(len(unique)) < SCRIBBLE_KEEP]
    if len(keep) == 0:
        keep = unique[[int(rng.integers(len(unique)))]]
    kept = np.zeros_like(bone)
    chosen = np.isin(keys, keep)
    kept[rows[chosen], cols[chosen]] = True
    return kept


def labelled_masks(
    data_split: Split, regime: str, seed: int = 0
) -> dict[str, np.ndarray]:
    """The training masks of the regime: dense masks as they are, or scribbles from them."""
    masks = {}
    for index, stem in enumerate(sorted(data_split.train)):
        truth = read_truth(data_split.masks[stem])
        masks[stem] = truth if regime == "dense" else scribbles(truth, seed * 1000 + index)
    return masks


class Confusion:
    """Accumulates a confusion matrix over test images; void (255) pixels are ignored."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def add(self, prediction: np.ndarray, truth: np.ndarray) -> None:
        if prediction.shape != truth.shape:
            raise ValueError(f"prediction {prediction.shape} vs truth {truth.shape}")
        keep = truth != VOID
        index = truth[keep].astype(np.int64) * self.num_classes + np.minimum(
            prediction[keep].astype(np.int64), self.num_classes - 1
        )
        self.matrix += np.bincount(index, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def ious(self) -> np.ndarray:
        inter = np.diag(self.matrix).astype(float)
        union = self.matrix.sum(0) + self.matrix.sum(1) - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, inter / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        return float(np.nanmean(self.ious()))


# --- the forest baseline ------------------------------------------------------------------

FOREST_TREES = 100
FOREST_MAX_SAMPLES = 100_000


def forest_features(image: np.ndarray) -> np.ndarray:
    """ilastik-style features: scikit-image's multiscale intensity, edges and texture."""
    from skimage.feature import multiscale_basic_features

    normalised = normalize(image)  # (H, W, C) 0..1, as segtool's own input
    return multiscale_basic_features(
        normalised, channel_axis=-1, sigma_min=1.0, sigma_max=16.0
    ).astype(np.float32)


@dataclasses.dataclass
class ForestResult:
    ious: np.ndarray
    miou: float
    seconds: float  # features of the training images + fitting (prediction not counted)
    samples: int


def forest_baseline(
    data_split: Split, masks: dict[str, np.ndarray], seed: int = 0
) -> ForestResult:
    """Random forest on exactly the labelled pixels of ``masks``, scored on the test images.

    At most ``FOREST_MAX_SAMPLES`` labelled pixels (a uniform seeded subsample) are used
    to fit, as interactive pixel classifiers do to stay responsive.
    """
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(seed)
    start = time.monotonic()
    features, labels = [], []
    for stem, mask in masks.items():
        keep = mask != VOID
        image_features = forest_features(read_image(data_split.train[stem]))
        features.append(image_features[keep])
        labels.append(mask[keep])
    x, y = np.concatenate(features), np.concatenate(labels)
    if len(y) > FOREST_MAX_SAMPLES:
        pick = rng.choice(len(y), FOREST_MAX_SAMPLES, replace=False)
        x, y = x[pick], y[pick]
    forest = RandomForestClassifier(
        n_estimators=FOREST_TREES, n_jobs=-1, random_state=seed, min_samples_leaf=2
    )
    forest.fit(x, y)
    seconds = time.monotonic() - start
    confusion = Confusion(len(data_split.protocol.classes))
    for stem, path in data_split.test.items():
        image_features = forest_features(read_image(path))
        height, width = image_features.shape[:2]
        predicted = forest.predict(image_features.reshape(height * width, -1))
        confusion.add(predicted.reshape(height, width), read_truth(data_split.masks[stem]))
    return ForestResult(confusion.ious(), confusion.miou(), seconds, int(len(y)))


def score_predictions(
    data_split: Split, predictions: dict[str, np.ndarray]
) -> tuple[np.ndarray, float]:
    """Per-class IoU and mIoU of predicted class maps on the test images."""
    confusion = Confusion(len(data_split.protocol.classes))
    for stem in data_split.test:
        confusion.add(predictions[stem], read_truth(data_split.masks[stem]))
    return confusion.ious(), confusion.miou()


def labelled_share(masks: Sequence[np.ndarray]) -> float:
    total = sum(m.size for m in masks)
    return sum(int(np.count_nonzero(m != VOID)) for m in masks) / max(total, 1)
