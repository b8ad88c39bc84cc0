"""The command line, run as a user runs it: a subprocess."""

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "fastsoftmax", *args], capture_output=True, text=True, env=env,
                          cwd=cwd)


def run_main(capsys, *args):
    """``fastsoftmax ARGS`` in this process (where the test can move the data and the mirrors):
    the exit status, stdout and stderr."""
    from fastsoftmax.cli import main

    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


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
    assert run.returncode == 2 and "must be >= 1" in run.stderr and "Traceback" not in run.stderr
    run = cli("train", "--average", "-5")
    assert run.returncode == 2 and "must be >= 0" in run.stderr
    run = cli("frobnicate")
    assert run.returncode == 2 and "Traceback" not in run.stderr


def test_library_errors_exit_1_with_one_line(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"junk")
    run = cli("evaluate", str(tmp_path / "bad.npz"))
    assert run.returncode == 1 and run.stderr.startswith("error:") and "Traceback" not in run.stderr
    # an output directory that cannot be made is refused before any data is loaded, and nothing is made
    run = cli("train", "--data-dir", str(tmp_path), "--offline", "--output", str(tmp_path / "bad.npz" / "out"))
    assert run.returncode == 1 and run.stderr.startswith("error: --output") and "Traceback" not in run.stderr



def test_a_run_that_fails_on_missing_data_makes_no_output_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("fastsoftmax.data.fetch.SYSTEM_DATA_ROOT", tmp_path / "none")
    code, out, err = run_main(capsys, "train", "--data-dir", str(tmp_path), "--offline",
                              "--output", str(tmp_path / "new" / "out"))
    assert code == 1 and err.startswith("error: MNIST is not on this machine")
    assert not (tmp_path / "new").exists()


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


# ---------------------------------------------------------------- a new user's first commands


