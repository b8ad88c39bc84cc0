"""Reading IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the values in C order.
Only the unsigned-byte type is used by these datasets, so only it is accepted.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataFileError, DataReadError

_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(data: bytes, path, expected_ndim: int | None = None) -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file into a read-only uint8 array.

    Parameters
    ----------
    data : bytes
        The whole decompressed file.
    path : str or Path
        Named in error messages only.
    expected_ndim : int, optional
        Refuse files with another number of dimensions (3 for images, 1 for labels).

    Returns
    -------
    numpy.ndarray
        uint8 array of the declared shape, a view of ``data`` (no copy).

    Raises
    ------
    DataFileError
        Bad magic number, unexpected type or dimensions, or a size that does not
        match the header. The size is checked before anything is allocated, so a
        header declaring huge dimensions costs nothing.
    """
    shape, header_size = _header(data, path, expected_ndim)
    expected = header_size + int(np.prod(shape, dtype=object))
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataFileError(
            path, f"file {kind}: header declares shape {shape} ({expected} bytes), file has {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def _header(data: bytes, path, expected_ndim: int | None):
    """The shape an IDX header declares, and the header's size in bytes; ``data`` may be the
    whole file or only its start."""
    if len(data) < 4:
        raise DataFileError(path, f"file is {len(data)} bytes, too short for an IDX header")
    zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise DataFileError(path, f"bad magic number {data[:4].hex()}: not an IDX file")
    if type_code != _UBYTE:
        raise DataFileError(path, f"IDX type code 0x{type_code:02x} is not unsigned byte (0x08)")
    if ndim == 0:
        raise DataFileError(path, "IDX header declares 0 dimensions")
    if expected_ndim is not None and ndim != expected_ndim:
        raise DataFileError(path, f"IDX header declares {ndim} dimensions, expected {expected_ndim}")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataFileError(path, f"truncated header: {len(data)} bytes, need {header_size}")
    return tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4)), header_size


def read_idx_shape(path, expected_ndim: int | None = None) -> tuple:
    """The shape an IDX file's header declares, reading (or inflating) only the header.

    Parameters
    ----------
    path : str or Path
        The file, gzip-compressed or not.
    expected_ndim : int, optional
        See :func:`parse_idx`.

    Returns
    -------
    tuple of int

    Raises
    ------
    DataFileError
        The header is not a valid IDX header (or the gzip data is corrupt).
    DataReadError
        The file cannot be read.
    """
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw) if compressed else raw
            try:
                head = stream.read(4)
                head += stream.read(4 * head[3]) if len(head) == 4 else b""
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise DataFileError(path, f"corrupt or truncated gzip data ({exc})") from exc
    except OSError as exc:
        raise DataReadError(path, f"cannot be read: {exc.strerror or exc}") from exc
    return _header(head, path, expected_ndim)[0]


def read_idx(path, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file from disk, gzip-compressed or not (detected from its bytes).

    Parameters
    ----------
    path : str or Path
        The file.
    expected_ndim : int, optional
        See :func:`parse_idx`.

    Returns
    -------
    numpy.ndarray
        uint8 array of the declared shape.

    Raises
    ------
    DataFileError
        The file is not valid gzip, or not a valid IDX file.
    DataReadError
        The file cannot be read (a ``DataFileError`` and an ``OSError``).
    """
    return read_idx_hashed(path, expected_ndim, hashed=False)[0]


def read_idx_hashed(path, expected_ndim: int | None = None, *, hashed=True):
    """:func:`read_idx`, also returning the sha256 of the file as stored and of its IDX content.

    Returns
    -------
    array : numpy.ndarray
    file_sha256 : str or None
        Of the bytes on disk (the ``.gz`` for a compressed file); None unless ``hashed``.
    content_sha256 : str or None
        Of the decompressed IDX bytes: the same for a file gunzipped or compressed
        again (as Debian does); None unless ``hashed``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataReadError(path, f"cannot be read: {exc.strerror or exc}") from exc
    data = _gunzip_bounded(raw, path) if raw[:2] == _GZIP_MAGIC else raw
    array = parse_idx(data, path, expected_ndim)
    if not hashed:
        return array, None, None
    file_sha256 = hashlib.sha256(raw).hexdigest()
    return array, file_sha256, (file_sha256 if data is raw else hashlib.sha256(data).hexdigest())


#: deflate cannot expand data by more than about 1032:1, so a gzip file whose IDX
#: header declares more than this many times its own size is refused unread.
_MAX_GZIP_RATIO = 1100


def _gunzip_bounded(raw: bytes, path) -> bytes:
    """Decompress an IDX file, reading no more than its header declares (plus one byte,
    to notice trailing data): a small corrupt or hostile file cannot make it allocate much."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            head = stream.read(4)
            ndim = head[3] if len(head) == 4 and head[:2] == b"\0\0" else 0
            head += stream.read(4 * ndim)
            if len(head) < 4 + 4 * ndim or ndim == 0:
                return head  # parse_idx names what is wrong with it
            size = int(np.prod(np.frombuffer(head, ">u4", count=ndim, offset=4), dtype=object))
            if size > _MAX_GZIP_RATIO * len(raw):
                raise DataFileError(path, f"IDX header declares {size} bytes of data, more than this "
                                          f"{len(raw)}-byte gzip file can hold: corrupt")
            return head + stream.read(size + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFileError(path, f"corrupt or truncated gzip data ({exc})") from exc
