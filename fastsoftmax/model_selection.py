"""``GridSearchCV``: scikit-learn's grid search for :class:`~fastsoftmax.SoftmaxRegression`, every candidate
and fold trained in one compiled pass.

A drop-in for ``sklearn.model_selection.GridSearchCV`` on this estimator (as dask-ml's
is for its own): the same parameters and fitted attributes, the same candidates in the
same order, the same folds, and the same scores, bit for bit. What differs is how the
work is done: instead of one ``fit`` per candidate and fold, every candidate x fold is a
model of one training run (:mod:`fastsoftmax.model.training`, as :func:`~fastsoftmax.fit_many`),
reading each fold's rows of X in place (no copy of X per fold), and each fold's candidates
are scored together, each test row read once for all of them. scikit-learn is not needed,
unless ``scoring`` names one of its scorers.
"""

from __future__ import annotations

import copy
import itertools
import time
import warnings
from collections import defaultdict

import numpy as np

from . import validation
from .errors import InputError, InputTypeError
from .kernels import get_backend
from .model import labels, training
from .model.estimator import SoftmaxRegression
from .model.parameters import checked
from .model.protocol import EstimatorProtocol, data_conversion_warning, not_fitted


class GridSearchCV(EstimatorProtocol):
    """Exhaustive search over parameter values of a :class:`~fastsoftmax.SoftmaxRegression`, by cross-validation.

    Parameters
    ----------
    estimator : SoftmaxRegression
        The model whose parameters are searched (it is cloned, never fitted itself).
    param_grid : dict or list of dicts
        Parameter names mapped to lists of values, as scikit-learn's ``ParameterGrid`` reads
        them (each dict's keys sorted, their values combined in order).
    scoring : None, "accuracy", str or callable
        None and ``"accuracy"``: the estimator's ``score`` (accuracy), computed here. Another
        name or a callable ``scorer(estimator, X, y)``: scikit-learn's scorer (needs
        scikit-learn for a name).
    cv : int, splitter or iterable of (train, test) index pairs
        An int is scikit-learn's ``StratifiedKFold(cv)`` (the same folds, computed here without
        scikit-learn); an object with ``split(X, y)``; or the pairs themselves.
    refit : bool
        Refit the best candidate on all of ``(X, y)`` (``best_estimator_``).
    error_score : "raise" or float
        The score of a candidate whose fit failed (it diverged, say); ``"raise"`` re-raises.
    return_train_score : bool
        Also score each fold's model on its training rows.

    Attributes
    ----------
    cv_results_ : dict of arrays
        As scikit-learn's: ``mean_fit_time``, ``std_fit_time``, ``mean_score_time``,
        ``std_score_time``, ``param_<name>`` (masked arrays), ``params``,
        ``split<i>_test_score``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score`` (and the train scores with ``return_train_score``). The fit
        and score times of a pass are shared equally by its models.
    best_index_, best_score_, best_params_, best_estimator_, refit_time_, n_splits_,
    scorer_, multimetric_, classes_, n_features_in_
    """

    def __init__(self, estimator, param_grid, *, scoring=None, cv=5, refit=True, error_score=np.nan,
                 return_train_score=False):
        self.estimator = estimator
        self.param_grid = param_grid
        self.scoring = scoring
        self.cv = cv
        self.refit = refit
        self.error_score = error_score
        self.return_train_score = return_train_score

    def fit(self, X, y):
        """Fit and score every candidate on every fold, then refit the best on all of ``(X, y)``.

        Returns
        -------
        self
        """
        candidates = _candidates(self.param_grid, self.estimator)
        validation.flag(self.refit, "refit")
        validation.flag(self.return_train_score, "return_train_score")
        if not (self.error_score == "raise" or isinstance(self.error_score, (int, float, np.number))):
            raise InputTypeError(f"error_score must be 'raise' or a number, got {validation.short(self.error_score)}")
        scorer = _scorer(self.scoring)
        settings = [checked(_clone(self.estimator, params).get_params()) for params in candidates]  # before any work
        groups = _by_backend_and_dtype(settings)
        first = validation.features(X, "X", settings[0].dtype)
        y = validation.targets(y, first.shape[0], "y", conversion_warning=data_conversion_warning())
        splits = _splits(self.cv, first, y)
        models = [[_clone(self.estimator, params) for _ in splits] for params in candidates]
        results = _Results(len(candidates), len(splits), self.return_train_score)
        for (_, dtype), members in groups.items():
            data = first if dtype == settings[0].dtype else validation.features(X, "X", dtype)
            for fold, (train, test) in enumerate(splits):
                jobs = self._fit_fold(models, members, fold, data, y, train, results)
                self._score_fold(jobs, data, y, train, test, fold, scorer, results)
        self.cv_results_ = results.cv_results(candidates)
        self.n_splits_ = len(splits)
        self.multimetric_ = False
        self.scorer_ = scorer if scorer is not None else _passthrough
        self.best_index_ = int(self.cv_results_["rank_test_score"].argmin())
        self.best_score_ = self.cv_results_["mean_test_score"][self.best_index_]
        self.best_params_ = candidates[self.best_index_]
        if self.refit:
            start = time.perf_counter()
            self.best_estimator_ = _clone(self.estimator, self.best_params_).fit(X, y)
            self.refit_time_ = time.perf_counter() - start
        return self

    def _fit_fold(self, models, members, fold, data, y, train, results):
        """Train the fold's model of every candidate in ``members`` in one run; returns the jobs."""
        classes = labels.classes_of(y[train])
        # Rows outside the fold may hold labels its models do not know: they are never drawn.
        y_idx = labels.encode(y, classes, "y", unknown=0)
        streams, jobs = {}, []
        for c in members:
            model = models[c][fold]
            job = training._fit_job(model, checked(model.get_params()), data, classes, None, None, True, None,
                                    streams, rows=train)
            job.isolate = self.error_score != "raise"
            jobs.append((c, job))
        start = time.perf_counter()
        training.run([job for _, job in jobs], data, y_idx)
        results.share("fit_time", [c for c, _ in jobs], fold, time.perf_counter() - start)
        for c, job in jobs:
            if job.failure is not None:
                warnings.warn(f"the fit of candidate {c} ({_describe(job.model)}) on fold {fold} failed: "
                              f"{job.failure}; its score is error_score={self.error_score!r}", UserWarning,
                              stacklevel=4)
        return jobs

    def _score_fold(self, jobs, data, y, train, test, fold, scorer, results):
        """Score the fold's models: on its test rows (and training rows), all candidates at once."""
        fitted = [(c, job.model) for c, job in jobs if job.failure is None]
        for c, job in jobs:
            if job.failure is not None:
                results.set("test_score", c, fold, self.error_score)
                if self.return_train_score:
                    results.set("train_score", c, fold, self.error_score)
        if not fitted:
            return
        start = time.perf_counter()
        parts = [("test_score", test)] + ([("train_score", train)] if self.return_train_score else [])
        for key, rows in parts:
            for (c, _), score in zip(fitted, _scores([m for _, m in fitted], data[rows], y[rows], scorer)):
                results.set(key, c, fold, score)
        results.share("score_time", [c for c, _ in fitted], fold, time.perf_counter() - start)

    # ------------------------------------------------------------------ the best estimator

    def _best(self):
        if not self.refit:
            raise not_fitted("this GridSearchCV was not refit (refit=False): it has no best estimator")
        if getattr(self, "best_estimator_", None) is None:
            raise not_fitted("this GridSearchCV is not fitted yet: call fit() first")
        return self.best_estimator_

    def __sklearn_is_fitted__(self):
        return hasattr(self, "cv_results_")

    def predict(self, X):
        """``best_estimator_.predict(X)``."""
        return self._best().predict(X)

    def predict_proba(self, X):
        """``best_estimator_.predict_proba(X)``."""
        return self._best().predict_proba(X)

    def score(self, X, y):
        """The best estimator's score on ``(X, y)``, by ``scoring``."""
        scorer = _scorer(self.scoring)
        return self._best().score(X, y) if scorer is None else scorer(self._best(), X, y)

    @property
    def classes_(self):
        return self._best().classes_

    @property
    def n_features_in_(self):
        return self._best().n_features_in_


