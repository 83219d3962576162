"""Labelled images per minute of a person's effort: a simulated annotator labels a set.

    python bench/bench_annotator.py --images DIR --masks DIR --classes a,b,...
        [--mode brush|retrain|live] [--order file|next] [--max-images N] [--budget S]
        [--target 0.9] [--cap 300] [--threshold 0] [--class-threshold] [--smart-tools]
        [--threads N] [--json FILE]
    python bench/bench_annotator.py --data ../shared/data --set fluo_dsb2018 ...
    python bench/bench_annotator.py --table RESULTS.jsonl   (the bench/README table)

``--data/--set`` takes the protocol's labelled (training) images of a set of
``../shared/data`` (see its README) and the set's classes; ``--images/--masks/--classes``
any folder of images with ground-truth masks of the same stems.

The images are imported into a fresh project (``Project.create`` + ``import_images``, as
``segtool new`` does) and labelled one by one by the simulated person of ``annotator.py``
(segtool's own editing code, a keystroke-level time model): per image, accept the current
model's prediction if there is a model, then correct the largest wrong region until the
image's mIoU against its ground truth reaches ``--target`` or ``--cap`` simulated seconds;
the mask is saved with ``Project.save_mask``. Modes:

- ``brush``: no model (the baseline).
- ``retrain``: after each image the person presses Ctrl+T: a real training run of
  ``--budget`` seconds (``train_project``, fine-tuning the current model as the window does)
  runs while they label the next image, whose prediction still comes from the model before.
  If the run lasts longer than that image takes them, they wait for it before the next
  Ctrl+T (charged to that image); its model serves the image after.
- ``live``: continuous learning, the window's own (``segtool.ml.continuous.ContinuousTrainer``,
  Ctrl+Shift+L): while the person labels image k it trains in slices on the masks saved
  before k, for as many (real) seconds as the person spends (simulated) on image k; no
  waiting. The last model it published by then (made current, as the window does) serves
  image k+1.

In both learning modes a model becomes current only if it beats the current one on the
held-out pixels (what ``segtool train`` and continuous learning do).

``--class-threshold``: before accepting, the person may move the Layers panel's class-threshold
slider (one class's probability threshold, kept from image to image as the window keeps it;
``annotator.adjust_thresholds``) to where the proposal fits best, for ``ADJUST_S`` seconds.
``--smart-tools``: the person (in every mode, and in the brush baseline computed beside it)
also corrects with the window's other tools: a magic-wand click on the image as shown (other
tolerances charged as tries up a ladder), a GrabCut box round the region, and a Shift+click
fill (every pixel of the clicked label). Without it the person uses the fill, polygon and
brush of the issue's protocol, as in the figures before 2026-12-07's seventh session.
``--order next`` picks, after each image, the unlabelled image the current model is least
sure of (segtool's "sort by uncertainty": mean of 1 - confidence away from the predicted
edges, core/uncertainty.py); ``file`` takes them in
name order. One row per image; the last line is
``effort ratio brush/segtool over images 6-N: R``: the mean simulated seconds per image of
images 6..N under ``brush`` divided by the same under the mode run (the brush figures of the
same images are computed in the same run, cheaply: brush mode needs no model).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import annotator  # noqa: E402
import realdata  # noqa: E402

from segtool.core.errors import SegtoolError  # noqa: E402
from segtool.core.labels import LabelDocument  # noqa: E402
from segtool.core.masks import UNLABELLED  # noqa: E402
from segtool.core.project import Project  # noqa: E402
from segtool.core.window import auto_window, display  # noqa: E402

FIRST_COUNTED = 6  # the ratio is over images 6..N: the first five teach the model


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path)
    parser.add_argument("--masks", type=Path)
    parser.add_argument("--classes")
    parser.add_argument("--data", type=Path, help="the real-data folder (with --set)")
    parser.add_argument("--set", help="a set of --data: its protocol's training images")
    parser.add_argument("--mode", choices=("brush", "retrain", "live"), default="brush")
    parser.add_argument("--order", choices=("file", "next"), default="file")
    parser.add_argument("--max-images", type=int, default=20)
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds of each Ctrl+T training run (retrain mode)")
    parser.add_argument("--target", type=float, default=0.9)
    parser.add_argument("--cap", type=float, default=300.0,
                        help="simulated seconds at most per image")
    parser.add_argument("--threshold", type=int, default=0,
                        help="accept only predicted pixels of at least this confidence (0-255)")
    parser.add_argument("--class-threshold", action="store_true",
                        help="the person may set the class-threshold slider before accepting")
    parser.add_argument("--smart-tools", action="store_true",
                        help="the person may also correct with the magic wand, GrabCut "
                             "and Shift+click fill (the brush baseline too)")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow threads")
    parser.add_argument("--json", type=Path, help="append the run (rows and ratio) here")
    args = parser.parse_args(argv)
    if args.set:
        if args.data is None:
            parser.error("--set needs --data")
    elif not (args.images and args.masks and args.classes):
        parser.error("give --images, --masks and --classes, or --data and --set")
    return args


def pairs(args: argparse.Namespace) -> tuple[dict[str, Path], dict[str, Path], list[str]]:
    """(images by stem, masks by stem, class names) of the images to label."""
    if args.set:
        chosen = realdata.split(args.data, args.set)
        return chosen.train, chosen.masks, list(chosen.protocol.classes)
    masks = {p.stem: p for p in sorted(args.masks.iterdir()) if p.suffix.lower() == ".png"}
    images = {p.stem: p for p in sorted(args.images.iterdir()) if p.stem in masks}
    return images, masks, [name.strip() for name in args.classes.split(",")]


class Learner:
    """The model side: real training runs on the project and predictions from the current
    model (TensorFlow is imported here only, and only in the learning modes)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.model: object | None = None
        self.sidecar: dict | None = None
        self.staged: tuple[object, dict] | None = None  # trained, not serving yet
        self.steps = 0
        self.runs = 0
        self.continuous: object | None = None  # live mode's ContinuousTrainer

    def publish(self) -> None:
        """The last run's model (if it became current) serves predictions from now on."""
        if self.staged is not None:
            self.model, self.sidecar = self.staged
            self.staged = None

    def train(self, seconds: float) -> float:
        """One training run of ``seconds`` (fine-tuning the current model, as the window
        does); its model is staged until :meth:`publish`. Returns wall seconds."""
        from segtool.ml.modelfile import load_model
        from segtool.ml.session import train_project

        start = time.monotonic()
        try:
            outcome = train_project(self.project, max_seconds=seconds)
        except SegtoolError as error:  # e.g. no step fitted in a short live slice
            print(f"    (training: {error.problem})", flush=True)
            return time.monotonic() - start
        self.runs += 1
        self.steps += int(outcome.sidecar.get("steps", 0))
        if outcome.became_current and outcome.model_path is not None:
            self.staged = load_model(outcome.model_path)
        return time.monotonic() - start

    def learn(self, seconds: float) -> float:
        """Continuous learning beside the person for ``seconds`` (real): slices of the
        window's trainer; each model it publishes is made current and staged until
        :meth:`publish`. Stops early when it pauses (nothing new to learn)."""
        from segtool.ml.continuous import SLICE_S, ContinuousTrainer
        from segtool.ml.modelfile import load_model

        start = time.monotonic()
        if self.continuous is None:
            self.continuous = ContinuousTrainer(self.project.root)
        trainer = self.continuous
        while (left := seconds - (time.monotonic() - start)) > 0.5:
            report = trainer.run_slice(min(SLICE_S, left))
            self.steps += report.steps
            if report.published is not None:
                self.project.set_current_model(report.published.name)
                self.staged = load_model(report.published)
                self.runs += 1
            if report.idle:
                break
        return time.monotonic() - start

    def predict(self, stem: str) -> tuple[np.ndarray, ...] | None:
        """(classes, confidence), and with more than two classes the runner-up's (class,
        confidence), as the window's prediction worker gives them."""
        from segtool.ml.session import predict_stem
        from segtool.ml.unet import model_classes

        if self.model is None or self.sidecar is None:
            return None
        return predict_stem(self.model, self.sidecar, self.project, stem,
                            runner_up=model_classes(self.model) > 2)

    def uncertainty(self, stem: str) -> float:
        from segtool.core.uncertainty import image_uncertainty

        prediction = self.predict(stem)
        if prediction is None:
            return 0.0
        return image_uncertainty(*prediction[:2])


