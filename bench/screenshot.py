"""The README screenshot: the main window on the demo project, shown on a real X server.

Creates the demo project in a temporary folder, opens it in :class:`MainWindow` at
1280x800 on the xcb platform (not offscreen, so what is captured is what the X server
shows), paints one brush stroke of the nucleus class over a nucleus in the unlabelled
part of the first image, waits a second, then captures the window's screen area with
ImageMagick's ``import -window root`` and writes it as a PNG (quantised with pngquant,
when installed, if it is over 400 KB). QSettings, XDG folders and the project all live in
the temporary folder, so the user's settings and home are not touched.

Needs an X server: ``DISPLAY`` if set, else a private ``Xvfb`` started (and stopped) here.
On Debian 12: ``apt-get install xvfb imagemagick pngquant libxcb-cursor0 libxcb-icccm4
libxcb-keysyms1`` (Qt's xcb plugin needs the last three).

    python bench/screenshot.py [--out resources/screenshot.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAX_BYTES = 400_000
WINDOW_SIZE = (1280, 800)
SCREEN = "1400x900x24"


def start_xvfb() -> subprocess.Popen:
    """Start Xvfb on a free display, set ``DISPLAY`` and return the process."""
    if shutil.which("Xvfb") is None:
        sys.exit("no DISPLAY and no Xvfb: install xvfb or run under an X server")
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", SCREEN, "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        display = pipe.readline().strip()
    if not display:
        server.kill()
        sys.exit("Xvfb did not start")
    os.environ["DISPLAY"] = f":{display}"
    return server


Point = tuple[int, int]


def stroke_over_a_nucleus(seed: int, size: int) -> tuple[Point, Point, float]:
    """A stroke along the long axis of a large nucleus in the unlabelled top-right quarter."""
    import cv2
    import numpy as np

    from segtool.core.synthetic import nuclei_image

    _, truth = nuclei_image(size=size, seed=seed)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(truth, connectivity=4)
    half = size // 2
    best = None
    for index in range(1, count):
        x, y, w, h, area = stats[index]
        inside = x > half + 20 and x + w < size - 20 and y > 20 and y + h < half - 20
        if inside and 250 < area < 1500 and (best is None or area > stats[best][4]):
            best = index
    if best is None:  # fall back to the middle of the quarter
        return (half + 100, 100), (half + 140, 110), 6.0
    points = np.column_stack(np.nonzero(labels == best))[:, ::-1].astype(np.float32)  # x, y
    centre = points.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov((points - centre).T))
    axis = vectors[:, -1]  # the long axis
    half_length = max(float(np.abs((points - centre) @ axis).max()) - 8.0, 1.0)
    start, end = centre - axis * half_length, centre + axis * half_length
    return (round(start[0]), round(start[1])), (round(end[0]), round(end[1])), 7.0


def capture(x: int, y: int, width: int, height: int, out: Path) -> None:
    """Write the screen rectangle to ``out`` (PNG), quantised if it is too big."""
    if shutil.which("import") is None:
        sys.exit("ImageMagick's import is needed to capture the screen")
    raw = out.with_suffix(".raw.png")
    subprocess.run(["import", "-window", "root", "-crop", f"{width}x{height}+{x}+{y}",
                    "+repage", f"PNG24:{raw}"], check=True)
    if raw.stat().st_size > MAX_BYTES and shutil.which("pngquant"):
        done = subprocess.run(["pngquant", "--force", "--skip-if-larger", "--quality", "70-95",
                               "--output", str(out), str(raw)], check=False)
        if done.returncode == 0:
            raw.unlink()
            return
    raw.replace(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parent.parent / "resources" / "screenshot.png"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--wait", type=float, default=1.0, help="seconds to let it settle")
    parser.add_argument("--train", type=int, default=20,
                        help="train this many seconds first (Ctrl+T) so the shot shows the "
                             "model's prediction and the training plots; 0: no training")
    args = parser.parse_args()
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)

    scratch = Path(tempfile.mkdtemp(prefix="segtool-screenshot-"))
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        folder = scratch / name.lower()
        folder.mkdir(mode=0o700)
        os.environ[name] = str(folder)
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    server = start_xvfb() if not os.environ.get("DISPLAY") else None
    try:
        from PySide6.QtCore import QSettings
        from PySide6.QtWidgets import QApplication

        for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
            QSettings.setPath(fmt, QSettings.Scope.UserScope, str(scratch / "settings"))

        from segtool.core.demo import DEMO_SIZE, create_demo_project
        from segtool.core.project import Project
        from segtool.gui.app import application
        from segtool.gui.main_window import MainWindow

        folder = scratch / "demo"
        create_demo_project(folder)
        app = application()
        window = MainWindow(Project.open(folder), ask=lambda title, question: False)
        window.resize(*WINDOW_SIZE)
        window.move(0, 0)
        window.show()
        window.raise_()
        window.activateWindow()

        def settle(seconds: float) -> None:
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                app.processEvents()
                time.sleep(0.02)

        settle(0.3)
        if window.opened is None:
            sys.exit("the first image did not open")
        if args.train > 0:
            window.training_panel.budget.setValue(args.train)
            window.training.start()
            stem = window.current_stem
            deadline = time.monotonic() + args.train + 300
            while window.predictions.fresh(stem) is None and time.monotonic() < deadline:
                settle(0.2)
            if window.predictions.fresh(stem) is None:
                sys.exit("no prediction appeared after training")
        start, end, radius = stroke_over_a_nucleus(100, DEMO_SIZE)  # nuclei-01 is seed 100
        window.opened.document.paint_segment(start, end, radius, 1)
        window.canvas.edited.emit()  # as after a mouse stroke: the window records the edit
        settle(args.wait)

        frame = window.frameGeometry()
        screen = window.screen().geometry()
        print(f"platform {QApplication.platformName()}, window {frame.width()}x{frame.height()}"
              f"+{frame.x()}+{frame.y()} on screen {screen.width()}x{screen.height()}, "
              f"stroke {start}->{end} r {radius}")
        capture(frame.x(), frame.y(), frame.width(), frame.height(), out)
        print(f"wrote {out} ({out.stat().st_size / 1000:.0f} KB)")
        window.close()
        app.processEvents()
    finally:
        if server is not None:
            server.terminate()
            server.wait(5)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
