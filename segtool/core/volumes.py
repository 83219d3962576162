"""Volumes: NIfTI files and multi-page TIFF stacks, read as slices, with their geometry.

A volume on disk is a voxel array ``(I, J, K[, C])`` and an affine mapping voxel indices to
world millimetres in RAS (NIfTI's convention). In memory segtool keeps it in *view layout*
``(Z, H, W[, C])``: ``Z`` runs along the acquired axis (the third voxel axis), and each slice
is oriented as ITK-SNAP and 3D Slicer show it (axial: anterior up, the patient's right on the
screen's left; coronal: superior up, right on the left; sagittal: superior up, anterior on the
left). :class:`Layout` records the transposition and flips that lead from one to the other,
so label volumes are written back voxel for voxel in the image's own geometry.

A multi-page TIFF has no geometry: its pages are slices, shown as stored, and its masks get
an affine that says just that (DICOM's LPS identity, in RAS ``diag(-1, -1, 1)``).

nibabel and tifffile read headers first: the voxel count is checked against the pixel limit
before anything is decoded.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from segtool.core.atomic import atomic_writer
from segtool.core.errors import SegtoolError
from segtool.core.files import read_regular_bytes
from segtool.core.images import DEFAULT_MAX_PIXELS

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")
TIFF_SUFFIXES = (".tif", ".tiff")
# A TIFF stack's masks: pages shown as stored are LPS-aligned, i.e. RAS diag(-1, -1, 1).
TIFF_AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0])
_LPS = np.array([-1.0, -1.0, 1.0])  # RAS <-> LPS: x and y change sign
_READ_CHUNK = 1 << 24  # bytes decompressed at a time into a volume's array

# Screen right and screen down, in LPS, for a slice whose normal is mostly along L, P or S.
_SCREEN_AXES = {
    0: (np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])),  # sagittal
    1: (np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])),  # coronal
    2: (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])),  # axial
}


def split_name(name: str) -> tuple[str, str]:
    """``("ct", ".nii.gz")`` for ``"ct.nii.gz"``; other names split at their last dot."""
    lowered = name.lower()
    for suffix in NIFTI_SUFFIXES:
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    path = Path(name)
    return path.stem, path.suffix


def is_nifti(path: str | os.PathLike[str]) -> bool:
    """True for ``.nii`` and ``.nii.gz`` names."""
    return split_name(Path(path).name)[1].lower() in NIFTI_SUFFIXES


@dataclass(frozen=True)
class Layout:
    """How voxel axes ``(I, J, K)`` become view axes ``(Z, rows, cols)``.

    Without ``transpose`` rows follow J and columns I; with it, rows follow I and columns J.
    ``flip_rows``/``flip_cols`` reverse the view's rows/columns after that.
    """

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    def to_view(self, voxels: np.ndarray) -> np.ndarray:
        """``(I, J, K[, C])`` -> ``(Z, H, W[, C])``; a view of ``voxels`` where possible."""
        extra = tuple(range(3, voxels.ndim))
        order = (2, 0, 1) if self.transpose else (2, 1, 0)
        view = voxels.transpose(order + extra)
        if self.flip_rows:
            view = view[:, ::-1]
        if self.flip_cols:
            view = view[:, :, ::-1]
        return view

    def to_voxels(self, view: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_view`: ``(Z, H, W[, C])`` -> ``(I, J, K[, C])``."""
        if self.flip_rows:
            view = view[:, ::-1]
        if self.flip_cols:
            view = view[:, :, ::-1]
        extra = tuple(range(3, view.ndim))
        order = (1, 2, 0) if self.transpose else (2, 1, 0)
        return view.transpose(order + extra)

    def voxel_index(self, z: int, row: int, col: int, shape_zhw: tuple[int, int, int]
                    ) -> tuple[int, int, int]:
        """The voxel ``(i, j, k)`` shown at ``(row, col)`` of slice ``z``."""
        _, height, width = shape_zhw
        row = height - 1 - row if self.flip_rows else row
        col = width - 1 - col if self.flip_cols else col
        return (row, col, z) if self.transpose else (col, row, z)


def layout_for(affine: np.ndarray) -> Layout:
    """The radiological display layout of a volume with this RAS ``affine`` (4x4)."""
    directions = [np.asarray(affine[:3, axis], dtype=float) * _LPS for axis in range(3)]
    normal = np.cross(directions[0], directions[1])
    if not np.any(normal):
        normal = directions[2]
    right, down = _SCREEN_AXES[int(np.argmax(np.abs(normal)))]
    on_right = [abs(float(np.dot(d, right))) for d in directions[:2]]
    col_axis = 1 if on_right[1] > on_right[0] else 0
    row_axis = 1 - col_axis
    return Layout(
        transpose=col_axis == 1,
        flip_rows=float(np.dot(directions[row_axis], down)) < 0,
        flip_cols=float(np.dot(directions[col_axis], right)) < 0,
    )


