"""Every standard workload on every variant, from the one registry ``fastsoftmax bench`` uses.

Groups are workloads (operation and shape); parameters are variants (backend or
peer, and input dtype). ``python -m pytest --benchmark-disable`` runs each once
as a smoke test; ``python -m pytest bench --benchmark-only`` measures. JIT
compilation and host-to-device copies happen in ``prepare``, outside the
timing; copies have their own group (``transfer``). CUDA variants run only on a
real GPU (the simulator's timings would mean nothing), and the JAX and PyTorch
peers only where they are installed.
"""

import time

import numpy as np
import pytest

from fastsoftmax.benchmark import SETTLE_S
from fastsoftmax.benchmark.workloads import VARIANTS, WORKLOADS, variant_problem

CASES = [pytest.param(w, v, id=f"{w.name}-{v.name}", marks=[pytest.mark.slow] if w.heavy else [])
         for w in WORKLOADS for v in VARIANTS if w.supports(v) and not (w.name == "transfer" and v.backend != "cuda")]


@pytest.mark.realdata
@pytest.mark.parametrize("load, variant", CASES)
def bench_workload(benchmark, data, load, variant):
    problem = variant_problem(variant)
    if problem:
        pytest.skip(problem)
    benchmark.group = load.title
    run = load.prepare(data, variant)  # includes the JIT warm-up and any device copies
    if not benchmark.disabled:
        time.sleep(SETTLE_S)  # let NumPy's BLAS threads stop spinning (see fastsoftmax.benchmark.run)
    slow = load.heavy and variant.backend == "numpy"
    result = benchmark.pedantic(run, rounds=3 if slow else 7, iterations=1)
    assert_plausible(load.name, result)


def assert_plausible(name, result):
    """What a workload's call returns is a real result (finite weights, labels, losses), so a smoke run
    that computes nothing fails: the in-place SGD update and the device copy return nothing."""
    if result is None:
        assert name in ("sgd-step", "transfer"), f"{name} returned nothing"
        return
    if isinstance(result, (list, tuple)):
        assert len(result) > 0
        for item in result:
            assert_plausible(name, item)
    elif hasattr(result, "best_score_"):  # a grid search
        assert np.isfinite(result.best_score_) and 0 < result.best_score_ <= 1
    elif hasattr(result, "coef_"):  # a fitted model
        assert np.isfinite(result.coef_).all() and np.abs(result.coef_).max() > 0
    elif hasattr(result, "shape") or np.isscalar(result):
        values = np.asarray(result)
        assert values.size > 0 and np.isfinite(values.astype(np.float64)).all(), f"{name}: non-finite result"
    # anything else (a staged device array) is left as it is
