"""The standard workloads and the implementations they are measured on: one registry for
``fastsoftmax bench`` and for the pytest-benchmark suite in ``bench/``.

A *variant* is one implementation fed one kind of input (float32 images or uint8
pixels): a kernel backend from :data:`fastsoftmax.kernels.BACKENDS` called
directly (``cpu-u8``), the public API, ``SoftmaxRegression`` on the CPU backend
(``model-u8``), or a peer a user might pick instead (:mod:`.peers`: the tight
NumPy loop ``numpy-loop``, which is the baseline of every speed ratio, and JAX
and PyTorch when they are installed). A *workload* calls one operation from
:data:`fastsoftmax.kernels.OPERATIONS` on real data; every variant of it gets
the same rows and the same batch order. Operation and backend names come from
the registries the parity tests iterate over, so nothing is measured that is
not also tested (``tests/test_benchmark.py`` checks this, and that the peers
compute what the reference computes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..kernels import backend_problem, get_backend
from . import peers

F, C, BATCH, LR = 784, 10, 100, 0.5

#: Floating-point operations per row. A row's logits ``x W + b`` take a multiply and an add
#: per weight, ``2 F C``; a training row takes as much again for its share of the update
#: ``X^T (P - Y)``. So W1, 1000 steps of 100 rows, is 1000 * 100 * 4 * 784 * 10 = 3.136 GFLOP.
FORWARD_FLOPS = 2 * F * C
TRAIN_FLOPS = 2 * FORWARD_FLOPS


@dataclass(frozen=True)
class Variant:
    name: str                     # "cpu-u8"
    backend: str                  # "cpu"; for a peer, its library ("numpy", "jax", "torch")
    source: str                   # "pixels" (uint8) or "images" (float32 in [0, 1])
    implementation: str = "kernels"  # "kernels", "model" (SoftmaxRegression), or a peer from peers.LIBRARIES

    @property
    def itemsize(self) -> int:
        return 1 if self.source == "pixels" else 4

    @property
    def peer(self) -> bool:
        return self.implementation in peers.LIBRARIES


VARIANTS = (
    Variant("numpy-loop", "numpy", "images", "numpy-loop"),
    Variant("numpy-f32", "numpy", "images"),
    Variant("jax-f32", "jax", "images", "jax"),
    Variant("torch-f32", "torch", "images", "torch"),
    Variant("cpu-f32", "cpu", "images"),
    Variant("cpu-u8", "cpu", "pixels"),
    Variant("model-f32", "cpu", "images", "model"),
    Variant("model-u8", "cpu", "pixels", "model"),
    Variant("cuda-f32", "cuda", "images"),
    Variant("cuda-u8", "cuda", "pixels"),
    # Many models (the workloads' models, each the tutorial's recipe): one of them alone, all of
    # them one fit after another, all of them in one fit_many pass; a grid search, scikit-learn's
    # GridSearchCV and fastsoftmax's, on the same estimator and folds.
    Variant("one-u8", "cpu", "pixels", "one"),
    Variant("fits-u8", "cpu", "pixels", "fits"),
    Variant("many-u8", "cpu", "pixels", "many"),
    Variant("cuda-one-u8", "cuda", "pixels", "one"),
    Variant("cuda-fits-u8", "cuda", "pixels", "fits"),
    Variant("cuda-many-u8", "cuda", "pixels", "many"),
    Variant("sklearn-grid-u8", "cpu", "pixels", "sklearn-grid"),
    Variant("grid-u8", "cpu", "pixels", "grid"),
)
#: The variant every speed ratio is taken against: the tight NumPy loop.
BASELINE = "numpy-loop"


@dataclass(frozen=True)
class Workload:
    """One measured job. ``prepare(data, variant)`` does everything that must stay outside
    the timing (data conversion, device copies, JIT warm-up) and returns the call to time,
    or None when the variant has no implementation of this workload.

    ``implementations`` maps a variant's ``implementation`` ("kernels", "model", a peer)
    to its preparer. ``matmul`` marks the workloads whose cost is matrix products,
    reported as a share of the machine's measured float32 matmul peak.
    """

    name: str
    title: str
    operation: str | None               # from kernels.OPERATIONS; None for a data transfer
    rows: Callable[[dict], int]         # rows touched per call
    flops_per_row: int                  # floating-point operations per row
    implementations: dict = field(default_factory=dict)
    heavy: bool = False                 # left out by --quick
    baseline: str = BASELINE            # the variant this workload's ratios are taken against
    models: int = 1                     # models trained per call (the "one" variants train one of them)
    matmul: bool = True

    def supports(self, variant: Variant) -> bool:
        return variant.implementation in self.implementations

    def prepare(self, data: Data, variant: Variant):
        make = self.implementations.get(variant.implementation)
        return make(data, variant) if make else None

    def flops(self, data, variant: Variant | None = None) -> float:
        """Floating-point operations per call (of one model, for a variant that trains one)."""
        return float(self._rows_of(data, variant) * self.flops_per_row)

    def bytes(self, data, variant: Variant) -> float:
        """Bytes of input rows read per call: the traffic that bounds these kernels."""
        return float(self._rows_of(data, variant) * F * variant.itemsize)

    def _rows_of(self, data, variant):
        one = variant is not None and variant.implementation == "one"
        return self.rows(data) // self.models if one else self.rows(data)


class Data:
    """Real data for the workloads: a training split, its test split, the tutorial's batch order."""

    def __init__(self, datasets):
        train, test = datasets.train, datasets.test
        self.name = datasets.name
        self.train_pixels = np.ascontiguousarray(train.pixels)
        self.train_labels = train.class_indices
        self.test_pixels = np.ascontiguousarray(test.pixels)
        self.order_w1 = train.batch_order(BATCH, 1000)
        # batch_order continues next_batch's state: W2 is W1's steps and the rest of 10 epochs
        self.order_w2 = np.concatenate([self.order_w1, train.batch_order(BATCH, 5500 - 1000)])
        self._float = {}
        self._million = None

    def rows(self, which: str, variant: Variant) -> np.ndarray:
        """``which`` in "train", "test", "million", as the variant's input dtype."""
        pixels = {"train": self.train_pixels, "test": self.test_pixels}.get(which)
        if which == "million":
            pixels = self.million()
        if variant.source == "pixels":
            return pixels
        if which not in self._float:
            self._float[which] = pixels.astype(np.float32) * np.float32(1 / 255)
        return self._float[which]

    def million(self) -> np.ndarray:
        """1,000,000 rows: the training pixels repeated (the 1M-row inference workload)."""
        if self._million is None:
            self._million = np.resize(self.train_pixels, (1_000_000, F))  # repeats the rows in order
        return self._million


