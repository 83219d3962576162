"""Integer pixel rectangles: the unit of change between the label model and its views."""

from __future__ import annotations

from typing import NamedTuple


class Rect(NamedTuple):
    """A rectangle of whole pixels: columns ``x .. x + width - 1``, rows ``y .. y + height - 1``.

    An empty rectangle (zero width or height) means "nothing changed".
    """

    x: int
    y: int
    width: int
    height: int

    @classmethod
    def from_bounds(cls, x0: int, y0: int, x1: int, y1: int) -> Rect:
        """The rectangle from corner ``(x0, y0)`` inclusive to ``(x1, y1)`` exclusive."""
        if x1 <= x0 or y1 <= y0:
            return EMPTY_RECT
        return cls(int(x0), int(y0), int(x1 - x0), int(y1 - y0))

    @property
    def right(self) -> int:
        """One past the last column."""
        return self.x + self.width

    @property
    def bottom(self) -> int:
        """One past the last row."""
        return self.y + self.height

    @property
    def is_empty(self) -> bool:
        """True when the rectangle covers no pixel."""
        return self.width <= 0 or self.height <= 0

    @property
    def area(self) -> int:
        """Number of pixels covered."""
        return 0 if self.is_empty else self.width * self.height

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, columns)`` slices for indexing an (H, W, ...) array."""
        return slice(self.y, self.bottom), slice(self.x, self.right)

    def union(self, other: Rect) -> Rect:
        """The smallest rectangle holding both; an empty side is ignored."""
        if other.is_empty:
            return self
        if self.is_empty:
            return other
        return Rect.from_bounds(
            min(self.x, other.x),
            min(self.y, other.y),
            max(self.right, other.right),
            max(self.bottom, other.bottom),
        )

    def intersect(self, other: Rect) -> Rect:
        """The common part of both rectangles (empty when they do not overlap)."""
        return Rect.from_bounds(
            max(self.x, other.x),
            max(self.y, other.y),
            min(self.right, other.right),
            min(self.bottom, other.bottom),
        )

    def clip(self, width: int, height: int) -> Rect:
        """The part inside an image of ``width`` x ``height`` pixels."""
        return self.intersect(Rect(0, 0, width, height))

    def translated(self, dx: int, dy: int) -> Rect:
        """The same rectangle moved by ``(dx, dy)`` pixels."""
        return Rect(self.x + dx, self.y + dy, self.width, self.height)


EMPTY_RECT = Rect(0, 0, 0, 0)
