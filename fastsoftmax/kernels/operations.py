"""The operation registry: what every backend computes, how to call it on a test problem, and how
closely its results must match the reference's.

One table, two consumers (as numbagg's ``COMPARISONS``): the parity tests draw random
problems and compare each backend's results with the NumPy reference's for every entry
here, and the benchmark workloads name the operation they time through
:func:`operation`, so nothing is benchmarked that is not tested, and a misspelt name
fails when the workloads are imported.

Each entry's ``call`` takes a backend module and a :class:`Problem` and returns the
operation's results by name, with every output array the call writes into filled with
NaN (or a sentinel) beforehand, so a result left unwritten cannot pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

#: How closely results must match the reference, per dtype: probabilities, losses and weights.
TOLERANCE = {np.dtype(np.float32): dict(rtol=2e-4, atol=2e-5), np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12)}
#: The value unwritten outputs are filled with.
POISON = {np.dtype(np.float32): np.float32(np.nan), np.dtype(np.float64): np.float64(np.nan),
          np.dtype(np.int64): np.int64(-12345)}


@dataclass(frozen=True)
class Problem:
    """Inputs for one call of every operation, drawn together so each sees consistent shapes.

    One model: X ``[N, F]``, y ``[N]``, W ``[F, C]``, b ``[C]``, a batch order of ``steps``
    batches with per-step rates and a weight decay, gradients dW, db, and a running
    average to continue (``average``: W_avg, b_avg, start, count). Many models (``models``
    of them, on ``groups`` batch orders): ``W_many [M, F, C]`` and the rest with a leading
    model axis.
    """

    X: np.ndarray
    y: np.ndarray
    W: np.ndarray
    b: np.ndarray
    batch: int
    order: np.ndarray
    rates: np.ndarray
    weight_decay: float
    dW: np.ndarray
    db: np.ndarray
    average: tuple
    W_many: np.ndarray
    b_many: np.ndarray
    orders: np.ndarray
    group: np.ndarray
    rates_many: np.ndarray
    decays_many: np.ndarray

    @property
    def dtype(self) -> np.dtype:
        return self.W.dtype


def make_problem(seed, rows, features, classes, dtype, pixels, batch, steps, models=3, groups=2) -> Problem:
    """A random problem: uint8 pixels or standard-normal floats, weights scaled like a trained model's."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    X = rng.integers(0, 256, (rows, features), dtype=np.uint8) if pixels \
        else rng.standard_normal((rows, features)).astype(dtype)
    weights = lambda *shape: (rng.standard_normal(shape) / np.sqrt(features)).astype(dtype)  # noqa: E731
    average = (weights(features, classes), weights(classes), int(rng.integers(0, steps + 2)),
               int(rng.integers(0, 4)))
    return Problem(
        X=X, y=rng.integers(0, classes, rows), W=weights(features, classes), b=weights(classes), batch=batch,
        order=rng.integers(0, rows, batch * steps), rates=rng.uniform(0.05, 0.5, steps),
        weight_decay=float(rng.choice([0.0, 1e-3])), dW=weights(features, classes), db=weights(classes),
        average=average, W_many=weights(models, features, classes), b_many=weights(models, classes),
        orders=rng.integers(0, rows, (groups, batch * steps)), group=rng.integers(0, groups, models),
        rates_many=rng.uniform(0.05, 0.5, (models, steps)), decays_many=rng.choice([0.0, 1e-3], models))


def poisoned(shape, dtype):
    return np.full(shape, POISON[np.dtype(dtype)], dtype)


def _forward(kernels, p):
    out = poisoned((p.X.shape[0], p.W.shape[1]), p.dtype)
    returned = kernels.forward(_staged(kernels, p.X), p.W, p.b, out=out)
    return {"probabilities": out, "returned_out": returned is out}


def _predict(kernels, p):
    out = poisoned(p.X.shape[0], np.int64)
    returned = kernels.predict(_staged(kernels, p.X), p.W, p.b, out=out)
    return {"labels": out, "returned_out": returned is out}


def _predict_many(kernels, p):
    out = poisoned((p.W_many.shape[0], p.X.shape[0]), np.int64)
    returned = kernels.predict_many(_staged(kernels, p.X), p.W_many, p.b_many, out=out)
    return {"labels": out, "returned_out": returned is out}


def _xent_loss(kernels, p):
    return {"loss": kernels.xent_loss(*_staged(kernels, p.X, p.y), p.W, p.b)}


def _xent_grad(kernels, p):
    dW, db = poisoned(p.W.shape, p.dtype), poisoned(p.b.shape, p.dtype)
    loss, dW_out, db_out = kernels.xent_grad(*_staged(kernels, p.X, p.y), p.W, p.b, dW=dW, db=db)
    return {"loss": loss, "dW": dW, "db": db, "returned_out": dW_out is dW and db_out is db}


def _sgd_step(kernels, p):
    W, b = p.W.copy(), p.b.copy()
    kernels.sgd_step(W, b, p.dW, p.db, 0.25)
    return {"W": W, "b": b}


