"""``GridSearchCV``: the same candidates, folds, scores and best model as scikit-learn's, from one pass."""

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax.model_selection import GridSearchCV, stratified_folds

sklearn_model_selection = pytest.importorskip("sklearn.model_selection")

GRID = {"learning_rate": [0.05, 0.1, 0.3, 0.5], "weight_decay": [0.0, 1e-3]}


@pytest.fixture(scope="module")
def fashion(fashion_dir):
    data = fs.read_data_sets(fashion_dir, dataset="fashion-mnist", download=False, validation_size=0)
    return data.train.pixels[:3000], data.train.class_indices[:3000]


def both(X, y, grid, cv, estimator=None, **kwargs):
    """(ours, scikit-learn's), fitted with the same estimator, grid and splitter."""
    estimator = estimator or fs.SoftmaxRegression(steps=60)
    ours = GridSearchCV(estimator, grid, cv=cv, **kwargs).fit(X, y)
    theirs = sklearn_model_selection.GridSearchCV(estimator, grid, cv=cv, **kwargs).fit(X, y)
    return ours, theirs


@pytest.mark.realdata
@pytest.mark.parametrize("cv", [3, sklearn_model_selection.StratifiedKFold(3), "pairs"])
def test_scores_and_best_candidate_are_scikit_learns(fashion, cv):
    X, y = fashion
    if cv == "pairs":
        cv = [(np.arange(1000, 3000), np.arange(1000)), (np.arange(2000), np.arange(2000, 3000))]
    ours, theirs = both(X, y, GRID, cv, return_train_score=True)
    for key in ("mean_test_score", "std_test_score", "rank_test_score", "mean_train_score", "split0_test_score"):
        np.testing.assert_array_equal(ours.cv_results_[key], theirs.cv_results_[key], err_msg=key)
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]
    for name in ("param_learning_rate", "param_weight_decay"):
        np.testing.assert_array_equal(ours.cv_results_[name], theirs.cv_results_[name])
    assert (ours.best_params_, ours.best_index_, ours.best_score_) == \
        (theirs.best_params_, theirs.best_index_, theirs.best_score_)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_array_equal(ours.predict_proba(X), theirs.predict_proba(X))
    assert ours.score(X, y) == theirs.score(X, y)


@pytest.mark.realdata
def test_a_grid_over_batch_sizes_seeds_and_averaging(fashion):
    """Parameters one pass cannot vary (the batch size) run as passes of their own; still scikit-learn's scores."""
    X, y = fashion
    grid = [{"batch_size": [50, 100], "seed": [0, 1]}, {"average": [True, 100], "lr_decay": [0.5]}]
    ours, theirs = both(X[:1500], y[:1500], grid, 3)
    np.testing.assert_array_equal(ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"])
    assert ours.best_params_ == theirs.best_params_


def test_stratified_folds_are_scikit_learns():
    rng = np.random.default_rng(0)
    for labels in (rng.integers(0, 5, 103), np.array(list("abcab" * 7 + "cc")), rng.integers(-3, 3, 40)):
        for k in (2, 3, 5):
            ours = stratified_folds(labels, k)
            theirs = list(sklearn_model_selection.StratifiedKFold(k).split(np.zeros((len(labels), 1)), labels))
            for (a, b), (c, d) in zip(ours, theirs, strict=True):
                np.testing.assert_array_equal(a, c)
                np.testing.assert_array_equal(b, d)


def test_a_failing_candidate_scores_error_score_as_in_scikit_learn():
    rng = np.random.default_rng(3)
    X = (rng.standard_normal((300, 6)) * 1e36).astype(np.float32)
    y = rng.integers(0, 3, 300)
    grid = {"learning_rate": [1e-40, 1e30]}
    with pytest.warns(UserWarning):
        ours = GridSearchCV(fs.SoftmaxRegression(steps=20, batch_size=10), grid, cv=3).fit(X, y)
    assert np.isfinite(ours.cv_results_["mean_test_score"][0]) and np.isnan(ours.cv_results_["mean_test_score"][1])
    assert list(ours.cv_results_["rank_test_score"]) == [1, 2] and ours.best_index_ == 0
    with pytest.raises(fs.DivergenceError):
        GridSearchCV(fs.SoftmaxRegression(steps=20, batch_size=10), grid, cv=3, error_score="raise").fit(X, y)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(param_grid={}), fs.InputError, None),
    (dict(param_grid=[]), fs.InputTypeError, "param_grid"),
    (dict(param_grid={"learning_rte": [0.1]}), fs.InputError, "learning_rte"),
    (dict(param_grid={"learning_rate": []}), fs.InputError, "non-empty list"),
    (dict(param_grid={"learning_rate": 0.1}), fs.InputError, "non-empty list"),
    (dict(param_grid={"learning_rate": [-1.0]}), fs.InputError, "learning_rate"),
    (dict(cv="five"), fs.InputTypeError, "cv must be"),
    (dict(cv=1), fs.InputError, "cv must be"),
    (dict(cv=[(np.arange(5), np.arange(5, 300))], param_grid={"seed": [0]}), None, None),
    (dict(cv=[(np.arange(5),)]), fs.InputTypeError, "pair"),
    (dict(cv=[(np.arange(5), np.array([400]))]), fs.InputError, "outside"),
    (dict(scoring=3), fs.InputTypeError, "scoring"),
    (dict(estimator="model"), fs.InputTypeError, "SoftmaxRegression"),
])
def test_bad_searches_are_refused_before_any_work(kwargs, error, words):
    rng = np.random.default_rng(1)
    X, y = rng.random((300, 5)), rng.integers(0, 3, 300)
    args = dict(estimator=fs.SoftmaxRegression(steps=5), param_grid={"learning_rate": [0.1, 0.2]}, cv=3)
    args.update(kwargs)
    if error is None:
        GridSearchCV(args.pop("estimator"), args.pop("param_grid"), **args).fit(X, y)
        return
    if kwargs.get("param_grid") == {}:  # scikit-learn allows an empty dict: one candidate, the estimator as it is
        assert GridSearchCV(args.pop("estimator"), args.pop("param_grid"), **args).fit(X, y).best_params_ == {}
        return
    with pytest.raises(error, match=words):
        GridSearchCV(args.pop("estimator"), args.pop("param_grid"), **args).fit(X, y)


def test_it_is_an_estimator_scikit_learn_can_clone():
    from sklearn.base import clone

    search = GridSearchCV(fs.SoftmaxRegression(), GRID, cv=4)
    copy = clone(search)
    assert copy.get_params()["param_grid"] == GRID and copy.cv == 4
    with pytest.raises(fs.NotFittedError):
        search.predict(np.zeros((1, 784)))
