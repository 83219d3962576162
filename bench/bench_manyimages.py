"""A project of 100,000 images: opening, status changes, switching images, info, import.

Builds a project of ``--images`` tiny grey PNGs (16x16) in a temporary folder. Importing
100,000 files through ``segtool add`` would take a quarter of an hour, so the big project's
``images/`` holds hard links to a few distinct PNGs and its segtool.json is written directly
in format 1 (every image's record inside it, as segtool wrote projects before the image
store); the import rate is measured apart, with ``segtool add`` of ``--import-sample`` real
files, and extrapolated. Then, each in a fresh process where it says so:

* the first ``Project.open``, which moves the records into segtool.sqlite (fresh process);
* ``Project.open`` of the moved project (fresh process);
* a status change (``Project.set_status``: one row of segtool.sqlite), p50/p95 of 20;
* ``segtool info`` (fresh process);
* the main window opened on the project (offscreen, first image shown), and switching images
  (``open_image`` of the next image, saving nothing), p50/p95 of 30;
* continuous learning's look at the labels, which starts each of its slices (every 5 s while
  it learns, every 2 s while it waits), with 20 masks saved, p50/p95 of 20, against the
  look as it was before (the project opened again and a stat per image).

Goals (issue 12): opening <= 3 s; switching and status changes <= 50 ms p95.

    python bench/bench_manyimages.py [--images 100000] [--import-sample 500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from benchlib import child_result, isolate_settings, loadavg, percentile  # noqa: E402

DISTINCT = 16  # distinct PNG contents behind the hard links


def build(root: Path, count: int) -> Path:
    """A project of ``count`` images at ``root`` (images/ hard-linked, segtool.json written)."""
    from segtool.core.project import Project

    project = Project.create(root, ["background", "object"])
    sources = []
    for index in range(DISTINCT):
        path = root / f"source-{index}.png"
        cv2.imwrite(str(path), np.full((16, 16), 10 + index * 15, np.uint8))
        sources.append(path)
    images = {}
    for index in range(count):
        name = f"img{index:06d}.png"
        os.link(sources[index % DISTINCT], project.images_dir / name)
        images[f"img{index:06d}"] = {"file": name, "status": "unlabelled"}
    data = {**project.to_json(), "version": 1, "images": images}
    (root / "segtool.json").write_text(json.dumps(data, indent=2) + "\n")
    (root / "segtool.sqlite").unlink()
    return root


def child(kind: str, root: Path) -> dict:
    """One measurement in this (fresh) process."""
    from segtool.core.project import ImageStatus, Project

    if kind == "migrate":
        start = time.perf_counter()
        Project.open(root)
        return {"migrate": time.perf_counter() - start}
    if kind == "open":
        start = time.perf_counter()
        project = Project.open(root)
        opened = time.perf_counter() - start
        stems = project.image_names()
        times = []
        for index in range(20):
            start = time.perf_counter()
            project.set_status(stems[index], ImageStatus.REVIEWED if index % 2 == 0
                               else ImageStatus.IN_PROGRESS)
            times.append(time.perf_counter() - start)
        return {"open": opened, "status": times}
    if kind == "window":
        from PySide6.QtWidgets import QApplication

        isolate_settings(root.parent)
        app = QApplication.instance() or QApplication(sys.argv)
        from segtool.gui.main_window import MainWindow

        start = time.perf_counter()
        window = MainWindow(Project.open(root), ask=lambda title, question: True)
        window.resize(1280, 800)
        window.show()
        app.processEvents()
        opened = time.perf_counter() - start
        stems = window.project.image_names()
        times = []
        for stem in stems[1:31]:
            start = time.perf_counter()
            window.open_image(stem)
            app.processEvents()
            times.append(time.perf_counter() - start)
        window.close()
        return {"window": opened, "switch": times}
    if kind == "look":
        return _looks(root)
    raise ValueError(kind)


def _looks(root: Path, masks: int = 20, repeats: int = 20) -> dict:
    """Continuous learning's look at the labels (each slice's first step) on the project
    with ``masks`` saved masks, against the look as it was until 2026-12-07 (the project
    opened again and every image's mask path looked up, each time)."""
    from segtool.core.project import Project, file_stamp
    from segtool.ml.continuous import ContinuousTrainer

    project = Project.open(root)
    for stem in project.image_names()[:masks]:
        project.save_mask(stem, np.ones((16, 16), np.uint8))
    trainer = ContinuousTrainer(root)
    trainer.look()  # the first look opens the project
    looks, before = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        _, key = trainer.look()
        looks.append(time.perf_counter() - start)
    assert len(key[1]) == masks
    for _ in range(3):
        start = time.perf_counter()
        opened = Project.open(root, read_only="bench")
        stamps = [(s, file_stamp(opened.mask_path(s))) for s in opened.image_names()]
        before.append(time.perf_counter() - start)
    assert sum(stamp is not None for _, stamp in stamps) == masks
    return {"look": looks, "look_before": before}


def timed_cli(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "segtool", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def run_child(kind: str, root: Path) -> dict:
    return child_result(__file__, "--child", kind, str(root))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(child(argv[1], Path(argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--import-sample", type=int, default=500)
    args = parser.parse_args(argv)
    print(f"load before: {loadavg()}")
    with tempfile.TemporaryDirectory(prefix="segtool-many-") as temp:
        folder = Path(temp)
        sample = folder / "sample"
        sample.mkdir()
        for index in range(args.import_sample):
            cv2.imwrite(str(sample / f"s{index:05d}.png"), np.full((16, 16), index % 250, np.uint8))
        timed_cli("new", str(folder / "small"), "--images", str(sample))  # warms the caches
        more = folder / "more"
        more.mkdir()
        for path in sample.iterdir():
            os.link(path, more / f"m-{path.name}")
        added = timed_cli("add", str(folder / "small"), "--images", str(more))
        per_image = added / args.import_sample
        start = time.perf_counter()
        root = build(folder / "big", args.images)
        built = time.perf_counter() - start
        size = (root / "segtool.json").stat().st_size
        migrated = run_child("migrate", root)
        sizes = [(root / name).stat().st_size for name in ("segtool.json", "segtool.sqlite")]
        opened = run_child("open", root)
        info = timed_cli("info", str(root))
        window = run_child("window", root)
        looks = run_child("look", root)
    print(f"{args.images:,} images; format 1 segtool.json {size / 1e6:.1f} MB (built in "
          f"{built:.0f} s)")
    print(f"first open, moving the records into the store: {migrated['migrate']:.2f} s; then "
          f"segtool.json {sizes[0] / 1e3:.1f} kB, segtool.sqlite {sizes[1] / 1e6:.1f} MB")
    print(f"import ('segtool add' of {args.import_sample} files): {per_image * 1e3:.1f} ms "
          f"an image -> {per_image * args.images / 60:.0f} min for {args.images:,}")
    print(f"Project.open: {opened['open']:.2f} s (goal <= 3 s for the window)")
    print(f"status change: p50 {statistics.median(opened['status']) * 1e3:.0f} ms, "
          f"p95 {percentile(opened['status'], 0.95) * 1e3:.0f} ms (goal <= 50 ms)")
    print(f"segtool info: {info:.2f} s")
    print(f"main window opened, first image shown: {window['window']:.2f} s (goal <= 3 s)")
    print(f"switching images: p50 {statistics.median(window['switch']) * 1e3:.0f} ms, "
          f"p95 {percentile(window['switch'], 0.95) * 1e3:.0f} ms (goal <= 50 ms)")
    look, before = statistics.median(looks["look"]), statistics.median(looks["look_before"])
    print(f"continuous learning's look at the labels (20 masks): p50 {look * 1e3:.1f} ms, "
          f"p95 {percentile(looks['look'], 0.95) * 1e3:.1f} ms; as it looked before "
          f"2026-12-07 (open and a stat per image): {before:.2f} s ({before / look:.0f}x)")
    print(f"load after: {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
