"""Small volumes made in the tests: NIfTI (nibabel), DICOM series (pydicom), TIFF stacks."""

from __future__ import annotations

from pathlib import Path

import nibabel
import numpy as np
import tifffile
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ct_like(slices: int = 5, height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    """A (Z, H, W) int16 volume in HU: air -1000 around a soft-tissue body with a bone."""
    rng = np.random.default_rng(seed)
    volume = np.full((slices, height, width), -1000, np.int16)
    volume[:, 4:-4, 4:-4] = 40
    volume[:, height // 2 - 2 : height // 2 + 2, width // 2 - 3 : width // 2 + 3] = 900
    return volume + rng.integers(-5, 6, volume.shape).astype(np.int16)


def write_nifti(path: Path, voxels: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """``voxels`` (I, J, K) as a NIfTI file (``.nii`` or ``.nii.gz`` by the name)."""
    image = nibabel.Nifti1Image(voxels, np.eye(4) if affine is None else affine)
    nibabel.save(image, str(path))
    return path


def write_dicom_series(
    folder: Path,
    volume: np.ndarray,
    spacing: tuple[float, float, float] = (0.8, 0.7, 2.5),
    origin: tuple[float, float, float] = (-100.0, -120.0, 30.0),
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    slope: float = 1.0,
    intercept: float = -1024.0,
    window: tuple[float, float] | None = (40.0, 400.0),
    photometric: str = "MONOCHROME2",
    shuffle: bool = True,
    series_uid: str | None = None,
    prefix: str = "slice",
) -> list[Path]:
    """Write ``volume`` ((Z, rows, cols) values after rescale) as a CT series, one file per
    slice, slice k at ``origin + k * spacing[2] * normal``; files named in shuffled order."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = series_uid or generate_uid()
    study = generate_uid()
    row_direction = np.array(orientation[:3])
    column_direction = np.array(orientation[3:])
    normal = np.cross(row_direction, column_direction)
    order = np.random.default_rng(1).permutation(len(volume)) if shuffle else range(len(volume))
    # Signed pixels (PixelRepresentation 1) when stored values go below 0, as on scanners.
    signed = bool(np.round((float(volume.min()) - intercept) / slope) < 0)
    files = []
    for name_index, k in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = uid
        ds.SeriesNumber = 3
        ds.InstanceNumber = int(name_index) + 1  # deliberately not the slice order
        ds.Modality = "CT"
        ds.PatientName = "Test^Volume"
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.PixelSpacing = [spacing[0], spacing[1]]
        ds.SliceThickness = spacing[2]
        ds.ImageOrientationPatient = list(orientation)
        position = np.array(origin) + int(k) * spacing[2] * normal
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        stored_values = np.round((volume[k].astype(np.float64) - intercept) / slope)
        ds.PixelRepresentation = 1 if signed else 0
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
        stored = stored_values.astype(np.int16 if signed else np.uint16)
        ds.PixelData = stored.tobytes()
        path = folder / f"{prefix}{name_index:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def write_tiff_stack(path: Path, volume: np.ndarray) -> Path:
    """``volume`` (Z, H, W) as a multi-page TIFF, one page per slice."""
    tifffile.imwrite(path, volume, photometric="minisblack")
    return path
