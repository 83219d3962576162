"""Output folders of ``export`` and ``predict``: never inside the project, never over files.

An export or a prediction written into ``images/``, ``masks/`` or ``models/`` would replace
the user's source images, hand labels or models; an existing file in the output folder is
only replaced when the user asks for it (``--force``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from segtool.core.errors import SegtoolError
from segtool.core.project import Project


def project_own_folders(project: Project) -> list[Path]:
    """The real paths of the folders segtool keeps the project's data in (links resolved)."""
    folders = [project.images_dir, project.masks_dir, project.models_dir,
               project.root / ".segtool"]
    return [Path(os.path.realpath(folder)) for folder in folders]


def check_output_folder(
    project: Project, out_dir: str | os.PathLike[str], file_names: Iterable[str], force: bool
) -> Path:
    """Refuse ``out_dir`` if writing ``file_names`` into it could destroy the user's work.

    Refused (SegtoolError naming the folder or the first file): the project folder itself
    or any folder inside ``images/``, ``masks/``, ``models/`` or ``.segtool/`` (links
    resolved), a path that is not a folder, and, unless ``force``, a folder already holding
    one of ``file_names``. Returns ``out_dir`` as a Path; creates nothing.
    """
    folder = Path(out_dir)
    real = Path(os.path.realpath(folder))
    root = Path(os.path.realpath(project.root))
    if real == root:
        raise SegtoolError("is the project folder itself: choose a folder outside the project's "
                           "images/, masks/ and models/", folder)
    for own in project_own_folders(project):
        if real == own or own in real.parents:
            raise SegtoolError(f"is inside the project's own folder {own.name}/: writing there "
                               "would replace the project's files; choose another folder", folder)
    if folder.exists() and not folder.is_dir():
        raise SegtoolError("exists and is not a folder", folder)
    if not force and folder.is_dir():
        for name in file_names:
            target = folder / name
            if target.exists() or target.is_symlink():
                raise SegtoolError("already exists; not overwriting it (use --force to replace "
                                   "existing files)", target)
    return folder
