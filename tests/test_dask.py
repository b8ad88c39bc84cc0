"""SoftmaxRegression on dask arrays: training block by block through dask-ml's Incremental,
lazy inference block by block through the kernels, a distributed LocalCluster, and no dask
import for NumPy users."""

import itertools
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsoftmax as fs

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

F, C = 784, 10


def _data(seed, n, dtype=np.uint8, labels=None):
    """Random rows whose labels come from a random linear model, so SGD has something to learn."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (n, F), dtype=np.uint8) if dtype == np.uint8 else rng.random((n, F), dtype=dtype)
    scores = X.astype(np.float64) @ rng.standard_normal((F, C))
    y = scores.argmax(axis=1)
    return X, (y if labels is None else np.asarray(labels)[y])


def _counted_blocks(X, rows):
    """X as a dask array whose blocks are produced on demand and recorded in ``loaded``."""
    loaded = []

    def load(start):
        loaded.append(start)
        return X[start:start + rows]

    blocks = [da.from_delayed(dask.delayed(load)(start), shape=X[start:start + rows].shape, dtype=X.dtype)
              for start in range(0, len(X), rows)]
    return da.concatenate(blocks), loaded


def _fitted(seed=0, dtype="float32", average=True, labels=None, backend="cpu"):
    X, y = _data(seed, 1500, labels=labels)
    return fs.SoftmaxRegression(backend=backend, dtype=dtype, average=average, learning_rate=0.01, seed=seed,
                                steps=60).fit(X, y, classes=np.arange(C) if labels is None else labels)


# ---------------------------------------------------------------------- training


@pytest.mark.parametrize("average", [False, True, 900])
def test_incremental_trains_as_partial_fit_on_the_same_blocks_in_order(average):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = _data(1, 2300)
    bounds = [0, 700, 1400, 2000, 2300]  # uneven blocks, the last one short
    chunks = tuple(np.diff(bounds))
    X_dask, y_dask = da.from_array(X, chunks=(chunks, F)), da.from_array(y, chunks=(chunks,))
    classes = np.arange(C)

    incremental = wrappers.Incremental(fs.SoftmaxRegression(average=average, seed=4), shuffle_blocks=False)
    incremental.fit(X_dask, y_dask, classes=classes)
    incremental.partial_fit(X_dask, y_dask, classes=classes)  # a second pass continues the first

    expected = fs.SoftmaxRegression(average=average, seed=4)
    for _ in range(2):
        for start, stop in itertools.pairwise(bounds):
            expected.partial_fit(X[start:stop], y[start:stop], classes=classes)
    model = incremental.estimator_
    assert model.n_iter_ == expected.n_iter_ == 2 * sum(-(-n // 100) for n in chunks)
    assert model.coef_.tobytes() == expected.coef_.tobytes()
    assert model.intercept_.tobytes() == expected.intercept_.tobytes()
    assert model._state.W.tobytes() == expected._state.W.tobytes()  # the plain SGD weights too


# ---------------------------------------------------------------------- inference


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("dtype, input_dtype", [("float32", np.uint8), ("float32", np.float32),
                                                ("float64", np.float64)])
@pytest.mark.parametrize("chunks", [(250, F), (333, F), (400, 300)])  # uneven; split along the features
def test_predict_and_predict_proba_are_lazy_and_equal_numpy(backend, dtype, input_dtype, chunks):
    model = _fitted(seed=2, dtype=dtype, backend=backend)
    X, _ = _data(3, 1000, dtype=input_dtype)
    X_dask = da.from_array(X, chunks=chunks)

    proba, labels = model.predict_proba(X_dask), model.predict(X_dask)
    assert isinstance(proba, da.Array) and isinstance(labels, da.Array)
    assert proba.chunks == (X_dask.chunks[0], (C,)) and labels.chunks == (X_dask.chunks[0],)
    assert proba.dtype == np.dtype(dtype) and labels.dtype == model.classes_.dtype
    expected_proba = model.predict_proba(X)
    computed = proba.compute()
    assert computed.dtype == expected_proba.dtype
    if backend == "cpu":  # each row's arithmetic is the same whatever rows share its call: bitwise
        assert computed.tobytes() == expected_proba.tobytes()
    else:  # NumPy's matrix product blocks its sums by the matrix's shape: equal to rounding
        np.testing.assert_allclose(computed, expected_proba, rtol=1e-5 if dtype == "float32" else 1e-12)
    np.testing.assert_array_equal(labels.compute(), model.predict(X))


def test_nothing_is_read_until_computed_and_then_only_the_blocks_asked_for():
    model = _fitted(seed=5)
    X, _ = _data(6, 1200)
    X_dask, loaded = _counted_blocks(X, 300)
    labels, proba = model.predict(X_dask), model.predict_proba(X_dask)
    assert loaded == []
    np.testing.assert_array_equal(labels[300:600].compute(), model.predict(X[300:600]))
    assert loaded == [300]
    assert proba[:10].compute().tobytes() == model.predict_proba(X[:10]).tobytes()
    assert sorted(loaded) == [0, 300]


def test_predict_on_an_array_far_larger_than_memory_computes_only_what_is_asked():
    model = _fitted(seed=7)
    X_dask = da.random.default_rng(8).integers(0, 256, size=(10**8, F), chunks=(10_000, F), dtype=np.uint8)
    labels = model.predict(X_dask)  # 78 GB of pixels: only a graph is built
    assert labels.shape == (10**8,) and labels.numblocks == (10**4,)
    first = X_dask[:10_000].compute()
    np.testing.assert_array_equal(labels[:20].compute(), model.predict(first)[:20])


def test_labels_of_any_kind_come_back_lazily():
    model = _fitted(seed=9, labels=[f"class {i}" for i in range(C)])
    X, _ = _data(10, 500)
    labels = model.predict(da.from_array(X, chunks=(128, F)))
    assert labels.dtype == model.classes_.dtype
    np.testing.assert_array_equal(labels.compute(), model.predict(X))


def test_a_lazy_prediction_keeps_the_weights_it_was_made_with():
    model = _fitted(seed=11)
    X, _ = _data(12, 800)
    X_dask = da.from_array(X, chunks=(300, F))
    expected_labels, expected_proba = model.predict(X), model.predict_proba(X)
    labels, proba = model.predict(X_dask), model.predict_proba(X_dask)
    model.set_params(seed=99, steps=40).fit(*_data(13, 600))  # refit before computing
    assert not np.array_equal(model.predict_proba(X), expected_proba)
    np.testing.assert_array_equal(labels.compute(), expected_labels)
    assert proba.compute().tobytes() == expected_proba.tobytes()


def test_score_on_dask_arrays_equals_numpy():
    model = _fitted(seed=14, labels=[3, 5, 8, 13, 21, 34, 55, 89, 144, 233])
    X, y = _data(15, 1100, labels=model.classes_)
    y = y.copy()
    y[::7] = 999  # labels the model does not know count as wrong, as on NumPy arrays
    expected = model.score(X, y)
    assert 0 < expected < 1
    X_dask = da.from_array(X, chunks=(300, F))
    one_hot = (y[:, None] == model.classes_).astype(np.float32)
    known = y != 999
    for labels in (y, da.from_array(y, chunks=300), da.from_array(y, chunks=170), y.tolist()):
        assert model.score(X_dask, labels) == expected
    assert model.score(X_dask[known], da.from_array(one_hot[known], chunks=(250, 5))) == model.score(X[known],
                                                                                                    y[known])


def test_wrong_arguments_are_refused_before_any_block_is_read():
    model = _fitted(seed=16)
    X, y = _data(17, 600)
    X_dask, loaded = _counted_blocks(X, 200)
    cases = [
        (lambda: model.predict(X_dask[:, :700]), fs.InputError, "X has 700 features, but the model is expecting 784"),
        (lambda: model.predict_proba(X_dask[:, :, None]), fs.InputError, "must be a 2-D array"),
        (lambda: model.predict(X_dask.astype(np.complex64)), fs.InputError, "Complex data not supported"),
        (lambda: model.predict(X_dask.astype("M8[s]")), fs.InputTypeError, "uint8 pixels or a float array"),
        (lambda: model.predict(X_dask[:0]), fs.InputError, "non-empty"),
        (lambda: model.score(X_dask, y[:500]), fs.InputError, "y has 500 rows, X has 600"),
        (lambda: model.score(X_dask, None), fs.InputError, "requires y"),
        (lambda: fs.SoftmaxRegression().predict(X_dask), fs.NotFittedError, "not fitted"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    assert loaded == []


def test_an_error_in_a_block_names_the_block_and_its_rows():
    model = _fitted(seed=18, average=False)
    X, y = _data(19, 900, dtype=np.float32)
    X[650, 3] = np.nan
    X_dask = da.from_array(X, chunks=(300, F))
    labels = model.predict(X_dask)  # lazy: nothing is read yet
    pattern = r"dask array block 2 \(rows 600 to 899 of X\).*X row 50 gives non-finite logits"
    with pytest.raises(fs.InputError, match=pattern):
        labels.compute()
    with pytest.raises(fs.InputError, match=pattern):
        model.predict_proba(X_dask).compute()
    with pytest.raises(fs.InputError, match=pattern):
        model.score(X_dask, y)
    np.testing.assert_array_equal(labels[:600].compute(), model.predict(X[:600]))  # other blocks still compute


# ---------------------------------------------------------------------- a cluster


def test_incremental_and_inference_on_a_local_cluster():
    distributed = pytest.importorskip("distributed")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = _data(20, 1600)
    X_test, y_test = _data(21, 700)
    X_dask, y_dask = da.from_array(X, chunks=(400, F)), da.from_array(y, chunks=400)
    X_test_dask = da.from_array(X_test, chunks=(200, F))

    def run():
        incremental = wrappers.Incremental(fs.SoftmaxRegression(average=True, seed=22), random_state=0)
        incremental.fit(X_dask, y_dask, classes=np.arange(C))
        model = incremental.estimator_
        return (model, model.predict_proba(X_test_dask).compute(), model.predict(X_test_dask).compute(),
                incremental.score(X_test_dask, da.from_array(y_test, chunks=200)))

    local = run()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                                  death_timeout=30) as cluster, \
            distributed.Client(cluster, timeout=30):
        on_cluster = run()
    assert on_cluster[0].coef_.tobytes() == local[0].coef_.tobytes()
    model = local[0]
    for result in (local, on_cluster):
        assert result[1].tobytes() == model.predict_proba(X_test).tobytes()
        np.testing.assert_array_equal(result[2], model.predict(X_test))
        assert result[3] == model.score(X_test, y_test)


# ---------------------------------------------------------------------- NumPy users


def test_numpy_users_never_import_dask():
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import fastsoftmax
        rng = np.random.default_rng(0)
        X, y = rng.integers(0, 256, (300, 784), dtype=np.uint8), rng.integers(0, 10, 300)
        model = fastsoftmax.SoftmaxRegression(steps=5).fit(X, y)
        model.predict(X), model.predict_proba(X), model.score(X, y)
        model.partial_fit(X, y)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed", "dask_ml"))
        print("loaded:", loaded)
        import dask.array
        print("after import:", fastsoftmax._dask.is_dask_array(dask.array.zeros((2, 2))))
        """)
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout
    assert "after import: True" in result.stdout  # the check recognises dask once dask is there
