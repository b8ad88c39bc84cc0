"""The CUDA backend's training kernels: SGD steps with W's features split across blocks.

Block ``k`` of ``B`` owns the feature slice ``[k F / B, (k + 1) F / B)`` of W for the
whole run. A step has three phases:

1. **partial logits**: each block multiplies the batch's pixels in its slice by its
   slice of W, into ``parts[k, r, c]`` (global memory, double-buffered by step parity);
2. **softmax**, after every block's parts are written: *every* block sums the parts
   in block order (a fixed order), adds its own copy of b and computes the same
   softmax, gradient rows ``G[k]`` and mean loss. All blocks hold the same bits, so
   they all take the same decision to stop before a non-finite step, with no
   further exchange;
3. **update**: each block updates its slice of W (and the running average, if
   kept) from ``G[k]``, and its own copy of b.

The only grid-wide barrier is between phases 1 and 2. Two ways to get it:

* :data:`_train_cooperative_kernel`: one cooperative launch runs every step, with
  ``this_grid().sync()`` as the barrier (numba-cuda launches a kernel that syncs
  its grid cooperatively by itself; the grid must not exceed
  ``max_cooperative_grid_blocks``). Used on a GPU. The simulator runs cooperative
  grids as a single block, so there it runs with ``B = 1``.
* :data:`_train_parts_kernel` then :data:`_train_update_kernel`, launched once each
  per step (the barrier is the end of a launch): the same phases with any ``B``.
  The simulator tests the split across several blocks on this path, and it is
  the GPU's fallback where a cooperative launch is not possible.

Both paths call the same device functions in the same order, so for the same
``B`` they give the same bits. Nothing uses atomics; results repeat bitwise.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from ._cuda_kernels import SIMULATED, device_function, jit_options

#: Threads per training block.
TRAIN_THREADS = 32 if SIMULATED else 256
#: Most blocks a run's features are split across (fewer when the cooperative limit or F is smaller).
TRAIN_BLOCKS = 3 if SIMULATED else 32


@device_function
def _feature_slice(k, blocks, n_features):
    return k * n_features // blocks, (k + 1) * n_features // blocks


@device_function
def _partial_logits(X, W, order, start, batch, parts, k):
    """``parts[k, r, c] = sum_{f in slice k} X[order[start + r], f] * W[f, c]``."""
    C = W.shape[1]
    f0, f1 = _feature_slice(k, parts.shape[0], W.shape[0])
    for o in range(cuda.threadIdx.x, batch * C, cuda.blockDim.x):
        r = o // C
        c = o - r * C
        row = order[start + r]
        acc = X[row, f0] * W[f0, c]
        for f in range(f0 + 1, f1):
            acc += X[row, f] * W[f, c]
        parts[k, r, c] = acc


@device_function
def _softmax_rows(parts, scale, y, order, start, batch, b_copies, G, k, red):
    """Logits (the parts summed in block order), ``G[k] = (softmax - onehot) / batch``;
    returns the batch's mean loss, identical in every block."""
    C = G.shape[2]
    t = cuda.threadIdx.x
    # the parts' sums spread over every thread of the block, then a row per thread
    for o in range(t, batch * C, cuda.blockDim.x):
        r = o // C
        c = o - r * C
        acc = parts[0, r, c]
        for q in range(1, parts.shape[0]):
            acc += parts[q, r, c]
        G[k, r, c] = acc * scale + b_copies[k, c]
    cuda.syncthreads()
    gscale = 1.0 / batch
    total = 0.0
    for r in range(t, batch, cuda.blockDim.x):
        m = G[k, r, 0]
        for c in range(1, C):
            m = max(m, G[k, r, c])
        s = 0.0
        for c in range(C):
            s += math.exp(G[k, r, c] - m)
        lse = m + math.log(s)
        label = y[order[start + r]]
        total += lse - G[k, r, label]
        for c in range(C):
            G[k, r, c] = gscale * math.exp(G[k, r, c] - lse)
        G[k, r, label] -= gscale
    # the threads' sums by a tree over the block: a fixed order
    red[t] = total
    cuda.syncthreads()
    width = cuda.blockDim.x // 2
    while width > 0:
        if t < width:
            red[t] += red[t + width]
        cuda.syncthreads()
        width //= 2
    loss = red[0] / batch
    cuda.syncthreads()  # red is written again by the next step
    return loss


