"""The CUDA backend (numba-cuda): the reference's functions as GPU kernels.

Same names, arguments and results as :mod:`fastsoftmax.kernels.reference`: the
public functions take and return NumPy arrays, copy inputs to the device once
per call and results back once. :func:`stage` copies a training set to the
device once so that :class:`~fastsoftmax.SoftmaxRegression` reuses it for every
call of a fit.

Importing this module raises :class:`ImportError` with what is missing and how
to get it when neither a usable GPU nor the simulator (``NUMBA_ENABLE_CUDASIM=1``)
is there; :func:`fastsoftmax.kernels.get_backend` turns that into
:class:`~fastsoftmax.errors.BackendUnavailableError`.

How the kernels are shaped, and why: see :mod:`._cuda_kernels` (inference and
gradients: lanes of a warp per row, W staged in shared memory, the class count a
compile-time constant, warp-shuffle sums, a persistent grid) and
:mod:`._cuda_training` (SGD: W's features split across blocks, one grid-wide
barrier a step, every block computing the same softmax). Every sum runs in a
fixed order, so repeated runs give bitwise-identical results; non-finite rows are
flagged on the device, so no call scans its result on the host.

Which training path runs where: on a GPU, one cooperative launch for the whole
call (``_train_cooperative_kernel``, as many blocks as :data:`TRAIN_BLOCKS`, the
features and ``max_cooperative_grid_blocks`` allow); in the simulator, which runs
cooperative grids as one block, the same kernel with one block. The per-step
path (two launches a step, any number of blocks) is the GPU's fallback when a
cooperative launch is refused, and what the tests use to check the split across
blocks in the simulator.
"""

from __future__ import annotations

import functools
import logging
import warnings

import numpy as np

from .. import validation
from ..errors import InputError
from . import _common
from .pixels import PIXEL_SCALE

try:
    from numba import cuda
except ImportError as exc:  # numba not installed
    raise ImportError("the CUDA backend needs numba-cuda: pip install 'fastsoftmax[cuda]' "
                      f"(or set NUMBA_ENABLE_CUDASIM=1 with it installed to simulate a GPU) [{exc}]") from exc

# numba 0.61-0.68 without numba-cuda still has numba's own, deprecated CUDA target under
# the same name; only numba-cuda's says it is NVIDIA's.
if getattr(cuda, "implementation", None) != "NVIDIA":
    raise ImportError("the CUDA backend needs numba-cuda, and only numba's own deprecated CUDA target "
                      "is installed: pip install 'fastsoftmax[cuda]' (or set NUMBA_ENABLE_CUDASIM=1 "
                      "with numba-cuda installed to simulate a GPU)")

try:
    from ._cuda_kernels import SIMULATED
except ImportError as exc:  # numba-cuda installed only in part
    raise ImportError(f"the CUDA backend needs numba-cuda: pip install 'fastsoftmax[cuda]' [{exc}]") from exc


def _device_problem():
    """Why no GPU can be used here, or None when one can."""
    if SIMULATED:
        return None
    try:
        if cuda.is_available():
            return None
        return "numba-cuda found no usable NVIDIA GPU and driver"
    except Exception as exc:  # the driver can fail in many ways
        return f"the CUDA driver failed: {type(exc).__name__}: {exc}"


_PROBLEM = _device_problem()
if _PROBLEM:
    raise ImportError(f"{_PROBLEM}; run on a machine with an NVIDIA GPU, or set NUMBA_ENABLE_CUDASIM=1 "
                      "before starting Python to run the CUDA kernels in numba-cuda's simulator")


from numba.cuda.cudadrv.driver import CudaAPIError  # noqa: E402

from ._cuda_kernels import (  # noqa: E402  (only once a device, real or simulated, is known to be there)
    CHUNK_ROWS,
    FAST_CLASSES,
    ROW_THREADS,
    SUM_ITEMS,
    THREADS,
    _axpy_kernel,
    _block_sums_kernel,
    _generic_forward_kernel,
    _generic_grad_kernel,
    _generic_loss_kernel,
    _generic_predict_kernel,
    _partial_grad_kernel,
    _sum_chunks_kernel,
    blocks_per_sm,
    packed_weights,
    packing,
    row_kernels,
    rows_per_block,
    stages_weights,
)
from ._cuda_training import (  # noqa: E402
    TRAIN_BLOCKS,
    TRAIN_THREADS,
    _train_cooperative_kernel,
    _train_parts_kernel,
    _train_update_kernel,
)

