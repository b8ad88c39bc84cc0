"""``fastsoftmax bench``: the standard workloads on every usable backend, side by side.

:mod:`.workloads` defines what is measured (also used by ``bench/``),
:mod:`.machine` what the machine can do at best, :mod:`.report` how results
are shown, saved, compared and drawn.
"""

from __future__ import annotations

import statistics
import time

from tqdm.auto import tqdm

from .machine import timings
from .workloads import (
    BASELINE,
    VARIANTS,
    WORKLOADS,
    Data,
    Workload,
    usable_variants,
    variant,
    variant_problem,
)

__all__ = ["BASELINE", "VARIANTS", "WORKLOADS", "Data", "run", "usable_variants", "variant_problem"]


def run(data: Data, workloads, variants, *, rounds: int = 7, budget_s: float = 20.0, log=None,
        progress: bool = False) -> list:
    """Time every workload on every variant; returns one dict per (workload, variant).

    The variants of a workload take turns, one call each per round, each round
    starting one variant further along, so a slow spell of the shared machine
    falls on all of them alike and the ratios, taken in one process, stay
    comparable. Before each timed call the process sleeps ``SETTLE_S``: NumPy's
    BLAS threads keep spinning after its last matrix product and would otherwise
    take the cores from whichever variant comes next (back to back, that halved
    the speed of the parallel Numba kernels). Each variant gets the median of
    its rounds. A workload whose variants would together take more than
    ``budget_s`` per round gets fewer rounds, never fewer than 3 unless fewer
    were asked for.

    Parameters
    ----------
    log : callable, optional
        Called with one line per workload once its variants are prepared: its
        place in the run, its name and title, and the variants timed (or that it
        is skipped, when none of them runs it here).
    progress : bool
        Show a tqdm progress bar on stderr over the calls (each variant's
        preparation, which compiles and warms up, and each timed call), naming
        the workload and variant at work.
    """
    workloads = list(workloads)
    planned = {load.name: [v for v in variants if load.supports(v)] for load in workloads}
    calls_per_variant = rounds + 2  # its preparation, the call that sizes the rounds, and the rounds
    total = sum(len(vs) for vs in planned.values()) * calls_per_variant
    results = []
    with tqdm(total=total, unit="call", disable=not progress, leave=False, dynamic_ncols=True) as bar:
        for k, load in enumerate(workloads, 1):
            chosen = planned[load.name]
            calls = {}
            for v in chosen:
                bar.set_description_str(f"{load.name}: preparing {v.name}", refresh=False)
                bar.update(1)
                fn = load.prepare(data, v)
                if fn is not None:
                    calls[v.name] = fn
            if log:
                log(f"[{k}/{len(workloads)}] {load.name} ({load.title}): "
                    + (f"timing {', '.join(calls)}" if calls else "skipped, no variant of it runs here"))

            def before(name, load=load):
                bar.set_description_str(f"{load.name}: {name}", refresh=False)
                bar.update(1)

            if not calls:
                bar.update(len(chosen) * (calls_per_variant - 1))
                continue
            n = _rounds_within(calls, rounds, budget_s, before=before)
            # Now the workload's real count of calls is known: fewer rounds, or variants that had none.
            bar.total += len(calls) * (n + 1) - len(chosen) * (calls_per_variant - 1)
            bar.refresh()
            results.extend(_summarise(load, data, _take_turns(calls, n, before=before)))
    return results


#: Pause before each timed call: OpenBLAS's threads spin for about 2^28 cycles (0.1 s
#: at 2.5 GHz) after NumPy's last matrix product, and would steal the cores the next
#: call needs.
SETTLE_S = 0.4


def _take_turns(calls: dict, rounds: int, before=None) -> dict:
    """``rounds`` timed calls of each of ``calls``, taking turns; ``before(name)`` is called before each."""
    names = list(calls)
    times = {name: [] for name in names}
    for k in range(rounds):
        first = k % len(names)
        for name in names[first:] + names[:first]:
            if before:
                before(name)
            time.sleep(SETTLE_S)
            times[name].extend(timings(calls[name], 1))
    return times


def _rounds_within(calls, rounds, budget_s, before=None):
    once = 0.0
    for name, fn in calls.items():
        if before:
            before(name)
        once += timings(fn, 1)[0]
    return min(rounds, max(3, int(budget_s / max(once, 1e-9))))


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
            "speedup": medians[load.baseline] / median if load.baseline in medians else None,
            "gflops": load.flops(data, v) / median / 1e9 if load.matmul else None,
            "gbs": load.bytes(data, v) / median / 1e9,
        })
    return out
