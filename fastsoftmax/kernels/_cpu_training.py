"""The CPU training loop: every SGD step of a run in one compiled call, on up to two threads.

The features are split into ``PANELS`` fixed halves, and W into the matching
panels, ``Wt[p]`` ``[Cp, Fp]``. Each step:

1. each panel computes the partial logits of its half of the features (no
   bias), reading the batch's rows in place;
2. the threads meet at a barrier;
3. every thread adds the bias and the panels' partial logits, in panel order,
   and computes the whole batch's softmax gradient G and loss itself;
4. each panel subtracts ``G @ rows`` from its own half of W, and every thread
   from its own copy of b.

One barrier per step, no shared writes after it: recomputing G on every thread
(about 2 us of a 30 us step) is cheaper than a second barrier. The panels are fixed
whatever the thread count and each thread's arithmetic is the same, so one
thread and two give bitwise-identical weights.

Why threads this way: a parallel region per step (``prange``) costs more than a
step of batch 100 on a small machine, and its timing swings widely. Here the
calling thread and one helper thread each run the whole loop, meeting through
two counters (acquire/release atomics) once per step.
"""

from __future__ import annotations

import math
import os
import platform
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._cpu_kernels import (
    _CACHE_LINE,
    _block_logits,
    _inline,
    _kernel,
    _prefetch,
    _rows_xent_grad,
    _scale_weights,
    _subtract_column_sums,
    _subtract_weights,
    class_blocks,
    item_pointer,
    round_up,
    softmax_scratch_size,
)
from ._cpu_threads import pool, thread_count

#: Fixed feature split: the most threads one run uses, and the same for every thread count.
PANELS = 2
_PANEL_ALIGN = 16          # features: a panel's rows are whole cache lines, in float32 and float64
_SYNC_STRIDE = 8           # int64 slots between two threads' counters: one cache line each


# ---------------------------------------------------------------- atomics for the barrier

@intrinsic
def _load_acquire(typingctx, arr, index):
    """``arr[index]`` read with acquire ordering: later reads see what the writer wrote before it."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == types.int64):
        return None

    def codegen(context, builder, sig, args):
        ptr = item_pointer(context, builder, sig.args[0], args[0], args[1:2], sig.args[1:2])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(arr, index), codegen


@intrinsic
def _store_release(typingctx, arr, index, value):
    """``arr[index] = value`` with release ordering: everything written before is visible first."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and arr.dtype == types.int64):
        return None

    def codegen(context, builder, sig, args):
        ptr = item_pointer(context, builder, sig.args[0], args[0], args[1:2], sig.args[1:2])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(val, ptr, "release", 8)
        return context.get_dummy_value()

    return types.void(arr, index, value), codegen


def _spin_hint_call():
    """(intrinsic name, LLVM argument types, arguments) of this CPU's spin-wait hint, or None."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i386", "i686"):
        return "llvm.x86.sse2.pause", [], []
    if machine in ("aarch64", "arm64"):
        return "llvm.aarch64.hint", [ir.IntType(32)], [ir.Constant(ir.IntType(32), 1)]  # YIELD
    return None


@intrinsic
def _spin_hint(typingctx):
    """The CPU's spin-wait hint (x86 ``pause``, Arm ``yield``): frees the core's resources while waiting."""
    call = _spin_hint_call()

    def codegen(context, builder, sig, args):
        if call is not None:
            name, argtypes, values = call
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), argtypes), name)
            builder.call(fn, values)
        return context.get_dummy_value()

    return types.void(), codegen


#: Spin-wait hints before a waiting thread starts giving its core away (about 50-200 us): a step's
#: wait is a few microseconds, unless the other thread is not running at all.
_SPINS_BEFORE_YIELD = 2048


@intrinsic
def _yield_core(typingctx):
    """``sched_yield()`` on POSIX systems (nothing elsewhere): let another runnable thread have this core.

    Declared as an external symbol, not called through ctypes, so the kernels that
    use it can still be cached on disk.
    """
    posix = os.name == "posix"

    def codegen(context, builder, sig, args):
        if posix:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@_inline
def _barrier(sync, me, threads, count):
    """Announce that thread ``me`` has reached barrier number ``count``; wait for all others to.

    The counters only grow, so there is nothing to reset between steps. A thread
    that has waited long gives its core away at every further check: on a busy
    machine the thread it waits for may be the one waiting for a core, and pure
    spinning then made a 30 ms run take seconds.
    """
    _store_release(sync, me * _SYNC_STRIDE, count)
    for other in range(threads):
        spins = 0
        while _load_acquire(sync, other * _SYNC_STRIDE) < count:
            if spins < _SPINS_BEFORE_YIELD:
                spins += 1
                _spin_hint()
            else:
                _yield_core()


# ---------------------------------------------------------------- the loop


@_inline
def _batch_rows(order, start, batch_size, rows):
    """``rows[r] = order[start + r]``: the step's rows, the padding to 4 repeating the last."""
    for r in range(rows.size):
        rows[r] = order[start + min(r, batch_size - 1)]


