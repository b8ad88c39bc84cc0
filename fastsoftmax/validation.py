"""Argument checks: the one place where every layer (kernels of every backend, the model, the data
loader, model files, the command line) checks what it is given.

Each check takes the value and the name the caller knows it by, raises the library's
:class:`~fastsoftmax.errors.InputTypeError` (wrong type or dtype) or
:class:`~fastsoftmax.errors.InputError` (wrong value, shape or size) with a message naming
the argument, what it was and what was expected, and returns the value in the form the
caller works with. The same mistake gets the same message wherever it is made: a
learning rate given as the string ``"0.5"`` is refused alike by a kernel, the estimator
and the command line's parsers.

Checks run once, before any work, so the compiled kernels can assume contiguous arrays
of matching dtypes and in-range indices.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import NamedTuple

import numpy as np

from .errors import InputError, InputTypeError

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ---------------------------------------------------------------------- descriptions

def describe(a) -> str:
    return f"shape {tuple(a.shape)} dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__


def short(value) -> str:
    """``repr(value)``, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------- numbers and settings

def number(value, name, dtype=None, *, positive=False) -> float:
    """Check a finite real number >= 0 (> 0 with ``positive``); return it as a float.

    Python and NumPy numbers and 0-d numeric arrays are numbers; a bool, a string (even
    ``"0.5"``), None or an array is not. With ``dtype``, the number must also be
    representable in it: a rate cast to float32 as infinity would turn every zero
    gradient into NaN.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputTypeError(f"{name} must be a real number, got {short(value)} ({describe(value)})")
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result) or result < 0:
        raise InputError(f"{name} must be finite and {'> 0' if positive else '>= 0'}, got {short(value)}")
    if positive and result == 0:
        raise InputError(f"{name} must be > 0, got {short(value)}")
    if dtype is not None and result > float(np.finfo(dtype).max):
        raise InputError(f"{name} must be finite in {np.dtype(dtype)} (at most {np.finfo(dtype).max:g}), "
                         f"got {value!r}")
    return result


def count(value, name, minimum=1) -> int:
    """Check an integer (a Python or NumPy int, not a bool, a float or a string) >= ``minimum``; return it."""
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputTypeError(f"{name} must be {what}, got {short(value)} ({describe(value)})")
    if value < minimum:
        raise InputError(f"{name} must be {what}, got {value}")
    return int(value)


def flag(value, name) -> bool:
    """Check True or False (a Python or NumPy bool, not 0, 1 or a string); return it as a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputTypeError(f"{name} must be True or False, got {short(value)}")
    return bool(value)


def seed(value, name="seed") -> int | None:
    """Check a random seed: None (fresh entropy) or an integer >= 0; return it as an int or None."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputTypeError(f"{name} must be None or an integer >= 0, got {short(value)} ({describe(value)})")
    if value < 0:
        raise InputError(f"{name} must be None or an integer >= 0, got {value}")
    return int(value)


def float_dtype(value, name="dtype") -> np.dtype:
    """Check ``"float32"``, ``np.float64``, ``np.dtype("float32")`` ...; return it as a NumPy dtype."""
    try:
        resolved = None if value is None or isinstance(value, bool) else np.dtype(value)
    except (TypeError, ValueError):
        resolved = None
    if resolved not in FLOAT_DTYPES:
        raise InputTypeError(f"{name} must be 'float32' or 'float64', got {short(value)}")
    return resolved


def choice(value, name, choices) -> str:
    """Check that ``value`` is one of the strings ``choices``; return it."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}, got {short(value)}")
    return value


# ---------------------------------------------------------------------- arrays as the kernels take them

def weights(W, b):
    """Check W ``[F, C]`` and b ``[C]``: same float dtype, C >= 1; return (F, C, dtype)."""
    _float_pair(W, b, many=False)
    if W.shape[1] < 1 or b.shape[0] != W.shape[1]:
        raise InputError(f"b must have shape ({W.shape[1]},) to match W {describe(W)}, got {describe(b)}")
    if W.shape[0] < 1:
        raise InputError(f"W must have at least one feature row, got {describe(W)}")
    _finite_pair(W, b)
    return W.shape[0], W.shape[1], W.dtype


def stacked_weights(W, b):
    """Check the weights of M models, W ``[M, F, C]`` and b ``[M, C]``: return (M, F, C, dtype)."""
    _float_pair(W, b, many=True)
    M, F, C = W.shape
    if M < 1 or F < 1 or C < 1:
        raise InputError(f"W must hold at least one model of at least one feature and class, got {describe(W)}")
    if b.shape != (M, C):
        raise InputError(f"b must have shape ({M}, {C}) to match W {describe(W)}, got {describe(b)}")
    _finite_pair(W, b)
    return M, F, C, W.dtype


