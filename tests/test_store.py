"""The image store (segtool.sqlite): status changes that write one row, the move of a
format 1 project's records out of segtool.json, and a planted or broken store."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys

import cv2
import numpy as np
import pytest
from store_helpers import make_format_1, plant_row, stored_records

from segtool.core.errors import SegtoolError
from segtool.core.lock import ProjectLock
from segtool.core.project import ImageStatus, Project


def small_project(root, count=3):
    source = root.parent / f"{root.name}-source"
    source.mkdir()
    for index in range(count):
        assert cv2.imwrite(str(source / f"img-{index}.png"), np.full((8, 8), index, np.uint8))
    project = Project.create(root)
    project.import_images(sorted(source.iterdir()))
    return project


def files_of(root):
    return {path.name: path.read_bytes() for path in root.iterdir() if path.is_file()}


def test_a_status_change_writes_its_row_and_leaves_segtool_json_alone(tmp_path):
    project = small_project(tmp_path / "p")
    settings = project.project_file.read_bytes()
    os.chmod(project.store_file, 0o640)
    project.set_status("img-1", ImageStatus.REVIEWED)
    project.set_window("img-2", None)  # nothing to change: nothing written
    assert project.project_file.read_bytes() == settings
    assert stored_records(project.root)["img-1"]["status"] == "reviewed"
    assert os.stat(project.store_file).st_mode & 0o777 == 0o640  # its mode kept
    assert Project.open(project.root).status("img-1") == ImageStatus.REVIEWED
    assert not (project.root / "segtool.sqlite-journal").exists()


def test_a_format_1_project_is_moved_into_the_store_when_opened(tmp_path):
    project = small_project(tmp_path / "p")
    project.set_status("img-0", ImageStatus.REVIEWED)
    records = stored_records(project.root)
    make_format_1(project.root)
    assert json.loads(project.project_file.read_text())["version"] == 1

    moved = Project.open(project.root)

    data = json.loads(project.project_file.read_text())
    assert data["version"] == 2 and "images" not in data
    assert stored_records(project.root) == records
    assert moved.status("img-0") == ImageStatus.REVIEWED
    assert moved.image_names() == ["img-0", "img-1", "img-2"]


def test_a_format_1_project_in_use_is_moved_by_its_first_write_only(tmp_path):
    project = small_project(tmp_path / "p")
    make_format_1(project.root)
    before = files_of(project.root)
    with ProjectLock.acquire(project.root, "another window"):
        viewer = Project.open(project.root)  # someone else has it: nothing written
        assert files_of(project.root) == before
    writer = Project.open(project.root)
    assert (project.root / "segtool.sqlite").is_file()
    writer.set_status("img-2", ImageStatus.REVIEWED)
    assert stored_records(project.root)["img-2"]["status"] == "reviewed"
    assert viewer.status("img-2") == ImageStatus.UNLABELLED


def test_a_failed_move_leaves_the_format_1_project_readable(tmp_path, monkeypatch):
    project = small_project(tmp_path / "p")
    make_format_1(project.root)
    before = files_of(project.root)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("segtool.core.project.atomic_write_text", full_disk)
    opened = Project.open(project.root)  # the store written, segtool.json not: still format 1
    assert json.loads(project.project_file.read_text())["version"] == 1
    assert {name: data for name, data in files_of(project.root).items()
            if name != "segtool.sqlite"} == before
    assert opened.image_names() == ["img-0", "img-1", "img-2"]
    monkeypatch.undo()
    again = Project.open(project.root)  # the stale store is ignored and written again
    again.set_status("img-1", ImageStatus.REVIEWED)
    assert json.loads(project.project_file.read_text())["version"] == 2
    assert Project.open(project.root).status("img-1") == ImageStatus.REVIEWED


def test_a_full_disk_keeps_the_status_on_disk_and_in_memory(tmp_path, monkeypatch):
    project = small_project(tmp_path / "p")
    before = project.store_file.read_bytes()

    def full_disk(path, records):
        raise SegtoolError("not saved: the disk is full", path)

    monkeypatch.setattr("segtool.core.project.write_records", full_disk)
    with pytest.raises(SegtoolError, match="disk is full"):
        project.set_status("img-0", ImageStatus.REVIEWED)
    assert project.status("img-0") == ImageStatus.UNLABELLED
    assert project.store_file.read_bytes() == before


def test_sqlites_full_disk_error_is_worded_and_names_the_store(tmp_path):
    from segtool.core.store import _problem

    project = small_project(tmp_path / "p", count=1)
    with contextlib.closing(sqlite3.connect(project.store_file)) as db:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own full disk
        with pytest.raises(sqlite3.OperationalError) as caught:
            db.executemany("INSERT INTO images VALUES (?, 'x.png', 'unlabelled', ?)",
                           [(f"x{i}", "y" * 4000) for i in range(50)])
    error = _problem(caught.value, project.store_file)
    assert str(error) == f"{project.store_file}: not saved: the disk is full"


PLANTED = {
    "not a database": lambda path: path.write_bytes(b"not sqlite at all, " * 100),
    "a folder": lambda path: (path.unlink(), path.mkdir()),
    "a FIFO": lambda path: (path.unlink(), os.mkfifo(path)),
    "a link": lambda path: (path.rename(path.with_name("real.sqlite")),
                            path.symlink_to(path.with_name("real.sqlite"))),
    "missing": lambda path: path.unlink(),
    "a trigger": lambda path: _execute(path, "CREATE TRIGGER t AFTER UPDATE ON images BEGIN "
                                             "DELETE FROM images; END"),
    "another table": lambda path: _execute(path, "CREATE TABLE notes (x)"),
    "a newer version": lambda path: _execute(path, "PRAGMA user_version = 99"),
    "a blob for a file": lambda path: plant_row(path.parent, "a", b"a.png", "unlabelled"),
    "extra not an object": lambda path: plant_row(path.parent, "a", "a.png", "unlabelled",
                                                  "[1, 2]"),
    "extra not JSON": lambda path: plant_row(path.parent, "a", "a.png", "unlabelled", "{"),
}


def _execute(path, statement):
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(statement)
        db.commit()


@pytest.mark.parametrize("plant", list(PLANTED.values()), ids=list(PLANTED))
def test_a_planted_or_broken_store_is_one_clear_error_and_nothing_changes(tmp_path, plant):
    project = small_project(tmp_path / "p")
    plant(project.store_file)
    before = files_of(project.root)
    with pytest.raises(SegtoolError) as caught:
        Project.open(project.root)
    assert caught.value.path == str(project.store_file)
    assert "\n" not in str(caught.value)
    assert files_of(project.root) == before


def test_the_cli_names_a_damaged_store_in_one_line(tmp_path):
    project = small_project(tmp_path / "p")
    project.store_file.write_bytes(b"\0" * 4096)
    result = subprocess.run([sys.executable, "-m", "segtool", "info", str(project.root)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"segtool: error: {project.store_file}: is not an SQLite database (damaged or "
        "replaced); not read"]


def test_commands_that_only_read_leave_a_format_1_project_as_it_is(tmp_path, capsys):
    from segtool.cli import main

    project = small_project(tmp_path / "p")
    make_format_1(project.root)
    before = files_of(project.root)
    assert main(["info", str(project.root)]) == 0
    assert main(["export", str(project.root), "--out", str(tmp_path / "out")]) == 0
    assert "images: 3" in capsys.readouterr().out
    assert files_of(project.root) == before
    assert main(["add", str(project.root), "--images", str(tmp_path / "p-source")]) == 0
    assert json.loads(project.project_file.read_text())["version"] == 2  # a writer moved them
