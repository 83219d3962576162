"""Pure numpy/OpenCV rasterisation for the labelling tools.

Every function computes *which* pixels a tool would label and returns a :class:`Region`
(a rectangle and a boolean array over it); none of them writes into a mask. The label
document (``segtool.core.labels``) applies regions, records undo and notifies views.

Coordinates are image pixel indices: ``x`` is the column, ``y`` the row, pixel ``(x, y)``
has its centre at ``(x, y)`` for the brush geometry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from segtool.core.rect import EMPTY_RECT, Rect

Point = tuple[float, float]

# A brush segment longer than this (in units of the radius, at least _MIN_PIECE pixels) is
# cut into pieces so the work stays proportional to the stroke's area, not its bounding box.
_PIECE_RADII = 4.0
_MIN_PIECE = 64.0

# GrabCut works on a crop of at most this many pixels (bigger crops are downscaled first).
GRABCUT_MAX_PIXELS = 1_000_000
DEFAULT_WAND_TOLERANCE = 16  # the toolbar's tolerance until the user changes it


@dataclass(frozen=True)
class Region:
    """Pixels a tool selects: ``inside`` is a (rect.height, rect.width) bool array."""

    rect: Rect
    inside: np.ndarray

    @classmethod
    def empty(cls) -> Region:
        """A region selecting nothing."""
        return cls(EMPTY_RECT, np.zeros((0, 0), dtype=bool))

    @property
    def is_empty(self) -> bool:
        """True when no pixel is selected."""
        return self.rect.is_empty or not self.inside.any()


def _check_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2 or shape[0] <= 0 or shape[1] <= 0:
        raise ValueError(f"expected a non-empty (H, W) shape, got {shape}")
    return int(shape[0]), int(shape[1])


def capsule_region(start: Point, end: Point, radius: float, shape: tuple[int, ...]) -> Region:
    """Pixels whose centre lies within ``radius`` of the segment ``start``-``end``.

    A disc of ``radius`` swept along the segment (a single disc when both ends are equal),
    clipped to an image of ``shape`` (H, W). Work is proportional to the segment's
    bounding box; see :func:`stroke_regions` for long segments.
    """
    height, width = _check_shape(shape)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    (x0, y0), (x1, y1) = start, end
    rect = Rect.from_bounds(
        math.ceil(min(x0, x1) - radius - 1e-6),
        math.ceil(min(y0, y1) - radius - 1e-6),
        math.floor(max(x0, x1) + radius + 1e-6) + 1,
        math.floor(max(y0, y1) + radius + 1e-6) + 1,
    ).clip(width, height)
    if rect.is_empty:
        return Region.empty()
    # Coordinates relative to the segment start keep float32 exact on large images.
    xs = (np.arange(rect.x, rect.right, dtype=np.float64) - x0).astype(np.float32)[None, :]
    ys = (np.arange(rect.y, rect.bottom, dtype=np.float64) - y0).astype(np.float32)[:, None]
    dx, dy = np.float32(x1 - x0), np.float32(y1 - y0)
    length2 = float(dx * dx + dy * dy)
    if length2 == 0.0:
        distance2 = xs * xs + ys * ys
    else:
        t = np.clip((xs * dx + ys * dy) / np.float32(length2), 0.0, 1.0)
        distance2 = (xs - t * dx) ** 2 + (ys - t * dy) ** 2
    inside = distance2 <= np.float32(radius * radius + 1e-4)
    return Region(rect, inside)


def stroke_regions(
    start: Point, end: Point, radius: float, shape: tuple[int, ...]
) -> list[Region]:
    """The brush segment ``start``-``end`` as regions, cut so each stays near the stroke.

    Consecutive mouse positions are joined, so a fast stroke leaves no gap. The union of
    the returned regions equals :func:`capsule_region` of the whole segment.
    """
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0)
    piece = max(_PIECE_RADII * radius, _MIN_PIECE)
    count = max(1, math.ceil(length / piece))
    regions = []
    for index in range(count):
        a, b = index / count, (index + 1) / count
        piece_start = (x0 + a * (x1 - x0), y0 + a * (y1 - y0))
        piece_end = (x0 + b * (x1 - x0), y0 + b * (y1 - y0))
        region = capsule_region(piece_start, piece_end, radius, shape)
        if not region.rect.is_empty:
            regions.append(region)
    return regions


def _flood_mask_region(ff_mask: np.ndarray, rect_xywh: Sequence[int]) -> Region:
    x, y, w, h = (int(v) for v in rect_xywh)
    rect = Rect(x, y, w, h)
    if rect.is_empty:
        return Region.empty()
    inside = ff_mask[y + 1 : y + 1 + h, x + 1 : x + 1 + w] != 0
    return Region(rect, inside)


def flood_fill_region(mask: np.ndarray, x: int, y: int) -> Region:
    """The 4-connected region of pixels holding the same label as ``mask[y, x]``.

    ``mask`` is (H, W) uint8 (not modified). Outside the image: empty region.
    """
    height, width = _check_shape(mask.shape)
    if not (0 <= x < width and 0 <= y < height):
        return Region.empty()
    source = np.ascontiguousarray(mask)
    ff_mask = np.zeros((height + 2, width + 2), dtype=np.uint8)
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    _, _, _, rect = cv2.floodFill(source, ff_mask, (int(x), int(y)), 0, 0, 0, flags)
    return _flood_mask_region(ff_mask, rect)


def same_label_region(mask: np.ndarray, x: int, y: int) -> Region:
    """Every pixel of the image holding the same label as ``mask[y, x]``, connected or not
    (a fill with napari's "contiguous" off; GIMP's fill of similar colours). Outside the
    image: empty region."""
    height, width = _check_shape(mask.shape)
    if not (0 <= x < width and 0 <= y < height):
        return Region.empty()
    same = mask == mask[y, x]
    columns, rows = np.flatnonzero(same.any(axis=0)), np.flatnonzero(same.any(axis=1))
    rect = Rect.from_bounds(int(columns[0]), int(rows[0]), int(columns[-1]) + 1,
                            int(rows[-1]) + 1)
    return Region(rect, same[rect.slices])


def magic_wand_region(image: np.ndarray, x: int, y: int, tolerance: int) -> Region:
    """Pixels connected to ``(x, y)`` whose value is within ``tolerance`` of the seed's,
    with the holes inside an object filled.

    ``image`` is the 8-bit display image, (H, W) or (H, W, 3) uint8; on colour images each
    channel must be within ``tolerance`` (0..255). The reference is the median of the seed's
    3 x 3 neighbourhood (one noisy seed pixel does not decide the region), a pixel whose
    3 x 3 average is within tolerance counts as similar too (texture does not split it), and
    enclosed
    holes (a nucleus's darker chromatin, speckle, the centre inside a ring of similar
    brightness) are part of the region, so a click on a textured object labels all of it
    rather than a ring. A region reaching the image border is the background around
    objects: its holes are those objects and stay out. 4-connected.
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 (H, W) or (H, W, 3) image, got {image.dtype} "
                         f"{image.shape}")
    height, width = _check_shape(image.shape)
    if not (0 <= x < width and 0 <= y < height):
        return Region.empty()
    tolerance = int(np.clip(tolerance, 0, 255))
    neighbourhood = image[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    reference = np.median(neighbourhood.reshape(-1, channels), axis=0)
    low = np.clip(reference - tolerance, 0, 255)
    high = np.clip(reference + tolerance, 0, 255)
    source = np.ascontiguousarray(image)
    # Similar as it is, or once averaged with its 3 x 3 neighbours: texture (chromatin,
    # noise) a pixel or two across does not cut the region into pieces.
    within = cv2.inRange(source, low, high) | cv2.inRange(cv2.blur(source, (3, 3)), low, high)
    if within[y, x] == 0:  # the seed itself is an outlier: it still belongs to its region
        within[y, x] = 255
    ff_mask = np.zeros((height + 2, width + 2), dtype=np.uint8)
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    _, _, _, rect = cv2.floodFill(within, ff_mask, (int(x), int(y)), 0, 0, 0, flags)
    region = _flood_mask_region(ff_mask, rect)
    box = region.rect
    if box.x == 0 or box.y == 0 or box.right == width or box.bottom == height:
        return region  # reaches the border: the background around objects, its holes are them
    return Region(box, fill_holes(region.inside))


def fill_holes(inside: np.ndarray) -> np.ndarray:
    """``inside`` ((H, W) bool) with every hole filled: pixels not reachable from the
    border through unselected pixels (4-connected) become selected."""
    height, width = inside.shape
    if height < 3 or width < 3:
        return inside
    outside = np.zeros((height + 2, width + 2), dtype=np.uint8)
    outside[1:-1, 1:-1] = inside  # a free frame around: the outside is one component
    ff_mask = np.zeros((height + 4, width + 4), dtype=np.uint8)
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    cv2.floodFill(outside, ff_mask, (0, 0), 0, 0, 0, flags)
    reached = ff_mask[2:-2, 2:-2] != 0
    return ~reached


def polygon_region(points: Sequence[Point], shape: tuple[int, ...]) -> Region:
    """Pixels inside the polygon through ``points`` (pixel indices), outline included.

    Vertices are rounded to whole pixels, so the pixels clicked belong to the region
    (OpenCV ``fillPoly`` semantics). Fewer than three points: empty region.
    """
    height, width = _check_shape(shape)
    if len(points) < 3:
        return Region.empty()
    vertices = np.round(np.asarray(points, dtype=np.float64)).astype(np.int64)
    rect = Rect.from_bounds(
        int(vertices[:, 0].min()),
        int(vertices[:, 1].min()),
        int(vertices[:, 0].max()) + 1,
        int(vertices[:, 1].max()) + 1,
    ).clip(width, height)
    if rect.is_empty:
        return Region.empty()
    local = (vertices - np.array([rect.x, rect.y])).astype(np.int32)
    canvas = np.zeros((rect.height, rect.width), dtype=np.uint8)
    cv2.fillPoly(canvas, [local.reshape(-1, 1, 2)], 1, cv2.LINE_8)
    return Region(rect, canvas != 0)


def _as_rgb8(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 display image, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    raise ValueError(f"expected (H, W) or (H, W, 3), got {image.shape}")


def grabcut_crop(box: Rect, width: int, height: int, margin: float = 0.25) -> Rect:
    """The part of a ``width`` x ``height`` image GrabCut sees for ``box``: the box widened
    by ``margin`` times its size (at least 8 px) on each side, so that it sees background."""
    pad_x = max(8, int(box.width * margin))
    pad_y = max(8, int(box.height * margin))
    return Rect.from_bounds(
        box.x - pad_x, box.y - pad_y, box.right + pad_x, box.bottom + pad_y
    ).clip(width, height)


def grabcut_region(
    image: np.ndarray,
    box: Rect,
    iterations: int = 4,
    margin: float = 0.25,
    max_pixels: int = GRABCUT_MAX_PIXELS,
    should_stop: Callable[[], bool] | None = None,
) -> Region:
    """Foreground inside ``box`` found by OpenCV GrabCut.

    ``image`` is the 8-bit display image ((H, W) or (H, W, 3) uint8). GrabCut runs on a
    crop around the box, widened by ``margin`` times the box size on each side (so it sees
    background), downscaled when above ``max_pixels``. Returns pixels inside the box only.
    ``should_stop()`` is asked between iterations; when it says True the result is empty.
    """
    height, width = _check_shape(image.shape)
    box = box.clip(width, height)
    if box.width < 3 or box.height < 3:
        return Region.empty()
    crop = grabcut_crop(box, width, height, margin)
    local = box.translated(-crop.x, -crop.y)
    if local == Rect(0, 0, crop.width, crop.height):
        # The box covers the whole image: leave a one-pixel frame as background sample.
        local = Rect(1, 1, crop.width - 2, crop.height - 2)
    pixels = _as_rgb8(image[crop.slices])
    scale = min(1.0, math.sqrt(max_pixels / float(crop.area)))
    if scale < 1.0:
        small_size = (max(8, round(crop.width * scale)), max(8, round(crop.height * scale)))
        pixels = cv2.resize(pixels, small_size, interpolation=cv2.INTER_AREA)
        sx, sy = small_size[0] / crop.width, small_size[1] / crop.height
        local_small = (
            int(local.x * sx), int(local.y * sy),
            max(2, int(local.width * sx)), max(2, int(local.height * sy)),
        )
    else:
        local_small = tuple(local)
    gc_mask = np.zeros(pixels.shape[:2], dtype=np.uint8)
    background = np.zeros((1, 65), dtype=np.float64)
    foreground = np.zeros((1, 65), dtype=np.float64)
    mode = cv2.GC_INIT_WITH_RECT
    for _ in range(max(1, int(iterations))):  # one at a time: a cancel is heard between them
        if should_stop is not None and should_stop():
            return Region.empty()
        cv2.grabCut(pixels, gc_mask, local_small, background, foreground, 1, mode)
        mode = cv2.GC_EVAL
    if should_stop is not None and should_stop():
        return Region.empty()
    selected = ((gc_mask == cv2.GC_FGD) | (gc_mask == cv2.GC_PR_FGD)).astype(np.uint8)
    if scale < 1.0:
        selected = cv2.resize(selected, (crop.width, crop.height),
                              interpolation=cv2.INTER_NEAREST)
    inside = selected[local.slices] != 0
    return Region(local.translated(crop.x, crop.y), inside)