# ---------------------------------------------------------------------- candidates, folds, scores


def _candidates(param_grid, estimator):
    """The parameter sets of ``param_grid``, in scikit-learn's ``ParameterGrid`` order, every name checked."""
    if not isinstance(estimator, SoftmaxRegression):
        raise InputTypeError(f"estimator must be a SoftmaxRegression, got {validation.short(estimator)}")
    grids = [param_grid] if isinstance(param_grid, dict) else param_grid
    if not isinstance(grids, (list, tuple)) or not grids or not all(isinstance(g, dict) for g in grids):
        raise InputTypeError(f"param_grid must be a dict or a non-empty list of dicts, got "
                             f"{validation.short(param_grid)}")
    known = estimator.get_params()
    candidates = []
    for grid in grids:
        for name, values in grid.items():
            if name not in known:
                raise InputError(f"param_grid names {name!r}, which SoftmaxRegression does not have; its parameters "
                                 f"are {', '.join(known)}")
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") or len(values) == 0:
                raise InputError(f"param_grid[{name!r}] must be a non-empty list of values, got "
                                 f"{validation.short(values)}")
        items = sorted(grid.items())
        if not items:
            candidates.append({})
            continue
        keys, values = zip(*items)
        candidates.extend(dict(zip(keys, combination)) for combination in itertools.product(*values))
    return candidates


