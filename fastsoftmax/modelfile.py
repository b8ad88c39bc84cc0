"""Model files: one ``.npz`` holding W, b (and, for averaged SGD, W_avg and b_avg) and JSON
metadata, written atomically.

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

from . import validation
from ._atomic import is_dir, is_file, write_atomically
from .errors import InputError, InputTypeError, ModelFileError, ModelNotFoundError, PathIsDirectoryError

FORMAT = "fastsoftmax-model"
FORMAT_VERSION = 2
#: Version 1 files (W, b, no classes_ or average) are still read.
READABLE_VERSIONS = (1, 2)


def save_model(path, W, b, metadata: dict, averages=None) -> Path:
    """Write W ``[F, C]``, b ``[C]`` and ``metadata`` to ``path`` atomically.

    ``averages``: optional ``{"W_avg": [F, C], "b_avg": [C]}`` of averaged SGD.

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
    meta = _metadata_json({"format": FORMAT, "format_version": FORMAT_VERSION, **metadata})
    return write_atomically(path, lambda handle: np.savez(handle, W=W, b=b, meta=np.array(meta),
                                                                **(averages or {})),
                            fsync=True)


def _metadata_json(meta: dict) -> str:
    """``meta`` as JSON, NumPy scalars and arrays as their Python values; checked before any file is opened."""
    def plain(value):
        if isinstance(value, (np.generic, np.ndarray)):
            return value.tolist()
        raise InputTypeError(f"model metadata holds {value!r} ({type(value).__name__}), which JSON cannot store")
    try:
        return json.dumps(meta, default=plain)
    except ValueError as exc:  # a circular reference
        raise InputError(f"model metadata cannot be written as JSON: {exc}") from None


def model_path(path) -> Path:
    """Check a model file name for writing; return it with ``.npz`` appended if it lacks it."""
    text = validation.file_name(path)
    given = Path(text)
    if text.endswith((os.sep, "/")) or is_dir(given):
        raise PathIsDirectoryError(given, f"cannot save a model to {text}: it is a directory; "
                                          f"give a file name such as {given / 'model.npz'}", errno.EISDIR)
    if given.suffix != ".npz":
        given = given.with_suffix(given.suffix + ".npz")
    if is_dir(given):
        raise PathIsDirectoryError(given, f"cannot save a model to {given}: it is a directory", errno.EISDIR)
    return given


def load_model(path, averages=False):
    """Read a model file; return ``(W, b, metadata)``, and with ``averages=True`` a fourth item,
    ``(W_avg, b_avg)`` or None.

    Raises
    ------
    ModelFileError
        Not an npz archive, not a fastsoftmax model, or W/b of wrong shape,
        dtype or with non-finite values.
    ModelNotFoundError
        No such file (a ``FileNotFoundError``).
    """
    path = Path(validation.file_name(path))
    if is_dir(path):
        raise ModelNotFoundError(f"no model file at {path}: it is a directory")
    if not is_file(path):
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
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise ModelFileError(f"{path}: model format version {meta.get('format_version')!r}, "
                             f"this fastsoftmax reads {', '.join(map(str, READABLE_VERSIONS))}")
    W, b = arrays["W"], arrays["b"]
    _check_weights(path, W, b, meta)
    average = _check_average(path, arrays, W, b, meta)
    _check_classes(path, meta, W.shape[1])
    _check_counts(path, meta)
    return (W, b, meta, average) if averages else (W, b, meta)


#: A model is W [F, C], b [C] and a line of JSON: far below this. Larger declared
#: arrays mean a corrupt or hostile file, refused before anything is allocated.
MAX_MEMBER_BYTES = 256 * 2**20
_MEMBERS = {"W.npy", "b.npy", "meta.npy", "W_avg.npy", "b_avg.npy"}


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
    if W.ndim != 2 or b.ndim != 1 or W.shape[1] != b.shape[0] or W.shape[1] < 1 or W.shape[0] < 1:
        raise ModelFileError(f"{path}: W {W.shape} and b {b.shape} are not [F, C] and [C] with F, C >= 1")
    if str(W.dtype) != dtype or str(b.dtype) != dtype or dtype not in ("float32", "float64"):
        raise ModelFileError(f"{path}: W is {W.dtype}, b is {b.dtype}, metadata says {dtype!r}")
    if meta.get("n_features") != W.shape[0] or meta.get("n_classes") != W.shape[1]:
        raise ModelFileError(f"{path}: metadata shape ({meta.get('n_features')}, {meta.get('n_classes')}) "
                             f"does not match W {W.shape}")
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
        raise ModelFileError(f"{path}: weights contain NaN or infinity")


def _check_average(path, arrays, W, b, meta):
    """The running average of averaged SGD: both arrays or neither, shaped like W and b, finite,
    with the number of snapshots it holds."""
    present = {"W_avg", "b_avg"} & set(arrays)
    if not present:
        return None
    if len(present) == 1:
        raise ModelFileError(f"{path}: holds {present.pop()} without its pair")
    W_avg, b_avg = arrays["W_avg"], arrays["b_avg"]
    if W_avg.shape != W.shape or b_avg.shape != b.shape or W_avg.dtype != W.dtype or b_avg.dtype != b.dtype:
        raise ModelFileError(f"{path}: W_avg {W_avg.shape} {W_avg.dtype} and b_avg {b_avg.shape} {b_avg.dtype} "
                             f"do not match W {W.shape} {W.dtype}")
    if not (np.all(np.isfinite(W_avg)) and np.all(np.isfinite(b_avg))):
        raise ModelFileError(f"{path}: averaged weights contain NaN or infinity")
    count = meta.get("average_count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ModelFileError(f"{path}: average_count must be an integer >= 1 with W_avg, got {count!r}")
    return W_avg, b_avg


def _check_counts(path, meta):
    """``steps_done`` (and ``average_count``, where present) are integers >= 0."""
    for key in ("steps_done", "average_count"):
        value = meta.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ModelFileError(f"{path}: {key} must be an integer >= 0, got {value!r:.80}")


def _check_classes(path, meta, n_classes):
    """``classes``: the labels, sorted, one per column of W, numbers or strings of one dtype."""
    classes = meta.get("classes")
    if classes is None:
        return
    kind = meta.get("classes_dtype")
    try:
        dtype = np.dtype(kind)
        labels = np.array(classes, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ModelFileError(f"{path}: classes {classes!r:.80} of dtype {kind!r} are not valid ({exc})") from exc
    if not isinstance(classes, list) or labels.shape != (n_classes,) or dtype.kind not in "biufUO":
        raise ModelFileError(f"{path}: classes must be a list of {n_classes} labels, got {classes!r:.80}")
    if any(not isinstance(c, (str, int, float)) for c in classes):
        raise ModelFileError(f"{path}: classes must be numbers or strings, got {classes!r:.80}")
    if labels.tolist() != classes:  # a dtype too narrow truncates strings or wraps numbers, silently
        raise ModelFileError(f"{path}: classes_dtype {kind!r} cannot hold the classes {classes!r:.80}")
    try:
        ordered = bool(np.all(labels[1:] > labels[:-1]))
    except TypeError:
        ordered = False
    if not ordered:
        raise ModelFileError(f"{path}: classes must be distinct and sorted, got {classes!r:.80}")
