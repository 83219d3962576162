"""Rasterisation of the labelling tools (segtool.core.brush)."""

from __future__ import annotations

import numpy as np
import pytest

from segtool.core.brush import (
    capsule_region,
    flood_fill_region,
    grabcut_region,
    magic_wand_region,
    polygon_region,
    stroke_regions,
)
from segtool.core.rect import Rect


def as_full(region, shape):
    full = np.zeros(shape, dtype=bool)
    full[region.rect.slices] = region.inside
    return full


def brute_capsule(start, end, radius, shape):
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    (x0, y0), (x1, y1) = start, end
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    if length2 == 0:
        t = np.zeros_like(xs)
    else:
        t = np.clip(((xs - x0) * dx + (ys - y0) * dy) / length2, 0, 1)
    return (xs - x0 - t * dx) ** 2 + (ys - y0 - t * dy) ** 2 <= radius * radius + 1e-4


def test_single_dab_is_a_disc_and_its_rect_is_its_bounding_box():
    region = capsule_region((10, 10), (10, 10), 1.5, (32, 32))
    assert region.rect == Rect(9, 9, 3, 3)
    assert region.inside.all()  # radius 1.5 covers the 3x3 block (diagonal 1.41)
    region = capsule_region((10, 10), (10, 10), 1.0, (32, 32))
    assert int(region.inside.sum()) == 5  # the plus shape


@pytest.mark.parametrize("start,end,radius", [((3, 4), (40, 30), 2.0), ((50, 5), (2, 60), 0.5),
                                              ((10, 10), (11, 50), 6.0)])
def test_segment_matches_brute_force_distance(start, end, radius):
    shape = (64, 64)
    region = capsule_region(start, end, radius, shape)
    assert np.array_equal(as_full(region, shape), brute_capsule(start, end, radius, shape))


def test_fast_stroke_leaves_no_gap_and_pieces_stay_small():
    shape = (600, 600)
    start, end = (5.0, 5.0), (590.0, 580.0)
    regions = stroke_regions(start, end, 2.0, shape)
    assert len(regions) > 1
    union = np.zeros(shape, dtype=bool)
    for region in regions:
        union[region.rect.slices] |= region.inside
        assert region.rect.area < 100 * 100
    assert np.array_equal(union, brute_capsule(start, end, 2.0, shape))
    # every pixel of the centre line is covered: no gap
    for t in np.linspace(0, 1, 500):
        x, y = start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1])
        assert union[round(y), round(x)]


def test_segment_partly_outside_is_clipped():
    region = capsule_region((-5, -5), (3, 3), 2, (10, 10))
    assert region.rect.x == 0 and region.rect.y == 0
    assert region.inside[0, 0] and region.inside[3, 3]
    assert capsule_region((-50, -50), (-40, -40), 2, (10, 10)).is_empty


def test_flood_fill_takes_the_connected_region_of_the_clicked_label_only():
    mask = np.full((20, 20), 255, np.uint8)
    mask[:, 10] = 1  # a wall splits the unlabelled area in two
    mask[2:5, 2:5] = 2
    region = flood_fill_region(mask, 0, 0)
    full = as_full(region, mask.shape)
    expected = np.zeros_like(full)
    expected[:, :10] = True
    expected[2:5, 2:5] = False
    assert np.array_equal(full, expected)
    # clicking the wall selects the wall
    assert np.array_equal(as_full(flood_fill_region(mask, 10, 7), mask.shape), mask == 1)
    assert flood_fill_region(mask, 25, 3).is_empty


def test_flood_fill_is_four_connected():
    mask = np.full((5, 5), 255, np.uint8)
    mask[0, 0] = mask[1, 1] = 3
    assert int(flood_fill_region(mask, 0, 0).inside.sum()) == 1


def test_polygon_includes_clicked_vertices_and_interior():
    region = polygon_region([(10, 10), (19, 10), (19, 19), (10, 19)], (40, 40))
    full = as_full(region, (40, 40))
    expected = np.zeros((40, 40), bool)
    expected[10:20, 10:20] = True
    assert np.array_equal(full, expected)
    assert polygon_region([(1, 1), (5, 5)], (40, 40)).is_empty


def test_triangle_polygon_is_a_triangle():
    full = as_full(polygon_region([(0, 0), (30, 0), (0, 30)], (40, 40)), (40, 40))
    assert full[1, 1] and full[5, 20] and not full[25, 25] and not full[35, 1]


def test_magic_wand_grows_within_tolerance_and_stays_connected():
    image = np.zeros((40, 40), np.uint8)
    image[5:15, 5:15] = 200
    image[5, 10] = 215  # on the edge: outside the region at a tight tolerance
    image[8, 8] = 230  # enclosed: a hole, filled at any tolerance
    image[25:35, 25:35] = 200  # same brightness, not connected
    region = magic_wand_region(image, 6, 6, 20)
    expected = np.zeros((40, 40), bool)
    expected[5:15, 5:15] = True
    assert np.array_equal(as_full(region, image.shape), expected)
    tight = as_full(magic_wand_region(image, 6, 6, 5), image.shape)
    assert not tight[5, 10] and tight[6, 6] and tight[8, 8]
    # A noisy seed pixel does not decide: the seed's neighbourhood does.
    assert np.array_equal(as_full(magic_wand_region(image, 8, 8, 5), image.shape), tight)


def test_magic_wand_labels_a_textured_nucleus_without_rings_or_holes():
    image = np.full((40, 40), 30, np.uint8)
    yy, xx = np.mgrid[0:40, 0:40]
    disc = (xx - 20) ** 2 + (yy - 20) ** 2 <= 100
    ring = disc & ((xx - 20) ** 2 + (yy - 20) ** 2 >= 16)
    image[disc] = 150  # dark chromatin inside, brighter rim
    image[ring] = 200
    full = as_full(magic_wand_region(image, 20, 12, 30), image.shape)
    assert np.array_equal(full, disc)
    # Clicking the background: the object inside it is a hole that stays unselected.
    around = as_full(magic_wand_region(image, 2, 2, 30), image.shape)
    assert np.array_equal(around, ~disc)


def test_magic_wand_on_colour_compares_each_channel():
    image = np.zeros((20, 20, 3), np.uint8)
    image[:, :10] = (200, 50, 50)
    image[:, 10:] = (200, 50, 120)
    full = as_full(magic_wand_region(image, 0, 0, 30), (20, 20))
    assert full[:, :10].all() and not full[:, 10:].any()


def test_grabcut_finds_a_bright_square_in_a_box():
    rng = np.random.default_rng(0)
    image = rng.integers(20, 60, (120, 120, 3)).astype(np.uint8)
    image[40:80, 40:80] = rng.integers(200, 240, (40, 40, 3))
    region = grabcut_region(image, Rect(30, 30, 60, 60), iterations=4)
    full = as_full(region, (120, 120))
    truth = np.zeros((120, 120), bool)
    truth[40:80, 40:80] = True
    iou = (full & truth).sum() / (full | truth).sum()
    assert iou > 0.9
    assert not full[:30].any()  # nothing outside the box


def test_grabcut_downscales_large_crops_and_handles_a_full_image_box():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 40, (200, 200)).astype(np.uint8)
    image[50:150, 50:150] = 220
    region = grabcut_region(image, Rect(0, 0, 200, 200), max_pixels=60 * 60)
    full = as_full(region, (200, 200))
    truth = np.zeros((200, 200), bool)
    truth[50:150, 50:150] = True
    assert (full & truth).sum() / (full | truth).sum() > 0.85
    assert grabcut_region(image, Rect(5, 5, 2, 2)).is_empty
