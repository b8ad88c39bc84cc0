"""A property-based sweep over the public API's arguments.

Every public function is called with valid arguments in which one or two are
replaced by a value of the wrong type, sign, size, dtype or finiteness. Each call
must either raise one of the library's own errors (``FastSoftmaxError``) or
return a correct-looking result (finite weights, probabilities, losses), and the
caller's inputs, and any model file saved before, must be left exactly as they
were. Builtin exceptions escaping from inside the library fail the sweep.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastsoftmax as fs
from fastsoftmax.errors import FastSoftmaxError
from fastsoftmax.kernels import BACKENDS

from .conftest import kernels_or_skip

N, F, C = 6, 4, 3



def sweep(examples):
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ---------------------------------------------------------------- bad values

ODD_SCALARS = [None, "0.5", "", b"1", [], [1, 2], {}, (), object(), True, False, 1j, -1, -0.5, 0, 2, 0.5,
               10**400, -10**400, math.nan, math.inf, -math.inf, 1e300, 3.5e38, 1e-320, np.float32("nan"),
               np.float64(-1.0), np.int64(-3), np.uint8(7), np.bool_(True), np.array(0.25), np.array([0.5]),
               np.complex64(1.0)]

DTYPES = [np.int8, np.int64, np.uint8, np.float16, np.float32, np.float64, np.complex64, np.bool_]


@st.composite
def odd_arrays(draw):
    """Arrays of any small shape and many dtypes, with NaN, infinity and extremes among the values."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7))
    if dtype.kind == "f":
        elements = st.floats(allow_nan=True, allow_infinity=True, width=dtype.itemsize * 8)
    elif dtype.kind == "c":
        elements = st.complex_numbers(allow_nan=True, allow_infinity=True, width=dtype.itemsize * 8)
    else:
        elements = None
    array = draw(hnp.arrays(dtype, shape, elements=elements))
    if array.ndim == 2 and draw(st.booleans()):
        array = np.asfortranarray(array)
    if draw(st.booleans()):
        array.flags.writeable = False
    return array


def bad_values():
    return st.one_of(st.sampled_from(ODD_SCALARS), odd_arrays())


@st.composite
def near_miss_arrays(draw, like):
    """``like`` with one thing wrong: a NaN, a shape off by one, another dtype, a view, read-only."""
    change = draw(st.sampled_from(["nan", "inf", "shape", "dtype", "strided", "readonly", "empty", "list",
                                   "negative", "huge"]))
    a = like.copy()
    if change in ("nan", "inf") and a.dtype.kind == "f" and a.size:
        a.flat[draw(st.integers(0, a.size - 1))] = np.nan if change == "nan" else -np.inf
    elif change == "shape":
        a = np.resize(a, tuple(s + draw(st.sampled_from([-1, 1])) for s in a.shape))
    elif change == "dtype":
        a = a.astype(draw(st.sampled_from(DTYPES)))
    elif change == "strided" and a.ndim:
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        a = wide[..., ::2]
    elif change == "readonly":
        a.flags.writeable = False
    elif change == "empty":
        a = a[:0]
    elif change == "list":
        return a.tolist()
    elif change == "negative" and a.dtype.kind in "if":
        a = -a - 1
    elif change == "huge" and a.dtype.kind == "f":
        a = a * np.finfo(a.dtype).max
    elif change == "huge" and a.dtype.kind in "iu":
        a = a + np.iinfo(a.dtype).max // 2
    return a


# ---------------------------------------------------------------- kernels

OUTPUTS = {"out", "losses"}                      # written by the call, success or not
IN_PLACE = {"sgd_step": ("W", "b"), "xent_sgd_step": ("W", "b"), "train_steps": ("W", "b", "average"),
            "train_many": ("W", "b", "average"), "xent_grad": ("dW", "db")}


