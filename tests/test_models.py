"""Model sidecars read once, checked and typed (no TensorFlow)."""

from __future__ import annotations

import json

import pytest

from segtool.core.errors import SegtoolError
from segtool.core.models import (
    SUMMARY_IMAGES,
    SUMMARY_LINE,
    ModelSidecar,
    list_models,
    model_summary,
)


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


def test_a_summary_says_how_the_model_was_trained(tmp_path):
    data = {"classes": [{"name": "background"}, {"name": "cell"}], "channels": 1,
            "trained_on": [f"img-{i}" for i in range(11)], "steps": 40, "seconds": 12.4,
            "device": "CPU (2 threads)", "parent": "model-1.keras",
            "metrics": {"val_iou": {"background": 0.9, "cell": None}, "mean_val_iou": 0.9},
            "recipe": {"reasons": ["patch 128 px, batch 4", "x" * 500]}}
    (tmp_path / "m.keras").write_bytes(b"PK")
    (tmp_path / "m.json").write_text(json.dumps(data), encoding="utf-8")
    [record] = list_models(tmp_path)

    lines = model_summary(record).splitlines()

    assert lines[0] == "m.keras"
    assert lines[1] == "validation IoU 0.900: background 0.900, cell n/a"
    assert lines[2] == ("trained on 11 images: img-0, img-1, img-2, img-3, img-4, img-5, "
                        "img-6, img-7 and 3 more")
    assert lines[3] == "40 steps in 12 s on CPU (2 threads)"
    assert lines[4] == "continued from model-1.keras"
    assert lines[5:7] == ["recipe:", "  patch 128 px, batch 4"]
    assert lines[7].endswith("...") and len(lines[7]) < 200
    # Long image names: as many as fit one line, then how many more (a tooltip stays on screen).
    data["trained_on"] = [f"TCGA_CS_6669_20020102_{i:02d}" for i in range(12)]
    (tmp_path / "m.json").write_text(json.dumps(data), encoding="utf-8")
    [record] = list_models(tmp_path)
    images = model_summary(record).splitlines()[2]
    assert len(images) <= SUMMARY_LINE
    assert images.startswith("trained on 12 images: TCGA_CS_6669_20020102_00, ")
    shown = images.count("TCGA_")
    assert 1 < shown < SUMMARY_IMAGES and images.endswith(f" and {12 - shown} more")


def test_recipe_lines_must_be_text(tmp_path):
    with pytest.raises(SegtoolError) as refused:
        ModelSidecar.from_dict({"recipe": {"reasons": [1, 2]}}, tmp_path / "m.json")
    assert "'recipe'" in str(refused.value)
