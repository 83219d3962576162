"""Model files: ``.keras`` archives saved atomically beside a JSON sidecar, loaded safely.

A ``.keras`` file is a zip holding ``config.json`` (the architecture), ``metadata.json`` and
``model.weights.h5``. Loading never runs code carried by the file: before Keras sees it,
the config is read here and refused if any object in it is a ``Lambda`` layer, a pickled
Python function (``__lambda__``) or anything from a module outside Keras; Keras then loads
it in safe mode, which refuses the same things again.

The sidecar ``models/<stem>.json`` (classes, channels, normalisation, metrics...) is read and
written by the helpers in :mod:`segtool.core.models` so the GUI can list models without
TensorFlow.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from segtool.core.atomic import atomic_write_text, named_error, process_umask
from segtool.core.errors import SegtoolError
from segtool.core.models import read_sidecar, sidecar_path
from segtool.ml.backend import keras

__all__ = ["load_model", "read_sidecar", "save_model", "sidecar_path"]

log = logging.getLogger(__name__)

MODEL_SUFFIX = ".keras"
MAX_CONFIG_BYTES = 16 * 2**20
"""A model's config.json is tens of kilobytes; anything this big is not a segtool model."""
MAX_ARCHIVE_BYTES = 4 * 2**30
"""Uncompressed size of all files in a .keras zip (a U-Net of 100M parameters is 400 MB)."""
MAX_COMPRESSION_RATIO = 200
"""Weights barely compress; a large member shrunk more than this is a zip bomb."""
MAX_PARAMETERS = 10**9
"""Upper estimate of a model's parameters from its config; segtool's U-Nets have < 50M."""

_ALLOWED_MODULE_ROOT = "keras"
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/=\s]{32,}")
_MARSHALLED_CODE_FIRST_BYTES = (0x63, 0xE3)
"""``marshal.dumps(code)`` starts with TYPE_CODE ``'c'``, with or without FLAG_REF."""


def save_model(model: keras.Model, path: str | os.PathLike[str], sidecar: dict) -> None:
    """Save ``model`` to ``path`` (a ``.keras`` file) and ``sidecar`` to ``<stem>.json``.

    Both writes are atomic: the model goes to a temporary ``.keras`` file in the same folder
    (Keras insists on the suffix), is flushed to disk and renamed over ``path``; the sidecar
    is then written with :func:`segtool.core.atomic.atomic_write_text`. A failure of the
    model's write leaves any previous file at ``path`` untouched, one of the sidecar's
    removes the new model (unusable without it); neither leaves a temporary file behind.

    Raises:
        ValueError: ``path`` does not end in ``.keras``, or ``sidecar`` is not JSON-serialisable.
        OSError: the disk is full or the folder not writable; it names ``path``.
    """
    target = Path(path)
    if target.suffix.lower() != MODEL_SUFFIX:
        raise ValueError(f"model files end in {MODEL_SUFFIX}, got {target.name!r}")
    try:
        sidecar_text = json.dumps(sidecar, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"sidecar is not plain JSON: {error}") from error
    fd, temporary = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".tmp{MODEL_SUFFIX}", dir=target.parent
    )
    os.fchmod(fd, 0o666 & ~process_umask())  # mkstemp's 0600 would hide it from the group
    os.close(fd)
    try:
        model.save(temporary, overwrite=True)
        _fsync_file(temporary)
        os.replace(temporary, target)
        _fsync_directory(target.parent)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if (isinstance(error, OSError) and error.errno is not None
                and error.filename != os.fspath(target)):
            raise named_error(error, target) from error  # the file the user knows
        raise
    try:
        atomic_write_text(sidecar_path(target), sidecar_text + "\n")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)  # a model without its sidecar is of no use to anyone
        raise
    log.info("saved model %s", target)


