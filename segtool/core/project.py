"""The project folder: ``segtool.json``, ``segtool.sqlite``, ``images/``, ``masks/``, ``models/``.

``segtool.json`` holds the format version and the project's settings: the classes (name and
colour), the current model (a file name in ``models/``), the pixel limit and a shared window.
``segtool.sqlite`` (store.py) holds one record per image: its file name in ``images/``, its
status and its other keys; a status change writes one row, not the whole project (format 2).
A project of format 1 kept the records in segtool.json; it is moved to the store when it is
opened and no one else has it, else at its first write (which holds the project lock).
``masks/<stem>.png`` is the label mask of ``images/<stem>.<ext>`` (see masks.py).
A volume (NIfTI, multi-page TIFF, or a DICOM series converted at import to
``images/<stem>.nii.gz``) has ``slices`` in its record and one label volume
``masks/<stem>.nii.gz`` (see volumes.py); a DICOM's own window and photometric
interpretation are kept in the record (``dicom_window``, ``photometric``), and the window the
user last set is kept per image (``window``) or for the whole project (``shared_window``).
Every write (segtool.json, the store, masks, imported images) is atomic.

Methods that change the project (set_status, save_mask, add_class, set_current_model,
import_images) save ``segtool.json`` or the image's record themselves; :meth:`Project.save`
is there for callers that changed nothing else. A lock makes them safe to call from worker threads.

One writer per project is the job of :mod:`segtool.core.lock`; as a second line of defence
a Project never writes segtool.json or a mask over a file that changed on disk since it
read or wrote it (compared by inode, size and modification time): it refuses with a
message instead. A project opened read-only (``read_only`` set to the reason) keeps status
changes in memory and refuses to save anything.
"""

from __future__ import annotations

import colorsys
import contextlib
import enum
import json
import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segtool.core.atomic import atomic_write_text, atomic_writer
from segtool.core.dicom_series import DicomSeries, convert_series, find_series
from segtool.core.errors import SegtoolError
from segtool.core.files import read_regular_text
from segtool.core.images import DEFAULT_MAX_PIXELS, SUPPORTED_SUFFIXES, image_info, read_image
from segtool.core.masks import MAX_CLASSES, UNLABELLED, check_mask, read_mask, write_mask
from segtool.core.recovery import recover_if_idle
from segtool.core.store import STORE_FILE, create_store, read_records, write_records
from segtool.core.volumes import (
    NIFTI_SUFFIXES,
    Volume,
    VolumeInfo,
    is_volume_file,
    read_label_volume,
    read_volume,
    split_name,
    volume_info,
    write_label_volume,
)
from segtool.core.window import Window, parse_window

log = logging.getLogger(__name__)

PROJECT_FILE = "segtool.json"
FORMAT_VERSION = 2  # 1: the image records were in segtool.json; 2: in segtool.sqlite
DEFAULT_CLASS_NAMES = ("background", "foreground")

# Class colours, chosen to stay apart from each other and from black (= unlabelled in
# colour exports). Beyond this list colours are generated around the hue circle.
DEFAULT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (100, 100, 100),
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
)

Colour = tuple[int, int, int]
FileStamp = tuple[int, int, int] | None
"""(inode, size, mtime in ns) of a file, None when it does not exist."""

_UNKNOWN: Any = object()  # no stamp recorded: nothing to compare with
# segtool.json stamps this process wrote, by path: another Project object of this process
# (a worker thread's) writing is not another writer.
_WRITTEN_HERE: dict[str, FileStamp] = {}
_CHANGED = ("changed on disk since segtool read it (another program or window wrote it); "
            "not overwriting it: reopen the project")


