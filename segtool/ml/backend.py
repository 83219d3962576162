"""The one place TensorFlow and Keras are first imported, with the log noise turned down.

Other ml modules write ``from segtool.ml.backend import keras, tf`` so the environment
variables below are set before TensorFlow loads, whatever the import order.

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


tf = _import_tensorflow_quietly()
import keras  # noqa: E402

__all__ = ["keras", "tf"]
