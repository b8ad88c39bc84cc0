"""Every CUDA kernel and every path through the CUDA wrappers, against the NumPy reference.

``test_kernel_parity.py`` draws random problems for every backend; here each of
the CUDA backend's own paths is made to run on purpose: the fast row kernels (per
class count, float and uint8 rows, packed four pixels a word or not, W staged in
shared memory or read from global memory, a persistent grid that strides over
more rows than it has slots), the generic kernels for more classes, non-finite
rows flagged on the device, the fixed-order sums, and training on the cooperative
path and the per-step path, one slice or several (tiles over several blocks or
taken in turn by one), with averaging, weight decay, per-step rates and a stop
before a non-finite step; train_many bitwise against the CUDA train_steps model
by model (and the reference within tolerance), whatever the models beside, their
order and the grid.

In the simulator (the default, see conftest.py) shapes stay small: every GPU
thread is a Python thread, so the ``sliced`` fixture also patches small training
blocks, as stumpy's tests patch a small threads-per-block. With
NUMBA_ENABLE_CUDASIM=0 the same tests run on the GPU.
"""

import importlib
import re
import sys
import types
import warnings

import numpy as np
import pytest

from fastsoftmax.errors import BackendUnavailableError, InputError
from fastsoftmax.kernels import get_backend
from fastsoftmax.kernels import reference as ref

from . import test_train_many as many
from .conftest import cuda_simulated, kernels_or_skip

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


@pytest.fixture(scope="module")
def kern():
    return kernels_or_skip("cuda")


@pytest.fixture
def brisk():
    """The simulator runs every GPU thread as a Python thread, and its block manager polls them in a
    loop: with Python's default 5 ms switch interval each block barrier waits out the poller's time
    slices. A short interval lets the threads run (a training test takes a third of the time), with
    the same results, for kernels with no static shared array: the simulator creates those on a
    thread's first use, unlocked, so threads switched within it may get arrays of their own. The
    training kernels keep everything in their dynamic shared memory."""
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
    (80, 16, 10, np.float32, True),   # fast, uint8 as uint64 words of 8 pixels; more rows than the grid's slots
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
    X, y, W, b = problem(2, 8, 6, c, dtype, False)
    X[7, 1] = np.inf
    X[5, 3] = np.nan
    for call in (lambda: kern.forward(X, W, b), lambda: kern.predict(X, W, b),
                 lambda: kern.xent_loss(X, y, W, b), lambda: kern.xent_grad(X, y, W, b)):
        with pytest.raises(InputError, match="X row 5 gives non-finite logits"):
            call()


def test_fixed_order_device_sum(kern):
    from fastsoftmax.kernels._cuda_kernels import SUM_ITEMS, THREADS

    values = np.random.default_rng(3).standard_normal(THREADS * SUM_ITEMS * 5 - 7) * 1e3  # sums of sums
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


@pytest.fixture
def sliced(monkeypatch, brisk):
    """Slices of four features, so that this file's small problems cut W into several slices (tiles
    of several models and slices, spread over blocks or taken in turn by one); in the simulator also
    blocks of 16 threads and row parts of four, as stumpy's tests patch a small threads-per-block:
    every GPU thread is a Python thread there. The sums still cross threads, warps' worth of parts
    and tiles."""
    from fastsoftmax.kernels import _cuda_training

    monkeypatch.setattr(_cuda_training, "SLICE_FEATURES", 4)
    if cuda_simulated():
        monkeypatch.setattr(_cuda_training, "TRAIN_THREADS", 16)
        monkeypatch.setattr(_cuda_training, "ROW_PARTS", 4)
    return _cuda_training


def run(kern, X, y, W, b, order, batch, rates, decay=0.0, average=None, **path):
    W, b = W.copy(), b.copy()
    avg = None if average is None else (np.zeros_like(W), np.zeros_like(b)) + tuple(average)
    if avg is not None:
        avg[0][...] = 0.25  # an average that already holds `count` snapshots
    done, losses = kern._train(X, y, W, b, order, batch, rates, decay, None, avg, **path)
    return done, losses, W, b, avg