def load_model(
    path: str | os.PathLike[str], num_classes: int | None = None, channels: int | None = None
) -> tuple[keras.Model, dict]:
    """Load a ``.keras`` model safely and check that it fits the project.

    Args:
        path: the ``.keras`` file.
        num_classes: when given, the model's output must have this many classes.
        channels: when given, the model's input must have this many channels.

    Returns:
        The model (uncompiled; it outputs (B, H, W, classes) logits) and its sidecar dict
        (``{}`` when there is no sidecar file).

    Raises:
        SegtoolError naming the file: not a ``.keras`` file, missing, corrupt, carrying code
        (a Lambda layer, a pickled function, a non-Keras module), not an image-to-classes
        model, the wrong number of classes or channels, or a malformed sidecar.
    """
    source = Path(path)
    if source.suffix.lower() != MODEL_SUFFIX:
        raise SegtoolError(
            f"not a {MODEL_SUFFIX} model file (legacy .h5 and SavedModel formats are not "
            "loaded: they can carry code)",
            source,
        )
    if not source.is_file():
        raise SegtoolError("model file not found", source)
    config = _read_config(source)
    problem = _code_in_config(config)
    if problem is not None:
        raise SegtoolError(f"refused: the model carries code ({problem})", source)
    parameters = estimate_parameters(config)
    if parameters > MAX_PARAMETERS:
        raise SegtoolError(f"refused: the model declares about {parameters:.3g} parameters, far "
                           f"beyond a U-Net (at most {MAX_PARAMETERS:.0e} are loaded)", source)
    try:
        # safe_mode refuses Lambda layers and pickled functions a second time.
        model = keras.saving.load_model(str(source), safe_mode=True, compile=False)
    except Exception as error:  # Keras raises many types for a damaged archive.
        raise SegtoolError(f"cannot load model: {_first_line(error)}", source) from error
    _check_shapes(model, source, num_classes, channels)
    sidecar = read_sidecar(source) if sidecar_path(source).exists() else {}
    return model, sidecar


def _read_config(source: Path) -> dict:
    """The parsed ``config.json`` of a ``.keras`` zip, after checking the archive's CRCs."""
    try:
        with zipfile.ZipFile(source) as archive:
            _check_declared_sizes(archive, source)  # before anything is decompressed
            damaged = archive.testzip()
            if damaged is not None:
                raise SegtoolError(f"corrupt model file (bad checksum in {damaged})", source)
            try:
                info = archive.getinfo("config.json")
            except KeyError:
                raise SegtoolError("not a Keras model (no config.json inside)", source) from None
            if info.file_size > MAX_CONFIG_BYTES:
                raise SegtoolError("not a segtool model (config.json is too large)", source)
            text = archive.read(info).decode("utf-8")
    except (zipfile.BadZipFile, EOFError, OSError, UnicodeDecodeError, RuntimeError) as error:
        raise SegtoolError(f"corrupt model file ({_first_line(error)})", source) from error
    try:
        config = json.loads(text)
    except RecursionError:
        raise SegtoolError("corrupt model file (config.json is nested too deeply)",
                           source) from None
    except json.JSONDecodeError as error:
        raise SegtoolError(f"corrupt model file (config.json: {error})", source) from error
    if not isinstance(config, dict):
        raise SegtoolError("corrupt model file (config.json is not an object)", source)
    return config


def _check_declared_sizes(archive: zipfile.ZipFile, source: Path) -> None:
    """Refuse a zip whose members declare too much data or compress like a zip bomb."""
    total = 0
    for info in archive.infolist():
        total += info.file_size
        if info.file_size > 2**20 and info.file_size > MAX_COMPRESSION_RATIO * max(
                info.compress_size, 1):
            raise SegtoolError(f"refused: {info.filename} inside unpacks {info.file_size:,} "
                               f"bytes from {info.compress_size:,} (a zip bomb?)", source)
    if total > MAX_ARCHIVE_BYTES:
        raise SegtoolError(f"refused: the archive unpacks to {total:,} bytes, more than any "
                           "segtool model", source)