def file_stamp(path: Path) -> FileStamp:
    """(inode, size, mtime_ns) of ``path``, or None if it does not exist."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def default_colour(index: int) -> Colour:
    """The default colour of class ``index``: a fixed palette, then golden-ratio hues."""
    if index < len(DEFAULT_COLOURS):
        return DEFAULT_COLOURS[index]
    hue = (index * 0.618033988749895) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.75, 0.95)
    return (round(red * 255), round(green * 255), round(blue * 255))


@dataclass(frozen=True)
class ClassInfo:
    """One class: its name and its RGB colour (0..255 each)."""

    name: str
    colour: Colour


class ImageStatus(str, enum.Enum):
    """Where an image stands in labelling."""

    UNLABELLED = "unlabelled"
    IN_PROGRESS = "in_progress"
    REVIEWED = "reviewed"
    UNREADABLE = "unreadable"


@dataclass
class ImportReport:
    """What :meth:`Project.import_images` did: stems imported, files skipped with the reason."""

    imported: list[str] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"imported {len(self.imported)} image(s), skipped {len(self.skipped)}"]
        lines += [f"  skipped {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


class Project:
    """A project folder on disk. Make one with :meth:`create` or :meth:`open`."""

    def __init__(
        self,
        root: Path,
        classes: list[ClassInfo],
        images: dict[str, dict[str, Any]],
        current_model: str | None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.root = root
        self.classes = classes
        self.current_model = current_model
        self.max_pixels = max_pixels  # images above this many pixels are refused unread
        self._images = images
        # Format 1: the records are in segtool.json until the first write moves them.
        self._legacy = False
        self._names: list[str] | None = None  # image_names(), sorted once (100,000 images)
        # casefolded stem -> stem: masks/<stem>.png must be unique on case-insensitive disks
        self._folded = {stem.casefold(): stem for stem in images}
        self._lock = threading.RLock()
        self.read_only: str | None = None  # why the project may only be viewed
        self._stamp: FileStamp = _UNKNOWN  # segtool.json as last read or written
        self._mask_stamps: dict[str, FileStamp] = {}
        # One window for every image (CT series), or None: each image keeps its own.
        self.shared_window: Window | None = None

    # --- creating and opening ----------------------------------------------------------

    @classmethod
    def create(
        cls,
        root: str | os.PathLike[str],
        class_names: Sequence[str] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> Project:
        """Make a new project in ``root`` (created if missing) and write segtool.json.

        ``class_names`` defaults to background, foreground; colours come from
        :func:`default_colour`. Refuses a folder that already holds a segtool.json.
        """
        folder = Path(root)
        names = list(DEFAULT_CLASS_NAMES if class_names is None else class_names)
        if not names:
            raise SegtoolError("a project needs at least one class", folder)
        for name in names:
            check_class_name(name, [], folder)
        if len({name.strip().casefold() for name in names}) != len(names):
            raise SegtoolError(f"class names must be unique, got {names}", folder)
        if len(names) > MAX_CLASSES:
            raise SegtoolError(f"at most {MAX_CLASSES} classes, got {len(names)}", folder)
        if (folder / PROJECT_FILE).exists():
            raise SegtoolError(f"already a project (holds {PROJECT_FILE})", folder)
        if folder.exists() and not folder.is_dir():
            raise SegtoolError("exists and is not a folder", folder)
        classes = [ClassInfo(name.strip(), default_colour(i)) for i, name in enumerate(names)]
        if not isinstance(max_pixels, int) or max_pixels < 1:
            raise SegtoolError(f"the pixel limit must be a positive integer, got {max_pixels}",
                               folder)
        project = cls(folder, classes, {}, None, max_pixels)
        for sub in (folder, project.images_dir, project.masks_dir, project.models_dir):
            sub.mkdir(parents=True, exist_ok=True)
        project._stamp = None  # there must be no segtool.json to overwrite
        create_store(project.store_file, [])  # before segtool.json, which makes it a project
        project.save()
        return project

    @classmethod
    def open(cls, root: str | os.PathLike[str], read_only: str | None = None) -> Project:
        """Open the project in ``root`` (the folder, or its segtool.json).

        With ``read_only`` (the reason) the project is only viewed: nothing is written, not
        even the move of a format 1 project's records. A missing or malformed segtool.json
        raises SegtoolError naming it.
        """
        folder = Path(root)
        if folder.name == PROJECT_FILE and folder.is_file():
            folder = folder.parent
        file = folder / PROJECT_FILE
        if file.is_file() and read_only is None:
            recover_if_idle(folder)  # a class deletion or writes a killed segtool left undone
        stamp = file_stamp(file)  # before reading: a change meanwhile is caught at save
        try:
            data = json.loads(read_regular_text(file))
        except FileNotFoundError:
            raise SegtoolError(f"not a segtool project (no {PROJECT_FILE})", folder) from None
        except RecursionError:
            raise SegtoolError("malformed project file: nested too deeply", file) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SegtoolError(f"cannot read project file ({error})", file) from None
        classes, current_model, max_pixels = _parse_project(data, file)
        legacy = data["version"] < 2
        store = folder / STORE_FILE
        if legacy:
            images = _parse_images(data.get("images", {}), file)
        elif "images" in data:
            raise SegtoolError(f"malformed project file: 'images' belong in {STORE_FILE} since "
                               "format 2", file)
        else:
            images = _parse_images(read_records(store), store)
        project = cls(folder, classes, images, current_model, max_pixels)
        project.shared_window = parse_window(data.get("shared_window"))
        project._stamp = stamp
        project._legacy = legacy
        project.read_only = read_only
        for sub in (project.images_dir, project.masks_dir, project.models_dir):
            try:
                sub.mkdir(exist_ok=True)
            except OSError as error:
                raise SegtoolError(f"cannot create the folder ({error})", sub) from None
        if legacy and read_only is None:
            project._move_records_if_idle()
        return project

    def _move_records_if_idle(self) -> None:
        """Move format 1's records into the store now, if no one else holds the project."""
        from segtool.core.lock import ProjectLock

        lock = ProjectLock.try_acquire(self.root, "segtool (moving image records)")
        if lock is None:
            return  # busy or read-only: the first write (under the lock) moves them
        with lock:
            try:
                self.save()
            except (SegtoolError, OSError) as error:
                log.warning("image records left in segtool.json for now: %s", error)
            else:
                log.info("moved the records of %d images into %s", len(self._images),
                         self.store_file)

    # --- folders and names ---------------------------------------------------------------

    @property
    def project_file(self) -> Path:
        return self.root / PROJECT_FILE

    @property
    def store_file(self) -> Path:
        """``segtool.sqlite``: one record per image (see store.py)."""
        return self.root / STORE_FILE

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def masks_dir(self) -> Path:
        return self.root / "masks"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def colours(self) -> list[Colour]:
        """Class colours in class-index order (what write_mask takes)."""
        return [info.colour for info in self.classes]

    def image_names(self) -> list[str]:
        """Image stems in natural order (``img2`` before ``img10``)."""
        with self._lock:
            if self._names is None:
                self._names = sorted(self._images, key=lambda stem: (_natural_key(stem), stem))
            return list(self._names)

    def image_path(self, stem: str) -> Path:
        """``images/<file>`` of image ``stem``, or the file it references where it is."""
        record = self._record(stem)
        referenced = record.get("path")
        return Path(referenced) if referenced else self.images_dir / record["file"]

    def is_referenced(self, stem: str) -> bool:
        """True when image ``stem`` was referenced where it is rather than copied."""
        return bool(self._record(stem).get("path"))

    def mask_path(self, stem: str) -> Path:
        """``masks/<stem>.png``, or ``masks/<stem>.nii.gz`` for a volume (existing or not)."""
        record = self._record(stem)
        return self.masks_dir / (f"{stem}.nii.gz" if "slices" in record else f"{stem}.png")

    def mask_stamps(self) -> dict[str, FileStamp]:
        """The stamp (:func:`file_stamp`) of every saved mask of the project's images, by
        stem: one listing of masks/, not a look per image (a project of 100,000 images has
        few masks; continuous learning asks every few seconds)."""
        stamps: dict[str, FileStamp] = {}
        try:
            entries = list(os.scandir(self.masks_dir))
        except FileNotFoundError:
            return stamps
        for entry in entries:
            name = entry.name
            stem = name[:-7] if name.endswith(".nii.gz") else name[:-4] if name.endswith(
                ".png") else None
            if stem is None or stem not in self._images or self.mask_path(stem).name != name:
                continue  # not a mask of one of the project's images
            try:
                info = entry.stat()
            except FileNotFoundError:
                continue  # removed meanwhile
            stamps[stem] = (info.st_ino, info.st_size, info.st_mtime_ns)
        return stamps

    # --- volumes ------------------------------------------------------------------------

    def is_volume(self, stem: str) -> bool:
        """True when image ``stem`` is a volume (NIfTI, TIFF stack, DICOM series)."""
        return "slices" in self._record(stem)

    def slice_count(self, stem: str) -> int:
        """Slices of a volume (1 for a 2D image)."""
        return int(self._record(stem).get("slices", 1))

    def labelled_slices(self, stem: str) -> int:
        """Slices of a volume holding labels, as of the last save (0 for a 2D image)."""
        return int(self._record(stem).get("labelled_slices", 0))

    def volume_info(self, stem: str) -> VolumeInfo:
        """The header of volume ``stem`` (nothing decoded; voxel count checked)."""
        return volume_info(self.image_path(stem), self.max_pixels)

    def read_volume(self, stem: str) -> Volume:
        """Decode volume ``stem`` into view layout ``(Z, H, W[, C])`` (see volumes.py)."""
        return read_volume(self.image_path(stem), self.max_pixels)

    def load_mask_volume(self, stem: str, info: VolumeInfo | None = None) -> np.ndarray:
        """The ``(Z, H, W)`` uint8 label volume of ``stem``; all 255 when none is saved.

        SegtoolError naming the mask file when it does not fit the image or holds a class
        index the project does not have.
        """
        info = info or self.volume_info(stem)
        path = self.mask_path(stem)
        stamp = file_stamp(path)
        if stamp is None:
            with self._lock:
                self._mask_stamps[stem] = None
            return np.full(info.shape[:3], UNLABELLED, dtype=np.uint8)
        labels = read_label_volume(path, info)
        _check_classes(labels, self.num_classes, path)
        with self._lock:
            self._mask_stamps[stem] = stamp
        return labels

    def save_mask_volume(self, stem: str, labels: np.ndarray,
                         info: VolumeInfo | None = None) -> None:
        """Write ``masks/<stem>.nii.gz`` atomically (the image's geometry; 255 = unlabelled)
        and update the volume's status and its count of labelled slices."""
        info = info or self.volume_info(stem)
        path = self.mask_path(stem)
        _check_classes(labels, self.num_classes, path)
        self.check_writable(path)
        with self._lock, self._unchanged_since_read(stem, path):
            write_label_volume(path, labels, info)
            record = self._record(stem)
            labelled = int(np.count_nonzero(labels.min(axis=(1, 2)) != UNLABELLED))
            old = dict(record)
            record["labelled_slices"] = labelled
            if record["status"] != ImageStatus.REVIEWED.value:
                record["status"] = (ImageStatus.IN_PROGRESS if labelled
                                    else ImageStatus.UNLABELLED).value
            if record != old:
                self._save_or_revert(lambda: (record.clear(), record.update(old)), [stem])

    # --- display windows ----------------------------------------------------------------

    def window(self, stem: str) -> Window | None:
        """The window to show ``stem`` with: the project-wide one, else the one last set
        for the image, else the DICOM's own; None: the caller's automatic window."""
        record = self._record(stem)
        return (self.shared_window or parse_window(record.get("window"))
                or self.dicom_window(stem))

    def dicom_window(self, stem: str) -> Window | None:
        """The window the image's DICOM header gives (None when it gives none). A DICOM
        added before segtool kept it is read once and kept with the image's record."""
        with self._lock:
            record = self._record(stem)
            if "photometric" not in record and record["file"].lower().endswith(".dcm"):
                with contextlib.suppress(OSError):
                    record.update(_dicom_display(self.image_path(stem)))
                record.setdefault("photometric", "")
            return parse_window(record.get("dicom_window"))

    def photometric(self, stem: str) -> str:
        """The DICOM photometric interpretation recorded for ``stem`` ("" when none)."""
        return str(self._record(stem).get("photometric", ""))

    def set_window(self, stem: str, window: Window | None, for_all: bool = False) -> None:
        """Remember ``window`` for ``stem`` (None forgets it), or with ``for_all`` for every
        image (None ends the shared window); saves segtool.json when something changed.
        A read-only project keeps it for the session."""
        with self._lock:
            if for_all:
                old_shared = self.shared_window
                self.shared_window = window
                if old_shared != window and self.read_only is None:
                    self._save_or_revert(lambda: setattr(self, "shared_window", old_shared))
                return
            record = self._record(stem)
            old = record.get("window")
            new = window.to_json() if window is not None else None
            if old == new:
                return
            if new is None:
                record.pop("window", None)
            else:
                record["window"] = new
            if self.read_only is None:
                self._save_or_revert(lambda: record.pop("window", None) if old is None
                                     else record.__setitem__("window", old), [stem])

    def status(self, stem: str) -> ImageStatus:
        return ImageStatus(self._record(stem)["status"])

    def set_status(self, stem: str, status: ImageStatus | str) -> None:
        """Set the status of image ``stem`` and save segtool.json if it changed."""
        new = ImageStatus(status)
        with self._lock:
            record = self._record(stem)
            old = record["status"]
            if old != new.value:
                record["status"] = new.value
                if self.read_only is None:  # read-only: kept in memory for this session
                    self._save_or_revert(lambda: record.__setitem__("status", old), [stem])

    # --- classes and model --------------------------------------------------------------

    def add_class(self, name: str, colour: Colour | None = None) -> int:
        """Append a class and save; returns its index. Names are unique (case-insensitive)."""
        with self._lock:
            check_class_name(name, [info.name for info in self.classes], self.project_file)
            if self.num_classes >= MAX_CLASSES:
                raise SegtoolError(f"at most {MAX_CLASSES} classes", self.project_file)
            index = self.num_classes
            chosen = default_colour(index) if colour is None else _parse_colour(colour)
            self.classes.append(ClassInfo(name.strip(), chosen))
            self._save_or_revert(self.classes.pop)
            return index

    def set_current_model(self, name: str | None) -> None:
        """Make ``models/<name>`` the current model (None: no model) and save."""
        if name is not None:
            if Path(name).name != name or name in ("", ".", ".."):
                raise ValueError(f"model name must be a file name in models/, got {name!r}")
            if not (self.models_dir / name).is_file():
                raise SegtoolError("model file not found", self.models_dir / name)
        with self._lock:
            old, self.current_model = self.current_model, name
            self._save_or_revert(lambda: setattr(self, "current_model", old))

    # --- images -------------------------------------------------------------------------

    def import_images(
        self,
        paths: Iterable[str | os.PathLike[str]],
        progress: Callable[[int, int], None] | None = None,
        reference: bool = False,
    ) -> ImportReport:
        """Copy readable images into ``images/`` and add them to the project.

        With ``reference`` the image files stay where they are (big datasets): segtool.json
        records each one's absolute path and nothing is copied; one that goes missing later
        reads as "file not found" (UNREADABLE), never a crash. A DICOM series is always
        converted into images/ (it is many files).

        Each file is decoded once to make sure it is readable, then copied atomically (an
        interrupted copy leaves nothing in images/). Refused, with the reason in the report:
        unreadable files and stems already taken, in the project or earlier in the same
        batch (``a.png`` and ``a.tif``; compared case-insensitively because masks/<stem>.png
        must be unique on every file system). ``progress(done, total)`` is called per file.
        """
        self.check_writable(self.images_dir / PROJECT_FILE)
        series, files = find_series([Path(p) for p in paths])
        items: list[Path | DicomSeries] = [*files, *series]
        report = ImportReport()
        try:
            for done, item in enumerate(items, start=1):
                if isinstance(item, DicomSeries):
                    reason = self._import_series(item)
                    source = item.files[0].parent if len(item.files) > 1 else item.files[0]
                    stem = item.name
                else:
                    reason = self._import_one(item, reference)
                    source, stem = item, split_name(item.name)[0]
                if reason is None:
                    report.imported.append(stem)
                else:
                    report.skipped.append((source, reason))
                    log.info("not imported %s: %s", source, reason)
                if progress is not None:
                    progress(done, len(items))
        finally:
            if report.imported:
                self._write_records(report.imported)
        return report

    def _import_one(self, file: Path, reference: bool = False) -> str | None:
        """Import one file (or, with ``reference``, record where it is); return None on
        success or the reason it was refused.

        Decoding and copying run without the lock, so a long import in a worker thread
        does not block the GUI thread saving masks.
        """
        stem, suffix = split_name(file.name)
        if file.is_dir():
            return "a folder without a DICOM series"
        if suffix.lower() not in SUPPORTED_SUFFIXES and suffix.lower() not in NIFTI_SUFFIXES:
            return f"unsupported file type {suffix or '(no suffix)'!r}"
        if not stem or stem.startswith("."):
            return "file name must not start with a dot"
        reason = self._stem_taken(stem)
        if reason:
            return reason
        extra: dict[str, Any] = {}
        try:
            if is_volume_file(file):
                extra["slices"] = read_volume(file, self.max_pixels).info.slices
            else:
                read_image(file, self.max_pixels)
                if suffix.lower() == ".dcm":
                    extra.update(_dicom_display(file))
        except SegtoolError as error:
            return error.problem
        if reference:
            return self._add_record(stem, file.name, {**extra, "path": os.path.abspath(file)})
        target = self.images_dir / file.name
        try:
            with open(file, "rb") as source, atomic_writer(target, "wb") as destination:
                shutil.copyfileobj(source, destination, 1 << 20)
        except OSError as error:
            return f"could not copy into the project ({error})"
        return self._add_record(stem, file.name, extra)

    def _add_record(self, stem: str, name: str, extra: dict[str, Any]) -> str | None:
        """Add image ``stem`` (file ``name`` in images/) to the project; the reason if not."""
        status = ImageStatus.UNLABELLED
        mask_name = f"{stem}.nii.gz" if "slices" in extra else f"{stem}.png"
        if (self.masks_dir / mask_name).exists():
            status = ImageStatus.IN_PROGRESS
        with self._lock:
            reason = self._stem_taken(stem)  # another thread may have imported it meanwhile
            if reason:
                return reason
            self._images[stem] = {"file": name, "status": status.value, **extra}
            self._names = None
            self._folded[stem.casefold()] = stem
        return None

    def _import_series(self, series: DicomSeries) -> str | None:
        """Convert a DICOM series into ``images/<name>.nii.gz``; None or the reason it failed."""
        stem = series.name
        if not stem or stem.startswith("."):
            return "a series name must not start with a dot"
        reason = self._stem_taken(stem)
        if reason:
            return reason
        target = self.images_dir / f"{stem}.nii.gz"
        try:
            slices, defaults = convert_series(series, target, self.max_pixels)
        except SegtoolError as error:
            return error.problem
        except OSError as error:
            return f"could not write into the project ({error})"
        extra: dict[str, Any] = {"slices": slices, "photometric": defaults.photometric}
        if defaults.window is not None:
            extra["dicom_window"] = Window(*defaults.window).to_json()
        return self._add_record(stem, target.name, extra)

    def _stem_taken(self, stem: str) -> str | None:
        """Why ``stem`` cannot be added (compared case-insensitively), or None."""
        with self._lock:
            existing = self._folded.get(stem.casefold())
            if existing is None:
                return None
            name = self._images[existing]["file"]
            return f"an image named {existing!r} is already in the project ({name})"

    def read_image(self, stem: str) -> np.ndarray:
        """Decode the project copy of image ``stem`` (see images.read_image); changes nothing.

        For worker threads and anyone but the session's owner: statuses are the owner's to
        set (the workspace does it on the GUI thread).
        """
        return read_image(self.image_path(stem), self.max_pixels)

    def image_shape(self, stem: str) -> tuple[int, int]:
        """``(H, W)`` of image ``stem`` (of one slice of a volume) from its header."""
        if self.is_volume(stem):
            volume = self.volume_info(stem)
            return (volume.height, volume.width)
        info = image_info(self.image_path(stem), self.max_pixels)
        return (info.height, info.width)

    # --- masks ---------------------------------------------------------------------------

    def load_mask(self, stem: str, shape_hw: tuple[int, int] | None = None) -> np.ndarray:
        """The ``(H, W)`` uint8 mask of ``stem``; all 255 (unlabelled) when none is saved.

        With ``shape_hw`` the mask is checked against it and the class count
        (SegtoolError naming the mask file on mismatch).
        """
        path = self.mask_path(stem)
        stamp = file_stamp(path)
        if stamp is None:
            mask = np.full(shape_hw or self.image_shape(stem), UNLABELLED, dtype=np.uint8)
            with self._lock:
                self._mask_stamps[stem] = None
            return mask
        mask = read_mask(path)
        with self._lock:
            self._mask_stamps[stem] = stamp
        if shape_hw is not None:
            check_mask(mask, shape_hw, self.num_classes, path)
        return mask

    def save_mask(self, stem: str, mask: np.ndarray) -> None:
        """Write ``masks/<stem>.png`` atomically and update the image's status.

        ``mask`` is ``(H, W)`` uint8 of the image's size, class indices or 255. The status
        becomes in_progress (or unlabelled for an all-255 mask) unless it is reviewed.
        """
        path = self.mask_path(stem)
        check_mask(mask, self.image_shape(stem), self.num_classes, path)
        with self._lock:
            self.rewrite_mask(stem, mask, self.colours)
            if self.status(stem) != ImageStatus.REVIEWED:
                labelled = bool((mask != UNLABELLED).any())
                self.set_status(
                    stem, ImageStatus.IN_PROGRESS if labelled else ImageStatus.UNLABELLED
                )

    def rewrite_mask(
        self, stem: str, mask: np.ndarray, colours: Sequence[Colour] | None = None
    ) -> None:
        """Write ``masks/<stem>.png`` atomically (palette ``colours``, default the project's).

        Refuses (SegtoolError naming the file) when the project is read-only, when the mask
        changed on disk since this project read or wrote it, and when ``masks/`` leads out
        of the project folder. The image's status is left alone (see :meth:`save_mask`).
        """
        path = self.mask_path(stem)
        self.check_writable(path)
        with self._lock, self._unchanged_since_read(stem, path):
            write_mask(path, mask, self.colours if colours is None else colours)

    @contextlib.contextmanager
    def _unchanged_since_read(self, stem: str, path: Path) -> Iterator[None]:
        """Around a write of ``stem``'s mask file: refuse (SegtoolError) when it changed on
        disk since this project read or wrote it, and remember its new stamp after."""
        expected = self._mask_stamps.get(stem, _UNKNOWN)
        current = file_stamp(path)
        # A mask deleted or set aside meanwhile is no one's newer work: write it again.
        if expected is not _UNKNOWN and current is not None and current != expected:
            raise SegtoolError(_CHANGED, path)
        yield
        self._mask_stamps[stem] = file_stamp(path)

    def forget_mask_stamps(self) -> None:
        """Forget what the masks looked like on disk (after this process rewrote them all)."""
        with self._lock:
            self._mask_stamps.clear()

    def check_writable(self, path: Path) -> None:
        """SegtoolError unless ``path`` may be written: project not read-only, and the real
        folder of ``path`` inside the project's real folder (no link leading out)."""
        if self.read_only is not None:
            raise SegtoolError(f"not saved: the project is open read-only ({self.read_only})",
                               path)
        root = Path(os.path.realpath(self.root))
        real = Path(os.path.realpath(path.parent))
        if real != root and root not in real.parents:
            raise SegtoolError(f"not written: {path.parent.name}/ leads out of the project "
                               f"folder (to {real})", path)

    # --- segtool.json --------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The content of segtool.json as a dict (the settings; the image records are in
        the store, see :meth:`image_record`)."""
        with self._lock:
            data: dict[str, Any] = {
                "version": FORMAT_VERSION,
                "classes": [{"name": c.name, "colour": list(c.colour)} for c in self.classes],
                "current_model": self.current_model,
            }
            if self.max_pixels != DEFAULT_MAX_PIXELS:  # optional key: absent means 2**28
                data["max_pixels"] = self.max_pixels
            if self.shared_window is not None:
                data["shared_window"] = self.shared_window.to_json()
            return data

    def save(self) -> None:
        """Write segtool.json atomically (a format 1 project's records go into a new store
        first: a crash between the two leaves format 1, read as before).

        Refuses (SegtoolError) when the project is read-only or when segtool.json changed on
        disk since this project read or wrote it (another writer: its work is not lost).
        """
        with self._lock:
            file = self.project_file
            self.check_writable(file)
            current = file_stamp(file)
            if self._stamp is not _UNKNOWN and current not in (self._stamp,
                                                               _WRITTEN_HERE.get(str(file))):
                raise SegtoolError(_CHANGED, file)
            if self._legacy:
                self._create_store()
            text = json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"
            atomic_write_text(file, text)
            self._stamp = _WRITTEN_HERE[str(file)] = file_stamp(file)
            self._legacy = False

    def image_record(self, stem: str) -> dict[str, Any]:
        """A copy of image ``stem``'s record (file, status and its other keys)."""
        with self._lock:
            return dict(self._record(stem))

    def _create_store(self) -> None:
        """Write every record into a new store (SegtoolError naming it on failure)."""
        try:
            create_store(self.store_file, [(stem, self._images[stem])
                                           for stem in self.image_names()])
        except OSError as error:
            raise SegtoolError(f"could not write the image store ({error.strerror})",
                               self.store_file) from None

    def _write_records(self, stems: Sequence[str]) -> None:
        """Write the records of ``stems`` into the store (a format 1 project: all of them,
        with segtool.json)."""
        with self._lock:
            if self._legacy:
                self.save()
                return
            self.check_writable(self.store_file)
            write_records(self.store_file, [(stem, self._images[stem]) for stem in stems])

    def _save_or_revert(self, revert: Callable[[], object],
                        stems: Sequence[str] | None = None) -> None:
        """Save segtool.json, or with ``stems`` those images' records; if that fails, undo
        the in-memory change so memory matches the disk."""
        try:
            if stems is None:
                self.save()
            else:
                self._write_records(stems)
        except BaseException:
            revert()
            raise

    def _record(self, stem: str) -> dict[str, str]:
        try:
            return self._images[stem]
        except KeyError:
            raise ValueError(f"no image named {stem!r} in project {self.root}") from None

    def __repr__(self) -> str:
        return (
            f"Project({str(self.root)!r}, {self.num_classes} classes, {len(self._images)} images)"
        )


