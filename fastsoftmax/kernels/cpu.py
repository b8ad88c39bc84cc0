"""The Numba CPU backend: the reference's functions, compiled.

Same names, arguments and results as :mod:`fastsoftmax.kernels.reference`; the
public functions validate and prepare, the ``_``-prefixed kernels compute.

Why the kernels are shaped as they are:

* W is kept transposed, ``Wt = W.T`` ``[C, F]``, so each class's weights are one
  contiguous row and the logits are dot products that vectorise along features.
* Four classes (and, in the update, four batch rows) are handled per pass, so one
  load of the shared operand feeds four FMAs instead of one.
* A batch's rows are gathered once into a small float buffer (uint8 pixels are
  scaled by 1/255 on the way), which stays in L1/L2 for both the forward pass and
  the weight update; the full ``[N, C]`` logits or a float copy of the dataset
  are never materialised.
* The training loop runs every step of a run in one compiled call, and prefetches
  the next batch's rows while the current batch computes: with shuffled batches,
  the latency of gathering rows is what dominates.
* fastmath is on without ``nnan``/``ninf``, so NaN and infinity still propagate and
  a diverging run is detected.
* Everything that runs in parallel (inference, loss) works on fixed chunks of rows
  that each write their own slot, reduced afterwards in chunk order, so results
  do not depend on the number of threads. Training is serial: at batch 100 a
  parallel region per step costs more than it saves on two cores.
"""

from __future__ import annotations

import math
import os

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..data.dataset import PIXEL_SCALE
from . import _checks

#: Off with FASTSOFTMAX_NO_CACHE=1. Numba falls back to a user cache directory by
#: itself when the package directory is read-only.
CACHE = os.environ.get("FASTSOFTMAX_NO_CACHE", "").strip().lower() in ("", "0", "false", "no")
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
_OPTIONS = dict(fastmath=_FASTMATH, cache=CACHE, nogil=True, error_model="numpy")
_kernel = numba.njit(**_OPTIONS)
_parallel_kernel = numba.njit(parallel=True, **_OPTIONS)
# Without reassociation, so a written chain of multiply-adds stays one FMA per term.
_chain_kernel = numba.njit(**{**_OPTIONS, "fastmath": _FASTMATH - {"reassoc"}})

#: Rows per parallel work item. Fixed, so reductions do not depend on thread count.
CHUNK_ROWS = 256
_CACHE_LINE = 64


@intrinsic
def _prefetch(typingctx, arr, row, col):
    """Hint the CPU to start loading the cache line holding ``arr[row, col]`` (no-op semantically)."""
    if not isinstance(arr, types.Array) or arr.ndim != 2:
        return None
    sig = types.void(arr, row, col)

    def codegen(context, builder, signature, args):
        arrty = signature.args[0]
        ary = context.make_array(arrty)(context, builder, args[0])
        inds = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], signature.args[1:])]
        ptr = cgutils.get_item_pointer(context, builder, arrty, ary, inds)
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read (0), keep in all cache levels (3), data cache (1)
        builder.call(fn, [i8p, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@_kernel
def _prefetch_rows(X, order, start, stop):
    step = _CACHE_LINE // X.itemsize
    F = X.shape[1]
    for k in range(start, stop):
        i = order[k]
        for f in range(0, F, step):
            _prefetch(X, i, f)
        _prefetch(X, i, F - 1)


@_kernel
def _load_row(X, i, scale, xf):
    row = X[i]
    for f in range(xf.size):
        xf[f] = row[f] * scale


@_kernel
def _dot_4x4(A, i, B, j, out):
    """``out[i:i+4, j:j+4] += A[i:i+4] @ B[j:j+4].T``: sixteen dot products along the last axis.

    Sixteen independent accumulators hide the FMA latency, and each load of A or B
    feeds four FMAs; this runs near the core's FMA peak where a single dot product
    per pass runs at a third of it.
    """
    a0, a1, a2, a3 = A[i], A[i + 1], A[i + 2], A[i + 3]
    b0, b1, b2, b3 = B[j], B[j + 1], B[j + 2], B[j + 3]
    s00, s01, s02, s03 = out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3]
    s10, s11, s12, s13 = out[i + 1, j], out[i + 1, j + 1], out[i + 1, j + 2], out[i + 1, j + 3]
    s20, s21, s22, s23 = out[i + 2, j], out[i + 2, j + 1], out[i + 2, j + 2], out[i + 2, j + 3]
    s30, s31, s32, s33 = out[i + 3, j], out[i + 3, j + 1], out[i + 3, j + 2], out[i + 3, j + 3]
    for f in range(A.shape[1]):
        x0, x1, x2, x3 = a0[f], a1[f], a2[f], a3[f]
        y0, y1, y2, y3 = b0[f], b1[f], b2[f], b3[f]
        s00 += x0 * y0
        s01 += x0 * y1
        s02 += x0 * y2
        s03 += x0 * y3
        s10 += x1 * y0
        s11 += x1 * y1
        s12 += x1 * y2
        s13 += x1 * y3
        s20 += x2 * y0
        s21 += x2 * y1
        s22 += x2 * y2
        s23 += x2 * y3
        s30 += x3 * y0
        s31 += x3 * y1
        s32 += x3 * y2
        s33 += x3 * y3
    out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3] = s00, s01, s02, s03
    out[i + 1, j], out[i + 1, j + 1], out[i + 1, j + 2], out[i + 1, j + 3] = s10, s11, s12, s13
    out[i + 2, j], out[i + 2, j + 1], out[i + 2, j + 2], out[i + 2, j + 3] = s20, s21, s22, s23
    out[i + 3, j], out[i + 3, j + 1], out[i + 3, j + 2], out[i + 3, j + 3] = s30, s31, s32, s33


