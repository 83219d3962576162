"""Continuous learning (segtool.ml.continuous): slices of training on a growing label set."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_session import SIZE, TINY
from test_session import _label_half as label_half

from segtool.core.masks import read_mask
from segtool.core.models import list_models, read_sidecar
from segtool.core.project import Project
from segtool.ml import continuous
from segtool.ml.adaptation import declined
from segtool.ml.continuous import ContinuousTrainer


@pytest.fixture(autouse=True, scope="module")
def tensorflow_started():
    from segtool.ml.device import configure_devices, reference_steps_per_second

    configure_devices()
    reference_steps_per_second()


@pytest.fixture(autouse=True)
def short_cycles(monkeypatch):
    """Learning-rate cycles as short as the tests' slices: each slice ends one."""
    monkeypatch.setattr(continuous, "FIRST_CYCLE_S", 0.2)
    monkeypatch.setattr(continuous, "CYCLE_S", 0.2)


class Clock:
    """Real time plus a jump the test can add (to pass the publishing gap at once)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def test_trains_in_slices_publishes_and_takes_in_a_newly_saved_mask(make_project):
    project = make_project(n_images=2, size=SIZE)
    label_half(project, "img-1", 1)
    clock = Clock()
    trainer = ContinuousTrainer(project.root, overrides={**TINY, "calibrate": True}, clock=clock)
    first = trainer.run_slice(1.5)
    assert first.new_labels and first.labelled_images == 1 and first.steps > 0
    assert first.published is not None and first.published.parent == project.models_dir
    sidecar = read_sidecar(first.published)
    assert sidecar["trained_on"] == ["img-1"] and sidecar["continuous"] is True
    assert sidecar["metrics"]["mean_val_iou"] == pytest.approx(first.val_iou)
    # With logit offsets on, they are fitted for the published copy as for a Ctrl+T run,
    # and its batch-norm statistics stay as trained, as there: half an image labelled, its
    # labels border unlabelled pixels as strokes do (segtool/ml/adaptation.py).
    assert any(r.startswith("logit offsets") for r in sidecar["recipe"]["reasons"])
    shift = sidecar["recipe"]["batch_norm_shift"]
    assert shift["layers"] == 0 and shift["declined"] == declined(
        [read_mask(project.mask_path("img-1"))])
    assert f"batch-norm statistics as trained: {shift['declined']}" in sidecar["recipe"]["reasons"]
    assert project.current_model is None  # making it current is the caller's job
    model = trainer.model

    second = trainer.run_slice(0.5)  # within the publishing gap: nothing written
    assert not second.new_labels and second.published is None
    assert [m.name for m in list_models(project.models_dir)] == [first.published.name]

    label_half(project, "img-2", 2)  # the window saves another mask
    clock.offset += continuous.PUBLISH_GAP_S
    third = trainer.run_slice(1.0)
    assert third.new_labels and third.labelled_images == 2
    assert trainer.model is model  # the data were rebuilt, not the model
    assert third.total_steps == first.steps + second.steps + third.steps
    # The last published model, rescored on the new held-out pixels, is the one to beat.
    assert third.current_iou is not None
    if third.published is not None:
        assert third.val_iou > third.current_iou
        assert read_sidecar(third.published)["trained_on"] == ["img-1", "img-2"]
        assert read_sidecar(third.published)["parent"] == first.published.name


def test_pauses_when_there_is_nothing_new_to_learn(make_project, monkeypatch):
    project = make_project(n_images=1, size=SIZE)
    label_half(project, "img-1", 1)
    monkeypatch.setattr(continuous, "MIN_GAIN", 10.0)  # no slice counts as progress
    trainer = ContinuousTrainer(project.root, overrides=TINY)
    reports = [trainer.run_slice(0.2) for _ in range(continuous.IDLE_AFTER_CYCLES + 1)]
    assert all(r.steps > 0 for r in reports[:-1])
    assert reports[-1].idle and reports[-1].steps == 0
    label_half(Project.open(project.root), "img-1", 3)  # new labels wake it up
    woken = trainer.run_slice(0.2)
    assert woken.new_labels and not woken.idle and woken.steps > 0


def test_a_current_model_is_continued_and_must_be_beaten(make_project):
    from segtool.ml.session import train_project

    project = make_project(n_images=1, size=SIZE)
    label_half(project, "img-1", 1)
    outcome = train_project(project, max_seconds=None, epochs=1, config_overrides=TINY)
    assert outcome.became_current
    trainer = ContinuousTrainer(project.root, overrides=TINY)
    report = trainer.run_slice(0.5)
    assert report.current_iou is not None  # the current model scored on the same pixels
    assert trainer.parent == outcome.model_path.name
    if report.published is not None:
        assert report.val_iou > report.current_iou
        assert read_sidecar(report.published)["parent"] == outcome.model_path.name


class Ticking:
    """A clock that moves on a fixed amount each time it is read: slices and cycles then
    hold the same steps on any machine."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_the_learning_rate_runs_in_cycles_and_only_a_cycle_end_is_scored(
        make_project, monkeypatch):
    import numpy as np

    from segtool.ml.recipe import FINETUNE_LR_SCALE

    monkeypatch.setattr(continuous, "FIRST_CYCLE_S", 1.0)
    monkeypatch.setattr(continuous, "CYCLE_S", 2.0)
    monkeypatch.setattr(continuous, "PUBLISH_GAP_S", 0.0)
    project = make_project(n_images=2, size=SIZE)
    label_half(project, "img-1", 1)
    trainer = ContinuousTrainer(project.root, overrides=TINY, clock=Ticking(0.01))
    assert trainer.cycle_seconds() == 1.0
    reports, rates = [], []
    while len([r for r in reports if r.scored]) < 2 and len(reports) < 40:
        reports.append(trainer.run_slice(0.25))
        rates.append(float(np.asarray(trainer._optimizer.learning_rate)))
    peak = trainer.config.learning_rate
    scored = [index for index, report in enumerate(reports) if report.scored]
    # The first cycle (1 s of training) takes four slices; only its end is scored, and a
    # new model with nothing to beat is published there.
    assert scored[0] == 3 and reports[3].published is not None
    assert all(r.published is None and r.val_iou is None for r in reports[:3])
    assert rates[0] > 0.5 * peak and rates[3] < 0.05 * peak  # a cosine down to 1%
    # The next cycle lasts twice as long (up to CYCLE_S) and restarts at the fine-tuning peak.
    assert scored[1] == 3 + 8 and trainer.cycle_seconds() == 2.0
    assert 0.5 * FINETUNE_LR_SCALE * peak < rates[4] <= FINETUNE_LR_SCALE * peak * 1.001
    assert all(r.published is None for r in reports[4:11])
    assert reports[5].val_iou == reports[3].val_iou  # between ends: the last score, kept


