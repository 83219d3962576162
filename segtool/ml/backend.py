"""The one place TensorFlow and Keras are first imported, with the log noise turned down.

Other ml modules write ``from segtool.ml.backend import keras, tf`` so the environment
variables below are set before TensorFlow loads, whatever the import order.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

__all__ = ["keras", "tf"]
