"""The model files of a project as records: name, sidecar, metrics (no TensorFlow needed)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segtool.core.errors import SegtoolError
from segtool.core.files import read_regular_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSidecar:
    """A model's sidecar (``models/<stem>.json``) as checked, typed fields.

    Built by :meth:`from_dict`, which refuses wrong types with one line naming the file;
    ``raw`` keeps the whole dict (keys this segtool does not read included).
    """

    classes: tuple[str, ...] = ()
    channels: int = 1
    created: str = ""
    trained_on: tuple[str, ...] = ()
    labelled_pixels: int | None = None
    steps: int | None = None
    seconds: float | None = None
    device: str = ""
    parent: str | None = None
    mean_val_iou: float | None = None
    val_iou: dict[str, float | None] = field(default_factory=dict)
    recipe: tuple[str, ...] = ()  # how training chose its settings, one line each
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: dict, path: Path | None = None) -> ModelSidecar:
        """Check ``data`` (a parsed sidecar) and type it; SegtoolError naming ``path``."""
        if not isinstance(data, dict):
            raise SegtoolError("malformed model sidecar (not a JSON object)", path)
        problem = sidecar_problem(data)
        if problem:
            raise SegtoolError(f"malformed model sidecar: {problem}", path)
        metrics = data.get("metrics", {})
        iou = metrics.get("mean_val_iou")
        seconds = data.get("seconds")
        return cls(
            classes=tuple(c["name"] for c in data.get("classes", [])),
            channels=int(data.get("channels", 1)),
            created=str(data.get("created", "")),
            trained_on=tuple(data.get("trained_on", [])),
            labelled_pixels=data.get("labelled_pixels"),
            steps=data.get("steps"),
            seconds=None if seconds is None else float(seconds),
            device=str(data.get("device", "")),
            parent=data.get("parent"),
            mean_val_iou=None if iou is None else float(iou),
            val_iou={str(k): (None if v is None else float(v))
                     for k, v in metrics.get("val_iou", {}).items()},
            recipe=tuple(data.get("recipe", {}).get("reasons", [])),
            raw=data,
        )


@dataclass(frozen=True)
class ModelRecord:
    """One ``models/<name>.keras`` file and its checked sidecar."""

    path: Path
    sidecar: ModelSidecar

    @property
    def name(self) -> str:
        """The file name in models/."""
        return self.path.name

    @property
    def created(self) -> str:
        """When it was trained (ISO date), or ""."""
        return self.sidecar.created

    @property
    def mean_val_iou(self) -> float | None:
        """Mean validation IoU, None when nothing was held out."""
        return self.sidecar.mean_val_iou

    @property
    def val_iou(self) -> dict[str, float | None]:
        """Validation IoU per class name."""
        return dict(self.sidecar.val_iou)

    @property
    def trained_on(self) -> list[str]:
        """The image stems it was trained on."""
        return list(self.sidecar.trained_on)


SUMMARY_IMAGES = 8
"""Image names a summary lists before "and N more" (fewer when they are long)."""
SUMMARY_LINE = 160
"""A recipe line longer than this is cut in a summary; the image names stop before it."""


def model_summary(record: ModelRecord) -> str:
    """What a user asks of a model, in a few lines: its file, its validation IoU per class,
    what it was trained on, how long, and how training chose its settings (the recipe)."""
    sidecar = record.sidecar
    lines = [record.name]
    scores = ", ".join(f"{name} {'n/a' if iou is None else f'{iou:.3f}'}"
                       for name, iou in sidecar.val_iou.items())
    if sidecar.mean_val_iou is not None:
        lines.append(f"validation IoU {sidecar.mean_val_iou:.3f}" + (f": {scores}" if scores
                                                                     else ""))
    else:
        lines.append("validation IoU n/a (nothing held out)")
    images = list(sidecar.trained_on)
    if images:
        head = f"trained on {len(images)} image{'s' if len(images) != 1 else ''}: "
        shown = images[:1]
        for name in images[1:SUMMARY_IMAGES]:  # as many names as the line holds
            if len(head) + len(", ".join([*shown, name])) + len(" and 999 more") > SUMMARY_LINE:
                break
            shown.append(name)
        more = len(images) - len(shown)
        lines.append(head + ", ".join(shown) + (f" and {more} more" if more > 0 else ""))
    run = []
    if sidecar.steps is not None:
        run.append(f"{sidecar.steps} steps")
    if sidecar.seconds is not None:
        run.append(f"{sidecar.seconds:.0f} s")
    if run:
        lines.append(" in ".join(run) + (f" on {sidecar.device}" if sidecar.device else ""))
    if sidecar.parent:
        lines.append(f"continued from {sidecar.parent}")
    if sidecar.recipe:
        lines.append("recipe:")
        lines.extend("  " + (line if len(line) <= SUMMARY_LINE else line[: SUMMARY_LINE - 3]
                             + "...") for line in sidecar.recipe)
    return "\n".join(lines)


def sidecar_path(model_path: str | Path) -> Path:
    """``models/x.keras`` -> ``models/x.json``."""
    return Path(model_path).with_suffix(".json")


def load_sidecar(model_path: str | Path) -> ModelSidecar:
    """The checked sidecar of ``model_path`` (see :func:`read_sidecar`)."""
    return ModelSidecar.from_dict(read_sidecar(model_path), sidecar_path(model_path))


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
    "recipe": ("an object whose 'reasons' are a list of lines",
               lambda v: isinstance(v, dict) and isinstance(v.get("reasons", []), list) and all(
                   isinstance(line, str) for line in v.get("reasons", []))),
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
            records.append(ModelRecord(path, load_sidecar(path)))
        except SegtoolError as error:
            log.warning("%s", error)
    return sorted(records, key=lambda record: (record.created, record.name))
