"""Training on a huge image: steps within the budget, the budget counting the loading.

Makes a project holding one synthetic 16384 x 16384 8-bit grey image (the default pixel
limit, 2**28 pixels) and labels, in turn, (a) one 512 x 512 area in the middle and (b) two
256 x 256 areas in opposite corners, then runs ``segtool train PROJECT --max-seconds S`` in
a fresh interpreter for each and reports its steps, wall time (from the command's start,
so importing TensorFlow and reading the image count) and peak RSS.

    python bench/bench_bigimage.py                 # 16384^2, budget 10 s
    python bench/bench_bigimage.py --size 8192 --budget 20

Writes only into a temporary folder.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from segtool.core.masks import UNLABELLED
from segtool.core.project import Project

SAVED = re.compile(r"saved .+\.keras \((\d+) steps, ([\d.]+) s on (.+?)\)")


def make_image(size: int, path: Path) -> None:
    """Dark background, bright round blobs every 64 px, noise: nuclei-like, 8-bit."""
    rng = np.random.default_rng(0)
    tile = np.full((1024, 1024), 40, np.uint8)
    for row in range(32, 1024, 64):
        for col in range(32, 1024, 64):
            cv2.circle(tile, (col + int(rng.integers(-8, 9)), row + int(rng.integers(-8, 9))),
                       int(rng.integers(8, 20)), 200, -1)
    tile = cv2.add(tile, rng.integers(0, 30, tile.shape, dtype=np.uint8))
    cv2.imwrite(str(path), np.tile(tile, (size // 1024, size // 1024)))


def label(project: Project, stem: str, areas: list[tuple[int, int, int]]) -> None:
    image = cv2.imread(str(project.image_path(stem)), cv2.IMREAD_GRAYSCALE)
    mask = np.full(image.shape, UNLABELLED, np.uint8)
    for top, left, side in areas:
        window = (slice(top, top + side), slice(left, left + side))
        mask[window] = (image[window] > 120).astype(np.uint8)
    del image
    project.save_mask(stem, mask)


def train(project: Path, budget: float) -> tuple[str, float, int]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "segtool", "train", str(project), "--max-seconds", str(budget),
         "--from-scratch"], capture_output=True, text=True)
    wall = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    found = SAVED.search(done.stdout)
    result = f"{found.group(1)} steps" if found else (done.stderr.strip().splitlines() or ["?"])[-1]
    return result, wall, peak


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--budget", type=float, default=10.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="segtool-big-") as temp:
        source = Path(temp) / "images"
        source.mkdir()
        make_image(args.size, source / "huge.png")
        project = Project.create(Path(temp) / "project", ["background", "blob"])
        project.import_images([source / "huge.png"])
        middle = args.size // 2
        cases = {
            "one 512^2 area in the middle": [(middle - 256, middle - 256, 512)],
            "two 256^2 areas in opposite corners": [(0, 0, 256),
                                                    (args.size - 256, args.size - 256, 256)],
        }
        print(f"image {args.size}x{args.size}, budget {args.budget:g} s")
        print(f"{'labels':38} {'result':>30} {'wall s':>7} {'peak RSS MiB':>13}")
        for name, areas in cases.items():
            label(project, "huge", areas)
            result, wall, peak = train(project.root, args.budget)
            print(f"{name:38} {result:>30} {wall:7.1f} {peak:13d}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