@_kernel
def _logits_4rows(Xb, i, Wt, b, Z):
    """``Z[i:i+4] = Xb[i:i+4] @ Wt.T + b``; Wt is zero-padded to a multiple of 4 classes."""
    for r in range(i, i + 4):
        for c in range(Wt.shape[0]):
            Z[r, c] = b[c]
    for j in range(0, Wt.shape[0], 4):
        _dot_4x4(Xb, i, Wt, j, Z)


@_kernel
def _block_logits(Xb, nrows, Wt, b, Z):
    """``Z[:nrows] = Xb[:nrows] @ Wt.T + b`` in 4x4 blocks.

    Xb and Z have a multiple of 4 rows, so there is no remainder code; rows past
    ``nrows`` are computed and ignored.
    """
    for i in range(0, nrows, 4):
        _logits_4rows(Xb, i, Wt, b, Z)


@_kernel
def _row_lse(z, C):
    m = z[0]
    for c in range(1, C):
        m = max(m, z[c])
    s = 0.0
    for c in range(C):
        s += math.exp(z[c] - m)
    return m + math.log(s)


@_kernel
def _row_softmax(z, C, p):
    lse = _row_lse(z, C)
    for c in range(C):
        p[c] = math.exp(z[c] - lse)


@_kernel
def _row_argmax(z, C):
    """Index of the largest of ``z[:C]``, or -1 when any of them is not finite."""
    best = 0
    for c in range(C):
        if not math.isfinite(z[c]):
            return -1
        if z[c] > z[best]:
            best = c
    return best


@_kernel
def _row_xent_grad(z, C, label, gscale, g):
    """Loss of one row; ``g[:C] = gscale * (softmax(z[:C]) - onehot(label))``. One exp per class."""
    m = z[0]
    for c in range(1, C):
        m = max(m, z[c])
    s = 0.0
    for c in range(C):
        e = math.exp(z[c] - m)
        g[c] = e
        s += e
    scale = gscale / s
    for c in range(C):
        g[c] *= scale
    g[label] -= gscale
    return m + math.log(s) - z[label]


@_chain_kernel
def _subtract_outer(Xb, G, nrows, C, Wt, b):
    """``Wt[:C] -= G[:nrows, :C].T @ Xb[:nrows]``, ``b[:C] -= G[:nrows, :C].sum(0)``, in fixed order.

    Blocks of eight batch rows (25 KB in float32) go outside the classes, so the
    block and all of Wt (31 KB) stay in L1 while every class row is updated; with
    classes outside, the whole batch streams from L2 once per class and the update
    runs at half speed. One class row is written per pass: writing several defeats
    LLVM's runtime alias checks and the loop is not vectorised at all.
    """
    r = 0
    while r + 8 <= nrows:
        x0, x1, x2, x3 = Xb[r], Xb[r + 1], Xb[r + 2], Xb[r + 3]
        x4, x5, x6, x7 = Xb[r + 4], Xb[r + 5], Xb[r + 6], Xb[r + 7]
        for c in range(C):
            w = Wt[c]
            g0, g1, g2, g3 = G[r, c], G[r + 1, c], G[r + 2, c], G[r + 3, c]
            g4, g5, g6, g7 = G[r + 4, c], G[r + 5, c], G[r + 6, c], G[r + 7, c]
            for f in range(w.size):
                # Two chains of four fused multiply-adds: 9 FP ops per 8 rows where a
                # summed tree costs 12, and chains short enough for FMA latency to overlap.
                head = w[f] - g0 * x0[f] - g1 * x1[f] - g2 * x2[f] - g3 * x3[f]
                tail = g4 * x4[f] + g5 * x5[f] + g6 * x6[f] + g7 * x7[f]
                w[f] = head - tail
            b[c] = b[c] - g0 - g1 - g2 - g3 - g4 - g5 - g6 - g7
        r += 8
    while r < nrows:
        x = Xb[r]
        for c in range(C):
            g, w = G[r, c], Wt[c]
            for f in range(w.size):
                w[f] -= g * x[f]
            b[c] -= g
        r += 1


