"""The command line as a user meets it: what each command writes and prints, and how it fails.

The error contract (one line naming the file, non-zero exit, a traceback only with
``--debug``) is checked in fresh interpreters; the rest calls ``segtool.cli.main`` in this
process, which is much faster once TensorFlow is loaded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from segtool.cli import COMMANDS, main
from segtool.core.masks import UNLABELLED, read_mask, write_mask
from segtool.core.project import Project
from segtool.core.synthetic import nuclei_image

MakeProject = Callable[..., Project]


# --- helpers ---------------------------------------------------------------------------------


def run_cli(*args: str | Path, home: Path) -> subprocess.CompletedProcess[str]:
    """``python -m segtool ARGS`` in a fresh interpreter, offscreen, with HOME under ``home``."""
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
    )
    return subprocess.run(
        [sys.executable, "-m", "segtool", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def error_lines(stderr: str) -> list[str]:
    """segtool's own error lines (TensorFlow may add its start-up chatter to stderr)."""
    return [line for line in stderr.splitlines() if line.startswith("segtool: error:")]


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and modification time of every file under ``root``."""
    return {
        str(path.relative_to(root)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def truth(stem: str, size: int = 64) -> np.ndarray:
    """The generator's 0/1 ground truth of a ``make_project`` image ``img-N``."""
    return nuclei_image(size=size, seed=int(stem.split("-")[1]))[1].astype(np.uint8)


def coco_masks(annotations_file: Path) -> dict[str, np.ndarray]:
    """Decode a COCO export back into class-index masks (255 where no annotation), by file."""
    from pycocotools import mask as mask_utils

    document = json.loads(annotations_file.read_text(encoding="utf-8"))
    masks = {}
    for image in document["images"]:
        mask = np.full((image["height"], image["width"]), UNLABELLED, dtype=np.uint8)
        for annotation in document["annotations"]:
            if annotation["image_id"] != image["id"]:
                continue
            segmentation = dict(annotation["segmentation"])
            segmentation["counts"] = segmentation["counts"].encode()
            binary = mask_utils.decode(segmentation).astype(bool)
            assert not np.any(binary & (mask != UNLABELLED)), "annotations overlap"
            mask[binary] = annotation["category_id"] - 1
        masks[image["file_name"]] = mask
    return masks


# --- the error contract, in fresh interpreters ----------------------------------------------


def test_help_of_the_entry_point_lists_every_command(tmp_path: Path) -> None:
    result = run_cli("--help", home=tmp_path)
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: segtool {command}" in capsys.readouterr().out


@pytest.mark.parametrize("prefix", [[], ["info"]], ids=["open-window", "info"])
def test_malformed_project_file_is_one_line_naming_it(tmp_path: Path, prefix: list[str]) -> None:
    folder = tmp_path / "broken project"
    folder.mkdir()
    (folder / "segtool.json").write_text('{"version": 1, "classes": [', encoding="utf-8")

    result = run_cli(*prefix, folder, home=tmp_path)

    assert result.returncode == 1
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and str(folder / "segtool.json") in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_folder_that_is_no_project_is_one_line_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "holiday photos"
    folder.mkdir()
    for prefix in ([], ["info"], ["export", "--out", str(tmp_path / "out")]):
        result = run_cli(*prefix, folder, home=tmp_path)
        assert result.returncode == 1
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and str(folder) in lines[0], result.stderr
        assert "not a segtool project" in lines[0]
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(tmp_path: Path, where: str) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "segtool.json").write_text("[]", encoding="utf-8")
    args = ["--debug", folder] if where == "before" else [folder, "--debug"]

    result = run_cli(*args, home=tmp_path)

    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "SegtoolError" in result.stderr and str(folder / "segtool.json") in result.stderr


