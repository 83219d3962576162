"""The model files of a project as records: name, sidecar, metrics (no TensorFlow needed)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    problem = sidecar_problem(data)
    if problem:
        raise SegtoolError(f"malformed model sidecar: {problem}", path)
    return data


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# The sidecar keys segtool reads, with the check their value must pass. Other keys are kept
# as they are (newer segtools may add some).
_SIDECAR_KEYS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "channels": ("a channel count 1..4", lambda v: _is_count(v) and 1 <= v <= 4),
    "classes": ("a list of {name, colour} objects",
                lambda v: isinstance(v, list) and all(
                    isinstance(c, dict) and isinstance(c.get("name"), str) for c in v)),
    "trained_on": ("a list of image names",
                   lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v)),
    "created": ("a date string", lambda v: isinstance(v, str)),
    "device": ("a string", lambda v: isinstance(v, str)),
    "parent": ("a model file name or null", lambda v: v is None or isinstance(v, str)),
    "normalisation": ("an object", lambda v: isinstance(v, dict)),
    "labelled_pixels": ("a pixel count", _is_count),
    "steps": ("a step count", _is_count),
    "seconds": ("a number of seconds", _is_number),
    "metrics": ("an object", lambda v: isinstance(v, dict)),
}
_METRIC_KEYS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "val_iou": ("an object of class name: IoU (a number or null)",
                lambda v: isinstance(v, dict) and all(
                    x is None or _is_number(x) for x in v.values())),
    "mean_val_iou": ("a number or null", lambda v: v is None or _is_number(v)),
}


def sidecar_problem(data: dict) -> str | None:
    """What is wrong with the types in sidecar ``data`` (e.g. ``"'channels' must be ..."``),
    or None. Only keys segtool reads are checked."""
    for table, where in ((_SIDECAR_KEYS, data), (_METRIC_KEYS, data.get("metrics", {}))):
        for key, (expected, check) in table.items():
            if key in where and not check(where[key]):
                shown = repr(where[key])
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                return f"{key!r} must be {expected}, found {shown}"
    return None


def list_models(models_dir: Path) -> list[ModelRecord]:
    """Every ``.keras`` file in ``models_dir`` with a readable sidecar, oldest first."""
    records = []
    for path in sorted(models_dir.glob("*.keras")):
        try:
            records.append(ModelRecord(path, read_sidecar(path)))
        except SegtoolError as error:
            log.warning("%s", error)
    return sorted(records, key=lambda record: (record.created, record.name))
