"""What a project's image store holds on disk, read and written with sqlite3 directly (not
through segtool), and projects of the older format 1 (records inside segtool.json)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any


def stored_records(root: Path) -> dict[str, dict[str, Any]]:
    """Each image's record as segtool.sqlite holds it: stem -> {file, status, ...}."""
    with contextlib.closing(sqlite3.connect(root / "segtool.sqlite")) as db:
        rows = db.execute("SELECT stem, file, status, extra FROM images").fetchall()
    return {stem: {"file": file, "status": status, **json.loads(extra or "{}")}
            for stem, file, status, extra in rows}


def plant_row(root: Path, stem: Any, file: Any, status: Any, extra: Any = None) -> None:
    """Write one row into segtool.sqlite as a hand (or another program) would: unchecked
    (a list or dict goes in as its JSON text)."""
    stem, file, status = (json.dumps(value) if isinstance(value, (list, dict)) else value
                          for value in (stem, file, status))
    with contextlib.closing(sqlite3.connect(root / "segtool.sqlite")) as db:
        db.execute("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?)",
                   (stem, file, status, extra))
        db.commit()


def make_format_1(root: Path, images: dict[str, Any] | None = None) -> None:
    """Turn project ``root`` into format 1: its records (or ``images``) in segtool.json and
    no store, as a segtool of before the store left it."""
    file = root / "segtool.json"
    data = json.loads(file.read_text(encoding="utf-8"))
    data["version"] = 1
    data["images"] = stored_records(root) if images is None else images
    file.write_text(json.dumps(data), encoding="utf-8")
    (root / "segtool.sqlite").unlink()
