"""A disk cache of parsed IDX arrays, so the second load of a dataset skips gunzip and parsing.

Each source file maps to one ``.npy`` file keyed by the source's resolved path,
size and modification time: replacing the source invalidates its entry. Beside
it, a ``.sha256`` file keeps the source's two checksums (of the file as stored
and of its IDX content), so a local file is hashed once, when it is first
parsed, and checked against the manifest on every load for free. Entries are
written to a temporary file and renamed, so a reader never sees half a file. An
entry damaged anyway (left empty or cut short by a crash before the rename reached
the disk, a wrong header, shape or dtype, an unreadable checksum file, ...) is
never trusted: the source is parsed again and the entry replaced. A cache
directory that cannot be written is skipped, not an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._atomic import is_file, write_atomically
from ..errors import ChecksumWarning, DataFileError
from .idx import read_idx_hashed, read_idx_shape

log = logging.getLogger(__name__)


class Digests(NamedTuple):
    """sha256 of a dataset file as stored (``file``) and of its decompressed IDX bytes (``content``)."""

    file: str
    content: str


def _entry_path(cache_dir: Path, source: Path) -> Path:
    stat = source.stat()
    key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()
    return cache_dir / f"{source.name}.{hashlib.sha256(key).hexdigest()[:16]}.npy"


def load_idx_cached(source, cache_dir, expected_ndim: int) -> np.ndarray:
    """Read an IDX file through the cache.

    Parameters
    ----------
    source : str or Path
        The IDX file (``.gz`` or not).
    cache_dir : str or Path or None
        Where parsed arrays are kept; ``None`` disables the cache.
    expected_ndim : int
        Number of dimensions the file must declare.

    Returns
    -------
    numpy.ndarray
        The uint8 array.
    """
    return load_idx_hashed(source, cache_dir, expected_ndim)[0]


def load_idx_hashed(source, cache_dir, expected_ndim: int):
    """:func:`load_idx_cached`, also returning the source's :class:`Digests`.

    The digests come from the cache when the parsed array does; otherwise the
    file is hashed while it is parsed anyway (about a tenth of the parse's time).
    """
    source = Path(source)
    if cache_dir is None:
        array, file_sha, content_sha = read_idx_hashed(source, expected_ndim)
        return array, Digests(file_sha, content_sha)
    entry = _entry_path(Path(cache_dir), source)
    sidecar = entry.with_suffix(".sha256")
    if is_file(entry) or is_file(sidecar):
        shape = read_idx_shape(source, expected_ndim)  # what is wrong with the source is the caller's error
        try:
            return _read_entry(entry, sidecar, shape)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with an entry, the source is parsed again
            # A cache entry is only ever a shortcut: one left empty or cut short by a crash, or
            # damaged any other way, must cost a parse, never a failed load.
            log.warning("parsed-array cache entry %s is damaged (%s: %s); parsing %s again",
                        entry.name, type(exc).__name__, exc, source)
    array, file_sha, content_sha = read_idx_hashed(source, expected_ndim)
    digests = Digests(file_sha, content_sha)
    _write_atomically(entry, lambda handle: np.save(handle, array, allow_pickle=False))
    _write_atomically(sidecar, lambda handle: json.dump(digests._asdict(), handle), text=True)
    return array, digests


def _read_entry(entry: Path, sidecar: Path, shape: tuple):
    """The cached array (memory-mapped) and digests; raises if anything about them is not
    what parsing the source would give: the array must have the ``shape`` the source's
    header declares, and the file the size its own header declares."""
    digests = Digests(**json.loads(sidecar.read_text()))
    if not all(isinstance(d, str) and len(d) == 64 and set(d) <= set("0123456789abcdef") for d in digests):
        raise ValueError(f"not two sha256 digests: {digests}")
    # Memory-mapped: the second load costs a few ms whatever the size, and the
    # read-only pixels are shared with the page cache instead of copied.
    mapped = np.load(entry, mmap_mode="r", allow_pickle=False)
    if not isinstance(mapped, np.memmap):
        if hasattr(mapped, "close"):
            mapped.close()
        raise TypeError(f"not a .npy array but {type(mapped).__name__}")
    if mapped.dtype != np.uint8 or mapped.shape != shape or not mapped.flags.c_contiguous:
        raise ValueError(f"holds {mapped.dtype} {mapped.shape}, the source is uint8 {shape}")
    if entry.stat().st_size != mapped.offset + mapped.nbytes:
        raise ValueError(f"{entry.stat().st_size} bytes, not the {mapped.offset + mapped.nbytes} its header declares")
    return np.asarray(mapped), digests


def _write_atomically(entry: Path, write, text=False) -> None:
    """Cache one file at ``entry``; a cache that cannot be written is skipped, not an error."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(entry, write, text=text)
    except OSError as exc:
        log.info("not caching %s: %s", entry.name, exc)


def check_against_manifest(path, digests: Digests, file_spec, dataset: str) -> bool:
    """Compare a local file's digests with the manifest's; return True when they match.

    A file that matches neither the published ``.gz`` nor its recorded IDX content
    gives a :class:`~fastsoftmax.errors.ChecksumWarning` naming the file and the
    dataset: custom data in MNIST format is legitimate, calling it ``dataset``
    silently is not. A file with the published ``.gz``'s exact name and size but
    other bytes is refused: that is a damaged or altered copy of the very file
    (another dataset, or the same one compressed again, would not have that size),
    and a download would put the right one there.

    Raises
    ------
    DataFileError
        The exact-name-and-size case above.
    """
    path = Path(path)
    if digests.file == file_spec.sha256 or (file_spec.content_sha256 and
                                            digests.content == file_spec.content_sha256):
        return True
    if path.name == file_spec.filename and path.stat().st_size == file_spec.size:
        raise DataFileError(path, f"has the name and size of the published {file_spec.filename} of dataset "
                                  f"{dataset!r} but not its "
                                  f"sha256 (got {digests.file}, expected {file_spec.sha256}): a damaged or "
                                  f"altered copy; delete it to download it again")
    if file_spec.content_sha256 is None:
        log.info("%s: not the published %s of %r, and no content checksum is recorded to check it by",
                 path, file_spec.filename, dataset)
        return False
    warnings.warn(f"{path} is not the {file_spec.filename} of dataset {dataset!r}: the sha256 of its content, "
                  f"{digests.content}, is not the manifest's {file_spec.content_sha256}. Loading it as "
                  f"{dataset!r} anyway; describe "
                  "data of your own in MNIST format with a DatasetSpec (name and checksums) instead",
                  ChecksumWarning, stacklevel=3)
    return False