@_kernel
def _scale_weights(Wt, factor):
    for c in range(Wt.shape[0]):
        for f in range(Wt.shape[1]):
            Wt[c, f] *= factor


@_kernel
def _train_steps(X, scale, y, Wt, b, C, order, batch_size, rates, weight_decay, losses, Xb, Z, G):
    steps = losses.size
    for s in range(steps):
        start = s * batch_size
        for r in range(batch_size):
            _load_row(X, order[start + r], scale, Xb[r])
        # Prefetch the next batch's rows a few at a time while this batch computes:
        # issued all at once they overflow the core's queue of outstanding misses.
        ahead = start + batch_size if s + 1 < steps else start
        for i in range(0, batch_size, 4):
            _prefetch_rows(X, order, ahead + i, ahead + min(i + 4, batch_size))
            _logits_4rows(Xb, i, Wt, b, Z)
        gscale = rates[s] / batch_size
        loss = 0.0
        for r in range(batch_size):
            loss += _row_xent_grad(Z[r], C, y[order[start + r]], gscale, G[r])
        loss /= batch_size
        losses[s] = loss
        if not math.isfinite(loss):
            return s
        if weight_decay != 0.0:
            _scale_weights(Wt, 1.0 - rates[s] * weight_decay)
        _subtract_outer(Xb, G, batch_size, C, Wt, b)
    return steps


@_kernel
def _xent_grad(X, scale, y, Wt, b, C, dWt, db, Xb, Z, G):
    N = X.shape[0]
    dWt[:] = 0
    db[:] = 0
    gscale = -1.0 / N  # _subtract_outer subtracts; a negative scale accumulates +G^T X
    loss = 0.0
    for start in range(0, N, CHUNK_ROWS):
        rows = min(CHUNK_ROWS, N - start)
        for r in range(rows):
            _load_row(X, start + r, scale, Xb[r])
        _block_logits(Xb, rows, Wt, b, Z)
        for r in range(rows):
            loss += _row_xent_grad(Z[r], C, y[start + r], gscale, G[r])
        _subtract_outer(Xb, G, rows, C, dWt, db)
    return loss / N


@_kernel
def _chunk_logits(X, scale, Wt, b, k, Xb, Z):
    """Logits of rows ``[k*CHUNK_ROWS, ...)`` into Z; returns (first row, row count)."""
    start = k * CHUNK_ROWS
    rows = min(CHUNK_ROWS, X.shape[0] - start)
    for r in range(rows):
        _load_row(X, start + r, scale, Xb[r])
    _block_logits(Xb, rows, Wt, b, Z)
    return start, rows


