"""New project: name and parent folder, the images folder, the classes, in one dialog."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QProgressDialog,
    QVBoxLayout,
    QWidget,
)

from segtool.core.creation import (
    check_new_project_folder,
    create_project_from_folder,
    image_candidates,
)
from segtool.core.errors import SegtoolError
from segtool.core.project import Project
from segtool.gui.folder_row import folder_row

DEFAULT_CLASSES = "background, object"


def parse_class_names(text: str) -> list[str]:
    """``"background, cell"`` -> ``["background", "cell"]``; SegtoolError when fewer than two
    names or a name repeats."""
    names = [name.strip() for name in text.replace(";", ",").split(",") if name.strip()]
    if len(names) < 2:
        raise SegtoolError("give at least two class names, separated by commas (the first "
                           "is usually background)", "classes")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SegtoolError(f"the class name {repeated[0]!r} appears twice", "classes")
    return names


class NewProjectDialog(QDialog):
    """Asks for the project's name and the folder to create it in, the folder of images and
    the class names; Create makes ``parent/name`` (a new folder) with copies of the images.

    A target that is not empty, the images folder itself (or a folder inside it) and ``/``
    are refused with a message in the dialog, which stays open. ``project`` holds the new
    project after ``accept``.
    """

    def __init__(self, parent: QWidget | None = None, default_parent: Path | None = None
                 ) -> None:
        super().__init__(parent)
        self.setWindowTitle("New project")
        self.setMinimumWidth(560)
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. nuclei")
        self.parent_folder = QLineEdit(str(default_parent or Path.home()))
        self.images_folder = QLineEdit()
        self.images_folder.setPlaceholderText("the folder holding the images to label")
        self.classes = QLineEdit(DEFAULT_CLASSES)
        self.classes.setToolTip("Class names separated by commas; the first is usually "
                                "background. You can add, rename and recolour them later.")
        self.target_label = QLabel()
        self.target_label.setStyleSheet("color: palette(mid);")
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #c03030;")
        self.problem.setVisible(False)
        form = QFormLayout()
        form.addRow("Project name", self.name)
        form.addRow("Create in", folder_row(self, self.parent_folder, "Create the project in"))
        form.addRow("", self.target_label)
        form.addRow("Images", folder_row(self, self.images_folder,
                                         "Folder of images to label"))
        form.addRow("Classes", self.classes)
        self.copy_images = QCheckBox("Copy the images into the project")
        self.copy_images.setChecked(True)
        self.copy_images.setToolTip(
            "Unticked, the images stay where they are and the project records their paths "
            "(for big datasets); an image moved or deleted later shows as 'file not found'.")
        form.addRow("", self.copy_images)
        note = QLabel("The images are copied into the project's images/ folder unless you "
                      "untick the box above. Volumes "
                      "(NIfTI, TIFF stacks, DICOM series: a sub-folder each, or the .dcm "
                      "files of one series) become one image each, labelled slice by slice; "
                      "a DICOM series is stored as NIfTI.")
        note.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.create_button = self.buttons.addButton(
            "Create", QDialogButtonBox.ButtonRole.AcceptRole)
        self.create_button.setDefault(True)
        self.buttons.accepted.connect(self.create)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        for edit in (self.name, self.parent_folder):
            edit.textChanged.connect(self._show_target)
        self._show_target()
        self.project: Project | None = None
        self.skipped: str = ""

    def target(self) -> Path | None:
        """The folder the project will be: parent folder / name (None without a name)."""
        name = self.name.text().strip()
        parent = self.parent_folder.text().strip()
        if not name or not parent:
            return None
        return Path(parent).expanduser() / name

    def _show_target(self) -> None:
        target = self.target()
        self.target_label.setText(f"→ {target}" if target else "")

    def show_problem(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.setVisible(bool(text))

    def _checked(self) -> tuple[Path, Path, list[str]]:
        """The target, the images folder and the class names, or SegtoolError saying what
        is missing or refused."""
        name = self.name.text().strip()
        if not name:
            raise SegtoolError("give the project a name", "Project name")
        if "/" in name or "\\" in name or name in (".", ".."):
            raise SegtoolError("is not a folder name (no slashes)", name)
        target = self.target()
        if target is None:
            raise SegtoolError("choose the folder to create the project in", "Create in")
        images_text = self.images_folder.text().strip()
        if not images_text:
            raise SegtoolError("choose the folder of images to label", "Images")
        images = Path(images_text).expanduser()
        if not images.is_dir():
            raise SegtoolError("is not a folder", images)
        if not image_candidates(images):
            raise SegtoolError("holds no files to label", images)
        names = parse_class_names(self.classes.text())
        check_new_project_folder(target, images)
        return target, images, names

    def create(self) -> None:
        """Make the project (copying the images, with a progress dialog) and accept; on a
        refusal say why and stay open."""
        try:
            target, images, names = self._checked()
        except SegtoolError as error:
            self.show_problem(str(error))
            return
        progress = QProgressDialog("Copying images…", "", 0, 0, self)
        progress.setCancelButton(None)
        progress.setWindowModality(Qt.WindowModality.WindowModal)
        progress.setMinimumDuration(500)

        def report(done: int, total: int) -> None:
            progress.setMaximum(total)
            progress.setValue(done)
            QApplication.processEvents()

        try:
            self.project, imported = create_project_from_folder(
                target, images, names, progress=report,
                reference=not self.copy_images.isChecked())
        except SegtoolError as error:
            self.show_problem(str(error))
            return
        finally:
            progress.close()
        self.skipped = str(imported) if imported.skipped else ""
        self.accept()
