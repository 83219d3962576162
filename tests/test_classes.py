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


def _three_masks(make_project):
    project = make_project(n_images=3, size=32, class_names=["background", "cell", "debris"])
    for number, stem in enumerate(project.image_names()):
        mask = np.full((32, 32), UNLABELLED, np.uint8)
        mask[: 4 + number] = 2
        mask[20:] = 1
        project.save_mask(stem, mask)
    return project


def _files(project):
    return {p.relative_to(project.root): p.read_bytes()
            for p in project.root.rglob("*") if p.is_file()}


def test_delete_class_with_one_unreadable_mask_changes_nothing(make_project):
    project = _three_masks(make_project)
    broken = project.mask_path("img-3")
    broken.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    before = _files(project)

    with pytest.raises(SegtoolError) as refused:
        delete_class(project, 1)

    assert str(broken) in str(refused.value)
    assert _files(project) == before  # no mask remapped, segtool.json untouched
    assert [c.name for c in Project.open(project.root).classes] == ["background", "cell",
                                                                    "debris"]


def test_a_class_deletion_killed_halfway_is_finished_at_the_next_open(make_project):
    import subprocess
    import sys

    project = _three_masks(make_project)
    script = (
        "import os, signal, sys\n"
        "from segtool.core.classes import delete_class\n"
        "from segtool.core.project import Project\n"
        "real, renamed = os.replace, []\n"
        "def replace(source, target):\n"
        "    if str(target).endswith('.png') and os.path.basename(str(source)).startswith('.'):\n"
        "        if renamed:\n"
        "            os.kill(os.getpid(), signal.SIGKILL)  # after the first mask\n"
        "        renamed.append(target)\n"
        "    real(source, target)\n"
        "os.replace = replace\n"
        "delete_class(Project.open(sys.argv[1]), 1)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(project.root)], timeout=120)
    assert killed.returncode == -9
    # Half done on disk: one mask remapped, segtool.json still lists three classes.
    assert '"cell"' in project.project_file.read_text()

    reopened = Project.open(project.root)

    assert [c.name for c in reopened.classes] == ["background", "debris"]
    for number, stem in enumerate(reopened.image_names()):
        mask = read_mask(reopened.mask_path(stem))
        assert (mask[: 4 + number] == 1).all()  # debris is class 1 in every mask now
        assert (mask[20:] == UNLABELLED).all()  # cell pixels are unlabelled
    assert not [p for p in project.root.rglob("*") if p.name.endswith(".tmp")]
    assert not (project.root / ".segtool" / "delete-class.json").exists()
