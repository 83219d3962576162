"""Project-level training: model files, sidecars, current-model rule, fine-tuning, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from segtool.core.errors import SegtoolError
from segtool.core.masks import UNLABELLED
from segtool.core.models import list_models, read_sidecar
from segtool.core.project import Project
from segtool.core.synthetic import nuclei_image
from segtool.ml.recipe import FINETUNE_LR_SCALE
from segtool.ml.session import collect_training_set, train_project

SIZE = 64
TINY = {"depth": 2, "base_filters": 8, "patch_size": 32, "batch_size": 4}


@pytest.fixture(autouse=True, scope="module")
def tensorflow_started():
    """Start TensorFlow once up front: a run's budget counts starting it, and these tests'
    budgets are seconds."""
    from segtool.ml.device import configure_devices, reference_steps_per_second

    configure_devices()
    reference_steps_per_second()


def _label_half(project, stem="img-1", seed=1):
    _, truth = nuclei_image(size=SIZE, seed=seed)
    mask = np.full((SIZE, SIZE), UNLABELLED, np.uint8)
    mask[:, : SIZE // 2] = truth[:, : SIZE // 2]
    project.save_mask(stem, mask)


def test_first_model_is_saved_with_sidecar_and_becomes_current(make_project):
    project = make_project(n_images=2, size=SIZE)
    _label_half(project)
    phases = []
    outcome = train_project(project, max_seconds=6, config_overrides={**TINY, "calibrate": True},
                            phase=phases.append)
    assert phases == ["reading 1 labelled image", "compiling", "scoring and saving"]
    assert outcome.became_current and outcome.model_path.parent == project.models_dir
    assert Project.open(project.root).current_model == outcome.model_path.name
    sidecar = read_sidecar(outcome.model_path)
    assert sidecar["channels"] == 1
    assert [c["name"] for c in sidecar["classes"]] == ["background", "foreground"]
    assert sidecar["normalisation"]["method"] == "percentile"
    assert sidecar["trained_on"] == ["img-1"]
    assert set(sidecar["metrics"]["val_iou"]) == {"background", "foreground"}
    assert sidecar["labelled_pixels"] == SIZE * SIZE // 2
    # One device: no tf.distribute strategy, one replica, the recipe's batch.
    assert sidecar["distribution"] == {"strategy": None, "replicas": 1, "workers": 1,
                                       "devices": ["CPU"], "global_batch": TINY["batch_size"]}
    # Half the image labelled densely: borders between classes are known, so logit offsets
    # were fitted on the held-out pixels; the sidecar says what they did.
    offsets_line = [r for r in sidecar["recipe"]["reasons"] if r.startswith("logit offsets")]
    assert len(offsets_line) == 1
    offsets = sidecar["recipe"]["logit_offsets"]
    assert (offsets is None) == offsets_line[0].startswith("logit offsets: none")
    assert sidecar["recipe"]["pairwise_weight"] == 0.0  # half the image, densely: no spreading


def test_scribbles_train_with_the_pairwise_term_when_asked(make_project):
    """The benchmark switch (off by default, bench/README) reaches the training step."""
    project = make_project(n_images=2, size=SIZE)
    _, truth = nuclei_image(size=SIZE, seed=1)
    mask = np.full((SIZE, SIZE), UNLABELLED, np.uint8)
    mask[::16] = truth[::16]  # four one-pixel strokes across the image
    project.save_mask("img-1", mask)
    outcome = train_project(project, max_seconds=6,
                            config_overrides={**TINY, "pairwise_weight": 5.0})
    assert outcome.sidecar["steps"] > 0
    assert read_sidecar(outcome.model_path)["recipe"]["pairwise_weight"] == 5.0


def test_worse_model_is_kept_but_not_made_current(make_project):
    project = make_project(n_images=2, size=SIZE)
    _label_half(project)
    good = train_project(project, max_seconds=None, epochs=4, config_overrides=TINY)
    assert good.became_current
    worse = train_project(project, epochs=1, max_seconds=None, from_scratch=True,
                          config_overrides={**TINY, "steps_per_epoch": 1})
    assert worse.previous_val_iou is not None
    assert worse.sidecar["metrics"]["mean_val_iou"] < worse.previous_val_iou
    assert not worse.became_current
    assert Project.open(project.root).current_model == good.model_path.name
    assert {r.name for r in list_models(project.models_dir)} == {good.model_path.name,
                                                                 worse.model_path.name}


def test_fine_tunes_the_current_model_and_widens_it_for_a_new_class(make_project):
    project = make_project(n_images=2, size=SIZE)
    _label_half(project)
    first = train_project(project, max_seconds=5, config_overrides=TINY)
    second = train_project(project, max_seconds=5, config_overrides=TINY)
    assert second.sidecar["parent"] == first.model_path.name
    assert second.sidecar["recipe"]["reasons"][0] == f"continues {first.model_path.name}: " \
        "its architecture and input normalisation"
    # logit offsets are off by default: none fitted, no line about them
    assert second.sidecar["recipe"]["logit_offsets"] is None
    assert not any(r.startswith("logit offsets") for r in second.sidecar["recipe"]["reasons"])
    # fine-tuning peaks lower than a new model, and says so
    assert second.sidecar["recipe"]["learning_rate"] == pytest.approx(
        first.sidecar["recipe"]["learning_rate"] * FINETUNE_LR_SCALE)
    assert "fine-tuning" in second.sidecar["recipe"]["reasons"][1]
    project.add_class("debris")
    mask = project.load_mask("img-1")
    mask[:4, -4:] = 2
    project.save_mask("img-1", mask)
    current = project.current_model
    third = train_project(project, max_seconds=5, config_overrides=TINY)
    assert third.sidecar["parent"] == current  # widened, not rebuilt from scratch
    from segtool.ml.modelfile import load_model

    model, _ = load_model(third.model_path, num_classes=3, channels=1)
    assert model.output_shape[-1] == 3


def test_refuses_nothing_labelled_and_names_every_bad_mask(make_project):
    project = make_project(n_images=3, size=SIZE, class_names=["background", "cell"])
    with pytest.raises(SegtoolError, match="nothing is labelled"):
        collect_training_set(project)
    import cv2

    cv2.imwrite(str(project.mask_path("img-1")), np.zeros((10, 10), np.uint8))
    bad_class = np.full((SIZE, SIZE), UNLABELLED, np.uint8)
    bad_class[0, 0] = 7
    cv2.imwrite(str(project.mask_path("img-2")), bad_class)
    before = {p: p.read_bytes() for p in project.root.rglob("*") if p.is_file()}
    with pytest.raises(SegtoolError) as error:
        train_project(project, max_seconds=5, config_overrides=TINY)
    assert "img-1.png" in str(error.value) and "img-2.png" in str(error.value)
    assert {p: p.read_bytes() for p in project.root.rglob("*") if p.is_file()} == before


def _read_slowly(monkeypatch, seconds):
    """Every image read takes ``seconds`` longer (a slow disk, a huge file)."""
    import time

    read = Project.read_image

    def read_slowly(self, stem):
        time.sleep(seconds)
        return read(self, stem)

    monkeypatch.setattr(Project, "read_image", read_slowly)


def test_budget_counts_reading_the_images(make_project, monkeypatch):
    project = make_project(n_images=2, size=SIZE)
    _label_half(project)
    import segtool.ml.train as train_module

    _read_slowly(monkeypatch, 2.0)
    budgets = []
    real_train = train_module.train_model

    def spy(images, masks, num_classes, config, **kwargs):
        budgets.append(config.max_seconds)
        return real_train(images, masks, num_classes, config, **kwargs)

    monkeypatch.setattr(train_module, "train_model", spy)
    outcome = train_project(project, max_seconds=8, config_overrides=TINY)
    assert budgets and budgets[0] <= 8 - 2.0
    assert outcome.sidecar["steps"] > 0


def test_no_step_in_the_budget_means_no_model(make_project, monkeypatch):
    project = make_project(n_images=2, size=SIZE)
    _label_half(project)
    _read_slowly(monkeypatch, 1.5)
    with pytest.raises(SegtoolError, match="no training step fitted"):
        train_project(project, max_seconds=1.0, config_overrides=TINY)
    assert not list(project.models_dir.iterdir())
    assert Project.open(project.root).current_model is None


def test_cancelled_before_the_first_step_saves_no_model(make_project):
    project = make_project(n_images=2, size=SIZE)
    _label_half(project)
    with pytest.raises(SegtoolError, match="before its first training step: no model saved"):
        train_project(project, max_seconds=30, config_overrides=TINY, cancel=lambda: True)
    assert not list(project.models_dir.iterdir())


def test_training_reads_only_the_labelled_area_of_a_big_image(make_project):
    project = make_project(n_images=1, size=1024)
    mask = np.full((1024, 1024), UNLABELLED, np.uint8)
    mask[10:40, 900:950] = 1
    mask[12:20, 905:915] = 0
    project.save_mask("img-1", mask)
    training_set = collect_training_set(project, margin=16)
    (raw,) = training_set.raw
    assert raw.shape[:2] == (40 + 16, 16 + 50 + 16)
    assert training_set.shapes == [(1024, 1024)]
    from segtool.ml.session import InputSpec, model_input

    spec = InputSpec(1)
    (crop,) = training_set.normalised(spec)
    whole = model_input(project.read_image("img-1"), spec)
    np.testing.assert_array_equal(crop, whole[0:56, 884:966])


def test_labels_in_two_far_corners_train_on_two_small_crops(make_project):
    project = make_project(n_images=1, size=1024)
    mask = np.full((1024, 1024), UNLABELLED, np.uint8)
    mask[0:20, 0:30] = 0
    mask[1000:1024, 990:1024] = 1
    project.save_mask("img-1", mask)
    training_set = collect_training_set(project, margin=16)
    assert training_set.stems == ["img-1", "img-1"]
    assert sorted(raw.shape[:2] for raw in training_set.raw) == [(36, 46), (40, 50)]
    assert training_set.labelled_pixels == 20 * 30 + 24 * 34


def test_crops_cover_every_labelled_pixel_of_any_mask():
    from segtool.ml.session import labelled_crops

    rng = np.random.default_rng(0)
    for _ in range(300):
        height, width = (int(v) for v in rng.integers(1, 300, 2))
        mask = np.full((height, width), UNLABELLED, np.uint8)
        for _ in range(int(rng.integers(1, 5))):
            row, col = int(rng.integers(0, height)), int(rng.integers(0, width))
            mask[row : row + int(rng.integers(1, 20)), col : col + int(rng.integers(1, 20))] = 1
        covered = np.zeros(mask.shape, bool)
        for window in labelled_crops(mask, int(rng.integers(1, 40))):
            covered[window] = True
        assert covered[mask != UNLABELLED].all()


def _dark_image(seed, objects=((12, 12), (40, 20), (20, 45), (48, 50))):
    """Bright squares on a flat dark ground (fluorescence) and their mask."""
    rng = np.random.default_rng(seed)
    image = rng.poisson(100, (SIZE, SIZE)).astype(np.uint16)
    truth = np.zeros((SIZE, SIZE), np.uint8)
    for row, col in objects:
        truth[row - 5:row + 5, col - 5:col + 5] = 1
    image[truth == 1] += 3000
    return image, truth


def test_the_input_power_is_decided_on_the_projects_images_not_only_the_labelled(
        tmp_path, monkeypatch):
    """A first mask on a bright image (continuous learning decides a model's input at its
    first mask, for its life) does not make a dark project's model linear."""
    import cv2

    from segtool.ml.recipe import DARK_POWER, input_power
    from segtool.ml.session import project_levels

    source = tmp_path / "source"
    source.mkdir()
    bright, _ = _dark_image(0, objects=[(r, c) for r in range(8, 64, 12) for c in range(8, 64, 12)])
    assert cv2.imwrite(str(source / "bright.png"), bright)
    for seed in range(3):
        assert cv2.imwrite(str(source / f"dark-{seed}.png"), _dark_image(seed)[0])
    project = Project.create(tmp_path / "project")
    project.import_images(sorted(source.iterdir()))
    project.image_path("dark-2").write_bytes(b"not a png any more")  # broken since
    project.save_mask("bright", np.zeros((SIZE, SIZE), np.uint8))
    training_set = collect_training_set(project)
    assert input_power(training_set.levels) == 1.0  # the labelled image alone: linear
    levels = project_levels(project, training_set)
    assert len(levels) == 3  # the labelled one and two dark ones (the broken one skipped)
    assert input_power(levels) == DARK_POWER
    from segtool.ml import session

    monkeypatch.setattr(session, "LEVEL_MAX_PIXELS", SIZE * SIZE - 1)  # too big to read for it
    assert project_levels(project, training_set) == training_set.levels


