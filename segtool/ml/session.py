"""Project-level training and prediction: the glue shared by the CLI and the GUI workers.

Reads the project's images and masks (core), trains or loads a model (ml), and writes the
model with its sidecar into ``models/``. Every user error raises :class:`SegtoolError`
before any file of the user's is touched.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from segtool.core.errors import SegtoolError
from segtool.core.images import image_info
from segtool.core.masks import UNLABELLED, check_mask, read_mask
from segtool.core.normalize import apply_windows, channel_windows, quantile_level
from segtool.core.project import ImageStatus, Project
from segtool.ml.recipe import DARK_QUANTILE, Recipe

if TYPE_CHECKING:  # no TensorFlow when this module is imported
    from segtool.ml.adaptation import StatisticsShift
    from segtool.ml.calibration import Calibration
    from segtool.ml.distribute import Distribution

log = logging.getLogger(__name__)

NORMALISATION = {"method": "percentile", "low": 1.0, "high": 99.8}
CROP_MARGIN = 256
"""Image context kept around the labelled pixels of a training image (pixels each side)."""
MIN_TRAIN_SECONDS = 1.0
"""A run left with less than this after loading trains nothing and saves no model."""
UNLABELLED_SAMPLE = 32
"""Unlabelled images (evenly spread over the project) that batch-norm statistics move to."""
UNLABELLED_MAX_PIXELS = 4096 * 4096
"""Larger unlabelled images are not read for them (reading one would cost seconds)."""
LEVEL_SAMPLE = 16
LEVEL_MAX_PIXELS = 2048 * 2048
"""Unlabelled images (evenly spread over the project) whose darkness joins the labelled
images' in deciding the input's power (``recipe.input_power``); larger ones and volumes are
not read for it (a first Ctrl+T would wait seconds for them)."""
FORWARD_SHARE = 0.5
"""A forward pass in training mode costs about this share of a training step of the same
batch (measured on the 2-core CPU: 0.13 s for 16 x 128 x 128 patches, depth 3, 8 filters)."""


SPEC_FIELDS = ("per_channel", "input_power")
"""Overrides of training that set the model's input (:class:`InputSpec`), not TrainConfig."""


def new_input_spec(channels: int, recipe: Recipe, overrides: dict) -> InputSpec:
    """A new model's input: the recipe's choices, or those ``overrides`` (``SPEC_FIELDS``)
    fix."""
    return InputSpec(channels, bool(overrides.get("per_channel", recipe.per_channel)),
                     float(overrides.get("input_power", recipe.input_power)))


@dataclass(frozen=True)
class InputSpec:
    """How a raw image becomes a model's input; saved in the model's sidecar.

    Percentile window (``low``..``high`` -> 0..1), pooled over the channels or one per
    channel, raised to ``power`` (below 1 lifts the dark end: dim objects on a dark ground;
    ``recipe.input_power``), then ``channels`` channels (grey repeated, colour averaged).
    """

    channels: int
    per_channel: bool = False
    power: float = 1.0
    low: float = NORMALISATION["low"]
    high: float = NORMALISATION["high"]

    @classmethod
    def from_sidecar(cls, sidecar: dict) -> InputSpec:
        """The spec a model was trained with (models from before per-channel: pooled)."""
        normalisation = sidecar.get("normalisation")
        normalisation = normalisation if isinstance(normalisation, dict) else {}
        channels = sidecar.get("channels", 1)
        per_channel = normalisation.get("per_channel", False)
        power = normalisation.get("power", 1.0)  # models from before the power: linear
        if (channels not in (1, 3) or not isinstance(per_channel, bool)
                or isinstance(power, bool) or not isinstance(power, (int, float))
                or not 0.1 <= power <= 10.0):
            raise SegtoolError(f"malformed model sidecar (channels {channels!r}, "
                               f"per_channel {per_channel!r}, power {power!r})")
        return cls(int(channels), per_channel, float(power))

    def sidecar_normalisation(self) -> dict:
        return {"method": "percentile", "low": self.low, "high": self.high,
                "per_channel": self.per_channel, "power": self.power}

    def windows(self, image: np.ndarray) -> list[tuple[float, float]]:
        """The image's (lo, hi) per channel, from the whole image."""
        return channel_windows(image, self.low, self.high, self.per_channel)

    def apply(self, image: np.ndarray, windows: list[tuple[float, float]]) -> np.ndarray:
        """``image`` (or a crop of it) windowed: (H, W, channels) float32 in 0..1."""
        windowed = apply_windows(image, windows)
        if self.power != 1.0:
            np.power(windowed, np.float32(self.power), out=windowed)
        return to_channels(windowed, self.channels)


