"""Whether compiled kernels are kept on disk: decided once a process, before any kernel is defined.

Numba keeps a kernel compiled with ``cache=True`` beside its source file, or in
``NUMBA_CACHE_DIR``, or in the user's cache directory, whichever it can write. Where it
can write none (a read-only installation, an unwritable HOME, as in many containers) it
refuses to define the kernel at all, with a ``RuntimeError``. So the same search is made
here first, on a function of this package: where it finds no place, the kernels are
compiled without caching (in every process) and a :class:`~fastsoftmax.errors.CacheWarning`
says so once, instead of the import failing.
"""

from __future__ import annotations

import functools
import warnings

from .. import _env
from ..errors import CacheWarning


def _probe():
    """A function of this package's kernel directory, for Numba's cache search (never called)."""


@functools.cache
def enabled() -> bool:
    """True when kernels are cached on disk: not switched off (``FASTSOFTMAX_NO_CACHE``) and a writable place exists."""
    if _env.flag("FASTSOFTMAX_NO_CACHE"):
        return False
    from numba.core.caching import FunctionCache

    try:
        FunctionCache(_probe)
    except RuntimeError as exc:  # Numba: "cannot cache function ...: no locator available for file ..."
        warnings.warn(f"fastsoftmax compiles its kernels without caching them, in every process: Numba finds no "
                      f"writable place for its cache here ({exc}). Set NUMBA_CACHE_DIR to a writable directory "
                      f"to keep them.", CacheWarning, stacklevel=2)
        return False
    return True
