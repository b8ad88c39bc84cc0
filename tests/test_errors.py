"""Bad input at every public entry point: one clear library error naming the argument, or a
correct result; never a wrong answer returned silently."""

import warnings

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax.errors import FastSoftmaxError
from fastsoftmax.kernels import BACKENDS

from .conftest import kernels_or_skip

rng = np.random.default_rng(42)
X = rng.random((24, 6)).astype(np.float32)
Y = np.arange(24) % 3
W = (rng.standard_normal((6, 3)) * 0.1).astype(np.float32)
B = np.zeros(3, np.float32)


def with_nan(row=5):
    bad = X.copy()
    bad[row, 2] = np.nan
    return bad


def with_inf(row=7):
    bad = X.copy()
    bad[row, 0] = np.inf
    return bad


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("make_bad, row", [(with_nan, 5), (with_inf, 7)])
def test_kernels_refuse_non_finite_rows_naming_them(backend, make_bad, row):
    kern = kernels_or_skip(backend)
    bad = make_bad()
    for call in (lambda: kern.forward(bad, W, B), lambda: kern.predict(bad, W, B)):
        with pytest.raises(fs.InputError, match=f"X row {row} gives non-finite logits"):
            call()
    for call in (lambda: kern.xent_loss(bad, Y, W, B), lambda: kern.xent_grad(bad, Y, W, B)):
        with pytest.raises(fs.InputError, match=f"loss is|X row {row} gives non-finite logits"):
            call()


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_kernels_refuse_overflowing_inputs(backend):
    kern = kernels_or_skip(backend)
    huge = X * np.float32(1e37)
    with pytest.raises(fs.InputError, match="overflows float32"):
        kern.predict(huge, W * 1e3, B)


BAD_KERNEL_ARGS = [
    (lambda k: k.forward(X, np.where(W > 0, np.nan, W).astype(np.float32), B), fs.InputError, "W contains NaN"),
    (lambda k: k.forward(X, W, np.array([0, np.inf, 0], np.float32)), fs.InputError, "b contains NaN"),
    (lambda k: k.forward(X[:, :5], W, B), fs.InputError, r"X must have shape \(N, 6\)"),
    (lambda k: k.forward(X[:0], W, B), fs.InputError, "X is empty"),
    (lambda k: k.forward(X.astype(np.float64), W, B), fs.InputTypeError, "uint8 pixels or float32"),
    (lambda k: k.forward(X.tolist(), W, B), fs.InputTypeError, "X must be a numpy array"),
    (lambda k: k.forward(X, W.astype(np.int32), B), fs.InputTypeError, "W must be float32 or float64"),
    (lambda k: k.xent_loss(X, Y + 1, W, B), fs.InputError, r"labels in \[1, 3\], expected \[0, 3\)"),
    (lambda k: k.xent_loss(X, Y[:-1], W, B), fs.InputError, r"y must have shape \(24,\)"),
    (lambda k: k.xent_loss(X, Y.astype(float), W, B), fs.InputTypeError, "integer array"),
    (lambda k: k.train_steps(X, Y, W.copy(), B.copy(), np.arange(30), 10, 0.5), fs.InputError,
     "order has indices in"),
    (lambda k: k.train_steps(X, Y, W.copy(), B.copy(), np.arange(24), 0, 0.5), fs.InputError,
     "batch_size must be a positive integer"),
    (lambda k: k.train_steps(X, Y, W.copy(), B.copy(), np.arange(24), 5, 0.5), fs.InputError,
     "not a multiple of batch_size"),
    (lambda k: k.train_steps(X, Y, W.copy(), B.copy(), np.arange(24), 8, np.nan), fs.InputError,
     "learning_rate must be finite"),
    (lambda k: k.train_steps(X, Y, _read_only(W), B.copy(), np.arange(24), 8, 0.5), fs.InputError,
     "W is updated in place"),
    (lambda k: k.train_steps(X, Y, np.asfortranarray(np.zeros((6, 3), np.float32)), B.copy(), np.arange(24),
                             8, 0.5), fs.InputError, "W is updated in place"),
]


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("call, error, message", BAD_KERNEL_ARGS)
def test_kernel_wrappers_name_the_bad_argument(backend, call, error, message):
    kern = kernels_or_skip(backend)
    with pytest.raises(error, match=message):
        call(kern)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_non_contiguous_and_read_only_inputs_are_read_correctly(backend):
    kern = kernels_or_skip(backend)
    wide = np.zeros((24, 12), np.float32)
    wide[:, ::2] = X
    strided, fortran, frozen = wide[:, ::2], np.asfortranarray(X), _read_only(X)
    expected = fs.kernels.reference.forward(X, W, B)
    for variant in (strided, fortran, frozen):
        np.testing.assert_allclose(kern.forward(variant, W, B), expected, rtol=1e-5, atol=1e-6)


