"""Batch-norm statistics moved from the labelled to the unlabelled images (ml/adaptation.py)."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from test_session import SIZE, TINY
from test_session import _label_half as label_half
from volume_helpers import ct_like, write_nifti

from segtool.core.masks import UNLABELLED
from segtool.core.models import read_sidecar
from segtool.core.synthetic import nuclei_image
from segtool.ml.adaptation import (
    MIN_DIFFERENCE,
    batch_norm_layers,
    declined,
    difference,
    measure_statistics,
    sample_patches,
    shift_statistics,
)
from segtool.ml.backend import keras
from segtool.ml.modelfile import load_model
from segtool.ml.session import (
    InputSpec,
    model_input,
    train_project,
    unlabelled_sample,
    volume_sample,
)
from segtool.ml.unet import build_unet


@pytest.fixture(autouse=True, scope="module")
def tensorflow_started():
    """A run's budget counts starting TensorFlow; start it once up front."""
    from segtool.ml.device import configure_devices, reference_steps_per_second

    configure_devices()
    reference_steps_per_second()


def _images(mean: float, count: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(rng.normal(mean, 0.1, (40, 48, 1)), 0, 1).astype(np.float32)
            for _ in range(count)]


def _statistics(model):
    return [(layer.moving_mean.numpy(), layer.moving_variance.numpy())
            for layer in batch_norm_layers(model)]


def test_sample_patches_takes_images_in_turn_and_pads_small_ones():
    big = np.arange(50 * 60, dtype=np.float32).reshape(50, 60, 1)
    small = np.full((20, 10, 1), -1.0, np.float32)
    patches = sample_patches([big, small], 32, 4, np.random.default_rng(0))
    assert patches.shape == (4, 32, 32, 1)
    assert np.all(patches[1] == -1) and np.all(patches[3] == -1)  # padded by reflection
    assert np.all(patches[0] >= 0)
    top, left = divmod(int(patches[0][0, 0, 0]), 60)  # a window of the big image
    np.testing.assert_array_equal(patches[0], big[top:top + 32, left:left + 32])


def test_measured_statistics_are_the_batch_average_and_leave_the_model_as_it_was():
    model = build_unet(1, 2, depth=2, base_filters=4)
    first = batch_norm_layers(model)[0]
    first.moving_mean.assign(np.full(4, 7.0, np.float32))
    before = _statistics(model)
    patches = sample_patches(_images(0.4), 32, 6, np.random.default_rng(1))
    measured = measure_statistics(model, patches, batch_size=3)
    # By hand: the first BN layer's input, its per-channel mean in each batch, averaged.
    conv = keras.Model(model.input, model.get_layer(first.name).input)
    features = np.asarray(conv(patches))
    expected = np.mean([features[:3].mean(axis=(0, 1, 2)), features[3:].mean(axis=(0, 1, 2))],
                       axis=0)
    np.testing.assert_allclose(measured[0][0], expected, rtol=1e-4, atol=1e-5)
    for (mean, var), (mean0, var0) in zip(_statistics(model), before, strict=True):
        np.testing.assert_array_equal(mean, mean0)
        np.testing.assert_array_equal(var, var0)
    assert first.momentum == pytest.approx(0.9)


