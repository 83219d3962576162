"""segtool against an ilastik-style random forest on real labelled data, end to end.

Follows the fixed protocol of ``DATA/README.md`` (``../shared/data`` beside the project):
for each set and labelling regime it makes a project with ``segtool new`` (the set's labelled
and test images; the cardiac set goes in as its ``.dcm`` files), writes the training masks
(dense, or scribbles made from them by ``realdata.scribbles``) into ``PROJECT/masks``, then
for each budget runs ``segtool train PROJECT --max-seconds S --from-scratch`` and
``segtool predict PROJECT --model THAT_MODEL`` on the test images, exactly as a user would,
and scores mean IoU over classes (void ignored) on the test images. In the same run a random
forest (scikit-image ``multiscale_basic_features`` + scikit-learn) learns from exactly the same
labelled pixels and is scored on the same test images.

    python bench/bench_realdata.py --data ../shared/data                    # the full table
    python bench/bench_realdata.py --data ../shared/data --quick            # < 10 min
    python bench/bench_realdata.py --data ../shared/data --sets fluo_dsb2018 --budgets 30
    python bench/bench_realdata.py --data ../shared/data --finetune         # + Ctrl+T check

Runs go budget by budget (every set at the first budget, then the next), so an interrupted
full run still has every set at the first budgets. ``--finetune`` then trains once more from
the project's current model (``segtool train`` without ``--from-scratch``, as the window's
Ctrl+T does) for 120 s and reports its score next to scratch. ``--json FILE`` appends each
result row to FILE; ``--table FILE ...`` prints saved rows as the bench/README table.
``--in-process --set FIELD=VALUE`` trains in this process with TrainConfig overrides, for
comparing recipes (not the user's path); ``--finetune-set FIELD=VALUE`` (repeatable) gives
each fine-tuning variant its own, every variant starting from the same scratch model. Needs
scikit-image and scikit-learn (bench only). Projects live in a temporary folder, deleted at
the end; the data folder is only read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realdata  # noqa: E402

from segtool.core.project import Project  # noqa: E402

QUICK_BUDGET = 20.0
QUICK_MAX_TEST = 8
SAVED = re.compile(r"saved (.+\.keras) \((\d+) steps, ([\d.]+) s on (.+?)\)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--sets", nargs="+", default=list(realdata.PROTOCOLS),
                        choices=list(realdata.PROTOCOLS))
    parser.add_argument("--budgets", type=float, nargs="+", default=[30.0, 120.0, 300.0])
    parser.add_argument("--regime", nargs="+", default=["dense", "scribbles"],
                        choices=["dense", "scribbles"])
    parser.add_argument("--quick", action="store_true",
                        help=f"one budget ({QUICK_BUDGET:.0f} s), {QUICK_MAX_TEST} test images "
                             "a set: under 10 minutes on 2 cores")
    parser.add_argument("--max-test", type=int, default=None,
                        help="score on this many test images a set (evenly spread)")
    parser.add_argument("--no-forest", action="store_true", help="skip the forest baseline")
    parser.add_argument("--finetune", action="store_true",
                        help="also fine-tune from the 120 s (or last) model and compare")
    parser.add_argument("--finetune-set", nargs="*", action="append", default=None,
                        metavar="FIELD=VALUE",
                        help="with --in-process --finetune: TrainConfig overrides of one "
                             "fine-tuning variant (repeat the option for more; each starts "
                             "from the same scratch model)")
    parser.add_argument("--seed", type=int, default=0, help="scribble and forest seed")
    parser.add_argument("--in-process", action="store_true",
                        help="train and predict in this process (allows --set)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="TrainConfig overrides (with --in-process)")
    parser.add_argument("--json", type=Path, default=None, help="append result rows here")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow threads (with --in-process; 1 = the window's setting "
                             "on 2 cores)")
    args = parser.parse_args(argv)
    if args.quick:
        args.budgets = [QUICK_BUDGET]
        args.max_test = args.max_test or QUICK_MAX_TEST
    if (args.set or args.threads) and not args.in_process:
        parser.error("--set and --threads need --in-process")
    return args


def make_project(root: Path, data_split: realdata.Split, masks: dict[str, np.ndarray]) -> Path:
    """A project made by ``segtool new`` from the set's images, with the training masks."""
    folder = root / "source"
    folder.mkdir()
    for path in [*data_split.train.values(), *data_split.test.values()]:
        place = folder
        if path.suffix.lower() == ".dcm":
            # The protocol labels each DICOM file as a 2D image. Loose files of one series
            # would import as one volume; a folder holding one single-frame file is a 2D image.
            place = folder / path.stem
            place.mkdir()
        (place / path.name).symlink_to(path.resolve())
    project_dir = root / "project"
    classes = ",".join(data_split.protocol.classes)
    run_cli(["new", str(project_dir), "--images", str(folder), "--classes", classes])
    project = Project.open(project_dir)
    for stem, mask in masks.items():
        project.save_mask(stem, mask)
    return project_dir


