"""Device set-up: a description of where TensorFlow runs; safe to call more than once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from segtool.ml.backend import tf
from segtool.ml.device import configure_devices, default_threads


def test_describes_the_cpu_and_is_idempotent():
    first = configure_devices()
    assert first.startswith("CPU (") and first.endswith(")")  # this machine has no GPU
    assert configure_devices() == first
    tf.reduce_sum(tf.ones((4, 4))).numpy()  # TensorFlow has started: settings are fixed
    assert configure_devices(threads=1) == first  # no error, no change


def test_sets_threads_in_a_fresh_process_and_keeps_them_after_start():
    script = (
        "from segtool.ml.device import configure_devices\n"
        "from segtool.ml.backend import tf\n"
        "print(configure_devices(threads=1))\n"
        "print(configure_devices())\n"  # a later call (e.g. training after the GUI's) keeps 1
        "tf.reduce_sum(tf.ones((4, 4))).numpy()\n"
        "print(configure_devices(threads=2))\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.splitlines() == ["CPU (1 thread)"] * 3 + ["1"]


def test_default_leaves_a_core_for_the_gui_on_larger_machines():
    assert [default_threads(cores) for cores in (1, 2, 3, 8)] == [1, 2, 2, 7]
    with pytest.raises(ValueError):
        configure_devices(threads=0)
