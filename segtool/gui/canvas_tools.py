"""What each canvas tool does with the mouse and keys.

A handler receives points in scene coordinates (= image pixels, pixel ``(x, y)`` covers
``[x, x + 1) x [y, y + 1)``) and edits the canvas's :class:`LabelDocument`. Methods
return the rectangle of an edit they *completed* (empty otherwise); the canvas emits
``edited`` for a non-empty one. Handlers never hold a copy of the mask.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainterPath
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsRectItem

from segtool.core.brush import Region
from segtool.core.editing import Tool
from segtool.core.rect import EMPTY_RECT, Rect
from segtool.gui.canvas_items import cosmetic_pen
from segtool.gui.tool_events import tool_events
from segtool.gui.workers.grabcut import GrabCutThread

if TYPE_CHECKING:
    from segtool.gui.canvas import Canvas

__all__ = ["TOOL_HINTS", "Tool", "ToolHandler", "make_handler", "pixel_of"]

PREVIEW_COLOUR = QColor(255, 220, 0)

# The one-line hint the status bar shows when a tool is chosen.
TOOL_HINTS: dict[Tool, str] = {
    Tool.BRUSH: "Brush: drag to paint the selected class · [ and ] or Ctrl+wheel change "
                "the size · U paints only unlabelled pixels",
    Tool.ERASER: "Eraser: drag to make pixels unlabelled · [ and ] or Ctrl+wheel change the size",
    Tool.FILL: "Fill: a click fills the connected region of the same label (or of unlabelled "
               "pixels) with the selected class · Shift+click fills every pixel of that label "
               "in the image",
    Tool.POLYGON: "Polygon: click vertices, Enter (or double-click) closes, Esc cancels",
    Tool.WAND: "Magic wand: click to label the connected region of similar brightness · "
               "set Tolerance in the toolbar",
    Tool.GRABCUT: "GrabCut: drag a box around one object to label it · Esc cancels",
    Tool.PAN: "Pan: drag to move the image · wheel zooms · middle drag pans with any tool",
}


def pixel_of(point: QPointF) -> tuple[int, int]:
    """The pixel ``(x, y)`` holding a scene point."""
    return math.floor(point.x()), math.floor(point.y())


class ToolHandler:
    """A tool that does nothing; subclasses override what they need."""

    def __init__(self, canvas: Canvas) -> None:
        self.canvas = canvas

    def press(self, point: QPointF) -> Rect:
        """Left button pressed at ``point``."""
        return EMPTY_RECT

    def move(self, point: QPointF, left_down: bool) -> Rect:
        """Mouse moved to ``point`` (``left_down``: while dragging)."""
        return EMPTY_RECT

    def release(self, point: QPointF) -> Rect:
        """Left button released at ``point``."""
        return EMPTY_RECT

    def double_click(self, point: QPointF) -> Rect:
        """Left button double-clicked at ``point``."""
        return EMPTY_RECT

    def key(self, key: int) -> Rect | None:
        """A key press; None when the tool does not use the key."""
        return None

    def cancel(self) -> None:
        """Abandon what is in progress (tool or document switched)."""


class BrushHandler(ToolHandler):
    """Paint (or erase) discs joined along the mouse path; one drag is one undo step."""

    def __init__(self, canvas: Canvas, erase: bool = False) -> None:
        super().__init__(canvas)
        self.erase = erase
        self._last: tuple[int, int] | None = None

    def _segment(self, start: tuple[int, int], end: tuple[int, int]) -> None:
        document = self.canvas.document
        radius = self.canvas.brush_size / 2.0
        if self.erase:
            document.erase_segment(start, end, radius)
        else:
            document.paint_segment(start, end, radius, self.canvas.current_class)

    def press(self, point: QPointF) -> Rect:
        self.canvas.document.begin_stroke()
        self._last = pixel_of(point)
        self._segment(self._last, self._last)
        return EMPTY_RECT

    def move(self, point: QPointF, left_down: bool) -> Rect:
        if self._last is None or not left_down:
            return EMPTY_RECT
        current = pixel_of(point)
        if current != self._last:
            self._segment(self._last, current)
            self._last = current
        return EMPTY_RECT

    def release(self, point: QPointF) -> Rect:
        if self._last is None:
            return EMPTY_RECT
        self.move(point, True)
        self._last = None
        return self.canvas.document.end_stroke()

    def cancel(self) -> None:
        if self._last is not None:
            self._last = None
            self.canvas.document.end_stroke()


class FillHandler(ToolHandler):
    """Flood-fill the clicked label's connected region with the current class; with Shift
    held, every pixel of that label in the image (e.g. all the holes a wand click on the
    background left unlabelled, in one click)."""

    def press(self, point: QPointF) -> Rect:
        x, y = pixel_of(point)
        canvas = self.canvas
        contiguous = not canvas.press_modifiers & Qt.KeyboardModifier.ShiftModifier
        return canvas.document.flood_fill(x, y, canvas.current_class, contiguous)


class WandHandler(ToolHandler):
    """Label the connected region of similar intensity around the click."""

    def press(self, point: QPointF) -> Rect:
        x, y = pixel_of(point)
        canvas = self.canvas
        return canvas.document.magic_wand(
            canvas.display_array, x, y, canvas.wand_tolerance, canvas.current_class
        )


class PolygonHandler(ToolHandler):
    """Click vertices; double-click or Enter fills the polygon, Escape abandons it."""

    def __init__(self, canvas: Canvas) -> None:
        super().__init__(canvas)
        self._points: list[tuple[int, int]] = []
        self._hover: QPointF | None = None
        self._preview: QGraphicsPathItem | None = None

    @property
    def points(self) -> list[tuple[int, int]]:
        """The vertices clicked so far (pixel indices)."""
        return list(self._points)

    def _redraw(self) -> None:
        if not self._points:
            if self._preview is not None:
                self.canvas.scene().removeItem(self._preview)
                self._preview = None
            return
        if self._preview is None:
            self._preview = QGraphicsPathItem()
            self._preview.setPen(cosmetic_pen(PREVIEW_COLOUR))
            self._preview.setZValue(50)
            self.canvas.scene().addItem(self._preview)
        path = QPainterPath(QPointF(self._points[0][0] + 0.5, self._points[0][1] + 0.5))
        for x, y in self._points[1:]:
            path.lineTo(x + 0.5, y + 0.5)
        if self._hover is not None:
            path.lineTo(self._hover)
        self._preview.setPath(path)

    def press(self, point: QPointF) -> Rect:
        vertex = pixel_of(point)
        if not self._points or self._points[-1] != vertex:
            self._points.append(vertex)
        self._redraw()
        return EMPTY_RECT

    def move(self, point: QPointF, left_down: bool) -> Rect:
        if self._points:
            self._hover = point
            self._redraw()
        return EMPTY_RECT

    def double_click(self, point: QPointF) -> Rect:
        self.press(point)
        return self.close()

    def key(self, key: int) -> Rect | None:
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            return self.close()
        if key == Qt.Key.Key_Escape and self._points:
            self.cancel()
            return EMPTY_RECT
        return None

    def close(self) -> Rect:
        """Fill the polygon clicked so far (needs three vertices) and start a new one."""
        points, self._points = self._points, []
        self._hover = None
        self._redraw()
        if len(points) < 3:
            return EMPTY_RECT
        return self.canvas.document.fill_polygon(points, self.canvas.current_class)

    def cancel(self) -> None:
        self._points = []
        self._hover = None
        self._redraw()


class GrabCutJob(QObject):
    """One GrabCut box computed on a worker thread, applied to ``document`` as one undo step
    when it returns (unless cancelled first, or the canvas shows another document)."""

    def __init__(self, canvas: Canvas, box: Rect) -> None:
        events = tool_events(canvas)
        super().__init__(events)
        self.canvas = canvas
        self.document = canvas.document
        self.class_id = canvas.current_class
        self.cancelled = False
        self.thread = GrabCutThread(canvas.display_array, box)
        self.thread.returned.connect(self._on_returned)
        self.thread.failed.connect(self._on_failed)
        self.thread.finished.connect(self.deleteLater)
        events.track(self.thread)

    def start(self) -> None:
        tool_events(self.canvas).set_busy(True)
        self.canvas.viewport().setCursor(Qt.CursorShape.BusyCursor)
        tool_events(self.canvas).message.emit("GrabCut is working… (Esc cancels)", 0)
        self.thread.start()

    def cancel(self) -> None:
        """Drop the result (the thread ends at its next check); the cursor comes back now."""
        if self.cancelled:
            return
        self.cancelled = True
        self.thread.stop(timeout_ms=0)
        self._done()

    def _done(self) -> None:
        events = tool_events(self.canvas)
        if events.busy:
            events.set_busy(False)
            self.canvas.viewport().setCursor(Qt.CursorShape.CrossCursor)

    def _on_returned(self, region: Region) -> None:
        if self.cancelled:
            return
        self._done()
        self.cancelled = True  # finished: a later cancel() changes nothing
        document = self.canvas.document
        if document is None or document is not self.document:
            return
        rect = document.apply_region(region, self.class_id)
        events = tool_events(self.canvas)
        if rect.is_empty:
            events.message.emit("GrabCut found nothing new to label in the box", 5000)
        else:
            events.message.emit("", 0)
            self.canvas.edited.emit()

    def _on_failed(self, message: str) -> None:
        if not self.cancelled:
            self._done()
            self.cancelled = True
            tool_events(self.canvas).message.emit(message, 0)


class GrabCutHandler(ToolHandler):
    """Drag a box around an object; GrabCut labels the foreground it finds inside.

    With the canvas's tool events set to ``background`` (the window), GrabCut runs on a
    worker thread: a busy cursor meanwhile, Esc cancels, the result is one undo step.
    """

    def __init__(self, canvas: Canvas) -> None:
        super().__init__(canvas)
        self._start: tuple[int, int] | None = None
        self._preview: QGraphicsRectItem | None = None
        self._job: GrabCutJob | None = None

    @property
    def running(self) -> bool:
        """True while a box is being computed in the background."""
        return self._job is not None and not self._job.cancelled

    def _box(self, point: QPointF) -> Rect:
        if self._start is None:
            return EMPTY_RECT
        (x0, y0), (x1, y1) = self._start, pixel_of(point)
        return Rect.from_bounds(min(x0, x1), min(y0, y1), max(x0, x1) + 1, max(y0, y1) + 1)

    def press(self, point: QPointF) -> Rect:
        self._start = pixel_of(point)
        if self._preview is None:
            self._preview = QGraphicsRectItem()
            self._preview.setPen(cosmetic_pen(PREVIEW_COLOUR, 1.5, Qt.PenStyle.DashLine))
            self._preview.setZValue(50)
            self.canvas.scene().addItem(self._preview)
        self.move(point, True)
        return EMPTY_RECT

    def move(self, point: QPointF, left_down: bool) -> Rect:
        if self._start is not None and self._preview is not None and left_down:
            box = self._box(point)
            self._preview.setRect(QRectF(box.x, box.y, box.width, box.height))
        return EMPTY_RECT

    def release(self, point: QPointF) -> Rect:
        box = self._box(point)
        self._drop_box()
        if box.is_empty:
            return EMPTY_RECT
        canvas = self.canvas
        if not tool_events(canvas).background:
            return canvas.document.grabcut(canvas.display_array, box, canvas.current_class)
        self._cancel_job()  # a new box replaces one still computing
        self._job = GrabCutJob(canvas, box)
        self._job.start()
        return EMPTY_RECT

    def key(self, key: int) -> Rect | None:
        if key != Qt.Key.Key_Escape:
            return None
        if self.running:
            self._cancel_job()
            tool_events(self.canvas).message.emit("GrabCut cancelled", 3000)
            return EMPTY_RECT
        if self._start is not None:
            self._drop_box()
            return EMPTY_RECT
        return None

    def _drop_box(self) -> None:
        self._start = None
        if self._preview is not None:
            self.canvas.scene().removeItem(self._preview)
            self._preview = None

    def _cancel_job(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self._job = None

    def cancel(self) -> None:
        self._drop_box()
        self._cancel_job()


def make_handler(tool: Tool, canvas: Canvas) -> ToolHandler:
    """The handler implementing ``tool`` on ``canvas`` (PAN is handled by the canvas)."""
    if tool in (Tool.BRUSH, Tool.ERASER):
        return BrushHandler(canvas, erase=tool == Tool.ERASER)
    if tool == Tool.FILL:
        return FillHandler(canvas)
    if tool == Tool.WAND:
        return WandHandler(canvas)
    if tool == Tool.POLYGON:
        return PolygonHandler(canvas)
    if tool == Tool.GRABCUT:
        return GrabCutHandler(canvas)
    return ToolHandler(canvas)
