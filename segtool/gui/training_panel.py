"""The training panel: budget, Train/Stop, progress with time left, live loss and IoU plots."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pyqtgraph as pg
from PySide6.QtCore import QSize, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
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
TICK_MS = 500  # the time left counts down this often


class _Plot(pg.PlotWidget):
    """A plot that asks for dock-sized room (pyqtgraph's default hint is 640 x 480)."""

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(280, 150)


class TrainingPanel(QWidget):
    """Start, follow and stop a training run.

    ``update_progress`` takes the worker's TrainProgress (step, total_steps_estimate, loss,
    val_iou per class, elapsed); curves are drawn with pyqtgraph as the run goes. The bar
    shows the phase ("loading TensorFlow", "reading 12 labelled images", "training · step
    17") and the time left of the budget, counted from the press of Train (set-up included)
    by ``clock`` (``time.monotonic``), so it counts down while TensorFlow loads too.
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
        self.continuous = QCheckBox("Continuous learning (Ctrl+Shift+L)")
        self.continuous.setToolTip("Keep training in the background while you label: each "
                                   "saved mask joins within seconds, and a better model "
                                   "replaces the current one (at most one every 30 s)")
        self.continuous_state = QLabel("continuous learning: off")
        self._continuous_state = "learning"  # what the worker last said it does
        self._slice_figures: list[str] = []  # the last slice's steps and scores
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
        # One row at the top left, where rising curves seldom are (low at the start, high at
        # the end): a column per class, so a small plot does not push entries out of view.
        self.iou_plot.addLegend(offset=(5, 5), colCount=4, verSpacing=-6)
        self.iou_plot.setXLink(self.loss_plot)  # both over the steps of the same run
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
        layout.addWidget(self.continuous)
        layout.addWidget(self.continuous_state)
        layout.addWidget(self.device_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.iou_plot)
        self._steps: list[int] = []
        self._losses: list[float] = []
        self._ious: list[list[float]] = []
        self._val_steps: list[int] = []
        self._plots: tuple[str, tuple[str, ...]] = ("", ())  # whose curves, which classes
        self.clock: Callable[[], float] = time.monotonic
        self._started = 0.0
        self._run_budget = float(DEFAULT_BUDGET_S)
        self.phase = "idle"
        self.ticker = QTimer(self)
        self.ticker.setInterval(TICK_MS)
        self.ticker.timeout.connect(self._show_time)

    @property
    def running(self) -> bool:
        return self.stop_button.isEnabled()

    def start(self, class_names: Sequence[str], colours: Sequence[tuple[int, int, int]]) -> None:
        """Reset the plots (curves and axes) for a new run with these classes and start
        counting down the budget."""
        self._reset_plots(class_names, colours, "run")
        self._started = self.clock()
        self._run_budget = float(self.budget.value())
        self.phase = "starting"
        self.message.setText("")
        self.train_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self._show_time()
        self.ticker.start()

    def _reset_plots(self, class_names: Sequence[str],
                     colours: Sequence[tuple[int, int, int]], owner: str) -> None:
        """Empty curves for ``owner`` ("run": a Ctrl+T run; "continuous": continuous
        learning), one IoU curve per class."""
        self._steps, self._losses, self._ious, self._val_steps = [], [], [], []
        self._plots = (owner, tuple(class_names))
        self.loss_curve.setData([], [])
        self.loss_plot.enableAutoRange()
        self.iou_plot.enableAutoRange(axis="x")
        self.iou_plot.setYRange(0.0, 1.0)
        for curve in self.iou_curves:
            self.iou_plot.removeItem(curve)
        self.iou_plot.plotItem.legend.clear()
        self.iou_curves = [
            self.iou_plot.plot(pen=pg.mkPen(colour, width=2), name=name, symbol="o",
                               symbolSize=5, symbolBrush=colour, symbolPen=None)
            for name, colour in zip(class_names, colours, strict=True)
        ]

    def set_phase(self, phase: str) -> None:
        """What the run is doing now ("loading TensorFlow", "reading 12 labelled images")."""
        self.phase = phase
        self._show_time()

    def time_left(self) -> float:
        """Seconds of the budget left (negative once over it)."""
        return self._run_budget - (self.clock() - self._started)

    def _show_time(self) -> None:
        if not self.running:
            return
        left = self.time_left()
        used = min(1.0, max(0.0, 1.0 - left / max(self._run_budget, 1e-9)))
        self.progress.setValue(round(used * 1000))
        if left >= 0:
            self.progress.setFormat(f"{self.phase}  ·  {left:.0f} s left")
        else:
            self.progress.setFormat(f"{self.phase}  ·  finishing, {-left:.0f} s over the budget")

    def set_device(self, description: str) -> None:
        self.device_description = description
        self.device_label.setText(f"device: {description}")

    def update_progress(self, progress: object) -> None:
        """Show one progress report (time left, loss and IoU curves)."""
        step = int(progress.step)
        self.set_phase(f"training · step {step}")
        self._steps.append(step)
        self._losses.append(float(progress.loss))
        self.loss_curve.setData(self._steps, self._losses)
        self._add_validation(step, [float(v) for v in progress.val_iou])

    def show_final_validation(self, ious: Sequence[float | None]) -> None:
        """The saved model's per-class IoU (None = not measured), at the last step: a short
        run may validate only at its end."""
        if self._steps:
            self._add_validation(self._steps[-1],
                                 [float("nan") if v is None else float(v) for v in ious])

    def _add_validation(self, step: int, ious: list[float]) -> None:
        if ious and any(v == v for v in ious) and (not self._ious or ious != self._ious[-1]):
            self._val_steps.append(step)
            self._ious.append(ious)
            for index, curve in enumerate(self.iou_curves):
                values = [row[index] if index < len(row) else float("nan") for row in self._ious]
                pairs = [(s, v) for s, v in zip(self._val_steps, values, strict=True) if v == v]
                curve.setData([s for s, _ in pairs], [v for _, v in pairs])

    def finish(self, message: str, failed: bool = False) -> None:
        """Back to idle, with a closing message (red when the run failed)."""
        self.ticker.stop()
        self.phase = "idle"
        self.train_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.progress.setFormat("failed" if failed else "done")
        if not failed:
            self.progress.setValue(1000)
        colour = "#d03030" if failed else "#30a050"
        self.message.setText(f'<span style="color:{colour}">{message}</span>')

    def set_continuous_state(self, state: str) -> None:
        """What continuous learning does ("learning", "waiting for new labels", "off"),
        with the last slice's figures while it runs."""
        self._continuous_state = state
        if state in ("off", "loading TensorFlow"):
            self._slice_figures = []
        self._show_continuous()

    def _show_continuous(self) -> None:
        self.continuous_state.setText("continuous learning: " + " · ".join(
            [self._continuous_state, *self._slice_figures]))

    def show_continuous_slice(self, report: object, class_names: Sequence[str],
                              colours: Sequence[tuple[int, int, int]]) -> None:
        """One slice's news: steps so far, the held-out score against the current model's;
        its loss and, at a cycle's end, its per-class IoU join the plots over the trainer's
        steps (the plots are continuous learning's again after a Ctrl+T run, and start over
        when the classes change). A run under way keeps its plots."""
        current = report.val_iou if report.published is not None else report.current_iou
        figures = [f"{report.total_steps} steps"]
        if report.val_iou is not None:
            figures.append(f"val IoU {report.val_iou:.3f}")
        if current is not None:
            figures.append(f"current model {current:.3f}")
        self._slice_figures = figures
        if self._continuous_state == "loading TensorFlow":  # its first slice: it learns
            self._continuous_state = "learning"
        self._show_continuous()
        if self.running or report.steps == 0:
            return
        if self._plots != ("continuous", tuple(class_names)):
            self._reset_plots(class_names, colours, "continuous")
        if report.loss is not None:
            self._steps.append(int(report.total_steps))
            self._losses.append(float(report.loss))
            self.loss_curve.setData(self._steps, self._losses)
        if report.val_ious is not None:
            self._add_validation(int(report.total_steps), [float(v) for v in report.val_ious])

    @property
    def plots_owner(self) -> str:
        """Whose curves the plots show: "run" (Ctrl+T), "continuous", or "" (none yet)."""
        return self._plots[0]

    def curve_points(self) -> int:
        """How many loss points are plotted (tests check the plot is live)."""
        return len(self._steps)
