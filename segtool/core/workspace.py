"""The labelling session over a project: open images, their label documents, saving, recovery.

No Qt: the window drives a :class:`Workspace` and shows what it returns. Each image keeps
its :class:`LabelDocument` (and so its undo history) while the session lasts, within a total
memory cap; every finished undo step is appended to the image's crash journal (the document
tells the workspace, no view in between), and saving the mask clears it. Problems found on
the way (a journal that cannot be written) go to ``subscribe_problems`` listeners.
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
from segtool.core.normalize import percentiles
from segtool.core.project import ImageStatus, Project
from segtool.core.rect import Rect

log = logging.getLogger(__name__)

DEFAULT_HISTORY_CAP = 512 * 1024 * 1024  # undo memory for all open images together


@dataclass
class OpenedImage:
    """An image ready to show: pixels, display range, its document, and what to tell the user."""

    stem: str
    image: np.ndarray
    document: LabelDocument
    display_range: tuple[float, float]
    messages: list[str] = field(default_factory=list)
    journal_pending: bool = False


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
        self._pending: dict[str, Rect] = {}
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
            for document in self._documents.values():
                document.paint_unlabelled_only = bool(value)

    # -- opening -------------------------------------------------------------------------

    def open(self, stem: str) -> OpenedImage:
        """Load image ``stem`` and its document (kept from earlier in the session if any).

        An unreadable image raises SegtoolError and is remembered (``unreadable``) with the
        reason. A mask that does not fit the image is renamed to a backup file beside it and
        the image starts unlabelled; ``messages`` says so.
        """
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
        return OpenedImage(stem, image, document, percentiles(image), messages, pending)

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

    def document(self, stem: str) -> LabelDocument | None:
        """The document of ``stem`` if it was opened this session."""
        return self._documents.get(stem)

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

    def note_change(self, stem: str, rect: Rect) -> None:
        """Remember that ``rect`` of ``stem``'s mask changed (journalled at the next ``commit``)."""
        if rect.is_empty:
            return
        pending = self._pending.get(stem)
        self._pending[stem] = rect if pending is None else pending.union(rect)

    def subscribe_problems(self, on_problem: Callable[[str], None]) -> None:
        """Call ``on_problem(message)`` for problems the user should see (journal failures)."""
        self._problem_listeners.append(on_problem)

    def _journal_step(self, stem: str) -> None:
        problem = self.commit(stem)
        if problem:
            self._tell(problem)

    def commit(self, stem: str) -> str | None:
        """Append the pixels changed since the last commit to ``stem``'s crash journal.

        Returns None, or the problem to show the user when the journal cannot be written
        (``"crash protection is off: disk full (...)"``); the edit itself is kept.
        """
        rect = self._pending.pop(stem, None)
        document = self._documents.get(stem)
        if rect is None or document is None or rect.is_empty:
            return None
        pixels = document.mask[rect.y : rect.y + rect.height, rect.x : rect.x + rect.width]
        try:
            self.journal(stem).append((rect.y, rect.x, rect.height, rect.width), pixels)
        except OSError as error:
            cause = "disk full" if error.errno == errno.ENOSPC else (error.strerror or str(error))
            return (f"crash protection is off: {cause} ({error.filename or 'journal'}); "
                    "save with Ctrl+S when there is room")
        return None

    def restore_journal(self, stem: str) -> int:
        """Replay ``stem``'s journal onto its document as one undoable step; returns records."""
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
        return [stem for stem in list(self._documents) if self.save(stem)]

    def modified(self) -> list[str]:
        return [stem for stem, doc in self._documents.items() if doc.modified]

    def set_reviewed(self, stem: str, reviewed: bool = True) -> ImageStatus:
        """Mark ``stem`` reviewed (or back to in progress/unlabelled); returns the status."""
        if reviewed:
            status = ImageStatus.REVIEWED
        else:
            document = self._documents.get(stem)
            mask = document.mask if document is not None else self.project.load_mask(stem)
            labelled = bool(np.any(mask != UNLABELLED))
            status = ImageStatus.IN_PROGRESS if labelled else ImageStatus.UNLABELLED
        self.project.set_status(stem, status)
        return status
