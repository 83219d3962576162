"""Shared test setup: Qt runs offscreen; a factory for small projects on disk."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import pytest

from segtool.core.project import Project
from segtool.core.synthetic import nuclei_image

# Before any test imports Qt: no display needed.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Project]:
    """``make_project(n_images=2, size=64, class_names=None)``: a project in tmp_path.

    Images are synthetic 16-bit nuclei PNGs named ``img-1`` ... ``img-N`` (seeds 1..N).
    """
    counter = iter(range(1_000_000))

    def factory(
        n_images: int = 2, size: int = 64, class_names: Sequence[str] | None = None
    ) -> Project:
        index = next(counter)
        project = Project.create(tmp_path / f"project-{index}", class_names)
        source = tmp_path / f"source-{index}"
        source.mkdir()
        paths = []
        for number in range(1, n_images + 1):
            image, _ = nuclei_image(size=size, seed=number)
            path = source / f"img-{number}.png"
            assert cv2.imwrite(str(path), image)
            paths.append(path)
        report = project.import_images(paths)
        assert not report.skipped, report
        return project

    return factory


@pytest.fixture
def qsettings_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """QSettings and the user's data folder inside tmp_path (no test touches the real HOME)."""
    from PySide6.QtCore import QSettings

    folder = tmp_path / "settings"
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(folder))
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return folder


@pytest.fixture(autouse=True)
def no_thread_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any test that leaves a QThread running (workers must be stopped).

    After a Qt test, collect its garbage here, on the main thread: a window left in a
    reference cycle and collected later by a worker thread's garbage collection deadlocks
    PySide6 (seen: the training thread destroying an old QMenu while the main thread
    destroyed another widget, each waiting for the other's lock)."""
    yield
    if "PySide6.QtCore" not in sys.modules:
        return
    if "qtbot" in request.fixturenames:
        gc.collect()
    from segtool.gui.workers import running_threads

    leftover = running_threads()
    for thread in leftover:
        thread.stop()
    assert not leftover, f"test left threads running: {leftover}"
