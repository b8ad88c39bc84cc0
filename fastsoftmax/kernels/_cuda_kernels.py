"""The CUDA backend's kernels, apart from its wrappers (:mod:`fastsoftmax.kernels.cuda`).

Kept apart so that they can be compiled to PTX for a real GPU's architecture on
a machine without one (``tests/test_cuda_ptx.py``): the simulator runs them as
Python and cannot catch a kernel that types or lowers differently on a GPU.
Importing this module needs numba-cuda but no GPU; see the wrappers' module
for why the kernels are shaped as they are.
"""

from __future__ import annotations

import math
import os

import numpy as np
from numba import cuda

#: True when numba-cuda's simulator stands in for a GPU (NUMBA_ENABLE_CUDASIM=1).
SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")

#: Threads per block of the row-parallel kernels; also the most classes supported.
THREADS = 32 if SIMULATED else 256
#: Threads of the single block that runs a training call.
TRAIN_THREADS = 32 if SIMULATED else 1024
#: Rows per partial sum of the two-phase gradient reduction.
CHUNK_ROWS = 16 if SIMULATED else 256
#: Kernels are cached on disk like the CPU ones (not in the simulator, which compiles nothing).
_JIT = dict(cache=not SIMULATED and os.environ.get("FASTSOFTMAX_NO_CACHE", "") in ("", "0"))


# ---------------------------------------------------------------- device functions


@cuda.jit(device=True)
def _dot_row_class(X, i, W, c):
    """``sum_f X[i, f] * W[f, c]`` in W's dtype (uint8 times float stays float)."""
    acc = X[i, 0] * W[0, c]
    for f in range(1, X.shape[1]):
        acc += X[i, f] * W[f, c]
    return acc


@cuda.jit(device=True)
def _logit(X, i, scale, W, b, c):
    # Pixels are scaled once per dot product rather than once per element.
    return _dot_row_class(X, i, W, c) * scale + b[c]


@cuda.jit(device=True)
def _lse(z, first, C):
    """log-sum-exp of ``z[first:first + C]``."""
    m = z[first]
    for c in range(1, C):
        m = max(m, z[first + c])
    s = 0.0
    for c in range(C):
        s += math.exp(z[first + c] - m)
    return m + math.log(s)


@cuda.jit(device=True)
def _block_logits(X, scale, W, b, z):
    """Logits of this block's rows into shared ``z`` (thread t: row t // C, class t % C).

    Returns (row, class, first index of the row in z, active) for the calling thread.
    """
    C = W.shape[1]
    rows_per_block = THREADS // C
    tid = cuda.threadIdx.x
    r_local = tid // C
    c = tid - r_local * C
    row = cuda.blockIdx.x * rows_per_block + r_local
    active = r_local < rows_per_block and row < X.shape[0]
    if active:
        z[tid] = _logit(X, row, scale, W, b, c)
    cuda.syncthreads()
    return row, c, r_local * C, active


# ---------------------------------------------------------------- kernels


@cuda.jit(**_JIT)
def _forward_kernel(X, scale, W, b, out):
    z = cuda.shared.array(THREADS, np.float64)
    row, c, first, active = _block_logits(X, scale, W, b, z)
    if active:
        out[row, c] = math.exp(z[first + c] - _lse(z, first, W.shape[1]))


@cuda.jit(**_JIT)
def _predict_kernel(X, scale, W, b, out):
    z = cuda.shared.array(THREADS, np.float64)
    row, c, first, active = _block_logits(X, scale, W, b, z)
    if active and c == 0:
        best = 0
        for k in range(W.shape[1]):
            if not math.isfinite(z[first + k]):
                best = -1  # flagged: the wrapper raises, naming the row
                break
            if z[first + k] > z[first + best]:
                best = k
        out[row] = best


@cuda.jit(**_JIT)
def _row_loss_kernel(X, scale, y, W, b, row_loss):
    z = cuda.shared.array(THREADS, np.float64)
    row, c, first, active = _block_logits(X, scale, W, b, z)
    if active and c == 0:
        row_loss[row] = _lse(z, first, W.shape[1]) - z[first + y[row]]


