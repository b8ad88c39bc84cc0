"""The Numba CPU kernels: the arithmetic behind :mod:`fastsoftmax.kernels.cpu`.

Nothing here validates; the wrappers in ``cpu.py`` do that once, then call in.

Why the kernels are shaped as they are:

* W is kept transposed, ``Wt = W.T`` ``[C, F]``, so each class's weights are one
  contiguous row and the logits are dot products that vectorise along features.
* Classes go in blocks of four or five and batch rows in blocks of two or four,
  so one load of a shared operand feeds several FMAs instead of one; Wt is
  padded with zero classes to a whole number of blocks.
* Input rows are read where they lie, through an index array (a batch's order,
  or consecutive rows): uint8 pixels are converted in registers and the 1/255
  scale is applied once per dot product, so there is no float copy of the data,
  not even of a batch. The full ``[N, C]`` logits are never materialised.
* Logits and gradients of a block of rows are class-major, ``[Cp, rows]``, so
  the softmax, loss and gradient run along rows in full vectors, and the
  exponentials go through one vectorised loop (:func:`_exp_nonpositive`).
* fastmath is on without ``nnan``/``ninf``, so NaN and infinity still propagate and
  a diverging run is detected.
* Inference and loss work on fixed chunks of rows that each write their own slot,
  reduced afterwards in chunk order, so results do not depend on the number of
  threads (``_cpu_threads.py`` runs ranges of chunks on them). Training is in
  ``_cpu_training.py``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from . import _compile_cache

#: Kernels kept in Numba's on-disk cache: off with FASTSOFTMAX_NO_CACHE=1, or where Numba
#: can write no cache directory (see _compile_cache).
CACHE = _compile_cache.enabled()
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
_OPTIONS = dict(fastmath=_FASTMATH, cache=CACHE, nogil=True, error_model="numpy")
_kernel = numba.njit(**_OPTIONS)
# Small and one-use functions are inlined in Numba's IR, so they are typed inside their
# caller instead of being compiled to machine code of their own and then re-optimised in
# every caller's module (a fifth of a cold start). The register blocks stay functions:
# inlined twice into one body they compiled no faster, and the update blocks and the exp
# need fastmath flags of their own.
_inline = numba.njit(inline="always", **_OPTIONS)
# Without reassociation, so a written chain of multiply-adds stays one FMA per term.
_chain_kernel = numba.njit(**{**_OPTIONS, "fastmath": _FASTMATH - {"reassoc"}})

#: Rows per parallel work item. Fixed, so reductions do not depend on thread count.
CHUNK_ROWS = 256
#: Feature offset 0 for the kernels that read whole rows, as an int64 rather than the
#: literal 0: Numba compiles a function once per literal argument, and a literal here
#: would compile a second copy of the logits and update blocks beside training's.
_FIRST_FEATURE = np.int64(0)
_CACHE_LINE = 64


def item_pointer(context, builder, arrty, arr, indices, indextypes):
    """LLVM pointer to ``arr[indices]``, for the intrinsics here and in ``_cpu_training.py``."""
    ary = context.make_array(arrty)(context, builder, arr)
    inds = [context.cast(builder, v, t, types.intp) for v, t in zip(indices, indextypes)]
    return cgutils.get_item_pointer(context, builder, arrty, ary, inds)


def round_up(n, multiple):
    """``n`` rounded up to a multiple of ``multiple`` (host side: padding of classes, rows, features)."""
    return (n + multiple - 1) // multiple * multiple


def padded_classes(C):
    """Classes padded to whole blocks: C rounded up to a multiple of 4 or of 5, whichever is smaller.

    Ten classes in blocks of four would waste a sixth of the arithmetic on padding.
    """
    return min(round_up(C, 4), round_up(C, 5))


def class_blocks(Cp):
    """The kernels' ``fives`` argument for Cp padded classes: None for blocks of four, True for fives.

    The choice is made from the argument's type (None or bool) while the kernels
    are typed, so only the block size a call uses is compiled; the other took a
    fifth of a cold start's compile time.
    """
    return None if Cp % 4 == 0 else True


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
def _logits_r4c4(x0, x1, x2, x3, Wt, j, scale, out, r):
    """``out[j:j+4, r:r+4] += scale * (Wt[j:j+4, :n] @ [x0, x1, x2, x3].T)``, n = ``x0.size``: 4 rows x 4 classes.

    Sixteen dot products along features, read straight from four rows of the
    input (uint8 pixels are converted in registers and scaled once, at the end).
    Sixteen independent accumulators hide the FMA latency, and each load of a
    row feeds four FMAs; this runs near the core's FMA peak where a single dot
    product per pass runs at a third of it.
    """
    w0, w1, w2, w3 = Wt[j], Wt[j + 1], Wt[j + 2], Wt[j + 3]
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = scale - scale  # zero, of W's dtype
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = scale - scale
    for f in range(x0.size):
        p0, p1, p2, p3 = x0[f], x1[f], x2[f], x3[f]  # uint8 times W's float is W's float
        v0, v1, v2, v3 = w0[f], w1[f], w2[f], w3[f]
        s00 += p0 * v0
        s01 += p0 * v1
        s02 += p0 * v2
        s03 += p0 * v3
        s10 += p1 * v0
        s11 += p1 * v1
        s12 += p1 * v2
        s13 += p1 * v3
        s20 += p2 * v0
        s21 += p2 * v1
        s22 += p2 * v2
        s23 += p2 * v3
        s30 += p3 * v0
        s31 += p3 * v1
        s32 += p3 * v2
        s33 += p3 * v3
    out[j, r] += scale * s00
    out[j + 1, r] += scale * s01
    out[j + 2, r] += scale * s02
    out[j + 3, r] += scale * s03
    out[j, r + 1] += scale * s10
    out[j + 1, r + 1] += scale * s11
    out[j + 2, r + 1] += scale * s12
    out[j + 3, r + 1] += scale * s13
    out[j, r + 2] += scale * s20
    out[j + 1, r + 2] += scale * s21
    out[j + 2, r + 2] += scale * s22
    out[j + 3, r + 2] += scale * s23
    out[j, r + 3] += scale * s30
    out[j + 1, r + 3] += scale * s31
    out[j + 2, r + 3] += scale * s32
    out[j + 3, r + 3] += scale * s33


@_kernel
def _logits_r2c5(x0, x1, Wt, j, scale, out, r):
    """``out[j:j+5, r:r+2] += scale * (Wt[j:j+5, :n] @ [x0, x1].T)``: 2 rows x 5 classes (:func:`_logits_r4c4`).

    Ten classes (MNIST's) are two blocks of five; in blocks of four they would be
    padded to twelve and a sixth of the arithmetic wasted. Two rows, not four:
    twenty accumulators and nine operands do not fit AVX-512's 32 registers
    beside LLVM's temporaries, and the spilled accumulators went through the
    stack on every iteration, at a speed that changed from process to process
    (4K aliasing of the stack against the rows). Ten accumulators and seven
    operands stay in registers.
    """
    w0, w1, w2, w3, w4 = Wt[j], Wt[j + 1], Wt[j + 2], Wt[j + 3], Wt[j + 4]
    s00 = s01 = s02 = s03 = s04 = s10 = s11 = s12 = s13 = s14 = scale - scale
    for f in range(x0.size):
        p0, p1 = x0[f], x1[f]
        v0, v1, v2, v3, v4 = w0[f], w1[f], w2[f], w3[f], w4[f]
        s00 += p0 * v0
        s01 += p0 * v1
        s02 += p0 * v2
        s03 += p0 * v3
        s04 += p0 * v4
        s10 += p1 * v0
        s11 += p1 * v1
        s12 += p1 * v2
        s13 += p1 * v3
        s14 += p1 * v4
    out[j, r] += scale * s00
    out[j + 1, r] += scale * s01
    out[j + 2, r] += scale * s02
    out[j + 3, r] += scale * s03
    out[j + 4, r] += scale * s04
    out[j, r + 1] += scale * s10
    out[j + 1, r + 1] += scale * s11
    out[j + 2, r + 1] += scale * s12
    out[j + 3, r + 1] += scale * s13
    out[j + 4, r + 1] += scale * s14


def _block_logits(X, rows, nrows, f0, Wt, b, scale, Z, fives):
    """``Z[:, :nrows] = scale * Wt @ X[rows[:nrows], f0:].T + b[:, None]``: class-major logits.

    The rows are read where they are, through the indices ``rows`` (a batch's
    order, or consecutive rows), with no float copy. Class-major ``Z [Cp, rows]``
    so that the softmax and gradient that follow work along rows, in full
    vectors, rather than along ten classes. ``rows`` and Z have a multiple of 4
    entries, the padding repeating a real row, so there is no remainder code;
    logits past ``nrows`` are computed and ignored. Classes go in blocks of four
    (``fives`` None) or of five (``fives`` True); see :func:`class_blocks`.
    """


# The two bodies of _block_logits, one per block size, chosen while typing (see
# class_blocks). Each block size is a function of its own: with both loops in one
# body LLVM compiled the blocks of five 50% slower. The rows are taken as slices,
# not by offset indexing, so that the loops over them vectorise.

def _block_logits_by4(X, rows, nrows, f0, Wt, b, scale, Z, fives):
    for c in range(Wt.shape[0]):
        Z[c, :] = b[c]
    n = min(Wt.shape[1], X.shape[1] - f0)  # the last panel of Wt is zero-padded past X's features
    for i in range(0, nrows, 4):
        x0, x1, x2, x3 = X[rows[i], f0:f0 + n], X[rows[i + 1], f0:f0 + n], \
            X[rows[i + 2], f0:f0 + n], X[rows[i + 3], f0:f0 + n]
        for j in range(0, Wt.shape[0], 4):
            _logits_r4c4(x0, x1, x2, x3, Wt, j, scale, Z, i)


def _block_logits_by5(X, rows, nrows, f0, Wt, b, scale, Z, fives):
    for c in range(Wt.shape[0]):
        Z[c, :] = b[c]
    n = min(Wt.shape[1], X.shape[1] - f0)
    for i in range(0, nrows, 4):
        x0, x1, x2, x3 = X[rows[i], f0:f0 + n], X[rows[i + 1], f0:f0 + n], \
            X[rows[i + 2], f0:f0 + n], X[rows[i + 3], f0:f0 + n]
        for j in range(0, Wt.shape[0], 5):
            _logits_r2c5(x0, x1, Wt, j, scale, Z, i)
            _logits_r2c5(x2, x3, Wt, j, scale, Z, i + 2)


@overload(_block_logits)
def _block_logits_for(X, rows, nrows, f0, Wt, b, scale, Z, fives):
    return _block_logits_by4 if isinstance(fives, types.NoneType) else _block_logits_by5


@intrinsic
def _float64_from_bits(typingctx, bits):
    """The float64 whose IEEE bits are the int64 ``bits`` (a bitcast, which LLVM vectorises)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


_LOG2E = 1.4426950408889634
# fdlibm's split of ln 2: k * _LN2_HI is exact for |k| < 2**11, so r below carries no rounding of k.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_EXP_FLUSH = -708.39  # exp(x) < 2**-1022 (subnormal) below this: taken as 0


@_chain_kernel
def _exp_nonpositive(v, n):
    """``v[:n] = exp(v[:n])`` in float64, for ``v <= 0`` (logits minus their row maximum).

    Written out because LLVM vectorises this loop (8 lanes) and not a loop of
    ``math.exp`` calls: 1.5 ns an element against 5-7. exp(x) = 2**k * exp(r),
    ``r = x - k ln 2`` in [-ln2/2, ln2/2], exp(r) from its Taylor series to r**13
    (truncation below 1e-17): within 1 ulp of NumPy's exp. NaN stays NaN;
    results below 2**-1022 are flushed to 0, which no probability can notice.
    Compiled without reassociation, which would fold the two-part ln 2 into one.
    """
    for i in range(n):
        x = v[i]
        k = math.floor(x * _LOG2E + 0.5)
        r = x - k * _LN2_HI
        r = r - k * _LN2_LO
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        two_k = _float64_from_bits((np.int64(k) + 1023) << 52)
        v[i] = 0.0 if x < _EXP_FLUSH else p * two_k


def softmax_scratch_size(rows, Cp):
    """float64 elements of scratch the ``_rows_*`` functions below need: exponentials, row maxima, row sums."""
    return (Cp + 2) * rows




@_inline
def _rows_exp(Z, nrows, C, scratch):
    """Exponentials of the logits of rows ``[0, nrows)``, shifted by their row maxima (log-sum-exp).

    ``Z [Cp, rows]`` is class-major, so every loop here runs along rows and
    vectorises. Returns views into ``scratch``: E ``[C, nrows]``, ``exp(Z - M)``;
    M ``[nrows]``, the row maxima; S ``[nrows]``, the row sums of E.
    """
    n = C * nrows
    E = scratch[:n].reshape((C, nrows))
    M, S = scratch[n:n + nrows], scratch[n + nrows:n + 2 * nrows]
    for r in range(nrows):
        M[r] = Z[0, r]
    for c in range(1, C):
        for r in range(nrows):
            M[r] = max(M[r], Z[c, r])
    for c in range(C):
        for r in range(nrows):
            E[c, r] = Z[c, r] - M[r]
    _exp_nonpositive(scratch, n)
    S[:] = 0.0
    for c in range(C):
        for r in range(nrows):
            S[r] += E[c, r]
    return E, M, S


#: Row sums multiplied together before one log is taken of their product (see _summed_loss).
_LOG_GROUP = 8


@_inline
def _summed_loss(Z, nrows, labels, M, S):
    """``sum_r lse_r - Z[labels[r], r]``, with ``lse = M + log(S)`` from :func:`_rows_exp`.

    The logs are taken of products of ``_LOG_GROUP`` row sums: a scalar log per row
    (it does not vectorise) was a tenth of a training step's softmax. Each S is in
    ``[1, C]``, so a product of eight cannot overflow, and it rounds by a few ulp
    at most. A NaN or infinite S still makes the loss NaN or infinite.
    """
    loss = 0.0
    product = 1.0
    for r in range(nrows):
        loss += M[r] - Z[labels[r], r]
        product *= S[r]
        if r % _LOG_GROUP == _LOG_GROUP - 1:
            loss += math.log(product)
            product = 1.0
    return loss + math.log(product)


@_inline
def _rows_xent_loss(Z, nrows, C, labels, scratch):
    """Summed cross-entropy of rows ``[0, nrows)`` of class-major logits Z against ``labels[:nrows]``."""
    _, M, S = _rows_exp(Z, nrows, C, scratch)
    return _summed_loss(Z, nrows, labels, M, S)


@_inline
def _rows_xent_grad(Z, nrows, C, labels, gscale, G, scratch):
    """Summed loss of rows ``[0, nrows)``; ``G[:, r] = gscale * (softmax(Z[:, r]) - onehot(labels[r]))``.

    G is class-major like Z; its padding classes get 0 and its columns past
    ``nrows`` are left as they are.
    """
    E, M, S = _rows_exp(Z, nrows, C, scratch)
    loss = _summed_loss(Z, nrows, labels, M, S)
    for r in range(nrows):
        S[r] = gscale / S[r]
    for c in range(C):
        for r in range(nrows):
            G[c, r] = E[c, r] * S[r]
    G[C:, :nrows] = 0
    for r in range(nrows):
        G[labels[r], r] -= gscale
    return loss


@_inline
def _rows_softmax(Z, nrows, C, out, scratch):
    """``out[r] = softmax(Z[:, r])`` for r < nrows; ``out [nrows, C]`` is row-major."""
    E, _, S = _rows_exp(Z, nrows, C, scratch)
    for r in range(nrows):
        S[r] = 1.0 / S[r]
    for r in range(nrows):
        for c in range(C):
            out[r, c] = E[c, r] * S[r]


@_inline
def _rows_argmax(Z, nrows, C, out):
    """``out[r]`` = the largest class of ``Z[:, r]`` for r < nrows, or -1 when any logit is not finite."""
    for r in range(nrows):
        best = 0
        for c in range(C):
            if not math.isfinite(Z[c, r]):
                best = -1
                break
            if Z[c, r] > Z[best, r]:
                best = c
        out[r] = best


@_chain_kernel
def _update_r4c4(x0, x1, x2, x3, G, r, c, scale, Wt):
    """``Wt[c:c+4, :n] -= scale * G[c:c+4, r:r+4] @ [x0, x1, x2, x3]``: 4 rows x 4 classes, a rank-4 update.

    The sixteen coefficients stay in registers and each load of a batch row feeds
    four FMAs, so this runs near the core's FMA peak; one class row per pass is
    bound by loads at half of it. Each class row is one chain of four FMAs, in
    row order, so the rounding is the same on every run.
    """
    w0, w1, w2, w3 = Wt[c], Wt[c + 1], Wt[c + 2], Wt[c + 3]
    g00, g01, g02, g03 = G[c, r] * scale, G[c + 1, r] * scale, G[c + 2, r] * scale, G[c + 3, r] * scale
    g10, g11, g12, g13 = G[c, r + 1] * scale, G[c + 1, r + 1] * scale, G[c + 2, r + 1] * scale, G[c + 3, r + 1] * scale
    g20, g21, g22, g23 = G[c, r + 2] * scale, G[c + 1, r + 2] * scale, G[c + 2, r + 2] * scale, G[c + 3, r + 2] * scale
    g30, g31, g32, g33 = G[c, r + 3] * scale, G[c + 1, r + 3] * scale, G[c + 2, r + 3] * scale, G[c + 3, r + 3] * scale
    for f in range(x0.size):
        p0, p1, p2, p3 = x0[f], x1[f], x2[f], x3[f]
        w0[f] = w0[f] - g00 * p0 - g10 * p1 - g20 * p2 - g30 * p3
        w1[f] = w1[f] - g01 * p0 - g11 * p1 - g21 * p2 - g31 * p3
        w2[f] = w2[f] - g02 * p0 - g12 * p1 - g22 * p2 - g32 * p3
        w3[f] = w3[f] - g03 * p0 - g13 * p1 - g23 * p2 - g33 * p3


@_chain_kernel
def _update_r4c5(x0, x1, x2, x3, G, r, c, scale, Wt):
    """:func:`_update_r4c4` for five class rows, 4 rows x 5 classes (see :func:`_logits_r2c5` for why fives)."""
    w0, w1, w2, w3, w4 = Wt[c], Wt[c + 1], Wt[c + 2], Wt[c + 3], Wt[c + 4]
    g00, g01, g02 = G[c, r] * scale, G[c + 1, r] * scale, G[c + 2, r] * scale
    g03, g04 = G[c + 3, r] * scale, G[c + 4, r] * scale
    g10, g11, g12 = G[c, r + 1] * scale, G[c + 1, r + 1] * scale, G[c + 2, r + 1] * scale
    g13, g14 = G[c + 3, r + 1] * scale, G[c + 4, r + 1] * scale
    g20, g21, g22 = G[c, r + 2] * scale, G[c + 1, r + 2] * scale, G[c + 2, r + 2] * scale
    g23, g24 = G[c + 3, r + 2] * scale, G[c + 4, r + 2] * scale
    g30, g31, g32 = G[c, r + 3] * scale, G[c + 1, r + 3] * scale, G[c + 2, r + 3] * scale
    g33, g34 = G[c + 3, r + 3] * scale, G[c + 4, r + 3] * scale
    for f in range(x0.size):
        p0, p1, p2, p3 = x0[f], x1[f], x2[f], x3[f]
        w0[f] = w0[f] - g00 * p0 - g10 * p1 - g20 * p2 - g30 * p3
        w1[f] = w1[f] - g01 * p0 - g11 * p1 - g21 * p2 - g31 * p3
        w2[f] = w2[f] - g02 * p0 - g12 * p1 - g22 * p2 - g32 * p3
        w3[f] = w3[f] - g03 * p0 - g13 * p1 - g23 * p2 - g33 * p3
        w4[f] = w4[f] - g04 * p0 - g14 * p1 - g24 * p2 - g34 * p3


def _subtract_weights(X, rows, nrows, f0, G, scale, Wt, fives):
    """``Wt[:, :n] -= scale * G[:, :m] @ X[rows[:m], f0:f0+n]``, m = nrows rounded up to 4.

    G is class-major ``[Cp, rows]``; its columns past ``nrows`` must be zero (the
    padding entries of ``rows`` repeat a real row), so there is no remainder
    code. Blocks of four rows go outside the classes, so the block and all of
    Wt stay close to the core while every class row is updated. Classes in
    blocks of four or five, as in :func:`_block_logits`.
    """


def _subtract_weights_by4(X, rows, nrows, f0, G, scale, Wt, fives):
    n = min(Wt.shape[1], X.shape[1] - f0)
    for r in range(0, nrows, 4):
        x0, x1, x2, x3 = X[rows[r], f0:f0 + n], X[rows[r + 1], f0:f0 + n], \
            X[rows[r + 2], f0:f0 + n], X[rows[r + 3], f0:f0 + n]
        for c in range(0, Wt.shape[0], 4):
            _update_r4c4(x0, x1, x2, x3, G, r, c, scale, Wt)


def _subtract_weights_by5(X, rows, nrows, f0, G, scale, Wt, fives):
    n = min(Wt.shape[1], X.shape[1] - f0)
    for r in range(0, nrows, 4):
        x0, x1, x2, x3 = X[rows[r], f0:f0 + n], X[rows[r + 1], f0:f0 + n], \
            X[rows[r + 2], f0:f0 + n], X[rows[r + 3], f0:f0 + n]
        for c in range(0, Wt.shape[0], 5):
            _update_r4c5(x0, x1, x2, x3, G, r, c, scale, Wt)


@overload(_subtract_weights)
def _subtract_weights_for(X, rows, nrows, f0, G, scale, Wt, fives):
    # As _block_logits: only the block size in use is compiled.
    return _subtract_weights_by4 if isinstance(fives, types.NoneType) else _subtract_weights_by5


@_inline
def _subtract_column_sums(G, nrows, b):
    """``b -= G[:, :nrows].sum(1)``, summed in row order."""
    for c in range(b.size):
        total = b[c]
        for r in range(nrows):
            total -= G[c, r]
        b[c] = total


@_inline
def _scale_weights(Wt, factor):
    for c in range(Wt.shape[0]):
        for f in range(Wt.shape[1]):
            Wt[c, f] *= factor


@_inline
def _consecutive_rows(start, N, rows):
    """``rows[r] = start + r``, the padding past the last row N - 1 repeating it."""
    for r in range(rows.size):
        rows[r] = min(start + r, N - 1)


@_kernel
def _xent_grad(X, scale, y, Wt, b, C, dWt, db, fives, buf, n_chunks):
    """Summed-then-averaged loss; ``dWt``, ``db`` (zeroed by the caller) accumulate ``G X`` and ``sum G``."""
    N = X.shape[0]
    gscale = -1.0 / N  # the update subtracts; a negative scale accumulates +G X
    rows, Z, G, scratch = buf
    loss = 0.0
    for k in range(n_chunks):
        start, n = _chunk_logits(X, scale, Wt, b, k, rows, Z, fives)
        loss += _rows_xent_grad(Z, n, C, y[start:start + n], gscale, G, scratch)
        G[:, n:] = 0  # the last chunk's padding rows must not add to the sums
        _subtract_weights(X, rows, n, _FIRST_FEATURE, G, scale, dWt, fives)
        _subtract_column_sums(G, n, db)
    return loss / N


@_inline
def _chunk_logits(X, scale, Wt, b, k, rows, Z, fives):
    """Logits of rows ``[k*CHUNK_ROWS, ...)`` into Z (class-major); returns (first row, row count)."""
    start = k * CHUNK_ROWS
    n = min(CHUNK_ROWS, X.shape[0] - start)
    _consecutive_rows(start, X.shape[0], rows)
    _block_logits(X, rows, n, _FIRST_FEATURE, Wt, b, scale, Z, fives)
    return start, n


class ChunkBuffers(NamedTuple):
    """Scratch of one thread of the inference, loss and gradient kernels, allocated on the host.

    (Allocated outside the compiled kernels: each allocation there costs a cold
    start a fraction of a second of compiling.)
    """

    rows: np.ndarray     #: int64 ``[CHUNK_ROWS]``: the chunk's row indices
    Z: np.ndarray        #: ``[Cp, CHUNK_ROWS]``, W's dtype: class-major logits
    G: np.ndarray        #: ``[Cp, CHUNK_ROWS]``, W's dtype: class-major gradient coefficients
    scratch: np.ndarray  #: float64: the softmax scratch (:func:`softmax_scratch_size`)


def chunk_buffers(Cp, dtype):
    """A fresh :class:`ChunkBuffers` for Cp padded classes of ``dtype``."""
    return ChunkBuffers(rows=np.zeros(CHUNK_ROWS, np.int64), Z=np.zeros((Cp, CHUNK_ROWS), dtype),
                        G=np.zeros((Cp, CHUNK_ROWS), dtype),
                        scratch=np.zeros(softmax_scratch_size(CHUNK_ROWS, Cp)))


def chunk_count(n_rows):
    """Work items of the inference and loss kernels: chunks of ``CHUNK_ROWS`` rows."""
    return (n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS


@intrinsic
def _claim(typingctx, work):
    """Atomically ``work[0] += 1``, returning the old value: the next work item, for whichever thread asks."""
    if not (isinstance(work, types.Array) and work.ndim == 1 and work.dtype == types.int64):
        return None

    def codegen(context, builder, sig, args):
        zero = context.get_constant(types.intp, 0)
        ptr = item_pointer(context, builder, sig.args[0], args[0], [zero], [types.intp])
        return builder.atomic_rmw("add", ptr, context.get_constant(types.int64, 1), "monotonic")

    return types.int64(work), codegen


# The inference and loss kernels below take chunks k < n_chunks one at a time from the
# shared counter work[0] (_claim), each thread with its ChunkBuffers; _cpu_threads.split
# runs them on the machine's threads. Claimed, not split in halves beforehand: a thread
# that starts late (waking an idle core can take a millisecond on a VM) then takes fewer.

@_kernel
def _forward(X, scale, Wt, b, C, out, fives, buf, work, n_chunks):
    """``out[rows of each chunk claimed] = softmax(X Wt.T + b)``."""
    rows, Z, _, scratch = buf
    k = _claim(work)
    while k < n_chunks:
        start, n = _chunk_logits(X, scale, Wt, b, k, rows, Z, fives)
        _rows_softmax(Z, n, C, out[start:start + n], scratch)
        k = _claim(work)


@_kernel
def _predict(X, scale, Wt, b, C, out, fives, buf, work, n_chunks):
    """``out[rows of each chunk claimed] = argmax(X Wt.T + b)``, -1 where a logit is not finite."""
    rows, Z, _, _ = buf
    k = _claim(work)
    while k < n_chunks:
        start, n = _chunk_logits(X, scale, Wt, b, k, rows, Z, fives)
        _rows_argmax(Z, n, C, out[start:start + n])
        k = _claim(work)


@_kernel
def _predict_many(X, scale, Wt, b, C, out, fives, buf, work, n_chunks):
    """``out[m, rows of each chunk claimed] = argmax(X Wt[m].T + b[m])`` for every model m: a chunk's
    rows are read from memory once, then from the cache for the other models."""
    rows, Z, _, _ = buf
    k = _claim(work)
    while k < n_chunks:
        start = k * CHUNK_ROWS
        n = min(CHUNK_ROWS, X.shape[0] - start)
        _consecutive_rows(start, X.shape[0], rows)
        for m in range(Wt.shape[0]):
            _block_logits(X, rows, n, _FIRST_FEATURE, Wt[m], b[m], scale, Z, fives)
            _rows_argmax(Z, n, C, out[m, start:start + n])
        k = _claim(work)


@_kernel
def _xent_loss(X, scale, y, Wt, b, C, partial, fives, buf, work, n_chunks):
    """``partial[k]`` = the summed loss of chunk k's rows, for each chunk claimed."""
    rows, Z, _, scratch = buf
    k = _claim(work)
    while k < n_chunks:
        start, n = _chunk_logits(X, scale, Wt, b, k, rows, Z, fives)
        partial[k] = _rows_xent_loss(Z, n, C, y[start:start + n], scratch)
        k = _claim(work)


@_kernel
def _axpy(y, x, a):
    for i in range(y.size):
        y[i] += a * x[i]
