"""Export…: the masks to a folder, as class-index PNGs, colour PNGs, COCO JSON or NIfTI
label volumes."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from segtool.core.errors import SegtoolError
from segtool.core.export import ExportFormat, export_project
from segtool.core.project import Project
from segtool.gui.folder_row import folder_row

FORMAT_TEXT = {
    ExportFormat.INDEX: "Class-index PNGs (value = class, 255 = unlabelled)",
    ExportFormat.COLOR: "Colour PNGs (class colours, black = unlabelled)",
    ExportFormat.COCO: "COCO JSON (one file, RLE masks)",
    ExportFormat.NIFTI: "NIfTI label volumes of the volumes (255 = unlabelled)",
}
NIFTI_ZERO = "nifti-zero"  # NIfTI with unlabelled 0 and class i written as i + 1


class ExportDialog(QDialog):
    """Asks for the folder and the format, then exports; a refusal (a folder inside the
    project, files there already without Replace) is shown in the dialog, which stays open.
    ``summary`` says what was written after ``accept``."""

    def __init__(self, project: Project, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self.setWindowTitle("Export masks")
        self.setMinimumWidth(520)
        self.folder = QLineEdit(str(project.root.parent / f"{project.root.name}-export"))
        self.format = QComboBox()
        for fmt, text in FORMAT_TEXT.items():
            self.format.addItem(text, fmt.value)
        self.format.addItem("NIfTI label volumes, 0 = unlabelled, class i as i + 1 "
                            "(ITK-SNAP, Slicer)", NIFTI_ZERO)
        self.replace = QCheckBox("Replace files already in the folder")
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #c03030;")
        self.problem.setVisible(False)
        form = QFormLayout()
        form.addRow("Folder", folder_row(self, self.folder, "Export to"))
        form.addRow("Format", self.format)
        form.addRow("", self.replace)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole).setDefault(True)
        buttons.accepted.connect(self.export)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.problem)
        layout.addWidget(buttons)
        self.summary = ""

    def export(self) -> None:
        text = self.folder.text().strip()
        if not text:
            self.problem.setText("choose a folder to export to")
            self.problem.setVisible(True)
            return
        try:
            chosen = self.format.currentData()
            zero = chosen == NIFTI_ZERO
            report = export_project(self.project, Path(text).expanduser(),
                                    ExportFormat.NIFTI if zero else chosen,
                                    force=self.replace.isChecked(), unlabelled_zero=zero)
        except SegtoolError as error:
            self.problem.setText(str(error))
            self.problem.setVisible(True)
            return
        self.summary = str(report).splitlines()[0]
        self.accept()
