"""What a fitted model holds: weights, running average, step count, classes, history, batch order.

One immutable :class:`FittedState` replaced as a whole, so no error or interrupt leaves a
model half updated: training builds the next state beside the current one and swaps it in.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..data.batches import BatchOrder
from ..errors import InputError


class FittedState(NamedTuple):
    """Everything ``fit`` learns. (Its fields and order are those of fastsoftmax 0.1.0's ``_Fitted``,
    which pickles of that release name.)"""

    W: np.ndarray               # [F, C] plain SGD weights (what training continues from)
    b: np.ndarray               # [C]
    W_avg: np.ndarray | None    # [F, C] running average of the weights, or None
    b_avg: np.ndarray | None    # [C]
    average_count: int          # snapshots in the average (0: prediction uses W, b)
    steps: int                  # SGD steps applied
    classes: np.ndarray         # [C] sorted labels
    history: dict
    stream: BatchOrder | None   # the batch order, continued by a warm-started fit

    def prediction_weights(self):
        """(W, b) that predictions use: the running average once it holds a snapshot, else the SGD weights."""
        if self.average_count:
            return self.W_avg, self.b_avg
        return self.W, self.b


def empty_history() -> dict:
    return {"loss": [], "val_step": [], "epoch": [], "val_accuracy": []}


def batch_order(seed, steps_done, n_rows) -> BatchOrder:
    """A new batch order: a fresh fit's from ``default_rng(seed)``; a continuation without the old order
    (after ``load`` or ``partial_fit``) from a stream of its own, ``default_rng([seed, steps_done])``."""
    if seed is None:
        rng = np.random.default_rng()
    else:
        rng = np.random.default_rng(seed if steps_done == 0 else [seed, steps_done])
    return BatchOrder(n_rows, rng)


def fresh(n_features, classes, dtype, averaging, stream) -> FittedState:
    """Zero weights (and a zero running average when ``averaging``), no steps yet."""
    shape = (n_features, classes.size)
    averages = (np.zeros(shape, dtype), np.zeros(classes.size, dtype)) if averaging else (None, None)
    return FittedState(np.zeros(shape, dtype), np.zeros(classes.size, dtype), *averages, 0, 0, classes,
                       empty_history(), stream)


def continued(previous: FittedState, dtype, averaging, stream) -> FittedState:
    """The state a warm start trains from: the previous one's, history copied (the previous state stays
    untouched until the new one is committed)."""
    if previous.W.dtype != dtype:
        raise InputError(f"dtype={str(dtype)!r} differs from the fitted model's {previous.W.dtype}")
    W_avg, b_avg, count = previous.W_avg, previous.b_avg, previous.average_count
    if not averaging:
        W_avg = b_avg = None
        count = 0
    elif W_avg is None:
        W_avg, b_avg = np.zeros_like(previous.W), np.zeros_like(previous.b)
    history = {key: list(values) for key, values in previous.history.items()}
    return previous._replace(W_avg=W_avg, b_avg=b_avg, average_count=count, history=history, stream=stream)
