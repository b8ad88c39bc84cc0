"""The command line, run as a user runs it: a subprocess."""

import json
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


def test_usage_errors_exit_2_without_traceback():
    run = cli("train", "--steps", "-3")
    assert run.returncode == 2 and "must be > 0" in run.stderr and "Traceback" not in run.stderr
    run = cli("frobnicate")
    assert run.returncode == 2 and "Traceback" not in run.stderr


def test_library_errors_exit_1_with_one_line(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"junk")
    run = cli("evaluate", str(tmp_path / "bad.npz"))
    assert run.returncode == 1 and run.stderr.startswith("error:") and "Traceback" not in run.stderr


def test_info_runs_without_cuda():
    run = cli("info")
    assert run.returncode == 0 and "cuda:" in run.stdout and "fashion-mnist" in run.stdout


@pytest.mark.realdata
def test_tutorial_example_runs(fashion_dir):
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "tutorial.py"
    run = subprocess.run([sys.executable, str(script), "--dataset", "fashion-mnist"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert 0.6 < float(run.stdout.strip()) <= 1.0