BAD_FIT = [
    (dict(X=X, y=Y[:-1]), "y has 23 rows, X has 24"),
    (dict(X=X[:0], y=Y[:0]), "non-empty"),
    (dict(X=with_nan(), y=Y), r"NaN or infinite values \(first in row 5\)"),
    (dict(X=X, y=np.eye(3)[Y] * 0.5), "not one-hot"),
    (dict(X=np.full((24, 6), "a"), y=Y), "X"),
    (dict(X=X, y=Y, validation_data=X), r"validation_data must be a pair \(X_val, y_val\)"),
    (dict(X=X, y=Y, validation_data=(X[:, :5], Y)), "validation_data X_val has 5 features"),
    (dict(X=X, y=Y, validation_data=(X, Y[:3])), "validation_data y_val has 3 rows"),
    (dict(X=X, y=Y, validation_data=(with_nan(), Y)), "NaN"),
    (dict(X=X, y=Y, steps=0), "steps must be a positive integer"),
    (dict(X=X, y=Y, steps=3, epochs=1), "steps or epochs, not both"),
    (dict(X=X, y=Y, epochs=-1), "epochs must be finite"),
]


@pytest.mark.parametrize("kwargs, message", BAD_FIT)
def test_fit_refuses_bad_input_before_training(kwargs, message):
    model = fs.SoftmaxRegression(batch_size=4)
    with pytest.raises(FastSoftmaxError, match=message):
        model.fit(**kwargs)
    assert model.steps_done == 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(batch_size=4.0), "batch_size must be a positive integer"),
    (dict(learning_rate=-1), "learning_rate must be finite and > 0"),
    (dict(learning_rate=float("nan")), "learning_rate must be finite"),
    (dict(weight_decay=float("nan")), "weight_decay must be finite"),
    (dict(weight_decay=-1e-3), "weight_decay must be finite and >= 0"),
    (dict(dtype="float16"), "dtype must be"),
    (dict(backend="tpu"), "unknown backend 'tpu'"),
    (dict(lr_decay="fast"), "lr_decay must be a real number"),
    (dict(steps=-1), "steps must be a positive integer"),
])
def test_fit_refuses_bad_settings_before_training(kwargs, message):
    model = fs.SoftmaxRegression(**kwargs)  # stores its settings only, as scikit-learn's estimators do
    with pytest.raises(FastSoftmaxError, match=message):
        model.fit(X, Y)
    assert not hasattr(model, "coef_")


def test_labels_of_any_sign_and_object_arrays_of_numbers_are_data_not_errors():
    signed = Y - 1  # -1, 0, 1: class labels, mapped by classes_
    model = fs.SoftmaxRegression(batch_size=4).fit(X, signed, steps=20)
    np.testing.assert_array_equal(model.classes_, [-1, 0, 1])
    assert set(model.predict(X)) <= {-1, 0, 1}
    plain = fs.SoftmaxRegression(batch_size=4).fit(X, Y, steps=20)
    np.testing.assert_array_equal(model.W, plain.W)  # the same problem, other names
    boxed = fs.SoftmaxRegression(batch_size=4).fit(X.astype(object), Y, steps=20)
    np.testing.assert_array_equal(boxed.W, fs.SoftmaxRegression(batch_size=4).fit(X.astype(np.float64), Y,
                                                                                   steps=20).W)
    with pytest.raises(fs.InputTypeError, match="X must hold numbers"):
        fs.SoftmaxRegression().fit(np.full((24, 6), "a", object), Y)
    with pytest.raises(fs.InputError, match=r"y has label \S*7\)?, not among the classes"):
        fs.SoftmaxRegression().fit(X, np.where(Y == 2, 7, Y), classes=[0, 1, 2])


