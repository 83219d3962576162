"""The main window: wiring between the canvas, the panels, the workspace and the workers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from segtool.core import classes as class_edits
from segtool.core.creation import image_candidates
from segtool.core.editing import Setting
from segtool.core.errors import SegtoolError
from segtool.core.lock import ProjectBusy, ProjectLock, ProjectReadOnly
from segtool.core.masks import UNLABELLED
from segtool.core.project import ImageStatus, Project
from segtool.core.workspace import OpenedImage, Workspace
from segtool.gui import settings as keys
from segtool.gui.about import TextDialog, about_text, shortcuts_html
from segtool.gui.actions import CLASS_KEYS, ActionName, build_actions
from segtool.gui.canvas import Canvas, Tool
from segtool.gui.canvas_tools import TOOL_HINTS
from segtool.gui.classes_panel import ClassesPanel
from segtool.gui.continuous import ContinuousController
from segtool.gui.export_dialog import ExportDialog
from segtool.gui.first_run_hint import FirstRunHint
from segtool.gui.image_list import ImageListPanel
from segtool.gui.image_view import ImageView
from segtool.gui.layers_panel import LayersPanel
from segtool.gui.menus import RECENT, build_menus
from segtool.gui.models_panel import ModelsPanel
from segtool.gui.new_project_dialog import NewProjectDialog
from segtool.gui.predictions import PredictionLayer
from segtool.gui.quit_dialog import QUESTION, QuitChoice, ask_quit_during_training
from segtool.gui.slice_bar import SliceBar
from segtool.gui.tool_events import tool_events
from segtool.gui.toolbar import build_toolbar
from segtool.gui.training import TrainingController
from segtool.gui.training_panel import TrainingPanel

log = logging.getLogger(__name__)

AUTOSAVE_MS = 30_000
WINDOW_LOCK = "the segtool window"  # how the lock names the window to others
EDITING_ACTIONS = (ActionName.SAVE, ActionName.ADD_IMAGES, ActionName.TRAIN,
                   ActionName.ACCEPT_PREDICTION, ActionName.MARK_REVIEWED,
                   ActionName.ONLY_UNLABELLED, ActionName.UNDO, ActionName.REDO,
                   ActionName.ADD_CLASS, ActionName.RENAME_CLASS, ActionName.RECOLOUR_CLASS,
                   ActionName.DELETE_CLASS, ActionName.STOP_TRAINING, ActionName.CONTINUOUS)
TOOL_ACTIONS = {
    ActionName.BRUSH: Tool.BRUSH, ActionName.ERASER: Tool.ERASER, ActionName.FILL: Tool.FILL,
    ActionName.POLYGON: Tool.POLYGON, ActionName.WAND: Tool.WAND,
    ActionName.GRABCUT: Tool.GRABCUT, ActionName.PAN: Tool.PAN,
}
TOOLBAR_LAYOUT = (ActionName.SAVE, ActionName.UNDO, ActionName.REDO, None, *TOOL_ACTIONS,
                  ActionName.ONLY_UNLABELLED, None, ActionName.ACCEPT_PREDICTION,
                  ActionName.MARK_REVIEWED, ActionName.TRAIN, ActionName.CONTINUOUS)


class MainWindow(QMainWindow):
    """The labelling window on one project.

    ``ask(title, question) -> bool`` asks the user a yes/no question (a dialog by default;
    tests replace it). The window holds the project's lock (``lock``, taken here when not
    given) until it closes; when another process holds it, or the folder cannot be written,
    or ``read_only`` gives a reason, the window only shows the project: a banner says why,
    painting does nothing and nothing is saved.
    """

    open_project_requested = Signal(Path)  # the app replaces this window with one on it

    def __init__(
        self,
        project: Project,
        parent: QWidget | None = None,
        ask: Callable[[str, str], bool] | None = None,
        lock: ProjectLock | None = None,
        read_only: str | None = None,
    ) -> None:
        super().__init__(parent)
        if lock is None and read_only is None:
            try:
                lock = ProjectLock.acquire(project.root, WINDOW_LOCK)
            except (ProjectBusy, ProjectReadOnly) as error:
                read_only = error.problem
        self.lock = lock
        self.project = project
        project.read_only = read_only
        self.workspace = Workspace(project)
        self.workspace.subscribe_problems(self.show_error)
        self.current_stem: str | None = None
        self._labels_seen = False  # the first-run hint is gone once labels were seen
        self._statuses_unlabelled: bool | None = None  # every image's status unlabelled?
        self.opened: OpenedImage | None = None
        self.ask: Callable[[str, str], bool] = ask or self._ask_dialog
        # Closing while training runs: stop / keep training / cancel. With ``ask`` given
        # (tests, scripts) its yes means stop, its no cancel.
        self.choose_on_quit: Callable[[], QuitChoice] = (
            partial(ask_quit_during_training, self) if ask is None else
            lambda: QuitChoice.STOP if ask("Quit while training?", QUESTION)
            else QuitChoice.CANCEL)
        self._quit_when_trained = False
        self.setWindowTitle(self._title())

        self.settings = self.workspace.settings
        self.canvas = Canvas(self, settings=self.settings)
        self.read_only_banner = QLabel(f"Read-only: {read_only}. You can look, but nothing "
                                       "you change is saved.")
        self.read_only_banner.setWordWrap(True)
        self.read_only_banner.setStyleSheet("background: #ffe08a; color: black; padding: 6px;")
        self.read_only_banner.setVisible(read_only is not None)
        central = QWidget(self)
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.read_only_banner)
        column.addWidget(self.canvas)
        self.slice_bar = SliceBar()
        column.addWidget(self.slice_bar)
        self.setCentralWidget(central)
        self.image_list = ImageListPanel()
        self.classes_panel = ClassesPanel()
        self.layers_panel = LayersPanel()
        self.training_panel = TrainingPanel()
        self.models_panel = ModelsPanel()
        self.docks: list[QDockWidget] = []
        self._add_dock("Images", self.image_list, Qt.LeftDockWidgetArea)
        self._add_dock("Classes", self.classes_panel, Qt.RightDockWidgetArea)
        self._add_dock("Layers", self.layers_panel, Qt.RightDockWidgetArea)
        self._add_dock("Training", self.training_panel, Qt.RightDockWidgetArea)
        self._add_dock("Models", self.models_panel, Qt.LeftDockWidgetArea)
        self.actions_by_name = build_actions(self)
        self._build_toolbar()
        self.menus = build_menus(self.menuBar(), self.actions_by_name,
                                 [dock.toggleViewAction() for dock in self.docks]
                                 + [self.toolbar.toggleViewAction()])
        self._build_status_bar()
        self.first_run_hint = FirstRunHint(self.canvas.viewport())
        self.first_run_hint.hide()
        self.view = ImageView(lambda: self.workspace, project, self.canvas, self.layers_panel,
                              self.slice_bar, self)
        self.predictions = PredictionLayer(project, self)
        self.training = TrainingController(project, self.training_panel, self.models_panel,
                                           before_start=partial(self.save_current, quiet=True),
                                           parent=self)
        self.continuous = ContinuousController(
            self.training, self.training_panel, self.actions_by_name[ActionName.CONTINUOUS],
            parent=self)

        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()

        self._connect()
        if read_only is not None:
            self._disable_editing()
        self._restore_settings()
        if read_only is None:
            self.continuous.restore()  # on again if it was on when the window closed
        self._refresh_classes(current=1 if project.num_classes > 1 else 0)
        self._refresh_image_list()
        keys.remember_project(str(project.root))
        self._fill_recent_menu()
        names = project.image_names()
        last = keys.last_image(str(project.root))
        # The image the user was last on, else the first that opens (one may be missing).
        for stem in ([last] if last in names else []) + names:
            if self.open_image(stem):
                break

    @property
    def read_only(self) -> bool:
        """True when the window only shows the project (another holds it, or no write access)."""
        return self.project.read_only is not None

    def _title(self, stem: str | None = None) -> str:
        parts = ["segtool", self.project.root.name] + ([stem] if stem else [])
        return " — ".join(parts) + (" (read-only)" if self.read_only else "")

    # -- construction ----------------------------------------------------------------------

    def _disable_editing(self) -> None:
        """Read-only: every action and panel that would write the project is off."""
        for name in EDITING_ACTIONS:
            self.actions_by_name[name].setEnabled(False)
        for panel in (self.classes_panel, self.training_panel, self.models_panel):
            panel.setEnabled(False)
        self.autosave_timer.stop()

    def _add_dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> None:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        self.docks.append(dock)

    def _build_toolbar(self) -> None:
        self.toolbar, self.wand_tolerance, self._tolerance_action = build_toolbar(
            self, self.actions_by_name, TOOLBAR_LAYOUT)
        self.addToolBar(self.toolbar)
        self.wand_tolerance.set_value(keys.read_int(keys.WAND_TOLERANCE,
                                                    self.wand_tolerance.value()))
        self.canvas.set_wand_tolerance(self.wand_tolerance.value())
        self.actions_by_name[ActionName.BRUSH].setChecked(True)
        self.actions_by_name[ActionName.TOGGLE_MASK].setChecked(True)
        self.actions_by_name[ActionName.TOGGLE_PREDICTION].setChecked(True)

    def _build_status_bar(self) -> None:
        self.slice_label = QLabel()  # "slice 43 / 300" while a volume is open
        self.position_label = QLabel()
        self.zoom_label = QLabel()
        self.brush_label = QLabel()
        for label in (self.slice_label, self.position_label, self.brush_label,
                      self.zoom_label):
            self.statusBar().addPermanentWidget(label)
        self.tool_hint = QLabel()  # hidden while a message is shown, back after it
        self.statusBar().addWidget(self.tool_hint, 1)
        self._show_tool(self.settings.tool)

    def _connect(self) -> None:
        act = self.actions_by_name
        act[ActionName.SAVE].triggered.connect(self.save_current)
        act[ActionName.QUIT].triggered.connect(self.close)
        act[ActionName.UNDO].triggered.connect(self.canvas.undo)
        act[ActionName.REDO].triggered.connect(self.canvas.redo)
        act[ActionName.FIT].triggered.connect(self.canvas.fit_to_window)
        act[ActionName.ZOOM_100].triggered.connect(self.canvas.zoom_100)
        for name, tool in TOOL_ACTIONS.items():
            act[name].triggered.connect(partial(self.set_tool, tool))
        events = tool_events(self.canvas)
        events.background = True  # GrabCut in a worker: the window stays responsive
        events.message.connect(self._tool_message)
        self.wand_tolerance.changed.connect(self._set_wand_tolerance)
        act[ActionName.BRUSH_SMALLER].triggered.connect(partial(self._step_brush, -1))
        act[ActionName.BRUSH_LARGER].triggered.connect(partial(self._step_brush, +1))
        act[ActionName.ONLY_UNLABELLED].toggled.connect(self._set_only_unlabelled)
        act[ActionName.TOGGLE_MASK].toggled.connect(self._set_mask_visible)
        self.settings.subscribe(self._on_setting)
        act[ActionName.TOGGLE_PREDICTION].toggled.connect(
            self.layers_panel.prediction_visible.setChecked)
        act[ActionName.ACCEPT_PREDICTION].triggered.connect(self.accept_prediction)
        act[ActionName.NEXT_IMAGE].triggered.connect(partial(self.step_image, +1))
        act[ActionName.PREVIOUS_IMAGE].triggered.connect(partial(self.step_image, -1))
        act[ActionName.NEXT_UNLABELLED].triggered.connect(self.next_unlabelled)
        act[ActionName.MARK_REVIEWED].triggered.connect(self.mark_reviewed)
        act[ActionName.TRAIN].triggered.connect(self.training.start)
        act[ActionName.STOP_TRAINING].triggered.connect(self.training.stop)
        act[ActionName.NEW_PROJECT].triggered.connect(self.new_project)
        act[ActionName.OPEN_PROJECT].triggered.connect(self._choose_project)
        act[ActionName.EXPORT].triggered.connect(self.export_masks)
        act[ActionName.ADD_CLASS].triggered.connect(self.classes_panel.add_class)
        act[ActionName.RENAME_CLASS].triggered.connect(self.classes_panel.rename_current)
        act[ActionName.RECOLOUR_CLASS].triggered.connect(self.classes_panel.recolour_current)
        act[ActionName.DELETE_CLASS].triggered.connect(self.classes_panel.delete_current)
        act[ActionName.SHORTCUTS].triggered.connect(self.show_shortcuts)
        act[ActionName.ABOUT].triggered.connect(self.show_about)
        act[ActionName.LABEL_NEXT].triggered.connect(self.label_next)
        act[ActionName.ADD_IMAGES].triggered.connect(lambda: self.add_images())
        self.training.model_changed.connect(lambda _name: self.predictions.refresh_all())
        for news in (self.training.message, self.predictions.message):
            news.connect(self.statusBar().showMessage)
        self.training.failed.connect(self.show_error)
        self.continuous.message.connect(self.statusBar().showMessage)
        self.continuous.failed.connect(self.show_error)
        self.predictions.failed.connect(self.show_error)
        self.predictions.current_prediction.connect(self._show_prediction)
        self.predictions.updated.connect(self.image_list.refresh_uncertainty)
        self.image_list.set_uncertainty_source(self.predictions.uncertainty,
                                               lambda: self.predictions.model_name)
        for digit in CLASS_KEYS:
            action = QAction(f"Class {digit}", self)
            action.setShortcut(QKeySequence(digit))
            action.triggered.connect(partial(self.select_class, int(digit)))
            self.addAction(action)

        self.canvas.cursor_moved.connect(self._show_pixel)
        self.canvas.edited.connect(self._update_first_run_hint)
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"zoom {z * 100:.0f}%"))
        self.canvas.brush_size_changed.connect(self._on_brush_size)
        self.image_list.image_selected.connect(self.open_image)
        self.classes_panel.class_selected.connect(self.select_class)
        self.classes_panel.pixel_counter = partial(class_edits.class_pixel_count, self.project)
        self.classes_panel.add_requested.connect(self._add_class)
        self.classes_panel.rename_requested.connect(self._rename_class)
        self.classes_panel.recolour_requested.connect(self._recolour_class)
        self.classes_panel.delete_requested.connect(self._delete_class)
        self._connect_slices()
        layers = self.layers_panel
        layers.mask_opacity_changed.connect(self._set_mask_opacity)
        layers.mask_visible_changed.connect(self._set_mask_visible)
        layers.prediction_visible_changed.connect(self._set_prediction_visible)
        layers.threshold_changed.connect(self.canvas.set_prediction_threshold)
        layers.class_threshold_changed.connect(
            lambda value: self.canvas.set_class_threshold(self.settings.current_class, value))

    def _connect_slices(self) -> None:
        """A volume's slices: Up/Down and ,/. step, the slider moves, the status bar counts."""
        for keys_, step in ((("Down", ","), -1), (("Up", "."), +1)):
            action = QAction("Next slice" if step > 0 else "Previous slice", self)
            action.setShortcuts([QKeySequence(k) for k in keys_])
            # The canvas's keys: Up/Down still step a level/width field or the image list.
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.triggered.connect(partial(self.view.step_slice, step))
            self.canvas.addAction(action)
        self.view.slice_shown.connect(self._on_slice_shown)
        self.view.failed.connect(self.show_error)
        self.slice_bar.label.setVisible(False)  # the status bar says it
        self.image_list.set_slices_source(self._slices_of)

    def _on_slice_shown(self, opened: OpenedImage) -> None:
        self.opened = opened
        self.slice_label.setText(self.slice_bar.label.text())
        self.predictions.show_for(opened.stem, opened.z)
        self._update_first_run_hint()

    def _slices_of(self, stem: str) -> tuple[int, int] | None:
        """(labelled slices, slices) of a volume, None for a 2D image."""
        try:
            if not self.project.is_volume(stem):
                return None
            return self.project.labelled_slices(stem), self.project.slice_count(stem)
        except ValueError:  # not (or no longer) in the project
            return None

    # -- projects --------------------------------------------------------------------------

    def _fill_recent_menu(self) -> None:
        menu = self.menus[RECENT]
        menu.clear()
        here = str(self.project.root)
        for folder in keys.recent_projects():
            if folder == here:
                continue
            action = menu.addAction(folder)
            action.triggered.connect(partial(self.open_project_requested.emit, Path(folder)))
        menu.setEnabled(bool(menu.actions()))

    def _choose_project(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Open a segtool project",
                                                  str(self.project.root.parent))
        if chosen:
            self.open_project_requested.emit(Path(chosen))

    def new_project(self) -> None:
        """Ask for a new project in one dialog; open it when made."""
        dialog = NewProjectDialog(self, default_parent=self.project.root.parent)
        if dialog.exec() != QDialog.DialogCode.Accepted or dialog.project is None:
            return
        if dialog.skipped:
            self.show_error(dialog.skipped.replace("\n", "; "))
        self.open_project_requested.emit(dialog.project.root)

    def export_masks(self) -> None:
        """Export every mask (dialog: folder and format) after saving the open one."""
        if not self.save_current(quiet=True):
            return
        dialog = ExportDialog(self.project, self)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.statusBar().showMessage(dialog.summary, 10000)

    def show_shortcuts(self) -> None:
        TextDialog("Keyboard shortcuts", shortcuts_html(), self).exec()

    def show_about(self) -> None:
        TextDialog("About segtool", about_text(self.training_panel.device_description),
                   self).exec()

    # -- images ----------------------------------------------------------------------------

    def open_image(self, stem: str) -> bool:
        """Save the current image if changed, then show ``stem``; False if it is unreadable."""
        if stem == self.current_stem and self.opened is not None:
            return True
        if not self.save_current(quiet=True):
            self.image_list.select(self.current_stem or "")
            return False
        try:
            opened = self.workspace.open(stem)
        except SegtoolError as error:
            self.image_list.update_status(stem, ImageStatus.UNREADABLE, error.problem)
            self.show_error(str(error))
            return False
        self.current_stem, self.opened = stem, opened
        if opened.journal_pending and self.ask(
            "Restore unsaved edits?",
            f"{stem} has edits that were not saved (segtool did not close properly). "
            "Restore them?",
        ):
            self.workspace.restore_journal(stem)
        elif opened.journal_pending:
            self.workspace.discard_journal(stem)
        self.view.show(opened)
        self.slice_label.setText(self.slice_bar.label.text() if opened.volume is not None
                                 else "")
        if opened.volume is not None:
            self.canvas.setFocus()  # the slice keys are the canvas's
        self.canvas.set_overlay_opacity(self.layers_panel.mask_opacity.value() / 100
                                        if self.settings.mask_visible else 0.0)
        self.image_list.select(stem)
        self._update_review_action()
        self._refresh_image_list_entry(stem)
        for message in opened.messages:
            self.show_error(message)
        self.predictions.show_for(stem, opened.z if opened.volume is not None else None)
        self.setWindowTitle(self._title(stem))
        self._update_first_run_hint()
        keys.remember_image(str(self.project.root), stem)
        return True

    def add_images(self, folder: Path | None = None) -> int:
        """Copy the images of ``folder`` (asked for when None) into the project; returns how
        many were added. Files that cannot be added are listed in the status bar."""
        if folder is None:
            chosen = QFileDialog.getExistingDirectory(self, "Folder of images to add")
            if not chosen:
                return 0
            folder = Path(chosen)
        try:
            report = self.project.import_images(image_candidates(folder))
        except (SegtoolError, OSError) as error:
            self.show_error(f"could not add images: {error}")
            return 0
        self._refresh_image_list()
        message = f"Added {len(report.imported)} image(s) from {folder}"
        if report.skipped:
            path, reason = report.skipped[0]
            message += f"; skipped {len(report.skipped)} ({path.name}: {reason})"
        self.statusBar().showMessage(message)
        if self.current_stem is None and report.imported:
            self.open_image(self.project.image_names()[0])
        return len(report.imported)

    def step_image(self, step: int) -> None:
        """Open the next (+1) or previous (-1) image in the list's order."""
        stems = self.image_list.ordered_stems()
        if not stems:
            return
        index = stems.index(self.current_stem) if self.current_stem in stems else -step
        target = index + step
        if 0 <= target < len(stems):
            self.open_image(stems[target])

    def next_unlabelled(self) -> None:
        """Open the next image (after the current one, wrapping) with no labels yet."""
        stems = self.image_list.ordered_stems()
        start = stems.index(self.current_stem) + 1 if self.current_stem in stems else 0
        for stem in stems[start:] + stems[:start]:
            if self.project.status(stem) == ImageStatus.UNLABELLED and stem != self.current_stem:
                self.open_image(stem)
                return
        self.statusBar().showMessage("No unlabelled image left", 5000)

    def label_next(self) -> None:
        """Open the not-yet-reviewed image whose prediction the model is least sure of."""
        stem = self.predictions.least_certain(exclude=self.current_stem)
        if stem is None:
            self.predictions.refresh_all()
            self.statusBar().showMessage("Computing the model's uncertainty on every image…", 5000)
            return
        self.open_image(stem)

    def mark_reviewed(self) -> None:
        """Toggle the current image between reviewed and in progress (saving first)."""
        if self.current_stem is None:
            return
        self.save_current(quiet=True)
        reviewed = self.project.status(self.current_stem) != ImageStatus.REVIEWED
        status = self.workspace.set_reviewed(self.current_stem, reviewed)
        self._refresh_image_list_entry(self.current_stem)
        self._update_review_action()
        self.statusBar().showMessage(f"{self.current_stem}: {status.value.replace('_', ' ')}", 3000)

    # -- editing ---------------------------------------------------------------------------

    def set_tool(self, tool: Tool) -> None:
        self.canvas.set_tool(tool)
        self._show_tool(tool)
        for name, action_tool in TOOL_ACTIONS.items():
            self.actions_by_name[name].setChecked(action_tool == tool)

    def select_class(self, index: int) -> None:
        if 0 <= index < self.project.num_classes:
            self.canvas.set_current_class(index)
            self.classes_panel.select(index)
            self._show_brush()

    def accept_prediction(self) -> None:
        rect = self.canvas.accept_prediction()
        if rect.is_empty:
            self.statusBar().showMessage("No prediction to accept here", 3000)

    def _step_brush(self, direction: int) -> None:
        size = self.canvas.brush_size
        step = max(1, round(size * 0.2))
        self.canvas.set_brush_size(size + direction * step)

    def _show_tool(self, tool: Tool) -> None:
        """The tool's one-line hint in the status bar; the wand's tolerance with the wand."""
        self.statusBar().clearMessage()
        self.tool_hint.setText(TOOL_HINTS.get(tool, ""))
        self._tolerance_action.setVisible(tool == Tool.WAND)

    def _tool_message(self, text: str, milliseconds: int) -> None:
        if text:
            self.statusBar().showMessage(text, milliseconds)
        else:
            self.statusBar().clearMessage()

    def _set_wand_tolerance(self, tolerance: int) -> None:
        self.canvas.set_wand_tolerance(tolerance)
        keys.settings().setValue(keys.WAND_TOLERANCE, tolerance)

    def _set_only_unlabelled(self, enabled: bool) -> None:
        self.settings.paint_unlabelled_only = enabled  # the workspace tells its documents

    def _on_setting(self, setting: Setting, value: object) -> None:
        """Keep actions, panels and the canvas in step with the session's settings."""
        act = self.actions_by_name
        if setting == Setting.TOOL:
            for name, action_tool in TOOL_ACTIONS.items():
                act[name].setChecked(action_tool == value)
            self._show_tool(Tool(value))
        elif setting == Setting.CURRENT_CLASS:
            self.classes_panel.select(int(value))  # type: ignore[call-overload]
            self.layers_panel.set_class_threshold(self.canvas.class_threshold(int(value)))
            self._show_brush()
        elif setting == Setting.PAINT_UNLABELLED_ONLY:
            act[ActionName.ONLY_UNLABELLED].setChecked(bool(value))
        elif setting == Setting.MASK_VISIBLE:
            opacity = self.layers_panel.mask_opacity.value() / 100
            self.canvas.set_overlay_opacity(opacity if value else 0.0)
            act[ActionName.TOGGLE_MASK].setChecked(bool(value))
            self.layers_panel.mask_visible.setChecked(bool(value))

    # -- saving ----------------------------------------------------------------------------

    def save_current(self, quiet: bool = False) -> bool:
        """Save the current mask if it changed; False (and a message) if writing failed."""
        if self.current_stem is None:
            return True
        try:
            written = self.workspace.save(self.current_stem, force=not quiet)
        except (SegtoolError, OSError) as error:
            self.show_error(f"could not save {self.current_stem}: {error}")
            return False
        if written:
            self._refresh_image_list_entry(self.current_stem)
            self.continuous.labels_saved()
            self.statusBar().showMessage(f"Saved {self.project.mask_path(self.current_stem)}", 3000)
        return True

    def autosave(self) -> None:
        """Save every changed mask (the timer calls this about every 30 s)."""
        try:
            written = self.workspace.save_all()
        except (SegtoolError, OSError) as error:
            self.show_error(f"autosave failed: {error}")
            return
        for stem in written:
            self._refresh_image_list_entry(stem)
        if written:
            self.continuous.labels_saved()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if self.training.running and not self._quit_when_trained:
            choice = self.choose_on_quit()
            if choice == QuitChoice.CANCEL:
                event.ignore()
                return
            if choice == QuitChoice.KEEP_TRAINING:
                self._quit_when_trained = True
                self.training.run_finished.connect(lambda _outcome: self.close())
                self.statusBar().showMessage("segtool closes when training ends")
                event.ignore()
                return
            self.statusBar().showMessage("Stopping training…")
            self.training.stop_and_wait()
        try:
            self.workspace.save_all()
        except (SegtoolError, OSError) as error:
            if not self.ask("Quit without saving?", f"Saving failed: {error}\nQuit anyway?"):
                event.ignore()
                return
        self.autosave_timer.stop()
        tool_events(self.canvas).shutdown()
        self.continuous.shutdown()
        self.training.shutdown()
        self.predictions.shutdown()
        self._save_settings()
        if self.lock is not None:
            self.lock.release()
        event.accept()

    # -- view ------------------------------------------------------------------------------

    def _set_mask_opacity(self, opacity: float) -> None:
        if self.settings.mask_visible:
            self.canvas.set_overlay_opacity(opacity)
        keys.settings().setValue(keys.MASK_OPACITY, opacity)

    def _set_mask_visible(self, visible: bool) -> None:
        self.settings.mask_visible = visible  # _on_setting updates canvas, action, checkbox

    def _set_prediction_visible(self, visible: bool) -> None:
        self.canvas.set_prediction_visible(visible)
        self.actions_by_name[ActionName.TOGGLE_PREDICTION].setChecked(visible)

    def _show_prediction(self, classes: np.ndarray, confidence: np.ndarray,
                         runner_up: tuple | None = None) -> None:
        try:
            self.canvas.set_prediction(classes, confidence, self.project.num_classes, runner_up)
        except ValueError as error:  # the image changed size on disk meanwhile
            log.warning("prediction not shown: %s", error)

    def _show_pixel(self, x: int, y: int) -> None:
        if self.opened is None or x < 0:
            self.position_label.setText("")
            return
        value = self.opened.image[y, x]
        value_text = (", ".join(f"{v:g}" for v in np.atleast_1d(value)))
        label = int(self.opened.document.mask[y, x])
        name = "unlabelled" if label == 255 else self._class_name(label)
        self.position_label.setText(f"x {x}  y {y}  value {value_text}  class {name}")

    def _on_brush_size(self, size: int) -> None:
        keys.settings().setValue(keys.BRUSH_SIZE, size)
        self._show_brush()

    def _show_brush(self) -> None:
        name = self._class_name(self.canvas.current_class)
        self.brush_label.setText(f"brush {self.canvas.brush_size}px  class {name}")

    def _class_name(self, index: int) -> str:
        return self.project.classes[index].name if index < self.project.num_classes else str(index)

    # -- classes ---------------------------------------------------------------------------

    def _refresh_classes(self, current: int | None = None) -> None:
        current = self.canvas.current_class if current is None else current
        current = min(current, self.project.num_classes - 1)
        self.classes_panel.set_classes(self.project.classes, current)
        self.canvas.set_class_colours(self.project.colours)
        self.canvas.set_current_class(current)
        self._show_brush()

    def _edit_classes(self, edit: Callable[[], object]) -> None:
        try:
            edit()
        except SegtoolError as error:
            self.show_error(str(error))
        self._refresh_classes()

    def _add_class(self, name: str, colour: tuple) -> None:
        self._edit_classes(lambda: self.project.add_class(name, colour or None))

    def _rename_class(self, index: int, name: str) -> None:
        self._edit_classes(lambda: class_edits.rename_class(self.project, index, name))

    def _recolour_class(self, index: int, colour: tuple) -> None:
        self._edit_classes(lambda: class_edits.recolour_class(self.project, index, colour))

    def _delete_class(self, index: int) -> None:
        """Delete a class: saved masks are remapped on disk, then the open image reloads."""
        if not self.save_current(quiet=True):
            return
        stem = self.current_stem
        # Histories refer to the old class numbers: a fresh workspace, the same settings.
        self.workspace.detach()
        self.workspace = Workspace(self.project, settings=self.settings)
        self.workspace.subscribe_problems(self.show_error)
        self.current_stem, self.opened = None, None
        self._edit_classes(lambda: class_edits.delete_class(self.project, index))
        self.canvas.clear_class_thresholds()  # they were kept by class number
        self.layers_panel.set_class_threshold(self.canvas.class_threshold(
            self.settings.current_class))
        if stem is not None:
            self.open_image(stem)

    # -- helpers ---------------------------------------------------------------------------

    def _refresh_image_list(self) -> None:
        stems = self.project.image_names()
        self.image_list.set_images(stems, {s: self.project.status(s) for s in stems},
                                   dict(self.workspace.unreadable))

    def _refresh_image_list_entry(self, stem: str) -> None:
        status = self.project.status(stem)
        if status != ImageStatus.UNLABELLED:
            self._statuses_unlabelled = False
        self.image_list.update_status(stem, status)

    def _update_first_run_hint(self) -> None:
        """Show what to do first on a project with no labels at all; once there are
        labels the hint goes for the session."""
        hint = self.first_run_hint
        if not hint.isVisible() and self._labels_seen:
            return
        if self._statuses_unlabelled is None:  # scanned once: projects hold 100,000 images
            self._statuses_unlabelled = all(self.project.status(stem) == ImageStatus.UNLABELLED
                                            for stem in self.project.image_names())
        no_labels = (not self.read_only and self.opened is not None
                     and self._statuses_unlabelled
                     and bool((self.opened.document.mask == UNLABELLED).all()))
        self._labels_seen = self._labels_seen or not no_labels
        hint.setVisible(no_labels and not self._labels_seen)

    def _update_review_action(self) -> None:
        reviewed = (self.current_stem is not None
                    and self.project.status(self.current_stem) == ImageStatus.REVIEWED)
        action = self.actions_by_name[ActionName.MARK_REVIEWED]
        action.blockSignals(True)
        action.setChecked(reviewed)
        action.blockSignals(False)

    def show_error(self, message: str) -> None:
        """Show a problem in the status bar (kept until the next message) and the log."""
        log.warning("%s", message)
        self.statusBar().showMessage(message)

    def _ask_dialog(self, title: str, question: str) -> bool:
        answer = QMessageBox.question(self, title, question,
                                      QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
        return answer == QMessageBox.Yes

    def _restore_settings(self) -> None:
        store = keys.settings()
        geometry, state = store.value(keys.GEOMETRY), store.value(keys.WINDOW_STATE)
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        if state is not None:
            self.restoreState(state)
        self.canvas.set_brush_size(keys.read_int(keys.BRUSH_SIZE, self.canvas.brush_size))
        opacity = keys.read_float(keys.MASK_OPACITY, 0.5)
        self.layers_panel.mask_opacity.setValue(round(opacity * 100))

    def _save_settings(self) -> None:
        store = keys.settings()
        store.setValue(keys.GEOMETRY, self.saveGeometry())
        store.setValue(keys.WINDOW_STATE, self.saveState())
        store.setValue(keys.BRUSH_SIZE, self.canvas.brush_size)
        store.sync()
