"""The per-image records of a project: ``segtool.sqlite`` beside ``segtool.json``.

One row an image: its stem, its file name in ``images/``, its status, and its other keys
(volume slices, windows, a referenced path, ...) as a JSON object, or NULL when it has none.
A status change is then one small SQLite transaction (about a millisecond) instead of a
rewrite of one big JSON file (300 ms at 100,000 images).

Atomicity is SQLite's: every change is a transaction in the rollback journal
(``segtool.sqlite-journal``, which only exists while one runs or after a crash, when the next
open rolls it back). The default rollback journal, not WAL: WAL needs shared memory, which
network file systems (a cluster's shared project folder) do not give. The project lock
(lock.py) keeps a second process from writing at the same time; rows are written one image
at a time, so a write never carries a stale copy of another image's record.

A store made fresh (a new project, a migration from segtool.json's format 1) is built in
memory and written atomically like every other file of the project. A store is the user's
file and may have been planted: it must be a regular file (not a link, FIFO or folder),
it is read with ``trusted_schema`` off, and its schema must be exactly segtool's; each row
is validated by the caller like segtool.json's records.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from segtool.core.atomic import atomic_write_bytes
from segtool.core.errors import SegtoolError
from segtool.core.files import not_regular

STORE_FILE = "segtool.sqlite"
STORE_VERSION = 1  # PRAGMA user_version of the store
_SCHEMA = ("CREATE TABLE images (stem TEXT PRIMARY KEY NOT NULL, file TEXT NOT NULL, "
           "status TEXT NOT NULL, extra TEXT)")
_CORE_KEYS = ("file", "status")
BUSY_TIMEOUT_S = 10.0  # a reader (segtool info) may briefly hold the file


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    """Every image record in the store at ``path``: stem -> {"file", "status", ...}.

    The records are not validated beyond their types (the caller checks them like
    segtool.json's); SegtoolError naming ``path`` when it is missing, no regular file, not
    a database, or holds anything but segtool's table.
    """
    with _connect(path) as db:
        _check_schema(db, path)
        try:
            rows = db.execute("SELECT stem, file, status, extra FROM images").fetchall()
        except sqlite3.Error as error:
            raise _problem(error, path) from None
    records: dict[str, dict[str, Any]] = {}
    for stem, file, status, extra in rows:
        if not all(isinstance(value, str) for value in (stem, file, status)):
            raise SegtoolError(f"malformed image store: a row holds a non-text stem, file or "
                               f"status ({stem!r:.40})", path)
        record: dict[str, Any] = {}
        if extra is not None:
            try:
                record = json.loads(extra) if isinstance(extra, str) else None
            except (ValueError, RecursionError):
                record = None
            if not isinstance(record, dict):
                raise SegtoolError(f"malformed image store: image {stem!r}: its other keys are "
                                   "not a JSON object", path)
        records[stem] = {**record, "file": file, "status": status}
    return records


def write_records(path: Path, records: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Insert or replace the rows of ``(stem, record)`` in one transaction.

    SegtoolError naming ``path`` when it cannot be written (full disk, read-only, gone);
    the store is then as it was.
    """
    rows = [_row(stem, record) for stem, record in records]
    if not rows:
        return
    with _connect(path) as db:
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise _problem(error, path) from None


def create_store(path: Path, records: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Write a new store holding exactly ``records`` at ``path``, atomically (replacing
    any file there; it keeps that file's mode). OSError naming ``path`` on failure."""
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.execute(_SCHEMA)
        db.execute(f"PRAGMA user_version = {STORE_VERSION}")
        db.executemany("INSERT INTO images VALUES (?, ?, ?, ?)",
                       (_row(stem, record) for stem, record in records))
        db.commit()
        data = db.serialize()
    atomic_write_bytes(path, data)


def _row(stem: str, record: dict[str, Any]) -> tuple[str, str, str, str | None]:
    extra = {key: value for key, value in record.items() if key not in _CORE_KEYS}
    return (stem, record["file"], record["status"],
            json.dumps(extra, ensure_ascii=False) if extra else None)


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the existing regular file ``path`` (never one that creates it)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise SegtoolError("missing: this project's image records are kept in it (was it "
                           "deleted or not copied with segtool.json?)", path) from None
    except OSError as error:
        raise SegtoolError(f"cannot read the image store ({error.strerror})", path) from None
    if not stat.S_ISREG(info.st_mode):  # lstat: a link is refused too
        raise not_regular(info.st_mode, path)
    uri = Path(os.path.abspath(path)).as_uri() + "?mode=rw"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                             check_same_thread=False)
    except sqlite3.Error as error:
        raise _problem(error, path) from None
    try:
        db.execute("PRAGMA trusted_schema = OFF")
        yield db
    finally:
        db.close()


def _check_schema(db: sqlite3.Connection, path: Path) -> None:
    """SegtoolError unless the store holds exactly segtool's table (and its key's index)."""
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        objects = db.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    except sqlite3.Error as error:
        raise _problem(error, path) from None
    if version > STORE_VERSION:
        raise SegtoolError(f"made by a newer segtool (image store version {version}, this one "
                           f"reads {STORE_VERSION})", path)
    expected = {("table", "images", _SCHEMA), ("index", "sqlite_autoindex_images_1", None)}
    if set(objects) != expected:
        names = sorted(f"{kind} {name}" for kind, name, _ in objects)
        raise SegtoolError("malformed image store: expected segtool's images table alone, "
                           f"found {', '.join(names) or 'nothing'}", path)


def _problem(error: sqlite3.Error, path: Path) -> SegtoolError:
    """``error`` worded for the user, naming ``path``."""
    primary = getattr(error, "sqlite_errorcode", 0) & 0xFF  # extended codes share the low byte
    words = {sqlite3.SQLITE_NOTADB: "is not an SQLite database (damaged or replaced); not read",
             sqlite3.SQLITE_CORRUPT: "the image store is damaged; not read",
             sqlite3.SQLITE_FULL: "not saved: the disk is full",
             sqlite3.SQLITE_READONLY: "not saved: the image store cannot be written",
             sqlite3.SQLITE_BUSY: "another program keeps the image store busy; try again"}
    return SegtoolError(words.get(primary, f"image store: {error}"), path)
