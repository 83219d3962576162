"""Every window action with its shortcuts, as one table (the README lists the same keys)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QWidget


class ActionName(str, enum.Enum):
    """The window's actions."""

    SAVE = "save"
    QUIT = "quit"
    UNDO = "undo"
    REDO = "redo"
    FIT = "fit"
    ZOOM_100 = "zoom_100"
    BRUSH = "brush"
    ERASER = "eraser"
    FILL = "fill"
    POLYGON = "polygon"
    WAND = "wand"
    GRABCUT = "grabcut"
    PAN = "pan"
    BRUSH_SMALLER = "brush_smaller"
    BRUSH_LARGER = "brush_larger"
    ONLY_UNLABELLED = "only_unlabelled"
    TOGGLE_MASK = "toggle_mask"
    TOGGLE_PREDICTION = "toggle_prediction"
    ACCEPT_PREDICTION = "accept_prediction"
    NEXT_IMAGE = "next_image"
    PREVIOUS_IMAGE = "previous_image"
    NEXT_UNLABELLED = "next_unlabelled"
    MARK_REVIEWED = "mark_reviewed"
    TRAIN = "train"
    LABEL_NEXT = "label_next"
    ADD_IMAGES = "add_images"
    NEW_PROJECT = "new_project"
    OPEN_PROJECT = "open_project"
    EXPORT = "export"
    STOP_TRAINING = "stop_training"
    CONTINUOUS = "continuous"
    ADD_CLASS = "add_class"
    RENAME_CLASS = "rename_class"
    RECOLOUR_CLASS = "recolour_class"
    DELETE_CLASS = "delete_class"
    SHORTCUTS = "shortcuts"
    ABOUT = "about"


@dataclass(frozen=True)
class ActionSpec:
    """One action: its menu text, shortcuts and whether it is a toggle."""

    name: ActionName
    text: str
    shortcuts: tuple[str, ...]
    checkable: bool = False


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(ActionName.SAVE, "Save mask", ("Ctrl+S",)),
    ActionSpec(ActionName.QUIT, "Save and quit", ("Ctrl+Q",)),
    ActionSpec(ActionName.UNDO, "Undo", ("Ctrl+Z",)),
    ActionSpec(ActionName.REDO, "Redo", ("Ctrl+Shift+Z", "Ctrl+Y")),
    ActionSpec(ActionName.FIT, "Fit to window", ("Ctrl+0",)),
    ActionSpec(ActionName.ZOOM_100, "Zoom 100%", ("Ctrl+1",)),
    ActionSpec(ActionName.BRUSH, "Brush", ("B",), True),
    ActionSpec(ActionName.ERASER, "Eraser", ("E",), True),
    ActionSpec(ActionName.FILL, "Fill", ("F",), True),
    ActionSpec(ActionName.POLYGON, "Polygon / lasso", ("L",), True),
    ActionSpec(ActionName.WAND, "Magic wand", ("W",), True),
    ActionSpec(ActionName.GRABCUT, "GrabCut box", ("G",), True),
    ActionSpec(ActionName.PAN, "Pan", ("H",), True),
    ActionSpec(ActionName.BRUSH_SMALLER, "Smaller brush", ("[",)),
    ActionSpec(ActionName.BRUSH_LARGER, "Larger brush", ("]",)),
    ActionSpec(ActionName.ONLY_UNLABELLED, "Paint only unlabelled pixels", ("U",), True),
    ActionSpec(ActionName.TOGGLE_MASK, "Show labels", ("M",), True),
    ActionSpec(ActionName.TOGGLE_PREDICTION, "Show prediction", ("P",), True),
    ActionSpec(ActionName.ACCEPT_PREDICTION, "Accept prediction", ("A",)),
    ActionSpec(ActionName.NEXT_IMAGE, "Next image", ("PgDown", "Alt+Right")),
    ActionSpec(ActionName.PREVIOUS_IMAGE, "Previous image", ("PgUp", "Alt+Left")),
    ActionSpec(ActionName.NEXT_UNLABELLED, "Next unlabelled image", ("N",)),
    ActionSpec(ActionName.MARK_REVIEWED, "Mark reviewed", ("R",), True),
    ActionSpec(ActionName.TRAIN, "Train", ("Ctrl+T",)),
    ActionSpec(ActionName.LABEL_NEXT, "Label next (least certain)", ("Ctrl+L",)),
    ActionSpec(ActionName.ADD_IMAGES, "Add images…", ("Ctrl+I",)),
    ActionSpec(ActionName.NEW_PROJECT, "New project…", ("Ctrl+N",)),
    ActionSpec(ActionName.OPEN_PROJECT, "Open project…", ("Ctrl+O",)),
    ActionSpec(ActionName.EXPORT, "Export masks…", ("Ctrl+E",)),
    ActionSpec(ActionName.STOP_TRAINING, "Stop training", ("Ctrl+Shift+T",)),
    ActionSpec(ActionName.CONTINUOUS, "Continuous learning", ("Ctrl+Shift+L",), True),
    ActionSpec(ActionName.ADD_CLASS, "Add class…", ()),
    ActionSpec(ActionName.RENAME_CLASS, "Rename class…", ()),
    ActionSpec(ActionName.RECOLOUR_CLASS, "Class colour…", ()),
    ActionSpec(ActionName.DELETE_CLASS, "Delete class…", ()),
    ActionSpec(ActionName.SHORTCUTS, "Keyboard shortcuts", ("F1",)),
    ActionSpec(ActionName.ABOUT, "About segtool", ()),
)

CLASS_KEYS = "0123456789"  # key n picks class n


def build_actions(parent: QWidget) -> dict[ActionName, QAction]:
    """Create the actions on ``parent`` (window-wide shortcuts) and return them by name."""
    actions = {}
    for spec in ACTIONS:
        action = QAction(spec.text, parent)
        action.setShortcuts([QKeySequence(key) for key in spec.shortcuts])
        action.setCheckable(spec.checkable)
        keys = f" ({', '.join(spec.shortcuts)})" if spec.shortcuts else ""
        action.setToolTip(f"{spec.text}{keys}")
        parent.addAction(action)
        actions[spec.name] = action
    return actions


def shortcut_rows() -> list[tuple[str, str]]:
    """``(keys, what they do)`` for every shortcut, mouse gestures last."""
    rows = [(", ".join(spec.shortcuts), spec.text) for spec in ACTIONS if spec.shortcuts]
    rows.append((", ".join(CLASS_KEYS), "Pick class 0-9"))
    rows.append(("Up, .", "Next slice of a volume"))
    rows.append(("Down, ,", "Previous slice of a volume"))
    rows.append(("Right drag", "Window: horizontal = width, vertical = level"))
    rows.append(("Wheel / Ctrl+wheel", "Zoom about the cursor / brush size"))
    rows.append(("Middle drag, Space+drag", "Pan"))
    return rows


def shortcut_table() -> str:
    """The shortcuts as Markdown table rows (for the README)."""
    rows = [f"| {keys} | {text} |" for keys, text in shortcut_rows()]
    return "\n".join(["| Keys | Action |", "| --- | --- |", *rows])
