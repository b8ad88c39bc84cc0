"""The Numba CPU backend: the reference's functions, compiled.

Same names, arguments and results as :mod:`fastsoftmax.kernels.reference`. The
functions here validate and prepare; the kernels they call are in
``_cpu_kernels.py`` (inference, loss, gradient) and ``_cpu_training.py`` (the
training loop that runs a whole run in one call, on up to two threads).
"""

from __future__ import annotations

import numpy as np

from .. import validation
from . import _common, _cpu_threads, _cpu_training
from ._cpu_kernels import (
    CACHE,
    _axpy,
    _forward,
    _predict,
    _predict_many,
    _xent_grad,
    _xent_loss,
    chunk_buffers,
    chunk_count,
    class_blocks,
    padded_classes,
)
from .pixels import PIXEL_SCALE

__all__ = ["CACHE", "forward", "predict", "xent_loss", "xent_grad", "sgd_step", "xent_sgd_step",
           "train_steps", "train_many", "predict_many", "stage"]


def stage(X, y=None):
    """The inputs as they are: the CPU kernels read X and y where they lie (see the CUDA backend's ``stage``)."""
    return X if y is None else (X, y)


def _prepare(X, W, b):
    """Validate; return (X contiguous, scale, Wt [Cp, F] and b [Cp] zero-padded to Cp classes, C).

    Cp is :func:`padded_classes`: the kernels work on blocks of four or five classes.
    """
    F, C, dtype = validation.weights(W, b)
    X = validation.inputs(X, F, dtype)
    scale = dtype.type(PIXEL_SCALE if X.dtype == np.uint8 else 1.0)
    return (X, scale, *_padded(W, b, padded_classes(C)), C)


def _padded(W, b, Cp):
    """``(W.T, b)`` zero-padded to Cp classes: ``Wt [Cp, F]``, ``b [Cp]``."""
    Wt = np.zeros((Cp, W.shape[0]), W.dtype)
    Wt[:W.shape[1]] = W.T
    b_pad = np.zeros(Cp, b.dtype)
    b_pad[:b.size] = b
    return Wt, b_pad


def _on_chunks(kernel, X, Wt, *args):
    """Run a chunk kernel over X's rows on the backend's threads, each with its own :class:`ChunkBuffers`."""
    _cpu_threads.split(kernel, chunk_count(X.shape[0]), lambda: chunk_buffers(Wt.shape[0], Wt.dtype),
                       *args, class_blocks(Wt.shape[0]))


def forward(X, W, b, out=None):
    """Class probabilities ``softmax(X W + b)``; see :func:`fastsoftmax.kernels.reference.forward`."""
    X, scale, Wt, b, C = _prepare(X, W, b)
    out = validation.output(out, (X.shape[0], C), Wt.dtype)
    _on_chunks(_forward, X, Wt, X, scale, Wt, b, C, out)
    return _common.finite_probabilities(out, Wt.dtype)


def predict(X, W, b, out=None):
    """Most probable class of each row (int64 ``[N]``); see the reference."""
    X, scale, Wt, b, C = _prepare(X, W, b)
    out = validation.output(out, (X.shape[0],), np.int64)
    _on_chunks(_predict, X, Wt, X, scale, Wt, b, C, out)
    return _common.finite_labels(out, Wt.dtype)


def predict_many(X, W, b, out=None):
    """The most probable class of each row under each of M models (int64 ``[M, N]``); see the reference.
    Each chunk of rows is read once for all the models."""
    _, F, C, dtype = validation.stacked_weights(W, b)
    X = validation.inputs(X, F, dtype)
    scale = dtype.type(PIXEL_SCALE if X.dtype == np.uint8 else 1.0)
    Wt, b_pad = _stacked_padded(W, b, padded_classes(C))
    out = validation.output(out, (W.shape[0], X.shape[0]), np.int64)
    _on_chunks(_predict_many, X, Wt[0], X, scale, Wt, b_pad, C, out)
    return _common.finite_labels(out, dtype)


def xent_loss(X, y, W, b):
    """Mean cross-entropy from logits; see the reference."""
    X, scale, Wt, b, C = _prepare(X, W, b)
    y = validation.labels(y, X.shape[0], C)
    partial = np.zeros(chunk_count(X.shape[0]))
    _on_chunks(_xent_loss, X, Wt, X, scale, y, Wt, b, C, partial)
    return _common.finite_loss(_sum_in_order(partial) / X.shape[0], Wt.dtype)