def _closed_port_url():
    """A base URL on 127.0.0.1 where nothing listens: connecting is refused at once."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def mnist_unreachable(tmp_path, monkeypatch, fashion_dir):
    """This machine as a new user finds it: MNIST nowhere and its mirrors unreachable (here: a port on
    127.0.0.1 that refuses), Fashion-MNIST installed in the system directory."""
    import dataclasses

    from fastsoftmax.data.manifest import DATASETS

    system = tmp_path / "system"
    system.mkdir()
    (system / "fashion-mnist").symlink_to(fashion_dir)
    monkeypatch.setattr("fastsoftmax.data.fetch.SYSTEM_DATA_ROOT", system)
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(DATASETS["mnist"], mirrors=(_closed_port_url(),)))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.mark.realdata
def test_the_readmes_first_command_offline_ends_with_the_fix_and_leaves_nothing(mnist_unreachable, isolated_cache,
                                                                                 capsys):
    code, out, err = run_main(capsys, "train", "--output", "run/")
    lines = err.splitlines()
    assert code == 1 and out == "" and "Traceback" not in err
    assert 3 <= len(lines) <= 6, err
    assert lines[0].startswith("error: MNIST is not on this machine") and "connection refused" in lines[0]
    assert sum(line.startswith("error:") for line in lines) == 1
    suggestion = next(line for line in lines if "Fashion-MNIST is on this machine" in line)
    assert suggestion.endswith("fastsoftmax train --output run/ --dataset fashion-mnist")
    assert "--data-dir" in lines[-1] and "FASTSOFTMAX_DATA" in lines[-1]
    assert "download=True" not in err and "data_dir" not in err  # the API's words stay in the API
    # no lock files, partial files or directories in the cache, and no run/ for a run that never started
    assert list(isolated_cache.iterdir()) == []
    assert list(mnist_unreachable.iterdir()) == []

    code, out, err = run_main(capsys, "train", "--offline")
    assert code == 1 and "(not downloaded: --offline)" in err.splitlines()[0]
    assert "fastsoftmax train --offline --dataset fashion-mnist" in err and "leave out --offline" in err


@pytest.mark.realdata
def test_evaluate_without_the_test_set_names_only_the_test_files(mnist_unreachable, mnist_test_split, tmp_path,
                                                                  capsys):
    pixels, labels = mnist_test_split
    fs_model = __import__("fastsoftmax").SoftmaxRegression(backend="numpy", progress=False)
    fs_model.fit(pixels[:500], labels[:500], steps=5, n_classes=10).save(tmp_path / "m.npz")
    code, out, err = run_main(capsys, "evaluate", str(tmp_path / "m.npz"))
    assert code == 1 and err.startswith("error: MNIST's test set is not on this machine")
    assert "t10k-images-idx3-ubyte.gz" in err and "train-images" not in err
    assert f"evaluate {tmp_path / 'm.npz'} --dataset fashion-mnist" in err


@pytest.mark.parametrize("command", ["train", "evaluate", "bench"])
def test_a_data_dir_that_is_not_a_directory_is_an_error(command, tmp_path, capsys):
    """Not ignored (the data found elsewhere), whether downloading is allowed or not."""
    import numpy as np

    import fastsoftmax as fs

    (tmp_path / "a-file").write_text("x")
    model = fs.SoftmaxRegression(backend="numpy", batch_size=4, progress=False).fit(np.eye(4), [0, 1, 2, 3], steps=1)
    first = [str(model.save(tmp_path / "m.npz"))] if command == "evaluate" else []
    for folder, problem in ((tmp_path / "no" / "such" / "folder", "no such directory"),
                            (tmp_path / "a-file", "not a directory")):
        for offline in ([], ["--offline"]):
            code, out, err = run_main(capsys, command, *first, "--dataset", "fashion-mnist", "--data-dir", str(folder),
                                      *offline)
            assert code == 1 and err == f"error: --data-dir {folder}: {problem}\n"
    assert not (tmp_path / "no").exists()


@pytest.mark.realdata
def test_evaluate_needs_only_the_two_test_files(mnist_dir, mnist_test_split, tmp_path, capsys):
    """MNIST's test files alone (as in shared/data/mnist: no training images) are enough."""
    import numpy as np

    import fastsoftmax as fs

    pixels, labels = mnist_test_split
    model = fs.SoftmaxRegression(backend="numpy", progress=False).fit(pixels[:2000], labels[:2000], steps=50)
    model.save(tmp_path / "m.npz")
    assert not (mnist_dir / "train-images-idx3-ubyte.gz").exists()
    code, out, err = run_main(capsys, "evaluate", str(tmp_path / "m.npz"), "--data-dir", str(mnist_dir),
                              "--offline", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["accuracy"] == pytest.approx(model.score(pixels, labels))
    assert np.array(result["confusion_matrix"]).sum() == 10000 and result["unknown_classes"] == []


@pytest.mark.realdata
@pytest.mark.parametrize("labels_as", ["subset", "names", "digit strings", "more classes"])
def test_evaluate_a_model_of_other_classes(labels_as, mnist_dir, mnist_test_split, tmp_path, capsys):
    """A model trained on some classes, on the class names, or with classes the dataset lacks: test images
    of classes it does not know count as wrong, and the matrix and the per-class figures say which."""
    import numpy as np

    import fastsoftmax as fs

    pixels, labels = mnist_test_split
    X, y = pixels[:3000], labels[:3000]
    if labels_as == "subset":
        keep = np.isin(y, [0, 3, 7])
        X, y = X[keep], y[keep]
    elif labels_as == "names":
        y = np.array(["zero", "one", "two", "three", "4", "5", "6", "7", "8", "9"])[y]  # 0-3 unknown to MNIST
    elif labels_as == "digit strings":
        y = y.astype(str)
    else:
        y = np.where(y == 9, 12, y)  # a class 12 instead of 9
    model = fs.SoftmaxRegression(backend="numpy", progress=False).fit(X, y, steps=60)
    model.save(tmp_path / "m.npz")
    code, out, err = run_main(capsys, "evaluate", str(tmp_path / "m.npz"), "--data-dir", str(mnist_dir),
                              "--offline", "--json")
    assert code == 0, err
    result = json.loads(out)
    known = {"subset": [0, 3, 7], "names": [4, 5, 6, 7, 8, 9], "digit strings": list(range(10)),
             "more classes": list(range(9))}[labels_as]
    predicted = model.predict(pixels)
    as_digit = {label: k for k in range(10) for label in (k, str(k))}
    right = np.array([as_digit.get(p) == t for p, t in zip(predicted.tolist(), labels.tolist())])
    assert result["accuracy"] == pytest.approx(right.mean())
    assert result["unknown_classes"] == [str(k) for k in range(10) if k not in known]
    matrix = np.array(result["confusion_matrix"])
    assert matrix.shape == (10, len(model.classes_)) and matrix.sum() == 10000
    assert sorted(map(str, result["model_classes"])) == sorted(map(str, model.classes_.tolist()))
    for k in range(10):
        expected = right[labels == k].mean() if k in known else 0.0
        assert result["per_class_accuracy"][k] == pytest.approx(expected)
    code, out, err = run_main(capsys, "evaluate", str(tmp_path / "m.npz"), "--data-dir", str(mnist_dir), "--offline")
    assert code == 0 and f"accuracy {result['accuracy']:.4f}" in out
    if result["unknown_classes"]:
        assert f"does not know {len(result['unknown_classes'])} of the test set's classes" in out


def _help_texts():
    from fastsoftmax.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    return [(None, parser)] + list(commands.choices.items())


def test_help_describes_every_command_and_option_with_its_default():
    import argparse

    top = _help_texts()[0][1].format_help()
    assert "``" not in top and all(name in top for name in ("train", "evaluate", "info", "bench"))
    for name, parser in _help_texts():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help text"
            default = action.default
            if action.option_strings and default is not None and default is not False \
                    and default != argparse.SUPPRESS:
                assert f"(default: {default})" in text, f"{name} {action.option_strings}: default not shown"


def test_options_named_after_a_parameter_take_its_default_from_the_parameter_table():
    from fastsoftmax.model.parameters import BY_NAME

    found = {}
    for command, parser in _help_texts()[1:]:
        for action in parser._actions:
            name = action.dest
            if name in BY_NAME and name not in ("steps", "epochs", "average"):  # the CLI's own run length
                found[command, name] = action.default
    assert {"batch_size", "learning_rate", "lr_decay", "weight_decay", "backend", "dtype", "seed"} <= \
        {name for command, name in found if command == "train"}
    for (command, name), default in found.items():
        table = BY_NAME[name].default
        if (command, name) in (("sweep", "learning_rate"), ("evaluate", "backend")):
            continue  # the sweep's own grid of rates around the tutorial's; evaluate's default: the model's own
        assert default == ([table] if isinstance(default, list) else table), (command, name)


@pytest.mark.parametrize("args, words", [
    (("--steps", "1.5"), "argument --steps: must be a whole number >= 1, got '1.5'"),
    (("--seed", "-1"), "argument --seed: must be >= 0, got -1"),
    (("--batch-size", "0"), "argument --batch-size: must be >= 1"),
    (("--learning-rate", "1e400"), "argument --learning-rate: must be a finite number > 0"),
    (("--epochs", "nan"), "argument --epochs: must be a finite number > 0"),
    (("--lr-decay", "-0.5"), "argument --lr-decay: must be >= 0"),
    (("--weight-decay", "x"), "argument --weight-decay: must be a number >= 0, got 'x'"),
    (("--average", "2.5"), "argument --average: must be a whole number >= 0"),
])
def test_wrong_arguments_exit_2_saying_what_is_wrong(args, words, capsys):
    code, out, err = run_main(capsys, "train", *args)
    assert code == 2 and words in err and "invalid" not in err and "Traceback" not in err


@pytest.mark.realdata
def test_a_warning_is_one_line(fashion_dir):
    run = cli("train", "--dataset", "fashion-mnist", "--steps", "20", "--learning-rate", "1e9", "--backend", "numpy",
              "--offline")
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: training did not converge"), run.stderr


@pytest.mark.realdata
def test_train_reports_its_whole_recipe(fashion_dir, capsys):
    args = ("train", "--dataset", "fashion-mnist", "--steps", "10", "--backend", "numpy", "--offline",
            "--lr-decay", "0.25", "--weight-decay", "0.001")
    code, out, err = run_main(capsys, *args, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["lr_decay"] == 0.25 and result["weight_decay"] == 0.001
    code, out, err = run_main(capsys, *args)
    assert code == 0 and "lr decay 0.25, weight decay 0.001" in out.splitlines()[0]


# Makes matplotlib look uninstalled.
NO_MATPLOTLIB = """
import sys
class NoMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "matplotlib":
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
sys.meta_path.insert(0, NoMatplotlib())
"""


def test_bench_plot_without_matplotlib_is_refused_before_the_run(tmp_path):
    script = NO_MATPLOTLIB + f"""
from fastsoftmax.cli import main
raise SystemExit(main(["bench", "--plot", {str(tmp_path / 'x.png')!r}, "--workloads", "sgd-step", "--offline"]))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith("error: --plot needs matplotlib") and "fastsoftmax[plot]" in run.stderr
    assert len(run.stderr.splitlines()) == 1 and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_bench_refuses_a_file_it_could_not_write_before_the_run(option, tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    for target, problem in ((tmp_path, "is a directory"), (tmp_path / "a-file" / "out", "is not a directory")):
        code, out, err = run_main(capsys, "bench", option, str(target), "--workloads", "sgd-step", "--offline")
        assert code == 1 and err.startswith(f"error: {option} {target}:") and problem in err
        assert "measuring" not in err and out == ""


@pytest.mark.realdata
def test_bench_shows_progress_and_ends_for_users(fashion_dir):
    run = cli("bench", "--workloads", "sgd-step,predict-10k", "--variants", "numpy-loop,numpy-f32", "--quick",
              "--rounds", "1", "--offline")
    assert run.returncode == 0, run.stderr
    started = [line for line in run.stderr.splitlines() if line.startswith("[")]  # not a terminal: a line each
    assert [line.split(" (")[0] for line in started] == ["[1/2] predict-10k", "[2/2] sgd-step"]
    assert all(line.endswith("): timing numpy-loop, numpy-f32") for line in started)
    ending = run.stdout.rsplit("fastest here", 1)[1].splitlines()
    assert any(line.startswith("  SGD update") and ("numpy-loop (" in line or "numpy-f32 (" in line)
               for line in ending)
    assert ending[-1].startswith("--json FILE keeps these figures")


@pytest.mark.parametrize("args", [("train", "--output", ""), ("train", "--data-dir", ""), ("evaluate", ""),
                                  ("bench", "--json", ""), ("bench", "--plot", ""), ("bench", "--compare", "")])
def test_an_empty_path_is_a_wrong_argument_not_the_current_directory(args, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, *args)
    assert code == 2 and "must name a file or directory, got an empty string" in err
    assert list(tmp_path.iterdir()) == []


def test_a_reader_that_stops_early_ends_the_output_quietly():
    """``fastsoftmax info | head -1``: no traceback from the closed pipe."""
    proc = subprocess.Popen([sys.executable, "-m", "fastsoftmax", "info"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read()
    proc.wait(timeout=120)
    proc.stderr.close()
    assert proc.returncode == 141 and err == ""


@pytest.fixture(scope="module")
def evaluate_places(tmp_path_factory, mnist_dir):
    """Good and bad models and data directories for the evaluate sweep."""
    import numpy as np

    import fastsoftmax as fs

    root = tmp_path_factory.mktemp("evaluate-sweep")
    rng = np.random.default_rng(0)
    fs.SoftmaxRegression(backend="numpy", batch_size=10, progress=False).fit(
        rng.integers(0, 256, (40, 784), dtype=np.uint8), rng.integers(0, 10, 40), steps=2).save(root / "model.npz")
    fs.SoftmaxRegression(backend="numpy", batch_size=10, progress=False).fit(
        rng.random((40, 5)), rng.integers(0, 3, 40), steps=2).save(root / "narrow.npz")
    (root / "junk.npz").write_bytes(b"junk")
    (root / "empty.npz").write_bytes(b"")
    (root / "a-file").write_text("x")
    (root / "empty-dir").mkdir()
    return root, {"mnist": str(mnist_dir), "missing": str(root / "no-such"), "file": str(root / "a-file"),
                  "empty dir": str(root / "empty-dir"), "none": None}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=st.sampled_from(["model.npz", "narrow.npz", "junk.npz", "empty.npz", "no-such.npz", "empty-dir", "."]),
       data_dir=st.sampled_from(["mnist", "missing", "file", "empty dir", "none"]),
       dataset=st.sampled_from(["mnist", "fashion-mnist"]), backend=st.sampled_from([None, "numpy", "cpu"]),
       as_json=st.booleans())
def test_evaluate_sweep_exits_0_1_or_2_with_one_error_line(model, data_dir, dataset, backend, as_json,
                                                            evaluate_places, capsys, monkeypatch):
    root, dirs = evaluate_places
    monkeypatch.setenv("FASTSOFTMAX_OFFLINE", "1")
    args = ["evaluate", str(root / model), "--dataset", dataset]
    args += ["--data-dir", dirs[data_dir]] if dirs[data_dir] else []
    args += ["--backend", backend] if backend else []
    args += ["--json"] if as_json else []
    code, out, err = run_main(capsys, *args)
    assert "Traceback" not in err
    if code == 0:
        result = json.loads(out) if as_json else None
        assert result is None or 0 <= result["accuracy"] <= 1
    else:
        assert code in (1, 2), err
        assert out == "" and sum(line.startswith("error:") or ": error:" in line for line in err.splitlines()) == 1