@dataclass
class TrainingSet:
    """The labelled images of a project, cropped around their labels, not yet normalised.

    Entry i is one crop (an image has one per cluster of labels): ``raw[i]`` is the crop of
    image ``stems[i]`` (its own dtype and layout) around the labelled pixels of ``masks[i]``
    ((H, W) uint8, 255 = unlabelled, the same crop); ``pooled[i]`` and ``per_channel[i]`` are
    the whole image's percentile windows, so normalising the crop gives exactly the pixels
    the whole image would. ``shapes[i]`` is the whole image's (H, W); ``levels[i]`` where
    the whole image's upper quartile falls in its pooled window (0..1; ``recipe.input_power``).
    """

    stems: list[str]
    raw: list[np.ndarray]
    masks: list[np.ndarray]
    channels: int
    shapes: list[tuple[int, int]] = field(default_factory=list)
    pooled: list[list[tuple[float, float]]] = field(default_factory=list)
    per_channel: list[list[tuple[float, float]]] = field(default_factory=list)
    levels: list[float] = field(default_factory=list)

    @property
    def labelled_pixels(self) -> int:
        return int(sum(int(np.count_nonzero(mask != UNLABELLED)) for mask in self.masks))

    def normalised(self, spec: InputSpec) -> list[np.ndarray]:
        """The crops as model input, (H, W, spec.channels) float32 each."""
        windows = self.per_channel if spec.per_channel else self.pooled
        return [spec.apply(raw, w) for raw, w in zip(self.raw, windows, strict=True)]


@dataclass
class TrainOutcome:
    """What a project training run produced and whether the new model became current.

    ``model_path`` is None on a worker of a multi-host job other than the chief: it saves
    nothing, and its ``sidecar`` holds only the run's steps, seconds and devices.
    """

    model_path: Path | None
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
            info = (project.volume_info(stem) if project.is_volume(stem)
                    else image_info(project.image_path(stem), project.max_pixels))
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


def model_input(image: np.ndarray, spec: InputSpec | int) -> np.ndarray:
    """The model's input for a raw image: percentile-normalised, (H, W, channels) float32."""
    spec = spec if isinstance(spec, InputSpec) else InputSpec(spec)
    return spec.apply(image, spec.windows(image))


def labelled_crops(mask: np.ndarray, margin: int) -> list[tuple[slice, slice]]:
    """Windows around each cluster of labelled pixels, each grown by ``margin``.

    Labels closer than about ``2 * margin`` share a window; labels far apart (two corners of
    a huge image) get one window each, so training reads the labelled areas and their
    context, never the empty image in between.
    """
    labelled = mask != UNLABELLED
    height, width = mask.shape
    block = max(int(margin), 32)
    # Blocks holding labels: any() over row bands, then over column bands (exact, small).
    grid = _band_any(_band_any(labelled, block).T, block).T.astype(np.uint8)
    grown = cv2.dilate(grid, np.ones((3, 3), np.uint8))
    count, components, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    windows = []
    for component in range(1, count):
        left, top, span_cols, span_rows, _ = stats[component]
        area = (slice(top * block, min(height, (top + span_rows) * block)),
                slice(left * block, min(width, (left + span_cols) * block)))
        cells = components[top : top + span_rows, left : left + span_cols] == component
        cells = np.repeat(np.repeat(cells, block, 0), block, 1)
        own = labelled[area] & cells[: area[0].stop - area[0].start,
                                     : area[1].stop - area[1].start]
        found_rows = np.flatnonzero(own.any(axis=1)) + area[0].start
        found_cols = np.flatnonzero(own.any(axis=0)) + area[1].start
        if len(found_rows) == 0:
            continue
        windows.append((
            slice(max(0, int(found_rows[0]) - margin),
                  min(height, int(found_rows[-1]) + 1 + margin)),
            slice(max(0, int(found_cols[0]) - margin),
                  min(width, int(found_cols[-1]) + 1 + margin)),
        ))
    return windows


