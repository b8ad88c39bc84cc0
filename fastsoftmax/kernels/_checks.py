"""Argument checks shared by every backend's public wrappers.

Wrappers validate once, before any work, so the compiled kernels can assume
contiguous arrays of matching dtypes and in-range indices. Each error names the
argument, what it was and what was expected.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..errors import DivergenceError, InputError, InputTypeError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def describe(a) -> str:
    return f"shape {tuple(a.shape)} dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__


def weights(W, b):
    """Check W ``[F, C]`` and b ``[C]``: same float dtype, C >= 1; return (F, C, dtype)."""
    for name, arr, ndim in (("W", W, 2), ("b", b, 1)):
        if not isinstance(arr, np.ndarray):
            raise InputTypeError(f"{name} must be a numpy array, got {describe(arr)}")
        if arr.dtype not in FLOAT_DTYPES:
            raise InputTypeError(f"{name} must be float32 or float64, got {describe(arr)}")
        if arr.ndim != ndim:
            raise InputError(f"{name} must be {ndim}-D, got {describe(arr)}")
    if b.dtype != W.dtype:
        raise InputTypeError(f"b must have W's dtype {W.dtype}, got {describe(b)}")
    if W.shape[1] < 1 or b.shape[0] != W.shape[1]:
        raise InputError(f"b must have shape ({W.shape[1]},) to match W {describe(W)}, got {describe(b)}")
    if W.shape[0] < 1:
        raise InputError(f"W must have at least one feature row, got {describe(W)}")
    for name, arr in (("W", W), ("b", b)):
        if not np.isfinite(magnitude(arr)):
            raise InputError(f"{name} contains NaN or infinity")
    return W.shape[0], W.shape[1], W.dtype


def magnitude(arr) -> float:
    """``max |arr|`` of a non-empty float array, NaN if it holds a NaN (min and max, no temporary)."""
    return float(np.maximum(-arr.min(), arr.max()))


def number(value, name, dtype=None) -> float:
    """Check a finite real number >= 0 (not a bool, string, None or array); return it as a float.

    With ``dtype``, the number must also be representable in it: a rate cast to
    float32 as infinity would turn every zero gradient into NaN.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputTypeError(f"{name} must be a real number, got {value!r} ({describe(value)})")
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result) or result < 0:
        raise InputError(f"{name} must be finite and >= 0, got {value!r}")
    if dtype is not None and result > float(np.finfo(dtype).max):
        raise InputError(f"{name} must be finite in {np.dtype(dtype)} (at most {np.finfo(dtype).max:g}), "
                         f"got {value!r}")
    return result


