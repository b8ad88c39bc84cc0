"""The command line, run as a user runs it: a subprocess."""

import json
import os
import subprocess
import sys

import pytest


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fastsoftmax", *args], capture_output=True, text=True, env=env)


@pytest.mark.realdata
def test_train_json_then_evaluate(fashion_dir, tmp_path):
    run = cli("train", "--dataset", "fashion-mnist", "--epochs", "1", "--json", "--output", str(tmp_path))
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    for key in ("test_accuracy", "validation_accuracy", "load_s", "compile_s", "train_s", "evaluate_s"):
        assert key in result
    assert result["steps"] == 550 and result["test_accuracy"] > 0.78
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.png", "curves.png", "model.npz", "weights.png"]
    evaluated = cli("evaluate", str(tmp_path / "model.npz"), "--dataset", "fashion-mnist", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(result["test_accuracy"])


@pytest.mark.realdata
def test_train_with_recommended_averaging(fashion_dir, tmp_path):
    """``--average`` alone averages the run's second half: from 50,000 of its 100,000 samples."""
    run = cli("train", "--dataset", "fashion-mnist", "--average", "--json", "--seed", "0")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["average"] == 50000 and result["steps"] == 1000 and result["test_accuracy"] >= 0.83
    plain = json.loads(cli("train", "--dataset", "fashion-mnist", "--json", "--seed", "0").stdout)
    assert plain["average"] is None and plain["test_accuracy"] < result["test_accuracy"]
    counted = json.loads(cli("train", "--dataset", "fashion-mnist", "--json", "--steps", "200", "--average", "5000",
                             "--output", str(tmp_path)).stdout)
    assert counted["average"] == 5000 and counted["steps"] == 200
    evaluated = cli("evaluate", str(tmp_path / "model.npz"), "--dataset", "fashion-mnist", "--backend", "numpy")
    assert evaluated.returncode == 0 and "Ankle boot:" in evaluated.stdout
    assert f"accuracy {counted['test_accuracy']:.4f}" in evaluated.stdout


def test_usage_errors_exit_2_without_traceback():
    run = cli("train", "--steps", "-3")
    assert run.returncode == 2 and "must be > 0" in run.stderr and "Traceback" not in run.stderr
    run = cli("train", "--average", "-5")
    assert run.returncode == 2 and "must be >= 0" in run.stderr
    run = cli("frobnicate")
    assert run.returncode == 2 and "Traceback" not in run.stderr


def test_library_errors_exit_1_with_one_line(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"junk")
    run = cli("evaluate", str(tmp_path / "bad.npz"))
    assert run.returncode == 1 and run.stderr.startswith("error:") and "Traceback" not in run.stderr
    # an output directory that cannot be made is refused before any data is loaded
    run = cli("train", "--data-dir", str(tmp_path / "nothing-here"), "--offline",
              "--output", str(tmp_path / "bad.npz" / "out"))
    assert run.returncode == 1 and run.stderr.startswith("error: --output") and "Traceback" not in run.stderr


# Makes numba-cuda look uninstalled: both its own package and the numba.cuda name it provides.
NO_CUDA = """
import sys
class NoCuda:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numba_cuda", "_numba_cuda_redirector") or name.startswith("numba.cuda"):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
sys.meta_path.insert(0, NoCuda())
"""


def test_import_info_and_cuda_request_without_numba_cuda():
    script = NO_CUDA + """
import numpy as np
import fastsoftmax
from fastsoftmax.cli import main
code = main(["info"])
model = fastsoftmax.SoftmaxRegression(backend="cuda")  # stores its settings; fit looks the backend up
try:
    model.fit(np.zeros((2, 3), np.float32), np.array([0, 1]))
except fastsoftmax.BackendUnavailableError as exc:
    print("REFUSED", exc)
raise SystemExit(code)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "NUMBA_ENABLE_CUDASIM": "0"})
    assert run.returncode == 0, run.stderr
    assert "cuda: none:" in run.stdout and "fashion-mnist" in run.stdout
    refusal = run.stdout.split("REFUSED", 1)[1]
    assert "pip install 'fastsoftmax[cuda]'" in refusal and "NUMBA_ENABLE_CUDASIM=1" in refusal


def test_info_reports_the_simulator_and_train_runs_on_it():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    run = cli("info", env=env)
    assert run.returncode == 0 and "cuda: simulated" in run.stdout


def test_cuda_without_gpu_or_simulator_is_one_clear_error():
    run = cli("train", "--backend", "cuda", "--steps", "1", env={**os.environ, "NUMBA_ENABLE_CUDASIM": "0"})
    if run.returncode == 0:
        pytest.skip("this machine has a usable GPU")
    assert run.returncode == 1 and run.stderr.startswith("error:") and "Traceback" not in run.stderr
    assert "NUMBA_ENABLE_CUDASIM=1" in run.stderr


@pytest.mark.realdata
def test_tutorial_example_runs(fashion_dir):
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "tutorial.py"
    run = subprocess.run([sys.executable, str(script), "--dataset", "fashion-mnist"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert 0.6 < float(run.stdout.strip()) <= 1.0


def test_compiling_notice_only_when_compiling_takes_long():
    """The CLI says it is compiling once its warm-up outlasts the threshold, and stays quiet otherwise."""
    import io
    import time

    from fastsoftmax.cli import _compiling_notice

    slow, fast = io.StringIO(), io.StringIO()
    with _compiling_notice(after=0.05, stream=slow):
        time.sleep(0.5)
    with _compiling_notice(after=0.5, stream=fast):
        time.sleep(0.01)
    time.sleep(0.6)  # a timer that was not cancelled would have fired by now
    assert "compiling fastsoftmax's kernels for this CPU" in slow.getvalue()
    assert fast.getvalue() == ""
