"""The project folder: segtool.json, import, masks and statuses."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import tifffile
from store_helpers import make_format_1, plant_row, stored_records

from segtool.core.errors import SegtoolError
from segtool.core.masks import UNLABELLED
from segtool.core.project import DEFAULT_COLOURS, ClassInfo, ImageStatus, Project


def write_png(path, array):
    assert cv2.imwrite(str(path), array)
    return path


def gray(height=20, width=30, value=100):
    return np.full((height, width), value, dtype=np.uint8)


def test_create_writes_the_folder_contract(tmp_path):
    project = Project.create(tmp_path / "p", ["background", "cell", "debris"])
    for sub in ("images", "masks", "models"):
        assert (tmp_path / "p" / sub).is_dir()
    data = json.loads((tmp_path / "p" / "segtool.json").read_text())
    assert data == {
        "version": 2,
        "classes": [
            {"name": "background", "colour": list(DEFAULT_COLOURS[0])},
            {"name": "cell", "colour": list(DEFAULT_COLOURS[1])},
            {"name": "debris", "colour": list(DEFAULT_COLOURS[2])},
        ],
        "current_model": None,
    }
    assert stored_records(tmp_path / "p") == {}
    assert project.num_classes == 3


def test_default_classes_and_distinct_colours(tmp_path):
    project = Project.create(tmp_path / "p")
    assert [c.name for c in project.classes] == ["background", "foreground"]
    for _ in range(20):
        project.add_class(f"extra {_}")
    colours = [c.colour for c in project.classes]
    assert len(set(colours)) == len(colours)
    assert (0, 0, 0) not in colours  # black means unlabelled in colour exports


def test_create_refuses_an_existing_project(tmp_path):
    Project.create(tmp_path / "p")
    with pytest.raises(SegtoolError, match="already a project"):
        Project.create(tmp_path / "p")


def test_create_refuses_duplicate_or_empty_class_names(tmp_path):
    with pytest.raises(SegtoolError, match="unique"):
        Project.create(tmp_path / "a", ["cell", "Cell"])
    with pytest.raises(SegtoolError, match="empty"):
        Project.create(tmp_path / "b", ["cell", " "])


def test_open_round_trips_everything(tmp_path):
    project = Project.create(tmp_path / "p", ["bg", "fg"])
    write_png(tmp_path / "a.png", gray())
    project.import_images([tmp_path / "a.png"])
    project.add_class("edge", (1, 2, 3))
    (project.models_dir / "m.keras").write_bytes(b"model")
    project.set_current_model("m.keras")
    project.set_status("a", ImageStatus.REVIEWED)
    again = Project.open(tmp_path / "p")
    assert again.classes == [
        ClassInfo("bg", DEFAULT_COLOURS[0]),
        ClassInfo("fg", DEFAULT_COLOURS[1]),
        ClassInfo("edge", (1, 2, 3)),
    ]
    assert again.current_model == "m.keras"
    assert again.image_names() == ["a"]
    assert again.status("a") == ImageStatus.REVIEWED
    assert again.image_path("a") == tmp_path / "p" / "images" / "a.png"


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        ("{not json", "cannot read project file"),
        ("[]", "not a JSON object"),
        ('{"version": 1, "classes": []}', "'classes' must be a non-empty list"),
        ('{"version": 1, "classes": [{"name": "a", "colour": [1, 2]}]}', "three integers"),
        ('{"version": 9, "classes": [{"name": "a"}]}', "newer segtool"),
        (
            '{"version": 1, "classes": [{"name": "a"}], "images": {"x": {"file": "x.png", '
            '"status": "done"}}}',
            "status 'done'",
        ),
        (
            '{"version": 1, "classes": [{"name": "a"}], "images": {"x": {"file": "../x.png"}}}',
            "names file",
        ),
    ],
)
def test_open_malformed_project_file_names_it(tmp_path, content, cause):
    (tmp_path / "segtool.json").write_text(content)
    with pytest.raises(SegtoolError, match=cause) as caught:
        Project.open(tmp_path)
    assert caught.value.path == str(tmp_path / "segtool.json")


def test_open_a_folder_without_project(tmp_path):
    with pytest.raises(SegtoolError, match="not a segtool project"):
        Project.open(tmp_path)


def test_import_copies_images_and_lists_them_in_natural_order(tmp_path):
    project = Project.create(tmp_path / "p")
    sources = [write_png(tmp_path / f"img{n}.png", gray(value=n)) for n in (10, 2, 1)]
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((2, 8, 8), np.uint16))
    report = project.import_images([*sources, tmp_path / "stack.tif"])
    assert sorted(report.imported) == ["img1", "img10", "img2", "stack"]
    assert report.skipped == []
    assert project.image_names() == ["img1", "img2", "img10", "stack"]
    assert (project.images_dir / "img10.png").read_bytes() == sources[0].read_bytes()
    assert all(project.status(stem) == ImageStatus.UNLABELLED for stem in project.image_names())
    saved = stored_records(project.root)
    assert saved["img2"] == {"file": "img2.png", "status": "unlabelled"}


def test_import_refuses_duplicate_stems_with_a_clear_reason(tmp_path):
    project = Project.create(tmp_path / "p")
    write_png(tmp_path / "a.png", gray())
    tifffile.imwrite(tmp_path / "a.tif", gray())
    other = tmp_path / "other"
    other.mkdir()
    write_png(other / "A.png", gray())
    report = project.import_images([tmp_path / "a.png", tmp_path / "a.tif"])
    assert report.imported == ["a"]
    assert report.skipped == [
        (tmp_path / "a.tif", "an image named 'a' is already in the project (a.png)")
    ]
    later = project.import_images([other / "A.png"])  # against the project, any case
    assert later.imported == [] and "already in the project" in later.skipped[0][1]
    assert sorted(p.name for p in project.images_dir.iterdir()) == ["a.png"]


def test_import_skips_broken_files_and_leaves_nothing_behind(tmp_path):
    project = Project.create(tmp_path / "p")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty.tif").write_bytes(b"")
    (tmp_path / "doc.pdf").write_bytes(b"%PDF")
    good = write_png(tmp_path / "good.png", gray())
    data = good.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    names = ["text.png", "empty.tif", "doc.pdf", "cut.png", "good.png", "missing.png"]
    report = project.import_images([tmp_path / name for name in names])
    assert report.imported == ["good"]
    reasons = {path.name: reason for path, reason in report.skipped}
    assert reasons["text.png"] == "not a PNG image (content not recognised)"
    assert reasons["empty.tif"] == "file is empty (0 bytes)"
    assert "unsupported file type '.pdf'" in reasons["doc.pdf"]
    assert "damaged or truncated" in reasons["cut.png"]
    assert reasons["missing.png"] == "file not found"
    assert [p.name for p in project.images_dir.iterdir()] == ["good.png"]
    assert project.image_names() == ["good"]


def test_import_interrupted_mid_copy_leaves_no_partial_file(tmp_path, monkeypatch):
    project = Project.create(tmp_path / "p")
    write_png(tmp_path / "a.png", gray())
    write_png(tmp_path / "b.png", gray())

    def failing_copy(source, destination, length=0):
        destination.write(source.read(10))
        raise OSError("disk full")

    monkeypatch.setattr("segtool.core.project.shutil.copyfileobj", failing_copy)
    report = project.import_images([tmp_path / "a.png", tmp_path / "b.png"])
    assert report.imported == []
    assert [reason for _, reason in report.skipped] == [
        "could not copy into the project (disk full)"
    ] * 2
    assert list(project.images_dir.iterdir()) == []
    assert Project.open(project.root).image_names() == []


def test_import_reports_progress(tmp_path):
    project = Project.create(tmp_path / "p")
    paths = [write_png(tmp_path / f"{n}.png", gray()) for n in range(3)]
    seen = []
    project.import_images(paths, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_read_image_and_missing_mask_is_all_unlabelled(tmp_path):
    project = Project.create(tmp_path / "p")
    project.import_images([write_png(tmp_path / "a.png", gray(12, 16))])
    assert project.read_image("a").shape == (12, 16)
    mask = project.load_mask("a")
    assert mask.shape == (12, 16) and mask.dtype == np.uint8 and (mask == UNLABELLED).all()


def test_save_mask_updates_status_and_survives_reopen(tmp_path):
    project = Project.create(tmp_path / "p")
    project.import_images([write_png(tmp_path / "a.png", gray(12, 16))])
    mask = np.full((12, 16), UNLABELLED, np.uint8)
    mask[2:5, 3:9] = 1
    project.save_mask("a", mask)
    assert project.status("a") == ImageStatus.IN_PROGRESS
    assert project.mask_path("a") == project.masks_dir / "a.png"
    again = Project.open(project.root)
    assert again.status("a") == ImageStatus.IN_PROGRESS
    np.testing.assert_array_equal(again.load_mask("a", (12, 16)), mask)
    again.set_status("a", ImageStatus.REVIEWED)
    again.save_mask("a", mask)  # editing a reviewed image keeps it reviewed
    assert Project.open(project.root).status("a") == ImageStatus.REVIEWED


def test_save_mask_refuses_wrong_size_and_unknown_classes(tmp_path):
    project = Project.create(tmp_path / "p")
    project.import_images([write_png(tmp_path / "a.png", gray(12, 16))])
    with pytest.raises(SegtoolError, match="mask is 15x12 pixels but its image is 16x12"):
        project.save_mask("a", np.zeros((12, 15), np.uint8))
    with pytest.raises(SegtoolError, match="class index 5"):
        project.save_mask("a", np.full((12, 16), 5, np.uint8))
    assert not project.mask_path("a").exists()


def test_load_mask_checks_against_image_shape(tmp_path):
    project = Project.create(tmp_path / "p")
    project.import_images([write_png(tmp_path / "a.png", gray(12, 16))])
    write_png(project.mask_path("a"), np.zeros((10, 10), np.uint8))  # edited by hand
    with pytest.raises(SegtoolError, match="mask is 10x10") as caught:
        project.load_mask("a", (12, 16))
    assert caught.value.path == str(project.mask_path("a"))


def test_add_class_refuses_duplicates(tmp_path):
    project = Project.create(tmp_path / "p", ["bg", "cell"])
    assert project.add_class("edge") == 2
    with pytest.raises(SegtoolError, match="already exists"):
        project.add_class("CELL")
    assert [c.name for c in Project.open(project.root).classes] == ["bg", "cell", "edge"]


def test_set_current_model_checks_the_file(tmp_path):
    project = Project.create(tmp_path / "p")
    with pytest.raises(SegtoolError, match="model file not found"):
        project.set_current_model("missing.keras")
    with pytest.raises(ValueError):
        project.set_current_model("../elsewhere.keras")
    project.set_current_model(None)
    assert Project.open(project.root).current_model is None


def test_unknown_stem_is_a_programming_error(tmp_path):
    project = Project.create(tmp_path / "p")
    with pytest.raises(ValueError, match="no image named 'nope'"):
        project.status("nope")


def test_pixel_limit_is_a_project_setting_kept_in_segtool_json(tmp_path):
    import cv2
    import numpy as np

    from segtool.core.errors import SegtoolError

    source = tmp_path / "big.png"
    cv2.imwrite(str(source), np.zeros((40, 50), np.uint8))
    project = Project.create(tmp_path / "p", max_pixels=1000)
    report = project.import_images([source])
    assert report.imported == [] and "2,000 pixels" in report.skipped[0][1]
    reopened = Project.open(project.root)
    assert reopened.max_pixels == 1000
    reopened.max_pixels = 4000
    reopened.save()
    assert Project.open(project.root).import_images([source]).imported == ["big"]
    with pytest.raises(SegtoolError, match="max_pixels"):
        text = project.project_file.read_text().replace('"max_pixels": 4000', '"max_pixels": -1')
        project.project_file.write_text(text)
        Project.open(project.root)


HOSTILE_IMAGES = {
    "nul in the name": {"a\u0000b": {"file": "a\u0000b.png", "status": "unlabelled"}},
    "status a list": {"a": {"file": "a.png", "status": ["reviewed"]}},
    "status a number": {"a": {"file": "a.png", "status": 3}},
    "dot-dot file": {"..": {"file": "..", "status": "unlabelled"}},
    "empty name": {"": {"file": "", "status": "unlabelled"}},
}


@pytest.mark.parametrize("images", list(HOSTILE_IMAGES.values()), ids=list(HOSTILE_IMAGES))
@pytest.mark.parametrize("where", ["segtool.json", "segtool.sqlite"])
def test_hostile_image_entries_are_one_error_naming_the_file(tmp_path, images, where):
    root = tmp_path / "p"
    Project.create(root)
    if where == "segtool.json":  # a format 1 project, or one edited by hand
        make_format_1(root, images)
    else:
        for stem, entry in images.items():
            plant_row(root, stem, entry["file"], entry["status"])
    before = {path.name: path.read_bytes() for path in root.iterdir() if path.is_file()}
    kind = "project file" if where == "segtool.json" else "image store"
    with pytest.raises(SegtoolError, match=f"malformed {kind}") as error:
        Project.open(root)
    assert str(root / where) in str(error.value) and "\n" not in str(error.value)
    assert {path.name: path.read_bytes() for path in root.iterdir() if path.is_file()} == before


def test_deeply_nested_project_file_is_one_cli_line(tmp_path):
    import subprocess
    import sys

    Project.create(tmp_path / "p")
    file = tmp_path / "p" / "segtool.json"
    file.write_text('{"version": 1, "classes": ' + "[" * 100_000 + "]" * 100_000 + "}")
    result = subprocess.run([sys.executable, "-m", "segtool", "info", str(tmp_path / "p")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"segtool: error: {file}: malformed project file: nested too deeply"]


def test_deeply_nested_sidecar_is_one_warning_not_a_crash(tmp_path):
    from segtool.core.models import list_models, read_sidecar

    models = tmp_path / "models"
    models.mkdir()
    (models / "m.keras").write_bytes(b"PK")
    (models / "m.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SegtoolError, match="nested too deeply"):
        read_sidecar(models / "m.keras")
    assert list_models(models) == []


def test_read_image_changes_nothing_and_the_workspace_records_the_status(tmp_path):
    from segtool.core.workspace import Workspace

    project = Project.create(tmp_path / "p")
    project.import_images([write_png(tmp_path / "a.png", gray())])
    good = project.image_path("a").read_bytes()
    project.image_path("a").write_bytes(b"garbage")
    before = project.project_file.read_bytes()
    with pytest.raises(SegtoolError):
        project.read_image("a")  # what worker threads call: no write behind their back
    assert project.project_file.read_bytes() == before
    assert project.status("a") == ImageStatus.UNLABELLED

    workspace = Workspace(project)
    with pytest.raises(SegtoolError):
        workspace.open("a")
    assert Project.open(project.root).status("a") == ImageStatus.UNREADABLE
    project.image_path("a").write_bytes(good)
    workspace.open("a")
    assert Project.open(project.root).status("a") == ImageStatus.UNLABELLED
