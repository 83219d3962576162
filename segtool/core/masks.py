"""Label masks on disk: 8-bit single-channel PNG, value = class index, 255 = unlabelled.

Masks are written as palette PNGs (palette entry i = colour of class i, 255 = black), so
any image viewer shows them in the class colours while the stored values stay class
indices. Plain 8-bit grayscale PNGs holding the same indices are read too.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from segtool.core.atomic import atomic_write_bytes
from segtool.core.errors import SegtoolError
from segtool.core.files import open_regular
from segtool.core.images import DEFAULT_MAX_PIXELS

UNLABELLED: int = 255
MAX_CLASSES: int = 255  # class indices 0..254; 255 means unlabelled

# zlib level 3: masks compress well anyway, and autosave should not stall the brush.
_PNG_COMPRESS_LEVEL = 3


def read_mask(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a mask PNG into ``(H, W)`` uint8 class indices (255 = unlabelled).

    Accepts palette PNGs (the stored indices are returned, not the colours) and 8-bit
    grayscale PNGs. Anything else (RGB, 16-bit, broken) raises SegtoolError naming the file.
    """
    file = Path(path)
    try:
        with open_regular(file) as handle, Image.open(handle) as image:
            if image.format != "PNG":
                raise SegtoolError(f"mask must be a PNG file, found {image.format}", file)
            if image.mode not in ("P", "L"):
                raise SegtoolError(
                    f"mask must be an 8-bit single-channel PNG (palette or grayscale), "
                    f"found mode {image.mode}",
                    file,
                )
            width, height = image.size
            if width * height > max_pixels:
                raise SegtoolError(
                    f"mask is {width}x{height} pixels, above the limit of {max_pixels:,}", file
                )
            mask = np.array(image, dtype=np.uint8)
    except FileNotFoundError as error:
        raise SegtoolError("mask file not found", file) from error
    except UnidentifiedImageError as error:
        raise SegtoolError("mask file is not a PNG image (content not recognised)", file) from error
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise SegtoolError(f"cannot read mask, the file is damaged ({error})", file) from error
    return mask


def encode_mask(mask: np.ndarray, colours: Sequence[tuple[int, int, int]]) -> bytes:
    """Encode ``(H, W)`` uint8 class indices as palette PNG bytes (class i drawn in colours[i])."""
    _check_mask_array(mask)
    if len(colours) > MAX_CLASSES:
        raise ValueError(f"at most {MAX_CLASSES} classes fit a mask, got {len(colours)}")
    palette = np.zeros((256, 3), dtype=np.uint8)  # unused entries and 255 stay black
    if len(colours):
        palette[: len(colours)] = np.asarray(colours, dtype=np.int64).clip(0, 255)
    height, width = mask.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(mask).tobytes())
    image.putpalette(palette.tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def write_mask(
    path: str | os.PathLike[str], mask: np.ndarray, colours: Sequence[tuple[int, int, int]]
) -> None:
    """Write ``(H, W)`` uint8 class indices atomically as a palette PNG.

    Palette entry i is ``colours[i]``; 255 (unlabelled) and unused entries are black.
    An interrupted write leaves the previous file as it was.
    """
    atomic_write_bytes(path, encode_mask(mask, colours))


def write_index_png(path: str | os.PathLike[str], mask: np.ndarray) -> None:
    """Write ``(H, W)`` uint8 class indices atomically as a plain grayscale PNG.

    For files other programs read as numbers (exports, predictions): OpenCV and most
    readers turn a palette PNG into colours, a grayscale one stays class indices.
    """
    _check_mask_array(mask)
    atomic_write_bytes(path, encode_png(mask))


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of an (H, W) or (H, W, 3) BGR uint8 array (OpenCV's encoder)."""
    ok, buffer = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError(f"PNG encoding failed for an array of shape {array.shape}")
    return buffer.tobytes()


def check_mask(
    mask: np.ndarray,
    image_shape_hw: tuple[int, int],
    num_classes: int,
    path: str | os.PathLike[str] | None = None,
) -> None:
    """Raise SegtoolError if ``mask`` does not fit its image or holds an unknown class index.

    ``mask`` must be ``(H, W)`` equal to ``image_shape_hw`` and hold only values below
    ``num_classes`` or 255.
    """
    _check_mask_array(mask)
    if tuple(mask.shape) != tuple(image_shape_hw[:2]):
        found = "x".join(str(n) for n in mask.shape[::-1])
        raise SegtoolError(
            f"mask is {found} pixels but its image is {image_shape_hw[1]}x{image_shape_hw[0]}",
            path,
        )
    values = np.flatnonzero(np.bincount(mask.ravel(), minlength=256))
    unknown = [int(v) for v in values if v >= num_classes and v != UNLABELLED]
    if unknown:
        shown = ", ".join(str(v) for v in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise SegtoolError(
            f"mask holds class index {shown}, but the project has {num_classes} classes "
            f"(0..{num_classes - 1}, 255 = unlabelled)",
            path,
        )


def _check_mask_array(mask: np.ndarray) -> None:
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"a mask is (H, W) uint8, got {mask.shape} {mask.dtype}")