@_inline
def _prefetch_panels(X, order, first, stop, me, threads, Fp):
    """Prefetch this thread's panels of rows ``order[first:stop]``."""
    step = _CACHE_LINE // X.itemsize
    for p in range(me, PANELS, threads):
        f0 = p * Fp
        f1 = min(f0 + Fp, X.shape[1])
        if f1 > f0:
            for k in range(first, stop):
                i = order[k]
                for f in range(f0, f1, step):
                    _prefetch(X, i, f)
                _prefetch(X, i, f1 - 1)


class ThreadBuffers(NamedTuple):
    """One training thread's private scratch, allocated on the host (see :func:`thread_buffers`).

    Private, each on cache lines of its own: rows of one shared array would
    share lines, and every write would take the line from the other core.
    Allocated outside the compiled loop because allocations there cost a cold
    start about a second of compiling.
    """

    rows: np.ndarray     #: int64 ``[B4]``: the step's row indices, the padding to 4 repeating the last
    G: np.ndarray        #: ``[Cp, B4]``, W's dtype: the gradient coefficients; columns past the batch stay 0
    Z: np.ndarray        #: ``[Cp, B]``, W's dtype: the batch's logits, bias added
    labels: np.ndarray   #: int64 ``[B]``: the batch's labels
    scratch: np.ndarray  #: float64: the softmax scratch (:func:`softmax_scratch_size`)
    bias: np.ndarray     #: ``[1, Cp]``, W's dtype: this thread's copy of b
    nobias: np.ndarray   #: ``[Cp]`` zeros: the panels' partial logits have no bias


