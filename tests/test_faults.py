"""Faults, each run for real: two processes loading one dataset, Ctrl-C during a download
and during training, a cache directory that cannot be used. Nothing corrupt is left behind
and the next run works."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax.data.manifest import MNIST

pytestmark = pytest.mark.realdata

LABELS = MNIST.file("test_labels")
LOAD_SCRIPT = """
import sys
from fastsoftmax.data.fetch import download_file
from fastsoftmax.data.manifest import MNIST
print(download_file(MNIST.file("test_labels"), [sys.argv[1]], sys.argv[2], progressbar=False))
"""


def _start(script, *args, env=None):
    # SIGINT back to its default in the child, as a terminal starts a program: when these tests
    # themselves run in the background (nohup, some CI runners), SIGINT is inherited as ignored,
    # and Python then never turns it into KeyboardInterrupt.
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _cache_is_clean(cache):
    """Only finished, verified files (and lock files) in the cache."""
    for path in cache.iterdir():
        if path.name.endswith(".lock"):
            continue
        assert path.name == LABELS.filename, f"leftover {path.name}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == LABELS.sha256


def test_two_processes_downloading_the_same_file(mnist_dir, mirror, tmp_path):
    base, served, hits = mirror
    shutil.copy(mnist_dir / LABELS.filename, served / LABELS.filename)
    cache = tmp_path / "cache"
    procs = [_start(LOAD_SCRIPT, base + "/slow/", str(cache)) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    _cache_is_clean(cache)
    assert len([h for h in hits if h.startswith("/slow/")]) == 1  # the lock made the second one wait and reuse


def test_ctrl_c_during_a_download_leaves_nothing_and_the_next_run_works(mnist_dir, mirror, tmp_path):
    base, served, hits = mirror
    shutil.copy(mnist_dir / LABELS.filename, served / LABELS.filename)
    cache = tmp_path / "cache"
    proc = _start(LOAD_SCRIPT, base + "/slow/", str(cache))
    deadline = time.time() + 30
    while not hits and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # mid-transfer: the slow mirror takes about a second for this file
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    if cache.exists():
        assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []
    again = _start(LOAD_SCRIPT, base + "/ok/", str(cache))
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    _cache_is_clean(cache)


TRAIN_SCRIPT = """
import json, sys, numpy as np
import fastsoftmax as fs
rng = np.random.default_rng(0)
X, y = rng.integers(0, 256, (5000, 784), dtype=np.uint8), rng.integers(0, 10, 5000)
model = fs.SoftmaxRegression(backend="numpy", progress=False)
print("started", flush=True)
try:
    model.fit(X, y, steps=10**6)
except KeyboardInterrupt:
    W, b = model.W, model.b
    path = model.save(sys.argv[1])
    print(json.dumps({"steps": model.steps_done, "finite": bool(np.isfinite(W).all() and np.isfinite(b).all()),
                      "history": len(model.history["loss"])}), flush=True)
"""


def test_ctrl_c_during_training_keeps_the_last_completed_steps(tmp_path):
    proc = _start(TRAIN_SCRIPT, str(tmp_path / "model.npz"))
    assert proc.stdout.readline().strip() == "started"
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    state = json.loads(out.strip().splitlines()[-1])
    assert state["finite"] and state["steps"] > 0 and state["steps"] == state["history"]
    model = fs.SoftmaxRegression.load(tmp_path / "model.npz")
    assert model.steps_done == state["steps"]


def test_an_unusable_cache_directory_still_loads_local_files(mnist_dir, tmp_path, monkeypatch):
    """FASTSOFTMAX_CACHE under a regular file: parsed arrays cannot be cached, loading still works;
    a download into it fails with one clear error."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("FASTSOFTMAX_CACHE", str(blocker / "cache"))
    spec = fs.data.DATASETS["mnist"]
    local = tmp_path / "local"
    local.mkdir()
    for part in ("test_images", "test_labels"):
        shutil.copy(mnist_dir / spec.file(part).filename, local / spec.file(part).filename)
    from fastsoftmax.data.cache import load_idx_cached
    from fastsoftmax.data.fetch import cache_root

    labels = load_idx_cached(local / LABELS.filename, cache_root() / "parsed", 1)
    assert labels.shape == (10000,) and list(labels[:5]) == [7, 2, 1, 0, 4]
    with pytest.raises((fs.DataNotFoundError, fs.DownloadError)) as info:
        fs.read_data_sets(local, dataset="mnist", download=True, mirrors=["http://127.0.0.1:9/"], progressbar=False)
    assert "train-images" in str(info.value)