# --- parsing and checks --------------------------------------------------------------------


def _parse_project(data: Any, file: Path) -> tuple[list[ClassInfo], str | None, int]:
    """Validate the settings in segtool.json (its image records, in format 1, are checked
    by :func:`_parse_images`); SegtoolError naming ``file`` on any problem."""
    if not isinstance(data, dict):
        raise SegtoolError("malformed project file: not a JSON object", file)
    version = data.get("version")
    if not isinstance(version, int):
        raise SegtoolError("malformed project file: no integer 'version'", file)
    if version > FORMAT_VERSION:
        raise SegtoolError(
            f"made by a newer segtool (format version {version}, this one reads {FORMAT_VERSION})",
            file,
        )
    raw_classes = data.get("classes")
    if not isinstance(raw_classes, list) or not raw_classes:
        raise SegtoolError("malformed project file: 'classes' must be a non-empty list", file)
    classes = []
    for index, entry in enumerate(raw_classes):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise SegtoolError(f"malformed project file: class {index} has no name", file)
        try:
            colour = _parse_colour(entry.get("colour", default_colour(index)))
        except ValueError as error:
            raise SegtoolError(f"malformed project file: class {index}: {error}", file) from None
        classes.append(ClassInfo(entry["name"], colour))
    if len(classes) > MAX_CLASSES:
        raise SegtoolError(f"malformed project file: more than {MAX_CLASSES} classes", file)
    current_model = data.get("current_model")
    if current_model is not None and (
        not isinstance(current_model, str) or Path(current_model).name != current_model
        or current_model in ("", ".", "..") or "\0" in current_model
    ):
        raise SegtoolError("malformed project file: 'current_model' must be a file name in "
                           f"models/, found {current_model!r:.60}", file)
    max_pixels = data.get("max_pixels", DEFAULT_MAX_PIXELS)
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise SegtoolError("malformed project file: 'max_pixels' must be a positive integer", file)
    return classes, current_model, max_pixels


