"""Class colour overlays (segtool.core.overlay)."""

from __future__ import annotations

import numpy as np

from segtool.core.overlay import class_edges, colour_lut, render_all, render_proposal, render_region
from segtool.core.rect import Rect

COLOURS = [(0, 0, 0), (255, 0, 0), (0, 200, 100)]


def test_lut_colours_classes_and_leaves_unlabelled_transparent():
    lut = colour_lut(COLOURS)
    assert tuple(lut[1]) == (255, 0, 0, 255)
    assert tuple(lut[255]) == (0, 0, 0, 0)
    assert tuple(lut[7]) == (0, 0, 0, 0)
    half = colour_lut(COLOURS, alpha=128)
    assert tuple(half[2]) == (0, 100, 50, 128)  # premultiplied


def test_render_region_writes_only_inside_the_rect():
    mask = np.full((40, 50), 255, np.uint8)
    mask[:, :] = 1
    out = np.full((40, 50, 4), 7, np.uint8)
    render_region(mask, colour_lut(COLOURS), Rect(10, 5, 20, 10), out)
    assert (out[5:15, 10:30] == (255, 0, 0, 255)).all()
    untouched = np.ones((40, 50), bool)
    untouched[5:15, 10:30] = False
    assert (out[untouched] == 7).all()


def test_render_region_on_a_non_contiguous_buffer_and_clipping():
    mask = np.zeros((10, 10), np.uint8)
    mask[2, 3] = 2
    big = np.zeros((10, 20, 4), np.uint8)
    out = big[:, ::2]  # not C-contiguous
    render_region(mask, colour_lut(COLOURS), Rect(-5, -5, 100, 100), out)
    assert tuple(out[2, 3]) == (0, 200, 100, 255) and tuple(out[0, 0]) == (0, 0, 0, 255)


def test_render_all_matches_lut_lookup():
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 1, 2, 255], np.uint8), (30, 30))
    out = np.zeros((30, 30, 4), np.uint8)
    lut = colour_lut(COLOURS)
    render_all(mask, lut, out)
    assert np.array_equal(out, lut[mask])


def test_class_edges_mark_both_sides_of_a_boundary():
    classes = np.zeros((6, 6), np.uint8)
    classes[2:4, 2:4] = 1
    edges = class_edges(classes)
    assert edges[2:4, 2:4].all()
    assert edges[1, 2] and edges[2, 1] and not edges[0, 0] and not edges[1, 1]


def test_proposal_draws_outlines_opaque_interior_faint_and_hides_low_confidence():
    classes = np.zeros((1100, 20), np.uint8)  # taller than one strip
    classes[500:530, 5:15] = 1
    confidence = np.full(classes.shape, 250, np.uint8)
    confidence[:100] = 10
    out = np.zeros((*classes.shape, 4), np.uint8)
    render_proposal(classes, colour_lut(COLOURS), out, confidence, threshold=128, fill_alpha=64)
    assert tuple(out[500, 8]) == (255, 0, 0, 255)  # edge (crosses the strip boundary at 512)
    assert tuple(out[511, 5]) == (255, 0, 0, 255) and tuple(out[512, 5]) == (255, 0, 0, 255)
    assert tuple(out[515, 10]) == (64, 0, 0, 64)  # interior, faint
    assert tuple(out[50, 10]) == (0, 0, 0, 0)  # below the threshold
    assert out[700, 10, 3] == 64
