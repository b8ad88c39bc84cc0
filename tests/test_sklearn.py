"""SoftmaxRegression as a scikit-learn estimator: scikit-learn's own estimator checks, clone,
pickle, deepcopy, GridSearchCV and Pipeline on real MNIST rows, labels of any kind."""

import copy
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

import fastsoftmax as fs

with warnings.catch_warnings():
    # scikit-learn warns that the class does not inherit from its BaseEstimator: on purpose,
    # scikit-learn stays optional; these checks are what that base class would guarantee.
    warnings.filterwarnings("ignore", "Estimator SoftmaxRegression does not inherit", UserWarning)
    ESTIMATOR_CHECKS = parametrize_with_checks([fs.SoftmaxRegression(),
                                                fs.SoftmaxRegression(backend="numpy", average=True)])


@pytest.mark.filterwarnings("ignore:batch_size .* is larger than")
@pytest.mark.filterwarnings("ignore::fastsoftmax.ConvergenceWarning")
@ESTIMATOR_CHECKS
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _data(seed=0, n=240, labels=(3, 7, 9)):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 8)).astype(np.float32)
    y = np.asarray(labels)[np.argmax(X[:, :len(labels)], axis=1)]
    return X, y


@pytest.mark.parametrize("average", [False, True, 1500])
def test_clone_pickle_and_deepcopy_predict_exactly_alike(average):
    X, y = _data()
    model = fs.SoftmaxRegression(batch_size=20, steps=150, average=average, learning_rate=0.3).fit(X, y)
    expected_labels, expected_proba = model.predict(X), model.predict_proba(X)
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        np.testing.assert_array_equal(other.predict(X), expected_labels)
        assert other.predict_proba(X).tobytes() == expected_proba.tobytes()
    fresh = clone(model)
    assert fresh.get_params() == model.get_params() and not hasattr(fresh, "coef_")
    assert fresh.fit(X, y).predict_proba(X).tobytes() == expected_proba.tobytes()


def test_params_are_stored_as_given_and_checked_by_fit():
    model = fs.SoftmaxRegression(learning_rate=-1, backend="tpu")  # no error yet: __init__ only stores
    assert model.get_params()["learning_rate"] == -1 and is_classifier(model)
    X, y = _data()
    with pytest.raises(fs.InputError, match="unknown backend 'tpu'"):
        model.fit(X, y)
    with pytest.raises(fs.InputError, match="learning_rate must be finite and > 0, got -1"):
        model.set_params(backend="numpy").fit(X, y)
    with pytest.raises(fs.InputError, match="Invalid parameter 'learning_rte'"):
        model.set_params(learning_rte=0.1)
    model.set_params(learning_rate=0.2, steps=20, batch_size=10)
    assert model.fit(X, y).n_iter_ == 20 and model.steps_done == 20
    assert repr(model) == "SoftmaxRegression(backend='numpy', learning_rate=0.2, batch_size=10, steps=20)"


def test_fitted_attributes_follow_scikit_learn():
    X, y = _data()
    model = fs.SoftmaxRegression(batch_size=20, steps=100)
    with pytest.raises(Exception, match="not fitted"):
        check_is_fitted(model)
    assert not hasattr(model, "classes_") and model.steps_done == 0
    model.fit(X, y)
    check_is_fitted(model)
    np.testing.assert_array_equal(model.classes_, [3, 7, 9])
    assert model.coef_.shape == (3, 8) and model.intercept_.shape == (3,) and model.n_features_in_ == 8
    np.testing.assert_array_equal(model.W, model.coef_.T)
    np.testing.assert_array_equal(model.b, model.intercept_)
    assert set(model.predict(X)) <= {3, 7, 9} and model.score(X, y) > 0.8
    # predict_proba's columns follow classes_
    np.testing.assert_array_equal(model.classes_[model.predict_proba(X).argmax(axis=1)], model.predict(X))


@pytest.mark.parametrize("labels", [("cat", "dog"), (-1.0, 2.0, 10.0), (False, True), (100, 200, 300, 400)])
def test_any_sortable_labels(labels):
    X, y = _data(labels=labels)
    model = fs.SoftmaxRegression(batch_size=20, steps=200).fit(X, y)
    np.testing.assert_array_equal(model.classes_, np.unique(y))
    assert model.predict(X).dtype == np.unique(y).dtype
    assert model.score(X, y) > 0.8
    # the same run as indices 0..C-1: the labels are only names
    indexed = fs.SoftmaxRegression(batch_size=20, steps=200).fit(X, np.searchsorted(np.unique(y), y))
    np.testing.assert_array_equal(model.coef_, indexed.coef_)


def test_labels_3_and_7_make_a_two_class_model():
    X, y = _data(labels=(3, 7))
    model = fs.SoftmaxRegression(batch_size=20, steps=50).fit(X, y)
    assert model.coef_.shape[0] == 2 and set(np.unique(model.predict(X))) <= {3, 7}


@pytest.mark.realdata
def test_grid_search_and_pipeline_on_real_mnist_rows(mnist_test_split):
    pixels, labels = mnist_test_split
    X, y, X_test, y_test = pixels[:3000], labels[:3000], pixels[8000:], labels[8000:]
    search = GridSearchCV(fs.SoftmaxRegression(steps=150), {"learning_rate": [0.005, 0.5]}, cv=3)
    search.fit(X, y)
    assert search.best_params_ == {"learning_rate": 0.5}
    assert search.best_estimator_.score(X_test, y_test) >= 0.85
    pipeline = make_pipeline(StandardScaler(), fs.SoftmaxRegression(steps=150, learning_rate=0.05))
    scores = cross_val_score(pipeline, X.astype(np.float32), y, cv=3)
    assert scores.min() >= 0.8
    assert pipeline.fit(X.astype(np.float32), y).score(X_test.astype(np.float32), y_test) >= 0.85


@pytest.mark.realdata
@pytest.mark.slow
def test_scikit_learn_example_runs(fashion_dir):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "scikit_learn.py"
    run = subprocess.run([sys.executable, str(script), "--dataset", "fashion-mnist"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    accuracies = [float(line.rsplit(" ", 1)[1]) for line in run.stdout.strip().splitlines()]
    assert len(accuracies) == 3 and min(accuracies) >= 0.8
