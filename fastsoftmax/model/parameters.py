"""The estimator's parameters: one table of names, defaults, checks and descriptions.

Everything that reads a parameter reads it here: the estimator's ``fit`` (every value
checked before any work, scikit-learn's contract), model files (which parameters are
saved), the command line (help texts and defaults) and the tests that keep the table
and ``SoftmaxRegression.__init__`` in agreement. A new hyper-parameter is one entry
here, its keyword in ``SoftmaxRegression.__init__``, and the kernels that use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import validation
from ..errors import InputError, InputTypeError
from ..kernels import get_backend

#: The tutorial's run length, when neither steps nor epochs is given.
TUTORIAL_STEPS = 1000
#: Samples one run may see: step and sample counts (averaging, the batch order) are int64.
MAX_SAMPLES = 2**62


def _backend(value):
    if not isinstance(value, str):
        raise InputTypeError(f"backend must be a name ('cpu', 'numpy' or 'cuda'), got {validation.short(value)}")
    return value


def _optional(check):
    return lambda value: None if value is None else check(value)


def _average(value):
    """``average`` as the samples seen before averaging begins (0: from the first step), or None when off."""
    if isinstance(value, (bool, np.bool_)):
        return 0 if value else None
    if not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(f"average must be False, True or a number of samples >= 0, got {validation.short(value)}")
    return int(value) or None  # 0 is off, as in scikit-learn's SGDClassifier


@dataclass(frozen=True)
class Parameter:
    """One constructor argument of :class:`~fastsoftmax.SoftmaxRegression`."""

    name: str
    default: object
    check: Callable  #: the value as fit uses it, or the library's error naming the parameter
    help: str        #: one line, shown by ``fastsoftmax train --help`` where the CLI offers it
    saved: bool = True  #: kept in model files


PARAMETERS = (
    Parameter("backend", "cpu", _backend,
              "kernels to train and predict on: cpu (Numba), numpy (the reference) or cuda (numba-cuda)"),
    Parameter("learning_rate", 0.5, lambda v: validation.number(v, "learning_rate", positive=True),
              "SGD step size"),
    Parameter("batch_size", 100, lambda v: validation.count(v, "batch_size"), "rows per SGD step"),
    Parameter("steps", None, _optional(lambda v: validation.count(v, "steps")),
              "SGD steps per fit (default: the tutorial's 1000 unless epochs is given)"),
    Parameter("epochs", None, _optional(lambda v: validation.number(v, "epochs", positive=True)),
              "passes over the training data per fit"),
    Parameter("dtype", "float32", validation.float_dtype, "dtype of the weights and of all arithmetic"),
    Parameter("seed", 0, validation.seed, "seeds the batch order: the same seed gives the same weights"),
    Parameter("lr_decay", 0.0, lambda v: validation.number(v, "lr_decay"),
              "inverse-time decay of the learning rate per epoch"),
    Parameter("weight_decay", 0.0, lambda v: validation.number(v, "weight_decay"), "L2 penalty on W"),
    Parameter("average", False, _average,
              "averaged SGD: predict with the mean of the weights after each step once this many samples were seen"),
    Parameter("warm_start", False, lambda v: validation.flag(v, "warm_start"),
              "continue from the fitted weights, step count and batch order"),
    Parameter("progress", None, _optional(lambda v: validation.flag(v, "progress")),
              "show a progress bar (None: on a terminal, for long runs)", saved=False),
)
BY_NAME = {p.name: p for p in PARAMETERS}


class Settings(NamedTuple):
    """Every parameter of an estimator, checked, in the form training uses."""

    backend: str
    learning_rate: float
    batch_size: int
    steps: int | None
    epochs: float | None
    dtype: np.dtype
    seed: int | None
    lr_decay: float
    weight_decay: float
    average: int | None  # samples seen before averaging begins; None: off
    warm_start: bool
    progress: bool | None

    @property
    def kernels(self):
        """The backend's kernel module (:func:`fastsoftmax.kernels.get_backend`)."""
        return get_backend(self.backend)


def checked(params: dict, resolve_backend: bool = True) -> Settings:
    """``params`` (``estimator.get_params()``) checked, each by its entry in :data:`PARAMETERS`.

    With ``resolve_backend``, the backend is also looked up, so a backend that cannot run
    here is refused now, before any work.
    """
    if resolve_backend:  # first: a backend that cannot run here makes every other answer moot
        get_backend(_backend(params["backend"]))
    return Settings(**{p.name: p.check(params[p.name]) for p in PARAMETERS})


def saved(params: dict) -> dict:
    """The parameters a model file keeps, as JSON values (checked first)."""
    settings = checked(params, resolve_backend=False)
    values = {p.name: getattr(settings, p.name) for p in PARAMETERS if p.saved}
    values["dtype"] = str(settings.dtype)
    average = params["average"]  # as given (True, or a sample count), not as training uses it
    values["average"] = bool(average) if isinstance(average, (bool, np.bool_)) else int(average)
    return values


def run_length(steps, epochs, settings: Settings | None, n_rows: int, batch_size: int) -> int:
    """Steps a fit runs: ``steps`` or ``epochs`` given to it, else the estimator's (``settings``, when
    given), else the tutorial's 1000."""
    if steps is None and epochs is None and settings is not None:
        steps, epochs = settings.steps, settings.epochs
    if steps is not None and epochs is not None:
        raise InputError(f"give steps or epochs, not both (got steps={steps!r}, epochs={epochs!r})")
    if epochs is not None:
        epochs = validation.number(epochs, "epochs", positive=True)
        total = np.ceil(epochs * n_rows / min(batch_size, n_rows))  # a float: inf stays comparable
        if total * batch_size > MAX_SAMPLES:
            raise InputError(f"epochs={epochs!r} means {total:.3g} steps of {batch_size} rows, more than the "
                             f"{MAX_SAMPLES} samples one run can count")
        return int(total)
    steps = validation.count(TUTORIAL_STEPS if steps is None else steps, "steps")
    if steps * batch_size > MAX_SAMPLES:
        raise InputError(f"steps={steps!r} of {batch_size} rows is more than the {MAX_SAMPLES} samples one run "
                         f"can count")
    return steps