def trained_weights(data: Data):
    """Weights after a short real run, so inference sees realistic logits."""
    W, b = np.zeros((F, C), np.float32), np.zeros(C, np.float32)
    get_backend("cpu").train_steps(data.train_pixels, data.train_labels, W, b, data.order_w1[:20 * BATCH], BATCH, LR)
    return W, b


def _on_device(kern, X, y=None):
    """CUDA inputs are copied to the device here, outside the timing (transfers have their own workload);
    every backend has ``stage``, the identity on the CPU ones."""
    return kern.stage(X, y) if y is not None else kern.stage(X)


def _train(order_name):
    def prepare(data, variant):
        kern = get_backend(variant.backend)
        X, y = _on_device(kern, data.rows("train", variant), data.train_labels)
        order = getattr(data, order_name)

        def run():
            W, b = np.zeros((F, C), np.float32), np.zeros(C, np.float32)
            done, _ = kern.train_steps(X, y, W, b, order, BATCH, LR)
            assert done == len(order) // BATCH
            return W
        run()  # JIT warm-up
        return run
    return prepare


def _train_peer(order_name):
    def prepare(data, variant):
        make = peers.TRAIN[variant.implementation]
        return make(data.rows("train", variant), data.train_labels, getattr(data, order_name), BATCH, LR, C)
    return prepare


def _fit(order_name):
    """``SoftmaxRegression().fit``: the public API, whose defaults are the tutorial's recipe
    (learning rate 0.5, batches of 100). It draws its batches with its own seeded sampler:
    the same kind of shuffled batches as the other variants', not the same ones."""
    def prepare(data, variant):
        from ..model import SoftmaxRegression

        X, y = data.rows("train", variant), data.train_labels
        steps = len(getattr(data, order_name)) // BATCH

        def run():
            return SoftmaxRegression().fit(X, y, steps=steps)
        run()
        return run
    return prepare


def _infer(operation, which):
    def prepare(data, variant):
        kern = get_backend(variant.backend)
        W, b = trained_weights(data)
        X = _on_device(kern, data.rows(which, variant))
        fn = getattr(kern, operation)
        fn(X, W, b)
        return lambda: fn(X, W, b)
    return prepare


