"""The one place TensorFlow and Keras are first imported, with the log noise turned down.

Other ml modules write ``from segtool.ml.backend import keras, tf`` so the environment
variables below are set before TensorFlow loads, whatever the import order.

segtool runs Keras 3 on TensorFlow. ``KERAS_BACKEND=jax`` runs the same training and
prediction on Keras's JAX backend instead (``tf`` is then None): for machines where
TensorFlow cannot be installed but JAX can, such as the GPU machine the benchmarks were
measured on (bench/README.md). Multi-device training (``tf.distribute``) and the logit
calibration stay TensorFlow-only.

TensorFlow's C++ side writes start-up notices straight to the process's stderr, whatever
``TF_CPP_MIN_LOG_LEVEL`` says ("failed call to cuInit", "Could not find cuda drivers",
oneDNN, CPU features). Unless logging is at DEBUG (``segtool --debug``), stderr is captured
while TensorFlow loads: those notices go to the debug log, anything else written meanwhile
goes on to stderr. This serves the CLI (``segtool train``) and the window's workers alike.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

log = logging.getLogger(__name__)

# absl's "All log messages before absl::InitializeLog()", glog-style I/W/E/F lines (oneDNN,
# CUDA), and the CPU-feature notice, which goes on over a second line of its own.
_TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:\d\d"
                       r"|To enable the following instructions: )")
_LOADING = threading.Lock()


def _import_tensorflow_quietly() -> object:
    with _LOADING:
        if "tensorflow" in sys.modules or logging.getLogger().isEnabledFor(logging.DEBUG):
            import tensorflow

            return tensorflow
        with tempfile.TemporaryFile() as capture:
            sys.stderr.flush()
            saved = os.dup(2)
            os.dup2(capture.fileno(), 2)
            try:
                import tensorflow

                tensorflow.config.list_physical_devices()  # CUDA's cuInit speaks here
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
    for line in text.splitlines():
        if _TF_NOISE.match(line):
            log.debug("tensorflow: %s", line)
        elif line.strip():
            print(line, file=sys.stderr)
    return tensorflow


tf = _import_tensorflow_quietly() if os.environ["KERAS_BACKEND"] == "tensorflow" else None
import keras  # noqa: E402

BACKEND = keras.backend.backend()


def inference_function(
    model: keras.Model, body: Callable[..., object], input_signature: list | None = None
) -> Callable[..., object]:
    """``body(outputs_of, *inputs)`` compiled once for the backend, where ``outputs_of(batch)``
    is ``model``'s inference-mode output; call the result with arrays, and read what it
    returns with ``keras.ops.convert_to_numpy``.

    TensorFlow traces it as a ``tf.function`` (``input_signature`` fixes its shapes); JAX
    compiles it with ``jax.jit`` over the model's current weights, passed in at each call, so
    weights that change between calls are the ones used. The model is held weakly.
    """
    model_ref = weakref.ref(model)
    if tf is not None:
        def traced(*inputs: object) -> object:
            return body(lambda batch: model_ref()(batch, training=False), *inputs)

        return tf.function(traced, input_signature=input_signature, autograph=False,
                           reduce_retracing=input_signature is None)
    import jax

    def pure(trainable: list, fixed: list, *inputs: object) -> object:
        def outputs_of(batch: object) -> object:
            return model_ref().stateless_call(trainable, fixed, batch, training=False)[0]

        return body(outputs_of, *inputs)

    compiled = jax.jit(pure)

    def call(*inputs: object) -> object:
        current = model_ref()
        return compiled([v.value for v in current.trainable_variables],
                        [v.value for v in current.non_trainable_variables], *inputs)

    return call


__all__ = ["BACKEND", "inference_function", "keras", "tf"]