@_parallel_kernel
def _forward(X, scale, Wt, b, C, out):
    for k in prange((X.shape[0] + CHUNK_ROWS - 1) // CHUNK_ROWS):
        Xb, Z = _chunk_buffers(Wt)
        start, rows = _chunk_logits(X, scale, Wt, b, k, Xb, Z)
        for r in range(rows):
            _row_softmax(Z[r], C, out[start + r])


@_parallel_kernel
def _predict(X, scale, Wt, b, C, out):
    for k in prange((X.shape[0] + CHUNK_ROWS - 1) // CHUNK_ROWS):
        Xb, Z = _chunk_buffers(Wt)
        start, rows = _chunk_logits(X, scale, Wt, b, k, Xb, Z)
        for r in range(rows):
            out[start + r] = _row_argmax(Z[r], C)


@_parallel_kernel
def _xent_loss(X, scale, y, Wt, b, C):
    n_chunks = (X.shape[0] + CHUNK_ROWS - 1) // CHUNK_ROWS
    partial = np.empty(n_chunks)
    for k in prange(n_chunks):
        Xb, Z = _chunk_buffers(Wt)
        start, rows = _chunk_logits(X, scale, Wt, b, k, Xb, Z)
        total = 0.0
        for r in range(rows):
            total += _row_lse(Z[r], C) - Z[r, y[start + r]]
        partial[k] = total
    total = 0.0
    for k in range(n_chunks):
        total += partial[k]
    return total / X.shape[0]


@_kernel
def _chunk_buffers(Wt):
    # Zeroed so that padding rows past the data hold finite values.
    return np.zeros((CHUNK_ROWS, Wt.shape[1]), Wt.dtype), np.zeros((CHUNK_ROWS, Wt.shape[0]), Wt.dtype)


# ---------------------------------------------------------------- public wrappers


def _prepare(X, W, b):
    """Validate; return (X contiguous, scale, Wt [Cp, F] and b [Cp] zero-padded to a multiple of 4 classes, C)."""
    F, C, dtype = _checks.weights(W, b)
    X = _checks.inputs(X, F, dtype)
    scale = dtype.type(PIXEL_SCALE if X.dtype == np.uint8 else 1.0)
    Cp = _round_up(C, 4)
    Wt = np.zeros((Cp, F), dtype)
    Wt[:C] = W.T
    b_pad = np.zeros(Cp, dtype)
    b_pad[:C] = b
    return X, scale, Wt, b_pad, C


def _round_up(n, multiple):
    return (n + multiple - 1) // multiple * multiple


def forward(X, W, b, out=None):
    """Class probabilities ``softmax(X W + b)``; see :func:`fastsoftmax.kernels.reference.forward`."""
    X, scale, Wt, b, C = _prepare(X, W, b)
    out = _checks.output(out, (X.shape[0], C), Wt.dtype)
    _forward(X, scale, Wt, b, C, out)
    return _checks.finite_probabilities(out, Wt.dtype)


def predict(X, W, b, out=None):
    """Most probable class of each row (int64 ``[N]``); see the reference."""
    X, scale, Wt, b, C = _prepare(X, W, b)
    out = _checks.output(out, (X.shape[0],), np.int64)
    _predict(X, scale, Wt, b, C, out)
    return _checks.finite_labels(out, Wt.dtype)


def xent_loss(X, y, W, b):
    """Mean cross-entropy from logits; see the reference."""
    X, scale, Wt, b, C = _prepare(X, W, b)
    y = _checks.labels(y, X.shape[0], C)
    return _checks.finite_loss(float(_xent_loss(X, scale, y, Wt, b, C)), Wt.dtype)


def xent_grad(X, y, W, b, dW=None, db=None):
    """Mean cross-entropy and its gradient ``(dW [F, C], db [C])``; see the reference."""
    X, scale, Wt, b, C = _prepare(X, W, b)
    F = Wt.shape[1]
    y = _checks.labels(y, X.shape[0], C)
    dW = _checks.output(dW, (F, C), Wt.dtype, "dW")
    db = _checks.output(db, (C,), Wt.dtype, "db")
    dWt, db_pad = np.zeros_like(Wt), np.zeros_like(b)
    Xb, Z, G = _buffers(min(X.shape[0], CHUNK_ROWS), Wt)
    loss = _xent_grad(X, scale, y, Wt, b, C, dWt, db_pad, Xb, Z, G)
    _checks.finite_loss(loss, Wt.dtype)
    dW[...] = dWt[:C].T
    db[...] = db_pad[:C]
    return float(loss), dW, db


def sgd_step(W, b, dW, db, learning_rate):
    """In place: ``W -= learning_rate * dW``, ``b -= learning_rate * db``."""
    _checks.sgd_arguments(W, b, dW, db)
    _axpy(W.reshape(-1), dW.reshape(-1), -learning_rate)
    _axpy(b, db, -learning_rate)


@_kernel
def _axpy(y, x, a):
    for i in range(y.size):
        y[i] += a * x[i]


def xent_sgd_step(X, y, W, b, learning_rate, weight_decay=0.0):
    """One fused gradient-and-update step on batch ``(X, y)``; dW is never materialised."""
    return _checks.one_step(train_steps, X, y, W, b, learning_rate, weight_decay)


def train_steps(X, y, W, b, order, batch_size, learning_rate, weight_decay=0.0, losses=None):
    """All SGD steps of a run in one compiled call; see :func:`fastsoftmax.kernels.reference.train_steps`."""
    X, scale, Wt, b_work, C = _prepare(X, W, b)
    y, order, steps, rates, losses = _checks.run_arguments(X, y, W, b, C, order, batch_size,
                                                           learning_rate, losses)
    Xb, Z, G = _buffers(int(batch_size), Wt)
    done = _train_steps(X, scale, y, Wt, b_work, C, order, int(batch_size), rates,
                        float(weight_decay), losses, Xb, Z, G)
    W[...] = Wt[:C].T
    b[...] = b_work[:C]
    return int(done), losses


def _buffers(rows, Wt):
    """Zeroed scratch for one batch: float rows, logits, scaled gradient rows (rows padded to 4)."""
    Cp, F = Wt.shape
    rows = _round_up(rows, 4)
    return np.zeros((rows, F), Wt.dtype), np.zeros((rows, Cp), Wt.dtype), np.zeros((rows, Cp), Wt.dtype)
