"""Help: the keyboard shortcuts and the About box (versions and the device)."""

from __future__ import annotations

import html
import platform
from importlib import metadata

import PySide6
from PySide6.QtCore import qVersion
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from segtool.gui.actions import shortcut_rows


def package_version(name: str) -> str:
    """The installed version of ``name`` (from its metadata: nothing is imported)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def about_text(device: str | None) -> str:
    """The About box's HTML: segtool, TensorFlow, Keras, Qt and Python versions, the device.

    TensorFlow is not imported here (it takes seconds); ``device`` is what the last
    training run reported, None before any.
    """
    device_text = device or "not known yet (TensorFlow starts with the first training run)"
    rows = (("segtool", package_version("segtool")),
            ("TensorFlow", package_version("tensorflow")),
            ("Keras", package_version("keras")),
            ("Qt", f"{qVersion()} (PySide6 {PySide6.__version__})"),
            ("Python", platform.python_version()),
            ("Device", device_text))
    table = "".join(f"<tr><td><b>{html.escape(name)}</b>&nbsp;&nbsp;</td>"
                    f"<td>{html.escape(value)}</td></tr>" for name, value in rows)
    return ("<h3>segtool</h3><p>Label images for semantic segmentation with a U-Net that "
            f"learns from you as you go.</p><table>{table}</table>")


def shortcuts_html() -> str:
    """Every shortcut as an HTML table."""
    rows = "".join(f"<tr><td><b>{html.escape(keys)}</b>&nbsp;&nbsp;&nbsp;</td>"
                   f"<td>{html.escape(text)}</td></tr>" for keys, text in shortcut_rows())
    return f"<table>{rows}</table>"


class TextDialog(QDialog):
    """A small dialog showing rich text with a Close button."""

    def __init__(self, title: str, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(buttons)
