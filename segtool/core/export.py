"""Exporting a project's masks: class-index PNGs, colour PNGs, or COCO RLE annotations.

Every exporter refuses an output folder inside the project's own folders and, unless
``force``, one that already holds a file it would write (see :mod:`segtool.core.outputs`).
Only images with a saved mask are exported; the others, and any whose mask cannot be
read or does not fit its image, are listed in the returned :class:`ExportReport`.

* ``index``: ``OUT/<stem>.png`` 8-bit grayscale, value = class index, 255 = unlabelled
  (plain grayscale rather than palette, so OpenCV and every other reader sees indices).
* ``color``: ``OUT/<stem>.png`` RGB in the class colours, unlabelled pixels black.
* ``coco``: ``OUT/annotations.json`` with ``images`` (file names as in the project's
  images/ folder), ``categories`` (``id`` = class index + 1, COCO ids start at 1) and one
  annotation per class present in each image: RLE ``segmentation`` (compressed counts as
  a string), ``area``, ``bbox`` [x, y, w, h], ``iscrowd`` 0. Unlabelled pixels belong to
  no annotation.
* ``nifti``: ``OUT/<stem>.nii.gz`` for every volume: uint8 labels in the image's own voxel
  order and affine (so nibabel, ITK-SNAP and Slicer overlay them on the image exactly), 255
  = unlabelled; with ``unlabelled_zero`` unlabelled is 0 and class i is written as i + 1 (the
  "clear label" convention of ITK-SNAP and Slicer). 2D images are skipped.

A volume's labelled slices are exported one by one in the PNG formats (``<stem>_z0042.png``,
slice 42 counted from 0 along the acquired axis, as segtool shows it) and in COCO (one image
entry per slice, ``file_name`` the volume's file and ``slice`` the index).
"""

from __future__ import annotations

import enum
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segtool.core.atomic import atomic_write_bytes, atomic_write_text
from segtool.core.errors import SegtoolError
from segtool.core.masks import encode_png, write_index_png
from segtool.core.outputs import check_output_folder
from segtool.core.project import Project
from segtool.core.volumes import write_label_volume

COCO_FILE = "annotations.json"
_SLICE_FILE = re.compile(r"_z\d{4,}\.png")


class ExportFormat(str, enum.Enum):
    """The export formats ``segtool export --format`` offers."""

    INDEX = "index"
    COLOR = "color"
    COCO = "coco"
    NIFTI = "nifti"


@dataclass
class ExportReport:
    """What an export wrote: stems exported, stems skipped with the reason, output folder."""

    out_dir: Path
    format: ExportFormat
    exported: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"exported {len(self.exported)} mask(s) as {self.format.value} to {self.out_dir}, "
            f"skipped {len(self.skipped)}"
        ]
        lines += [f"  skipped {stem}: {reason}" for stem, reason in self.skipped]
        return "\n".join(lines)


def export_index(
    project: Project, out_dir: str | os.PathLike[str], force: bool = False
) -> ExportReport:
    """Write every saved mask as ``out_dir/<stem>.png``, 8-bit class indices, 255 kept."""

    def write(name: str, mask: np.ndarray, folder: Path) -> None:
        write_index_png(folder / f"{name}.png", mask)

    return _export_pngs(project, Path(out_dir), ExportFormat.INDEX, write, force)