def test_shift_moves_statistics_by_the_difference_and_no_weight():
    model = build_unet(1, 2, depth=2, base_filters=4)
    labelled, unlabelled = _images(0.3), _images(0.7, seed=1)
    weights = [w.copy() for w in model.get_weights() if w.ndim > 1]  # kernels
    before = _statistics(model)
    rng = np.random.default_rng(5)  # what shift_statistics draws with seed 5
    source = measure_statistics(model, sample_patches(labelled, 32, 32, rng))
    target = measure_statistics(model, sample_patches(unlabelled, 32, 32, rng))
    shift = shift_statistics(model, labelled, unlabelled, 32, seed=5, patches=32,
                             min_difference=0.0)
    assert shift.applied and shift.layers == len(before) == 10  # 5 blocks of two convolutions
    assert "moved from 3 labelled to 3 unlabelled images" in shift.reason()
    assert shift.difference == pytest.approx(difference(source, target))
    after = _statistics(model)
    for (mean, var), (mean0, var0), (s_mean, s_var), (t_mean, t_var) in zip(
            after, before, source, target, strict=True):
        np.testing.assert_allclose(mean, mean0 + t_mean - s_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(var, var0 * t_var / s_var, rtol=1e-4, atol=1e-6)
    # Brighter unlabelled images: the first layer's inputs moved, so its means did too.
    assert np.abs(after[0][0] - before[0][0]).max() > 1e-3
    for kernel, kernel0 in zip([w for w in model.get_weights() if w.ndim > 1], weights,
                               strict=True):
        np.testing.assert_array_equal(kernel, kernel0)


def test_statistics_move_only_when_the_unlabelled_images_differ_beyond_noise():
    model = build_unet(1, 2, depth=2, base_filters=4)
    before = _statistics(model)
    alike = shift_statistics(model, _images(0.5, seed=0), _images(0.5, seed=1), 32)
    assert not alike.applied and alike.difference < MIN_DIFFERENCE
    assert f"differ from the 3 labelled by {alike.difference:.3f}" in alike.reason()
    for (mean, var), (mean0, var0) in zip(_statistics(model), before, strict=True):
        np.testing.assert_array_equal(mean, mean0)
        np.testing.assert_array_equal(var, var0)
    rng = np.random.default_rng(2)  # smooth labelled images, speckled unlabelled ones
    smooth = [np.full((40, 48, 1), 0.5, np.float32) + 0.01 * rng.normal(size=(40, 48, 1))
              for _ in range(3)]
    speckled = [rng.random((40, 48, 1)).astype(np.float32) for _ in range(3)]
    unlike = shift_statistics(model, smooth, speckled, 32)
    assert unlike.applied and unlike.difference > MIN_DIFFERENCE


def test_no_unlabelled_image_or_no_batch_norm_changes_nothing():
    model = build_unet(1, 2, depth=2, base_filters=4)
    before = _statistics(model)
    shift = shift_statistics(model, _images(0.3), [], 32)
    assert not shift.applied and shift.reason().endswith("no unlabelled image")
    for (mean, _), (mean0, _) in zip(_statistics(model), before, strict=True):
        np.testing.assert_array_equal(mean, mean0)
    grouped = build_unet(1, 2, depth=2, base_filters=4, normalization="group")
    shift = shift_statistics(grouped, _images(0.3), _images(0.7), 32)
    assert not shift.applied and shift.reason().endswith("no BatchNormalization layer")


def _dense_with_noise(make_project, tmp_path, noise: int):
    """A project: img-1 labelled densely, and ``noise`` unlabelled images of uniform noise,
    nothing like the nuclei (``noise-1`` ...)."""
    project = make_project(n_images=1, size=SIZE)
    project.save_mask("img-1", nuclei_image(size=SIZE, seed=1)[1])
    rng = np.random.default_rng(0)
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = [tmp_path / f"noise-{number}.png" for number in range(1, noise + 1)]
    for path in paths:
        assert cv2.imwrite(str(path), rng.integers(0, 65535, (SIZE, SIZE), dtype=np.uint16))
    assert not project.import_images(paths).skipped
    return project


def test_training_moves_statistics_to_unlike_unlabelled_images_and_says_so(
        make_project, caplog, tmp_path):
    project = _dense_with_noise(make_project, tmp_path, 3)
    project.image_path("noise-3").write_bytes(b"not a png")  # unreadable: skipped, not fatal
    with caplog.at_level(logging.WARNING, logger="segtool.ml.session"):
        outcome = train_project(project, max_seconds=6, config_overrides=TINY)
    assert "not used for batch-norm statistics" in caplog.text and "noise-3" in caplog.text
    sidecar = read_sidecar(outcome.model_path)
    shift = sidecar["recipe"]["batch_norm_shift"]
    assert shift["labelled_images"] == 1 and shift["unlabelled_images"] == 2
    assert shift["layers"] == len(batch_norm_layers(build_unet(1, 2, depth=2, base_filters=8)))
    assert shift["difference"] > MIN_DIFFERENCE
    assert any(r.startswith("batch-norm statistics of") for r in sidecar["recipe"]["reasons"])
    assert sidecar["recipe"]["ema"] is False  # no weight average by default (ml/recipe.py)


def _trained_weights(monkeypatch) -> list:
    """Spy on the session's training: each run's TrainResult, in order."""
    from segtool.ml import train

    results = []
    real_train = train.train_model

    def spy(*args, **kwargs):
        results.append(real_train(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(train, "train_model", spy)
    return results


def _kernels(weights: list) -> list:
    return [w for w in weights if w.ndim == 4]  # the convolutions' kernels


def test_a_kept_weight_average_is_used_where_the_statistics_move(make_project, tmp_path,
                                                                 monkeypatch):
    results = _trained_weights(monkeypatch)
    project = _dense_with_noise(make_project, tmp_path, 2)
    # A window of 1 / (1 - 0.5) = 2 steps: the run's 4 steps are more (a count, not a time
    # budget: a loaded machine makes fewer steps in seconds).
    four_steps = {**TINY, "keep_average": True, "steps_per_epoch": 4}
    outcome = train_project(project, max_seconds=None, epochs=1,
                            config_overrides={**four_steps, "ema_decay": 0.5})
    assert results[0].steps == 4
    sidecar = read_sidecar(outcome.model_path)
    assert sidecar["recipe"]["batch_norm_shift"]["layers"] > 0
    assert sidecar["recipe"]["ema"] is True
    assert any(r.startswith("weights averaged") for r in sidecar["recipe"]["reasons"])
    saved = load_model(outcome.model_path)[0].get_weights()
    for kernel, average in zip(_kernels(saved), _kernels(results[0].averaged.weights),
                               strict=True):
        np.testing.assert_array_equal(kernel, average)
    # The default window (1000 steps) is longer than the tiny run: it keeps its own weights.
    outcome = train_project(project, max_seconds=None, epochs=1, config_overrides=four_steps)
    sidecar = read_sidecar(outcome.model_path)
    assert results[1].steps == 4 and results[1].averaged is not None
    assert sidecar["recipe"]["batch_norm_shift"]["layers"] > 0
    assert sidecar["recipe"]["ema"] is False
    saved = load_model(outcome.model_path)[0].get_weights()
    for kernel, own in zip(_kernels(saved), _kernels(results[1].model.get_weights()),
                           strict=True):
        np.testing.assert_array_equal(kernel, own)


def test_the_models_own_weights_are_kept_where_the_statistics_stay(make_project, tmp_path,
                                                                   monkeypatch):
    results = _trained_weights(monkeypatch)
    project = make_project(n_images=1, size=SIZE)
    image, truth = nuclei_image(size=SIZE, seed=1)
    project.save_mask("img-1", truth)
    copies = [tmp_path / f"copy-{number}.png" for number in (1, 2)]  # unlabelled, alike
    for path in copies:
        assert cv2.imwrite(str(path), image)
    assert not project.import_images(copies).skipped
    outcome = train_project(project, max_seconds=6,
                            config_overrides={**TINY, "keep_average": True, "ema_decay": 0.5})
    sidecar = read_sidecar(outcome.model_path)
    assert not sidecar["recipe"]["batch_norm_shift"]["layers"]
    assert sidecar["recipe"]["ema"] is False
    assert not any(r.startswith("weights averaged") for r in sidecar["recipe"]["reasons"])
    (result,) = results
    assert result.averaged is not None  # it was a candidate
    saved = load_model(outcome.model_path)[0].get_weights()
    for kernel, own in zip(_kernels(saved), _kernels(result.model.get_weights()), strict=True):
        np.testing.assert_array_equal(kernel, own)


def test_a_parent_without_the_shift_is_compared_with_it(make_project, tmp_path,
                                                         monkeypatch):
    project = _dense_with_noise(make_project, tmp_path, 2)
    parent = train_project(project, max_seconds=6,
                           config_overrides={**TINY, "adapt_statistics": False})
    parent_bytes = parent.model_path.read_bytes()
    from segtool.ml import adaptation

    shifted = []
    real_shift = adaptation.shift_statistics

    def spy(model, *args, **kwargs):
        shifted.append(model)
        return real_shift(model, *args, **kwargs)

    monkeypatch.setattr(adaptation, "shift_statistics", spy)
    child = train_project(project, max_seconds=6, config_overrides=TINY)
    assert read_sidecar(child.model_path)["recipe"]["batch_norm_shift"]["layers"] > 0
    assert len(shifted) == 2 and shifted[0] is not shifted[1]  # the new model, a parent copy
    assert child.previous_val_iou is not None
    assert parent.model_path.read_bytes() == parent_bytes  # the parent's file is untouched
    shifted.clear()  # a parent that has the shift is compared as it is
    project.set_current_model(child.model_path.name)
    train_project(project, max_seconds=6, config_overrides=TINY)
    assert len(shifted) == 1


def test_continuous_learning_scores_an_unshifted_current_model_with_the_shift(
        make_project, tmp_path, monkeypatch):
    from segtool.ml import continuous

    project = _dense_with_noise(make_project, tmp_path, 1)
    current = train_project(project, max_seconds=6,
                            config_overrides={**TINY, "adapt_statistics": False})
    shifted = []
    real_shift = continuous.shift_statistics

    def spy(model, *args, **kwargs):
        result = real_shift(model, *args, **kwargs)
        shifted.append((model, result.applied))
        return result

    monkeypatch.setattr(continuous, "shift_statistics", spy)
    trainer = continuous.ContinuousTrainer(project.root, overrides=TINY)
    report = trainer.run_slice(1.0)
    assert report.current_iou is not None
    assert shifted and shifted[0][1]  # the current model, on a copy, before any candidate
    assert shifted[0][0] is not trainer._baseline[0]
    assert current.model_path.name == project.current_model


def test_training_with_every_image_labelled_or_the_switch_off_keeps_its_statistics(
        make_project, tmp_path):
    project = _dense_with_noise(make_project, tmp_path, 0)  # img-1, labelled densely
    outcome = train_project(project, max_seconds=6, config_overrides=TINY)
    sidecar = read_sidecar(outcome.model_path)
    shift = sidecar["recipe"]["batch_norm_shift"]
    assert shift["layers"] == 0 and shift["unlabelled_images"] == 0 and not shift["declined"]
    assert "batch-norm statistics as trained: no unlabelled image" in sidecar["recipe"]["reasons"]
    project = _dense_with_noise(make_project, tmp_path / "noisy", 1)
    outcome = train_project(project, max_seconds=6,
                            config_overrides={**TINY, "adapt_statistics": False})
    sidecar = read_sidecar(outcome.model_path)
    assert sidecar["recipe"]["batch_norm_shift"] is None
    assert not any("batch-norm" in r for r in sidecar["recipe"]["reasons"])


def test_scribbles_keep_their_statistics(make_project, tmp_path):
    project = _dense_with_noise(make_project, tmp_path, 1)
    _, truth = nuclei_image(size=SIZE, seed=1)
    mask = np.full((SIZE, SIZE), UNLABELLED, np.uint8)
    mask[::16] = truth[::16]  # four one-pixel strokes across the image
    project.save_mask("img-1", mask)
    assert "labels mostly border unlabelled pixels" in declined([mask])
    outcome = train_project(project, max_seconds=6, config_overrides=TINY)
    sidecar = read_sidecar(outcome.model_path)
    shift = sidecar["recipe"]["batch_norm_shift"]
    assert shift["layers"] == 0 and shift["unlabelled_images"] == 0  # not even read
    assert shift["declined"].startswith("labels mostly border unlabelled pixels")
    assert "batch-norm statistics as trained: labels mostly border" in " ".join(
        sidecar["recipe"]["reasons"])


def test_unlabelled_sample_spreads_over_the_list_and_takes_a_volumes_middle_slice(
        make_project, tmp_path):
    project = make_project(n_images=6, size=SIZE)
    label_half(project, "img-2")
    write_nifti(tmp_path / "ct.nii.gz", ct_like(slices=5, height=24, width=32).T)
    report = project.import_images([tmp_path / "ct.nii.gz"])
    assert not report.skipped
    spec = InputSpec(1)
    images = unlabelled_sample(project, spec, {"img-2"}, limit=3)
    assert len(images) == 3  # of ct, img-1, 3, 4, 5, 6: the first, a middle one, the last
    volume = project.read_volume("ct").array
    np.testing.assert_array_equal(  # the middle slice, with the volume's windows
        images[0], spec.apply(volume[2], spec.windows(volume_sample(volume))))
    np.testing.assert_array_equal(images[1], model_input(project.read_image("img-3"), spec))
    np.testing.assert_array_equal(images[2], model_input(project.read_image("img-6"), spec))
    assert all(image.dtype == np.float32 and image.max() <= 1.0 for image in images)
    everything = unlabelled_sample(project, spec, {"img-2"})
    assert len(everything) == 6
