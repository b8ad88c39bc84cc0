"""The CPU training loop: every SGD step of M models in one compiled call, on every thread Numba allows.

Each model's features are split into ``PANELS`` fixed halves, and its W into the
matching panels, ``Wt[m, p]`` ``[Cp, Fp]``. Models that share a batch order are
trained together by a *team* of one or two threads; each step of a team:

1. for every model, each panel of the team's thread computes the partial logits of its
   half of the features (no bias), reading the batch's rows in place: the rows come
   from memory for the first model and from the cache for the others;
2. a team of two threads meets at a barrier;
3. for every model, each thread of the team adds the bias and the panels' partial
   logits, in panel order, computes the whole batch's softmax gradient G and loss, and
   subtracts ``G @ rows`` from its own panels of W and from its own copy of b.

One barrier per step, no shared writes after it: recomputing G on every thread of a
team (about 2 us of a 30 us step) is cheaper than a second barrier. The panels are
fixed whatever the thread count, the models of a call and the teams, and a model's
arithmetic is the same in all of them, so its weights are bitwise the same with one
thread or many, alone or among others.

How threads are given work (:func:`plan`): one model (fewer models than threads) gets
teams of two threads, its two panels side by side; many models are spread over the
threads, a team of one thread each, which then needs no barrier at all.

Why threads this way: a parallel region per step (``prange``) costs more than a
step of batch 100 on a small machine, and its timing swings widely. Here the
calling thread and helper threads each run the whole loop, a team meeting through
counters (acquire/release atomics) once per step.
"""

from __future__ import annotations

import math
import os
import platform
from typing import NamedTuple

import numba
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
    bias: np.ndarray     #: ``[M, Cp]``, W's dtype: this thread's copy of each model's b
    nobias: np.ndarray   #: ``[Cp]`` zeros: the panels' partial logits have no bias
    done: np.ndarray     #: int64 ``[M]``: steps each model applied (the call's steps while it runs)


