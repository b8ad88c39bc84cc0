"""``train_many``: M models in one call, each bitwise what ``train_steps`` makes of it alone.

Every backend's ``train_many`` is checked against its own ``train_steps`` run model by
model (bitwise) and against the reference's (within the dtype's tolerance), with per-model
and per-step rates, weight decays, running averages, several batch orders and a model that
stops at a non-finite loss while the others go on.
"""

import numpy as np
import pytest

from fastsoftmax.errors import InputError, InputTypeError
from fastsoftmax.kernels import reference as ref

from .conftest import kernels_or_skip

BACKENDS = ["numpy", "cpu", "cuda"]
TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def problem(seed, n=53, f=19, c=4, models=5, dtype=np.float32, pixels=True, groups=2, batch=7, steps=6):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (n, f), dtype=np.uint8) if pixels else rng.standard_normal((n, f)).astype(dtype)
    y = rng.integers(0, c, n)
    W = (rng.standard_normal((models, f, c)) * 0.1).astype(dtype)
    b = rng.standard_normal((models, c)).astype(dtype)
    orders = rng.integers(0, n, (groups, steps * batch))
    group = rng.integers(0, groups, models)
    rates = rng.uniform(0.05, 0.6, (models, steps))
    decays = rng.choice([0.0, 1e-3, 0.05], models)
    return X, y, W, b, orders, group, batch, rates, decays


def one_by_one(kern, X, y, W, b, orders, group, batch, rates, decays, average=None):
    """Each model alone through ``train_steps``: (W, b, losses, averages)."""
    W, b = W.copy(), b.copy()
    losses = np.full(rates.shape, np.nan)
    W_avg = b_avg = None
    if average is not None:
        W_avg, b_avg = average[0].copy(), average[1].copy()
    for m in range(W.shape[0]):
        kwargs = {}
        if average is not None:
            kwargs["average"] = (W_avg[m], b_avg[m], int(average[2][m]), int(average[3][m]))
        kern.train_steps(X, y, W[m], b[m], orders[group[m]], batch, rates[m], float(decays[m]), losses=losses[m],
                         **kwargs)
    return W, b, losses, W_avg, b_avg


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, pixels", [(np.float32, True), (np.float64, False), (np.float32, False)])
def test_train_many_is_train_steps_model_by_model_bitwise(backend, dtype, pixels):
    kern = kernels_or_skip(backend)
    small = dict(f=9, steps=3) if backend == "cuda" else {}  # the simulator runs every GPU thread in Python
    X, y, W, b, orders, group, batch, rates, decays = problem(1, dtype=dtype, pixels=pixels, **small)
    rng = np.random.default_rng(2)
    W_avg0, b_avg0 = rng.standard_normal(W.shape).astype(dtype), rng.standard_normal(b.shape).astype(dtype)
    start, count = np.array([0, 3, 9, 1, 2]), np.array([0, 2, 0, 5, 1])
    want = one_by_one(kern, X, y, W, b, orders, group, batch, rates, decays, (W_avg0, b_avg0, start, count))
    W_got, b_got, W_avg, b_avg = W.copy(), b.copy(), W_avg0.copy(), b_avg0.copy()
    done, losses = kern.train_many(X, y, W_got, b_got, orders, batch, rates, decays,
                                   average=(W_avg, b_avg, start, count), group=group)
    np.testing.assert_array_equal(done, np.full(5, rates.shape[1]))
    for got, expected in zip((W_got, b_got, losses, W_avg, b_avg), want):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", [name for name in BACKENDS if name != "numpy"])
