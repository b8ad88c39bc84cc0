"""The examples, run as a user runs them: ``python examples/NAME.py`` in a fresh process,
offline, on Fashion-MNIST; and what each says when what it needs is missing."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .realdata import REPO

EXAMPLES = REPO / "examples"
ACCURACY = r"test accuracy (\d\.\d{4})"


def run(args, *, timeout=300):
    env = {**os.environ, "FASTSOFTMAX_OFFLINE": "1"}
    return subprocess.run([sys.executable, *map(str, args)], check=False, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def run_without(module, example, *args):
    """The example in a Python where ``module`` cannot be imported (as if not installed)."""
    code = (f"import runpy, sys; sys.modules[{module!r}] = None; sys.argv = [{str(example)!r}, *{list(args)!r}]; "
            f"runpy.run_path(sys.argv[0], run_name='__main__')")
    return run(["-c", code])


def succeeded(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def refused_in_one_message(result, *phrases):
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    for phrase in phrases:
        assert phrase in result.stderr


def accuracies(text):
    return [float(a) for a in re.findall(ACCURACY, text)]


# ---------------------------------------------------------------------- tutorial.py


@pytest.mark.slow
@pytest.mark.realdata
def test_tutorial_runs_offline_and_says_why_its_figures_differ(fashion_dir):
    out = succeeded(run([EXAMPLES / "tutorial.py"]))
    lines = out.splitlines()
    assert len(lines) == 3, out
    assert "next_batch" in lines[0] and "fastsoftmax train --seed 0" in lines[1]
    assert "differ in batch order" in lines[2]
    loop, estimator = accuracies(out)
    assert 0.6 < loop < 0.9 and loop != estimator

    # The estimator's figure is the command line's, to the printed digit.
    cli = json.loads(succeeded(run(["-m", "fastsoftmax", "train", "--dataset", "fashion-mnist", "--seed", "0",
                                    "--offline", "--json"])))
    assert estimator == round(cli["test_accuracy"], 4)


def test_tutorial_without_its_dataset_says_what_to_pass(tmp_path):
    if Path("/usr/share/datasets/mnist").is_dir():
        pytest.skip("MNIST is installed in /usr/share/datasets/mnist here")
    result = run([EXAMPLES / "tutorial.py", "--dataset", "mnist", "--data_dir", tmp_path])
    refused_in_one_message(result, "dataset 'mnist': missing", "--dataset fashion-mnist")


# ---------------------------------------------------------------------- scikit_learn.py


@pytest.mark.slow
@pytest.mark.realdata
def test_scikit_learn_example(fashion_dir):
    pytest.importorskip("sklearn")
    out = succeeded(run([EXAMPLES / "scikit_learn.py"]))
    assert [line.split(":")[0] for line in out.splitlines()] == ["grid search", "pipeline", "partial_fit"]
    assert all(0.75 < a < 0.9 for a in accuracies(out)) and len(accuracies(out)) == 3


def test_scikit_learn_example_without_scikit_learn():
    result = run_without("sklearn", EXAMPLES / "scikit_learn.py")
    refused_in_one_message(result, "needs scikit-learn", 'pip install "fastsoftmax[sklearn]"')
    assert len(result.stderr.splitlines()) == 1


# ---------------------------------------------------------------------- dask_scale_out.py


@pytest.mark.slow
@pytest.mark.realdata
def test_dask_example(fashion_dir):
    for module in ("dask.array", "dask_ml.wrappers", "distributed"):
        pytest.importorskip(module)
    out = succeeded(run([EXAMPLES / "dask_scale_out.py", "--workers", "1"], timeout=180))
    assert "training set: 11 blocks of up to 5000 rows, uint8 (55000, 784)" in out
    assert "Incremental, two passes: 1100 steps" in out
    assert re.search(r"lazy predict: dask\.array<.*shape=\(10000,\)", out)
    local, on_cluster = accuracies(out)
    assert 0.8 < local < 0.9 and on_cluster == local
    assert "weights identical to the run without it" in out


def test_dask_example_without_dask():
    result = run_without("dask", EXAMPLES / "dask_scale_out.py")
    refused_in_one_message(result, "needs dask", 'pip install "fastsoftmax[dask]"')
    assert len(result.stderr.splitlines()) == 1