def _float_pair(W, b, many: bool):
    """What one model's weights and M models' share: numpy arrays of one float dtype, W of rank 2
    and b of rank 1, one more each for ``many`` (a leading model axis)."""
    for name, arr, ndim in (("W", W, 2 + many), ("b", b, 1 + many)):
        if not isinstance(arr, np.ndarray):
            raise InputTypeError(f"{name} must be a numpy array, got {describe(arr)}")
        if arr.dtype not in FLOAT_DTYPES:
            raise InputTypeError(f"{name} must be float32 or float64, got {describe(arr)}")
        if arr.ndim != ndim:
            layout = f" (one {'[F, C]' if name == 'W' else '[C]'} per model)" if many else ""
            raise InputError(f"{name} must be {ndim}-D{layout}, got {describe(arr)}")
    if b.dtype != W.dtype:
        raise InputTypeError(f"b must have W's dtype {W.dtype}, got {describe(b)}")


def _finite_pair(W, b):
    """Refuse weights holding a NaN or an infinity, naming which array."""
    for name, arr in (("W", W), ("b", b)):
        if not np.isfinite(magnitude(arr)):
            raise InputError(f"{name} contains NaN or infinity")


def magnitude(arr) -> float:
    """``max |arr|`` of a non-empty float array, NaN if it holds a NaN (min and max, no temporary)."""
    return float(np.maximum(-arr.min(), arr.max()))


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


# ---------------------------------------------------------------------- training calls

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


