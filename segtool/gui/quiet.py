"""A quiet terminal: TensorFlow's, CUDA's and Qt's chatter only with ``--debug``.

TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` when it loads (in the training or prediction
worker, long after the window opened), so setting it here, before, is enough; nothing here
imports TensorFlow. A value the user exported is kept.
"""

from __future__ import annotations

import logging
import os
import warnings

from PySide6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler

log = logging.getLogger("segtool.qt")

# Loggers of libraries that report progress and notices at INFO/WARNING.
CHATTY_LOGGERS = ("tensorflow", "absl", "keras", "h5py", "matplotlib", "PIL")
_QT_LEVELS = {
    QtMsgType.QtDebugMsg: logging.DEBUG,
    QtMsgType.QtInfoMsg: logging.DEBUG,
    QtMsgType.QtWarningMsg: logging.DEBUG,  # "propagateSizeHints", xcb notices: not the user's
    QtMsgType.QtCriticalMsg: logging.ERROR,
    QtMsgType.QtFatalMsg: logging.CRITICAL,
}


def _qt_message(kind: QtMsgType, _context: QMessageLogContext, message: str) -> None:
    log.log(_QT_LEVELS.get(kind, logging.DEBUG), "%s", message)


def quiet_terminal(debug: bool) -> None:
    """Keep the terminal for segtool's own problems; with ``debug`` let everything through.

    Sets TensorFlow's C++ log level (3: nothing, which hides "failed call to cuInit" and the
    oneDNN notice; 0 with ``debug``), raises the chatty libraries' loggers to ERROR, hides
    their Python warnings, and sends Qt's messages to the ``segtool.qt`` logger (at DEBUG,
    except critical ones).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if debug else "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "0" if debug else "3")
    qInstallMessageHandler(_qt_message)
    if debug:
        return
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("tensorflow", "keras", "absl", "google.protobuf"):
        warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")