def run_cli(arguments: list[str]) -> str:
    """Run ``segtool ARGS`` in a fresh interpreter; return its output (raise on failure)."""
    command = [sys.executable, "-m", "segtool", *arguments]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments[:2])} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def train_cli(project_dir: Path, budget: float, scratch: bool) -> tuple[Path, int, str]:
    arguments = ["train", str(project_dir), "--max-seconds", str(budget)]
    output = run_cli(arguments + (["--from-scratch"] if scratch else []))
    found = SAVED.search(output)
    if found is None:
        raise RuntimeError(f"no model saved:\n{output}")
    return Path(found.group(1)), int(found.group(2)), found.group(4)


def predict_cli(project_dir: Path, model: Path, stems: list[str], out: Path) -> None:
    run_cli(["predict", str(project_dir), "--model", str(model), "--out", str(out), *stems])


def train_in_process(
    project_dir: Path, budget: float, scratch: bool, overrides: dict
) -> tuple[Path, int, str]:
    from segtool.ml.data import Augmentation
    from segtool.ml.session import train_project

    if isinstance(overrides.get("augmentation"), dict):
        overrides = {**overrides, "augmentation": Augmentation(**overrides["augmentation"])}
    outcome = train_project(Project.open(project_dir), max_seconds=budget,
                            from_scratch=scratch, config_overrides=overrides)
    return outcome.model_path, int(outcome.sidecar["steps"]), str(outcome.sidecar["device"])


def predict_in_process(
    project_dir: Path, model_path: Path, stems: list[str], out: Path, flip: bool | None = None,
    offset_scale: float = 1.0, shift: bool = False,
) -> None:
    """Predict ``stems`` with the saved model; with ``offset_scale`` below 1 only that share
    of the logit offsets that training fitted (segtool/ml/calibration.py) stays in it; with
    ``shift`` its batch-norm statistics moved to the unlabelled images first, as
    ``train_project`` does (for a model trained with ``adapt_statistics=false``)."""
    from segtool.core.masks import write_index_png
    from segtool.ml.adaptation import shift_statistics
    from segtool.ml.modelfile import load_model
    from segtool.ml.session import InputSpec, collect_training_set, predict_stem, unlabelled_sample
    from segtool.ml.unet import LOGITS_LAYER

    project = Project.open(project_dir)
    model, sidecar = load_model(model_path)
    if shift:
        spec = InputSpec.from_sidecar(sidecar)
        training_set = collect_training_set(project, spec.channels)
        print(shift_statistics(model, training_set.normalised(spec),
                               unlabelled_sample(project, spec, set(training_set.stems)),
                               sidecar["recipe"]["patch_size"]).reason(), flush=True)
    offsets = sidecar.get("recipe", {}).get("logit_offsets")
    if offset_scale != 1.0 and offsets:
        head = model.get_layer(LOGITS_LAYER)
        head.bias.assign(head.bias - (1.0 - offset_scale) * np.asarray(offsets, np.float32))
    out.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        classes, _ = predict_stem(model, sidecar, project, stem, flip)
        write_index_png(out / f"{stem}.png", classes)


def read_predictions(out: Path, stems: list[str]) -> dict[str, np.ndarray]:
    return {s: cv2.imread(str(out / f"{s}.png"), cv2.IMREAD_UNCHANGED) for s in stems}


