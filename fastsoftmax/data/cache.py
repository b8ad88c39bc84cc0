"""A disk cache of parsed IDX arrays, so the second load of a dataset skips gunzip and parsing.

Each source file maps to one ``.npy`` file keyed by the source's resolved path,
size and modification time: replacing the source invalidates its entry. Entries
are written to a temporary file and renamed, so a reader never sees half a file.
A cache directory that cannot be written is skipped, not an error.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from .._atomic import write_atomically
from .idx import read_idx

log = logging.getLogger(__name__)


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
    source = Path(source)
    if cache_dir is None:
        return read_idx(source, expected_ndim)
    entry = _entry_path(Path(cache_dir), source)
    if entry.is_file():
        try:
            # Memory-mapped: the second load costs a few ms whatever the size, and the
            # read-only pixels are shared with the page cache instead of copied.
            array = np.asarray(np.load(entry, mmap_mode="r", allow_pickle=False))
            if array.dtype == np.uint8 and array.ndim == expected_ndim:
                return array
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable cache entry %s: %s", entry, exc)
    array = read_idx(source, expected_ndim)
    _write_atomically(entry, array)
    return array


def _write_atomically(entry: Path, array: np.ndarray) -> None:
    """Cache ``array`` at ``entry``; a cache that cannot be written is skipped, not an error."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(entry, lambda handle: np.save(handle, array, allow_pickle=False))
    except OSError as exc:
        log.info("not caching parsed %s: %s", entry.name, exc)