def test_nonsense_training_budget_is_refused_before_anything_runs(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(n_images=1)
    for option in (["--max-seconds", "0"], ["--max-seconds", "-5"], ["--epochs", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", str(project.root), *option])
        assert exit_info.value.code == 2
        assert f"argument {option[0]}: must be above 0" in capsys.readouterr().err
    assert not any(project.models_dir.iterdir())


# --- new -------------------------------------------------------------------------------------


def test_new_copies_readable_images_and_lists_each_skipped_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "microscope"
    images.mkdir()
    grey, _ = nuclei_image(size=64, seed=1)
    assert cv2.imwrite(str(images / "a.png"), grey)  # 16-bit PNG
    assert cv2.imwrite(str(images / "a.tif"), grey)  # same stem as a.png
    colour = np.dstack([grey >> 8] * 3).astype(np.uint8)
    assert cv2.imwrite(str(images / "b.tif"), colour)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (images / "notes.txt").write_text("exposure 200 ms", encoding="utf-8")
    target = tmp_path / "project"

    status = main(["new", str(target), "--images", str(images),
                   "--classes", "background,cell,debris"])

    assert status == 0
    out = capsys.readouterr().out
    skipped = {line.split(":")[0] for line in out.splitlines() if line.startswith("skipped ")}
    assert skipped == {f"skipped {images / name}" for name in ("a.tif", "broken.png", "notes.txt")}
    assert re.search(r"a\.tif: .*already in the project", out)
    assert re.search(r"notes\.txt: unsupported file type", out)
    project = Project.open(target)
    assert project.image_names() == ["a", "b"]
    assert [c.name for c in project.classes] == ["background", "cell", "debris"]
    for name in ("a.png", "b.tif"):
        assert (project.images_dir / name).read_bytes() == (images / name).read_bytes()
    assert sorted(p.name for p in project.images_dir.iterdir()) == ["a.png", "b.tif"]


def test_new_with_a_missing_image_folder_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["new", str(tmp_path / "project"), "--images", str(tmp_path / "nowhere")])

    assert status == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and str(tmp_path / "nowhere") in lines[0]
    assert not (tmp_path / "project").exists()


# --- info, export, demo ----------------------------------------------------------------------


def test_info_counts_labelled_pixels_per_class(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(n_images=3, class_names=["background", "cell", "debris"])
    mask = np.full((64, 64), UNLABELLED, dtype=np.uint8)
    mask[:10, :3] = 0  # 30 pixels
    mask[20:25, 20:25] = 1  # 25 pixels
    project.save_mask("img-2", mask)

    assert main(["info", str(project.root)]) == 0

    out = capsys.readouterr().out
    assert "images: 3" in out
    assert "in_progress: 1" in out and "unlabelled: 2" in out
    assert "0 background: 30" in out and "1 cell: 25" in out and "2 debris: 0" in out
    assert "models: 0" in out


@pytest.mark.parametrize("fmt", ["index", "color"])
def test_export_writes_one_png_per_saved_mask(
    make_project: MakeProject, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(n_images=2)
    mask = np.full((64, 64), UNLABELLED, dtype=np.uint8)
    mask[:, :20] = 0
    mask[30:40, 30:40] = 1
    project.save_mask("img-1", mask)
    out = tmp_path / "export"

    assert main(["export", str(project.root), "--out", str(out), "--format", fmt]) == 0

    assert sorted(p.name for p in out.iterdir()) == ["img-1.png"]
    assert "skipped img-2: no mask saved" in capsys.readouterr().out
    written = cv2.imread(str(out / "img-1.png"), cv2.IMREAD_UNCHANGED)
    if fmt == "index":
        np.testing.assert_array_equal(written, mask)
    else:
        lut = np.zeros((256, 3), dtype=np.uint8)
        lut[:2] = project.colours
        np.testing.assert_array_equal(written[..., ::-1], lut[mask])


def test_demo_creates_six_images_two_partly_labelled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "demo"

    assert main(["demo", "--no-gui", "--folder", str(folder)]) == 0

    assert str(folder) in capsys.readouterr().out
    project = Project.open(folder)
    assert [c.name for c in project.classes] == ["background", "nucleus"]
    stems = project.image_names()
    assert len(stems) == 6
    labelled = [stem for stem in stems if project.mask_path(stem).exists()]
    assert len(labelled) == 2
    for stem in labelled:
        mask = project.load_mask(stem, project.image_shape(stem))
        assert set(np.unique(mask)) == {0, 1, UNLABELLED}  # partly labelled, both classes


# --- train refusals: nothing of the user's changes -------------------------------------------


def test_train_refuses_when_nothing_is_labelled(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(n_images=2)
    project.save_mask("img-1", np.full((64, 64), UNLABELLED, dtype=np.uint8))
    before = snapshot(project.root)

    status = main(["train", str(project.root), "--max-seconds", "3"])

    assert status == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "nothing is labelled" in lines[0] and str(project.root) in lines[0]
    assert snapshot(project.root) == before


def test_train_refuses_naming_every_mask_that_does_not_fit(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(n_images=4)
    good = np.full((64, 64), UNLABELLED, dtype=np.uint8)
    good[:32] = truth("img-1")[:32]
    project.save_mask("img-1", good)
    colours = project.colours
    write_mask(project.mask_path("img-2"), np.zeros((48, 64), dtype=np.uint8), colours)
    unknown = good.copy()
    unknown[40:44, 40:44] = 7  # the project has classes 0 and 1 only
    write_mask(project.mask_path("img-3"), unknown, colours)
    write_mask(project.mask_path("img-4"), np.ones((64, 32), dtype=np.uint8), colours)
    before = snapshot(project.root)

    status = main(["train", str(project.root), "--max-seconds", "3"])

    assert status == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    named = set(re.findall(r"img-\d\.png", err))
    assert named == {"img-2.png", "img-3.png", "img-4.png"}, err
    assert "class index 7" in err and "64x48" in err
    assert snapshot(project.root) == before


# --- end to end ------------------------------------------------------------------------------


def test_label_train_info_predict_export(
    make_project: MakeProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(n_images=2, class_names=["background", "cell"])
    mask = np.full((64, 64), UNLABELLED, dtype=np.uint8)
    mask[:48] = truth("img-1")[:48]  # four 32-px blocks hold labels: one is held out
    project.save_mask("img-1", mask)
    root = str(project.root)

    # The budget counts starting TensorFlow: two epochs end the run well before it.
    assert main(["train", root, "--max-seconds", "60", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"step +\d+ +loss \d", out), out  # progress on the terminal
    models = sorted(project.models_dir.glob("*.keras"))
    assert len(models) == 1
    assert f"{models[0].name} is now the current model" in out
    assert Project.open(root).current_model == models[0].name

    assert main(["info", root]) == 0
    out = capsys.readouterr().out
    assert "models: 1" in out
    model_line = next(line for line in out.splitlines() if models[0].name in line)
    assert model_line.lstrip().startswith("*")  # the current model
    assert "trained on 1 image(s)" in model_line
    assert re.search(r"val IoU: (background|cell) \d\.\d{3}", model_line), model_line

    assert main(["predict", root]) == 0
    predictions = project.root / "predictions"
    assert sorted(p.name for p in predictions.iterdir()) == ["img-1.png", "img-2.png"]
    for path in predictions.iterdir():
        predicted = read_mask(path)
        assert predicted.shape == (64, 64)
        assert predicted.max() < project.num_classes  # every pixel gets a class

    elsewhere = tmp_path / "elsewhere"
    assert main(["predict", root, "--model", str(models[0]), "--out", str(elsewhere),
                 "img-2.png"]) == 0
    assert [p.name for p in elsewhere.iterdir()] == ["img-2.png"]
    np.testing.assert_array_equal(read_mask(elsewhere / "img-2.png"),
                                  read_mask(predictions / "img-2.png"))
    capsys.readouterr()

    assert main(["predict", root, "img-9"]) == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "img-9" in lines[0] and "no such image" in lines[0]
    missing = project.models_dir / "gone.keras"
    assert main(["predict", root, "--model", str(missing)]) == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and str(missing) in lines[0]

    out_dir = tmp_path / "coco"
    assert main(["export", root, "--out", str(out_dir), "--format", "coco"]) == 0
    decoded = coco_masks(out_dir / "annotations.json")
    assert list(decoded) == ["img-1.png"]  # img-2 has no mask
    np.testing.assert_array_equal(decoded["img-1.png"], project.load_mask("img-1"))


def test_predict_without_a_model_says_to_train_first(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(n_images=1)

    assert main(["predict", str(project.root)]) == 1

    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "no model yet" in lines[0] and str(project.root) in lines[0]
    assert not (project.root / "predictions").exists()


# --- outputs never overwrite the project or existing files -----------------------------------


@pytest.mark.parametrize("command", [["export", "--format", "index"],
                                     ["export", "--format", "color"],
                                     ["export", "--format", "coco"], ["predict"]])
@pytest.mark.parametrize("inside", ["images", "masks", "models", "masks/sub", ".", "link"])
def test_out_inside_the_project_is_refused_and_nothing_changes(
    make_project: MakeProject, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    command: list[str], inside: str,
) -> None:
    project = make_project(n_images=2)
    mask = np.full((64, 64), UNLABELLED, dtype=np.uint8)
    mask[:8] = 1
    project.save_mask("img-1", mask)
    if inside == "link":
        out = tmp_path / "innocent-looking"
        out.symlink_to(project.masks_dir)
    else:
        out = project.root / inside
    before = snapshot(project.root)

    status = main([command[0], str(project.root), *command[1:], "--out", str(out)])

    assert status == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and str(out) in lines[0], lines
    assert "project" in lines[0]
    assert snapshot(project.root) == before


@pytest.mark.parametrize("fmt, first", [("index", "img-1.png"), ("color", "img-1.png"),
                                        ("coco", "annotations.json")])
def test_export_refuses_to_overwrite_unless_forced(
    make_project: MakeProject, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    fmt: str, first: str,
) -> None:
    project = make_project(n_images=2)
    mask = np.full((64, 64), UNLABELLED, dtype=np.uint8)
    mask[:8] = 1
    project.save_mask("img-1", mask)
    out = tmp_path / "out"
    out.mkdir()
    (out / first).write_bytes(b"someone else's file")

    assert main(["export", str(project.root), "--out", str(out), "--format", fmt]) == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and str(out / first) in lines[0] and "--force" in lines[0]
    assert (out / first).read_bytes() == b"someone else's file"

    assert main(["export", str(project.root), "--out", str(out), "--format", fmt,
                 "--force"]) == 0
    assert (out / first).read_bytes() != b"someone else's file"


def test_predict_refuses_to_overwrite_unless_forced(
    make_project: MakeProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(n_images=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "img-2.png").write_bytes(b"hand-made")

    assert main(["predict", str(project.root), "--out", str(out)]) == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and str(out / "img-2.png") in lines[0] and "--force" in lines[0]
    assert (out / "img-2.png").read_bytes() == b"hand-made"
    # With --force the refusal is gone: what stops it now is the missing model.
    assert main(["predict", str(project.root), "--out", str(out), "--force"]) == 1
    assert "no model yet" in capsys.readouterr().err


# --- new refuses unsafe folders and is all or nothing; add ------------------------------------


def image_folder(folder: Path, count: int, first: int = 1) -> Path:
    """``folder`` with ``count`` small synthetic PNGs named img-N.png."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(first, first + count):
        assert cv2.imwrite(str(folder / f"img-{number}.png"), nuclei_image(size=32, seed=number)[0])
    return folder


@pytest.mark.parametrize("where", ["non-empty", "images itself", "inside images"])
def test_new_refuses_a_folder_that_is_not_empty_or_is_the_images(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    images = image_folder(tmp_path / "images", 2)
    target = {"non-empty": tmp_path / "thesis", "images itself": images,
              "inside images": images / "project"}[where]
    if where == "non-empty":
        target.mkdir()
        (target / "chapter1.tex").write_text("the only copy", encoding="utf-8")
    before = snapshot(tmp_path)

    assert main(["new", str(target), "--images", str(images)]) == 1

    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and str(target) in lines[0], lines
    assert snapshot(tmp_path) == before
    assert not any(p.name.startswith(".") for p in tmp_path.rglob("*"))


def test_new_refuses_the_file_system_root(tmp_path: Path) -> None:
    from segtool.core.creation import check_new_project_folder
    from segtool.core.errors import SegtoolError

    with pytest.raises(SegtoolError, match="root of the file system"):
        check_new_project_folder(Path("/"), image_folder(tmp_path / "images", 1))


def test_a_killed_new_leaves_no_half_project_and_can_be_run_again(tmp_path: Path) -> None:
    images = image_folder(tmp_path / "images", 8)
    target = tmp_path / "project"
    script = (
        "import os, signal, sys\n"
        "from segtool.core.project import Project\n"
        "real = Project._import_one\n"
        "done = []\n"
        "def one(self, file, *args):\n"
        "    if len(done) == 3:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    done.append(file)\n"
        "    return real(self, file, *args)\n"
        "Project._import_one = one\n"
        "from segtool.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, "new", str(target), "--images",
                             str(images)], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert not target.exists() or not any(target.iterdir())
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the staging folder

    result = run_cli("new", target, "--images", images, home=tmp_path)

    assert result.returncode == 0, result.stderr
    assert len(Project.open(target).image_names()) == 8
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # leftover removed


def test_add_copies_new_images_into_a_project(
    make_project: MakeProject, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(n_images=2)
    more = image_folder(tmp_path / "more", 2, first=2)  # img-2 is already in the project

    assert main(["add", str(project.root), "--images", str(more)]) == 0

    out = capsys.readouterr().out
    assert "added 1 image(s)" in out and re.search(r"skipped .*img-2\.png: .*already", out)
    assert Project.open(project.root).image_names() == ["img-1", "img-2", "img-3"]


def test_a_fifo_as_mask_gives_one_line_and_no_hang(make_project: MakeProject,
                                                    tmp_path: Path) -> None:
    project = make_project(n_images=2)
    mask = np.full((64, 64), UNLABELLED, dtype=np.uint8)
    mask[:32] = truth("img-2")[:32]
    project.save_mask("img-2", mask)
    fifo = project.mask_path("img-1")
    os.mkfifo(fifo)

    info = run_cli("info", project.root, home=tmp_path)  # a hang raises TimeoutExpired
    export = run_cli("export", project.root, "--out", tmp_path / "out", home=tmp_path)

    assert info.returncode == 0 and "Traceback" not in info.stderr
    assert export.returncode == 0 and re.search(r"skipped img-1: .*FIFO", export.stdout)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["img-2.png"]
    train = run_cli("train", project.root, "--max-seconds", "1", home=tmp_path)
    assert train.returncode == 1 and "Traceback" not in train.stderr
    assert len(error_lines(train.stderr)) == 1 and f"{fifo}: is a FIFO" in train.stderr


def test_a_full_disk_names_the_file_being_written(
    make_project: MakeProject, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno

    project = make_project(n_images=1)
    mask = np.full((64, 64), UNLABELLED, dtype=np.uint8)
    mask[:8] = 1
    project.save_mask("img-1", mask)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "out"

    assert main(["export", str(project.root), "--out", str(out)]) == 1

    lines = error_lines(capsys.readouterr().err)
    assert lines == [f"segtool: error: {out / 'img-1.png'}: No space left on device"]
    assert not list(out.iterdir())  # no temporary file left
