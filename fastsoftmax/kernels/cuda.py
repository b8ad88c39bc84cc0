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
gradients: lanes of a warp per row, W staged in shared memory and read in 16-byte
vectors, the class count a compile-time constant, warp-shuffle sums, a persistent
grid) and :mod:`._cuda_training` (SGD of one or many models: each model's features
cut into slices by its shape alone, (model, slice) tiles dealt to the blocks, W
slices and batch rows kept in shared memory, two grid-wide barriers a step). Every
sum runs in a fixed order, so repeated runs give bitwise-identical results, and a
model trained among others gets the bits it gets alone; non-finite rows are
flagged on the device, so no call scans its result on the host.

Which training path runs where: on a GPU, one cooperative launch for the whole
call (``_train_cooperative_kernel``, one block a tile, at most
``max_cooperative_grid_blocks``; models whose W slices do not fit that many blocks'
shared memory train in several such calls); in the simulator, which runs
cooperative grids as one block, the same kernel with one block working on every
tile. The per-step path (two launches a step, any number of blocks) is the GPU's
fallback when a cooperative launch is refused (:data:`COOPERATIVE_REFUSED`), and
what the tests use to check tiles spread over several blocks in the simulator.
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

from . import _cuda_training  # noqa: E402
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
    STEP_BLOCKS_PER_SM,
    TRAIN_SHARED_BYTES,
    TrainInputs,
    TrainModels,
    TrainScratch,
    _train_cooperative_kernel,
    _train_rows_kernel,
    _train_slices_kernel,
    plan_training,
    step_plan,
    train_signature,
)

try:  # numba-cuda >= 0.30 launches through cuda.core, whose launch raises its own CUDAError
    from cuda.core._utils.cuda_utils import CUDAError  # noqa: E402
except ImportError:  # older cuda.core layouts, or none: numba's driver error is the one raised
    CUDAError = CudaAPIError

#: What a refused cooperative launch raises before anything ran. numba-cuda >= 0.30 launches
#: through ``cuda.core.launch``, which raises ``CUDAError`` when the device takes no cooperative
#: launch (some virtual GPUs; MIG) or the driver refuses it (``cuLaunchKernelEx``:
#: CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE, CUDA_ERROR_NOT_SUPPORTED), and ``ValueError`` when the
#: grid exceeds what its own occupancy query allows; earlier numba-cuda raised ``CudaAPIError``.
COOPERATIVE_REFUSED = (CUDAError, CudaAPIError, ValueError)

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


def _checked_inputs(X, F, dtype):
    """X checked, not yet copied: a staged one after checking its shape, else the checked host array."""
    if isinstance(X, OnDevice):
        if len(X.shape) != 2 or X.shape[1] != F or X.shape[0] == 0 or X.dtype not in (np.uint8, dtype):
            raise InputError(f"staged X has shape {X.shape} dtype {X.dtype}; expected (N, {F}), uint8 or {dtype}")
        return X
    return validation.inputs(X, F, dtype)


def _inputs(X, F, dtype):
    """Device X and its row count: a staged one after checking its shape, else checked and copied."""
    X = _checked_inputs(X, F, dtype)
    return _on_device(X), X.shape[0], X.dtype


def _checked_labels(y, n_rows, n_classes):
    """y checked, not yet copied: a staged one after checking its shape and labels, else int64 on the host."""
    if isinstance(y, OnDevice):
        if y.shape != (n_rows,) or y.low < 0 or y.high >= n_classes:
            raise InputError(f"staged y has shape {y.shape} and labels in [{y.low}, {y.high}]; "
                             f"expected ({n_rows},) in [0, {n_classes})")
        return y
    return validation.labels(y, n_rows, n_classes)


def _on_device(checked):
    """A checked X or y on the device: staged already, or copied now."""
    return checked.array if isinstance(checked, OnDevice) else cuda.to_device(checked)