@dataclass(frozen=True)
class VolumeInfo:
    """What a volume's header says: slices, slice size, channels, dtype name, geometry."""

    path: Path
    slices: int
    height: int
    width: int
    channels: int
    dtype: str
    affine: np.ndarray
    layout: Layout
    # A NIfTI's own qform and sform with their codes, copied into its label volumes so that
    # a reader preferring either one (ITK prefers the qform, nibabel the sform) overlays
    # them exactly; None: both are ``affine`` (TIFF stacks).
    forms: tuple[tuple[np.ndarray | None, int], tuple[np.ndarray | None, int]] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The view-layout shape: ``(Z, H, W)`` or ``(Z, H, W, C)``."""
        base = (self.slices, self.height, self.width)
        return base if self.channels == 1 else (*base, self.channels)

    @property
    def voxels(self) -> int:
        return self.slices * self.height * self.width


@dataclass
class Volume:
    """A decoded volume: ``array`` in view layout ``(Z, H, W[, C])`` and its header info."""

    array: np.ndarray
    info: VolumeInfo


# --- which files are volumes ----------------------------------------------------------------


def is_volume_file(path: str | os.PathLike[str]) -> bool:
    """True for NIfTI files and TIFFs of more than one page of the same size (a stack).

    Reads at most the TIFF's page headers; a file that cannot be read is not a volume (the
    2D reader will say what is wrong with it).
    """
    file = Path(path)
    if is_nifti(file):
        return True
    if file.suffix.lower() not in TIFF_SUFFIXES:
        return False
    try:
        return _tiff_stack_pages(file) > 1
    except (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError):
        return False


def _tiff_stack_pages(file: Path) -> int:
    """Pages in a TIFF stack (1 unless there are several pages/planes of one size)."""
    with tifffile.TiffFile(file) as tif:
        series = tif.series
        if not series:
            return 0
        shape = tuple(series[0].shape)
        axes = series[0].axes
        if "Z" in axes or "I" in axes or "Q" in axes:
            depth_axis = next(i for i, a in enumerate(axes) if a in "ZIQ")
            return int(shape[depth_axis])
        pages = tif.pages
        if len(pages) < 2:
            return 1
        first = pages[0].shape  # a thumbnail or a pyramid level is no slice: a 2D image
        return len(pages) if all(page.shape == first for page in pages) else 1


# --- headers ----------------------------------------------------------------------------------


def volume_info(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> VolumeInfo:
    """Read a volume's header: shape, dtype, geometry; checks the voxel count (all slices).

    SegtoolError naming the file when it is missing, not a volume, or too big.
    """
    file = Path(path)
    if not file.is_file():
        raise SegtoolError("file not found" if not file.exists() else "not a file", file)
    try:
        info = _nifti_info(file) if is_nifti(file) else _tiff_stack_info(file)
    except SegtoolError:
        raise
    except (OSError, ValueError, EOFError, KeyError, IndexError, TypeError, RuntimeError,
            gzip.BadGzipFile) as error:
        kind = "NIfTI" if is_nifti(file) else "TIFF"
        raise SegtoolError(f"not a readable {kind} volume ({type(error).__name__}: "
                           f"{str(error).splitlines()[0] if str(error) else ''})", file) from error
    if min(info.slices, info.height, info.width) <= 0:
        raise SegtoolError(f"header declares an empty volume {info.shape}", file)
    if info.voxels > max_pixels:
        raise SegtoolError(
            f"volume is {info.width}x{info.height}x{info.slices} = {info.voxels:,} voxels, "
            f"above the limit of {max_pixels:,}; not decoded", file)
    return info


def _nifti_image(file: Path) -> Any:
    import nibabel
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    try:
        return nibabel.load(str(file))
    except (ImageFileError, HeaderDataError) as error:
        raise SegtoolError(f"not a readable NIfTI volume ({error})", file) from error


def _nifti_info(file: Path) -> VolumeInfo:
    image = _nifti_image(file)
    shape = tuple(int(n) for n in image.shape)
    if len(shape) < 2:
        raise SegtoolError(f"NIfTI image of {len(shape)} dimension(s) is not a volume", file)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) == 2:
        shape = (*shape, 1)
    channels = 1
    if len(shape) == 4 and shape[3] == 3:
        channels = 3
    elif len(shape) > 3:
        raise SegtoolError(f"a {len(shape)}-D NIfTI image {shape} (a time series?) is not "
                           "supported; segtool reads 3-D volumes", file)
    affine = np.asarray(image.affine, dtype=float)
    layout = layout_for(affine)
    height, width = (shape[0], shape[1]) if layout.transpose else (shape[1], shape[0])
    header_dtype = np.dtype(image.get_data_dtype())
    dtype = header_dtype.name if not _scaled(image) else "float32"
    if header_dtype.kind == "f" or dtype not in ("uint8", "int8", "int16", "uint16"):
        dtype = "float32"
    forms = (image.header.get_qform(coded=True), image.header.get_sform(coded=True))
    return VolumeInfo(file, shape[2], height, width, channels, dtype, affine, layout,
                      (tuple(forms[0]), tuple(forms[1])))


def _tiff_stack_info(file: Path) -> VolumeInfo:
    with tifffile.TiffFile(file) as tif:
        pages = _tiff_stack_pages(file)
        page = tif.pages[0]
        samples = int(page.samplesperpixel) - len(page.extrasamples)
        channels = 3 if samples >= 3 else 1
        dtype = np.dtype(page.dtype) if page.dtype is not None else np.dtype(np.float32)
        name = dtype.name if dtype.name in ("uint8", "uint16") else "float32"
        return VolumeInfo(file, pages, int(page.imagelength), int(page.imagewidth), channels,
                          name, TIFF_AFFINE.copy(), Layout())


# --- decoding ---------------------------------------------------------------------------------


def read_volume(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Volume:
    """Decode a volume into view layout ``(Z, H, W[, C])`` (header checked first).

    NIfTI data keeps its stored type (int16 CT stays int16; scaled data becomes float32);
    a TIFF stack's pages are its slices.
    """
    info = volume_info(path, max_pixels)
    try:
        array = _nifti_view(info) if is_nifti(info.path) else _tiff_view(info)
    except SegtoolError:
        raise
    except MemoryError as error:
        raise SegtoolError("not enough memory to decode this volume", info.path) from error
    except (OSError, ValueError, EOFError, KeyError, IndexError, TypeError, RuntimeError,
            gzip.BadGzipFile) as error:
        raise SegtoolError(f"cannot decode the volume, the file is damaged or truncated "
                           f"({type(error).__name__}: {error})", info.path) from error
    if array.shape != info.shape:
        raise SegtoolError(f"decoded volume {array.shape} differs from its header's "
                           f"{info.shape}", info.path)
    return Volume(array, info)


def _nifti_view(info: VolumeInfo) -> np.ndarray:
    image = _nifti_image(info.path)
    if not _scaled(image):
        data = _read_voxels(info.path, image)  # straight into the array: no second copy
    else:
        data = np.asanyarray(image.dataobj)
    rows_cols = (info.height, info.width) if info.layout.transpose else (info.width, info.height)
    channels = (info.channels,) if info.channels > 1 else ()
    data = data.reshape((*rows_cols, info.slices, *channels), order="A")  # (X, Y) gains Z
    if data.dtype.name != info.dtype:
        data = data.astype(info.dtype)
    view = info.layout.to_view(data)
    # Slices contiguous in memory: a slice switch then costs a view, not a copy.
    return np.ascontiguousarray(view)


def _scaled(image: Any) -> bool:
    """True when the stored values are scaled on reading (scl_slope/scl_inter; nibabel keeps
    them on the array proxy, not in the loaded header)."""
    slope = float(getattr(image.dataobj, "slope", 1.0))
    inter = float(getattr(image.dataobj, "inter", 0.0))
    return (slope, inter) != (1.0, 0.0)


def _read_voxels(file: Path, image: Any) -> np.ndarray:
    """The unscaled voxels of a NIfTI file, decompressed straight into their array (nibabel
    would hold the decompressed bytes and the array at once: twice the volume's memory)."""
    header = image.header
    dtype = np.dtype(header.get_data_dtype())
    shape = tuple(int(n) for n in image.shape)
    flat = np.empty(int(np.prod(shape)), dtype=dtype)
    buffer = memoryview(flat).cast("B")
    opener = gzip.open if file.name.lower().endswith(".gz") else open
    with opener(file, "rb") as handle:
        # The proxy knows where the voxels start (a single file's header may say 0).
        handle.seek(int(getattr(image.dataobj, "offset", header.get_data_offset())))
        filled = 0
        while filled < len(buffer):
            # In pieces: GzipFile.readinto reads into a temporary of the size asked for.
            count = handle.readinto(buffer[filled : filled + _READ_CHUNK])
            if not count:
                raise EOFError(f"the voxel data ends after {filled:,} of {len(buffer):,} bytes")
            filled += count
    if not dtype.isnative:
        flat = flat.astype(dtype.newbyteorder("="))
    return flat.reshape(shape, order="F")


def _tiff_view(info: VolumeInfo) -> np.ndarray:
    array = tifffile.imread(info.path)
    array = array.reshape((info.slices, info.height, info.width, -1))
    if info.channels == 1:
        array = array[..., 0]
    else:
        array = array[..., :3]
    return np.ascontiguousarray(array.astype(info.dtype, copy=False))


# --- label volumes ----------------------------------------------------------------------------


def encode_label_volume(labels: np.ndarray, info: VolumeInfo) -> bytes:
    """``labels`` ((Z, H, W) uint8, view layout) as gzipped NIfTI-1 bytes in ``info``'s
    geometry: the image's voxel order and affine, so any NIfTI reader overlays them."""
    buffer = io.BytesIO()
    _write_nifti_gz(buffer, _label_voxels(labels, info), info.affine, b"segtool labels",
                    info.forms)
    return buffer.getvalue()


def write_label_volume(path: str | os.PathLike[str], labels: np.ndarray, info: VolumeInfo) -> None:
    """Write ``labels`` ((Z, H, W) uint8, view layout) atomically as ``.nii.gz``, compressed
    as it is written (no copy of the volume in memory)."""
    voxels = _label_voxels(labels, info)
    with atomic_writer(path, "wb") as handle:
        _write_nifti_gz(handle, voxels, info.affine, b"segtool labels", info.forms)


def _label_voxels(labels: np.ndarray, info: VolumeInfo) -> np.ndarray:
    if labels.dtype != np.uint8 or labels.shape != info.shape[:3]:
        raise ValueError(f"label volume {labels.dtype} {labels.shape} does not match the "
                         f"image's {info.shape[:3]}")
    return info.layout.to_voxels(labels)


def write_nifti_gz(path: str | os.PathLike[str], voxels: np.ndarray, affine: np.ndarray) -> None:
    """Write ``voxels`` ((I, J, K), any layout in memory) with RAS ``affine`` atomically as
    a gzipped NIfTI-1 file, streamed."""
    with atomic_writer(path, "wb") as handle:
        _write_nifti_gz(handle, voxels, affine)


def _write_nifti_gz(handle: Any, voxels: np.ndarray, affine: np.ndarray,
                    intent: bytes = b"", forms: Any = None) -> None:
    """A NIfTI-1 single file (header, then the voxels in Fortran order) gzipped into
    ``handle`` a slab at a time; qform and sform both give ``affine`` (or are ``forms``,
    a source image's own), units mm."""
    import nibabel

    header = nibabel.Nifti1Header()
    header.set_data_shape(voxels.shape)
    header.set_data_dtype(voxels.dtype)
    (qform, qcode), (sform, scode) = forms or ((affine, 1), (affine, 1))
    if qform is None and sform is None:
        qform, qcode, sform, scode = affine, 0, affine, 0  # an Analyze-style image
    header.set_qform(qform if qform is not None else affine, code=int(qcode))
    header.set_sform(sform if sform is not None else affine, code=int(scode))
    header.set_xyzt_units("mm")
    header["vox_offset"] = 352
    if intent:
        header["intent_name"] = intent
    with gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=1, mtime=0) as stream:
        stream.write(header.binaryblock + b"\0\0\0\0")  # 348 bytes, no extensions: 352
        for k in range(voxels.shape[2]):  # Fortran order: slab k after slab k - 1
            stream.write(np.ascontiguousarray(voxels[:, :, k].T).tobytes())