def count(value, name, minimum=1) -> int:
    """Check an integer (a Python or NumPy int, not a bool or a float) >= ``minimum``; return it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputTypeError(f"{name} must be an integer, got {value!r} ({describe(value)})")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def inputs(X, n_features, dtype, name="X"):
    """Check X ``[N, F]``: uint8 or ``dtype``, N >= 1; return X C-contiguous (copied only if needed)."""
    if not isinstance(X, np.ndarray):
        raise InputTypeError(f"{name} must be a numpy array, got {describe(X)}")
    if X.dtype != np.uint8 and X.dtype != dtype:
        raise InputTypeError(f"{name} must be uint8 pixels or {dtype} like W, got {describe(X)}")
    if X.ndim != 2 or X.shape[1] != n_features:
        raise InputError(f"{name} must have shape (N, {n_features}), got {describe(X)}")
    if X.shape[0] == 0:
        raise InputError(f"{name} is empty: {describe(X)}")
    return np.ascontiguousarray(X)


def labels(y, n_rows, n_classes, name="y"):
    """Check class indices ``[N]`` in [0, C); return them as contiguous int64."""
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu":
        raise InputTypeError(f"{name} must be an integer array of class indices, got {describe(y)}")
    if y.shape != (n_rows,):
        raise InputError(f"{name} must have shape ({n_rows},), got {describe(y)}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise InputError(f"{name} has labels in [{y.min()}, {y.max()}], expected [0, {n_classes})")
    return np.ascontiguousarray(y, dtype=np.int64)


def output(out, shape, dtype, name="out"):
    """Allocate ``out`` or check a given one is a writable C-contiguous array of ``shape``/``dtype``."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray) or out.dtype != dtype:
        raise InputTypeError(f"{name} must be None or an array of dtype {np.dtype(dtype)}, got {describe(out)}")
    if out.shape != tuple(shape):
        raise InputError(f"{name} must be an array of shape {tuple(shape)} dtype {np.dtype(dtype)}, "
                         f"got {describe(out)}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise InputError(f"{name} must be C-contiguous and writeable")
    return out


def writable(arr, name):
    """Arrays updated in place must be writable and C-contiguous, or the update would be lost."""
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        raise InputError(f"{name} is updated in place and must be C-contiguous and writeable, "
                         f"got {describe(arr)}")


def schedule(order, batch_size, n_rows, learning_rate, weight_decay, dtype):
    """Check a batch order, learning rate(s) and weight decay before any work.

    Returns (order int64, steps, rates float64[steps]); ``weight_decay`` is only
    checked (a finite number >= 0, representable in W's ``dtype``).
    """
    if not isinstance(order, np.ndarray) or order.dtype.kind not in "iu" or order.ndim != 1:
        raise InputTypeError(f"order must be a 1-D integer array of row indices, got {describe(order)}")
    batch_size = count(batch_size, "batch_size")
    if batch_size > max(order.size, n_rows):  # only possible for an empty order: nothing to size buffers by
        raise InputError(f"batch_size {batch_size} is larger than both order ({order.size} indices) "
                         f"and X ({n_rows} rows)")
    if order.size % batch_size:
        raise InputError(f"order has {order.size} indices, not a multiple of batch_size {batch_size}")
    if order.size and (order.min() < 0 or order.max() >= n_rows):
        raise InputError(f"order has indices in [{order.min()}, {order.max()}], X has {n_rows} rows")
    steps = order.size // batch_size
    rates = step_rates(learning_rate, steps, dtype)
    decay = number(weight_decay, "weight_decay", dtype)
    # The decay term alone scales W by (1 - rate * decay) each step: at 2 or more that
    # grows W geometrically until it overflows, whatever the data.
    if steps and decay and float(rates.max()) * decay >= 2:
        raise InputError(f"learning_rate * weight_decay must be < 2 (the decay term alone makes W grow "
                         f"without bound), got {float(rates.max())!r} * {weight_decay!r}")
    return np.ascontiguousarray(order, dtype=np.int64), steps, rates


def step_rates(learning_rate, steps, dtype):
    """One learning rate for every step, or an array ``[steps]`` of them; return float64 ``[steps]``."""
    if not isinstance(learning_rate, (np.ndarray, list, tuple)) or np.ndim(learning_rate) == 0:
        return np.full(steps, number(learning_rate, "learning_rate", dtype))
    try:
        rates = np.asarray(learning_rate)
    except (ValueError, TypeError) as exc:
        raise InputTypeError(f"learning_rate must be a number or an array of {steps} numbers: {exc}") from None
    if rates.dtype.kind not in "iuf":
        raise InputTypeError(f"learning_rate must be a number or a real array, got {describe(rates)}")
    if rates.shape != (steps,):
        raise InputError(f"learning_rate must be a number or an array of shape ({steps},), one per step, "
                         f"got {describe(rates)}")
    rates = np.ascontiguousarray(rates, dtype=np.float64)
    usable = np.isfinite(rates) & (rates >= 0) & (rates <= float(np.finfo(dtype).max))
    if not usable.all():
        bad = int(np.flatnonzero(~usable)[0])
        raise InputError(f"learning_rate must be finite and >= 0 at every step, got {rates[bad]!r} at step {bad}")
    return rates


def one_step(train_steps, X, y, W, b, learning_rate, weight_decay):
    """``xent_sgd_step`` for any backend: its ``train_steps`` over the whole of X as one batch.

    X may also be a backend's staged stand-in (an object with a 2-D ``shape``, such as
    the CUDA backend's ``OnDevice``), which that backend's ``train_steps`` checks.
    A loss that is not finite raises :class:`InputError`, the weights untouched; an
    update that overflows W's dtype raises :class:`DivergenceError`, the weights restored.
    """
    F, _, dtype = weights(W, b)
    learning_rate = number(learning_rate, "learning_rate", dtype)
    staged = not isinstance(X, np.ndarray) and len(getattr(X, "shape", ())) == 2
    n = X.shape[0] if staged else inputs(X, F, dtype).shape[0]
    before = W.copy(), b.copy()  # [F, C]: a copy is nothing beside the step itself
    try:
        _, losses = train_steps(X, y, W, b, np.arange(n), n, learning_rate, weight_decay)
    except DivergenceError:  # train_steps' verdict on an update that overflowed (see finished)
        W[...], b[...] = before
        raise DivergenceError(f"the update with learning_rate {learning_rate!r} overflows {dtype}: "
                              "W and b restored; use a smaller learning_rate") from None
    return finite_loss(float(losses[0]), dtype)


def sgd_arguments(W, b, dW, db, learning_rate) -> float:
    """Check an in-place SGD update; return ``learning_rate`` as a float.

    W and b must be writable, the gradients finite and of the same shapes and dtype,
    the rate a finite number >= 0, and the update must not overflow W's dtype
    (``max|W| + lr max|dW|`` bounds every updated element), so it can never leave
    infinity or NaN in W or b.
    """
    _, _, dtype = weights(W, b)
    if not isinstance(dW, np.ndarray) or not isinstance(db, np.ndarray):
        raise InputTypeError(f"dW and db must be numpy arrays, got {describe(dW)}, {describe(db)}")
    if dW.shape != W.shape or dW.dtype != W.dtype or db.shape != b.shape or db.dtype != b.dtype:
        raise InputError(f"dW, db must match W {describe(W)}, b {describe(b)}; got {describe(dW)}, {describe(db)}")
    writable(W, "W")
    writable(b, "b")
    learning_rate = number(learning_rate, "learning_rate", dtype)
    limit = float(np.finfo(dtype).max)
    for name, target, grad, grad_name in (("W", W, dW, "dW"), ("b", b, db, "db")):
        step = magnitude(grad)
        if not math.isfinite(step):
            raise InputError(f"{grad_name} contains NaN or infinity")
        if magnitude(target) + learning_rate * step > limit:
            raise InputError(f"learning_rate {learning_rate!r} times {grad_name} (max |{grad_name}| {step:g}) "
                             f"would overflow {dtype} in {name}")
    return learning_rate


class Average(NamedTuple):
    """Running Polyak-Ruppert average of the weights, kept by ``train_steps(..., average=...)``.

    Attributes
    ----------
    W : ndarray ``[F, C]``, W's dtype, C-contiguous, writeable
        Mean of the averaged weight snapshots so far; updated in place.
    b : ndarray ``[C]``, W's dtype, C-contiguous, writeable
        The same for the bias.
    start : int
        Index, within this call, of the first step whose updated weights enter the
        average (0: all of them; ``steps`` or more: none in this call).
    count : int
        How many snapshots ``W`` and ``b`` already hold (0 for a fresh average).

    After step ``s >= start`` is applied, with ``k = count + (s - start) + 1``::

        W_avg += (W - W_avg) * dtype(1 / k)      # likewise b_avg

    so with ``count = 0`` the first averaged step copies the weights. A step that is
    not applied (a non-finite loss) is not averaged. After a call that applied
    ``done`` steps the average holds ``count + max(0, done - start)`` snapshots.
    """

    W: np.ndarray
    b: np.ndarray
    start: int
    count: int


def average_inverse(count, start, step, dtype):
    """``dtype(1 / k)``, the weight of step ``step``'s snapshot in the running mean (``step`` may be an array)."""
    return dtype.type(1.0 / (count + (step - start) + 1))


def average_weights(average, steps, dtype):
    """Each step's weight in the running mean (:func:`average_inverse`); 0 where a step is not averaged."""
    weights = np.zeros(steps, dtype)
    if average is not None:
        averaged = np.arange(min(average.start, steps), steps)
        weights[averaged] = average_inverse(average.count, average.start, averaged, dtype)
    return weights


def averaging(average, W, b):
    """Check ``train_steps``' ``average`` argument; return it as an :class:`Average` (or None)."""
    if average is None:
        return None
    if not isinstance(average, tuple) or len(average) != 4:
        raise InputTypeError(f"average must be None or a tuple (W_avg, b_avg, start, count), got {describe(average)}")
    W_avg, b_avg, start, count = average
    for name, arr, like in (("average W", W_avg, W), ("average b", b_avg, b)):
        if not isinstance(arr, np.ndarray) or arr.shape != like.shape or arr.dtype != like.dtype:
            raise InputError(f"{name} must be an array of shape {like.shape} dtype {like.dtype}, got {describe(arr)}")
        writable(arr, name)
    for name, value in (("average start", start), ("average count", count)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise InputError(f"{name} must be an integer >= 0, got {value!r}")
    return Average(W_avg, b_avg, int(start), int(count))


class Run(NamedTuple):
    """A checked training call for M models (``train_many``; ``train_steps`` is the case M = 1).

    Attributes
    ----------
    y : ndarray, int64 ``[N]``
        Class indices in ``[0, C)``.
    orders : ndarray, int64 ``[G, steps * batch_size]``
        The row indices of each group's batches.
    group : ndarray, int64 ``[M]``
        The group whose batches model m takes, in ``[0, G)``.
    steps : int
    rates : ndarray, float64 ``[M, steps]``
        Each model's learning rate at each step.
    decays : ndarray, float64 ``[M]``
        Each model's weight decay.
    losses : ndarray, float64 ``[M, steps]``
        Set to NaN; each step's mean batch loss is written here.
    average : Averages or None
    """

    y: np.ndarray
    orders: np.ndarray
    group: np.ndarray
    steps: int
    rates: np.ndarray
    decays: np.ndarray
    losses: np.ndarray
    average: Averages | None


class Averages(NamedTuple):
    """The running means of M models (:class:`Average` for each): W ``[M, F, C]``, b ``[M, C]``,
    start and count int64 ``[M]``."""

    W: np.ndarray
    b: np.ndarray
    start: np.ndarray
    count: np.ndarray


def stacked_weights(W, b):
    """Check the weights of M models, W ``[M, F, C]`` and b ``[M, C]``: return (M, F, C, dtype)."""
    for name, arr, ndim in (("W", W, 3), ("b", b, 2)):
        if not isinstance(arr, np.ndarray):
            raise InputTypeError(f"{name} must be a numpy array, got {describe(arr)}")
        if arr.dtype not in FLOAT_DTYPES:
            raise InputTypeError(f"{name} must be float32 or float64, got {describe(arr)}")
        if arr.ndim != ndim:
            raise InputError(f"{name} must be {ndim}-D (one {'[F, C]' if ndim == 3 else '[C]'} per model), "
                             f"got {describe(arr)}")
    if b.dtype != W.dtype:
        raise InputTypeError(f"b must have W's dtype {W.dtype}, got {describe(b)}")
    M, F, C = W.shape
    if M < 1 or F < 1 or C < 1:
        raise InputError(f"W must hold at least one model of at least one feature and class, got {describe(W)}")
    if b.shape != (M, C):
        raise InputError(f"b must have shape ({M}, {C}) to match W {describe(W)}, got {describe(b)}")
    for name, arr in (("W", W), ("b", b)):
        if not np.isfinite(magnitude(arr)):
            raise InputError(f"{name} contains NaN or infinity")
    return M, F, C, W.dtype


def many_arguments(X, y, W, b, n_classes, orders, group, batch_size, learning_rate, weight_decay, losses,
                   average) -> Run:
    """Check everything ``train_many`` takes besides X (already checked), W and b (:func:`stacked_weights`)."""
    M = W.shape[0]
    y = labels(y, X.shape[0], n_classes)
    orders, steps = _orders(orders, batch_size, X.shape[0])
    group = _groups(group, M, orders.shape[0])
    rates = _model_rates(learning_rate, M, steps, W.dtype)
    decays = _model_values(weight_decay, M, "weight_decay", W.dtype)
    if steps and np.any(decays * rates.max(axis=1, initial=0.0) >= 2):
        m = int(np.flatnonzero(decays * rates.max(axis=1, initial=0.0) >= 2)[0])
        raise InputError(f"learning_rate * weight_decay must be < 2 (the decay term alone makes W grow without "
                         f"bound), got {float(rates[m].max())!r} * {float(decays[m])!r} for model {m}")
    writable(W, "W")
    writable(b, "b")
    losses = output(losses, (M, steps), np.float64, "losses")
    losses[:] = np.nan
    return Run(y, orders, group, steps, rates, decays, losses, _many_averages(average, W, b))


def _orders(orders, batch_size, n_rows):
    """Check the batch orders of ``train_many``; return them as int64 ``[G, steps * batch_size]`` and steps."""
    if not isinstance(orders, np.ndarray) or orders.dtype.kind not in "iu" or orders.ndim not in (1, 2):
        raise InputTypeError(f"orders must be an integer array [G, steps * batch_size] of row indices (1-D for "
                             f"one group), got {describe(orders)}")
    orders = orders.reshape(1, -1) if orders.ndim == 1 else orders
    batch_size = count(batch_size, "batch_size")
    if orders.shape[0] == 0:
        raise InputError(f"orders must hold at least one group's order, got {describe(orders)}")
    if batch_size > max(orders.shape[1], n_rows):
        raise InputError(f"batch_size {batch_size} is larger than both an order ({orders.shape[1]} indices) "
                         f"and X ({n_rows} rows)")
    if orders.shape[1] % batch_size:
        raise InputError(f"orders has rows of {orders.shape[1]} indices, not a multiple of batch_size {batch_size}")
    if orders.size and (orders.min() < 0 or orders.max() >= n_rows):
        raise InputError(f"orders has indices in [{orders.min()}, {orders.max()}], X has {n_rows} rows")
    return np.ascontiguousarray(orders, dtype=np.int64), orders.shape[1] // batch_size


def _groups(group, n_models, n_groups):
    if group is None:
        if n_groups != 1:
            raise InputError(f"group must say which of the {n_groups} orders each of the {n_models} models takes")
        return np.zeros(n_models, np.int64)
    if not isinstance(group, np.ndarray) or group.dtype.kind not in "iu":
        raise InputTypeError(f"group must be None or an integer array [M] of order indices, got {describe(group)}")
    if group.shape != (n_models,):
        raise InputError(f"group must have shape ({n_models},), one order index per model, got {describe(group)}")
    if group.size and (group.min() < 0 or group.max() >= n_groups):
        raise InputError(f"group has indices in [{group.min()}, {group.max()}], orders has {n_groups} rows")
    return np.ascontiguousarray(group, dtype=np.int64)


def _model_rates(learning_rate, n_models, steps, dtype):
    """A number, one per model ``[M]`` or one per model and step ``[M, steps]``; float64 ``[M, steps]``."""
    if not isinstance(learning_rate, (np.ndarray, list, tuple)) or np.ndim(learning_rate) == 0:
        return np.full((n_models, steps), number(learning_rate, "learning_rate", dtype))
    try:
        rates = np.asarray(learning_rate)
    except (ValueError, TypeError) as exc:
        raise InputTypeError(f"learning_rate must be a number or an array of numbers: {exc}") from None
    if rates.dtype.kind not in "iuf":
        raise InputTypeError(f"learning_rate must be a number or a real array, got {describe(rates)}")
    if rates.shape == (n_models,):
        rates = np.repeat(rates.astype(np.float64)[:, None], steps, axis=1)
    elif rates.shape != (n_models, steps):
        raise InputError(f"learning_rate must be a number or an array of shape ({n_models},) (one per model) or "
                         f"({n_models}, {steps}) (one per model and step), got {describe(rates)}")
    rates = np.ascontiguousarray(rates, dtype=np.float64)
    usable = np.isfinite(rates) & (rates >= 0) & (rates <= float(np.finfo(dtype).max))
    if not usable.all():
        m, s = (int(i[0]) for i in np.nonzero(~usable))
        raise InputError(f"learning_rate must be finite and >= 0 for every model and step, got {rates[m, s]!r} "
                         f"for model {m} at step {s}")
    return rates


def _model_values(value, n_models, name, dtype):
    """A number or one per model ``[M]``, each a finite real >= 0 representable in ``dtype``; float64 ``[M]``."""
    if not isinstance(value, (np.ndarray, list, tuple)) or np.ndim(value) == 0:
        return np.full(n_models, number(value, name, dtype))
    values = np.asarray(value)
    if values.dtype.kind not in "iuf" or values.shape != (n_models,):
        raise InputError(f"{name} must be a number or an array of shape ({n_models},), one per model, "
                         f"got {describe(values)}")
    return np.array([number(v, f"{name}[{m}]", dtype) for m, v in enumerate(values.tolist())], np.float64)


def _many_averages(average, W, b):
    if average is None:
        return None
    if not isinstance(average, tuple) or len(average) != 4:
        raise InputTypeError(f"average must be None or a tuple (W_avg, b_avg, start, count), got {describe(average)}")
    W_avg, b_avg, start, count = average
    for name, arr, like in (("average W", W_avg, W), ("average b", b_avg, b)):
        if not isinstance(arr, np.ndarray) or arr.shape != like.shape or arr.dtype != like.dtype:
            raise InputError(f"{name} must be an array of shape {like.shape} dtype {like.dtype}, got {describe(arr)}")
        writable(arr, name)
    n_models = W.shape[0]
    counts = []
    for name, value in (("average start", start), ("average count", count)):
        values = np.full(n_models, value) if np.ndim(value) == 0 else np.asarray(value)
        if (values.dtype.kind not in "iu" or values.shape != (n_models,) or isinstance(value, bool)
                or (values.size and values.min() < 0)):
            raise InputError(f"{name} must be an integer >= 0 or one per model, shape ({n_models},), got {value!r}")
        counts.append(np.ascontiguousarray(values, dtype=np.int64))
    return Averages(W_avg, b_avg, *counts)


def as_one_of_many(W, b, y, order, steps, rates, weight_decay, losses, average) -> tuple:
    """``train_steps``' checked arguments as ``train_many``'s for one model; returns ``(W [1, F, C], b [1, C], Run)``.

    Views, not copies: the updates reach the caller's W, b, losses and average.
    """
    averages = None if average is None else Averages(average.W[None], average.b[None], np.array([average.start]),
                                                     np.array([average.count]))
    run = Run(y, order[None], np.zeros(1, np.int64), steps, rates[None], np.array([float(weight_decay)]),
              losses[None], averages)
    return W[None], b[None], run


def many_average_weights(average, steps, dtype):
    """Each model's weight of each step's snapshot in its running mean, ``[M, steps]`` (see :func:`average_weights`)."""
    return np.stack([average_weights(Average(None, None, int(start), int(count)), steps, dtype)
                     for start, count in zip(average.start.tolist(), average.count.tolist())])


def run_arguments(X, y, W, b, n_classes, order, batch_size, learning_rate, losses, weight_decay):
    """Check everything ``train_steps`` takes besides X (already checked by the caller).

    Returns (y int64, order int64, steps, rates float64[steps], losses float64[steps] set to NaN).
    """
    y = labels(y, X.shape[0], n_classes)
    order, steps, rates = schedule(order, batch_size, X.shape[0], learning_rate, weight_decay, W.dtype)
    writable(W, "W")
    writable(b, "b")
    losses = output(losses, (steps,), np.float64, "losses")
    losses[:] = np.nan
    return y, order, steps, rates, losses


# Float inputs are not scanned for NaN before the kernels run: that would read X a
# second time (as long as the kernel itself, for inference). A non-finite value in
# a row makes that row's logits non-finite, so the kernels flag such rows and the
# wrappers raise one of these instead of returning a result.

def _nonfinite_message(row, dtype):
    return (f"X row {row} gives non-finite logits: it holds NaN or infinity, or values so large "
            f"that X @ W overflows {dtype}")


def finite_probabilities(out, dtype):
    """Raise unless every row of a forward result is finite."""
    if not np.isfinite(out).all():
        raise InputError(_nonfinite_message(int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0]), dtype))
    return out


def finite_labels(out, dtype):
    """Raise if a predict kernel flagged a row (label -1: its logits were not finite)."""
    if out.size and out.min() < 0:
        raise InputError(_nonfinite_message(int(np.flatnonzero(out < 0)[0]), dtype))
    return out


def finished(done, losses, W, b):
    """``train_steps``' result ``(done, losses)``, unless its updates left W or b non-finite.

    A step is never applied when its loss is not finite, but a finite loss can still
    come with an update that overflows W's dtype (huge inputs times a large rate): on
    the last step nothing would notice. Raises :class:`DivergenceError` then.
    """
    if not (np.isfinite(magnitude(W)) and np.isfinite(magnitude(b))):
        raise DivergenceError(f"the update of step {int(done) - 1} overflowed {W.dtype}: W and b now hold infinity "
                              "or NaN; use a smaller learning_rate or smaller inputs")
    return int(done), losses


def finite_loss(loss, dtype):
    """Raise unless a loss is finite."""
    if not np.isfinite(loss):
        raise InputError(f"the loss is {loss}: X holds NaN or infinity, or values so large that "
                         f"X @ W overflows {dtype}")
    return loss
