"""Model files: one ``.npz`` holding W, b and JSON metadata, written atomically.

Loaded with ``allow_pickle=False``; anything that is not a well-formed
fastsoftmax model is refused with :class:`ModelFileError` naming the file.
"""

from __future__ import annotations

import errno
import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._atomic import write_atomically
from .errors import InputError, InputTypeError, ModelFileError, ModelNotFoundError, PathIsDirectoryError

FORMAT = "fastsoftmax-model"
FORMAT_VERSION = 1


def save_model(path, W, b, metadata: dict) -> Path:
    """Write W ``[F, C]``, b ``[C]`` and ``metadata`` to ``path`` atomically.

    The file is written under a temporary name in the same directory and renamed
    over ``path`` only once complete, so an interrupted save leaves any previous
    file intact and no partial file behind. ``.npz`` is appended to a name
    without it, as ``numpy.savez`` does. A new file gets the permissions the
    umask allows (``0o644`` typically), a replaced one keeps its own.

    Raises
    ------
    InputTypeError
        ``path`` is not a str or path-like object.
    PathIsDirectoryError
        ``path`` (or ``path`` + ``.npz``) is an existing directory, or ends in a
        separator: a model is a file (an ``IsADirectoryError`` and a ``ValueError``).
    FileWriteError
        The file cannot be written (missing directory, permissions, disk full);
        the message names ``path``, and the previous file, if any, is unchanged.
    """
    path = model_path(path)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}
    return write_atomically(path, lambda handle: np.savez(handle, W=W, b=b, meta=np.array(json.dumps(meta))),
                            fsync=True)


def model_path(path) -> Path:
    """Check a model file name for writing; return it with ``.npz`` appended if it lacks it."""
    text = _file_name(path)
    given = Path(text)
    if text.endswith((os.sep, "/")) or given.is_dir():
        raise PathIsDirectoryError(given, f"cannot save a model to {text}: it is a directory; "
                                          f"give a file name such as {given / 'model.npz'}", errno.EISDIR)
    if given.suffix != ".npz":
        given = given.with_suffix(given.suffix + ".npz")
    if given.is_dir():
        raise PathIsDirectoryError(given, f"cannot save a model to {given}: it is a directory", errno.EISDIR)
    return given


def _file_name(path) -> str:
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"path must be a str or os.PathLike file name, got {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text or "\0" in text:
        raise InputError(f"path must be a non-empty file name without NUL characters, got {path!r}")
    return text


def load_model(path):
    """Read a model file; return ``(W, b, metadata)``.

    Raises
    ------
    ModelFileError
        Not an npz archive, not a fastsoftmax model, or W/b of wrong shape,
        dtype or with non-finite values.
    ModelNotFoundError
        No such file (a ``FileNotFoundError``).
    """
    path = Path(_file_name(path))
    if path.is_dir():
        raise ModelNotFoundError(f"no model file at {path}: it is a directory")
    if not path.is_file():
        raise ModelNotFoundError(f"no model file at {path}")
    try:
        _check_members(path)
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, KeyError,
            NotImplementedError, RuntimeError, zlib.error) as exc:
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path}: not a readable .npz model file ({type(exc).__name__}: {exc})") from exc
    missing = {"W", "b", "meta"} - set(arrays)
    if missing:
        raise ModelFileError(f"{path}: not a fastsoftmax model (missing {', '.join(sorted(missing))})")
    try:
        meta = json.loads(str(arrays["meta"]))
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{path}: metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a fastsoftmax model (format marker missing)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format version {meta.get('format_version')!r}, "
                             f"this fastsoftmax reads {FORMAT_VERSION}")
    W, b = arrays["W"], arrays["b"]
    _check_weights(path, W, b, meta)
    return W, b, meta


#: A model is W [F, C], b [C] and a line of JSON: far below this. Larger declared
#: arrays mean a corrupt or hostile file, refused before anything is allocated.
MAX_MEMBER_BYTES = 256 * 2**20
_MEMBERS = {"W.npy", "b.npy", "meta.npy"}


def _check_members(path):
    """Look at each array's .npy header, before NumPy reads it: only W, b and meta,
    plain dtypes, and declared sizes that the archive really holds."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.filename not in _MEMBERS:
                raise ModelFileError(f"{path}: unexpected member {info.filename!r}: not a fastsoftmax model")
            if info.file_size > MAX_MEMBER_BYTES:
                raise ModelFileError(f"{path}: member {info.filename} declares {info.file_size} bytes, too large")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(member)
                if dtype.hasobject:
                    raise ModelFileError(f"{path}: {info.filename} holds Python objects; refused")
                size = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if size > info.file_size:
                    raise ModelFileError(f"{path}: {info.filename} declares shape {shape} of {dtype} "
                                         f"({size} bytes) but holds {info.file_size}")


def _check_weights(path, W, b, meta):
    dtype = meta.get("dtype")
    if W.ndim != 2 or b.ndim != 1 or W.shape[1] != b.shape[0] or W.shape[1] < 2:
        raise ModelFileError(f"{path}: W {W.shape} and b {b.shape} are not [F, C] and [C] with C >= 2")
    if str(W.dtype) != dtype or str(b.dtype) != dtype or dtype not in ("float32", "float64"):
        raise ModelFileError(f"{path}: W is {W.dtype}, b is {b.dtype}, metadata says {dtype!r}")
    if meta.get("n_features") != W.shape[0] or meta.get("n_classes") != W.shape[1]:
        raise ModelFileError(f"{path}: metadata shape ({meta.get('n_features')}, {meta.get('n_classes')}) "
                             f"does not match W {W.shape}")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
        raise ModelFileError(f"{path}: weights contain NaN or infinity")
