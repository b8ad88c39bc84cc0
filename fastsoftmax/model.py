"""``SoftmaxRegression``: the tutorial's model with a scikit-learn style interface.

Sits on the kernel layer (:func:`fastsoftmax.kernels.get_backend`) and the data
layer's batch sampler; it never computes anything itself.
"""

from __future__ import annotations

import logging
import sys
import warnings

import numpy as np
from tqdm.auto import tqdm

from ._version import __version__
from .data.dataset import EpochSampler
from .errors import ConvergenceWarning, DivergenceError, InputError, InputTypeError
from .kernels import get_backend
from .modelfile import load_model, save_model

log = logging.getLogger(__name__)

#: Steps per compiled call at most: the progress bar and Ctrl-C act between calls.
MAX_STEPS_PER_CALL = 1000
TUTORIAL_STEPS = 1000


class SoftmaxRegression:
    """Softmax regression ``y = softmax(x W + b)`` trained by minibatch SGD on mean cross-entropy.

    Parameters
    ----------
    backend : {"cpu", "numpy", "cuda"}
        Kernel backend: ``"cpu"`` (Numba), ``"numpy"`` (the reference) or ``"cuda"``
        (numba-cuda; a GPU, or the simulator with ``NUMBA_ENABLE_CUDASIM=1``).
    learning_rate : float
        SGD step size (the tutorial's 0.5).
    batch_size : int
        Rows per step (the tutorial's 100).
    dtype : {"float32", "float64"}
        Dtype of the weights and of all arithmetic.
    seed : int
        Seeds the batch order; the same seed gives the same weights.
    lr_decay : float
        Inverse-time decay per epoch: step ``s`` uses ``learning_rate / (1 + lr_decay * s / steps_per_epoch)``.
    weight_decay : float
        L2 penalty ``weight_decay / 2 * ||W||^2``.
    progress : bool or None
        Progress bar; ``None`` shows it only on a terminal.

    Attributes
    ----------
    W : ndarray ``[n_features, n_classes]``
    b : ndarray ``[n_classes]``
    history : dict
        ``"loss"``: each step's mean batch loss; ``"epoch"``, ``"val_accuracy"``: per epoch
        when ``validation_data`` was given.
    steps_done : int
        Steps applied to W and b so far.
    """

    def __init__(self, *, backend="cpu", learning_rate=0.5, batch_size=100, dtype="float32", seed=0,
                 lr_decay=0.0, weight_decay=0.0, progress=None):
        self.backend = backend
        self.learning_rate = _positive_float("learning_rate", learning_rate)
        self.batch_size = _positive_int("batch_size", batch_size)
        if str(dtype) not in ("float32", "float64"):
            raise InputTypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.dtype = np.dtype(str(dtype))
        self.seed = seed
        self.lr_decay = _nonnegative_float("lr_decay", lr_decay)
        self.weight_decay = _nonnegative_float("weight_decay", weight_decay)
        self.progress = progress
        self._kernels = get_backend(backend)
        self._params = None  # (W, b) replaced as one object, so Ctrl-C never splits them
        self.history = {"loss": [], "epoch": [], "val_accuracy": []}
        self.steps_done = 0

    # ------------------------------------------------------------------ weights

    @property
    def W(self) -> np.ndarray:
        return self._fitted()[0]

    @property
    def b(self) -> np.ndarray:
        return self._fitted()[1]

    @property
    def n_features(self) -> int:
        return self.W.shape[0]

    @property
    def n_classes(self) -> int:
        return self.W.shape[1]

    def _fitted(self):
        if self._params is None:
            raise InputError("this SoftmaxRegression is not fitted yet: call fit() or load() first")
        return self._params

    # ------------------------------------------------------------------ training

    def fit(self, X, y, *, steps=None, epochs=None, shuffle=True, validation_data=None, n_classes=None):
        """Train from zero weights (or continue, if already fitted with the same shapes).

        Parameters
        ----------
        X : ndarray ``[N, F]``, uint8 pixels (scaled by 1/255) or floats
        y : ndarray, class indices ``[N]`` or one-hot ``[N, C]``
        steps : int, optional
            Number of SGD steps. Default: the tutorial's 1000 unless ``epochs`` is given.
        epochs : float, optional
            Passes over the data (``epochs * N / batch_size`` steps, rounded up).
        shuffle : bool
            Batches as the tutorial's ``next_batch`` draws them; ``False`` takes
            consecutive slices in order (wrapping around), for exact comparisons.
        validation_data : tuple (X_val, y_val), optional
            Accuracy on it is recorded at the end of every epoch.
        n_classes : int, optional
            Number of classes; default ``max(y) + 1`` (or the one-hot width).

        Returns
        -------
        self

        Raises
        ------
        DivergenceError
            A step's loss was not finite. W and b are rolled back to the last
            finite state before that step's call; the message names the step.
        """
        X = self._check_X(X, "X", scan=True)
        y, classes = _class_indices(y, X.shape[0], n_classes, "y")
        if self.batch_size > X.shape[0]:
            raise InputError(f"batch_size {self.batch_size} is larger than the {X.shape[0]} rows of X")
        total = self._step_count(steps, epochs, X.shape[0])
        self._init_params(X.shape[1], classes)
        steps_per_epoch = max(1, X.shape[0] // self.batch_size)
        sampler = EpochSampler(X.shape[0], np.random.default_rng(self.seed))
        data = self._stage(X, y)
        bar = tqdm(total=total, unit="step", disable=not self._show_progress(total), leave=False)
        try:
            done = 0
            while done < total:
                chunk = min(MAX_STEPS_PER_CALL, total - done, steps_per_epoch - done % steps_per_epoch)
                self._train_chunk(*data, sampler.take_many(self.batch_size, chunk, shuffle), chunk)
                done += chunk
                bar.update(chunk)
                if done % steps_per_epoch == 0 and validation_data is not None:
                    self._record_validation(done // steps_per_epoch, validation_data)
        finally:
            bar.close()
        self._warn_if_not_learning(classes)
        return self

    def _warn_if_not_learning(self, n_classes):
        """Zero weights give a loss of log(C); ending far above it means the steps overshoot."""
        recent = self.history["loss"][-100:]
        start = float(np.log(n_classes))
        if recent and np.mean(recent) > 10 * start:
            warnings.warn(
                f"training did not converge: the mean loss of the last {len(recent)} steps is "
                f"{np.mean(recent):.3g}, against {start:.3g} at zero weights. Try a smaller learning_rate, "
                f"or scale the inputs (pixels are scaled to [0, 1]; float inputs are used as given).",
                ConvergenceWarning, stacklevel=3)

    def _stage(self, X, y):
        """(X, y) as the backend wants them for every call of a fit: the CUDA backend
        copies them to the device here, once, instead of once per call."""
        stage = getattr(self._kernels, "stage", None)
        return stage(X, y) if stage else (X, y)

    def _train_chunk(self, X, y, order, chunk):
        W, b = (p.copy() for p in self._params)
        first = self.steps_done
        epoch_pos = (first + np.arange(chunk)) / max(1, y.shape[0] // self.batch_size)
        rates = self.learning_rate / (1.0 + self.lr_decay * epoch_pos)
        done, losses = self._kernels.train_steps(X, y, W, b, order, self.batch_size, rates, self.weight_decay)
        if done < chunk:
            raise DivergenceError(
                f"training diverged at step {first + done}: the loss became {losses[done]} "
                f"(learning rate {rates[done]:g}); weights are left as they were after step {first}. "
                f"Try a smaller learning_rate, or check the inputs for NaN or huge values.")
        self._params = (W, b)  # one assignment: an interrupt cannot leave W and b out of step
        self.steps_done = first + chunk
        self.history["loss"].extend(losses.tolist())

    def _record_validation(self, epoch, validation_data):
        X_val, y_val = validation_data
        accuracy = self.score(X_val, y_val)
        self.history["epoch"].append(epoch)
        self.history["val_accuracy"].append(accuracy)
        log.info("epoch %d: validation accuracy %.4f", epoch, accuracy)

    def _init_params(self, n_features, n_classes):
        if self._params is not None and self._params[0].shape == (n_features, n_classes):
            return
        self._params = (np.zeros((n_features, n_classes), self.dtype), np.zeros(n_classes, self.dtype))
        self.steps_done = 0
        self.history = {"loss": [], "epoch": [], "val_accuracy": []}

    def _step_count(self, steps, epochs, n_rows):
        if steps is not None and epochs is not None:
            raise InputError("give steps or epochs, not both")
        if epochs is not None:
            epochs = _positive_float("epochs", epochs)
            return int(np.ceil(epochs * n_rows / self.batch_size))
        return _positive_int("steps", TUTORIAL_STEPS if steps is None else steps)

    def _show_progress(self, total):
        if self.progress is None:
            return total >= 2 * MAX_STEPS_PER_CALL and sys.stderr.isatty()
        return bool(self.progress)

    # ------------------------------------------------------------------ inference

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, ``[N, n_classes]`` in the model's dtype."""
        W, b = self._fitted()
        return self._kernels.forward(self._check_X(X, "X", W.shape[0]), W, b)

    def predict(self, X) -> np.ndarray:
        """Most probable class of each row, int64 ``[N]``."""
        W, b = self._fitted()
        return self._kernels.predict(self._check_X(X, "X", W.shape[0]), W, b)

    def score(self, X, y) -> float:
        """Accuracy: the fraction of rows whose predicted class is ``y``'s."""
        W, _ = self._fitted()
        X = self._check_X(X, "X", W.shape[0])
        y, _ = _class_indices(y, X.shape[0], W.shape[1], "y")
        return float(np.mean(self.predict(X) == y))

    def _check_X(self, X, name, n_features=None, scan=False):
        """X as the kernels take it. ``scan``: refuse NaN/inf now (fit does, once); inference
        leaves that to the kernels, which flag non-finite rows without a second pass over X."""
        if not isinstance(X, np.ndarray):
            raise InputTypeError(f"{name} must be a numpy array, got {type(X).__name__}")
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            raise InputError(f"{name} must be a non-empty 2-D array [N, F], got shape {X.shape}")
        if n_features is not None and X.shape[1] != n_features:
            raise InputError(f"{name} has {X.shape[1]} features, the model has {n_features}")
        if X.dtype == np.uint8:
            return np.ascontiguousarray(X)
        if X.dtype.kind not in "fiu" :
            raise InputTypeError(f"{name} must be uint8 pixels or a float array, got dtype {X.dtype}")
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if scan and not np.isfinite(X).all():
            row = int(np.flatnonzero(~np.isfinite(X).all(axis=1))[0])
            raise InputError(f"{name} contains NaN or infinite values (first in row {row})")
        return X

    # ------------------------------------------------------------------ files

    def save(self, path):
        """Write the model to ``path`` (``.npz``, atomically); returns the path written."""
        W, b = self._fitted()
        return save_model(path, W, b, {
            "library_version": __version__, "dtype": str(self.dtype), "n_features": W.shape[0],
            "n_classes": W.shape[1], "backend": self.backend, "learning_rate": self.learning_rate,
            "batch_size": self.batch_size, "seed": self.seed, "lr_decay": self.lr_decay,
            "weight_decay": self.weight_decay, "steps_done": self.steps_done,
        })

    @classmethod
    def load(cls, path, *, backend=None):
        """Read a model written by :meth:`save`; ``backend`` overrides the saved one."""
        W, b, meta = load_model(path)
        model = cls(backend=backend or meta.get("backend", "cpu"), dtype=meta["dtype"],
                    learning_rate=meta.get("learning_rate", 0.5), batch_size=meta.get("batch_size", 100),
                    seed=meta.get("seed", 0), lr_decay=meta.get("lr_decay", 0.0),
                    weight_decay=meta.get("weight_decay", 0.0))
        model._params = (np.ascontiguousarray(W), np.ascontiguousarray(b))
        model.steps_done = int(meta.get("steps_done", 0))
        return model


def _class_indices(y, n_rows, n_classes, name):
    """Labels as int64 class indices, from indices ``[N]`` or one-hot rows ``[N, C]``."""
    if not isinstance(y, np.ndarray):
        raise InputTypeError(f"{name} must be a numpy array, got {type(y).__name__}")
    if y.shape[:1] != (n_rows,):
        raise InputError(f"{name} has {y.shape[0] if y.ndim else 0} rows, X has {n_rows}")
    if y.ndim == 2:
        if not (np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)):
            raise InputError(f"{name} is 2-D but its rows are not one-hot")
        n_classes = n_classes or y.shape[1]
        if y.shape[1] != n_classes:
            raise InputError(f"{name} is one-hot with {y.shape[1]} columns, expected {n_classes}")
        return y.argmax(axis=1).astype(np.int64), n_classes
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise InputTypeError(f"{name} must be integer class indices [N] or one-hot [N, C], got {y.dtype} {y.shape}")
    low, high = int(y.min()), int(y.max())
    n_classes = n_classes or max(2, high + 1)
    if low < 0 or high >= n_classes:
        raise InputError(f"{name} has labels in [{low}, {high}], expected [0, {n_classes})")
    return y.astype(np.int64), n_classes


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _positive_float(name, value):
    value = _nonnegative_float(name, value)
    if value == 0:
        raise InputError(f"{name} must be > 0, got {value!r}")
    return value


def _nonnegative_float(name, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(value) or value < 0:
        raise InputError(f"{name} must be finite and >= 0, got {value!r}")
    return value
