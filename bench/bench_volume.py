"""A CT-sized volume in segtool: import, open time and memory, slice switching, prediction.

A synthetic CT-like series (int16 HU: air, an elliptic body with organs and bone, noise) of
``--slices`` slices of ``--size``² pixels (default 512 x 512 x 300) is written as a DICOM
series (one file a slice, shuffled names) and imported into a fresh project, which converts it
to ``images/<stem>.nii.gz``. Then, each in a fresh interpreter so that peak memory is the
process's own (VmHWM):

* **open**: ``Workspace.open`` (decode the volume, make the label volume) and the real main
  window opening the project on the volume, each timed, with the process's peak RSS;
* **slice switch**: ``--switches`` presses of Up/Down in the window, each timed from the key
  press to the end of the canvas's synchronous repaint (``viewport().repaint()``): the time
  until the new slice is on screen. p50/p95/max (goal: p95 <= 30 ms);
* **save**: Ctrl+S of the label volume after one stroke (what autosave costs, every 30 s
  while a volume has unsaved strokes);
* **prediction**: ``predict_volume`` of an untrained U-Net of the CPU recipe's size
  (depth 3, 16 filters) over the first ``--predict-slices`` slices, as slices per second
  (the first slice, which builds the graph, not counted).

    python bench/bench_volume.py [--slices 300] [--size 512] [--switches 100]
                                 [--predict-slices 12]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
from benchlib import ChildFailed, child_result, isolate_settings, loadavg, percentile  # noqa: E402


def ct_volume(slices: int, size: int) -> np.ndarray:
    """(Z, size, size) int16 HU: air, a body (soft tissue 40) with a liver-like organ (60),
    lungs (-800) in the upper half of the slices, a spine (700), noise sigma 8."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    body = ((yy - 0.5) / 0.36) ** 2 + ((xx - 0.5) / 0.45) ** 2 < 1
    organ = ((yy - 0.45) / 0.12) ** 2 + ((xx - 0.38) / 0.16) ** 2 < 1
    spine = (yy - 0.75) ** 2 + (xx - 0.5) ** 2 < 0.04**2
    lungs = ((((yy - 0.45) / 0.18) ** 2 + ((np.abs(xx - 0.5) - 0.18) / 0.11) ** 2) < 1)
    volume = np.full((slices, size, size), -1000, np.int16)
    for z in range(slices):
        plane = volume[z]
        plane[body] = 40
        if z < slices // 2:
            plane[lungs & body] = -800
        else:
            plane[organ] = 60
        plane[spine] = 700
        plane += rng.normal(0, 8, plane.shape).astype(np.int16)
    return volume


def rss_mib(field: str = "VmHWM") -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --- children --------------------------------------------------------------------------------