def config_overrides(pairs: list[str]) -> dict[str, object]:
    overrides: dict[str, object] = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        overrides[name] = json.loads(text) if text[:1] in "[{0123456789-.tfn" else text
    return overrides


def fmt(values: np.ndarray) -> str:
    return " ".join("  nan" if np.isnan(v) else f"{v:.3f}" for v in values)


@dataclasses.dataclass
class Case:
    """One set in one regime: its split, training masks, project and forest baseline."""

    name: str
    regime: str
    data_split: realdata.Split
    share: float
    project_dir: Path
    forest: realdata.ForestResult | None


def prepare(args: argparse.Namespace, temp: Path) -> list[Case]:
    cases = []
    for name in args.sets:
        data_split = realdata.split(args.data, name, args.max_test)
        for regime in args.regime:
            masks = realdata.labelled_masks(data_split, regime, args.seed)
            folder = temp / f"{name}-{regime}"
            folder.mkdir()
            cases.append(Case(
                name, regime, data_split, realdata.labelled_share(list(masks.values())),
                make_project(folder, data_split, masks),
                None if args.no_forest else realdata.forest_baseline(data_split, masks,
                                                                     args.seed),
            ))
    return cases


def run_case(args: argparse.Namespace, case: Case, budget: float, scratch: bool,
             overrides: dict) -> dict:
    """Train (scratch or fine-tune), predict the test images, score; print one row."""
    stems = sorted(case.data_split.test)
    started = time.monotonic()
    if args.in_process:
        model, steps, device = train_in_process(case.project_dir, budget, scratch, overrides)
    else:
        model, steps, device = train_cli(case.project_dir, budget, scratch)
    wall = time.monotonic() - started
    out = case.project_dir.parent / f"predicted-{budget:g}-{scratch}"
    if args.in_process:
        predict_in_process(case.project_dir, model, stems, out)
    else:
        predict_cli(case.project_dir, model, stems, out)
    ious, miou = realdata.score_predictions(case.data_split, read_predictions(out, stems))
    flipped = unshifted = halved = adapted = float("nan")
    adapted_ious = None
    unshifted_ious = None
    model_sidecar = json.loads(model.with_suffix(".json").read_text())
    architecture = model_sidecar["architecture"]
    offsets = model_sidecar.get("recipe", {}).get("logit_offsets")
    if args.in_process:  # the same model with test-time flips, for comparison
        predict_in_process(case.project_dir, model, stems, out, flip=True)
        flipped = realdata.score_predictions(case.data_split, read_predictions(out, stems))[1]
    if args.in_process and overrides.get("adapt_statistics") is False:  # and with the shift
        predict_in_process(case.project_dir, model, stems, out, shift=True)
        adapted_ious, adapted = realdata.score_predictions(
            case.data_split, read_predictions(out, stems))
    if args.in_process and offsets:  # and without its logit offsets, or half of them
        predict_in_process(case.project_dir, model, stems, out, offset_scale=0.0)
        unshifted_ious, unshifted = realdata.score_predictions(
            case.data_split, read_predictions(out, stems))
        predict_in_process(case.project_dir, model, stems, out, offset_scale=0.5)
        halved = realdata.score_predictions(case.data_split, read_predictions(out, stems))[1]
    forest = case.forest
    forest_miou = forest.miou if forest else float("nan")
    current = Project.open(case.project_dir).current_model
    label = f"{budget:g}" + ("" if scratch else "+ft")
    flip_note = "" if np.isnan(flipped) else f" (flip {flipped:.3f})"
    if not np.isnan(unshifted):
        flip_note += f" (no offsets {unshifted:.3f}, half {halved:.3f})"
    if not np.isnan(adapted):
        flip_note += f" (statistics shifted {adapted:.3f}: {fmt(adapted_ious)})"
    if not scratch:
        flip_note += f" ({'became' if current == model.name else 'not made'} current"
        flip_note += "".join(f", {k}={v}" for k, v in overrides.items()) + ")"
    print(f"{case.name:34} {case.regime:9} {case.share:8.2%} {label:>6} {steps:6d} {wall:7.1f} "
          f"{miou:6.3f}{flip_note} {forest_miou:6.3f} {miou - forest_miou:+6.3f} "
          f"{forest.seconds if forest else float('nan'):8.1f}  {fmt(ious)} | "
          f"{fmt(forest.ious) if forest else ''}", flush=True)
    return {
        "set": case.name, "regime": case.regime, "labelled_share": case.share,
        "budget": budget, "scratch": scratch, "steps": steps, "wall": wall,
        "device": device, "miou": miou, "miou_flip": flipped,
        "miou_without_offsets": unshifted, "miou_half_offsets": halved,
        "ious_without_offsets": None if unshifted_ious is None else unshifted_ious.tolist(),
        "miou_statistics_shifted": adapted,
        "ious_statistics_shifted": None if adapted_ious is None else adapted_ious.tolist(),
        "ious": ious.tolist(),
        "forest_miou": forest_miou, "forest_ious": forest.ious.tolist() if forest else None,
        "forest_seconds": forest.seconds if forest else None,
        "forest_samples": forest.samples if forest else None,
        "test_images": len(stems), "overrides": overrides, "threads": args.threads,
        "architecture": architecture, "logit_offsets": offsets,
        "batch_norm_shift": model_sidecar["recipe"].get("batch_norm_shift"),
        "model": model.name, "became_current": current == model.name,
    }