def _xent_sgd_step(kernels, p):
    W, b = p.W.copy(), p.b.copy()
    rows = p.order[:p.batch]
    loss = kernels.xent_sgd_step(p.X[rows], p.y[rows], W, b, float(p.rates[0]), p.weight_decay)
    return {"loss": loss, "W": W, "b": b}


def _train_steps(kernels, p):
    W, b = p.W.copy(), p.b.copy()
    W_avg, b_avg, start, count = (a.copy() if isinstance(a, np.ndarray) else a for a in p.average)
    losses = poisoned(p.rates.size, np.float64)
    done, returned = kernels.train_steps(*_staged(kernels, p.X, p.y), W, b, p.order, p.batch, p.rates,
                                         p.weight_decay, losses=losses, average=(W_avg, b_avg, start, count))
    return {"done": done, "losses": losses, "W": W, "b": b, "W_avg": W_avg, "b_avg": b_avg,
            "returned_out": returned is losses}


def _train_many(kernels, p):
    W, b = p.W_many.copy(), p.b_many.copy()
    losses = poisoned(p.rates_many.shape, np.float64)
    done, _ = kernels.train_many(*_staged(kernels, p.X, p.y), W, b, p.orders, p.batch, p.rates_many,
                                 p.decays_many, losses=losses, group=p.group)
    return {"done": done, "losses": losses, "W": W, "b": b}


def _stage(kernels, p):
    X, y = kernels.stage(p.X, p.y)
    return {"probabilities": kernels.forward(X, p.W, p.b)}


def _staged(kernels, X, y=None):
    """The inputs as the backend's ``stage`` makes them (the same arrays on the CPU backends)."""
    return kernels.stage(X) if y is None else kernels.stage(X, y)


@dataclass(frozen=True)
class Operation:
    """One entry of the registry.

    Attributes
    ----------
    name : str
        The function every backend module defines under this name.
    call : callable ``(kernels, Problem) -> dict``
        Runs the backend's function on the problem; returns its results by name.
    exact : tuple of str
        Results compared exactly (step counts, flags) rather than within :data:`TOLERANCE`.
    compare : callable, optional
        ``(got, want, problem)`` for results that need their own comparison (predict's
        ties); the others are compared with :func:`numpy.testing.assert_allclose`.
    """

    name: str
    call: Callable
    exact: tuple = ("done", "returned_out")
    compare: Callable | None = field(default=None, compare=False)


def _near_maximal_labels(got, want, p):
    """Labels of predict: ties within rounding may break either way, so the logit of each chosen class
    must be (near) its row's largest."""
    assert got["returned_out"], "predict did not return its out array"
    _assert_near_maximal(got["labels"], p.X, p.W, p.b, p.dtype)


def _near_maximal_labels_many(got, want, p):
    """predict_many: each model's labels as :func:`_near_maximal_labels` checks predict's."""
    assert got["returned_out"], "predict_many did not return its out array"
    for m in range(p.W_many.shape[0]):
        _assert_near_maximal(got["labels"][m], p.X, p.W_many[m], p.b_many[m], p.dtype)


def _assert_near_maximal(labels, X, W, b, dtype):
    from . import reference

    z = reference.logits(X, W, b)
    tol = TOLERANCE[dtype]["atol"]
    assert labels.min() >= 0, "a row's label was left unwritten"
    chosen = z[np.arange(len(labels)), labels]
    assert np.all(chosen >= z.max(axis=1) - 10 * tol * (1 + np.abs(z).max(axis=1))), "a label is not a maximum"


REGISTRY = {op.name: op for op in (
    Operation("forward", _forward),
    Operation("predict", _predict, compare=_near_maximal_labels),
    Operation("xent_loss", _xent_loss),
    Operation("xent_grad", _xent_grad),
    Operation("sgd_step", _sgd_step),
    Operation("xent_sgd_step", _xent_sgd_step),
    Operation("train_steps", _train_steps),
    Operation("train_many", _train_many),
    Operation("predict_many", _predict_many, compare=_near_maximal_labels_many),
    Operation("stage", _stage),
)}

#: The functions every backend module defines, in registry order.
OPERATIONS = tuple(REGISTRY)


def operation(name: str) -> Operation:
    """The registry's entry for ``name``; a name not in it raises ``KeyError`` naming the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"no operation {name!r} in the kernel registry; known: {', '.join(REGISTRY)}") from None


def assert_matches(op: Operation, got: dict, want: dict, problem: Problem) -> None:
    """Assert a backend's results of ``op`` match the reference's: exactly, within the dtype's tolerance,
    or by the operation's own comparison."""
    if op.compare is not None:
        op.compare(got, want, problem)
        return
    assert got.keys() == want.keys()
    for key, value in want.items():
        if key in op.exact:
            np.testing.assert_array_equal(got[key], value, err_msg=f"{op.name}: {key}")
        else:
            np.testing.assert_allclose(got[key], value, err_msg=f"{op.name}: {key}", **TOLERANCE[problem.dtype])
