"""Editing a project's classes: rename, recolour, delete (remapping every mask)."""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np

from segtool.core.atomic import atomic_write_bytes, atomic_write_text
from segtool.core.errors import SegtoolError
from segtool.core.info import labelled_pixels
from segtool.core.masks import UNLABELLED, encode_mask, read_mask
from segtool.core.project import ClassInfo, Colour, Project, check_class_name, default_colour
from segtool.core.recovery import DELETE_INTENT
from segtool.core.volumes import encode_label_volume, read_label_volume

# Colours closer than this (summed channel difference) to one in use, or to white (an
# empty overlay on bright images), are skipped for a new class.
MIN_COLOUR_DISTANCE = 90


def _distance(a: Colour, b: Colour) -> int:
    return sum(abs(int(x) - int(y)) for x, y in zip(a, b, strict=True))


def next_class_colour(in_use: list[Colour]) -> Colour:
    """A colour for a new class: the first of the palette (then golden-ratio hues) that is
    far from every colour in use and from white."""
    candidates = (default_colour(index) for index in range(1, 256))
    for colour in candidates:
        if all(_distance(colour, other) >= MIN_COLOUR_DISTANCE
               for other in [*in_use, (255, 255, 255)]):
            return colour
    return default_colour(len(in_use))


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
        if path.exists() and not project.is_volume(stem):  # NIfTI labels have no palette
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

    All or nothing: every saved mask is read first (an unreadable one is named and nothing
    changes); the remapped masks go to temporary files, then an intent file records the
    renames and the new class list, then the masks are renamed into place and segtool.json
    saved. A run killed after the intent is written is finished at the next open
    (:mod:`segtool.core.recovery`); one killed before it changed nothing. The project keeps
    at least one class.
    """
    _check_index(project, index)
    if project.num_classes <= 1:
        raise SegtoolError("a project needs at least one class", project.project_file)
    project.check_writable(project.project_file)
    remaining = [info for i, info in enumerate(project.classes) if i != index]
    colours = [info.colour for info in remaining]
    stems = [stem for stem in project.image_names() if project.mask_path(stem).exists()]
    cleared = 0
    for stem in stems:  # validate every mask before anything is written
        mask = _read_any_mask(project, stem)
        cleared += int(np.count_nonzero(mask == index))
    renames: dict[str, str] = {}
    try:
        for stem in stems:
            path = project.mask_path(stem)
            project.check_writable(path)
            mask = _read_any_mask(project, stem)
            if not np.any((mask >= index) & (mask != UNLABELLED)):
                continue  # holds only lower classes: unchanged
            temporary = path.with_name(f".{path.name}.delete-class.tmp")
            remapped = remap_deleted_class(mask, index)
            if project.is_volume(stem):
                atomic_write_bytes(temporary, encode_label_volume(remapped,
                                                                  project.volume_info(stem)))
            else:
                atomic_write_bytes(temporary, encode_mask(remapped, colours))
            renames[temporary.name] = path.name
        intent = {"renames": renames,
                  "classes": [{"name": c.name, "colour": list(c.colour)} for c in remaining]}
        intent_path = project.root / DELETE_INTENT
        intent_path.parent.mkdir(exist_ok=True)
        atomic_write_text(intent_path, json.dumps(intent, ensure_ascii=False))
    except BaseException:
        for name in renames:
            with contextlib.suppress(OSError):
                (project.masks_dir / name).unlink()
        raise
    for temporary_name, name in renames.items():  # from here on, only forward
        os.replace(project.masks_dir / temporary_name, project.masks_dir / name)
    project.forget_mask_stamps()
    old_classes = list(project.classes)
    project.classes[:] = remaining
    try:
        project.save()
    except BaseException:
        project.classes[:] = old_classes  # the next open rolls the deletion forward
        raise
    intent_path.unlink()
    return cleared


def _read_any_mask(project: Project, stem: str) -> np.ndarray:
    """The saved mask of ``stem``: (H, W), or (Z, H, W) for a volume."""
    if project.is_volume(stem):
        return read_label_volume(project.mask_path(stem), project.volume_info(stem))
    return read_mask(project.mask_path(stem))


def _check_index(project: Project, index: int) -> None:
    if not 0 <= index < project.num_classes:
        raise ValueError(f"class index {index} out of range 0..{project.num_classes - 1}")


def _save_or_restore(project: Project, index: int, old: ClassInfo) -> None:
    try:
        project.save()
    except BaseException:
        project.classes[index] = old
        raise
