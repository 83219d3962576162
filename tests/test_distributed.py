"""Training on several replicas (tf.distribute), tested on this CPU as Keras's own CI does.

Mirrored: the CPU split into two logical devices (which must happen before TensorFlow
starts, hence a fresh interpreter). Multi-host: two ``segtool train --distributed``
processes on localhost ports, configured by TF_CONFIG.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from segtool.core.errors import SegtoolError
from segtool.core.masks import UNLABELLED
from segtool.core.synthetic import nuclei_image
from segtool.ml.cluster import ClusterRole

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64

# --- TF_CONFIG ------------------------------------------------------------------------------


def _tf_config(workers: list[str], task_type: str = "worker", index: int = 0,
               chief: list[str] | None = None) -> str:
    cluster = {"worker": workers, **({"chief": chief} if chief else {})}
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def test_worker_zero_is_the_chief_unless_the_cluster_names_one() -> None:
    workers = ["a:1", "b:1"]
    first = ClusterRole.from_environment({"TF_CONFIG": _tf_config(workers, index=0)})
    second = ClusterRole.from_environment({"TF_CONFIG": _tf_config(workers, index=1)})
    assert first.is_chief and not second.is_chief
    assert (first.workers, second.own_address) == (2, "b:1")
    named = {"TF_CONFIG": _tf_config(workers, index=0, chief=["c:1"])}
    assert not ClusterRole.from_environment(named).is_chief
    chief = ClusterRole.from_environment(
        {"TF_CONFIG": _tf_config(workers, "chief", 0, chief=["c:1"])})
    assert chief.is_chief and chief.workers == 3 and chief.own_address == "c:1"


@pytest.mark.parametrize(("text", "complaint"), [
    ("", "needs the TF_CONFIG"),
    ("{not json", "not JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', "'task' object"),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "ps jobs"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "index 1"),
    ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}',
     "twice"),
])
def test_a_bad_tf_config_is_one_line_saying_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(SegtoolError, match=complaint):
        ClusterRole.from_environment({"TF_CONFIG": text})


def test_distributed_train_without_tf_config_is_refused_before_tensorflow_starts(
    make_project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from segtool.cli import main

    project = make_project(n_images=1, size=SIZE)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert main(["train", str(project.root), "--distributed"]) == 1
    assert "needs the TF_CONFIG" in capsys.readouterr().err
    assert not any(project.models_dir.iterdir())


def test_train_without_distributed_says_it_ignores_tf_config(
    make_project, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from segtool.cli import main

    project = make_project(n_images=1, size=SIZE)  # nothing labelled: refused before TF
    monkeypatch.setenv("TF_CONFIG", _tf_config(["a:1", "b:1"]))
    assert main(["train", str(project.root)]) == 1
    assert "TF_CONFIG is set but --distributed is not" in caplog.text


# --- all devices of a host: MirroredStrategy over two logical CPUs --------------------------

MIRRORED_SCRIPT = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from segtool.core.project import Project
from segtool.core.synthetic import nuclei_image
from segtool.ml.distribute import local_distribution
from segtool.ml.session import train_project
from segtool.ml.distribute import statistics_averager
from segtool.ml.train import TrainConfig, train_model
from segtool.ml.unet import build_unet

image, truth = nuclei_image(size=64, seed=3)
image = (image / image.max()).astype(np.float32)[..., None]
mask = np.full(truth.shape, 255, np.uint8)
mask[:, :40] = truth[:, :40]
two = local_distribution(["/device:CPU:0", "/device:CPU:1"])
# Group normalisation and cross-entropy alone: the loss of a batch is (nearly) the mean of
# its halves', so one device with batch 8 and two replicas with 4 each should agree.
base = dict(max_seconds=None, epochs=1, steps_per_epoch=6, patch_size=32, learning_rate=1e-2,
            holdout_fraction=0.2, holdout_block=16, validation_margin=16, depth=2,
            base_filters=8, normalization="group", dice_weight=0.0)
single = train_model([image], [mask], 2, TrainConfig(batch_size=8, **base))
mirrored = train_model([image], [mask], 2, TrainConfig(batch_size=4, **base), distribution=two)

def probabilities(model):
    return np.asarray(tf.nn.softmax(model(image[None], training=False)))[0]

# BatchNormalization's moving statistics: each replica updates its own copy; the averager
# gives every replica their mean.
with two.scope():
    model = build_unet(1, 2, depth=1, base_filters=4)
variable = model.non_trainable_variables[0]
copies = variable.value.values
copies[1].assign(copies[0] + 2.0)
before = [c.numpy().copy() for c in copies]
statistics_averager(model, two)()
after = [c.numpy() for c in copies]

project = Project.create(sys.argv[1] + "/project", ["background", "nucleus"])
raw, labels = nuclei_image(size=64, seed=1)
import cv2
cv2.imwrite(sys.argv[1] + "/img-1.png", raw)
project.import_images([sys.argv[1] + "/img-1.png"])
half = np.full(labels.shape, 255, np.uint8)
half[:, :32] = labels[:, :32]
project.save_mask("img-1", half)
outcome = train_project(project, max_seconds=None, epochs=1, distribution=two,
                        config_overrides={"depth": 2, "base_filters": 4, "patch_size": 32,
                                          "batch_size": 2, "steps_per_epoch": 3})
print(json.dumps({
    "replicas": two.replicas,
    "describe": two.describe(),
    "steps": [single.steps, mirrored.steps],
    "losses": [[h.loss for h in single.history], [h.loss for h in mirrored.history]],
    "mirrored_is_plain": not hasattr(mirrored.model.weights[0].value, "values"),
    "max_difference": float(np.abs(probabilities(single.model)
                                   - probabilities(mirrored.model)).max()),
    "agreement": float(np.mean(probabilities(single.model).argmax(-1)
                               == probabilities(mirrored.model).argmax(-1))),
    "statistics": [[b.tolist() for b in before], [a.tolist() for a in after]],
    "sidecar": outcome.sidecar["distribution"],
    "saved": outcome.model_path is not None and outcome.model_path.is_file(),
}))
"""


