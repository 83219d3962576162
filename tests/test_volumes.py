"""Volumes in the core: import of NIfTI, DICOM series and TIFF stacks, NIfTI label volumes,
slice editing through the workspace, the journal of a volume, export and windows."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import nibabel
import numpy as np
import pytest
from pydicom.data import get_testdata_file
from store_helpers import make_format_1
from volume_helpers import ct_like, write_dicom_series, write_nifti, write_tiff_stack

from segtool.core.creation import create_project_from_folder
from segtool.core.errors import SegtoolError
from segtool.core.export import export_project
from segtool.core.project import ImageStatus, Project
from segtool.core.volumes import layout_for, read_label_volume
from segtool.core.window import CT_PRESETS, Preset, Window, auto_window
from segtool.core.workspace import Workspace


def _project(tmp_path: Path, build) -> Project:  # noqa: ANN001 - a callable filling a folder
    source = tmp_path / "source"
    source.mkdir()
    build(source)
    project, report = create_project_from_folder(tmp_path / "project", source)
    assert not report.skipped, report
    return project


# --- import ---------------------------------------------------------------------------------


def test_dicom_series_is_sorted_along_the_normal_rescaled_and_given_its_geometry(tmp_path):
    volume = ct_like(slices=6)
    files = write_dicom_series(tmp_path / "source" / "head", volume, spacing=(0.8, 0.7, 2.5),
                               origin=(-100.0, -120.0, 30.0))
    project, _ = create_project_from_folder(tmp_path / "project", tmp_path / "source")
    assert project.image_names() == ["head"]
    assert project.is_volume("head") and project.slice_count("head") == 6
    assert project.image_path("head").name == "head.nii.gz"
    decoded = project.read_volume("head")
    # Files were written in shuffled order with shuffled InstanceNumbers: the positions count.
    np.testing.assert_array_equal(decoded.array, volume)
    assert decoded.array.dtype == np.int16  # HU after slope 1 / intercept -1024
    image = nibabel.load(str(project.image_path("head")))
    # DICOM's LPS origin (-100, -120, 30) is RAS (100, 120, 30); i steps 0.7 mm to the left.
    np.testing.assert_allclose(image.affine[:3, 3], [100.0, 120.0, 30.0])
    np.testing.assert_allclose(np.diag(image.affine)[:3], [-0.7, -0.8, 2.5], atol=1e-5)
    record = project.image_record("head")
    assert record["dicom_window"] == [40.0, 400.0] and record["photometric"] == "MONOCHROME2"
    assert len(files) == 6


def test_loose_dicom_files_of_one_series_become_a_volume_and_a_single_one_stays_2d(tmp_path):
    def build(source: Path) -> None:
        write_dicom_series(source, ct_like(slices=3), prefix="chest_")
        shutil.copy(get_testdata_file("MR_small.dcm"), source / "knee.dcm")

    project = _project(tmp_path, build)
    assert sorted(project.image_names()) == ["chest", "knee"]
    assert project.is_volume("chest") and project.slice_count("chest") == 3
    assert not project.is_volume("knee")
    # A 2D DICOM's own window is its default (MR_small.dcm: centre 600, width 1600).
    assert project.window("knee") == Window(600.0, 1600.0)


def test_nifti_and_tiff_stack_are_volumes_kept_as_files(tmp_path):
    voxels = np.arange(4 * 5 * 3, dtype=np.int16).reshape(4, 5, 3)

    def build(source: Path) -> None:
        write_nifti(source / "brain.nii.gz", voxels)
        write_tiff_stack(source / "cells.tif", np.arange(2 * 6 * 7, dtype=np.uint16)
                         .reshape(2, 6, 7))
        cv2.imwrite(str(source / "photo.png"), np.zeros((8, 9), np.uint8))

    project = _project(tmp_path, build)
    assert project.slice_count("brain") == 3 and project.slice_count("cells") == 2
    assert not project.is_volume("photo")
    assert project.image_path("brain").name == "brain.nii.gz"
    brain = project.read_volume("brain").array
    # Identity (RAS) affine: shown as ITK-SNAP does, anterior up and the right on the left,
    # so the voxel array's rows and columns are both reversed on screen.
    assert brain.shape == (3, 5, 4)
    np.testing.assert_array_equal(brain[1], voxels[::-1, ::-1, 1].T)
    cells = project.read_volume("cells").array
    np.testing.assert_array_equal(cells, np.arange(84, dtype=np.uint16).reshape(2, 6, 7))
    assert Project.open(project.root).is_volume("brain")  # kept in segtool.json


def test_the_pixel_limit_counts_every_slice_before_decoding(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    write_nifti(source / "big.nii.gz", np.zeros((10, 10, 6), np.int16))  # 600 voxels
    write_dicom_series(source / "series", ct_like(slices=4, height=10, width=10))  # 400
    project = Project.create(tmp_path / "project", max_pixels=300)
    report = project.import_images(sorted(source.iterdir()))
    assert report.imported == []
    reasons = dict((path.name, reason) for path, reason in report.skipped)
    assert "600 voxels, above the limit of 300" in reasons["big.nii.gz"]
    assert "400 voxels, above the limit of 300" in reasons["series"]


def test_a_broken_nifti_is_refused_with_one_line_naming_it(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "bad.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    project = Project.create(tmp_path / "project")
    report = project.import_images([source / "bad.nii.gz"])
    assert report.imported == []
    (path, reason), = report.skipped
    assert path.name == "bad.nii.gz" and "\n" not in reason and "NIfTI" in reason


def test_slices_at_one_position_are_refused(tmp_path):
    folder = tmp_path / "source" / "twice"
    write_dicom_series(folder, ct_like(slices=2), series_uid="1.2.3.4", prefix="a")
    write_dicom_series(folder, ct_like(slices=2), series_uid="1.2.3.4", prefix="b")
    project = Project.create(tmp_path / "project")
    report = project.import_images([folder])
    (_, reason), = report.skipped
    assert "same position" in reason


def test_layouts_follow_the_radiological_convention():
    assert layout_for(np.diag([-1.0, -1.0, 1.0, 1.0])).__dict__ == {
        "transpose": False, "flip_rows": False, "flip_cols": False}  # DICOM axial
    assert layout_for(np.eye(4)).__dict__ == {
        "transpose": False, "flip_rows": True, "flip_cols": True}  # RAS axial
    coronal = np.array([[-1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])
    # i along L, j along S (down = inferior: flipped), k along the normal A-P.
    assert layout_for(coronal).__dict__ == {
        "transpose": False, "flip_rows": False, "flip_cols": False}


# --- label volumes and slice editing ----------------------------------------------------------


def _nifti_project(tmp_path: Path) -> Project:
    affine = np.array([[-0.5, 0, 0, 10], [0, 0.6, 0, -20], [0, 0, 2.0, 5], [0, 0, 0, 1]])
    voxels = np.random.default_rng(0).integers(0, 1000, (12, 10, 5)).astype(np.int16)
    return _project(tmp_path, lambda source: write_nifti(source / "ct.nii.gz", voxels, affine))


def test_painting_on_slice_k_saves_exactly_those_voxels_with_the_image_affine(tmp_path):
    project = _nifti_project(tmp_path)
    workspace = Workspace(project)
    opened = workspace.open("ct", 3)
    assert opened.z == 3 and opened.slices == 5 and opened.image.shape == (10, 12)
    opened.document.paint_segment((2, 4), (2, 4), 0.5, 1)  # one pixel: x 2, y 4
    assert workspace.save("ct")
    saved = nibabel.load(str(project.mask_path("ct")))
    assert project.mask_path("ct").name == "ct.nii.gz"
    np.testing.assert_allclose(saved.affine, nibabel.load(str(project.image_path("ct"))).affine)
    data = np.asanyarray(saved.dataobj)
    assert data.dtype == np.uint8 and data.shape == (12, 10, 5)
    labelled = np.argwhere(data != 255)
    info = project.volume_info("ct")
    assert labelled.tolist() == [list(info.layout.voxel_index(3, 4, 2, info.shape))]
    assert data[tuple(labelled[0])] == 1
    assert project.status("ct") == ImageStatus.IN_PROGRESS
    assert project.labelled_slices("ct") == 1
    np.testing.assert_array_equal(read_label_volume(project.mask_path("ct"), info)[3, 4, 2], 1)


def test_each_slice_has_its_own_undo_and_switching_keeps_the_edits(tmp_path):
    project = _nifti_project(tmp_path)
    workspace = Workspace(project)
    first = workspace.open("ct", 1).document
    first.paint_segment((1, 1), (3, 1), 1, 1)
    second = workspace.open("ct", 2).document
    second.paint_segment((5, 5), (5, 5), 1, 0)
    assert workspace.open("ct", 1).document is first  # the same slice: the same document
    second.undo()
    labels = workspace.label_volume("ct")
    assert np.all(labels[2] == 255) and np.any(labels[1] == 1)
    assert workspace.modified() == ["ct"]


def test_unsaved_volume_strokes_survive_a_kill_9(tmp_path):
    project = _nifti_project(tmp_path)
    script = textwrap.dedent(f"""
        import os, signal
        from segtool.core.project import Project
        from segtool.core.workspace import Workspace
        workspace = Workspace(Project.open({str(project.root)!r}))
        workspace.open("ct", 4).document.paint_segment((3, 3), (6, 3), 1, 1)
        workspace.open("ct", 0).document.paint_segment((0, 0), (0, 0), 0.5, 0)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], check=False)
    assert done.returncode == -signal.SIGKILL
    assert not project.mask_path("ct").exists()
    workspace = Workspace(Project.open(project.root))
    opened = workspace.open("ct")
    assert opened.journal_pending
    assert workspace.restore_journal("ct") == 2
    labels = workspace.label_volume("ct")
    assert labels[4, 3, 3:7].tolist() == [1, 1, 1, 1] and labels[0, 0, 0] == 0
    assert int(np.count_nonzero(labels[1:4] != 255)) == 0
    workspace.save("ct")
    assert not workspace.journal("ct").exists()