def brush_seconds(truth: np.ndarray, args: argparse.Namespace,
                  tools: annotator.SmartTools | None = None) -> float:
    """What the image costs with no model (the brush baseline), with the same ``tools``
    (a copy: the baseline's tolerance is its own)."""
    document = LabelDocument(np.full(truth.shape, UNLABELLED, np.uint8))
    return annotator.label_image(document, truth, args.target, args.cap,
                                 tools=tools).seconds


def shown_image(project: Project, stem: str) -> np.ndarray:
    """The image as the window first shows it: 8-bit, in its automatic window."""
    image = project.read_image(stem)
    return display(image, auto_window(image))


def run(args: argparse.Namespace, temp: Path) -> dict:
    images, masks, classes = pairs(args)
    stems = list(images)[: args.max_images]
    if not stems:
        raise SystemExit("no image with a mask to label")
    source = temp / "source"
    source.mkdir()
    for stem in stems:
        (source / images[stem].name).symlink_to(images[stem].resolve())
    project = Project.create(temp / "project", classes)
    files = sorted(source.iterdir())
    # The protocol labels each DICOM file as a 2D image; loose files of one series imported
    # together would make one volume, so each goes in alone (as bench_realdata's folders do).
    batches = [[path] for path in files if path.suffix.lower() == ".dcm"]
    batches.append([path for path in files if path.suffix.lower() != ".dcm"])
    for batch in batches:
        report = project.import_images(batch)
        if report.skipped:
            raise SystemExit(str(report))
    truths = {stem: realdata.read_truth(masks[stem]) for stem in stems}
    learner = Learner(project) if args.mode != "brush" else None
    if args.threads is not None and learner is not None:
        from segtool.ml.device import configure_devices

        configure_devices(args.threads)

    rows: list[dict] = []
    remaining = list(stems)
    pending_wait = 0.0  # retrain: real seconds of the last Ctrl+T run not yet overlapped
    slider = annotator.ClassThresholds(len(classes)) if args.class_threshold else None
    tools = annotator.SmartTools() if args.smart_tools else None
    baseline_tools = annotator.SmartTools() if args.smart_tools else None
    print(f"{'#':>3} {'image':28} {'sim s':>6} {'brush s':>7} {'mIoU':>6} {'wait s':>6} "
          f"{'steps':>6}  actions", flush=True)
    for index in range(1, len(stems) + 1):
        if args.order == "next" and learner is not None and learner.model is not None:
            remaining.sort(key=lambda s: (-learner.uncertainty(s), stems.index(s)))
        stem = remaining.pop(0)
        truth = truths[stem]
        prediction = learner.predict(stem) if learner is not None else None
        if tools is not None and baseline_tools is not None:
            tools.image = baseline_tools.image = shown_image(project, stem)
        tools_before = None if tools is None else dataclasses.replace(tools)
        document = LabelDocument(np.full(truth.shape, UNLABELLED, np.uint8))
        effort = annotator.label_image(document, truth, args.target, args.cap, prediction,
                                       args.threshold, slider, tools)
        unadjusted = None  # paired: the same prediction accepted without the slider
        if slider is not None and prediction is not None:
            unadjusted = annotator.label_image(
                LabelDocument(np.full(truth.shape, UNLABELLED, np.uint8)), truth, args.target,
                args.cap, prediction, args.threshold,
                tools=tools_before).seconds
        wait = 0.0
        if args.mode == "retrain" and learner is not None:
            # The Ctrl+T run started after the last image ran while this one was labelled:
            # if it is still running, the person waits; its model serves the next image.
            wait = max(0.0, pending_wait - effort.seconds)
            learner.publish()
        elif args.mode == "live" and learner is not None:
            if index > 1:  # training beside the person, on the masks saved before
                learner.learn(effort.seconds)
            learner.publish()
        project.save_mask(stem, document.mask)
        if args.mode == "retrain" and learner is not None:
            pending_wait = learner.train(args.budget)
        row = {"index": index, "stem": stem, "seconds": effort.seconds + wait, "wait": wait,
               "brush_seconds": brush_seconds(truth, args, baseline_tools),
               "miou": effort.miou,
               "reached": effort.reached, "actions": effort.actions,
               "steps": learner.steps if learner is not None else 0,
               "seconds_without_slider": unadjusted}
        rows.append(row)
        print(f"{index:>3} {stem[:28]:28} {row['seconds']:6.0f} {row['brush_seconds']:7.0f} "
              f"{effort.miou:6.3f} {wait:6.0f} {row['steps']:6}  "
              f"{annotator.actions_text(effort.actions)}", flush=True)
    counted = [row for row in rows if row["index"] >= FIRST_COUNTED] or rows
    brush_mean = float(np.mean([row["brush_seconds"] for row in counted]))
    mode_mean = float(np.mean([row["seconds"] for row in counted]))
    ratio = 1.0 if args.mode == "brush" else brush_mean / mode_mean
    paired = [row for row in counted if row["seconds_without_slider"] is not None]
    if paired:  # the wait (retrain) is the same with or without the slider
        without = float(np.mean([r["seconds_without_slider"] + r["wait"] for r in paired]))
        print(f"class threshold, paired over the {len(paired)} images of 6-N with a model: "
              f"{np.mean([r['seconds'] for r in paired]):.1f} s per image with the slider, "
              f"{without:.1f} s accepting the same predictions without it", flush=True)
    return {"images": len(rows), "rows": rows, "brush_mean": brush_mean,
            "mode_mean": mode_mean, "ratio": ratio}