def _parse_images(raw_images: Any, file: Path) -> dict[str, dict[str, Any]]:
    """Validate image records (segtool.json's format 1, or the store's rows);
    SegtoolError naming ``file`` on any problem."""
    if not isinstance(raw_images, dict):
        raise SegtoolError(f"{_malformed(file)}: 'images' must be an object", file)
    images = {}
    statuses = {status.value for status in ImageStatus}
    for stem, entry in raw_images.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise SegtoolError(f"{_malformed(file)}: image {stem!r} has no file", file)
        name = entry["file"]
        if (Path(name).name != name or split_name(name)[0] != stem or not stem
                or name.startswith(".") or "\0" in name):
            raise SegtoolError(
                f"{_malformed(file)}: image {stem!r} names file {name!r}", file
            )
        status = entry.get("status", ImageStatus.UNLABELLED.value)
        if not isinstance(status, str) or status not in statuses:
            raise SegtoolError(f"{_malformed(file)}: image {stem!r}: status {status!r}", file)
        images[stem] = {"file": entry["file"], "status": status, **_volume_keys(entry, stem, file),
                        **_reference_keys(entry, stem, file)}
    return images


def _malformed(file: Path) -> str:
    """How a bad record's message starts: which of the two files holds it."""
    return "malformed image store" if file.name == STORE_FILE else "malformed project file"


