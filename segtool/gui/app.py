"""Starting the GUI: the QApplication, the main window or the start page."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtWidgets import QApplication, QFileDialog, QMainWindow, QMessageBox

from segtool.core.creation import create_project_from_folder
from segtool.core.errors import SegtoolError
from segtool.core.project import Project
from segtool.gui import settings as keys
from segtool.gui.main_window import MainWindow
from segtool.gui.start_page import StartPage

log = logging.getLogger(__name__)


def application() -> QApplication:
    """The running QApplication, created with segtool's names if there is none."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(keys.ORGANISATION)
    app.setApplicationName(keys.APPLICATION)
    return app  # type: ignore[return-value]


class StartWindow(QMainWindow):
    """The start page in a window; opens a :class:`MainWindow` and closes itself."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("segtool")
        self.page = StartPage(self)
        self.setCentralWidget(self.page)
        self.resize(640, 400)
        self.main_window: MainWindow | None = None
        self.warn: Callable[[str, str], object] = partial(QMessageBox.warning, self)
        self.page.open_requested.connect(self._open)
        self.page.new_requested.connect(self._new)
        self.page.demo_requested.connect(self._demo)

    def open_project(self, folder: Path) -> None:
        try:
            project = Project.open(folder)
        except SegtoolError as error:
            self.warn("Cannot open project", str(error))
            return
        self.main_window = MainWindow(project)
        self.main_window.show()
        self.close()

    def _open(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a segtool project")
        if folder:
            self.open_project(Path(folder))

    def _new(self) -> None:
        images = QFileDialog.getExistingDirectory(self, "Folder of images to label")
        if not images:
            return
        target = QFileDialog.getExistingDirectory(self, "Empty folder for the new project")
        if not target:
            return
        self.create_project(Path(images), Path(target))

    def create_project(self, images: Path, target: Path) -> None:
        """Make a project in ``target`` (new or empty) from ``images`` and open it."""
        try:
            project, report = create_project_from_folder(target, images)
        except SegtoolError as error:
            self.warn("Cannot create project", str(error))
            return
        if report.skipped:
            self.warn("Some files were skipped", str(report))
        self.open_project(project.root)

    def _demo(self) -> None:
        from segtool.core.demo import create_demo_project, default_demo_folder

        self.open_project(create_demo_project(default_demo_folder()).root)


def first_window(project: Path | None = None) -> QMainWindow:
    """The window to open: on ``project``, else on the last project, else the start page."""
    if project is None:
        last = keys.settings().value(keys.LAST_PROJECT)
        if last and (Path(str(last)) / "segtool.json").exists():
            project = Path(str(last))
    if project is not None:
        return MainWindow(Project.open(project))
    return StartWindow()


def run_gui(project: Path | None = None) -> int:
    """Open the window on ``project`` (or the last one, or the start page) and run Qt."""
    app = application()
    window = first_window(project)
    window.show()
    return app.exec()
