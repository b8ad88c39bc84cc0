"""Finding dataset files on disk, and downloading them with checksums and failover.

Files are looked for, in order, in: the ``data_dir`` argument; ``$FASTSOFTMAX_DATA``;
the system directory ``/usr/share/datasets/<name>/`` (Debian's
``dataset-fashion-mnist`` installs there); the user cache directory. Missing files
are downloaded (unless offline) into ``data_dir`` when one was given, as the
TensorFlow tutorial did, else into the cache directory.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pooch
import requests
from filelock import FileLock

from .._atomic import is_file
from ..errors import DataNotFoundError, DownloadError
from .manifest import PARTS, DatasetSpec, FileSpec

log = logging.getLogger(__name__)

SYSTEM_DATA_ROOT = Path("/usr/share/datasets")
DOWNLOAD_TIMEOUT_S = 30.0


def cache_root() -> Path:
    """The directory for downloads and parsed-array caches (``$FASTSOFTMAX_CACHE`` overrides)."""
    env = os.environ.get("FASTSOFTMAX_CACHE")
    return Path(env) if env else Path(pooch.os_cache("fastsoftmax"))


def offline() -> bool:
    """True when ``$FASTSOFTMAX_OFFLINE`` is set to a true value: never download."""
    return os.environ.get("FASTSOFTMAX_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def search_dirs(spec: DatasetSpec, data_dir=None) -> list[Path]:
    """Directories searched for ``spec``'s files, in order of preference."""
    dirs = []
    if data_dir is not None:
        dirs += [Path(data_dir), Path(data_dir) / spec.name]
    env = os.environ.get("FASTSOFTMAX_DATA")
    if env:
        dirs += [Path(env) / spec.name, Path(env)]
    dirs += [SYSTEM_DATA_ROOT / spec.name, cache_root() / spec.name]
    return dirs


def find_file(file: FileSpec, dirs) -> Path | None:
    """The first existing copy of ``file`` (``.gz`` or uncompressed) in ``dirs``."""
    for directory in dirs:
        for name in (file.filename, file.uncompressed_name):
            candidate = Path(directory) / name
            if is_file(candidate):
                return candidate
    return None


def download_file(file: FileSpec, mirrors, dest_dir, *, progressbar=True,
                  timeout=DOWNLOAD_TIMEOUT_S) -> Path:
    """Download ``file`` into ``dest_dir``, trying each mirror until one gives the right bytes.

    Parameters
    ----------
    file : FileSpec
        Name, size and sha256 of the file.
    mirrors : sequence of str
        Base URLs, each ending in ``/``; the file name is appended.
    dest_dir : str or Path
        Where the verified file is placed. A file only appears there once its
        checksum matched: pooch streams into a temporary file in the same
        directory and renames it, and deletes it on any failure.
    progressbar : bool
        Show a tqdm progress bar while downloading.
    timeout : float
        Seconds without data before a mirror is given up.

    Returns
    -------
    Path
        The downloaded file.

    Raises
    ------
    DownloadError
        Every mirror failed; the message lists each mirror's error.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / file.filename
    # One process downloads while another waits, then finds the finished file.
    with FileLock(str(dest_dir / f".{file.filename}.lock")):
        if is_file(target) and _hash_ok(target, file.sha256):
            return target
        failures = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + file.filename
            downloader = pooch.HTTPDownloader(progressbar=progressbar, timeout=timeout)
            try:
                pooch.retrieve(url, known_hash=f"sha256:{file.sha256}", fname=file.filename,
                               path=dest_dir, downloader=downloader)
                return target
            except (requests.RequestException, ValueError, OSError) as exc:
                log.warning("download of %s from %s failed: %s", file.filename, url, exc)
                failures.append(f"{url}: {type(exc).__name__}: {exc}")
    raise DownloadError(f"could not download {file.filename} from any mirror:\n  " + "\n  ".join(failures))


def _hash_ok(path: Path, sha256: str) -> bool:
    return pooch.file_hash(str(path), alg="sha256") == sha256


def locate(spec: DatasetSpec, data_dir=None, *, download=True, mirrors=None,
           progressbar=True) -> dict:
    """Find (or download) the four files of ``spec``.

    Returns
    -------
    dict
        Maps each of ``PARTS`` to a ``Path``.

    Raises
    ------
    DataNotFoundError
        Some files are missing and could not be downloaded; the message lists
        them, where they were looked for, and how to provide them.
    """
    dirs = search_dirs(spec, data_dir)
    found = {part: find_file(spec.file(part), dirs) for part in PARTS}
    missing = [part for part in PARTS if found[part] is None]
    if not missing:
        return found
    allowed = download and not offline()
    errors = []
    if allowed:
        dest = Path(data_dir) if data_dir is not None else cache_root() / spec.name
        for part in missing:
            try:
                found[part] = download_file(spec.file(part), mirrors or spec.mirrors, dest,
                                            progressbar=progressbar)
            except (DownloadError, OSError) as exc:
                errors.append(str(exc))
        missing = [part for part in PARTS if found[part] is None]
        if not missing:
            return found
    raise DataNotFoundError(_missing_message(spec, missing, dirs, allowed, errors))


def _missing_message(spec, missing, dirs, tried_download, errors) -> str:
    names = ", ".join(spec.file(part).filename for part in missing)
    lines = [f"dataset {spec.name!r}: missing {names}", "looked in:"]
    lines += [f"  {d}" for d in dirs]
    if tried_download:
        lines.append("download failed:")
        lines += [f"  {e}" for e in errors]
    else:
        lines.append("downloading is off (download=False or FASTSOFTMAX_OFFLINE=1)")
    lines.append("to provide them: copy the files into one of those directories or point "
                 "FASTSOFTMAX_DATA at them, or allow downloading (download=True, online)")
    if spec.name == "fashion-mnist":
        lines.append("on Debian/Ubuntu: apt-get install dataset-fashion-mnist")
    return "\n".join(lines)
