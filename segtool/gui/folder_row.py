"""A folder field: a line edit and a "Choose…" button that opens a folder dialog."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget


def folder_row(parent: QWidget, edit: QLineEdit, caption: str) -> QHBoxLayout:
    """``edit`` with a "Choose…" button beside it; a chosen folder replaces its text."""

    def choose() -> None:
        chosen = QFileDialog.getExistingDirectory(parent, caption, edit.text())
        if chosen:
            edit.setText(chosen)

    row = QHBoxLayout()
    row.addWidget(edit, 1)
    button = QPushButton("Choose…")
    button.clicked.connect(choose)
    row.addWidget(button)
    return row
