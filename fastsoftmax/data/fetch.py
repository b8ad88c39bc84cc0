"""Finding dataset files on disk, and downloading them with checksums and failover.

Files are looked for, in order, in: the ``data_dir`` argument (and its
``<name>`` subdirectory); ``$FASTSOFTMAX_DATA``; the system directory
``/usr/share/datasets/<name>/`` (Debian's ``dataset-fashion-mnist`` installs
there); the user cache directory. Missing files are downloaded (unless offline)
into ``data_dir`` when one was given, as the TensorFlow tutorial did, else into
the cache directory.

A download that fails or is interrupted leaves nothing behind: the file streams
into a temporary name and is renamed only once its size and sha256 are right;
the lock file that keeps two processes from downloading one file at once is
removed when the download ends; a directory made for a download that failed is
removed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path

from .._atomic import current_umask, is_dir, is_file
from ..errors import DataNotFoundError, DownloadError, InputError
from .manifest import DATASETS, PARTS, DatasetSpec, FileSpec

try:
    import fcntl
except ImportError:  # not POSIX: filelock's lock instead, whose file stays
    fcntl = None

log = logging.getLogger(__name__)

SYSTEM_DATA_ROOT = Path("/usr/share/datasets")
DOWNLOAD_TIMEOUT_S = 30.0
#: Bytes per read from the network.
CHUNK_BYTES = 1 << 16

#: Why nothing is downloaded for a dataset (a ``DatasetSpec`` of one's own) with no mirrors.
NO_MIRRORS = "the dataset lists no mirrors"

#: Debian packages that install a dataset under ``SYSTEM_DATA_ROOT``.
SYSTEM_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}


def cache_root() -> Path:
    """The directory for downloads and parsed-array caches (``$FASTSOFTMAX_CACHE`` overrides)."""
    env = os.environ.get("FASTSOFTMAX_CACHE")
    if env:
        return Path(env)
    import platformdirs  # pooch's own choice of cache directory (pooch.os_cache), without importing pooch

    return Path(platformdirs.user_cache_dir("fastsoftmax"))


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


def download_file(file: FileSpec, mirrors, dest_dir, *, progressbar=True, timeout=DOWNLOAD_TIMEOUT_S,
                  unreachable=None) -> Path:
    """Download ``file`` into ``dest_dir``, trying each mirror until one gives the right bytes.

    Parameters
    ----------
    file : FileSpec
        Name, size and sha256 of the file.
    mirrors : sequence of str
        Base URLs; the file name is appended.
    dest_dir : str or Path
        Where the verified file is placed, created if needed (and removed again,
        with any parents this call made, when the download fails). A file only
        appears there once its size and sha256 matched: it streams into a
        temporary file in the same directory, renamed when complete and deleted
        on any failure. A download that grows past ``file.size`` is stopped.
    progressbar : bool
        Show a tqdm progress bar while downloading.
    timeout : float
        Seconds without data before a mirror is given up.
    unreachable : dict, optional
        Mirrors that could not be connected to, mapped to why: they are skipped
        (and reported as failed for that reason), and mirrors this call cannot
        connect to are added. Shared between the files of a dataset, so an
        offline machine does not wait for every mirror once per file.

    Returns
    -------
    Path
        The downloaded file.

    Raises
    ------
    DownloadError
        Every mirror failed; the message lists each mirror's error, and
        ``attempts`` holds them as ``(url, reason)``.
    OSError
        ``dest_dir`` cannot be made or written.
    """
    import requests  # the download stack loads only when something is downloaded

    dest_dir = Path(dest_dir)
    target = dest_dir / file.filename
    made = _make_directories(dest_dir)
    attempts = []
    try:
        # One process downloads while another waits, then finds the finished file.
        with _download_lock(dest_dir / f".{file.filename}.lock"):
            if is_file(target) and _sha256(target) == file.sha256:
                return target
            for base in mirrors:
                url = base.rstrip("/") + "/" + file.filename
                if unreachable is not None and base in unreachable:
                    attempts.append((url, unreachable[base]))
                    continue
                try:
                    _fetch(url, file, target, progressbar, timeout)
                    return target
                except (requests.RequestException, OSError, ValueError) as exc:
                    reason, cannot_connect = _reason(exc)
                    log.info("download of %s from %s failed: %s", file.filename, url, reason)
                    attempts.append((url, reason))
                    if cannot_connect and unreachable is not None:
                        unreachable[base] = reason
    except BaseException:
        _remove_if_empty(made)
        raise
    _remove_if_empty(made)
    if not attempts:
        raise DownloadError(f"could not download {file.filename}: no mirrors to download it from",
                            file=file.filename)
    raise DownloadError(f"could not download {file.filename} from any mirror:\n  "
                        + "\n  ".join(f"{url}: {reason}" for url, reason in attempts),
                        file=file.filename, attempts=attempts)


class _BadDownload(ValueError):
    """The bytes a mirror sent are not the file (wrong size or checksum)."""


class _CheckedSink:
    """Where the downloader writes: hashes each chunk on its way to the file, and stops
    a download that grows past the expected size (an endless or wrong response)."""

    def __init__(self, handle, file: FileSpec):
        self._handle = handle
        self._file = file
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, chunk):
        self.size += len(chunk)
        if self.size > self._file.size:
            raise _BadDownload(f"sent more than the file's {self._file.size} bytes: not the file")
        self._sha256.update(chunk)
        return self._handle.write(chunk)

    def flush(self):
        self._handle.flush()

    def check(self):
        if self.size != self._file.size:
            raise _BadDownload(f"sent {self.size} bytes, not the file's {self._file.size}")
        if self._sha256.hexdigest() != self._file.sha256:
            raise _BadDownload(f"sha256 {self._sha256.hexdigest()} is not the file's {self._file.sha256}")


def _fetch(url: str, file: FileSpec, target: Path, progressbar, timeout) -> None:
    """Stream ``url`` into a temporary file beside ``target``; rename it to ``target`` only
    if its size and sha256 are ``file``'s, delete it otherwise."""
    import pooch

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{file.filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())  # as an ordinary open would make it
            sink = _CheckedSink(handle, file)
            downloader = pooch.HTTPDownloader(progressbar=progressbar, timeout=timeout, chunk_size=CHUNK_BYTES)
            downloader(url, sink, None)
        sink.check()
        os.replace(tmp, target)
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _reason(exc) -> tuple[str, bool]:
    """Why a download failed, in a few words, and whether the mirror could not be connected to at all."""
    import requests
    import urllib3

    if isinstance(exc, _BadDownload):
        return str(exc), False
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason or ''}".rstrip(), False
    if isinstance(exc, requests.ConnectTimeout):
        return "cannot connect: no answer", True
    if isinstance(exc, requests.ConnectionError):
        cause = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(cause, urllib3.exceptions.NameResolutionError):
            return "cannot connect: host not found", True
        if isinstance(cause, urllib3.exceptions.NewConnectionError):
            detail = str(cause).rsplit("] ", 1)[-1] if "] " in str(cause) else "refused"
            return f"cannot connect: {detail[:1].lower()}{detail[1:]}", True
        return f"connection failed ({type(exc).__name__})", False
    if isinstance(exc, requests.Timeout):
        return "timed out", False
    if isinstance(exc, requests.RequestException):
        return f"{type(exc).__name__}: {exc}", False
    if isinstance(exc, OSError):
        return f"cannot write the file: {exc.strerror or exc}", False
    return f"{type(exc).__name__}: {exc}", False


