"""Pickles and model files written by fastsoftmax 0.1.0 load, predict and continue training as they did.

The files in ``tests/fixtures/`` were written by release 0.1.0
(``tests/fixtures/make_release_fixtures.py``), with what it predicted and the
weights it reached when it continued training from them. The CPU backend gives the
same bits on every run and thread count, so everything here is compared bitwise.
"""

import pickle
from pathlib import Path

import numpy as np
import pytest

import fastsoftmax as fs

FIXTURES = Path(__file__).resolve().parent / "fixtures"
make = pytest.importorskip("tests.fixtures.make_release_fixtures")


@pytest.fixture(scope="module")
def expected():
    with np.load(FIXTURES / "release-0.1.0-expected.npz") as archive:
        return dict(archive)


def read(name, how):
    path = FIXTURES / f"release-0.1.0-{name}.{how}"
    return pickle.loads(path.read_bytes()) if how == "pkl" else fs.SoftmaxRegression.load(path)


@pytest.mark.parametrize("how", ["pkl", "npz"])
@pytest.mark.parametrize("name", ["warm", "names"])
def test_release_files_predict_as_they_did(expected, name, how):
    X, _, X_float, _ = make.problem()
    model = read(name, how)
    rows = X if name == "warm" else X_float
    assert isinstance(model, fs.SoftmaxRegression)
    np.testing.assert_array_equal(model.predict_proba(rows), expected[f"{name}_proba"])
    np.testing.assert_array_equal(model.predict(rows), expected[f"{name}_predict"])


@pytest.mark.parametrize("how, key", [("pkl", "pickle"), ("npz", "file")])
def test_release_files_continue_training_as_they_did(expected, how, key):
    """A pickle continues its own batch order; a file's model draws one of its own, as before."""
    X, y, _, _ = make.problem()
    model = read("warm", how)
    model.set_params(progress=False)
    model.fit(X, y, steps=41)
    np.testing.assert_array_equal(model.coef_, expected[f"continued_{key}_coef"])
    np.testing.assert_array_equal(model.intercept_, expected[f"continued_{key}_intercept"])
    assert model.n_iter_ == int(expected[f"continued_{key}_steps"]) == 64
