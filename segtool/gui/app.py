"""Starting the GUI: the QApplication, the main window or the start page."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QWidget,
)
from shiboken6 import isValid

from segtool.core.creation import create_project_from_folder
from segtool.core.errors import SegtoolError
from segtool.core.lock import ProjectBusy, ProjectLock, ProjectReadOnly
from segtool.core.project import Project
from segtool.gui import settings as keys
from segtool.gui.garbage import GuiThreadCollector
from segtool.gui.main_window import WINDOW_LOCK, MainWindow
from segtool.gui.new_project_dialog import NewProjectDialog
from segtool.gui.quiet import quiet_terminal
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
        self.ask: Callable[[str, str], bool] = partial(ask_dialog, self)
        self.page.open_requested.connect(self._open)
        self.page.new_requested.connect(self._new)
        self.page.demo_requested.connect(self._demo)

    def open_project(self, folder: Path) -> None:
        try:
            project = Project.open(folder)
        except SegtoolError as error:
            self.warn("Cannot open project", str(error))
            return
        window = open_main_window(project, self.ask)
        if window is None:
            return
        self.main_window = window
        self.main_window.show()
        self.close()

    def _open(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a segtool project")
        if folder:
            self.open_project(Path(folder))

    def _new(self) -> None:
        dialog = NewProjectDialog(self)
        if dialog.exec() != QDialog.DialogCode.Accepted or dialog.project is None:
            return
        if dialog.skipped:
            self.warn("Some files were skipped", dialog.skipped)
        self.open_project(dialog.project.root)

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


def ask_dialog(parent: QWidget | None, title: str, question: str) -> bool:
    """Ask a yes/no question in a dialog; True for yes."""
    answer = QMessageBox.question(parent, title, question,
                                  QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
    return answer == QMessageBox.Yes


def open_main_window(
    project: Project, ask: Callable[[str, str], bool]
) -> MainWindow | None:
    """A window on ``project`` holding its lock; when another holds it, ``ask`` whether to
    open it read-only (None when the user says no). A folder that cannot be written opens
    read-only without asking."""
    try:
        lock = ProjectLock.acquire(project.root, WINDOW_LOCK)
    except ProjectBusy as busy:
        if not ask("Project in use", f"{busy}\n\nOpen it read-only? You can look at it, "
                                     "but nothing you change is saved."):
            return None
        window = MainWindow(project, ask=ask, read_only=busy.problem)
    except ProjectReadOnly as error:
        window = MainWindow(project, ask=ask, read_only=error.problem)
    else:
        window = MainWindow(project, ask=ask, lock=lock)
    window.open_project_requested.connect(partial(switch_project, window))
    return window


_KEPT: list[QMainWindow] = []  # windows opened in place of another: kept until closed


def _keep(window: QMainWindow) -> None:
    _KEPT[:] = [kept for kept in _KEPT if isValid(kept) and kept.isVisible()] + [window]


def switch_project(window: MainWindow, folder: Path) -> QMainWindow | None:
    """Close ``window`` and show a window on the project at ``folder`` in its place (File >
    Open, Open recent, New project). Returns the new window; None when the project does not
    open (the old window says why and stays) or the old window would not close."""
    if os.path.realpath(folder) == os.path.realpath(window.project.root):
        window.statusBar().showMessage("That project is open already", 5000)
        return window
    try:
        project = Project.open(folder)
    except SegtoolError as error:
        window.show_error(f"cannot open the project: {error}")
        return None
    if not window.close():
        return None
    replacement: QMainWindow | None = open_main_window(project, window.ask)
    if replacement is None:
        replacement = StartWindow()
    _keep(replacement)
    replacement.show()
    return replacement


def first_window(
    project: Path | None = None, ask: Callable[[str, str], bool] | None = None
) -> QMainWindow:
    """The window to open: on ``project``, else on the last project, else the start page.

    ``ask`` answers the read-only question when the project is in use (a dialog by default);
    saying no shows the start page.
    """
    ask = ask or partial(ask_dialog, None)
    if project is not None:  # named by the user: an error is theirs to read (one line)
        window = open_main_window(Project.open(project), ask)
        return window if window is not None else StartWindow()
    last = keys.settings().value(keys.LAST_PROJECT)
    if not last:
        return StartWindow()
    try:
        window = open_main_window(Project.open(Path(str(last))), ask)
    except SegtoolError as error:
        log.warning("the last project does not open: %s", error)
        start = StartWindow()
        start.page.show_message(f"The last project could not be opened: {error}")
        return start
    return window if window is not None else StartWindow()


def run_gui(project: Path | None = None) -> int:
    """Open the window on ``project`` (or the last one, or the start page) and run Qt.

    The terminal stays quiet (TensorFlow's, CUDA's and Qt's notices are hidden) unless
    logging is at DEBUG (``segtool --debug``).
    """
    quiet_terminal(debug=logging.getLogger().isEnabledFor(logging.DEBUG))
    app = application()
    collector = GuiThreadCollector(app)  # never in a worker thread (see garbage.py)
    window = first_window(project)
    window.show()
    try:
        return app.exec()
    finally:
        collector.stop()
