"""numpy arrays <-> QImage, with no widgets involved.

:func:`wrap_array` makes a QImage that *shares* the array's memory (no copy): writes to the
array show up in the image. The QImage does not own that memory, so whoever holds the
QImage must also hold the array (:class:`SharedImage` keeps the pair together).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtGui import QImage


@dataclass(frozen=True)
class SharedImage:
    """A QImage over ``array``'s memory; keep this object alive while the image is drawn."""

    array: np.ndarray
    image: QImage


def _format_for(array: np.ndarray) -> QImage.Format:
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {array.dtype}")
    if array.ndim == 2:
        return QImage.Format.Format_Grayscale8
    if array.ndim == 3 and array.shape[2] == 3:
        return QImage.Format.Format_RGB888
    if array.ndim == 3 and array.shape[2] == 4:
        # Overlays from segtool.core.overlay: R, G, B, A bytes, premultiplied alpha.
        return QImage.Format.Format_RGBA8888_Premultiplied
    raise ValueError(f"expected (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")


def wrap_array(array: np.ndarray) -> SharedImage:
    """A QImage sharing the memory of ``array`` (no copy).

    ``array``: C-contiguous uint8 (H, W) grey, (H, W, 3) RGB or (H, W, 4) premultiplied
    RGBA. A non-contiguous array is copied once first (the copy is what gets shared).
    """
    fmt = _format_for(array)
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    bytes_per_line = array.strides[0]
    image = QImage(array.data, width, height, bytes_per_line, fmt)
    return SharedImage(array, image)


def array_from_qimage(image: QImage) -> np.ndarray:
    """A copy of ``image`` as (H, W, 4) uint8 R, G, B, A (not premultiplied)."""
    rgba = image.convertToFormat(QImage.Format.Format_RGBA8888)
    width, height = rgba.width(), rgba.height()
    buffer = np.frombuffer(rgba.constBits(), dtype=np.uint8, count=rgba.sizeInBytes())
    rows = buffer.reshape(height, rgba.bytesPerLine())
    return rows[:, : width * 4].reshape(height, width, 4).copy()
