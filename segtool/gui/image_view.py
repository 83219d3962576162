"""What the canvas shows of the open image: its window (level/width) and, for a volume, the
slice. Wiring between the workspace, the canvas, the layers panel and the slice bar.

The window shown is the project's remembered one (for this image, or for all images when
"same window for all" is on), else the DICOM's own, else the automatic percentile window
(the whole volume's for a volume, so that paging through slices keeps one window, as in
ITK-SNAP). A window the user sets (fields, presets, right-drag) is remembered in the project
when the change ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, Signal

from segtool.core.errors import SegtoolError
from segtool.core.project import Project
from segtool.core.window import CT_PRESETS, Preset, Window, display
from segtool.core.workspace import OpenedImage, Workspace
from segtool.gui.canvas import Canvas
from segtool.gui.layers_panel import CUSTOM_PRESET, DICOM_PRESET, LayersPanel
from segtool.gui.slice_bar import SliceBar

log = logging.getLogger(__name__)


class ImageView(QObject):
    """Shows an :class:`OpenedImage` on the canvas with its window; pages through slices.

    ``workspace`` is a callable (the window replaces its workspace after a class deletion).
    Signals: ``slice_shown(opened)`` after another slice of the open volume is shown,
    ``failed(text)``.
    """

    slice_shown = Signal(object)
    failed = Signal(str)

    def __init__(self, workspace: Callable[[], Workspace], project: Project, canvas: Canvas,
                 layers: LayersPanel, slice_bar: SliceBar, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._workspace = workspace
        self.project = project
        self.canvas = canvas
        self.layers = layers
        self.slice_bar = slice_bar
        self.opened: OpenedImage | None = None
        self.window: Window | None = None
        self._drag_start: Window | None = None
        layers.window_changed.connect(lambda level, width: self.set_window(Window(level, width)))
        layers.preset_chosen.connect(self.choose_preset)
        layers.window_for_all_changed.connect(self._set_for_all)
        layers.set_window_for_all(project.shared_window is not None)
        canvas.window_dragged.connect(self._drag)
        canvas.window_drag_finished.connect(self._drag_finished)
        slice_bar.slice_requested.connect(self.go_to_slice)

    # -- showing -----------------------------------------------------------------------------

    def show(self, opened: OpenedImage) -> None:
        """Show a newly opened image (or volume, at ``opened.z``), fitted to the canvas."""
        self.opened = opened
        self.window = opened.window or opened.auto_window or Window(127.5, 255.0)
        self.canvas.set_document(opened.document, self._display())
        self.layers.set_dicom_preset(self._dicom_window())
        self.layers.set_window(self.window, self._preset_of(self.window))
        self._show_slice_number()

    def step_slice(self, step: int) -> None:
        """Show the next (+1) or previous (-1) slice of the open volume."""
        if self.opened is not None and self.opened.volume is not None:
            self.go_to_slice(self.opened.z + step)

    def go_to_slice(self, z: int) -> None:
        """Show slice ``z`` (clamped) of the open volume, keeping zoom, pan and window."""
        opened = self.opened
        if opened is None or opened.volume is None:
            return
        z = max(0, min(int(z), opened.slices - 1))
        if z == opened.z:
            return
        try:
            shown = self._workspace().open(opened.stem, z)
        except SegtoolError as error:
            self.failed.emit(str(error))
            return
        self.opened = shown
        self.canvas.set_document(shown.document, self._display(), keep_view=True)
        self._show_slice_number()
        self.slice_shown.emit(shown)

    def _show_slice_number(self) -> None:
        opened = self.opened
        slices = 0 if opened is None or opened.volume is None else opened.slices
        self.slice_bar.show_slice(0 if opened is None else opened.z, slices)

    def _display(self) -> np.ndarray:
        """The shown slice (or image) windowed for the screen: (H, W[, 3]) uint8."""
        assert self.opened is not None and self.window is not None
        return display(self.opened.image, self.window, self.opened.invert)

    # -- the window ----------------------------------------------------------------------------

    def set_window(self, window: Window, remember: bool = True) -> None:
        """Show the open image with ``window``; ``remember`` keeps it in the project."""
        if self.opened is None:
            return
        self.window = window
        self.canvas.set_display_image(self._display())
        self.layers.set_window(window, self._preset_of(window))
        if remember:
            self._remember(window)

    def choose_preset(self, preset: str) -> None:
        """Apply a preset: a CT one, "auto" (percentiles) or "dicom" (the file's own)."""
        if self.opened is None:
            return
        if preset == Preset.AUTO.value:
            window = self.opened.auto_window
        elif preset == DICOM_PRESET:
            window = self._dicom_window()
        else:
            window = CT_PRESETS.get(Preset(preset))
        if window is not None:
            self.set_window(window)

    def _drag(self, dx: float, dy: float) -> None:
        """Right-drag on the canvas: horizontal changes the width, vertical the level."""
        if self.opened is None or self.window is None:
            return
        if self._drag_start is None:
            self._drag_start = self.window
        auto = self.opened.auto_window or self._drag_start
        span = max(auto.width, self._drag_start.width)
        self.set_window(self._drag_start.dragged(dx, dy, span), remember=False)

    def _drag_finished(self) -> None:
        if self._drag_start is not None and self.window is not None:
            self._remember(self.window)
        self._drag_start = None

    def _set_for_all(self, enabled: bool) -> None:
        """"Same window for all images": on, the current window becomes the project's; off,
        the image on screen keeps it as its own and the others go back to theirs."""
        try:
            self.project.set_window("", self.window if enabled else None, for_all=True)
            if not enabled and self.opened is not None and self.window is not None:
                self.project.set_window(self.opened.stem, self.window)
        except SegtoolError as error:
            self.failed.emit(str(error))

    def _remember(self, window: Window) -> None:
        if self.opened is None:
            return
        for_all = self.layers.for_all.isChecked()
        try:
            self.project.set_window(self.opened.stem, window, for_all=for_all)
        except SegtoolError as error:
            self.failed.emit(f"the window was not remembered: {error}")

    def _dicom_window(self) -> Window | None:
        if self.opened is None:
            return None
        return self.project.dicom_window(self.opened.stem)

    def _preset_of(self, window: Window) -> str:
        if self.opened is not None and window == self.opened.auto_window:
            return Preset.AUTO.value
        if window == self._dicom_window():
            return DICOM_PRESET
        for preset, preset_window in CT_PRESETS.items():
            if window == preset_window:
                return preset.value
        return CUSTOM_PRESET
