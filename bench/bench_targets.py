"""Speed floors, asserted only in benchmark runs (``--benchmark-only``), never in unit tests."""

import pytest
from tests.cachecheck import package_copy, run_training

import fastsoftmax as fs
from fastsoftmax.benchmark import run
from fastsoftmax.benchmark.workloads import variant, workload


@pytest.mark.realdata
def bench_w1_speedup_over_numpy(benchmark, data):
    """The W1 ratio, measured side by side in one process (medians of 7).

    Floors guard against regressions, set below what this 2-core VM measures
    even in its slow spells (3.6-6.2x uint8, 2.7-4.3x float32); issue 3's targets
    are 5x and 3x, see README "Performance".
    """
    if benchmark.disabled:
        pytest.skip("speed is asserted only in benchmark runs (--benchmark-only)")
    results = run(data, [workload("w1")], [variant(n) for n in ("numpy-f32", "cpu-f32", "cpu-u8")], rounds=7)
    speedup = {r["variant"]: r["speedup"] for r in results}
    benchmark.extra_info.update({f"{r['variant']}_ms": r["median_s"] * 1e3 for r in results})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert speedup["cpu-u8"] >= 3.0
    assert speedup["cpu-f32"] >= 2.3


@pytest.mark.realdata
def bench_second_dataset_load(benchmark, data):
    """A second read_data_sets of Fashion-MNIST comes from the parsed cache (target < 50 ms)."""
    benchmark.group = "data"
    fs.read_data_sets(dataset="fashion-mnist", download=False)
    benchmark.pedantic(fs.read_data_sets, kwargs=dict(dataset="fashion-mnist", download=False), rounds=15)
    if not benchmark.disabled:
        assert benchmark.stats.stats.median < 0.05


def bench_first_step_from_warm_cache(benchmark, tmp_path):
    """A second process waits at most 0.5 s before its first training step (issue 3).

    A fresh copy of the package is run once to fill its kernel cache (cold), then
    three more times (warm). Reported: both first-call times, and the time from
    the first import to the end of the first call.
    """
    benchmark.group = "compile"
    if benchmark.disabled:
        pytest.skip("latency is asserted only in benchmark runs (--benchmark-only)")
    root = package_copy(tmp_path)
    cold = run_training(root, tmp_path)
    warm = [run_training(root, tmp_path) for _ in range(3)]
    warm_first_call = sorted(w["first_call_s"] for w in warm)[1]
    benchmark.extra_info.update(cold_first_call_s=cold["first_call_s"], warm_first_call_s=warm_first_call,
                                cold_to_first_step_s=cold["to_first_step_s"],
                                warm_to_first_step_s=sorted(w["to_first_step_s"] for w in warm)[1])
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert all(w["misses"] == 0 for w in warm)
    assert warm_first_call <= 0.5
