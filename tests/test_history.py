"""Undo history records (segtool.core.history)."""

from __future__ import annotations

import numpy as np

from segtool.core.history import Change, History, StrokeRecorder
from segtool.core.rect import Rect


def make_change(mask, rect, value):
    old = mask[rect.slices].copy()
    new = old.copy()
    new[:] = value
    return Change.from_arrays(rect, old, new)


def test_change_reverts_and_applies_only_changed_pixels_in_a_tight_rect():
    mask = np.full((50, 50), 255, np.uint8)
    old = mask[10:30, 10:30].copy()
    new = old.copy()
    new[5:7, 3:9] = 4
    new[6, 8] = 7
    change = Change.from_arrays(Rect(10, 10, 20, 20), old, new)
    assert change.rect == Rect(13, 15, 6, 2)
    change.apply(mask)
    assert mask[16, 18] == 7 and mask[15, 13] == 4 and (mask == 255).sum() == 2500 - 12
    change.revert(mask)
    assert (mask == 255).all()


def test_uniform_values_are_stored_once():
    mask = np.full((1000, 1000), 255, np.uint8)
    change = make_change(mask, Rect(0, 0, 1000, 1000), 1)
    assert change.old.size == 1 and change.new.size == 1
    assert change.nbytes < 1000 * 1000 // 8 + 16  # a bitmap, not two copies of the pixels


def test_identical_arrays_make_no_change():
    block = np.zeros((4, 4), np.uint8)
    assert Change.from_arrays(Rect(0, 0, 4, 4), block, block.copy()) is None


def test_undo_redo_order_and_new_edit_clears_redo():
    mask = np.full((20, 20), 255, np.uint8)
    history = History()
    for value, rect in ((1, Rect(0, 0, 5, 5)), (2, Rect(3, 3, 5, 5))):
        change = make_change(mask, rect, value)
        change.apply(mask)
        history.push(change)
    history.undo().revert(mask)
    assert mask[4, 4] == 1 and mask[7, 7] == 255
    history.redo().apply(mask)
    assert mask[4, 4] == 2
    history.undo().revert(mask)
    assert history.can_redo
    change = make_change(mask, Rect(10, 10, 2, 2), 3)
    history.push(change)
    assert not history.can_redo and history.redo() is None


def test_memory_cap_drops_the_oldest_steps():
    mask = np.zeros((64, 64), np.uint8)
    history = History(max_bytes=1000)
    rng = np.random.default_rng(0)
    for step in range(10):
        rect = Rect(step * 6, 0, 6, 30)
        old = mask[rect.slices].copy()
        new = rng.integers(1, 250, old.shape).astype(np.uint8)  # ~380 bytes per step
        history.push(Change.from_arrays(rect, old, new))
        mask[rect.slices] = new
        assert history.nbytes <= 1000
    kept = len(history)
    assert 1 < kept < 10
    while (change := history.undo()) is not None:
        change.revert(mask)
    assert mask[:30, : (10 - kept) * 6].all()  # dropped steps stay applied
    assert not mask[:, (10 - kept) * 6 :].any()  # kept steps were undone


def test_oversized_single_step_is_kept():
    history = History(max_bytes=10)
    mask = np.full((100, 100), 255, np.uint8)
    history.push(make_change(mask, Rect(0, 0, 100, 100), 1))
    assert history.can_undo


def test_stroke_recorder_rebuilds_old_pixels_from_touched_tiles():
    mask = np.zeros((600, 600), np.uint8)
    mask[::7, ::3] = 9
    original = mask.copy()
    recorder = StrokeRecorder(mask, tile=64)
    for rect in (Rect(10, 10, 30, 30), Rect(100, 200, 200, 5), Rect(30, 30, 40, 40)):
        recorder.before_change(rect)
        mask[rect.slices] = 3
    change = recorder.finish()
    assert change.rect.union(Rect(10, 10, 1, 1)) == change.rect
    change.revert(mask)
    assert np.array_equal(mask, original)
    change.apply(mask)
    assert mask[35, 35] == 3 and mask[202, 250] == 3 and mask[100, 100] == original[100, 100]
