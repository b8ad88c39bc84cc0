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
    benchmark.pedantic(run, rounds=3 if slow else 7, iterations=1)
