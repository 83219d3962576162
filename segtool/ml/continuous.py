"""Continuous learning: one model that keeps training, in short slices, while labels grow.

A :class:`ContinuousTrainer` holds a model, its optimizer and its compiled step in memory for
as long as continuous learning is on. Before each slice it looks at the project's masks
(their stamps: inode, size, modification time); when a mask was saved, added or removed it
rebuilds the training data, the patch sampler and the held-out pixels, never the model,
which goes on from its current weights.

The learning rate runs in cycles (warm restarts, Loshchilov and Hutter, "SGDR", 2017): each
cycle is a Ctrl+T run's schedule (a short warm-up, then a cosine down to 1% of the peak)
over ``FIRST_CYCLE_S`` seconds of training, doubling up to ``CYCLE_S``; the next cycle
restarts at the fine-tuning peak (``recipe.FINETUNE_LR_SCALE``). At the end of each cycle,
where the rate is low and the weights settled, the model scores itself in inference mode on
the held-out pixels; when it beats the project's current model on the same pixels, and the
last publication is at least ``PUBLISH_GAP_S`` old, it saves itself under ``models/`` with a
sidecar like any trained model and reports the file: the caller makes it current. The
recipe's label-driven choices (class weights, turns) are decided again whenever the labels
change, as each Ctrl+T run decides them. (A
constant rate, scored every slice, published models of fluorescence nuclei that a person
corrected for 97 s an image against 51 s after a chain of Ctrl+T runs of the same total
time; bench/README, "Continuous learning in cycles".) Only published models are written, so
the model list gets no intermediates. When neither the labels changed nor the score improved
for ``IDLE_AFTER_CYCLES`` cycles there is nothing new to learn and :meth:`run_slice` trains
nothing until the labels change again.

The recipe (patch size, model size, class weights, augmentation, normalisation) is the one
a Ctrl+T run would choose (:mod:`segtool.ml.recipe`), sized for ``NOMINAL_BUDGET_S`` since
continuous learning has no budget; an existing current model is continued instead, with its
architecture and input normalisation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from segtool.core.errors import SegtoolError
from segtool.core.project import PROJECT_FILE, Project, file_stamp
from segtool.core.store import STORE_FILE
from segtool.ml.adaptation import StatisticsShift, declined, shift_statistics
from segtool.ml.backend import keras
from segtool.ml.calibration import Calibration, calibrate_model
from segtool.ml.data import PatchSampler, split_holdout
from segtool.ml.losses import mean_iou
from segtool.ml.recipe import FINETUNE_LR_SCALE, LabelChoices, choose_recipe, label_choices
from segtool.ml.session import (
    SPEC_FIELDS,
    InputSpec,
    collect_training_set,
    continuable,
    load_current_model,
    model_sidecar,
    moved,
    new_input_spec,
    new_model_path,
    project_levels,
    unlabelled_sample,
)
from segtool.ml.train import (
    TrainConfig,
    _class_predictor,
    _compiled_functions,
    _downsamplings,
    _starting_model,
    _Validator,
    held_out_validator,
    learning_rate_at,
)
from segtool.ml.unet import copy_model, model_classes

log = logging.getLogger(__name__)

SLICE_S = 5.0
"""Seconds of training between two looks at the labels (a saved mask joins within this)."""
PUBLISH_GAP_S = 30.0
"""At most one published model per this many seconds."""
IDLE_AFTER_CYCLES = 2
"""Cycles without new labels and without a better score before training pauses."""
NOMINAL_BUDGET_S = 300.0
"""The budget the recipe sizes a new model for."""
FIRST_CYCLE_S = 15.0
"""Seconds of training in a new trainer's first learning-rate cycle (its first proposal)."""
CYCLE_S = 60.0
"""Cycles double from ``FIRST_CYCLE_S`` up to this many seconds of training."""
READS_LABELS = "continuous learning only reads the labels (and saves models under models/)"
"""Why the trainer opens the project read-only: it never writes segtool.json, masks or
records, nor clears what an interrupted write left (the window, which holds the project's
lock, does that)."""
MIN_GAIN = 1e-3
"""A score must beat the best so far by this much to count as learning."""


