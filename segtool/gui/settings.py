"""Persistent settings (QSettings): window layout, last project, brush size, opacity."""

from __future__ import annotations

from PySide6.QtCore import QSettings

ORGANISATION = "segtool"
APPLICATION = "segtool"

LAST_PROJECT = "last_project"
GEOMETRY = "window/geometry"
WINDOW_STATE = "window/state"
BRUSH_SIZE = "tools/brush_size"
WAND_TOLERANCE = "tools/wand_tolerance"
MASK_OPACITY = "view/mask_opacity"
PREDICTION_OPACITY = "view/prediction_opacity"
ACCEPT_THRESHOLD = "predictions/accept_threshold"
TRAIN_SECONDS = "training/max_seconds"


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
