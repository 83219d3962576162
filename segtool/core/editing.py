"""The editing settings of a labelling session: tool, class, brush size, and two switches.

One :class:`EditingSettings` per session, owned by the :class:`~segtool.core.workspace.
Workspace`; the canvas, the panels and the actions read it and set it, and hear about each
change through ``subscribe`` (as napari's Labels layer owns brush size and selected label,
with an event each). No Qt here.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_BRUSH_SIZE = 1000
UNLABELLED = 255


class Tool(str, enum.Enum):
    """The labelling tools."""

    BRUSH = "brush"
    ERASER = "eraser"
    FILL = "fill"
    POLYGON = "polygon"
    WAND = "wand"
    GRABCUT = "grabcut"
    PAN = "pan"


class Setting(str, enum.Enum):
    """The names listeners receive."""

    TOOL = "tool"
    CURRENT_CLASS = "current_class"
    BRUSH_SIZE = "brush_size"
    PAINT_UNLABELLED_ONLY = "paint_unlabelled_only"
    MASK_VISIBLE = "mask_visible"


Listener = Callable[[Setting, object], None]


class EditingSettings:
    """What the user chose to edit with. Setting a value to what it is notifies no one."""

    def __init__(self) -> None:
        self._values: dict[Setting, object] = {
            Setting.TOOL: Tool.BRUSH,
            Setting.CURRENT_CLASS: 1,
            Setting.BRUSH_SIZE: 9,
            Setting.PAINT_UNLABELLED_ONLY: False,
            Setting.MASK_VISIBLE: True,
        }
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(setting, new_value)`` after each change."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _set(self, setting: Setting, value: object) -> None:
        if self._values[setting] == value:
            return
        self._values[setting] = value
        for listener in list(self._listeners):
            listener(setting, value)

    @property
    def tool(self) -> Tool:
        """The active tool."""
        return Tool(self._values[Setting.TOOL])

    @tool.setter
    def tool(self, tool: Tool | str) -> None:
        self._set(Setting.TOOL, Tool(tool))

    @property
    def current_class(self) -> int:
        """The class index painting tools apply (0..254)."""
        return int(self._values[Setting.CURRENT_CLASS])  # type: ignore[call-overload]

    @current_class.setter
    def current_class(self, class_id: int) -> None:
        if not 0 <= int(class_id) < UNLABELLED:
            raise ValueError(f"class index must be 0..{UNLABELLED - 1}, got {class_id}")
        self._set(Setting.CURRENT_CLASS, int(class_id))

    @property
    def brush_size(self) -> int:
        """Brush and eraser diameter in image pixels (1..MAX_BRUSH_SIZE)."""
        return int(self._values[Setting.BRUSH_SIZE])  # type: ignore[call-overload]

    @brush_size.setter
    def brush_size(self, size: int) -> None:
        self._set(Setting.BRUSH_SIZE, max(1, min(int(size), MAX_BRUSH_SIZE)))

    @property
    def paint_unlabelled_only(self) -> bool:
        """Painting tools only label unlabelled pixels (erasing is not restricted)."""
        return bool(self._values[Setting.PAINT_UNLABELLED_ONLY])

    @paint_unlabelled_only.setter
    def paint_unlabelled_only(self, enabled: bool) -> None:
        self._set(Setting.PAINT_UNLABELLED_ONLY, bool(enabled))

    @property
    def mask_visible(self) -> bool:
        """The labels are shown over the image."""
        return bool(self._values[Setting.MASK_VISIBLE])

    @mask_visible.setter
    def mask_visible(self, visible: bool) -> None:
        self._set(Setting.MASK_VISIBLE, bool(visible))
