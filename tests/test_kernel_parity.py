"""Every backend against the NumPy reference, for every operation of the kernel registry.

One hypothesis test over backends x operations: each draws fresh problems
(:mod:`tests.kernelcases`), calls the operation on the backend and on the reference
through the registry (:mod:`fastsoftmax.kernels.operations`: outputs poisoned with NaN,
so an element left unwritten fails) and compares within the dtype's tolerance. Adding a
backend to ``BACKENDS`` or an operation to the registry puts it under this test. The CUDA
backend runs in numba-cuda's simulator unless NUMBA_ENABLE_CUDASIM=0 (see conftest.py),
on smaller shapes.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastsoftmax.kernels import BACKENDS, OPERATIONS
from fastsoftmax.kernels import reference as ref
from fastsoftmax.kernels.operations import REGISTRY, assert_matches

from .conftest import cuda_simulated, kernels_or_skip
from .kernelcases import limits, problems

COMPILED = [name for name in BACKENDS if name != "numpy"]


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_backend_defines_every_operation(name):
    module = kernels_or_skip(name)
    missing = [op for op in OPERATIONS if not callable(getattr(module, op, None))]
    assert not missing, f"{name} lacks {missing}"


@pytest.mark.parametrize("backend", [name for name in COMPILED if name != "cuda"])
@pytest.mark.parametrize("operation", OPERATIONS)
@given(data=st.data())
def test_every_operation_matches_the_reference(backend, operation, data):
    check_operation(backend, operation, data)


@pytest.mark.parametrize("operation", OPERATIONS)
@settings(max_examples=min(settings().max_examples, 4))  # the simulator runs every GPU thread in Python
@given(data=st.data())
def test_every_operation_matches_the_reference_on_cuda(operation, data):
    check_operation("cuda", operation, data)


def check_operation(backend, operation, data):
    kern = kernels_or_skip(backend)
    op = REGISTRY[operation]
    problem = data.draw(problems(**limits(backend)))
    assert_matches(op, op.call(kern, problem), op.call(ref, problem), problem)


@pytest.mark.parametrize("backend", COMPILED)
def test_uint8_matches_the_float_path(backend):
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (11 if backend == "cuda" else 101, 784), dtype=np.uint8)
    floats = pixels.astype(np.float32) * np.float32(1 / 255)
    W = rng.standard_normal((784, 10)).astype(np.float32) * 0.05
    b = rng.standard_normal(10).astype(np.float32)
    kern = kernels_or_skip(backend)
    np.testing.assert_allclose(kern.forward(pixels, W, b), kern.forward(floats, W, b), rtol=1e-4, atol=1e-6)


@pytest.mark.realdata
@pytest.mark.parametrize("backend", COMPILED)
def test_tutorial_run_on_real_mnist_matches_a_float64_reference(backend, mnist_test_split):
    """1000 steps of 100 at lr 0.5 from zero weights, training on the MNIST test images."""
    kern = kernels_or_skip(backend)
    if backend == "cuda" and cuda_simulated():
        pytest.skip("1000 steps take hours in the simulator; see test_model's CUDA-vs-CPU run")
    pixels, labels = mnist_test_split
    order = np.random.default_rng(0).integers(0, len(pixels), 1000 * 100)
    W64, b64 = np.zeros((784, 10)), np.zeros(10)
    ref.train_steps(pixels, labels, W64, b64, order, 100, 0.5)
    W32, b32 = np.zeros((784, 10), np.float32), np.zeros(10, np.float32)
    done, losses = kern.train_steps(pixels, labels, W32, b32, order, 100, 0.5)
    assert done == 1000 and np.all(np.isfinite(losses))
    assert np.abs(W32 - W64).max() <= 1e-4
    assert np.abs(b32 - b64).max() <= 1e-4


@pytest.mark.parametrize("backend", COMPILED)
def test_divergence_is_reported_not_hidden(backend):
    X = np.random.default_rng(5).standard_normal((40, 6)).astype(np.float32)
    X[17, 2] = np.nan
    y = np.zeros(40, np.int64)
    W, b = np.zeros((6, 3), np.float32), np.zeros(3, np.float32)
    done, losses = kernels_or_skip(backend).train_steps(X, y, W, b, np.arange(40), 1, 0.1)
    assert done == 17 and np.isnan(losses[17])
    assert np.all(np.isfinite(W)) and np.all(np.isfinite(b))
