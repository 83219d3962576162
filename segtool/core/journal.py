"""Edit journal: unsaved strokes appended to disk so a crash loses (almost) nothing.

Each finished edit appends one record (the changed rectangle and its new pixels,
zlib-compressed) to ``<project>/.segtool/journal/<stem>.journal``. Saving the mask deletes the
journal. After a crash, a journal newer than its mask can be replayed on top of the saved mask.

Record layout (little endian): ``b"SJ"``, y0, x0, height, width (uint32 each), compressed
length (uint32), compressed bytes. A volume's journal (one per volume) holds ``b"SZ"``
records with the slice index z (uint32) before y0, replayed onto a ``(Z, H, W)`` mask.
A torn record (a crash or a full disk mid-append) is skipped; complete records after it
are still replayed.
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
_SLICE_HEADER = struct.Struct("<2sIIIIII")
_SLICE_MAGIC = b"SZ"


class EditJournal:
    """Append-only journal of one image's unsaved mask edits."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, rect: tuple[int, int, int, int], pixels: np.ndarray,
               z: int | None = None) -> None:
        """Record that ``mask[y0:y0+h, x0:x0+w] = pixels`` ((h, w) uint8), on slice ``z`` of
        a volume when given; fsynced."""
        y0, x0, height, width = (int(v) for v in rect)
        if pixels.shape != (height, width):
            raise ValueError(f"pixels shape {pixels.shape} does not match rect {rect}")
        payload = zlib.compress(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes(), 1)
        if z is None:
            header = _HEADER.pack(_MAGIC, y0, x0, height, width, len(payload))
        else:
            header = _SLICE_HEADER.pack(_SLICE_MAGIC, int(z), y0, x0, height, width,
                                        len(payload))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as handle:
                start = handle.tell()
                try:
                    handle.write(header + payload)
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
        """Apply every complete record to ``mask`` ((H, W), or (Z, H, W) for a volume's
        slice records) in place; returns how many were applied."""
        data = read_regular_bytes(self.path) if self.path.exists() else b""
        volume = mask.ndim == 3
        magic = _SLICE_MAGIC if volume else _MAGIC
        offset, applied = 0, 0
        while 0 <= offset and offset + _HEADER.size <= len(data):
            record = (_parse_slice_record(data, offset, mask.shape) if volume
                      else _parse_record(data, offset, mask.shape))
            if record is None:
                # A torn record (a failed append) is skipped: later complete ones still count.
                offset = data.find(magic, offset + 1)
                continue
            (z, y0, x0, pixels), offset = record
            target = mask[z] if volume else mask
            target[y0 : y0 + pixels.shape[0], x0 : x0 + pixels.shape[1]] = pixels
            applied += 1
        return applied

    def clear(self) -> None:
        """Forget the journal (after the mask was saved)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _parse_record(
    data: bytes, offset: int, shape: tuple[int, ...]
) -> tuple[tuple[int, int, int, np.ndarray], int] | None:
    """The 2D record at ``offset`` as ((0, y0, x0, pixels), next offset), or None."""
    magic, y0, x0, height, width, length = _HEADER.unpack_from(data, offset)
    if magic != _MAGIC:
        return None
    return _pixels(data, offset + _HEADER.size, length, 0, y0, x0, height, width, shape)


def _parse_slice_record(
    data: bytes, offset: int, shape: tuple[int, ...]
) -> tuple[tuple[int, int, int, np.ndarray], int] | None:
    """The slice record at ``offset`` as ((z, y0, x0, pixels), next offset), or None."""
    if offset + _SLICE_HEADER.size > len(data):
        return None
    magic, z, y0, x0, height, width, length = _SLICE_HEADER.unpack_from(data, offset)
    if magic != _SLICE_MAGIC or z >= shape[0]:
        return None
    return _pixels(data, offset + _SLICE_HEADER.size, length, z, y0, x0, height, width,
                   shape[1:])


def _pixels(data: bytes, start: int, length: int, z: int, y0: int, x0: int, height: int,
            width: int, shape: tuple[int, ...]
            ) -> tuple[tuple[int, int, int, np.ndarray], int] | None:
    if start + length > len(data):
        return None
    try:
        raw = zlib.decompress(data[start : start + length])
    except zlib.error:
        return None
    if len(raw) != height * width or y0 + height > shape[0] or x0 + width > shape[1]:
        return None
    pixels = np.frombuffer(raw, np.uint8).reshape(height, width)
    return (z, y0, x0, pixels), start + length


def journal_path(project_root: Path, stem: str) -> Path:
    """Where the journal of image ``stem`` lives inside a project."""
    return Path(project_root) / ".segtool" / "journal" / f"{stem}.journal"