def _clone(estimator, params):
    """A fresh estimator with ``estimator``'s parameters (deep-copied, as scikit-learn's ``clone``) and ``params``."""
    return type(estimator)(**copy.deepcopy(estimator.get_params())).set_params(**copy.deepcopy(params))


def _describe(model):
    return repr(model)


def _by_backend_and_dtype(settings):
    """Candidates grouped by what one training run must share: the backend and the dtype."""
    groups = defaultdict(list)
    for c, cfg in enumerate(settings):
        groups[(cfg.backend, cfg.dtype)].append(c)
    return groups


def _splits(cv, X, y):
    """``cv`` as a list of (train, test) int64 index arrays."""
    if isinstance(cv, (bool, np.bool_, str, bytes)):
        raise InputTypeError(f"cv must be a number of folds, a splitter or (train, test) pairs, got {cv!r}")
    if isinstance(cv, (int, np.integer)):
        folds = stratified_folds(y, validation.count(cv, "cv", minimum=2))
    elif hasattr(cv, "split"):
        folds = list(cv.split(X, y))
    elif hasattr(cv, "__iter__"):
        folds = list(cv)
    else:
        raise InputTypeError(f"cv must be a number of folds, a splitter (an object with split(X, y)) or an "
                             f"iterable of (train, test) index pairs, got {validation.short(cv)}")
    if not folds:
        raise InputError("cv gave no (train, test) pairs")
    checked_folds = []
    for i, fold in enumerate(folds):
        if not isinstance(fold, (tuple, list)) or len(fold) != 2:
            raise InputTypeError(f"cv's split {i} is not a (train, test) pair: {validation.short(fold)}")
        checked_folds.append(tuple(_indices(part, X.shape[0], f"cv's split {i} {name}")
                                   for part, name in zip(fold, ("train", "test"))))
    return checked_folds


def _indices(part, n_rows, name):
    array = np.asarray(part)
    if array.dtype == bool and array.shape == (n_rows,):
        array = np.flatnonzero(array)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu") or array.size == 0:
        raise InputError(f"{name} must be a non-empty 1-D array of row indices, got {validation.short(part)}")
    if array.min() < -n_rows or array.max() >= n_rows:
        raise InputError(f"{name} has row indices outside [0, {n_rows})")
    return np.ascontiguousarray(np.where(array < 0, array + n_rows, array), dtype=np.int64)


