"""Where TensorFlow runs: GPU memory growth and CPU thread counts, set once per process.

TensorFlow accepts these settings only before it first runs an operation; afterwards it
raises RuntimeError. :func:`configure_devices` therefore does its work on the first call and
on later calls (or when something already ran TensorFlow) just describes what is in effect.
"""

from __future__ import annotations

import logging
import os
import time

from segtool.ml.backend import keras, tf

log = logging.getLogger(__name__)

_threads_fixed = False  # the first call's thread counts hold for the whole process


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads(cores: int | None = None) -> int:
    """Threads for TensorFlow: all cores up to 2, otherwise one left free for the GUI."""
    cores = available_cores() if cores is None else cores
    return cores if cores <= 2 else cores - 1


def configure_devices(threads: int | None = None) -> str:
    """Set up TensorFlow's devices and return a one-line description of where it runs.

    On each GPU, memory growth is enabled (TensorFlow otherwise takes all GPU memory at
    start). The CPU thread pools are set to ``threads`` intra-op threads (default
    :func:`default_threads`) and at most 2 inter-op threads. Calling it again, or after
    TensorFlow has started, changes nothing and returns the same kind of description.

    Returns:
        ``"GPU: <name>"`` (names joined by ", " when there are several) or
        ``"CPU (<n> threads)"``.

    Raises:
        ValueError: ``threads`` < 1.
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    wanted = default_threads() if threads is None else threads
    if tf is None:
        return _jax_devices()
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # TensorFlow already initialised this GPU: keep its setting.
            log.debug("memory growth on %s already fixed", gpu.name)
    global _threads_fixed
    if not _threads_fixed:
        _threads_fixed = True
        try:
            tf.config.threading.set_intra_op_parallelism_threads(wanted)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, wanted))
        except RuntimeError:
            log.debug("TensorFlow already started: thread counts stay as they are")
    if gpus:
        return "GPU: " + ", ".join(_gpu_name(gpu) for gpu in gpus)
    count = _intra_op_threads()
    return f"CPU ({count} thread{'s' if count != 1 else ''})"


def _jax_devices() -> str:
    """The description for Keras's JAX backend, whose devices and threads JAX sets itself."""
    import jax

    gpus = [device for device in jax.devices() if device.platform == "gpu"]
    if gpus:
        return "GPU: " + ", ".join(device.device_kind for device in gpus)
    return f"CPU ({available_cores()} threads, JAX)"


def _intra_op_threads() -> int:
    """The intra-op thread count in effect (TensorFlow reports 0 for "one per core")."""
    return tf.config.threading.get_intra_op_parallelism_threads() or available_cores()


def _gpu_name(gpu: object) -> str:
    details = tf.config.experimental.get_device_details(gpu)
    return str(details.get("device_name") or getattr(gpu, "name", "GPU"))


_PROBE_SHAPE = (16, 64, 64, 16)
_PROBE_FLOPS = 2 * 16 * 64 * 64 * 9 * 16 * 16
REFERENCE_STEP_GFLOP_EQUIVALENT = 15.6
"""Probe giga-FLOPs that one reference training step (U-Net depth 3, 8 filters, 16 patches
of 64 px) takes: calibrated on a 2-core AVX-512 CPU, where the probe ran at ~234 GFLOP/s
and the reference step at ~15 steps/s (bench/README.md)."""

_measured_speed: float | None = None


def reference_steps_per_second() -> float:
    """This device's speed in reference U-Net training steps per second, measured once.

    Times a 3x3 convolution (16 x 64 x 64 x 16, the reference model's first layer) on the
    default device, best of a few runs after a warm-up (~0.1 s on a CPU), and converts
    its rate with :data:`REFERENCE_STEP_GFLOP_EQUIVALENT`. The value is kept for the
    process, so later runs cost nothing.
    """
    global _measured_speed
    if _measured_speed is None:
        ops = keras.ops

        def convolve(images: object, kernel: object) -> object:
            return ops.conv(images, kernel, 1, "same")

        if tf is None:  # compiled, as JAX's training step is
            import jax

            convolve = jax.jit(convolve)
        images = keras.random.uniform(_PROBE_SHAPE, seed=1)
        kernel = keras.random.uniform((3, 3, 16, 16), seed=2)
        # Synchronise on a sum, not on the 4 MB output: on an H100 the probe with the copy
        # read ~16 reference steps/s while training ran ~100 steps/s (bench/README.md).
        ops.convert_to_numpy(ops.sum(convolve(images, kernel)))  # warm-up: kernels, threads
        best = float("inf")
        for _ in range(5):
            begin = time.perf_counter()
            for _ in range(4):
                result = convolve(images, kernel)
            ops.convert_to_numpy(ops.sum(result))
            best = min(best, (time.perf_counter() - begin) / 4)
        gflops = _PROBE_FLOPS / max(best, 1e-9) / 1e9
        _measured_speed = gflops / REFERENCE_STEP_GFLOP_EQUIVALENT
        log.info("device probe: %.0f GFLOP/s, ~%.1f reference steps/s", gflops, _measured_speed)
    return _measured_speed
