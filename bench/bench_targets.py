"""Speed floors, asserted only in benchmark runs (``--benchmark-only``), never in unit tests.

Ratios are taken in one process with the variants taking turns, a pause before
each timed call and medians of 9 (:func:`fastsoftmax.benchmark.run`), against
``numpy-loop``, the tight NumPy loop a NumPy user writes. Shares of peak are
against this machine's float32 matrix-product rate, probed in the same process
just before. The floors are for this project's 2-core x86-64 VMs (AMD Zen 4 and
Intel Sapphire Rapids); README "Performance" shows what was measured. Under
``--benchmark-disable`` each of these is skipped: the workloads themselves run
once each as smoke tests in ``bench_workloads.py``.
"""

import functools

import pytest

import fastsoftmax as fs
from fastsoftmax.benchmark import compile_times, machine, run
from fastsoftmax.benchmark.report import add_shares
from fastsoftmax.benchmark.workloads import variant, workload

ROUNDS = 9

# W1 (1000 steps of 100) through SoftmaxRegression.fit, the public API.
W1_FIT_U8_SPEEDUP = 4.0     # x numpy-loop, uint8 pixels
W1_FIT_U8_PEAK_SHARE = 0.30
W1_FIT_F32_SPEEDUP = 3.0    # x numpy-loop, float32 images
FIT_OVERHEAD = 0.10         # fit's time over the bare cpu.train_steps call, at most
# W3: predict 10,000 rows, uint8.
W3_U8_PEAK_SHARE = 0.55
# First calls in a fresh process.
COLD_TRAIN_S = 3.0          # what `fastsoftmax train` compiles, with an empty Numba cache
WARM_FIRST_CALL_S = 0.3     # the first training call, kernels loaded from the cache


@functools.cache
def _peak_gflops():
    """This machine's float32 matmul rate, probed once per run (best of its rounds)."""
    return machine.matmul_gflops()


def _measure(benchmark, data, load, names):
    if benchmark.disabled:
        pytest.skip("speed is asserted only in benchmark runs (--benchmark-only)")
    peak = _peak_gflops()
    results = add_shares(run(data, [workload(load)], [variant(n) for n in names], rounds=ROUNDS),
                         {"peak_gflops": peak})
    benchmark.extra_info.update({"peak_gflops": peak, **{f"{r['variant']}_ms": r["median_s"] * 1e3 for r in results},
                                 **{f"{r['variant']}_speedup": r["speedup"] for r in results}})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    return {r["variant"]: r for r in results}


@pytest.mark.realdata
def bench_w1_fit_against_the_numpy_loop(benchmark, data):
    """W1 through fit, uint8 and float32, against the tight NumPy loop and the bare kernel."""
    benchmark.group = "floors"
    r = _measure(benchmark, data, "w1", ("numpy-loop", "cpu-u8", "cpu-f32", "model-u8", "model-f32"))
    overhead = {dtype: r[f"model-{dtype}"]["median_s"] / r[f"cpu-{dtype}"]["median_s"] - 1 for dtype in ("u8", "f32")}
    benchmark.extra_info.update({f"fit_overhead_{dtype}": value for dtype, value in overhead.items()})
    assert r["model-u8"]["speedup"] >= W1_FIT_U8_SPEEDUP
    assert r["model-u8"]["peak_share"] >= W1_FIT_U8_PEAK_SHARE
    assert r["model-f32"]["speedup"] >= W1_FIT_F32_SPEEDUP
    assert overhead["u8"] <= FIT_OVERHEAD and overhead["f32"] <= FIT_OVERHEAD


@pytest.mark.realdata
def bench_w3_predict_share_of_peak(benchmark, data):
    """W3, predict 10,000 uint8 rows: a share of the matmul peak (recorded beside it: the public API)."""
    benchmark.group = "floors"
    r = _measure(benchmark, data, "predict-10k", ("numpy-loop", "cpu-u8", "model-u8"))
    assert r["cpu-u8"]["peak_share"] >= W3_U8_PEAK_SHARE


@pytest.mark.realdata
def bench_second_dataset_load(benchmark, data):
    """A second read_data_sets of Fashion-MNIST comes from the parsed cache (target < 50 ms)."""
    benchmark.group = "data"
    fs.read_data_sets(dataset="fashion-mnist", download=False)
    benchmark.pedantic(fs.read_data_sets, kwargs={"dataset": "fashion-mnist", "download": False}, rounds=15)
    if not benchmark.disabled:
        assert benchmark.stats.stats.median < 0.05


def bench_first_calls_cold_and_warm(benchmark):
    """Fresh processes: what `fastsoftmax train` compiles with an empty Numba cache, and the
    first training call once the cache is filled (see fastsoftmax.benchmark.compile_times)."""
    benchmark.group = "compile"
    if benchmark.disabled:
        pytest.skip("latency is asserted only in benchmark runs (--benchmark-only)")
    times = compile_times.measure(["train", "train_steps-u8"])
    benchmark.extra_info.update({f"{name}_{k}": v for name, entry in times.items() for k, v in entry.items()})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert all(entry["warm_misses"] == 0 for entry in times.values()), times
    assert times["train"]["cold_s"] <= COLD_TRAIN_S
    assert times["train_steps-u8"]["warm_s"] <= WARM_FIRST_CALL_S