def _python(*args: str, env: dict | None = None, timeout: float = 180
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def test_mirrored_run_on_two_devices_trains_like_one_device(tmp_path: Path) -> None:
    run = _python("-c", MIRRORED_SCRIPT, str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert found["replicas"] == 2 and "2 replicas (MirroredStrategy" in found["describe"]
    assert found["steps"] == [6, 6]
    single, mirrored = (np.asarray(losses) for losses in found["losses"])
    assert np.all(np.isfinite(mirrored)) and mirrored[-1] < mirrored[0]
    # The same data and start: the two runs follow each other step by step.
    np.testing.assert_allclose(mirrored, single, rtol=0.05)
    assert found["max_difference"] < 0.1 and found["agreement"] > 0.98
    assert found["mirrored_is_plain"]  # the caller gets an ordinary Keras model
    before, after = (np.asarray(copies) for copies in found["statistics"])
    assert not np.allclose(before[0], before[1])
    np.testing.assert_allclose(after[0], after[1])
    np.testing.assert_allclose(after[0], before.mean(axis=0), rtol=1e-6)
    assert found["saved"]
    assert found["sidecar"] == {"strategy": "MirroredStrategy", "replicas": 2, "workers": 1,
                                "devices": ["CPU:0", "CPU:1"], "global_batch": 4}


# --- several hosts: two workers on localhost -------------------------------------------------


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("localhost", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _labelled_project(make_project):
    project = make_project(n_images=2, size=SIZE)
    for stem, seed in (("img-1", 1), ("img-2", 2)):
        _, truth = nuclei_image(size=SIZE, seed=seed)
        mask = np.full((SIZE, SIZE), UNLABELLED, np.uint8)
        mask[:, : SIZE // 2] = truth[:, : SIZE // 2]
        project.save_mask(stem, mask)
    return project


def _start_workers(roots: list[Path], *options: str) -> list[subprocess.Popen[str]]:
    addresses = [f"localhost:{port}" for port in _free_ports(len(roots))]
    workers = []
    for index, root in enumerate(roots):
        env = {**os.environ, "TF_CONFIG": _tf_config(addresses, index=index),
               "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1"}
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "segtool", "train", str(root), "--distributed", *options],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=ROOT, env=env))
    return workers


def _finish(workers: list[subprocess.Popen[str]], timeout: float = 180
            ) -> list[tuple[int, str, str]]:
    results = []
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=timeout)
            results.append((worker.returncode, out, err))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return results


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_two_workers_train_together_and_only_the_chief_writes(make_project, tmp_path) -> None:
    project = _labelled_project(make_project)
    # The worker reads its own copy of the project (as a host reads shared storage): any
    # byte it wrote would show there.
    copy = tmp_path / "worker-copy"
    shutil.copytree(project.root, copy)
    before = _files(copy)
    (chief, chief_out, chief_err), (worker, worker_out, worker_err) = _finish(
        _start_workers([project.root, copy], "--epochs", "1", "--max-seconds", "120"))
    assert chief == 0, chief_err[-3000:]
    assert worker == 0, worker_err[-3000:]
    for out in (chief_out, worker_out):
        assert "joined: 2 replicas (MultiWorkerMirroredStrategy: 2 workers" in out
    models = sorted(p.name for p in project.models_dir.iterdir())
    assert len(models) == 2  # one .keras and its sidecar
    sidecar = json.loads((project.models_dir / models[0]).read_text())
    assert sidecar["distribution"]["replicas"] == 2 and sidecar["distribution"]["workers"] == 2
    steps = sidecar["steps"]
    assert f"saved {project.models_dir / models[1]} ({steps} steps" in chief_out
    assert "2 replicas (MultiWorkerMirroredStrategy" in chief_out
    assert f"trained {steps} steps" in worker_out and "the chief saves the model" in worker_out
    assert json.loads((project.root / "segtool.json").read_text())["current_model"] == models[1]
    assert _files(copy) == before
    # An ordinary model: the desktop loads it and predicts with it, no strategy needed.
    from segtool.ml.modelfile import load_model

    model, _ = load_model(project.models_dir / models[1], num_classes=2, channels=1)
    assert np.asarray(model(np.zeros((1, SIZE, SIZE, 1), np.float32))).shape == (1, SIZE, SIZE, 2)


