"""The CUDA backend's training kernels: SGD steps of M models at once, each model's features cut into slices.

**Slices and tiles.** Model ``m``'s W is cut into :func:`feature_slices` slices of at
most :data:`SLICE_FEATURES` features (fewer for many classes), a number that depends
on the model's shape only, never on how many models train beside it or on the grid:
so are the sums a step takes, and so are its bits. A *tile* is one slice of
several models of one group (the models that take the same batches): those
models' slices of W stay in the block's shared memory for the whole call, and the
batch's pixels in the slice are gathered once for all of them. The tiles are
dealt round-robin to the blocks (:func:`plan_training`); a block works on its
tiles in turn, in a fixed order. One model is :func:`feature_slices` tiles, so
``train_steps`` keeps ``S`` blocks busy and 64 models keep the whole GPU busy
with the same per-model arithmetic.

**A step** has three phases:

1. **partial logits** (:func:`_logits_phase`): every tile multiplies the batch's
   pixels in its slice by each of its models' slice of W, into
   ``parts[m, k, r, c]``. A thread works on four rows by four classes of one model
   (16 accumulators), reading a row's pixel once for four classes and the four
   classes' weights in one vector load.
2. **softmax rows** (:func:`_softmax_phase`), after a grid-wide barrier: a thread
   per (row, class) sums its ``S`` partial logits in slice order (the loads
   issued :data:`PART_LOADS` at a time, so the sum waits for a few round trips
   instead of ``S``); the row's logits meet in shared memory, where each of its
   threads takes the log-sum-exp (one block barrier a chunk of rows); the
   gradient rows ``G[m, r]`` and each chunk of rows' summed loss go to global
   memory. The rows of all models are spread over all blocks, so that one
   model's softmax is not a chain of ``S x C`` loads on one SM.
3. **update** (:func:`_update_phase`), after a second barrier: each tile updates
   its models' slices of W in shared memory from ``G`` (and b, the weight of a
   constant feature of ones, on the slice-0 tile; the running average where
   kept). A thread holds a 4 x 4 block of ``dW`` over one eighth of the rows
   (:data:`ROW_PARTS`), so that one model's update keeps a few hundred threads
   busy rather than a few dozen; the eight parts are added by warp shuffles.
   Every thread that needs a model's loss sums its chunks' losses in the same
   order, so every tile takes the same decision to stop a model before a
   non-finite step, with no further exchange; the others go on.

Phase 3 of a step and phase 1 of the next touch only the tile's own slices, so
they need no barrier between them: two grid-wide barriers a step. Where a block
has a single tile, its batch rows stay in shared memory from phase 1 to phase 3,
and the next batch's pixels are loaded into registers before phase 2 and stored
after phase 3 (:data:`X_PREFETCH` a thread): their latency hides behind the
barriers instead of starting the next step.

Two ways to run it:

* :data:`_train_cooperative_kernel`: every step in one cooperative launch, with
  ``this_grid().sync()`` as the barriers (numba-cuda launches a kernel that syncs
  its grid cooperatively by itself; the grid must not exceed
  ``max_cooperative_grid_blocks``). Used on a GPU. The simulator runs cooperative
  grids as one block, so there one block works on every tile.
* :data:`_train_slices_kernel` (phase 3 of the previous step, then phase 1) and
  :data:`_train_rows_kernel` (phase 2), launched per step: the end of a launch is
  the barrier, and any number of blocks works. The GPU's fallback where a
  cooperative launch is refused, and how the simulator tests tiles spread over
  several blocks.

Both call the same device functions, and every sum runs in an order fixed by the
model's shape and the library's constants, so both paths, any grid and any
number of models beside give the same bits. Nothing uses floating-point atomics.
The constants that fix the order are :data:`SLICE_FEATURES` and :data:`SLICE_BYTES`
(the slices), :data:`ROW_PARTS` (the update's row parts) and :data:`TRAIN_THREADS`
(the chunks of rows whose losses are added first); the simulator's smaller values
give other bits than a GPU's, each repeatable.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import cuda

from ._cuda_kernels import SHARED_ALIGN, SIMULATED, device_function, jit_options, vector_loader

#: Threads per training block (one warp in the simulator, whose threads are Python threads).
TRAIN_THREADS = 32 if SIMULATED else 256
#: Resident blocks per SM that the cooperative kernel's launch bounds promise: one, so 255 registers a
#: thread. It carries all three phases and the next batch's pixels across them: at 128 registers
#: (two blocks) it spilled, 92 bytes a thread for float32 and 1.5 KB for float64 on sm_90.
COOPERATIVE_BLOCKS_PER_SM = 1
#: The same for the per-step kernels, which hold one or two phases: 128 registers a thread.
STEP_BLOCKS_PER_SM = 2
#: Most features in one slice of a model's W: 784 pixels are 25 slices of 31 or 32. In the simulator
#: one slice (every tile costs block barriers, which its Python threads pay dearly; the tests patch
#: narrow slices where they check the split).
SLICE_FEATURES = 1 << 30 if SIMULATED else 32
#: Most bytes of one model's slice of W in shared memory (padded); more classes make narrower slices.
SLICE_BYTES = 1 << 30 if SIMULATED else 16 * 1024
#: Dynamic shared memory of a training block: within the 48 KiB a block may have without an opt-in
#: attribute (two such blocks fit an SM of every architecture from sm_70). The simulator's shared
#: memory is host memory, sized by what a launch asks for.
TRAIN_SHARED_BYTES = 1 << 30 if SIMULATED else 40 * 1024
#: Parts the rows of a batch are split into for the update's sums (adjacent lanes; warp shuffles add
#: them). One in the simulator, which has no shuffles: each exchange would cost it two block barriers.
ROW_PARTS = 1 if SIMULATED else 8
#: Pixels of the next batch each thread holds in registers across the barriers.
X_PREFETCH = 16
#: Partial logits a thread has in flight while summing a logit's slices: 784 pixels' 25 slices are two
#: round trips to L2, on the critical path of every step (32 spill on sm_90).
PART_LOADS = 16

_load4 = vector_loader(4)
_FLOAT64 = np.dtype(np.float64)  # the simulator's dynamic shared arrays want a dtype instance


# ---------------------------------------------------------------- kernel arguments


class TrainInputs(NamedTuple):
    """What the training kernels read.

    X ``[N, F]`` (uint8 or W's dtype), y int64 ``[N]``, orders int64 ``[G, steps * batch]``,
    group int64 ``[M]``, rates float64 ``[M, steps]``, decays float64 ``[M]``, inverses
    ``[M, steps]`` (W's dtype: each step's weight in the running mean, 0 where not averaged),
    tiles int64 ``[T, 4]`` (group, slice, first member, models), members int64 ``[M]``
    (the models sorted by group; a tile's models are consecutive members).
    """

    X: object
    y: object
    orders: object
    group: object
    rates: object
    decays: object
    inverses: object
    tiles: object
    members: object


class TrainModels(NamedTuple):
    """What the training kernels update: W ``[M, F, C]``, b ``[M, C]``, the running means
    (``[M, F, C]`` and ``[M, C]``, or ``[1, 1, 1]`` and ``[1, 1]`` when none is kept), losses
    float64 ``[M, steps]`` and done int64 ``[M]`` (the steps each model has taken)."""

    W: object
    b: object
    avg_W: object
    avg_b: object
    losses: object
    done: object


class TrainScratch(NamedTuple):
    """Exchanged between the phases through global memory: partial logits ``[M, S, batch, C]``,
    gradient rows ``[M * batch * Cp]`` (flat, classes padded to Cp, so rows take vector loads)
    and float64 chunk losses ``[M, chunks]``."""

    parts: object
    G: object
    chunk_loss: object


class TrainPlan(NamedTuple):
    """Sizes and shared-memory offsets (in W's elements) of a training launch; see :func:`plan_training`."""

    batch: int            # rows of a batch
    slices: int           # slices of a model's features
    features: int         # a slice's features, padded to a multiple of 4 (rows of a W slice in shared)
    classes: int          # classes padded to a multiple of 4 (Cp)
    x_stride: int         # elements between two rows of the staged pixels
    row_quads: int        # ceil(batch / 4): a phase-1 thread takes rows q, q + row_quads, ...
    tile_models: int      # most models in a tile
    tiles_per_block: int
    chunk_rows: int       # rows of one phase-2 chunk: TRAIN_THREADS // C
    chunks: int           # phase-2 chunks of a batch
    x_offset: int
    z_offset: int         # phase 2's logits, two halves of TRAIN_THREADS
    exchange_offset: int  # the simulator's stand-in for warp shuffles
    loss_offset: int      # phase 2's row losses, two halves of float64, in float64 elements from the start
    staged: int           # the batch's pixels are gathered into shared memory (else read from global)
    keep_x: int           # one tile a block: the pixels gathered for phase 1 serve phase 3 too
    prefetch: int         # ... and the next batch's are loaded into registers across the barriers
    shared_bytes: int     # dynamic shared memory of a block


def train_signature(x_dtype, w_dtype, per_step=False):
    """The numba argument types of the training kernels, for X of ``x_dtype`` and W of ``w_dtype``:
    ``(TrainInputs, TrainModels, TrainScratch, TrainPlan, scale)``, and the step for the per-step
    kernels. The one place the kernels' signature is written; the wrappers and
    :mod:`._cuda_resources` compile from it."""
    from numba import typeof

    x, w, i, f = np.dtype(x_dtype), np.dtype(w_dtype), np.dtype(np.int64), np.dtype(np.float64)
    inputs = TrainInputs(np.zeros((1, 1), x), np.zeros(1, i), np.zeros((1, 1), i), np.zeros(1, i),
                         np.zeros((1, 1), f), np.zeros(1, f), np.zeros((1, 1), w), np.zeros((1, 4), i),
                         np.zeros(1, i))
    models = TrainModels(np.zeros((1, 1, 1), w), np.zeros((1, 1), w), np.zeros((1, 1, 1), w), np.zeros((1, 1), w),
                         np.zeros((1, 1), f), np.zeros(1, i))
    scratch = TrainScratch(np.zeros((1, 1, 1, 1), w), np.zeros(1, w), np.zeros((1, 1), f))
    plan = TrainPlan(*([1] * len(TrainPlan._fields)))
    types = tuple(typeof(a) for a in (inputs, models, scratch, plan, w.type(1)))
    return types + (typeof(1),) if per_step else types


# ---------------------------------------------------------------- host-side layout


def feature_slices(n_features, n_classes, dtype):
    """Slices a model's features are cut into: a function of its shape and dtype only, so that a
    model's sums, and their bits, do not depend on the models beside it or on the grid."""
    padded = -(-n_classes // 4) * 4
    width = min(SLICE_FEATURES, max(4, SLICE_BYTES // (padded * np.dtype(dtype).itemsize) // 4 * 4))
    return -(-n_features // width)


def plan_training(group, n_groups, n_features, n_classes, dtype, batch, max_blocks):
    """Tiles and launch layout of a training call: ``(plan, tiles, members, blocks)``, or None when
    the models' slices of W do not fit the blocks' shared memory (then train fewer models a call).

    The fewest models a tile that keeps the tile count within ``max_blocks`` (as many blocks
    busy as the grid has); every block holds its tiles' W slices, and the batch's pixels when
    they fit beside them (else the kernels read them from global memory: the same values).
    """
    dtype = np.dtype(dtype)
    size = dtype.itemsize
    threads = TRAIN_THREADS
    vector = 16 // size
    S = feature_slices(n_features, n_classes, dtype)
    Cp = -(-n_classes // 4) * 4
    widest = -(-n_features // S)  # the widest slice
    Fp = -(-widest // 4) * 4
    members = np.argsort(group, kind="stable").astype(np.int64)
    counts = np.bincount(group, minlength=n_groups)
    largest = int(counts.max())
    for per_tile in range(1, largest + 1):
        n_tiles = S * int(sum(-(-int(c) // per_tile) for c in counts))
        if n_tiles <= max_blocks:
            break
    blocks = min(n_tiles, max_blocks)
    per_block = -(-n_tiles // blocks)
    w_elements = per_block * per_tile * Fp * Cp
    Q = -(-batch // 4)
    x_stride = Fp + vector  # rows 16-byte aligned, and consecutive rows on different banks
    x_elements = 4 * Q * x_stride
    exchange = threads * 16 if SIMULATED else 0
    scratch = 2 * threads + exchange + 2 * threads * 8 // size  # logits, (exchange), row losses: two halves
    if (w_elements + scratch) * size > TRAIN_SHARED_BYTES:
        return None
    staged = (w_elements + x_elements + scratch) * size <= TRAIN_SHARED_BYTES
    x_elements = x_elements if staged else 0
    keep = staged and per_block == 1
    tiles = []
    start = np.concatenate([[0], np.cumsum(counts)])
    for g in range(n_groups):
        for k in range(S):
            for first in range(0, int(counts[g]), per_tile):
                tiles.append((g, k, start[g] + first, min(per_tile, int(counts[g]) - first)))
    rows = threads // n_classes
    plan = TrainPlan(batch=batch, slices=S, features=Fp, classes=Cp, x_stride=x_stride, row_quads=Q,
                     tile_models=per_tile, tiles_per_block=per_block, chunk_rows=rows, chunks=-(-batch // rows),
                     x_offset=w_elements, z_offset=w_elements + x_elements,
                     exchange_offset=w_elements + x_elements + 2 * threads,
                     loss_offset=(w_elements + x_elements + 2 * threads + exchange) * size // 8,
                     staged=int(staged), keep_x=int(keep),
                     prefetch=int(keep and 4 * Q * Fp <= threads * X_PREFETCH),
                     shared_bytes=(w_elements + x_elements + scratch) * size)
    return plan, np.array(tiles, np.int64).reshape(-1, 4), members, blocks


def step_plan(plan):
    """The plan for launches per step: nothing stays in shared memory from one launch to the next."""
    return plan._replace(keep_x=0, prefetch=0)


# ---------------------------------------------------------------- device functions


@device_function
def _feature_slice(k, slices, n_features):
    return k * n_features // slices, (k + 1) * n_features // slices


@device_function
def _tile(inputs, plan, p):
    """(group, slice, first member, models) of the block's ``p``-th tile (no models past the last)."""
    i = cuda.blockIdx.x + p * cuda.gridDim.x
    if i >= inputs.tiles.shape[0]:
        return 0, 0, 0, 0
    return inputs.tiles[i, 0], inputs.tiles[i, 1], inputs.tiles[i, 2], inputs.tiles[i, 3]


@device_function
def _slot(plan, p, mi):
    """Where the ``mi``-th model of the block's ``p``-th tile keeps its W slice ``[features, classes]``."""
    return (p * plan.tile_models + mi) * plan.features * plan.classes


@device_function
def _move_slices(inputs, models, plan, smem, to_shared):
    """The block's tiles' W slices between global and shared memory: into shared memory (zero-padded to
    ``[features, classes]``) when ``to_shared``, back into W otherwise."""
    F, C = models.W.shape[1], models.W.shape[2]
    size = plan.features * plan.classes
    for p in range(plan.tiles_per_block):
        _, k, first, count = _tile(inputs, plan, p)
        f0, f1 = _feature_slice(k, plan.slices, F)
        for e in range(cuda.threadIdx.x, count * size, cuda.blockDim.x):
            mi = e // size
            f = (e - mi * size) // plan.classes
            c = e - mi * size - f * plan.classes
            inside = f < f1 - f0 and c < C
            if to_shared:
                smem[_slot(plan, p, 0) + e] = models.W[inputs.members[first + mi], f0 + f, c] if inside else 0
            elif inside:
                models.W[inputs.members[first + mi], f0 + f, c] = smem[_slot(plan, p, 0) + e]
    if to_shared:
        cuda.syncthreads()


@device_function
def _gather_rows(inputs, plan, g, k, s, first, regs):
    """``regs[i]``: pixel ``first + t + i T`` of step ``s``'s batch in slice ``k``, counted over
    ``[4 row_quads, features]`` (0 in the padding). The loads of all ``X_PREFETCH`` are issued
    before any is used: one round trip for the row indices, one for the pixels."""
    X = inputs.X
    f0, f1 = _feature_slice(k, plan.slices, X.shape[1])
    total = 4 * plan.row_quads * plan.features
    for i in range(X_PREFETCH):
        e = first + cuda.threadIdx.x + i * cuda.blockDim.x
        r = e // plan.features
        f = e - r * plan.features
        regs[i] = 0
        if e < total and r < plan.batch and f < f1 - f0:
            regs[i] = X[inputs.orders[g, s * plan.batch + r], f0 + f]


@device_function
def _store_rows(plan, smem, first, regs):
    total = 4 * plan.row_quads * plan.features
    for i in range(X_PREFETCH):
        e = first + cuda.threadIdx.x + i * cuda.blockDim.x
        if e < total:
            r = e // plan.features
            smem[plan.x_offset + r * plan.x_stride + e - r * plan.features] = regs[i]


@device_function
def _stage_rows(inputs, plan, smem, g, k, s, regs):
    """Step ``s``'s batch in slice ``k`` into shared memory, as W's dtype ``[4 row_quads, x_stride]``."""
    total = 4 * plan.row_quads * plan.features
    for first in range(0, total, X_PREFETCH * cuda.blockDim.x):
        _gather_rows(inputs, plan, g, k, s, first, regs)
        _store_rows(plan, smem, first, regs)
    cuda.syncthreads()


@device_function
def _logits_phase(inputs, models, scratch, plan, smem, s, stage, regs):
    """Phase 1 of step ``s``: ``parts[m, k, r, c]``, the batch's logits over each tile's slice."""
    X = inputs.X
    C = models.W.shape[2]
    Q = plan.row_quads
    quads = plan.classes // 4
    t = cuda.threadIdx.x
    acc = cuda.local.array(16, models.W.dtype)
    x = cuda.local.array(4, models.W.dtype)
    w = cuda.local.array(4, models.W.dtype)
    rows = cuda.local.array(4, np.int64)
    for p in range(plan.tiles_per_block):
        g, k, first, count = _tile(inputs, plan, p)
        if count == 0:
            continue
        f0, f1 = _feature_slice(k, plan.slices, X.shape[1])
        if stage:
            _stage_rows(inputs, plan, smem, g, k, s, regs)
        # thread: rows q, q + Q, q + 2Q, q + 3Q (interleaved, so that a warp's rows are consecutive
        # and, x_stride being 4 mod 32 words, mostly on different banks) by classes 4 cq .. 4 cq + 3
        for item in range(t, count * Q * quads, cuda.blockDim.x):
            cq = item % quads
            q = item // quads % Q
            mi = item // quads // Q
            m = inputs.members[first + mi]
            if not plan.staged:
                for i in range(4):
                    rows[i] = inputs.orders[g, s * plan.batch + min(q + i * Q, plan.batch - 1)]
            for e in range(16):
                acc[e] = 0
            base = _slot(plan, p, mi) + 4 * cq
            for f in range(f1 - f0):
                for i in range(4):
                    if plan.staged:
                        x[i] = smem[plan.x_offset + (q + i * Q) * plan.x_stride + f]
                    else:
                        x[i] = X[rows[i], f0 + f]
                _load4(w, 0, smem, base + f * plan.classes)  # four classes' weights, one load
                for i in range(4):
                    for j in range(4):
                        acc[i * 4 + j] += x[i] * w[j]
            for i in range(4):
                r = q + i * Q
                for j in range(4):
                    if r < plan.batch and 4 * cq + j < C:
                        scratch.parts[m, k, r, 4 * cq + j] = acc[i * 4 + j]
        if stage:
            cuda.syncthreads()  # the next tile's rows go where these were


@device_function
def _any_running(models, s):
    """Whether any model takes step ``s`` (every block reads the same ``done``: all agree)."""
    running = 0
    for m in range(cuda.threadIdx.x, models.done.shape[0], cuda.blockDim.x):
        if models.done[m] >= s:
            running = 1
    return cuda.syncthreads_or(running) != 0


@device_function
def _softmax_phase(inputs, models, scratch, plan, smem, scale, s, row_loss):
    """Phase 2 of step ``s``: the logits (partials in slice order), ``G = (softmax - onehot) / batch``
    and each chunk of rows' summed loss, for every model still running, chunks spread over the grid.

    One block barrier a chunk, where a row's logits meet in shared memory; each of the row's
    threads then takes its log-sum-exp (the same operations in the same order: the same bits).
    Logits and row losses alternate between two halves of their buffers, so a chunk's writes
    never meet the previous chunk's readers; thread 0 adds a chunk's row losses after the next
    barrier (the last after the loop).
    """
    C = models.W.shape[2]
    M = models.W.shape[0]
    T = cuda.blockDim.x
    t = cuda.threadIdx.x
    rows = plan.chunk_rows
    r_local = t // C
    c = t - r_local * C
    gscale = 1.0 / plan.batch
    loaded = cuda.local.array(PART_LOADS, models.W.dtype)
    z = cuda.local.array(2, models.W.dtype)  # the logit being summed, then the row's log-sum-exp
    taken = 0  # chunks this block has taken: their parity picks the halves
    pending = -1  # the chunk whose row losses thread 0 has still to add
    for chunk in range(cuda.blockIdx.x, M * plan.chunks, cuda.gridDim.x):
        m = chunk // plan.chunks
        if models.done[m] < s:  # the same model for the whole block: all threads skip together
            continue
        half = taken % 2
        logits = plan.z_offset + half * T
        losses = plan.loss_offset + half * T
        first = (chunk - m * plan.chunks) * rows
        r = first + r_local
        active = r_local < rows and r < plan.batch
        label = -1
        if active:
            label = inputs.y[inputs.orders[inputs.group[m], s * plan.batch + r]]
            z[0] = 0
            for k0 in range(0, plan.slices, PART_LOADS):
                for i in range(PART_LOADS):
                    loaded[i] = scratch.parts[m, min(k0 + i, plan.slices - 1), r, c]
                for i in range(PART_LOADS):
                    if k0 + i < plan.slices:
                        z[0] += loaded[i]
            smem[logits + t] = z[0] * scale + models.b[m, c]
        cuda.syncthreads()
        if t == 0 and pending >= 0:
            _add_row_losses(scratch, plan, row_loss, pending, 1 - half)
        if active:
            o = logits + r_local * C
            top = smem[o]
            for j in range(1, C):
                top = max(top, smem[o + j])
            total = 0.0
            for j in range(C):
                total += math.exp(smem[o + j] - top)
            lse = top + math.log(total)
            z[1] = lse
            p = math.exp(smem[logits + t] - z[1])
            scratch.G[(m * plan.batch + r) * plan.classes + c] = (p - (1.0 if c == label else 0.0)) * gscale
            if c == 0:
                row_loss[losses + r_local] = lse - smem[o + label]
        pending = chunk
        taken += 1
    cuda.syncthreads()
    if t == 0 and pending >= 0:
        _add_row_losses(scratch, plan, row_loss, pending, (taken - 1) % 2)


@device_function
def _add_row_losses(scratch, plan, row_loss, chunk, half):
    """``chunk_loss`` of a chunk: its rows' losses in order (a tree would cost a barrier a level)."""
    m = chunk // plan.chunks
    q = chunk - m * plan.chunks
    o = plan.loss_offset + half * cuda.blockDim.x
    total = row_loss[o]
    for i in range(1, min(plan.chunk_rows, plan.batch - q * plan.chunk_rows)):
        total += row_loss[o + i]
    scratch.chunk_loss[m, q] = total


if SIMULATED:
    @device_function
    def _add_row_parts(acc, smem, plan):
        """The simulator has no warp shuffles: the parts meet in shared memory once, and each thread
        adds them as its lane's butterfly would, level by level (the same sums, the same bits;
        one exchange instead of one a level, each a pair of block barriers, which the simulator's
        threads pay dearly). Nothing to add for one part."""
        if ROW_PARTS == 1:
            return
        t = cuda.threadIdx.x
        first = t - t % ROW_PARTS
        cuda.syncthreads()
        for e in range(16):
            smem[plan.exchange_offset + t * 16 + e] = acc[e]
        cuda.syncthreads()
        for e in range(16):
            lanes = [smem[plan.exchange_offset + (first + i) * 16 + e] for i in range(ROW_PARTS)]
            offset = ROW_PARTS // 2
            while offset > 0:
                lanes = [lanes[i] + lanes[i ^ offset] for i in range(ROW_PARTS)]
                offset //= 2
            acc[e] = lanes[t - first]
else:
    @device_function
    def _add_row_parts(acc, smem, plan):
        """The ROW_PARTS adjacent lanes' sums by an xor butterfly: every lane gets the same bits
        (each level adds the same two numbers on both lanes of a pair)."""
        for e in range(16):
            value = acc[e]
            offset = ROW_PARTS // 2
            while offset > 0:
                value += cuda.shfl_xor_sync(0xFFFFFFFF, value, offset)
                offset //= 2
            acc[e] = value


@device_function
def _model_loss(scratch, plan, m):
    """Model ``m``'s mean batch loss from its chunks' sums, in chunk order (the same bits in every tile)."""
    total = scratch.chunk_loss[m, 0]
    for q in range(1, plan.chunks):
        total += scratch.chunk_loss[m, q]
    return total / plan.batch


@device_function
def _update_phase(inputs, models, scratch, plan, smem, scale, s, stage, regs):
    """Phase 3 of step ``s``: each tile's running models take the step in their W slices (b on the
    slice-0 tile), and the running means where kept; the slice-0 tile records the loss and ``done``.

    A model runs at step ``s`` while ``done[m] >= s``: the slice-0 tile writes ``s`` or ``s + 1``
    into it during this phase, so the other tiles read either and agree; each then takes the step
    only if the loss, which all of them compute alike, is finite.
    """
    X = inputs.X
    C = models.W.shape[2]
    t = cuda.threadIdx.x
    quads = plan.classes // 4
    acc = cuda.local.array(16, models.W.dtype)
    x = cuda.local.array(4, models.W.dtype)
    gr = cuda.local.array(4, models.W.dtype)
    for p in range(plan.tiles_per_block):
        g, k, first, count = _tile(inputs, plan, p)
        if count == 0:
            continue
        f0, f1 = _feature_slice(k, plan.slices, X.shape[1])
        if stage:
            _stage_rows(inputs, plan, smem, g, k, s, regs)
        # b is the weight of a constant feature of ones: one more feature quad on slice 0
        fquads = plan.features // 4 + (1 if k == 0 else 0)
        items = count * fquads * quads * ROW_PARTS
        # every thread goes round the same number of times: the row parts meet in shuffles
        for start in range(0, items, cuda.blockDim.x):
            item = start + t
            j = item % ROW_PARTS
            cq = item // ROW_PARTS % quads
            fq = item // ROW_PARTS // quads % fquads
            mi = min(item // ROW_PARTS // quads // fquads, count - 1)
            m = inputs.members[first + mi]
            running = item < items and models.done[m] >= s
            loss = _model_loss(scratch, plan, m) if running else 0.0
            apply = running and math.isfinite(loss)
            for e in range(16):
                acc[e] = 0
            if apply:
                bias = 4 * fq >= plan.features
                for r in range(j, plan.batch, ROW_PARTS):
                    if bias:
                        x[0], x[1], x[2], x[3] = 1, 0, 0, 0
                    elif plan.staged:
                        _load4(x, 0, smem, plan.x_offset + r * plan.x_stride + 4 * fq)
                    else:
                        row = inputs.orders[g, s * plan.batch + r]
                        for a in range(4):
                            x[a] = X[row, f0 + 4 * fq + a] if 4 * fq + a < f1 - f0 else 0
                    _load4(gr, 0, scratch.G, (m * plan.batch + r) * plan.classes + 4 * cq)
                    for a in range(4):
                        for c in range(4):
                            acc[a * 4 + c] += x[a] * gr[c]
            _add_row_parts(acc, smem, plan)
            if apply:
                rate = inputs.rates[m, s]
                keep = 1.0 - rate * inputs.decays[m]
                inverse = inputs.inverses[m, s]
                for e in range(16):  # the parts' lanes share the 16 writes (constant indices: acc stays in registers)
                    f = 4 * fq + e // 4
                    c = 4 * cq + e % 4
                    if e % ROW_PARTS != j:
                        continue
                    if c < C and f < f1 - f0:
                        # the rate multiplies the finished gradient, as in the reference
                        o = _slot(plan, p, mi) + f * plan.classes + c
                        smem[o] = smem[o] * keep - acc[e] * (scale * rate)
                        if inverse > 0:
                            w = smem[o]
                            a_w = models.avg_W[m, f0 + f, c]
                            models.avg_W[m, f0 + f, c] = a_w + (w - a_w) * inverse
                    elif c < C and f == plan.features:
                        models.b[m, c] -= rate * acc[e]
                        if inverse > 0:
                            v = models.b[m, c]
                            a_b = models.avg_b[m, c]
                            models.avg_b[m, c] = a_b + (v - a_b) * inverse
            if running and k == 0 and fq == 0 and cq == 0 and j == 0:
                models.losses[m, s] = loss
                models.done[m] = s + (1 if apply else 0)
        if stage:
            cuda.syncthreads()  # the next tile's rows go where these were
    cuda.syncthreads()  # phase 1 reads the slices just updated


# ---------------------------------------------------------------- kernels


@cuda.jit(**jit_options(TRAIN_THREADS, COOPERATIVE_BLOCKS_PER_SM))
def _train_cooperative_kernel(inputs, models, scratch, plan, scale):
    """Every step of a call in one cooperative launch; ``this_grid().sync()`` between the phases."""
    grid = cuda.cg.this_grid()
    smem = cuda.shared.array(0, models.W.dtype, SHARED_ALIGN)
    row_loss = cuda.shared.array(0, _FLOAT64, SHARED_ALIGN)  # the same memory, from plan.loss_offset
    regs = cuda.local.array(X_PREFETCH, inputs.X.dtype)
    steps = models.losses.shape[1]
    _move_slices(inputs, models, plan, smem, True)
    g, k, _, count = _tile(inputs, plan, 0)
    keep = plan.keep_x != 0 and count > 0
    restage = plan.staged != 0 and not keep
    if keep:
        _stage_rows(inputs, plan, smem, g, k, 0, regs)
    for s in range(steps):
        _logits_phase(inputs, models, scratch, plan, smem, s, restage, regs)
        grid.sync()
        if not _any_running(models, s):
            break  # every block read the same done: all leave, none waits at a barrier
        ahead = keep and plan.prefetch != 0 and s + 1 < steps
        if ahead:  # the next batch's loads fly while phase 2 and the barrier run
            _gather_rows(inputs, plan, g, k, s + 1, 0, regs)
        _softmax_phase(inputs, models, scratch, plan, smem, scale, s, row_loss)
        grid.sync()
        _update_phase(inputs, models, scratch, plan, smem, scale, s, restage, regs)
        if keep and s + 1 < steps:
            if ahead:
                _store_rows(plan, smem, 0, regs)
                cuda.syncthreads()
            else:
                _stage_rows(inputs, plan, smem, g, k, s + 1, regs)
    _move_slices(inputs, models, plan, smem, False)


@cuda.jit(**jit_options(TRAIN_THREADS, STEP_BLOCKS_PER_SM))
def _train_slices_kernel(inputs, models, scratch, plan, scale, s):
    """Launches per step: phase 3 of step ``s - 1`` (if any), then phase 1 of step ``s`` (if any)."""
    smem = cuda.shared.array(0, models.W.dtype, SHARED_ALIGN)
    regs = cuda.local.array(X_PREFETCH, inputs.X.dtype)
    _move_slices(inputs, models, plan, smem, True)
    if s > 0:
        _update_phase(inputs, models, scratch, plan, smem, scale, s - 1, plan.staged != 0, regs)
        _move_slices(inputs, models, plan, smem, False)
    if s < models.losses.shape[1]:
        _logits_phase(inputs, models, scratch, plan, smem, s, plan.staged != 0, regs)


@cuda.jit(**jit_options(TRAIN_THREADS, STEP_BLOCKS_PER_SM))
def _train_rows_kernel(inputs, models, scratch, plan, scale, s):
    """Launches per step: phase 2 of step ``s``."""
    smem = cuda.shared.array(0, models.W.dtype, SHARED_ALIGN)
    row_loss = cuda.shared.array(0, _FLOAT64, SHARED_ALIGN)
    _softmax_phase(inputs, models, scratch, plan, smem, scale, s, row_loss)
