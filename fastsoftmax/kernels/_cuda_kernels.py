"""The CUDA backend's inference and gradient kernels, apart from its wrappers (:mod:`fastsoftmax.kernels.cuda`).

Kept apart so that they can be compiled for a real GPU's architecture on a
machine without one (``tests/test_cuda_resources.py``): the simulator runs them
as Python and cannot catch a kernel that types, lowers or allocates registers
differently on a GPU. Importing this module needs numba-cuda but no GPU.

Two families of row kernels:

* **Fast rows** (:func:`row_kernels`, up to :data:`FAST_CLASSES` classes): made
  per class count, dtype and row packing by a factory, so the class count is a
  compile-time constant and the accumulators stay in registers. A *slot* of
  :data:`LANES` lanes works on :func:`rows_per_lane` rows at once (a warp has
  ``32 / LANES`` slots), each lane reading every ``LANES``-th word of those rows
  in the widest load that divides them (:func:`packing`: 784 uint8 pixels are 98
  uint64 words of eight, float rows complex pairs). W is staged once per block in
  shared memory as ``[class, part, word, pixel of the part]``
  (:func:`packed_weights`), each part being as many weights as one 16-byte load
  holds (:func:`weight_vector`): the lanes of a slot, reading consecutive words,
  load consecutive 16-byte vectors, 128 bytes that cover the 32 banks once, so a
  quarter-warp (one slot) is served in one wavefront with no bank conflict, and
  one load brings four float32 weights instead of one. Every weight read serves
  all the slot's rows (one row a lane would need a shared-memory load per
  multiply-add). When W does not fit (more than :data:`SHARED_W_BYTES`) the same
  layout is read from global memory through L1. Lane partials are summed by an xor butterfly of warp shuffles,
  which gives every lane of the slot the same bits, so max, log-sum-exp and
  argmax are computed redundantly with no further exchange. The grid is
  persistent: :func:`blocks_per_sm` blocks per SM (what the launch bounds
  promise) stride over the rows. A row whose logits are not finite is flagged on
  the device (``cuda.atomic.min`` of its index into ``bad[0]``); no host pass
  scans a result.
* **Generic rows** (``_generic_*``, more classes, up to :data:`THREADS`): one
  thread per ``(row, class)``, logits of a block's rows in shared memory.

Nothing uses floating-point atomics, and every sum runs in a fixed order, so
repeated runs give bitwise-identical results.

The simulator has no warp shuffles: there the row sums exchange values through
shared memory between block barriers, which is why every row loop
has the same trip count for all threads of a block (rows past the end are
computed on a repeated row and not written).
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np
from numba import cuda

#: True when numba-cuda's simulator stands in for a GPU (NUMBA_ENABLE_CUDASIM=1).
SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")

#: Threads per block of the generic row kernels and the gradient reduction; also the most classes supported.
THREADS = 32 if SIMULATED else 256
#: Threads per block of the fast row kernels (two warps in the simulator, to exercise several per block).
ROW_THREADS = 64 if SIMULATED else 256
#: Lanes that share one row in the fast kernels (a power of two dividing 32).
LANES = 8
#: Most classes the fast kernels take; more go to the generic ones.
FAST_CLASSES = 16
#: Largest W staged in shared memory: within the 48 KiB a block may have without an opt-in
#: attribute, with room for the kernels' static shared arrays.
SHARED_W_BYTES = 47 * 1024
#: Rows per partial sum of the two-phase gradient reduction.
CHUNK_ROWS = 16 if SIMULATED else 256
#: Values each thread of the fixed-order sum takes before the block's tree.
SUM_ITEMS = 4 if SIMULATED else 16
#: Kernels are cached on disk like the CPU ones (not in the simulator, which compiles nothing).
CACHE = not SIMULATED and os.environ.get("FASTSOFTMAX_NO_CACHE", "") in ("", "0")


def jit_options(threads, blocks_per_sm=None, cache=CACHE):
    """``cuda.jit`` options: launch bounds, so ptxas keeps registers within what the launch allows.

    The simulator's ``jit`` takes none of them.
    """
    if SIMULATED:
        return {}
    bounds = threads if blocks_per_sm is None else (threads, blocks_per_sm)
    return dict(launch_bounds=bounds, cache=cache)


def device_function(fn):
    """A device function, inlined on a GPU. In the simulator the plain Python function: the kernels of
    its own module call it while their simulated ``cuda`` is in place, whereas a simulated device
    function takes its module's lock on every call, and a block's threads queue for it."""
    return fn if SIMULATED else cuda.jit(device=True, forceinline=True)(fn)


#: Alignment of the dynamic shared arrays, so that they take 16-byte vector loads (the simulator
#: takes no alignment argument; numba-cuda's own default is the element's size).
SHARED_ALIGN = None if SIMULATED else 16
#: Bytes of the widest load a thread makes from shared memory (LDS.128).
VECTOR_BYTES = 16


def vector_loader(width):
    """A device function ``load(dst, o, src, i)``: ``dst[o:o + width] = src[i:i + width]``.

    On a GPU one vector load (``ld.shared.v4.f32``, ``ld.shared.v2.f64``; LLVM splits wider ones
    into 16-byte loads), so ``src[i]`` must be aligned to ``width`` elements (capped at 16 bytes)
    and ``dst`` should be a local array indexed by constants, which stays in registers. NVVM does
    not merge adjacent scalar loads into vector ones by itself: it cannot prove their alignment.
    In the simulator, and for a width of one, element by element.
    """
    if SIMULATED or width == 1:
        @device_function
        def load(dst, o, src, i):
            for v in range(width):
                dst[o + v] = src[i + v]
        return load
    return _vector_load_intrinsic(int(width))


@functools.lru_cache(maxsize=None)
def _vector_load_intrinsic(width):
    from llvmlite import ir
    from numba import types
    from numba.cuda import cgutils
    from numba.cuda.extending import intrinsic

    @intrinsic
    def load(typingctx, dst, o, src, i):
        if not (isinstance(dst, types.Array) and isinstance(src, types.Array) and dst.dtype == src.dtype
                and dst.ndim == 1 and src.ndim == 1 and isinstance(o, types.Integer)
                and isinstance(i, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            dst_t, o_t, src_t, i_t = sig.args
            dst_v, o_v, src_v, i_v = args
            element = context.get_data_type(src_t.dtype)
            align = min(VECTOR_BYTES, width * context.get_abi_sizeof(element))
            source = context.make_array(src_t)(context, builder, src_v)
            target = context.make_array(dst_t)(context, builder, dst_v)
            i_v = context.cast(builder, i_v, i_t, types.intp)
            o_v = context.cast(builder, o_v, o_t, types.intp)
            pointer = cgutils.get_item_pointer(context, builder, src_t, source, [i_v])
            vector_t = ir.VectorType(element, width)
            vector = builder.load(builder.bitcast(pointer, vector_t.as_pointer()), align=align)
            for v in range(width):
                slot = cgutils.get_item_pointer(context, builder, dst_t, target,
                                                [builder.add(o_v, ir.Constant(o_v.type, v))])
                builder.store(builder.extract_element(vector, ir.Constant(ir.IntType(32), v)), slot)
            return context.get_dummy_value()

        return types.none(dst, o, src, i), codegen

    return load


#: Most rows a lane works on at once (see :func:`rows_per_lane`).
MAX_ROWS_PER_LANE = 4
#: Shared scratch of the simulator's stand-in for warp shuffles (one slot on a GPU, unused).
EXCHANGE = (ROW_THREADS, FAST_CLASSES * MAX_ROWS_PER_LANE) if SIMULATED else (1, 1)


@device_function
def _row_sum(value):
    """Sum over the LANES lanes of a row by an xor butterfly of warp shuffles. Every lane
    gets the same bits: each level adds the same two numbers on both lanes of a pair."""
    value += cuda.shfl_xor_sync(0xFFFFFFFF, value, 4)
    value += cuda.shfl_xor_sync(0xFFFFFFFF, value, 2)
    value += cuda.shfl_xor_sync(0xFFFFFFFF, value, 1)
    return value


def rows_per_lane(n_classes, dtype_name):
    """Rows each lane of the fast kernels works on at once.

    Every weight a lane reads from shared memory serves this many rows: one row a
    lane would need a shared-memory load per multiply-add, which on an H100 caps
    the kernel near a third of the memory bandwidth. Bounded by the accumulators
    (rows x classes) that fit the register budget of :func:`blocks_per_sm`.
    """
    budget = 32 if dtype_name == "float32" else 16
    return max(1, min(MAX_ROWS_PER_LANE, budget // n_classes))


def blocks_per_sm(n_classes, dtype_name):
    """Resident blocks per SM that a fast kernel's launch bounds promise, and so its register
    budget, 65536 / (ROW_THREADS x blocks): 64 registers a thread at 4 blocks of 256, 128 at 2.
    Checked by ``tests/test_cuda_resources.py`` (no spills)."""
    return 2 if dtype_name == "float32" or n_classes <= 12 else 1


def rows_per_block(n_classes, dtype_name):
    """Rows a fast-kernel block works on at once."""
    return ROW_THREADS // LANES * rows_per_lane(n_classes, dtype_name)


def packing(x_dtype, n_features):
    """How the fast kernels read a row: ``(word dtype, pixels a word)``, the widest load that
    divides the row. uint8 rows of a multiple of 8 pixels (784 = 8 x 98) are read as uint64
    words of eight pixels, of 4 as uint32; float rows of an even width as complex pairs
    (complex64: two float32, one 8-byte load; complex128: two float64)."""
    x_dtype = np.dtype(x_dtype)
    if x_dtype == np.uint8:
        for word, pack in ((np.uint64, 8), (np.uint32, 4)):
            if n_features % pack == 0:
                return np.dtype(word), pack
        return x_dtype, 1
    if n_features % 2 == 0:
        return np.dtype(np.complex64 if x_dtype == np.float32 else np.complex128), 2
    return x_dtype, 1


def weight_vector(dtype, pack):
    """Weights one load of the fast kernels brings: as many of a word's ``pack`` as 16 bytes hold
    (four float32, two float64), fewer for narrower words."""
    return max(1, min(pack, VECTOR_BYTES // np.dtype(dtype).itemsize))


def packed_weights(W, pack):
    """W ``[F, C]`` laid out as the fast kernels read it: ``[C, pack / V, F / pack, V]`` flattened,
    ``V`` = :func:`weight_vector`. For one class and one part of the word (pixels ``p V`` to
    ``p V + V - 1``), the words' vectors follow one another, so the lanes of a slot, on
    consecutive words, load one contiguous 16-byte vector each: no two of them share a bank.
    (``[C, words, pack]`` put eight lanes 32 bytes apart: a 2-way bank conflict for float32.)"""
    F, C = W.shape
    V = weight_vector(W.dtype, pack)
    return np.ascontiguousarray(W.reshape(F // pack, pack // V, V, C).transpose(3, 1, 0, 2)).reshape(-1)


def stages_weights(n_features, n_classes, dtype):
    return n_features * n_classes * np.dtype(dtype).itemsize <= SHARED_W_BYTES


#: The fast row kernels made so far, by (classes, W's dtype name, word dtype name, pack, staged).
ROW_KERNELS: dict = {}


def row_kernels(n_classes, dtype_name, word_name, pack, staged):
    """The fast row kernels for ``n_classes`` classes of ``dtype_name``, reading rows as words of
    ``word_name`` holding ``pack`` pixels each (see :func:`packing`).

    Returns ``(forward, predict, loss, grad)``, each taking ``(X, scale, WT, b, ..., bad)``
    with X as ``[N, F / pack]`` words, WT from :func:`packed_weights` and, when
    ``staged``, ``WT.nbytes`` of dynamic shared memory at launch. Made once per key
    (:data:`ROW_KERNELS`); each compiles on its first launch.
    """
    key = (int(n_classes), str(dtype_name), str(word_name), int(pack), bool(staged))
    if key not in ROW_KERNELS:
        ROW_KERNELS[key] = _make_row_kernels(*key)
    return ROW_KERNELS[key]


def _make_row_kernels(n_classes, dtype_name, word_name, pack, staged):
    C, P = n_classes, pack
    V = weight_vector(dtype_name, P)  # weights a load brings
    H = P // V  # loads a word's weights take, per class
    R = rows_per_lane(C, dtype_name)
    RC = R * C
    RP = R * P
    GROUP = ROW_THREADS // LANES * R  # rows of a block at once: slot s takes rows s*R .. s*R + R - 1
    DT = np.dtype(dtype_name).type  # casts, and local arrays
    SHARED_DT = np.dtype(dtype_name)  # the simulator's dynamic shared array wants a dtype instance
    options = jit_options(ROW_THREADS, blocks_per_sm(C, dtype_name), cache=False)

    # unpack(word, xs, o): the word's P pixels into xs[o:o + P], in W's dtype. Bytes are taken
    # from 32-bit halves, so each is one shift-and-convert rather than 64-bit arithmetic.
    M32, S8, S16, S24, S32 = np.uint32(0xFF), np.uint32(8), np.uint32(16), np.uint32(24), np.uint64(32)
    LOW = np.uint64(0xFFFFFFFF)
    kind = np.dtype(word_name).kind

    @device_function
    def unpack_u32(half, xs, o):
        xs[o] = DT(half & M32)
        xs[o + 1] = DT((half >> S8) & M32)
        xs[o + 2] = DT((half >> S16) & M32)
        xs[o + 3] = DT(half >> S24)

    if kind == "u" and P == 8:
        @device_function
        def unpack(word, xs, o):
            unpack_u32(np.uint32(word & LOW), xs, o)
            unpack_u32(np.uint32(word >> S32), xs, o + 4)
    elif kind == "u" and P == 4:
        @device_function
        def unpack(word, xs, o):
            unpack_u32(word, xs, o)
    elif kind == "c":
        @device_function
        def unpack(word, xs, o):
            xs[o] = word.real
            xs[o + 1] = word.imag
    else:
        @device_function
        def unpack(word, xs, o):
            xs[o] = DT(word)

    # A device function cannot return a shared array, so W is read through `weights`,
    # from shared memory when staged and from global memory otherwise.
    load = vector_loader(V)
    if staged:
        @device_function
        def stage(WT, sW):
            for i in range(cuda.threadIdx.x, WT.shape[0], cuda.blockDim.x):
                sW[i] = WT[i]
            cuda.syncthreads()

        @device_function
        def weights(WT, sW, i, w):
            load(w, 0, sW, i)
    else:
        @device_function
        def stage(WT, sW):
            pass

        @device_function
        def weights(WT, sW, i, w):
            load(w, 0, WT, i)

    if SIMULATED:
        @device_function
        def row_sums(z, exchange):
            """The simulator has no warp shuffles: the same butterfly through shared memory,
            all values at once between two block barriers."""
            t = cuda.threadIdx.x
            for offset in (4, 2, 1):
                cuda.syncthreads()
                for c in range(RC):
                    exchange[t, c] = z[c]
                cuda.syncthreads()
                for c in range(RC):
                    z[c] += exchange[t ^ offset, c]
    else:
        @device_function
        def row_sums(z, exchange):
            for c in range(RC):
                z[c] = _row_sum(z[c])

    @device_function
    def accumulate(WT, sW, words, j, xs, z, w):
        """z += the word's pixels times their weights, every class, every row of the slot: each
        weight read serves the slot's R rows, and each load brings V weights (pixels in order,
        so every z adds the same products in the same order whatever V is)."""
        for c in range(C):
            for h in range(H):
                weights(WT, sW, ((c * H + h) * words + j) * V, w)  # see packed_weights
                for v in range(V):
                    for i in range(R):
                        z[i * C + c] += xs[i * P + h * V + v] * w[v]

    @device_function
    def block_logits(X, first, scale, WT, sW, b, exchange, z, x, xs, w):
        """``z[i * C + c]``: logits of row ``first + slot * R + i`` (the last row past the end),
        the same on every lane of the slot."""
        words = X.shape[1]
        last = X.shape[0] - 1
        sub = cuda.threadIdx.x % LANES
        row = first + cuda.threadIdx.x // LANES * R
        for c in range(RC):
            z[c] = DT(0)
        for j in range(sub, words, LANES):
            for i in range(R):  # R independent loads in flight before any arithmetic
                x[i] = X[min(row + i, last), j]
            for i in range(R):  # each pixel converted once, used for every class
                unpack(x[i], xs, i * P)
            accumulate(WT, sW, words, j, xs, z, w)
        row_sums(z, exchange)
        for i in range(R):
            for c in range(C):
                z[i * C + c] = z[i * C + c] * scale + b[c]
        return row

    @device_function
    def log_sum_exp(z, o):
        """(lse, finite) of the logits ``z[o:o + C]``."""
        m = z[o]
        finite = math.isfinite(z[o])
        for c in range(1, C):
            m = max(m, z[o + c])
            finite = finite and math.isfinite(z[o + c])
        s = DT(0)
        for c in range(C):
            s += math.exp(z[o + c] - m)
        return m + math.log(s), finite

    @device_function
    def pick(z, o, label):
        """``z[o + label]`` for finite logits, as a sum of products: a select between the loads
        would be folded into a load from a runtime index, which puts z in local memory."""
        value = DT(0)
        for c in range(C):
            value += z[o + c] * DT(1 if c == label else 0)
        return value

    @cuda.jit(**options)
    def forward(X, scale, WT, b, out, bad):
        sW = cuda.shared.array(0, SHARED_DT, SHARED_ALIGN)
        stage(WT, sW)
        exchange = cuda.shared.array(EXCHANGE, SHARED_DT)
        z = cuda.local.array(RC, DT)
        x = cuda.local.array(R, X.dtype)
        xs = cuda.local.array(RP, DT)
        w = cuda.local.array(V, DT)
        sub = cuda.threadIdx.x % LANES
        for first in range(cuda.blockIdx.x * GROUP, X.shape[0], cuda.gridDim.x * GROUP):
            row = block_logits(X, first, scale, WT, sW, b, exchange, z, x, xs, w)
            for i in range(R):
                if row + i < X.shape[0]:
                    lse, finite = log_sum_exp(z, i * C)
                    if not finite and sub == 0:
                        cuda.atomic.min(bad, 0, row + i)
                    for c in range(C):
                        if c % LANES == sub:
                            out[row + i, c] = math.exp(z[i * C + c] - lse)

    @cuda.jit(**options)
    def predict(X, scale, WT, b, out, bad):
        sW = cuda.shared.array(0, SHARED_DT, SHARED_ALIGN)
        stage(WT, sW)
        exchange = cuda.shared.array(EXCHANGE, SHARED_DT)
        z = cuda.local.array(RC, DT)
        x = cuda.local.array(R, X.dtype)
        xs = cuda.local.array(RP, DT)
        w = cuda.local.array(V, DT)
        sub = cuda.threadIdx.x % LANES
        for first in range(cuda.blockIdx.x * GROUP, X.shape[0], cuda.gridDim.x * GROUP):
            row = block_logits(X, first, scale, WT, sW, b, exchange, z, x, xs, w)
            for i in range(R):
                if row + i < X.shape[0] and sub == i % LANES:  # the slot's lanes share the writes
                    o = i * C
                    best, top, finite = 0, z[o], math.isfinite(z[o])
                    for c in range(1, C):
                        finite = finite and math.isfinite(z[o + c])
                        if z[o + c] > top:  # the first maximum, as numpy's argmax
                            best, top = c, z[o + c]
                    if not finite:
                        best = -1
                        cuda.atomic.min(bad, 0, row + i)
                    out[row + i] = best

    @cuda.jit(**options)
    def loss(X, scale, WT, b, y, row_loss, bad):
        sW = cuda.shared.array(0, SHARED_DT, SHARED_ALIGN)
        stage(WT, sW)
        exchange = cuda.shared.array(EXCHANGE, SHARED_DT)
        z = cuda.local.array(RC, DT)
        x = cuda.local.array(R, X.dtype)
        xs = cuda.local.array(RP, DT)
        w = cuda.local.array(V, DT)
        sub = cuda.threadIdx.x % LANES
        for first in range(cuda.blockIdx.x * GROUP, X.shape[0], cuda.gridDim.x * GROUP):
            row = block_logits(X, first, scale, WT, sW, b, exchange, z, x, xs, w)
            for i in range(R):
                if row + i < X.shape[0] and sub == i % LANES:
                    lse, finite = log_sum_exp(z, i * C)
                    if not finite:
                        cuda.atomic.min(bad, 0, row + i)
                    row_loss[row + i] = lse - pick(z, i * C, y[row + i])

    @cuda.jit(**options)
    def grad(X, scale, WT, b, y, gscale, G, row_loss, bad):
        """``G[row] = gscale * (softmax - onehot)`` and each row's loss."""
        sW = cuda.shared.array(0, SHARED_DT, SHARED_ALIGN)
        stage(WT, sW)
        exchange = cuda.shared.array(EXCHANGE, SHARED_DT)
        z = cuda.local.array(RC, DT)
        x = cuda.local.array(R, X.dtype)
        xs = cuda.local.array(RP, DT)
        w = cuda.local.array(V, DT)
        sub = cuda.threadIdx.x % LANES
        for first in range(cuda.blockIdx.x * GROUP, X.shape[0], cuda.gridDim.x * GROUP):
            row = block_logits(X, first, scale, WT, sW, b, exchange, z, x, xs, w)
            for i in range(R):
                if row + i < X.shape[0]:
                    label = y[row + i]
                    lse, finite = log_sum_exp(z, i * C)
                    if sub == i % LANES:
                        if not finite:
                            cuda.atomic.min(bad, 0, row + i)
                        row_loss[row + i] = lse - pick(z, i * C, label)
                    for c in range(C):
                        if c % LANES == sub:
                            G[row + i, c] = gscale * (math.exp(z[i * C + c] - lse) - (1.0 if c == label else 0.0))

    return forward, predict, loss, grad


