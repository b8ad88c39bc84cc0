r"""The NumPy reference backend: the specification every other backend is tested against.

Notation, shared by every backend: ``X`` is ``[N, F]`` (uint8 pixels, scaled by
``1/255``, or floats of W's dtype), ``W`` is ``[F, C]``, ``b`` is ``[C]``, ``y``
holds class indices in ``[0, C)``.

.. math::

    z = X W + b, \qquad
    \mathrm{lse}_i = m_i + \log \sum_c e^{z_{ic} - m_i},\ m_i = \max_c z_{ic}, \qquad
    p_{ic} = e^{z_{ic} - \mathrm{lse}_i}

    L = \frac{1}{N} \sum_i (\mathrm{lse}_i - z_{i y_i}), \qquad
    \frac{\partial L}{\partial W} = X^\top G,\ \frac{\partial L}{\partial b} = \textstyle\sum_i G_i,\quad
    G = (P - \mathrm{onehot}(y)) / N

The loss is computed from the logits through log-sum-exp, never as
``log(softmax)``, so it stays finite for logits of any finite size.
All arithmetic is in W's dtype.
"""

from __future__ import annotations

import numpy as np

from .. import validation
from . import _common
from .pixels import to_float


def as_float(X, dtype):
    """X in ``dtype``: uint8 pixels times ``PIXEL_SCALE``, floats unchanged."""
    return to_float(X, dtype) if X.dtype == np.uint8 else X


def stage(X, y=None):
    """The inputs as they are: backends that compute on the host need no copy (see the CUDA backend's ``stage``)."""
    return X if y is None else (X, y)


def logits(X, W, b):
    """``z = X W + b``, ``[N, C]`` in W's dtype."""
    return as_float(X, W.dtype) @ W + b


def _log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def forward(X, W, b, out=None):
    """Class probabilities ``softmax(X W + b)``.

    Parameters
    ----------
    X : ndarray, uint8 or W's dtype, ``[N, F]``
    W : ndarray, float32 or float64, ``[F, C]``
    b : ndarray, W's dtype, ``[C]``
    out : ndarray, W's dtype, ``[N, C]``, optional

    Returns
    -------
    ndarray, W's dtype, ``[N, C]``
        Rows sum to 1.
    """
    F, C, dtype = validation.weights(W, b)
    X = validation.inputs(X, F, dtype)
    out = validation.output(out, (X.shape[0], C), dtype)
    out[...] = np.exp(_log_softmax(logits(X, W, b)))
    return _common.finite_probabilities(out, dtype)


def predict(X, W, b, out=None):
    """Most probable class of each row, ``argmax_c z_ic`` (int64 ``[N]``).

    Like every inference and loss function of every backend, raises
    :class:`~fastsoftmax.errors.InputError` naming the first row whose logits are
    not finite (NaN or infinity in X, or values that overflow), rather than
    returning a meaningless result.
    """
    F, C, dtype = validation.weights(W, b)
    X = validation.inputs(X, F, dtype)
    out = validation.output(out, (X.shape[0],), np.int64)
    z = logits(X, W, b)
    out[...] = np.where(np.isfinite(z).all(axis=1), z.argmax(axis=1), -1)
    return _common.finite_labels(out, dtype)


def predict_many(X, W, b, out=None):
    """The most probable class of each row under each of M models, int64 ``[M, N]``.

    Parameters
    ----------
    X : ndarray, uint8 or W's dtype, ``[N, F]``
    W : ndarray, float32 or float64, ``[M, F, C]``
    b : ndarray, W's dtype, ``[M, C]``
    out : ndarray, int64, ``[M, N]``, optional

    ``out[m]`` is :func:`predict` of model m; a row whose logits are not finite under any
    model is refused, as :func:`predict` refuses it.
    """
    _, F, C, dtype = validation.stacked_weights(W, b)
    X = validation.inputs(X, F, dtype)
    out = validation.output(out, (W.shape[0], X.shape[0]), np.int64)
    for m in range(W.shape[0]):
        z = logits(X, W[m], b[m])
        out[m] = np.where(np.isfinite(z).all(axis=1), z.argmax(axis=1), -1)
    return _common.finite_labels(out, dtype)


