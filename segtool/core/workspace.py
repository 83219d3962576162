"""The labelling session over a project: open images, their label documents, saving, recovery.

No Qt: the window drives a :class:`Workspace` and shows what it returns. Each image keeps
its :class:`LabelDocument` (and so its undo history) while the session lasts, within a total
memory cap; every finished undo step is appended to the image's crash journal (the document
tells the workspace, no view in between), and saving the mask clears it. Problems found on
the way (a journal that cannot be written) go to ``subscribe_problems`` listeners.

A volume is opened whole (its pixels and its ``(Z, H, W)`` label volume) and edited one slice
at a time: each slice gets its own :class:`LabelDocument` over that slice of the label volume
(a view, not a copy), so the 2D tools, undo and journal work unchanged; the journal is one
file per volume with the slice in each record, and saving writes the whole label volume.
Only the volume on screen keeps its pixels; an unsaved one keeps its labels until saved.
"""

from __future__ import annotations

import datetime as _dt
import errno
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segtool.core.editing import EditingSettings, Setting
from segtool.core.errors import SegtoolError
from segtool.core.journal import EditJournal, journal_path
from segtool.core.labels import LabelDocument
from segtool.core.masks import UNLABELLED
from segtool.core.project import ImageStatus, Project
from segtool.core.rect import Rect
from segtool.core.volumes import VolumeInfo, is_volume_file
from segtool.core.window import Window, auto_window

log = logging.getLogger(__name__)

DEFAULT_HISTORY_CAP = 512 * 1024 * 1024  # undo memory for all open images together


@dataclass
class OpenedImage:
    """An image (or one slice of a volume) ready to show: pixels, display window, its
    document, and what to tell the user.

    ``window`` is the one to show (the project's remembered one, a DICOM's own, else
    ``auto_window``, the percentile window); ``invert`` shows high values dark (MONOCHROME1
    volumes). For a volume ``volume`` is ``(Z, H, W[, C])``, ``z`` the slice shown and
    ``image`` that slice.
    """

    stem: str
    image: np.ndarray
    document: LabelDocument
    display_range: tuple[float, float]
    messages: list[str] = field(default_factory=list)
    journal_pending: bool = False
    window: Window | None = None
    auto_window: Window | None = None
    invert: bool = False
    volume: np.ndarray | None = None
    z: int = 0

    @property
    def slices(self) -> int:
        """Slices of the volume (1 for a 2D image)."""
        return 1 if self.volume is None else int(self.volume.shape[0])


def _is_stack(path: Path) -> bool:
    """True for a file of several slices: a TIFF stack, a multi-frame DICOM."""
    if path.suffix.lower() == ".dcm":
        from segtool.core.dicom_series import frame_count

        return frame_count(path) > 1
    return is_volume_file(path)


@dataclass
class _OpenVolume:
    """A volume of the session: header, pixels (None once it is off screen), label volume
    ``(Z, H, W)`` uint8 and the documents of the slices edited so far."""

    info: VolumeInfo
    pixels: np.ndarray | None
    labels: np.ndarray
    auto: Window
    documents: dict[int, LabelDocument] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)

    def modified(self) -> bool:
        return any(document.modified for document in self.documents.values())


