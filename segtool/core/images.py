"""Reading images: PNG, JPEG, BMP, TIFF and DICOM, with the pixel count checked first.

Every reader looks at the file's header before decoding anything, so a file that declares
more than ``max_pixels`` pixels (a decompression bomb, or just a slide scan too big for
memory) is refused with a :class:`SegtoolError` before any pixel is allocated.

What :func:`read_image` returns:

* ``(H, W)`` for grayscale, ``(H, W, 3)`` RGB for colour; alpha is dropped.
* ``uint8`` or ``uint16`` as stored (16-bit stays 16-bit); other TIFF sample types
  (float, signed, 32-bit) become ``float32``; DICOM grayscale becomes ``float32`` with
  RescaleSlope/RescaleIntercept applied (e.g. Hounsfield units).
* The first page of a multi-page TIFF, the first frame of a multi-frame DICOM.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from segtool.core.errors import SegtoolError

log = logging.getLogger(__name__)

# Our own header check replaces Pillow's DecompressionBombWarning/Error: it names the file,
# applies the same limit to every format, and is raised before decoding.
Image.MAX_IMAGE_PIXELS = None

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm"}
)
DEFAULT_MAX_PIXELS: int = 2**28

# What third-party decoders raise on damaged input. Caught around decoder calls only and
# turned into a SegtoolError naming the file.
_DECODER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    AttributeError,
    NotImplementedError,
    RuntimeError,
    MemoryError,
    cv2.error,
)

_PILLOW_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}


@dataclass(frozen=True)
class ImageInfo:
    """What a file's header says: size, channels (1 or 3) and the dtype name read_image gives."""

    path: Path
    width: int
    height: int
    channels: int
    dtype: str

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape :func:`read_image` returns: ``(H, W)`` or ``(H, W, 3)``."""
        if self.channels == 1:
            return (self.height, self.width)
        return (self.height, self.width, self.channels)


def image_info(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Read only the header of an image file.

    Raises SegtoolError when the file is missing, empty, of an unsupported type, not a
    readable image, or declares more than ``max_pixels`` pixels (width * height).
    """
    file = Path(path)
    suffix = _check_file(file)
    try:
        if suffix in _PILLOW_FORMATS:
            info = _pillow_info(file, suffix)
        elif suffix in (".tif", ".tiff"):
            info = _tiff_info(file)
        else:
            info = _dicom_info(file)
    except SegtoolError:
        raise
    except _DECODER_ERRORS as error:
        raise SegtoolError(
            f"not a readable {_kind(suffix)} image ({_cause(error)})", file
        ) from error
    _check_pixel_count(info, max_pixels)
    return info


