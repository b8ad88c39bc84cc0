"""Every CUDA kernel and every path through the CUDA wrappers, against the NumPy reference.

``test_kernel_parity.py`` draws random problems for every backend; here each of
the CUDA backend's own paths is made to run on purpose: the fast row kernels (per
class count, float and uint8 rows, packed four pixels a word or not, W staged in
shared memory or read from global memory, a persistent grid that strides over
more rows than it has slots), the generic kernels for more classes, non-finite
rows flagged on the device, the fixed-order sums, and training on the cooperative
path and the per-step path split across several blocks, with averaging, weight
decay, per-step rates and a stop before a non-finite step.

In the simulator (the default, see conftest.py) shapes stay small: every GPU
thread is a Python thread. With NUMBA_ENABLE_CUDASIM=0 the same tests run on the GPU.
"""

import importlib
import sys
import types
import warnings

import numpy as np
import pytest

from fastsoftmax.errors import BackendUnavailableError, InputError
from fastsoftmax.kernels import get_backend
from fastsoftmax.kernels import reference as ref

from .conftest import cuda_simulated, kernels_or_skip

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


@pytest.fixture(scope="module")
def kern():
    return kernels_or_skip("cuda")


@pytest.fixture(autouse=True, scope="module")
def brisk_simulator():
    """The simulator runs every GPU thread as a Python thread, and its block manager polls them in
    a loop: with Python's default 5 ms switch interval, each block barrier waits for the poller's
    time slices. A short interval lets the threads run (a third of this file's time); results are
    the same."""
    interval = sys.getswitchinterval()
    if cuda_simulated():
        sys.setswitchinterval(5e-5)
    yield
    sys.setswitchinterval(interval)


def problem(seed, n, f, c, dtype, pixels):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (n, f), dtype=np.uint8) if pixels else rng.standard_normal((n, f)).astype(dtype)
    W = (rng.standard_normal((f, c)) / np.sqrt(f)).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    return X, rng.integers(0, c, n), W, b


def check_rows(kern, X, y, W, b):
    tol = TOL[W.dtype.type]
    out = np.full((len(X), W.shape[1]), np.nan, W.dtype)
    np.testing.assert_allclose(kern.forward(X, W, b, out=out), ref.forward(X, W, b), **tol)
    labels = kern.predict(X, W, b)
    z = ref.logits(X, W, b)
    assert np.all(z[np.arange(len(X)), labels] >= z.max(1) - 1e-5 * (1 + np.abs(z).max(1)))
    assert kern.xent_loss(X, y, W, b) == pytest.approx(ref.xent_loss(X, y, W, b), rel=tol["rtol"], abs=tol["atol"])
    loss, dW, db = kern.xent_grad(X, y, W, b, dW=np.full_like(W, np.nan), db=np.full_like(b, np.nan))
    ref_loss, ref_dW, ref_db = ref.xent_grad(X, y, W, b)
    assert loss == pytest.approx(ref_loss, rel=tol["rtol"], abs=tol["atol"])
    np.testing.assert_allclose(dW, ref_dW, **tol)
    np.testing.assert_allclose(db, ref_db, **tol)


@pytest.mark.parametrize("n, f, c, dtype, pixels", [
    (80, 24, 10, np.float32, True),   # fast, uint8 as uint64 words of 8 pixels; more rows than the grid's slots
    (14, 12, 5, np.float64, True),    # fast, uint8 as uint32 words of 4 pixels
    (13, 13, 3, np.float64, True),    # fast, uint8 one pixel at a time (13 is not a multiple of 4)
    (11, 10, 16, np.float32, False),  # fast at its most classes, float32 rows as complex64 pairs
    (8, 6, 4, np.float64, False),     # fast, float64 rows as complex128 pairs
    (7, 5, 2, np.float32, False),     # fast, float rows of odd width, one value at a time
    (6, 9, 17, np.float32, True),     # generic: more classes than the fast kernels take
    (4, 6, 32, np.float64, False),    # generic, a whole simulated block for one row
])
def test_row_kernels_match_the_reference(kern, n, f, c, dtype, pixels):
    check_rows(kern, *problem(n * f + c, n, f, c, dtype, pixels))


def test_weights_read_from_global_memory_when_they_do_not_fit_shared(kern, monkeypatch):
    from fastsoftmax.kernels import _cuda_kernels

    X, y, W, b = problem(1, 21, 8, 5, np.float32, True)
    assert _cuda_kernels.stages_weights(8, 5, np.float32)
    monkeypatch.setattr(_cuda_kernels, "SHARED_W_BYTES", 0)
    assert not _cuda_kernels.stages_weights(8, 5, np.float32)
    check_rows(kern, X, y, W, b)


@pytest.mark.parametrize("dtype, pack, vector", [(np.float32, 8, 4), (np.float32, 4, 4), (np.float32, 2, 2),
                                                  (np.float64, 8, 2), (np.float64, 2, 2), (np.float32, 1, 1)])
