"""Class maps to RGBA overlays (numpy only).

Overlays are (H, W, 4) uint8 arrays in R, G, B, A byte order with *premultiplied* alpha
(Qt's ``Format_RGBA8888_Premultiplied`` reads them without conversion). A lookup table
(LUT) is a (256, 4) uint8 array: row ``i`` is the colour of class ``i``; row 255
(unlabelled) and rows without a class are fully transparent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from segtool.core import proposal
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


def _check_lut(lut: np.ndarray) -> None:
    if lut.shape != (256, 4) or lut.dtype != np.uint8:
        raise ValueError(f"expected a (256, 4) uint8 LUT, got {lut.dtype} {lut.shape}")


def _check_overlay(mask: np.ndarray, lut: np.ndarray, out_rgba: np.ndarray) -> None:
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"expected an (H, W) uint8 class map, got {mask.dtype} {mask.shape}")
    _check_lut(lut)
    if out_rgba.shape != (*mask.shape, 4) or out_rgba.dtype != np.uint8:
        raise ValueError(f"overlay {out_rgba.dtype} {out_rgba.shape} does not match "
                         f"mask {mask.shape}")


def sample_grid(shape: tuple[int, int], rect: Rect, step: int) -> tuple[slice, slice]:
    """Row and column slices that sample ``rect`` of an ``shape`` (H, W) map every ``step``
    pixels, on the grid of multiples of ``step`` (so that repainting part of a view samples
    the same pixels as repainting all of it)."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    rect = rect.clip(shape[1], shape[0])
    if rect.is_empty:
        return slice(0, 0, step), slice(0, 0, step)
    return (slice(rect.y // step * step, rect.bottom, step),
            slice(rect.x // step * step, rect.right, step))


def render_window(mask: np.ndarray, lut: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """``mask[rows, cols]`` (slices may have a step) coloured through ``lut``: a new
    C-contiguous (h, w, 4) uint8 premultiplied RGBA array.

    What the canvas draws, at paint time, for the part of the view being repainted and at
    screen resolution: no full-size RGBA copy of the mask is ever kept.
    """
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"expected an (H, W) uint8 class map, got {mask.dtype} {mask.shape}")
    _check_lut(lut)
    lut_words = np.ascontiguousarray(lut).view(np.uint32)[:, 0]
    words = np.take(lut_words, mask[rows, cols])
    return words.view(np.uint8).reshape(*words.shape, 4)


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


def _with_halo(indices: slice, length: int) -> tuple[slice, int, int]:
    """``indices`` (start, stop, step) widened by one sample on each side where the map has
    one; also the number of samples and the offset of the first wanted one."""
    step = indices.step or 1
    count = len(range(indices.start, min(indices.stop, length), step))
    before = 1 if indices.start - step >= 0 else 0
    after = 1 if indices.start + count * step < length else 0
    start = indices.start - before * step
    return slice(start, start + (count + before + after - 1) * step + 1, step), count, before


def render_proposal_window(
    classes: np.ndarray,
    lut: np.ndarray,
    rows: slice,
    cols: slice,
    confidence: np.ndarray | None = None,
    threshold: int = 0,
    fill_alpha: int = 48,
    class_thresholds: Mapping[int, float] | None = None,
    num_classes: int | None = None,
    runner_up: proposal.RunnerUp | None = None,
) -> np.ndarray:
    """:func:`render_proposal` of ``classes[rows, cols]`` (slices may have a step): a new
    (h, w, 4) uint8 array. Outlines are found on the sampled map, with one sample of context
    around the window, so a repainted part matches the whole view drawn at once.

    ``class_thresholds`` (class -> threshold, with ``num_classes`` and ``runner_up``; see
    :func:`segtool.core.proposal.apply_thresholds`) are applied to the sampled pixels only,
    so moving the slider costs what the screen shows, not the whole image."""
    if confidence is not None and confidence.shape != classes.shape:
        raise ValueError(f"confidence {confidence.shape} does not match {classes.shape}")
    wide_rows, height, top = _with_halo(rows, classes.shape[0])
    wide_cols, width, left = _with_halo(cols, classes.shape[1])
    sampled = classes[wide_rows, wide_cols]
    sampled_confidence = None if confidence is None else confidence[wide_rows, wide_cols]
    if class_thresholds and sampled_confidence is not None:
        sampled_runner_up = None if runner_up is None else (
            runner_up[0][wide_rows, wide_cols], runner_up[1][wide_rows, wide_cols])
        sampled, sampled_confidence = proposal.apply_thresholds(
            sampled, sampled_confidence, class_thresholds, num_classes, sampled_runner_up)
    out = np.empty((*sampled.shape, 4), np.uint8)
    render_proposal(sampled, lut, out, sampled_confidence, threshold, fill_alpha)
    return np.ascontiguousarray(out[top : top + height, left : left + width])