def test_interrupted_model_save_keeps_the_previous_file(tmp_path):
    """A save that fails part-way (here: W of an unsupported dtype makes the writer raise inside
    the temporary file) leaves the previous model intact and no temporary file."""
    from fastsoftmax.modelfile import save_model

    rng = np.random.default_rng(0)
    good = fs.SoftmaxRegression(batch_size=10).fit(rng.random((40, 4)), rng.integers(0, 2, 40), steps=3)
    path = good.save(tmp_path / "m.npz")
    before = path.read_bytes()

    class Exploding:
        """An array-like whose conversion fails after the archive has been opened."""
        def __array__(self, *args, **kwargs):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_model(path, good.W, Exploding(), {"dtype": "float64"})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    np.testing.assert_array_equal(fs.SoftmaxRegression.load(path).W, good.W)


# ---------------------------------------------------------------- writing files

FULL_DISK_SCRIPT = """
import errno, json, resource, sys
import numpy as np
from fastsoftmax.errors import FileWriteError
from fastsoftmax.modelfile import save_model
path, limit = sys.argv[1], int(sys.argv[2])
W, b = np.full((200, 10), 0.25), np.zeros(10)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # the disk is "full" after `limit` bytes
try:
    save_model(path, W, b, {"dtype": "float64", "n_features": 200, "n_classes": 10})
except FileWriteError as exc:
    print(json.dumps({"message": str(exc), "errno": exc.errno, "filename": exc.filename,
                      "oserror": isinstance(exc, OSError)}))
"""


def _small_model(path, fill=0.5):
    from fastsoftmax.modelfile import save_model

    return save_model(path, np.full((3, 2), fill), np.zeros(2), {"dtype": "float64", "n_features": 3,
                                                                  "n_classes": 2})


def test_a_full_disk_fails_the_save_naming_the_target_and_keeps_the_previous_file(tmp_path):
    path = _small_model(tmp_path / "m.npz")
    before = path.read_bytes()
    proc = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, str(path), "4096"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["errno"] == 27 and report["oserror"]  # EFBIG, what RLIMIT_FSIZE gives
    assert report["filename"] == str(path) and str(path) in report["message"]
    assert ".tmp" not in report["message"]
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_write_errors_name_the_target_not_a_temporary_file(tmp_path):
    from fastsoftmax.errors import FileWriteError, PathIsDirectoryError

    with pytest.raises(FileNotFoundError) as info:
        _small_model(tmp_path / "no" / "such" / "m.npz")
    assert isinstance(info.value, FileWriteError) and str(tmp_path / "no" / "such" / "m.npz") in str(info.value)
    assert ".tmp" not in str(info.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileWriteError, match="cannot write .*file/m.npz"):
        _small_model(tmp_path / "file" / "m.npz")
    for directory in (tmp_path, str(tmp_path) + "/", tmp_path / "d.npz"):
        (tmp_path / "d.npz").mkdir(exist_ok=True)
        with pytest.raises(PathIsDirectoryError, match="it is a directory"):
            _small_model(directory)
    with pytest.raises(IsADirectoryError):  # "d" would become d.npz, which is a directory
        _small_model(tmp_path / "d")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "file"]


def test_names_near_and_over_the_length_limit(tmp_path):
    from fastsoftmax.errors import FileWriteError
    from fastsoftmax.modelfile import load_model

    near = _small_model(tmp_path / ("n" * 250))  # 254 bytes with .npz: its temporary name must fit too
    assert near.name == "n" * 250 + ".npz" and load_model(near)[0].shape == (3, 2)
    with pytest.raises(FileWriteError, match="File name too long"):
        _small_model(tmp_path / ("n" * 300))
    with pytest.raises(fs.ModelNotFoundError):
        load_model(tmp_path / ("n" * 300))
    assert sorted(p.name for p in tmp_path.iterdir()) == [near.name]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_directory_fails_naming_the_target(tmp_path):
    from fastsoftmax.errors import FileWriteError

    path = _small_model(tmp_path / "m.npz")
    before = path.read_bytes()
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(PermissionError) as info:
            _small_model(path, fill=2.0)
    finally:
        tmp_path.chmod(0o755)
    assert isinstance(info.value, FileWriteError) and str(path) in str(info.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_get_the_permissions_the_umask_allows(tmp_path, umask, expected):
    old = os.umask(umask)
    try:
        path = _small_model(tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == expected


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    path = _small_model(tmp_path / "m.npz")
    path.chmod(0o640)
    _small_model(path, fill=3.0)
    assert path.stat().st_mode & 0o777 == 0o640
