"""One writer per project: an exclusive OS lock on the project folder.

The window, ``segtool train`` and ``segtool add`` hold it while they have the project open;
a second one is refused with a line naming the holder (host, process id, since when). The
lock is the kernel's ``flock`` on the project folder itself, so it goes away with its
process, kill -9 included, and adds no file to the project. Who holds it is noted in a
small file in the temporary folder, keyed by the project's real path, for the next comer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from segtool.core.errors import SegtoolError

try:
    import fcntl
except ImportError:  # Windows: no flock; the stale-file checks in Project still apply
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

NOTES_FOLDER = "segtool-locks"  # in the temporary folder: who holds which project

@dataclass(frozen=True)
class LockHolder:
    """Who holds a project: what it is, on which host, its process id, since when."""

    what: str
    host: str
    pid: int
    since: str

    def describe(self) -> str:
        """``"the segtool window (process 1234 on lab-pc, since 2026-11-25 20:50:03)"``."""
        return f"{self.what} (process {self.pid} on {self.host}, since {self.since})"


class ProjectBusy(SegtoolError):
    """Another process (or window) holds the project's lock."""

    def __init__(self, root: Path, holder: LockHolder | None) -> None:
        self.holder = holder
        who = holder.describe() if holder else "another segtool process"
        super().__init__(f"in use by {who}; close it there, or wait until it is done", root)


class ProjectReadOnly(SegtoolError):
    """The project's folder cannot be written: it can only be viewed."""


class ProjectLock:
    """The exclusive lock of one project folder, held until :meth:`release`."""

    def __init__(self, root: Path, fd: int | None) -> None:
        self.root = root
        self._fd = fd

    @classmethod
    def acquire(cls, root: str | os.PathLike[str], what: str) -> ProjectLock:
        """Take the lock of project ``root`` for ``what`` (e.g. "segtool train").

        Raises ProjectBusy naming the holder if another one has it, ProjectReadOnly if the
        folder cannot be written (permissions or a read-only file system).
        """
        folder = Path(root)
        problem = _why_not_writable(folder)
        if problem:
            raise ProjectReadOnly(f"the folder cannot be written ({problem})", folder)
        if fcntl is None:
            log.warning("no file locking on this platform: %s is not protected", folder)
            return cls(folder, None)
        try:
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
                         | getattr(os, "O_CLOEXEC", 0))
        except OSError as error:
            raise SegtoolError(f"cannot open the folder ({error.strerror or error})",
                               folder) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ProjectBusy(folder, read_holder(folder)) from None
        holder = LockHolder(what, socket.gethostname(), os.getpid(),
                            time.strftime("%Y-%m-%d %H:%M:%S"))
        _write_note(folder, holder)
        log.debug("locked %s for %s", folder, what)
        return cls(folder, fd)

    @classmethod
    def try_acquire(cls, root: str | os.PathLike[str], what: str) -> ProjectLock | None:
        """Like :meth:`acquire`, but None when the project is busy or read-only."""
        try:
            return cls.acquire(root, what)
        except (ProjectBusy, ProjectReadOnly):
            return None

    @property
    def held(self) -> bool:
        """True until :meth:`release`."""
        return self._fd is not None

    def release(self) -> None:
        """Give the lock back (closing the file releases it); harmless when done twice."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        holder = read_holder(self.root)
        if holder is not None and holder.pid == os.getpid():
            with contextlib.suppress(OSError):
                _note_path(self.root).unlink()
        os.close(fd)

    def __enter__(self) -> ProjectLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        try:  # at interpreter exit the modules release() uses may be gone; the OS frees it
            self.release()
        except Exception:  # noqa: BLE001 - nothing to report from a finaliser
            pass


def read_holder(root: str | os.PathLike[str]) -> LockHolder | None:
    """The note of who holds project ``root``, or None if there is none or it is stale."""
    try:
        data = json.loads(_note_path(Path(root)).read_text(encoding="utf-8"))
        holder = LockHolder(str(data["what"]), str(data["host"]), int(data["pid"]),
                            str(data["since"]))
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    if holder.host == socket.gethostname() and not _alive(holder.pid):
        return None
    return holder


def _note_path(root: Path) -> Path:
    key = hashlib.sha256(os.path.realpath(root).encode("utf-8", "surrogateescape")).hexdigest()
    return Path(tempfile.gettempdir()) / NOTES_FOLDER / f"{key[:32]}.json"


def _write_note(root: Path, holder: LockHolder) -> None:
    """Leave the holder's note for others; the lock holds even if it cannot be written."""
    path = _note_path(root)
    try:
        path.parent.mkdir(mode=0o1777, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(path.parent, 0o1777)  # shared by every user, like /tmp itself
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(holder.__dict__), encoding="utf-8")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as error:
        log.debug("could not leave a lock note for %s: %s", root, error)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, belongs to someone else
    return True


def _why_not_writable(folder: Path) -> str | None:
    """Why ``folder`` cannot be written (read-only file system, no permission), or None."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except (OSError, AttributeError):
        pass
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    return None
