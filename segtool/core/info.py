"""A plain-text summary of a project: images, labelled pixels per class, models."""

from __future__ import annotations

from collections import Counter

import numpy as np

from segtool.core.errors import SegtoolError
from segtool.core.masks import read_mask
from segtool.core.models import list_models
from segtool.core.project import Project


def labelled_pixels(project: Project) -> tuple[np.ndarray, list[str]]:
    """Per-class labelled pixel counts ((num_classes,) int64) and unreadable-mask messages."""
    counts = np.zeros(project.num_classes, dtype=np.int64)
    problems = []
    for stem in project.image_names():
        path = project.mask_path(stem)
        if not path.exists():
            continue
        try:
            mask = project.load_mask_volume(stem) if project.is_volume(stem) else read_mask(path)
        except SegtoolError as error:
            problems.append(str(error))
            continue
        histogram = np.bincount(mask.ravel(), minlength=256)
        counts += histogram[: project.num_classes]
    return counts, problems


def project_summary(project: Project) -> str:
    """The text ``segtool info`` prints."""
    stems = project.image_names()
    statuses = Counter(project.status(stem).value for stem in stems)
    lines = [f"project {project.root}", f"images: {len(stems)}"]
    lines += [f"  {status}: {count}" for status, count in sorted(statuses.items())]
    volumes = [stem for stem in stems if project.is_volume(stem)]
    if volumes:
        slices = sum(project.slice_count(stem) for stem in volumes)
        labelled = sum(project.labelled_slices(stem) for stem in volumes)
        lines.append(f"  of them volumes: {len(volumes)} ({slices} slices, {labelled} labelled)")
    counts, problems = labelled_pixels(project)
    lines.append("labelled pixels per class:")
    for index, (info, count) in enumerate(zip(project.classes, counts, strict=True)):
        lines.append(f"  {index} {info.name}: {int(count)}")
    lines += [f"  warning: {problem}" for problem in problems]
    records = list_models(project.models_dir)
    lines.append(f"models: {len(records)}")
    for record in records:
        marker = "*" if record.name == project.current_model else " "
        ious = ", ".join(f"{k} {v:.3f}" for k, v in record.val_iou.items() if v is not None)
        lines.append(f" {marker} {record.name}  {record.created}  "
                     f"trained on {len(record.trained_on)} image(s)  val IoU: {ious or 'n/a'}")
    return "\n".join(lines)
