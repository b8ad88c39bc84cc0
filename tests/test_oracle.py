"""The estimator against its documentation, written out as a plain NumPy loop.

Every hyper-parameter at once (no shuffling, a row count the batch size does not divide,
inverse-time learning-rate decay, weight decay and averaging from a sample count), and
inference with a bias far from zero: a setting dropped, applied twice or half applied
changes the weights or the predictions, and fails here.
"""

import numpy as np
import pytest

import fastsoftmax as fs

N, F, BATCH, STEPS = 103, 7, 10, 37
RATE, LR_DECAY, WEIGHT_DECAY, AVERAGE_FROM = 0.3, 0.7, 0.02, 250  # averaging once 250 samples were seen


def problem():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((N, F))
    names = np.array(["ant", "bee", "cat", "dog"])
    y = names[(X[:, :4] + rng.standard_normal((N, 4))).argmax(axis=1)]
    return X, y, names


def documented_recipe(X, y_index, n_classes):
    """README's recipe step by step: batches are consecutive slices wrapping around (``shuffle=False``),
    step s uses ``learning_rate / (1 + lr_decay * s / steps_per_epoch)`` with ``steps_per_epoch = N //
    batch_size``, the gradient of mean cross-entropy plus ``weight_decay * W`` (not b), and the average of
    the weights after each step s with ``s * batch_size >= average``."""
    W, b = np.zeros((F, n_classes)), np.zeros(n_classes)
    W_avg, b_avg, snapshots = np.zeros_like(W), np.zeros_like(b), 0
    rows_in_order = np.arange(STEPS * BATCH) % N
    steps_per_epoch = N // BATCH
    for s in range(STEPS):
        rows = rows_in_order[s * BATCH:(s + 1) * BATCH]
        z = X[rows] @ W + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(BATCH), y_index[rows]] -= 1
        p /= BATCH
        rate = RATE / (1 + LR_DECAY * s / steps_per_epoch)
        W -= rate * (X[rows].T @ p + WEIGHT_DECAY * W)
        b -= rate * p.sum(axis=0)
        if s * BATCH >= AVERAGE_FROM:
            snapshots += 1
            W_avg += (W - W_avg) / snapshots
            b_avg += (b - b_avg) / snapshots
    return W, b, W_avg, b_avg


@pytest.mark.parametrize("backend, tol", [("numpy", 1e-12), ("cpu", 1e-10)])
@pytest.mark.parametrize("averaged", [False, True])
def test_fit_is_the_documented_recipe(backend, tol, averaged):
    X, y, names = problem()
    model = fs.SoftmaxRegression(backend=backend, dtype="float64", learning_rate=RATE, batch_size=BATCH,
                                 lr_decay=LR_DECAY, weight_decay=WEIGHT_DECAY,
                                 average=AVERAGE_FROM if averaged else False)
    model.fit(X, y, steps=STEPS, shuffle=False)
    W, b, W_avg, b_avg = documented_recipe(X, np.searchsorted(names, y), names.size)
    np.testing.assert_array_equal(model.classes_, names)
    np.testing.assert_allclose(model.coef_.T, W_avg if averaged else W, rtol=tol, atol=tol)
    np.testing.assert_allclose(model.intercept_, b_avg if averaged else b, rtol=tol, atol=tol)
    assert model.n_iter_ == STEPS


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_inference_is_softmax_of_x_w_plus_b(backend):
    X, y, names = problem()
    common = np.where(np.arange(N) % 3 == 0, y, "ant")  # one class far more common: its bias stands out
    model = fs.SoftmaxRegression(backend=backend, dtype="float64", batch_size=BATCH).fit(X, common, steps=60)
    z = X @ model.coef_.T + model.intercept_
    assert np.any((X @ model.coef_.T).argmax(axis=1) != z.argmax(axis=1))  # the bias decides some rows
    y = common
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(X), expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(model.predict(X), names[z.argmax(axis=1)])
    assert model.score(X, y) == np.mean(names[z.argmax(axis=1)] == y)
