"""Every backend against the NumPy reference, on fresh random inputs drawn by hypothesis.

Driven by the kernel registry: adding a backend to ``fastsoftmax.kernels.BACKENDS``
puts it under every test here. The CUDA backend runs in numba-cuda's simulator
unless NUMBA_ENABLE_CUDASIM=0 (see conftest.py); there every GPU thread is a
Python thread, so it gets smaller shapes (still with 1 row, odd batches and
2-20 classes).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsoftmax.kernels import BACKENDS, OPERATIONS
from fastsoftmax.kernels import reference as ref

from .conftest import cuda_simulated, kernels_or_skip

BACKEND_NAMES = [name for name in BACKENDS if name != "numpy"]
DTYPES = [np.float32, np.float64]
# absolute tolerances on probabilities, losses and weights, per dtype
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
POISON = {np.float32: np.float32(np.nan), np.float64: np.nan, np.int64: -12345}
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Largest rows, features and batch drawn: full size, and for the simulated GPU.
FULL = dict(rows=300, features=800, batch=64)
SIMULATOR = dict(rows=40, features=48, batch=9)


def limits(backend):
    return SIMULATOR if backend == "cuda" and cuda_simulated() else FULL


@st.composite
def problems(draw, rows=300, features=800, **_):
    """Shapes that exercise remainders: 1 row, odd batch sizes, 2-20 classes, 1-800 features."""
    n = draw(st.integers(1, rows))
    f = draw(st.integers(1, features))
    c = draw(st.integers(2, 20))
    dtype = draw(st.sampled_from(DTYPES))
    pixels = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (n, f), dtype=np.uint8) if pixels else rng.standard_normal((n, f)).astype(dtype)
    W = (rng.standard_normal((f, c)) / np.sqrt(f)).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    y = rng.integers(0, c, n)
    return X, y, W, b


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_backend_defines_every_operation(name):
    module = kernels_or_skip(name)
    missing = [op for op in OPERATIONS if not callable(getattr(module, op, None))]
    assert not missing, f"{name} lacks {missing}"


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@SETTINGS
@given(data=st.data())
def test_forward_and_predict(backend, data):
    kern = kernels_or_skip(backend)
    X, y, W, b = data.draw(problems(**limits(backend)))
    tol = TOL[W.dtype.type]
    out = np.full((X.shape[0], W.shape[1]), POISON[W.dtype.type], W.dtype)
    kern.forward(X, W, b, out=out)
    np.testing.assert_allclose(out, ref.forward(X, W, b), **tol)
    labels = np.full(X.shape[0], -12345, np.int64)
    kern.predict(X, W, b, out=labels)
    expected = ref.logits(X, W, b)
    # ties within rounding may break either way: the chosen class must be (near) maximal
    chosen = expected[np.arange(len(labels)), labels]
    assert np.all(chosen >= expected.max(1) - 10 * tol["atol"] * (1 + np.abs(expected).max(1)))


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@SETTINGS
@given(data=st.data())
def test_loss_and_gradient(backend, data):
    kern = kernels_or_skip(backend)
    X, y, W, b = data.draw(problems(**limits(backend)))
    tol = TOL[W.dtype.type]
    assert kern.xent_loss(X, y, W, b) == pytest.approx(ref.xent_loss(X, y, W, b), rel=tol["rtol"], abs=tol["atol"])
    dW = np.full_like(W, POISON[W.dtype.type])
    db = np.full_like(b, POISON[W.dtype.type])
    loss, dW, db = kern.xent_grad(X, y, W, b, dW=dW, db=db)
    ref_loss, ref_dW, ref_db = ref.xent_grad(X, y, W, b)
    assert loss == pytest.approx(ref_loss, rel=tol["rtol"], abs=tol["atol"])
    np.testing.assert_allclose(dW, ref_dW, **tol)
    np.testing.assert_allclose(db, ref_db, **tol)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@SETTINGS
@given(data=st.data(), steps=st.integers(1, 6), weight_decay=st.sampled_from([0.0, 1e-3]))
def test_train_steps(backend, data, steps, weight_decay):
    kern = kernels_or_skip(backend)
    X, y, W, b = data.draw(problems(**limits(backend)))
    batch = data.draw(st.integers(1, limits(backend)["batch"]))
    rng = np.random.default_rng(batch * 7 + steps)
    order = rng.integers(0, X.shape[0], batch * steps)
    rates = rng.uniform(0.05, 0.5, steps)
    W1, b1, W2, b2 = W.copy(), b.copy(), W.copy(), b.copy()
    losses = np.full(steps, np.nan)
    done, losses = kern.train_steps(X, y, W1, b1, order, batch, rates, weight_decay, losses=losses)
    ref_done, ref_losses = ref.train_steps(X, y, W2, b2, order, batch, rates, weight_decay)
    tol = TOL[W.dtype.type]
    assert done == ref_done == steps
    np.testing.assert_allclose(losses, ref_losses, **tol)
    np.testing.assert_allclose(W1, W2, **tol)
    np.testing.assert_allclose(b1, b2, **tol)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@SETTINGS
@given(data=st.data(), steps=st.integers(1, 6), start=st.integers(0, 7), count=st.integers(0, 3))
def test_train_steps_averaged(backend, data, steps, start, count):
    """Averaged SGD: the running means of W and b follow the reference's, whatever start and count."""
    kern = kernels_or_skip(backend)
    X, y, W, b = data.draw(problems(**limits(backend)))
    batch = data.draw(st.integers(1, limits(backend)["batch"]))
    rng = np.random.default_rng(batch * 11 + steps)
    order = rng.integers(0, X.shape[0], batch * steps)
    W_avg0 = rng.standard_normal(W.shape).astype(W.dtype)
    b_avg0 = rng.standard_normal(b.shape).astype(b.dtype)
    results = []
    for k in (kern, ref):
        W_run, b_run, W_avg, b_avg = W.copy(), b.copy(), W_avg0.copy(), b_avg0.copy()
        done, _ = k.train_steps(X, y, W_run, b_run, order, batch, 0.3, 1e-3, average=(W_avg, b_avg, start, count))
        results.append((done, W_run, b_run, W_avg, b_avg))
    tol = TOL[W.dtype.type]
    assert results[0][0] == results[1][0] == steps
    for got, want in zip(results[0][1:], results[1][1:]):
        np.testing.assert_allclose(got, want, **tol)
    if start >= steps:
        np.testing.assert_array_equal(results[0][3], W_avg0)  # nothing averaged in this call


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_step_and_fused_step(backend, dtype):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((37, 11)).astype(dtype)
    y = rng.integers(0, 3, 37)
    W = rng.standard_normal((11, 3)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    kern = kernels_or_skip(backend)
    dW, db = rng.standard_normal(W.shape).astype(dtype), rng.standard_normal(3).astype(dtype)
    W1, b1, W2, b2 = W.copy(), b.copy(), W.copy(), b.copy()
    kern.sgd_step(W1, b1, dW, db, 0.25)
    ref.sgd_step(W2, b2, dW, db, 0.25)
    np.testing.assert_allclose(W1, W2, **TOL[dtype])
    np.testing.assert_allclose(b1, b2, **TOL[dtype])
    loss = kern.xent_sgd_step(X, y, W1, b1, 0.5)
    ref_loss = ref.xent_sgd_step(X, y, W2, b2, 0.5)
    assert loss == pytest.approx(ref_loss, rel=TOL[dtype]["rtol"])
    np.testing.assert_allclose(W1, W2, **TOL[dtype])


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_uint8_matches_the_float_path(backend):
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (11 if backend == "cuda" else 101, 784), dtype=np.uint8)
    floats = pixels.astype(np.float32) * np.float32(1 / 255)
    W = rng.standard_normal((784, 10)).astype(np.float32) * 0.05
    b = rng.standard_normal(10).astype(np.float32)
    kern = kernels_or_skip(backend)
    np.testing.assert_allclose(kern.forward(pixels, W, b), kern.forward(floats, W, b), rtol=1e-4, atol=1e-6)


@pytest.mark.realdata
@pytest.mark.parametrize("backend", BACKEND_NAMES)
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


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_divergence_is_reported_not_hidden(backend):
    X = np.random.default_rng(5).standard_normal((40, 6)).astype(np.float32)
    X[17, 2] = np.nan
    y = np.zeros(40, np.int64)
    W, b = np.zeros((6, 3), np.float32), np.zeros(3, np.float32)
    done, losses = kernels_or_skip(backend).train_steps(X, y, W, b, np.arange(40), 1, 0.1)
    assert done == 17 and np.isnan(losses[17])
    assert np.all(np.isfinite(W)) and np.all(np.isfinite(b))
