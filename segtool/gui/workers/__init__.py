"""The one bridge between Qt threads and TensorFlow: only these modules name segtool.ml.

Each worker is a QThread with explicit signals, an abort flag checked between steps and a
``stop()`` that waits. ``segtool.ml`` (and so TensorFlow) is imported inside ``run()``, on the
worker's thread, never when the window opens.
"""

from segtool.gui.workers.base import BackgroundThread, gui_threads, running_threads
from segtool.gui.workers.prediction import BACKGROUND, CURRENT, PredictionThread
from segtool.gui.workers.training import PROGRESS_INTERVAL_S, TrainingThread

__all__ = [
    "BACKGROUND",
    "CURRENT",
    "PROGRESS_INTERVAL_S",
    "BackgroundThread",
    "PredictionThread",
    "TrainingThread",
    "gui_threads",
    "running_threads",
]