def test_dark_images_train_and_predict_through_the_models_own_input_power(tmp_path):
    """A dark ground with a few bright objects (fluorescence): the recipe raises the input
    to DARK_POWER, the sidecar records it, and prediction applies the model's own power;
    a model from before the power reads as linear, and a malformed one is refused."""
    import cv2

    from segtool.ml.recipe import DARK_LEVEL, DARK_POWER
    from segtool.ml.session import InputSpec, model_input

    image, truth = _dark_image(0)
    path = tmp_path / "dark.png"
    assert cv2.imwrite(str(path), image)
    project = Project.create(tmp_path / "project")
    project.import_images([path])
    project.save_mask("dark", truth)
    assert collect_training_set(project).levels[0] < DARK_LEVEL
    outcome = train_project(project, max_seconds=5, config_overrides=TINY)
    sidecar = read_sidecar(outcome.model_path)
    assert sidecar["normalisation"]["power"] == DARK_POWER
    assert any(r.startswith(f"input raised to the power {DARK_POWER:g}")
               for r in sidecar["recipe"]["reasons"])
    spec = InputSpec.from_sidecar(sidecar)
    linear = model_input(image, InputSpec(1))
    np.testing.assert_allclose(model_input(image, spec), np.sqrt(linear), rtol=1e-6)
    old = {**sidecar, "normalisation": {"method": "percentile", "per_channel": False}}
    assert InputSpec.from_sidecar(old).power == 1.0
    for bad in ("0.5", True, 0.0, float("nan")):
        with pytest.raises(SegtoolError, match="power"):
            InputSpec.from_sidecar({**sidecar, "normalisation": {"power": bad}})
