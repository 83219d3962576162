"""Synthetic fluorescence-microscopy nuclei with their ground truth.

Used by the demo project, the learning benchmark and the tests. The images are built to
be non-trivial for a global threshold: the background illumination varies smoothly by
more than the brightness of the dimmest nuclei, so Otsu's threshold either misses dim
nuclei or swallows bright background (IoU around 0.7-0.8), while a model that looks at
shape and local contrast can do better.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Photon-count scale of the simulated camera (16-bit).
_CAMERA_OFFSET = 100.0
_READ_NOISE = 6.0
_BACKGROUND_BASE = 120.0
_BACKGROUND_SPAN = 420.0
_NUCLEUS_PEAK = 1400.0


def nuclei_image(size: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fluorescence-like image of nuclei and its truth mask, deterministic per ``seed``.

    Returns ``(image, truth)``: image ``(size, size)`` uint16 photon counts (camera offset
    ~100, values up to a few thousand); truth ``(size, size)`` uint8, 1 = nucleus, 0 =
    background. Nuclei are ellipses of 6-20 px radius with varied brightness (a fifth
    of them dim, near the background level), some touching, with chromatin-like texture;
    the image is blurred (sigma 1.5 px), has a smooth uneven background and out-of-focus
    haze, then Poisson shot noise and Gaussian read noise.
    """
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    rng = np.random.default_rng(seed)
    truth = np.zeros((size, size), dtype=np.uint8)
    signal = np.zeros((size, size), dtype=np.float32)
    for cx, cy, major, minor, angle, brightness in _place_nuclei(rng, size):
        centre = (round(cx * 16), round(cy * 16))
        axes = (round(major * 16), round(minor * 16))
        cv2.ellipse(truth, centre, axes, angle, 0, 360, 1, -1, cv2.LINE_8, 4)
        cv2.ellipse(signal, centre, axes, angle, 0, 360, float(brightness), -1, cv2.LINE_8, 4)
    signal *= 1.0 + 0.18 * _smooth_noise(rng, size, cell=5)  # chromatin texture
    signal = cv2.GaussianBlur(signal, (0, 0), 1.5)
    signal += 0.12 * cv2.GaussianBlur(signal, (0, 0), 10.0)  # out-of-focus haze
    background = _smooth_noise(rng, size, cell=max(4, size // 3))
    background = (background - background.min()) / max(float(np.ptp(background)), 1e-6)
    expected = _BACKGROUND_BASE + _BACKGROUND_SPAN * background + _NUCLEUS_PEAK * signal
    counts = rng.poisson(np.maximum(expected, 0.0)).astype(np.float32)
    counts += rng.normal(_CAMERA_OFFSET, _READ_NOISE, size=counts.shape).astype(np.float32)
    image = np.clip(np.rint(counts), 0, 65535).astype(np.uint16)
    return image, truth


def _place_nuclei(
    rng: np.random.Generator, size: int
) -> list[tuple[float, float, float, float, float, float]]:
    """Nucleus ellipses ``(cx, cy, major, minor, angle_deg, brightness)``, some touching."""
    target = max(1, round(size * size / 2600))
    xs = np.empty(0)
    ys = np.empty(0)
    rs = np.empty(0)
    nuclei = []
    for _ in range(target * 15):
        if len(nuclei) >= target:
            break
        radius = float(rng.uniform(6.0, 20.0))
        cx, cy = (float(v) for v in rng.uniform(-0.3 * radius, size + 0.3 * radius, size=2))
        # 0.85 of the summed radii: elongated neighbours may touch or overlap a little.
        if len(xs) and np.any(np.hypot(xs - cx, ys - cy) < 0.85 * (rs + radius)):
            continue
        xs, ys, rs = np.append(xs, cx), np.append(ys, cy), np.append(rs, radius)
        minor = radius * float(rng.uniform(0.6, 1.0))
        angle = float(rng.uniform(0.0, 180.0))
        dim = rng.random() < 0.2
        brightness = float(rng.uniform(0.15, 0.35) if dim else rng.uniform(0.4, 1.0))
        nuclei.append((cx, cy, radius, minor, angle, brightness))
    return nuclei


def _smooth_noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """``(size, size)`` float32 smooth random field, unit-ish amplitude, features ~cell px."""
    coarse_size = max(2, math.ceil(size / cell) + 1)
    coarse = rng.normal(size=(coarse_size, coarse_size)).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
