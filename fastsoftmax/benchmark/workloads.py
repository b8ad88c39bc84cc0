"""The standard workloads and the implementations they are measured on: one registry for
``fastsoftmax bench`` and for the pytest-benchmark suite in ``bench/``.

A *variant* is a kernel backend from :data:`fastsoftmax.kernels.BACKENDS` fed one
kind of input (float32 images or uint8 pixels). A *workload* calls one operation
from :data:`fastsoftmax.kernels.OPERATIONS` on real data. Both names come from
the registries the parity tests iterate over, so nothing is measured that is
not also tested (``tests/test_benchmark.py`` checks this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..kernels import backend_problem, get_backend

F, C, BATCH, LR = 784, 10, 100, 0.5


@dataclass(frozen=True)
class Variant:
    name: str     # "cpu-u8"
    backend: str  # "cpu"
    source: str   # "pixels" (uint8) or "images" (float32 in [0, 1])

    @property
    def itemsize(self) -> int:
        return 1 if self.source == "pixels" else 4


VARIANTS = (
    Variant("numpy-f32", "numpy", "images"),
    Variant("cpu-f32", "cpu", "images"),
    Variant("cpu-u8", "cpu", "pixels"),
    Variant("cuda-f32", "cuda", "images"),
    Variant("cuda-u8", "cuda", "pixels"),
)
BASELINE = "numpy-f32"


@dataclass(frozen=True)
class Workload:
    """One measured job. ``prepare(data, variant)`` does everything that must stay outside
    the timing (data conversion, device copies, JIT warm-up) and returns the call to time."""

    name: str
    title: str
    operation: str | None               # from kernels.OPERATIONS; None for a data transfer
    rows: Callable[[dict], int]         # rows touched per call
    flops_per_row: int                  # floating-point operations per row
    prepare: Callable[["Data", Variant], Callable[[], object]]
    heavy: bool = False                 # left out by --quick

    def flops(self, data) -> float:
        return float(self.rows(data) * self.flops_per_row)

    def bytes(self, data, variant: Variant) -> float:
        """Bytes of input rows read per call: the traffic that bounds these kernels."""
        return float(self.rows(data) * F * variant.itemsize)


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
    """CUDA inputs are copied to the device here, outside the timing (transfers have their own workload)."""
    stage = getattr(kern, "stage", None)
    if stage is None:
        return (X, y) if y is not None else X
    return stage(X, y) if y is not None else stage(X)


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


def _infer(operation, which):
    def prepare(data, variant):
        kern = get_backend(variant.backend)
        W, b = trained_weights(data)
        X = _on_device(kern, data.rows(which, variant))
        fn = getattr(kern, operation)
        fn(X, W, b)
        return lambda: fn(X, W, b)
    return prepare


def _grad(data, variant):
    kern = get_backend(variant.backend)
    W, b = trained_weights(data)
    X = data.rows("test", variant)
    y = np.resize(data.train_labels, len(X))  # any valid labels: the cost does not depend on them
    X, y = _on_device(kern, X, y)
    kern.xent_grad(X, y, W, b)
    return lambda: kern.xent_grad(X, y, W, b)


def _sgd(data, variant):
    kern = get_backend(variant.backend)
    rng = np.random.default_rng(0)
    W, b = np.zeros((F, C), np.float32), np.zeros(C, np.float32)
    dW, db = rng.standard_normal((F, C)).astype(np.float32) * 1e-6, np.zeros(C, np.float32)
    kern.sgd_step(W, b, dW, db, LR)
    return lambda: kern.sgd_step(W, b, dW, db, LR)


def _transfer(data, variant):
    """Host-to-device copy of the training split: CUDA only (the other backends compute in place)."""
    kern = get_backend(variant.backend)
    if not hasattr(kern, "stage"):
        return None
    X = data.rows("train", variant)
    kern.stage(X)
    return lambda: kern.stage(X)


_FWD = 2 * F * C  # one row's logits; training and gradients do as much again for the update

WORKLOADS = (
    Workload("w1", "W1 tutorial run, 1000 steps of 100", "train_steps", lambda d: len(d.order_w1),
             2 * _FWD, _train("order_w1")),
    Workload("w2", "W2 ten epochs, 5500 steps of 100", "train_steps", lambda d: len(d.order_w2),
             2 * _FWD, _train("order_w2"), heavy=True),
    Workload("forward-10k", "fused forward (probabilities), 10,000 rows", "forward",
             lambda d: len(d.test_pixels), _FWD, _infer("forward", "test")),
    Workload("predict-10k", "W3 predict 10,000 rows", "predict", lambda d: len(d.test_pixels), _FWD,
             _infer("predict", "test")),
    Workload("predict-1m", "predict 1,000,000 rows", "predict", lambda d: 1_000_000, _FWD,
             _infer("predict", "million"), heavy=True),
    Workload("grad-10k", "loss and gradient, 10,000 rows", "xent_grad", lambda d: len(d.test_pixels),
             2 * _FWD, _grad),
    Workload("sgd-step", "SGD update of W [784, 10] and b", "sgd_step", lambda d: 1, 2 * F * C, _sgd),
    Workload("transfer", "host-to-device copy of the training split", None,
             lambda d: len(d.train_pixels), 0, _transfer),
)


def variant(name: str) -> Variant:
    return next(v for v in VARIANTS if v.name == name)


def workload(name: str) -> Workload:
    return next(w for w in WORKLOADS if w.name == name)


def usable_variants(include_simulated: bool = False) -> list:
    """Variants whose backend runs here; a simulated GPU is never measured (its timings mean nothing)."""
    usable = []
    for v in VARIANTS:
        if backend_problem(v.backend) is not None:
            continue
        if v.backend == "cuda" and not include_simulated and get_backend("cuda").SIMULATED:
            continue
        usable.append(v)
    return usable
