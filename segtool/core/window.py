"""Display windows as radiologists set them: a level (centre) and a width, in image values.

The window maps ``level - width / 2`` to black and ``level + width / 2`` to white (Hounsfield
units for CT, counts for microscopy). Presets are the usual CT ones; "auto" is the 1st to
99.8th percentile of the image (of the whole volume for a volume), today's microscopy default.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from segtool.core.normalize import percentiles, to_display


@dataclass(frozen=True)
class Window:
    """A display window: ``level`` (centre) and ``width`` (> 0), in the image's values."""

    level: float
    width: float

    @property
    def low(self) -> float:
        """The value shown black."""
        return self.level - self.width / 2

    @property
    def high(self) -> float:
        """The value shown white."""
        return self.level + self.width / 2

    @classmethod
    def from_range(cls, low: float, high: float) -> Window:
        """The window from ``low`` (black) to ``high`` (white)."""
        return cls((low + high) / 2, max(high - low, 1e-6))

    def dragged(self, dx: float, dy: float, span: float) -> Window:
        """The window after a right-drag of ``dx``/``dy`` screen pixels: right widens, down
        raises the level (as in ITK-SNAP and Slicer); ``span`` sets the value per pixel."""
        step = max(span, 1e-6) / 512.0
        return Window(round(self.level + dy * step, 1),
                      round(max(self.width + dx * step, step), 1) or 0.1)

    def to_json(self) -> list[float]:
        return [round(self.level, 4), round(self.width, 4)]


class Preset(str, enum.Enum):
    """Named windows: CT presets in HU, and the automatic percentile window."""

    AUTO = "auto"
    BRAIN = "brain"
    SOFT_TISSUE = "soft tissue"
    LUNG = "lung"
    BONE = "bone"


CT_PRESETS: dict[Preset, Window] = {
    Preset.BRAIN: Window(40.0, 80.0),
    Preset.SOFT_TISSUE: Window(40.0, 400.0),
    Preset.LUNG: Window(-600.0, 1500.0),
    Preset.BONE: Window(500.0, 2000.0),
}


def auto_window(image: np.ndarray, volume: bool = False) -> Window:
    """The 1st..99.8th percentile window of ``image`` ((H, W[, C])), or with ``volume`` of
    a (Z, H, W[, C]) volume, sampled over its slices so that every slice shares one window."""
    if volume:
        step = max(1, image.shape[0] // 16)
        sample = image[::step]
        sample = sample.reshape((-1, *sample.shape[2:]))
        return Window.from_range(*percentiles(sample))
    return Window.from_range(*percentiles(image))


def parse_window(value: Any) -> Window | None:
    """A window from its JSON form ``[level, width]``; None for anything else."""
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            and np.isfinite(value).all() and value[1] > 0):
        return Window(float(value[0]), float(value[1]))
    return None


def display(image: np.ndarray, window: Window, invert: bool = False) -> np.ndarray:
    """``image`` ((H, W) or (H, W, 3)) windowed into uint8 for the screen; ``invert`` shows
    high values dark (DICOM MONOCHROME1)."""
    shown = to_display(image, window.low, window.high)
    if invert:
        np.subtract(255, shown, out=shown)
    return shown