class PublishError(SegtoolError):
    """A better model could not be saved (a full disk): learning goes on, and the next
    better model is saved when there is room."""


@dataclasses.dataclass(frozen=True)
class SliceReport:
    """What one slice did. IoUs are means over classes on this data's held-out pixels."""

    steps: int
    total_steps: int
    val_iou: float | None
    current_iou: float | None  # the model to beat, scored alike before this slice's decision
    published: Path | None
    new_labels: bool
    idle: bool
    labelled_images: int
    scored: bool = False  # this slice ended a learning-rate cycle and scored the model
    loss: float | None = None  # the mean training loss of the slice's steps
    val_ious: tuple[float, ...] | None = None  # per class, where scored (NaN: not held out)


@dataclasses.dataclass(frozen=True)
class _Candidate:
    """A copy of the model that may be published: its logit offsets, predictor and
    held-out scores (per class, and their mean; -inf when nothing is held out)."""

    model: keras.Model
    calibration: Calibration | None
    shift: StatisticsShift | None
    predict: Callable[[np.ndarray], np.ndarray]
    val_ious: list[float]
    score: float


def _mean_or_inf(val_ious: Sequence[float] | None) -> float:
    """The mean of per-class held-out IoUs; -inf when nothing was held out or scored."""
    if val_ious is None:
        return -math.inf
    value = mean_iou(np.asarray(val_ious))
    return -math.inf if math.isnan(value) else float(value)


def _stable_rng(stem: str, index: int, mask: np.ndarray) -> np.random.Generator:
    """A generator seeded by the crop's identity and content: the same mask keeps the same
    held-out blocks from one rebuild to the next, so scores stay comparable."""
    digest = hashlib.blake2b(f"{stem}:{index}".encode() + mask.tobytes(), digest_size=8)
    return np.random.default_rng(int.from_bytes(digest.digest(), "little"))


