"""Inference on dask arrays, one row block at a time, through the backend's kernels.

``SoftmaxRegression.predict``, ``predict_proba`` and ``score`` hand a dask array here.
Each row block goes through the estimator's own NumPy path (its argument checks and the
backend's kernels), so the whole array is never converted to NumPy: ``predict`` and
``predict_proba`` return lazy dask arrays chunked as X's rows, and ``score`` computes
one count of correct rows per block (a float, as scikit-learn's ``score`` returns).

Dask is imported only once a dask array has been given: an object can only be a dask
array if ``dask.array`` has been imported, so :func:`is_dask_array` looks there in
``sys.modules`` instead of importing it.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from .errors import InputError, InputTypeError


def is_dask_array(X) -> bool:
    """Whether ``X`` is a ``dask.array.Array``, without importing dask."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(X, dask_array.Array)


def blockwise(X, block_function, n_features, *, columns=None, dtype):
    """``block_function`` applied lazily to each row block of the dask array ``X``.

    Parameters
    ----------
    X : dask.array.Array ``[N, F]``
        Checked now (dimensions, dtype, ``F``), before any block is computed. Blocks
        split along the features are joined first: a block must hold whole rows.
    block_function : callable
        Maps a NumPy block ``[n, F]`` to ``[n]`` (``columns=None``) or
        ``[n, columns]``; called once per block when the result is computed. Give it
        a snapshot of the model, so that refitting the model before the result is
        computed does not change the result.
    n_features : int
        The ``F`` the model was fitted with.
    columns : int, optional
        Columns of each result block; ``None`` for one value per row.
    dtype : numpy.dtype
        The result's dtype.

    Returns
    -------
    dask.array.Array
        ``[N]`` or ``[N, columns]`` of ``dtype``, chunked as X's rows.

    Raises
    ------
    InputError, InputTypeError
        ``X`` is not 2-D, has no rows, has another number of features, or a dtype the
        model cannot read. Errors of a block, raised when it is computed, name the
        block and its rows.
    """
    X = _row_blocks(X, n_features)
    dtype = np.dtype(dtype)
    if columns is None:
        return X.map_blocks(_on_block, block_function=block_function, drop_axis=1, dtype=dtype,
                            meta=np.empty(0, dtype))
    return X.map_blocks(_on_block, block_function=block_function, chunks=(X.chunks[0], (columns,)), dtype=dtype,
                        meta=np.empty((0, 0), dtype))


def accuracy(X, y, score_block, n_features) -> float:
    """The fraction of rows of the dask array ``X`` predicted as ``y``, computed block by block.

    Parameters
    ----------
    X : dask.array.Array ``[N, F]``
    y : dask.array.Array or array-like, ``[N]`` labels or ``[N, C]`` one-hot
        A dask array is split as X's rows are; anything else is read as a NumPy array
        (labels are small beside X) and split the same way.
    score_block : callable
        ``score_block(X_block, y_block)``: the block's accuracy (the model's ``score``
        on NumPy arrays, with its label checks; labels it does not know count as wrong).
    n_features : int
        The ``F`` the model was fitted with.

    Returns
    -------
    float
        Equal to the model's ``score`` on the same rows as NumPy arrays, computed with
        dask's current scheduler (a ``distributed.Client``'s, when one is active).
    """
    import dask

    X = _row_blocks(X, n_features)
    y = _split_like_rows(y, X)
    x_blocks = X.to_delayed()[:, 0]
    y_blocks = y.to_delayed().reshape(-1)  # one-hot y has a single column block (_split_like_rows)
    ends = np.cumsum(X.chunks[0]).tolist()
    ranges = list(zip([0] + ends[:-1], ends))
    hits_and_rows = dask.compute(*(dask.delayed(_block_hits)(score_block, x, t, i, rows)
                                   for i, (x, t, rows) in enumerate(zip(x_blocks, y_blocks, ranges))))
    hits = sum(h for h, _ in hits_and_rows)
    rows = sum(n for _, n in hits_and_rows)
    return hits / rows  # int / int, rounded once: the same float as np.mean over all rows


def _row_blocks(X, n_features, name="X"):
    """``X`` checked as the estimator checks a NumPy X, from its metadata alone, and with
    every row whole in one block."""
    if X.ndim != 2:
        raise InputError(f"{name} must be a 2-D array [N, F], got a dask array of shape {X.shape}")
    if X.dtype.kind == "c":
        raise InputError(f"{name} has dtype {X.dtype}: Complex data not supported, give real numbers")
    if X.dtype.kind not in "biufO":
        raise InputTypeError(f"{name} must be uint8 pixels or a float array, got a dask array of dtype {X.dtype}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InputError(f"{name} must be a non-empty 2-D array [N, F], got a dask array of shape {X.shape}")
    if X.shape[1] != n_features:
        raise InputError(f"{name} has {X.shape[1]} features, but the model is expecting {n_features} features "
                         f"as input")
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    return X


def _split_like_rows(y, X):
    """``y`` as a dask array whose row blocks match X's, with one column block."""
    import dask.array as da

    if y is None:
        raise InputError("score requires y, the labels of X's rows, but got None")
    if not is_dask_array(y):
        try:
            y = np.asarray(y)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InputTypeError(f"y must be an array of labels: {exc}") from exc
    if y.ndim not in (1, 2):
        raise InputError(f"y must be labels [N] or one-hot [N, C], got shape {y.shape}")
    if not (math.isnan(X.shape[0]) or math.isnan(y.shape[0])) and y.shape[0] != X.shape[0]:
        raise InputError(f"y has {y.shape[0]} rows, X has {X.shape[0]}")
    if is_dask_array(y) and y.chunks[0] == X.chunks[0]:
        return y.rechunk({1: -1}) if y.ndim == 2 else y
    if any(math.isnan(n) for n in X.chunks[0] + (y.chunks[0] if is_dask_array(y) else ())):
        raise InputError("X and y have blocks of unknown length that cannot be matched: call "
                         "compute_chunk_sizes() on them, or give y as a dask array chunked as X's rows")
    chunks = (X.chunks[0],) + ((-1,) if y.ndim == 2 else ())
    return y.rechunk(chunks) if is_dask_array(y) else da.from_array(y, chunks=chunks)


def _on_block(block, block_function, block_info=None):
    try:
        return block_function(block)
    except (InputError, InputTypeError) as exc:
        raise _in_block(exc, block_info[0]["chunk-location"][0] if block_info else None,
                        block_info[0]["array-location"][0] if block_info else None) from exc


def _block_hits(score_block, X, y, index, rows):
    """(rows predicted right, rows) of one block: its accuracy times its rows, which is
    the integer count once rounded (both are below 2**52)."""
    try:
        accuracy = score_block(X, y)
    except (InputError, InputTypeError) as exc:
        raise _in_block(exc, index, rows) from exc
    return round(accuracy * X.shape[0]), X.shape[0]


def _in_block(exc, index, rows):
    """``exc`` with the block it came from: the kernels number rows within a block."""
    where = "a block" if index is None else f"block {index}"
    if rows is not None and not any(math.isnan(r) for r in rows):
        where += f" (rows {int(rows[0])} to {int(rows[1]) - 1} of X)"
    return type(exc)(f"in dask array {where}; rows named here count from the block's first row: {exc}")
