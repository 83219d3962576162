"""Reading every supported format, the header-first pixel guard, and broken files."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from segtool.core import images
from segtool.core.errors import SegtoolError
from segtool.core.images import image_info, read_image

RNG = np.random.default_rng(7)
GRAY8 = RNG.integers(0, 256, (24, 40), dtype=np.uint8)
RGB8 = RNG.integers(0, 256, (24, 40, 3), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, (24, 40), dtype=np.uint16)
RGB16 = RNG.integers(0, 65536, (24, 40, 3), dtype=np.uint16)


def write_cv2(path: Path, array: np.ndarray) -> Path:
    """Write an RGB(A) or gray array with OpenCV (which wants BGR)."""
    if array.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR
        array = cv2.cvtColor(array, code)
    ok, buffer = cv2.imencode(path.suffix, array)
    assert ok
    path.write_bytes(buffer.tobytes())
    return path


def write_dicom(path: Path, pixels: np.ndarray, slope: float = 1.0, intercept: float = 0.0) -> Path:
    """A minimal CT-like DICOM file: uint16 pixels (frames, H, W) or (H, W)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "CT"
    dataset.Rows, dataset.Columns = pixels.shape[-2:]
    if pixels.ndim == 3:
        dataset.NumberOfFrames = pixels.shape[0]
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 0
    dataset.RescaleSlope = slope
    dataset.RescaleIntercept = intercept
    dataset.PixelData = pixels.astype(np.uint16).tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return path


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares ``width`` x ``height`` 8-bit gray pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\0" * 1000)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
    path.write_bytes(png + chunk(b"IEND", b""))
    return path


# --- every format decodes to the documented shape and dtype ------------------------------


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
@pytest.mark.parametrize("array", [GRAY8, RGB8], ids=["gray8", "rgb8"])
def test_lossless_8bit_formats_round_trip_exactly(tmp_path, suffix, array):
    path = write_cv2(tmp_path / f"image{suffix}", array)
    image = read_image(path)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, array)  # RGB order, not BGR


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
@pytest.mark.parametrize("array", [GRAY16, RGB16], ids=["gray16", "rgb16"])
def test_16bit_stays_16bit(tmp_path, suffix, array):
    path = tmp_path / f"image{suffix}"
    if suffix == ".png":
        write_cv2(path, array)
    else:
        tifffile.imwrite(path, array)
    info = image_info(path)
    image = read_image(path)
    assert info.dtype == "uint16" and image.dtype == np.uint16
    np.testing.assert_array_equal(image, array)


def test_jpeg_reads_as_rgb_uint8(tmp_path):
    flat = np.zeros((32, 48, 3), dtype=np.uint8)
    flat[...] = (200, 40, 10)
    path = write_cv2(tmp_path / "photo.jpeg", flat)
    image = read_image(path)
    assert image.shape == (32, 48, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - flat).max() <= 3  # red stays red


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_alpha_is_dropped(tmp_path, suffix):
    rgba = np.dstack([RGB8, np.full(RGB8.shape[:2], 17, np.uint8)])
    path = tmp_path / f"rgba{suffix}"
    if suffix == ".png":
        write_cv2(path, rgba)
    else:
        tifffile.imwrite(path, rgba, photometric="rgb")
    assert image_info(path).channels == 3
    np.testing.assert_array_equal(read_image(path), RGB8)


def test_gray_with_alpha_png_stays_gray(tmp_path):
    path = tmp_path / "la.png"
    Image.fromarray(GRAY8).convert("LA").save(path)
    image = read_image(path)
    assert image_info(path).channels == 1
    np.testing.assert_array_equal(image, GRAY8)


