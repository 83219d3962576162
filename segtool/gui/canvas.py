"""The labelling canvas: an image, its label overlay and a prediction proposal, with tools.

The canvas shows a :class:`LabelDocument` and never keeps its own copy of the mask. It
subscribes to the document's changes and, for each changed rectangle, asks the scene to
repaint just that rectangle. The label and prediction layers are coloured at paint time,
for the repainted part of the view only and at screen resolution (RenderedLayerItem), so a
brush stroke costs the same on a 1024 x 1024 image as on a 16384 x 16384 one, and no
image-sized RGBA buffer exists (it would be 1 GiB at 16384²).

Scene coordinates are image pixels: pixel ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QWidget

from segtool.core import overlay, proposal
from segtool.core.brush import DEFAULT_WAND_TOLERANCE
from segtool.core.editing import EditingSettings, Setting
from segtool.core.labels import LabelDocument
from segtool.core.rect import Rect
from segtool.gui.canvas_items import ArrayImageItem, BrushOutline, RenderedLayerItem
from segtool.gui.canvas_tools import Tool, ToolHandler, make_handler
from segtool.gui.qimage import wrap_array

__all__ = ["Canvas", "Tool"]

log = logging.getLogger(__name__)

MIN_ZOOM = 1.0 / 64.0
MAX_ZOOM = 64.0
WHEEL_ZOOM_STEP = 1.25  # zoom factor per wheel notch (120 units)
# Used until set_class_colours is called: background, then distinct hues.
DEFAULT_COLOURS = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48),
                   (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60)]


class Canvas(QGraphicsView):
    """Shows one image with its labels and lets the user edit them with :class:`Tool` s.

    Signals: ``cursor_moved(x, y)`` image pixel under the mouse, ``(-1, -1)`` outside;
    ``zoom_changed(float)`` screen pixels per image pixel; ``edited()`` after each
    completed edit made with the mouse or keys (a stroke, a fill, a polygon, ...);
    ``brush_size_changed(int)``; ``window_dragged(dx, dy)`` while the right button drags
    (screen pixels from where it was pressed: the window/level gesture) and
    ``window_drag_finished()`` when it is released.
    """

    cursor_moved = Signal(int, int)
    zoom_changed = Signal(float)
    edited = Signal()
    brush_size_changed = Signal(int)
    window_dragged = Signal(float, float)
    window_drag_finished = Signal()

    def __init__(
        self, parent: QWidget | None = None, settings: EditingSettings | None = None
    ) -> None:
        super().__init__(parent)
        # Tool, class and brush size live in the session's settings (the workspace's);
        # the canvas reads them and follows their changes.
        self.settings = settings if settings is not None else EditingSettings()
        scene = QGraphicsScene(self)
        scene.setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)
        self.setScene(scene)
        self._image_item = ArrayImageItem()
        self._overlay_item = RenderedLayerItem()
        self._overlay_item.setOpacity(0.5)
        self._overlay_item.setZValue(1)
        self._proposal_item = RenderedLayerItem()
        self._proposal_item.setZValue(2)
        self._outline = BrushOutline()
        self._outline.setVisible(False)
        for item in (self._image_item, self._overlay_item, self._proposal_item, self._outline):
            scene.addItem(item)

        # No scroll bars: they would resize the viewport when they appear on zooming in,
        # shifting the image under the cursor. Panning is by middle button or space+drag.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setOptimizationFlags(
            QGraphicsView.OptimizationFlag.DontSavePainterState
            | QGraphicsView.OptimizationFlag.DontAdjustForAntialiasing
        )
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        self.setBackgroundBrush(QColor(48, 48, 48))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.viewport().setMouseTracking(True)
        self.viewport().setCursor(Qt.CursorShape.CrossCursor)

        self._document: LabelDocument | None = None
        self._display: np.ndarray | None = None
        self._lut = overlay.colour_lut(DEFAULT_COLOURS)
        self._prediction: tuple[np.ndarray, np.ndarray | None] | None = None
        self._prediction_classes: int | None = None  # the model's class count, if known
        self._runner_up: proposal.RunnerUp | None = None
        self._prediction_threshold = 0
        self._class_thresholds: dict[int, float] = {}  # class -> p(class) it is proposed at
        self._wand_tolerance = DEFAULT_WAND_TOLERANCE
        self._handler: ToolHandler = make_handler(self.settings.tool, self)
        self._outline.set_diameter(self.settings.brush_size)
        self.settings.subscribe(self._on_setting)
        self._fit_mode = True
        self._space_down = False
        self._pan_from: QPointF | None = None
        self._window_from: QPointF | None = None
        self._last_pixel = (-1, -1)
        # The keys held at the last left press, for tools that read them (Shift+click fill).
        self.press_modifiers = Qt.KeyboardModifier.NoModifier

    # -- state read by the tools ---------------------------------------------------------

    @property
    def document(self) -> LabelDocument | None:
        """The document shown (None when no image is open)."""
        return self._document

    @property
    def display_array(self) -> np.ndarray | None:
        """The 8-bit display image, (H, W) or (H, W, 3) uint8, as given."""
        return self._display

    @property
    def current_class(self) -> int:
        """The class index painting tools apply."""
        return self.settings.current_class

    @property
    def tool(self) -> Tool:
        """The active tool."""
        return self.settings.tool

    @property
    def brush_size(self) -> int:
        """Brush and eraser diameter in image pixels."""
        return self.settings.brush_size

    @property
    def wand_tolerance(self) -> int:
        """Magic wand tolerance in display grey levels (0..255)."""
        return self._wand_tolerance

    def rendered_overlay(self, rect: Rect, step: int = 1) -> np.ndarray:
        """What the label layer draws for ``rect`` sampled every ``step`` pixels:
        (h, w, 4) premultiplied RGBA (empty when no image is open)."""
        if self._document is None:
            return np.zeros((0, 0, 4), np.uint8)
        return self._render_labels(*overlay.sample_grid(self._document.shape, rect, step))

    def _render_labels(self, rows: slice, cols: slice) -> np.ndarray:
        assert self._document is not None
        return overlay.render_window(self._document.mask, self._lut, rows, cols)

    def _render_prediction(self, rows: slice, cols: slice) -> np.ndarray:
        assert self._prediction is not None
        classes, confidence = self._prediction
        return overlay.render_proposal_window(
            classes, self._lut, rows, cols, confidence, self._prediction_threshold,
            class_thresholds=self._class_thresholds, num_classes=self._prediction_classes,
            runner_up=self._runner_up)

    # -- document and layers -------------------------------------------------------------

    def set_document(
        self, document: LabelDocument | None, display_image: np.ndarray | None,
        keep_view: bool = False,
    ) -> None:
        """Show ``document`` over ``display_image`` ((H, W) or (H, W, 3) uint8) and fit it;
        with ``keep_view`` (another slice of the same volume) zoom and pan stay.

        ``None, None`` clears the canvas. Any prediction shown is dropped.
        """
        self._handler.cancel()
        if self._document is not None:
            self._document.unsubscribe(self._on_document_changed)
        self._document = None
        self._display = None
        self.set_prediction(None)
        self._overlay_item.set_source(None, None)
        if document is None:
            self._image_item.set_shared(None)
            self.scene().setSceneRect(QRectF())
            return
        if display_image is None or display_image.shape[:2] != document.shape:
            shape = None if display_image is None else display_image.shape
            raise ValueError(f"display image {shape} does not match mask {document.shape}")
        self._document = document
        self.set_display_image(display_image)
        height, width = document.shape
        self._overlay_item.set_source(document.shape, self._render_labels)
        same_size = self.sceneRect() == QRectF(0, 0, width, height)
        self.scene().setSceneRect(QRectF(0, 0, width, height))
        document.subscribe(self._on_document_changed)
        if not (keep_view and same_size):
            self.fit_to_window()

    def set_display_image(self, display_image: np.ndarray) -> None:
        """Replace the displayed image (e.g. after a window/level change); same size."""
        if self._document is None or display_image.shape[:2] != self._document.shape:
            raise ValueError("set_display_image needs an open document of the same size")
        shared = wrap_array(display_image)
        self._display = shared.array
        self._image_item.set_shared(shared)

    def set_class_colours(self, colours: Sequence[tuple[int, int, int]]) -> None:
        """Colours of classes 0, 1, ... as (r, g, b) 0..255; recolours the overlays."""
        self._lut = overlay.colour_lut(colours)
        self._overlay_item.update()
        self._proposal_item.update()

    def set_overlay_opacity(self, opacity: float) -> None:
        """Opacity of the label overlay, 0 (hidden) .. 1 (opaque)."""
        self._overlay_item.setOpacity(float(np.clip(opacity, 0.0, 1.0)))

    def overlay_opacity(self) -> float:
        """Opacity of the label overlay."""
        return self._overlay_item.opacity()

    def set_prediction(
        self, classes: np.ndarray | None, confidence: np.ndarray | None = None,
        num_classes: int | None = None, runner_up: proposal.RunnerUp | None = None,
    ) -> None:
        """Show a prediction ((H, W) uint8 classes, optional (H, W) uint8 confidence) as
        outlines over a faint fill; ``None`` removes it. The class thresholds use
        ``runner_up`` ((second class, its confidence)) or, with two classes
        (``num_classes``), the other class (see core/proposal.py)."""
        self._prediction_classes = num_classes
        self._runner_up = runner_up
        if classes is None:
            self._prediction = None
            self._proposal_item.set_source(None, None)
            return
        if self._document is None or classes.shape != self._document.shape:
            raise ValueError(f"prediction {classes.shape} does not match the open image")
        if confidence is not None and confidence.shape != classes.shape:
            raise ValueError(f"confidence {confidence.shape} does not match {classes.shape}")
        if runner_up is not None and any(a.shape != classes.shape for a in runner_up):
            raise ValueError(f"runner-up does not match {classes.shape}")
        self._prediction = (classes, confidence)
        self._proposal_item.set_source(classes.shape, self._render_prediction)

    def set_prediction_visible(self, visible: bool) -> None:
        """Show or hide the prediction layer (kept in memory while hidden)."""
        self._proposal_item.setVisible(visible)

    def prediction_visible(self) -> bool:
        """Whether the prediction layer is shown."""
        return self._proposal_item.isVisible()

    def set_prediction_threshold(self, threshold: int) -> None:
        """Confidence (0..255) below which predicted pixels are neither shown nor accepted."""
        self._prediction_threshold = int(np.clip(threshold, 0, 255))
        self._proposal_item.update()

    def set_class_threshold(self, class_id: int, threshold: float) -> None:
        """Propose ``class_id`` where it holds at least ``threshold`` of the probability
        of the pixel's two most likely classes (its probability, with two classes; 0.5: the
        model's own choice); what is shown is what Accept takes."""
        threshold = float(np.clip(threshold, 0.01, 0.99))
        if self._class_thresholds.get(class_id, proposal.NEUTRAL) == threshold:
            return
        if threshold == proposal.NEUTRAL:
            self._class_thresholds.pop(class_id, None)
        else:
            self._class_thresholds[class_id] = threshold
        self._proposal_item.update()

    def clear_class_thresholds(self) -> None:
        """Every class back to the model's own choice (class numbers changed)."""
        self._class_thresholds.clear()
        self._proposal_item.update()

    def class_threshold(self, class_id: int) -> float:
        """The probability ``class_id`` is proposed at (0.5 unless set)."""
        return self._class_thresholds.get(class_id, proposal.NEUTRAL)

    def shown_prediction(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The prediction as shown and accepted: the class thresholds applied to the whole
        image (drawing applies them to the pixels on screen only)."""
        assert self._prediction is not None
        classes, confidence = self._prediction
        if confidence is None or not self._class_thresholds:
            return classes, confidence
        return proposal.apply_thresholds(classes, confidence, self._class_thresholds,
                                         self._prediction_classes, self._runner_up)

    def accept_prediction(self) -> Rect:
        """Copy the shown prediction into unlabelled pixels (one undo step)."""
        if self._document is None or self._prediction is None:
            return Rect(0, 0, 0, 0)
        classes, confidence = self.shown_prediction()
        rect = self._document.accept_prediction(classes, confidence, self._prediction_threshold)
        self._finish(rect)
        return rect

    def _on_document_changed(self, rect: Rect) -> None:
        if self._document is None or rect.is_empty:
            return
        self._overlay_item.update(QRectF(rect.x, rect.y, rect.width, rect.height))

    # -- tools ---------------------------------------------------------------------------

    def set_tool(self, tool: Tool | str) -> None:
        """Switch tool; anything half done (a polygon, a box) is abandoned."""
        tool = Tool(tool)
        if tool == self.settings.tool:
            self._switch_handler(tool)  # the same tool again: start it afresh
        else:
            self.settings.tool = tool  # _on_setting switches

    def _switch_handler(self, tool: Tool) -> None:
        self._handler.cancel()
        self._handler = make_handler(tool, self)
        self._outline.setVisible(False)
        cursor = Qt.CursorShape.OpenHandCursor if tool == Tool.PAN else Qt.CursorShape.CrossCursor
        self.viewport().setCursor(cursor)

    def set_current_class(self, class_id: int) -> None:
        """The class painting tools apply (0..254)."""
        self.settings.current_class = class_id

    def set_brush_size(self, size: int) -> None:
        """Brush/eraser diameter in image pixels (clamped to 1..1000)."""
        self.settings.brush_size = size

    def _on_setting(self, setting: Setting, value: object) -> None:
        if setting == Setting.TOOL:
            self._switch_handler(Tool(value))
        elif setting == Setting.BRUSH_SIZE:
            self._outline.set_diameter(int(value))  # type: ignore[call-overload]
            self.brush_size_changed.emit(int(value))  # type: ignore[call-overload]

    def set_wand_tolerance(self, tolerance: int) -> None:
        """Magic wand tolerance in display grey levels (0..255)."""
        self._wand_tolerance = int(np.clip(tolerance, 0, 255))

    def undo(self) -> Rect:
        """Undo the last edit of the document; emits ``edited`` when something changed."""
        if self._document is None:
            return Rect(0, 0, 0, 0)
        self._handler.cancel()
        rect = self._document.undo()
        self._finish(rect)
        return rect

    def redo(self) -> Rect:
        """Redo the last undone edit; emits ``edited`` when something changed."""
        if self._document is None:
            return Rect(0, 0, 0, 0)
        rect = self._document.redo()
        self._finish(rect)
        return rect

    def _finish(self, rect: Rect) -> None:
        if not rect.is_empty:
            self.edited.emit()

    # -- zoom and coordinates ------------------------------------------------------------

    def zoom(self) -> float:
        """Screen pixels per image pixel."""
        return self.transform().m11()

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``zoom`` keeping the image point under ``anchor`` (viewport position,
        default the centre) where it is."""
        if anchor is None:
            anchor = QPointF(self.viewport().rect().center())
        zoom = float(np.clip(zoom, MIN_ZOOM, MAX_ZOOM))
        scene_point = self.viewport_to_scene(anchor)
        self._fit_mode = False
        self.setTransform(QTransform.fromScale(zoom, zoom))
        moved = self.viewportTransform().map(scene_point) - anchor
        horizontal, vertical = self.horizontalScrollBar(), self.verticalScrollBar()
        horizontal.setValue(horizontal.value() + round(moved.x()))
        vertical.setValue(vertical.value() + round(moved.y()))
        self.zoom_changed.emit(zoom)

    def fit_to_window(self) -> None:
        """Zoom so the whole image fits the viewport (and keep fitting on resize)."""
        rect = self.sceneRect()
        if rect.isEmpty():
            return
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        self._fit_mode = True
        self.zoom_changed.emit(self.zoom())

    def zoom_100(self) -> None:
        """One screen pixel per image pixel, about the viewport centre."""
        self.set_zoom(1.0)

    def viewport_to_scene(self, position: QPointF) -> QPointF:
        """The scene (image) point under a viewport position."""
        inverse, _ = self.viewportTransform().inverted()
        return inverse.map(QPointF(position))

    def viewport_to_image(self, position: QPointF) -> tuple[int, int] | None:
        """The image pixel ``(x, y)`` under a viewport position, None outside the image."""
        point = self.viewport_to_scene(position)
        x, y = math.floor(point.x()), math.floor(point.y())
        if self._document is None:
            return None
        height, width = self._document.shape
        return (x, y) if 0 <= x < width and 0 <= y < height else None

    def image_to_viewport(self, x: float, y: float) -> QPoint:
        """The viewport position over the centre of image pixel ``(x, y)``."""
        point = self.viewportTransform().map(QPointF(x + 0.5, y + 0.5))
        return QPoint(math.floor(point.x()), math.floor(point.y()))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit_to_window()

    # -- input ---------------------------------------------------------------------------

    def _wants_pan(self, event: QMouseEvent) -> bool:
        if event.button() == Qt.MouseButton.MiddleButton:
            return True
        return event.button() == Qt.MouseButton.LeftButton and (
            self._space_down or self.tool == Tool.PAN
        )

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if self._wants_pan(event):
            self._pan_from = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
        elif event.button() == Qt.MouseButton.RightButton and self._document is not None:
            self._window_from = event.position()
        elif event.button() == Qt.MouseButton.LeftButton and self._document is not None:
            self.press_modifiers = event.modifiers()
            self._finish(self._handler.press(self.viewport_to_scene(event.position())))
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        position = event.position()
        if self._pan_from is not None:
            delta = position - self._pan_from
            self._pan_from = position
            horizontal, vertical = self.horizontalScrollBar(), self.verticalScrollBar()
            horizontal.setValue(horizontal.value() - round(delta.x()))
            vertical.setValue(vertical.value() - round(delta.y()))
            event.accept()
            return
        if self._window_from is not None:
            delta = position - self._window_from
            self.window_dragged.emit(delta.x(), delta.y())
            event.accept()
            return
        point = self.viewport_to_scene(position)
        self._track_cursor(point)
        if self._document is not None:
            left_down = bool(event.buttons() & Qt.MouseButton.LeftButton)
            self._finish(self._handler.move(point, left_down))
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.RightButton and self._window_from is not None:
            self._window_from = None
            self.window_drag_finished.emit()
            event.accept()
            return
        if self._pan_from is not None and event.button() in (
            Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton
        ):
            self._pan_from = None
            pan_tool = self.tool == Tool.PAN or self._space_down
            self.viewport().setCursor(
                Qt.CursorShape.OpenHandCursor if pan_tool else Qt.CursorShape.CrossCursor
            )
        elif event.button() == Qt.MouseButton.LeftButton and self._document is not None:
            self._finish(self._handler.release(self.viewport_to_scene(event.position())))
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._document is not None:
            self._finish(self._handler.double_click(self.viewport_to_scene(event.position())))
        event.accept()

    def wheelEvent(self, event: QWheelEvent) -> None:
        notches = event.angleDelta().y() / 120.0
        if notches == 0:
            event.ignore()
            return
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            factor = 1.15**notches
            size = round(self.brush_size * factor)
            if size == self.brush_size:
                size += 1 if notches > 0 else -1
            self.set_brush_size(size)
        else:
            self.set_zoom(self.zoom() * WHEEL_ZOOM_STEP**notches, event.position())
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space:
            if not event.isAutoRepeat():
                self._space_down = True
                self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
            event.accept()
            return
        if self._document is not None:
            rect = self._handler.key(event.key())
            if rect is not None:
                self._finish(rect)
                event.accept()
                return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            if self.tool != Tool.PAN:
                self.viewport().setCursor(Qt.CursorShape.CrossCursor)
            event.accept()
            return
        super().keyReleaseEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        self._outline.setVisible(False)
        if self._last_pixel != (-1, -1):
            self._last_pixel = (-1, -1)
            self.cursor_moved.emit(-1, -1)
        super().leaveEvent(event)

    def _track_cursor(self, point: QPointF) -> None:
        """Move the brush outline and report the pixel under the mouse."""
        x, y = math.floor(point.x()), math.floor(point.y())
        inside = False
        if self._document is not None:
            height, width = self._document.shape
            inside = 0 <= x < width and 0 <= y < height
        pixel = (x, y) if inside else (-1, -1)
        if pixel != self._last_pixel:
            self._last_pixel = pixel
            self.cursor_moved.emit(*pixel)
        show = inside and self.tool in (Tool.BRUSH, Tool.ERASER)
        if show:
            self._outline.setPos(x + 0.5, y + 0.5)
        if show != self._outline.isVisible():
            self._outline.setVisible(show)
