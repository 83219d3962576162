"""Model sidecars read once, checked and typed (no TensorFlow)."""

from __future__ import annotations

import json

import pytest

from segtool.core.errors import SegtoolError
from segtool.core.models import ModelSidecar, list_models


def test_a_sidecar_becomes_typed_fields_and_keeps_unknown_keys(tmp_path):
    data = {"classes": [{"name": "background"}, {"name": "cell"}], "channels": 3,
            "created": "2026-11-25T10:00:00", "trained_on": ["a", "b"], "steps": 40,
            "seconds": 12, "labelled_pixels": 900, "device": "CPU", "parent": None,
            "metrics": {"val_iou": {"background": 0.9, "cell": None}, "mean_val_iou": 0.9},
            "recipe": {"patch_size": 128}}
    (tmp_path / "m.keras").write_bytes(b"PK")
    (tmp_path / "m.json").write_text(json.dumps(data), encoding="utf-8")

    [record] = list_models(tmp_path)

    sidecar = record.sidecar
    assert isinstance(sidecar, ModelSidecar)
    assert sidecar.classes == ("background", "cell") and sidecar.channels == 3
    assert sidecar.trained_on == ("a", "b") and sidecar.seconds == 12.0
    assert sidecar.val_iou == {"background": 0.9, "cell": None}
    assert record.mean_val_iou == 0.9 and record.trained_on == ["a", "b"]
    assert sidecar.raw["recipe"] == {"patch_size": 128}


def test_from_dict_names_the_file_and_the_key(tmp_path):
    with pytest.raises(SegtoolError) as refused:
        ModelSidecar.from_dict({"steps": "many"}, tmp_path / "m.json")
    assert str(tmp_path / "m.json") in str(refused.value) and "'steps'" in str(refused.value)