def _sum_in_order(values):
    """The sum of float64 ``values`` added one by one in order (``np.sum`` pairs them by block size)."""
    total = 0.0
    for value in values.tolist():
        total += value
    return total


def xent_grad(X, y, W, b, dW=None, db=None):
    """Mean cross-entropy and its gradient ``(dW [F, C], db [C])``; see the reference."""
    X, scale, Wt, b, C = _prepare(X, W, b)
    F = Wt.shape[1]
    y = validation.labels(y, X.shape[0], C)
    dW = validation.output(dW, (F, C), Wt.dtype, "dW")
    db = validation.output(db, (C,), Wt.dtype, "db")
    dWt, db_pad = np.zeros_like(Wt), np.zeros_like(b)
    loss = _xent_grad(X, scale, y, Wt, b, C, dWt, db_pad, class_blocks(Wt.shape[0]),
                      chunk_buffers(Wt.shape[0], Wt.dtype), chunk_count(X.shape[0]))
    _common.finite_loss(loss, Wt.dtype)
    dW[...] = dWt[:C].T
    db[...] = db_pad[:C]
    return float(loss), dW, db


def sgd_step(W, b, dW, db, learning_rate):
    """In place: ``W -= learning_rate * dW``, ``b -= learning_rate * db``."""
    learning_rate = validation.sgd_arguments(W, b, dW, db, learning_rate)
    _axpy(W.reshape(-1), dW.reshape(-1), -learning_rate)
    _axpy(b, db, -learning_rate)


def xent_sgd_step(X, y, W, b, learning_rate, weight_decay=0.0):
    """One fused gradient-and-update step on batch ``(X, y)``; dW is never materialised."""
    return _common.one_step(train_steps, X, y, W, b, learning_rate, weight_decay)


def train_steps(X, y, W, b, order, batch_size, learning_rate, weight_decay=0.0, losses=None, average=None):
    """All SGD steps of a run in one compiled call; see :func:`fastsoftmax.kernels.reference.train_steps`.

    The one-model case of :func:`train_many`: the same compiled loop, so a model's bits do not
    depend on how many others it is trained with.
    """
    X, W1, b1, run, losses = _common.steps_call(X, y, W, b, order, batch_size, learning_rate, weight_decay, losses,
                                                average)
    done = _train(X, W1, b1, run, int(batch_size))
    return _common.finished(int(done[0]), losses, W, b)


def train_many(X, y, W, b, orders, batch_size, learning_rate, weight_decay=0.0, losses=None, average=None,
               group=None):
    """M models in one call, models sharing a batch order reading its rows once, on every thread Numba allows;
    see :func:`fastsoftmax.kernels.reference.train_many`."""
    X, run = validation.many_call(X, y, W, b, orders, group, batch_size, learning_rate, weight_decay, losses, average)
    return _common.finished_many(_train(X, W, b, run, int(batch_size)), run.losses, W, b)


def _train(X, W, b, run, batch_size):
    """``run`` (a checked :class:`~fastsoftmax.validation.Run`) on the compiled loop; W, b and the average
    updated in place; returns steps done ``[M]``."""
    C = W.shape[2]
    scale = W.dtype.type(PIXEL_SCALE if X.dtype == np.uint8 else 1.0)
    Wt, b_work = _stacked_padded(W, b, padded_classes(C))
    average = None
    if run.average is not None:
        average = (*_stacked_padded(run.average.W, run.average.b, Wt.shape[1]),
                   _common.many_average_weights(run.average, run.steps, W.dtype))
    done = _cpu_training.run_many(X, scale, run.y, Wt, b_work, C, run.orders, run.group, batch_size, run.rates,
                                  run.decays, run.losses, average)
    W[...] = Wt[:, :C].transpose(0, 2, 1)
    b[...] = b_work[:, :C]
    if average is not None:
        run.average.W[...] = average[0][:, :C].transpose(0, 2, 1)
        run.average.b[...] = average[1][:, :C]
    return done


def _stacked_padded(W, b, Cp):
    """``(W.T, b)`` of each model zero-padded to Cp classes: ``Wt [M, Cp, F]``, ``b [M, Cp]``."""
    M, F, C = W.shape
    Wt = np.zeros((M, Cp, F), W.dtype)
    Wt[:, :C] = W.transpose(0, 2, 1)
    b_pad = np.zeros((M, Cp), b.dtype)
    b_pad[:, :C] = b
    return Wt, b_pad
