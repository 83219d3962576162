"""One writer per project: the lock between real processes, and the stale-file refusals."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from store_helpers import stored_records

from segtool.cli import main
from segtool.core.errors import SegtoolError
from segtool.core.lock import ProjectBusy, ProjectLock, read_holder
from segtool.core.masks import UNLABELLED
from segtool.core.project import Project
from segtool.core.synthetic import nuclei_image

MakeProject = Callable[..., Project]

HOLD = (
    "import sys\n"
    "from segtool.core.lock import ProjectLock\n"
    "lock = ProjectLock.acquire(sys.argv[1], sys.argv[2])\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.fixture
def holder() -> Iterator[Callable[[Path, str], subprocess.Popen[str]]]:
    """``holder(root, what)``: another process holding the project's lock until killed."""
    processes: list[subprocess.Popen[str]] = []

    def start(root: Path, what: str) -> subprocess.Popen[str]:
        process = subprocess.Popen([sys.executable, "-c", HOLD, str(root), what],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in processes:
        process.kill()
        process.wait(timeout=30)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("segtool: error:")]


def image_folder(folder: Path) -> Path:
    folder.mkdir()
    assert cv2.imwrite(str(folder / "late.png"), nuclei_image(size=32, seed=9)[0])
    return folder


def test_train_and_add_refuse_while_a_window_holds_the_project_and_go_after_kill_9(
    make_project: MakeProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(n_images=1)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "data"))
    window = subprocess.Popen([sys.executable, "-m", "segtool", str(project.root)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while getattr(read_holder(project.root), "pid", None) != window.pid:
            assert window.poll() is None and time.monotonic() < deadline, "no window came up"
            time.sleep(0.1)
        before = (project.root / "segtool.json").read_bytes()

        for command in (["train", str(project.root), "--max-seconds", "1"],
                        ["add", str(project.root), "--images", str(image_folder(tmp_path / "i"))]):
            assert main(command) == 1
            lines = error_lines(capsys.readouterr().err)
            assert len(lines) == 1, lines
            assert str(project.root) in lines[0] and "the segtool window" in lines[0]
            assert f"process {window.pid} on {socket.gethostname()}, since " in lines[0]
        assert (project.root / "segtool.json").read_bytes() == before
        assert not any(project.models_dir.iterdir())
    finally:
        window.kill()  # kill -9: the OS drops the lock with the process
        window.wait(timeout=30)

    assert main(["add", str(project.root), "--images", str(tmp_path / "i")]) == 0
    assert "late" in Project.open(project.root).image_names()


def test_the_lock_names_its_holder_and_is_released(make_project: MakeProject, holder) -> None:
    project = make_project(n_images=1)
    other = holder(project.root, "segtool train")
    with pytest.raises(ProjectBusy) as busy:
        ProjectLock.acquire(project.root, "segtool add")
    assert busy.value.holder is not None and busy.value.holder.pid == other.pid
    assert ProjectLock.try_acquire(project.root, "segtool add") is None
    other.kill()
    other.wait(timeout=30)
    with ProjectLock.acquire(project.root, "segtool add") as lock:
        assert lock.held
    assert not lock.held


def test_segtool_json_changed_by_another_writer_is_not_overwritten(
    make_project: MakeProject,
) -> None:
    project = make_project(n_images=2)
    stale = Project.open(project.root)
    # Another program (no lock: an old segtool, a network disk) adds a class and reviews
    # an image meanwhile.
    file = project.project_file
    data = json.loads(file.read_text(encoding="utf-8"))
    data["classes"].append({"name": "debris", "colour": [1, 2, 3]})
    time.sleep(0.01)
    file.write_text(json.dumps(data), encoding="utf-8")
    first, second = project.image_names()
    Project.open(project.root).set_status(first, "reviewed")

    # A status change writes the image's own record, nobody else's.
    stale.set_status(second, "reviewed")
    assert {stem: record["status"] for stem, record in stored_records(project.root).items()
            } == {first: "reviewed", second: "reviewed"}
    # A settings change would rewrite segtool.json over the other's: refused.
    with pytest.raises(SegtoolError, match="changed on disk") as refused:
        stale.add_class("stale")

    assert str(file) in str(refused.value)
    assert [c["name"] for c in json.loads(file.read_text())["classes"]][-1] == "debris"
    assert [c.name for c in stale.classes][-1] != "stale"  # memory matches the disk again


def test_a_mask_saved_by_another_writer_is_not_overwritten(make_project: MakeProject) -> None:
    project = make_project(n_images=1)
    first = Project.open(project.root)
    second = Project.open(project.root)
    shape = first.image_shape("img-1")
    mine = first.load_mask("img-1", shape).copy()
    theirs = second.load_mask("img-1", shape).copy()
    theirs[:5] = 0
    second.save_mask("img-1", theirs)
    mine[10:20] = 1

    with pytest.raises(SegtoolError, match="changed on disk") as refused:
        first.save_mask("img-1", mine)

    assert str(first.mask_path("img-1")) in str(refused.value)
    on_disk = Project.open(project.root).load_mask("img-1", shape)
    assert (on_disk[:5] == 0).all() and (on_disk[10:20] == UNLABELLED).all()
    np.testing.assert_array_equal(on_disk, theirs)
