"""Edit journal: unsaved strokes appended to disk so a crash loses (almost) nothing.

Each finished edit appends one record (the changed rectangle and its new pixels,
zlib-compressed) to ``<project>/.segtool/journal/<stem>.journal``. Saving the mask deletes the
journal. After a crash, a journal newer than its mask can be replayed on top of the saved mask.

Record layout (little endian): ``b"SJ"``, y0, x0, height, width (uint32 each), compressed
length (uint32), compressed bytes. A torn record (a crash or a full disk mid-append) is
skipped; complete records after it are still replayed.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from segtool.core.atomic import named_error
from segtool.core.files import read_regular_bytes

_HEADER = struct.Struct("<2sIIIII")
_MAGIC = b"SJ"


class EditJournal:
    """Append-only journal of one image's unsaved mask edits."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, rect: tuple[int, int, int, int], pixels: np.ndarray) -> None:
        """Record that ``mask[y0:y0+h, x0:x0+w] = pixels`` ((h, w) uint8); fsynced."""
        y0, x0, height, width = (int(v) for v in rect)
        if pixels.shape != (height, width):
            raise ValueError(f"pixels shape {pixels.shape} does not match rect {rect}")
        payload = zlib.compress(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes(), 1)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as handle:
                start = handle.tell()
                try:
                    handle.write(_HEADER.pack(_MAGIC, y0, x0, height, width, len(payload))
                                 + payload)
                    handle.flush()
                    os.fsync(handle.fileno())
                except OSError:
                    with contextlib.suppress(OSError):  # drop the torn record if possible
                        handle.truncate(start)
                    raise
        except OSError as error:
            raise named_error(error, self.path) from error

    def exists(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def newer_than(self, mask_path: Path) -> bool:
        """True when the journal holds edits made after ``mask_path`` was last saved."""
        if not self.exists():
            return False
        return not mask_path.exists() or self.path.stat().st_mtime >= mask_path.stat().st_mtime

    def replay(self, mask: np.ndarray) -> int:
        """Apply every complete record to ``mask`` in place; returns how many were applied."""
        data = read_regular_bytes(self.path) if self.path.exists() else b""
        offset, applied = 0, 0
        while 0 <= offset and offset + _HEADER.size <= len(data):
            record = _parse_record(data, offset, mask.shape)
            if record is None:
                # A torn record (a failed append) is skipped: later complete ones still count.
                offset = data.find(_MAGIC, offset + 1)
                continue
            (y0, x0, pixels), offset = record
            mask[y0 : y0 + pixels.shape[0], x0 : x0 + pixels.shape[1]] = pixels
            applied += 1
        return applied

    def clear(self) -> None:
        """Forget the journal (after the mask was saved)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _parse_record(
    data: bytes, offset: int, shape: tuple[int, ...]
) -> tuple[tuple[int, int, np.ndarray], int] | None:
    """The record at ``offset`` as ((y0, x0, pixels), next offset), or None if it is not one."""
    magic, y0, x0, height, width, length = _HEADER.unpack_from(data, offset)
    start = offset + _HEADER.size
    if magic != _MAGIC or start + length > len(data):
        return None
    try:
        raw = zlib.decompress(data[start : start + length])
    except zlib.error:
        return None
    if len(raw) != height * width or y0 + height > shape[0] or x0 + width > shape[1]:
        return None
    return (y0, x0, np.frombuffer(raw, np.uint8).reshape(height, width)), start + length


def journal_path(project_root: Path, stem: str) -> Path:
    """Where the journal of image ``stem`` lives inside a project."""
    return Path(project_root) / ".segtool" / "journal" / f"{stem}.journal"
