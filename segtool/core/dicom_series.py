"""DICOM series: the files of one SeriesInstanceUID become one volume (a ``.nii.gz``).

Slices are sorted by their position along the slice normal (ImagePositionPatient projected
on the cross product of ImageOrientationPatient's row and column directions), not by file
name or InstanceNumber; each slice's RescaleSlope/RescaleIntercept is applied (Hounsfield
units for CT). The result is written as NIfTI with the series' geometry: DICOM's patient
coordinates are LPS, NIfTI's RAS, so x and y change sign in the affine. The series' own
window (WindowCenter/WindowWidth) and PhotometricInterpretation are returned for the
project to keep: NIfTI has no place for them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segtool.core.errors import SegtoolError
from segtool.core.images import DEFAULT_MAX_PIXELS, pydicom_module
from segtool.core.volumes import write_nifti_gz

log = logging.getLogger(__name__)

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class DicomSeries:
    """The files of one series (unsorted), where they were found and a name for the volume."""

    uid: str
    files: list[Path] = field(default_factory=list)
    name: str = ""
    frames: int = 1  # NumberOfFrames of a single multi-frame file

    @property
    def is_volume(self) -> bool:
        """Several slices (files, or frames of one file); a single frame stays a 2D image."""
        return len(self.files) > 1 or self.frames > 1


@dataclass(frozen=True)
class DisplayDefaults:
    """What a DICOM says about its display: window (level, width) and photometric."""

    window: tuple[float, float] | None
    photometric: str


def _header(file: Path) -> Any | None:
    """The DICOM header of ``file`` without pixels, or None when it is not DICOM."""
    pydicom = pydicom_module()
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(file, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, AttributeError):
        return None


def find_series(paths: Iterable[Path]) -> tuple[list[DicomSeries], list[Path]]:
    """Group DICOM files into series; returns (volumes, the other paths).

    A folder's DICOM files (found anywhere below it) are grouped by SeriesInstanceUID and
    named after the folder (plus the SeriesNumber when it holds several series); loose
    ``.dcm`` files with the same SeriesInstanceUID form a series too. A series of one
    single-frame file is not a volume: its file goes back with the other paths, as does
    every non-DICOM file.
    """
    volumes: list[DicomSeries] = []
    rest: list[Path] = []
    loose: dict[str, DicomSeries] = {}
    for path in paths:
        if path.is_dir():
            found = _series_in_folder(path)
            for series in found.values():
                if len(found) > 1:
                    series.name = f"{path.name}_{series.name}"
                else:
                    series.name = path.name
                (volumes if series.is_volume else rest).extend(
                    [series] if series.is_volume else series.files)
        elif path.suffix.lower() == ".dcm":
            header = _header(path)
            uid = str(getattr(header, "SeriesInstanceUID", "")) if header is not None else ""
            if not uid or _frames(header) > 1 or "ImagePositionPatient" not in header:
                if header is not None and _frames(header) > 1 and uid:
                    volumes.append(DicomSeries(uid, [path], path.stem, _frames(header)))
                else:
                    rest.append(path)
                continue
            series = loose.setdefault(uid, DicomSeries(uid, name=path.stem))
            series.files.append(path)
        else:
            rest.append(path)
    for series in loose.values():
        if series.is_volume:
            series.name = _common_name(series.files)
            volumes.append(series)
        else:
            rest.extend(series.files)
    return volumes, rest


def _frames(header: Any) -> int:
    try:
        return int(header.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1


def frame_count(file: Path) -> int:
    """NumberOfFrames of a DICOM file (1 when it is single-frame or not DICOM)."""
    header = _header(file)
    return 1 if header is None else _frames(header)


def _series_in_folder(folder: Path) -> dict[str, DicomSeries]:
    found: dict[str, DicomSeries] = {}
    for root, _dirs, names in os.walk(folder):
        for name in sorted(names):
            file = Path(root) / name
            if name.startswith(".") or not file.is_file():
                continue
            header = _header(file)
            if header is None or "Rows" not in header:
                continue
            uid = str(header.get("SeriesInstanceUID", "")) or f"no-uid-{file}"
            series = found.setdefault(uid, DicomSeries(
                uid, name=f"s{header.get('SeriesNumber', len(found) + 1)}",
                frames=_frames(header)))
            series.files.append(file)
    return found


def _common_name(files: list[Path]) -> str:
    prefix = os.path.commonprefix([f.stem for f in files]).rstrip("_-. 0123456789")
    return prefix or files[0].parent.name or files[0].stem


def display_defaults(header: Any) -> DisplayDefaults:
    """The window (level, width) and photometric a DICOM header gives (first of several)."""
    window = None
    try:
        centre = header.get("WindowCenter")
        width = header.get("WindowWidth")
        if centre is not None and width is not None:
            centre = centre[0] if hasattr(centre, "__len__") and not isinstance(centre, str) \
                else centre
            width = width[0] if hasattr(width, "__len__") and not isinstance(width, str) \
                else width
            if float(width) > 0:
                window = (float(centre), float(width))
    except (TypeError, ValueError, IndexError):
        window = None
    photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2"))
    return DisplayDefaults(window, photometric)


def read_display_defaults(file: Path) -> DisplayDefaults:
    """:func:`display_defaults` of a DICOM file (no window when it cannot be read)."""
    header = _header(file)
    return display_defaults(header) if header is not None else DisplayDefaults(None, "")


def series_geometry(headers: list[Any], source: Path) -> tuple[list[int], np.ndarray]:
    """The order of ``headers`` along the slice normal and the RAS affine of the volume.

    SegtoolError naming ``source`` when slices lack a position or orientation, differ in
    size or orientation, or two share one position.
    """
    try:
        orientation = np.array([float(v) for v in headers[0].ImageOrientationPatient])
        positions = np.array([[float(v) for v in h.ImagePositionPatient] for h in headers])
        spacing = [float(v) for v in headers[0].get("PixelSpacing", [1.0, 1.0])]
    except (AttributeError, TypeError, ValueError) as error:
        raise SegtoolError("DICOM series slices lack ImagePositionPatient/"
                           f"ImageOrientationPatient ({error})", source) from None
    for header in headers[1:]:
        other = np.array([float(v) for v in header.get("ImageOrientationPatient", [])])
        if other.shape != orientation.shape or not np.allclose(other, orientation, atol=1e-3):
            raise SegtoolError("the slices of the series are not parallel (different "
                               "ImageOrientationPatient: a localizer mixed in, or radial "
                               "slices?), so they make no volume", source)
    row_direction, column_direction = orientation[:3], orientation[3:]
    normal = np.cross(row_direction, column_direction)
    along = positions @ normal
    order = [int(i) for i in np.argsort(along, kind="stable")]
    sorted_along = along[order]
    gaps = np.diff(sorted_along)
    if len(order) > 1 and np.any(gaps < 1e-4):
        raise SegtoolError("two slices of the series lie at the same position "
                           "(several series or time points mixed?)", source)
    if len(gaps) > 1 and gaps.max() - gaps.min() > max(0.01, 0.05 * float(np.median(gaps))):
        raise SegtoolError(f"the slices of the series are unevenly spaced (gaps of "
                           f"{gaps.min():.3g} to {gaps.max():.3g} mm), so no one geometry "
                           "fits them; resample the series first", source)
    if len(order) > 1:
        step = (positions[order[-1]] - positions[order[0]]) / (len(order) - 1)
    else:
        thickness = float(headers[0].get("SliceThickness", 1.0) or 1.0)
        step = normal * thickness
    lps = np.eye(4)
    lps[:3, 0] = row_direction * spacing[1]  # i: along a row, one column to the next
    lps[:3, 1] = column_direction * spacing[0]  # j: down a column, one row to the next
    lps[:3, 2] = step
    lps[:3, 3] = positions[order[0]]
    return order, _LPS_TO_RAS @ lps


def convert_series(series: DicomSeries, target: Path,
                   max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, DisplayDefaults]:
    """Write ``series`` as one ``.nii.gz`` volume at ``target`` (atomically).

    Returns the slice count and the series' display defaults. The voxel count is checked
    from the headers before any pixel is decoded.
    """
    source = series.files[0].parent if len(series.files) > 1 else series.files[0]
    headers = [_header(file) for file in series.files]
    if any(h is None for h in headers):
        raise SegtoolError("a file of the series is not readable DICOM", source)
    rows, cols = int(headers[0].Rows), int(headers[0].Columns)
    slices = len(headers) * series.frames
    if any((int(h.Rows), int(h.Columns)) != (rows, cols) for h in headers):
        raise SegtoolError("slices of the series differ in size", source)
    if rows * cols * slices > max_pixels:
        raise SegtoolError(f"volume is {cols}x{rows}x{slices} = {rows * cols * slices:,} "
                           f"voxels, above the limit of {max_pixels:,}; not decoded", source)
    if int(headers[0].get("SamplesPerPixel", 1)) != 1:
        raise SegtoolError("colour DICOM series are not supported as volumes", source)
    if series.frames > 1:
        order, affine = [0], _multiframe_affine(headers[0])
    else:
        order, affine = series_geometry(headers, source)
    rescales = [(float(h.get("RescaleSlope", 1.0) or 1.0),
                 float(h.get("RescaleIntercept", 0.0) or 0.0)) for h in headers]
    integral = all(slope.is_integer() and intercept.is_integer()
                   for slope, intercept in rescales)
    # Integer HU in int16 (CT), anything else float32; a slice out of int16's range turns
    # the stack float.
    stack = np.empty((slices, rows, cols), dtype=np.int16 if integral else np.float32)
    position = 0
    for index in order:
        slope, intercept = rescales[index]
        pixels = _pixels(series.files[index]).reshape((-1, rows, cols)).astype(np.float32)
        pixels = pixels * np.float32(slope) + np.float32(intercept)
        if stack.dtype == np.int16 and (pixels.min() < -32768 or pixels.max() > 32767):
            stack = stack.astype(np.float32)
        stack[position : position + len(pixels)] = pixels
        position += len(pixels)
    write_nifti_gz(target, stack.transpose(2, 1, 0), affine)  # (K, rows, cols) -> (I, J, K)
    return slices, display_defaults(headers[len(headers) // 2])


def _pixels(file: Path) -> np.ndarray:
    pydicom = pydicom_module()

    try:
        return np.asarray(pydicom.dcmread(file).pixel_array)
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError,
            RuntimeError, NotImplementedError) as error:
        raise SegtoolError(f"cannot decode the DICOM pixels ({type(error).__name__}: {error})",
                           file) from error


def _multiframe_affine(header: Any) -> np.ndarray:
    """A multi-frame file's geometry from its functional groups; frames stacked along the
    normal one SliceThickness apart when positions are missing."""
    lps = np.eye(4)
    try:
        shared = header.SharedFunctionalGroupsSequence[0]
        orientation = [float(v) for v in
                       shared.PlaneOrientationSequence[0].ImageOrientationPatient]
        measures = shared.PixelMeasuresSequence[0]
        spacing = [float(v) for v in measures.PixelSpacing]
        thickness = float(measures.get("SpacingBetweenSlices", measures.get("SliceThickness", 1))
                          or 1.0)
        frames = header.PerFrameFunctionalGroupsSequence
        first = [float(v) for v in frames[0].PlanePositionSequence[0].ImagePositionPatient]
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return _LPS_TO_RAS @ lps
    row_direction, column_direction = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row_direction, column_direction)
    lps[:3, 0] = row_direction * spacing[1]
    lps[:3, 1] = column_direction * spacing[0]
    lps[:3, 2] = normal * thickness
    lps[:3, 3] = first
    return _LPS_TO_RAS @ lps
