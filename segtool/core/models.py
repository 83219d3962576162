"""The model files of a project as records: name, sidecar, metrics (no TensorFlow needed)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from segtool.core.errors import SegtoolError
from segtool.core.files import read_regular_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRecord:
    """One ``models/<name>.keras`` file and its JSON sidecar."""

    path: Path
    sidecar: dict

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def created(self) -> str:
        return str(self.sidecar.get("created", ""))

    @property
    def mean_val_iou(self) -> float | None:
        value = self.sidecar.get("metrics", {}).get("mean_val_iou")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def val_iou(self) -> dict[str, float | None]:
        return dict(self.sidecar.get("metrics", {}).get("val_iou", {}))

    @property
    def trained_on(self) -> list[str]:
        return list(self.sidecar.get("trained_on", []))


def sidecar_path(model_path: str | Path) -> Path:
    """``models/x.keras`` -> ``models/x.json``."""
    return Path(model_path).with_suffix(".json")


def read_sidecar(model_path: str | Path) -> dict:
    """The sidecar of ``model_path``; SegtoolError naming the file if missing or malformed."""
    path = sidecar_path(model_path)
    try:
        data = json.loads(read_regular_text(path))
    except FileNotFoundError:
        raise SegtoolError("model sidecar is missing", path) from None
    except RecursionError:
        raise SegtoolError("malformed model sidecar (nested too deeply)", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SegtoolError(f"malformed model sidecar ({error})", path) from None
    if not isinstance(data, dict):
        raise SegtoolError("malformed model sidecar (not a JSON object)", path)
    return data


def list_models(models_dir: Path) -> list[ModelRecord]:
    """Every ``.keras`` file in ``models_dir`` with a readable sidecar, oldest first."""
    records = []
    for path in sorted(models_dir.glob("*.keras")):
        try:
            records.append(ModelRecord(path, read_sidecar(path)))
        except SegtoolError as error:
            log.warning("%s", error)
    return sorted(records, key=lambda record: (record.created, record.name))
