"""Training runs: one model or many, a compiled call per chunk of steps, each model's state committed after it.

A fit of one model and a fit of many are the same run: :func:`fit` takes a list of
estimators, checks everything before any work, and trains them in *passes*, one per
batch size, each a compiled ``train_many`` call per chunk of steps. Models whose batch
orders are the same (a fresh fit with the same seed on the same rows) form a *group*:
the group's order is drawn once, and the kernels read each batch's rows once for all of
its models. A model's arithmetic does not depend on the others in its pass, so each ends
with the weights its own ``fit`` gives, bit for bit.

After each chunk every model's new state is swapped in whole; an error (a non-finite row,
a diverging step) puts every model back as it was before the call, and an interrupt
(Ctrl-C) keeps the chunks completed so far.
"""

from __future__ import annotations

import logging
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import validation
from ..errors import ConvergenceWarning, DivergenceError, InputError, InputTypeError
from . import labels
from .parameters import Settings, checked, run_length
from .protocol import data_conversion_warning
from .state import FittedState, batch_order, continued, fresh

log = logging.getLogger(__name__)

#: Steps per compiled call at most: the progress bar and Ctrl-C act between calls.
MAX_STEPS_PER_CALL = 1000


@dataclass
class Job:
    """One model's part of a run, advanced chunk by chunk."""

    model: object                # the estimator; its ``_state`` is what is committed
    settings: Settings
    previous: FittedState | None  # put back on any error
    state: FittedState           # the state being trained, the model's own once committed
    total: int                   # steps to run
    batch: int                   # rows per step
    steps_per_epoch: int
    shuffle: bool
    validation: tuple | None     # (X_val, y_val as class indices, -1 for unknown labels)
    rows: np.ndarray | None = None  # the model's rows of X (None: all of them)
    keep_order: bool = True      # False: the batch order is not kept for a later warm start
    isolate: bool = False        # True: an error of this model fails it alone (see failure), not the run
    failure: Exception | None = None  # the error that ended an isolated job, which is then left unfitted
    done: int = 0
    unseen: np.ndarray | None = field(default=None, repr=False)  # rows no batch has drawn (float X only)

    @property
    def averaging_from(self):
        """The first step (over the model's life) whose weights enter the running average, or None."""
        average = self.settings.average
        return None if average is None else -(-average // self.batch)

    def chunk_limit(self) -> int:
        """Steps this model can take in the next call: at most a call's, and no further than the next
        epoch's end when validation accuracy is to be measured there."""
        chunk = min(MAX_STEPS_PER_CALL, self.total - self.done)
        if self.validation is not None:
            chunk = min(chunk, self.steps_per_epoch - self.state.steps % self.steps_per_epoch)
        return chunk


def fit(models, X, y, *, steps=None, epochs=None, shuffle=True, validation_data=None, classes=None,
        n_classes=None, owner="SoftmaxRegression"):
    """Train ``models`` (estimators) on ``(X, y)``; every argument and setting is checked before any work.

    Models may differ in any setting but backend and dtype; each batch size is a pass of
    its own. On any error every model is left as it was before the call.
    """
    models = _distinct_models(models)
    settings = [checked(m.get_params()) for m in models]
    backend, dtype = _common_backend_and_dtype(settings)
    X = validation.features(X, "X", dtype, owner=owner)
    classes = labels.given_classes(classes, n_classes)
    y = validation.targets(y, X.shape[0], "y", conversion_warning=data_conversion_warning())
    classes = labels.classes_of(y) if classes is None else classes
    y_idx = labels.encode(y, classes, "y")
    validation.flag(shuffle, "shuffle")
    checked_validation = _validation_pair(validation_data, X.shape[1], dtype, classes)
    streams = {}
    jobs = [_fit_job(model, cfg, X, classes, steps, epochs, bool(shuffle), checked_validation, streams)
            for model, cfg in zip(models, settings)]
    run(jobs, X, y_idx)
    return models


def partial_fit_job(model, X, y, classes, owner="SoftmaxRegression"):
    """One shuffled pass over a chunk ``(X, y)``, continuing from the fitted state: ``(job, X, y as indices)``."""
    cfg = checked(model.get_params())
    X = validation.features(X, "X", cfg.dtype, owner=owner)
    given = labels.given_classes(classes, None)
    y = validation.targets(y, X.shape[0], "y", conversion_warning=data_conversion_warning())
    previous = model._state
    if previous is None:
        if given is None:
            raise InputError("classes must be given on the first call to partial_fit: every label "
                             "the model will see, e.g. classes=np.unique(all_labels)")
        classes = given
    else:
        classes = previous.classes
        if given is not None and not labels.equal(given, classes):
            raise InputError(f"classes={given!r} differs from the classes the model was fitted with, {classes!r}")
        _same_model(previous, X.shape[1], classes, "partial_fit")
    y_idx = labels.encode(y, classes, "y")
    batch = _batch_for(cfg.batch_size, X.shape[0])
    stream = batch_order(cfg.seed, 0 if previous is None else previous.steps, X.shape[0])
    start = (fresh(X.shape[1], classes, cfg.dtype, cfg.average is not None, stream) if previous is None
             else continued(previous, cfg.dtype, cfg.average is not None, stream))
    job = Job(model, cfg, previous, start, -(-X.shape[0] // batch), batch, max(1, X.shape[0] // batch), True, None,
              keep_order=False)
    return job, X, y_idx


def _distinct_models(models):
    from .estimator import SoftmaxRegression

    if isinstance(models, SoftmaxRegression) or not isinstance(models, (list, tuple)):
        raise InputTypeError(f"models must be a list of SoftmaxRegression, got {validation.short(models)}")
    if not models:
        raise InputError("models is empty: give at least one SoftmaxRegression")
    for i, model in enumerate(models):
        if not isinstance(model, SoftmaxRegression):
            raise InputTypeError(f"models[{i}] is {validation.short(model)}, not a SoftmaxRegression")
    seen = {}
    for i, model in enumerate(models):
        if id(model) in seen:
            raise InputError(f"models[{i}] is the same object as models[{seen[id(model)]}]: each model can be "
                             f"trained once a call (give a copy, e.g. sklearn.base.clone(model))")
        seen[id(model)] = i
    return list(models)


def _common_backend_and_dtype(settings):
    """Models trained in one call share their backend and dtype (the kernels and X's conversion)."""
    first = settings[0]
    for i, cfg in enumerate(settings[1:], 1):
        if cfg.backend != first.backend or cfg.dtype != first.dtype:
            raise InputError(f"models[{i}] has backend={cfg.backend!r}, dtype={str(cfg.dtype)!r}, models[0] has "
                             f"backend={first.backend!r}, dtype={str(first.dtype)!r}: models trained together "
                             f"share both (fit the others in a call of their own)")
    return first.backend, first.dtype


def _fit_job(model, cfg, X, classes, steps, epochs, shuffle, checked_validation, streams, rows=None):
    """The job of ``fit`` for one model: from zero, or continuing its fitted state with ``warm_start``."""
    n_rows = X.shape[0] if rows is None else rows.size
    previous = model._state
    warm = cfg.warm_start and previous is not None
    if warm:
        _same_model(previous, X.shape[1], classes, "warm_start=True: X and y")
    total = run_length(steps, epochs, cfg, n_rows, cfg.batch_size)
    batch = _batch_for(cfg.batch_size, n_rows)
    if warm:
        stream = previous.stream
        stream = (stream.copy() if stream is not None and stream.num_examples == n_rows
                  else batch_order(cfg.seed, previous.steps, n_rows))
        start = continued(previous, cfg.dtype, cfg.average is not None, stream)
    else:
        # A fresh fit with this seed, on these rows, in the pass of this batch size: one order for all such
        # models (models of another pass draw the same order from a stream of their own).
        key = (cfg.seed, n_rows, None if rows is None else id(rows), batch)
        if cfg.seed is None or key not in streams:
            streams[key] = batch_order(cfg.seed, 0, n_rows)
        start = fresh(X.shape[1], classes, cfg.dtype, cfg.average is not None, streams[key])
    return Job(model, cfg, previous, start, total, batch, max(1, n_rows // batch), shuffle, checked_validation,
               rows=rows)


def _batch_for(batch_size, n_rows):
    if batch_size > n_rows:
        warnings.warn(f"batch_size {batch_size} is larger than the {n_rows} rows of X: each step uses all "
                      f"{n_rows}", UserWarning, stacklevel=4)
        return n_rows
    return batch_size


def _same_model(state, n_features, classes, what):
    if state.W.shape[0] != n_features:
        raise InputError(f"{what}: X has {n_features} features, but SoftmaxRegression is expecting "
                         f"{state.W.shape[0]} features as input")
    if not labels.equal(classes, state.classes):
        raise InputError(f"{what}: the labels {classes!r} differ from the fitted model's classes_ {state.classes!r}")


def _validation_pair(validation_data, n_features, dtype, classes):
    """``(X_val, y_val)`` checked before any training: X_val as the kernels take it and y_val as class
    indices (-1 for labels the model does not know; all of them unknown is refused)."""
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        length = f" of length {len(validation_data)}" if isinstance(validation_data, (tuple, list)) else ""
        raise InputTypeError(f"validation_data must be a pair (X_val, y_val), got "
                             f"{type(validation_data).__name__}{length}")
    X_val, y_val = validation_data
    X_val = validation.features(X_val, "validation_data X_val", dtype)
    if X_val.shape[1] != n_features:
        raise InputError(f"validation_data X_val has {X_val.shape[1]} features, X has {n_features}")
    y_val = validation.targets(y_val, X_val.shape[0], "validation_data y_val", one_hot_width=classes.size,
                               conversion_warning=data_conversion_warning())
    indices = labels.encode(y_val, classes, "validation_data y_val", unknown=-1)
    if np.all(indices < 0):
        raise InputError(f"validation_data y_val has none of the model's classes {classes!r} (e.g. "
                         f"{y_val[0]!r}): its accuracy would be 0 whatever the model learns")
    return X_val, indices


# ---------------------------------------------------------------------- the run


def run(jobs, X, y_idx):
    """Train every job, one pass per batch size; on any error put every model back as it was."""
    passes = {}
    for job in jobs:
        passes.setdefault(job.batch, []).append(job)
    try:
        for members in passes.values():
            _run_pass(members, X, y_idx)
        for job in jobs:
            if job.failure is None:
                _warn_if_not_learning(job.state)
    except Exception:
        for job in jobs:
            job.model._state = job.previous
        raise


def _run_pass(jobs, X, y_idx):
    kernels = jobs[0].settings.kernels
    data = kernels.stage(X, y_idx)
    batch = jobs[0].batch
    if X.dtype.kind == "f":  # rows that can hold NaN and that no batch drew are checked at the end
        for job in jobs:
            job.unseen = np.ones(X.shape[0] if job.rows is None else job.rows.size, bool)
    from tqdm.auto import tqdm  # loaded with the first training run, not with the package

    longest = max(job.total for job in jobs)
    bar = tqdm(total=longest, unit="step", disable=not _show_progress(jobs, longest), leave=False)
    try:
        while True:
            active = [job for job in jobs if job.done < job.total and job.failure is None]
            if not active:
                break
            chunk = min(job.chunk_limit() for job in active)
            _train_chunk(kernels, data, X, active, chunk, batch)
            bar.update(chunk)
        for job in jobs:
            if job.unseen is not None and job.failure is None:
                unseen = np.flatnonzero(job.unseen)
                try:
                    _refuse_nonfinite_rows(X, unseen if job.rows is None else job.rows[unseen])
                except InputError as exc:
                    _fail(job, exc)
    finally:
        bar.close()


def _train_chunk(kernels, data, X, jobs, chunk, batch):
    """One compiled call: ``chunk`` steps of every job; commits each model's new state."""
    streams, local_orders, orders, group = [], [], [], []
    for job in jobs:
        stream = job.state.stream
        if not any(stream is s for s in streams):  # one draw a group: its models share the stream object
            streams.append(stream)
            local = stream.rows(chunk * batch, job.shuffle)
            local_orders.append(local)
            orders.append(local if job.rows is None else job.rows[local])
        group.append(next(i for i, s in enumerate(streams) if s is stream))
    orders = np.stack(orders)
    W = np.stack([job.state.W for job in jobs])
    b = np.stack([job.state.b for job in jobs])
    rates = np.stack([_rates(job, chunk) for job in jobs])
    decays = np.array([job.settings.weight_decay for job in jobs])
    average, starts = _averages(jobs, chunk, W, b)
    losses = np.full((len(jobs), chunk), np.nan)
    overflowed = ()
    try:
        done, _ = kernels.train_many(*data, W, b, orders, batch, rates, decays, losses=losses, average=average,
                                     group=np.array(group, np.int64))
    except DivergenceError as exc:  # an update overflowed: W and b here are this call's copies
        if not hasattr(exc, "models"):
            raise
        done, overflowed = exc.done, exc.models
        for m in overflowed:
            first = jobs[m].state.steps
            _fail(jobs[m], DivergenceError(
                f"training diverged in steps {first}-{first + chunk - 1} ({exc}); the model is left as it was "
                f"before this fit. Try a smaller learning_rate, or scale the inputs."))
    for m, job in enumerate(jobs):
        if m in overflowed:
            continue
        first = job.state.steps
        if done[m] < chunk:
            try:
                _refuse_stopped(X, job, orders[group[m]], int(done[m]), first, losses[m], rates[m], batch)
            except (InputError, DivergenceError) as exc:
                _fail(job, exc)
                continue
        state = job.state
        W_avg, b_avg, count = state.W_avg, state.b_avg, state.average_count
        if starts[m] < chunk:
            W_avg, b_avg = average[0][m].copy(), average[1][m].copy()
            count += chunk - starts[m]
        state.history["loss"].extend(losses[m].tolist())
        stream = state.stream
        if job.done + chunk == job.total:  # the model's last chunk: its own copy of a shared order
            stream = stream.copy() if job.keep_order else None
        job.state = state._replace(W=W[m].copy(), b=b[m].copy(), W_avg=W_avg, b_avg=b_avg, average_count=count,
                                   steps=first + chunk, stream=stream)
        job.done += chunk
        if job.unseen is not None:
            job.unseen[local_orders[group[m]]] = False
        job.model._state = job.state  # one assignment: an interrupt never splits a model's state
        if job.validation is not None and (job.state.steps % job.steps_per_epoch == 0 or job.done == job.total):
            _record_validation(kernels, job)


def _fail(job, error):
    """A model's training failed: raise (the whole run is put back), or, for an isolated job, record the
    error and put this model back as it was."""
    if not job.isolate:
        raise error
    job.failure = error
    job.model._state = job.previous


def _rates(job, chunk):
    """Each step's learning rate: inverse-time decay per epoch, counted over the model's life."""
    cfg = job.settings
    steps = job.state.steps + np.arange(chunk)
    return cfg.learning_rate / (1.0 + cfg.lr_decay * steps / job.steps_per_epoch)


def _averages(jobs, chunk, W, b):
    """``train_many``'s ``average`` for this chunk (None when no model averages in it), and each model's
    first averaged step within it (``chunk``: none)."""
    starts = np.full(len(jobs), chunk, np.int64)
    for m, job in enumerate(jobs):
        if job.averaging_from is not None:
            starts[m] = min(chunk, max(0, job.averaging_from - job.state.steps))
    if np.all(starts == chunk):
        return None, starts
    W_avg, b_avg = np.zeros_like(W), np.zeros_like(b)
    counts = np.zeros(len(jobs), np.int64)
    for m, job in enumerate(jobs):
        if starts[m] < chunk:
            W_avg[m], b_avg[m], counts[m] = job.state.W_avg, job.state.b_avg, job.state.average_count
    return (W_avg, b_avg, starts, counts), starts


def _refuse_stopped(X, job, order, done, first, losses, rates, batch):
    """A model stopped at step ``done`` of the chunk (its loss was not finite): name the row, or the step."""
    if X.dtype.kind == "f":
        _refuse_nonfinite_rows(X, order[done * batch:(done + 1) * batch])
    raise DivergenceError(
        f"training diverged at step {first + done}: the loss became {losses[done]} (learning rate "
        f"{rates[done]:g}); the model is left as it was before this fit. Try a smaller learning_rate, or scale "
        f"the inputs.")


def _refuse_nonfinite_rows(X, rows):
    """Raise naming the first of ``rows`` of float X that holds NaN or infinity."""
    if rows.size == 0:
        return
    bad = ~np.isfinite(X[rows]).all(axis=1)
    if bad.any():
        raise InputError(f"X contains NaN or infinite values (first in row {int(rows[bad].min())})")


def _record_validation(kernels, job):
    X_val, y_val = job.validation
    state = job.state
    history = state.history
    if history["val_step"] and history["val_step"][-1] == state.steps:
        return
    try:
        predicted = kernels.predict(X_val, *state.prediction_weights())
    except InputError as exc:
        raise InputError(f"validation_data: {exc}") from exc
    accuracy = float(np.mean(predicted == y_val))
    history["val_step"].append(state.steps)
    history["epoch"].append(state.steps / job.steps_per_epoch)
    history["val_accuracy"].append(accuracy)
    log.info("step %d: validation accuracy %.4f", state.steps, accuracy)


def _warn_if_not_learning(state):
    """Zero weights give a loss of log(C); ending far above it means the steps overshoot."""
    recent = state.history["loss"][-100:]
    start = float(np.log(max(2, state.classes.size)))
    if recent and np.mean(recent) > 10 * start:
        warnings.warn(
            f"training did not converge: the mean loss of the last {len(recent)} steps is "
            f"{np.mean(recent):.3g}, against {start:.3g} at zero weights. Try a smaller learning_rate, "
            f"or scale the inputs (pixels are scaled to [0, 1]; float inputs are used as given).",
            ConvergenceWarning, stacklevel=5)


def _show_progress(jobs, total):
    choices = {job.settings.progress for job in jobs}
    if choices == {None}:
        return total >= 2 * MAX_STEPS_PER_CALL and sys.stderr.isatty()
    return any(choices - {None})
