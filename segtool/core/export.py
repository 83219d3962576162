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
"""

from __future__ import annotations

import enum
import json
import os
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

COCO_FILE = "annotations.json"


class ExportFormat(str, enum.Enum):
    """The export formats ``segtool export --format`` offers."""

    INDEX = "index"
    COLOR = "color"
    COCO = "coco"


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

    def write(stem: str, mask: np.ndarray, folder: Path) -> None:
        write_index_png(folder / f"{stem}.png", mask)

    return _export_pngs(project, Path(out_dir), ExportFormat.INDEX, write, force)


def export_color(
    project: Project, out_dir: str | os.PathLike[str], force: bool = False
) -> ExportReport:
    """Write every saved mask as ``out_dir/<stem>.png``, RGB class colours, unlabelled black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: project.num_classes] = np.asarray(project.colours, dtype=np.uint8)
    bgr_lut = np.ascontiguousarray(lut[:, ::-1])

    def write(stem: str, mask: np.ndarray, folder: Path) -> None:
        atomic_write_bytes(folder / f"{stem}.png", encode_png(bgr_lut[mask]))

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
    for stem, mask in _masks(project, report):
        image_id = len(images) + 1
        height, width = mask.shape
        images.append(
            {
                "id": image_id,
                "file_name": project.image_path(stem).name,
                "width": width,
                "height": height,
            }
        )
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
        report.exported.append(stem)
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


def export_project(
    project: Project, out_dir: str | os.PathLike[str], fmt: ExportFormat | str,
    force: bool = False,
) -> ExportReport:
    """Export in format ``fmt`` ("index", "color" or "coco"); ``force`` replaces files."""
    exporters = {
        ExportFormat.INDEX: export_index,
        ExportFormat.COLOR: export_color,
        ExportFormat.COCO: export_coco,
    }
    return exporters[ExportFormat(fmt)](project, out_dir, force)


# --- shared ----------------------------------------------------------------------------------


def _export_pngs(
    project: Project,
    out_dir: Path,
    fmt: ExportFormat,
    write: Callable[[str, np.ndarray, Path], None],
    force: bool,
) -> ExportReport:
    names = [f"{stem}.png" for stem in project.image_names() if project.mask_path(stem).exists()]
    check_output_folder(project, out_dir, names, force)
    folder = _make_folder(out_dir)
    report = ExportReport(folder, fmt)
    for stem, mask in _masks(project, report):
        write(stem, mask, folder)
        report.exported.append(stem)
    return report


def _masks(project: Project, report: ExportReport) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(stem, mask)`` for every image with a readable mask that fits its image."""
    for stem in project.image_names():
        if not project.mask_path(stem).exists():
            report.skipped.append((stem, "no mask saved"))
            continue
        try:
            mask = project.load_mask(stem, project.image_shape(stem))
        except SegtoolError as error:
            report.skipped.append((stem, str(error)))
            continue
        yield stem, mask


def _make_folder(out_dir: Path) -> Path:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SegtoolError(f"cannot create the export folder ({error})", out_dir) from None
    return out_dir