def averaging(average, W, b):
    """Check ``train_steps``' ``average`` argument; return it as an :class:`Average` (or None)."""
    if average is None:
        return None
    W_avg, b_avg, start, count = _average_arrays(average, W, b)
    for name, value in (("average start", start), ("average count", count)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise InputError(f"{name} must be an integer >= 0, got {value!r}")
    return Average(W_avg, b_avg, int(start), int(count))


def _average_arrays(average, W, b):
    """The tuple ``(W_avg, b_avg, start, count)`` of a training call, its arrays checked against W and b."""
    if not isinstance(average, tuple) or len(average) != 4:
        raise InputTypeError(f"average must be None or a tuple (W_avg, b_avg, start, count), got {describe(average)}")
    W_avg, b_avg, start, count = average
    for name, arr, like in (("average W", W_avg, W), ("average b", b_avg, b)):
        if not isinstance(arr, np.ndarray) or arr.shape != like.shape or arr.dtype != like.dtype:
            raise InputError(f"{name} must be an array of shape {like.shape} dtype {like.dtype}, got {describe(arr)}")
        writable(arr, name)
    return W_avg, b_avg, start, count


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


def many_call(X, y, W, b, orders, group, batch_size, learning_rate, weight_decay, losses, average):
    """Every argument of a host ``train_many`` call checked: ``(X contiguous, Run)``."""
    _, F, C, dtype = stacked_weights(W, b)
    X = inputs(X, F, dtype)
    return X, many_arguments(X, y, W, b, C, orders, group, batch_size, learning_rate, weight_decay, losses, average)


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
    W_avg, b_avg, start, count = _average_arrays(average, W, b)
    n_models = W.shape[0]
    counts = []
    for name, value in (("average start", start), ("average count", count)):
        values = np.full(n_models, value) if np.ndim(value) == 0 else np.asarray(value)
        if (values.dtype.kind not in "iu" or values.shape != (n_models,) or isinstance(value, bool)
                or (values.size and values.min() < 0)):
            raise InputError(f"{name} must be an integer >= 0 or one per model, shape ({n_models},), got {value!r}")
        counts.append(np.ascontiguousarray(values, dtype=np.int64))
    return Averages(W_avg, b_avg, *counts)


# ---------------------------------------------------------------------- data as users give it


def features(X, name="X", dtype=np.float32, n_features=None, owner="SoftmaxRegression"):
    """X as the kernels take it, from what a user may pass: uint8 as it is, numbers in ``dtype``, C-contiguous.

    Lists, object arrays of numbers and other array-likes are converted; sparse matrices,
    complex numbers, strings and empty arrays are refused. NaN and infinity are not
    looked for here: that would read X once more (see :mod:`fastsoftmax.kernels._common`).
    """
    if type(X).__module__.startswith("scipy.sparse"):
        raise InputTypeError(f"{name} is a scipy sparse matrix; fastsoftmax needs a dense array "
                             f"({name}.toarray())")
    if X is None:
        raise InputTypeError(f"{name} must be an array [N, F], got None")
    if not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InputTypeError(f"{name} must be an array of numbers [N, F]: {exc}") from exc
    if X.dtype.kind == "c":
        raise InputError(f"{name} has dtype {X.dtype}: Complex data not supported, give real numbers")
    if X.dtype.kind == "O":
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InputTypeError(f"{name} must hold numbers: {exc}") from exc
    if X.ndim != 2:
        raise InputError(f"{name} must be a 2-D array [N, F], got shape {X.shape}"
                         + (": Reshape your data with X.reshape(1, -1) for a single sample, or "
                            "X.reshape(-1, 1) for a single feature" if X.ndim == 1 else ""))
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InputError(f"{name} must be a non-empty 2-D array [N, F]: it has {X.shape[0]} sample(s) and "
                         f"{X.shape[1]} feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if n_features is not None and X.shape[1] != n_features:
        raise InputError(f"{name} has {X.shape[1]} features, but {owner} is expecting {n_features} "
                         f"features as input")
    if X.dtype == np.uint8:
        return np.ascontiguousarray(X)
    if X.dtype.kind not in "biuf":
        raise InputTypeError(f"{name} must be uint8 pixels or a float array, got dtype {X.dtype}")
    return np.ascontiguousarray(X, dtype=dtype)


def targets(y, n_rows, name="y", one_hot_width=None, conversion_warning=UserWarning):
    """Labels as a 1-D array (or one-hot ``[N, C]`` when C >= 2), checked but not encoded.

    Any sortable labels (integers of any size and sign, strings) are accepted; floats only
    when they are whole numbers. A column vector ``[N, 1]`` is used raveled, with
    ``conversion_warning`` (scikit-learn's ``DataConversionWarning`` when the caller has it).
    """
    if y is None:
        raise InputError(f"SoftmaxRegression requires y to be passed, but the target {name} is None")
    if type(y).__module__.startswith("scipy.sparse"):
        raise InputTypeError(f"{name} is a scipy sparse matrix; give a dense array of labels")
    if not isinstance(y, np.ndarray):
        try:
            y = np.asarray(y)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InputTypeError(f"{name} must be an array of labels: {exc}") from exc
    if y.ndim == 0 or y.shape[0] != n_rows:
        raise InputError(f"{name} has {y.shape[0] if y.ndim else 0} rows, X has {n_rows}")
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected: using y.ravel()",
                      conversion_warning, stacklevel=4)
        y = y.ravel()
    if y.ndim == 2:
        if not (y.dtype.kind in "biuf" and np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)):
            raise InputError(f"{name} is 2-D {y.shape} but its rows are not one-hot")
        if one_hot_width is not None and y.shape[1] != one_hot_width:
            raise InputError(f"{name} is one-hot with {y.shape[1]} columns, expected {one_hot_width}")
        return y
    if y.ndim != 1:
        raise InputError(f"{name} must be labels [N] or one-hot [N, C], got shape {y.shape}")
    if y.dtype.kind == "c":
        raise InputError(f"{name} has dtype {y.dtype}: Complex data not supported")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise InputError(f"{name} contains NaN or infinity: labels must be finite")
        if not np.all(y == np.round(y)):
            example = y[y != np.round(y)][0].item()
            raise InputError(f"Unknown label type: {name} holds continuous values (e.g. {example!r}), "
                             f"not class labels")
    if y.dtype.kind not in "biufUSO":
        raise InputTypeError(f"{name} must hold class labels (numbers or strings), got dtype {y.dtype}")
    return y


# ---------------------------------------------------------------------- names of files and places


def file_name(path, name="path") -> str:
    """Check a file name (a non-empty str or os.PathLike, no NUL); return it as a str."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"{name} must be a str or os.PathLike file name, got {short(path)}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text or "\0" in text:
        raise InputError(f"{name} must be a non-empty file name without NUL characters, got {short(path)}")
    return text


def directory_name(path, name="data_dir"):
    """Check None or a directory name (a non-empty str or os.PathLike, no NUL); return it unchanged."""
    if path is not None and (isinstance(path, bytes) or not isinstance(path, (str, os.PathLike))
                             or not os.fspath(path) or "\0" in os.fspath(path)):
        raise InputTypeError(f"{name} must be None or a directory name (str or os.PathLike), got {short(path)}")
    return path


def urls(value, name="mirrors"):
    """Check None or a non-empty list (or tuple) of non-empty base URLs; return it unchanged."""
    if value is not None and (isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple))
                              or not value or not all(isinstance(m, str) and m for m in value)):
        raise InputTypeError(f"{name} must be None or a non-empty list of base URLs (str), got {short(value)}")
    return value
