"""Project-level training and prediction: the glue shared by the CLI and the GUI workers.

Reads the project's images and masks (core), trains or loads a model (ml), and writes the
model with its sidecar into ``models/``. Every user error raises :class:`SegtoolError`
before any file of the user's is touched.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segtool.core.errors import SegtoolError
from segtool.core.images import image_info
from segtool.core.masks import UNLABELLED, check_mask, read_mask
from segtool.core.normalize import normalize
from segtool.core.project import ImageStatus, Project

log = logging.getLogger(__name__)

NORMALISATION = {"method": "percentile", "low": 1.0, "high": 99.8}


@dataclass
class TrainingSet:
    """Normalised images ((H, W, C) float32) and their masks ((H, W) uint8, 255 = unlabelled)."""

    stems: list[str]
    images: list[np.ndarray]
    masks: list[np.ndarray]
    channels: int

    @property
    def labelled_pixels(self) -> int:
        return int(sum(int(np.count_nonzero(mask != UNLABELLED)) for mask in self.masks))


@dataclass
class TrainOutcome:
    """What a project training run produced and whether the new model became current."""

    model_path: Path
    sidecar: dict
    became_current: bool
    previous_model: str | None
    previous_val_iou: float | None
    cancelled: bool
    history: list = field(default_factory=list)


def project_channels(project: Project) -> int:
    """3 if any readable image of the project is colour, else 1."""
    channels = 1
    for stem in project.image_names():
        if project.status(stem) == ImageStatus.UNREADABLE:
            continue
        try:
            info = image_info(project.image_path(stem), project.max_pixels)
            channels = max(channels, info.channels)
        except SegtoolError:
            continue
    return channels


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Give a normalised (H, W, C) image ``channels`` channels (grey repeated, colour averaged)."""
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=-1)
    return image.mean(axis=-1, keepdims=True, dtype=np.float32)


def model_input(image: np.ndarray, channels: int) -> np.ndarray:
    """The model's input for a raw image: percentile-normalised, (H, W, channels) float32."""
    normalised = normalize(image, NORMALISATION["low"], NORMALISATION["high"])
    return to_channels(normalised, channels)


def collect_training_set(project: Project, channels: int | None = None) -> TrainingSet:
    """Every image whose mask has labelled pixels, normalised for the model.

    Raises SegtoolError naming every mask that does not fit its image (wrong size, unknown
    class index, unreadable), or saying that nothing is labelled.
    """
    channels = channels or project_channels(project)
    problems: list[str] = []
    pairs: list[tuple[str, np.ndarray]] = []
    for stem in project.image_names():
        mask_path = project.mask_path(stem)
        if not mask_path.exists():
            continue
        try:
            mask = read_mask(mask_path)
            if not np.any(mask != UNLABELLED):
                continue
            info = image_info(project.image_path(stem), project.max_pixels)
            check_mask(mask, (info.height, info.width), project.num_classes, mask_path)
        except SegtoolError as error:
            problems.append(str(error))
            continue
        pairs.append((stem, mask))
    if problems:
        listing = "\n  ".join(problems)
        raise SegtoolError(
            f"cannot train: {len(problems)} mask(s) do not fit their images:\n  {listing}",
            project.root,
        )
    if not pairs:
        raise SegtoolError("nothing is labelled yet: paint some pixels first", project.root)
    images = [model_input(project.load_image(stem), channels) for stem, _ in pairs]
    return TrainingSet([stem for stem, _ in pairs], images, [mask for _, mask in pairs], channels)


def new_model_path(project: Project) -> Path:
    """A fresh ``models/model-YYYYmmdd-HHMMSS.keras`` path that does not exist yet."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = project.models_dir / f"model-{stamp}.keras"
    counter = 1
    while path.exists():
        counter += 1
        path = project.models_dir / f"model-{stamp}-{counter}.keras"
    return path


def load_current_model(project: Project, channels: int | None = None) -> tuple[object, dict] | None:
    """The project's current model and sidecar, or None when it has none."""
    from segtool.ml.modelfile import load_model

    if not project.current_model:
        return None
    path = project.models_dir / project.current_model
    return load_model(path, channels=channels)


