"""``fastsoftmax bench`` and the workload registry it shares with ``bench/``."""

import json
import os
import subprocess
import sys

import pytest

from fastsoftmax.benchmark.workloads import VARIANTS, WORKLOADS
from fastsoftmax.kernels import BACKENDS, OPERATIONS


def run_bench(*args):
    # The real CUDA state of the machine: a simulated GPU must not be timed.
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    return subprocess.run([sys.executable, "-m", "fastsoftmax", "bench", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_only_tested_operations_and_backends_are_measured():
    assert {w.operation for w in WORKLOADS} - {None} <= set(OPERATIONS)
    assert {v.backend for v in VARIANTS} <= set(BACKENDS)
    assert len({w.name for w in WORKLOADS}) == len(WORKLOADS)


@pytest.mark.realdata
def test_bench_table_json_compare_and_plot(fashion_dir, tmp_path):
    out, png = tmp_path / "out.json", tmp_path / "speedups.png"
    run = run_bench("--workloads", "w1,predict-10k,sgd-step", "--rounds", "3", "--json", str(out),
                    "--plot", str(png), "--offline")
    assert run.returncode == 0, run.stderr
    for text in ("numpy-f32", "cpu-u8", "vs numpy", "% peak", "% bw", "GFLOP/s", "GB/s"):
        assert text in run.stdout
    saved = json.loads(out.read_text())
    assert saved["machine"]["peak_gflops"] > 0 and saved["machine"]["bandwidth_gbs"] > 0
    rows = {(r["workload"], r["variant"]): r for r in saved["results"]}
    assert {("w1", "numpy-f32"), ("w1", "cpu-f32"), ("w1", "cpu-u8")} <= set(rows)
    assert rows[("w1", "numpy-f32")]["speedup"] == 1.0
    assert rows[("w1", "cpu-u8")]["speedup"] > 0 and 0 < rows[("w1", "cpu-u8")]["peak_share"] < 2
    assert png.stat().st_size > 1000

    again = run_bench("--workloads", "sgd-step", "--rounds", "3", "--compare", str(out), "--offline")
    assert again.returncode == 0, again.stderr
    assert "then ms" in again.stdout and "sgd-step" in again.stdout.split("then ms", 1)[1]


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