class ContinuousTrainer:
    """Trains the project's model in slices (see the module docstring).

    Use from one thread. Every look at the labels lists masks/ and reopens ``project_root``
    (read-only) when segtool.json or the image store changed, so classes, images and masks
    saved by the window are seen. Nothing is written but published models.
    """

    def __init__(self, project_root: Path, overrides: dict | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.project_root = Path(project_root)
        self.overrides = dict(overrides or {})
        self.clock = clock
        self.model: keras.Model | None = None
        self.spec: InputSpec | None = None
        self.config: TrainConfig | None = None
        self.reasons: tuple[str, ...] = ()
        self.parent: str | None = None
        self._labels: LabelChoices | None = None  # the label-driven choices in force
        self.device = ""  # what configure_devices said, for the sidecar
        self.total_steps = 0
        self._key: tuple | None = None
        self._project: Project | None = None  # the last look's, with the stamps it was read at
        self._project_stamps: tuple = ()
        self._failure: tuple[tuple, SegtoolError] | None = None  # labels key, its error
        self._optimizer: object | None = None
        self._train_step: Callable | None = None
        self._predict: Callable | None = None
        self._sampler: PatchSampler | None = None
        self._splits: list = []
        self._validators: dict = {}
        self._normalised: dict = {}
        self._num_classes = 0
        self._training_set: object | None = None
        self._unlabelled: list[np.ndarray] = []  # model input, for batch-norm statistics;
        # empty when the switch is off or the labels rule the shift out (``_declined``)
        self._declined: str | None = None  # why the labels rule that out (adaptation.py)
        # The model to beat: (model, its input spec, its predictor), its name and score.
        self._baseline: tuple | None = None
        self._baseline_name: str | None = None
        self._baseline_iou: float | None = None
        self._baseline_unmoved = False  # a current model whose statistics were not moved
        self._published_name: str | None = None
        self._own: set[str] = set()  # every model published by this trainer
        self._adopted = True  # the last published model has been seen current
        self._best = -math.inf
        self._stale = 0
        self._cycles = 0  # learning-rate cycles completed with this model
        self._fresh = False  # a new model in its first cycle: the full peak rate
        self._cycle_time = 0.0  # seconds trained in the cycle under way
        self._last_score: float | None = None  # the latest end-of-cycle score
        self._last_publish = -math.inf
        self._started = clock()

    # -- the labels -----------------------------------------------------------------------

    def look(self) -> tuple[Project, tuple]:
        """The project as saved, and the key of its labels (its classes and the stamp of
        every saved mask): what each slice starts with. The project is opened again only
        when segtool.json or the image store changed since the last look (opening one of
        100,000 images takes a second or more), and masks/ is listed once, not looked up
        image by image (bench_manyimages.py)."""
        root = self.project_root
        stamps = (file_stamp(root / PROJECT_FILE), file_stamp(root / STORE_FILE))
        if self._project is None or stamps != self._project_stamps:
            self._project = Project.open(root, read_only=READS_LABELS)
            self._project_stamps = stamps
        project = self._project
        return project, (project.num_classes, tuple(sorted(project.mask_stamps().items())))

    def _rebuild(self, project: Project) -> None:
        """New training data, sampler and held-out pixels; the model only when there is
        none yet or classes were added (its head widened)."""
        training_set = collect_training_set(project)
        if self.model is not None and continuable(self.model, project.num_classes) is None:
            # A class was deleted: the model's outputs no longer mean the project's classes.
            log.info("continuous learning starts a new model: a class was deleted")
            self.model = None
        if self.model is None:
            self._create_model(project, training_set)
        else:
            relabelled = self._follow_labels(training_set.masks, project.num_classes)
            if model_classes(self.model) < project.num_classes:
                self._use_model(_starting_model(self.model, self.spec.channels,
                                                project.num_classes, self.config))
            elif relabelled:  # the loss changed: a new step, same weights and optimizer
                self._compile()
        assert self.spec is not None and self.config is not None and self.model is not None
        config = self.config
        images = training_set.normalised(self.spec)
        self._splits = [split_holdout(mask, config.holdout_fraction,
                                      _stable_rng(stem, index, mask), config.holdout_block)
                        for index, (stem, mask) in enumerate(zip(
                            training_set.stems, training_set.masks, strict=True))]
        self._sampler = PatchSampler(images, [train for train, _ in self._splits],
                                     config.patch_size, np.random.default_rng(self.total_steps),
                                     config.sampler_augmentation())
        self._training_set = training_set
        self._declined = declined(training_set.masks) if config.adapt_statistics else None
        self._unlabelled = (unlabelled_sample(project, self.spec, set(training_set.stems))
                            if config.adapt_statistics and not self._declined else [])
        self._normalised = {self.spec: images}  # the images as each model's spec makes them
        self._validators = {}
        self._num_classes = project.num_classes
        self._best = self._score(self.model, self.spec, self._predict)
        self._stale = 0
        self._baseline_iou = self._score_baseline()

    def _validator(self, spec: InputSpec, multiple: int) -> _Validator:
        """Held-out crops of the current data as ``spec`` makes them (cached)."""
        key = (spec, multiple)
        if key not in self._validators:
            if spec not in self._normalised:
                self._normalised[spec] = self._training_set.normalised(spec)
            self._validators[key] = held_out_validator(
                self._normalised[spec], [val for _, val in self._splits], self._num_classes,
                self.config, multiple, np.random.default_rng(0))
        return self._validators[key]

    def _held_out_ious(self, model: keras.Model, spec: InputSpec,
                       predict: Callable[[np.ndarray], np.ndarray]) -> list[float] | None:
        """Per-class IoU of ``model`` (inference mode) on the held-out pixels; None if none."""
        validate = self._validator(spec, 2 ** _downsamplings(model))
        return None if validate.empty else list(validate(predict))

    def _score(self, model: keras.Model, spec: InputSpec,
               predict: Callable[[np.ndarray], np.ndarray]) -> float:
        """Mean IoU of ``model`` (inference mode) on the held-out pixels; -inf if none."""
        return _mean_or_inf(self._held_out_ious(model, spec, predict))

    def _score_baseline(self) -> float | None:
        """The model to beat (the last published, else the project's current one) on the
        current held-out pixels; None when there is none."""
        if self._baseline is None:
            return None
        model, spec, predict = self._baseline
        if model_classes(model) != self._num_classes:
            return None
        if self._baseline_unmoved and self._unlabelled and spec == self.spec:
            # As a Ctrl+T run does: a current model without the batch-norm shift is scored
            # with it too (on a copy), as the candidates will be (segtool/ml/adaptation.py).
            model = copy_model(model)
            if shift_statistics(model, self._normalised[self.spec], self._unlabelled,
                                self.config.patch_size).applied:
                predict = _class_predictor(model)
        score = self._score(model, spec, predict)
        return None if score == -math.inf else score

    def _load_baseline(self, project: Project) -> None:
        """The project's current model becomes the one to beat (None if unusable)."""
        self._baseline, self._baseline_name = None, project.current_model
        self._baseline_unmoved = False
        if not project.current_model:
            return
        try:
            loaded = load_current_model(project)
        except SegtoolError as error:
            log.warning("continuous learning: current model unusable: %s", error.problem)
            return
        if loaded is not None:
            self._baseline = (loaded[0], InputSpec.from_sidecar(loaded[1]),
                              _class_predictor(loaded[0]))
            self._baseline_unmoved = not moved(loaded[1])

    def _create_model(self, project: Project, training_set: object) -> None:
        from segtool.ml.device import reference_steps_per_second

        previous = None
        if project.current_model:
            try:
                previous = load_current_model(project, channels=training_set.channels)
            except SegtoolError as error:
                log.warning("continuous learning starts a new model: %s", error.problem)
            if previous is not None and continuable(previous[0], project.num_classes) is None:
                previous = None
        recipe = choose_recipe(training_set.masks, project.num_classes, training_set.shapes,
                               training_set.per_channel, reference_steps_per_second(),
                               NOMINAL_BUDGET_S,
                               levels=[] if previous is not None
                               else project_levels(project, training_set))
        fields = {**recipe.config_fields(), "validation_margin": recipe.patch_size // 2,
                  **{k: v for k, v in self.overrides.items() if k not in SPEC_FIELDS}}
        self.config = TrainConfig(max_seconds=None, epochs=1, **fields)
        if previous is not None:
            self.spec = InputSpec.from_sidecar(previous[1])
            self.parent = project.current_model
            self.reasons = recipe.continuing(project.current_model).model_reasons
            model = _starting_model(previous[0], self.spec.channels, project.num_classes,
                                    self.config)
        else:
            self.spec = new_input_spec(training_set.channels, recipe, self.overrides)
            self.reasons = recipe.model_reasons
            model = _starting_model(None, self.spec.channels, project.num_classes, self.config)
        self._labels = recipe.labels
        self.reasons = ("continuous learning", *self.reasons)
        self._use_model(model, fresh=previous is None)

    def _follow_labels(self, masks: Sequence[np.ndarray], num_classes: int) -> bool:
        """Re-decide the recipe's choices that follow the labels (class weights, turns), as
        each Ctrl+T run decides them afresh; True when the training changed. A model started
        on a first image without the rare class would otherwise never weigh it (brain MRI:
        its first labelled slice held no abnormality, and the models of the next five
        predicted none). Fields set by ``overrides`` stay."""
        labels = label_choices(masks, num_classes)
        if not labels.differs(self._labels):
            return False
        self._labels = labels
        fields = {"class_weights": labels.class_weights, "rotations": labels.rotations}
        self.config = dataclasses.replace(
            self.config, **{k: v for k, v in fields.items() if k not in self.overrides})
        return True

    def _use_model(self, model: keras.Model, fresh: bool = False) -> None:
        """Train ``model`` from here on: a new optimizer, step and cycle. ``fresh`` (a new
        model) peaks at the full rate in its first cycle; a continued parent, or a trained
        model whose head was widened for a new class, at the fine-tuning peak."""
        assert self.config is not None
        self.model = model
        self._fresh = fresh
        self._optimizer = keras.optimizers.AdamW(learning_rate=self.config.learning_rate,
                                                 weight_decay=self.config.weight_decay)
        self._compile()
        self._cycles, self._cycle_time = 0, 0.0

    def _compile(self) -> None:
        """The training step and predictor of the model, its optimizer and the config."""
        self._train_step, self._predict = _compiled_functions(self.model, self._optimizer,
                                                              self.config)

    # -- one slice -------------------------------------------------------------------------

    def run_slice(self, seconds: float = SLICE_S,
                  cancel: Callable[[], bool] | None = None) -> SliceReport:
        """Look at the labels and train about ``seconds`` (less where the learning-rate
        cycle ends); at a cycle's end, score and publish if better.

        Raises SegtoolError when nothing is labelled or a mask does not fit its image.
        """
        project, key = self.look()
        current = project.current_model
        if current == self._published_name:
            self._adopted = True  # the window made the last published model current
        elif current in self._own and not self._adopted:
            pass  # an earlier one of ours: the window has not made the last one current yet
        elif current != self._baseline_name:
            self._load_baseline(project)  # first slice, or the user chose another model
            self._key = None  # rescore on fresh held-out pixels
        new_labels = key != self._key
        if new_labels:
            if self._failure is not None and self._failure[0] == key:
                raise self._failure[1].with_traceback(None)  # the same masks: not read again
            try:
                self._rebuild(project)
            except SegtoolError as error:
                self._failure = (key, error)
                raise
            self._key, self._failure = key, None
        labelled = len(set(self._training_set.stems))
        if not new_labels and self._stale >= IDLE_AFTER_CYCLES:
            return SliceReport(0, self.total_steps, self._best_or_none(), self._baseline_iou,
                               None, False, True, labelled)
        steps, loss = self._train(seconds, cancel)
        baseline = self._baseline_iou
        if self._cycle_time < self.cycle_seconds():
            return SliceReport(steps, self.total_steps, self._last_score, baseline, None,
                               new_labels, False, labelled, loss=loss)
        self._cycles, self._cycle_time, self._fresh = self._cycles + 1, 0.0, False
        val_ious = self._held_out_ious(self.model, self.spec, self._predict)
        score = _mean_or_inf(val_ious)
        if score > self._best + MIN_GAIN:
            self._best, self._stale = score, 0
        else:
            self._stale += 1
        published = None
        improved = self._stale == 0  # a new best (or new labels): worth a candidate
        if (steps and score > -math.inf and (improved or baseline is None)
                and self.clock() - self._last_publish >= PUBLISH_GAP_S):
            candidate = self._candidate(val_ious)
            if baseline is None or candidate.score > baseline + MIN_GAIN:
                published = self._publish(project, candidate)
                score = candidate.score  # what was published, its logit offsets included
        self._last_score = None if score == -math.inf else score
        return SliceReport(steps, self.total_steps, self._last_score, baseline, published,
                           new_labels, False, labelled, scored=True, loss=loss,
                           val_ious=None if val_ious is None else tuple(val_ious))

    def cycle_seconds(self) -> float:
        """Seconds of training in the learning-rate cycle under way."""
        return min(CYCLE_S, FIRST_CYCLE_S * 2 ** self._cycles)

    def peak_rate(self) -> float:
        """The learning rate at the top of the cycle under way: a new model's in its first
        cycle, the fine-tuning peak (``recipe.FINETUNE_LR_SCALE`` of it) after that."""
        assert self.config is not None
        return self.config.learning_rate * (1.0 if self._fresh else FINETUNE_LR_SCALE)

    def _best_or_none(self) -> float | None:
        return None if self._best == -math.inf else self._best

    def _train(self, seconds: float,
               cancel: Callable[[], bool] | None) -> tuple[int, float | None]:
        """Train until ``seconds`` pass or the cycle ends (at least one step), or ``cancel``;
        the steps made and their mean loss (None without a step: cancelled at once)."""
        assert self.config is not None and self._sampler is not None
        cycle = self.cycle_seconds()
        peak = self.peak_rate()
        start = self.clock()
        end = start + min(seconds, cycle - self._cycle_time)
        losses = []  # read once at the end: a GPU runs ahead of the loop meanwhile
        while not (cancel is not None and cancel()) and (not losses or self.clock() < end):
            done = self._cycle_time + (self.clock() - start)
            self._optimizer.learning_rate = learning_rate_at(
                done / cycle, peak, self.config.warmup_fraction)
            images, labels = self._sampler.sample(self.config.batch_size)
            losses.append(self._train_step(images, labels))
        self._cycle_time += self.clock() - start
        self.total_steps += len(losses)
        mean = float(np.mean([float(loss) for loss in losses])) if losses else None
        return len(losses), mean

    def _candidate(self, val_ious: list[float]) -> _Candidate:
        """A copy of the model to publish, its batch-norm statistics moved to the unlabelled
        images and logit offsets fitted on the held-out pixels as a Ctrl+T run does
        (segtool/ml/adaptation.py, segtool/ml/calibration.py). The copy is scored again
        only when either changed it; otherwise it keeps ``val_ious``, the trained model's
        scores of this slice."""
        assert self.model is not None and self.spec is not None and self.config is not None
        model = copy_model(self.model)
        shift = None
        if self._declined:
            shift = StatisticsShift(0, len(self._normalised[self.spec]), 0, 0,
                                    declined=self._declined)
        elif self.config.adapt_statistics:
            shift = shift_statistics(model, self._normalised[self.spec], self._unlabelled,
                                     self.config.patch_size, self.total_steps)
        calibration = None
        if self.config.calibrate:
            validate = self._validator(self.spec, 2 ** _downsamplings(model))
            calibration = calibrate_model(model, self._training_set.masks, validate.crops,
                                          validate.labels)
        predict = _class_predictor(model)
        if (calibration is not None and calibration.applied) or (shift and shift.applied):
            val_ious = self._held_out_ious(model, self.spec, predict)
        return _Candidate(model, calibration, shift, predict, list(val_ious),
                          _mean_or_inf(val_ious))

    def _publish(self, project: Project, candidate: _Candidate) -> Path:
        """Save ``candidate`` (a copy of the trained model) with its sidecar under models/;
        the caller makes it current (on its own Project: one writer of segtool.json)."""
        from segtool.ml.modelfile import save_model

        assert self.spec is not None and self.config is not None
        training_set = self._training_set
        model, calibration = candidate.model, candidate.calibration
        reasons = [*self.reasons, *self._labels.reasons]
        if calibration is not None:
            reasons.append(calibration.reason())
        if candidate.shift is not None:
            reasons.append(candidate.shift.reason())
        sidecar = model_sidecar(
            project, model, self.spec, self.config, reasons,
            val_ious=candidate.val_ious,
            mean_val=candidate.score, previous_val=self._baseline_iou,
            stems=training_set.stems, labelled_pixels=training_set.labelled_pixels,
            run={"steps": int(self.total_steps), "device": self.device,
                 "seconds": round(float(self.clock() - self._started), 2),
                 "cancelled": False, "continuous": True},
            parent=self._published_name or self._baseline_name, calibration=calibration,
            shift=candidate.shift)
        path = new_model_path(project)
        try:
            save_model(model, path, sidecar)
        except OSError as error:  # a full disk: said once in the window; learning goes on
            raise PublishError(f"cannot save the new model: {error.strerror or error}",
                               path) from error
        self._last_publish = self.clock()
        self._baseline = (model, self.spec, candidate.predict)
        self._baseline_unmoved = False  # published the way every candidate is
        self._baseline_iou = candidate.score
        self._published_name = path.name
        self._own.add(path.name)
        self._adopted = False
        log.info("continuous learning published %s (val IoU %.3f)", path.name, candidate.score)
        return path
