"""Undo history of one image's mask: small records of changed regions, capped in bytes.

A :class:`Change` keeps the tight bounding box of the changed pixels, a packed bitmap of
which pixels changed, and their old and new values (one value when they were all equal,
as after a fill). A :class:`StrokeRecorder` backs up the tiles a stroke touches before they
are written, so recording costs nothing proportional to the image size.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from segtool.core.rect import Rect

DEFAULT_HISTORY_BYTES = 128 * 1024 * 1024
TILE_SIZE = 256


def _compact(values: np.ndarray) -> np.ndarray:
    """One value when all are equal, else the values themselves (uint8 1-D)."""
    if values.size and bool((values == values[0]).all()):
        return values[:1].copy()
    return values


@dataclass(frozen=True)
class Change:
    """One undo step: pixels of ``rect`` flagged in ``changed`` went from ``old`` to ``new``.

    ``changed`` is ``np.packbits`` of a (rect.height, rect.width) bool array; ``old`` and
    ``new`` are uint8 1-D arrays with one value per changed pixel, or a single value.
    """

    rect: Rect
    changed: np.ndarray
    old: np.ndarray
    new: np.ndarray

    @classmethod
    def from_arrays(cls, rect: Rect, old: np.ndarray, new: np.ndarray) -> Change | None:
        """The change between two (rect.height, rect.width) uint8 arrays; None if equal."""
        if old.shape != new.shape or old.shape != (rect.height, rect.width):
            raise ValueError(f"arrays {old.shape}/{new.shape} do not match {rect}")
        diff = old != new
        rows = np.flatnonzero(diff.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(diff.any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        diff = diff[y0:y1, x0:x1]
        tight = Rect.from_bounds(rect.x + x0, rect.y + y0, rect.x + x1, rect.y + y1)
        old_values = _compact(old[y0:y1, x0:x1][diff])
        new_values = _compact(new[y0:y1, x0:x1][diff])
        return cls(tight, np.packbits(diff), old_values, new_values)

    @property
    def nbytes(self) -> int:
        """Memory held by this record."""
        return self.changed.nbytes + self.old.nbytes + self.new.nbytes

    def _write(self, mask: np.ndarray, values: np.ndarray) -> Rect:
        count = self.rect.width * self.rect.height
        flags = np.unpackbits(self.changed, count=count).view(bool)
        target = mask[self.rect.slices]
        target[flags.reshape(target.shape)] = values[0] if values.size == 1 else values
        return self.rect

    def revert(self, mask: np.ndarray) -> Rect:
        """Write the old pixels back into ``mask`` (H, W) uint8; returns the rectangle."""
        return self._write(mask, self.old)

    def apply(self, mask: np.ndarray) -> Rect:
        """Write the new pixels into ``mask`` (H, W) uint8; returns the rectangle."""
        return self._write(mask, self.new)


class History:
    """Undo and redo stacks of :class:`Change`, at most ``max_bytes`` in all.

    When a new change pushes the total over the cap, the oldest undo steps are dropped
    (the newest step is always kept). A new change clears the redo stack.
    """

    def __init__(self, max_bytes: int = DEFAULT_HISTORY_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self._undo: deque[Change] = deque()
        self._redo: list[Change] = []
        self._nbytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the undo and redo stacks."""
        return self._nbytes

    @property
    def can_undo(self) -> bool:
        """True when there is a step to undo."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """True when there is a step to redo."""
        return bool(self._redo)

    def __len__(self) -> int:
        return len(self._undo)

    def push(self, change: Change) -> None:
        """Record a new step: clears redo, drops the oldest steps over the byte cap."""
        self._nbytes -= sum(entry.nbytes for entry in self._redo)
        self._redo.clear()
        self._undo.append(change)
        self._nbytes += change.nbytes
        while self._nbytes > self.max_bytes and len(self._undo) > 1:
            self._nbytes -= self._undo.popleft().nbytes

    def undo(self) -> Change | None:
        """The step to revert (moved to the redo stack), or None."""
        if not self._undo:
            return None
        change = self._undo.pop()
        self._redo.append(change)
        return change

    def redo(self) -> Change | None:
        """The step to apply again (moved back to the undo stack), or None."""
        if not self._redo:
            return None
        change = self._redo.pop()
        self._undo.append(change)
        return change

    def clear(self) -> None:
        """Forget every step."""
        self._undo.clear()
        self._redo.clear()
        self._nbytes = 0


class StrokeRecorder:
    """Collects the pixels a multi-step edit (one mouse drag) overwrites.

    Call :meth:`before_change` with each rectangle *before* writing into it; tiles of
    ``tile`` x ``tile`` pixels are copied the first time they are touched. :meth:`finish`
    turns the whole edit into one :class:`Change`.
    """

    def __init__(self, mask: np.ndarray, tile: int = TILE_SIZE) -> None:
        self._mask = mask
        self._tile = tile
        self._saved: dict[tuple[int, int], np.ndarray] = {}
        self.rect = Rect(0, 0, 0, 0)

    def before_change(self, rect: Rect) -> None:
        """Back up the tiles under ``rect`` not yet saved during this edit."""
        if rect.is_empty:
            return
        self.rect = self.rect.union(rect)
        tile = self._tile
        for ty in range(rect.y // tile, (rect.bottom - 1) // tile + 1):
            for tx in range(rect.x // tile, (rect.right - 1) // tile + 1):
                if (ty, tx) not in self._saved:
                    block = self._mask[ty * tile : (ty + 1) * tile, tx * tile : (tx + 1) * tile]
                    self._saved[(ty, tx)] = block.copy()

    def finish(self) -> Change | None:
        """The edit as one change (None when no pixel ended up different)."""
        rect = self.rect
        if rect.is_empty:
            return None
        new = self._mask[rect.slices].copy()
        old = new.copy()
        tile = self._tile
        for (ty, tx), block in self._saved.items():
            block_rect = Rect(tx * tile, ty * tile, block.shape[1], block.shape[0])
            common = block_rect.intersect(rect)
            if common.is_empty:
                continue
            source = common.translated(-block_rect.x, -block_rect.y)
            target = common.translated(-rect.x, -rect.y)
            old[target.slices] = block[source.slices]
        self._saved.clear()
        return Change.from_arrays(rect, old, new)