def estimate_parameters(config: dict) -> int:
    """An upper estimate of the weights a Keras config declares, without building it.

    Each layer with ``filters`` (convolutions) counts ``kernel area x filters x 2 filters``
    (a U-Net layer takes at most twice its own filters in), each with ``units`` (dense)
    ``units x 2 units``, each with ``input_dim``/``output_dim`` (embeddings) their product.
    Generous for real U-Nets; absurd declarations come out absurd.
    """
    total = 0
    for node in _json_nodes(config):
        if not isinstance(node, dict):
            continue
        filters = _whole(node.get("filters"))
        if filters:
            kernel = node.get("kernel_size", 1)
            sides = kernel if isinstance(kernel, list) else [kernel]
            area = 1
            for side in sides:
                area *= max(_whole(side), 1)
            total += area * filters * 2 * filters
        units = _whole(node.get("units"))
        total += units * 2 * units
        total += _whole(node.get("input_dim")) * _whole(node.get("output_dim"))
    return total


def _whole(value: object) -> int:
    """``value`` if it is a positive whole number (as JSON gives one), else 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return int(value) if value > 0 and value == int(value) else 0


def _code_in_config(config: dict) -> str | None:
    """A description of the first code-carrying object in ``config``, or None.

    Refused: ``Lambda`` layers, ``__lambda__`` objects, base64 strings holding marshalled
    Python bytecode (how Keras stores a function), and objects or functions whose
    ``module`` is not Keras's own.
    """
    for node in _json_nodes(config):
        if isinstance(node, str):
            if _is_marshalled_code(node):
                return "a serialised Python function"
            continue
        if not isinstance(node, dict):
            continue
        class_name = node.get("class_name")
        if class_name == "Lambda":
            layer_config = node.get("config")
            name = layer_config.get("name") if isinstance(layer_config, dict) else None
            return f"Lambda layer {name!r}" if name else "a Lambda layer"
        if class_name == "__lambda__" or "__lambda__" in node:
            return "a serialised Python function"
        module = node.get("module")
        if isinstance(module, str) and not _is_keras_module(module):
            return f"{class_name!r} from module {module!r}"
    return None


def _is_marshalled_code(text: str) -> bool:
    if not _BASE64_BLOB.fullmatch(text):
        return False
    try:
        raw = base64.b64decode(text)
    except (binascii.Error, ValueError):
        return False
    return bool(raw) and raw[0] in _MARSHALLED_CODE_FIRST_BYTES


def _is_keras_module(module: str) -> bool:
    return module == _ALLOWED_MODULE_ROOT or module.startswith(_ALLOWED_MODULE_ROOT + ".")


def _json_nodes(node: object) -> Iterator[object]:
    """Every value nested anywhere in a JSON value (dicts, lists, strings...), depth first."""
    stack = [node]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_shapes(
    model: object, source: Path, num_classes: int | None, channels: int | None
) -> None:
    """SegtoolError unless ``model`` maps (B, H, W, C) images to (B, H, W, K) class scores."""
    if not isinstance(model, keras.Model):
        raise SegtoolError("not a Keras model", source)
    try:
        input_shape = tuple(model.input_shape)
        output_shape = tuple(model.output_shape)
    except (AttributeError, ValueError, TypeError) as error:
        raise SegtoolError("not a single-input, single-output model", source) from error
    if len(input_shape) != 4 or len(output_shape) != 4:
        raise SegtoolError(
            f"not an image segmentation model (input {input_shape}, output {output_shape})",
            source,
        )
    if any(side is not None for side in input_shape[1:3]):
        raise SegtoolError(
            f"model only takes {input_shape[1]}x{input_shape[2]} images (segtool models take "
            "any size)",
            source,
        )
    if channels is not None and input_shape[-1] != channels:
        raise SegtoolError(
            f"model expects {input_shape[-1]}-channel images, the project has {channels}",
            source,
        )
    if num_classes is not None and output_shape[-1] != num_classes:
        raise SegtoolError(
            f"model predicts {output_shape[-1]} classes, the project has {num_classes}", source
        )


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(folder: Path) -> None:
    """Make a rename in ``folder`` durable where the platform can sync a directory."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        _fsync_file(str(folder))


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:200]
