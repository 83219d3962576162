"""Interrupted writes leave the previous file intact and no temporary files behind."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from segtool.core import atomic
from segtool.core.atomic import atomic_write_bytes, atomic_write_text, atomic_writer
from segtool.core.masks import read_mask, write_mask
from segtool.core.project import Project

COLOURS = [(100, 100, 100), (230, 25, 75)]


def fail_replace(monkeypatch):
    """Make the final rename fail, as a crash or full disk at the last moment would."""

    def replace(source, target):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(atomic.os, "replace", replace)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_atomic_write_replaces_content(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second ✓")
    assert path.read_text(encoding="utf-8") == "second ✓"
    assert leftovers(tmp_path) == []


def test_writer_raising_midway_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old content")
    with pytest.raises(RuntimeError), atomic_writer(path) as handle:
        handle.write(b"new half")
        raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old content"
    assert leftovers(tmp_path) == []


def test_keyboard_interrupt_midway_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old content")
    with pytest.raises(KeyboardInterrupt), atomic_writer(path) as handle:
        handle.write(b"new")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old content"
    assert leftovers(tmp_path) == []


def test_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old content")
    fail_replace(monkeypatch)
    with pytest.raises(OSError, match="simulated"):
        atomic_write_bytes(path, b"new content")
    assert path.read_bytes() == b"old content"
    assert leftovers(tmp_path) == []


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError), atomic_writer(tmp_path / "f", "a"):
        pass


def test_interrupted_project_save_keeps_the_previous_segtool_json(tmp_path, monkeypatch):
    project = Project.create(tmp_path / "p", ["bg", "cell"])
    before = project.project_file.read_text()
    fail_replace(monkeypatch)
    with pytest.raises(OSError):
        project.add_class("debris")
    assert project.project_file.read_text() == before
    assert leftovers(project.root) == []
    assert project.num_classes == 2  # memory still matches the disk
    monkeypatch.undo()
    assert [c.name for c in Project.open(project.root).classes] == ["bg", "cell"]


def test_project_save_serialisation_error_keeps_the_previous_file(tmp_path, monkeypatch):
    project = Project.create(tmp_path / "p")
    before = project.project_file.read_text()

    def broken_dumps(*args, **kwargs):
        raise TypeError("not serialisable")

    monkeypatch.setattr("segtool.core.project.json.dumps", broken_dumps)
    with pytest.raises(TypeError):
        project.save()
    assert project.project_file.read_text() == before
    assert json.loads(before)["version"] == 2


def test_interrupted_mask_write_keeps_the_previous_mask(tmp_path, monkeypatch):
    path = tmp_path / "m.png"
    old = np.zeros((16, 16), np.uint8)
    write_mask(path, old, COLOURS)
    fail_replace(monkeypatch)
    with pytest.raises(OSError):
        write_mask(path, np.ones((16, 16), np.uint8), COLOURS)
    np.testing.assert_array_equal(read_mask(path), old)
    assert leftovers(tmp_path) == []


def test_interrupted_save_mask_keeps_mask_and_status(tmp_path, monkeypatch):
    project = Project.create(tmp_path / "p")
    source = tmp_path / "a.png"
    assert cv2.imwrite(str(source), np.zeros((16, 16), np.uint8))
    project.import_images([source])
    first = np.full((16, 16), 255, np.uint8)
    first[:4] = 0
    project.save_mask("a", first)
    json_before = project.project_file.read_text()
    fail_replace(monkeypatch)
    with pytest.raises(OSError):
        project.save_mask("a", np.ones((16, 16), np.uint8))
    monkeypatch.undo()
    np.testing.assert_array_equal(read_mask(project.mask_path("a")), first)
    assert project.project_file.read_text() == json_before
    assert leftovers(project.masks_dir) == [] and leftovers(project.root) == []


def test_interrupted_import_copy_leaves_images_folder_clean(tmp_path, monkeypatch):
    project = Project.create(tmp_path / "p")
    source = tmp_path / "a.png"
    assert cv2.imwrite(str(source), np.zeros((16, 16), np.uint8))
    fail_replace(monkeypatch)
    report = project.import_images([source])
    assert report.imported == [] and "could not copy" in report.skipped[0][1]
    assert os.listdir(project.images_dir) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saves_keep_a_shared_files_mode_and_group(make_project):
    project = make_project(n_images=1, size=32)
    mask = np.full((32, 32), 255, np.uint8)
    project.save_mask("img-1", mask)
    files = [project.mask_path("img-1"), project.project_file]
    other_group = next((g for g in os.getgroups() if g != os.getegid()), None)
    if other_group is None and os.geteuid() == 0:
        other_group = 1  # root may hand a file to any group
    for path in files:
        os.chmod(path, 0o664)
        if other_group is not None:
            os.chown(path, -1, other_group)

    mask[:4] = 1
    project.save_mask("img-1", mask)  # rewrites the mask and segtool.json (status)

    for path in files:
        assert oct(path.stat().st_mode & 0o777) == oct(0o664), path
        if other_group is not None:
            assert path.stat().st_gid == other_group, path


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask", [0o002, 0o022, 0o077])
def test_new_files_get_the_process_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "new.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o666 & ~umask