def test_packed_weights_layout(dtype, pack, vector):
    """[class, part of the word, word, weight of the part]: consecutive words' vectors are adjacent,
    so the eight lanes of a slot load one contiguous 128-byte run (no bank conflict)."""
    from fastsoftmax.kernels._cuda_kernels import packed_weights, weight_vector

    assert weight_vector(dtype, pack) == vector
    F, C = 3 * pack, 5
    W = np.arange(F * C, dtype=dtype).reshape(F, C)
    WT = packed_weights(W, pack).reshape(C, pack // vector, F // pack, vector)
    for f in range(F):
        for c in range(C):
            word, pixel = divmod(f, pack)
            assert WT[c, pixel // vector, word, pixel % vector] == W[f, c]
    lanes = [int(np.flatnonzero(packed_weights(W, pack) == W[word * pack, 2])[0]) for word in range(3)]
    assert np.diff(lanes).tolist() == [vector, vector]  # one vector after the other


def test_rows_are_read_in_the_widest_words_that_divide_them():
    from fastsoftmax.kernels._cuda_kernels import packing

    assert packing(np.uint8, 784) == (np.dtype(np.uint64), 8)
    assert packing(np.uint8, 12) == (np.dtype(np.uint32), 4)
    assert packing(np.uint8, 13) == (np.dtype(np.uint8), 1)
    assert packing(np.float32, 784) == (np.dtype(np.complex64), 2)
    assert packing(np.float64, 10) == (np.dtype(np.complex128), 2)
    assert packing(np.float32, 7) == (np.dtype(np.float32), 1)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's NumPy scalars meeting NaN
@pytest.mark.parametrize("c", [4, 18])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_rows_are_flagged_on_the_device(kern, c, dtype):
    X, y, W, b = problem(2, 12, 6, c, dtype, False)
    X[9, 1] = np.inf
    X[5, 3] = np.nan
    for call in (lambda: kern.forward(X, W, b), lambda: kern.predict(X, W, b),
                 lambda: kern.xent_loss(X, y, W, b), lambda: kern.xent_grad(X, y, W, b)):
        with pytest.raises(InputError, match="X row 5 gives non-finite logits"):
            call()


def test_fixed_order_device_sum(kern):
    values = np.random.default_rng(3).standard_normal(3000) * 1e3
    d_values = kern.cuda.to_device(values)
    first, second = kern._device_sum(d_values), kern._device_sum(d_values)
    assert first == second  # same order every time
    assert first == pytest.approx(np.sum(values), rel=1e-12)
    assert kern._device_sum(kern.cuda.to_device(np.array([2.5]))) == 2.5


def test_gradient_over_more_chunks_than_the_grid_has_blocks(kern):
    from fastsoftmax.kernels._cuda_kernels import CHUNK_ROWS

    n = CHUNK_ROWS * 5 + 3  # five full chunks and a remainder
    X, y, W, b = problem(4, n, 40 if cuda_simulated() else 784, 10, np.float32, True)
    loss, dW, db = kern.xent_grad(X, y, W, b)
    ref_loss, ref_dW, ref_db = ref.xent_grad(X, y, W, b)
    np.testing.assert_allclose(dW, ref_dW, **TOL[np.float32])
    np.testing.assert_allclose(db, ref_db, **TOL[np.float32])


# ---------------------------------------------------------------- training


def run(kern, X, y, W, b, order, batch, rates, decay=0.0, average=None, **path):
    W, b = W.copy(), b.copy()
    avg = None if average is None else (np.zeros_like(W), np.zeros_like(b)) + tuple(average)
    if avg is not None:
        avg[0][...] = 0.25  # an average that already holds `count` snapshots
    done, losses = kern._train(X, y, W, b, order, batch, rates, decay, None, avg, **path)
    return done, losses, W, b, avg


@pytest.mark.parametrize("dtype, pixels", [(np.float32, True), (np.float64, False)])
def test_training_paths_match_the_reference(kern, dtype, pixels):
    X, y, W, b = problem(5, 30, 14, 4, dtype, pixels)
    rng = np.random.default_rng(6)
    batch, steps = 7, 5
    order = rng.integers(0, len(X), batch * steps)
    rates = rng.uniform(0.05, 0.5, steps)
    W_ref, b_ref = W.copy(), b.copy()
    avg_ref = (np.full_like(W, 0.25), np.zeros_like(b), 2, 3)
    ref_done, ref_losses = ref.train_steps(X, y, W_ref, b_ref, order, batch, rates, 1e-3, average=avg_ref)
    tol = TOL[dtype]
    results = {}
    for name, path in (("cooperative", dict(path="cooperative")), ("steps, 3 blocks", dict(path="steps", blocks=3)),
                       ("steps, 1 block", dict(path="steps", blocks=1))):
        done, losses, W1, b1, avg = results[name] = run(kern, X, y, W, b, order, batch, rates, 1e-3, (2, 3), **path)
        assert done == ref_done == steps, name
        np.testing.assert_allclose(losses, ref_losses, **tol)
        np.testing.assert_allclose(W1, W_ref, **tol)
        np.testing.assert_allclose(b1, b_ref, **tol)
        np.testing.assert_allclose(avg[0], avg_ref[0], **tol)
        np.testing.assert_allclose(avg[1], avg_ref[1], **tol)
    if cuda_simulated():  # there the cooperative grid is one block: the same sums as one block per step
        coop, single = results["cooperative"], results["steps, 1 block"]
        for a, b_ in zip(coop[1:4] + coop[4][:2], single[1:4] + single[4][:2]):
            assert a.tobytes() == b_.tobytes()


@pytest.mark.parametrize("path", [dict(path="cooperative"), dict(path="steps", blocks=3)])
def test_training_stops_before_a_non_finite_step(kern, path):
    X, y, W, b = problem(7, 20, 9, 3, np.float32, False)
    X[11, 4] = np.nan
    order = np.arange(20)  # batches of 4: rows 8-11 are the third
    before = run(kern, X, y, W, b, order[:8], 4, 0.1, average=(0, 0), **path)
    done, losses, W1, b1, avg = run(kern, X, y, W, b, order, 4, 0.1, average=(0, 0), **path)
    assert done == 2 and np.isnan(losses[2]) and np.all(np.isnan(losses[3:]))
    assert W1.tobytes() == before[2].tobytes() and b1.tobytes() == before[3].tobytes()
    assert avg[0].tobytes() == before[4][0].tobytes()


def test_training_repeats_bitwise(kern):
    X, y, W, b = problem(8, 25, 10, 5, np.float32, True)
    order = np.random.default_rng(9).integers(0, 25, 24)
    for path in (dict(path="cooperative"), dict(path="steps", blocks=3)):
        first, second = (run(kern, X, y, W, b, order, 6, 0.3, 1e-2, **path) for _ in range(2))
        assert first[2].tobytes() == second[2].tobytes() and first[3].tobytes() == second[3].tobytes()
        assert first[1].tobytes() == second[1].tobytes()


def test_a_refused_cooperative_launch_falls_back_to_launches_per_step(kern, monkeypatch):
    """Some shared or virtual GPUs refuse cooperative launches; the driver says so before anything runs."""
    from numba.cuda.cudadrv.driver import CudaAPIError

    class Refused:
        def __getitem__(self, config):
            raise CudaAPIError(720, "CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE")

    X, y, W, b = problem(12, 16, 6, 3, np.float32, True)
    order = np.arange(16)
    B = kern._cooperative_limit("uint8", "float32")
    expected = run(kern, X, y, W, b, order, 4, 0.3, average=(1, 0), path="steps", blocks=B)
    monkeypatch.setattr(kern, "_train_cooperative_kernel", Refused())
    fallback = run(kern, X, y, W, b, order, 4, 0.3, average=(1, 0))
    assert fallback[0] == expected[0] == 4
    for got, want in zip(fallback[1:4] + fallback[4][:2], expected[1:4] + expected[4][:2]):
        assert got.tobytes() == want.tobytes()


def test_average_starting_after_the_call_is_left_alone(kern):
    X, y, W, b = problem(10, 12, 5, 3, np.float64, False)
    done, _, W1, _, avg = run(kern, X, y, W, b, np.arange(12), 4, 0.2, average=(3, 0))
    assert done == 3 and np.all(avg[0] == 0.25) and np.all(avg[1] == 0)


# ---------------------------------------------------------------- launches and loading


def test_no_performance_warning_reaches_the_caller(kern):
    """Small grids are sized on purpose; numba-cuda warns about any grid under 128 blocks."""
    X, y, W, b = problem(11, 5, 8, 3, np.float32, True)
    with warnings.catch_warnings():
        for category in kern._PERFORMANCE_WARNINGS:
            warnings.simplefilter("error", category)
        kern.predict(X, W, b)
        kern.xent_grad(X, y, W, b)
        kern.train_steps(X, y, W.copy(), b.copy(), np.arange(5), 5, 0.1)


def test_the_launch_helper_silences_numbas_grid_size_warning(kern):
    class Kernel:  # numba-cuda warns while configuring the launch, kernel[grid, block]
        def __getitem__(self, config):
            for category in kern._PERFORMANCE_WARNINGS:
                warnings.warn(category("Grid size 1 will likely result in GPU under-utilization"))
            return lambda *args: args

    assert kern._PERFORMANCE_WARNINGS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kern._launch(Kernel(), 1, 32, 1, 2)


def test_numbas_own_cuda_target_asks_for_numba_cuda(monkeypatch):
    """numba 0.61-0.68 without numba-cuda still has a ``numba.cuda``: its deprecated built-in target."""
    import numba

    builtin = types.ModuleType("numba.cuda")
    builtin.is_available = lambda: True  # it would say so, yet cannot run these kernels
    monkeypatch.setattr(numba, "cuda", builtin, raising=False)
    monkeypatch.setitem(sys.modules, "numba.cuda", builtin)
    monkeypatch.delitem(sys.modules, "fastsoftmax.kernels.cuda", raising=False)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'fastsoftmax\[cuda\]'"):
        get_backend("cuda")
    monkeypatch.undo()
    importlib.invalidate_caches()
