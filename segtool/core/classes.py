"""Editing a project's classes: rename, recolour, delete (remapping every mask)."""

from __future__ import annotations

import numpy as np

from segtool.core.errors import SegtoolError
from segtool.core.info import labelled_pixels
from segtool.core.masks import UNLABELLED, read_mask, write_mask
from segtool.core.project import ClassInfo, Colour, Project, check_class_name


def rename_class(project: Project, index: int, name: str) -> None:
    """Rename class ``index`` (names stay unique) and save segtool.json."""
    _check_index(project, index)
    others = [info.name for i, info in enumerate(project.classes) if i != index]
    check_class_name(name, others, project.project_file)
    old = project.classes[index]
    project.classes[index] = ClassInfo(name.strip(), old.colour)
    _save_or_restore(project, index, old)


def recolour_class(project: Project, index: int, colour: Colour) -> None:
    """Give class ``index`` a new RGB colour, save, and rewrite the masks' palettes."""
    _check_index(project, index)
    if len(colour) != 3 or not all(0 <= int(c) <= 255 for c in colour):
        raise SegtoolError(f"a colour is three values 0-255, got {colour!r}", project.project_file)
    old = project.classes[index]
    project.classes[index] = ClassInfo(old.name, tuple(int(c) for c in colour))
    _save_or_restore(project, index, old)
    for stem in project.image_names():
        path = project.mask_path(stem)
        if path.exists():
            project.rewrite_mask(stem, read_mask(path))


def class_pixel_count(project: Project, index: int) -> int:
    """How many pixels are labelled ``index`` in the project's readable saved masks."""
    _check_index(project, index)
    counts, _ = labelled_pixels(project)
    return int(counts[index])


def remap_deleted_class(mask: np.ndarray, index: int) -> np.ndarray:
    """``mask`` without class ``index``: its pixels become 255, higher classes move down one."""
    lut = np.arange(256, dtype=np.uint8)
    lut[index] = UNLABELLED
    lut[index + 1 : UNLABELLED] = np.arange(index, UNLABELLED - 1, dtype=np.uint8)
    return lut[mask]


def delete_class(project: Project, index: int) -> int:
    """Remove class ``index``: its pixels become unlabelled in every mask; returns how many.

    Masks are rewritten one by one (each atomically), then segtool.json. The project keeps
    at least one class.
    """
    _check_index(project, index)
    if project.num_classes <= 1:
        raise SegtoolError("a project needs at least one class", project.project_file)
    remaining = [info for i, info in enumerate(project.classes) if i != index]
    colours = [info.colour for info in remaining]
    cleared = 0
    for stem in project.image_names():
        path = project.mask_path(stem)
        if not path.exists():
            continue
        mask = read_mask(path)
        cleared += int(np.count_nonzero(mask == index))
        if np.any((mask >= index) & (mask != UNLABELLED)):
            write_mask(path, remap_deleted_class(mask, index), colours)
    project.classes[:] = remaining
    project.save()
    return cleared


def _check_index(project: Project, index: int) -> None:
    if not 0 <= index < project.num_classes:
        raise ValueError(f"class index {index} out of range 0..{project.num_classes - 1}")


def _save_or_restore(project: Project, index: int, old: ClassInfo) -> None:
    try:
        project.save()
    except BaseException:
        project.classes[index] = old
        raise