log = logging.getLogger(__name__)

_PERFORMANCE_WARNINGS = []
for _module in ("numba.cuda.core.errors", "numba.core.errors"):
    try:
        _PERFORMANCE_WARNINGS.append(__import__(_module, fromlist=["x"]).NumbaPerformanceWarning)
    except (ImportError, AttributeError):
        pass


def _launch(kernel, blocks, threads, *args, sharedmem=0):
    """Launch without numba's grid-size warning: small grids here are sized on purpose
    (a few rows, the cooperative limit), and big ones are already persistent."""
    with warnings.catch_warnings():
        for category in _PERFORMANCE_WARNINGS:
            warnings.simplefilter("ignore", category)
        kernel[blocks, threads, 0, sharedmem](*args)


@functools.lru_cache(maxsize=None)
def _sm_count() -> int:
    """Streaming multiprocessors of the device (one in the simulator, so its grids stride)."""
    return 1 if SIMULATED else int(cuda.get_current_device().MULTIPROCESSOR_COUNT)


def device_description() -> str:
    """``"simulator"`` or the GPU's name."""
    if SIMULATED:
        return "numba-cuda simulator (NUMBA_ENABLE_CUDASIM=1)"
    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else device.name
    return f"{name} (compute capability {device.compute_capability[0]}.{device.compute_capability[1]})"


# ---------------------------------------------------------------- staging


class OnDevice:
    """A validated host array copied to the device once, reusable by every call that takes it.

    Made by :func:`stage`; the kernels' wrappers accept it wherever they accept
    ``X`` or ``y``, and skip both the checks already done and the copy.
    """

    def __init__(self, host: np.ndarray, bounds=(0, 0)):
        self.shape, self.dtype = host.shape, host.dtype
        self.low, self.high = bounds  # of labels, checked against each call's class count
        self.array = cuda.to_device(host)


def stage(X, y=None):
    """Copy ``X`` (and labels ``y``) to the device once; returns ``OnDevice`` stand-ins.

    Labels are checked here, so no call that takes them can be handed out-of-range
    ones later. X is not scanned for NaN or infinity (a second pass over it): the
    kernels flag the rows whose logits are not finite, and training stops before
    any step whose loss is not.
    """
    if not isinstance(X, np.ndarray):
        raise InputError(f"X must be a numpy array to stage, got {validation.describe(X)}")
    X = np.ascontiguousarray(X)
    staged_X = OnDevice(X)
    if y is None:
        return staged_X
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu":
        raise InputError(f"y must be an integer array of class indices, got {validation.describe(y)}")
    y = np.ascontiguousarray(y, dtype=np.int64)
    return staged_X, OnDevice(y, (int(y.min()), int(y.max())) if y.size else (0, 0))


def _inputs(X, F, dtype):
    """Device X and its row count: a staged one after checking its shape, else checked and copied."""
    if isinstance(X, OnDevice):
        if len(X.shape) != 2 or X.shape[1] != F or X.shape[0] == 0 or X.dtype not in (np.uint8, dtype):
            raise InputError(f"staged X has shape {X.shape} dtype {X.dtype}; expected (N, {F}), uint8 or {dtype}")
        return X.array, X.shape[0], X.dtype
    X = validation.inputs(X, F, dtype)
    return cuda.to_device(X), X.shape[0], X.dtype


def _labels(y, n_rows, n_classes):
    if isinstance(y, OnDevice):
        if y.shape != (n_rows,) or y.low < 0 or y.high >= n_classes:
            raise InputError(f"staged y has shape {y.shape} and labels in [{y.low}, {y.high}]; "
                             f"expected ({n_rows},) in [0, {n_classes})")
        return y.array
    return cuda.to_device(validation.labels(y, n_rows, n_classes))


