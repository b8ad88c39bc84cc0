"""Files written so that a reader never sees half of one: the one way fastsoftmax writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path, write, *, text=False, fsync=False) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``.

    The rename is atomic, so an interrupted or failed write (any exception, Ctrl-C
    included) leaves the previous file intact and the temporary file removed.
    ``fsync`` forces the data to disk before the rename.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w" if text else "wb") as handle:
            write(handle)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path