def same_bits(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


PATHS = [dict(path="cooperative"), dict(path="steps", blocks=3)]


@pytest.mark.parametrize("layout", ["one slice", "slices"])
@pytest.mark.parametrize("dtype, pixels", [(np.float32, True), (np.float64, False)])
def test_training_paths_match_the_reference(kern, brisk, request, layout, dtype, pixels):
    """One slice: a block keeps the batch's rows from phase 1 to phase 3 and prefetches the next
    ones; slices: tiles over three blocks, or all taken in turn by the simulator's one block."""
    if layout == "slices":
        request.getfixturevalue("sliced")
    X, y, W, b = problem(5, 30, 14, 4, dtype, pixels)
    rng = np.random.default_rng(6)
    batch, steps = 7, 4
    order = rng.integers(0, len(X), batch * steps)
    rates = rng.uniform(0.05, 0.5, steps)
    W_ref, b_ref = W.copy(), b.copy()
    avg_ref = (np.full_like(W, 0.25), np.zeros_like(b), 1, 3)
    ref_done, ref_losses = ref.train_steps(X, y, W_ref, b_ref, order, batch, rates, 1e-3, average=avg_ref)
    tol = TOL[dtype]
    results = [run(kern, X, y, W, b, order, batch, rates, 1e-3, (1, 3), **path) for path in PATHS]
    for done, losses, W1, b1, avg in results:
        assert done == ref_done == steps
        np.testing.assert_allclose(losses, ref_losses, **tol)
        np.testing.assert_allclose(W1, W_ref, **tol)
        np.testing.assert_allclose(b1, b_ref, **tol)
        np.testing.assert_allclose(avg[0], avg_ref[0], **tol)
        np.testing.assert_allclose(avg[1], avg_ref[1], **tol)
    # both paths take the same sums, in the same order, whatever the grid
    same_bits(results[0][1:4] + results[0][4][:2], results[1][1:4] + results[1][4][:2])


@pytest.mark.parametrize("path", PATHS)
def test_training_stops_before_a_non_finite_step(kern, brisk, path):
    X, y, W, b = problem(7, 20, 9, 3, np.float32, False)
    X[11, 4] = np.nan
    order = np.arange(20)  # batches of 4: rows 8-11 are the third
    before = run(kern, X, y, W, b, order[:8], 4, 0.1, average=(0, 0), **path)
    done, losses, W1, b1, avg = run(kern, X, y, W, b, order, 4, 0.1, average=(0, 0), **path)
    assert done == 2 and np.isnan(losses[2]) and np.all(np.isnan(losses[3:]))
    assert W1.tobytes() == before[2].tobytes() and b1.tobytes() == before[3].tobytes()
    assert avg[0].tobytes() == before[4][0].tobytes()


def test_training_repeats_bitwise(kern, sliced):
    X, y, W, b = problem(8, 25, 10, 5, np.float32, True)
    order = np.random.default_rng(9).integers(0, 25, 18)
    for path in PATHS:
        first, second = (run(kern, X, y, W, b, order, 6, 0.3, 1e-2, **path) for _ in range(2))
        same_bits(first[1:4], second[1:4])


@pytest.mark.parametrize("refusal", ["CUDAError", "ValueError"])
def test_a_refused_cooperative_launch_falls_back_to_launches_per_step(kern, brisk, monkeypatch, refusal):
    """numba-cuda >= 0.30 launches through cuda.core: a device without cooperative launches (some
    virtual GPUs, MIG) or a driver that refuses one raises cuda.core's CUDAError, a grid beyond
    cuda.core's own occupancy check a ValueError, both before anything runs."""
    from cuda.core._utils.cuda_utils import CUDAError

    real = kern._train_cooperative_kernel

    class Refused:  # the real kernel, whose launch is refused as cuda.core refuses one
        def __getattr__(self, name):
            return getattr(real, name)

        def __getitem__(self, config):
            if refusal == "CUDAError":
                raise CUDAError("CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE: too many blocks in cooperative launch")
            raise ValueError("The specified grid size (2 * 1 * 1) exceeds the limit (1)")

    X, y, W, b = problem(12, 16, 6, 3, np.float32, True)
    order = np.arange(16)
    expected = run(kern, X, y, W, b, order, 4, 0.3, average=(1, 0), path="steps")
    monkeypatch.setattr(kern, "_train_cooperative_kernel", Refused())
    fallback = run(kern, X, y, W, b, order, 4, 0.3, average=(1, 0))
    assert fallback[0] == expected[0] == 4
    same_bits(fallback[1:4] + fallback[4][:2], expected[1:4] + expected[4][:2])


def test_an_error_that_is_no_refusal_is_raised(kern, monkeypatch):
    real = kern._train_cooperative_kernel

    class Broken:
        def __getattr__(self, name):
            return getattr(real, name)

        def __getitem__(self, config):
            raise TypeError("not a launch refusal")

    monkeypatch.setattr(kern, "_train_cooperative_kernel", Broken())
    X, y, W, b = problem(12, 8, 6, 3, np.float32, True)
    with pytest.raises(TypeError, match="not a launch refusal"):
        kern.train_steps(X, y, W, b, np.arange(8), 4, 0.1)


def test_average_starting_after_the_call_is_left_alone(kern, brisk):
    X, y, W, b = problem(10, 12, 5, 3, np.float64, False)
    done, _, W1, _, avg = run(kern, X, y, W, b, np.arange(12), 4, 0.2, average=(3, 0))
    assert done == 3 and np.all(avg[0] == 0.25) and np.all(avg[1] == 0)


# ---------------------------------------------------------------- many models in one pass


def many_problem(seed, dtype=np.float32, pixels=True, models=4, groups=2, steps=3):
    """``tests/test_train_many.py``'s problem at this file's small sizes: 11 features, 3 classes."""
    return many.problem(seed, n=17, f=11, c=3, models=models, dtype=dtype, pixels=pixels, groups=groups, batch=5,
                        steps=steps)


def averages(W, b, seed):
    rng = np.random.default_rng(seed)
    start, count = np.array([0, 2, 5, 1])[:len(W)], np.array([0, 2, 0, 4])[:len(W)]
    return rng.standard_normal(W.shape).astype(W.dtype), rng.standard_normal(b.shape).astype(b.dtype), start, count


def train_many(kern, X, y, W, b, orders, group, batch, rates, decays, average=None, **path):
    """``kern``'s train_many on copies: (W, b, losses, W_avg, b_avg, done)."""
    W, b = W.copy(), b.copy()
    avg = None if average is None else (average[0].copy(), average[1].copy()) + tuple(average[2:])
    done, losses = kern._train_many(X, y, W, b, orders, batch, rates, decays, None, avg, group, **path)
    return W, b, losses, None if avg is None else avg[0], None if avg is None else avg[1], done


@pytest.mark.parametrize("dtype, pixels, path", [(np.float32, True, PATHS[0]), (np.float64, False, PATHS[1]),
                                                 (np.float32, False, PATHS[1])])
def test_train_many_is_train_steps_model_by_model(kern, sliced, dtype, pixels, path):
    """Per-model and per-step rates, per-model decays and running means, two groups of batches:
    bitwise what the CUDA train_steps makes of each model alone, within tolerance of the reference's."""
    X, y, W, b, orders, group, batch, rates, decays = many_problem(1, dtype, pixels)
    average = averages(W, b, 2)
    got = train_many(kern, X, y, W, b, orders, group, batch, rates, decays, average, **path)
    np.testing.assert_array_equal(got[5], np.full(len(W), 3))
    same_bits(got[:5], many.one_by_one(kern, X, y, W, b, orders, group, batch, rates, decays, average))
    reference = many.one_by_one(ref, X, y, W, b, orders, group, batch, rates, decays, average)
    for a, r in zip(got[:5], reference):
        np.testing.assert_allclose(a, r, **TOL[dtype])


def test_a_models_bits_do_not_depend_on_the_models_beside_it_or_the_grid(kern, sliced):
    """The models reversed, a model alone, launches per step on one block or on five: every
    model's W, b and losses are the same bits (its slices are its shape's; the tiles only say who
    works on them)."""
    X, y, W, b, orders, group, batch, rates, decays = many_problem(3, models=3)
    first = train_many(kern, X, y, W, b, orders, group, batch, rates, decays)
    back = slice(None, None, -1)
    reversed_ = train_many(kern, X, y, W[back], b[back], orders, group[back], batch, rates[back], decays[back])
    same_bits([a[back] for a in reversed_[:3]], first[:3])
    alone = train_many(kern, X, y, W[1:2], b[1:2], orders, group[1:2], batch, rates[1:2], decays[1:2])
    same_bits(alone[:3], [a[1:2] for a in first[:3]])
    for blocks in (1, 5):
        same_bits(train_many(kern, X, y, W, b, orders, group, batch, rates, decays, path="steps",
                             blocks=blocks)[:3], first[:3])


def test_rates_one_per_model_a_scalar_and_one_order(kern, sliced):
    X, y, W, b, orders, _, batch, _, _ = many_problem(4, models=3, groups=1)
    one = np.zeros(3, np.int64)
    for rate, per_step in ((np.array([0.1, 0.2, 0.3]), np.repeat([[0.1], [0.2], [0.3]], 3, axis=1)),
                           (0.25, np.full((3, 3), 0.25))):
        W1, b1 = W.copy(), b.copy()
        done, _ = kern.train_many(X, y, W1, b1, orders[0], batch, rate, 0.01)  # a 1-D order: one group
        np.testing.assert_array_equal(done, [3, 3, 3])
        same_bits((W1, b1), many.one_by_one(kern, X, y, W, b, orders, one, batch, per_step, np.full(3, 0.01))[:2])


def test_train_many_takes_staged_rows_and_labels(kern, sliced):
    X, y, W, b, orders, group, batch, rates, decays = many_problem(8, models=2)
    host = train_many(kern, X, y, W, b, orders, group, batch, rates, decays)
    staged = train_many(kern, *kern.stage(X, y), W, b, orders, group, batch, rates, decays)
    same_bits(staged, host)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's NumPy scalars overflowing
def test_a_model_that_stops_leaves_the_others_running(kern, sliced):
    """Group 1 meets a row of NaN at step 1: its model stops there. Model 2's rate makes its first
    update overflow float32: its next loss is not finite, so it stops at step 1 too, its W left
    non-finite, and the call raises DivergenceError naming it (train_steps raises for it alone too),
    with the call's result attached. The others run every step, and every model has the bits it has
    alone."""
    from fastsoftmax.errors import DivergenceError

    X, y, W, b, orders, _, batch, rates, decays = many_problem(5, pixels=False, models=4, steps=3)
    X *= 100  # so that model 2's first update overflows for sure
    X[5] = np.nan
    orders[orders == 5] = 6
    orders[1, batch + 2] = 5
    group = np.array([0, 1, 0, 0])
    rates[2] = 3e38
    decays[2] = 0.0
    W_run, b_run = W.copy(), b.copy()
    with pytest.raises(DivergenceError, match="model 2's update") as raised:
        kern._train_many(X, y, W_run, b_run, orders, batch, rates, decays, None, None, group)
    assert raised.value.models == [2]
    got = (W_run, b_run, raised.value.losses, None, None, raised.value.done)
    np.testing.assert_array_equal(got[5], [3, 1, 1, 3])
    assert np.isnan(got[2][1:3, 1:]).all() and np.isfinite(got[2][[0, 3]]).all()
    assert not np.isfinite(got[0][2]).all() and np.isfinite(got[0][[0, 1, 3]]).all()
    others = [0, 1, 3]
    alone = many.one_by_one(kern, X, y, W[others], b[others], orders, group[others], batch, rates[others],
                            decays[others])
    same_bits([a[others] for a in got[:3]], alone[:3])
    with pytest.raises(DivergenceError):
        kern.train_steps(X, y, W[2].copy(), b[2].copy(), orders[0], batch, rates[2], 0.0)


def test_models_whose_slices_do_not_fit_train_in_several_calls(kern, sliced, monkeypatch):
    """The same bits when the blocks' shared memory holds the batch's rows or not (then they are
    read from global memory), and when it cannot hold every model's slices (then fewer models a call)."""
    X, y, W, b, orders, group, batch, rates, decays = many_problem(6, models=4)
    average = averages(W, b, 7)
    whole = train_many(kern, X, y, W, b, orders, group, batch, rates, decays, average)
    blocks = kern._cooperative_limit("uint8", "float32")
    plan = sliced.plan_training(group, 2, 11, 3, np.float32, batch, blocks)[0]
    assert plan.staged
    w_bytes, x_bytes = 4 * plan.x_offset, 4 * (plan.z_offset - plan.x_offset)
    for limit, staged in ((plan.shared_bytes - 1, 0), (plan.shared_bytes - x_bytes - w_bytes // 2, None)):
        monkeypatch.setattr(sliced, "TRAIN_SHARED_BYTES", limit)
        smaller = sliced.plan_training(group, 2, 11, 3, np.float32, batch, blocks)
        assert smaller is None if staged is None else smaller[0].staged == staged
        same_bits(train_many(kern, X, y, W, b, orders, group, batch, rates, decays, average), whole)


@pytest.mark.parametrize("change, error, words", [
    (dict(W=np.ones((4, 3), np.float32)), InputError, "3-D"),
    (dict(b=np.ones((2, 3), np.float32)), InputError, "shape (3, 3)"),
    (dict(group=np.array([0, 2, 1])), InputError, "group has indices in [0, 2]"),
    (dict(orders=np.full((2, 12), 20)), InputError, "X has 20 rows"),
    (dict(learning_rate=np.ones((3, 5))), InputError, "one per model and step"),
    (dict(weight_decay=np.array([0.0, -1.0, 0.0])), InputError, "weight_decay[1]"),
    (dict(classes="too many"), InputError, "at most"),
    (dict(y=np.arange(20) % 5), InputError, "labels in [0, 4]"),
    (dict(staged_y=np.arange(20) % 5), InputError, "staged y"),
])
def test_train_many_refuses_bad_arguments_before_any_work(kern, change, error, words):
    X, y = np.zeros((20, 4), np.uint8) + 3, np.arange(20) % 3
    args = dict(W=np.ones((3, 4, 3), np.float32), b=np.ones((3, 3), np.float32), orders=np.zeros((2, 12), np.int64),
                learning_rate=0.1, weight_decay=0.0, group=np.array([0, 1, 1]), y=y)
    args.update(change)
    if args.pop("classes", None):
        C = kern.THREADS + 1
        args.update(W=np.ones((3, 4, C), np.float32), b=np.ones((3, C), np.float32))
    if "staged_y" in args:
        X, args["y"] = kern.stage(X, args.pop("staged_y"))
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    with pytest.raises(error, match=re.escape(words)):
        kern.train_many(X, args["y"], args["W"], args["b"], args["orders"], 3, args["learning_rate"],
                        args["weight_decay"], group=args["group"])
    for name, value in before.items():
        np.testing.assert_array_equal(args[name], value)


def test_slices_narrow_as_classes_grow(monkeypatch):
    """784 pixels: 25 slices of 31 or 32 for 10 classes; for 256 float64 classes a slice of 32
    features would be 64 KiB, so slices of 8 (16 KiB). (The GPU's sizes; the simulator keeps one.)"""
    from fastsoftmax.kernels import _cuda_training
    from fastsoftmax.kernels._cuda_training import feature_slices

    monkeypatch.setattr(_cuda_training, "SLICE_FEATURES", 32)
    monkeypatch.setattr(_cuda_training, "SLICE_BYTES", 16 * 1024)
    assert feature_slices(784, 10, np.float32) == 25
    assert feature_slices(784, 256, np.float64) == 98
    assert feature_slices(3, 10, np.float32) == 1


def test_a_models_slices_depend_on_its_shape_only(sliced):
    """Feature slices from (features, classes, dtype); tiles cover every (model, slice) once, a
    tile's models share a group, and no more tiles than blocks while models can be grouped."""
    assert sliced.feature_slices(11, 3, np.float32) == -(-11 // sliced.SLICE_FEATURES)
    group = np.array([1, 0, 1, 1, 0, 2])
    seen = []
    for blocks in (1, 4, 9, 100):
        plan, tiles, members, grid = sliced.plan_training(group, 3, 11, 3, np.float32, 5, blocks)
        assert plan.slices == sliced.feature_slices(11, 3, np.float32) and grid == min(blocks, len(tiles))
        assert grid * plan.tiles_per_block >= len(tiles) and tiles[:, 3].max() <= plan.tile_models
        units = sorted((int(members[first + i]), int(k)) for g, k, first, count in tiles for i in range(count))
        assert units == sorted((m, k) for m in range(6) for k in range(plan.slices))
        for g, k, first, count in tiles:
            assert (group[members[first:first + count]] == g).all()
        seen.append(len(tiles))
    assert seen[0] == 3 * plan.slices and seen[-1] == 6 * plan.slices  # one tile a group, one a model


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