def test_class_weights_follow_the_labels_as_they_grow(make_project):
    """The recipe's label-driven choices are re-decided on new masks, as a Ctrl+T run
    decides them afresh: a first image without the rare class gives no class weights, the
    next one with it brings them (and a new class widens the head with weights to match)."""
    import numpy as np

    project = make_project(n_images=3, size=SIZE)
    project.save_mask("img-1", np.zeros((SIZE, SIZE), np.uint8))  # background only
    clock = Clock()
    trainer = ContinuousTrainer(project.root, overrides=TINY, clock=clock)
    first = trainer.run_slice(0.3)
    assert first.steps > 0 and trainer.config.class_weights is None
    step = trainer._train_step

    rare = np.zeros((SIZE, SIZE), np.uint8)
    rare[10:18, 10:18] = 1  # 1.6% of the pixels: a rare class
    project.save_mask("img-2", rare)
    clock.offset += continuous.PUBLISH_GAP_S
    second = trainer.run_slice(0.3)
    assert second.new_labels and second.steps > 0
    weights = trainer.config.class_weights
    assert weights is not None and weights[1] > 2 * weights[0]
    assert trainer._train_step is not step  # the loss changed: the step was rebuilt
    # What a publication writes now (published directly: whether this slice's cycle ended
    # with a better model depends on the machine's speed).
    path = second.published or trainer._publish(Project.open(project.root),
                                                trainer._candidate([0.5, 0.5]))
    sidecar = read_sidecar(path)
    assert sidecar["recipe"]["class_weights"] == pytest.approx(list(weights))
    weight_lines = [r for r in sidecar["recipe"]["reasons"] if r.startswith("class weights")]
    assert len(weight_lines) == 1 and weight_lines[0].startswith(f"class weights {weights[0]:.2f}")

    project = Project.open(project.root)
    project.add_class("third")
    third = rare.copy()
    third[40:46, 40:46] = 2
    project.save_mask("img-3", third)
    report = trainer.run_slice(0.1)  # head widened, weights for three classes
    assert report.steps > 0 and len(trainer.config.class_weights) == 3
    # Its body is trained: the new head's first cycle peaks at the fine-tuning rate, not
    # at a new model's (which would first undo part of what it knows).
    from segtool.ml.recipe import FINETUNE_LR_SCALE

    assert trainer.peak_rate() == pytest.approx(FINETUNE_LR_SCALE * trainer.config.learning_rate)


