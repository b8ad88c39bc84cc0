"""SoftmaxRegression: training on real data, averaged SGD, warm starts and partial_fit, model
files, divergence and bad input."""

import json
import pickle
import zipfile

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax.kernels import reference as ref

from .conftest import cuda_simulated, kernels_or_skip


@pytest.mark.realdata
def test_mnist_train_on_8000_test_on_2000(mnist_test_split):
    pixels, labels = mnist_test_split
    model = fs.SoftmaxRegression(seed=0).fit(pixels[:8000], labels[:8000], epochs=5)
    # 0.928 measured (the CPU backend gives these bits on every machine); without its bias, 0.908
    assert model.score(pixels[8000:], labels[8000:]) >= 0.92


@pytest.mark.realdata
def test_cpu_backend_matches_an_independent_float64_reference(mnist_test_split):
    pixels, labels = mnist_test_split
    model = fs.SoftmaxRegression(backend="cpu", seed=0).fit(pixels, labels, steps=1000, shuffle=False)
    W64, b64 = np.zeros((784, 10)), np.zeros(10)
    order = np.arange(1000 * 100) % len(pixels)
    ref.train_steps(pixels, labels, W64, b64, order, 100, 0.5)
    assert np.abs(model.W - W64).max() <= 1e-4


def test_same_seed_same_weights():
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 256, (500, 20), dtype=np.uint8), rng.integers(0, 4, 500)
    a = fs.SoftmaxRegression(seed=3).fit(X, y, steps=50)
    b = fs.SoftmaxRegression(seed=3).fit(X, y, steps=50)
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.b, b.b)


def test_one_hot_and_index_labels_train_identically():
    rng = np.random.default_rng(1)
    X, y = rng.random((300, 12)).astype(np.float32), rng.integers(0, 3, 300)
    a = fs.SoftmaxRegression().fit(X, y, steps=20)
    b = fs.SoftmaxRegression().fit(X, np.eye(3, dtype=np.float32)[y], steps=20)
    np.testing.assert_array_equal(a.W, b.W)


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    X, y = rng.integers(0, 256, (400, 30), dtype=np.uint8), rng.integers(0, 5, 400)
    model = fs.SoftmaxRegression(dtype="float64").fit(X, y, steps=30)
    path = model.save(tmp_path / "m.npz")
    loaded = fs.SoftmaxRegression.load(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.W, model.W)
    assert loaded.W.dtype == np.float64 and loaded.steps_done == 30
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def tamper(path, **changes):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays["meta"]))
    for key, value in changes.items():
        if key in ("W", "b"):
            arrays[key] = value
        else:
            meta[key] = value
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, message", [
    ({"format": "other"}, "not a fastsoftmax model"),
    ({"W": np.zeros((5, 3), np.float32)}, "does not match|not \\[F, C\\]"),
    ({"W": np.zeros((30, 5), np.float64)}, "metadata says"),
    ({"W": np.full((30, 5), np.nan, np.float32)}, "NaN"),
])
def test_tampered_model_files_are_refused(tmp_path, change, message):
    rng = np.random.default_rng(3)
    model = fs.SoftmaxRegression().fit(rng.random((200, 30)).astype(np.float32), rng.integers(0, 5, 200), steps=5)
    path = model.save(tmp_path / "m.npz")
    tamper(path, **change)
    with pytest.raises(fs.ModelFileError, match=message):
        fs.SoftmaxRegression.load(path)


