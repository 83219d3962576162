"""Class colour overlays (segtool.core.overlay)."""

from __future__ import annotations

import numpy as np

from segtool.core.overlay import (
    class_edges,
    colour_lut,
    render_proposal,
    render_proposal_window,
    render_window,
    sample_grid,
)
from segtool.core.rect import Rect

COLOURS = [(0, 0, 0), (255, 0, 0), (0, 200, 100)]


def test_lut_colours_classes_and_leaves_unlabelled_transparent():
    lut = colour_lut(COLOURS)
    assert tuple(lut[1]) == (255, 0, 0, 255)
    assert tuple(lut[255]) == (0, 0, 0, 0)
    assert tuple(lut[7]) == (0, 0, 0, 0)
    half = colour_lut(COLOURS, alpha=128)
    assert tuple(half[2]) == (0, 100, 50, 128)  # premultiplied


def test_render_window_colours_just_the_window_through_the_lut():
    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 1, 2, 255], np.uint8), (30, 40))
    lut = colour_lut(COLOURS)
    out = render_window(mask, lut, slice(5, 15), slice(10, 30))
    assert out.shape == (10, 20, 4) and out.flags.c_contiguous
    assert np.array_equal(out, lut[mask[5:15, 10:30]])
    sampled = render_window(mask, lut, slice(0, 30, 4), slice(2, 40, 4))
    assert np.array_equal(sampled, lut[mask[0:30:4, 2:40:4]])


def test_sample_grid_aligns_to_the_step_and_clips():
    rows, cols = sample_grid((100, 80), Rect(13, 21, 30, 10), 4)
    assert (rows, cols) == (slice(20, 31, 4), slice(12, 43, 4))
    rows, cols = sample_grid((100, 80), Rect(-5, -5, 500, 500), 1)
    assert (rows, cols) == (slice(0, 100, 1), slice(0, 80, 1))
    rows, _ = sample_grid((100, 80), Rect(90, 120, 5, 5), 3)
    assert len(range(rows.start, rows.stop, rows.step)) == 0


def test_a_proposal_window_matches_the_same_part_of_the_whole_proposal():
    rng = np.random.default_rng(1)
    classes = np.zeros((60, 70), np.uint8)
    classes[10:40, 15:50] = 1
    classes[rng.random(classes.shape) < 0.02] = 2
    confidence = rng.integers(0, 256, classes.shape).astype(np.uint8)
    lut = colour_lut(COLOURS)
    for step in (1, 2, 3):
        whole = np.empty((*classes[::step, ::step].shape, 4), np.uint8)
        render_proposal(classes[::step, ::step], lut, whole, confidence[::step, ::step], 100)
        for rect in (Rect(0, 0, 70, 60), Rect(9, 12, 25, 31), Rect(33, 0, 37, 60)):
            rows, cols = sample_grid(classes.shape, rect, step)
            part = render_proposal_window(classes, lut, rows, cols, confidence, 100)
            top, left = rows.start // step, cols.start // step
            assert np.array_equal(part, whole[top : top + part.shape[0],
                                              left : left + part.shape[1]]), (step, rect)


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


def test_class_thresholds_in_a_window_match_the_whole_image_thresholded_first():
    from segtool.core.proposal import apply_thresholds

    rng = np.random.default_rng(2)
    classes = rng.integers(0, 3, (60, 70)).astype(np.uint8)
    confidence = rng.integers(90, 256, classes.shape).astype(np.uint8)
    second = ((classes + 1) % 3).astype(np.uint8)
    second_confidence = (rng.random(classes.shape) * confidence).astype(np.uint8)
    thresholds = {1: 0.7, 2: 0.3}
    shown, shown_confidence = apply_thresholds(classes, confidence, thresholds, 3,
                                               (second, second_confidence))
    assert np.count_nonzero(shown != classes) > 100
    lut = colour_lut(COLOURS)
    for step in (1, 2, 3):
        for rect in (Rect(0, 0, 70, 60), Rect(9, 12, 25, 31)):
            rows, cols = sample_grid(classes.shape, rect, step)
            drawn = render_proposal_window(classes, lut, rows, cols, confidence, 100,
                                           class_thresholds=thresholds, num_classes=3,
                                           runner_up=(second, second_confidence))
            expected = render_proposal_window(shown, lut, rows, cols, shown_confidence, 100)
            assert np.array_equal(drawn, expected), (step, rect)