def _infer_peer(which, peer_table):
    def prepare(data, variant):
        make = peer_table[variant.implementation]
        fn = make(data.rows(which, variant), *trained_weights(data))
        fn()
        return fn
    return prepare


def _predict_model(which):
    def prepare(data, variant):
        from ..model import SoftmaxRegression

        model = SoftmaxRegression().fit(data.rows("train", variant), data.train_labels, steps=20)
        X = data.rows(which, variant)
        model.predict(X)
        return lambda: model.predict(X)
    return prepare


def _grad(data, variant):
    kern = get_backend(variant.backend)
    W, b = trained_weights(data)
    X, y = data.rows("test", variant), _grad_labels(data)
    X, y = _on_device(kern, X, y)
    kern.xent_grad(X, y, W, b)
    return lambda: kern.xent_grad(X, y, W, b)


def _grad_labels(data):
    return np.resize(data.train_labels, len(data.test_pixels))  # any valid labels: the cost does not depend on them


def _grad_numpy_loop(data, variant):
    return peers.numpy_grad(data.rows("test", variant), _grad_labels(data), *trained_weights(data))


def _sgd_arrays():
    rng = np.random.default_rng(0)
    W, b = np.zeros((F, C), np.float32), np.zeros(C, np.float32)
    dW, db = rng.standard_normal((F, C)).astype(np.float32) * 1e-6, np.zeros(C, np.float32)
    return W, b, dW, db


def _sgd(data, variant):
    kern = get_backend(variant.backend)
    W, b, dW, db = _sgd_arrays()
    kern.sgd_step(W, b, dW, db, LR)
    return lambda: kern.sgd_step(W, b, dW, db, LR)


def _sgd_numpy_loop(data, variant):
    return peers.numpy_sgd(*_sgd_arrays(), np.float32(LR))


def _transfer(data, variant):
    """Host-to-device copy of the training split: CUDA only (the other backends compute in place)."""
    if variant.backend != "cuda":  # the other backends' stage is the identity: they read X where it lies
        return None
    kern = get_backend(variant.backend)
    X = data.rows("train", variant)
    kern.stage(X)
    return lambda: kern.stage(X)


def _training(order_name, peer_names=("numpy-loop", "jax", "torch"), model=True):
    table = {"kernels": _train(order_name), **{p: _train_peer(order_name) for p in peer_names}}
    return {**table, "model": _fit(order_name)} if model else table


def _inference(operation, which, peer_table=None, model=False):
    table = {"kernels": _infer(operation, which)}
    table.update({p: _infer_peer(which, peer_table) for p in (peer_table or {})})
    return {**table, "model": _predict_model(which)} if model else table


# ---------------------------------------------------------------- many models

#: Learning rates of the "16 learning rates" workload: 0.02 to 1, evenly on a log scale.
MANY_RATES = tuple(float(r) for r in np.geomspace(0.02, 1.0, 16))
#: The grid of the grid-search workload (8 candidates), searched with 3 stratified folds.
GRID = {"learning_rate": [0.05, 0.1, 0.2, 0.5], "weight_decay": [0.0, 1e-4]}
GRID_FOLDS = 3


def _tutorial_models(kind, backend):
    """The workload's models, fresh: W1's recipe each (1000 steps of 100), with 16 learning rates and one
    seed, 16 seeds and one rate, or 64 seeds."""
    from ..model import SoftmaxRegression

    if kind == "rates":
        return [SoftmaxRegression(backend=backend, learning_rate=r, seed=0) for r in MANY_RATES]
    count = {"seeds": 16, "seeds64": 64}[kind]
    return [SoftmaxRegression(backend=backend, learning_rate=LR, seed=s) for s in range(count)]


def _many_models(kind):
    """Preparers of the many-model workloads: one model alone, every model one fit after another, and all of
    them through one ``fit_many``. Each call fits fresh models from zero, as a user's search does."""
    def one(data, variant):
        X, y = data.rows("train", variant), data.train_labels
        run = lambda: _tutorial_models(kind, variant.backend)[0].fit(X, y)  # noqa: E731
        run()
        return run

    def fits(data, variant):
        X, y = data.rows("train", variant), data.train_labels

        def run():
            return [model.fit(X, y) for model in _tutorial_models(kind, variant.backend)]
        run()
        return run

    def many(data, variant):
        from ..model import fit_many

        X, y = data.rows("train", variant), data.train_labels
        run = lambda: fit_many(_tutorial_models(kind, variant.backend), X, y)  # noqa: E731
        run()
        return run

    return {"one": one, "fits": fits, "many": many}


