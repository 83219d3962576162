"""Model files: atomic save with sidecar; loading refuses broken, foreign or code-carrying files."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from segtool.core.errors import SegtoolError
from segtool.ml import modelfile
from segtool.ml.backend import keras
from segtool.ml.modelfile import load_model, read_sidecar, save_model
from segtool.ml.unet import build_unet

MARKER = "SEGTOOL_TEST_LAMBDA_RAN"
SIDECAR = {"format": 1, "classes": [{"name": "background"}, {"name": "nuclei"}], "channels": 1}


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_unet(1, 2, depth=2, base_filters=4)


@pytest.fixture
def saved(tmp_path, model) -> Path:
    path = tmp_path / "model.keras"
    save_model(model, path, SIDECAR)
    return path


def lambda_model() -> keras.Model:
    """A model whose Lambda layer would set an environment variable when it runs."""
    inputs = keras.Input((None, None, 1))
    features = keras.layers.Conv2D(2, 1)(inputs)
    outputs = keras.layers.Lambda(
        # The variable's name is spelled out: the reloaded code does not see this module.
        lambda t: (__import__("os").environ.__setitem__("SEGTOOL_TEST_LAMBDA_RAN", "1"), t)[1],
        output_shape=(None, None, 2),
    )(features)
    return keras.Model(inputs, outputs)


def test_round_trip_keeps_predictions_and_sidecar(tmp_path, model, saved):
    loaded, sidecar = load_model(saved, num_classes=2, channels=1)
    image = np.random.default_rng(0).random((1, 32, 32, 1), dtype=np.float32)
    expected = model(image, training=False).numpy()
    np.testing.assert_allclose(loaded(image, training=False).numpy(), expected, atol=1e-6)
    assert sidecar == SIDECAR
    assert json.loads((tmp_path / "model.json").read_text(encoding="utf-8")) == SIDECAR
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.keras"]


def test_failed_save_leaves_previous_model_and_no_temporary_file(tmp_path, saved):
    before = saved.read_bytes()

    class BreaksWhileSaving:
        def save(self, path: str, overwrite: bool = True) -> None:
            Path(path).write_bytes(b"half a model")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_model(BreaksWhileSaving(), saved, {"format": 2})
    assert saved.read_bytes() == before
    assert read_sidecar(saved) == SIDECAR
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.keras"]


def test_save_refuses_other_suffixes_and_non_json_sidecars(tmp_path, model):
    with pytest.raises(ValueError, match=".keras"):
        save_model(model, tmp_path / "model.h5", {})
    with pytest.raises(ValueError, match="JSON"):
        save_model(model, tmp_path / "model.keras", {"x": object()})
    assert list(tmp_path.iterdir()) == []


def test_legacy_h5_and_other_files_are_refused(tmp_path, model):
    h5 = tmp_path / "old.h5"
    model.save(h5)
    with pytest.raises(SegtoolError, match=r"old\.h5: not a \.keras model file"):
        load_model(h5)
    with pytest.raises(SegtoolError, match="not found"):
        load_model(tmp_path / "missing.keras")


@pytest.mark.parametrize(
    "damage", ["truncated", "random bytes", "flipped weight byte", "no config"]
)
def test_corrupt_files_are_refused_naming_the_file(tmp_path, saved, damage):
    data = saved.read_bytes()
    broken = tmp_path / "broken.keras"
    if damage == "truncated":
        broken.write_bytes(data[: len(data) // 2])
    elif damage == "random bytes":
        broken.write_bytes(np.random.default_rng(0).bytes(5000))
    elif damage == "flipped weight byte":
        with zipfile.ZipFile(saved) as archive:
            info = archive.getinfo("model.weights.h5")
        at = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
        broken.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])
    else:
        with zipfile.ZipFile(saved) as source, zipfile.ZipFile(broken, "w") as target:
            target.writestr("model.weights.h5", source.read("model.weights.h5"))
    with pytest.raises(SegtoolError) as caught:
        load_model(broken)
    assert str(caught.value).startswith(f"{broken}: ")
    assert "corrupt" in str(caught.value) or "not a Keras model" in str(caught.value)


def test_models_that_do_not_fit_the_project_are_refused(tmp_path, saved):
    with pytest.raises(SegtoolError, match="predicts 2 classes, the project has 3"):
        load_model(saved, num_classes=3)
    with pytest.raises(SegtoolError, match="expects 1-channel images, the project has 3"):
        load_model(saved, channels=3)

    inputs = keras.Input((64, 64, 1))
    fixed = tmp_path / "fixed.keras"
    keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs)).save(fixed)
    with pytest.raises(SegtoolError, match="only takes 64x64 images"):
        load_model(fixed)

    inputs = keras.Input((None, None, 1))
    classifier = tmp_path / "classifier.keras"
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 1)(inputs))
    keras.Model(inputs, pooled).save(classifier)
    with pytest.raises(SegtoolError, match="not an image segmentation model"):
        load_model(classifier)


def test_lambda_layer_is_refused_and_never_runs(tmp_path, monkeypatch):
    path = tmp_path / "lambda.keras"
    lambda_model().save(path)
    monkeypatch.delenv(MARKER, raising=False)

    with pytest.raises(SegtoolError, match=r"lambda\.keras: refused: .*Lambda layer"):
        load_model(path)
    assert MARKER not in os.environ

    # Without our own config check, Keras's safe mode still refuses it...
    monkeypatch.setattr(modelfile, "_code_in_config", lambda config: None)
    with pytest.raises(SegtoolError, match="cannot load model"):
        load_model(path)
    assert MARKER not in os.environ

    # ...and the file really does carry code: loaded unsafely, it runs on the first image.
    unsafe = keras.saving.load_model(path, safe_mode=False, compile=False)
    assert MARKER not in os.environ
    unsafe(np.zeros((1, 4, 4, 1), np.float32))
    assert os.environ.get(MARKER) == "1"


def test_pickled_functions_and_foreign_modules_are_refused(tmp_path, monkeypatch, saved):
    inputs = keras.Input((None, None, 1))
    outputs = keras.layers.Conv2D(2, 1, activation=lambda t: t * 2)(inputs)
    pickled = tmp_path / "pickled.keras"
    with pytest.warns(UserWarning, match="lambda"):
        keras.Model(inputs, outputs).save(pickled)
    with pytest.raises(SegtoolError, match="serialised Python function"):
        load_model(pickled)

    # A config naming os.system as an activation, as a crafted file would.
    with zipfile.ZipFile(saved) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    layer = next(item for item in config["config"]["layers"] if item["class_name"] == "Activation")
    layer["config"]["activation"] = {
        "module": "os", "class_name": "function", "config": "system", "registered_name": "system"
    }
    members["config.json"] = json.dumps(config).encode()
    crafted = tmp_path / "crafted.keras"
    with zipfile.ZipFile(crafted, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(SegtoolError, match="from module 'os'"):
        load_model(crafted)


def test_sidecar_missing_or_malformed(tmp_path, saved):
    saved.with_suffix(".json").unlink()
    _, sidecar = load_model(saved)
    assert sidecar == {}

    saved.with_suffix(".json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SegtoolError, match=r"model\.json: malformed model sidecar"):
        read_sidecar(saved)
    with pytest.raises(SegtoolError, match=r"model\.json: malformed"):
        load_model(saved)
    saved.with_suffix(".json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(SegtoolError, match="not a JSON object"):
        read_sidecar(saved)


def _rewrite(saved: Path, target: Path, change) -> Path:
    """A copy of ``saved`` with ``change(members)`` applied to its zip members (name: bytes)."""
    with zipfile.ZipFile(saved) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    change(members)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def test_a_config_declaring_huge_weights_is_refused_before_keras_builds_it(
    tmp_path, saved, monkeypatch
):
    def huge(members):
        config = json.loads(members["config.json"])
        layer = next(item for item in config["config"]["layers"]
                     if item["class_name"] == "Conv2D")
        layer["config"]["filters"] = 2**31  # 9 x 2**31 x ... floats: the process would be killed
        members["config.json"] = json.dumps(config).encode()

    crafted = _rewrite(saved, tmp_path / "huge.keras", huge)
    monkeypatch.setattr(keras.saving, "load_model", lambda *a, **k: pytest.fail("built it"))
    with pytest.raises(SegtoolError, match="parameters, far beyond a U-Net") as refused:
        load_model(crafted)
    assert str(crafted) in str(refused.value)


def test_a_real_unet_is_well_inside_the_parameter_estimate():
    config = build_unet(3, 8, depth=5, base_filters=64).get_config()
    assert modelfile.estimate_parameters({"config": config}) < modelfile.MAX_PARAMETERS


def test_a_zip_bomb_is_refused_from_its_declared_sizes(tmp_path, saved, monkeypatch):
    def bomb(members):
        members["model.weights.h5"] = bytes(64 * 2**20)  # 64 MiB of zeros: about 64 KiB zipped

    crafted = _rewrite(saved, tmp_path / "bomb.keras", bomb)
    assert crafted.stat().st_size < 2**20
    monkeypatch.setattr(zipfile.ZipFile, "testzip", lambda self: pytest.fail("decompressed"))
    with pytest.raises(SegtoolError, match="zip bomb"):
        load_model(crafted)


def test_a_deeply_nested_config_is_one_error(tmp_path, saved):
    def nested(members):
        members["config.json"] = ("[" * 100_000 + "]" * 100_000).encode()

    with pytest.raises(SegtoolError, match="nested too deeply"):
        load_model(_rewrite(saved, tmp_path / "nested.keras", nested))


@pytest.mark.parametrize("key, value", [("trained_on", 5), ("channels", "rgb"),
                                        ("metrics", {"val_iou": "nope"}),
                                        ("metrics", {"mean_val_iou": "high"}),
                                        ("labelled_pixels", -1)])
def test_a_sidecar_with_wrong_types_is_one_error(tmp_path, saved, key, value):
    from segtool.core.models import list_models

    saved.with_suffix(".json").write_text(json.dumps({**SIDECAR, key: value}), encoding="utf-8")
    with pytest.raises(SegtoolError, match="malformed model sidecar: '.*' must be") as refused:
        load_model(saved)
    assert str(saved.with_suffix(".json")) in str(refused.value)
    assert "\n" not in str(refused.value)
    assert list_models(tmp_path) == []  # listed nowhere, and nothing raised


@pytest.mark.parametrize("name", ["../../etc/passwd", "/tmp/x.keras", "", ".."])
def test_current_model_must_be_a_file_name_in_models(tmp_path, name):
    from segtool.core.project import Project

    Project.create(tmp_path / "p")
    file = tmp_path / "p" / "segtool.json"
    data = json.loads(file.read_text())
    data["current_model"] = name
    file.write_text(json.dumps(data))
    with pytest.raises(SegtoolError, match="'current_model' must be a file name in models/"):
        Project.open(tmp_path / "p")


def test_saved_model_files_get_the_umask_like_any_new_file(tmp_path, model):
    old = os.umask(0o002)
    try:
        save_model(model, tmp_path / "shared.keras", {"channels": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "shared.keras").stat().st_mode & 0o777 == 0o664
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == 0o664