def xent_loss(X, y, W, b):
    """Mean cross-entropy ``mean_i(lse_i - z_{i,y_i})`` as a Python float."""
    F, C, dtype = validation.weights(W, b)
    X = validation.inputs(X, F, dtype)
    y = validation.labels(y, X.shape[0], C)
    return _common.finite_loss(float(_loss_from_logits(logits(X, W, b), y)), dtype)


def _loss_from_logits(z, y):
    rows = np.arange(z.shape[0])
    m = z.max(axis=1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    return (lse - z[rows, y]).mean()


def xent_grad(X, y, W, b, dW=None, db=None):
    """Mean cross-entropy and its gradient with respect to W and b.

    Returns
    -------
    loss : float
    dW : ndarray, W's dtype, ``[F, C]``
        ``X^T (P - onehot(y)) / N``.
    db : ndarray, W's dtype, ``[C]``
        ``sum_i (P_i - onehot(y_i)) / N``.
    """
    F, C, dtype = validation.weights(W, b)
    X = validation.inputs(X, F, dtype)
    y = validation.labels(y, X.shape[0], C)
    dW = validation.output(dW, (F, C), dtype, "dW")
    db = validation.output(db, (C,), dtype, "db")
    return _common.finite_loss(_grad(as_float(X, dtype), y, W, b, dW, db), dtype), dW, db


def _grad(Xf, y, W, b, dW, db):
    z = Xf @ W + b
    loss = _loss_from_logits(z, y)
    g = np.exp(_log_softmax(z))
    g[np.arange(z.shape[0]), y] -= 1
    g /= W.dtype.type(z.shape[0])
    np.matmul(Xf.T, g, out=dW)
    g.sum(axis=0, out=db)
    return float(loss)


def sgd_step(W, b, dW, db, learning_rate):
    """In place: ``W -= learning_rate * dW``, ``b -= learning_rate * db``."""
    learning_rate = validation.sgd_arguments(W, b, dW, db, learning_rate)
    lr = W.dtype.type(learning_rate)
    W -= lr * dW
    b -= lr * db


def xent_sgd_step(X, y, W, b, learning_rate, weight_decay=0.0):
    """One SGD step on batch ``(X, y)`` in place; returns the loss before the step.

    ``W <- W - lr (dL/dW + weight_decay W)``, ``b <- b - lr dL/db``.
    """
    return _common.one_step(train_steps, X, y, W, b, learning_rate, weight_decay)


def train_steps(X, y, W, b, order, batch_size, learning_rate, weight_decay=0.0, losses=None, average=None):
    """Run ``len(order) // batch_size`` SGD steps in place on W and b.

    Step ``s`` uses rows ``X[order[s*batch_size:(s+1)*batch_size]]``.

    Parameters
    ----------
    X : ndarray, uint8 or W's dtype, ``[N, F]``
    y : ndarray, integer, ``[N]``
    W, b : ndarray
        Updated in place.
    order : ndarray, integer, ``[steps * batch_size]``
        Row indices of every batch, in order.
    batch_size : int
    learning_rate : float or ndarray ``[steps]``
        One rate for all steps, or one per step (a decay schedule).
    weight_decay : float
        L2 penalty ``weight_decay / 2 * ||W||^2`` added to the loss's gradient (not to b).
    losses : ndarray, float64, ``[steps]``, optional
        Receives each step's mean loss, computed before its update.
    average : tuple ``(W_avg, b_avg, start, count)``, optional
        Keep a running mean of the weights (averaged SGD) in ``W_avg`` ``[F, C]`` and
        ``b_avg`` ``[C]`` (W's dtype, updated in place): after each applied step
        ``s >= start``, ``W_avg += (W - W_avg) / k`` with ``k = count + s - start + 1``,
        ``count`` being how many snapshots the mean already holds. See
        :class:`fastsoftmax.kernels.validation.Average`.

    Returns
    -------
    steps_done : int
        Equal to ``steps`` unless a loss was not finite: then training stopped at
        that step, without applying its update, and ``losses[steps_done]`` is the
        non-finite loss.
    losses : ndarray, float64, ``[steps]``
    """
    X, W1, b1, run, losses = _common.steps_call(X, y, W, b, order, batch_size, learning_rate, weight_decay, losses,
                                                average)
    done = _train(X, W1, b1, run, int(batch_size))
    return _common.finished(int(done[0]), losses, W, b)


def train_many(X, y, W, b, orders, batch_size, learning_rate, weight_decay=0.0, losses=None, average=None,
               group=None):
    """Train M models at once: each as :func:`train_steps` would train it alone, on a batch order of its group.

    Parameters
    ----------
    X : ndarray, uint8 or W's dtype, ``[N, F]``
    y : ndarray, integer, ``[N]``
    W : ndarray, float32 or float64, ``[M, F, C]``
        Each model's weights, updated in place.
    b : ndarray, W's dtype, ``[M, C]``
    orders : ndarray, integer, ``[G, steps * batch_size]`` (1-D: one group)
        Row indices of each group's batches, in order.
    batch_size : int
    learning_rate : float, or ndarray ``[M]`` or ``[M, steps]``
        One rate for every model and step, one per model, or one per model and step.
    weight_decay : float or ndarray ``[M]``
    losses : ndarray, float64, ``[M, steps]``, optional
        Receives each model's mean batch loss at each step, computed before its update.
    average : tuple ``(W_avg [M, F, C], b_avg [M, C], start, count)``, optional
        Each model's running mean, as :func:`train_steps` keeps it for one; ``start`` and ``count`` are
        numbers or arrays ``[M]``.
    group : ndarray, integer, ``[M]``, optional
        Which row of ``orders`` each model's batches come from (default: all the first).

    Returns
    -------
    steps_done : ndarray, int64, ``[M]``
        ``steps`` for a model that ran every step; else the step whose loss was not finite,
        where that model stopped (the others go on).
    losses : ndarray, float64, ``[M, steps]``

    Raises
    ------
    DivergenceError
        Updates left some models' W or b non-finite (an overflow, with finite losses); its
        ``models`` attribute names them, and ``done`` and ``losses`` are the call's result:
        the other models are complete.

    Model ``m``'s results are those of ``train_steps`` on ``W[m]``, ``b[m]`` and ``orders[group[m]]``.
    """
    X, run = validation.many_call(X, y, W, b, orders, group, batch_size, learning_rate, weight_decay, losses, average)
    return _common.finished_many(_train(X, W, b, run, int(batch_size)), run.losses, W, b)


def _train(X, W, b, run, batch_size):
    """Every model's steps, one model after another; returns steps done ``[M]``."""
    done = np.full(W.shape[0], run.steps, np.int64)
    dW, db = np.empty_like(W[0]), np.empty_like(b[0])
    dtype = W.dtype
    for m in range(W.shape[0]):
        order, losses, rates = run.orders[run.group[m]], run.losses[m], run.rates[m]
        decay = dtype.type(run.decays[m])
        average = run.average
        for step in range(run.steps):
            rows = order[step * batch_size:(step + 1) * batch_size]
            losses[step] = _grad(as_float(X[rows], dtype), run.y[rows], W[m], b[m], dW, db)
            if not np.isfinite(losses[step]):
                done[m] = step
                break
            lr = dtype.type(rates[step])
            if decay:
                dW += decay * W[m]
            W[m] -= lr * dW
            b[m] -= lr * db
            if average is not None and step >= average.start[m]:
                inv = _common.average_inverse(int(average.count[m]), int(average.start[m]), step, dtype)
                W_avg, b_avg = average.W[m], average.b[m]
                W_avg += (W[m] - W_avg) * inv
                b_avg += (b[m] - b_avg) * inv
    return done
