"""``fastsoftmax sweep`` and ``model_selection.sweep``: a grid in one pass, each model its own fit's."""

import json

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax.cli import main
from fastsoftmax.model_selection import sweep

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def data(fashion_dir):
    return fs.read_data_sets(fashion_dir, dataset="fashion-mnist", download=False, seed=0)


def test_each_run_is_its_own_fit(data):
    train, val, test = data.train, data.validation, data.test
    runs, best, models = sweep(train.pixels, train.class_indices, val.pixels, val.class_indices,
                               learning_rate=[0.1, 0.5], weight_decay=[0.0, 1e-3], seed=[0, 3], steps=40,
                               test=(test.pixels, test.class_indices), average=1000)
    assert [(r["learning_rate"], r["weight_decay"], r["seed"]) for r in runs] == \
        [(lr, wd, s) for lr in (0.1, 0.5) for wd in (0.0, 1e-3) for s in (0, 3)]
    assert best == int(np.argmax([r["validation_accuracy"] for r in runs]))
    for run, model in zip(runs, models):
        alone = fs.SoftmaxRegression(learning_rate=run["learning_rate"], weight_decay=run["weight_decay"],
                                     seed=run["seed"], average=1000).fit(train.pixels, train.class_indices, steps=40)
        np.testing.assert_array_equal(model.coef_, alone.coef_)
        assert run["validation_accuracy"] == alone.score(val.pixels, val.class_indices)
        assert run["test_accuracy"] == alone.score(test.pixels, test.class_indices)


def test_the_command_prints_json_and_writes_the_best_model_and_picture(data, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    code = main(["sweep", "--dataset", "fashion-mnist", "--offline", "--learning-rate", "0.05,0.5",
                 "--weight-decay", "0,1e-4", "--seeds", "0-2", "--steps", "30", "--json", "--output", str(tmp_path)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["runs"]) == 12 and result["models"] == 12
    assert set(result["runs"][0]) == {"learning_rate", "weight_decay", "lr_decay", "average", "seed",
                                      "validation_accuracy", "test_accuracy"}
    best = result["best"]
    assert best["validation_accuracy"] == max(r["validation_accuracy"] for r in result["runs"])
    model = fs.SoftmaxRegression.load(tmp_path / "model.npz")
    assert model.learning_rate == best["learning_rate"] and model.seed == best["seed"]
    assert model.score(data.validation.pixels, data.validation.class_indices) == best["validation_accuracy"]
    assert (tmp_path / "sweep.png").stat().st_size > 10_000


def test_the_text_marks_the_best_run(capsys):
    assert main(["sweep", "--dataset", "fashion-mnist", "--offline", "--learning-rate", "0.1,0.2", "--seeds", "1,4",
                 "--steps", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("*") for line in lines) == 1 and lines[-1].startswith("best (*)")


@pytest.mark.parametrize("bad", [["--seeds", "a-b"], ["--seeds", "-1"], ["--learning-rate", "0.1,,0.2"],
                                 ["--learning-rate", "0,0.1"], ["--weight-decay", "-1"], ["--steps", "1.5"]])
def test_bad_grids_exit_2(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--dataset", "fashion-mnist", "--offline", *bad])
    assert exit_info.value.code == 2