def train_project(
    project: Project,
    max_seconds: float | None = 60.0,
    epochs: int | None = None,
    from_scratch: bool = False,
    progress: Callable[[object], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    config_overrides: dict | None = None,
    make_current: bool = True,
) -> TrainOutcome:
    """Train on every labelled mask of ``project`` and save the model under ``models/``.

    Continues from the current model when its channels match (rebuilding only the last layer
    when classes were added). The new model deserves to become current only if it is at least
    as good as the current one on this run's validation pixels; with ``make_current`` it is
    made current here (the GUI does that itself, on its own Project).
    """
    training_set = collect_training_set(project)  # refuse bad input before TF starts
    from segtool.ml.device import configure_devices
    from segtool.ml.modelfile import save_model
    from segtool.ml.train import TrainConfig, train_model

    device = configure_devices()
    initial_model = None
    previous = None
    if project.current_model:
        try:
            previous = load_current_model(project, channels=training_set.channels)
        except SegtoolError:
            if not from_scratch:
                raise
            log.warning("current model unusable; training from scratch without comparing")
    if previous is not None and not from_scratch:
        initial_model = _initial_model(previous[0], project.num_classes)
    config = TrainConfig(max_seconds=max_seconds, epochs=epochs, **(config_overrides or {}))
    result = train_model(
        training_set.images,
        training_set.masks,
        project.num_classes,
        config,
        initial_model=initial_model,
        progress=progress,
        cancel=cancel,
    )
    # Old and new models are compared on the same held-out pixels, the same way.
    new_ious = validation_iou(
        result.model, training_set.images, result.val_masks, project.num_classes
    )
    new_iou = _mean(new_ious)
    previous_iou = None
    if previous is not None and int(previous[0].output_shape[-1]) == project.num_classes:
        previous_iou = _mean(
            validation_iou(previous[0], training_set.images, result.val_masks, project.num_classes)
        )
    became_current = previous_iou is None or (new_iou is not None and new_iou >= previous_iou)
    class_names = [info.name for info in project.classes]
    sidecar = {
        "format": 1,
        "classes": [{"name": c.name, "colour": list(c.colour)} for c in project.classes],
        "channels": training_set.channels,
        "normalisation": dict(NORMALISATION),
        "architecture": {"depth": config.depth, "base_filters": config.base_filters},
        "metrics": {
            "val_iou": dict(zip(class_names, _floats(
                new_ious if new_ious is not None else result.val_iou), strict=False)),
            "mean_val_iou": new_iou,
            "previous_model_val_iou": previous_iou,
        },
        "trained_on": training_set.stems,
        "labelled_pixels": training_set.labelled_pixels,
        "steps": int(result.steps),
        "seconds": round(float(result.elapsed), 2),
        "cancelled": bool(result.cancelled),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "parent": project.current_model if initial_model is not None else None,
        "device": device,
    }
    path = new_model_path(project)
    save_model(result.model, path, sidecar)
    previous_name = project.current_model
    if became_current and make_current:
        project.set_current_model(path.name)
    return TrainOutcome(
        path, sidecar, became_current, previous_name, previous_iou, bool(result.cancelled),
        list(result.history),
    )


def _initial_model(model: object, num_classes: int) -> object | None:
    """The model to continue from (train_model widens a smaller head), or None."""
    outputs = int(model.output_shape[-1])  # type: ignore[attr-defined]
    if outputs <= num_classes:
        return model
    log.info("current model has more classes (%d) than the project (%d): training from scratch",
             outputs, num_classes)
    return None


def validation_iou(
    model: object, images: Sequence[np.ndarray], val_masks: Sequence[np.ndarray], num_classes: int
) -> np.ndarray | None:
    """Per-class IoU of ``model`` (inference mode, tiled) on the held-out pixels, or None."""
    from segtool.ml.losses import iou_per_class
    from segtool.ml.predict import predict_tiled

    predictions, truths = [], []
    for image, val_mask in zip(images, val_masks, strict=True):
        held_out = val_mask != UNLABELLED
        if not np.any(held_out):
            continue
        classes, _ = predict_tiled(model, image)
        predictions.append(classes[held_out])
        truths.append(val_mask[held_out])
    if not truths:
        return None
    return iou_per_class(np.concatenate(predictions), np.concatenate(truths), num_classes)


def _mean(ious: np.ndarray | None) -> float | None:
    if ious is None or not np.any(np.isfinite(ious)):
        return None
    return float(np.nanmean(ious))


def _floats(values: Sequence[float]) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 4) for v in values]


def predict_stem(
    model: object, sidecar: dict, project: Project, stem: str
) -> tuple[np.ndarray, np.ndarray]:
    """Class indices and confidence ((H, W) uint8 each) for one project image."""
    from segtool.ml.predict import predict_tiled

    image = model_input(project.load_image(stem), int(sidecar.get("channels", 1)))
    return predict_tiled(model, image)