def stratified_folds(y, n_splits):
    """scikit-learn's ``StratifiedKFold(n_splits).split(X, y)`` (no shuffling), computed without scikit-learn.

    Each class's rows, in order, are dealt to the folds so that every fold holds about the
    same share of each class; fold i's test rows are those dealt to it.
    """
    y = np.asarray(y)
    if y.ndim == 2:  # one-hot rows: the class is the column of the 1
        y = y.argmax(axis=1)
    _, first, inverse = np.unique(y, return_index=True, return_inverse=True)
    _, class_order = np.unique(first, return_inverse=True)  # classes in the order they first appear
    encoded = class_order[inverse.reshape(-1)]
    n_classes = first.size
    counts = np.bincount(encoded)
    if n_splits > y.shape[0]:
        raise InputError(f"cv={n_splits} folds cannot be made from {y.shape[0]} samples")
    if np.all(n_splits > counts):
        raise InputError(f"cv={n_splits} cannot be greater than the number of members in each class")
    if n_splits > counts.min():
        warnings.warn(f"The least populated class in y has only {counts.min()} members, which is less than "
                      f"n_splits={n_splits}.", UserWarning, stacklevel=4)
    ordered = np.sort(encoded)
    allocation = np.asarray([np.bincount(ordered[i::n_splits], minlength=n_classes) for i in range(n_splits)])
    test_folds = np.empty(y.shape[0], dtype=np.int64)
    for k in range(n_classes):
        test_folds[encoded == k] = np.arange(n_splits).repeat(allocation[:, k])
    rows = np.arange(y.shape[0])
    return [(rows[test_folds != i], rows[test_folds == i]) for i in range(n_splits)]


def _passthrough(estimator, X, y):
    """The estimator's own score (accuracy): what ``scorer_`` is for ``scoring=None``, as in scikit-learn."""
    return estimator.score(X, y)


def _scorer(scoring):
    """None for accuracy (computed here, all candidates at once), else a ``scorer(estimator, X, y)``."""
    if scoring is None or scoring == "accuracy":
        return None
    if callable(scoring):
        return scoring
    if isinstance(scoring, str):
        try:
            from sklearn.metrics import get_scorer
        except ImportError:
            raise InputError(f"scoring={scoring!r} is one of scikit-learn's scorers: pip install scikit-learn "
                             f"(or use scoring=None, the accuracy)") from None
        try:
            return get_scorer(scoring)
        except ValueError as exc:
            raise InputError(f"scoring={scoring!r}: {exc}") from None
    raise InputTypeError(f"scoring must be None, a scorer's name or a callable, got {validation.short(scoring)}")


def _scores(models, X, y, scorer):
    """Each model's score on ``(X, y)``: accuracy from one ``predict_many`` (the rows read once for all
    the models), as each model's ``score`` computes it; or the scorer's, model by model."""
    if scorer is not None:
        return [float(scorer(model, X, y)) for model in models]
    states = [model._state for model in models]
    classes = states[0].classes
    kernels = get_backend(models[0].backend)
    weights = [state.prediction_weights() for state in states]
    predicted = kernels.predict_many(X, np.stack([w for w, _ in weights]), np.stack([b for _, b in weights]))
    truth = labels.encode(validation.targets(y, X.shape[0], "y", one_hot_width=classes.size), classes, "y",
                          unknown=-1)
    return [float(np.mean(row == truth)) for row in predicted]


class _Results:
    """Scores and times of every candidate on every fold, formatted as scikit-learn's ``cv_results_``."""

    def __init__(self, n_candidates, n_splits, train_scores):
        keys = ["fit_time", "score_time", "test_score"] + (["train_score"] if train_scores else [])
        self.values = {key: np.full((n_candidates, n_splits), np.nan) for key in keys}
        self.values["score_time"][:] = 0.0

    def set(self, key, candidate, fold, value):
        self.values[key][candidate, fold] = value

    def share(self, key, candidates, fold, seconds):
        """A pass's time, shared equally by the models it trained (or scored) together."""
        for c in candidates:
            self.values[key][c, fold] = seconds / len(candidates)

    def cv_results(self, candidates):
        results = {}
        for key in ("fit_time", "score_time"):
            self._store(results, key, self.values[key])
        for name, masked in _masked_params(candidates):
            results[name] = masked
        results["params"] = candidates
        self._store(results, "test_score", self.values["test_score"], splits=True, rank=True)
        if "train_score" in self.values:
            self._store(results, "train_score", self.values["train_score"], splits=True)
        return results

    @staticmethod
    def _store(results, key, array, splits=False, rank=False):
        """As scikit-learn's ``_format_results._store``: the same arithmetic, the same bits."""
        if splits:
            for fold in range(array.shape[1]):
                results[f"split{fold}_{key}"] = array[:, fold]
        means = np.average(array, axis=1)
        results[f"mean_{key}"] = means
        if key.endswith("_score") and np.any(~np.isfinite(means)):
            warnings.warn(f"One or more of the {key.split('_')[0]} scores are non-finite: {means}", UserWarning,
                          stacklevel=5)
        results[f"std_{key}"] = np.sqrt(np.average((array - means[:, np.newaxis]) ** 2, axis=1))
        if rank:
            if np.isnan(means).all():
                ranks = np.ones_like(means, dtype=np.int32)
            else:
                filled = np.where(np.isnan(means), np.nanmin(means) - 1, means)
                ranks = _rank_min(-filled)
            results[f"rank_{key}"] = ranks