def valid_kernel_args(op, dtype, rng):
    X = rng.random((N, F)).astype(dtype) if rng.random() < 0.5 else rng.integers(0, 256, (N, F), dtype=np.uint8)
    y = rng.integers(0, C, N)
    W = (rng.standard_normal((F, C)) * 0.1).astype(dtype)
    b = (rng.standard_normal(C) * 0.1).astype(dtype)
    if op in ("forward", "predict"):
        return {"X": X, "W": W, "b": b, "out": None}
    if op == "xent_loss":
        return {"X": X, "y": y, "W": W, "b": b}
    if op == "xent_grad":
        return {"X": X, "y": y, "W": W, "b": b, "dW": None, "db": None}
    if op == "sgd_step":
        return {"W": W, "b": b, "dW": np.full_like(W, 0.1), "db": np.full_like(b, 0.1), "learning_rate": 0.5}
    if op == "xent_sgd_step":
        return {"X": X, "y": y, "W": W, "b": b, "learning_rate": 0.5, "weight_decay": 1e-3}
    if op == "stage":
        return {"X": X, "y": y}
    if op == "predict_many":
        return {"X": X, "W": np.stack([W, -W]), "b": np.stack([b, b]), "out": None}
    if op == "train_many":
        Ws, bs = np.stack([W, W * 2]), np.stack([b, -b])
        return {"X": X, "y": y, "W": Ws, "b": bs, "orders": np.stack([rng.permutation(N), rng.permutation(N)]),
                "batch_size": 3, "learning_rate": np.array([0.5, 0.25]), "weight_decay": 0.0, "losses": None,
                "average": (np.zeros_like(Ws), np.zeros_like(bs), 0, np.array([0, 1]))
                if rng.random() < 0.5 else None, "group": np.array([1, 0])}
    return {"X": X, "y": y, "W": W, "b": b, "order": rng.permutation(N), "batch_size": 3, "learning_rate": 0.5,
            "weight_decay": 0.0, "losses": None,
            "average": (np.zeros_like(W), np.zeros_like(b), 0, 0) if rng.random() < 0.5 else None}


