"""Tiled prediction: throughput, overhead against the bare forward pass, peak memory.

    python bench/bench_predict.py [--sizes 2048 8192] [--depth 3] [--repeats 2] [--no-memory]

For each image size, the same U-Net (1 channel, 2 classes, base 16 filters) predicts the
whole image with ``predict_tiled`` (tile 256, overlap 32, batch 8) and, in the same run,
runs the bare forward pass over exactly the same batches of tiles (cut straight from the
image, logits fetched back to NumPy, no softmax, weighting, blending or output maps). Runs
alternate bare/tiled and the fastest of ``--repeats`` is kept for each. The ratio
tiled/bare is the cost of everything predict_tiled adds around the network; as other work
on a shared machine skews it, the time predict_tiled spends inside its own network calls is
also recorded and tiled/net (total over network time, same run) printed beside it.

Peak memory is measured in a fresh subprocess per size: resident memory once the model is
traced and the image exists, the peak resident memory during the prediction alone (Linux's
VmHWM, reset just before it; getrusage's lifetime peak elsewhere), and tracemalloc's peak of
NumPy/Python allocations during the prediction.

Writes nothing. Timings on a shared machine are noisy: compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc

import cv2
import numpy as np

from segtool.ml import predict as predict_module
from segtool.ml.backend import keras, tf
from segtool.ml.device import configure_devices
from segtool.ml.predict import axis_layout, predict_tiled, size_multiple
from segtool.ml.unet import build_unet

TILE, OVERLAP, BATCH = 256, 32, 8
MiB = 2**20


def make_model(depth: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_unet(1, 2, depth=depth, base_filters=16)


def make_image(size: int) -> np.ndarray:
    """(size, size, 1) float32 in [0, 1] with some structure (the content does not matter)."""
    rng = np.random.default_rng(0)
    small = rng.random((size // 8, size // 8)).astype(np.float32)
    image = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    return image[:, :, np.newaxis]


def bare_forward_pass(model: keras.Model, image: np.ndarray, forward: object) -> int:
    """Feed the same tiles, in the same batches, straight to the network. Returns tile count."""
    multiple = size_multiple(model)
    rows = axis_layout(image.shape[0], TILE, OVERLAP, multiple)
    cols = axis_layout(image.shape[1], TILE, OVERLAP, multiple)
    positions = [(top, left) for top in rows.starts for left in cols.starts]
    for first in range(0, len(positions), BATCH):
        corners = positions[first : first + BATCH]
        batch = np.stack([image[top : top + TILE, left : left + TILE] for top, left in corners])
        forward(tf.constant(batch)).numpy()  # type: ignore[attr-defined]
    return len(positions)


class TimedNetwork:
    """Wraps predict's compiled network call to add up the seconds spent inside it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._original = predict_module._inference_function

    def __enter__(self) -> TimedNetwork:
        def timed_inference_function(model: keras.Model) -> object:
            network = self._original(model)

            def call(tiles: object, window: object) -> object:
                start = time.perf_counter()
                result = network(tiles, window)  # synchronous on the CPU
                self.seconds += time.perf_counter() - start
                return result

            return call

        predict_module._inference_function = timed_inference_function
        return self

    def __exit__(self, *exc_info: object) -> None:
        predict_module._inference_function = self._original


def time_size(model: keras.Model, size: int, repeats: int) -> dict:
    image = make_image(size)
    forward = tf.function(
        lambda tiles: model(tiles, training=False),
        input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)],
    )
    forward(tf.constant(image[np.newaxis, :TILE, :TILE])).numpy()  # trace before timing
    bare_times, tiled_times, inside_ratios, tiles = [], [], [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        tiles = bare_forward_pass(model, image, forward)
        bare_times.append(time.perf_counter() - start)
        with TimedNetwork() as network:
            start = time.perf_counter()
            predict_tiled(model, image, tile_size=TILE, overlap=OVERLAP, batch_size=BATCH)
            tiled_times.append(time.perf_counter() - start)
        inside_ratios.append(tiled_times[-1] / network.seconds)
    bare, tiled = min(bare_times), min(tiled_times)
    megapixels = size * size / 1e6
    return {
        "size": size, "tiles": tiles, "bare_s": bare, "tiled_s": tiled,
        "bare_mps": megapixels / bare, "tiled_mps": megapixels / tiled, "ratio": tiled / bare,
        "inside_ratio": min(inside_ratios),
        "spread": max(max(bare_times) / bare, max(tiled_times) / tiled) - 1.0,
    }


def graph_overhead(model: keras.Model, pairs: int = 10) -> float:
    """Median per-batch time ratio: predict's compiled call (network, softmax, window) over
    the bare network, the two called alternately on the same batch so load hits both alike."""
    forward = tf.function(
        lambda tiles: model(tiles, training=False),
        input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)],
    )
    network = predict_module._inference_function(model)
    side = predict_module.hann_window(TILE)
    window = tf.constant(np.outer(side, side))
    image = make_image(TILE * 4)
    corners = [(top, left) for top in (0, TILE) for left in range(0, 4 * TILE, TILE)][:BATCH]
    batch = tf.constant(np.stack([image[y : y + TILE, x : x + TILE] for y, x in corners]))
    forward(batch).numpy()
    network(batch, window).numpy()
    ratios = []
    for _ in range(pairs):
        start = time.perf_counter()
        forward(batch).numpy()
        bare = time.perf_counter() - start
        start = time.perf_counter()
        network(batch, window).numpy()
        ratios.append((time.perf_counter() - start) / bare)
    return float(np.median(ratios))


