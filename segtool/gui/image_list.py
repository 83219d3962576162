"""The image list: every project image with its status, a status filter and sorting."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QComboBox, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from segtool.core.project import ImageStatus

STATUS_COLOURS = {
    ImageStatus.UNLABELLED: QColor(150, 150, 150),
    ImageStatus.IN_PROGRESS: QColor(230, 160, 30),
    ImageStatus.REVIEWED: QColor(40, 170, 70),
    ImageStatus.UNREADABLE: QColor(210, 40, 40),
}
ALL = "all"
_MODEL_TIME = re.compile(r"model-(\d{4})(\d\d)(\d\d)-(\d\d)(\d\d)\d\d")


def model_label(name: str | None) -> str:
    """"model of 14:02" (of 2026-11-24 14:02 for an older day) from a model's file name."""
    if not name:
        return "current model"
    found = _MODEL_TIME.match(name)
    if found is None:
        return f"model {name}"
    year, month, day, hour, minute = found.groups()
    when = f"{hour}:{minute}"
    if _dt.date.today().isoformat() != f"{year}-{month}-{day}":
        when = f"{year}-{month}-{day} {when}"
    return f"model of {when}"


class ImageListPanel(QWidget):
    """A filterable list of image names; emits ``image_selected(stem)`` on a click."""

    image_selected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.filter_box = QComboBox()
        self.filter_box.addItem("All images", ALL)
        for status in ImageStatus:
            self.filter_box.addItem(status.value.replace("_", " ").capitalize(), status.value)
        self.filter_box.currentIndexChanged.connect(self._apply_filter)
        self.sort_box = QComboBox()
        self.sort_box.addItem("Sort by name", "name")
        self.sort_box.addItem("Sort by model uncertainty", "uncertainty")
        self.sort_box.currentIndexChanged.connect(lambda _index: self._rebuild())
        self.list = QListWidget()
        self.list.setUniformItemSizes(True)  # one row height: 100,000 rows lay out at once
        self.list.itemActivated.connect(self._on_item)
        self.list.itemClicked.connect(self._on_item)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.filter_box)
        layout.addWidget(self.sort_box)
        layout.addWidget(self.list)
        self._stems: list[str] = []
        self._items: dict[str, QListWidgetItem] = {}
        self._status: dict[str, ImageStatus] = {}
        self._reasons: dict[str, str] = {}
        self._uncertainty: Callable[[str], float | None] = lambda _stem: None
        self._model: Callable[[], str | None] = lambda: None
        self._slices: Callable[[str], tuple[int, int] | None] = lambda _stem: None

    def set_images(self, stems: list[str], status: dict[str, ImageStatus],
                   reasons: dict[str, str] | None = None) -> None:
        """Show ``stems`` with their status (and the reason for unreadable ones)."""
        self._stems = list(stems)
        self._status = dict(status)
        self._reasons = dict(reasons or {})
        self._rebuild()

    def set_uncertainty_source(self, source: Callable[[str], float | None],
                               model: Callable[[], str | None] = lambda: None) -> None:
        """Where "sort by uncertainty" gets each image's mean uncertainty (None = unknown),
        and the name of the model it comes from (for the tooltip)."""
        self._uncertainty = source
        self._model = model
        self._rebuild()

    def set_slices_source(self, source: Callable[[str], tuple[int, int] | None]) -> None:
        """Where a volume's (labelled slices, slices) come from (None for a 2D image)."""
        self._slices = source
        self._rebuild()

    def update_status(self, stem: str, status: ImageStatus, reason: str = "") -> None:
        self._status[stem] = status
        if reason:
            self._reasons[stem] = reason
        item = self._item(stem)
        if item is not None:
            self._decorate(item, stem)
            self._filter_one(item, self.filter_box.currentData())

    def refresh_uncertainty(self, stem: str) -> None:
        """A prediction of ``stem`` arrived: re-sort when sorting by uncertainty."""
        if self.sort_box.currentData() == "uncertainty":
            self._rebuild()
        elif (item := self._item(stem)) is not None:
            self._decorate(item, stem)

    def select(self, stem: str) -> None:
        """Highlight ``stem`` without emitting ``image_selected``."""
        item = self._item(stem)
        if item is not None:
            self.list.blockSignals(True)
            self.list.setCurrentItem(item)
            self.list.blockSignals(False)

    def ordered_stems(self) -> list[str]:
        """The stems in display order (sorting applied, filter ignored)."""
        if self.sort_box.currentData() == "uncertainty":
            def key(stem: str) -> tuple[int, float, str]:
                value = self._uncertainty(stem)
                return (value is None, -(value or 0.0), stem)
            return sorted(self._stems, key=key)
        return list(self._stems)

    def _rebuild(self) -> None:
        current = self.list.currentItem()
        current_stem = current.data(Qt.UserRole) if current else None
        self.list.blockSignals(True)
        self.list.clear()
        self._items = {}
        for stem in self.ordered_stems():
            item = QListWidgetItem(stem)
            item.setData(Qt.UserRole, stem)
            self._decorate(item, stem)
            self.list.addItem(item)
            self._items[stem] = item
        self.list.blockSignals(False)
        if current_stem:
            self.select(current_stem)
        self._apply_filter()

    def _decorate(self, item: QListWidgetItem, stem: str) -> None:
        status = self._status.get(stem, ImageStatus.UNLABELLED)
        label = status.value.replace("_", " ")
        uncertainty = self._uncertainty(stem)
        extra = f"   uncertainty {uncertainty:.2f}" if uncertainty is not None else ""
        slices = self._slices(stem)
        if slices is not None:
            label += f", {slices[0]}/{slices[1]} slices"
        item.setText(f"{stem}   [{label}]{extra}")
        item.setForeground(QBrush(STATUS_COLOURS[status]))
        tip = self._reasons.get(stem, label)
        if uncertainty is not None:
            tip += f"\nmean uncertainty {uncertainty:.2f} ({model_label(self._model())})"
        item.setToolTip(tip)

    def _apply_filter(self) -> None:
        wanted = self.filter_box.currentData()
        for item in self._items.values():
            self._filter_one(item, wanted)

    def _filter_one(self, item: QListWidgetItem, wanted: str) -> None:
        status = self._status.get(item.data(Qt.UserRole), ImageStatus.UNLABELLED)
        item.setHidden(wanted != ALL and status.value != wanted)

    def _item(self, stem: str) -> QListWidgetItem | None:
        """The list's row of ``stem`` (a dict lookup: lists hold 100,000 images)."""
        return self._items.get(stem)

    def _on_item(self, item: QListWidgetItem) -> None:
        self.image_selected.emit(item.data(Qt.UserRole))
