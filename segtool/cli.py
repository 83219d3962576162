"""The command line: ``segtool [PROJECT]``, ``demo``, ``new``, ``add``, ``train``, ``predict``,
``export``, ``info``.

Every user error prints one line per problem, naming the file, and exits non-zero; a
traceback only with ``--debug``. TensorFlow is imported only by ``train`` and ``predict``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from segtool import __version__
from segtool.core.errors import SegtoolError

if TYPE_CHECKING:
    from segtool.core.project import Project
    from segtool.ml.cluster import ClusterRole
    from segtool.ml.distribute import Distribution
    from segtool.ml.session import TrainOutcome

COMMANDS = ("gui", "demo", "new", "add", "train", "predict", "export", "info")
EXPORT_FORMATS = ("index", "color", "coco", "nifti")
READS_ONLY = "this command only reads the project"  # info, export, predict: no lock, no writes
IMAGES_HELP = ("folder of images to copy in; NIfTI files, TIFF stacks and DICOM series (each "
               "sub-folder, or the .dcm files of one series) come in as volumes")
REFERENCE_HELP = ("reference the images where they are instead of copying them (big datasets; "
                  "segtool.json records each path; a DICOM series is still converted in)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per action."""
    parser = argparse.ArgumentParser(
        prog="segtool",
        description="Label images for semantic segmentation with a U-Net that learns as you go. "
        "'segtool PROJECT' opens the window on a project.",
    )
    parser.add_argument("--version", action="version", version=f"segtool {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    # --debug after the command too (`segtool PROJECT --debug`); SUPPRESS keeps the top-level
    # value when a sub-command does not repeat it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add_command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=summary)

    gui = add_command("gui", "open the window (the default command)")
    gui.add_argument("project", nargs="?", type=Path, help="project folder (default: the last one)")

    demo = add_command("demo", "create the demo project and open it")
    demo.add_argument("--folder", type=Path, default=None,
                      help="where to create it (default: segtool/demo in the user's data folder)")
    demo.add_argument("--no-gui", action="store_true", help="create the project only")

    new = add_command("new", "create a project from a folder of images")
    new.add_argument("project", type=Path, help="project folder to create (new or empty)")
    new.add_argument("--images", type=Path, required=True, help=IMAGES_HELP)
    new.add_argument("--classes", default="background,foreground",
                     help="comma-separated class names, background first (default: %(default)s)")
    new.add_argument("--max-pixels", type=int, default=None,
                     help="refuse images with more pixels than this, read from the header "
                          "before decoding (default: 2**28)")
    new.add_argument("--reference", action="store_true", help=REFERENCE_HELP)

    add = add_command("add", "copy more images into a project")
    add.add_argument("project", type=Path)
    add.add_argument("--images", type=Path, required=True, help=IMAGES_HELP)
    add.add_argument("--reference", action="store_true", help=REFERENCE_HELP)

    train = add_command("train", "train the U-Net on the labelled masks")
    train.add_argument("project", type=Path)
    train.add_argument("--max-seconds", type=_positive(float), default=60.0,
                       help="time budget in seconds (default: %(default)s)")
    train.add_argument("--epochs", type=_positive(int), default=None,
                       help="stop after this many epochs (passes over the labelled patches)")
    train.add_argument("--from-scratch", action="store_true",
                       help="start from random weights instead of the current model")
    train.add_argument("--distributed", action="store_true",
                       help="one worker of a multi-host job described by TF_CONFIG (run the "
                            "same command on every host; the chief alone writes files; see "
                            "docs/distributed.md)")

    predict = add_command("predict", "write class-index PNGs predicted by a model")
    predict.add_argument("project", type=Path)
    predict.add_argument("images", nargs="*", help="image names or stems (default: all)")
    predict.add_argument("--model", type=Path, default=None,
                         help=".keras model file (default: the project's current model)")
    predict.add_argument("--out", type=Path, default=None,
                         help="output folder outside the project's images/, masks/ and models/ "
                              "(default: PROJECT/predictions, replaced on each run)")
    predict.add_argument("--flip", action="store_true",
                         help="average each prediction with its left-right mirror's (test-time "
                              "augmentation: a little more accurate, twice the time)")
    predict.add_argument("--force", action="store_true",
                         help="replace files that already exist in --out")

    export = add_command("export", "export the masks")
    export.add_argument("project", type=Path)
    export.add_argument("--out", type=Path, required=True,
                        help="output folder, outside the project's images/, masks/ and models/")
    export.add_argument("--force", action="store_true",
                        help="replace files that already exist in --out")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="index",
                        help="index: class-index PNGs; color: RGB PNGs; coco: annotations.json; "
                             "nifti: a label volume <stem>.nii.gz per volume, in its geometry "
                             "(a volume's slices are <stem>_z0042.png in the PNG formats)")
    export.add_argument("--unlabelled", choices=("255", "0"), default="255",
                        help="nifti: unlabelled voxels as 255 (class i stays i) or as 0 "
                             "(class i written as i + 1, ITK-SNAP's and Slicer's 'clear')")

    info = add_command("info", "images, labelled pixels per class, models")
    info.add_argument("project", type=Path)
    return parser