def test_predict_and_score_refuse_bad_input():
    model = fs.SoftmaxRegression(batch_size=4).fit(X, Y, steps=10)
    with pytest.raises(fs.InputError, match="X row 5 gives non-finite logits"):
        model.predict(with_nan())
    with pytest.raises(fs.InputError, match="X has 5 features"):
        model.predict_proba(X[:, :5])
    with pytest.raises(fs.InputError, match="y has 23 rows|23"):
        model.score(X, Y[:-1])
    # labels the model never saw are scored as wrong, as scikit-learn's accuracy does
    unseen = np.arange(24) % 7
    assert model.score(X, unseen) == pytest.approx(np.mean(model.predict(X) == unseen))
    # handled, not refused: Fortran order, strided views and float64 give the float32 answer
    expected = model.predict_proba(X)
    wide = np.zeros((24, 12), np.float32)
    wide[:, 1::2] = X
    for variant in (np.asfortranarray(X), wide[:, 1::2], X.astype(np.float64)):
        np.testing.assert_allclose(model.predict_proba(variant), expected, rtol=1e-5)


def test_an_unfitted_model_raises_not_fitted_error_of_the_library_and_of_scikit_learn():
    from fastsoftmax.errors import NotFittedError
    from fastsoftmax.model import NotFittedError as from_model

    assert fs.NotFittedError is NotFittedError is from_model
    assert issubclass(NotFittedError, FastSoftmaxError) and issubclass(NotFittedError, fs.InputError)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    model = fs.SoftmaxRegression()
    assert not hasattr(model, "coef_") and not hasattr(model, "classes_")
    for call in (lambda: model.predict(X), lambda: model.predict_proba(X), lambda: model.score(X, Y),
                 lambda: model.coef_, lambda: model.save("never-written.npz")):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            call()
    sklearn_exceptions = pytest.importorskip("sklearn.exceptions")
    with pytest.raises(sklearn_exceptions.NotFittedError, match="not fitted yet"):
        model.predict(X)


def test_read_data_sets_refuses_bad_arguments_before_looking_for_files(tmp_path):
    for kwargs, error, message in [
            (dict(validation_size=1.5), fs.InputTypeError, "validation_size must be an integer >= 0"),
            (dict(validation_size=-1), fs.InputError, "validation_size must be an integer >= 0"),
            (dict(seed="x"), fs.InputTypeError, "seed must be None or an integer >= 0"),
            (dict(seed=-2), fs.InputError, "seed must be None or an integer >= 0"),
            (dict(dataset="cifar"), fs.InputError, "unknown dataset 'cifar'")]:
        with pytest.raises(error, match=message):
            fs.read_data_sets(tmp_path / "empty", download=False, **kwargs)


# ---------------------------------------------------------------- numerics


def test_tiny_inputs_train_correctly():
    small = X * np.float32(1e-6)
    model = fs.SoftmaxRegression(batch_size=4).fit(small, Y, steps=50)
    # inputs of 1e-6 barely move the logits: the run is the bias-only run on zero inputs
    blank = fs.SoftmaxRegression(batch_size=4).fit(np.zeros_like(X), Y, steps=50)
    assert np.all(np.isfinite(model.W)) and np.abs(model.W).max() < 1e-4
    np.testing.assert_allclose(model.history["loss"], blank.history["loss"], rtol=1e-4)
    np.testing.assert_allclose(model.b, blank.b, atol=1e-5)


def test_huge_inputs_warn_or_refuse_never_succeed_silently():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = fs.SoftmaxRegression(batch_size=4).fit(X * np.float32(1e6), Y, steps=100)
        except fs.DivergenceError:
            return
    assert any(issubclass(w.category, fs.ConvergenceWarning) for w in caught)
    assert np.all(np.isfinite(model.W))


@pytest.mark.parametrize("rate", [1e3, 1e30])
def test_extreme_learning_rates_warn_or_refuse(rate):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = fs.SoftmaxRegression(batch_size=4, learning_rate=rate).fit(X * 50, Y, steps=200)
        except fs.DivergenceError as exc:
            assert "smaller learning_rate" in str(exc)
            return
    assert any(issubclass(w.category, fs.ConvergenceWarning) for w in caught)
    assert np.all(np.isfinite(model.W))


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_equal_logits_and_a_single_class(backend):
    kern = kernels_or_skip(backend)
    flat = np.zeros((6, 3), np.float32)
    np.testing.assert_allclose(kern.forward(X[:5], flat, B), np.full((5, 3), 1 / 3), rtol=1e-6)
    assert kern.xent_loss(X[:5], Y[:5], flat, B) == pytest.approx(np.log(3), rel=1e-6)
    one = np.zeros((6, 1), np.float32)
    np.testing.assert_allclose(kern.forward(X, one, np.zeros(1, np.float32)), 1.0)
    assert kern.xent_loss(X, np.zeros(24, int), one, np.zeros(1, np.float32)) == pytest.approx(0.0, abs=1e-7)


