"""The menu bar: every window action in a menu, with its shortcut shown beside it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QMenuBar

from segtool.gui.actions import ActionName as A

# (menu title, entries): an ActionName, None for a separator, or a submenu's name.
RECENT = "Open recent"
PANELS = "Panels"
MENUS: tuple[tuple[str, tuple[A | str | None, ...]], ...] = (
    ("&File", (A.NEW_PROJECT, A.OPEN_PROJECT, RECENT, None, A.ADD_IMAGES, A.SAVE, A.EXPORT,
               None, A.QUIT)),
    ("&Edit", (A.UNDO, A.REDO, None, A.ADD_CLASS, A.RENAME_CLASS, A.RECOLOUR_CLASS,
               A.DELETE_CLASS, None, A.ACCEPT_PREDICTION, A.ONLY_UNLABELLED)),
    ("&View", (A.TOGGLE_MASK, A.TOGGLE_PREDICTION, None, A.FIT, A.ZOOM_100, None, PANELS)),
    ("&Image", (A.NEXT_IMAGE, A.PREVIOUS_IMAGE, A.NEXT_UNLABELLED, None, A.MARK_REVIEWED)),
    ("T&ools", (A.BRUSH, A.ERASER, A.FILL, A.POLYGON, A.WAND, A.GRABCUT, A.PAN, None,
                A.BRUSH_SMALLER, A.BRUSH_LARGER)),
    ("&Train", (A.TRAIN, A.STOP_TRAINING, A.CONTINUOUS, None, A.LABEL_NEXT)),
    ("&Help", (A.SHORTCUTS, A.ABOUT)),
)


def build_menus(
    menu_bar: QMenuBar, actions: Mapping[A, QAction], panels: Iterable[QAction]
) -> dict[str, QMenu]:
    """Fill ``menu_bar`` from :data:`MENUS`; ``panels`` are the docks' show/hide toggles.
    Returns the menus by title (without '&'), the "Open recent" submenu included."""
    menus: dict[str, QMenu] = {}
    for title, entries in MENUS:
        menu = menu_bar.addMenu(title)
        menus[title.replace("&", "")] = menu
        for entry in entries:
            if entry is None:
                menu.addSeparator()
            elif entry == RECENT:
                menus[RECENT] = menu.addMenu(RECENT)
            elif entry == PANELS:
                panel_menu = menu.addMenu(PANELS)
                for toggle in panels:
                    panel_menu.addAction(toggle)
                menus[PANELS] = panel_menu
            else:
                menu.addAction(actions[A(entry)])
    return menus


def menu_actions(menus: Mapping[str, QMenu]) -> set[QAction]:
    """Every action reachable from ``menus`` (submenus included)."""
    found: set[QAction] = set()
    pending = list(menus.values())
    while pending:
        menu = pending.pop()
        for action in menu.actions():
            if action.menu() is not None:
                pending.append(action.menu())
            elif not action.isSeparator():
                found.add(action)
    return found