def _copy(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _same(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and \
            np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return True  # scalars and other objects cannot be changed in place


def _finite(a):
    return np.all(np.isfinite(np.asarray(a, dtype=np.float64)))


def check_kernel_call(kern, op, args):
    before = {name: _copy(value) for name, value in args.items()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's own overflow notes, on refused input
            result = getattr(kern, op)(**args)
    except FastSoftmaxError as exc:
        outputs = OUTPUTS | ({"dW", "db"} if op == "xent_grad" else set())
        if op in ("train_steps", "train_many") and isinstance(exc, fs.DivergenceError):
            # Not a refused argument: an update overflowed W's dtype. train_steps updates W, b and
            # the average in place as it goes and says so rather than undoing it (xent_sgd_step
            # restores them); what it leaves must be what it reports, weights that are not finite.
            outputs |= set(IN_PLACE[op])
            assert not (_finite(args["W"]) and _finite(args["b"])), \
                f"train_steps raised DivergenceError with finite weights: {exc}"
        for name, value in args.items():
            if name not in outputs:
                assert _same(value, before[name]), f"{op}: {name} changed by a refused call"
        return
    except Exception as exc:  # noqa: BLE001 - the point of the sweep
        raise AssertionError(f"{kern.__name__}.{op} raised {type(exc).__name__}: {exc} for "
                             f"{ {k: _describe(v) for k, v in args.items()} }") from exc
    changed = set(IN_PLACE.get(op, ())) | OUTPUTS
    if op in ("train_steps", "train_many") and isinstance(args.get("average"), list):
        changed.discard("average")  # a list is refused; reaching here means it was not
    for name, value in args.items():
        if name not in changed:
            assert _same(value, before[name]), f"{op}: input {name} changed"
    _check_result(op, args, result)


def _check_result(op, args, result):
    if op == "stage":
        assert result is args["X"] or (len(result) == 2 and result[0] is args["X"]) or hasattr(result[0], "shape")
        return
    W, b = args["W"], args["b"]
    if op == "forward":
        assert _finite(result) and np.allclose(result.sum(axis=1), 1, atol=1e-3)
    elif op == "predict":
        assert result.min() >= 0 and result.max() < W.shape[1]
    elif op == "predict_many":
        assert result.shape == (W.shape[0], args["X"].shape[0]) and result.min() >= 0 and result.max() < W.shape[2]
    elif op == "xent_loss":
        assert math.isfinite(result)
    elif op == "xent_grad":
        loss, dW, db = result
        assert math.isfinite(loss) and _finite(dW) and _finite(db)
    elif op in ("sgd_step", "xent_sgd_step"):
        assert _finite(W) and _finite(b), f"{op} returned with non-finite weights"
        if op == "xent_sgd_step":
            assert math.isfinite(result)
    elif op == "train_many":
        done, losses = result
        assert done.shape == (W.shape[0],) and losses.shape == (W.shape[0], losses.shape[1])
        for m in range(W.shape[0]):
            assert 0 <= done[m] <= losses.shape[1] and _finite(losses[m, :done[m]])
            if done[m] < losses.shape[1]:
                assert not math.isfinite(losses[m, done[m]])
            else:
                assert _finite(W[m]) and _finite(b[m]), "train_many reported success with non-finite weights"
    else:
        done, losses = result
        assert 0 <= done <= losses.size
        assert _finite(losses[:done])
        if done < losses.size:  # stopped at a non-finite loss, reported as such
            assert not math.isfinite(losses[done])
        if done == losses.size:
            assert _finite(W) and _finite(b), "train_steps reported success with non-finite weights"


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"array{value.shape} {value.dtype}"
    return repr(value)[:60]


OPS = ["forward", "predict", "xent_loss", "xent_grad", "sgd_step", "xent_sgd_step", "train_steps", "train_many",
       "predict_many", "stage"]


@st.composite
def kernel_cases(draw):
    op = draw(st.sampled_from(OPS))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    args = valid_kernel_args(op, np.dtype(dtype), np.random.default_rng(draw(st.integers(0, 2**32 - 1))))
    names = draw(st.lists(st.sampled_from(sorted(args)), min_size=1, max_size=2, unique=True))
    for name in names:
        like = args[name]
        if isinstance(like, np.ndarray) and draw(st.booleans()):
            args[name] = draw(near_miss_arrays(like))
        elif name == "average" and draw(st.booleans()):
            W = args["W"]
            parts = [np.zeros_like(W), np.zeros_like(args["b"]), 0, 0]
            slot = draw(st.integers(0, 3))
            parts[slot] = draw(bad_values())
            args[name] = tuple(parts) if draw(st.booleans()) else parts
        else:
            args[name] = draw(bad_values())
    return op, args


# Finite inputs whose first update overflows float32 (rounding leaves the gradient far from 0):
# the last step of a call must not report success with infinite weights.
OVERFLOWING_STEP = ("train_steps", {"X": np.full((N, F), 1e30, np.float32), "y": np.arange(N) % C,
                                    "W": np.zeros((F, C), np.float32), "b": np.zeros(C, np.float32),
                                    "order": np.arange(N), "batch_size": N, "learning_rate": 1e10})


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@sweep(200)
@given(case=kernel_cases())
@example(case=OVERFLOWING_STEP)
def test_kernel_arguments(backend, case):
    op, args = case
    check_kernel_call(kernels_or_skip(backend), op, {k: _copy(v) for k, v in args.items()})


@sweep(25)
@given(case=kernel_cases())
@example(case=("forward", {"X": np.ones((N, F), np.uint8), "W": np.zeros((F, C), np.float32),
                           "b": np.zeros(2 * C, np.float32)[::2], "out": None}))  # a strided b
@example(case=OVERFLOWING_STEP)
def test_cuda_kernel_arguments(case):
    """The same sweep on the CUDA backend: in the simulator, few and tiny examples."""
    op, args = case
    check_kernel_call(kernels_or_skip("cuda"), op, {k: _copy(v) for k, v in args.items()})


def test_every_backend_is_swept():
    assert set(BACKENDS) == {"numpy", "cpu", "cuda"} and set(OPS) == set(fs.kernels.OPERATIONS)


# ---------------------------------------------------------------- the model

rng0 = np.random.default_rng(7)
MX = rng0.random((20, F)).astype(np.float32)
MY = np.arange(20) % C
SETTINGS_FOR_SAVE = {"backend": "numpy", "batch_size": 5, "steps": 4, "progress": False}
SETTINGS = {"backend": "numpy", "learning_rate": 0.5, "batch_size": 5, "steps": 4, "epochs": None,
            "dtype": "float32", "seed": 0, "lr_decay": 0.0, "weight_decay": 0.0, "average": False,
            "warm_start": False, "progress": False}


@st.composite
def model_cases(draw):
    params = {k: v for k, v in SETTINGS.items() if k in fs.SoftmaxRegression().get_params()}
    fit_args = {"X": MX.copy(), "y": MY.copy()}
    place = draw(st.sampled_from(["constructor", "fit", "fit-keyword", "predict", "score"]))
    if place == "constructor":
        params[draw(st.sampled_from(sorted(params)))] = draw(bad_values())
    elif place in ("fit", "predict", "score"):
        name = draw(st.sampled_from(["X", "y"]))
        fit_args[name] = draw(st.one_of(near_miss_arrays(fit_args[name]), bad_values()))
    else:
        key = draw(st.sampled_from(["steps", "epochs", "validation_data", "shuffle"]))
        value = draw(st.one_of(bad_values(), st.tuples(st.one_of(bad_values(), st.just(MX)),
                                                       st.one_of(bad_values(), st.just(MY)))))
        fit_args[key] = value
    return params, place, fit_args


@sweep(120)
@given(case=model_cases())
@example(case=(SETTINGS_FOR_SAVE, "fit-keyword", {"X": MX, "y": MY, "validation_data": np.array(0)}))
@example(case=(SETTINGS_FOR_SAVE, "fit-keyword", {"X": MX, "y": MY, "epochs": -10**400}))
@example(case=(SETTINGS_FOR_SAVE, "fit", {"X": 10**400, "y": MY}))
@example(case=({**SETTINGS_FOR_SAVE, "average": np.uint8(7)}, "constructor", {"X": MX, "y": MY}))
@example(case=({**SETTINGS_FOR_SAVE, "backend": "cpu", "batch_size": 20, "steps": 1, "learning_rate": 1e10},
               "fit", {"X": np.full((20, F), 1e30, np.float32), "y": MY}))  # the one step overflows float32
def test_model_arguments(case, tmp_path):
    params, place, args = case
    path = fs.SoftmaxRegression(**SETTINGS_FOR_SAVE).fit(MX, MY).save(tmp_path / "before.npz")
    file_before = path.read_bytes()
    before = {k: _copy(v) for k, v in args.items()}
    model = fs.SoftmaxRegression(**params)  # stores only: never raises, whatever it is given
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if place in ("constructor", "fit", "fit-keyword"):
                model.fit(**args)
                assert _finite(model.coef_) and _finite(model.intercept_), "fit returned non-finite weights"
                model.save(path)
                assert fs.SoftmaxRegression.load(path).predict(MX).shape == (20,)
                file_before = path.read_bytes()
            elif place == "predict":
                fitted = fs.SoftmaxRegression(**SETTINGS_FOR_SAVE).fit(MX, MY)
                labels = fitted.predict(args["X"])
                assert labels.shape == (len(args["X"]),)
                assert _finite(fitted.predict_proba(args["X"]))
            else:
                fitted = fs.SoftmaxRegression(**SETTINGS_FOR_SAVE).fit(MX, MY)
                assert 0.0 <= fitted.score(args["X"], args["y"]) <= 1.0
    except FastSoftmaxError:
        pass
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{place}: {type(exc).__name__}: {exc} for params "
                             f"{ {k: _describe(v) for k, v in params.items()} } args "
                             f"{ {k: _describe(v) for k, v in args.items()} }") from exc
    for name, value in args.items():
        assert _same(value, before[name]), f"{place}: {name} changed"
    assert path.read_bytes() == file_before



@sweep(60)
@given(target=st.one_of(bad_values(), st.sampled_from(["", ".", "/", "dir", "dir/", "missing/m.npz",
                                                         "file/m.npz", "m\0.npz", "dir.npz", "m.npz", "n" * 251,
                                                         "n" * 300, "dir/" + "n" * 300 + "/m.npz"])),
       load=st.booleans())
def test_model_file_paths(target, load, tmp_path):
    model = fs.SoftmaxRegression(**SETTINGS_FOR_SAVE).fit(MX, MY)
    (tmp_path / "dir").mkdir(exist_ok=True)
    (tmp_path / "dir.npz").mkdir(exist_ok=True)
    (tmp_path / "file").write_text("x")
    kept = model.save(tmp_path / "kept.npz")
    kept_bytes = kept.read_bytes()
    listing = sorted(p.name for p in tmp_path.iterdir())
    where = tmp_path / target if isinstance(target, str) and target not in ("/",) and "\0" not in target else target
    try:
        if load:
            fs.SoftmaxRegression.load(where)
        else:
            written = model.save(where)
            assert written.is_file()
            written.unlink()
    except FastSoftmaxError as exc:
        assert ".tmp" not in str(exc)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{'load' if load else 'save'}({_describe(target)}): {type(exc).__name__}: {exc}") \
            from exc
    assert kept.read_bytes() == kept_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == listing  # no temporary file left


# ---------------------------------------------------------------- read_data_sets


@sweep(60)
@given(name=st.sampled_from(["data_dir", "dataset", "one_hot", "validation_size", "download", "seed", "mirrors",
                             "progressbar", "cache"]),
       value=bad_values())
def test_read_data_sets_arguments(name, value, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTSOFTMAX_OFFLINE", "1")  # download=True among the values must not go online
    monkeypatch.setattr("fastsoftmax.data.fetch.SYSTEM_DATA_ROOT", tmp_path / "none")
    args = {"data_dir": tmp_path / "empty", "download": False, name: value}
    before = _copy(value)
    try:
        fs.read_data_sets(**args)
    except FastSoftmaxError:
        pass
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"read_data_sets({name}={_describe(value)}): {type(exc).__name__}: {exc}") from exc
    assert _same(value, before)


# ---------------------------------------------------------------- the command line

CLI_VALUES = ["0", "-1", "1", "nan", "inf", "-inf", "1e400", "x", "", "0.5", "3", "1e-320", "/", "/nonexistent",
              "/a-file/out", "--", "float16", "tpu"]
CLI_OPTIONS = ["--steps", "--epochs", "--batch-size", "--learning-rate", "--lr-decay", "--weight-decay",
               "--backend", "--dtype", "--seed", "--output", "--dataset", "--data-dir"]


@sweep(30)
@given(option=st.sampled_from(CLI_OPTIONS), value=st.sampled_from(CLI_VALUES))
@example(option="--output", value="/a-file/out")  # a file where a directory is needed
@example(option="--data-dir", value="/a-file/out")
@example(option="--learning-rate", value="1e400")
def test_cli_train_arguments(option, value, tmp_path, fashion_dir, capsys, monkeypatch):
    from fastsoftmax.cli import main

    monkeypatch.chdir(tmp_path)  # relative paths ("", ".") land here too

    (tmp_path / "a-file").write_text("not a directory")
    argv = ["train", "--dataset", "fashion-mnist", "--offline", "--steps", "2", "--backend", "numpy",
            "--output", str(tmp_path / "out"), option, value]
    if option in ("--output", "--data-dir") and value not in ("", "--"):
        argv[-1] = str(tmp_path / value.lstrip("/"))  # never write outside the test's directory
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage error
        code = exc.code
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"main({argv}) raised {type(exc).__name__}: {exc}") from exc
    err = capsys.readouterr().err
    assert code in (0, 1, 2), err
    assert "Traceback" not in err
