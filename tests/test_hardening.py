"""Inputs a hostile tester tried: each refused with the library's error, or handled, never a builtin error."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsoftmax as fs


def small():
    rng = np.random.default_rng(5)
    X = rng.random((60, 4)).astype(np.float32)
    return X, rng.integers(0, 3, 60)


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize("labels", [np.array([2**63, 2**64 - 1, 2**63 + 5], np.uint64),
                                    np.array([-(2**63), 2**63 - 1, 0], np.int64)])
def test_labels_at_the_ends_of_64_bits_are_classes(labels):
    X, y = small()
    y_big = labels[y]
    model = fs.SoftmaxRegression(batch_size=10, backend="numpy").fit(X, y_big, steps=5)
    np.testing.assert_array_equal(model.classes_, np.sort(labels))
    assert model.predict(X).dtype == labels.dtype and set(model.predict(X)) <= set(labels.tolist())
    assert 0 <= model.score(X, y_big) <= 1


def test_validation_labels_the_model_does_not_know_are_refused_before_training():
    X, y = small()
    model = fs.SoftmaxRegression(batch_size=10, backend="numpy")
    with pytest.raises(fs.InputError, match="none of the model's classes"):
        model.fit(X, y, steps=5, validation_data=(X[:10], y[:10] + 7))
    assert not hasattr(model, "coef_")
    model.fit(X, y, steps=5, validation_data=(X[:10], np.where(np.arange(10) < 5, y[:10], 9)))  # some known: fine
    assert 0 <= model.history["val_accuracy"][-1] <= 0.5


# ---------------------------------------------------------------- model files


def rewritten(tmp_path, change):
    X, y = small()
    names = np.array(["cat", "dog", "emu"])[y]
    path = fs.SoftmaxRegression(batch_size=10, backend="numpy").fit(X, names, steps=3).save(tmp_path / "m.npz")
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("change, words", [
    (lambda m: m.update(steps_done=None), "steps_done"),
    (lambda m: m.update(steps_done="x"), "steps_done"),
    (lambda m: m.update(steps_done=-5), "steps_done"),
    (lambda m: m.update(steps_done=True), "steps_done"),
    (lambda m: m.update(classes_dtype="<U1"), "cannot hold the classes"),
    (lambda m: m.update(classes=[1, 300, 7], classes_dtype="|u1"), "classes"),
    (lambda m: m.update(classes=[0.5, 1, 2], classes_dtype="<i8"), "cannot hold the classes"),
    (lambda m: m.update(classes_dtype="not a dtype"), "classes"),
])
def test_model_files_with_malformed_metadata_are_refused(tmp_path, change, words):
    path = rewritten(tmp_path, change)
    with pytest.raises(fs.ModelFileError, match=words):
        fs.SoftmaxRegression.load(path)


# ---------------------------------------------------------------- no place for Numba's cache


def test_no_writable_place_for_the_kernel_cache_compiles_without_it_and_says_so_once():
    """Where Numba finds no cache directory it can write (a read-only installation, an unwritable HOME
    and NUMBA_CACHE_DIR), it refuses to define cached functions. Numba's search finds nothing here when
    its list of places is empty, which is what such a machine amounts to."""
    script = textwrap.dedent("""
        import warnings, numpy as np
        from numba.core import caching
        caching.CacheImpl._locator_classes = []   # nowhere to write: every place refused
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            import fastsoftmax as fs
            from fastsoftmax.kernels import cpu
            X = np.random.default_rng(0).integers(0, 256, (40, 8), dtype=np.uint8)
            model = fs.SoftmaxRegression(batch_size=10).fit(X, np.arange(40) % 3, steps=3)
            model.predict(X)
        cache = [w for w in seen if issubclass(w.category, fs.CacheWarning)]
        print(len(cache), cpu.CACHE, "NUMBA_CACHE_DIR" in str(cache[0].message))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["1", "False", "True"]
