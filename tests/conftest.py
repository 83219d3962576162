"""Shared test setup: Qt runs offscreen; a factory for small projects on disk."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
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
