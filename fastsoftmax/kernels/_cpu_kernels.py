"""The Numba CPU kernels: the arithmetic behind :mod:`fastsoftmax.kernels.cpu`.

Nothing here validates; the wrappers in ``cpu.py`` do that once, then call in.

Why the kernels are shaped as they are:

* W is kept transposed, ``Wt = W.T`` ``[C, F]``, so each class's weights are one
  contiguous row and the logits are dot products that vectorise along features.
* Classes go in blocks of four or five and batch rows in blocks of four, so one
  load of a shared operand feeds four or five FMAs instead of one; Wt is padded
  with zero classes to a whole number of blocks.
* A batch's rows are gathered once into a small float buffer (uint8 pixels are
  scaled by 1/255 on the way), which stays in L1/L2 for both the forward pass and
  the weight update; the full ``[N, C]`` logits or a float copy of the dataset
  are never materialised.
* fastmath is on without ``nnan``/``ninf``, so NaN and infinity still propagate and
  a diverging run is detected.
* Everything that runs in parallel (inference, loss) works on fixed chunks of rows
  that each write their own slot, reduced afterwards in chunk order, so results
  do not depend on the number of threads. Training is in ``_cpu_training.py``.
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


def item_pointer(context, builder, arrty, arr, indices, indextypes):
    """LLVM pointer to ``arr[indices]``, for the intrinsics here and in ``_cpu_training.py``."""
    ary = context.make_array(arrty)(context, builder, arr)
    inds = [context.cast(builder, v, t, types.intp) for v, t in zip(indices, indextypes)]
    return cgutils.get_item_pointer(context, builder, arrty, ary, inds)


def round_up(n, multiple):
    """``n`` rounded up to a multiple of ``multiple`` (host side: padding of classes, rows, features)."""
    return (n + multiple - 1) // multiple * multiple


@intrinsic
def _prefetch(typingctx, arr, row, col):
    """Hint the CPU to start loading the cache line holding ``arr[row, col]`` (no-op semantically)."""
    if not isinstance(arr, types.Array) or arr.ndim != 2:
        return None
    sig = types.void(arr, row, col)

    def codegen(context, builder, signature, args):
        ptr = item_pointer(context, builder, signature.args[0], args[0], args[1:], signature.args[1:])
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read (0), locality 2 (x86 prefetcht1: L2 and outward, not L1), data cache (1).
        # Into L1 the rows evicted the weights the logits blocks were using: 1.5x slower.
        builder.call(fn, [i8p, i32(0), i32(2), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@_kernel
def _prefetch_rows(X, order, start, stop, f0, f1):
    """Prefetch ``X[order[k], f0:f1]`` for k in ``[start, stop)``."""
    step = _CACHE_LINE // X.itemsize
    for k in range(start, stop):
        i = order[k]
        for f in range(f0, f1, step):
            _prefetch(X, i, f)
        _prefetch(X, i, f1 - 1)


@_kernel
def _scale_row(src, scale, dst):
    """``dst[:n] = src * scale``, n = ``src.size``: one row into a float buffer (uint8 scaled by 1/255)."""
    for f in range(src.size):
        dst[f] = src[f] * scale


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
def _dot_4x5(A, i, B, j, out):
    """``out[i:i+4, j:j+5] += A[i:i+4] @ B[j:j+5].T``: :func:`_dot_4x4` for classes in fives.

    Ten classes (MNIST's) are two blocks of five; in blocks of four they would be
    padded to twelve and a sixth of the arithmetic wasted.
    """
    a0, a1, a2, a3 = A[i], A[i + 1], A[i + 2], A[i + 3]
    b0, b1, b2, b3, b4 = B[j], B[j + 1], B[j + 2], B[j + 3], B[j + 4]
    s00, s01, s02, s03, s04 = out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3], out[i, j + 4]
    s10, s11, s12, s13, s14 = out[i + 1, j], out[i + 1, j + 1], out[i + 1, j + 2], out[i + 1, j + 3], out[i + 1, j + 4]
    s20, s21, s22, s23, s24 = out[i + 2, j], out[i + 2, j + 1], out[i + 2, j + 2], out[i + 2, j + 3], out[i + 2, j + 4]
    s30, s31, s32, s33, s34 = out[i + 3, j], out[i + 3, j + 1], out[i + 3, j + 2], out[i + 3, j + 3], out[i + 3, j + 4]
    for f in range(A.shape[1]):
        x0, x1, x2, x3 = a0[f], a1[f], a2[f], a3[f]
        y0, y1, y2, y3, y4 = b0[f], b1[f], b2[f], b3[f], b4[f]
        s00 += x0 * y0
        s01 += x0 * y1
        s02 += x0 * y2
        s03 += x0 * y3
        s04 += x0 * y4
        s10 += x1 * y0
        s11 += x1 * y1
        s12 += x1 * y2
        s13 += x1 * y3
        s14 += x1 * y4
        s20 += x2 * y0
        s21 += x2 * y1
        s22 += x2 * y2
        s23 += x2 * y3
        s24 += x2 * y4
        s30 += x3 * y0
        s31 += x3 * y1
        s32 += x3 * y2
        s33 += x3 * y3
        s34 += x3 * y4
    out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3], out[i, j + 4] = s00, s01, s02, s03, s04
    out[i + 1, j], out[i + 1, j + 1], out[i + 1, j + 2], out[i + 1, j + 3], out[i + 1, j + 4] = s10, s11, s12, s13, s14
    out[i + 2, j], out[i + 2, j + 1], out[i + 2, j + 2], out[i + 2, j + 3], out[i + 2, j + 4] = s20, s21, s22, s23, s24
    out[i + 3, j], out[i + 3, j + 1], out[i + 3, j + 2], out[i + 3, j + 3], out[i + 3, j + 4] = s30, s31, s32, s33, s34


@_kernel
def _logits_4rows(Xb, i, Wt, b, Z):
    """``Z[i:i+4] = Xb[i:i+4] @ Wt.T + b``; Wt is zero-padded to a multiple of 4 or 5 classes."""
    Cp = Wt.shape[0]
    for r in range(i, i + 4):
        for c in range(Cp):
            Z[r, c] = b[c]
    # Each block size in a function of its own: with both loops in one body LLVM
    # compiles the blocks of five 50% slower.
    if Cp % 4 == 0:
        _add_logits_by4(Xb, i, Wt, Z)
    else:
        _add_logits_by5(Xb, i, Wt, Z)


@_kernel
def _add_logits_by4(Xb, i, Wt, Z):
    for j in range(0, Wt.shape[0], 4):
        _dot_4x4(Xb, i, Wt, j, Z)


@_kernel
def _add_logits_by5(Xb, i, Wt, Z):
    for j in range(0, Wt.shape[0], 5):
        _dot_4x5(Xb, i, Wt, j, Z)


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
def _subtract_4x4(Xb, r, G, c, Wt):
    """``Wt[c:c+4] -= G[r:r+4, c:c+4].T @ Xb[r:r+4]``: a rank-4 update of four class rows.

    The sixteen coefficients stay in registers and each load of a batch row feeds
    four FMAs, so this runs near the core's FMA peak; one class row per pass is
    bound by loads at half of it. Each class row is one chain of four FMAs, in
    row order, so the rounding is the same on every run.
    """
    x0, x1, x2, x3 = Xb[r], Xb[r + 1], Xb[r + 2], Xb[r + 3]
    w0, w1, w2, w3 = Wt[c], Wt[c + 1], Wt[c + 2], Wt[c + 3]
    g00, g01, g02, g03 = G[r, c], G[r, c + 1], G[r, c + 2], G[r, c + 3]
    g10, g11, g12, g13 = G[r + 1, c], G[r + 1, c + 1], G[r + 1, c + 2], G[r + 1, c + 3]
    g20, g21, g22, g23 = G[r + 2, c], G[r + 2, c + 1], G[r + 2, c + 2], G[r + 2, c + 3]
    g30, g31, g32, g33 = G[r + 3, c], G[r + 3, c + 1], G[r + 3, c + 2], G[r + 3, c + 3]
    for f in range(w0.size):
        a0, a1, a2, a3 = x0[f], x1[f], x2[f], x3[f]
        w0[f] = w0[f] - g00 * a0 - g10 * a1 - g20 * a2 - g30 * a3
        w1[f] = w1[f] - g01 * a0 - g11 * a1 - g21 * a2 - g31 * a3
        w2[f] = w2[f] - g02 * a0 - g12 * a1 - g22 * a2 - g32 * a3
        w3[f] = w3[f] - g03 * a0 - g13 * a1 - g23 * a2 - g33 * a3


@_chain_kernel
def _subtract_5x4(Xb, r, G, c, Wt):
    """:func:`_subtract_4x4` for five class rows (see :func:`_dot_4x5` for why fives)."""
    x0, x1, x2, x3 = Xb[r], Xb[r + 1], Xb[r + 2], Xb[r + 3]
    w0, w1, w2, w3, w4 = Wt[c], Wt[c + 1], Wt[c + 2], Wt[c + 3], Wt[c + 4]
    g00, g01, g02, g03, g04 = G[r, c], G[r, c + 1], G[r, c + 2], G[r, c + 3], G[r, c + 4]
    g10, g11, g12, g13, g14 = G[r + 1, c], G[r + 1, c + 1], G[r + 1, c + 2], G[r + 1, c + 3], G[r + 1, c + 4]
    g20, g21, g22, g23, g24 = G[r + 2, c], G[r + 2, c + 1], G[r + 2, c + 2], G[r + 2, c + 3], G[r + 2, c + 4]
    g30, g31, g32, g33, g34 = G[r + 3, c], G[r + 3, c + 1], G[r + 3, c + 2], G[r + 3, c + 3], G[r + 3, c + 4]
    for f in range(w0.size):
        a0, a1, a2, a3 = x0[f], x1[f], x2[f], x3[f]
        w0[f] = w0[f] - g00 * a0 - g10 * a1 - g20 * a2 - g30 * a3
        w1[f] = w1[f] - g01 * a0 - g11 * a1 - g21 * a2 - g31 * a3
        w2[f] = w2[f] - g02 * a0 - g12 * a1 - g22 * a2 - g32 * a3
        w3[f] = w3[f] - g03 * a0 - g13 * a1 - g23 * a2 - g33 * a3
        w4[f] = w4[f] - g04 * a0 - g14 * a1 - g24 * a2 - g34 * a3


@_kernel
def _subtract_outer_by4(Xb, G, nrows, Wt):
    for r in range(0, nrows, 4):
        for c in range(0, Wt.shape[0], 4):
            _subtract_4x4(Xb, r, G, c, Wt)


@_kernel
def _subtract_outer_by5(Xb, G, nrows, Wt):
    for r in range(0, nrows, 4):
        for c in range(0, Wt.shape[0], 5):
            _subtract_5x4(Xb, r, G, c, Wt)


@_kernel
def _subtract_weights(Xb, G, nrows, Wt):
    """``Wt -= G[:n].T @ Xb[:n]``, n = nrows rounded up to 4 (see :func:`_subtract_outer`)."""
    if Wt.shape[0] % 4 == 0:
        _subtract_outer_by4(Xb, G, nrows, Wt)
    else:
        _subtract_outer_by5(Xb, G, nrows, Wt)


@_kernel
def _subtract_column_sums(G, nrows, b):
    """``b -= G[:nrows].sum(0)``, summed in row order."""
    for c in range(b.size):
        total = b[c]
        for r in range(nrows):
            total -= G[r, c]
        b[c] = total


@_kernel
def _subtract_outer(Xb, G, nrows, Wt, b):
    """``Wt -= G[:n].T @ Xb[:n]`` and ``b -= G[:n].sum(0)``, n = nrows rounded up to 4.

    Wt and the columns of G are padded to a multiple of 4 or 5 classes, and the rows of
    G past ``nrows`` must be zero, so there is no remainder code. Blocks of four
    batch rows (12.5 KB in float32) go outside the classes, so the block and all
    of Wt (37 KB) stay close to the core while every class row is updated.
    """
    _subtract_weights(Xb, G, nrows, Wt)
    _subtract_column_sums(G, nrows, b)


@_kernel
def _scale_weights(Wt, factor):
    for c in range(Wt.shape[0]):
        for f in range(Wt.shape[1]):
            Wt[c, f] *= factor


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
            _scale_row(X[start + r], scale, Xb[r])
        _block_logits(Xb, rows, Wt, b, Z)
        for r in range(rows):
            loss += _row_xent_grad(Z[r], C, y[start + r], gscale, G[r])
        G[rows:] = 0  # the last chunk's padding rows must not add to the sums
        _subtract_outer(Xb, G, rows, dWt, db)
    return loss / N


@_kernel
def _chunk_logits(X, scale, Wt, b, k, Xb, Z):
    """Logits of rows ``[k*CHUNK_ROWS, ...)`` into Z; returns (first row, row count)."""
    start = k * CHUNK_ROWS
    rows = min(CHUNK_ROWS, X.shape[0] - start)
    for r in range(rows):
        _scale_row(X[start + r], scale, Xb[r])
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


@_kernel
def _axpy(y, x, a):
    for i in range(y.size):
        y[i] += a * x[i]
