"""Editing classes: rename, recolour, delete with mask remapping."""

import numpy as np
import pytest
from PIL import Image

from segtool.core.classes import class_pixel_count, delete_class, recolour_class, rename_class
from segtool.core.errors import SegtoolError
from segtool.core.masks import UNLABELLED, read_mask
from segtool.core.project import Project


def _labelled(make_project):
    project = make_project(n_images=1, size=32, class_names=["background", "cell", "debris"])
    stem = project.image_names()[0]
    mask = np.full((32, 32), UNLABELLED, np.uint8)
    mask[:8] = 0
    mask[8:16] = 1
    mask[16:20] = 2
    project.save_mask(stem, mask)
    return project, stem


def test_delete_class_unlabels_its_pixels_and_shifts_higher_classes(make_project):
    project, stem = _labelled(make_project)
    assert class_pixel_count(project, 1) == 8 * 32
    cleared = delete_class(project, 1)
    assert cleared == 8 * 32
    mask = read_mask(project.mask_path(stem))
    assert (mask[:8] == 0).all()
    assert (mask[8:16] == UNLABELLED).all()
    assert (mask[16:20] == 1).all()  # debris moved from 2 to 1
    reopened = Project.open(project.root)
    assert [c.name for c in reopened.classes] == ["background", "debris"]


def test_rename_refuses_duplicates_and_persists(make_project):
    project, _ = _labelled(make_project)
    with pytest.raises(SegtoolError, match="already exists"):
        rename_class(project, 1, "Debris")
    rename_class(project, 1, "nucleus")
    assert Project.open(project.root).classes[1].name == "nucleus"


def test_recolour_updates_project_and_mask_palette(make_project):
    project, stem = _labelled(make_project)
    recolour_class(project, 1, (1, 2, 3))
    assert Project.open(project.root).classes[1].colour == (1, 2, 3)
    palette = Image.open(project.mask_path(stem)).getpalette()
    assert palette[3:6] == [1, 2, 3]
