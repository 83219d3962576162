"""The terminal stays quiet: TensorFlow's start-up notices and Qt's chatter only with --debug."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap

from PySide6.QtCore import qWarning

from segtool.gui.quiet import quiet_terminal

LOAD = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(level=logging.DEBUG if "--debug" in sys.argv else logging.WARNING)
    from segtool.gui.workers.base import load_tensorflow_quietly
    load_tensorflow_quietly()
    import tensorflow
    tensorflow.config.list_physical_devices()  # where CUDA says "failed call to cuInit"
    print("loaded", file=sys.stderr)
""")


def test_loading_tensorflow_in_a_worker_prints_nothing_but_our_own():
    result = subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "loaded"
    assert result.stdout == ""


def test_qt_warnings_go_to_the_debug_log_not_the_terminal(caplog, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")  # one the user set is kept
    quiet_terminal(debug=False)
    with caplog.at_level(logging.DEBUG, logger="segtool.qt"):
        qWarning("QXcbConnection: XCB error 3 (BadWindow)")
    records = [r for r in caplog.records if r.name == "segtool.qt"]
    assert [r.levelno for r in records] == [logging.DEBUG]
    assert "BadWindow" in records[0].getMessage()
    import os
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    assert logging.getLogger("tensorflow").level == logging.ERROR


def test_segtool_train_on_the_command_line_prints_no_tensorflow_notices(make_project):
    import numpy as np

    from segtool.core.masks import UNLABELLED

    project = make_project(n_images=1, size=64)
    mask = np.full((64, 64), UNLABELLED, np.uint8)
    mask[:32], mask[40:] = 0, 1
    project.save_mask("img-1", mask)
    command = [sys.executable, "-m", "segtool", "train", str(project.root), "--epochs", "1",
               "--max-seconds", "600"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "is now the current model" in result.stdout
    assert result.stderr == "", result.stderr  # no cuInit, oneDNN or absl lines
    debug = subprocess.run([*command[:4], "--debug", *command[4:]], capture_output=True,
                           text=True, timeout=600)
    assert debug.returncode == 0 and "DEBUG" in debug.stderr  # --debug shows everything


def test_segtool_new_on_dicom_with_harmless_oddities_prints_no_pydicom_warnings(tmp_path):
    from volume_helpers import ct_like, write_dicom_series

    # A UID component with a leading zero: pydicom's validation warns about it on every
    # read; scanners write such values (the cardiac set has them).
    write_dicom_series(tmp_path / "ct" / "series", ct_like(slices=3),
                       series_uid="2.16.124.113543.6006.99.08975550791105350405")
    result = subprocess.run([sys.executable, "-m", "segtool", "new", str(tmp_path / "p"),
                             "--images", str(tmp_path / "ct")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "created" in result.stdout and "1 image(s)" in result.stdout
    assert result.stderr == "", result.stderr
