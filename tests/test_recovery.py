"""What a kill -9 leaves behind is cleaned up at the next open, quietly, and only when idle."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from segtool.core.info import project_summary
from segtool.core.project import Project


def _leave_leftovers(project: Project) -> tuple[list[Path], list[Path]]:
    """Files a killed segtool leaves, and files that only look similar (to be kept)."""
    models, masks = project.models_dir, project.masks_dir
    leftovers = [
        models / ".model-20261125-101010.k2j3h4.tmp.keras",
        models / "model-20261125-101010.keras",  # killed between model and sidecar
        masks / ".img-1.png.a8c7d6.tmp",
        project.root / ".segtool.json.ffe1.tmp",
    ]
    kept = [
        models / "model-20261125-090000.keras",  # current, sidecar lost: not ours to drop
        models / "mine.keras",  # the user's own file
        masks / "img-1.png",
    ]
    for path in leftovers + kept:
        path.write_bytes(b"PK\x03\x04 not much")
    data = json.loads(project.project_file.read_text(encoding="utf-8"))
    data["current_model"] = "model-20261125-090000.keras"
    project.project_file.write_text(json.dumps(data), encoding="utf-8")
    return leftovers, kept


def test_leftovers_of_a_kill_are_removed_at_the_next_open_without_warnings(
    make_project, caplog
):
    project = make_project(n_images=1, size=32)
    leftovers, kept = _leave_leftovers(project)

    Project.open(project.root)

    assert [p for p in leftovers if p.exists()] == []
    assert all(p.exists() for p in kept)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        project_summary(Project.open(project.root))
    complaints = [r.getMessage() for r in caplog.records if "model-20261125-101010" in
                  r.getMessage() or ".tmp" in r.getMessage()]
    assert complaints == []


def test_leftovers_stay_while_another_process_holds_the_project(make_project):
    project = make_project(n_images=1, size=32)
    leftovers, _ = _leave_leftovers(project)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom segtool.core.lock import ProjectLock\n"
         "lock = ProjectLock.acquire(sys.argv[1], 'the segtool window')\n"
         "print('held', flush=True)\nsys.stdin.read()\n", str(project.root)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        Project.open(project.root)  # it may be writing those files right now
        assert all(p.exists() for p in leftovers)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    Project.open(project.root)
    assert [p for p in leftovers if p.exists()] == []


def test_a_read_only_open_leaves_them_to_a_writer(make_project):
    """Opening to read only (``segtool export``, continuous learning's looks at the labels)
    writes nothing, not even this clean-up, which is a writer's job: continuous learning
    looks at the labels every few seconds while the window saves masks."""
    project = make_project(n_images=1, size=32)
    leftovers, _ = _leave_leftovers(project)
    Project.open(project.root, read_only="this command only reads the project")
    assert all(p.exists() for p in leftovers)
    Project.open(project.root)
    assert [p for p in leftovers if p.exists()] == []