@device_function
def _update_slice(X, scale, W, order, start, batch, rate, keep, G, b_copies, k, inverse, avg_W, avg_b):
    """W's slice ``k`` and b's copy ``k`` take the step; the average too where ``inverse > 0``.

    The rate multiplies the finished gradient, as in the reference, not G: products of
    large inputs with rate-scaled coefficients could overflow where the gradient does not.
    """
    C = W.shape[1]
    step = scale * rate
    f0, f1 = _feature_slice(k, G.shape[0], W.shape[0])
    for e in range(cuda.threadIdx.x, (f1 - f0) * C, cuda.blockDim.x):
        f = f0 + e // C
        c = e - (f - f0) * C
        acc = X[order[start], f] * G[k, 0, c]
        for r in range(1, batch):
            acc += X[order[start + r], f] * G[k, r, c]
        W[f, c] = W[f, c] * keep - acc * step
        if inverse > 0:
            w = W[f, c]
            avg_W[f, c] += (w - avg_W[f, c]) * inverse
    for c in range(cuda.threadIdx.x, C, cuda.blockDim.x):
        acc = G[k, 0, c]
        for r in range(1, batch):
            acc += G[k, r, c]
        b_copies[k, c] -= rate * acc
        if inverse > 0 and k == 0:
            v = b_copies[k, c]
            avg_b[c] += (v - avg_b[c]) * inverse


@device_function
def _record(k, s, loss, losses, done):
    if k == 0 and cuda.threadIdx.x == 0:
        losses[s] = loss
        done[0] = s + (1 if math.isfinite(loss) else 0)


@cuda.jit(**jit_options(TRAIN_THREADS))
def _train_cooperative_kernel(X, scale, y, W, order, batch, rates, weight_decay, inverses, losses, done,
                              parts, G, b_copies, avg_W, avg_b):
    """Every step of a call in one cooperative launch; ``this_grid().sync()`` between phases 1 and 2."""
    grid = cuda.cg.this_grid()
    red = cuda.shared.array(TRAIN_THREADS, np.float64)
    k = cuda.blockIdx.x
    for s in range(losses.shape[0]):
        start = s * batch
        step_parts = parts[s % 2]
        _partial_logits(X, W, order, start, batch, step_parts, k)
        grid.sync()
        loss = _softmax_rows(step_parts, scale, y, order, start, batch, b_copies, G, k, red)
        _record(k, s, loss, losses, done)
        if not math.isfinite(loss):
            return  # every block computed the same loss, so all leave here, none waits at a barrier
        _update_slice(X, scale, W, order, start, batch, rates[s], 1.0 - rates[s] * weight_decay, G, b_copies,
                      k, inverses[s], avg_W, avg_b)
        cuda.syncthreads()  # the next step's logits read the whole slice just updated


@cuda.jit(**jit_options(TRAIN_THREADS))
def _train_parts_kernel(X, W, order, s, batch, parts, done):
    """Phase 1 of step ``s`` (one launch per step); nothing once a step was refused."""
    if done[0] < s:
        return
    _partial_logits(X, W, order, s * batch, batch, parts[0], cuda.blockIdx.x)


@cuda.jit(**jit_options(TRAIN_THREADS))
def _train_update_kernel(X, scale, y, W, order, s, batch, rates, weight_decay, inverses, losses, done,
                         parts, G, b_copies, avg_W, avg_b):
    """Phases 2 and 3 of step ``s``."""
    red = cuda.shared.array(TRAIN_THREADS, np.float64)
    if done[0] < s:
        return
    k = cuda.blockIdx.x
    start = s * batch
    loss = _softmax_rows(parts[0], scale, y, order, start, batch, b_copies, G, k, red)
    # Block 0 may already have recorded this step when another block reads done above:
    # then done[0] == s + 1 or s, never below s, so every block still takes the step or stops.
    _record(k, s, loss, losses, done)
    if math.isfinite(loss):
        _update_slice(X, scale, W, order, start, batch, rates[s], 1.0 - rates[s] * weight_decay, G, b_copies,
                      k, inverses[s], avg_W, avg_b)
