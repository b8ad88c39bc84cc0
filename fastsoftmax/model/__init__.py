"""The estimator layer: :class:`SoftmaxRegression`, and :func:`fit_many` to train many at once.

| module | its one job |
|---|---|
| ``estimator.py`` | the estimator: its parameters and short public methods |
| ``parameters.py`` | the table of parameters: defaults, checks, help; run lengths |
| ``protocol.py`` | scikit-learn's estimator protocol, without importing scikit-learn |
| ``labels.py`` | classes and labels encoded as class indices |
| ``state.py`` | the fitted state, replaced whole |
| ``training.py`` | the training run: chunks of compiled steps, committed one by one |
| ``many.py`` | ``fit_many``: many estimators in one pass |
| ``persistence.py`` | an estimator to and from a model file |
"""

from ..data.batches import BatchOrder
from ..errors import NotFittedError
from .estimator import SoftmaxRegression
from .many import fit_many
from .state import FittedState

# Pickles written by fastsoftmax 0.1.0 name these classes of its single-module estimator.
_Fitted = FittedState
_BatchStream = BatchOrder

__all__ = ["SoftmaxRegression", "NotFittedError", "fit_many"]