def _rank_min(values):
    """SciPy's ``rankdata(values, method="min")`` as int32: 1 + how many values are smaller."""
    ordered = np.sort(values)
    return (np.searchsorted(ordered, values, side="left") + 1).astype(np.int32)


def _masked_params(candidates):
    """``param_<name>`` masked arrays, as scikit-learn makes them (masked where a candidate lacks the name)."""
    by_name = defaultdict(dict)
    for c, params in enumerate(candidates):
        for name, value in params.items():
            by_name[f"param_{name}"][c] = value
    for name, values in by_name.items():
        listed = list(values.values())
        try:
            array = np.array(listed)
        except ValueError:
            dtype = np.dtype(object)
        else:
            dtype = array.dtype if array.dtype.kind != "U" and array.ndim == 1 else object
        masked = np.ma.MaskedArray(np.empty(len(candidates), dtype=dtype), mask=True)
        for c, value in values.items():
            masked[c] = value
        yield name, masked


# ---------------------------------------------------------------------- a sweep on a held-out split


def sweep(X, y, X_val, y_val, *, learning_rate, weight_decay=(0.0,), seed=(0,), lr_decay=(0.0,), test=None,
          steps=None, epochs=None, **fixed):
    """Train every combination of the given values in one pass and measure each on a held-out split.

    The grid is every combination of ``learning_rate``, ``weight_decay``, ``lr_decay`` and
    ``seed`` (in that nesting, the seed innermost), each a :class:`~fastsoftmax.SoftmaxRegression`
    with the ``fixed`` parameters (``batch_size``, ``average``, ``backend``, ``dtype``, ...),
    trained together by :func:`~fastsoftmax.fit_many` (models of one seed share their batch
    order) and measured by one ``predict_many`` per split.

    Parameters
    ----------
    X, y : the training rows and labels
    X_val, y_val : the held-out rows that pick the best model
    learning_rate, weight_decay, seed, lr_decay : sequences of values
    test : tuple (X_test, y_test), optional
        Also measured, and reported; never used to choose.
    steps, epochs : as :meth:`SoftmaxRegression.fit`
    **fixed : the other parameters of every model

    Returns
    -------
    runs : list of dict
        One per model, in grid order: its ``learning_rate``, ``weight_decay``, ``lr_decay``,
        ``seed``, ``average``, ``validation_accuracy`` and ``test_accuracy`` (None without ``test``).
    best : int
        The index of the run with the highest validation accuracy (the first of equals).
    models : list of SoftmaxRegression
        The fitted models, in grid order.
    """
    axes = {"learning_rate": learning_rate, "weight_decay": weight_decay, "lr_decay": lr_decay, "seed": seed}
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") or len(values) == 0:
            raise InputError(f"{name} must be a non-empty list of values, got {validation.short(values)}")
    grid = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    models = [SoftmaxRegression(**fixed, **params) for params in grid]
    training.fit(models, X, y, steps=steps, epochs=epochs)
    scored = {"validation_accuracy": (X_val, y_val)}
    if test is not None:
        scored["test_accuracy"] = test
    accuracy = {}
    for key, (rows, truth) in scored.items():
        checked_rows = validation.features(rows, key.split("_")[0], models[0]._state.W.dtype,
                                           models[0].n_features_in_)
        accuracy[key] = _scores(models, checked_rows, truth, None)
    runs = [{**params, "average": models[i].average, "validation_accuracy": accuracy["validation_accuracy"][i],
             "test_accuracy": accuracy["test_accuracy"][i] if test is not None else None}
            for i, params in enumerate(grid)]
    best = int(np.argmax([run["validation_accuracy"] for run in runs]))
    return runs, best, models