def read_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file into ``(H, W)`` or ``(H, W, 3)`` uint8 / uint16 / float32.

    The header is checked first (see :func:`image_info`); a broken, truncated or
    unsupported file raises SegtoolError naming the file and the cause.
    """
    info = image_info(path, max_pixels)
    suffix = info.path.suffix.lower()
    decoder: Callable[[Path], np.ndarray]
    if suffix in _PILLOW_FORMATS:
        decoder = _cv2_decode
    elif suffix in (".tif", ".tiff"):
        decoder = _tiff_decode
    else:
        decoder = _dicom_decode
    try:
        array = decoder(info.path)
    except SegtoolError:
        raise
    except MemoryError as error:
        raise SegtoolError("not enough memory to decode this image", info.path) from error
    except _DECODER_ERRORS as error:
        raise SegtoolError(
            f"cannot decode {_kind(suffix)} image, the file is damaged or truncated "
            f"({_cause(error)})",
            info.path,
        ) from error
    return _conform(array, info)


# --- file checks -------------------------------------------------------------------------


def _check_file(file: Path) -> str:
    """Check the suffix and that the file exists and is not empty; return the suffix."""
    suffix = file.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise SegtoolError(
            f"unsupported file type {suffix or '(no suffix)'!r}; supported: {supported}", file
        )
    try:
        size = file.stat().st_size
    except FileNotFoundError as error:
        raise SegtoolError("file not found", file) from error
    except OSError as error:
        raise SegtoolError(f"cannot access file ({_cause(error)})", file) from error
    if not file.is_file():
        raise SegtoolError("not a file", file)
    if size == 0:
        raise SegtoolError("file is empty (0 bytes)", file)
    return suffix


def _check_pixel_count(info: ImageInfo, max_pixels: int) -> None:
    if info.width <= 0 or info.height <= 0:
        raise SegtoolError(
            f"header declares an empty image ({info.width}x{info.height})", info.path
        )
    pixels = info.width * info.height
    if pixels > max_pixels:
        raise SegtoolError(
            f"image is {info.width}x{info.height} = {pixels:,} pixels, above the limit of "
            f"{max_pixels:,}; not decoded",
            info.path,
        )


def _kind(suffix: str) -> str:
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".dcm": "DICOM"}.get(
        suffix, suffix.lstrip(".").upper()
    )


def _cause(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# --- PNG, JPEG, BMP: Pillow header, OpenCV decode ------------------------------------------


def _pillow_info(file: Path, suffix: str) -> ImageInfo:
    expected = _PILLOW_FORMATS[suffix]
    try:
        image = Image.open(file)  # lazy: reads the header only
    except UnidentifiedImageError as error:
        raise SegtoolError(f"not a {expected} image (content not recognised)", file) from error
    with image:
        found = image.format
        width, height = image.size
        mode = image.mode
    if found not in ("PNG", "JPEG", "BMP"):
        # A PNG named .jpg decodes fine; a TIFF named .png would go to the wrong decoder.
        raise SegtoolError(f"file content is {found or 'unknown'}, not {expected}", file)
    channels = 1 if mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F") else 3
    dtype = "uint8"
    if mode.startswith("I"):
        dtype = "uint16"
    elif found == "PNG" and _png_bit_depth(file) == 16:
        dtype = "uint16"
    return ImageInfo(file, width, height, channels, dtype)


def _png_bit_depth(file: Path) -> int:
    """Bit depth from the PNG IHDR chunk (Pillow reports 16-bit RGB as 8-bit "RGB")."""
    with open(file, "rb") as handle:
        head = handle.read(26)
    return head[24] if len(head) >= 26 else 8


def _cv2_decode(file: Path) -> np.ndarray:
    data = np.fromfile(file, dtype=np.uint8)  # not cv2.imread: it fails on non-ASCII paths
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise SegtoolError("cannot decode image data; the file is damaged or truncated", file)
    return _bgr_to_rgb(array)


def _bgr_to_rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    if array.ndim == 3 and array.shape[2] == 3:
        return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    return array


# --- TIFF: tifffile, OpenCV for compressions tifffile cannot decode without imagecodecs -----

_RGB_PHOTOMETRICS = (2, 3)  # RGB, PALETTE
_GRAY_PHOTOMETRICS = (0, 1)  # MINISWHITE, MINISBLACK


def _tiff_info(file: Path) -> ImageInfo:
    with tifffile.TiffFile(file) as tif:
        if not tif.pages:
            raise SegtoolError("TIFF file holds no readable image (damaged or truncated?)", file)
        page = tif.pages[0]
        photometric = int(page.photometric)
        samples = int(page.samplesperpixel)
        extras = len(page.extrasamples)
        gray = photometric in _GRAY_PHOTOMETRICS and samples - extras <= 1
        channels = 1 if gray else 3
        dtype = _tiff_dtype(np.dtype(page.dtype) if page.dtype is not None else None)
        if photometric == 3:  # palette: colours come from the 16-bit colour map
            dtype = "uint8"
        return ImageInfo(file, int(page.imagewidth), int(page.imagelength), channels, dtype)


def _tiff_dtype(dtype: np.dtype | None) -> str:
    if dtype in (np.dtype(np.uint8), np.dtype(bool)):
        return "uint8"
    if dtype == np.dtype(np.uint16):
        return "uint16"
    return "float32"


def _tiff_decode(file: Path) -> np.ndarray:
    with tifffile.TiffFile(file) as tif:
        page = tif.pages[0]
        photometric = int(page.photometric)
        if photometric not in _RGB_PHOTOMETRICS + _GRAY_PHOTOMETRICS:
            return _cv2_decode(file)  # YCbCr, CMYK...: libtiff in OpenCV handles them
        try:
            array = page.asarray()
        except ValueError as error:
            if "imagecodecs" not in str(error):
                raise
            log.debug("%s: tifffile lacks a codec (%s), decoding with OpenCV", file, error)
            return _cv2_decode(file)
        if int(page.imagedepth) > 1:
            array = array[0]
        if int(page.planarconfig) == 2 and array.ndim == 3:  # separate planes: (S, H, W)
            array = np.moveaxis(array, 0, -1)
        if photometric == 3:
            colormap = np.asarray(page.colormap)  # (3, 2**bits) uint16
            array = np.moveaxis(colormap[:, array], 0, -1)
            return (array >> 8).astype(np.uint8) if colormap.max() > 255 else array.astype(np.uint8)
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        if photometric == 0 and array.dtype.kind in "ui":
            array = np.iinfo(array.dtype).max - array
        return array


# --- DICOM: pydicom (imported lazily: it takes a fifth of a second to import) -------------


def pydicom_module() -> Any:
    """pydicom, set not to warn while reading: scanners write values its validation
    flags (e.g. a UI with a leading zero), which are harmless to us, and its warnings would
    reach the terminal from every file of a series. Problems that matter raise."""
    import pydicom
    import pydicom.config

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    return pydicom


def _dicom_header(file: Path) -> Any:
    pydicom = pydicom_module()
    from pydicom.errors import BytesLengthException, InvalidDicomError

    try:
        return pydicom.dcmread(file, stop_before_pixels=True)
    except InvalidDicomError as error:
        raise SegtoolError("not a DICOM file (no 'DICM' file header)", file) from error
    except BytesLengthException as error:
        raise SegtoolError(f"damaged DICOM header ({error})", file) from error


def _dicom_info(file: Path) -> ImageInfo:
    dataset = _dicom_header(file)
    if "Rows" not in dataset or "Columns" not in dataset:
        raise SegtoolError("DICOM file holds no image (no Rows/Columns)", file)
    samples = int(dataset.get("SamplesPerPixel", 1))
    channels = 1 if samples == 1 else 3
    if channels == 1:
        dtype = "float32"
    else:
        dtype = "uint8" if int(dataset.get("BitsAllocated", 8)) <= 8 else "uint16"
    return ImageInfo(file, int(dataset.Columns), int(dataset.Rows), channels, dtype)


def _dicom_decode(file: Path) -> np.ndarray:
    header = _dicom_header(file)
    frames = int(header.get("NumberOfFrames", 1) or 1)
    array = _dicom_pixels(file, frames)
    if int(header.get("SamplesPerPixel", 1)) != 1:
        return array
    slope = float(header.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(header.get("RescaleIntercept", 0.0) or 0.0)
    image = array.astype(np.float32)
    if slope != 1.0:
        image *= np.float32(slope)
    if intercept != 0.0:
        image += np.float32(intercept)
    if str(header.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        image = -image  # MONOCHROME1: high values are shown dark
    return image


def _dicom_pixels(file: Path, frames: int) -> Any:
    try:
        from pydicom.pixels import pixel_array  # pydicom >= 3: decodes only the first frame
    except ImportError:
        import pydicom

        array = pydicom.dcmread(file).pixel_array
        return array[0] if frames > 1 else array
    return pixel_array(file, index=0 if frames > 1 else None)


# --- shape and dtype as the header promised ------------------------------------------------


def _conform(array: np.ndarray, info: ImageInfo) -> np.ndarray:
    """Make the decoded array match ``info``: channel count and dtype, C-contiguous."""
    if array.shape[:2] != (info.height, info.width):
        raise SegtoolError(
            f"decoded size {array.shape[1]}x{array.shape[0]} differs from the header's "
            f"{info.width}x{info.height}",
            info.path,
        )
    if info.channels == 1 and array.ndim == 3:
        array = array[..., 0]
    elif info.channels == 3:
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        elif array.shape[2] != 3:
            array = array[..., :3] if array.shape[2] > 3 else np.repeat(array[..., :1], 3, axis=2)
    if array.dtype != np.dtype(info.dtype):
        array = array.astype(info.dtype)
    return np.ascontiguousarray(array)
