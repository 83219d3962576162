"""Finishing what a killed segtool left behind, at the next open of the project.

* A class deletion interrupted after its remapped masks were written (the intent file
  ``.segtool/delete-class.json`` exists) is rolled forward: the remaining renames are done
  and segtool.json gets the new class list. One interrupted earlier left only temporary
  files, which are removed: nothing had changed yet.
* Temporary files of atomic writes (``.NAME.XXXX.tmp``, ``.NAME.XXXX.tmp.keras``) are removed,
  and so is a model segtool named (``model-YYYYmmdd-HHMMSS.keras``) whose sidecar was never
  written: it was killed between the two writes, and the model is not current.

Only the process holding the project's lock may do this (another may be mid-write), so
:func:`recover_if_idle` takes the lock briefly and does nothing when the project is in use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path

from segtool.core.atomic import atomic_write_text
from segtool.core.errors import SegtoolError

log = logging.getLogger(__name__)

PROJECT_FILE = "segtool.json"
DELETE_INTENT = Path(".segtool") / "delete-class.json"
# Temporary names made by atomic_writer, save_model and delete_class: a leading dot, a random
# part, and .tmp (optionally followed by .keras).
_TEMPORARY = re.compile(r"^\..+\.tmp(\.keras)?$")
_FOLDERS = ("", "images", "masks", "models")
_SEGTOOL_MODEL = re.compile(r"^model-\d{8}-\d{6}(-\d+)?\.keras$")


def leftovers(root: Path) -> list[Path]:
    """Temporary files of interrupted writes in the project's folders."""
    found = []
    for sub in _FOLDERS:
        folder = root / sub
        with contextlib.suppress(OSError):
            found += [entry for entry in folder.iterdir()
                      if _TEMPORARY.match(entry.name) and entry.is_file()
                      and not entry.is_symlink()]
    return found + _models_without_sidecar(root)


def _models_without_sidecar(root: Path) -> list[Path]:
    """Models segtool saved whose sidecar never followed (never the current model)."""
    models = root / "models"
    try:
        orphans = [path for path in models.iterdir() if _SEGTOOL_MODEL.match(path.name)
                   and not path.with_suffix(".json").exists() and path.is_file()]
    except OSError:
        return []
    if not orphans:
        return []
    try:
        current = json.loads((root / PROJECT_FILE).read_text(encoding="utf-8"))["current_model"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return []  # cannot tell which one is current: leave them all
    return [path for path in orphans if path.name != current]


def needs_recovery(root: Path) -> bool:
    """True when an interrupted class deletion or temporary files wait to be dealt with."""
    return (root / DELETE_INTENT).exists() or bool(leftovers(root))


def recover_if_idle(root: Path) -> None:
    """Recover ``root`` if something needs it and no one holds the project."""
    if not needs_recovery(root):
        return
    from segtool.core.lock import ProjectLock  # the lock module needs nothing from here

    lock = ProjectLock.try_acquire(root, "segtool (finishing an interrupted change)")
    if lock is None:
        return
    with lock:
        recover(root)


def recover(root: Path) -> None:
    """Roll an interrupted class deletion forward, then remove temporary files.

    The caller holds the project's lock. Raises SegtoolError naming the file when the
    deletion cannot be completed.
    """
    intent = root / DELETE_INTENT
    if intent.exists():
        _finish_class_deletion(root, intent)
    for path in leftovers(root):
        with contextlib.suppress(OSError):
            path.unlink()
            log.info("removed %s, left by an interrupted write", path)


def _finish_class_deletion(root: Path, intent: Path) -> None:
    try:
        plan = json.loads(intent.read_text(encoding="utf-8"))
        renames = dict(plan["renames"])
        classes = list(plan["classes"])
        file = root / PROJECT_FILE
        for temporary, final in renames.items():
            if Path(temporary).name != temporary or Path(final).name != final:
                raise ValueError(f"bad file name {temporary!r} or {final!r}")
            source = root / "masks" / temporary
            if source.exists():
                os.replace(source, root / "masks" / final)
        data = json.loads(file.read_text(encoding="utf-8"))
        data["classes"] = classes
        atomic_write_text(file, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        intent.unlink()
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise SegtoolError(f"could not finish an interrupted class deletion ({error})",
                           intent) from None
    log.warning("finished a class deletion that was interrupted (%s)", intent)
