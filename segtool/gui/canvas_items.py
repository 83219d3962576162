"""Scene items of the canvas: image layers drawn from shared numpy memory, the brush outline."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QStyleOptionGraphicsItem,
    QWidget,
)

from segtool.gui.qimage import SharedImage


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
