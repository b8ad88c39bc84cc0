"""``SoftmaxRegression``: the tutorial's model as a scikit-learn estimator.

Sits on the kernel layer (:func:`fastsoftmax.kernels.get_backend`) and computes
nothing itself. It follows scikit-learn's estimator contract without depending on
scikit-learn: ``__init__`` only stores its arguments, everything is checked in
``fit``, fitted state ends in ``_``, and ``get_params``/``set_params``/
``__sklearn_tags__`` are implemented here (scikit-learn's own ``check_estimator``
runs in the tests).
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import sys
import warnings
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from . import _dask
from ._version import __version__
from .errors import ConvergenceWarning, DivergenceError, InputError, InputTypeError, ModelFileError, NotFittedError
from .kernels import get_backend
from .modelfile import load_model, save_model

log = logging.getLogger(__name__)

#: Steps per compiled call at most: the progress bar and Ctrl-C act between calls.
MAX_STEPS_PER_CALL = 1000
TUTORIAL_STEPS = 1000
#: Samples one run may see: step and sample counts (averaging, the batch order) are int64.
MAX_SAMPLES = 2**62


@functools.cache
def _not_fitted_class(sklearn_class):
    return type("_SklearnNotFittedError", (NotFittedError, sklearn_class), {"__module__": __name__})


def _not_fitted(message):
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")
    if sklearn_exceptions is None:
        return NotFittedError(message)
    cls = _not_fitted_class(sklearn_exceptions.NotFittedError)
    globals()[cls.__name__] = cls  # picklable by name
    return cls(message)


class _Fitted(NamedTuple):
    """Everything ``fit`` learns, replaced as one object so that no error or interrupt
    leaves it half updated."""

    W: np.ndarray               # [F, C] plain SGD weights (what training continues from)
    b: np.ndarray               # [C]
    W_avg: np.ndarray | None    # [F, C] running average of the weights, or None
    b_avg: np.ndarray | None    # [C]
    average_count: int          # snapshots in the average (0: prediction uses W, b)
    steps: int                  # SGD steps applied
    classes: np.ndarray         # [C] sorted labels
    history: dict
    stream: _BatchStream | None  # the batch order, continued by a warm-started fit


class _Settings(NamedTuple):
    kernels: object
    learning_rate: float
    batch_size: int
    dtype: np.dtype
    seed: int | None
    lr_decay: float
    weight_decay: float
    average: int | None         # samples seen before averaging begins; None: off
    warm_start: bool


class SoftmaxRegression:
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
    """

    _state = None  # a _Fitted once fitted; a class attribute, so __init__ sets nothing else

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

    # ------------------------------------------------------------------ scikit-learn protocol

    @classmethod
    def _get_param_names(cls):
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    def get_params(self, deep=True):
        """The constructor's arguments, as given (``deep`` is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set constructor arguments; checked, like all settings, by the next ``fit``."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise InputError(f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                                 f"Valid parameters are: {valid!r}.")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not (type(v) is type(defaults[k]) and v == defaults[k])]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_is_fitted__(self):
        return self._state is not None

    def __sklearn_tags__(self):
        """scikit-learn's tags (only scikit-learn calls this, so only it imports scikit-learn)."""
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(multi_class=True), input_tags=InputTags(two_d_array=True))

    # ------------------------------------------------------------------ fitted state

    def _fitted(self) -> _Fitted:
        if self._state is None:
            raise _not_fitted(f"this {type(self).__name__} is not fitted yet: call fit(), "
                              f"partial_fit() or load() first")
        return self._state

    def _prediction_weights(self, state=None):
        state = state or self._fitted()
        if state.average_count:
            return state.W_avg, state.b_avg
        return state.W, state.b

    @property
    def W(self) -> np.ndarray:
        """``[n_features, n_classes]``: the weights predictions use (``coef_.T``)."""
        return self._prediction_weights()[0]

    @property
    def b(self) -> np.ndarray:
        """``[n_classes]``: the bias predictions use (``intercept_``)."""
        return self._prediction_weights()[1]

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
        return _empty_history() if self._state is None else self._state.history

    # ------------------------------------------------------------------ settings

    def _settings(self, resolve_backend=True) -> _Settings:
        """Every constructor argument checked (scikit-learn's contract: here, not in ``__init__``)."""
        dtype = _float_dtype(self.dtype)
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise InputError(f"seed must be None or an integer >= 0, got {seed!r}")
        average = self.average
        if not isinstance(average, (bool, np.bool_, int, np.integer)) or average < 0:
            raise InputError(f"average must be False, True or a number of samples >= 0, got {average!r}")
        if isinstance(average, (bool, np.bool_)):
            average = 0 if average else None
        else:
            average = int(average) or None  # 0 is off, as in scikit-learn
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise InputTypeError(f"warm_start must be True or False, got {_short(self.warm_start)}")
        if self.progress is not None and not isinstance(self.progress, (bool, np.bool_)):
            raise InputTypeError(f"progress must be None, True or False, got {self.progress!r}")
        if self.steps is not None:
            _positive_int("steps", self.steps)
        if self.epochs is not None:
            _positive_float("epochs", self.epochs)
        if not isinstance(self.backend, str):
            raise InputTypeError(f"backend must be a name ('cpu', 'numpy' or 'cuda'), got {self.backend!r}")
        return _Settings(
            kernels=get_backend(self.backend) if resolve_backend else None,
            learning_rate=_positive_float("learning_rate", self.learning_rate),
            batch_size=_positive_int("batch_size", self.batch_size),
            dtype=dtype, seed=None if seed is None else int(seed),
            lr_decay=_nonnegative_float("lr_decay", self.lr_decay),
            weight_decay=_nonnegative_float("weight_decay", self.weight_decay),
            average=average, warm_start=bool(self.warm_start))

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
        cfg = self._settings()
        X = _check_X(X, "X", cfg.dtype)
        classes = _given_classes(classes, n_classes)
        y = _check_y(y, X.shape[0], "y")
        classes = _classes_of(y) if classes is None else classes
        y_idx = _encode(y, classes, "y")
        previous = self._state
        warm = cfg.warm_start and previous is not None
        if warm:
            _same_model(previous, X.shape[1], classes, "warm_start=True: X and y")
        total = _step_count(steps, epochs, self.steps, self.epochs, X.shape[0], cfg.batch_size)
        validation = _check_validation(validation_data, X.shape[1], cfg.dtype, classes)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise InputTypeError(f"shuffle must be True or False, got {shuffle!r}")
        batch = _batch_for(cfg.batch_size, X.shape[0])

        if warm:
            stream = previous.stream
            stream = (stream.copy() if stream is not None and stream.n == X.shape[0]
                      else _BatchStream(X.shape[0], _rng(cfg.seed, previous.steps)))
            start = _continue(previous, cfg, stream)
        else:
            stream = _BatchStream(X.shape[0], _rng(cfg.seed, 0))
            start = _fresh(X.shape[1], classes, cfg, stream)
        steps_per_epoch = max(1, X.shape[0] // batch)
        self._train(cfg, X, y_idx, start, total, batch, steps_per_epoch, bool(shuffle), validation, previous)
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
        cfg = self._settings()
        X = _check_X(X, "X", cfg.dtype)
        given = _given_classes(classes, None)
        y = _check_y(y, X.shape[0], "y")
        previous = self._state
        if previous is None:
            if given is None:
                raise InputError("classes must be given on the first call to partial_fit: every label "
                                 "the model will see, e.g. classes=np.unique(all_labels)")
            classes = given
        else:
            classes = previous.classes
            if given is not None and not _equal_labels(given, classes):
                raise InputError(f"classes={given!r} differs from the classes the model was fitted with, "
                                 f"{classes!r}")
            _same_model(previous, X.shape[1], classes, "partial_fit")
        y_idx = _encode(y, classes, "y")
        batch = _batch_for(cfg.batch_size, X.shape[0])
        total = -(-X.shape[0] // batch)
        stream = _BatchStream(X.shape[0], _rng(cfg.seed, 0 if previous is None else previous.steps))
        start = (_fresh(X.shape[1], classes, cfg, stream) if previous is None
                 else _continue(previous, cfg, stream))
        self._train(cfg, X, y_idx, start, total, batch, max(1, X.shape[0] // batch), True, None, previous)
        self._state = self._state._replace(stream=None)  # a chunk's order is not continued
        return self

    def _train(self, cfg, X, y, state, total, batch, steps_per_epoch, shuffle, validation, previous):
        """Run ``total`` steps from ``state``; commit after each compiled call; on an error,
        put ``previous`` back."""
        kernels = cfg.kernels
        stage = getattr(kernels, "stage", None)
        data = stage(X, y) if stage else (X, y)
        average_from = None if cfg.average is None else -(-cfg.average // batch)  # first averaged step
        # Rows that can hold NaN and that no batch drew are checked at the end.
        unseen = np.ones(X.shape[0], bool) if X.dtype.kind == "f" else None
        bar = tqdm(total=total, unit="step", disable=not self._show_progress(total), leave=False)
        try:
            done = 0
            while done < total:
                step = state.steps
                chunk = min(MAX_STEPS_PER_CALL, total - done)
                if validation is not None:
                    chunk = min(chunk, steps_per_epoch - step % steps_per_epoch)
                order = state.stream.take(chunk * batch, shuffle)
                state = self._train_chunk(kernels, cfg, X, data, state, order, chunk, batch, steps_per_epoch,
                                          average_from)
                if unseen is not None:
                    unseen[order] = False
                    if not unseen.any():
                        unseen = None
                self._state = state  # one assignment: an interrupt never splits the state
                done += chunk
                bar.update(chunk)
                if validation is not None and (state.steps % steps_per_epoch == 0 or done == total):
                    self._record_validation(kernels, state, validation, steps_per_epoch)
            if unseen is not None:
                _refuse_nonfinite_rows(X, np.flatnonzero(unseen))
            self._warn_if_not_learning(state)
        except Exception:
            self._state = previous
            raise
        finally:
            bar.close()

    def _train_chunk(self, kernels, cfg, X, data, state, order, chunk, batch, steps_per_epoch, average_from):
        W, b = state.W.copy(), state.b.copy()
        first = state.steps
        rates = cfg.learning_rate / (1.0 + cfg.lr_decay * (first + np.arange(chunk)) / steps_per_epoch)
        W_avg, b_avg, count = state.W_avg, state.b_avg, state.average_count
        average = None
        if average_from is not None and average_from - first < chunk:
            W_avg, b_avg = W_avg.copy(), b_avg.copy()
            average = (W_avg, b_avg, max(0, average_from - first), count)
        try:
            done, losses = kernels.train_steps(*data, W, b, order, batch, rates, cfg.weight_decay,
                                               **({} if average is None else {"average": average}))
        except DivergenceError as exc:  # an update overflowed: W and b here are this call's copies
            raise DivergenceError(
                f"training diverged in steps {first}-{first + chunk - 1} ({exc}); the model is left as it was "
                f"before this fit. Try a smaller learning_rate, or scale the inputs.") from exc
        if average is not None:
            count += max(0, done - average[2])
        if done < chunk:
            rows = order[done * batch:(done + 1) * batch]
            if X.dtype.kind == "f":
                _refuse_nonfinite_rows(X, rows)
            raise DivergenceError(
                f"training diverged at step {first + done}: the loss became {losses[done]} "
                f"(learning rate {rates[done]:g}); the model is left as it was before this fit. "
                f"Try a smaller learning_rate, or scale the inputs.")
        history = state.history
        history["loss"].extend(losses.tolist())
        return state._replace(W=W, b=b, W_avg=W_avg, b_avg=b_avg, average_count=count, steps=first + chunk)

    def _record_validation(self, kernels, state, validation, steps_per_epoch):
        X_val, y_val = validation
        history = state.history
        if history["val_step"] and history["val_step"][-1] == state.steps:
            return
        try:
            predicted = kernels.predict(X_val, *self._prediction_weights(state))
        except InputError as exc:
            raise InputError(f"validation_data: {exc}") from exc
        accuracy = float(np.mean(predicted == y_val))
        history["val_step"].append(state.steps)
        history["epoch"].append(state.steps / steps_per_epoch)
        history["val_accuracy"].append(accuracy)
        log.info("step %d: validation accuracy %.4f", state.steps, accuracy)

    def _warn_if_not_learning(self, state):
        """Zero weights give a loss of log(C); ending far above it means the steps overshoot."""
        recent = state.history["loss"][-100:]
        start = float(np.log(max(2, state.classes.size)))
        if recent and np.mean(recent) > 10 * start:
            warnings.warn(
                f"training did not converge: the mean loss of the last {len(recent)} steps is "
                f"{np.mean(recent):.3g}, against {start:.3g} at zero weights. Try a smaller learning_rate, "
                f"or scale the inputs (pixels are scaled to [0, 1]; float inputs are used as given).",
                ConvergenceWarning, stacklevel=4)

    def _show_progress(self, total):
        if self.progress is None:
            return total >= 2 * MAX_STEPS_PER_CALL and sys.stderr.isatty()
        return bool(self.progress)

    # ------------------------------------------------------------------ inference

    def _inference(self, X):
        state = self._fitted()
        kernels = get_backend(self.backend)
        X = _check_X(X, "X", state.W.dtype, state.W.shape[0], type(self).__name__)
        return kernels, X, self._prediction_weights(state)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, ``[N, n_classes]`` in the model's dtype, columns in ``classes_`` order.
        A dask array gives a lazy dask array, computed block by block (``fastsoftmax._dask``)."""
        if _dask.is_dask_array(X):  # a copy: refitting before the result is computed does not change it
            return _dask.blockwise(X, copy.copy(self).predict_proba, self.n_features_in_, columns=self.n_classes,
                                   dtype=self.W.dtype)
        kernels, X, (W, b) = self._inference(X)
        return kernels.forward(X, W, b)

    def _predict_indices(self, X):
        kernels, X, (W, b) = self._inference(X)
        return kernels.predict(X, W, b)

    def predict(self, X) -> np.ndarray:
        """Most probable label of each row, ``[N]``, taken from ``classes_``.
        A dask array gives a lazy dask array, computed block by block (``fastsoftmax._dask``)."""
        if _dask.is_dask_array(X):
            return _dask.blockwise(X, copy.copy(self).predict, self.n_features_in_, dtype=self.classes_.dtype)
        indices = self._predict_indices(X)
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
        y = _check_y(y, X.shape[0], "y", one_hot_width=classes.size)
        indices = kernels.predict(X, W, b)
        return float(np.mean(indices == _encode(y, classes, "y", unknown=-1)))

    # ------------------------------------------------------------------ files

    def save(self, path):
        """Write the model to ``path`` (``.npz``, atomically); returns the path written.

        The file holds the plain SGD weights, the running average when there is one
        (so training can continue exactly), ``classes_`` and every setting.
        """
        state = self._fitted()
        classes = state.classes
        if classes.dtype.kind not in "biufU" and not all(isinstance(c, (str, int, float)) for c in classes.tolist()):
            raise InputTypeError(f"classes_ of dtype {classes.dtype} cannot be saved: only numbers and strings")
        cfg = self._settings(resolve_backend=False)  # the settings as plain JSON values
        settings = {"backend": self.backend, "learning_rate": cfg.learning_rate, "batch_size": cfg.batch_size,
                    "steps": None if self.steps is None else int(self.steps),
                    "epochs": None if self.epochs is None else float(self.epochs), "seed": cfg.seed,
                    "lr_decay": cfg.lr_decay, "weight_decay": cfg.weight_decay, "warm_start": cfg.warm_start,
                    "average": bool(self.average) if isinstance(self.average, (bool, np.bool_)) else int(self.average)}
        averages = {"W_avg": state.W_avg, "b_avg": state.b_avg} if state.average_count else None
        return save_model(path, state.W, state.b, {
            "library_version": __version__, "dtype": str(state.W.dtype), "n_features": state.W.shape[0],
            "n_classes": state.W.shape[1], "classes": classes.tolist(), "classes_dtype": classes.dtype.str,
            "steps_done": state.steps, "average_count": state.average_count, **settings,
        }, averages=averages)

    @classmethod
    def load(cls, path, *, backend=None):
        """Read a model written by :meth:`save`; ``backend`` overrides the saved one."""
        W, b, meta, averages = load_model(path, averages=True)
        params = {k: meta[k] for k in cls._get_param_names() if k in meta and k != "progress"}
        params["dtype"] = meta["dtype"]
        if backend is not None:
            params["backend"] = backend
        model = cls(**params)
        try:
            model._settings(resolve_backend=False)
        except (InputError, InputTypeError) as exc:
            raise ModelFileError(f"{path}: saved settings are not valid ({exc})") from exc
        classes = meta.get("classes")
        classes = np.arange(W.shape[1]) if classes is None else np.array(classes, dtype=meta["classes_dtype"])
        count = int(meta.get("average_count", 0)) if averages is not None else 0
        W_avg, b_avg = averages if averages is not None else (None, None)
        model._state = _Fitted(np.ascontiguousarray(W), np.ascontiguousarray(b), W_avg, b_avg, count,
                               int(meta.get("steps_done", 0)), classes, _empty_history(), None)
        return model


# ---------------------------------------------------------------------- batches


class _BatchStream:
    """The batch order of the tutorial's ``next_batch`` (:class:`~fastsoftmax.data.dataset.EpochSampler`),
    drawn for a whole compiled call at once.

    Consecutive ``next_batch`` batches are consecutive slices of the concatenated
    epoch permutations (a batch crossing an epoch end takes the old epoch's last rows
    and the new one's first), and each permutation is drawn from the generator when
    the previous one runs out, so slicing that stream gives ``EpochSampler``'s order
    exactly, without a Python call per batch.
    """

    def __init__(self, n, rng):
        self.n = int(n)
        self._rng = rng
        self._order = None
        self._index = 0
        self._drawn_from = None  # the generator's state before the current epoch's order was drawn

    def copy(self):
        other = copy.copy(self)
        other._rng = copy.deepcopy(self._rng)
        return other

    def take(self, count, shuffle=True):
        """The next ``count`` row indices (int64)."""
        parts = []
        while count:
            if self._order is None or self._index == self.n:
                self._drawn_from = self._rng.bit_generator.state if shuffle else None
                self._order = self._rng.permutation(self.n) if shuffle else np.arange(self.n)
                self._index = 0
            part = self._order[self._index:self._index + count]
            parts.append(part)
            self._index += part.size
            count -= part.size
        return (np.concatenate(parts) if len(parts) > 1 else parts[0]).astype(np.int64, copy=False)

    # A pickled model carries the generator's states, not the epoch's order (N indices):
    # the order is drawn again from the state it was drawn from.

    def __getstate__(self):
        return {**self.__dict__, "_order": None if self._order is None else "redraw"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self._order is None:
            return
        if self._drawn_from is None:
            self._order = np.arange(self.n)
            return
        rng = np.random.Generator(getattr(np.random, self._drawn_from["bit_generator"])())
        rng.bit_generator.state = self._drawn_from
        self._order = rng.permutation(self.n)


def _rng(seed, steps):
    """A fresh fit draws from ``default_rng(seed)``; a continuation without the old order
    (after load or partial_fit) from a stream of its own."""
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(seed if steps == 0 else [seed, steps])


def _fresh(n_features, classes, cfg, stream):
    shape = (n_features, classes.size)
    zeros = (np.zeros(shape, cfg.dtype), np.zeros(classes.size, cfg.dtype))
    averages = (None, None) if cfg.average is None else (np.zeros(shape, cfg.dtype), np.zeros(classes.size, cfg.dtype))
    return _Fitted(*zeros, *averages, 0, 0, classes, _empty_history(), stream)


def _continue(previous, cfg, stream):
    """The state a warm start trains from: the previous one's, with history copied (the
    previous state stays untouched until the new one is committed)."""
    if previous.W.dtype != cfg.dtype:
        raise InputError(f"dtype={str(cfg.dtype)!r} differs from the fitted model's {previous.W.dtype}")
    W_avg, b_avg, count = previous.W_avg, previous.b_avg, previous.average_count
    if cfg.average is None:
        W_avg = b_avg = None
        count = 0
    elif W_avg is None:
        W_avg, b_avg = np.zeros_like(previous.W), np.zeros_like(previous.b)
    history = {key: list(values) for key, values in previous.history.items()}
    return previous._replace(W_avg=W_avg, b_avg=b_avg, average_count=count, history=history, stream=stream)


def _empty_history():
    return {"loss": [], "val_step": [], "epoch": [], "val_accuracy": []}


def _batch_for(batch_size, n_rows):
    if batch_size > n_rows:
        warnings.warn(f"batch_size {batch_size} is larger than the {n_rows} rows of X: each step uses all "
                      f"{n_rows}", UserWarning, stacklevel=3)
        return n_rows
    return batch_size


def _step_count(steps, epochs, default_steps, default_epochs, n_rows, batch_size):
    if steps is None and epochs is None:
        steps, epochs = default_steps, default_epochs
    if steps is not None and epochs is not None:
        raise InputError(f"give steps or epochs, not both (got steps={steps!r}, epochs={epochs!r})")
    if epochs is not None:
        epochs = _positive_float("epochs", epochs)
        total = np.ceil(epochs * n_rows / min(batch_size, n_rows))
        if total * batch_size > MAX_SAMPLES:
            raise InputError(f"epochs={epochs!r} means {total:.3g} steps of {batch_size} rows, more than the "
                             f"{MAX_SAMPLES} samples one run can count")
        return int(total)
    steps = _positive_int("steps", TUTORIAL_STEPS if steps is None else steps)
    if steps * batch_size > MAX_SAMPLES:
        raise InputError(f"steps={steps!r} of {batch_size} rows is more than the {MAX_SAMPLES} samples one run "
                         f"can count")
    return steps


def _refuse_nonfinite_rows(X, rows):
    """Raise naming the first of ``rows`` of float X that holds NaN or infinity."""
    if rows.size == 0:
        return
    bad = ~np.isfinite(X[rows]).all(axis=1)
    if bad.any():
        raise InputError(f"X contains NaN or infinite values (first in row {int(rows[bad].min())})")


def _same_model(state, n_features, classes, what):
    if state.W.shape[0] != n_features:
        raise InputError(f"{what}: X has {n_features} features, but SoftmaxRegression is expecting "
                         f"{state.W.shape[0]} features as input")
    if not _equal_labels(classes, state.classes):
        raise InputError(f"{what}: the labels {classes!r} differ from the fitted model's classes_ {state.classes!r}")


# ---------------------------------------------------------------------- arguments


def _check_X(X, name, dtype, n_features=None, owner="SoftmaxRegression"):
    """X as the kernels take it: uint8 as it is, numbers in ``dtype``, C-contiguous.

    NaN and infinity are not looked for here: that would read X once more. Training
    finds them where a batch's loss goes non-finite (and checks rows no batch drew);
    inference kernels flag such rows as they go.
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


def _check_y(y, n_rows, name, one_hot_width=None):
    """Labels as a 1-D array (or one-hot ``[N, C]`` when C >= 2), checked but not yet encoded."""
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
                      _data_conversion_warning(), stacklevel=3)
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


def _data_conversion_warning():
    """scikit-learn's DataConversionWarning when scikit-learn is loaded (its tools expect it)."""
    sklearn_exceptions = sys.modules.get("sklearn.exceptions")
    return UserWarning if sklearn_exceptions is None else sklearn_exceptions.DataConversionWarning


def _given_classes(classes, n_classes):
    if classes is not None and n_classes is not None:
        raise InputError("give classes or n_classes, not both")
    if n_classes is not None:
        return np.arange(_positive_int("n_classes", n_classes))
    if classes is None:
        return None
    values = _check_y(classes, len(classes) if hasattr(classes, "__len__") else 0, "classes")
    if values.ndim != 1 or values.size == 0:
        raise InputError(f"classes must be a non-empty 1-D array of labels, got shape {values.shape}")
    unique = _classes_of(values)
    if unique.size != values.size:
        raise InputError(f"classes must not repeat a label, got {values!r}")
    return unique


def _classes_of(y):
    """The sorted distinct labels of y (one-hot: the column indices)."""
    if y.ndim == 2:
        return np.arange(y.shape[1])
    if y.dtype.kind in "iu" and y.size:
        low, high = int(y.min()), int(y.max())
        if high - low < max(1 << 16, 4 * y.size) and high < 2**62:  # a count per value: linear, no sort
            shifted = np.asarray(y, np.int64) - low if low else y
            return (np.flatnonzero(np.bincount(shifted, minlength=high - low + 1)) + low).astype(y.dtype)
    try:
        return np.unique(y)
    except TypeError as exc:
        raise InputTypeError(f"labels must be sortable values of one kind: {exc}") from exc


def _equal_labels(a, b):
    return a.shape == b.shape and bool(np.all(a == b))


def _encode(y, classes, name, unknown=None):
    """Class indices (int64 ``[N]``) of labels ``y`` in sorted ``classes``.

    A label not in ``classes`` is refused, or mapped to ``unknown`` when that is given.
    """
    if y.ndim == 2:
        if y.shape[1] != classes.size:
            raise InputError(f"{name} is one-hot with {y.shape[1]} columns, the model has {classes.size} classes")
        return y.argmax(axis=1).astype(np.int64)
    C = classes.size
    if (y.dtype.kind in "iu" and classes.dtype.kind in "iu" and y.size
            and int(classes[-1]) - int(classes[0]) == C - 1):  # consecutive integers: a shift
        low = int(classes[0])
        lo, hi = int(y.min()), int(y.max())
        if lo >= low and hi < low + C:
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


def _check_validation(validation_data, n_features, dtype, classes):
    """``(X_val, y_val)`` checked now, before any training: X_val as the kernels take it and
    y_val as class indices (-1 for labels the model does not know)."""
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        length = f" of length {len(validation_data)}" if isinstance(validation_data, (tuple, list)) else ""
        raise InputTypeError(f"validation_data must be a pair (X_val, y_val), got "
                             f"{type(validation_data).__name__}{length}")
    X_val, y_val = validation_data
    X_val = _check_X(X_val, "validation_data X_val", dtype)
    if X_val.shape[1] != n_features:
        raise InputError(f"validation_data X_val has {X_val.shape[1]} features, X has {n_features}")
    y_val = _check_y(y_val, X_val.shape[0], "validation_data y_val", one_hot_width=classes.size)
    return X_val, _encode(y_val, classes, "validation_data y_val", unknown=-1)


def _float_dtype(dtype):
    """``"float32"``, ``np.float32``, ``np.dtype("float64")``, ... as a NumPy dtype; nothing else."""
    try:
        resolved = None if dtype is None else np.dtype(dtype)
    except (TypeError, ValueError):
        resolved = None
    if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise InputTypeError(f"dtype must be 'float32' or 'float64', got {_short(dtype)}")
    return resolved


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _positive_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {_short(value)}")
    return int(value)


def _positive_float(name, value):
    value = _nonnegative_float(name, value)
    if value == 0:
        raise InputError(f"{name} must be > 0, got {value!r}")
    return value


def _nonnegative_float(name, value):
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be a number, got {_short(value)}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {_short(value)}") from None
    except OverflowError:
        raise InputError(f"{name} must be finite and >= 0, got {_short(value)}") from None
    if not np.isfinite(value) or value < 0:
        raise InputError(f"{name} must be finite and >= 0, got {_short(value)}")
    return value
