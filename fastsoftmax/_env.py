"""The environment variables fastsoftmax reads, each parsed by one helper.

| variable | effect |
|---|---|
| ``FASTSOFTMAX_NO_CACHE`` | compile the CPU and CUDA kernels without Numba's on-disk cache |
| ``FASTSOFTMAX_OFFLINE`` | never download dataset files |
| ``FASTSOFTMAX_DATA`` | a directory searched for dataset files |
| ``FASTSOFTMAX_CACHE`` | the directory for downloads and parsed arrays |
| ``NUMBA_ENABLE_CUDASIM`` | Numba's: run the CUDA backend in numba-cuda's simulator |
"""

from __future__ import annotations

import os

_FALSE = ("", "0", "false", "no", "off")


def flag(name: str) -> bool:
    """Whether environment variable ``name`` is set to a true value: anything but unset, empty,
    ``0``, ``false``, ``no`` or ``off`` (in any case, spaces ignored)."""
    return os.environ.get(name, "").strip().lower() not in _FALSE


def path(name: str) -> str | None:
    """The value of environment variable ``name``, or None when it is unset or empty."""
    return os.environ.get(name) or None
