"""Exports: class-index PNGs, colour PNGs, COCO RLE that decodes back to the mask."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from segtool.core.export import (
    ExportFormat,
    export_coco,
    export_color,
    export_index,
    export_project,
)
from segtool.core.masks import UNLABELLED


@pytest.fixture
def labelled(make_project):
    """A 3-class project with 3 images: two with masks (one 3 classes, one 1), one without."""
    project = make_project(n_images=3, size=48, class_names=["background", "nucleus", "debris"])
    first = np.full((48, 48), UNLABELLED, np.uint8)
    first[:20, :30] = 0
    first[25:40, 5:20] = 1
    first[30:35, 30:46] = 2
    first[44, 44] = 1  # a one-pixel region still gets exported
    second = np.full((48, 48), UNLABELLED, np.uint8)
    second[10:12, 10:40] = 1
    project.save_mask("img-1", first)
    project.save_mask("img-2", second)
    return project, {"img-1": first, "img-2": second}


def test_index_export_keeps_indices_and_unlabelled(labelled, tmp_path):
    project, masks = labelled
    report = export_index(project, tmp_path / "out")
    assert report.exported == ["img-1", "img-2"]
    assert report.skipped == [("img-3", "no mask saved")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img-1.png", "img-2.png"]
    for stem, mask in masks.items():
        # Plain grayscale, so OpenCV (which expands palettes to colour) reads indices too.
        read = cv2.imread(str(tmp_path / "out" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(read, mask)


def test_color_export_uses_class_colours_and_black_for_unlabelled(labelled, tmp_path):
    project, masks = labelled
    export_color(project, tmp_path / "out")
    rgb = np.array(Image.open(tmp_path / "out" / "img-1.png"))
    assert rgb.shape == (48, 48, 3) and rgb.dtype == np.uint8
    colours = project.colours
    assert tuple(rgb[5, 5]) == colours[0]
    assert tuple(rgb[30, 10]) == colours[1]
    assert tuple(rgb[32, 40]) == colours[2]
    assert tuple(rgb[47, 0]) == (0, 0, 0)
    labelled_pixels = masks["img-1"] != UNLABELLED
    assert (rgb[~labelled_pixels] == 0).all() and (rgb[labelled_pixels].sum(axis=1) > 0).all()


# pycocotools' decode trips a numpy 2 DeprecationWarning of its own.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_coco_rle_decodes_to_exactly_the_mask_pixels(labelled, tmp_path):
    project, masks = labelled
    report = export_coco(project, tmp_path / "coco")
    assert report.exported == ["img-1", "img-2"] and report.skipped[0][0] == "img-3"
    document = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert [c["name"] for c in document["categories"]] == ["background", "nucleus", "debris"]
    category_to_class = {c["id"]: index for index, c in enumerate(document["categories"])}
    images = {image["id"]: image for image in document["images"]}
    assert [image["file_name"] for image in images.values()] == ["img-1.png", "img-2.png"]
    by_image: dict[str, list] = {}
    for annotation in document["annotations"]:
        by_image.setdefault(images[annotation["image_id"]]["file_name"], []).append(annotation)
    for stem, mask in masks.items():
        annotations = by_image[f"{stem}.png"]
        present = sorted(set(np.unique(mask)) - {UNLABELLED})
        assert sorted(category_to_class[a["category_id"]] for a in annotations) == present
        rebuilt = np.full(mask.shape, UNLABELLED, np.uint8)
        for annotation in annotations:
            assert annotation["iscrowd"] == 0
            assert isinstance(annotation["segmentation"]["counts"], str)
            decoded = mask_utils.decode(annotation["segmentation"])
            class_index = category_to_class[annotation["category_id"]]
            np.testing.assert_array_equal(decoded.astype(bool), mask == class_index)
            assert annotation["area"] == float((mask == class_index).sum())
            ys, xs = np.nonzero(mask == class_index)
            assert annotation["bbox"] == [
                float(xs.min()),
                float(ys.min()),
                float(xs.max() - xs.min() + 1),
                float(ys.max() - ys.min() + 1),
            ]
            assert (rebuilt[decoded.astype(bool)] == UNLABELLED).all()  # no overlaps
            rebuilt[decoded.astype(bool)] = class_index
        np.testing.assert_array_equal(rebuilt, mask)  # 255 pixels in no annotation


def test_coco_ids_are_unique(labelled, tmp_path):
    project, _ = labelled
    export_coco(project, tmp_path / "coco")
    document = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    ids = [a["id"] for a in document["annotations"]]
    # One annotation per class present per image: 3 in img-1 (the dot joins class 1), 1 in img-2.
    assert len(ids) == len(set(ids)) == 4


def test_broken_mask_is_skipped_with_its_reason(labelled, tmp_path):
    project, _ = labelled
    project.mask_path("img-2").write_bytes(b"broken")
    report = export_project(project, tmp_path / "out", "index")
    assert report.exported == ["img-1"]
    skipped = dict(report.skipped)
    assert (
        "not a PNG image" in skipped["img-2"]
        and str(project.mask_path("img-2")) in skipped["img-2"]
    )
    assert skipped["img-3"] == "no mask saved"
    assert "skipped img-3: no mask saved" in str(report)


def test_export_project_dispatches_on_format(labelled, tmp_path):
    project, _ = labelled
    report = export_project(project, tmp_path / "c", ExportFormat.COCO)
    assert report.format == ExportFormat.COCO
    assert (tmp_path / "c" / "annotations.json").is_file()
    with pytest.raises(ValueError):
        export_project(project, tmp_path / "x", "yolo")