@contextlib.contextmanager
def _download_lock(path: Path):
    """Hold the lock ``path`` for one download, and remove its file when done.

    With ``flock`` (POSIX) the lock file is unlinked while still held. A process
    that was waiting for it then holds a file that is no longer in the directory:
    it notices (the name now leads to another file, or to none) and starts over,
    so one process at a time holds the lock of a name, and no lock file outlives
    its download. Elsewhere filelock's lock is used, whose file stays.
    """
    if fcntl is None:
        from filelock import FileLock

        with FileLock(str(path)):
            yield
        return
    while True:
        fd = _open_lock_file(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _names_this_file(path, fd):
                try:
                    yield
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                return
        finally:
            os.close(fd)  # also releases the lock


def _open_lock_file(path: Path) -> int:
    for _ in range(3):
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileNotFoundError:
            # Another process's failed download removed the directory it had made, just now.
            path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)


def _names_this_file(path: Path, fd: int) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _make_directories(directory: Path) -> list:
    """Make ``directory`` and its missing parents; return those made, outermost first."""
    missing = []
    while not is_dir(directory) and directory.parent != directory:
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
    return missing[::-1]


def _remove_if_empty(made: list) -> None:
    """Remove the directories a failed download made, innermost first, while they are empty."""
    for directory in reversed(made):
        try:
            directory.rmdir()
        except OSError:
            return


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate(spec: DatasetSpec, data_dir=None, *, parts=PARTS, download=True, mirrors=None,
           progressbar=True) -> dict:
    """Find (or download) the files of some or all parts of ``spec``.

    Parameters
    ----------
    spec : DatasetSpec
        The dataset.
    data_dir : str or Path, optional
        Searched first, and where downloads go when given (else the cache
        directory). With downloading allowed, a ``data_dir`` that does not exist
        is made by the first download into it, and only then; with downloading
        off, it must exist.
    parts : sequence of str
        Which of :data:`~fastsoftmax.data.manifest.PARTS` to find: all four by
        default, ``("test_images", "test_labels")`` for the test split alone.
    download : bool
        Download missing files (also off when ``$FASTSOFTMAX_OFFLINE=1``).
    mirrors : sequence of str, optional
        Base URLs to use instead of ``spec.mirrors``.
    progressbar : bool
        Show a progress bar while downloading.

    Returns
    -------
    dict
        Maps each of ``parts``, in ``PARTS`` order, to a ``Path``.

    Raises
    ------
    DataNotFoundError
        Some files are missing and could not be downloaded, or ``data_dir`` is
        not a directory (or does not exist, with downloading off). The message
        says which files, where they were looked for, what was tried and how to
        provide them; the attributes hold the same facts.
    InputError
        ``parts`` is empty or names something that is not one of ``PARTS``.
    """
    parts = _parts(parts)
    mirrors = spec.mirrors if mirrors is None else mirrors
    download_off = ("download=False" if not download else "FASTSOFTMAX_OFFLINE=1" if offline()
                    else None if mirrors else NO_MIRRORS)
    dirs = search_dirs(spec, data_dir)
    if data_dir is not None:
        _check_data_dir(spec, data_dir, dirs, download_off)
    found = {part: find_file(spec.file(part), dirs) for part in parts}
    if all(found.values()):
        return found
    attempts = []
    if download_off is None:
        dest = Path(data_dir) if data_dir is not None else cache_root() / spec.name
        unreachable = {}
        for part in parts:
            if found[part] is not None:
                continue
            try:
                found[part] = download_file(spec.file(part), mirrors, dest, progressbar=progressbar,
                                            unreachable=unreachable)
            except DownloadError as exc:
                attempts += exc.attempts
            except OSError as exc:
                attempts.append((str(dest), f"cannot write there: {exc.strerror or exc}"))
        if all(found.values()):
            return found
    missing = tuple(spec.file(part).filename for part in parts if found[part] is None)
    available = _available_elsewhere(spec, parts, data_dir)
    raise DataNotFoundError(_missing_message(spec, missing, dirs, download_off, attempts, available),
                            dataset=spec.name, missing=missing, searched=dirs, attempts=attempts,
                            download_off=download_off, available=available)