def test_a_deleted_class_starts_a_new_model(make_project, monkeypatch):
    """After a class is deleted the classes above it move down one, so the trained model's
    outputs no longer mean the project's classes: learning goes on with a new model of the
    project's classes (as Ctrl+T trains from scratch then), in the trainer that was running
    and in one started afterwards on the old model, which is no longer continued."""
    import numpy as np

    from segtool.core.classes import delete_class
    from segtool.ml.unet import model_classes

    monkeypatch.setattr(continuous, "PUBLISH_GAP_S", 0.0)
    monkeypatch.setattr(continuous, "MIN_GAIN", -1.0)  # every cycle's end publishes
    project = make_project(n_images=2, size=SIZE)
    project.add_class("third")
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[5:20, 5:20] = 1
    mask[30:40, 30:40] = 2
    project.save_mask("img-1", mask)
    trainer = ContinuousTrainer(project.root, overrides=TINY, clock=Clock())
    first = trainer.run_slice(0.3)
    assert first.published is not None and model_classes(trainer.model) == 3
    Project.open(project.root).set_current_model(first.published.name)

    delete_class(Project.open(project.root), 1)  # "third" becomes class 1
    report = trainer.run_slice(0.3)
    assert report.new_labels and report.steps > 0
    assert model_classes(trainer.model) == 2
    assert trainer.config.class_weights is None or len(trainer.config.class_weights) == 2
    assert report.published is not None
    from segtool.ml.modelfile import load_model

    published, sidecar = load_model(report.published)  # a model the window can use
    assert model_classes(published) == len(sidecar["classes"]) == 2

    again = ContinuousTrainer(project.root, overrides=TINY, clock=Clock())
    assert again.run_slice(0.3).steps > 0  # the 3-class current model is not continued
    assert model_classes(again.model) == 2 and again.parent is None


def _publishing_trainer(make_project, monkeypatch) -> tuple[Project, ContinuousTrainer]:
    """A project with one labelled image and a trainer that publishes at every cycle's end."""
    import numpy as np

    monkeypatch.setattr(continuous, "PUBLISH_GAP_S", 0.0)
    monkeypatch.setattr(continuous, "MIN_GAIN", -1.0)  # every cycle's end publishes
    project = make_project(n_images=2, size=SIZE)
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[5:30, 5:30] = 1
    project.save_mask("img-1", mask)
    trainer = ContinuousTrainer(project.root, overrides=TINY, clock=Clock())
    return project, trainer


def test_a_full_disk_when_publishing_names_the_file_and_learning_goes_on(
        make_project, monkeypatch):
    """Saving a better model on a full disk raises PublishError naming the model file,
    leaves nothing half-written under models/, and the next better model is saved once
    there is room."""
    import errno
    import os

    project, trainer = _publishing_trainer(make_project, monkeypatch)
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(continuous.PublishError) as raised:
        trainer.run_slice(0.3)
    error = raised.value
    assert error.problem == "cannot save the new model: No space left on device"
    assert error.path is not None and Path(error.path).parent == project.models_dir
    assert not list(project.models_dir.iterdir())  # no model, sidecar or temporary file

    monkeypatch.setattr(os, "fsync", real_fsync)
    report = trainer.run_slice(0.3)
    assert report.published is not None and read_sidecar(report.published)["trained_on"]


def test_a_published_model_not_yet_current_is_not_mistaken_for_the_users_choice(
        make_project, monkeypatch):
    """The window makes a published model current a moment after the trainer saved it; a
    look in between sees the previous one still current. That is not the user going back
    to it: the model to beat stays the newest. Going back later is."""
    project, trainer = _publishing_trainer(make_project, monkeypatch)
    first = trainer.run_slice(0.3).published
    assert first is not None
    Project.open(project.root).set_current_model(first.name)  # the window adopts it
    second = trainer.run_slice(0.3)
    assert second.published is not None
    newest = second.val_iou  # what was published, as scored
    monkeypatch.setattr(continuous, "MIN_GAIN", 10.0)  # nothing is published from here on
    lagging = trainer.run_slice(0.3)  # the window has not adopted the second one yet
    assert not lagging.new_labels and lagging.current_iou == pytest.approx(newest)

    Project.open(project.root).set_current_model(second.published.name)
    assert trainer.run_slice(0.3).published is None
    Project.open(project.root).set_current_model(first.name)  # the user goes back
    back = trainer.run_slice(0.3)
    assert back.new_labels  # rescored against the model the user chose
    assert trainer._baseline_name == first.name


def test_a_volume_is_learnt_slice_by_slice(tmp_path, monkeypatch):
    """A CT series labelled on one slice trains; a slice labelled and saved later (the
    volume's one .nii.gz mask changes) joins at the next look."""
    from volume_helpers import ct_like, write_dicom_series

    from segtool.core.workspace import Workspace

    monkeypatch.setattr(continuous, "PUBLISH_GAP_S", 0.0)
    write_dicom_series(tmp_path / "source" / "abdomen", ct_like(slices=6, height=48, width=48))
    project = Project.create(tmp_path / "project", ["air", "body"])
    project.import_images([tmp_path / "source" / "abdomen"])
    workspace = Workspace(Project.open(project.root))
    for z in (1, 4):
        document = workspace.open("abdomen", z).document
        document.paint_segment((1, 1), (46, 1), 1, 0)  # air outside the body, body inside
        document.paint_segment((10, 24), (38, 24), 2, 1)
        workspace.save("abdomen")
        if z == 1:
            trainer = ContinuousTrainer(project.root, overrides=TINY, clock=Clock())
            first = trainer.run_slice(0.3)
            assert first.steps > 0 and first.published is not None
            assert read_sidecar(first.published)["trained_on"] == ["abdomen"]
            assert not trainer.run_slice(0.3).new_labels
    report = trainer.run_slice(0.3)
    assert report.new_labels and report.steps > 0