# ---------------------------------------------------------------- generic rows (more classes)


@device_function
def _logit(X, i, scale, W, b, c):
    # Pixels are scaled once per dot product rather than once per element.
    acc = X[i, 0] * W[0, c]
    for f in range(1, X.shape[1]):
        acc += X[i, f] * W[f, c]
    return acc * scale + b[c]


@device_function
def _lse(z, first, C):
    """log-sum-exp of ``z[first:first + C]``."""
    m = z[first]
    for c in range(1, C):
        m = max(m, z[first + c])
    s = 0.0
    for c in range(C):
        s += math.exp(z[first + c] - m)
    return m + math.log(s)


@device_function
def _finite(z, first, C):
    for c in range(C):
        if not math.isfinite(z[first + c]):
            return False
    return True


@device_function
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


@cuda.jit(**jit_options(THREADS))
def _generic_forward_kernel(X, scale, W, b, out, bad):
    z = cuda.shared.array(THREADS, np.float64)
    row, c, first, active = _block_logits(X, scale, W, b, z)
    if active:
        out[row, c] = math.exp(z[first + c] - _lse(z, first, W.shape[1]))
        if c == 0 and not _finite(z, first, W.shape[1]):
            cuda.atomic.min(bad, 0, row)


@cuda.jit(**jit_options(THREADS))
def _generic_predict_kernel(X, scale, W, b, out, bad):
    z = cuda.shared.array(THREADS, np.float64)
    row, c, first, active = _block_logits(X, scale, W, b, z)
    if active and c == 0:
        best = 0
        for k in range(W.shape[1]):
            if not math.isfinite(z[first + k]):
                best = -1
                cuda.atomic.min(bad, 0, row)
                break
            if z[first + k] > z[first + best]:
                best = k
        out[row] = best


