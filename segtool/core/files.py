"""Opening the user's files safely: regular files only.

Opening a FIFO blocks until someone writes to it, and a device can be endless; a mask,
segtool.json or a sidecar that is one would hang ``info``, ``export``, ``train`` and the
window. These helpers open without blocking, check that the file is a regular one, and
only then read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from segtool.core.errors import SegtoolError

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for binary reading; SegtoolError naming it when it is no regular file.

    FileNotFoundError and other OSErrors pass through for the caller to word.
    """
    fd = os.open(path, os.O_RDONLY | _NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise not_regular(mode, path)
        if _NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def not_regular(mode: int, path: str | os.PathLike[str]) -> SegtoolError:
    """The refusal of ``path``, whose ``st_mode`` is ``mode``: it is no regular file."""
    kind = ("a link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode)
            else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket")
    return SegtoolError(f"is {kind}, not a regular file; not read", path)


def read_regular_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of regular file ``path`` (see :func:`open_regular`)."""
    with open_regular(path) as handle:
        return handle.read()


def read_regular_text(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of regular file ``path`` (UnicodeDecodeError passes through)."""
    return read_regular_bytes(Path(path)).decode("utf-8")
