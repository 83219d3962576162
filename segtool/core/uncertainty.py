"""How unsure a model is of an image, for choosing what to label next.

The plain mean of ``1 - confidence`` over the image is dominated by the pixels along the
predicted boundaries: every edge between two classes is uncertain by a pixel or two however
good the model is, so an image full of small objects (many nuclei) scores as "uncertain"
just for having many edges, and those are the images that cost most to correct.
What labelling teaches the model is where it does not know what is there (a dim nucleus it
half sees, a texture it has not met), so the score leaves out a band of
``BOUNDARY_BAND`` pixels on each side of the predicted edges and averages the rest.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

BOUNDARY_BAND = 2
"""Pixels on each side of a predicted class edge left out of the score."""
MAX_SCORED_PIXELS = 1 << 22
"""Bigger predictions are scored on an evenly strided grid of about this many pixels (the
score is a mean: a 16384 x 16384 image needs no 268 million-pixel pass on the GUI thread)."""


def image_uncertainty(classes: np.ndarray, confidence: np.ndarray) -> float:
    """Mean uncertainty (0..1) of a prediction away from its predicted class edges.

    Args:
        classes: ``(H, W)`` or ``(Z, H, W)`` predicted class indices.
        confidence: same shape, uint8 confidence of the predicted class, 255 = certain.

    Returns:
        ``1 - mean(confidence) / 255`` over the pixels further than ``BOUNDARY_BAND`` from a
        predicted edge; over every pixel when all of them are near one.
    """
    if classes.shape != confidence.shape:
        raise ValueError(f"shapes differ: classes {classes.shape}, "
                         f"confidence {confidence.shape}")
    stride = max(1, math.ceil(math.sqrt(confidence.size / MAX_SCORED_PIXELS)))
    classes = classes[..., ::stride, ::stride]
    confidence = confidence[..., ::stride, ::stride]
    planes = classes.reshape(-1, *classes.shape[-2:])
    near_edge = np.stack([_near_edge(plane, BOUNDARY_BAND / stride) for plane in planes])
    interior = ~near_edge.reshape(confidence.shape)
    scored = confidence[interior] if interior.any() else confidence
    return 1.0 - float(np.mean(scored, dtype=np.float64)) / 255.0


def _near_edge(classes: np.ndarray, band: float) -> np.ndarray:
    """``(H, W)`` bool: within ``band`` pixels of a change of class."""
    edge = np.zeros(classes.shape, np.uint8)
    vertical = classes[1:] != classes[:-1]
    horizontal = classes[:, 1:] != classes[:, :-1]
    edge[1:] |= vertical
    edge[:-1] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    radius = round(band)
    if radius > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius - 1, 2 * radius - 1))
        edge = cv2.dilate(edge, kernel)
    return edge.astype(bool)
