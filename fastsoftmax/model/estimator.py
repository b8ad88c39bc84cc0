"""``SoftmaxRegression``: the tutorial's model as a scikit-learn estimator.

It computes nothing itself: its methods check their arguments and hand the work to the
training run (:mod:`.training`) or to the backend's kernels (inference). Its parameters
are the table in :mod:`.parameters`, checked in ``fit`` (scikit-learn's contract:
``__init__`` only stores them); its fitted state is one :class:`~.state.FittedState`.
"""

from __future__ import annotations

import copy

import numpy as np

from .. import _dask, validation
from ..kernels import get_backend
from . import labels, persistence, training
from .protocol import EstimatorProtocol, data_conversion_warning, not_fitted
from .state import FittedState, empty_history


class SoftmaxRegression(EstimatorProtocol):
    """Softmax regression ``p = softmax(x W + b)`` trained by minibatch SGD on mean cross-entropy.

    A scikit-learn classifier: ``clone``, pickling, ``GridSearchCV`` and ``Pipeline``
    work, and labels may be any sortable values (``classes_``). Nothing is checked
    until ``fit``, which checks every setting and argument before any work.

    Parameters
    ----------
    backend : {"cpu", "numpy", "cuda"}
        Kernel backend: ``"cpu"`` (Numba), ``"numpy"`` (the reference) or ``"cuda"``
        (numba-cuda; a GPU, or the simulator with ``NUMBA_ENABLE_CUDASIM=1``).
    learning_rate : float
        SGD step size (the tutorial's 0.5).
    batch_size : int
        Rows per step (the tutorial's 100). Larger than the data: every row, each step
        (with a warning).
    steps : int, optional
        SGD steps per ``fit``; default: the tutorial's 1000 unless ``epochs`` is given.
    epochs : float, optional
        Passes over the data per ``fit`` (``ceil(epochs * N / batch_size)`` steps).
    dtype : {"float32", "float64"}
        Dtype of the weights and of all arithmetic.
    seed : int or None
        Seeds the batch order; the same seed gives the same weights. None: a fresh order each fit.
    lr_decay : float
        Inverse-time decay per epoch: step ``s`` uses ``learning_rate / (1 + lr_decay * s / steps_per_epoch)``.
    weight_decay : float
        L2 penalty ``weight_decay / 2 * ||W||^2``.
    average : bool or int
        Averaged SGD (Polyak-Ruppert), spelled as scikit-learn's ``SGDClassifier`` spells it.
        ``False``: plain SGD. ``True``: predict with the mean of the weights after every step.
        An int ``n``: the mean of the weights after each step ``s`` (0-based, counted over the
        model's life) with ``s * batch_size >= n``, i.e. begin once ``n`` samples have been
        seen. ``n`` = half a run's samples (``steps * batch_size // 2``, what
        ``fastsoftmax train --average`` uses) averages its second half, which measured best.
    warm_start : bool
        ``False``: every ``fit`` starts from zero weights. ``True``: ``fit`` continues from the
        fitted weights, average, step count (for ``lr_decay``) and batch order.
    progress : bool or None
        Progress bar; ``None`` shows it only on a terminal, for long runs.

    Attributes
    ----------
    coef_ : ndarray ``[n_classes, n_features]``
        The weights predictions use: the averaged ones when ``average`` is on and
        averaging has begun.
    intercept_ : ndarray ``[n_classes]``
    classes_ : ndarray ``[n_classes]``
        The sorted labels; ``predict`` returns these.
    n_features_in_ : int
    n_iter_ : int
        SGD steps applied so far (also ``steps_done``).
    W : ndarray ``[n_features, n_classes]``
        ``coef_.T``, the tutorial's layout (``b`` is ``intercept_``).
    history : dict
        ``"loss"``: each step's mean batch loss; with ``validation_data``, ``"val_step"``,
        ``"epoch"`` and ``"val_accuracy"``: accuracy measured after each epoch and at the
        end of the fit, with the step and epoch it was measured at.

    See Also
    --------
    fastsoftmax.fit_many : train many of these at once, in one compiled pass.
    """

    _state = None  # a FittedState once fitted; a class attribute, so __init__ sets nothing else

    def __init__(self, *, backend="cpu", learning_rate=0.5, batch_size=100, steps=None, epochs=None,
                 dtype="float32", seed=0, lr_decay=0.0, weight_decay=0.0, average=False, warm_start=False,
                 progress=None):
        self.backend = backend
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.steps = steps
        self.epochs = epochs
        self.dtype = dtype
        self.seed = seed
        self.lr_decay = lr_decay
        self.weight_decay = weight_decay
        self.average = average
        self.warm_start = warm_start
        self.progress = progress

    # ------------------------------------------------------------------ training

    def fit(self, X, y, *, steps=None, epochs=None, shuffle=True, validation_data=None, classes=None,
            n_classes=None):
        """Train by minibatch SGD: from zero weights, or from the fitted ones with ``warm_start=True``.

        Parameters
        ----------
        X : array ``[N, F]``
            uint8 pixels (scaled by 1/255 inside the kernels) or numbers (used as given,
            in ``dtype``).
        y : array ``[N]`` of labels (any sortable values), or one-hot ``[N, C]``
        steps : int, optional
            SGD steps; overrides the constructor's ``steps``/``epochs``. Default: the
            tutorial's 1000 unless ``epochs`` is given.
        epochs : float, optional
            Passes over the data (``ceil(epochs * N / batch_size)`` steps).
        shuffle : bool
            Batches as the tutorial's ``next_batch`` draws them; ``False`` takes
            consecutive slices in order (wrapping around), for exact comparisons.
        validation_data : tuple (X_val, y_val), optional
            Accuracy on it is recorded after every epoch and at the end (``history``).
            Labels the model does not know count as wrong; if it knows none of them,
            the fit is refused.
        classes : array, optional
            All labels the model knows, when ``y`` may lack some; default: those in ``y``.
        n_classes : int, optional
            Short for ``classes=range(n_classes)``.

        Returns
        -------
        self

        Raises
        ------
        InputError, InputTypeError
            A setting or argument is wrong (checked before any work), or X holds NaN or
            infinity (found where a batch's loss goes non-finite, or in rows no batch drew).
        DivergenceError
            A step's loss was not finite though its rows are: the learning rate is too large.

        On any error the model is left exactly as it was before the call. An interrupt
        (Ctrl-C) keeps the steps completed so far, so a long run can still be saved.
        """
        training.fit([self], X, y, steps=steps, epochs=epochs, shuffle=shuffle, validation_data=validation_data,
                     classes=classes, n_classes=n_classes, owner=type(self).__name__)
        return self

    def partial_fit(self, X, y, classes=None):
        """One pass of SGD over ``(X, y)``, continuing from the fitted state.

        The way to train on data larger than memory: call it on one chunk at a time
        (e.g. slices of an ``np.memmap``). Each call shuffles its chunk and runs
        ``ceil(N / batch_size)`` steps; ``lr_decay`` counts epochs of that chunk's length.

        Parameters
        ----------
        X : array ``[N, F]``
        y : array ``[N]`` of labels
        classes : array, optional
            Every label the model will ever see; required on the first call (a chunk
            may lack some classes), and if given later, must equal ``classes_``.

        Returns
        -------
        self
        """
        job, X, y_idx = training.partial_fit_job(self, X, y, classes, owner=type(self).__name__)
        training.run([job], X, y_idx)
        return self

    # ------------------------------------------------------------------ fitted state

    def _fitted(self) -> FittedState:
        if self._state is None:
            raise not_fitted(f"this {type(self).__name__} is not fitted yet: call fit(), "
                             f"partial_fit() or load() first")
        return self._state

    def __sklearn_is_fitted__(self):
        return self._state is not None

    @property
    def W(self) -> np.ndarray:
        """``[n_features, n_classes]``: the weights predictions use (``coef_.T``)."""
        return self._fitted().prediction_weights()[0]

    @property
    def b(self) -> np.ndarray:
        """``[n_classes]``: the bias predictions use (``intercept_``)."""
        return self._fitted().prediction_weights()[1]

    @property
    def coef_(self) -> np.ndarray:
        return self.W.T

    @property
    def intercept_(self) -> np.ndarray:
        return self.b

    @property
    def classes_(self) -> np.ndarray:
        return self._fitted().classes

    @property
    def n_features_in_(self) -> int:
        return self._fitted().W.shape[0]

    @property
    def n_iter_(self) -> int:
        return self._fitted().steps

    @property
    def n_features(self) -> int:
        return self.n_features_in_

    @property
    def n_classes(self) -> int:
        return self._fitted().W.shape[1]

    @property
    def steps_done(self) -> int:
        """SGD steps applied so far (0 before ``fit``)."""
        return 0 if self._state is None else self._state.steps

    @property
    def history(self) -> dict:
        return empty_history() if self._state is None else self._state.history

    # ------------------------------------------------------------------ inference

    def _inference(self, X):
        state = self._fitted()
        X = validation.features(X, "X", state.W.dtype, state.W.shape[0], type(self).__name__)
        return get_backend(self.backend), X, state.prediction_weights()

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, ``[N, n_classes]`` in the model's dtype, columns in ``classes_`` order.
        A dask array gives a lazy dask array, computed block by block (``fastsoftmax._dask``)."""
        if _dask.is_dask_array(X):  # a copy: refitting before the result is computed does not change it
            return _dask.blockwise(X, copy.copy(self).predict_proba, self.n_features_in_, columns=self.n_classes,
                                   dtype=self.W.dtype)
        kernels, X, (W, b) = self._inference(X)
        return kernels.forward(X, W, b)

    def predict(self, X) -> np.ndarray:
        """Most probable label of each row, ``[N]``, taken from ``classes_``.
        A dask array gives a lazy dask array, computed block by block (``fastsoftmax._dask``)."""
        if _dask.is_dask_array(X):
            return _dask.blockwise(X, copy.copy(self).predict, self.n_features_in_, dtype=self.classes_.dtype)
        kernels, X, (W, b) = self._inference(X)
        indices = kernels.predict(X, W, b)
        classes = self._state.classes
        if classes.dtype == np.int64 and classes[0] == 0 and classes[-1] == classes.size - 1:
            return indices
        return classes[indices]

    def score(self, X, y) -> float:
        """Accuracy: the fraction of rows predicted as ``y`` (labels, or one-hot rows).
        Labels the model does not know count as wrong. A dask array X is scored block by block."""
        if _dask.is_dask_array(X):
            return _dask.accuracy(X, y, copy.copy(self).score, self.n_features_in_)
        kernels, X, (W, b) = self._inference(X)
        classes = self._state.classes
        y = validation.targets(y, X.shape[0], "y", one_hot_width=classes.size,
                               conversion_warning=data_conversion_warning())
        indices = kernels.predict(X, W, b)
        return float(np.mean(indices == labels.encode(y, classes, "y", unknown=-1)))

    # ------------------------------------------------------------------ files

    def save(self, path):
        """Write the model to ``path`` (``.npz``, atomically); returns the path written.

        The file holds the plain SGD weights, the running average when there is one
        (so training can continue exactly), ``classes_`` and every setting.
        """
        return persistence.save(self, self._fitted(), path)

    @classmethod
    def load(cls, path, *, backend=None):
        """Read a model written by :meth:`save`; ``backend`` overrides the saved one."""
        return persistence.load(cls, path, backend)
