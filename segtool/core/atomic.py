"""Atomic writes of user data: temp file in the same folder, flush, fsync, ``os.replace``."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` atomically.

    If the body raises, the temporary file is removed and ``path`` is left untouched,
    so an interrupted write never leaves a half-written file behind. The new file keeps an
    existing file's permission bits and group; a new one gets ``0o666`` less the umask,
    like a file any editor creates (not the ``0o600`` of a bare temporary file).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer mode must be 'wb' or 'w', not {mode!r}")
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        _take_mode(fd, target)
        encoding = "utf-8" if mode == "w" else None
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(error, OSError) and error.errno is not None \
                and error.filename != str(target):
            # A failed write or fsync names no file (ENOSPC: "No space left on device"):
            # name the one the user knows, not the temporary one.
            raise named_error(error, target) from error
        raise
    _fsync_dir(target.parent)


def named_error(error: OSError, path: str | os.PathLike[str]) -> OSError:
    """``error`` again (same errno, so the same subclass) but naming ``path``; an error
    without an errno (not the system's) is returned as it is."""
    if error.errno is None:
        return error
    return OSError(error.errno, error.strerror or str(error), os.fspath(path))


def _take_mode(fd: int, target: Path) -> None:
    """Give the temporary file ``fd`` the mode and group ``target`` has (or would get)."""
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        os.fchmod(fd, 0o666 & ~process_umask())
        return
    except OSError:
        return
    os.fchmod(fd, existing.st_mode & 0o7777)
    if hasattr(os, "fchown") and existing.st_gid != os.fstat(fd).st_gid:
        with contextlib.suppress(OSError):  # only a member of the group may hand it over
            os.fchown(fd, -1, existing.st_gid)
            os.fchmod(fd, existing.st_mode & 0o7777)  # chown clears setgid bits


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_writer(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_writer(path, "w") as handle:
        handle.write(text)


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable where the platform allows syncing a directory."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def process_umask() -> int:
    """The process's umask, read without changing it where the platform allows."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (briefly process-wide)
    os.umask(mask)
    return mask