def test_non_model_files_are_refused(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(fs.ModelFileError, match="junk.npz"):
        fs.SoftmaxRegression.load(tmp_path / "junk.npz")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as z:
        z.writestr("x.npy", b"")
    with pytest.raises(fs.ModelFileError):
        fs.SoftmaxRegression.load(tmp_path / "other.npz")


def test_diverging_learning_rate_is_refused_with_the_model_untouched():
    rng = np.random.default_rng(4)
    X = (rng.standard_normal((500, 50)) * 1e18).astype(np.float32)
    y = rng.integers(0, 10, 500)
    model = fs.SoftmaxRegression(learning_rate=1e30)
    with pytest.raises(fs.DivergenceError, match="diverged .*step \\d+.*left as it was.*smaller learning_rate"):
        model.fit(X, y, steps=100)
    assert model.steps_done == 0 and not hasattr(model, "coef_")
    model.set_params(learning_rate=1e-40).fit(X, y, steps=5)
    before = pickle.dumps(model._state)
    with pytest.raises(fs.DivergenceError):
        model.set_params(learning_rate=1e30, warm_start=True, average=True).fit(X, y, steps=100)
    assert pickle.dumps(model._state) == before


@pytest.mark.parametrize("X, y, message", [
    (np.zeros((10, 4), np.float32), np.zeros(9, np.int64), "rows"),
    (np.zeros((10, 4), np.float32), np.linspace(0, 1, 10), "Unknown label type: y holds continuous values"),
    (np.zeros((10, 4), np.float32), np.full(10, np.nan), "y contains NaN"),
    (np.full((10, 4), np.nan, np.float32), np.zeros(10, np.int64), "NaN"),
    (np.zeros((0, 4), np.float32), np.zeros(0, np.int64), "non-empty"),
    (np.zeros((10, 4), np.complex64), np.zeros(10, np.int64), "dtype"),
])
def test_bad_training_input(X, y, message):
    with pytest.raises(fs.FastSoftmaxError, match=message):
        fs.SoftmaxRegression(batch_size=5).fit(X, y, steps=1)


def test_batch_larger_than_data_and_unfitted_model():
    X, y = np.eye(10, 3, dtype=np.float32), np.arange(10) % 3
    with pytest.warns(UserWarning, match="batch_size 100 is larger than the 10 rows of X: each step uses all"):
        model = fs.SoftmaxRegression(steps=5, backend="numpy").fit(X, y)
    everything = fs.SoftmaxRegression(steps=5, batch_size=10, backend="numpy").fit(X, y)
    np.testing.assert_allclose(model.W, everything.W, rtol=1e-6)
    with pytest.raises(fs.InputError, match="not fitted"):
        fs.SoftmaxRegression().predict(np.zeros((1, 3), np.float32))


@pytest.mark.realdata
def test_cuda_backend_matches_cpu_on_real_mnist_rows(mnist_test_split):
    """SoftmaxRegression(backend="cuda") against backend="cpu", same fixed order.

    In the simulator (the default, see conftest.py) a small run: 120 real images cut to a band of 48
    pixels through their middle (every GPU thread is a Python thread there), 6 steps of 20 with decay;
    on a GPU (NUMBA_ENABLE_CUDASIM=0) whole images, the tutorial's 1000 steps of 100.
    """
    kernels_or_skip("cuda")
    pixels, labels = mnist_test_split
    rows, steps, batch = (120, 6, 20) if cuda_simulated() else (10000, 1000, 100)
    if cuda_simulated():
        pixels = np.ascontiguousarray(pixels[:, 14 * 28:14 * 28 + 48])
    X, y = pixels[:rows], labels[:rows]
    runs = {backend: fs.SoftmaxRegression(backend=backend, batch_size=batch, lr_decay=0.5, weight_decay=1e-4)
            .fit(X, y, steps=steps, shuffle=False, n_classes=10) for backend in ("cpu", "cuda")}
    cpu, gpu = runs["cpu"], runs["cuda"]
    assert gpu.steps_done == steps and np.all(np.isfinite(gpu.W))
    assert np.abs(gpu.W).max() > 1e-3  # it learned something
    np.testing.assert_allclose(gpu.W, cpu.W, atol=1e-4)
    np.testing.assert_allclose(gpu.b, cpu.b, atol=1e-4)
    np.testing.assert_allclose(gpu.history["loss"], cpu.history["loss"], rtol=1e-4)
    probe = pixels[-7:]
    np.testing.assert_array_equal(gpu.predict(probe), cpu.predict(probe))
    np.testing.assert_allclose(gpu.predict_proba(probe), cpu.predict_proba(probe), atol=1e-5)


def test_cuda_training_repeats_bitwise():
    kernels_or_skip("cuda")
    rng = np.random.default_rng(11)
    X, y = rng.integers(0, 256, (30, 12), dtype=np.uint8), rng.integers(0, 3, 30)
    a, b = (fs.SoftmaxRegression(backend="cuda", batch_size=5, seed=2).fit(X, y, steps=4) for _ in range(2))
    assert a.W.tobytes() == b.W.tobytes() and a.b.tobytes() == b.b.tobytes()


def test_cuda_divergence_is_refused():
    kernels_or_skip("cuda")
    X = np.full((8, 3), 1e30, np.float32)
    model = fs.SoftmaxRegression(backend="cuda", batch_size=4, learning_rate=1e30)
    with pytest.raises(fs.DivergenceError, match="diverged"):
        model.fit(X, np.array([0, 1] * 4), steps=3)


# ---------------------------------------------------------------- batches, warm starts, averaging


@pytest.mark.parametrize("n, batch, steps", [(55000, 100, 1000), (37, 5, 50), (10, 10, 7), (23, 4, 100)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_batch_order_drawn_in_chunks_is_the_tutorial_next_batch_order(n, batch, steps, shuffle):
    """A fit draws a compiled call's rows at once; they are next_batch's batches, one after another."""
    from fastsoftmax.data import BatchOrder

    one_at_a_time = BatchOrder(n, np.random.default_rng(3))
    expected = np.concatenate([one_at_a_time.next_batch(batch, shuffle) for _ in range(steps)])
    order = BatchOrder(n, np.random.default_rng(3))
    first = steps // 3
    got = np.concatenate([order.rows(first * batch, shuffle), order.rows((steps - first) * batch, shuffle)])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("shuffle", [True, False])
def test_a_pickled_batch_order_continues_alike_and_is_small(shuffle):
    """It is pickled as generator states (the epoch's order is drawn again), not as 10^6 indices."""
    from fastsoftmax.data import BatchOrder

    order = BatchOrder(10**6, np.random.default_rng(1))
    order.rows(1500, shuffle)
    copied = pickle.loads(pickle.dumps(order))
    assert len(pickle.dumps(order)) < 10_000
    np.testing.assert_array_equal(copied.rows(2 * 10**6, shuffle), order.rows(2 * 10**6, shuffle))


def _small(seed=5, n=230, features=16, classes=4):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (n, features), dtype=np.uint8)
    y = (X[:, :classes].argmax(axis=1) + 1) * 10  # labels 10, 20, 30, 40
    return X, y


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("average", [False, True, 2000])
def test_warm_start_continues_one_run_exactly(backend, average):
    X, y = _small()
    settings = dict(backend=backend, batch_size=20, lr_decay=0.5, weight_decay=1e-3, average=average, seed=4)
    whole = fs.SoftmaxRegression(**settings).fit(X, y, steps=70)
    first = fs.SoftmaxRegression(warm_start=True, **settings).fit(X, y, steps=30)
    parts = pickle.loads(pickle.dumps(first)).fit(X, y, steps=40)  # the batch order survives pickling too
    assert parts.steps_done == 70 and parts.history["loss"] == whole.history["loss"]
    assert parts.coef_.tobytes() == whole.coef_.tobytes() and parts.intercept_.tobytes() == whole.intercept_.tobytes()
    # warm_start=False: a second fit starts from zero
    again = fs.SoftmaxRegression(**settings).fit(X, y, steps=30).fit(X, y, steps=70)
    assert again.coef_.tobytes() == whole.coef_.tobytes() and again.steps_done == 70


def test_warm_start_refuses_other_features_or_labels():
    X, y = _small()
    model = fs.SoftmaxRegression(warm_start=True, batch_size=20, backend="numpy").fit(X, y, steps=5)
    with pytest.raises(fs.InputError, match="X has 15 features, but SoftmaxRegression is expecting 16"):
        model.fit(X[:, 1:], y, steps=5)
    with pytest.raises(fs.InputError, match="differ from the fitted model's classes_"):
        model.fit(X, y + 1, steps=5)
    assert model.steps_done == 5


def _manual_average(X, y, steps, batch, rate, first_averaged):
    """Plain SGD step by step with the reference, and the mean of the weights after each
    step from ``first_averaged`` on (float64 mean)."""
    classes = np.unique(y)
    W, b = np.zeros((X.shape[1], classes.size), np.float32), np.zeros(classes.size, np.float32)
    order = np.arange(steps * batch) % X.shape[0]
    snapshots = []
    for s in range(steps):
        ref.train_steps(X, np.searchsorted(classes, y), W, b, order[s * batch:(s + 1) * batch], batch, rate)
        if s >= first_averaged:
            snapshots.append((W.astype(np.float64), b.astype(np.float64)))
    return np.mean([w for w, _ in snapshots], axis=0), np.mean([c for _, c in snapshots], axis=0)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("average, first", [(True, 0), (1, 1), (400, 20), (410, 21), (10**6, None)])
def test_average_is_the_mean_of_the_weights_from_the_step_it_names(backend, average, first):
    """Step s (0-based) is averaged iff s * batch_size >= average (True: every step)."""
    X, y = _small()
    model = fs.SoftmaxRegression(backend=backend, batch_size=20, average=average, learning_rate=0.1)
    model.fit(X, y, steps=40, shuffle=False)
    if first is None:  # averaging never began: predictions use the plain weights
        plain = fs.SoftmaxRegression(backend=backend, batch_size=20, learning_rate=0.1).fit(X, y, steps=40,
                                                                                          shuffle=False)
        assert model.coef_.tobytes() == plain.coef_.tobytes()
        return
    W_avg, b_avg = _manual_average(X, y, 40, 20, 0.1, first)
    np.testing.assert_allclose(model.W, W_avg, rtol=2e-4, atol=2e-6)
    np.testing.assert_allclose(model.b, b_avg, rtol=2e-4, atol=2e-6)
    assert model._state.average_count == 40 - first


def test_average_repeats_bitwise_and_cpu_matches_the_reference():
    X, y = _small()
    runs = [fs.SoftmaxRegression(backend=backend, batch_size=20, average=600).fit(X, y, steps=80)
            for backend in ("cpu", "cpu", "numpy")]
    assert runs[0].coef_.tobytes() == runs[1].coef_.tobytes()
    np.testing.assert_allclose(runs[0].coef_, runs[2].coef_, rtol=1e-4, atol=1e-6)


def test_save_load_keeps_labels_and_average_and_partial_fit_continues_alike(tmp_path):
    X, y = _small()
    labels = np.array(["ten", "twenty", "thirty", "forty"])[y // 10 - 1]
    model = fs.SoftmaxRegression(batch_size=20, average=300, backend="numpy").fit(X, labels, steps=50)
    loaded = fs.SoftmaxRegression.load(model.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.coef_.tobytes() == model.coef_.tobytes() and loaded.get_params() == model.get_params()
    assert loaded._state.average_count == model._state.average_count == 35
    model.partial_fit(X, labels)
    loaded.partial_fit(X, labels)
    assert loaded.coef_.tobytes() == model.coef_.tobytes() and loaded.steps_done == 50 + 12


def test_version_1_model_files_still_load(tmp_path):
    X, y = _small()
    model = fs.SoftmaxRegression(batch_size=20, backend="numpy").fit(X, y - 10, steps=5)  # labels 0, 10, 20, 30
    path = model.save(tmp_path / "m.npz")
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays["meta"]))
    meta = {k: v for k, v in meta.items() if k not in ("classes", "classes_dtype", "average_count", "average")}
    arrays["meta"] = np.array(json.dumps({**meta, "format_version": 1}))
    np.savez(path, **arrays)
    old = fs.SoftmaxRegression.load(path)
    np.testing.assert_array_equal(old.classes_, np.arange(4))
    np.testing.assert_array_equal(old.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("change, message", [
    ({"classes": [2, 1, 3, 4]}, "distinct and sorted"),
    ({"classes": [1, 2]}, "list of 4 labels"),
    ({"classes": [[1], 2, 3, 4]}, "classes"),
    ({"average_count": 0}, "average_count"),
    ({"learning_rate": "fast"}, "saved settings are not valid"),
])
def test_tampered_labels_and_averages_are_refused(tmp_path, change, message):
    X, y = _small()
    model = fs.SoftmaxRegression(batch_size=20, average=True, backend="numpy").fit(X, y, steps=5)
    path = model.save(tmp_path / "m.npz")
    tamper(path, **change)
    with pytest.raises(fs.ModelFileError, match=message):
        fs.SoftmaxRegression.load(path)


# ---------------------------------------------------------------- partial_fit


def test_partial_fit_needs_classes_first_and_streams_chunks_of_a_memmap(mnist_test_split, tmp_path):
    pixels, labels = mnist_test_split
    stored = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.uint8, shape=(8000, 784))
    stored[:] = pixels[:8000]
    X = np.load(tmp_path / "X.npy", mmap_mode="r")
    model = fs.SoftmaxRegression(average=True)
    with pytest.raises(fs.InputError, match="classes must be given on the first call to partial_fit"):
        model.partial_fit(X[:1000], labels[:1000])
    for epoch in range(2):
        for start in range(0, 8000, 2000):
            model.partial_fit(X[start:start + 2000], labels[start:start + 2000], classes=np.arange(10))
    assert model.steps_done == 2 * 80 and model.score(pixels[8000:], labels[8000:]) >= 0.85
    with pytest.raises(fs.InputError, match="differs from the classes the model was fitted with"):
        model.partial_fit(X[:100], labels[:100], classes=np.arange(11))
    with pytest.raises(fs.InputError, match="not among the classes"):
        model.partial_fit(X[:100], labels[:100] + 10)


# ---------------------------------------------------------------- NaN rows and a transactional fit


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy on NaN/overflow, which is the point
@pytest.mark.parametrize("backend", ["numpy", "cpu", "cuda"])
@pytest.mark.parametrize("steps, bad_row", [(50, 7), (3, 199)])
def test_a_non_finite_row_is_refused_by_name_and_the_model_is_untouched(backend, steps, bad_row):
    """Row 7 is drawn by an early batch (its loss goes NaN); with 3 steps of 20 no batch draws
    row 199 of the unshuffled data, so the end-of-fit check finds it."""
    kernels_or_skip(backend)
    rng = np.random.default_rng(8)
    X = rng.random((200, 6)).astype(np.float32)
    y = rng.integers(0, 3, 200)
    model = fs.SoftmaxRegression(backend=backend, batch_size=20, warm_start=True, average=True)
    model.fit(X, y, steps=10, validation_data=(X[:50], y[:50]))
    before = pickle.dumps(model._state)
    for value in (np.nan, np.inf, -np.inf):
        bad = X.copy()
        bad[bad_row, 2] = value
        with pytest.raises(fs.InputError, match=f"NaN or infinite values \\(first in row {bad_row}\\)"):
            model.fit(bad, y, steps=steps, shuffle=False)
        assert pickle.dumps(model._state) == before
    assert model.fit(X, y, steps=3).steps_done == 13  # and it trains on as before


@pytest.mark.parametrize("validation_data, error, message", [
    (np.zeros((5, 6), np.float32), fs.InputTypeError, "validation_data must be a pair \\(X_val, y_val\\), got ndarray"),
    ((np.zeros((5, 6), np.float32),), fs.InputTypeError, "validation_data must be a pair.*length 1"),
    ((np.zeros((5, 5), np.float32), np.zeros(5, int)), fs.InputError, "X_val has 5 features, X has 6"),
    ((np.zeros((5, 6), np.float32), np.zeros(4, int)), fs.InputError, "y_val has 4 rows, X has 5"),
    (("pixels", np.zeros(4, int)), fs.InputError, "X_val must be a 2-D array"),
])
def test_validation_data_is_checked_before_any_training(validation_data, error, message):
    rng = np.random.default_rng(9)
    X, y = rng.random((200, 6)).astype(np.float32), rng.integers(0, 3, 200)
    model = fs.SoftmaxRegression(batch_size=20)
    with pytest.raises(error, match=message):
        model.fit(X, y, steps=10**9, validation_data=validation_data)  # a long run: fails at once
    assert model.steps_done == 0 and not hasattr(model, "coef_")


def test_validation_accuracy_is_recorded_where_it_was_measured():
    X, y = _small(n=200)
    model = fs.SoftmaxRegression(batch_size=20, average=True, backend="numpy")
    model.fit(X, y, steps=25, validation_data=(X[:60], y[:60]))
    history = model.history
    assert history["val_step"] == [10, 20, 25] and history["epoch"] == [1.0, 2.0, 2.5]
    assert history["val_accuracy"][-1] == model.score(X[:60], y[:60])
    assert len(history["loss"]) == 25


def test_cuda_averaging_matches_cpu():
    kernels_or_skip("cuda")
    X, y = _small(n=60, features=12)
    runs = [fs.SoftmaxRegression(backend=backend, batch_size=10, average=30, warm_start=True)
            .fit(X, y, steps=4, shuffle=False).fit(X, y, steps=4, shuffle=False) for backend in ("cpu", "cuda")]
    assert runs[0]._state.average_count == runs[1]._state.average_count == 5
    np.testing.assert_allclose(runs[1].coef_, runs[0].coef_, atol=1e-5)
    np.testing.assert_allclose(runs[1].intercept_, runs[0].intercept_, atol=1e-5)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy on NaN/overflow, which is the point
@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_an_update_that_overflows_on_the_last_step_is_refused(backend):
    """A finite loss whose update overflows float32: no later step would notice, fit must."""
    X, y = np.full((20, 6), 1e30, np.float32), np.arange(20) % 3
    model = fs.SoftmaxRegression(backend=backend, batch_size=20, learning_rate=1e12)
    with pytest.raises(fs.DivergenceError, match="diverged"):
        model.fit(X, y, steps=1)
    assert not hasattr(model, "coef_")


def test_numpy_scalars_and_types_as_settings_train_and_save(tmp_path):
    X, y = _small()
    model = fs.SoftmaxRegression(batch_size=np.int64(20), dtype=np.float64, average=np.uint8(200),
                                 learning_rate=np.float32(0.25), steps=np.int32(15), warm_start=np.bool_(False),
                                 backend="numpy").fit(X, y)
    assert model.coef_.dtype == np.float64 and model.steps_done == 15
    loaded = fs.SoftmaxRegression.load(model.save(tmp_path / "m.npz"))
    assert loaded.coef_.tobytes() == model.coef_.tobytes()
    assert loaded.get_params()["average"] == 200 and loaded.get_params()["batch_size"] == 20
    with pytest.raises(fs.InputTypeError, match="dtype must be 'float32' or 'float64', got <class 'numpy.float16'>"):
        fs.SoftmaxRegression(dtype=np.float16).fit(X, y)