def markdown_table(records: list[dict]) -> str:
    """The README table: seconds per image over images 1-5, 6-10, 11-N per set and mode."""
    lines = ["| set | mode | images | s/image 1-5 | s/image 6-10 | s/image 11-N | brush s/image "
             "6-N | ratio brush/mode 6-N | model steps | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for record in records:
        rows = record["rows"]

        def mean(first: int, last: int, rows: list[dict] = rows) -> str:
            chosen = [r["seconds"] for r in rows if first <= r["index"] <= last]
            return f"{np.mean(chosen):.0f}" if chosen else "-"

        slider = ", class threshold" if record.get("class_threshold") else ""
        lines.append(f"| {record['set']} | {record['mode']} ({record['order']}{slider}) | "
                     f"{record['images']} | {mean(1, 5)} | {mean(6, 10)} | "
                     f"{mean(11, 10**6)} | {record['brush_mean']:.0f} | {record['ratio']:.2f} | "
                     f"{rows[-1]['steps']} | {record['wall']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--table"]:  # bench_annotator.py --table RESULTS.jsonl [MORE.jsonl]
        records = [json.loads(line) for path in argv[1:]
                   for line in Path(path).read_text().splitlines() if line.strip()]
        print(markdown_table(records))
        return 0
    args = parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="segtool-annotator-") as temp:
        result = run(args, Path(temp))
    wall = time.monotonic() - started
    spans = [(1, 5), (6, 10), (11, result["images"])]
    for first, last in spans:
        chosen = [r["seconds"] for r in result["rows"] if first <= r["index"] <= last]
        brush = [r["brush_seconds"] for r in result["rows"] if first <= r["index"] <= last]
        if chosen:
            print(f"images {first}-{last}: {np.mean(chosen):.0f} s per image "
                  f"(brush {np.mean(brush):.0f} s)")
    print(f"mode {args.mode}, order {args.order}, target {args.target}, budget {args.budget} s,"
          f" threshold {args.threshold}, class threshold {args.class_threshold}; wall "
          f"{wall:.0f} s; cpus {os.cpu_count()}")
    if args.json:
        record = {"set": args.set or str(args.images), "mode": args.mode, "order": args.order,
                  "target": args.target, "budget": args.budget, "threshold": args.threshold,
                  "class_threshold": args.class_threshold,
                  "wall": wall, **result}
        with open(args.json, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    last = result["images"]
    print(f"effort ratio brush/segtool over images {FIRST_COUNTED}-{last}: {result['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
