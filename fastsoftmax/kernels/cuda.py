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

How the kernels are shaped, and why:

* One thread per output ``(row, class)``: the threads of a warp read the same
  input row (a broadcast) and consecutive classes of ``W [F, C]`` (coalesced), so
  W stays in W's natural layout and in L1.
* The fused forward keeps each block's logits in shared memory (float64, so
  the softmax is computed in double whatever W's dtype), and writes only
  probabilities, labels or per-row losses.
* Nothing uses floating-point atomics. Every sum runs in a fixed order: per-row
  losses are summed on the host, the weight gradient is reduced in two phases
  (fixed chunks of rows, then the chunks in order), so repeated runs give
  bitwise-identical results.
* Training runs a whole call's steps in *one* launch of *one* block: the steps
  are sequential, a block-wide barrier is the cheapest global synchronisation
  there is, and W, b, the data and the batch order stay on the device with no
  host round trip per step. (A grid-wide version using cooperative launches
  would use more than one SM; it has not been measured, see CONTRIBUTING.md.)
* The simulator runs each GPU thread as a Python thread, so blocks there are 32
  threads and tests use small shapes.
"""

from __future__ import annotations

import numpy as np

from ..data.dataset import PIXEL_SCALE
from ..errors import InputError
from . import _checks

try:
    from numba import cuda

    from ._cuda_kernels import SIMULATED
except ImportError as exc:  # numba-cuda not installed
    raise ImportError("the CUDA backend needs numba-cuda: pip install 'fastsoftmax[cuda]' "
                      f"(or set NUMBA_ENABLE_CUDASIM=1 with it installed to simulate a GPU) [{exc}]") from exc


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


from ._cuda_kernels import (  # noqa: E402  (only once a device, real or simulated, is known to be there)
    CHUNK_ROWS, THREADS, TRAIN_THREADS, _axpy_kernel, _forward_kernel, _partial_grad_kernel,
    _predict_kernel, _row_grad_kernel, _row_loss_kernel, _sum_chunks_kernel, _train_kernel)


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

    Values are checked as the wrappers would check them, so no call that takes
    them can be handed NaN pixels or out-of-range labels later.
    """
    if not isinstance(X, np.ndarray):
        raise InputError(f"X must be a numpy array to stage, got {_checks.describe(X)}")
    X = np.ascontiguousarray(X)
    if X.dtype.kind == "f" and not np.all(np.isfinite(X)):
        raise InputError("X contains NaN or infinite values")
    staged_X = OnDevice(X)
    if y is None:
        return staged_X
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu":
        raise InputError(f"y must be an integer array of class indices, got {_checks.describe(y)}")
    y = np.ascontiguousarray(y, dtype=np.int64)
    return staged_X, OnDevice(y, (int(y.min()), int(y.max())) if y.size else (0, 0))


def _inputs(X, F, dtype):
    """Device X and its row count: a staged one after checking its shape, else checked and copied."""
    if isinstance(X, OnDevice):
        if len(X.shape) != 2 or X.shape[1] != F or X.shape[0] == 0 or X.dtype not in (np.uint8, dtype):
            raise InputError(f"staged X has shape {X.shape} dtype {X.dtype}; expected (N, {F}), uint8 or {dtype}")
        return X.array, X.shape[0], X.dtype
    X = _checks.inputs(X, F, dtype)
    return cuda.to_device(X), X.shape[0], X.dtype


def _labels(y, n_rows, n_classes):
    if isinstance(y, OnDevice):
        if y.shape != (n_rows,) or y.low < 0 or y.high >= n_classes:
            raise InputError(f"staged y has shape {y.shape} and labels in [{y.low}, {y.high}]; "
                             f"expected ({n_rows},) in [0, {n_classes})")
        return y.array
    return cuda.to_device(_checks.labels(y, n_rows, n_classes))


def _prepare(X, W, b):
    """Validate; return (device X, N, scale in W's dtype, device W, device b, C)."""
    F, C, dtype = _checks.weights(W, b)
    if C > THREADS:
        raise InputError(f"the CUDA backend supports at most {THREADS} classes, W has {C}")
    dX, N, xdtype = _inputs(X, F, dtype)
    scale = dtype.type(PIXEL_SCALE if xdtype == np.uint8 else 1.0)
    return dX, N, scale, cuda.to_device(W), cuda.to_device(b), C