def _positive(kind: type) -> Callable[[str], float | int]:
    """An argparse ``type`` accepting only numbers of ``kind`` above zero."""

    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``segtool`` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args_list if a != "--debug"), None)
    if first is not None and not first.startswith("-") and first not in COMMANDS:
        args_list.insert(args_list.index(first), "gui")  # `segtool PROJECT` opens the window
    parser = build_parser()
    args, extra = parser.parse_known_args(args_list)
    if extra and args.command == "predict" and not any(a.startswith("-") for a in extra):
        args.images += extra  # image names after the options: `predict P --out D a.png`
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    command = args.command or "gui"
    try:
        return int(_HANDLERS[command](args) or 0)
    except SegtoolError as error:
        if args.debug:
            raise
        print(f"segtool: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        if args.debug:
            raise
        where = f"{error.filename}: " if error.filename else ""
        print(f"segtool: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("segtool: interrupted", file=sys.stderr)
        return 130


def _cmd_gui(args: argparse.Namespace) -> int:
    from segtool.gui.app import run_gui

    return run_gui(getattr(args, "project", None))


def _cmd_demo(args: argparse.Namespace) -> int:
    from segtool.core.demo import create_demo_project, default_demo_folder

    folder = args.folder or default_demo_folder()
    project = create_demo_project(folder)
    print(f"demo project: {project.root}")
    if args.no_gui:
        return 0
    from segtool.gui.app import run_gui

    return run_gui(project.root)


def _cmd_new(args: argparse.Namespace) -> int:
    from segtool.core.creation import create_project_from_folder

    names = [name.strip() for name in args.classes.split(",") if name.strip()]
    limit = {} if args.max_pixels is None else {"max_pixels": args.max_pixels}
    # Built beside the target and renamed into place: a killed run leaves no half project.
    project, report = create_project_from_folder(args.project, args.images, names,
                                                 reference=args.reference, **limit)
    for path, reason in report.skipped:  # unsupported types and unreadable files, with why
        print(f"skipped {path}: {reason}")
    print(f"created {project.root} with {len(report.imported)} image(s), "
          f"classes: {', '.join(names)}")
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    from segtool.core.creation import image_candidates
    from segtool.core.project import Project

    project = Project.open(args.project)
    candidates = image_candidates(args.images)
    report = project.import_images(candidates, reference=args.reference)
    for path, reason in report.skipped:
        print(f"skipped {path}: {reason}")
    if args.reference:
        print(f"referenced {len(report.imported)} image(s) where they are, from {project.root}")
    else:
        print(f"added {len(report.imported)} image(s) to {project.root}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    """``segtool train``: this host's devices (every GPU mirrored), under the project lock."""
    from segtool.core.project import Project
    from segtool.ml.session import train_project

    project = Project.open(args.project)
    if os.environ.get("TF_CONFIG", "").strip():
        logging.getLogger(__name__).warning(
            "TF_CONFIG is set but --distributed is not: training on this host alone")
    outcome = train_project(project, max_seconds=args.max_seconds, epochs=args.epochs,
                            from_scratch=args.from_scratch, progress=_progress_printer(project))
    _print_outcome(outcome)
    return 0


def _cmd_train_distributed(args: argparse.Namespace, role: ClusterRole) -> int:
    """``segtool train --distributed``: one worker of the job in TF_CONFIG.

    The chief holds the project lock (taken by the caller) before it joins, so by the time
    the other workers open the project it is locked; they never take it and write nothing.
    """
    from segtool.core.project import Project
    from segtool.ml.session import train_project

    distribution = _join(role)
    project = Project.open(args.project, read_only=None if role.is_chief else
                           "a worker of a distributed job: the chief writes")
    outcome = train_project(project, max_seconds=args.max_seconds, epochs=args.epochs,
                            from_scratch=args.from_scratch, progress=_progress_printer(project),
                            distribution=distribution)
    _print_outcome(outcome)
    return 0


def _join(role: ClusterRole) -> Distribution:
    """Wait until every worker of the job has started, then return the job's Distribution."""
    from segtool.ml.device import configure_devices
    from segtool.ml.distribute import cluster_distribution

    print(f"{role.describe()}: waiting for all {role.workers} workers to join", flush=True)
    configure_devices()  # thread counts and GPU memory growth, before the job starts TF
    distribution = cluster_distribution(role)
    print(f"joined: {distribution.describe()}", flush=True)
    return distribution


def _progress_printer(project: Project) -> Callable[[object], None]:
    """A progress callback printing a line (step, loss, validation IoU) at most once a second."""
    class_names = [c.name for c in project.classes]
    last_print = [0.0]

    def report(progress: object) -> None:
        now = time.monotonic()
        if now - last_print[0] < 1.0:
            return
        last_print[0] = now
        ious = " ".join(
            f"{name} {iou:.3f}" for name, iou in zip(class_names, progress.val_iou, strict=False)
        )
        print(f"step {progress.step:5d}  loss {progress.loss:.4f}  val IoU {ious}  "
              f"{progress.elapsed:5.1f} s", flush=True)

    return report


def _print_outcome(outcome: TrainOutcome) -> None:
    sidecar = outcome.sidecar
    where = f"{sidecar['device']}, {_replicas_text(sidecar.get('distribution') or {})}"
    if outcome.model_path is None:
        print(f"trained {sidecar['steps']} steps in {sidecar['seconds']:.1f} s on {where}; "
              "the chief saves the model")
        return
    metrics = sidecar["metrics"]
    summary = ", ".join(f"{k} {v:.3f}" for k, v in metrics["val_iou"].items() if v is not None)
    print(f"saved {outcome.model_path} ({sidecar['steps']} steps, "
          f"{sidecar['seconds']:.1f} s on {where}); "
          f"validation IoU: {summary or 'n/a (no held-out pixels)'}")
    for reason in sidecar.get("recipe", {}).get("reasons", []):
        print(f"  recipe: {reason}")
    if outcome.became_current:
        print(f"{outcome.model_path.name} is now the current model")
    else:
        print(f"kept {outcome.previous_model} as current: it scored "
              f"{outcome.previous_val_iou:.3f} against {metrics['mean_val_iou']:.3f} "
              "on validation")


def _replicas_text(distribution: dict) -> str:
    """``"2 replicas (MirroredStrategy: GPU:0, GPU:1)"``, ``"1 replica"``."""
    replicas = int(distribution.get("replicas", 1))
    if replicas <= 1:
        return "1 replica"
    workers = int(distribution.get("workers", 1))
    devices = ", ".join(distribution.get("devices", []))
    if workers > 1:
        devices = f"{workers} workers; the chief's: {devices}"
    return f"{replicas} replicas ({distribution.get('strategy')}: {devices})"


def _cmd_predict(args: argparse.Namespace) -> int:
    from segtool.core.masks import write_index_png
    from segtool.core.outputs import check_output_folder
    from segtool.core.project import Project
    from segtool.core.volumes import write_label_volume
    from segtool.ml.modelfile import load_model
    from segtool.ml.session import (
        load_current_model,
        predict_stem,
        predict_volume,
        project_channels,
    )

    project = Project.open(args.project, read_only=READS_ONLY)
    stems = _select_images(project, args.images)
    names = {stem: f"{stem}.nii.gz" if project.is_volume(stem) else f"{stem}.png"
             for stem in stems}
    if args.out is not None:  # PROJECT/predictions is segtool's own: replaced on each run
        check_output_folder(project, args.out, list(names.values()), args.force)
    channels = project_channels(project)
    if args.model is not None:
        model, sidecar = load_model(args.model, num_classes=project.num_classes, channels=channels)
    else:
        loaded = load_current_model(project, channels=channels)
        if loaded is None:
            raise SegtoolError("the project has no model yet: run 'segtool train' first",
                               project.root)
        model, sidecar = loaded
    out = args.out or project.root / "predictions"
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for stem in stems:
        try:
            if project.is_volume(stem):  # class indices in the image's geometry
                info = project.volume_info(stem)
                result = predict_volume(model, sidecar, project, stem, args.flip or None)
                assert result is not None  # not cancellable here
                write_label_volume(out / names[stem], result[0], info)
            else:
                classes, _ = predict_stem(model, sidecar, project, stem, args.flip or None)
                write_index_png(out / names[stem], classes)
        except SegtoolError as error:
            print(f"segtool: error: {error}", file=sys.stderr)
            failures += 1
            continue
        print(f"wrote {out / names[stem]}")
    return 1 if failures else 0


def _select_images(project: object, requested: Sequence[str]) -> list[str]:
    stems = project.image_names()
    if not requested:
        return stems
    chosen = []
    from segtool.core.volumes import split_name

    for name in requested:
        stem = split_name(Path(name).name)[0]
        if stem not in stems:
            raise SegtoolError("no such image in the project", name)
        chosen.append(stem)
    return chosen


def _cmd_export(args: argparse.Namespace) -> int:
    from segtool.core import export
    from segtool.core.project import Project

    project = Project.open(args.project, read_only=READS_ONLY)
    report = export.export_project(project, args.out, args.format, force=args.force,
                                   unlabelled_zero=args.unlabelled == "0")
    print(report)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from segtool.core.info import project_summary
    from segtool.core.project import Project

    print(project_summary(Project.open(args.project, read_only=READS_ONLY)))
    return 0


def _locked(handler: Callable[[argparse.Namespace], int], what: str
            ) -> Callable[[argparse.Namespace], int]:
    """``handler`` run while holding the project's lock (refused, naming the holder, while a
    window or another command has the project)."""

    def run(args: argparse.Namespace) -> int:
        from segtool.core.lock import ProjectLock
        from segtool.core.project import Project

        root = Project.open(args.project).root  # a folder that is no project: that error first
        with ProjectLock.acquire(root, what):
            return handler(args)

    return run


def _train_handler(args: argparse.Namespace) -> int:
    """``train`` under the project lock; with ``--distributed`` only the chief takes it."""
    if not args.distributed:
        return _locked(_cmd_train, "segtool train")(args)
    from segtool.ml.cluster import ClusterRole

    role = ClusterRole.from_environment()  # a bad TF_CONFIG is refused before anything starts
    if not role.is_chief:
        return _cmd_train_distributed(args, role)
    from segtool.core.lock import ProjectLock
    from segtool.core.project import Project

    try:
        root = Project.open(args.project).root
        lock = ProjectLock.acquire(root, "segtool train --distributed (chief)")
    except SegtoolError:
        # The other workers wait for the chief without a time limit: join, so that they
        # see it leave and stop with a line of their own, then say why here.
        _join(role)
        raise
    with lock:
        return _cmd_train_distributed(args, role)


_HANDLERS = {
    "gui": _cmd_gui,
    "demo": _cmd_demo,
    "new": _cmd_new,
    "add": _locked(_cmd_add, "segtool add"),
    "train": _train_handler,
    "predict": _cmd_predict,
    "export": _cmd_export,
    "info": _cmd_info,
}
