"""The demo project: generated fluorescence-like nuclei images, two of them partly labelled."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from segtool.core.masks import UNLABELLED
from segtool.core.project import Project
from segtool.core.synthetic import nuclei_image

DEMO_IMAGES = 6
DEMO_SIZE = 512


def default_demo_folder() -> Path:
    """``$XDG_DATA_HOME/segtool/demo`` (``~/.local/share/segtool/demo`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "segtool" / "demo"


def create_demo_project(folder: Path, images: int = DEMO_IMAGES, size: int = DEMO_SIZE) -> Project:
    """Open the demo project at ``folder``, creating it first if it does not exist.

    Images are 16-bit PNGs named ``nuclei-01.png`` ...; the first two have their top-left
    quarter labelled (background/nucleus) from the generator's ground truth.
    """
    folder = Path(folder)
    if (folder / "segtool.json").exists():
        return Project.open(folder)
    project = Project.create(folder, ["background", "nucleus"])
    truths = {}
    with tempfile.TemporaryDirectory() as scratch:
        paths = []
        for index in range(images):
            image, truth = nuclei_image(size=size, seed=100 + index)
            path = Path(scratch) / f"nuclei-{index + 1:02d}.png"
            if not cv2.imwrite(str(path), image):
                raise OSError(f"could not write {path}")
            paths.append(path)
            truths[path.stem] = truth
        project.import_images(paths)
    for stem in project.image_names()[:2]:
        mask = np.full((size, size), UNLABELLED, dtype=np.uint8)
        half = size // 2
        mask[:half, :half] = truths[stem][:half, :half]
        project.save_mask(stem, mask)
    return project