def _row_blocks(N, C):
    return (N + THREADS // C - 1) // (THREADS // C)


def _blocks(n, threads=THREADS):
    return max(1, (n + threads - 1) // threads)


# ---------------------------------------------------------------- public wrappers


def forward(X, W, b, out=None):
    """Class probabilities ``softmax(X W + b)``; see :func:`fastsoftmax.kernels.reference.forward`."""
    dX, N, scale, dW, db, C = _prepare(X, W, b)
    out = _checks.output(out, (N, C), W.dtype)
    d_out = cuda.device_array((N, C), W.dtype)
    _forward_kernel[_row_blocks(N, C), THREADS](dX, scale, dW, db, d_out)
    d_out.copy_to_host(out)
    return _checks.finite_probabilities(out, W.dtype)


def predict(X, W, b, out=None):
    """Most probable class of each row (int64 ``[N]``); see the reference."""
    dX, N, scale, dW, db, C = _prepare(X, W, b)
    out = _checks.output(out, (N,), np.int64)
    d_out = cuda.device_array(N, np.int64)
    _predict_kernel[_row_blocks(N, C), THREADS](dX, scale, dW, db, d_out)
    d_out.copy_to_host(out)
    return _checks.finite_labels(out, W.dtype)


def xent_loss(X, y, W, b):
    """Mean cross-entropy from logits; see the reference. Row losses are summed on the host, in order."""
    dX, N, scale, dW, db, C = _prepare(X, W, b)
    dy = _labels(y, N, C)
    row_loss = cuda.device_array(N, np.float64)
    _row_loss_kernel[_row_blocks(N, C), THREADS](dX, scale, dy, dW, db, row_loss)
    return _checks.finite_loss(float(row_loss.copy_to_host().sum() / N), W.dtype)


def xent_grad(X, y, W, b, dW=None, db=None):
    """Mean cross-entropy and its gradient ``(dW [F, C], db [C])``, reduced in a fixed order."""
    dX, N, scale, d_W, d_b, C = _prepare(X, W, b)
    F = W.shape[0]
    dy = _labels(y, N, C)
    dW = _checks.output(dW, (F, C), W.dtype, "dW")
    db = _checks.output(db, (C,), W.dtype, "db")
    G = cuda.device_array((N, C), W.dtype)
    row_loss = cuda.device_array(N, np.float64)
    _row_grad_kernel[_row_blocks(N, C), THREADS](dX, scale, dy, d_W, d_b, 1.0 / N, G, row_loss)
    chunks = (N + CHUNK_ROWS - 1) // CHUNK_ROWS
    partial_W = cuda.device_array((chunks, F, C), W.dtype)
    partial_b = cuda.device_array((chunks, C), W.dtype)
    _partial_grad_kernel[(_blocks(F * C), chunks), THREADS](dX, scale, G, partial_W, partial_b)
    d_dW, d_db = cuda.device_array(F * C, W.dtype), cuda.device_array(C, W.dtype)
    _sum_chunks_kernel[_blocks(F * C), THREADS](partial_W.reshape(chunks, F * C), d_dW)
    _sum_chunks_kernel[_blocks(C), THREADS](partial_b, d_db)
    dW[...] = d_dW.copy_to_host().reshape(F, C)
    d_db.copy_to_host(db)
    return _checks.finite_loss(float(row_loss.copy_to_host().sum() / N), W.dtype), dW, db


def sgd_step(W, b, dW, db, learning_rate):
    """In place: ``W -= learning_rate * dW``, ``b -= learning_rate * db``."""
    learning_rate = _checks.sgd_arguments(W, b, dW, db, learning_rate)
    for target, grad in ((W.reshape(-1), dW.reshape(-1)), (b, db)):
        d_target = cuda.to_device(target)
        _axpy_kernel[_blocks(target.size), THREADS](d_target, cuda.to_device(np.ascontiguousarray(grad)),
                                                     W.dtype.type(-learning_rate))
        d_target.copy_to_host(target)


def xent_sgd_step(X, y, W, b, learning_rate, weight_decay=0.0):
    """One gradient-and-update step on batch ``(X, y)``; dW is never materialised."""
    return _checks.one_step(train_steps, X, y, W, b, learning_rate, weight_decay)


def train_steps(X, y, W, b, order, batch_size, learning_rate, weight_decay=0.0, losses=None):
    """All SGD steps of a call in one kernel launch; see :func:`fastsoftmax.kernels.reference.train_steps`.

    ``X`` and ``y`` may be :class:`OnDevice` stand-ins from :func:`stage`, so a
    fit made of several calls copies its data to the device once.
    """
    dX, N, scale, d_W, d_b, C = _prepare(X, W, b)
    dy = _labels(y, N, C)
    order, steps, rates = _checks.schedule(order, batch_size, N, learning_rate, weight_decay, W.dtype)
    _checks.writable(W, "W")
    _checks.writable(b, "b")
    losses = _checks.output(losses, (steps,), np.float64, "losses")
    batch_size = int(batch_size)
    d_losses = cuda.to_device(np.full(steps, np.nan))
    done = cuda.to_device(np.zeros(1, np.int64))
    G = cuda.device_array((batch_size, C), W.dtype)
    row_loss = cuda.device_array(batch_size, np.float64)
    if steps:
        _train_kernel[1, TRAIN_THREADS](dX, scale, dy, d_W, d_b, cuda.to_device(order), batch_size,
                                        cuda.to_device(rates), float(weight_decay), d_losses, G, row_loss, done)
    d_losses.copy_to_host(losses)
    # W and b come back in full: the kernel never applies a step whose loss was not finite.
    d_W.copy_to_host(W)
    d_b.copy_to_host(b)
    return int(done.copy_to_host()[0]), losses
