"""The label document: one image's mask, the edits made to it, and their undo history.

No Qt here. Views subscribe with a plain callable ``on_change(rect)`` and repaint only
``rect``; they never keep their own copy of the mask. Whoever keeps a record of the edits
(the crash journal) subscribes with ``on_step(rect)``, called once per finished undo step,
undo and redo included.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from segtool.core import brush
from segtool.core.brush import Point, Region
from segtool.core.history import DEFAULT_HISTORY_BYTES, History, StrokeRecorder
from segtool.core.masks import UNLABELLED
from segtool.core.rect import EMPTY_RECT, Rect

log = logging.getLogger(__name__)

ChangeCallback = Callable[[Rect], None]


def _check_class(class_id: int) -> int:
    if not 0 <= int(class_id) < UNLABELLED:
        raise ValueError(f"class index must be 0..{UNLABELLED - 1}, got {class_id}")
    return int(class_id)


class LabelDocument:
    """One image's mask, (H, W) uint8 with 255 = unlabelled, and its undo history.

    Every edit returns the rectangle it changed (empty when nothing changed) and tells
    subscribers. Edits between :meth:`begin_stroke` and :meth:`end_stroke` form one undo
    step; an edit outside a stroke is a step of its own. With ``paint_unlabelled_only``
    set, painting tools only label unlabelled pixels (erasing is not restricted). With
    ``read_only`` set (a project opened for viewing) no edit, undo or redo changes anything.
    """

    def __init__(self, mask: np.ndarray, history_bytes: int = DEFAULT_HISTORY_BYTES) -> None:
        """Take ownership of ``mask`` ((H, W) uint8); the caller must not write to it after."""
        if mask.ndim != 2 or mask.dtype != np.uint8 or 0 in mask.shape:
            raise ValueError(f"expected a non-empty (H, W) uint8 mask, got {mask.dtype} "
                             f"{mask.shape}")
        self._mask = np.require(mask, np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])
        self._view = self._mask.view()
        self._view.flags.writeable = False
        self._history = History(history_bytes)
        self._recorder: StrokeRecorder | None = None
        self._stroke_is_explicit = False
        self._subscribers: list[ChangeCallback] = []
        self._step_subscribers: list[ChangeCallback] = []
        self.paint_unlabelled_only = False
        self.read_only = False
        self.revision = 0
        self._saved_revision = 0

    # -- state ---------------------------------------------------------------------------

    @property
    def mask(self) -> np.ndarray:
        """The mask, (H, W) uint8, 255 = unlabelled; a read-only view (edit through methods)."""
        return self._view

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return self._mask.shape[0], self._mask.shape[1]

    @property
    def modified(self) -> bool:
        """True when the mask changed since the last :meth:`mark_saved`."""
        return self.revision != self._saved_revision

    def mark_saved(self) -> None:
        """Record that the current mask was written to disk."""
        self._saved_revision = self.revision

    @property
    def can_undo(self) -> bool:
        """True when an edit can be undone."""
        return self._history.can_undo or self._recorder is not None

    @property
    def can_redo(self) -> bool:
        """True when an undone edit can be redone."""
        return self._history.can_redo

    @property
    def history_bytes(self) -> int:
        """Memory held by the undo history."""
        return self._history.nbytes

    @property
    def in_stroke(self) -> bool:
        """True between :meth:`begin_stroke` and :meth:`end_stroke`."""
        return self._stroke_is_explicit

    # -- subscribers ---------------------------------------------------------------------

    def subscribe(self, on_change: ChangeCallback) -> None:
        """Call ``on_change(rect)`` after every change of the mask."""
        if on_change not in self._subscribers:
            self._subscribers.append(on_change)

    def unsubscribe(self, on_change: ChangeCallback) -> None:
        """Stop calling ``on_change``; unknown callbacks are ignored."""
        if on_change in self._subscribers:
            self._subscribers.remove(on_change)

    def _notify(self, rect: Rect) -> None:
        for on_change in list(self._subscribers):
            on_change(rect)

    def subscribe_steps(self, on_step: ChangeCallback) -> None:
        """Call ``on_step(rect)`` after each finished undo step (a stroke, undo, redo)."""
        if on_step not in self._step_subscribers:
            self._step_subscribers.append(on_step)

    def _step_done(self, rect: Rect) -> None:
        for on_step in list(self._step_subscribers):
            on_step(rect)

    # -- strokes and history -------------------------------------------------------------

    def begin_stroke(self) -> None:
        """Start an undo step spanning several edits (one mouse drag).

        A stroke still open is ended first.
        """
        if self._recorder is not None:
            self.end_stroke()
        self._recorder = StrokeRecorder(self._mask)
        self._stroke_is_explicit = True

    def end_stroke(self) -> Rect:
        """Close the current undo step; returns the rectangle it changed (maybe empty)."""
        recorder, self._recorder = self._recorder, None
        self._stroke_is_explicit = False
        if recorder is None:
            return EMPTY_RECT
        change = recorder.finish()
        if change is None:
            return EMPTY_RECT
        self._history.push(change)
        self.revision += 1
        self._step_done(change.rect)
        return change.rect

    def undo(self) -> Rect:
        """Revert the last step (ending an open stroke first); returns the changed rect."""
        if self._recorder is not None:
            self.end_stroke()
        if self.read_only:
            return EMPTY_RECT
        change = self._history.undo()
        if change is None:
            return EMPTY_RECT
        rect = change.revert(self._mask)
        self.revision += 1
        self._notify(rect)
        self._step_done(rect)
        return rect

    def redo(self) -> Rect:
        """Apply the last undone step again; returns the changed rect."""
        if self._recorder is not None:
            self.end_stroke()
        if self.read_only:
            return EMPTY_RECT
        change = self._history.redo()
        if change is None:
            return EMPTY_RECT
        rect = change.apply(self._mask)
        self.revision += 1
        self._notify(rect)
        self._step_done(rect)
        return rect

    def clear_history(self) -> None:
        """Forget every undo and redo step."""
        self._history.clear()

    # -- applying regions ----------------------------------------------------------------

    def _write(
        self, recorder: StrokeRecorder, region: Region, value: int, protect: bool
    ) -> Rect:
        if region.rect.is_empty:
            return EMPTY_RECT
        target = self._mask[region.rect.slices]
        selected = region.inside & (target != value)
        if protect:
            selected &= target == UNLABELLED
        if not selected.any():
            return EMPTY_RECT
        recorder.before_change(region.rect)
        target[selected] = value
        self._notify(region.rect)
        return region.rect

    def _apply(self, regions: Sequence[Region], value: int) -> Rect:
        if self.read_only:
            return EMPTY_RECT
        protect = self.paint_unlabelled_only and value != UNLABELLED
        single_step = self._recorder is None
        if self._recorder is None:
            self._recorder = StrokeRecorder(self._mask)
        recorder = self._recorder
        changed = EMPTY_RECT
        try:
            for region in regions:
                changed = changed.union(self._write(recorder, region, value, protect))
        finally:
            if single_step:
                self.end_stroke()
        return changed

    # -- tools ---------------------------------------------------------------------------

    def paint_segment(self, start: Point, end: Point, radius: float, class_id: int) -> Rect:
        """Paint a brush of ``radius`` pixels along ``start``-``end`` (pixel indices x, y).

        Pixels whose centre is within ``radius`` of the segment get ``class_id``; pass the
        same point twice for a single dab. Returns the changed rectangle.
        """
        value = _check_class(class_id)
        return self._apply(brush.stroke_regions(start, end, radius, self.shape), value)

    def erase_segment(self, start: Point, end: Point, radius: float) -> Rect:
        """Like :meth:`paint_segment` but makes the pixels unlabelled (255)."""
        return self._apply(brush.stroke_regions(start, end, radius, self.shape), UNLABELLED)

    def flood_fill(self, x: int, y: int, class_id: int, contiguous: bool = True) -> Rect:
        """Give ``class_id`` to the 4-connected region of ``(x, y)``'s label, or with
        ``contiguous`` False to every pixel of that label in the image."""
        value = _check_class(class_id)
        region = (brush.flood_fill_region if contiguous else brush.same_label_region)(
            self._mask, x, y)
        return self._apply([region], value)

    def fill_polygon(self, points: Sequence[Point], class_id: int) -> Rect:
        """Give ``class_id`` to the polygon through ``points`` (pixel indices), outline included."""
        value = _check_class(class_id)
        return self._apply([brush.polygon_region(points, self.shape)], value)

    def magic_wand(
        self, image: np.ndarray, x: int, y: int, tolerance: int, class_id: int
    ) -> Rect:
        """Label the region of ``image`` (8-bit display version) connected to ``(x, y)``
        whose values are within ``tolerance`` of the seed pixel's."""
        self._check_image(image)
        value = _check_class(class_id)
        return self._apply([brush.magic_wand_region(image, x, y, tolerance)], value)

    def grabcut(
        self, image: np.ndarray, box: Rect, class_id: int, iterations: int = 4
    ) -> Rect:
        """Label the foreground GrabCut finds inside ``box`` of ``image`` (8-bit display)."""
        self._check_image(image)
        value = _check_class(class_id)
        log.debug("grabcut in %s, %d iterations", box, iterations)
        return self._apply([brush.grabcut_region(image, box, iterations)], value)

    def apply_region(self, region: brush.Region, class_id: int) -> Rect:
        """Give ``class_id`` to the pixels of ``region`` (computed elsewhere, e.g. GrabCut on
        a worker thread) as one undo step; returns the changed rectangle."""
        if region.rect.right > self.shape[1] or region.rect.bottom > self.shape[0]:
            raise ValueError(f"region {region.rect} does not fit mask {self.shape}")
        return self._apply([region], _check_class(class_id))

    def accept_prediction(
        self, classes: np.ndarray, confidence: np.ndarray | None = None, threshold: int = 0
    ) -> Rect:
        """Copy predicted ``classes`` ((H, W) uint8) into unlabelled pixels only.

        With ``confidence`` ((H, W) uint8, 0..255) only pixels with confidence >=
        ``threshold`` are taken. Predicted 255 is ignored. One undo step.
        """
        if classes.shape != self.shape or classes.dtype != np.uint8:
            raise ValueError(f"prediction {classes.dtype} {classes.shape} does not match "
                             f"mask {self.shape}")
        take = (self._mask == UNLABELLED) & (classes != UNLABELLED)
        if confidence is not None:
            if confidence.shape != self.shape:
                raise ValueError(f"confidence {confidence.shape} does not match {self.shape}")
            take &= confidence >= threshold
        return self._copy_where(classes, take)

    def replace_mask(self, new_mask: np.ndarray) -> Rect:
        """Make the mask equal ``new_mask`` ((H, W) uint8) as one undo step (e.g. a restore)."""
        if new_mask.shape != self.shape or new_mask.dtype != np.uint8:
            raise ValueError(f"mask {new_mask.dtype} {new_mask.shape} does not match "
                             f"{self.shape}")
        return self._copy_where(new_mask, new_mask != self._mask)

    def _copy_where(self, values: np.ndarray, take: np.ndarray) -> Rect:
        """Copy ``values`` into the mask where ``take`` ((H, W) bool) holds; one undo step."""
        if self.read_only:
            return EMPTY_RECT
        rows = np.flatnonzero(take.any(axis=1))
        if rows.size == 0:
            return EMPTY_RECT
        cols = np.flatnonzero(take.any(axis=0))
        rect = Rect.from_bounds(cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
        single_step = self._recorder is None
        if self._recorder is None:
            self._recorder = StrokeRecorder(self._mask)
        try:
            self._recorder.before_change(rect)
            target = self._mask[rect.slices]
            inside = take[rect.slices]
            target[inside] = values[rect.slices][inside]
            self._notify(rect)
        finally:
            if single_step:
                self.end_stroke()
        return rect

    def _check_image(self, image: np.ndarray) -> None:
        if image.shape[:2] != self.shape:
            raise ValueError(f"image {image.shape} does not match mask {self.shape}")