def _grid_search(which):
    """scikit-learn's ``GridSearchCV`` or fastsoftmax's, on the same estimator (W1's recipe), grid and
    ``StratifiedKFold`` folds of the training split."""
    def prepare(data, variant):
        from ..model import SoftmaxRegression
        from ..model_selection import GridSearchCV, stratified_folds

        if which == "sklearn-grid":  # a peer: skipped where scikit-learn is not installed (variant_problem)
            from sklearn.model_selection import GridSearchCV
        X, y = data.rows("train", variant), data.train_labels
        folds = stratified_folds(y, GRID_FOLDS)  # scikit-learn's StratifiedKFold(3): the same folds
        run = lambda: GridSearchCV(SoftmaxRegression(), GRID, cv=folds).fit(X, y)  # noqa: E731
        run()
        return run
    return prepare


WORKLOADS = (
    Workload("w1", "W1 tutorial run, 1000 steps of 100", "train_steps", lambda d: len(d.order_w1),
             TRAIN_FLOPS, _training("order_w1")),
    Workload("w2", "W2 ten epochs, 5500 steps of 100", "train_steps", lambda d: len(d.order_w2),
             TRAIN_FLOPS, _training("order_w2", peer_names=("numpy-loop",), model=False), heavy=True),
    Workload("forward-10k", "fused forward (probabilities), 10,000 rows", "forward",
             lambda d: len(d.test_pixels), FORWARD_FLOPS,
             _inference("forward", "test", {"numpy-loop": peers.numpy_forward})),
    Workload("predict-10k", "W3 predict 10,000 rows", "predict", lambda d: len(d.test_pixels), FORWARD_FLOPS,
             _inference("predict", "test", peers.PREDICT, model=True)),
    Workload("predict-1m", "predict 1,000,000 rows", "predict", lambda d: 1_000_000, FORWARD_FLOPS,
             _inference("predict", "million", {"numpy-loop": peers.numpy_predict}), heavy=True),
    Workload("grad-10k", "loss and gradient, 10,000 rows", "xent_grad", lambda d: len(d.test_pixels),
             TRAIN_FLOPS, {"kernels": _grad, "numpy-loop": _grad_numpy_loop}),
    Workload("sgd-step", "SGD update of W [784, 10] and b", "sgd_step", lambda d: 1, 2 * F * C,
             {"kernels": _sgd, "numpy-loop": _sgd_numpy_loop}, matmul=False),
    Workload("transfer", "host-to-device copy of the training split", None,
             lambda d: len(d.train_pixels), 0, {"kernels": _transfer}, matmul=False),
    Workload("lr16", "16 learning rates, one seed (W1 each)", "train_many", lambda d: 16 * len(d.order_w1),
             TRAIN_FLOPS, _many_models("rates"), baseline="fits-u8", models=16),
    Workload("seeds16", "16 seeds, one learning rate (W1 each)", "train_many", lambda d: 16 * len(d.order_w1),
             TRAIN_FLOPS, _many_models("seeds"), baseline="fits-u8", models=16),
    Workload("seeds64", "64 seeds, one learning rate (W1 each)", "train_many", lambda d: 64 * len(d.order_w1),
             TRAIN_FLOPS, _many_models("seeds64"), heavy=True, baseline="fits-u8", models=64),
    Workload("grid8x3", "grid search, 8 candidates x 3 folds (W1 each)", "train_many",
             lambda d: 8 * GRID_FOLDS * len(d.order_w1), TRAIN_FLOPS,
             {"sklearn-grid": _grid_search("sklearn-grid"), "grid": _grid_search("grid")},
             baseline="sklearn-grid-u8"),
)


def variant(name: str) -> Variant:
    return next(v for v in VARIANTS if v.name == name)


def workload(name: str) -> Workload:
    return next(w for w in WORKLOADS if w.name == name)


def variant_problem(v: Variant, include_simulated: bool = False):
    """Why variant ``v`` cannot run here (a message), or None when it can. A simulated GPU
    is never measured: its timings would mean nothing."""
    if v.peer:
        return peers.problem(v.implementation)
    problem = backend_problem(v.backend)
    if problem is None and v.backend == "cuda" and not include_simulated and get_backend("cuda").SIMULATED:
        problem = "the CUDA backend is only simulated here"
    return problem


def usable_variants(include_simulated: bool = False) -> list:
    """Variants that run here, in registry order."""
    return [v for v in VARIANTS if variant_problem(v, include_simulated) is None]
