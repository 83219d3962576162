"""The model list: each model's date, training data and validation IoU; switch back to one."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segtool.core.models import ModelRecord, model_summary

# The score first: it is what one compares, and a narrow dock still shows it.
COLUMNS = ("", "val IoU", "created", "images", "labelled px")
COLUMN_TIPS = ("★ marks the model the window predicts with",
               "Mean intersection-over-union on the held-out labelled pixels (higher is better)",
               "When the model was trained",
               "How many images it was trained on",
               "How many labelled pixels it was trained on")


class ModelsPanel(QWidget):
    """Lists ``models/``; "Use this model" emits ``use_requested(name)``."""

    use_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for column, tip in enumerate(COLUMN_TIPS):
            self.table.horizontalHeaderItem(column).setToolTip(tip)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.use_button = QPushButton("Use this model")
        self.use_button.clicked.connect(self._use_selected)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.table)
        layout.addWidget(self.use_button)

    def set_models(self, records: list[ModelRecord], current: str | None) -> None:
        """Show ``records`` newest first; the current one is marked with a star."""
        self.table.setRowCount(0)
        for record in reversed(records):
            row = self.table.rowCount()
            self.table.insertRow(row)
            iou = record.mean_val_iou
            cells = ("★" if record.name == current else "", "n/a" if iou is None else f"{iou:.3f}",
                     record.created.replace("T", " ")[:16], str(len(record.trained_on)),
                     str(record.sidecar.labelled_pixels or ""))
            # Escaped, so that nothing a sidecar holds is read as markup.
            tip = f"<p style='white-space:pre'>{html.escape(model_summary(record))}</p>"
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.UserRole, record.name)
                item.setToolTip(tip)
                self.table.setItem(row, column, item)
        self.table.resizeColumnsToContents()

    def names(self) -> list[str]:
        """Model names in display order (newest first)."""
        return [self.table.item(row, 0).data(Qt.UserRole) for row in range(self.table.rowCount())]

    def _use_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            self.use_requested.emit(self.table.item(rows[0].row(), 0).data(Qt.UserRole))