def _parts(parts) -> tuple:
    if isinstance(parts, str) or not isinstance(parts, (list, tuple)) or not parts \
            or not all(isinstance(p, str) and p in PARTS for p in parts):
        raise InputError(f"parts must be a non-empty list of {', '.join(PARTS)}, got {parts!r}")
    return tuple(p for p in PARTS if p in parts)


def _check_data_dir(spec, data_dir, dirs, download_off) -> None:
    """A ``data_dir`` that is a file, or that does not exist when nothing may be downloaded into it."""
    if is_dir(data_dir):
        return
    if os.path.lexists(data_dir):
        problem = f"data_dir {data_dir} is not a directory"
    elif download_off is not None:
        problem = f"data_dir {data_dir} does not exist, and nothing would be downloaded into it ({download_off})"
    else:
        return  # the first download makes it
    raise DataNotFoundError(problem, dataset=spec.name, searched=dirs, download_off=download_off,
                            data_dir=data_dir)


def _available_elsewhere(spec, parts, data_dir) -> dict:
    """Other known datasets whose ``parts`` are all found: name -> the directory of the first."""
    available = {}
    for name, other in DATASETS.items():
        if name == spec.name:
            continue
        dirs = search_dirs(other, data_dir)
        paths = [find_file(other.file(part), dirs) for part in parts]
        if all(paths):
            available[name] = str(paths[0].parent)
    return available


def mirror_failures(attempts) -> list:
    """``(mirror, reason)`` pairs summing up download ``attempts``: one per mirror and distinct reason."""
    seen = {}
    for url, reason in attempts:
        mirror = url.rsplit("/", 1)[0] + "/" if "/" in url else url
        seen.setdefault((mirror, reason), None)
    return list(seen)


def _missing_message(spec, missing, dirs, download_off, attempts, available) -> str:
    lines = [f"dataset {spec.name!r}: missing {', '.join(missing)}",
             "looked in: " + ", ".join(str(d) for d in dirs)]
    if download_off == NO_MIRRORS:
        lines.append(f"nothing to download them from: {NO_MIRRORS}")
    elif download_off is not None:
        lines.append(f"downloading is off ({download_off})")
    elif attempts:
        lines.append("download failed: " + "; ".join(f"{m} ({reason})" for m, reason in mirror_failures(attempts)))
    for name, where in available.items():
        lines.append(f"on this machine instead: dataset={name!r}, in {where}")
    fix = "to provide them: put the files in a directory and pass it as data_dir, or point FASTSOFTMAX_DATA at it"
    if download_off is not None and download_off != NO_MIRRORS:
        fix += "; or allow downloading (download=True, FASTSOFTMAX_OFFLINE unset) on a machine online"
    lines.append(fix)
    if spec.name in SYSTEM_PACKAGES:
        lines.append(f"on Debian/Ubuntu: apt-get install {SYSTEM_PACKAGES[spec.name]}")
    return "\n".join(lines)
