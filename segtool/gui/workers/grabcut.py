"""GrabCut on a worker thread: seconds of OpenCV work that must not freeze the window."""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import Signal

from segtool.core.brush import Region, grabcut_region
from segtool.core.rect import Rect
from segtool.gui.workers.base import BackgroundThread

log = logging.getLogger(__name__)

GRABCUT_ITERATIONS = 4


class GrabCutThread(BackgroundThread):
    """Finds the foreground inside ``box`` of ``image`` ((H, W) or (H, W, 3) uint8, copied).

    Signals: ``returned(Region)`` with the pixels found (maybe empty), ``failed(message)``,
    ``cancelled()`` after ``stop()`` (checked between GrabCut's iterations). The caller
    applies the region to its document on the GUI thread, as one undo step.
    """

    returned = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, image: np.ndarray, box: Rect, iterations: int = GRABCUT_ITERATIONS,
                 parent: object | None = None) -> None:
        super().__init__(parent)
        self.image = np.array(image, copy=True)  # the display image may be replaced meanwhile
        self.box = box
        self.iterations = iterations

    def run(self) -> None:  # noqa: D102 - QThread entry point
        try:
            region: Region = grabcut_region(self.image, self.box, self.iterations,
                                            should_stop=self.aborted)
        except (ValueError, MemoryError) as error:
            self.failed.emit(f"GrabCut failed: {error}")
            return
        except Exception as error:  # cv2.error and the like: reported, never a dead thread
            log.exception("GrabCut failed")
            self.failed.emit(f"GrabCut failed: {type(error).__name__}: {error}")
            return
        if self.aborted():
            self.cancelled.emit()
        else:
            self.returned.emit(region)
