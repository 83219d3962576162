"""The label document: edits, strokes as undo steps, protection, subscribers."""

from __future__ import annotations

import numpy as np
import pytest

from segtool.core.labels import LabelDocument
from segtool.core.masks import UNLABELLED
from segtool.core.rect import Rect


def blank(height=64, width=64):
    return LabelDocument(np.full((height, width), 255, np.uint8))


def test_stroke_of_several_segments_is_one_undo_step():
    doc = blank()
    seen = []
    doc.subscribe(seen.append)
    doc.begin_stroke()
    doc.paint_segment((10, 10), (10, 10), 2, 1)
    doc.paint_segment((10, 10), (30, 10), 2, 1)
    doc.paint_segment((30, 10), (30, 40), 2, 1)
    rect = doc.end_stroke()
    assert len(seen) == 3 and all(r.area < 64 * 64 for r in seen)
    assert doc.mask[10, 20] == 1 and doc.mask[40, 30] == 1 and doc.mask[40, 10] == 255
    assert rect == Rect(8, 8, 25, 35)
    assert doc.modified
    undo_rect = doc.undo()
    assert (doc.mask == 255).all() and undo_rect == rect and seen[-1] == rect
    assert not doc.can_undo and doc.can_redo
    doc.redo()
    assert doc.mask[10, 20] == 1 and doc.mask[40, 30] == 1


def test_edits_outside_a_stroke_are_steps_of_their_own():
    doc = blank()
    doc.paint_segment((5, 5), (5, 5), 1, 1)
    doc.paint_segment((20, 20), (20, 20), 1, 2)
    doc.undo()
    assert doc.mask[20, 20] == 255 and doc.mask[5, 5] == 1


def test_mask_is_read_only_outside_the_document():
    doc = blank()
    with pytest.raises(ValueError):
        doc.mask[0, 0] = 1


def test_eraser_and_paint_unlabelled_only():
    doc = blank()
    doc.paint_segment((10, 10), (40, 10), 3, 1)
    doc.paint_unlabelled_only = True
    doc.paint_segment((25, 0), (25, 30), 2, 2)  # crosses the class-1 line
    assert doc.mask[10, 25] == 1  # protected
    assert doc.mask[20, 25] == 2 and doc.mask[2, 25] == 2
    doc.erase_segment((25, 10), (25, 10), 1)  # erasing is not restricted
    assert doc.mask[10, 25] == 255
    doc.paint_unlabelled_only = False
    doc.paint_segment((25, 20), (25, 20), 0, 1)
    assert doc.mask[20, 25] == 1


def test_painting_the_same_class_again_is_no_step():
    doc = blank()
    doc.paint_segment((10, 10), (10, 10), 2, 1)
    revision = doc.revision
    assert doc.paint_segment((10, 10), (10, 10), 2, 1).is_empty
    assert doc.revision == revision


def test_flood_fill_polygon_and_undo():
    doc = blank(32, 32)
    doc.paint_segment((16, 0), (16, 31), 0, 1)  # a one-pixel wall
    doc.flood_fill(3, 3, 2)
    assert (doc.mask[:, :16] == 2).all() and (doc.mask[:, 17:] == 255).all()
    doc.fill_polygon([(20, 20), (25, 20), (25, 25), (20, 25)], 3)
    assert (doc.mask[20:26, 20:26] == 3).all() and doc.mask[19, 20] == 255
    doc.undo()
    doc.undo()
    assert (doc.mask[:, :16] == 255).all() and doc.mask[5, 16] == 1


def test_magic_wand_and_grabcut_label_a_bright_square():
    rng = np.random.default_rng(3)
    image = rng.integers(10, 40, (96, 96)).astype(np.uint8)
    image[30:60, 30:60] = 210
    doc = blank(96, 96)
    doc.magic_wand(image, 40, 40, 15, 1)
    assert (doc.mask[30:60, 30:60] == 1).all() and (doc.mask == 1).sum() == 900
    doc.undo()
    doc.grabcut(image, Rect(22, 22, 46, 46), 2)
    labelled = doc.mask == 2
    assert labelled[35:55, 35:55].all() and labelled.sum() < 1100
    with pytest.raises(ValueError):
        doc.magic_wand(image[:10], 1, 1, 5, 1)


def test_accept_prediction_fills_unlabelled_pixels_above_threshold():
    doc = blank(8, 8)
    doc.paint_segment((0, 0), (0, 0), 0, 3)
    classes = np.ones((8, 8), np.uint8)
    confidence = np.full((8, 8), 200, np.uint8)
    confidence[7] = 50
    doc.accept_prediction(classes, confidence, threshold=128)
    assert doc.mask[0, 0] == 3 and doc.mask[1, 1] == 1 and (doc.mask[7] == 255).all()
    doc.undo()
    assert (doc.mask == 255).sum() == 63


def test_modified_flag_and_mark_saved():
    doc = blank()
    assert not doc.modified
    doc.paint_segment((1, 1), (1, 1), 1, 0)
    assert doc.modified
    doc.mark_saved()
    assert not doc.modified
    doc.undo()
    assert doc.modified


def test_bad_class_and_bad_mask_are_programmer_errors():
    doc = blank()
    with pytest.raises(ValueError):
        doc.paint_segment((1, 1), (1, 1), 1, 255)
    with pytest.raises(ValueError):
        LabelDocument(np.zeros((4, 4, 3), np.uint8))


def test_unsubscribe_stops_notifications_and_undo_ends_an_open_stroke():
    doc = blank()
    seen = []
    doc.subscribe(seen.append)
    doc.unsubscribe(seen.append)
    doc.begin_stroke()
    doc.paint_segment((3, 3), (9, 3), 1, 1)
    assert not seen and doc.in_stroke
    doc.undo()
    assert not doc.in_stroke and (doc.mask == 255).all()


def test_fill_without_contiguity_takes_every_pixel_of_the_label_in_one_undo_step():
    mask = np.full((20, 30), UNLABELLED, np.uint8)
    mask[:, 14:16] = 1  # a wall: two unlabelled sides
    mask[5:8, 2:5] = 2  # an island of class 2 on the left side
    document = LabelDocument(mask.copy())
    rect = document.flood_fill(0, 0, 0, contiguous=False)
    assert (document.mask[mask == UNLABELLED] == 0).all()
    assert (document.mask[mask != UNLABELLED] == mask[mask != UNLABELLED]).all()
    assert (rect.x, rect.y, rect.right, rect.bottom) == (0, 0, 30, 20)
    document.undo()
    assert (document.mask == mask).all()
    document.flood_fill(3, 6, 1, contiguous=False)  # the island only: no other class-2 pixel
    assert (document.mask == np.where(mask == 2, 1, mask)).all()
    assert document.flood_fill(-1, 0, 0, contiguous=False).is_empty  # outside: nothing
