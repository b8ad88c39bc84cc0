"""The kernel layer: one module per backend, the same function names in each.

========  ==========================================  =====================
name      module                                      needs
========  ==========================================  =====================
numpy     :mod:`fastsoftmax.kernels.reference`        numpy (the spec)
cpu       :mod:`fastsoftmax.kernels.cpu`              numba
cuda      :mod:`fastsoftmax.kernels.cuda`             numba-cuda and a GPU,
                                                      or NUMBA_ENABLE_CUDASIM=1
========  ==========================================  =====================

:data:`OPERATIONS` lists the functions every backend provides, from the operation
registry (:mod:`fastsoftmax.kernels.operations`) that both the parity tests and the
benchmarks read. Importing this package needs only NumPy: Numba and numba-cuda load
with the backend that uses them, and nothing of the data layer's download stack loads.
"""

from __future__ import annotations

import importlib

from ..errors import BackendUnavailableError, InputError
from .operations import OPERATIONS, operation
from .pixels import PIXEL_SCALE

__all__ = ["BACKENDS", "OPERATIONS", "PIXEL_SCALE", "backend_problem", "get_backend", "operation", "usable_backends"]

#: Backend name -> module path. Modules are imported on first use, so importing
#: fastsoftmax never compiles or loads Numba kernels or CUDA.
BACKENDS = {
    "numpy": "fastsoftmax.kernels.reference",
    "cpu": "fastsoftmax.kernels.cpu",
    "cuda": "fastsoftmax.kernels.cuda",
}


def get_backend(name: str):
    """The kernel module for backend ``name`` (``"numpy"``, ``"cpu"`` or ``"cuda"``).

    Raises
    ------
    InputError
        Unknown name.
    BackendUnavailableError
        The backend's dependencies are missing here.
    """
    if not isinstance(name, str) or name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    try:
        return importlib.import_module(BACKENDS[name])
    except ImportError as exc:
        raise BackendUnavailableError(f"backend {name!r} cannot be loaded: {exc}") from exc


def usable_backends() -> list:
    """Names of the backends that load here, in registry order."""
    return [name for name in BACKENDS if backend_problem(name) is None]


def backend_problem(name: str):
    """Why backend ``name`` cannot be used here (a message), or None when it can."""
    try:
        get_backend(name)
    except BackendUnavailableError as exc:
        return str(exc)
    return None
