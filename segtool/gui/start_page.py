"""The start page shown when no project is open: open, new from a folder of images, demo."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget


class StartPage(QWidget):
    """Three big buttons; the window does the work behind them."""

    open_requested = Signal()
    new_requested = Signal()
    demo_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setAlignment(Qt.AlignCenter)
        title = QLabel("<h1>segtool</h1><p>Label images; the U-Net learns as you go.</p>")
        title.setAlignment(Qt.AlignCenter)
        layout.addWidget(title)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignCenter)
        self.message.setStyleSheet("color: #b00020;")
        self.message.setVisible(False)
        layout.addWidget(self.message)
        for text, signal in (("Open project…", self.open_requested),
                             ("New project from a folder of images…", self.new_requested),
                             ("Open the demo project", self.demo_requested)):
            button = QPushButton(text)
            button.setMinimumWidth(320)
            button.clicked.connect(signal.emit)
            layout.addWidget(button, alignment=Qt.AlignCenter)

    def show_message(self, text: str) -> None:
        """Show why something did not open (e.g. the last project), above the buttons."""
        self.message.setText(text)
        self.message.setVisible(bool(text))
