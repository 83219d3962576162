"""The question asked when the window closes while training runs."""

from __future__ import annotations

import enum

from PySide6.QtWidgets import QMessageBox, QWidget


class QuitChoice(str, enum.Enum):
    """What to do with a training run when the user quits."""

    STOP = "stop"  # stop now, keep the best model so far (if it is no worse), then quit
    KEEP_TRAINING = "keep_training"  # let the run finish, then quit
    CANCEL = "cancel"  # do not quit


QUESTION = ("Training is running. Stop it and keep the best model so far (only if it scores "
            "at least as well as the current one), or let it finish and quit then?")


def ask_quit_during_training(parent: QWidget | None) -> QuitChoice:
    """Ask with three buttons; Escape or closing the box is Cancel."""
    box = QMessageBox(QMessageBox.Icon.Question, "Quit while training?", QUESTION,
                      QMessageBox.StandardButton.NoButton, parent)
    stop = box.addButton("Stop and quit", QMessageBox.ButtonRole.AcceptRole)
    keep = box.addButton("Quit when training ends", QMessageBox.ButtonRole.ActionRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(stop)
    box.setEscapeButton(cancel)
    box.exec()
    clicked = box.clickedButton()
    if clicked is stop:
        return QuitChoice.STOP
    if clicked is keep:
        return QuitChoice.KEEP_TRAINING
    return QuitChoice.CANCEL