def _volume_keys(entry: dict[str, Any], stem: str, file: Path) -> dict[str, Any]:
    """The optional keys of an image record: slices, labelled slices, windows, photometric."""
    keys: dict[str, Any] = {}
    for key in ("slices", "labelled_slices"):
        if key in entry:
            value = entry[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SegtoolError(f"{_malformed(file)}: image {stem!r}: {key} {value!r}",
                                   file)
            keys[key] = value
    for key in ("window", "dicom_window"):
        window = parse_window(entry.get(key))
        if window is not None:
            keys[key] = window.to_json()
    if isinstance(entry.get("photometric"), str):
        keys["photometric"] = entry["photometric"]
    return keys


def _dicom_display(file: Path) -> dict[str, Any]:
    """A 2D DICOM's window and photometric for its record (MONOCHROME1 is read negated,
    so its window is mirrored to match)."""
    from segtool.core.dicom_series import read_display_defaults

    defaults = read_display_defaults(file)
    keys: dict[str, Any] = {}
    if defaults.photometric:
        keys["photometric"] = defaults.photometric
    if defaults.window is not None:
        level, width = defaults.window
        if defaults.photometric == "MONOCHROME1":
            level = -level
        keys["dicom_window"] = Window(level, width).to_json()
    return keys


def _check_classes(labels: np.ndarray, num_classes: int, path: Path) -> None:
    """SegtoolError naming ``path`` when ``labels`` holds an index beyond the classes.

    A lookup a slice at a time: a bincount of a CT label volume would take seconds and
    eight times its memory."""
    valid = np.zeros(256, dtype=bool)
    valid[: min(num_classes, UNLABELLED)] = True
    valid[UNLABELLED] = True
    unknown = [int(np.max(np.where(valid[plane], 0, plane)))
               for plane in labels if not valid[plane].all()]
    if unknown:
        raise SegtoolError(f"label volume holds class index {unknown[0]}, but the project has "
                           f"{num_classes} classes (0..{num_classes - 1}, 255 = unlabelled)",
                           path)


def _reference_keys(entry: dict[str, Any], stem: str, file: Path) -> dict[str, str]:
    """The ``path`` of an image referenced where it is: absolute, ending in its file name."""
    if "path" not in entry:
        return {}
    path = entry["path"]
    if (not isinstance(path, str) or "\0" in path or not os.path.isabs(path)
            or Path(path).name != entry["file"]):
        raise SegtoolError(f"{_malformed(file)}: image {stem!r}: 'path' must be the "
                           f"absolute path of {entry['file']!r}, found {path!r:.80}", file)
    return {"path": path}


def _parse_colour(value: Any) -> Colour:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)
    ):
        raise ValueError(f"colour must be three integers 0..255, got {value!r}")
    return (int(value[0]), int(value[1]), int(value[2]))


def check_class_name(name: str, existing: Sequence[str], where: Path) -> None:
    """Refuse an empty class name or one already in ``existing`` (case-insensitive)."""
    if not isinstance(name, str) or not name.strip():
        raise SegtoolError("a class name must not be empty", where)
    if name.strip().casefold() in {other.casefold() for other in existing}:
        raise SegtoolError(f"a class named {name.strip()!r} already exists", where)


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", text)]