@cuda.jit(**jit_options(THREADS))
def _generic_loss_kernel(X, scale, W, b, y, row_loss, bad):
    z = cuda.shared.array(THREADS, np.float64)
    row, c, first, active = _block_logits(X, scale, W, b, z)
    if active and c == 0:
        if not _finite(z, first, W.shape[1]):
            cuda.atomic.min(bad, 0, row)
        row_loss[row] = _lse(z, first, W.shape[1]) - z[first + y[row]]


@cuda.jit(**jit_options(THREADS))
def _generic_grad_kernel(X, scale, W, b, y, gscale, G, row_loss, bad):
    """``G[row] = gscale * (softmax - onehot)`` and each row's loss."""
    z = cuda.shared.array(THREADS, np.float64)
    row, c, first, active = _block_logits(X, scale, W, b, z)
    if active:
        label = y[row]
        lse = _lse(z, first, W.shape[1])
        G[row, c] = gscale * (math.exp(z[first + c] - lse) - (1.0 if c == label else 0.0))
        if c == 0:
            if not _finite(z, first, W.shape[1]):
                cuda.atomic.min(bad, 0, row)
            row_loss[row] = lse - z[first + label]


# ---------------------------------------------------------------- reductions and updates


@cuda.jit(**jit_options(THREADS))
def _partial_grad_kernel(X, scale, G, partial_W, partial_b):
    """Phase one: ``partial_W[k] = X[chunk k].T @ G[chunk k]``.

    A one-dimensional grid strides over (chunk, block of W's elements) pairs, so
    no grid dimension grows with the row count (grid y stops at 65,535).
    """
    chunks, F, C = partial_W.shape[0], partial_W.shape[1], partial_W.shape[2]
    per_chunk = (F * C + cuda.blockDim.x - 1) // cuda.blockDim.x
    for item in range(cuda.blockIdx.x, chunks * per_chunk, cuda.gridDim.x):
        k = item // per_chunk
        e = (item - k * per_chunk) * cuda.blockDim.x + cuda.threadIdx.x
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


