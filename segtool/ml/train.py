"""Training from sparse labels within a time budget, with a validation hold-out.

``train_model`` samples augmented patches where labels are, runs compiled training steps
(AdamW, warm-up then cosine decay over the budget), checks ``cancel`` between steps,
validates on held-out blocks every ``steps_per_epoch`` steps, and returns the weights that
scored best on validation. The caller decides whether the result becomes the project's
current model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from segtool.core.errors import SegtoolError
from segtool.ml.backend import inference_function, keras, tf
from segtool.ml.calibration import Calibration, calibrate_model
from segtool.ml.data import (
    UNLABELLED,
    Augmentation,
    PatchSampler,
    split_holdout,
    validation_crops,
)
from segtool.ml.distribute import Distribution, statistics_averager
from segtool.ml.losses import (
    iou_per_class,
    masked_loss,
    mean_iou,
    pairwise_loss,
    unlabelled_entropy,
)
from segtool.ml.unet import (
    Normalization,
    adapt_classes,
    build_unet,
    copy_model,
    model_channels,
    model_classes,
)

logger = logging.getLogger(__name__)

VALIDATION_BATCH = 16
MAX_VALIDATION_CROPS = 64
VALIDATION_GAP = 9.0
"""A time-budgeted run trains at least this many times as long as it last validated."""


@dataclasses.dataclass
class TrainConfig:
    """Settings of one training run; the defaults are tuned for a 2-core CPU.

    Training stops at ``max_seconds`` (wall clock, set-up and compilation included) or
    after ``epochs`` * ``steps_per_epoch`` steps, whichever comes first; at least one of
    the two must be set. ``depth``, ``base_filters`` and ``normalization`` only apply when
    a new model is built.
    """

    max_seconds: float | None = 60.0
    epochs: int | None = None
    steps_per_epoch: int = 50
    patch_size: int = 64
    batch_size: int = 16
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    dice_weight: float = 1.0
    holdout_fraction: float = 0.15
    holdout_block: int = 32
    validation_margin: int = 32
    augmentation: Augmentation | None = dataclasses.field(default_factory=Augmentation)
    seed: int = 0
    depth: int = 3
    base_filters: int = 8
    normalization: Normalization = Normalization.BATCH
    jit_compile: bool = False
    class_weights: tuple[float, ...] | None = None
    rotations: bool = True
    ema: bool = False
    ema_decay: float = 0.999
    keep_average: bool = False  # also keep the best averaged weights (TrainResult.averaged)
    calibrate: bool = False  # logit offsets (segtool/ml/calibration.py): off, see there
    pairwise_weight: float = 0.0  # losses.pairwise_loss: off, it cost on scribbles (bench/README)
    pairwise_sigma: float = 0.2
    entropy_weight: float = 0.0  # losses.unlabelled_entropy: off, see bench/README
    adapt_statistics: bool = True  # project runs: ml/adaptation.py, batch-norm statistics

    def sampler_augmentation(self) -> Augmentation | None:
        """The patch sampler's augmentation, with 90-degree turns as ``rotations`` says."""
        if self.augmentation is None:
            return None
        return dataclasses.replace(self.augmentation, rotations=self.rotations)


@dataclasses.dataclass(frozen=True)
class TrainProgress:
    """One report: ``val_iou`` holds the latest validation (per class, nan = not measured)."""

    step: int
    total_steps_estimate: int
    loss: float
    val_iou: list[float]
    elapsed: float


@dataclasses.dataclass
class TrainResult:
    """The best model on validation (or the last one when nothing was held out).

    ``val_masks`` are the held-out pixels, one ``(H, W)`` uint8 mask per image (255 where
    not held out), so a caller can score other models on the same pixels.
    """

    model: keras.Model
    val_iou: list[float]
    mean_val_iou: float
    steps: int
    elapsed: float
    history: list[TrainProgress]
    cancelled: bool
    val_masks: list[np.ndarray] = dataclasses.field(default_factory=list)
    calibration: Calibration | None = None
    averaged: AveragedWeights | None = None


@dataclasses.dataclass
class AveragedWeights:
    """With ``TrainConfig.keep_average``: the weight average (EMA) that scored best on the
    held-out pixels, beside the model's own best weights, for the caller to choose
    (``model.set_weights(averaged.weights)``); ``val_iou`` is its validation."""

    weights: list[np.ndarray]
    val_iou: list[float]