@cuda.jit(**_JIT)
def _row_grad_kernel(X, scale, y, W, b, gscale, G, row_loss):
    """``G[row] = gscale * (softmax - onehot)`` and each row's loss."""
    z = cuda.shared.array(THREADS, np.float64)
    row, c, first, active = _block_logits(X, scale, W, b, z)
    if active:
        label = y[row]
        lse = _lse(z, first, W.shape[1])
        G[row, c] = gscale * (math.exp(z[first + c] - lse) - (1.0 if c == label else 0.0))
        if c == 0:
            row_loss[row] = lse - z[first + label]


@cuda.jit(**_JIT)
def _partial_grad_kernel(X, scale, G, partial_W, partial_b):
    """Phase one: ``partial_W[k] = X[chunk k].T @ G[chunk k]``; grid (elements of W, chunks)."""
    F, C = partial_W.shape[1], partial_W.shape[2]
    e = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    k = cuda.blockIdx.y
    start = k * CHUNK_ROWS
    stop = min(start + CHUNK_ROWS, X.shape[0])
    if e < F * C:
        f = e // C
        c = e - f * C
        acc = X[start, f] * G[start, c]
        for r in range(start + 1, stop):
            acc += X[r, f] * G[r, c]
        partial_W[k, f, c] = acc * scale
    if e < C:
        acc = G[start, e]
        for r in range(start + 1, stop):
            acc += G[r, e]
        partial_b[k, e] = acc


@cuda.jit(**_JIT)
def _sum_chunks_kernel(partial, out):
    """Phase two: ``out[j] = sum_k partial[k, j]`` in chunk order (flattened views)."""
    j = cuda.grid(1)
    if j < out.shape[0]:
        acc = partial[0, j]
        for k in range(1, partial.shape[0]):
            acc += partial[k, j]
        out[j] = acc


@cuda.jit(**_JIT)
def _axpy_kernel(y, x, a):
    i = cuda.grid(1)
    if i < y.shape[0]:
        y[i] += a * x[i]


@cuda.jit(**_JIT)
def _train_kernel(X, scale, y, W, b, order, batch_size, rates, weight_decay, losses, G, row_loss, done):
    """Every step of a call in one block. Phases per step, separated by barriers:
    logits of the batch into G; G turned into scaled gradient rows and row losses;
    the mean loss checked by thread 0; W and b updated, one element per thread per pass.
    """
    F, C = W.shape[0], W.shape[1]
    tid = cuda.threadIdx.x
    threads = cuda.blockDim.x
    finite = cuda.shared.array(1, np.int32)
    for s in range(losses.shape[0]):
        start = s * batch_size
        for o in range(tid, batch_size * C, threads):
            r = o // C
            c = o - r * C
            G[r, c] = _logit(X, order[start + r], scale, W, b, c)
        cuda.syncthreads()
        gscale = rates[s] / batch_size
        for r in range(tid, batch_size, threads):
            lse = _lse(G[r], 0, C)
            label = y[order[start + r]]
            row_loss[r] = lse - G[r, label]
            for c in range(C):
                G[r, c] = gscale * math.exp(G[r, c] - lse)
            G[r, label] -= gscale
        cuda.syncthreads()
        if tid == 0:
            total = 0.0
            for r in range(batch_size):
                total += row_loss[r]
            losses[s] = total / batch_size
            finite[0] = 1 if math.isfinite(losses[s]) else 0
            done[0] = s + finite[0]
        cuda.syncthreads()
        if finite[0] == 0:
            return  # every thread sees the same flag, so the whole block leaves together
        keep = 1.0 - rates[s] * weight_decay
        for e in range(tid, F * C, threads):
            f = e // C
            c = e - f * C
            acc = X[order[start], f] * G[0, c]
            for r in range(1, batch_size):
                acc += X[order[start + r], f] * G[r, c]
            W[f, c] = W[f, c] * keep - acc * scale
        for c in range(tid, C, threads):
            acc = G[0, c]
            for r in range(1, batch_size):
                acc += G[r, c]
            b[c] -= acc
        cuda.syncthreads()