@cuda.jit(**jit_options(THREADS))
def _sum_chunks_kernel(partial, out):
    """Phase two: ``out[j] = sum_k partial[k, j]`` in chunk order (flattened views), grid-stride."""
    for j in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        acc = partial[0, j]
        for k in range(1, partial.shape[0]):
            acc += partial[k, j]
        out[j] = acc


@cuda.jit(**jit_options(THREADS))
def _block_sums_kernel(values, sums):
    """``sums[k]`` = sum of ``values[k * THREADS * SUM_ITEMS:]``'s chunk, in a fixed order.

    Thread t adds elements t, t + THREADS, ... of the chunk, then the block adds
    the threads' sums by a tree; neither order depends on the grid.
    """
    part = cuda.shared.array(THREADS, np.float64)
    t = cuda.threadIdx.x
    chunk = THREADS * SUM_ITEMS
    for k in range(cuda.blockIdx.x, sums.shape[0], cuda.gridDim.x):
        acc = 0.0
        for i in range(k * chunk + t, min(k * chunk + chunk, values.shape[0]), THREADS):
            acc += values[i]
        part[t] = acc
        cuda.syncthreads()
        width = THREADS // 2
        while width > 0:
            if t < width:
                part[t] += part[t + width]
            cuda.syncthreads()
            width //= 2
        if t == 0:
            sums[k] = part[0]
        cuda.syncthreads()


@cuda.jit(**jit_options(THREADS))
def _axpy_kernel(y, x, a):
    for i in range(cuda.grid(1), y.shape[0], cuda.gridsize(1)):
        y[i] += a * x[i]
