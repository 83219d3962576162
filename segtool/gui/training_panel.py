"""The training panel: budget, Train/Stop, progress with time left, live loss and IoU plots."""

from __future__ import annotations

from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import QSize, Signal
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

DEFAULT_BUDGET_S = 90  # a CPU run on a small project ends within about two minutes


class _Plot(pg.PlotWidget):
    """A plot that asks for dock-sized room (pyqtgraph's default hint is 640 x 480)."""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(280, 150)


class TrainingPanel(QWidget):
    """Start, follow and stop a training run.

    ``update_progress`` takes the worker's TrainProgress (step, total_steps_estimate, loss,
    val_iou per class, elapsed); curves are drawn with pyqtgraph as the run goes.
    """

    train_requested = Signal()
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.budget = QSpinBox()
        self.budget.setRange(5, 3600)
        self.budget.setSuffix(" s")
        self.budget.setValue(DEFAULT_BUDGET_S)
        self.budget.setToolTip("Training stops after this long (the best model is kept)")
        self.train_button = QPushButton("Train (Ctrl+T)")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.train_button.clicked.connect(self.train_requested.emit)
        self.stop_button.clicked.connect(self.stop_requested.emit)
        self.device_label = QLabel("device: not started")
        self.device_description: str | None = None  # what the last run reported
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("idle")
        self.message = QLabel()
        self.message.setWordWrap(True)

        pg.setConfigOptions(antialias=False)
        self.loss_plot = _Plot(title="loss")
        self.iou_plot = _Plot(title="validation IoU")
        self.iou_plot.setYRange(0.0, 1.0)
        self.iou_plot.addLegend(offset=(-5, -5))  # bottom right, under the rising curves
        for plot in (self.loss_plot, self.iou_plot):
            plot.setMinimumHeight(110)
            plot.setLabel("bottom", "step")
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen((220, 220, 220), width=1))
        self.iou_curves: list[pg.PlotDataItem] = []

        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.stop_button)
        form = QFormLayout()
        form.addRow("Time budget", self.budget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.device_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.iou_plot)
        self._steps: list[int] = []
        self._losses: list[float] = []
        self._ious: list[list[float]] = []
        self._val_steps: list[int] = []

    @property
    def running(self) -> bool:
        return self.stop_button.isEnabled()

    def start(self, class_names: Sequence[str], colours: Sequence[tuple[int, int, int]]) -> None:
        """Reset the plots for a new run with these classes."""
        self._steps, self._losses, self._ious, self._val_steps = [], [], [], []
        self.loss_curve.setData([], [])
        for curve in self.iou_curves:
            self.iou_plot.removeItem(curve)
        self.iou_plot.plotItem.legend.clear()
        self.iou_curves = [
            self.iou_plot.plot(pen=pg.mkPen(colour, width=2), name=name)
            for name, colour in zip(class_names, colours, strict=True)
        ]
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.message.setText("")
        self.train_button.setEnabled(False)
        self.stop_button.setEnabled(True)

    def set_device(self, description: str) -> None:
        self.device_description = description
        self.device_label.setText(f"device: {description}")

    def update_progress(self, progress: object) -> None:
        """Show one progress report (time left, loss and IoU curves)."""
        step, elapsed = int(progress.step), float(progress.elapsed)
        total = max(int(progress.total_steps_estimate), step, 1)
        fraction = min(1.0, step / total)
        self.progress.setValue(round(fraction * 1000))
        left = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        self.progress.setFormat(f"step {step}/{total}  ·  {left:.0f} s left"
                                if left == left else f"step {step}")
        self._steps.append(step)
        self._losses.append(float(progress.loss))
        self.loss_curve.setData(self._steps, self._losses)
        ious = [float(v) for v in progress.val_iou]
        if ious and any(v == v for v in ious) and (not self._ious or ious != self._ious[-1]):
            self._val_steps.append(step)
            self._ious.append(ious)
            for index, curve in enumerate(self.iou_curves):
                values = [row[index] if index < len(row) else float("nan") for row in self._ious]
                pairs = [(s, v) for s, v in zip(self._val_steps, values, strict=True) if v == v]
                curve.setData([s for s, _ in pairs], [v for _, v in pairs])

    def finish(self, message: str, failed: bool = False) -> None:
        """Back to idle, with a closing message (red when the run failed)."""
        self.train_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.progress.setFormat("failed" if failed else "done")
        if not failed:
            self.progress.setValue(1000)
        colour = "#d03030" if failed else "#30a050"
        self.message.setText(f'<span style="color:{colour}">{message}</span>')

    def curve_points(self) -> int:
        """How many loss points are plotted (tests check the plot is live)."""
        return len(self._steps)