def read_label_volume(path: str | os.PathLike[str], info: VolumeInfo) -> np.ndarray:
    """A label volume (``.nii.gz``/``.nii``) in view layout ``(Z, H, W)`` uint8.

    SegtoolError naming the file when it is damaged, not 8-bit integers, or of another
    shape than the image ``info`` describes.
    """
    import nibabel

    file = Path(path)
    try:
        raw = read_regular_bytes(file)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        image = nibabel.Nifti1Image.from_bytes(raw)
        data = np.asanyarray(image.dataobj)
    except FileNotFoundError as error:
        raise SegtoolError("mask file not found", file) from error
    except (OSError, ValueError, EOFError, gzip.BadGzipFile, TypeError) as error:
        raise SegtoolError(f"cannot read the label volume, the file is damaged ({error})",
                           file) from error
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    if data.dtype.kind not in "ui" or (data.size and (data.min() < 0 or data.max() > 255)):
        raise SegtoolError(f"a label volume holds 8-bit class indices, found {data.dtype}", file)
    expected = info.layout.to_voxels(np.empty(info.shape[:3], np.uint8)).shape
    if data.shape != expected:
        raise SegtoolError(f"label volume is {data.shape} voxels but its image is {expected}",
                           file)
    return np.ascontiguousarray(info.layout.to_view(data.astype(np.uint8, copy=False)))
