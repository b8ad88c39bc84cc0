"""Files written so that a reader never sees half of one: the one way fastsoftmax writes."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import FileWriteError, PathIsDirectoryError


def write_atomically(path, write, *, text=False, fsync=False) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``.

    The rename is atomic, so an interrupted or failed write (any exception, Ctrl-C
    and a full disk included) leaves the previous file intact and the temporary
    file removed. The new file gets the permissions an ordinary ``open`` would
    give it: those of the file it replaces, or ``0o666`` less the umask for a new
    one (not the temporary file's ``0o600``). ``fsync`` forces the data, and the
    rename, to disk before returning.

    Raises
    ------
    PathIsDirectoryError
        ``path`` is a directory (also an ``IsADirectoryError`` and a ``ValueError``).
    FileWriteError
        Any operating-system error while writing (missing directory, permission,
        disk full, ...), naming ``path``; also an instance of the builtin
        ``OSError`` subclass of the cause (``FileNotFoundError``, ...).
    """
    path = Path(path)
    if is_dir(path):
        raise PathIsDirectoryError(path, f"cannot write {path}: it is a directory", 21)
    tmp = None
    try:
        # The name is cut so that a target name near the 255-byte limit still gets a temporary file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:200]}.", suffix=".tmp")
        with os.fdopen(fd, "w" if text else "wb") as handle:
            os.fchmod(handle.fileno(), _mode_for(path))
            write(handle)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
        if fsync:
            _fsync_directory(path.parent)
    except OSError as exc:
        if isinstance(exc, FileWriteError):
            raise
        raise FileWriteError.from_os_error(path, exc) from exc
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    return path


def is_dir(path) -> bool:
    """``Path.is_dir`` that answers False, never raises, for a name the system cannot even look up
    (too long, NUL bytes): writing it then fails with an error that names it."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def is_file(path) -> bool:
    """``Path.is_file`` that never raises (see :func:`is_dir`)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _mode_for(path: Path) -> int:
    """The replaced file's permission bits, or what the umask allows a new file."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux reports it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it, briefly
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not every platform opens directories; the data itself is on disk
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
