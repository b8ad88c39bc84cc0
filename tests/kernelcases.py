"""Test problems for the kernels, shared by the parity, CUDA and sweep tests.

The registry (:mod:`fastsoftmax.kernels.operations`) knows how to call each operation on a
problem and how closely it must match the reference; this draws the problems: shapes that
exercise remainders (1 row, odd batch sizes, 2-20 classes, 1-800 features), both dtypes,
uint8 pixels or floats, small ones for the CUDA simulator, where every GPU thread is a
Python thread.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from fastsoftmax.kernels.operations import TOLERANCE, make_problem

from .conftest import cuda_simulated

DTYPES = [np.float32, np.float64]
#: Largest rows, features, batch and steps drawn: full size, and for the simulated GPU.
FULL = dict(rows=300, features=800, batch=64, steps=6)
SIMULATOR = dict(rows=40, features=48, batch=9, steps=3)


def limits(backend):
    return SIMULATOR if backend == "cuda" and cuda_simulated() else FULL


def tolerance(dtype):
    return TOLERANCE[np.dtype(dtype)]


@st.composite
def problems(draw, rows=300, features=800, batch=64, steps=6):
    """A :class:`~fastsoftmax.kernels.operations.Problem` of drawn shapes and a drawn seed."""
    n = draw(st.integers(1, rows))
    return make_problem(
        seed=draw(st.integers(0, 2**32 - 1)), rows=n, features=draw(st.integers(1, features)),
        classes=draw(st.integers(2, 20)), dtype=draw(st.sampled_from(DTYPES)), pixels=draw(st.booleans()),
        batch=draw(st.integers(1, min(batch, n))), steps=draw(st.integers(1, steps)))
