"""The NumPy reference against first principles: finite differences and extreme logits."""

import numpy as np
import pytest

from fastsoftmax.kernels import reference as ref


def problem(rng, n=13, f=9, c=5, dtype=np.float64):
    X = rng.standard_normal((n, f)).astype(dtype)
    W = rng.standard_normal((f, c)).astype(dtype) * 0.5
    b = rng.standard_normal(c).astype(dtype)
    y = rng.integers(0, c, n)
    return X, y, W, b


def test_gradient_matches_central_differences():
    rng = np.random.default_rng(0)
    X, y, W, b = problem(rng)
    _, dW, db = ref.xent_grad(X, y, W, b)
    h = 1e-6
    for params, grad in ((W, dW), (b, db)):
        numeric = np.empty_like(params)
        for idx in np.ndindex(params.shape):
            saved = params[idx]
            params[idx] = saved + h
            up = ref.xent_loss(X, y, W, b)
            params[idx] = saved - h
            down = ref.xent_loss(X, y, W, b)
            params[idx] = saved
            numeric[idx] = (up - down) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_loss_is_finite_and_exact_for_huge_logits(dtype, scale):
    # one feature equal to 1, so the logits are exactly b; the right class is 0
    X = np.ones((3, 1), dtype)
    W = np.zeros((1, 3), dtype)
    b = np.array([scale, 0.0, -scale], dtype)
    y = np.array([0, 1, 2])
    loss = ref.xent_loss(X, y, W, b)
    # exact per-row losses: lse - z[y], with lse = max(z) when the others are negligible
    top = max(scale, 0.0, -scale)
    expected = np.mean([top - scale, top - 0.0, top + scale])
    assert np.isfinite(loss)
    assert loss == pytest.approx(expected, rel=1e-6)
    probs = ref.forward(X, W, b)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-6)


def test_sgd_step_and_train_steps_agree():
    rng = np.random.default_rng(1)
    X, y, W, b = problem(rng)
    W2, b2 = W.copy(), b.copy()
    _, dW, db = ref.xent_grad(X, y, W, b)
    ref.sgd_step(W, b, dW, db, 0.3)
    done, losses = ref.train_steps(X, y, W2, b2, np.arange(len(X)), len(X), 0.3)
    assert done == 1
    np.testing.assert_allclose(W, W2, rtol=1e-12)
    np.testing.assert_allclose(b, b2, rtol=1e-12)


def test_divergence_stops_before_applying_the_bad_step():
    rng = np.random.default_rng(2)
    X, y, W, b = problem(rng)
    X[3, 0] = np.inf
    done, losses = ref.train_steps(X, y, W, b, np.arange(len(X)), 1, 0.1)
    assert done == 3 and not np.isfinite(losses[3]) and np.all(np.isfinite(W))