def test_a_dataset_of_one_class_trains_and_predicts_it():
    model = fs.SoftmaxRegression(batch_size=4).fit(X, np.zeros(24, int), steps=20)
    assert np.all(model.predict(X) == 0) and np.all(np.isfinite(model.W))


# ---------------------------------------------------------------- rates, decay, sizes: refused before any work

DW, DB = np.full((6, 3), 0.1, np.float32), np.full(3, 0.1, np.float32)
ORDER = np.arange(24)

BAD_UPDATES = [  # (call on (kern, W, b), error, message); W and b must come back unchanged
    (lambda k, w, b: k.sgd_step(w, b, DW, DB, float("nan")), fs.InputError, "learning_rate must be finite"),
    (lambda k, w, b: k.sgd_step(w, b, DW, DB, float("inf")), fs.InputError, "learning_rate must be finite"),
    (lambda k, w, b: k.sgd_step(w, b, DW, DB, -0.5), fs.InputError, "learning_rate must be finite and >= 0"),
    (lambda k, w, b: k.sgd_step(w, b, DW, DB, "0.5"), fs.InputTypeError, "learning_rate must be a real number"),
    (lambda k, w, b: k.sgd_step(w, b, DW, DB, None), fs.InputTypeError, "learning_rate must be a real number"),
    (lambda k, w, b: k.sgd_step(w, b, DW, DB, True), fs.InputTypeError, "learning_rate must be a real number"),
    (lambda k, w, b: k.sgd_step(w, b, DW, DB, np.array([0.1, 0.2])), fs.InputTypeError, "learning_rate"),
    (lambda k, w, b: k.sgd_step(w, b, DW, DB, 10**400), fs.InputError, "learning_rate must be finite"),
    (lambda k, w, b: k.sgd_step(w, b, DW, DB, 1e39), fs.InputError, "finite in float32"),
    (lambda k, w, b: k.sgd_step(w, b, DW * 40, DB, 3e38), fs.InputError, "would overflow float32"),
    (lambda k, w, b: k.sgd_step(w, b, np.where(DW > 0, np.nan, DW), DB, 0.5), fs.InputError, "NaN"),
    (lambda k, w, b: k.sgd_step(w, b, DW.tolist(), DB, 0.5), fs.InputTypeError, "dW and db must be numpy arrays"),
    (lambda k, w, b: k.sgd_step(w, b, DW.astype(np.float64), DB, 0.5), fs.InputError, "dW, db must match"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, 0.5, float("nan")), fs.InputError,
     "weight_decay must be finite"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, 0.5, -1e-4), fs.InputError, "weight_decay must be finite"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, 0.5, "0"), fs.InputTypeError, "weight_decay"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, 1e30, 1e30), fs.InputError,
     r"learning_rate \* weight_decay must be < 2"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, np.array([0.1, 0.1, 5.0]), 0.5), fs.InputError,
     r"learning_rate \* weight_decay must be < 2"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, 0.5, None), fs.InputTypeError, "weight_decay"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8.0, 0.5), fs.InputTypeError,
     "batch_size must be a positive integer"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, True, 0.5), fs.InputTypeError, "batch_size"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, "8", 0.5), fs.InputTypeError, "batch_size"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, -8, 0.5), fs.InputError, "batch_size must be a positive integer"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER[:0], 10**30, 0.5), fs.InputError, "batch_size .* larger"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER[:0], 2**62, 0.5), fs.InputError, "batch_size .* larger"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, "0.5"), fs.InputTypeError, "learning_rate"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, None), fs.InputTypeError, "learning_rate"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, np.full(4, 0.5)), fs.InputError,
     r"learning_rate must be a number or an array of shape \(3,\)"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, np.full((3, 1), 0.5)), fs.InputError, "shape"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, np.array([0.5, np.nan, 0.5])), fs.InputError,
     "at step 1"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, np.array(["a", "b", "c"])), fs.InputTypeError,
     "learning_rate"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, np.full(3, 0.5 + 0j)), fs.InputTypeError, "learning_rate"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER.astype(float), 8, 0.5), fs.InputTypeError, "order"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, 0.5, 0.0, [0.0] * 3), fs.InputTypeError, "losses"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, 0.5, 0.0, np.zeros(3, np.float32)), fs.InputTypeError,
     "losses"),
    (lambda k, w, b: k.train_steps(X, Y, w, b, ORDER, 8, 0.5, 0.0, np.zeros(4)), fs.InputError, "losses"),
    (lambda k, w, b: k.xent_sgd_step(X, Y, w, b, float("nan")), fs.InputError, "learning_rate must be finite"),
    (lambda k, w, b: k.xent_sgd_step(X, Y, w, b, 0.5, float("inf")), fs.InputError, "weight_decay"),
    (lambda k, w, b: k.xent_sgd_step(X, Y, w, b, np.array([0.5])), fs.InputTypeError, "learning_rate"),
    (lambda k, w, b: k.xent_sgd_step(X * np.float32(1e4), Y, w, b, 3e38), fs.DivergenceError,
     "overflows float32: W and b restored"),
    (lambda k, w, b: k.xent_sgd_step(with_nan(), Y, w, b, 0.5), fs.InputError, "loss is nan|X row 5"),
    (lambda k, w, b: k.forward(X, w, b, out=[[0.0] * 3] * 24), fs.InputTypeError, "out must be None or an array"),
    (lambda k, w, b: k.forward(X, w, b, out=np.zeros((24, 3))), fs.InputTypeError, "out must be None or an array"),
    (lambda k, w, b: k.predict(X, w, b, out=np.zeros(23, np.int64)), fs.InputError, r"out must be an array of shape"),
    (lambda k, w, b: k.xent_grad(X, Y, w, b, dW=np.zeros((3, 6), np.float32)), fs.InputError, "dW must be"),
]


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("case", range(len(BAD_UPDATES)))
def test_bad_rates_decays_sizes_and_outputs_are_refused_before_any_work(backend, case):
    kern = kernels_or_skip(backend)
    call, error, message = BAD_UPDATES[case]
    w, b = W.copy(), np.full(3, 0.25, np.float32)
    with pytest.raises(error, match=message):
        call(kern, w, b)
    np.testing.assert_array_equal(w, W)
    np.testing.assert_array_equal(b, np.full(3, 0.25, np.float32))


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_numbers_of_every_numpy_kind_are_accepted(backend):
    kern = kernels_or_skip(backend)
    results = []
    for rate, decay, batch in ((0.5, 0.0, 8), (np.float32(0.5), np.float64(0.0), np.int64(8)),
                               (np.array(0.5), 0, np.uint8(8)), (np.float16(0.5), np.int32(0), 8)):
        w, b = W.copy(), B.copy()
        done, _ = kern.train_steps(X, Y, w, b, ORDER, batch, rate, decay)
        kern.sgd_step(w, b, DW, DB, rate)
        results.append((done, w))
    for done, w in results:
        assert done == 3
        np.testing.assert_array_equal(w, results[0][1])


def test_small_public_helpers_refuse_bad_arguments():
    with pytest.raises(fs.InputError, match="unknown backend"):
        fs.kernels.get_backend(["cpu"])
    with pytest.raises(fs.InputTypeError, match="pixels must be a uint8 array"):
        fs.data.to_float_images(X)
    with pytest.raises(fs.InputTypeError, match="dtype must be"):
        fs.data.to_float_images(np.zeros(3, np.uint8), np.int8)
    assert fs.data.to_float_images(np.full(2, 255, np.uint8), np.float64).tolist() == [1.0, 1.0]


def test_finished_refuses_to_report_overflowed_weights_as_a_result():
    from fastsoftmax.kernels import _common

    losses = np.array([1.0, 0.5])
    assert _common.finished(2, losses, W, B) == (2, losses)
    with pytest.raises(fs.DivergenceError, match="update of step 1 overflowed float32"):
        _common.finished(2, losses, np.where(W > 0, np.inf, W).astype(np.float32), B)
