"""Persistent settings (QSettings): window layout, last project, brush size, opacity."""

from __future__ import annotations

from PySide6.QtCore import QSettings

ORGANISATION = "segtool"
APPLICATION = "segtool"

LAST_PROJECT = "last_project"
RECENT_PROJECTS = "recent_projects"
LAST_IMAGES = "last_image"  # + "/" + a key made from the project's folder
MAX_RECENT = 8
GEOMETRY = "window/geometry"
WINDOW_STATE = "window/state"
BRUSH_SIZE = "tools/brush_size"
WAND_TOLERANCE = "tools/wand_tolerance"
MASK_OPACITY = "view/mask_opacity"
PREDICTION_OPACITY = "view/prediction_opacity"
ACCEPT_THRESHOLD = "predictions/accept_threshold"
TRAIN_SECONDS = "training/max_seconds"
CONTINUOUS = "training/continuous"


def settings() -> QSettings:
    """The application's QSettings (organisation and application names are set by the app)."""
    return QSettings(ORGANISATION, APPLICATION)


def read_int(key: str, default: int) -> int:
    value = settings().value(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def read_float(key: str, default: float) -> float:
    value = settings().value(key, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def recent_projects() -> list[str]:
    """Project folders opened lately, the latest first."""
    value = settings().value(RECENT_PROJECTS, [])
    if isinstance(value, str):  # QSettings gives a lone string for a one-item list
        value = [value]
    return [str(item) for item in value or [] if item]


def remember_project(folder: str) -> None:
    """Put ``folder`` first in the recent projects (and make it the last project)."""
    recent = [folder] + [item for item in recent_projects() if item != folder]
    store = settings()
    store.setValue(RECENT_PROJECTS, recent[:MAX_RECENT])
    store.setValue(LAST_PROJECT, folder)


def _image_key(folder: str) -> str:
    return LAST_IMAGES + "/" + folder.replace("/", "|").replace("\\", "|")


def last_image(folder: str) -> str | None:
    """The image the user was last on in the project at ``folder``."""
    value = settings().value(_image_key(folder))
    return str(value) if value else None


def remember_image(folder: str, stem: str) -> None:
    settings().setValue(_image_key(folder), stem)


def read_bool(key: str, default: bool) -> bool:
    """A stored flag (QSettings may give back "true"/"false" strings)."""
    value = settings().value(key, default)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)
