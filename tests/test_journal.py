"""The edit journal: strokes survive a crash, a torn tail is ignored."""

import numpy as np

from segtool.core.journal import EditJournal, journal_path


def test_replay_restores_appended_edits(tmp_path):
    journal = EditJournal(journal_path(tmp_path, "img"))
    journal.append((2, 3, 2, 4), np.full((2, 4), 1, np.uint8))
    journal.append((0, 0, 1, 1), np.full((1, 1), 2, np.uint8))
    mask = np.full((8, 8), 255, np.uint8)
    assert EditJournal(journal.path).replay(mask) == 2
    assert (mask[2:4, 3:7] == 1).all() and mask[0, 0] == 2
    assert np.count_nonzero(mask != 255) == 9


def test_torn_last_record_is_ignored(tmp_path):
    journal = EditJournal(tmp_path / "j.journal")
    journal.append((0, 0, 2, 2), np.ones((2, 2), np.uint8))
    journal.append((4, 4, 2, 2), np.ones((2, 2), np.uint8))
    data = journal.path.read_bytes()
    journal.path.write_bytes(data[:-3])  # a crash in the middle of the second append
    mask = np.full((8, 8), 255, np.uint8)
    assert journal.replay(mask) == 1
    assert np.count_nonzero(mask != 255) == 4


def test_newer_than_and_clear(tmp_path):
    mask_file = tmp_path / "m.png"
    journal = EditJournal(tmp_path / "j.journal")
    assert not journal.newer_than(mask_file)
    journal.append((0, 0, 1, 1), np.ones((1, 1), np.uint8))
    assert journal.newer_than(mask_file)  # no saved mask yet
    journal.clear()
    assert not journal.exists()


def test_a_torn_record_does_not_hide_the_complete_records_after_it(tmp_path):
    journal = EditJournal(tmp_path / "j.journal")
    journal.append((0, 0, 2, 2), np.full((2, 2), 1, np.uint8))
    first = journal.path.read_bytes()
    journal.append((4, 4, 2, 2), np.full((2, 2), 2, np.uint8))
    torn = journal.path.read_bytes()[len(first):-5]  # a full disk cut this append short
    journal.path.write_bytes(first + torn)
    journal.append((6, 0, 1, 3), np.full((1, 3), 3, np.uint8))  # room again: later strokes
    mask = np.full((8, 8), 255, np.uint8)
    assert journal.replay(mask) == 2
    assert (mask[0:2, 0:2] == 1).all() and (mask[6, 0:3] == 3).all()
    assert (mask[4:6, 4:6] == 255).all()


def test_a_failed_append_names_the_journal_and_leaves_no_torn_record(tmp_path, monkeypatch):
    import errno
    import os

    import pytest

    journal = EditJournal(tmp_path / "j.journal")
    journal.append((0, 0, 2, 2), np.full((2, 2), 1, np.uint8))
    size = journal.path.stat().st_size

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as error:
        journal.append((4, 4, 2, 2), np.full((2, 2), 2, np.uint8))
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(journal.path)
    assert journal.path.stat().st_size == size


def test_the_document_tells_the_workspace_each_finished_step_no_window_needed(make_project):
    from segtool.core.workspace import Workspace

    project = make_project(n_images=1, size=32)
    workspace = Workspace(project)
    document = workspace.open("img-1").document
    journal = workspace.journal("img-1")

    document.begin_stroke()
    document.paint_segment((2, 2), (20, 2), 1.5, 1)
    assert not journal.exists()  # mid-stroke: nothing journalled yet
    document.end_stroke()
    replayed = np.full((32, 32), 255, np.uint8)
    assert journal.replay(replayed) == 1 and replayed[2, 10] == 1

    document.undo()  # an undo is a step the journal must know too
    replayed = np.full((32, 32), 255, np.uint8)
    assert journal.replay(replayed) == 2 and replayed[2, 10] == 255