@_kernel
def _train_worker(me, threads, X, scale, y, Wt, b, C, order, batch_size, rates, weight_decay,
                  losses, Zp, sync, Wa, b_avg, avg_weights, fives, buf):
    """Thread ``me`` of ``threads``: runs every step for panels me, me + threads, ...

    Wt ``[PANELS, Cp, Fp]`` is shared, each panel written by its owner only. Zp
    ``[2, PANELS, Cp, B4]`` (B4: the batch rounded up to 4) alternates between
    steps, so a thread starting the next step never overwrites partial logits
    the other is still reading. ``buf`` is the thread's own :class:`ThreadBuffers`.
    Thread 0 writes ``losses`` and, at the end, b. Returns the number of steps
    applied.

    Averaged SGD: after step s, when ``avg_weights[s]`` (W's dtype) is not 0, the
    running means move towards the new weights, ``Wa += (Wt - Wa) * avg_weights[s]``
    (each panel by its owner) and ``b_avg`` ``[1, Cp]`` likewise (by thread 0).
    """
    steps = losses.size
    Cp, Fp = Wt.shape[1], Wt.shape[2]
    per_class = -(-batch_size // Cp)  # rows of the next batch prefetched per class
    bias = buf.bias[0]
    done = steps
    for s in range(steps):
        start = s * batch_size
        ahead = start + batch_size if s + 1 < steps else start
        step_Z = Zp[s % 2]
        _batch_rows(order, start, batch_size, buf.rows)
        for p in range(me, PANELS, threads):
            _block_logits(X, buf.rows, batch_size, p * Fp, Wt[p], buf.nobias, scale, step_Z[p], fives)
        _barrier(sync, me, threads, s + 1)
        # Step 3, on every thread: the batch's logits (the bias, then the panels'
        # partial logits in panel order), its loss and its softmax gradient G.
        # The next batch's rows are prefetched here, a few between each class's
        # sums, where the load units have room: with shuffled batches the latency
        # of gathering rows dominates, and issued all at once the prefetches
        # overflow the core's queue of misses. (Written here rather than in a
        # function of its own: every level of calls recompiles what is below it.)
        for c in range(Cp):
            first = ahead + c * per_class
            _prefetch_panels(X, order, first, min(first + per_class, ahead + batch_size), me, threads, Fp)
            for r in range(batch_size):
                buf.Z[c, r] = bias[c]
            for p in range(PANELS):
                for r in range(batch_size):
                    buf.Z[c, r] += step_Z[p, c, r]
        for r in range(batch_size):
            buf.labels[r] = y[buf.rows[r]]
        loss = _rows_xent_grad(buf.Z, batch_size, C, buf.labels, rates[s] / batch_size, buf.G, buf.scratch)
        loss /= batch_size
        if me == 0:
            losses[s] = loss
        if not math.isfinite(loss):
            done = s  # every thread sees the same loss, so all stop here, before applying it
            break
        for p in range(me, PANELS, threads):
            if weight_decay != 0.0:
                _scale_weights(Wt[p], 1.0 - rates[s] * weight_decay)
            _subtract_weights(X, buf.rows, batch_size, p * Fp, buf.G, scale, Wt[p], fives)
        _subtract_column_sums(buf.G, batch_size, bias)
        if avg_weights[s] != 0:
            for p in range(me, PANELS, threads):
                _move_towards(Wa[p], Wt[p], avg_weights[s])
            if me == 0:
                _move_towards(b_avg, buf.bias, avg_weights[s])
    if me == 0:
        for c in range(b.size):
            b[c] = bias[c]
    return done


@_inline
def _move_towards(mean, x, weight):
    """``mean += (x - mean) * weight`` for 2-D arrays, in W's dtype: a running-mean update."""
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            mean[i, j] += (x[i, j] - mean[i, j]) * weight


# ---------------------------------------------------------------- host side

def training_threads() -> int:
    """Threads a run uses: Numba's thread count (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``), at most PANELS."""
    return thread_count(PANELS)


def panel_width(n_features: int) -> int:
    """Features per panel."""
    return round_up(round_up(n_features, PANELS) // PANELS, _PANEL_ALIGN)


def aligned_zeros(shape, dtype):
    """Zeros on cache lines of their own: the first element starts a line, and no other array shares the last.

    NumPy aligns to 16 bytes. The kernels load 64 bytes at a time along rows
    that are a whole number of lines long (``Fp``), so an unaligned buffer splits
    every load across two lines, which measured 1.5x slower.
    """
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    raw = np.zeros(count * dtype.itemsize + 2 * _CACHE_LINE, np.uint8)
    skip = -raw.ctypes.data % _CACHE_LINE
    return raw[skip:skip + count * dtype.itemsize].view(dtype).reshape(shape)


def thread_buffers(b, batch_size):
    """A training thread's :class:`ThreadBuffers`, for bias ``b`` ``[Cp]`` and batches of ``batch_size``."""
    Cp, B4, dtype = b.size, round_up(batch_size, 4), b.dtype
    bias = aligned_zeros((1, Cp), dtype)
    bias[0] = b
    return ThreadBuffers(rows=aligned_zeros(B4, np.int64), G=aligned_zeros((Cp, B4), dtype),
                         Z=aligned_zeros((Cp, batch_size), dtype), labels=aligned_zeros(batch_size, np.int64),
                         scratch=aligned_zeros(softmax_scratch_size(batch_size, Cp), np.float64),
                         bias=bias, nobias=aligned_zeros(Cp, dtype))


def to_panels(Wt):
    """``Wt [Cp, F]`` -> zero-padded panels ``[PANELS, Cp, Fp]``."""
    Cp, F = Wt.shape
    Fp = panel_width(F)
    panels = aligned_zeros((PANELS, Cp, Fp), Wt.dtype)
    for p in range(PANELS):
        width = max(0, min(Fp, F - p * Fp))
        panels[p, :, :width] = Wt[:, p * Fp:p * Fp + width]
    return panels


def from_panels(panels, F):
    """Inverse of :func:`to_panels`: ``[Cp, F]``."""
    return np.concatenate(list(panels), axis=1)[:, :F]


def run(X, scale, y, Wt, b, C, order, batch_size, rates, weight_decay, losses, average=None):
    """Train in place. ``Wt`` ``[Cp, F]`` and ``b`` ``[Cp]`` are updated; returns steps applied.

    ``average``: None, or ``(Wt_avg [Cp, F], b_avg [Cp], avg_weights [steps])``, the
    running means (updated in place) and each step's weight in them (0: not averaged).
    """
    threads = training_threads()
    Cp, F = Wt.shape
    panels = to_panels(Wt)
    Zp = np.zeros((2, PANELS, Cp, round_up(batch_size, 4)), Wt.dtype)
    sync = aligned_zeros(threads * _SYNC_STRIDE, np.int64)
    if average is None:  # the same compiled loop, with every step's weight 0
        average = (np.zeros((Cp, 0), Wt.dtype), np.zeros(Cp, Wt.dtype), np.zeros(losses.size, Wt.dtype))
    Wt_avg, b_avg, avg_weights = average
    avg_panels = to_panels(Wt_avg) if Wt_avg.shape[1] else np.zeros((PANELS, Cp, 0), Wt.dtype)
    b_avg_row = b_avg.reshape(1, Cp)  # a view: the loop moves 2-D means
    args = (X, scale, y, panels, b, C, order, batch_size, rates, weight_decay)
    run_args = (Zp, sync, avg_panels, b_avg_row, avg_weights, class_blocks(Cp))
    buffers = [thread_buffers(b, batch_size) for _ in range(threads)]

    # Compile here, in this thread, before any helper starts: a helper whose
    # compilation failed would leave this thread waiting at the first barrier.
    _train_worker(0, 1, *args, losses[:0], *run_args, buffers[0])
    helpers = [pool().submit(_train_worker, me, threads, *args, losses, *run_args, buffers[me])
               for me in range(1, threads)]
    done = _train_worker(0, threads, *args, losses, *run_args, buffers[0])
    for helper in helpers:
        if helper.result() != done:
            raise RuntimeError("training threads disagree on the number of steps")
    Wt[...] = from_panels(panels, F)
    if Wt_avg.shape[1]:
        Wt_avg[...] = from_panels(avg_panels, F)
    return int(done)
