"""Masks on disk: palette PNGs holding class indices, grayscale read too, checks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from segtool.core.errors import SegtoolError
from segtool.core.masks import UNLABELLED, check_mask, read_mask, write_mask

COLOURS = [(100, 100, 100), (230, 25, 75), (60, 180, 75)]


def sample_mask() -> np.ndarray:
    mask = np.full((20, 30), UNLABELLED, dtype=np.uint8)
    mask[2:8, 3:12] = 0
    mask[10:18, 5:25] = 1
    mask[12:14, 20:28] = 2
    return mask


def test_palette_png_round_trip_keeps_indices(tmp_path):
    path = tmp_path / "m.png"
    write_mask(path, sample_mask(), COLOURS)
    np.testing.assert_array_equal(read_mask(path), sample_mask())


def test_written_mask_is_a_palette_png_in_class_colours(tmp_path):
    path = tmp_path / "m.png"
    write_mask(path, sample_mask(), COLOURS)
    with Image.open(path) as image:
        assert image.mode == "P"
        rgb = np.array(image.convert("RGB"))
    # What any image viewer shows: class colours, unlabelled black.
    assert tuple(rgb[4, 5]) == COLOURS[0]
    assert tuple(rgb[15, 8]) == COLOURS[1]
    assert tuple(rgb[13, 22]) == COLOURS[2]
    assert tuple(rgb[0, 0]) == (0, 0, 0)


def test_plain_grayscale_png_is_read_as_indices(tmp_path):
    path = tmp_path / "gray.png"
    assert cv2.imwrite(str(path), sample_mask())
    np.testing.assert_array_equal(read_mask(path), sample_mask())


def test_non_ascii_mask_path(tmp_path):
    path = tmp_path / "maské 图.png"
    write_mask(path, sample_mask(), COLOURS)
    np.testing.assert_array_equal(read_mask(path), sample_mask())


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        ("rgb", "found mode RGB"),
        ("gray16", "found mode I"),
        ("text", "not a PNG image"),
        ("truncated", "damaged"),
    ],
)
def test_unusable_mask_files_raise_segtool_error(tmp_path, content, cause):
    path = tmp_path / "bad.png"
    if content == "rgb":
        cv2.imwrite(str(path), np.zeros((4, 4, 3), np.uint8))
    elif content == "gray16":
        cv2.imwrite(str(path), np.zeros((4, 4), np.uint16))
    elif content == "text":
        path.write_text("not a mask")
    else:
        write_mask(
            tmp_path / "good.png",
            np.random.default_rng(0).integers(0, 3, (64, 64), np.uint8),
            COLOURS,
        )
        data = (tmp_path / "good.png").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SegtoolError, match=cause) as caught:
        read_mask(path)
    assert caught.value.path == str(path)


def test_missing_mask_file(tmp_path):
    with pytest.raises(SegtoolError, match="not found"):
        read_mask(tmp_path / "none.png")


def test_check_mask_wrong_size_names_both_sizes():
    with pytest.raises(SegtoolError, match="mask is 30x20 pixels but its image is 31x20"):
        check_mask(sample_mask(), (20, 31), 3, "masks/a.png")


def test_check_mask_unknown_class_index():
    mask = sample_mask()
    mask[0, 0] = 7
    with pytest.raises(SegtoolError, match="class index 7, but the project has 3 classes") as e:
        check_mask(mask, (20, 30), 3, "masks/a.png")
    assert str(e.value).startswith("masks/a.png: ")
    check_mask(sample_mask(), (20, 30), 3)  # 0..2 and 255 are fine


def test_write_mask_rejects_non_uint8_arrays(tmp_path):
    with pytest.raises(ValueError):
        write_mask(tmp_path / "m.png", sample_mask().astype(np.int32), COLOURS)
