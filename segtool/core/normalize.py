"""Percentile normalisation: the model's input and the display's window/level.

The same mapping serves 8-bit photos, 16-bit microscopy and float DICOM: the ``low``
percentile of the image's values maps to 0 and the ``high`` percentile to 1. A 16-bit
image that only uses 1000..1400 therefore spans the full 0..1 range, as it should.
"""

from __future__ import annotations

import math

import numpy as np

# Percentiles are estimated on at most about this many pixels (a regular subsample).
_SAMPLE_PIXELS = 1 << 20


def percentiles(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> tuple[float, float]:
    """Return the ``low`` and ``high`` percentiles of ``image``'s values, as floats.

    ``image`` is ``(H, W)`` or ``(H, W, C)`` of any numeric dtype; all channels are pooled so
    colours keep their balance. Large images are subsampled on a regular grid (at most
    about a million pixels). NaNs are ignored. ``hi > lo`` always holds: a flat image gets
    ``hi = lo + 1``.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"expected a non-empty (H, W) or (H, W, C) array, got {image.shape}")
    height, width = image.shape[:2]
    step = max(1, math.ceil(math.sqrt(height * width / _SAMPLE_PIXELS)))
    sample = image[::step, ::step]
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sample, (low, high)))
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def channel_windows(
    image: np.ndarray, low: float = 1.0, high: float = 99.8, per_channel: bool = False
) -> list[tuple[float, float]]:
    """The ``(lo, hi)`` window of each channel: pooled over channels, or one per channel.

    A ``(H, W)`` image has one channel. Pooled windows keep colours in balance (photos);
    per-channel windows give each channel its own range (stacked MRI sequences, channels of
    different stains).
    """
    channels = 1 if image.ndim == 2 else image.shape[2]
    if not per_channel or channels == 1:
        return [percentiles(image, low, high)] * channels
    return [percentiles(image[..., c], low, high) for c in range(channels)]


def quantile_level(image: np.ndarray, window: tuple[float, float], q: float) -> float:
    """Where ``image``'s ``q``-th percentile (all channels pooled) falls in ``window``, 0..1:
    the same percentile of the windowed image (windowing is monotonic). The upper quartile
    (q = 75) stays near 0 on a dark ground with sparse bright objects (fluorescence) and
    lies mid-range on photos, EM and the body of an MRI slice."""
    lo, hi = window
    value = percentiles(image, q, 100.0)[0]
    return float(np.clip((value - lo) / (hi - lo), 0.0, 1.0))


def apply_windows(image: np.ndarray, windows: list[tuple[float, float]]) -> np.ndarray:
    """Map each channel's ``(lo, hi)`` to 0..1: float32 ``(H, W, C)``, clipped, NaN -> 0.

    Windows computed on a whole image apply unchanged to any crop of it.
    """
    out = image.astype(np.float32)  # always a copy
    if out.ndim == 2:
        out = out[..., None]
    if len(windows) != out.shape[2]:
        raise ValueError(f"{len(windows)} windows for {out.shape[2]} channels")
    if len(set(windows)) == 1:
        lo, hi = windows[0]
        out -= np.float32(lo)
        out /= np.float32(hi - lo)
    else:
        for channel, (lo, hi) in enumerate(windows):
            out[..., channel] -= np.float32(lo)
            out[..., channel] /= np.float32(hi - lo)
    np.clip(out, 0.0, 1.0, out=out)
    if image.dtype.kind == "f":
        np.nan_to_num(out, copy=False, nan=0.0)
    return out


def normalize(
    image: np.ndarray, low: float = 1.0, high: float = 99.8, per_channel: bool = False
) -> np.ndarray:
    """Map ``image`` to float32 ``(H, W, C)`` in [0, 1], C = 1 or 3: THE model input.

    The ``low`` percentile maps to 0, the ``high`` percentile to 1 (pooled over channels,
    or per channel), values outside are clipped. ``(H, W)`` input gains a channel axis.
    NaNs become 0.
    """
    return apply_windows(image, channel_windows(image, low, high, per_channel))


def to_display(image: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Window/level ``image`` into uint8 for the screen: ``lo`` -> 0, ``hi`` -> 255.

    Keeps the layout: ``(H, W)`` stays ``(H, W)``, ``(H, W, 3)`` stays ``(H, W, 3)``.
    ``lo``/``hi`` default to the 1st/99.8th percentiles. uint8 and uint16 go through a
    lookup table, so a 4k x 4k 16-bit image takes a few tens of milliseconds.
    """
    if lo is None or hi is None:
        auto_lo, auto_hi = percentiles(image)
        lo = auto_lo if lo is None else lo
        hi = auto_hi if hi is None else hi
    if hi <= lo:
        hi = lo + 1e-6
    scale = 255.0 / (hi - lo)
    if image.dtype in (np.uint8, np.uint16):
        levels = np.arange(np.iinfo(image.dtype).max + 1, dtype=np.float32)
        lut = np.clip((levels - lo) * scale + 0.5, 0, 255).astype(np.uint8)
        return lut[image]
    values = image.astype(np.float32)
    values -= np.float32(lo)
    values *= np.float32(scale)
    values += np.float32(0.5)
    np.clip(values, 0, 255, out=values)
    np.nan_to_num(values, copy=False, nan=0.0)
    return values.astype(np.uint8)
