"""``BatchOrder``: which rows each batch takes, as the TensorFlow tutorial's ``next_batch`` drew them.

One class serves ``DataSet.next_batch`` (a batch at a time) and the estimator's training
runs (a compiled call's batches at once): consecutive ``next_batch`` batches are
consecutive slices of the epochs' orders laid end to end, so slicing that stream gives
exactly the batches of ``next_batch``, without a Python call per batch.
"""

from __future__ import annotations

import copy

import numpy as np

from .. import validation
from ..errors import InputError


class BatchOrder:
    """The row indices of batch after batch over ``num_examples`` rows, with the tutorial's semantics.

    The first batch shuffles (with ``shuffle=True``); a batch that runs past the end of
    an epoch takes the rows left in it, reshuffles, and fills up from the new order.
    With ``shuffle=False`` the rows come in order, wrapping around.

    Parameters
    ----------
    num_examples : int
        Rows to draw from.
    rng : numpy.random.Generator
        The order's own generator (never the global NumPy one).

    Attributes
    ----------
    num_examples : int
    epochs_completed : int
        Epochs whose last row has been handed out and that a later batch went past.

    A pickled ``BatchOrder`` holds its generator's state before the current epoch's order
    was drawn, not the order itself (``num_examples`` indices): that order is drawn again
    when it is unpickled.
    """

    def __init__(self, num_examples: int, rng: np.random.Generator):
        self.num_examples = validation.count(num_examples, "num_examples", minimum=0)
        self.epochs_completed = 0
        self._rng = rng
        self._order = None       # the current epoch's order, None before the first batch
        self._index = 0          # the next row of it to hand out
        self._drawn_from = None  # the generator's state before the current order was drawn; None: in order

    def next_batch(self, batch_size: int, shuffle: bool = True) -> np.ndarray:
        """The row indices (int64) of the next batch of ``batch_size`` rows, 1 to ``num_examples``."""
        batch_size = validation.count(batch_size, "batch_size")
        if batch_size > self.num_examples:
            raise InputError(f"batch_size must be in [1, {self.num_examples}] (the number of examples), "
                             f"got {batch_size}")
        return self.rows(batch_size, shuffle)

    def batches(self, batch_size: int, steps: int, shuffle: bool = True) -> np.ndarray:
        """The row indices of the next ``steps`` batches, concatenated (int64 ``[steps * batch_size]``)."""
        steps = validation.count(steps, "steps", minimum=0)
        if steps == 0:
            return np.empty(0, np.int64)
        first = self.next_batch(batch_size, shuffle)  # checks batch_size
        return np.concatenate((first, self.rows((steps - 1) * batch_size, shuffle)))

    def rows(self, count: int, shuffle: bool = True) -> np.ndarray:
        """The next ``count`` row indices (int64), whatever batches they make up."""
        validation.flag(shuffle, "shuffle")
        if count and not self.num_examples:
            raise InputError(f"cannot draw {count} rows from no examples")
        parts = []
        while count:
            if self._order is None or self._index == self.num_examples:
                self._next_epoch(shuffle)
            part = self._order[self._index:self._index + count]
            parts.append(part)
            self._index += part.size
            count -= part.size
        if not parts:
            return np.empty(0, np.int64)
        return (np.concatenate(parts) if len(parts) > 1 else parts[0]).astype(np.int64, copy=False)

    def _next_epoch(self, shuffle):
        if self._order is not None:
            self.epochs_completed += 1
        if shuffle:
            self._drawn_from = self._rng.bit_generator.state
            self._order = self._rng.permutation(self.num_examples)
        elif self._order is None:
            self._order = np.arange(self.num_examples)
        self._index = 0  # without shuffling, a later epoch repeats the current order

    def copy(self) -> BatchOrder:
        """An independent copy that continues with the same batches (the current epoch's order is
        shared: an order is replaced, never changed in place)."""
        other = object.__new__(BatchOrder)
        other.__dict__.update(self.__dict__)  # not copy.copy: that goes through __setstate__, which redraws
        other._rng = copy.deepcopy(self._rng)
        return other

    def __getstate__(self):
        return {**self.__dict__, "_order": None if self._order is None else "redraw"}

    def __setstate__(self, state):
        if "n" in state:  # written by fastsoftmax 0.1.0's estimator (its _BatchStream), same meaning
            state = {"num_examples": state.pop("n"), "epochs_completed": 0, **state}
        self.__dict__.update(state)
        if self._order is None:
            return
        if self._drawn_from is None:
            self._order = np.arange(self.num_examples)
            return
        rng = np.random.Generator(getattr(np.random, self._drawn_from["bit_generator"])())
        rng.bit_generator.state = self._drawn_from
        self._order = rng.permutation(self.num_examples)
