"""Keras's JAX backend (``KERAS_BACKEND=jax``): training, prediction and the device probe run
where TensorFlow cannot be imported, and a model trained there opens on TensorFlow with the
same classes.

Keras fixes its backend at import, so the JAX side runs in a subprocess of its own, with
TensorFlow's import refused as on a machine without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")  # the test extra installs it; CI runs this file

JAX_SCRIPT = r"""
import importlib.abc, json, sys


class NoTensorFlow(importlib.abc.MetaPathFinder):  # as on a machine without TensorFlow
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError("no TensorFlow here")
        return None


sys.meta_path.insert(0, NoTensorFlow())
import numpy as np
from segtool.ml.backend import BACKEND, keras, tf
from segtool.ml.device import configure_devices, reference_steps_per_second
from segtool.ml.distribute import local_distribution
from segtool.ml.modelfile import save_model
from segtool.ml.predict import predict_tiled
from segtool.ml.train import TrainConfig, _jax_step, _loss_function, _WeightAverage, train_model
from segtool.ml.unet import build_unet

out = {"backend": BACKEND, "tf": tf is not None, "device": configure_devices(),
       "speed": reference_steps_per_second(), "strategy": local_distribution().strategy}

# One step of the compiled JAX step, by hand: the learning rate is read at each call, the
# batch-norm statistics and the moving average are written back.
model = build_unet(1, 2, depth=2, base_filters=4)
optimizer = keras.optimizers.SGD(learning_rate=0.0)
average = _WeightAverage(model, 0.5)
step = _jax_step(model, optimizer, _loss_function(TrainConfig()), average)
rng = np.random.default_rng(0)
images = rng.normal(size=(4, 32, 32, 1)).astype("float32") + 3.0
labels = (images[..., 0] > 3.0).astype("uint8")
weights = [v.numpy().copy() for v in model.trainable_variables]
statistics = [v.numpy().copy() for v in model.non_trainable_variables]
step(images, labels)
out["unchanged_at_rate_0"] = all(np.array_equal(w, v.numpy())
                                 for w, v in zip(weights, model.trainable_variables))
out["statistics_moved"] = any(not np.allclose(s, v.numpy())
                              for s, v in zip(statistics, model.non_trainable_variables))
optimizer.learning_rate = 0.1
step(images, labels)
out["changed_at_rate_01"] = any(not np.array_equal(w, v.numpy())
                                for w, v in zip(weights, model.trainable_variables))
out["average_updates"] = float(average.updates.numpy())
out["average_between"] = all(
    np.all(np.minimum(w, v.numpy()) - 1e-6 <= a.numpy())
    and np.all(a.numpy() <= np.maximum(w, v.numpy()) + 1e-6)
    for w, v, a in zip(weights, model.trainable_variables, average.averages))

# A whole run: a bright disc on noise.
yy, xx = np.mgrid[:96, :96]
mask = (((yy - 48) ** 2 + (xx - 48) ** 2) < 24 ** 2).astype(np.uint8)
image = (rng.normal(size=(96, 96, 1)) + 2.0 * mask[..., None]).astype("float32")
losses = []
config = TrainConfig(max_seconds=None, epochs=5, steps_per_epoch=20, depth=2, base_filters=8,
                     patch_size=32, batch_size=8, ema=True, holdout_fraction=0.0)
result = train_model([image], [mask], 2, config, progress=lambda p: losses.append(p.loss))
classes, confidence = predict_tiled(result.model, image, tile_size=32, overlap=8, flip=True)
union = np.sum((classes == 1) | (mask == 1))
out.update(steps=result.steps, first_loss=float(np.mean(losses[:5])),
           last_loss=float(np.mean(losses[-5:])),
           iou=float(np.sum((classes == 1) & (mask == 1)) / union))
np.save(sys.argv[1] + "/image.npy", image)
np.save(sys.argv[1] + "/classes.npy", classes)
save_model(result.model, sys.argv[1] + "/model.keras", {"backend": BACKEND})
out["tensorflow_imported"] = "tensorflow" in sys.modules
print(json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jax")
    environment = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(folder)], env=environment,
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, json.loads(done.stdout.strip().splitlines()[-1])


def test_runs_on_jax_without_tensorflow(jax_run):
    _, out = jax_run
    assert out["backend"] == "jax" and not out["tf"]
    assert not out["tensorflow_imported"]  # and nothing failed for want of it
    assert out["device"].startswith("CPU (") and "JAX" in out["device"]
    assert out["speed"] > 0
    assert out["strategy"] is None  # one device, no tf.distribute


def test_the_compiled_step_reads_the_rate_and_writes_back_statistics_and_average(jax_run):
    _, out = jax_run
    assert out["unchanged_at_rate_0"]  # the optimizer's rate of the call, not of the trace
    assert out["changed_at_rate_01"]
    assert out["statistics_moved"]  # training-mode batch norm updated its moving statistics
    assert out["average_updates"] == 2.0
    assert out["average_between"]  # each average lies between the start and the new weights


def test_trains_and_predicts_on_jax(jax_run):
    _, out = jax_run
    assert out["steps"] == 100
    assert out["last_loss"] < out["first_loss"]
    assert out["iou"] > 0.5


def test_a_model_trained_on_jax_opens_on_tensorflow_with_the_same_classes(jax_run):
    from segtool.ml.backend import tf
    from segtool.ml.modelfile import load_model
    from segtool.ml.predict import predict_tiled

    assert tf is not None  # this process runs the product's backend
    folder, _ = jax_run
    model, _ = load_model(Path(folder) / "model.keras")
    classes, _ = predict_tiled(model, np.load(folder / "image.npy"), tile_size=32, overlap=8,
                               flip=True)
    expected = np.load(folder / "classes.npy")
    assert np.mean(classes == expected) > 0.999
