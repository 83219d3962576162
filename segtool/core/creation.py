"""Making a project from a folder of images, all or nothing.

The project is built in a hidden folder beside the target (``.NAME.segtool-new-XXXX``) and
renamed into place when every image is copied, so a ``segtool new`` that is killed halfway
leaves no half-made project: running it again starts afresh (and removes the leftover).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from segtool.core.atomic import process_umask
from segtool.core.errors import SegtoolError
from segtool.core.images import DEFAULT_MAX_PIXELS
from segtool.core.project import PROJECT_FILE, ImportReport, Project

log = logging.getLogger(__name__)

STAGING_INFIX = ".segtool-new-"


def image_candidates(images_dir: str | os.PathLike[str]) -> list[Path]:
    """The regular files and the sub-folders (DICOM series) directly in ``images_dir``,
    sorted, hidden ones left out; SegtoolError if it is not a folder."""
    folder = Path(images_dir)
    if not folder.is_dir():
        raise SegtoolError("not a folder of images", folder)
    try:
        return sorted(path for path in folder.iterdir()
                      if path.is_file() or (path.is_dir() and not path.name.startswith(".")))
    except OSError as error:
        raise SegtoolError(f"cannot list the folder ({error.strerror or error})", folder) from None


def check_new_project_folder(target: str | os.PathLike[str], images_dir: str | os.PathLike[str]
                             ) -> None:
    """Refuse a folder a new project must not be made in (SegtoolError naming it).

    Refused: the root of a file system, the images folder itself or a folder inside it, a
    path that is not a folder, a project already, and any folder that is not empty.
    """
    folder = Path(target)
    real = Path(os.path.realpath(folder))
    real_images = Path(os.path.realpath(images_dir))
    if real == Path(real.anchor):
        raise SegtoolError("is the root of the file system; choose an empty folder for the "
                           "project", folder)
    if real == real_images or real_images in real.parents:
        raise SegtoolError(f"is inside the folder of images ({images_dir}); choose an empty "
                           "folder elsewhere for the project", folder)
    if not folder.exists():
        return
    if not folder.is_dir():
        raise SegtoolError("exists and is not a folder", folder)
    if (folder / PROJECT_FILE).exists():
        raise SegtoolError(f"already a project (holds {PROJECT_FILE}); add images to it with "
                           "'segtool add'", folder)
    try:
        entries = sorted(entry.name for entry in folder.iterdir())
    except OSError as error:
        raise SegtoolError(f"cannot list the folder ({error.strerror or error})", folder) from None
    if entries:
        raise SegtoolError(f"is not empty (holds {entries[0]!r}); a new project needs an empty "
                           "or new folder", folder)


def create_project_from_folder(
    target: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    class_names: Sequence[str] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[int, int], None] | None = None,
    reference: bool = False,
) -> tuple[Project, ImportReport]:
    """Make a project in ``target`` holding copies of the readable images in ``images_dir``
    (with ``reference``: referencing them where they are, see Project.import_images).

    All or nothing: until the last image is copied, ``target`` stays as it was (missing or
    empty). Leftovers of an interrupted earlier run are removed first.
    """
    folder = Path(target)
    candidates = image_candidates(images_dir)
    check_new_project_folder(folder, images_dir)
    parent = Path(os.path.realpath(folder)).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SegtoolError(f"cannot create the folder ({error.strerror or error})",
                           parent) from None
    for leftover in parent.glob(f".{folder.name}{STAGING_INFIX}*"):
        log.info("removing %s, left by an interrupted 'segtool new'", leftover)
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}{STAGING_INFIX}", dir=parent))
    except OSError as error:
        raise SegtoolError(f"cannot write in the folder ({error.strerror or error})",
                           parent) from None
    try:
        os.chmod(staging, 0o777 & ~process_umask())  # mkdtemp makes it 0700; a new folder is not
        project = Project.create(staging, class_names, max_pixels)
        report = project.import_images(candidates, progress, reference=reference)
        _take_over(folder, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Project.open(folder), report


def _take_over(target: Path, staging: Path) -> None:
    """Rename ``staging`` to ``target`` (missing or an empty folder, whose mode it keeps)."""
    if target.is_dir():
        mode = target.stat()
        with contextlib.suppress(OSError):
            os.chmod(staging, mode.st_mode & 0o7777)
            os.chown(staging, -1, mode.st_gid)
    try:
        os.rename(staging, target)  # replaces an empty folder in one step
    except OSError as error:
        raise SegtoolError(f"could not move the new project into place ({error.strerror or error})",
                           target) from None

