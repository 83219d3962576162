"""Class maps to RGBA overlays (numpy only).

Overlays are (H, W, 4) uint8 arrays in R, G, B, A byte order with *premultiplied* alpha
(Qt's ``Format_RGBA8888_Premultiplied`` reads them without conversion). A lookup table
(LUT) is a (256, 4) uint8 array: row ``i`` is the colour of class ``i``; row 255
(unlabelled) and rows without a class are fully transparent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segtool.core.masks import UNLABELLED
from segtool.core.rect import Rect

# Rows processed at once, to bound temporary memory on large images.
_STRIP_ROWS = 256


def colour_lut(colours: Sequence[Sequence[int]], alpha: int = 255) -> np.ndarray:
    """A (256, 4) uint8 premultiplied RGBA LUT: class ``i`` gets ``colours[i]`` at ``alpha``.

    ``colours`` are (r, g, b) 0..255; at most 255 classes (index 255 is unlabelled).
    """
    if len(colours) > UNLABELLED:
        raise ValueError(f"at most {UNLABELLED} classes, got {len(colours)}")
    if not 0 <= alpha <= 255:
        raise ValueError(f"alpha must be 0..255, got {alpha}")
    lut = np.zeros((256, 4), dtype=np.uint8)
    if len(colours):
        rgb = np.asarray(colours, dtype=np.uint16).reshape(-1, 3)
        lut[: len(rgb), :3] = ((rgb * alpha + 127) // 255).astype(np.uint8)
        lut[: len(rgb), 3] = alpha
    return lut


def _check_overlay(mask: np.ndarray, lut: np.ndarray, out_rgba: np.ndarray) -> None:
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"expected an (H, W) uint8 class map, got {mask.dtype} {mask.shape}")
    if lut.shape != (256, 4) or lut.dtype != np.uint8:
        raise ValueError(f"expected a (256, 4) uint8 LUT, got {lut.dtype} {lut.shape}")
    if out_rgba.shape != (*mask.shape, 4) or out_rgba.dtype != np.uint8:
        raise ValueError(f"overlay {out_rgba.dtype} {out_rgba.shape} does not match "
                         f"mask {mask.shape}")


def _as_words(out_rgba: np.ndarray) -> np.ndarray | None:
    """The (H, W) uint32 view of a C-contiguous (H, W, 4) uint8 buffer, else None."""
    if not out_rgba.flags.c_contiguous:
        return None
    return out_rgba.view(np.uint32)[..., 0]


def render_region(
    mask: np.ndarray, lut: np.ndarray, rect: Rect, out_rgba: np.ndarray
) -> None:
    """Colour ``mask`` (H, W) uint8 through ``lut`` into ``out_rgba`` (H, W, 4), inside ``rect``.

    Pixels outside ``rect`` are left untouched; cost is proportional to ``rect``'s area.
    """
    _check_overlay(mask, lut, out_rgba)
    rect = rect.clip(mask.shape[1], mask.shape[0])
    if rect.is_empty:
        return
    words = _as_words(out_rgba)
    lut_words = np.ascontiguousarray(lut).view(np.uint32)[:, 0]
    # Strips of rows bound the temporary index array numpy makes for the lookup.
    for top in range(rect.y, rect.bottom, _STRIP_ROWS):
        rows = slice(top, min(rect.bottom, top + _STRIP_ROWS))
        cols = slice(rect.x, rect.right)
        if words is not None:
            np.take(lut_words, mask[rows, cols], out=words[rows, cols], mode="clip")
        else:
            out_rgba[rows, cols] = lut[mask[rows, cols]]


def render_all(mask: np.ndarray, lut: np.ndarray, out_rgba: np.ndarray) -> None:
    """Colour the whole of ``mask`` into ``out_rgba`` (see :func:`render_region`)."""
    render_region(mask, lut, Rect(0, 0, mask.shape[1], mask.shape[0]), out_rgba)


def class_edges(classes: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour of another class (the image border is not one)."""
    edges = np.zeros(classes.shape, dtype=bool)
    vertical = classes[1:, :] != classes[:-1, :]
    edges[1:, :] |= vertical
    edges[:-1, :] |= vertical
    horizontal = classes[:, 1:] != classes[:, :-1]
    edges[:, 1:] |= horizontal
    edges[:, :-1] |= horizontal
    return edges


def render_proposal(
    classes: np.ndarray,
    lut: np.ndarray,
    out_rgba: np.ndarray,
    confidence: np.ndarray | None = None,
    threshold: int = 0,
    fill_alpha: int = 48,
) -> None:
    """Draw a predicted class map as outlines in class colours over a faint fill.

    ``classes`` (H, W) uint8 class indices (255 = no prediction); ``confidence`` optional
    (H, W) uint8 0..255: pixels below ``threshold`` are left transparent. Outline pixels
    (those bordering another class) get the LUT colour at full alpha, the other pixels the
    same colour at ``fill_alpha`` (premultiplied). Works in strips of rows.
    """
    _check_overlay(classes, lut, out_rgba)
    if confidence is not None and confidence.shape != classes.shape:
        raise ValueError(f"confidence {confidence.shape} does not match {classes.shape}")
    opaque = lut.astype(np.uint16)
    faint = ((opaque * fill_alpha + 127) // 255).astype(np.uint8)
    faint[opaque[:, 3] == 0] = 0
    height = classes.shape[0]
    for top in range(0, height, _STRIP_ROWS):
        bottom = min(height, top + _STRIP_ROWS)
        halo_top, halo_bottom = max(0, top - 1), min(height, bottom + 1)
        edges = class_edges(classes[halo_top:halo_bottom])[top - halo_top : bottom - halo_top]
        strip = classes[top:bottom]
        colours = np.where(edges[..., None], lut[strip], faint[strip])
        if confidence is not None and threshold > 0:
            colours[confidence[top:bottom] < threshold] = 0
        out_rgba[top:bottom] = colours