def _band_any(array: np.ndarray, band: int) -> np.ndarray:
    """``any`` over consecutive bands of ``band`` rows: (H, W) bool -> (ceil(H / band), W)."""
    whole = array.shape[0] // band
    parts = [array[: whole * band].reshape(whole, band, array.shape[1]).any(axis=1)]
    if array.shape[0] % band:
        parts.append(array[whole * band :].any(axis=0, keepdims=True))
    return np.concatenate(parts)


class NothingLabelledError(SegtoolError):
    """The project has no labelled pixel yet (continuous learning waits for some)."""


def collect_training_set(
    project: Project, channels: int | None = None, margin: int = CROP_MARGIN
) -> TrainingSet:
    """Every image whose mask has labelled pixels, cropped to its labels plus ``margin``.

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
            if project.is_volume(stem):  # (Z, H, W): its labelled slices are used below
                mask = project.load_mask_volume(stem)
                if np.any(mask != UNLABELLED):
                    pairs.append((stem, mask))
                continue
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
            f"cannot train: {len(problems)} mask file(s) cannot be used:\n  {listing}",
            project.root,
        )
    if not pairs:
        raise NothingLabelledError("nothing is labelled yet: paint some pixels first",
                                   project.root)
    training_set = TrainingSet([], [], [], channels)
    for stem, mask in pairs:
        volume = mask.ndim == 3
        image = project.read_volume(stem).array if volume else project.read_image(stem)
        # A volume's slices share the volume's windows, as in prediction (predict_volume).
        sample = volume_sample(image) if volume else image
        pooled = InputSpec(channels, per_channel=False).windows(sample)
        per_channel = InputSpec(channels, per_channel=True).windows(sample)
        level = image_level(sample, pooled[0])  # the window just computed, not again
        slices = (np.flatnonzero((mask != UNLABELLED).any(axis=(1, 2))) if volume else [None])
        for z in slices:
            plane, labels = (image[z], mask[z]) if volume else (image, mask)
            for window in labelled_crops(labels, margin):
                training_set.stems.append(stem)
                training_set.raw.append(np.ascontiguousarray(plane[window]))
                training_set.masks.append(np.ascontiguousarray(labels[window]))
                training_set.shapes.append(labels.shape)
                training_set.pooled.append(pooled)
                training_set.per_channel.append(per_channel)
                training_set.levels.append(level)
        del image
    return training_set


def volume_sample(volume: np.ndarray, slices: int = 16) -> np.ndarray:
    """About ``slices`` evenly spaced slices of a (Z, H, W[, C]) volume stacked into one
    (n * H, W[, C]) image: what a volume's percentile windows are computed on."""
    step = max(1, volume.shape[0] // slices)
    picked = volume[::step]
    return picked.reshape((-1, *picked.shape[2:]))


def image_level(image: np.ndarray, window: tuple[float, float] | None = None) -> float:
    """Where ``image``'s upper quartile falls in its pooled percentile ``window`` (0..1;
    computed when not given), what ``recipe.input_power`` decides on."""
    window = window or InputSpec(1).windows(image)[0]
    return quantile_level(image, window, DARK_QUANTILE)


def _unlabelled_raw(project: Project, labelled: set[str], limit: int, purpose: str,
                    max_pixels: int = UNLABELLED_MAX_PIXELS,
                    volumes: bool = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Up to ``limit`` of the project's images without labels, evenly spread over its list,
    raw: (what its windows come from, the plane to use); a volume gives its slice sample and
    its middle slice. Images over ``max_pixels`` (and volumes, unless ``volumes``) are not
    read; unreadable ones are skipped (logged as not used for ``purpose``): they are no
    one's labels, so they never stop a training run."""
    stems = [stem for stem in project.image_names() if stem not in labelled]
    if len(stems) > limit:
        stems = [stems[int(i)] for i in np.linspace(0, len(stems) - 1, limit).round()]
    for stem in stems:
        try:
            if project.is_volume(stem):
                if volumes:
                    volume = project.read_volume(stem).array
                    yield volume_sample(volume), volume[volume.shape[0] // 2]
                continue
            height, width = project.image_shape(stem)
            if height * width > max_pixels:
                continue
            image = project.read_image(stem)
        except SegtoolError as error:
            log.warning("not used for %s: %s", purpose, error)
            continue
        yield image, image


def unlabelled_sample(
    project: Project, spec: InputSpec, labelled: set[str], limit: int = UNLABELLED_SAMPLE
) -> list[np.ndarray]:
    """Up to ``limit`` of the project's images without labels, evenly spread over its list,
    as model input (a volume: its middle slice, normalised with the volume's windows)."""
    return [spec.apply(plane, spec.windows(sample))
            for sample, plane in _unlabelled_raw(project, labelled, limit,
                                                 "batch-norm statistics")]


def project_levels(project: Project, training_set: TrainingSet,
                   limit: int = LEVEL_SAMPLE) -> list[float]:
    """:func:`image_level` of the labelled images (one per crop) and of up to ``limit``
    unlabelled ones (2D, up to ``LEVEL_MAX_PIXELS``): the input suits the images the model
    will predict, not only those labelled first (continuous learning decides it at the
    first mask, for the model's life)."""
    unlabelled = _unlabelled_raw(project, set(training_set.stems), limit, "the input's power",
                                 LEVEL_MAX_PIXELS, volumes=False)
    return [*training_set.levels, *(image_level(sample) for sample, _ in unlabelled)]


def adaptation_seconds(speed: float, patch: int, depth: int, width: int) -> float:
    """What :func:`segtool.ml.adaptation.shift_statistics` will take on this device."""
    from segtool.ml.adaptation import BATCH, PATCHES
    from segtool.ml.recipe import step_cost

    passes = 2 * -(-PATCHES // BATCH)
    return passes * FORWARD_SHARE * step_cost(patch, BATCH, depth, width) / max(speed, 1e-6)


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
    distribution: Distribution | None = None,
    phase: Callable[[str], None] | None = None,
) -> TrainOutcome:
    """Train on every labelled mask of ``project`` and save the model under ``models/``.

    ``max_seconds`` counts from this call: reading the images and starting TensorFlow come
    out of the same budget as the training steps. The recipe (patch size, model size, class
    weights, augmentation, normalisation) is chosen from the labels, the images and the
    device's measured speed (:mod:`segtool.ml.recipe`); ``config_overrides`` can fix any
    TrainConfig field or one of ``SPEC_FIELDS``. Continues from the current model when its channels
    match (rebuilding only the last layer when classes were added), keeping its input
    normalisation and architecture. The new model deserves to become current only if it is
    at least as good as the current one on this run's validation pixels; with
    ``make_current`` it is made current here (the GUI does that itself, on its own Project).

    ``distribution`` (default: every GPU of this host, mirrored when there are two or more;
    see :mod:`segtool.ml.distribute`) may be a multi-host job's: then every worker calls
    this on the same project, the chief's measured speed and budget choose the recipe for
    all, and only the chief scores and saves the model (its caller holds the project lock).

    ``phase(text)`` hears what the run is doing: "reading N labelled images", "compiling"
    (until the first step's progress report), "scoring and saving".

    Raises:
        SegtoolError: bad masks, nothing labelled, no training step fitted in the budget
            (then no model is saved), or another worker of a multi-host job failed.
    """
    started = time.monotonic()
    say = phase or (lambda _text: None)
    masks = sum(project.mask_path(stem).exists() for stem in project.image_names())
    say(f"reading {masks} labelled image{'s' if masks != 1 else ''}")
    training_set = collect_training_set(project)  # refuse bad input before TF starts
    from segtool.ml.device import configure_devices, reference_steps_per_second
    from segtool.ml.distribute import local_distribution
    from segtool.ml.modelfile import save_model
    from segtool.ml.recipe import AVERAGE_WHERE_STATISTICS_MOVE, choose_recipe
    from segtool.ml.train import TrainConfig, holdout_iou, train_model

    device = configure_devices()
    distribution = distribution or local_distribution()
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
        initial_model = continuable(previous[0], project.num_classes)
    overrides = dict(config_overrides or {})
    # a model that continues keeps its own input: only a new one needs the images' darkness
    levels = project_levels(project, training_set) if initial_model is None else []
    speed = reference_steps_per_second()
    left = None if max_seconds is None else max_seconds - (time.monotonic() - started)
    with distribution.peer_failures():  # every worker takes the chief's recipe
        _check_same_data_as_chief(distribution, project, training_set)
        speed, left = _from_chief(distribution, speed, left)
    recipe = choose_recipe(training_set.masks, project.num_classes, training_set.shapes,
                           training_set.per_channel, speed, left, levels=levels)
    if initial_model is not None:  # the model decides its own input and architecture
        recipe = recipe.fine_tuning(project.current_model)
    for reason in recipe.reasons:
        log.info("recipe: %s", reason)
    spec_overrides = {name: overrides.pop(name) for name in SPEC_FIELDS if name in overrides}
    spec = (InputSpec.from_sidecar(previous[1]) if initial_model is not None
            else new_input_spec(training_set.channels, recipe, spec_overrides))
    images = training_set.normalised(spec)
    fields = {**recipe.config_fields(), "validation_margin": recipe.patch_size // 2,
              "learning_rate": TrainConfig.learning_rate * recipe.learning_rate_scale,
              **overrides}
    adapt = fields.get("adapt_statistics", TrainConfig.adapt_statistics)
    from segtool.ml.adaptation import StatisticsShift, declined, shift_statistics
    from segtool.ml.unet import copy_model

    ruled_out = declined(training_set.masks) if adapt else None
    unlabelled = (unlabelled_sample(project, spec, set(training_set.stems))
                  if adapt and not ruled_out and distribution.is_chief else [])
    if unlabelled and not fields.get("ema") and not fields.get("calibrate"):
        # the weight average is the candidate for a run whose statistics move (off: recipe)
        fields.setdefault("keep_average", AVERAGE_WHERE_STATISTICS_MOVE)
    remaining = None
    if max_seconds is not None:
        remaining = max_seconds - (time.monotonic() - started)
        if unlabelled:  # the statistics' forward passes come out of the same budget
            depth, width = ((_model_depth(initial_model), _model_width(initial_model))
                            if initial_model is not None else (fields["depth"],
                                                               fields["base_filters"]))
            remaining -= adaptation_seconds(speed, fields["patch_size"], depth, width)
    with distribution.peer_failures():
        (remaining,) = _from_chief(distribution, remaining)
    if remaining is not None and remaining < MIN_TRAIN_SECONDS:
        raise SegtoolError(_no_step_message(max_seconds, time.monotonic() - started),
                           project.root)
    config = TrainConfig(max_seconds=remaining, epochs=epochs, **fields)
    say("compiling")  # the first step traces and compiles; progress reports follow it
    with distribution.peer_failures():
        result = train_model(
            images,
            training_set.masks,
            project.num_classes,
            config,
            initial_model=initial_model,
            progress=progress,
            cancel=cancel,
            distribution=distribution,
        )
    if result.steps == 0:
        message = ("training was stopped before its first training step: no model saved"
                   if result.cancelled else
                   _no_step_message(max_seconds, time.monotonic() - started))
        raise SegtoolError(message, project.root)
    run = {"steps": int(result.steps), "seconds": round(float(time.monotonic() - started), 2),
           "cancelled": bool(result.cancelled), "device": device,
           "distribution": distribution.sidecar(config.batch_size)}
    if not distribution.is_chief:  # the chief scores and saves the model; workers write nothing
        return TrainOutcome(None, run, False, project.current_model, None,
                            bool(result.cancelled), list(result.history))
    say("scoring and saving")
    model = result.model
    shift = None
    averaged = False
    if ruled_out:
        shift = StatisticsShift(0, len(images), 0, 0, declined=ruled_out)
    elif adapt:
        if distribution.strategy is not None:  # a plain copy, off the replicas' variables
            model = copy_model(model)
        trained = None
        if result.averaged is not None and result.steps * (1 - config.ema_decay) >= 1:
            # decided on the average, kept if they move; a run shorter than the average's
            # window (1 / (1 - decay) steps) keeps its own weights (bench/README)
            trained = model.get_weights()
            model.set_weights(result.averaged.weights)
        shift = shift_statistics(model, images, unlabelled, config.patch_size, config.seed)
        if trained is not None and not shift.applied:
            model.set_weights(trained)  # the statistics stay: so do the model's own weights
        averaged = trained is not None and shift.applied
    if shift is not None:
        log.info("%s", shift.reason())
    # Old and new models are compared on the same held-out pixels, the same way.
    new_ious = holdout_iou(model, images, result.val_masks, project.num_classes, config)
    new_iou = _mean(new_ious)
    previous_iou = None
    if previous is not None and int(previous[0].output_shape[-1]) == project.num_classes:
        previous_spec = InputSpec.from_sidecar(previous[1])
        previous_images = images if previous_spec == spec else training_set.normalised(
            previous_spec)
        previous_model = previous[0]
        if shift is not None and shift.applied and previous_spec == spec and not moved(
                previous[1]):
            # The labelled patient's held-out pixels favour statistics as trained (bench/
            # README), so a parent without the shift is scored with it too, on a copy.
            previous_model = copy_model(previous_model)
            shift_statistics(previous_model, images, unlabelled, config.patch_size,
                             config.seed, min_difference=0.0)
        previous_iou = _mean(holdout_iou(
            previous_model, previous_images, result.val_masks, project.num_classes, config))
    became_current = previous_iou is None or (new_iou is not None and new_iou >= previous_iou)
    reasons = list(recipe.reasons)
    if result.calibration is not None:
        reasons.append(result.calibration.reason())
    if shift is not None:
        reasons.append(shift.reason())
    if averaged:
        reasons.append(f"weights averaged (EMA, decay {config.ema_decay:g}) where the "
                       "batch-norm statistics move")
    sidecar = model_sidecar(
        project, model, spec, config, reasons,
        val_ious=list(new_ious if new_ious is not None else result.val_iou),
        mean_val=new_iou, previous_val=previous_iou, stems=training_set.stems,
        labelled_pixels=training_set.labelled_pixels,
        run={**run, "seconds": round(float(time.monotonic() - started), 2)},
        parent=project.current_model if initial_model is not None else None,
        calibration=result.calibration, shift=shift, averaged=averaged)
    path = new_model_path(project)
    save_model(model, path, sidecar)
    previous_name = project.current_model
    if became_current and make_current:
        project.set_current_model(path.name)
    return TrainOutcome(
        path, sidecar, became_current, previous_name, previous_iou, bool(result.cancelled),
        list(result.history),
    )


def _from_chief(distribution: Distribution, *values: float | None) -> list[float | None]:
    """The chief's ``values`` (its measured speed, its time left) on every worker of a
    multi-host job; None (no time budget) travels as nan."""
    if not distribution.coordinated:
        return list(values)
    agreed = distribution.from_chief([math.nan if v is None else v for v in values])
    return [None if math.isnan(v) else v for v in agreed]


def _check_same_data_as_chief(distribution: Distribution, project: Project,
                              training_set: TrainingSet) -> None:
    """Refuse, on a worker of a multi-host job, labels that differ from the chief's.

    Workers that read different masks would choose different recipes and models, and their
    collective operations would not match. Compared: the number of classes, of labelled
    crops and of labelled pixels (modulo 2**24, exact in float32).
    """
    if not distribution.coordinated:
        return
    mine = [float(project.num_classes), float(len(training_set.stems)),
            float(training_set.labelled_pixels % 2**24)]
    chiefs = distribution.from_chief(mine)
    if chiefs != mine:
        raise SegtoolError(
            f"this worker reads {len(training_set.stems)} labelled area(s) of "
            f"{project.num_classes} classes, the chief {int(chiefs[1])} of {int(chiefs[0])} "
            f"classes, or other labelled pixels: every worker must read the same project "
            f"(shared storage, the same files)", project.root)


def model_sidecar(
    project: Project, model: object, spec: InputSpec, config: object,
    reasons: Sequence[str], val_ious: Sequence[float], mean_val: float | None,
    previous_val: float | None, stems: Sequence[str], labelled_pixels: int, run: dict,
    parent: str | None, calibration: Calibration | None = None,
    shift: StatisticsShift | None = None, averaged: bool = False,
) -> dict:
    """The sidecar saved beside a trained model (what ModelSidecar reads back): classes,
    input, architecture, recipe, held-out scores, what it was trained on, and ``run``
    (steps, seconds, device, ...)."""
    class_names = [info.name for info in project.classes]
    return {
        "format": 1,
        "classes": [{"name": c.name, "colour": list(c.colour)} for c in project.classes],
        "channels": spec.channels,
        "normalisation": spec.sidecar_normalisation(),
        "architecture": {"depth": _model_depth(model), "base_filters": _model_width(model)},
        "recipe": {"patch_size": config.patch_size, "batch_size": config.batch_size,
                   "class_weights": list(config.class_weights or []) or None,
                   "rotations": config.rotations, "ema": config.ema or averaged,
                   "learning_rate": config.learning_rate,
                   "pairwise_weight": config.pairwise_weight,
                   "logit_offsets": (list(calibration.offsets)
                                     if calibration is not None and calibration.applied else None),
                   "batch_norm_shift": shift.sidecar() if shift is not None else None,
                   "reasons": list(reasons)},
        "metrics": {
            "val_iou": dict(zip(class_names, _floats(val_ious), strict=False)),
            "mean_val_iou": mean_val,
            "previous_model_val_iou": previous_val,
        },
        "trained_on": list(dict.fromkeys(stems)),
        "labelled_pixels": int(labelled_pixels),
        **run,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "parent": parent,
    }


def moved(sidecar: dict) -> bool:
    """Whether a model's batch-norm statistics were moved to unlabelled images."""
    recipe = sidecar.get("recipe")
    shift = recipe.get("batch_norm_shift") if isinstance(recipe, dict) else None
    return isinstance(shift, dict) and bool(shift.get("layers"))


def _no_step_message(max_seconds: float | None, elapsed: float) -> str:
    return (f"no training step fitted in the {max_seconds:g} s budget (reading the images and "
            f"starting took {elapsed:.1f} s): no model saved; give training more time or "
            "label a smaller area")


def _model_depth(model: object) -> int:
    from segtool.ml.backend import keras

    return sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)


def _model_width(model: object) -> int:
    from segtool.ml.backend import keras

    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    return int(convs[0].filters) if convs else 0


def continuable(model: object, num_classes: int) -> object | None:
    """``model`` if training can continue from it (train_model widens a smaller head), or
    None when it predicts more classes than the project has (a class was deleted: its
    outputs no longer mean the project's classes)."""
    outputs = int(model.output_shape[-1])  # type: ignore[attr-defined]
    if outputs <= num_classes:
        return model
    log.info("current model has more classes (%d) than the project (%d): training from scratch",
             outputs, num_classes)
    return None


def _mean(ious: np.ndarray | None) -> float | None:
    if ious is None or not np.any(np.isfinite(ious)):
        return None
    return float(np.nanmean(ious))


def _floats(values: Sequence[float]) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 4) for v in values]


