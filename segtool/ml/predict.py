"""Tiled prediction of whole images of any size, with smooth blending and bounded memory.

The image is cut into overlapping tiles (``tile_size`` square, neighbours sharing at least
``overlap`` pixels). Each tile's softmax probabilities are weighted by a separable Hann
(raised-cosine) window with a small floor, which trusts a tile's centre and distrusts its
edges, where the network sees least context; the weighted sums are divided by the sum of
weights (separable too: the product of two 1-D sums). Neighbouring tiles thus cross-fade
and no seam shows. (A window flat inside with cosine ramps only over the overlap was tried
too: on four random U-Nets, tile 64, overlap 16, it agreed less with whole-image prediction,
mean confidence difference up to 0.60 against 0.38 out of 255.)

Memory: tiles are produced one row of tiles at a time (a horizontal strip), and only one
strip of float32 accumulators (tile height x image width x classes) is held; rows are turned
into uint8 classes and confidence as soon as no later tile can touch them. There is never a
full-resolution float32 array of all classes.

Borders: tiles start at the image's first row and column, so the image's own border is seen
the way a whole-image prediction sees it. Images (or sides) smaller than a tile are
reflect-padded up to a multiple of the network's down-sampling factor.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import weakref
from collections.abc import Callable, Iterator

import numpy as np

from segtool.ml.backend import inference_function, keras, tf

log = logging.getLogger(__name__)

WINDOW_FLOOR = 1e-3
"""Smallest blending weight: keeps every pixel's weight sum well away from zero."""

ProgressCallback = Callable[[int, int], None]
"""``progress(tiles_done, tiles_total)``, called after each batch of tiles."""


class PredictionCancelled(Exception):  # noqa: N818 (a cancellation, not an error)
    """Raised by :func:`predict_tiled` when its ``cancel`` callable returned True."""


@dataclasses.dataclass(frozen=True)
class AxisLayout:
    """Where the tiles lie along one axis of the image.

    Attributes:
        tile: tile length in pixels along this axis.
        starts: first pixel of each tile, in padded coordinates, increasing.
        pad_before: reflect-padded pixels before the image's first pixel (image pixel ``i``
            is padded pixel ``i + pad_before``).
        padded: length of the padded axis (the image plus reflect padding).
        window: (tile,) float32 blending weight along this axis.
    """

    tile: int
    starts: tuple[int, ...]
    pad_before: int
    padded: int
    window: np.ndarray


def axis_layout(length: int, tile_size: int, overlap: int, multiple: int) -> AxisLayout:
    """Tile placement along an axis of ``length`` pixels.

    A side no longer than ``tile_size`` is one tile, rounded up to a multiple of
    ``multiple`` and reflect-padded equally on both sides. A longer side gets tiles every
    ``tile_size - overlap`` pixels, the last one moved back to end exactly at the border.
    """
    if length <= tile_size:
        tile = multiple * math.ceil(length / multiple)
        window = np.ones(tile, np.float32)
        return AxisLayout(tile, (0,), (tile - length) // 2, tile, window)
    stride = tile_size - overlap
    count = math.ceil((length - tile_size) / stride) + 1
    starts = tuple(min(index * stride, length - tile_size) for index in range(count))
    return AxisLayout(tile_size, starts, 0, length, hann_window(tile_size))


def hann_window(tile: int) -> np.ndarray:
    """(tile,) float32 raised cosine, sin^2(pi (i + 0.5) / tile), floored at WINDOW_FLOOR."""
    window = np.sin(np.pi * (np.arange(tile) + 0.5) / tile) ** 2
    return np.maximum(window, WINDOW_FLOOR).astype(np.float32)


def _weight_sums(layout: AxisLayout) -> np.ndarray:
    """(padded,) float32: the sum of all tiles' window weights at each padded pixel."""
    sums = np.zeros(layout.padded, np.float32)
    for start in layout.starts:
        sums[start : start + layout.tile] += layout.window
    return sums


def reflect_indices(indices: np.ndarray, length: int) -> np.ndarray:
    """Map any integer indices onto ``[0, length)`` by mirroring at the borders.

    The border pixel is not repeated (NumPy's ``"reflect"``): -1 -> 1, length -> length - 2.
    """
    if length == 1:
        return np.zeros_like(indices)
    period = 2 * (length - 1)
    folded = np.mod(indices, period)
    return np.where(folded >= length, period - folded, folded)


def size_multiple(model: keras.Model) -> int:
    """The factor the model's input height and width must be multiples of.

    The product of the strides of its pooling and strided convolution layers (2 ** depth
    for a U-Net); nested models are searched too.
    """
    multiple = 1
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.Model):
            stack.extend(layer.layers)
            continue
        if isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.UpSampling2D)):
            continue
        strides = getattr(layer, "strides", None)
        if strides is not None:
            multiple *= max(int(stride) for stride in np.atleast_1d(strides))
    return multiple