def test_train_many_matches_the_reference(backend):
    kern = kernels_or_skip(backend)
    X, y, W, b, orders, group, batch, rates, decays = problem(3, dtype=np.float64, pixels=False, models=4)
    results = []
    for k in (kern, ref):
        W_run, b_run = W.copy(), b.copy()
        done, losses = k.train_many(X, y, W_run, b_run, orders, batch, rates, decays, group=group)
        results.append((done, W_run, b_run, losses))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    for got, want in zip(results[0][1:], results[1][1:]):
        np.testing.assert_allclose(got, want, **TOL[np.float64])


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_model_stopping_leaves_the_others_running(backend):
    """A row of NaN reached by one group's order stops only the models of that group, at that step."""
    kern = kernels_or_skip(backend)
    X, y, W, b, orders, group, batch, rates, decays = problem(4, dtype=np.float32, pixels=False, models=3)
    X[5] = np.nan
    orders[0] = np.where(orders[0] == 5, 6, orders[0])
    orders[1, 3 * batch] = 5   # group 1 meets the NaN row at step 3
    orders[1] = np.where((orders[1] == 5) & (np.arange(orders.shape[1]) != 3 * batch), 6, orders[1])
    group = np.array([0, 1, 0])
    done, losses = kern.train_many(X, y, W, b, orders, batch, rates, decays, group=group)
    np.testing.assert_array_equal(done, [6, 3, 6])
    assert np.isnan(losses[1, 3:]).all() and np.isfinite(losses[[0, 2]]).all()
    assert np.isfinite(W).all() and np.isfinite(b).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_rates_one_per_model_and_a_single_order(backend):
    kern = kernels_or_skip(backend)
    X, y, W, b, orders, _, batch, _, _ = problem(5, models=3, groups=1)
    per_model = np.array([0.1, 0.2, 0.3])
    W1, b1 = W.copy(), b.copy()
    kern.train_many(X, y, W1, b1, orders[0], batch, per_model, 0.01)
    W2, b2, _, _, _ = one_by_one(kern, X, y, W, b, orders, np.zeros(3, int), batch,
                                 np.repeat(per_model[:, None], 6, axis=1), np.full(3, 0.01))
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(b1, b2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("change, error, words", [
    (dict(W=np.zeros((4, 3), np.float32)), InputError, "3-D"),
    (dict(b=np.zeros((2, 3), np.float32)), InputError, "shape (3, 3)"),
    (dict(group=np.array([0, 2, 1])), InputError, "group"),
    (dict(group=None), InputError, "which of the 2 orders"),
    (dict(group=np.array([0.0, 1.0, 1.0])), InputTypeError, "group"),
    (dict(learning_rate=np.ones(4)), InputError, "one per model"),
    (dict(learning_rate=np.array([0.1, np.inf, 0.1])), InputError, "model 1"),
    (dict(weight_decay=np.array([0.0, -1.0, 0.0])), InputError, "weight_decay[1]"),
    (dict(learning_rate=np.array([1.0, 1.0, 1.0]), weight_decay=np.array([0.0, 3.0, 0.0])), InputError, "< 2"),
    (dict(orders=np.zeros((2, 10), np.int64)), InputError, "multiple of batch_size"),
    (dict(orders=np.full((2, 12), 99)), InputError, "X has"),
])
def test_train_many_refuses_bad_arguments_before_any_work(backend, change, error, words):
    kern = kernels_or_skip(backend)
    X, y = np.zeros((20, 4), np.uint8) + 3, np.arange(20) % 3
    args = dict(W=np.ones((3, 4, 3), np.float32), b=np.ones((3, 3), np.float32), orders=np.zeros((2, 12), np.int64),
                learning_rate=0.1, weight_decay=0.0, group=np.array([0, 1, 1]))
    args.update(change)
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        kern.train_many(X, y, args["W"], args["b"], args["orders"], 3, args["learning_rate"], args["weight_decay"],
                        group=args["group"])
    for name, value in before.items():
        np.testing.assert_array_equal(args[name], value)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype, pixels", [(np.float32, True), (np.float64, False)])
def test_predict_many_is_predict_model_by_model(backend, dtype, pixels):
    kern = kernels_or_skip(backend)
    X, _, W, b, *_ = problem(6, n=61 if backend == "cuda" else 601, dtype=dtype, pixels=pixels, models=4)
    got = kern.predict_many(X, W, b)
    for m in range(W.shape[0]):
        np.testing.assert_array_equal(got[m], kern.predict(X, W[m], b[m]))