class _Rows:
    """A validated inference call: device X and W, and how the row kernels read them."""

    def __init__(self, X, W, b):
        F, C, dtype = validation.weights(W, b)
        if C > THREADS:
            raise InputError(f"the CUDA backend supports at most {THREADS} classes, W has {C}")
        self.X, self.n, xdtype = _inputs(X, F, dtype)
        self.F, self.C, self.dtype = F, C, dtype
        self.scale = dtype.type(PIXEL_SCALE if xdtype == np.uint8 else 1.0)
        self.b = cuda.to_device(b)
        self.bad = cuda.to_device(np.array([self.n], np.int64))  # first row with non-finite logits
        self.fast = C <= FAST_CLASSES
        if self.fast:
            word, pack = packing(xdtype, F)
            staged = stages_weights(F, C, dtype)
            self.kernels = row_kernels(C, dtype.name, word.name, pack, staged)
            self.WT = cuda.to_device(packed_weights(W, pack))
            self.words = self.X.view(word) if word != xdtype else self.X
            self.sharedmem = self.WT.nbytes if staged else 0
            group = rows_per_block(C, dtype.name)
            groups = (self.n + group - 1) // group
            # persistent: as many blocks as stay resident, striding over the rows
            self.grid = max(1, min(groups, _sm_count() * blocks_per_sm(C, dtype.name)))
        else:
            self.W = cuda.to_device(W)
            self.grid = (self.n + THREADS // C - 1) // (THREADS // C)

    def launch(self, which, *args):
        """Run the fast or the generic kernel ``which`` ("forward", "predict", "loss", "grad") on
        ``(X, scale, W, b, *args, bad)``."""
        if self.fast:
            kernel = self.kernels[("forward", "predict", "loss", "grad").index(which)]
            _launch(kernel, self.grid, ROW_THREADS, self.words, self.scale, self.WT, self.b, *args, self.bad,
                    sharedmem=self.sharedmem)
        else:
            kernel = {"forward": _generic_forward_kernel, "predict": _generic_predict_kernel,
                      "loss": _generic_loss_kernel, "grad": _generic_grad_kernel}[which]
            _launch(kernel, self.grid, THREADS, self.X, self.scale, self.W, self.b, *args, self.bad)

    def check(self):
        """Raise, naming the first row, if a kernel flagged non-finite logits."""
        row = int(self.bad.copy_to_host()[0])
        if row < self.n:
            raise InputError(_common._nonfinite_message(row, self.dtype))


def _blocks(n, threads=THREADS):
    return max(1, min((n + threads - 1) // threads, _sm_count() * 8))


def _device_sum(values) -> float:
    """Sum of a device float64 vector in a fixed order (chunks, then chunks of chunk sums)."""
    chunk = THREADS * SUM_ITEMS
    while values.shape[0] > 1:
        sums = cuda.device_array((values.shape[0] + chunk - 1) // chunk, np.float64)
        _launch(_block_sums_kernel, _blocks(sums.shape[0], 1), THREADS, values, sums)
        values = sums
    return float(values.copy_to_host()[0])


# ---------------------------------------------------------------- public wrappers


def forward(X, W, b, out=None):
    """Class probabilities ``softmax(X W + b)``; see :func:`fastsoftmax.kernels.reference.forward`."""
    rows = _Rows(X, W, b)
    out = validation.output(out, (rows.n, rows.C), W.dtype)
    d_out = cuda.device_array((rows.n, rows.C), W.dtype)
    rows.launch("forward", d_out)
    rows.check()
    d_out.copy_to_host(out)
    return out


def predict(X, W, b, out=None):
    """Most probable class of each row (int64 ``[N]``); see the reference."""
    rows = _Rows(X, W, b)
    out = validation.output(out, (rows.n,), np.int64)
    d_out = cuda.device_array(rows.n, np.int64)
    rows.launch("predict", d_out)
    rows.check()
    d_out.copy_to_host(out)
    return out


def predict_many(X, W, b, out=None):
    """The most probable class of each row under each of M models (int64 ``[M, N]``); see the reference.
    X is copied to the device once for all the models."""
    _, F, _, dtype = validation.stacked_weights(W, b)
    X = X if isinstance(X, OnDevice) else stage(validation.inputs(X, F, dtype))
    out = validation.output(out, (W.shape[0], X.shape[0]), np.int64)
    for m in range(W.shape[0]):
        predict(X, W[m], b[m], out=out[m])
    return out


def xent_loss(X, y, W, b):
    """Mean cross-entropy from logits; see the reference. Row losses are summed on the device, in a fixed order."""
    rows = _Rows(X, W, b)
    dy = _labels(y, rows.n, rows.C)
    row_loss = cuda.device_array(rows.n, np.float64)
    rows.launch("loss", dy, row_loss)
    rows.check()
    return _common.finite_loss(_device_sum(row_loss) / rows.n, W.dtype)


def xent_grad(X, y, W, b, dW=None, db=None):
    """Mean cross-entropy and its gradient ``(dW [F, C], db [C])``, reduced in a fixed order."""
    rows = _Rows(X, W, b)
    F, C, N = rows.F, rows.C, rows.n
    dy = _labels(y, N, C)
    dW = validation.output(dW, (F, C), W.dtype, "dW")
    db = validation.output(db, (C,), W.dtype, "db")
    G = cuda.device_array((N, C), W.dtype)
    row_loss = cuda.device_array(N, np.float64)
    rows.launch("grad", dy, W.dtype.type(1.0 / N), G, row_loss)
    rows.check()
    chunks = (N + CHUNK_ROWS - 1) // CHUNK_ROWS
    partial_W = cuda.device_array((chunks, F, C), W.dtype)
    partial_b = cuda.device_array((chunks, C), W.dtype)
    _launch(_partial_grad_kernel, _blocks(chunks * ((F * C + THREADS - 1) // THREADS), 1), THREADS,
            rows.X, rows.scale, G, partial_W, partial_b)
    d_dW, d_db = cuda.device_array(F * C, W.dtype), cuda.device_array(C, W.dtype)
    _launch(_sum_chunks_kernel, _blocks(F * C), THREADS, partial_W.reshape(chunks, F * C), d_dW)
    _launch(_sum_chunks_kernel, _blocks(C), THREADS, partial_b, d_db)
    d_dW.copy_to_host(dW.reshape(-1))
    d_db.copy_to_host(db)
    return _common.finite_loss(_device_sum(row_loss) / N, W.dtype), dW, db


def sgd_step(W, b, dW, db, learning_rate):
    """In place: ``W -= learning_rate * dW``, ``b -= learning_rate * db``."""
    learning_rate = validation.sgd_arguments(W, b, dW, db, learning_rate)
    for target, grad in ((W.reshape(-1), dW.reshape(-1)), (b, db)):
        d_target = cuda.to_device(target)
        _launch(_axpy_kernel, _blocks(target.size), THREADS, d_target,
                cuda.to_device(np.ascontiguousarray(grad)), W.dtype.type(-learning_rate))
        d_target.copy_to_host(target)


def xent_sgd_step(X, y, W, b, learning_rate, weight_decay=0.0):
    """One gradient-and-update step on batch ``(X, y)``; dW is never materialised."""
    return _common.one_step(train_steps, X, y, W, b, learning_rate, weight_decay)


def train_steps(X, y, W, b, order, batch_size, learning_rate, weight_decay=0.0, losses=None, average=None):
    """All SGD steps of a call on the device; see :func:`fastsoftmax.kernels.reference.train_steps`.

    ``X`` and ``y`` may be :class:`OnDevice` stand-ins from :func:`stage`, so a
    fit made of several calls copies its data to the device once. ``average``
    keeps the running weight average exactly as the reference does.
    """
    return _train(X, y, W, b, order, batch_size, learning_rate, weight_decay, losses, average)


@functools.lru_cache(maxsize=None)
def _cooperative_limit(x_dtype, w_dtype) -> int:
    """Most blocks a cooperative launch of the training kernel can have on this device."""
    kernel = _train_cooperative_kernel
    if SIMULATED:  # the simulator runs cooperative grids as a single block
        return kernel.overloads[None].max_cooperative_grid_blocks(TRAIN_THREADS)
    x, w, i = np.dtype(x_dtype), np.dtype(w_dtype), np.dtype(np.int64)
    like = (np.zeros((1, 1), x), w.type(1), np.zeros(1, i), np.zeros((1, 1), w), np.zeros(1, i), 1,
            np.zeros(1), 0.0, np.zeros(1, w), np.zeros(1), np.zeros(1, i), np.zeros((1, 1, 1, 1), w),
            np.zeros((1, 1, 1), w), np.zeros((1, 1), w), np.zeros((1, 1), w), np.zeros(1, w))
    signature = tuple(kernel.typeof_pyval(a) for a in like)
    return int(kernel.compile(signature).max_cooperative_grid_blocks(TRAIN_THREADS))


def _train(X, y, W, b, order, batch_size, learning_rate, weight_decay, losses, average, path=None, blocks=None):
    """``train_steps`` on the cooperative path (``path=None`` or "cooperative") or the per-step
    one ("steps"), with at most ``blocks`` blocks (default :data:`TRAIN_BLOCKS`)."""
    F, C, dtype = validation.weights(W, b)
    if C > THREADS:
        raise InputError(f"the CUDA backend supports at most {THREADS} classes, W has {C}")
    dX, N, xdtype = _inputs(X, F, dtype)
    scale = dtype.type(PIXEL_SCALE if xdtype == np.uint8 else 1.0)
    dy = _labels(y, N, C)
    order, steps, rates = validation.schedule(order, batch_size, N, learning_rate, weight_decay, W.dtype)
    validation.writable(W, "W")
    validation.writable(b, "b")
    losses = validation.output(losses, (steps,), np.float64, "losses")
    average = validation.averaging(average, W, b)
    losses[:] = np.nan
    if steps == 0:
        return 0, losses
    batch = int(batch_size)
    inverses = _common.average_weights(average, steps, dtype)
    cooperative = path in (None, "cooperative")
    B = min(blocks or TRAIN_BLOCKS, F)
    if cooperative:
        limit = _cooperative_limit(xdtype.name, dtype.name)
        if limit < 1:
            cooperative = False  # the device takes no cooperative launch of this kernel
        B = min(B, max(limit, 1))
    d_W = cuda.to_device(W)
    b_copies = cuda.to_device(np.tile(b, (B, 1)))  # each block's own b: no block reads what another writes
    avg_W = cuda.to_device(average.W if average is not None else np.zeros((1, 1), dtype))
    avg_b = cuda.to_device(average.b if average is not None else np.zeros(1, dtype))
    d_losses = cuda.to_device(losses)
    done = cuda.to_device(np.zeros(1, np.int64))
    d_order, d_rates, d_inverses = cuda.to_device(order), cuda.to_device(rates), cuda.to_device(inverses)
    G = cuda.device_array((B, batch, C), dtype)
    decay = float(weight_decay)
    if cooperative:
        parts = cuda.device_array((2, B, batch, C), dtype)  # double-buffered by step parity
        try:
            _launch(_train_cooperative_kernel, B, TRAIN_THREADS, dX, scale, dy, d_W, d_order, batch, d_rates,
                    decay, d_inverses, d_losses, done, parts, G, b_copies, avg_W, avg_b)
        except CudaAPIError as exc:  # refused before it ran (some shared or virtual GPUs): step by step
            log.info("cooperative training launch refused (%s); launching step by step", exc)
            cooperative = False
    if not cooperative:
        parts = cuda.device_array((1, B, batch, C), dtype)
        for s in range(steps):
            _launch(_train_parts_kernel, B, TRAIN_THREADS, dX, d_W, d_order, s, batch, parts, done)
            _launch(_train_update_kernel, B, TRAIN_THREADS, dX, scale, dy, d_W, d_order, s, batch, d_rates,
                    decay, d_inverses, d_losses, done, parts, G, b_copies, avg_W, avg_b)
    d_losses.copy_to_host(losses)
    # W and b come back in full: the kernels never apply a step whose loss was not finite.
    d_W.copy_to_host(W)
    b[...] = b_copies[0].copy_to_host()
    if average is not None:
        avg_W.copy_to_host(average.W)
        avg_b.copy_to_host(average.b)
    done = int(done.copy_to_host()[0])
    # as the reference: a last update that overflowed W is refused, though its loss was finite
    return _common.finished(done, losses, W, b)