def learning_rate_at(fraction: float, peak: float, warmup_fraction: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup_fraction`` of the run, then cosine to 1%."""
    fraction = min(max(fraction, 0.0), 1.0)
    if fraction < warmup_fraction:
        return peak * (0.1 + 0.9 * fraction / warmup_fraction)
    decay = (fraction - warmup_fraction) / max(1.0 - warmup_fraction, 1e-9)
    return peak * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * decay)))


def _check_inputs(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray], num_classes: int
) -> int:
    """Validate shapes and class values; return the channel count."""
    if len(images) != len(masks) or not images:
        raise ValueError(
            f"need matching non-empty images and masks, got {len(images)}, {len(masks)}"
        )
    channels = {image.shape[-1] for image in images}
    if any(image.ndim != 3 for image in images) or len(channels) != 1:
        raise ValueError("images must all be (H, W, C) with the same C")
    for image, mask in zip(images, masks, strict=True):
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} differs from image {image.shape[:2]}")
        values = np.unique(mask)
        if np.any((values >= num_classes) & (values != UNLABELLED)):
            raise ValueError(f"mask holds classes {values} but num_classes is {num_classes}")
    if all(np.all(mask == UNLABELLED) for mask in masks):
        raise SegtoolError("nothing is labelled yet: paint some pixels of each class first")
    return channels.pop()


def _starting_model(
    initial_model: keras.Model | None, channels: int, num_classes: int, config: TrainConfig
) -> keras.Model:
    """A fresh U-Net, or a copy of ``initial_model`` (head widened if classes were added)."""
    if initial_model is None:
        return build_unet(
            channels, num_classes, config.depth, config.base_filters, config.normalization
        )
    if model_channels(initial_model) != channels:
        raise ValueError(
            f"initial model takes {model_channels(initial_model)} channels, images have {channels}"
        )
    if model_classes(initial_model) > num_classes:
        raise ValueError(
            f"initial model predicts {model_classes(initial_model)} classes, more than "
            f"{num_classes}"
        )
    if model_classes(initial_model) < num_classes:
        return adapt_classes(initial_model, num_classes)
    return copy_model(initial_model)


class _Validator:
    """Per-class IoU on the held-out crops, in inference mode."""

    def __init__(self, crops: np.ndarray, labels: np.ndarray, num_classes: int) -> None:
        self.crops = crops
        self.labels = labels
        self.num_classes = num_classes

    @property
    def empty(self) -> bool:
        return len(self.crops) == 0

    def __call__(self, predict: Callable[[np.ndarray], np.ndarray]) -> list[float]:
        if self.empty:
            return [math.nan] * self.num_classes
        predictions = np.concatenate(
            [
                predict(self.crops[start : start + VALIDATION_BATCH])
                for start in range(0, len(self.crops), VALIDATION_BATCH)
            ]
        )
        return [float(v) for v in iou_per_class(predictions, self.labels, self.num_classes)]


def train_model(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    num_classes: int,
    config: TrainConfig,
    initial_model: keras.Model | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    distribution: Distribution | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TrainResult:
    """Train a U-Net on sparsely labelled images.

    Args:
        images: normalised images, each ``(H, W, C)`` float32 (C = 1 or 3, the same for all).
        masks: matching ``(H, W)`` uint8 masks, 255 = unlabelled (no loss there).
        num_classes: number of classes (>= 2).
        config: budget and hyper-parameters.
        initial_model: continue from this model (it is copied, never modified); it must
            take the same channels and predict at most ``num_classes`` classes (a smaller
            head is widened with ``adapt_classes``).
        progress: called after every step with a ``TrainProgress``.
        cancel: called between steps; training stops soon after it returns True.
        distribution: run on several replicas (see :mod:`segtool.ml.distribute`): each
            takes ``config.batch_size`` patches a step, so the global batch grows with the
            replicas; in a multi-host job every process calls this, the chief's clock and
            ``cancel`` decide for all, and each worker samples its own patches. None (or a
            Distribution without a strategy): one device, no tf.distribute.
        clock: the time source of ``config.max_seconds`` (tests give a fake one).

    Returns:
        A ``TrainResult`` holding the weights that scored the best mean validation IoU.

    Raises:
        SegtoolError: no pixel is labelled.
        ValueError: inconsistent inputs or configuration.
    """
    start = clock()
    if config.max_seconds is None and config.epochs is None:
        raise ValueError("set max_seconds, epochs or both")
    channels = _check_inputs(images, masks, num_classes)
    rng = np.random.default_rng(config.seed)
    keras.utils.set_random_seed(config.seed)
    replicated = distribution if distribution is not None and distribution.strategy else None
    with replicated.scope() if replicated else contextlib.nullcontext():
        model = _starting_model(initial_model, channels, num_classes, config)
    multiple = 2 ** _downsamplings(model)
    if config.patch_size % multiple:
        raise ValueError(f"patch_size {config.patch_size} is not a multiple of {multiple}")

    splits = [
        split_holdout(mask, config.holdout_fraction, rng, config.holdout_block) for mask in masks
    ]
    train_masks = [train for train, _ in splits]
    augmentation = config.sampler_augmentation()
    worker = replicated.worker_index if replicated else 0
    sampler_rng = rng if worker == 0 else np.random.default_rng((config.seed, worker))
    sampler = PatchSampler(images, train_masks, config.patch_size, sampler_rng, augmentation)
    local_batch = config.batch_size * (replicated.local_replicas if replicated else 1)
    validate = held_out_validator(images, [val for _, val in splits], num_classes, config,
                                  multiple, rng)

    with replicated.scope() if replicated else contextlib.nullcontext():
        optimizer = keras.optimizers.AdamW(
            learning_rate=config.learning_rate, weight_decay=config.weight_decay
        )
        if replicated:  # its slots must exist before the first step, not inside it
            optimizer.build(model.trainable_variables)
        average = (_WeightAverage(model, config.ema_decay)
                   if config.ema or config.keep_average else None)
    best = _BestWeights(model)  # the model's own weights (averaged throughout with ema)
    kept = _BestWeights(model) if config.keep_average and not config.ema else None
    if replicated:
        train_step = _replicated_step(model, optimizer, config, replicated, average)
        predict = _class_predictor(model)
        synchronise = statistics_averager(model, replicated)
    else:
        train_step, predict = _compiled_functions(model, optimizer, config, average)
        synchronise = None
    coordinated = replicated is not None and replicated.coordinated

    total_steps = config.epochs * config.steps_per_epoch if config.epochs else 0
    history: list[TrainProgress] = []
    val_iou = [math.nan] * num_classes
    cancelled = False
    step = 0
    schedule_start: float | None = None
    last_validation = (0, start, start)  # step, start and end time of the latest validation
    while True:
        stop = cancel is not None and cancel()
        now = clock()
        fraction = _fraction_done(step, total_steps, now, schedule_start, start, config)
        if coordinated:  # one collective a step: the chief's clock and cancel rule
            chief_stop, fraction = replicated.from_chief([float(stop), fraction])
            stop = chief_stop > 0.5
        if stop:
            cancelled = True
            break
        if fraction >= 1.0:
            break
        optimizer.learning_rate = learning_rate_at(
            fraction, config.learning_rate, config.warmup_fraction
        )
        batch_images, batch_labels = sampler.sample(local_batch)
        loss = float(train_step(batch_images, batch_labels))
        step += 1
        if schedule_start is None:  # the first step traced and compiled the graph
            schedule_start = clock()
            logger.debug("first step (compilation) took %.1f s", schedule_start - start)
        elapsed = clock() - start
        total_steps_estimate = _estimate_total(
            step, elapsed, schedule_start - start, config.max_seconds, total_steps
        )

        due = _validation_due(step, config, validate.empty, last_validation, clock())
        if coordinated and not validate.empty and step % config.steps_per_epoch == 0:
            due = bool(replicated.from_chief([float(due)])[0])  # all validate, or none
        if due:
            validation_start = clock()
            if synchronise is not None:
                synchronise()
            val_iou = best.validate(validate, predict, average if config.ema else None)
            if kept is not None:
                kept.validate(validate, predict, average)
            last_validation = (step, validation_start, clock())
        report = TrainProgress(step, total_steps_estimate, loss, val_iou, elapsed)
        history.append(report)
        if progress is not None:
            progress(report)

    if synchronise is not None:
        synchronise()
    if config.ema and step > 0:
        average.swap()  # from here on the model holds the averaged weights
    final = not cancelled and not validate.empty and last_validation[0] != step
    if final:
        best.validate(validate, predict)
    averaged = None
    if kept is not None and step > 0:
        if final or (kept.weights is None and not validate.empty):
            kept.validate(validate, predict, average)
        if kept.weights is None:  # nothing held out: the average as it ends
            with _averaged(average):
                kept.weights = model.get_weights()
        averaged = AveragedWeights(kept.weights, list(kept.val_iou or []))
    if best.weights is not None:
        model.set_weights(best.weights)
    best_iou = best.val_iou or [math.nan] * num_classes
    if replicated:  # the caller gets an ordinary model, free of the strategy's variables
        model = copy_model(model)
    calibration = None
    if config.calibrate and not validate.empty and step > 0:
        calibration = calibrate_model(model, masks, validate.crops, validate.labels)
        if calibration.applied:
            best_iou = validate(_class_predictor(model))
    elapsed = clock() - start
    logger.info("trained %d steps in %.1f s, validation IoU %s", step, elapsed, best_iou)
    return TrainResult(
        model=model,
        val_iou=list(best_iou),
        mean_val_iou=mean_iou(np.asarray(best_iou)),
        steps=step,
        elapsed=elapsed,
        history=history,
        cancelled=cancelled,
        val_masks=[val for _, val in splits],
        calibration=calibration,
        averaged=averaged,
    )


def holdout_iou(
    model: keras.Model,
    images: Sequence[np.ndarray],
    val_masks: Sequence[np.ndarray],
    num_classes: int,
    config: TrainConfig,
) -> np.ndarray | None:
    """Per-class IoU of ``model`` (inference mode) on the held-out pixels, or None.

    Scored on the same crops as training's own validation (each held-out block with
    ``config.validation_margin`` of context), so any model, old or new, is judged alike and
    big images cost only their held-out blocks.
    """
    validate = held_out_validator(images, val_masks, num_classes, config,
                                  2 ** _downsamplings(model))
    if validate.empty:
        return None
    return np.asarray(validate(_class_predictor(model)))


def held_out_validator(
    images: Sequence[np.ndarray],
    val_masks: Sequence[np.ndarray],
    num_classes: int,
    config: TrainConfig,
    multiple: int,
    rng: np.random.Generator | None = None,
) -> _Validator:
    """Validation on the held-out pixels: a crop around each held-out block with
    ``config.validation_margin`` of context, sized to a multiple of ``multiple``. With
    ``rng``, at most ``MAX_VALIDATION_CROPS`` crops drawn with it; without, all of them."""
    crops, labels = validation_crops(
        images, val_masks, config.holdout_block, config.validation_margin, multiple
    )
    if rng is not None and len(crops) > MAX_VALIDATION_CROPS:
        keep = np.sort(rng.choice(len(crops), MAX_VALIDATION_CROPS, replace=False))
        crops, labels = crops[keep], labels[keep]
    return _Validator(crops, labels, num_classes)


def _validation_due(
    step: int, config: TrainConfig, empty: bool, last: tuple[int, float, float], now: float
) -> bool:
    """Validate every ``steps_per_epoch`` steps; within a time budget, also keep validation
    to about ``1 / VALIDATION_GAP`` of the time (big crops or a slow device)."""
    if empty or step % config.steps_per_epoch:
        return False
    if config.max_seconds is None:
        return True
    _, began, ended = last
    return now - ended >= VALIDATION_GAP * (ended - began)


def _downsamplings(model: keras.Model) -> int:
    """Number of 2x poolings in the model (its inputs must be multiples of 2 ** this)."""
    return sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)


def _fraction_done(
    step: int,
    total_steps: int,
    now: float,
    schedule_start: float | None,
    start: float,
    config: TrainConfig,
) -> float:
    """Share of the run done, by steps or by time, whichever is further along."""
    fraction = step / total_steps if total_steps else 0.0
    if config.max_seconds is not None:
        if now - start >= config.max_seconds:
            return 1.0
        if schedule_start is not None:
            remaining = max(config.max_seconds - (schedule_start - start), 1e-6)
            fraction = max(fraction, (now - schedule_start) / remaining)
    return fraction


def _estimate_total(
    step: int, elapsed: float, setup: float, max_seconds: float | None, total_steps: int
) -> int:
    """Steps expected by the end of the run: the epoch count, or fewer if time runs out first.

    ``total_steps`` is 0 when only the time budget applies; the time estimate uses the speed
    seen since the first (compiling) step.
    """
    if max_seconds is None or step < 2:
        return total_steps or step
    seconds_per_step = max(elapsed - setup, 1e-6) / (step - 1)
    by_time = max(step, int(step + (max_seconds - elapsed) / seconds_per_step))
    return min(by_time, total_steps) if total_steps else by_time


class _WeightAverage:
    """An exponential moving average of the trainable weights (EMA, "Polyak averaging").

    ``update`` runs inside the compiled step; the decay ramps up as ``(1 + n) / (10 + n)``
    so early averages are not dominated by the random start. ``swap`` exchanges the
    model's weights and the averages (twice restores them).
    """

    def __init__(self, model: keras.Model, decay: float) -> None:
        self.variables = list(model.trainable_variables)
        self.averages = [
            keras.Variable(keras.ops.copy(v.value), trainable=False) for v in self.variables
        ]
        self.updates = keras.Variable(0.0, trainable=False)
        self.decay = decay

    def update(self) -> None:
        updates, averages = averaged_values(
            self.updates.value, [a.value for a in self.averages],
            [v.value for v in self.variables], self.decay)
        self.updates.assign(updates)
        for average, value in zip(self.averages, averages, strict=True):
            average.assign(value)

    def swap(self) -> None:
        for variable, average in zip(self.variables, self.averages, strict=True):
            current = keras.ops.copy(variable.value)
            variable.assign(average.value)
            average.assign(current)


def averaged_values(
    updates: object, averages: list, values: list, decay: float
) -> tuple[object, list]:
    """One EMA update as a pure function: (updates + 1, the new averages)."""
    updates = updates + 1.0
    rate = keras.ops.minimum(decay, (1.0 + updates) / (10.0 + updates))
    return updates, [rate * average + (1.0 - rate) * value
                     for average, value in zip(averages, values, strict=True)]


class _BestWeights:
    """The weights that scored best on validation so far, and their per-class IoU."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.score = -math.inf
        self.weights: list[np.ndarray] | None = None
        self.val_iou: list[float] | None = None

    def validate(self, validate: _Validator, predict: Callable,
                 average: _WeightAverage | None = None) -> list[float]:
        """Validate the model (with ``average``: its averaged weights); keep them if best."""
        with _averaged(average):
            val_iou = validate(predict)
            score = mean_iou(np.asarray(val_iou))
            if score > self.score:
                self.score, self.weights, self.val_iou = score, self.model.get_weights(), val_iou
        return val_iou