_INFERENCE_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _inference_function(model: keras.Model, flip: bool = False) -> Callable:
    """A compiled ``(tiles (B, h, w, C), window (h, w)) -> weighted probabilities`` function.

    With ``flip`` the probabilities are the mean of the tile's and its left-right mirror's
    (test-time augmentation; valid for every kind of image, up or not). On TensorFlow one
    trace per model serves every tile size and batch size (the input signature leaves them
    open), so a new image never recompiles; JAX compiles once per tile batch shape. The
    function holds the model weakly, so the cache entry goes away with the model.
    """
    functions = _INFERENCE_FUNCTIONS.setdefault(model, {})
    function = functions.get(flip)
    if function is not None:
        return function
    channels = int(model.input_shape[-1])
    softmax_inside = _ends_in_softmax(model)
    if softmax_inside:
        log.info("model %s already outputs probabilities: no softmax added", model.name)
    ops = keras.ops

    def weighted_probabilities(outputs_of: Callable, tiles: object, window: object) -> object:
        def probabilities_of(batch: object) -> object:
            outputs = ops.cast(outputs_of(batch), "float32")
            return outputs if softmax_inside else ops.softmax(outputs, axis=-1)

        probabilities = probabilities_of(tiles)
        if flip:
            mirrored = probabilities_of(ops.flip(tiles, axis=2))
            probabilities = 0.5 * (probabilities + ops.flip(mirrored, axis=2))
        return probabilities * window[None, :, :, None]

    signature = None
    if tf is not None:  # one trace serves every tile and batch size
        signature = [tf.TensorSpec([None, None, None, channels], tf.float32),
                     tf.TensorSpec([None, None], tf.float32)]
    weighted_probabilities = inference_function(model, weighted_probabilities, signature)
    functions[flip] = weighted_probabilities
    return weighted_probabilities


def _ends_in_softmax(model: keras.Model) -> bool:
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return activation is keras.activations.softmax