class Workspace:
    """Opens, edits and saves a project's images for the window (or any other front end)."""

    def __init__(
        self,
        project: Project,
        history_cap: int = DEFAULT_HISTORY_CAP,
        settings: EditingSettings | None = None,
    ) -> None:
        self.project = project
        self.history_cap = history_cap
        self._documents: OrderedDict[str, LabelDocument] = OrderedDict()
        self._volumes: dict[str, _OpenVolume] = {}
        self._pending: dict[tuple[str, int | None], Rect] = {}
        self.unreadable: dict[str, str] = {}
        # Tool, class, brush size, paint-only-unlabelled, mask visibility: the session's
        # editing settings; views subscribe to them.
        self.settings = settings if settings is not None else EditingSettings()
        self.settings.subscribe(self._on_setting)
        self._problem_listeners: list[Callable[[str], None]] = []

    def detach(self) -> None:
        """Stop following the settings (a new workspace takes over the session)."""
        self.settings.unsubscribe(self._on_setting)

    @property
    def paint_unlabelled_only(self) -> bool:
        """Painting tools label only unlabelled pixels (in every open document)."""
        return self.settings.paint_unlabelled_only

    @paint_unlabelled_only.setter
    def paint_unlabelled_only(self, enabled: bool) -> None:
        self.settings.paint_unlabelled_only = enabled

    def _on_setting(self, setting: Setting, value: object) -> None:
        if setting == Setting.PAINT_UNLABELLED_ONLY:
            for document in self._all_documents():
                document.paint_unlabelled_only = bool(value)

    def _all_documents(self) -> list[LabelDocument]:
        return [*self._documents.values(),
                *(doc for volume in self._volumes.values() for doc in volume.documents.values())]

    # -- opening -------------------------------------------------------------------------

    def open(self, stem: str, z: int | None = None) -> OpenedImage:
        """Load image ``stem`` and its document (kept from earlier in the session if any);
        for a volume, slice ``z`` (default the middle one) and that slice's document.

        An unreadable image raises SegtoolError and is remembered (``unreadable``) with the
        reason. A mask that does not fit the image is renamed to a backup file beside it and
        the image starts unlabelled; ``messages`` says so.
        """
        if self.project.is_volume(stem):
            return self._open_slice(stem, z)
        try:
            image = self.project.read_image(stem)
        except SegtoolError as error:
            self.unreadable[stem] = error.problem
            self._mark(stem, ImageStatus.UNREADABLE)
            raise
        self.unreadable.pop(stem, None)
        if self.project.status(stem) == ImageStatus.UNREADABLE:  # readable again
            has_mask = self.project.mask_path(stem).exists()
            self._mark(stem, ImageStatus.IN_PROGRESS if has_mask else ImageStatus.UNLABELLED)
        messages: list[str] = []
        if _is_stack(self.project.image_path(stem)):  # added before volumes existed
            messages.append(f"{stem}: a stack of slices shown as its first slice only; add "
                            "the file to the project again to label it as a volume")
        document = self._documents.get(stem)
        if document is None or document.shape != image.shape[:2]:
            document = LabelDocument(self._load_mask(stem, image.shape[:2], messages))
            document.subscribe(lambda rect, stem=stem: self.note_change(stem, rect))
            document.subscribe_steps(lambda _rect, stem=stem: self._journal_step(stem))
            self._documents[stem] = document
        document.paint_unlabelled_only = self.paint_unlabelled_only
        document.read_only = self.read_only
        self._documents.move_to_end(stem)
        self._trim_history(keep=stem)
        journal = self.journal(stem)
        pending = (not self.read_only and not document.modified
                   and journal.newer_than(self.project.mask_path(stem)))
        auto = auto_window(image)
        window = self.project.window(stem) or auto
        return OpenedImage(stem, image, document, (window.low, window.high), messages, pending,
                           window, auto)

    def _open_slice(self, stem: str, z: int | None) -> OpenedImage:
        """Open slice ``z`` of volume ``stem`` (decoding the volume if it is not in memory)."""
        volume = self._volumes.get(stem)
        fresh = volume is None or volume.pixels is None
        if fresh:
            volume = self._load_volume(stem)
        assert volume is not None and volume.pixels is not None
        for other, entry in list(self._volumes.items()):  # only the volume on screen keeps
            if other != stem:                               # its pixels
                entry.pixels = None
                if not entry.modified():
                    del self._volumes[other]
        slices = volume.labels.shape[0]
        z = slices // 2 if z is None else int(np.clip(z, 0, slices - 1))
        document = volume.documents.get(z)
        if document is None:
            document = LabelDocument(volume.labels[z])
            document.subscribe(lambda rect, stem=stem, z=z: self.note_change(stem, rect, z))
            document.subscribe_steps(lambda _rect, stem=stem, z=z: self._journal_step(stem, z))
            volume.documents[z] = document
        document.paint_unlabelled_only = self.paint_unlabelled_only
        document.read_only = self.read_only
        pending = (fresh and not self.read_only and not volume.modified()
                   and self.journal(stem).newer_than(self.project.mask_path(stem)))
        messages, volume.messages = volume.messages, []
        window = self.project.window(stem) or volume.auto
        return OpenedImage(stem, volume.pixels[z], document, (window.low, window.high),
                           messages, pending, window, volume.auto,
                           self.project.photometric(stem) == "MONOCHROME1", volume.pixels, z)

    def _load_volume(self, stem: str) -> _OpenVolume:
        try:
            decoded = self.project.read_volume(stem)
        except SegtoolError as error:
            self.unreadable[stem] = error.problem
            self._mark(stem, ImageStatus.UNREADABLE)
            raise
        self.unreadable.pop(stem, None)
        if self.project.status(stem) == ImageStatus.UNREADABLE:
            has_mask = self.project.mask_path(stem).exists()
            self._mark(stem, ImageStatus.IN_PROGRESS if has_mask else ImageStatus.UNLABELLED)
        kept = self._volumes.get(stem)
        if kept is not None and kept.labels.shape == decoded.array.shape[:3]:
            kept.pixels = decoded.array  # labels and documents stayed: only pixels return
            return kept
        messages: list[str] = []
        path = self.project.mask_path(stem)
        try:
            labels = self.project.load_mask_volume(stem, decoded.info)
        except SegtoolError as error:
            labels = np.full(decoded.array.shape[:3], UNLABELLED, dtype=np.uint8)
            try:
                self.project.check_writable(path)
            except SegtoolError as refusal:
                messages.append(f"{error}; showing an empty mask, the file is left alone "
                                f"({refusal.problem})")
            else:
                backup = self._set_aside(path)
                messages.append(f"{error}; kept it as {backup.name} and started an empty mask")
            log.warning("%s", messages[-1])
        volume = _OpenVolume(decoded.info, decoded.array, labels,
                             auto_window(decoded.array, volume=True), messages=messages)
        self._volumes[stem] = volume
        return volume
    def _mark(self, stem: str, status: ImageStatus) -> None:
        """Record a status found while opening; a failed save is shown, not raised (the
        problem being reported is the image's)."""
        try:
            self.project.set_status(stem, status)
        except (SegtoolError, OSError) as error:
            self._tell(f"could not record {stem} as {status.value}: {error}")

    def _tell(self, problem: str) -> None:
        log.warning("%s", problem)
        for on_problem in list(self._problem_listeners):
            on_problem(problem)

    def _load_mask(self, stem: str, shape: tuple[int, int], messages: list[str]) -> np.ndarray:
        path = self.project.mask_path(stem)
        try:
            return self.project.load_mask(stem, shape)
        except SegtoolError as error:
            try:
                self.project.check_writable(path)  # read-only, or masks/ leads elsewhere
            except SegtoolError as refusal:
                messages.append(f"{error}; showing an empty mask, the file is left alone "
                                f"({refusal.problem})")
                log.warning("%s", messages[-1])
                return np.full(shape, UNLABELLED, dtype=np.uint8)
            backup = self._set_aside(path)
            messages.append(f"{error}; kept it as {backup.name} and started an empty mask")
            log.warning("%s", messages[-1])
            return np.full(shape, UNLABELLED, dtype=np.uint8)

    @staticmethod
    def _set_aside(path: Path) -> Path:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        backup = path.with_name(f"{path.name}.bad-{stamp}")
        os.replace(path, backup)
        return backup

    @property
    def read_only(self) -> bool:
        """True when the project is open read-only: nothing is edited, saved or journalled."""
        return self.project.read_only is not None

    def document(self, stem: str, z: int | None = None) -> LabelDocument | None:
        """The document of ``stem`` (of its slice ``z`` for a volume) if it was opened this
        session."""
        if z is not None:
            volume = self._volumes.get(stem)
            return None if volume is None else volume.documents.get(z)
        return self._documents.get(stem)

    def label_volume(self, stem: str) -> np.ndarray | None:
        """The ``(Z, H, W)`` labels of volume ``stem`` if it is open (read-only view)."""
        volume = self._volumes.get(stem)
        if volume is None:
            return None
        view = volume.labels.view()
        view.flags.writeable = False
        return view

    def _trim_history(self, keep: str) -> None:
        """Drop the oldest saved documents while all undo histories exceed the cap."""
        total = sum(doc.history_bytes for doc in self._documents.values())
        for stem in list(self._documents):
            if total <= self.history_cap:
                break
            document = self._documents[stem]
            if stem == keep or document.modified:
                continue
            total -= document.history_bytes
            del self._documents[stem]

    # -- journal and saving ----------------------------------------------------------------

    def journal(self, stem: str) -> EditJournal:
        return EditJournal(journal_path(self.project.root, stem))

    def note_change(self, stem: str, rect: Rect, z: int | None = None) -> None:
        """Remember that ``rect`` of ``stem``'s mask (slice ``z`` of a volume) changed
        (journalled at the next ``commit``)."""
        if rect.is_empty:
            return
        pending = self._pending.get((stem, z))
        self._pending[(stem, z)] = rect if pending is None else pending.union(rect)

    def subscribe_problems(self, on_problem: Callable[[str], None]) -> None:
        """Call ``on_problem(message)`` for problems the user should see (journal failures)."""
        self._problem_listeners.append(on_problem)

    def _journal_step(self, stem: str, z: int | None = None) -> None:
        problem = self.commit(stem, z)
        if problem:
            self._tell(problem)

    def commit(self, stem: str, z: int | None = None) -> str | None:
        """Append the pixels changed since the last commit to ``stem``'s crash journal
        (those of slice ``z`` for a volume).

        Returns None, or the problem to show the user when the journal cannot be written
        (``"crash protection is off: disk full (...)"``); the edit itself is kept.
        """
        rect = self._pending.pop((stem, z), None)
        document = self.document(stem, z)
        if rect is None or document is None or rect.is_empty:
            return None
        pixels = document.mask[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
        try:
            journal, box = self.journal(stem), (rect.y, rect.x, rect.height, rect.width)
            if z is None:
                journal.append(box, pixels)
            else:
                journal.append(box, pixels, z)
        except OSError as error:
            cause = "disk full" if error.errno == errno.ENOSPC else (error.strerror or str(error))
            return (f"crash protection is off: {cause} ({error.filename or 'journal'}); "
                    "save with Ctrl+S when there is room")
        return None

    def restore_journal(self, stem: str) -> int:
        """Replay ``stem``'s journal onto its document as one undoable step (one per slice
        of a volume); returns records."""
        volume = self._volumes.get(stem)
        if volume is not None:
            restored_volume = volume.labels.copy()
            count = self.journal(stem).replay(restored_volume)
            changed = np.flatnonzero((restored_volume != volume.labels).any(axis=(1, 2)))
            for z in changed:
                document = self.document(stem, int(z))
                if document is None:
                    self._open_slice(stem, int(z))
                    document = volume.documents[int(z)]
                document.replace_mask(restored_volume[z])
            return count
        document = self._documents[stem]
        restored = document.mask.copy()
        count = self.journal(stem).replay(restored)
        if count:
            document.replace_mask(restored)
        return count

    def discard_journal(self, stem: str) -> None:
        self.journal(stem).clear()

    def save(self, stem: str, force: bool = False) -> bool:
        """Write ``stem``'s mask if it changed (or ``force``); True when a file was written."""
        volume = self._volumes.get(stem)
        if volume is not None:
            if not (volume.modified() or force):
                return False
            for z in list(volume.documents):
                self.commit(stem, z)
            self.project.save_mask_volume(stem, volume.labels, volume.info)
            for document in volume.documents.values():
                document.mark_saved()
            self.journal(stem).clear()
            if volume.pixels is None:  # off screen: nothing left to keep
                del self._volumes[stem]
            return True
        document = self._documents.get(stem)
        if document is None or not (document.modified or force):
            return False
        self.commit(stem)
        self.project.save_mask(stem, np.array(document.mask))
        document.mark_saved()
        self.journal(stem).clear()
        return True

    def save_all(self) -> list[str]:
        """Save every modified document; returns the stems written."""
        return [stem for stem in [*self._documents, *self._volumes] if self.save(stem)]

    def modified(self) -> list[str]:
        return ([stem for stem, doc in self._documents.items() if doc.modified]
                + [stem for stem, volume in self._volumes.items() if volume.modified()])

    def set_reviewed(self, stem: str, reviewed: bool = True) -> ImageStatus:
        """Mark ``stem`` reviewed (or back to in progress/unlabelled); returns the status."""
        if reviewed:
            status = ImageStatus.REVIEWED
        else:
            document = self._documents.get(stem)
            volume = self._volumes.get(stem)
            if volume is not None:
                mask = volume.labels
            elif self.project.is_volume(stem):
                mask = self.project.load_mask_volume(stem)
            else:
                mask = document.mask if document is not None else self.project.load_mask(stem)
            labelled = bool(np.any(mask != UNLABELLED))
            status = ImageStatus.IN_PROGRESS if labelled else ImageStatus.UNLABELLED
        self.project.set_status(stem, status)
        return status