@_kernel
def _train_team(me, threads, X, scale, y, Wt, b, C, order, batch_size, rates, decays, losses, Zp, sync, Wa,
                b_avg, avg_weights, fives, buf):
    """Thread ``me`` of a team of ``threads``: every step of the M models of ``Wt``, for panels me, me +
    threads, ...

    Wt ``[M, PANELS, Cp, Fp]`` is shared, each panel written by its owner only. Zp
    ``[2, M, PANELS, Cp, B4]`` (B4: the batch rounded up to 4) alternates between
    steps, so a thread starting the next step never overwrites partial logits the
    other is still reading. ``rates`` ``[M, steps]``, ``decays`` ``[M]``, ``losses``
    ``[M, steps]``; ``buf`` is the thread's own :class:`ThreadBuffers`. Thread 0
    writes ``losses`` and, at the end, b ``[M, Cp]``. A model whose loss is not
    finite stops there (that step not applied), the others go on; ``buf.done``
    says where each stopped.

    Averaged SGD: after step s, when ``avg_weights[m, s]`` (W's dtype) is not 0, model
    m's running means move towards its new weights, ``Wa[m] += (Wt[m] - Wa[m]) *
    avg_weights[m, s]`` (each panel by its owner) and ``b_avg[m]`` ``[1, Cp]``
    likewise (by thread 0).
    """
    steps = losses.shape[1]
    M, Cp, Fp = Wt.shape[0], Wt.shape[2], Wt.shape[3]
    per_class = -(-batch_size // Cp)  # rows of the next batch prefetched per class
    for s in range(steps):
        start = s * batch_size
        ahead = start + batch_size if s + 1 < steps else start
        step_Z = Zp[s % 2]
        _batch_rows(order, start, batch_size, buf.rows)
        for m in range(M):
            if buf.done[m] == steps:
                for p in range(me, PANELS, threads):
                    _block_logits(X, buf.rows, batch_size, p * Fp, Wt[m, p], buf.nobias, scale, step_Z[m, p], fives)
        if threads > 1:
            _barrier(sync, me, threads, s + 1)
        for r in range(batch_size):
            buf.labels[r] = y[buf.rows[r]]
        for m in range(M):
            if buf.done[m] != steps:
                continue
            bias = buf.bias[m]
            # The batch's logits (the bias, then the panels' partial logits in panel
            # order), its loss and its softmax gradient G, on every thread of the team.
            # The next batch's rows are prefetched with the first model's sums, a few
            # between each class's, where the load units have room: with shuffled
            # batches the latency of gathering rows dominates, and issued all at once
            # the prefetches overflow the core's queue of misses. (Written here rather
            # than in a function of its own: every level of calls recompiles what is
            # below it.)
            for c in range(Cp):
                if m == 0:
                    first = ahead + c * per_class
                    _prefetch_panels(X, order, first, min(first + per_class, ahead + batch_size), me, threads, Fp)
                for r in range(batch_size):
                    buf.Z[c, r] = bias[c]
                for p in range(PANELS):
                    for r in range(batch_size):
                        buf.Z[c, r] += step_Z[m, p, c, r]
            rate = rates[m, s]
            loss = _rows_xent_grad(buf.Z, batch_size, C, buf.labels, rate / batch_size, buf.G, buf.scratch)
            loss /= batch_size
            if me == 0:
                losses[m, s] = loss
            if not math.isfinite(loss):
                buf.done[m] = s  # every thread sees the same loss, so all stop this model here, before applying it
                continue
            for p in range(me, PANELS, threads):
                if decays[m] != 0.0:
                    _scale_weights(Wt[m, p], 1.0 - rate * decays[m])
                _subtract_weights(X, buf.rows, batch_size, p * Fp, buf.G, scale, Wt[m, p], fives)
            _subtract_column_sums(buf.G, batch_size, bias)
            weight = avg_weights[m, s]
            if weight != 0:
                for p in range(me, PANELS, threads):
                    _move_towards(Wa[m, p], Wt[m, p], weight)
                if me == 0:
                    _move_towards(b_avg[m], buf.bias[m:m + 1], weight)
    if me == 0:
        for m in range(M):
            for c in range(b.shape[1]):
                b[m, c] = buf.bias[m, c]


@_inline
def _move_towards(mean, x, weight):
    """``mean += (x - mean) * weight`` for 2-D arrays, in W's dtype: a running-mean update."""
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            mean[i, j] += (x[i, j] - mean[i, j]) * weight


# ---------------------------------------------------------------- host side

def training_threads() -> int:
    """Threads a call may use: Numba's thread count (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``)."""
    return thread_count(numba.config.NUMBA_NUM_THREADS)


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


def thread_buffers(b, batch_size, steps):
    """A training thread's :class:`ThreadBuffers`, for biases ``b`` ``[M, Cp]`` and batches of ``batch_size``."""
    (M, Cp), B4, dtype = b.shape, round_up(batch_size, 4), b.dtype
    bias = aligned_zeros((M, Cp), dtype)
    bias[...] = b
    done = aligned_zeros(M, np.int64)
    done[:] = steps
    return ThreadBuffers(rows=aligned_zeros(B4, np.int64), G=aligned_zeros((Cp, B4), dtype),
                         Z=aligned_zeros((Cp, batch_size), dtype), labels=aligned_zeros(batch_size, np.int64),
                         scratch=aligned_zeros(softmax_scratch_size(batch_size, Cp), np.float64),
                         bias=bias, nobias=aligned_zeros(Cp, dtype), done=done)


def to_panels(Wt):
    """``Wt [M, Cp, F]`` -> zero-padded panels ``[M, PANELS, Cp, Fp]``."""
    M, Cp, F = Wt.shape
    Fp = panel_width(F)
    panels = aligned_zeros((M, PANELS, Cp, Fp), Wt.dtype)
    for p in range(PANELS):
        width = max(0, min(Fp, F - p * Fp))
        panels[:, p, :, :width] = Wt[:, :, p * Fp:p * Fp + width]
    return panels


def from_panels(panels, F):
    """Inverse of :func:`to_panels`: ``[M, Cp, F]``."""
    return np.concatenate([panels[:, p] for p in range(PANELS)], axis=2)[:, :, :F]


class Task(NamedTuple):
    """Models ``[lo, hi)`` (sorted by group) trained by one team on the batch order of group ``group``."""

    lo: int
    hi: int
    group: int


def plan(groups_sorted, threads):
    """Teams and their tasks: ``[(team size, [Task, ...]), ...]`` for models whose groups are ``groups_sorted``.

    Fewer models than threads: each model a team of up to ``PANELS`` threads. Otherwise
    every thread a team of its own, with a contiguous share of the models, cut where the
    group changes (a thread trains its groups one after another).
    """
    M = groups_sorted.size
    if M < threads:
        size = min(PANELS, threads // M)
        return [(size, [Task(m, m + 1, int(groups_sorted[m]))]) for m in range(M)]
    teams = []
    bounds = [M * t // threads for t in range(threads + 1)]
    for t in range(threads):
        lo, hi, tasks = bounds[t], bounds[t + 1], []
        while lo < hi:
            g = int(groups_sorted[lo])
            end = lo
            while end < hi and groups_sorted[end] == g:
                end += 1
            tasks.append(Task(lo, end, g))
            lo = end
        teams.append((1, tasks))
    return teams


def run_many(X, scale, y, Wt, b, C, orders, group, batch_size, rates, decays, losses, average=None):
    """Train M models in place: ``Wt`` ``[M, Cp, F]`` and ``b`` ``[M, Cp]`` are updated; returns steps done ``[M]``.

    ``average``: None, or ``(Wt_avg [M, Cp, F], b_avg [M, Cp], avg_weights [M, steps])``,
    the running means (updated in place) and each step's weight in them (0: not averaged).
    """
    M, Cp, F = Wt.shape
    steps = losses.shape[1]
    order_of = np.argsort(group, kind="stable")  # models of a group side by side
    groups_sorted = group[order_of]
    panels = to_panels(Wt[order_of])
    b_sorted = np.ascontiguousarray(b[order_of])
    if average is None:  # the same compiled loop, with every step's weight 0
        average = (np.zeros((M, Cp, 0), Wt.dtype), np.zeros((M, Cp), Wt.dtype), np.zeros((M, steps), Wt.dtype))
    Wt_avg, b_avg, avg_weights = average
    avg_panels = to_panels(Wt_avg[order_of]) if Wt_avg.shape[2] else np.zeros((M, PANELS, Cp, 0), Wt.dtype)
    b_avg_rows = np.ascontiguousarray(b_avg[order_of]).reshape(M, 1, Cp)  # the loop moves 2-D means
    avg_weights = np.ascontiguousarray(avg_weights[order_of])
    rates, decays = np.ascontiguousarray(rates[order_of]), np.ascontiguousarray(decays[order_of])
    sorted_losses = np.full((M, steps), np.nan)
    done = np.full(M, steps, np.int64)
    calls = []  # per thread: the kernel calls it makes, one after another
    for size, tasks in plan(groups_sorted, training_threads()):
        team = [[] for _ in range(size)]
        for task in tasks:
            lo, hi = task.lo, task.hi
            common = (X, scale, y, panels[lo:hi], b_sorted[lo:hi], C, orders[task.group], batch_size, rates[lo:hi],
                      decays[lo:hi], sorted_losses[lo:hi], np.zeros((2, hi - lo, PANELS, Cp, round_up(batch_size, 4)),
                                                                     Wt.dtype),
                      aligned_zeros(size * _SYNC_STRIDE, np.int64), avg_panels[lo:hi], b_avg_rows[lo:hi],
                      avg_weights[lo:hi], class_blocks(Cp))
            for me in range(size):
                team[me].append((me, size, common, thread_buffers(b_sorted[lo:hi], batch_size, steps), task))
        calls.extend(team)
    # Compile here, in this thread, before any helper starts: a helper whose
    # compilation failed would leave its team waiting at the first barrier.
    _, _, common, buffers, _ = calls[0][0]
    _train_team(0, 1, *common[:10], common[10][:, :0], *common[11:], buffers)
    helpers = [pool().submit(_run_calls, thread_calls) for thread_calls in calls[1:]]
    _run_calls(calls[0])
    for helper in helpers:
        helper.result()
    for thread_calls in calls:
        for me, _, _, buffers, task in thread_calls:
            if me == 0:
                done[task.lo:task.hi] = buffers.done
    inverse = np.argsort(order_of, kind="stable")
    Wt[...] = from_panels(panels, F)[inverse]
    b[...] = b_sorted[inverse]
    losses[...] = sorted_losses[inverse]
    if Wt_avg.shape[2]:
        Wt_avg[...] = from_panels(avg_panels, F)[inverse]
        b_avg[...] = b_avg_rows.reshape(M, Cp)[inverse]
    return done[inverse]


def _run_calls(thread_calls):
    for me, size, common, buffers, _ in thread_calls:
        _train_team(me, size, *common, buffers)
