"""``fastsoftmax bench``: the standard workloads on every usable backend, side by side.

:mod:`.workloads` defines what is measured (also used by ``bench/``),
:mod:`.machine` what the machine can do at best, :mod:`.report` how results
are shown, saved, compared and drawn.
"""

from __future__ import annotations

import statistics
import time

from .machine import timings
from .workloads import BASELINE, VARIANTS, WORKLOADS, Data, Workload, usable_variants, variant

__all__ = ["run", "Data", "VARIANTS", "WORKLOADS", "BASELINE", "usable_variants"]


def run(data: Data, workloads, variants, *, rounds: int = 7, budget_s: float = 20.0, log=None) -> list:
    """Time every workload on every variant; returns one dict per (workload, variant).

    The variants of a workload are timed one after another, all rounds of one
    before the next: interleaving them call by call was tried, and NumPy's BLAS
    threads, still spinning after each NumPy call, then halved the speed of the
    parallel Numba kernels that followed (hence also a pause, ``SETTLE_S``,
    before each variant). Each variant gets the median of its
    rounds. A workload whose variants would together take more than
    ``budget_s`` per round get fewer rounds, never fewer than 3.
    """
    results = []
    for load in workloads:
        calls = {}
        for v in variants:
            if log:
                log(f"preparing {load.name} on {v.name}")
            fn = load.prepare(data, v)
            if fn is not None:
                calls[v.name] = fn
        if not calls:
            continue
        n = _rounds_within(calls, rounds, budget_s)
        times = {name: _time(fn, n) for name, fn in calls.items()}
        results.extend(_summarise(load, data, times))
    return results


#: Pause before each variant's rounds: OpenBLAS's threads spin for about 2^28 cycles
#: after NumPy's last matrix product, and would steal the core Numba's threads need.
SETTLE_S = 0.3


def _time(fn, rounds):
    time.sleep(SETTLE_S)
    return timings(fn, rounds)


def _rounds_within(calls, rounds, budget_s):
    once = sum(timings(fn, 1)[0] for fn in calls.values())
    return max(3, min(rounds, int(budget_s / max(once, 1e-9))))


def _summarise(load: Workload, data, times) -> list:
    out = []
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        v = variant(name)
        median = medians[name]
        q = statistics.quantiles(t, n=4) if len(t) >= 2 else [median, median, median]
        out.append({
            "workload": load.name, "title": load.title, "variant": name, "backend": v.backend,
            "rounds": len(t), "median_s": median, "iqr_s": q[2] - q[0], "min_s": min(t),
            "speedup": medians[BASELINE] / median if BASELINE in medians else None,
            "gflops": load.flops(data) / median / 1e9 if load.flops_per_row else None,
            "gbs": load.bytes(data, v) / median / 1e9,
        })
    return out
