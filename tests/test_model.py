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


@pytest.fixture(scope="module")
def fashion():
    from tests.realdata import FASHION_DIR, require

    require(FASHION_DIR, ("train-images-idx3-ubyte.gz",), "apt-get install dataset-fashion-mnist")
    return fs.read_data_sets(dataset="fashion-mnist", seed=0, download=False)


@pytest.mark.realdata
def test_mnist_train_on_8000_test_on_2000(mnist_test_split):
    pixels, labels = mnist_test_split
    model = fs.SoftmaxRegression(seed=0).fit(pixels[:8000], labels[:8000], epochs=5)
    assert model.score(pixels[8000:], labels[8000:]) >= 0.88


@pytest.mark.realdata
def test_longer_fashion_run_with_decay(fashion):
    model = fs.SoftmaxRegression(seed=0, lr_decay=0.5)
    model.fit(fashion.train.pixels, fashion.train.class_indices, epochs=10,
              validation_data=(fashion.validation.pixels, fashion.validation.class_indices))
    assert model.score(fashion.test.pixels, fashion.test.class_indices) >= 0.84
    assert model.history["epoch"] == list(range(1, 11)) and len(model.history["val_accuracy"]) == 10
    assert model.history["val_step"] == [550 * k for k in range(1, 11)]
    final = model.score(fashion.validation.pixels, fashion.validation.class_indices)
    assert model.history["val_accuracy"][-1] == final


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
    with pytest.raises(fs.DivergenceError, match="diverged at step \\d+.*smaller learning_rate"):
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

    In the simulator (the default, see conftest.py) a small run: 120 real images,
    6 steps of 20 with decay; on a GPU (NUMBA_ENABLE_CUDASIM=0) the tutorial's 1000 steps of 100.
    """
    kernels_or_skip("cuda")
    pixels, labels = mnist_test_split
    rows, steps, batch = (120, 6, 20) if cuda_simulated() else (10000, 1000, 100)
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
    with pytest.raises(fs.DivergenceError, match="diverged at step"):
        model.fit(X, np.array([0, 1] * 4), steps=3)