def test_a_worker_killed_mid_run_stops_the_job_and_no_model_is_written(
    make_project,
) -> None:
    project = _labelled_project(make_project)
    before = _files(project.root)
    # Both on the same folder, as on shared storage: the chief holds the lock, the worker
    # reads without it.
    workers = _start_workers([project.root, project.root], "--max-seconds", "120")
    try:
        deadline = time.monotonic() + 120
        steps = 0
        while steps < 2 and time.monotonic() < deadline:  # the second: well into training
            line = workers[1].stdout.readline()
            assert line or workers[1].poll() is None, workers[1].stderr.read()[-3000:]
            steps += line.startswith("step")
        assert steps == 2, "the worker never trained"
        workers[1].send_signal(signal.SIGKILL)
        (chief, _, chief_err), _ = _finish(workers)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert chief == 1
    errors = [line for line in chief_err.splitlines() if line.startswith("segtool: error:")]
    assert len(errors) == 1 and "distributed job stopped: worker 1 failed" in errors[0]
    assert "no model saved" in errors[0]
    assert _files(project.root) == before


def test_a_worker_reading_other_labels_is_refused_and_nothing_is_written(
    make_project, tmp_path: Path
) -> None:
    project = _labelled_project(make_project)
    copy = tmp_path / "stale-copy"
    shutil.copytree(project.root, copy)
    # The worker's copy lacks a mask the chief has (say, a stale sync of shared storage).
    (copy / "masks" / "img-2.png").unlink()
    before = _files(project.root)
    (chief, _, chief_err), (worker, _, worker_err) = _finish(
        _start_workers([project.root, copy], "--epochs", "1", "--max-seconds", "120"))
    assert (chief, worker) == (1, 1)
    worker_errors = [line for line in worker_err.splitlines() if line.startswith("segtool:")]
    assert len(worker_errors) == 1 and "must read the same project" in worker_errors[0]
    chief_errors = [line for line in chief_err.splitlines() if line.startswith("segtool:")]
    assert len(chief_errors) == 1 and "worker 1 failed" in chief_errors[0]
    assert _files(project.root) == before


def test_a_chief_refused_by_the_lock_stops_every_worker(make_project) -> None:
    from segtool.core.lock import ProjectLock

    project = _labelled_project(make_project)
    before = _files(project.root)
    with ProjectLock.acquire(project.root, "the segtool window"):
        (chief, _, chief_err), (worker, _, worker_err) = _finish(
            _start_workers([project.root, project.root], "--epochs", "1"))
    assert (chief, worker) == (1, 1)
    chief_errors = [line for line in chief_err.splitlines() if line.startswith("segtool:")]
    assert len(chief_errors) == 1 and "in use by the segtool window" in chief_errors[0]
    # The worker does not wait for ever: it sees the chief go.
    worker_errors = [line for line in worker_err.splitlines() if line.startswith("segtool:")]
    assert len(worker_errors) == 1 and "worker 0 failed" in worker_errors[0]
    assert _files(project.root) == before
