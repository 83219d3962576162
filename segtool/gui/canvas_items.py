"""Scene items of the canvas: image layers drawn from shared numpy memory, the brush outline."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QStyleOptionGraphicsItem,
    QWidget,
)

from segtool.core.overlay import sample_grid
from segtool.core.rect import Rect
from segtool.gui.qimage import SharedImage

# Renders ``rows`` x ``cols`` (slices with a step) of a layer's source as (h, w, 4) uint8
# premultiplied RGBA.
LayerRenderer = Callable[[slice, slice], np.ndarray]


def cosmetic_pen(colour: QColor, width: float = 1.5, style: Qt.PenStyle = Qt.SolidLine) -> QPen:
    """A pen whose width is in screen pixels whatever the zoom."""
    pen = QPen(colour, width, style)
    pen.setCosmetic(True)
    return pen


class ArrayImageItem(QGraphicsItem):
    """An image layer at scene (0, 0), one scene unit per pixel, drawn from a SharedImage.

    ``paint`` draws only the exposed part (``option.exposedRect``), so repainting a small
    rectangle costs the same on any image size. Pixels are drawn without smoothing.
    """

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._shared: SharedImage | None = None
        self._bounds = QRectF()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    @property
    def shared(self) -> SharedImage | None:
        """The array and the QImage over it currently shown (None when empty)."""
        return self._shared

    def set_shared(self, shared: SharedImage | None) -> None:
        """Show ``shared`` (the item keeps the array alive); None shows nothing."""
        self.prepareGeometryChange()
        self._shared = shared
        if shared is None:
            self._bounds = QRectF()
        else:
            self._bounds = QRectF(0, 0, shared.image.width(), shared.image.height())
        self.update()

    def boundingRect(self) -> QRectF:
        return self._bounds

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionGraphicsItem,
        widget: QWidget | None = None,
    ) -> None:
        if self._shared is None:
            return
        image = self._shared.image
        exposed = option.exposedRect.toAlignedRect().intersected(image.rect())
        if exposed.isEmpty():
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        painter.drawImage(exposed, image, exposed)


class RenderedLayerItem(QGraphicsItem):
    """A layer at scene (0, 0), one scene unit per pixel, coloured at paint time.

    Nothing image-sized is kept: ``paint`` asks its renderer for the exposed part only,
    sampled every ``step`` pixels where the view shows more than one image pixel per screen
    pixel (zoomed out), so drawing costs O(screen pixels) and memory stays O(screen) on any
    image size (a 16384² mask would need a 1 GiB RGBA buffer). Samples lie on the image-wide
    grid of multiples of ``step``, so a partial repaint matches a full one.
    """

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._render: LayerRenderer | None = None
        self._shape = (0, 0)
        self.last_step = 0  # the sampling step of the last paint (1 = every pixel)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def set_source(self, shape: tuple[int, int] | None, render: LayerRenderer | None) -> None:
        """Draw an (H, W) = ``shape`` layer with ``render``; None shows nothing."""
        self.prepareGeometryChange()
        if shape is None or render is None:
            self._render, self._shape = None, (0, 0)
        else:
            self._render, self._shape = render, (int(shape[0]), int(shape[1]))
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self._shape[1], self._shape[0])

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionGraphicsItem,
        widget: QWidget | None = None,
    ) -> None:
        if self._render is None:
            return
        exposed = option.exposedRect.intersected(self.boundingRect())
        if exposed.isEmpty():
            return
        detail = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        step = max(1, int(1.0 / detail)) if detail > 0 else 1
        left, top = math.floor(exposed.left()), math.floor(exposed.top())
        rect = Rect(left, top, math.ceil(exposed.right()) - left,
                    math.ceil(exposed.bottom()) - top)
        rows, cols = sample_grid(self._shape, rect, step)
        rgba = self._render(rows, cols)
        height, width = rgba.shape[:2]
        if not height or not width:
            return
        self.last_step = step
        image = QImage(rgba.data, width, height, width * 4,
                       QImage.Format.Format_RGBA8888_Premultiplied)
        # The last sample of a row or column may reach past the image's edge: draw only the
        # part of it inside.
        target = QRectF(cols.start, rows.start, min(width * step, self._shape[1] - cols.start),
                        min(height * step, self._shape[0] - rows.start))
        source = QRectF(0, 0, target.width() / step, target.height() / step)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        painter.drawImage(target, image, source)


class BrushOutline(QGraphicsEllipseItem):
    """The round outline following the mouse, sized like the brush (in image pixels)."""

    def __init__(self) -> None:
        super().__init__()
        self.setPen(cosmetic_pen(QColor(255, 255, 255, 220), 1.0))
        self.setZValue(100)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        self.set_diameter(1)

    def set_diameter(self, diameter: float) -> None:
        """Outline a disc of ``diameter`` pixels centred on the item's position."""
        half = diameter / 2.0
        self.setRect(QRectF(-half, -half, diameter, diameter))
