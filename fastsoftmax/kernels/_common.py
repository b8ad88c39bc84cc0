"""What every backend shares beyond its argument checks: verdicts on results, the running
average's step weights, and ``xent_sgd_step`` and ``train_steps`` built on other operations.

Float inputs are not scanned for NaN before the kernels run: that would read X a
second time (as long as the kernel itself, for inference). A non-finite value in a
row makes that row's logits non-finite, so the kernels flag such rows and the
wrappers raise one of the errors here instead of returning a result.
"""

from __future__ import annotations

import numpy as np

from .. import validation
from ..errors import DivergenceError, InputError
from ..validation import Average, Averages, Run


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


def many_average_weights(average, steps, dtype):
    """Each model's weight of each step's snapshot in its running mean, ``[M, steps]`` (see :func:`average_weights`)."""
    return np.stack([average_weights(Average(None, None, int(start), int(count)), steps, dtype)
                     for start, count in zip(average.start.tolist(), average.count.tolist())])


def one_step(train_steps, X, y, W, b, learning_rate, weight_decay):
    """``xent_sgd_step`` for any backend: its ``train_steps`` over the whole of X as one batch.

    X may also be a backend's staged stand-in (an object with a 2-D ``shape``, such as
    the CUDA backend's ``OnDevice``), which that backend's ``train_steps`` checks.
    A loss that is not finite raises :class:`InputError`, the weights untouched; an
    update that overflows W's dtype raises :class:`DivergenceError`, the weights restored.
    """
    F, _, dtype = validation.weights(W, b)
    learning_rate = validation.number(learning_rate, "learning_rate", dtype)
    staged = not isinstance(X, np.ndarray) and len(getattr(X, "shape", ())) == 2
    n = X.shape[0] if staged else validation.inputs(X, F, dtype).shape[0]
    before = W.copy(), b.copy()  # [F, C]: a copy is nothing beside the step itself
    try:
        _, losses = train_steps(X, y, W, b, np.arange(n), n, learning_rate, weight_decay)
    except DivergenceError:  # train_steps' verdict on an update that overflowed (see finished)
        W[...], b[...] = before
        raise DivergenceError(f"the update with learning_rate {learning_rate!r} overflows {dtype}: "
                              "W and b restored; use a smaller learning_rate") from None
    return finite_loss(float(losses[0]), dtype)


def steps_call(X, y, W, b, order, batch_size, learning_rate, weight_decay, losses, average):
    """Every argument of a host ``train_steps`` call checked, as ``train_many``'s for one model:
    ``(X contiguous, W [1, F, C], b [1, C], Run, losses [steps])``, views of the caller's arrays."""
    F, C, dtype = validation.weights(W, b)
    X = validation.inputs(X, F, dtype)
    y, order, steps, rates, losses = validation.run_arguments(X, y, W, b, C, order, batch_size, learning_rate, losses,
                                                              weight_decay)
    average = validation.averaging(average, W, b)
    return (X, *as_one_of_many(W, b, y, order, steps, rates, weight_decay, losses, average), losses)


def as_one_of_many(W, b, y, order, steps, rates, weight_decay, losses, average) -> tuple:
    """``train_steps``' checked arguments as ``train_many``'s for one model; returns ``(W [1, F, C], b [1, C], Run)``.

    Views, not copies: the updates reach the caller's W, b, losses and average.
    """
    averages = None if average is None else Averages(average.W[None], average.b[None], np.array([average.start]),
                                                     np.array([average.count]))
    run = Run(y, order[None], np.zeros(1, np.int64), steps, rates[None], np.array([float(weight_decay)]),
              losses[None], averages)
    return W[None], b[None], run


def _nonfinite_message(row, dtype):
    return (f"X row {row} gives non-finite logits: it holds NaN or infinity, or values so large "
            f"that X @ W overflows {dtype}")


def finite_probabilities(out, dtype):
    """Raise unless every row of a forward result is finite."""
    if not np.isfinite(out).all():
        raise InputError(_nonfinite_message(int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0]), dtype))
    return out


def finite_labels(out, dtype):
    """Raise if a predict kernel flagged a row (label -1: its logits were not finite); ``out`` is
    ``[N]``, or ``[M, N]`` for M models."""
    if out.size and out.min() < 0:
        raise InputError(_nonfinite_message(int(np.nonzero(out < 0)[-1][0]), dtype))
    return out


def finished(done, losses, W, b):
    """``train_steps``' result ``(done, losses)``, unless its updates left W or b non-finite.

    A step is never applied when its loss is not finite, but a finite loss can still
    come with an update that overflows W's dtype (huge inputs times a large rate): on
    the last step nothing would notice. Raises :class:`DivergenceError` then.
    """
    if not (np.isfinite(validation.magnitude(W)) and np.isfinite(validation.magnitude(b))):
        raise DivergenceError(f"the update of step {int(done) - 1} overflowed {W.dtype}: W and b now hold infinity "
                              "or NaN; use a smaller learning_rate or smaller inputs")
    return int(done), losses


def finished_many(done, losses, W, b):
    """``train_many``'s result ``(done, losses)``, unless updates left some models' W or b non-finite.

    Then it raises :class:`DivergenceError` naming those models, with the result attached
    (``models``, ``done``, ``losses``): every model's arrays hold what its steps made of
    them, and the others' are complete, for a caller that keeps them.
    """
    bad = [m for m in range(W.shape[0])
           if not (np.isfinite(validation.magnitude(W[m])) and np.isfinite(validation.magnitude(b[m])))]
    if bad:
        which = ", ".join(f"model {m}'s update of step {int(done[m]) - 1}" for m in bad)
        error = DivergenceError(f"{which} overflowed {W.dtype}: W and b now hold infinity or NaN; use a smaller "
                                "learning_rate or smaller inputs")
        error.models, error.done, error.losses = bad, done, losses
        raise error
    return done, losses


def finite_loss(loss, dtype):
    """Raise unless a loss is finite."""
    if not np.isfinite(loss):
        raise InputError(f"the loss is {loss}: X holds NaN or infinity, or values so large that "
                         f"X @ W overflows {dtype}")
    return loss