def markdown_table(rows: list[dict]) -> str:
    """The bench/README table of result rows (from ``--json``): one line a set, regime, run."""
    lines = [
        "| set | regime | labelled | budget | steps | segtool mIoU | forest mIoU | difference "
        "| per-class IoU segtool | per-class IoU forest |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    order = {name: index for index, name in enumerate(realdata.PROTOCOLS)}
    rows = sorted(rows, key=lambda r: (order[r["set"]], r["regime"], not r["scratch"],
                                       r["budget"]))
    for row in rows:
        label = f"{row['budget']:g} s" + ("" if row["scratch"] else " fine-tune")
        forest = row["forest_miou"]
        lines.append(
            f"| {row['set']} | {row['regime']} | {row['labelled_share']:.1%} | {label} "
            f"| {row['steps']} | {row['miou']:.3f} | {forest:.3f} | {row['miou'] - forest:+.3f} "
            f"| {fmt(np.asarray(row['ious']))} | {fmt(np.asarray(row['forest_ious'] or []))} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--table"]:  # bench_realdata.py --table RESULTS.jsonl [MORE.jsonl]
        rows = [json.loads(line) for path in argv[1:] for line in Path(path).read_text()
                .splitlines() if line.strip()]
        print(markdown_table(rows))
        return 0
    args = parse_args(argv)
    overrides = config_overrides(args.set)
    if args.threads is not None:
        from segtool.ml.device import configure_devices

        configure_devices(args.threads)
    print(f"{'set':34} {'regime':9} {'labelled':>8} {'budget':>6} {'steps':>6} "
          f"{'wall s':>7} {'mIoU':>6} {'forest':>6} {'delta':>6} {'forest s':>8}  per-class IoU "
          "(segtool | forest)", flush=True)
    with tempfile.TemporaryDirectory(prefix="segtool-realdata-") as temp:
        cases = prepare(args, Path(temp))
        # Budget by budget, so that an interrupted full run has every set at the first ones.
        runs = [(budget, True, overrides) for budget in args.budgets]
        parent_budget = 120.0 if 120.0 in args.budgets else args.budgets[-1]
        if args.finetune:
            runs += [(parent_budget, False, {**overrides, **config_overrides(variant)})
                     for variant in args.finetune_set or [[]]]
        parents: dict[str, str] = {}  # case folder -> the scratch model fine-tuning starts from
        for budget, scratch, run_overrides in runs:
            for case in cases:
                if not scratch:  # every variant fine-tunes the same scratch model
                    Project.open(case.project_dir).set_current_model(parents[str(case.project_dir)])
                row = run_case(args, case, budget, scratch, run_overrides)
                if scratch and budget == parent_budget:
                    parents[str(case.project_dir)] = row["model"]
                if args.json:
                    with args.json.open("a") as handle:
                        handle.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
