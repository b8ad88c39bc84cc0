"""What ``fastsoftmax bench`` shows while it runs: a line per workload for a log, and a tqdm bar
that names the workload and variant at work."""

import pytest

import fastsoftmax as fs
import fastsoftmax.benchmark as bench
from fastsoftmax.benchmark.workloads import Data, variant, workload

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def data(fashion_dir):
    return Data(fs.read_data_sets(dataset="fashion-mnist", download=False, seed=0))


def test_a_line_per_workload_and_a_bar_naming_each_call(data, monkeypatch, capsys):
    monkeypatch.setattr(bench, "SETTLE_S", 0.0)
    lines = []
    loads = [workload("sgd-step"), workload("transfer")]  # transfer has no variant here: said, and skipped
    results = bench.run(data, loads, [variant("numpy-loop"), variant("numpy-f32")], rounds=3, log=lines.append,
                        progress=True)
    assert lines == ["[1/2] sgd-step (SGD update of W [784, 10] and b): timing numpy-loop, numpy-f32",
                     f"[2/2] transfer ({workload('transfer').title}): skipped, no variant of it runs here"]
    assert [(r["workload"], r["variant"], r["rounds"]) for r in results] == [("sgd-step", "numpy-loop", 3),
                                                                              ("sgd-step", "numpy-f32", 3)]
    bar = capsys.readouterr().err
    assert "sgd-step: " in bar and "numpy-" in bar and "call" in bar  # tqdm redraws at most every 0.1 s


def test_no_bar_and_no_line_unless_asked(data, monkeypatch, capsys):
    monkeypatch.setattr(bench, "SETTLE_S", 0.0)
    bench.run(data, [workload("sgd-step")], [variant("numpy-loop")], rounds=1)
    assert capsys.readouterr() == ("", "")


def test_the_calls_counted_are_the_calls_made(data, monkeypatch):
    """The bar's total follows the run (fewer rounds than asked, for the budget; only the variants a
    workload has): it ends full, neither short nor over."""
    monkeypatch.setattr(bench, "SETTLE_S", 0.0)
    counted = {}
    real = bench.tqdm

    class Recording(real):
        def close(self):
            counted["n"], counted["total"] = self.n, self.total
            super().close()

    monkeypatch.setattr(bench, "tqdm", Recording)
    assert not workload("sgd-step").supports(variant("jax-f32"))
    bench.run(data, [workload("sgd-step")], [variant("numpy-loop"), variant("jax-f32"), variant("numpy-f32")],
              rounds=9, budget_s=1e-9, progress=True)
    # two variants: a preparation each, a sizing call each and 3 rounds (the budget's floor, not 9)
    assert counted == {"n": 2 * (1 + 1 + 3), "total": 2 * (1 + 1 + 3)}