def predict_tiled(
    model: keras.Model,
    image: np.ndarray,
    tile_size: int = 256,
    overlap: int = 32,
    batch_size: int = 8,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    flip: bool = False,
    runner_up: bool = False,
) -> tuple[np.ndarray, ...]:
    """Predict every pixel of ``image`` with ``model``, tile by tile.

    Args:
        model: a Keras model mapping (B, h, w, C) float32 to (B, h, w, K) logits (a final
            softmax layer is detected and not applied twice); h and w must be multiples of
            :func:`size_multiple` of the model.
        image: (H, W, C) float32 normalised image (any H, W >= 1; (H, W) is taken as C = 1).
        tile_size: tile side in pixels; a multiple of the model's size multiple.
        overlap: pixels shared by neighbouring tiles, blended; 0 <= overlap <= tile_size / 2.
        batch_size: tiles per forward pass.
        progress: called as ``progress(tiles_done, tiles_total)`` after each batch.
        cancel: polled before each batch; returning True stops with PredictionCancelled.
        flip: average each tile's probabilities with its left-right mirror's (test-time
            augmentation, twice the network time).
        runner_up: also return the second most probable class and its probability (what
            the window's class thresholds need with more than two classes).

    Returns:
        classes: (H, W) uint8 class index of the highest blended probability.
        confidence: (H, W) uint8, that probability * 255, rounded.
        With ``runner_up``, also ``second`` and ``second_confidence``, the same for the
        second highest.

    Raises:
        ValueError: bad arguments, or the image's channels do not match the model's input.
        PredictionCancelled: ``cancel`` returned True.
    """
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    if image.ndim != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be (H, W, C) with H, W >= 1, got shape {image.shape}")
    channels = int(model.input_shape[-1])
    num_classes = int(model.output_shape[-1])
    if image.shape[2] != channels:
        raise ValueError(f"image has {image.shape[2]} channels, the model expects {channels}")
    if num_classes > 255:
        raise ValueError(f"at most 255 classes fit a uint8 class map, model has {num_classes}")
    multiple = size_multiple(model)
    if tile_size < multiple or tile_size % multiple:
        raise ValueError(f"tile_size {tile_size} must be a multiple of {multiple} for this model")
    if not 0 <= overlap <= tile_size // 2:
        raise ValueError(f"overlap must be in [0, {tile_size // 2}], got {overlap}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    height, width = image.shape[:2]
    rows = axis_layout(height, tile_size, overlap, multiple)
    cols = axis_layout(width, tile_size, overlap, multiple)
    blender = _StripBlender(rows, cols, num_classes, height, width, runner_up)
    infer = _inference_function(model, flip)
    window = keras.ops.convert_to_tensor(
        (rows.window[:, np.newaxis] * cols.window[np.newaxis, :]).astype(np.float32))
    total = len(rows.starts) * len(cols.starts)
    done = 0
    for batch_positions, batch in _tile_batches(image, rows, cols, batch_size):
        if cancel is not None and cancel():
            raise PredictionCancelled(f"prediction cancelled after {done} of {total} tiles")
        weighted = keras.ops.convert_to_numpy(infer(keras.ops.convert_to_tensor(batch), window))
        for (row_index, col_start), tile in zip(batch_positions, weighted, strict=True):
            blender.add(row_index, col_start, tile)
        done += len(batch_positions)
        if progress is not None:
            progress(done, total)
    return blender.finish()


def _tile_batches(
    image: np.ndarray, rows: AxisLayout, cols: AxisLayout, batch_size: int
) -> Iterator[tuple[list[tuple[int, int]], np.ndarray]]:
    """Batches of tiles in raster order: ([(tile row index, column start), ...], (B, h, w, C)).

    Each row of tiles is cut from one reflect-padded strip of the image, so the padded image
    is never built whole. A batch may span two rows of tiles.
    """
    height, width = image.shape[:2]
    col_source = reflect_indices(np.arange(cols.padded) - cols.pad_before, width)
    col_slice = _as_slice(col_source)
    positions: list[tuple[int, int]] = []
    tiles: list[np.ndarray] = []
    for row_index, row_start in enumerate(rows.starts):
        row_source = reflect_indices(
            np.arange(row_start, row_start + rows.tile) - rows.pad_before, height
        )
        row_slice = _as_slice(row_source)
        strip = image[row_slice] if row_slice is not None else image[row_source]
        strip = strip[:, col_slice] if col_slice is not None else strip[:, col_source]
        strip = np.asarray(strip, dtype=np.float32)
        for col_start in cols.starts:
            positions.append((row_index, col_start))
            tiles.append(strip[:, col_start : col_start + cols.tile])
            if len(tiles) == batch_size:
                yield positions, np.stack(tiles)
                positions, tiles = [], []
    if tiles:
        yield positions, np.stack(tiles)


def _as_slice(indices: np.ndarray) -> slice | None:
    """A slice equal to ``indices`` when they are consecutive (no padding), else None."""
    first = int(indices[0])
    if np.array_equal(indices, np.arange(first, first + len(indices))):
        return slice(first, first + len(indices))
    return None


class _StripBlender:
    """Accumulates weighted probabilities for one strip of tile rows; emits finished rows.

    The accumulator covers padded rows ``[top, top + tile height)``. When the first tile of
    the next tile row arrives, rows above that row's start are final: they are normalised,
    turned into classes and confidence, and the remaining rows move up.
    """

    def __init__(
        self, rows: AxisLayout, cols: AxisLayout, num_classes: int, height: int, width: int,
        runner_up: bool = False,
    ) -> None:
        self.rows = rows
        self.cols = cols
        self.height = height
        self.width = width
        self.accumulator = np.zeros((rows.tile, cols.padded, num_classes), np.float32)
        self.row_weights = _weight_sums(rows)
        column_weights = _weight_sums(cols)[cols.pad_before : cols.pad_before + width]
        self.inverse_column_weights = (1.0 / column_weights).astype(np.float32)
        self.current_row = 0
        self.top = rows.starts[0]
        self.classes = np.empty((height, width), np.uint8)
        self.confidence = np.empty((height, width), np.uint8)
        self.second: np.ndarray | None = None
        self.second_confidence: np.ndarray | None = None
        if runner_up:
            self.second = np.empty((height, width), np.uint8)
            self.second_confidence = np.empty((height, width), np.uint8)

    def add(self, row_index: int, col_start: int, tile: np.ndarray) -> None:
        """Add one tile's weighted probabilities, (h, w, K) float32, at its place."""
        while row_index > self.current_row:
            self.current_row += 1
            self._emit_until(self.rows.starts[self.current_row])
        offset = self.rows.starts[row_index] - self.top
        height, width = tile.shape[:2]
        self.accumulator[offset : offset + height, col_start : col_start + width] += tile

    def finish(self) -> tuple[np.ndarray, ...]:
        """Emit the remaining rows; return (classes, confidence), (H, W) uint8 each, and
        (second, second_confidence) when the runner-up was asked for."""
        self._emit_until(self.rows.starts[-1] + self.rows.tile)
        if self.second is not None:
            return self.classes, self.confidence, self.second, self.second_confidence
        return self.classes, self.confidence

    def _to_uint8(self, weighted: np.ndarray, first: int, last: int) -> np.ndarray:
        """Blended sums of padded rows [first, last) as probabilities * 255, rounded."""
        weighted *= self.inverse_column_weights[np.newaxis, :]
        weighted *= (255.0 / self.row_weights[first:last])[:, np.newaxis]
        np.clip(weighted, 0.0, 255.0, out=weighted)
        return np.rint(weighted)

    def _emit_until(self, new_top: int) -> None:
        """Finalise padded rows [top, new_top) and shift the accumulator up."""
        count = new_top - self.top
        first = max(self.top, self.rows.pad_before)
        last = min(new_top, self.rows.pad_before + self.height)
        if last > first:
            block = self.accumulator[
                first - self.top : last - self.top,
                self.cols.pad_before : self.cols.pad_before + self.width,
            ]
            image_rows = slice(first - self.rows.pad_before, last - self.rows.pad_before)
            self.classes[image_rows] = np.argmax(block, axis=-1)
            best = block[..., 0].copy()  # a loop over classes: far faster than max(axis=-1)
            for class_index in range(1, block.shape[-1]):
                np.maximum(best, block[..., class_index], out=best)
            self.confidence[image_rows] = self._to_uint8(best, first, last)
            if self.second is not None and self.second_confidence is not None:
                others = block.copy()
                top = self.classes[image_rows].astype(np.intp)[..., np.newaxis]
                np.put_along_axis(others, top, -np.inf, axis=-1)
                second = np.argmax(others, axis=-1)
                self.second[image_rows] = second
                self.second_confidence[image_rows] = self._to_uint8(
                    np.take_along_axis(others, second[..., np.newaxis], axis=-1)[..., 0],
                    first, last)
        kept = self.accumulator.shape[0] - count
        if kept > 0:
            self.accumulator[:kept] = self.accumulator[count:]
            self.accumulator[kept:] = 0.0
        else:
            self.accumulator[:] = 0.0
        self.top = new_top