class _averaged:  # noqa: N801 - a context manager used like a function
    """Within the block the model holds the averaged weights (no-op without EMA)."""

    def __init__(self, average: _WeightAverage | None) -> None:
        self.average = average

    def __enter__(self) -> None:
        if self.average is not None:
            self.average.swap()

    def __exit__(self, *exc: object) -> None:
        if self.average is not None:
            self.average.swap()


def _loss_function(config: TrainConfig) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]:
    """The training loss of ``config``: masked cross-entropy + Dice on the labelled pixels,
    plus the pairwise term on all pixels when ``pairwise_weight`` is set, and the entropy of
    the unlabelled pixels when ``entropy_weight`` is."""
    dice_weight, class_weights = config.dice_weight, config.class_weights
    pairwise_weight, sigma = config.pairwise_weight, config.pairwise_sigma
    entropy_weight = config.entropy_weight

    def loss_of(images: tf.Tensor, labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        loss = masked_loss(labels, logits, dice_weight, class_weights)
        if pairwise_weight:
            loss = loss + pairwise_weight * pairwise_loss(images, logits, sigma)
        if entropy_weight:
            loss = loss + entropy_weight * unlabelled_entropy(labels, logits)
        return loss

    return loss_of


def _compiled_functions(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    config: TrainConfig,
    average: _WeightAverage | None = None,
) -> tuple[Callable[[np.ndarray, np.ndarray], tf.Tensor], Callable[[np.ndarray], np.ndarray]]:
    """The compiled training step and an inference-mode class predictor."""
    loss_of = _loss_function(config)
    if tf is None:
        return _jax_step(model, optimizer, loss_of, average), _class_predictor(model)

    @tf.function(jit_compile=config.jit_compile, reduce_retracing=True, autograph=False)
    def train_step(batch_images: tf.Tensor, batch_labels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = model(batch_images, training=True)
            loss = loss_of(batch_images, batch_labels, logits)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        if average is not None:
            average.update()
        return loss

    return train_step, _class_predictor(model)


def _jax_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    loss_of: Callable,
    average: _WeightAverage | None,
) -> Callable[[np.ndarray, np.ndarray], object]:
    """The training step on Keras's JAX backend: one ``jax.jit`` function of the weights,
    the optimizer's state (its learning rate included) and the moving average, whose results
    are written back to the variables after each step."""
    import jax

    optimizer.build(model.trainable_variables)
    trainable, fixed = model.trainable_variables, model.non_trainable_variables
    state = optimizer.variables + (
        [average.updates, *average.averages] if average is not None else [])

    def loss_and_statistics(trainable_values: list, fixed_values: list, images: object,
                            labels: object) -> tuple[object, list]:
        logits, fixed_values = model.stateless_call(trainable_values, fixed_values, images,
                                                    training=True)
        return loss_of(images, labels, logits), fixed_values

    gradient_of = jax.value_and_grad(loss_and_statistics, has_aux=True)
    slots = len(optimizer.variables)  # the optimizer's share of the state

    @jax.jit
    def step(trainable_values: list, fixed_values: list, state_values: list, images: object,
             labels: object) -> tuple[object, list, list, list]:
        (loss, fixed_values), gradients = gradient_of(trainable_values, fixed_values, images,
                                                      labels)
        trainable_values, optimizer_values = optimizer.stateless_apply(
            state_values[:slots], gradients, trainable_values)
        new_state = list(optimizer_values)
        if average is not None:
            updates, averages = averaged_values(state_values[slots], state_values[slots + 1:],
                                                trainable_values, average.decay)
            new_state += [updates, *averages]
        return loss, trainable_values, fixed_values, new_state

    def train_step(images: np.ndarray, labels: np.ndarray) -> object:
        loss, *values = step([v.value for v in trainable], [v.value for v in fixed],
                             [v.value for v in state], images, labels)
        for variables, new in zip((trainable, fixed, state), values, strict=True):
            for variable, value in zip(variables, new, strict=True):
                variable.assign(value)
        return loss

    return train_step


def _replicated_step(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    config: TrainConfig,
    distribution: Distribution,
    average: _WeightAverage | None = None,
) -> Callable[[np.ndarray, np.ndarray], tf.Tensor]:
    """The training step on every replica: ``(local_replicas * B, ...)`` numpy batches in,
    the loss averaged over the replicas out.

    Each replica's loss is its own batch's mean scaled by ``B / (replicas * B)``, so the
    gradients the optimizer sums over the replicas are those of the global batch's mean.
    ``config.jit_compile`` does not apply: XLA cannot compile the optimizer's cross-replica
    update.
    """
    loss_of = _loss_function(config)
    strategy = distribution.strategy
    share = config.batch_size / (config.batch_size * distribution.replicas)

    def replica_step(batch_images: tf.Tensor, batch_labels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = model(batch_images, training=True)
            loss = loss_of(batch_images, batch_labels, logits) * share
        gradients = tape.gradient(loss, model.trainable_variables)
        # Keras's TensorFlow optimizer sums the gradients over the replicas (all-reduce).
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        if average is not None:
            average.update()
        return loss

    @tf.function(reduce_retracing=True, autograph=False)
    def distributed_step(batch_images: object, batch_labels: object) -> tf.Tensor:
        losses = strategy.run(replica_step, args=(batch_images, batch_labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    def train_step(batch_images: np.ndarray, batch_labels: np.ndarray) -> tf.Tensor:
        return distributed_step(distribution.per_replica(batch_images),
                                distribution.per_replica(batch_labels))

    return train_step


def _class_predictor(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """A compiled inference-mode ``(B, H, W, C) images -> (B, H, W) int32 classes``."""
    predict_classes = inference_function(
        model, lambda outputs_of, batch: keras.ops.cast(
            keras.ops.argmax(outputs_of(batch), axis=-1), "int32"))

    def predict(batch_images: np.ndarray) -> np.ndarray:
        return keras.ops.convert_to_numpy(predict_classes(batch_images))

    return predict
