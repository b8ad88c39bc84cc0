"""``fastsoftmax bench``, the workload registry it shares with ``bench/``, and the README tables."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax.benchmark import compile_times, peers, report
from fastsoftmax.benchmark.machine import results_name
from fastsoftmax.benchmark.workloads import (
    BASELINE,
    BATCH,
    LR,
    VARIANTS,
    WORKLOADS,
    Data,
    trained_weights,
    variant,
    variant_problem,
    workload,
)
from fastsoftmax.kernels import BACKENDS, OPERATIONS, get_backend

ROOT = Path(__file__).resolve().parent.parent
SAVED_RUNS = sorted((ROOT / "bench" / "results").glob("*.json"))


def run_bench(*args):
    # The real CUDA state of the machine: a simulated GPU must not be timed.
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    return subprocess.run([sys.executable, "-m", "fastsoftmax", "bench", *args], check=False, capture_output=True,
                          text=True, env=env, timeout=600)


def test_only_tested_operations_and_backends_are_measured():
    assert {w.operation for w in WORKLOADS} - {None} <= set(OPERATIONS)
    assert {v.backend for v in VARIANTS if not v.peer} <= set(BACKENDS)
    assert len({w.name for w in WORKLOADS}) == len(WORKLOADS)
    assert len({v.name for v in VARIANTS}) == len(VARIANTS)


def test_every_ratio_has_its_baseline_and_peers_cover_w1_and_w3():
    assert variant(BASELINE).peer and variant(BASELINE).source == "images"
    assert all(w.supports(variant(BASELINE)) for w in WORKLOADS if w.name != "transfer" and w.baseline == BASELINE)
    assert all(w.supports(variant(w.baseline)) for w in WORKLOADS if w.name != "transfer")
    for name in ("lr16", "seeds16"):  # many models: against one fit and against all of them in a row
        assert [workload(name).supports(variant(v)) for v in ("one-u8", "fits-u8", "many-u8")] == [True] * 3
    for name in ("jax-f32", "torch-f32", "model-u8", "model-f32"):
        assert workload("w1").supports(variant(name)) and workload("predict-10k").supports(variant(name))
    assert not workload("sgd-step").supports(variant("jax-f32"))


def test_w1_is_3_136_gflop():
    steps = SimpleNamespace(order_w1=np.zeros(1000 * BATCH, np.int64))
    assert workload("w1").flops(steps) == 1000 * 100 * 4 * 784 * 10 == 3.136e9
    assert workload("w1").matmul and workload("predict-10k").matmul and not workload("sgd-step").matmul


@pytest.fixture(scope="module")
def short_data(fashion_dir):
    """Fashion-MNIST with W1 cut to its first 20 steps (same rows, same batches). At learning rate
    0.5 longer runs are chaotic: after 50 steps even float64 and float32 differ by 0.06."""
    data = Data(fs.read_data_sets(fashion_dir, dataset="fashion-mnist", seed=0, download=False, cache=False))
    data.order_w1 = data.order_w1[:20 * BATCH]
    return data


@pytest.mark.realdata
@pytest.mark.parametrize("name", [v.name for v in VARIANTS if v.implementation in peers.TRAIN])
def test_peers_compute_what_the_reference_computes(short_data, name):
    problem = variant_problem(variant(name))
    if problem:
        pytest.skip(problem)
    images = short_data.rows("train", variant(name))
    W, b = np.zeros((784, 10), np.float32), np.zeros(10, np.float32)
    get_backend("numpy").train_steps(images, short_data.train_labels, W, b, short_data.order_w1, BATCH, LR)
    trained = np.asarray(workload("w1").prepare(short_data, variant(name))())
    assert trained.dtype == np.float32 and trained.shape == W.shape
    # 20 steps in float32 by another summation order differ by about 1e-6 (|W| <= 0.2); other
    # batches or another learning rate would differ by 0.1
    np.testing.assert_allclose(trained, W, rtol=0, atol=5e-5 * np.abs(W).max())

    test = short_data.rows("test", variant(name))
    expected = get_backend("numpy").predict(test, *trained_weights(short_data))
    predicted = np.asarray(workload("predict-10k").prepare(short_data, variant(name))())
    assert np.mean(predicted == expected) > 0.999  # ties within rounding may go either way


def test_variants_take_turns_and_rounds_are_honoured(monkeypatch):
    import fastsoftmax.benchmark as bench

    monkeypatch.setattr(bench, "SETTLE_S", 0.0)
    calls = []
    times = bench._take_turns({name: (lambda n=name: calls.append(n)) for name in "abc"}, 3)
    assert calls == list("abcbcacab") and all(len(t) == 3 for t in times.values())
    assert bench._rounds_within({"a": lambda: None}, 1, 20.0) == 1


def test_results_name_comes_from_the_machine_probe():
    zen4 = {"cpu": "AMD EPYC", "cpu_vendor": "AuthenticAMD", "cpu_family": 25, "cpu_model": 17,
            "cpu_microarchitecture": "Zen 4", "logical_cores": 2}
    assert results_name(zen4) == "cpu-amd-epyc-zen4-2core"
    spr = {"cpu": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", "cpu_vendor": "GenuineIntel", "cpu_family": 6,
           "cpu_model": 143, "cpu_microarchitecture": "Sapphire Rapids", "logical_cores": 2}
    assert results_name(spr) == "cpu-intel-xeon-platinum-8481c-sapphire-rapids-2core"
    unknown = {**zen4, "cpu_family": 99, "cpu_microarchitecture": None, "logical_cores": 4}
    assert results_name(unknown) == "cpu-amd-epyc-family99-model17-4core"


def test_saved_runs_are_named_after_their_machine():
    for path in SAVED_RUNS:
        machine = report.load(path)["machine"]
        if "cpu_vendor" in machine:  # runs saved before the probe knew the vendor are named by hand
            assert path.stem == results_name(machine)


def test_readme_tables_are_generated_from_the_saved_runs():
    assert SAVED_RUNS
    tables = report.readme_tables(SAVED_RUNS, ROOT)
    readme = (ROOT / "README.md").read_text()
    assert f"{report.BEGIN}\n{tables}\n{report.END}" in readme, (
        "README.md's performance tables are out of date: python -m fastsoftmax.benchmark.report bench/results/*.json")
    for path in SAVED_RUNS:
        assert f"`bench/results/{path.name}`" in tables and f"--json bench/results/{path.name}" in tables


def test_readme_writer_replaces_only_the_marked_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{report.BEGIN}\nstale\n{report.END}\nafter\n")
    saved = tmp_path / "run.json"
    saved.write_text(SAVED_RUNS[0].read_text())
    assert report.main(["--readme", str(readme), "--check", str(saved)]) == 1
    assert "stale" in readme.read_text()
    assert report.main(["--readme", str(readme), str(saved)]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n") and text.endswith(f"{report.END}\nafter\n") and "stale" not in text
    assert "| workload |" in text and "`run.json`" in text
    assert report.main(["--readme", str(readme), "--check", str(saved)]) == 0
    (tmp_path / "bad.md").write_text("no markers")
    assert report.main(["--readme", str(tmp_path / "bad.md"), str(saved)]) == 1


@pytest.mark.slow
@pytest.mark.realdata
def test_bench_table_json_compare_and_plot(fashion_dir, tmp_path):
    out, png = tmp_path / "out.json", tmp_path / "speedups.png"
    run = run_bench("--workloads", "w1,predict-10k,sgd-step", "--variants", "numpy-loop,numpy-f32,cpu-u8,model-u8",
                    "--quick", "--rounds", "3", "--json", str(out), "--plot", str(png), "--offline")
    assert run.returncode == 0, run.stderr
    for text in ("numpy-loop", "numpy-f32", "cpu-u8", "model-u8", "vs baseline", "% peak", "% bw", "GFLOP/s", "GB/s"):
        assert text in run.stdout
    saved = json.loads(out.read_text())
    machine = saved["machine"]
    assert machine["peak_gflops"] > 0 and machine["bandwidth_gbs"] > 0 and "compile" not in machine
    assert f"{results_name(machine)}.json" in run.stdout
    assert saved["settings"]["baseline"] == "numpy-loop" and saved["date"]
    rows = {(r["workload"], r["variant"]): r for r in saved["results"]}
    assert {("w1", "numpy-loop"), ("w1", "numpy-f32"), ("w1", "cpu-u8"), ("w1", "model-u8"),
            ("predict-10k", "model-u8"), ("sgd-step", "numpy-loop")} <= set(rows)
    assert rows[("w1", "numpy-loop")]["speedup"] == 1.0 and rows[("w1", "numpy-loop")]["rounds"] == 3
    assert rows[("w1", "cpu-u8")]["speedup"] > 0 and 0 < rows[("w1", "cpu-u8")]["peak_share"] < 2
    assert rows[("sgd-step", "cpu-u8")]["gflops"] is None and rows[("sgd-step", "cpu-u8")]["peak_share"] is None
    assert png.stat().st_size > 1000
    table = report.markdown(report.load(out), "bench/results/x.json")
    assert "`numpy-loop`" in table and "`model-u8`" in table and "speed-up over `numpy-loop`" in table
    assert "--quick --json bench/results/x.json" in table

    again = run_bench("--workloads", "sgd-step", "--quick", "--rounds", "3", "--compare", str(out), "--offline")
    assert again.returncode == 0, again.stderr
    assert "then ms" in again.stdout and "sgd-step" in again.stdout.split("then ms", 1)[1]


@pytest.mark.slow
def test_bench_refuses_bad_arguments_before_running(tmp_path):
    run = run_bench("--workloads", "w9")
    assert run.returncode == 2 and "unknown w9" in run.stderr and "Traceback" not in run.stderr
    (tmp_path / "junk.json").write_text("{}")
    run = run_bench("--compare", str(tmp_path / "junk.json"))
    assert run.returncode == 1 and "not a fastsoftmax bench --json file" in run.stderr
    run = run_bench("--variants", "cuda-u8", "--offline")
    if run.returncode == 0:
        pytest.skip("this machine has a GPU")
    assert run.returncode == 1 and "cannot run here" in run.stderr


@pytest.mark.slow
def test_compile_probe_compiles_cold_and_loads_warm():
    times = compile_times.measure(["predict-u8"])["predict-u8"]
    assert times["cold_misses"] >= 1 and times["warm_misses"] == 0 and times["warm_hits"] >= 1
    assert times["cold_s"] > times["warm_s"] > times["call_s"] >= 0
    payload = report.load(SAVED_RUNS[0])
    payload["machine"]["compile"] = {"predict-u8": times}
    table = report.markdown(payload, "run.json")
    assert f"| `predict-u8` | {times['cold_s']:.2f} s |" in table and "Compile times were not recorded" not in table


@pytest.mark.realdata
def test_many_model_workloads_fit_what_their_models_fit_alone(short_data, monkeypatch):
    """The pass and the fits in a row give each model the same weights (checked here on 20 steps)."""
    from fastsoftmax.benchmark import workloads

    original = workloads._tutorial_models
    monkeypatch.setattr(workloads, "_tutorial_models",
                        lambda kind, backend: [m.set_params(steps=20) for m in original(kind, backend)][:4])
    for name in ("lr16", "seeds16"):
        fits = workload(name).prepare(short_data, variant("fits-u8"))()
        many = workload(name).prepare(short_data, variant("many-u8"))()
        assert len(fits) == len(many) == 4
        for a, b in zip(fits, many):
            np.testing.assert_array_equal(a.coef_, b.coef_)