def export_color(
    project: Project, out_dir: str | os.PathLike[str], force: bool = False
) -> ExportReport:
    """Write every saved mask as ``out_dir/<stem>.png``, RGB class colours, unlabelled black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: project.num_classes] = np.asarray(project.colours, dtype=np.uint8)
    bgr_lut = np.ascontiguousarray(lut[:, ::-1])

    def write(name: str, mask: np.ndarray, folder: Path) -> None:
        atomic_write_bytes(folder / f"{name}.png", encode_png(bgr_lut[mask]))

    return _export_pngs(project, Path(out_dir), ExportFormat.COLOR, write, force)


def export_coco(
    project: Project, out_dir: str | os.PathLike[str], force: bool = False
) -> ExportReport:
    """Write ``out_dir/annotations.json``: COCO with one RLE annotation per class per image."""
    from pycocotools import mask as mask_utils  # imported here: only this export needs it

    check_output_folder(project, out_dir, [COCO_FILE], force)
    folder = _make_folder(Path(out_dir))
    report = ExportReport(folder, ExportFormat.COCO)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for name, stem, z, mask in _masks(project, report):
        image_id = len(images) + 1
        height, width = mask.shape
        entry: dict[str, Any] = {
            "id": image_id,
            "file_name": project.image_path(stem).name,
            "width": width,
            "height": height,
        }
        if z is not None:
            entry["slice"] = z
        images.append(entry)
        present = np.flatnonzero(np.bincount(mask.ravel(), minlength=256)[: project.num_classes])
        for class_index in present:
            binary = np.asfortranarray((mask == class_index).astype(np.uint8))
            rle = mask_utils.encode(binary)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(class_index) + 1,
                    "segmentation": {"size": [height, width], "counts": rle["counts"].decode()},
                    "area": float(mask_utils.area(rle)),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                    "iscrowd": 0,
                }
            )
        report.exported.append(name)
    categories = [
        {"id": index + 1, "name": info.name, "supercategory": "", "color": list(info.colour)}
        for index, info in enumerate(project.classes)
    ]
    document = {
        "info": {"description": f"exported by segtool from {project.root.name}"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    atomic_write_text(folder / COCO_FILE, json.dumps(document, ensure_ascii=False))
    return report


def export_nifti(
    project: Project, out_dir: str | os.PathLike[str], force: bool = False,
    unlabelled_zero: bool = False,
) -> ExportReport:
    """Write every volume's saved labels as ``out_dir/<stem>.nii.gz`` in the image's geometry
    (255 = unlabelled, or with ``unlabelled_zero`` 0 and classes moved up by one)."""
    volumes = [stem for stem in project.image_names() if project.is_volume(stem)]
    names = [f"{stem}.nii.gz" for stem in volumes if project.mask_path(stem).exists()]
    check_output_folder(project, out_dir, names, force)
    folder = _make_folder(Path(out_dir))
    report = ExportReport(folder, ExportFormat.NIFTI)
    lut = np.arange(256, dtype=np.uint8)
    if unlabelled_zero:
        lut = (lut + 1).astype(np.uint8)  # 255 + 1 wraps to 0: unlabelled
    for stem in project.image_names():
        if not project.is_volume(stem):
            report.skipped.append((stem, "a 2D image (export it as index, color or coco)"))
            continue
        if not project.mask_path(stem).exists():
            report.skipped.append((stem, "no mask saved"))
            continue
        try:
            info = project.volume_info(stem)
            labels = project.load_mask_volume(stem, info)
        except SegtoolError as error:
            report.skipped.append((stem, str(error)))
            continue
        write_label_volume(folder / f"{stem}.nii.gz", lut[labels], info)
        report.exported.append(stem)
    return report


def export_project(
    project: Project, out_dir: str | os.PathLike[str], fmt: ExportFormat | str,
    force: bool = False, unlabelled_zero: bool = False,
) -> ExportReport:
    """Export in format ``fmt`` ("index", "color", "coco" or "nifti"); ``force`` replaces
    files; ``unlabelled_zero`` applies to nifti."""
    fmt = ExportFormat(fmt)
    if fmt == ExportFormat.NIFTI:
        return export_nifti(project, out_dir, force, unlabelled_zero)
    exporters = {
        ExportFormat.INDEX: export_index,
        ExportFormat.COLOR: export_color,
        ExportFormat.COCO: export_coco,
    }
    return exporters[fmt](project, out_dir, force)


# --- shared ----------------------------------------------------------------------------------


def _export_pngs(
    project: Project,
    out_dir: Path,
    fmt: ExportFormat,
    write: Callable[[str, np.ndarray, Path], None],
    force: bool,
) -> ExportReport:
    names = []
    for stem in project.image_names():
        if not project.mask_path(stem).exists():
            continue
        if project.is_volume(stem):  # which slices are labelled is known once read: any
            names += [path.name for path in out_dir.glob(f"{stem}_z*.png")  # slice of it
                      if _SLICE_FILE.fullmatch(path.name[len(stem):])]
        else:
            names.append(f"{stem}.png")
    check_output_folder(project, out_dir, names, force)
    folder = _make_folder(out_dir)
    report = ExportReport(folder, fmt)
    for name, _stem, _z, mask in _masks(project, report):
        write(name, mask, folder)
        report.exported.append(name)
    return report


def slice_name(stem: str, z: int) -> str:
    """The exported name of slice ``z`` of volume ``stem``: ``<stem>_z0042``."""
    return f"{stem}_z{z:04d}"


def _masks(
    project: Project, report: ExportReport
) -> Iterator[tuple[str, str, int | None, np.ndarray]]:
    """Yield ``(name, stem, z, mask)`` for every image with a readable mask that fits its
    image, and for every labelled slice of a volume (``z`` None for a 2D image)."""
    for stem in project.image_names():
        if not project.mask_path(stem).exists():
            report.skipped.append((stem, "no mask saved"))
            continue
        try:
            if project.is_volume(stem):
                labels = project.load_mask_volume(stem)
            else:
                mask = project.load_mask(stem, project.image_shape(stem))
        except SegtoolError as error:
            report.skipped.append((stem, str(error)))
            continue
        if not project.is_volume(stem):
            yield stem, stem, None, mask
            continue
        for z in np.flatnonzero((labels != 255).any(axis=(1, 2))):
            yield slice_name(stem, int(z)), stem, int(z), labels[z]


def _make_folder(out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SegtoolError(f"cannot create the export folder ({error})", out_dir) from None
    return out_dir
