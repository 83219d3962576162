"""The classes panel: swatch, name and shortcut of each class; add, rename, recolour, delete."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QHBoxLayout,
    QInputDialog,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from segtool.core.classes import next_class_colour
from segtool.core.project import ClassInfo


def swatch(colour: tuple[int, int, int], size: int = 14) -> QIcon:
    """A square icon filled with ``colour``."""
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(*colour))
    return QIcon(pixmap)


class ClassesPanel(QWidget):
    """Lists the project's classes; the selected one is what the tools paint.

    Edits are emitted as requests (the window applies them to the project):
    ``add_requested(name, rgb)``, ``rename_requested(index, name)``,
    ``recolour_requested(index, rgb)``, ``delete_requested(index)``.
    """

    class_selected = Signal(int)
    add_requested = Signal(str, tuple)
    rename_requested = Signal(int, str)
    recolour_requested = Signal(int, tuple)
    delete_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._on_row)
        self.list.itemDoubleClicked.connect(lambda _item: self.rename_current())
        buttons = QHBoxLayout()
        for text, slot in (("Add", self.add_class), ("Rename", self.rename_current),
                           ("Colour", self.recolour_current), ("Delete", self.delete_current)):
            button = QPushButton(text)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self._classes: list[ClassInfo] = []
        self.pixel_counter: Callable[[int], int] = lambda _index: 0
        self.confirm: Callable[[str, str], bool] = self._confirm_dialog

    def set_classes(self, classes: Sequence[ClassInfo], current: int) -> None:
        """Show ``classes`` and select index ``current`` (without emitting)."""
        self._classes = list(classes)
        self.list.blockSignals(True)
        self.list.clear()
        for index, info in enumerate(self._classes):
            shortcut = f"   ({index})" if index <= 9 else ""  # the key that picks it
            item = QListWidgetItem(swatch(info.colour), f"{info.name}{shortcut}")
            item.setData(Qt.UserRole, index)
            self.list.addItem(item)
        self.list.setCurrentRow(current)
        self.list.blockSignals(False)

    def current_index(self) -> int:
        return self.list.currentRow()

    def select(self, index: int) -> None:
        if 0 <= index < self.list.count():
            self.list.setCurrentRow(index)

    def add_class(self) -> None:
        """Ask for the name; the colour is the next distinct one of the palette (Colour
        changes it)."""
        name, ok = QInputDialog.getText(self, "Add class", "Name of the new class:")
        if ok and name.strip():
            colour = next_class_colour([info.colour for info in self._classes])
            self.add_requested.emit(name.strip(), colour)

    def rename_current(self) -> None:
        index = self.current_index()
        if index < 0:
            return
        name, ok = QInputDialog.getText(self, "Rename class", "New name:",
                                        text=self._classes[index].name)
        if ok and name.strip():
            self.rename_requested.emit(index, name.strip())

    def recolour_current(self) -> None:
        index = self.current_index()
        if index < 0:
            return
        colour = QColorDialog.getColor(QColor(*self._classes[index].colour), self,
                                       f"Colour of {self._classes[index].name}")
        if colour.isValid():
            self.recolour_requested.emit(index, (colour.red(), colour.green(), colour.blue()))

    def delete_current(self) -> None:
        """Ask first, saying how many pixels are labelled with the class, then request it."""
        index = self.current_index()
        if index < 0:
            return
        if len(self._classes) <= 1:
            return
        count = self.pixel_counter(index)
        name = self._classes[index].name
        question = (f"Delete class '{name}'? {count} labelled pixel(s) in this project will "
                    "become unlabelled, and higher class numbers move down by one.")
        if self.confirm("Delete class", question):
            self.delete_requested.emit(index)

    def _confirm_dialog(self, title: str, question: str) -> bool:
        answer = QMessageBox.question(self, title, question,
                                      QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def _on_row(self, row: int) -> None:
        if row >= 0:
            self.class_selected.emit(row)
