"""``fit_many``: each model ends bitwise where its own ``fit`` takes it, and bad input changes no model."""

import pickle

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax.model import training

RNG = np.random.default_rng(21)
X = RNG.integers(0, 256, (403, 29), dtype=np.uint8)
Y = np.array(["a", "b", "c", "d"])[(X[:, :4].astype(int) + RNG.integers(0, 200, (403, 4))).argmax(axis=1)]
X_VAL, Y_VAL = X[:60], Y[:60]


def grid():
    """Models that differ in everything a pass can vary; two pairs share a seed (and so a batch order)."""
    return [fs.SoftmaxRegression(learning_rate=0.3, seed=0, batch_size=16),
            fs.SoftmaxRegression(learning_rate=0.1, lr_decay=0.5, seed=0, batch_size=16),
            fs.SoftmaxRegression(learning_rate=0.2, weight_decay=1e-3, average=100, seed=1, batch_size=16),
            fs.SoftmaxRegression(learning_rate=0.2, average=True, seed=1, batch_size=16, steps=7),
            fs.SoftmaxRegression(learning_rate=0.5, seed=2, batch_size=10, epochs=0.75),
            fs.SoftmaxRegression(learning_rate=0.05, seed=3, batch_size=16, dtype="float32"),
            fs.SoftmaxRegression(learning_rate=0.4, seed=0, batch_size=10)]


def state_bytes(model):
    """Everything fit learns, as bytes: weights, average, step count, classes, history, batch order."""
    return pickle.dumps(model._state)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_each_model_ends_where_its_own_fit_takes_it(backend, shuffle):
    together = [m.set_params(backend=backend) for m in grid()]
    alone = [m.set_params(backend=backend) for m in grid()]
    fs.fit_many(together, X, Y, steps=None, shuffle=shuffle, validation_data=(X_VAL, Y_VAL))
    for a, b in zip(together, alone):
        b.fit(X, Y, shuffle=shuffle, validation_data=(X_VAL, Y_VAL))
        assert state_bytes(a) == state_bytes(b)
        np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_warm_started_models_continue_as_their_own_fit_does():
    first = [m.set_params(warm_start=True) for m in grid()[:4]]
    second = [m.set_params(warm_start=True) for m in grid()[:4]]
    fs.fit_many(first, X, Y, steps=13)
    for model in second:
        model.fit(X, Y, steps=13)
    fs.fit_many(first, X, Y, steps=30)
    for model in second:
        model.fit(X, Y, steps=30)
    assert [state_bytes(m) for m in first] == [state_bytes(m) for m in second]


def test_models_with_one_seed_share_one_batch_order(monkeypatch):
    """Five orders for seven models (seeds 0, 0, 1, 1, 3 in batches of 16; 2, 0 in batches of 10): one draw
    a group a call, each batch size a pass of its own."""
    from fastsoftmax.data import BatchOrder

    draws = []
    real = BatchOrder.rows
    monkeypatch.setattr(BatchOrder, "rows", lambda self, count, shuffle=True: (draws.append(count),
                                                                               real(self, count, shuffle))[1])
    fs.fit_many(grid(), X, Y, steps=5)
    assert sorted(draws) == [50, 50, 80, 80, 80]


def fitted(models):
    fs.fit_many(models, X, Y, steps=4)
    return models, [state_bytes(m) for m in models]


@pytest.mark.parametrize("bad, error, words", [
    (lambda ms: ms + [ms[0]], fs.InputError, "same object"),
    (lambda ms: ms + ["model"], fs.InputTypeError, "not a SoftmaxRegression"),
    (lambda ms: [], fs.InputError, "empty"),
    (lambda ms: ms[0], fs.InputTypeError, "list of SoftmaxRegression"),
    (lambda ms: ms + [fs.SoftmaxRegression(backend="numpy")], fs.InputError, "backend"),
    (lambda ms: ms + [fs.SoftmaxRegression(dtype="float64")], fs.InputError, "dtype"),
    (lambda ms: ms + [fs.SoftmaxRegression(learning_rate=-1)], fs.InputError, "learning_rate"),
])
def test_bad_lists_are_refused_before_any_work(bad, error, words):
    models, before = fitted(grid())
    with pytest.raises(error, match=words):
        fs.fit_many(bad(models), X, Y, steps=9)
    assert [state_bytes(m) for m in models] == before


def test_a_diverging_model_leaves_every_model_as_it_was():
    models, before = fitted([m.set_params(warm_start=True) for m in grid()])
    huge = X.astype(np.float32) * np.float32(1e36)
    with pytest.raises(fs.DivergenceError):
        fs.fit_many(models + [fs.SoftmaxRegression(learning_rate=1e30, batch_size=16)], huge, Y, steps=9)
    assert [state_bytes(m) for m in models] == before


def test_a_nan_row_leaves_every_model_as_it_was():
    models, before = fitted(grid())
    bad = X.astype(np.float32)
    bad[77, 3] = np.nan
    with pytest.raises(fs.InputError, match="row 77"):
        fs.fit_many(models, bad, Y, epochs=2)
    assert [state_bytes(m) for m in models] == before


def test_ctrl_c_keeps_the_completed_calls(monkeypatch):
    models = grid()[:3]
    monkeypatch.setattr(training, "MAX_STEPS_PER_CALL", 4)
    calls = []
    real = training._train_chunk

    def interrupted(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(training, "_train_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fs.fit_many(models, X, Y, steps=20)
    assert [m.n_iter_ for m in models] == [8, 8, 8]


def test_a_pass_adds_weights_not_a_copy_of_x():
    import tracemalloc

    big = np.random.default_rng(0).integers(0, 256, (40_000, 784), dtype=np.uint8)  # 31 MB
    labels = np.arange(40_000) % 10
    models = [fs.SoftmaxRegression(learning_rate=r) for r in (0.01, 0.02, 0.03, 0.04)]
    fs.fit_many(models, big[:500], labels[:500], steps=2)  # compile outside the measurement
    tracemalloc.start()
    fs.fit_many(models, big, labels, steps=50)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < big.nbytes / 4, f"fit_many allocated {peak / 2**20:.1f} MiB for a {big.nbytes / 2**20:.0f} MiB X"