def test_multipage_tiff_gives_first_page(tmp_path):
    path = tmp_path / "stack.tif"
    pages = np.stack([GRAY16, GRAY16 // 2, GRAY16 // 3])
    tifffile.imwrite(path, pages, photometric="minisblack")  # three pages
    np.testing.assert_array_equal(read_image(path), GRAY16)


def test_palette_tiff_reads_as_rgb(tmp_path):
    path = tmp_path / "palette.tif"
    colormap = np.zeros((3, 256), dtype=np.uint16)
    colormap[:, 1] = (65535, 0, 0)  # index 1 = red
    colormap[:, 2] = (0, 0, 65535)  # index 2 = blue
    indices = np.zeros((6, 8), dtype=np.uint8)
    indices[:3] = 1
    indices[3:] = 2
    tifffile.imwrite(path, indices, photometric="palette", colormap=colormap)
    image = read_image(path)
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == (255, 0, 0) and tuple(image[5, 7]) == (0, 0, 255)


def test_float_tiff_reads_as_float32(tmp_path):
    path = tmp_path / "float.tif"
    values = RNG.normal(size=(16, 20)).astype(np.float64)
    tifffile.imwrite(path, values)
    image = read_image(path)
    assert image.dtype == np.float32 and image_info(path).dtype == "float32"
    np.testing.assert_allclose(image, values, rtol=1e-6)


def test_lzw_tiff_falls_back_to_opencv(tmp_path):
    # OpenCV writes LZW; tifffile needs the optional imagecodecs package for it.
    path = write_cv2(tmp_path / "lzw.tif", RGB8)
    np.testing.assert_array_equal(read_image(path), RGB8)


def test_dicom_applies_rescale_slope_and_intercept(tmp_path):
    raw = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 3
    path = write_dicom(tmp_path / "ct.dcm", raw, slope=0.5, intercept=-1024.0)
    info = image_info(path)
    image = read_image(path)
    assert (info.width, info.height, info.channels, info.dtype) == (30, 20, 1, "float32")
    assert image.dtype == np.float32
    np.testing.assert_allclose(image, raw * 0.5 - 1024.0)


def test_multiframe_dicom_gives_first_frame(tmp_path):
    frames = np.stack([np.full((8, 10), v, np.uint16) for v in (5, 6, 7)])
    path = write_dicom(tmp_path / "frames.dcm", frames)
    np.testing.assert_array_equal(read_image(path), np.full((8, 10), 5.0, np.float32))


def test_non_ascii_paths(tmp_path):
    folder = tmp_path / "données ñ 画像"
    folder.mkdir()
    for name in ("émail 图.png", "Ünïcode.tif", "脑.dcm"):
        path = folder / name
        if path.suffix == ".png":
            write_cv2(path, RGB8)
        elif path.suffix == ".tif":
            tifffile.imwrite(path, RGB8)
        else:
            write_dicom(path, GRAY16)
        image = read_image(path)
        assert image.shape[:2] == (24, 40)


def test_png_with_wrong_suffix_still_reads(tmp_path):
    path = tmp_path / "really-a-png.jpg"
    path.write_bytes(write_cv2(tmp_path / "x.png", RGB8).read_bytes())
    np.testing.assert_array_equal(read_image(path), RGB8)


# --- the pixel-count guard reads headers only --------------------------------------------


def test_png_bomb_refused_from_header_without_decoding(tmp_path, monkeypatch):
    path = png_bomb(tmp_path / "bomb.png", 40_000, 40_000)  # 1.6e9 pixels in 1 kB

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded despite the pixel limit")

    monkeypatch.setattr(images.cv2, "imdecode", no_decoding)
    with pytest.raises(SegtoolError, match="above the limit") as caught:
        read_image(path)
    assert str(path) in str(caught.value)


def test_pillows_own_bomb_check_is_off(tmp_path):
    # 12000 x 12000 = 1.44e8: over Pillow's default warning and error thresholds, under ours.
    path = png_bomb(tmp_path / "big.png", 12_000, 12_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = image_info(path)
    assert (info.width, info.height) == (12_000, 12_000)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif", ".dcm"])
def test_max_pixels_parameter_applies_to_every_format(tmp_path, suffix, monkeypatch):
    path = tmp_path / f"image{suffix}"
    if suffix == ".dcm":
        write_dicom(path, GRAY16)
    else:
        write_cv2(path, RGB8)
    monkeypatch.setattr(images, "_cv2_decode", lambda *a: pytest.fail("decoded"))
    monkeypatch.setattr(images, "_tiff_decode", lambda *a: pytest.fail("decoded"))
    monkeypatch.setattr(images, "_dicom_decode", lambda *a: pytest.fail("decoded"))
    with pytest.raises(SegtoolError, match="40x24 = 960 pixels, above the limit of 959"):
        read_image(path, max_pixels=959)


# --- broken files raise SegtoolError naming the file and the cause ------------------------


def _truncated(tmp_path: Path, suffix: str) -> Path:
    source = tmp_path / f"whole{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(source, RGB16)
    elif suffix == ".dcm":
        write_dicom(source, GRAY16)
    else:
        write_cv2(source, RGB8)
    data = source.read_bytes()
    path = tmp_path / f"truncated{suffix}"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif", ".dcm"])
def test_truncated_files_raise_segtool_error(tmp_path, suffix):
    path = _truncated(tmp_path, suffix)
    with pytest.raises(SegtoolError) as caught:
        read_image(path)
    assert str(path) in str(caught.value)
    assert "truncated" in str(caught.value) or "damaged" in str(caught.value)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif", ".dcm"])
def test_text_renamed_as_image_raises_segtool_error(tmp_path, suffix):
    path = tmp_path / f"notes{suffix}"
    path.write_text("this is a shopping list, not an image\n" * 5)
    with pytest.raises(SegtoolError) as caught:
        image_info(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "not a" in caught.value.problem


@pytest.mark.parametrize(
    ("name", "content", "cause"),
    [
        ("empty.png", b"", "empty"),
        ("empty.dcm", b"", "empty"),
        ("movie.gif", b"GIF89a", "unsupported file type '.gif'"),
        ("no_suffix", b"data", "unsupported file type"),
    ],
)
def test_empty_and_unsupported_files(tmp_path, name, content, cause):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SegtoolError, match=cause) as caught:
        read_image(path)
    assert caught.value.path == str(path)


def test_missing_file(tmp_path):
    with pytest.raises(SegtoolError, match="file not found"):
        image_info(tmp_path / "gone.png")


def test_tiff_content_with_png_suffix_is_refused(tmp_path):
    path = tmp_path / "fake.png"
    tifffile.imwrite(path, GRAY8)
    with pytest.raises(SegtoolError, match="content is TIFF, not PNG"):
        read_image(path)