def child_open(root: Path, switches: int) -> dict:
    """Open the volume in a workspace, then in the window; switch slices with the keys."""
    from segtool.core.project import Project
    from segtool.core.workspace import Workspace

    isolate_settings(root.parent / "settings")
    started = time.perf_counter()
    project = Project.open(root)
    stem = project.image_names()[0]
    workspace = Workspace(project)
    workspace.open(stem)
    workspace_s = time.perf_counter() - started
    workspace_peak = rss_mib()
    del workspace
    gc.collect()  # documents and the workspace refer to each other: free them now

    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from segtool.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    started = time.perf_counter()
    window = MainWindow(Project.open(root), ask=lambda *_: False)
    window.resize(1280, 800)
    window.show()
    window.canvas.viewport().repaint()
    app.processEvents()
    window_s = time.perf_counter() - started
    window_peak = rss_mib()
    viewport = window.canvas.viewport()
    times, cpu = [], []
    for index in range(switches):
        key = Qt.Key_Up if (index // 20) % 2 == 0 else Qt.Key_Down
        wall, thread = time.perf_counter(), time.thread_time()
        QTest.keyClick(viewport, key)
        viewport.repaint()
        times.append((time.perf_counter() - wall) * 1000)
        cpu.append((time.thread_time() - thread) * 1000)
    app.processEvents()
    assert window.opened is not None and window.opened.volume is not None
    window.opened.document.paint_segment((100, 100), (200, 120), 10, 1)
    started = time.perf_counter()
    assert window.save_current()
    save_s = time.perf_counter() - started
    result = {
        "save_s": save_s, "mask_mib": window.project.mask_path(stem).stat().st_size / 2**20,
        "workspace_open_s": workspace_s, "workspace_peak_mib": workspace_peak,
        "window_open_s": window_s, "window_peak_mib": window_peak,
        "switch_ms": times, "switch_cpu_ms": cpu, "slice": window.opened.z,
    }
    window.close()
    return result


def child_predict(root: Path, slices: int) -> dict:
    """Slices per second of predict_volume with an untrained CPU-sized U-Net."""
    from segtool.ml.device import configure_devices

    device = configure_devices(None)
    from segtool.core.project import Project
    from segtool.ml.session import InputSpec, predict_volume
    from segtool.ml.unet import build_unet

    project = Project.open(root)
    stem = project.image_names()[0]
    model = build_unet(1, 2, depth=3, base_filters=16)
    sidecar = {"channels": 1, "normalisation": InputSpec(1).sidecar_normalisation()}
    marks: list[float] = []
    started = time.perf_counter()
    predict_volume(model, sidecar, project, stem,
                   progress=lambda done, _total: marks.append(time.perf_counter()),
                   cancelled=lambda: len(marks) >= slices)
    read_s = None
    if marks:
        read_s = marks[0] - started  # reading the volume + the first slice (graph building)
    per_slice = (marks[-1] - marks[0]) / max(1, len(marks) - 1)
    return {"device": device, "slices": len(marks), "first_s": read_s,
            "seconds_per_slice": per_slice, "slices_per_s": 1 / per_slice,
            "peak_mib": rss_mib()}


# --- the bench ---------------------------------------------------------------------------------


def run_child(kind: str, root: Path, count: int) -> dict:
    try:
        return child_result(__file__, f"--child-{kind}", str(root), "--count", str(count))
    except ChildFailed as error:
        raise SystemExit(str(error)) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--switches", type=int, default=100)
    parser.add_argument("--predict-slices", type=int, default=12)
    parser.add_argument("--child-open", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-predict", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_open:
        print(json.dumps(child_open(args.child_open, args.count)))
        return
    if args.child_predict:
        print(json.dumps(child_predict(args.child_predict, args.count)))
        return

    from volume_helpers import write_dicom_series

    from segtool.core.project import Project

    print(f"load average before: {loadavg()}")
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        volume = ct_volume(args.slices, args.size)
        started = time.perf_counter()
        write_dicom_series(base / "series" / "ct", volume, spacing=(0.7, 0.7, 1.25))
        print(f"volume {args.size}x{args.size}x{args.slices} int16 "
              f"({volume.nbytes / 2**20:.0f} MiB), DICOM series written in "
              f"{time.perf_counter() - started:.1f} s")
        del volume
        project = Project.create(base / "project")
        started = time.perf_counter()
        report = project.import_images([base / "series" / "ct"])
        assert report.imported == ["ct"], report
        size = project.image_path("ct").stat().st_size / 2**20
        print(f"import (DICOM series -> images/ct.nii.gz, {size:.0f} MiB): "
              f"{time.perf_counter() - started:.1f} s")

        opened = run_child("open", project.root, args.switches)
        print(f"Workspace.open: {opened['workspace_open_s']:.2f} s, "
              f"peak RSS {opened['workspace_peak_mib']:.0f} MiB")
        print(f"window opened on the volume: {opened['window_open_s']:.2f} s, "
              f"peak RSS {opened['window_peak_mib']:.0f} MiB")
        times, cpu = opened["switch_ms"], opened["switch_cpu_ms"]
        print(f"slice switch, key press to repainted ({len(times)} switches): "
              f"p50 {percentile(times, 0.5):.1f} ms, p95 {percentile(times, 0.95):.1f} ms, "
              f"max {max(times):.1f} ms; thread CPU p95 {percentile(cpu, 0.95):.1f} ms")
        print(f"save of the label volume (Ctrl+S after one stroke): {opened['save_s']:.2f} s "
              f"({opened['mask_mib']:.2f} MiB written)")

        predicted = run_child("predict", project.root, args.predict_slices)
        print(f"prediction on {predicted['device']}: {predicted['slices_per_s']:.2f} slices/s "
              f"({predicted['seconds_per_slice'] * 1000:.0f} ms a slice over "
              f"{predicted['slices'] - 1} slices after the first; reading the volume and the "
              f"first slice {predicted['first_s']:.1f} s), peak RSS "
              f"{predicted['peak_mib']:.0f} MiB; the whole volume would take "
              f"{args.slices * predicted['seconds_per_slice']:.0f} s")
    print(f"load average after: {loadavg()}")


if __name__ == "__main__":
    main()