def predict_stem(
    model: object, sidecar: dict, project: Project, stem: str, flip: bool | None = None,
    runner_up: bool = False,
) -> tuple[np.ndarray, ...]:
    """Class indices and confidence ((H, W) uint8 each) for one project image; with
    ``runner_up``, also the second most probable class and its confidence.

    ``flip`` (test-time left-right mirroring) defaults to what the model's sidecar says.
    """
    from segtool.ml.predict import predict_tiled

    if flip is None:
        flip = sidecar.get("test_time_flip") is True
    if project.is_volume(stem):
        raise SegtoolError("a volume: predict it with predict_volume", project.image_path(stem))
    image = model_input(project.read_image(stem), InputSpec.from_sidecar(sidecar))
    return predict_tiled(model, image, flip=flip, runner_up=runner_up)


def predict_volume(
    model: object, sidecar: dict, project: Project, stem: str, flip: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Class indices and confidence ((Z, H, W) uint8 each) of a volume, slice by slice.

    Each slice is normalised with the volume's windows (as in training) and predicted on
    its own, so memory beyond the volume and its results is one slice's.
    ``progress(done, total)`` follows each slice; when ``cancelled()`` turns true the run
    stops and returns None.
    """
    from segtool.ml.predict import predict_tiled

    if flip is None:
        flip = sidecar.get("test_time_flip") is True
    volume = project.read_volume(stem).array
    spec = InputSpec.from_sidecar(sidecar)
    windows = spec.windows(volume_sample(volume))
    classes = np.empty(volume.shape[:3], np.uint8)
    confidence = np.empty(volume.shape[:3], np.uint8)
    for z in range(volume.shape[0]):
        if cancelled is not None and cancelled():
            return None
        classes[z], confidence[z] = predict_tiled(model, spec.apply(volume[z], windows),
                                                  flip=flip)
        if progress is not None:
            progress(z + 1, volume.shape[0])
    return classes, confidence