def test_a_label_volume_that_does_not_fit_is_set_aside(tmp_path):
    project = _nifti_project(tmp_path)
    write_nifti(project.mask_path("ct"), np.zeros((3, 3, 3), np.uint8))
    opened = Workspace(project).open("ct")
    assert "kept it as ct.nii.gz.bad-" in opened.messages[0]
    assert np.all(opened.document.mask == 255)
    labels = np.full((12, 10, 5), 255, np.uint8)
    labels[3, 4, 2] = 7  # the project has classes 0 and 1
    write_nifti(project.mask_path("ct"), labels,
                nibabel.load(str(project.image_path("ct"))).affine)
    opened = Workspace(project).open("ct")
    assert "holds class index 7" in opened.messages[0]


# --- export -------------------------------------------------------------------------------------


def test_export_nifti_png_per_slice_and_coco_per_slice(tmp_path):
    project = _nifti_project(tmp_path)
    workspace = Workspace(project)
    workspace.open("ct", 2).document.paint_segment((4, 4), (6, 4), 0.5, 1)
    workspace.open("ct", 4).document.paint_segment((1, 1), (1, 1), 0.5, 0)
    workspace.save("ct")
    info = project.volume_info("ct")

    report = export_project(project, tmp_path / "nii", "nifti")
    assert report.exported == ["ct"]
    exported = nibabel.load(str(tmp_path / "nii" / "ct.nii.gz"))
    np.testing.assert_allclose(exported.affine, info.affine)
    np.testing.assert_array_equal(np.asanyarray(exported.dataobj),
                                  np.asanyarray(nibabel.load(str(project.mask_path("ct"))).dataobj))
    export_project(project, tmp_path / "zero", "nifti", unlabelled_zero=True)
    zero = np.asanyarray(nibabel.load(str(tmp_path / "zero" / "ct.nii.gz")).dataobj)
    assert sorted(np.unique(zero).tolist()) == [0, 1, 2]  # unlabelled, class 0 -> 1, 1 -> 2

    report = export_project(project, tmp_path / "png", "index")
    assert sorted(report.exported) == ["ct_z0002", "ct_z0004"]
    png = cv2.imread(str(tmp_path / "png" / "ct_z0002.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (10, 12) and png[4, 4:7].tolist() == [1, 1, 1]
    with pytest.raises(SegtoolError, match="ct_z0002.png"):
        export_project(project, tmp_path / "png", "index")  # never over existing files

    export_project(project, tmp_path / "coco", "coco")
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert [(image["file_name"], image["slice"]) for image in coco["images"]] == [
        ("ct.nii.gz", 2), ("ct.nii.gz", 4)]


def test_deleting_a_class_remaps_label_volumes(tmp_path):
    from segtool.core.classes import delete_class

    project = _nifti_project(tmp_path)
    workspace = Workspace(project)
    workspace.open("ct", 2).document.paint_segment((4, 4), (4, 4), 0.5, 1)
    workspace.open("ct", 2).document.paint_segment((0, 0), (0, 0), 0.5, 0)
    workspace.save("ct")
    assert delete_class(project, 0) == 1
    labels = Project.open(project.root).load_mask_volume("ct")
    assert labels[2, 4, 4] == 0 and labels[2, 0, 0] == 255


# --- windows ------------------------------------------------------------------------------------


def test_ct_presets_and_auto_window():
    assert CT_PRESETS[Preset.BRAIN] == Window(40, 80)
    assert CT_PRESETS[Preset.SOFT_TISSUE] == Window(40, 400)
    assert CT_PRESETS[Preset.LUNG] == Window(-600, 1500)
    assert CT_PRESETS[Preset.BONE] == Window(500, 2000)
    assert (Window(40, 80).low, Window(40, 80).high) == (0, 80)
    window = auto_window(ct_like(), volume=True)
    assert -1010 <= window.low < window.high <= 910


def test_a_window_set_for_an_image_or_for_all_is_remembered(tmp_path):
    def build(source: Path) -> None:
        write_dicom_series(source / "a", ct_like(slices=2), window=(40.0, 400.0))
        write_dicom_series(source / "b", ct_like(slices=2), window=None)

    project = _project(tmp_path, build)
    assert project.window("a") == Window(40, 400) and project.window("b") is None
    project.set_window("b", Window(-600, 1500))
    assert Project.open(project.root).window("b") == Window(-600, 1500)
    project.set_window("a", Window(500, 2000), for_all=True)
    reopened = Project.open(project.root)
    assert reopened.window("a") == reopened.window("b") == Window(500, 2000)
    reopened.set_window("a", None, for_all=True)
    assert Project.open(project.root).window("b") == Window(-600, 1500)


def test_monochrome1_series_is_marked_to_show_inverted(tmp_path):
    project = _project(tmp_path, lambda source: write_dicom_series(
        source / "xr", ct_like(slices=2), photometric="MONOCHROME1"))
    opened = Workspace(project).open("xr")
    assert opened.invert


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_rtdose_multiframe_dicom_becomes_a_volume(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(get_testdata_file("rtdose.dcm"), source / "dose.dcm")
    project = Project.create(tmp_path / "project")
    report = project.import_images([source / "dose.dcm"])
    assert report.imported == ["dose"], report
    assert project.slice_count("dose") > 1
    assert project.read_volume("dose").array.shape[0] == project.slice_count("dose")


# --- command line: new, train, predict, export ------------------------------------------------


def test_new_train_predict_export_a_volume_from_the_command_line(tmp_path, capsys):
    from segtool.cli import main

    volume = ct_like(slices=6, height=48, width=48)
    source = tmp_path / "source"
    write_dicom_series(source / "abdomen", volume)
    cv2.imwrite(str(source / "photo.png"), np.full((40, 40), 128, np.uint8))
    root = tmp_path / "project"
    assert main(["new", str(root), "--images", str(source), "--classes", "air,body"]) == 0
    assert "with 2 image(s)" in capsys.readouterr().out
    project = Project.open(root)
    workspace = Workspace(project)
    for z in (1, 4):  # two labelled slices: air outside the body, body inside
        document = workspace.open("abdomen", z).document
        document.paint_segment((1, 1), (46, 1), 1, 0)
        document.paint_segment((10, 24), (38, 24), 2, 1)
    workspace.save("abdomen")

    assert main(["train", str(root), "--max-seconds", "60", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "is now the current model" in out

    assert main(["predict", str(root), "abdomen.nii.gz"]) == 0
    predicted = nibabel.load(str(root / "predictions" / "abdomen.nii.gz"))
    np.testing.assert_allclose(predicted.affine, project.volume_info("abdomen").affine)
    classes = np.asanyarray(predicted.dataobj)
    assert classes.shape == (48, 48, 6) and classes.max() < 2  # every voxel gets a class

    # The window's worker predicts slice by slice with progress and stops when told to.
    from segtool.ml.session import load_current_model, predict_volume

    model, sidecar = load_current_model(Project.open(root))
    done: list[tuple[int, int]] = []
    stopped = predict_volume(model, sidecar, project, "abdomen", progress=lambda *p:
                             done.append(p), cancelled=lambda: len(done) >= 2)
    assert stopped is None and done == [(1, 6), (2, 6)]

    assert main(["info", str(root)]) == 0
    assert "of them volumes: 1 (6 slices, 2 labelled)" in capsys.readouterr().out

    assert main(["export", str(root), "--out", str(tmp_path / "nii"), "--format", "nifti"]) == 0
    out = capsys.readouterr().out
    assert "exported 1 mask(s) as nifti" in out and "photo: a 2D image" in out
    assert (tmp_path / "nii" / "abdomen.nii.gz").is_file()


def test_a_stack_imported_as_2d_before_volumes_says_it_shows_one_slice(tmp_path):
    project = Project.create(tmp_path / "project")
    write_tiff_stack(project.images_dir / "old.tif", np.zeros((3, 8, 8), np.uint8))
    shutil.copy(get_testdata_file("rtdose.dcm"), project.images_dir / "dose.dcm")
    make_format_1(project.root, {"old": {"file": "old.tif", "status": "unlabelled"},
                                 "dose": {"file": "dose.dcm", "status": "unlabelled"}})
    workspace = Workspace(Project.open(project.root))
    opened = workspace.open("old")
    assert opened.image.shape == (8, 8) and opened.volume is None
    assert "shown as its first slice only" in opened.messages[0]
    assert "shown as its first slice only" in workspace.open("dose").messages[0]


def test_a_dicom_added_before_windows_were_kept_still_gets_its_own(tmp_path):
    project = Project.create(tmp_path / "project")
    shutil.copy(get_testdata_file("MR_small.dcm"), project.images_dir / "knee.dcm")
    make_format_1(project.root, {"knee": {"file": "knee.dcm", "status": "unlabelled"}})
    opened = Workspace(Project.open(project.root)).open("knee")
    assert opened.window == Window(600, 1600)


def test_label_volumes_copy_the_image_qform_and_sform(tmp_path):
    voxels = np.zeros((6, 5, 4), np.int16)
    image = nibabel.Nifti1Image(voxels, np.eye(4))
    qform = np.array([[-0.9, 0, 0, 12], [0, 0.9, 0, -8], [0, 0, 3, 1], [0, 0, 0, 1]])
    sform = qform.copy()
    sform[:3, 3] += 0.5  # a scanner that gives two slightly different geometries
    image.set_qform(qform, code=1)
    image.set_sform(sform, code=2)
    source = tmp_path / "source"
    source.mkdir()
    nibabel.save(image, str(source / "mr.nii.gz"))
    project, _ = create_project_from_folder(tmp_path / "project", source)
    workspace = Workspace(project)
    workspace.open("mr", 1).document.paint_segment((0, 0), (0, 0), 0.5, 1)
    workspace.save("mr")
    export_project(project, tmp_path / "out", "nifti")
    for path in (project.mask_path("mr"), tmp_path / "out" / "mr.nii.gz"):
        header = nibabel.load(str(path)).header
        q, q_code = header.get_qform(coded=True)
        s, s_code = header.get_sform(coded=True)
        np.testing.assert_allclose(q, qform, atol=1e-5)
        np.testing.assert_allclose(s, sform, atol=1e-5)
        assert (int(q_code), int(s_code)) == (1, 2)


def test_pydicoms_bundled_ct_series_imports_as_one_volume_in_position_order(tmp_path):
    import pydicom

    bundled = Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests"
    source = tmp_path / "source"
    shutil.copytree(bundled / "98892001" / "CT5N", source / "ct5n")  # 5 slices, 2.5 mm
    shutil.copytree(bundled / "98892003" / "MR700", source / "radial")  # rotating planes
    shutil.copytree(bundled / "77654033" / "CT2", source / "gap")  # a 200 mm gap
    shutil.copy(bundled / "77654033" / "CR1" / "6154", source / "chest.dcm")
    project, report = create_project_from_folder(tmp_path / "project", source)
    assert sorted(report.imported) == ["chest", "ct5n"], report
    reasons = {path.name: reason for path, reason in report.skipped}
    assert "not parallel" in reasons["radial"] and "unevenly spaced" in reasons["gap"]
    assert project.slice_count("ct5n") == 5 and not project.is_volume("chest")
    datasets = [pydicom.dcmread(path) for path in (source / "ct5n").iterdir()]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))  # axial: z is the normal
    expected = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
                         for ds in datasets])
    np.testing.assert_array_equal(project.read_volume("ct5n").array, expected)
    affine = project.volume_info("ct5n").affine
    np.testing.assert_allclose(affine[:3, 2], [0, 0, 2.5], atol=1e-4)  # inferior to superior
    np.testing.assert_allclose(affine[2, 3], -1.2375, atol=1e-4)  # the lowest slice first


@pytest.mark.parametrize(("name", "dtype"), [("plain.nii", "<i2"), ("swapped.nii.gz", ">i2"),
                                             ("scaled.nii.gz", "<u1")])
def test_nifti_variants_decode_to_the_same_voxels(tmp_path, name, dtype):
    voxels = np.arange(7 * 6 * 3).reshape(7, 6, 3)
    image = nibabel.Nifti1Image(voxels.astype(dtype), np.diag([-1.0, -1.0, 1.0, 1.0]))
    expected = voxels.astype(np.float64)
    if name.startswith("scaled"):
        image.header.set_slope_inter(0.5, -3.0)  # stored values scaled on reading
        expected = expected * 0.5 - 3.0
    nibabel.save(image, str(tmp_path / name))
    from segtool.core.volumes import read_volume

    decoded = read_volume(tmp_path / name).array
    assert decoded.dtype == (np.float32 if name.startswith("scaled") else np.int16)
    np.testing.assert_allclose(decoded, expected.transpose(2, 1, 0))


@pytest.mark.parametrize("shape", [(7, 6), (7, 6, 3, 1)])
def test_a_2d_or_one_time_point_nifti_is_a_volume_of_its_slices(tmp_path, shape):
    from segtool.core.volumes import read_volume

    voxels = np.arange(int(np.prod(shape)), dtype=np.int16).reshape(shape)
    write_nifti(tmp_path / "v.nii.gz", voxels, np.diag([-1.0, -1.0, 1.0, 1.0]))
    decoded = read_volume(tmp_path / "v.nii.gz").array
    three_d = voxels.reshape(7, 6, -1)
    np.testing.assert_array_equal(decoded, three_d.transpose(2, 1, 0))