def _max_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _proc_status_bytes(field: str) -> int | None:
    """VmRSS / VmHWM from /proc/self/status (Linux), else None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0), so VmHWM covers only what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def memory_child(size: int, depth: int) -> None:
    """Run in a fresh process: one prediction at ``size``; print a JSON line of figures.

    The peak is the kernel's high-water mark of RSS, reset just before the prediction, so
    model building and tracing (which peak higher than a prediction) are left out. Where
    that reset is impossible, the process's lifetime peak (getrusage) is reported instead.
    """
    configure_devices()
    model = make_model(depth)
    predict_tiled(model, make_image(512), tile_size=TILE, overlap=OVERLAP, batch_size=BATCH)
    before_image = _proc_status_bytes("VmRSS") or _max_rss_bytes()
    image = make_image(size)
    with_image = _proc_status_bytes("VmRSS") or _max_rss_bytes()
    exact = _reset_peak_rss()
    tracemalloc.start()
    classes, confidence = predict_tiled(
        model, image, tile_size=TILE, overlap=OVERLAP, batch_size=BATCH
    )
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = _proc_status_bytes("VmHWM") if exact else None
    print(json.dumps({
        "size": size, "image": image.nbytes, "outputs": classes.nbytes + confidence.nbytes,
        "rss_before_image": before_image, "rss_with_image": with_image,
        "peak_rss": peak or _max_rss_bytes(), "peak_is_prediction_only": peak is not None,
        "traced_peak": traced_peak,
    }))


def measure_memory(size: int, depth: int) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(size), "--depth", str(depth)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.depth)
        return

    device = configure_devices()
    model = make_model(args.depth)
    print(f"device: {device}; U-Net depth {args.depth}, base 16, 1 channel, 2 classes; "
          f"tile {TILE}, overlap {OVERLAP}, batch {BATCH}")
    predict_tiled(model, make_image(512), tile_size=TILE, overlap=OVERLAP)  # trace once
    header = (f"{'size':>6} {'tiles':>6} {'bare s':>8} {'tiled s':>8} {'bare MP/s':>10} "
              f"{'tiled MP/s':>11} {'tiled/bare':>11} {'tiled/net':>10} {'spread':>7}")
    print(header)
    for size in args.sizes:
        row = time_size(model, size, args.repeats)
        print(f"{size:>5}² {row['tiles']:>6} {row['bare_s']:>8.2f} {row['tiled_s']:>8.2f} "
              f"{row['bare_mps']:>10.2f} {row['tiled_mps']:>11.2f} {row['ratio']:>10.3f}x "
              f"{row['inside_ratio']:>9.3f}x {row['spread']:>6.0%}", flush=True)
    graph = graph_overhead(model)
    print(f"softmax x window inside the compiled call: {graph:.3f}x the bare network per batch "
          f"(interleaved);\nso tiled/bare estimated from load-independent parts: "
          f"{graph * row['inside_ratio']:.3f}x at {row['size']}²")
    print("tiled/bare: predict_tiled against the bare network pass over the same batches of\n"
          "tiles, best of each; tiled/net: predict_tiled's time against the time spent inside\n"
          "its own network calls in the same run (load-independent); spread: slowest/fastest\n"
          "repeat - 1, a measure of the machine's noise.")
    if args.no_memory:
        return
    print("\npeak memory of one prediction, fresh process per size (MiB)")
    print(f"{'size':>6} {'image':>7} {'outputs':>8} {'RSS+image':>10} {'peak RSS':>9} "
          f"{'peak-RSS+image':>15} {'numpy peak':>11}")
    for size in args.sizes:
        m = measure_memory(size, args.depth)
        note = "" if m["peak_is_prediction_only"] else "  (lifetime peak: no /proc reset)"
        print(f"{size:>5}² {m['image'] / MiB:>7.0f} {m['outputs'] / MiB:>8.0f} "
              f"{m['rss_with_image'] / MiB:>10.0f} {m['peak_rss'] / MiB:>9.0f} "
              f"{(m['peak_rss'] - m['rss_with_image']) / MiB:>15.0f} "
              f"{m['traced_peak'] / MiB:>11.0f}{note}", flush=True)
    print("RSS+image: resident memory with the model traced and the input image made;\n"
          "peak RSS: the highest resident memory during the prediction; numpy peak:\n"
          "tracemalloc's peak during the prediction (outputs included, TensorFlow's buffers not).")


if __name__ == "__main__":
    main()
