"""Continuous learning (segtool.ml.continuous): slices of training on a growing label set."""

from __future__ import annotations

import time

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
    reports = [trainer.run_slice(0.2) for _ in range(continuous.IDLE_AFTER_SLICES + 1)]
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
