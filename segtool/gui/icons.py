"""The toolbar's icons: SVGs bundled under ``segtool/resources/icons``."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QIcon

ICON_FOLDER = Path(__file__).resolve().parent.parent / "resources" / "icons"


def icon_path(name: str) -> Path:
    """The SVG file of icon ``name`` (e.g. ``"brush"``)."""
    return ICON_FOLDER / f"{name}.svg"


def icon(name: str) -> QIcon:
    """Icon ``name`` (a null icon when the file is missing; the action keeps its text)."""
    path = icon_path(name)
    return QIcon(str(path)) if path.is_file() else QIcon()