def _labels(y, n_rows, n_classes):
    return _on_device(_checked_labels(y, n_rows, n_classes))


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
    X = _checked_inputs(X, F, dtype)
    out = validation.output(out, (W.shape[0], X.shape[0]), np.int64)
    staged = X if isinstance(X, OnDevice) else stage(X)
    for m in range(W.shape[0]):
        predict(staged, W[m], b[m], out=out[m])
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
    keeps the running weight average exactly as the reference does. The one-model
    case of :func:`train_many`, through the same kernels.
    """
    return _train(X, y, W, b, order, batch_size, learning_rate, weight_decay, losses, average)


def train_many(X, y, W, b, orders, batch_size, learning_rate, weight_decay=0.0, losses=None, average=None,
               group=None):
    """Train M models at once on the device; see :func:`fastsoftmax.kernels.reference.train_many`.

    Model ``m``'s W, b, average and losses are bitwise those :func:`train_steps` gives it alone
    (on ``orders[group[m]]``, its rates and weight decay), whatever the other models: a model's
    sums do not depend on the models beside it or on the grid (see :mod:`._cuda_training`).
    ``X`` and ``y`` may be :class:`OnDevice` stand-ins from :func:`stage`.

    Returns
    -------
    steps_done : ndarray, int64, ``[M]``
    losses : ndarray, float64, ``[M, steps]``
    """
    return _train_many(X, y, W, b, orders, batch_size, learning_rate, weight_decay, losses, average, group)


def _classes_supported(n_classes):
    if n_classes > THREADS:
        raise InputError(f"the CUDA backend supports at most {THREADS} classes, W has {n_classes}")


def _label_stand_in(y, n_rows):
    """What the shared checks read of y: staged labels were checked by :func:`_checked_labels` already."""
    return np.zeros(n_rows, np.int64) if isinstance(y, OnDevice) else y


def _train(X, y, W, b, order, batch_size, learning_rate, weight_decay, losses, average, path=None, blocks=None):
    """``train_steps`` on the cooperative path (``path=None`` or "cooperative") or the per-step one
    ("steps"), with at most ``blocks`` blocks (default: as many as a cooperative launch may have)."""
    F, C, dtype = validation.weights(W, b)
    _classes_supported(C)
    X = _checked_inputs(X, F, dtype)
    N = X.shape[0]
    y = _checked_labels(y, N, C)
    order, steps, rates = validation.schedule(order, batch_size, N, learning_rate, weight_decay, W.dtype)
    validation.writable(W, "W")
    validation.writable(b, "b")
    losses = validation.output(losses, (steps,), np.float64, "losses")
    average = validation.averaging(average, W, b)
    losses[:] = np.nan
    W_many, b_many, run = _common.as_one_of_many(W, b, None, order, steps, rates, weight_decay, losses, average)
    # copied once every argument has passed
    done = _run(_on_device(X), X.dtype, _on_device(y), W_many, b_many, run, int(batch_size), path, blocks)
    # as the reference: a last update that overflowed W is refused, though its loss was finite
    return _common.finished(done[0], losses, W, b)


def _train_many(X, y, W, b, orders, batch_size, learning_rate, weight_decay, losses, average, group, path=None,
                blocks=None):
    """``train_many`` on the given path with at most ``blocks`` blocks, as :func:`_train`."""
    _, F, C, dtype = validation.stacked_weights(W, b)
    _classes_supported(C)
    X = _checked_inputs(X, F, dtype)
    N = X.shape[0]
    staged_y = isinstance(y, OnDevice)
    y = _checked_labels(y, N, C) if staged_y else y  # a host y is checked with the rest, below
    run = validation.many_arguments(X, _label_stand_in(y, N), W, b, C, orders, group, batch_size, learning_rate,
                                    weight_decay, losses, average)
    # copied once every argument has passed
    dy = _on_device(y if staged_y else run.y)
    done = _run(_on_device(X), X.dtype, dy, W, b, run, int(batch_size), path, blocks)
    return _common.finished_many(done, run.losses, W, b)


@functools.lru_cache(maxsize=None)
def _cooperative_limit(x_dtype, w_dtype) -> int:
    """Most blocks a cooperative launch of the training kernel can have on this device, with
    the most dynamic shared memory a training launch asks for."""
    kernel = _train_cooperative_kernel
    if SIMULATED:  # the simulator runs cooperative grids as a single block
        return kernel.overloads[None].max_cooperative_grid_blocks(_cuda_training.TRAIN_THREADS)
    compiled = kernel.compile(train_signature(x_dtype, w_dtype))
    return int(compiled.max_cooperative_grid_blocks(_cuda_training.TRAIN_THREADS, TRAIN_SHARED_BYTES))


def _run(dX, xdtype, dy, W, b, run, batch, path=None, blocks=None):
    """Train the models of ``run`` (a checked :class:`~fastsoftmax.validation.Run`) in place on the device; returns
    ``done`` ``[M]``. Models whose slices of W do not all fit the blocks' shared memory at once
    train in several calls, each of every step: their results do not depend on it."""
    M, F, C = W.shape
    dtype = W.dtype
    if run.steps == 0:
        return np.zeros(M, np.int64)
    cooperative = path in (None, "cooperative")
    limit = _cooperative_limit(xdtype.name, dtype.name)
    if limit < 1:
        cooperative = False  # the device takes no cooperative launch of this kernel
    most = blocks or (limit if limit >= 1 else _sm_count() * STEP_BLOCKS_PER_SM)
    if cooperative:
        most = min(most, limit)
    layout = plan_training(run.group, run.orders.shape[0], F, C, dtype, batch, most)
    if layout is None and M == 1:
        # one model's slices do not fit the blocks a launch may have: launches per step take a block a slice
        cooperative = False
        layout = plan_training(run.group, run.orders.shape[0], F, C, dtype, batch, np.iinfo(np.int32).max)
    if layout is None:
        half = M // 2
        return np.concatenate([_run(dX, xdtype, dy, W[part], b[part], _models_of(run, part), batch, path, blocks)
                               for part in (slice(0, half), slice(half, M))])
    plan, tiles, members, grid = layout
    threads = _cuda_training.TRAIN_THREADS  # read here, so that the simulator's tests can make it smaller
    scale = dtype.type(PIXEL_SCALE if xdtype == np.uint8 else 1.0)
    averages = run.average
    inverses = (_common.many_average_weights(averages, run.steps, dtype) if averages is not None
                else np.zeros((M, run.steps), dtype))
    inputs = TrainInputs(dX, dy, cuda.to_device(run.orders), cuda.to_device(run.group), cuda.to_device(run.rates),
                         cuda.to_device(run.decays), cuda.to_device(inverses), cuda.to_device(tiles),
                         cuda.to_device(members))
    models = TrainModels(cuda.to_device(W), cuda.to_device(b),
                         cuda.to_device(averages.W if averages is not None else np.zeros((1, 1, 1), dtype)),
                         cuda.to_device(averages.b if averages is not None else np.zeros((1, 1), dtype)),
                         cuda.to_device(run.losses), cuda.to_device(np.zeros(M, np.int64)))
    scratch = TrainScratch(cuda.device_array((M, plan.slices, batch, C), dtype),
                           cuda.to_device(np.zeros(M * batch * plan.classes, dtype)),
                           cuda.device_array((M, plan.chunks), np.float64))
    if cooperative:
        try:
            _launch(_train_cooperative_kernel, grid, threads, inputs, models, scratch, plan, scale,
                    sharedmem=plan.shared_bytes)
        except COOPERATIVE_REFUSED as exc:  # refused before it ran (some shared or virtual GPUs): step by step
            log.info("cooperative training launch refused (%s: %s); launching step by step", type(exc).__name__, exc)
            cooperative = False
    if not cooperative:
        plan = step_plan(plan)
        for s in range(run.steps + 1):
            _launch(_train_slices_kernel, grid, threads, inputs, models, scratch, plan, scale, s,
                    sharedmem=plan.shared_bytes)
            if s < run.steps:
                _launch(_train_rows_kernel, grid, threads, inputs, models, scratch, plan, scale, s,
                        sharedmem=plan.shared_bytes)
    # W and b come back in full: the kernels never apply a step whose loss was not finite.
    models.losses.copy_to_host(run.losses)
    models.W.copy_to_host(W)
    models.b.copy_to_host(b)
    if averages is not None:
        models.avg_W.copy_to_host(averages.W)
        models.avg_b.copy_to_host(averages.b)
    return models.done.copy_to_host()


def _models_of(run, part):
    """The :class:`~fastsoftmax.validation.Run` of the models ``part`` (a slice) of ``run``: views, so that their
    losses and running means land in the caller's arrays."""
    average = run.average
    if average is not None:
        average = type(average)(average.W[part], average.b[part], average.start[part], average.count[part])
    return run._replace(group=run.group[part], rates=run.rates[part], decays=run.decays[part],
                        losses=run.losses[part], average=average)
