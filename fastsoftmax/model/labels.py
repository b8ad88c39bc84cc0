"""Labels and classes: the sorted classes a model knows, and labels encoded as class indices.

Labels may be any sortable values of one kind (integers of any size and sign, strings,
whole-number floats) or one-hot rows; the kernels see only class indices in ``[0, C)``.
"""

from __future__ import annotations

import numpy as np

from .. import validation
from ..errors import InputError, InputTypeError

_INT64 = np.iinfo(np.int64)


def given_classes(classes, n_classes):
    """The ``classes`` (or ``n_classes``) argument of ``fit``: sorted distinct labels, or None when not given."""
    if classes is not None and n_classes is not None:
        raise InputError("give classes or n_classes, not both")
    if n_classes is not None:
        return np.arange(validation.count(n_classes, "n_classes"))
    if classes is None:
        return None
    values = validation.targets(classes, len(classes) if hasattr(classes, "__len__") else 0, "classes")
    if values.ndim != 1 or values.size == 0:
        raise InputError(f"classes must be a non-empty 1-D array of labels, got shape {values.shape}")
    unique = classes_of(values)
    if unique.size != values.size:
        raise InputError(f"classes must not repeat a label, got {values!r}")
    return unique


def classes_of(y):
    """The sorted distinct labels of y (one-hot: the column indices)."""
    if y.ndim == 2:
        return np.arange(y.shape[1])
    if y.dtype.kind in "iu" and y.size:
        low, high = int(y.min()), int(y.max())
        if high - low < max(1 << 16, 4 * y.size) and _INT64.min <= low and high <= _INT64.max:
            # a count per value: linear, no sort
            shifted = np.asarray(y, np.int64) - low if low else y
            return (np.flatnonzero(np.bincount(shifted, minlength=high - low + 1)) + low).astype(y.dtype)
    try:
        return np.unique(y)
    except TypeError as exc:
        raise InputTypeError(f"labels must be sortable values of one kind: {exc}") from exc


def equal(a, b) -> bool:
    """Whether two class arrays hold the same labels in the same order."""
    return a.shape == b.shape and bool(np.all(a == b))


def encode(y, classes, name, unknown=None):
    """Class indices (int64 ``[N]``) of labels ``y`` in sorted ``classes``.

    A label not in ``classes`` is refused, or mapped to ``unknown`` when that is given.
    """
    if y.ndim == 2:
        if y.shape[1] != classes.size:
            raise InputError(f"{name} is one-hot with {y.shape[1]} columns, the model has {classes.size} classes")
        return y.argmax(axis=1).astype(np.int64)
    C = classes.size
    if y.dtype.kind in "iu" and classes.dtype.kind in "iu" and y.size:
        low, high = int(classes[0]), int(classes[-1])
        lo, hi = int(y.min()), int(y.max())
        # consecutive classes that int64 holds: a shift, no search
        if high - low == C - 1 and _INT64.min <= low and high <= _INT64.max and low <= lo and hi <= high:
            return np.asarray(y, np.int64) - low if low else np.ascontiguousarray(y, dtype=np.int64)
    try:
        index = np.minimum(np.searchsorted(classes, y), C - 1)
        match = classes[index] == y
    except TypeError as exc:
        raise InputTypeError(f"{name} holds labels that cannot be compared with classes {classes!r}: {exc}") from exc
    if not np.all(match):
        if unknown is None:
            raise InputError(f"{name} has label {y[~match][0]!r}, not among the classes {classes!r}")
        index = np.where(match, index, unknown)
    return np.ascontiguousarray(index, dtype=np.int64)
