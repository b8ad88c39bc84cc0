"""Shared fixtures: real data locations, an isolated cache, and a local HTTP mirror."""

from __future__ import annotations

import http.server
import os
import threading
import time
from pathlib import Path

import pytest

# The CUDA backend's tests run in numba-cuda's simulator unless asked not to: on a
# GPU machine, NUMBA_ENABLE_CUDASIM=0 runs the same tests on the GPU. Set before
# anything imports numba.cuda, which reads it once.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

from .realdata import FASHION_DIR, MNIST_DIR, MNIST_TEST_FILES, require  # noqa: E402

# Hypothesis profiles, chosen by FASTSOFTMAX_HYPOTHESIS: "default" (CI), "dev" (a quick local
# loop) and "device" (a real GPU, where every new shape compiles kernels again).
_PATIENT = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("default", max_examples=25, **_PATIENT)
settings.register_profile("dev", max_examples=8, **_PATIENT)
settings.register_profile("device", max_examples=4, **_PATIENT)
settings.load_profile(os.environ.get("FASTSOFTMAX_HYPOTHESIS", "default"))


def pytest_collection_modifyitems(items):
    """Every test of the CUDA backend is marked ``cuda`` (its name or a parameter says cuda), so
    ``-m "not cuda"`` leaves the simulator out of a quick loop."""
    for item in items:
        if "cuda" in item.nodeid.lower():
            item.add_marker(pytest.mark.cuda)


def kernels_or_skip(name: str):
    """The backend's kernel module. Only the CUDA backend may be missing: it skips, or fails when
    FASTSOFTMAX_REQUIRE_CUDA=1 (as in CI); the NumPy and CPU backends failing to load is a failure."""
    from fastsoftmax.errors import BackendUnavailableError
    from fastsoftmax.kernels import get_backend

    try:
        return get_backend(name)
    except BackendUnavailableError as exc:
        if name != "cuda" or require_cuda():
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def require_cuda() -> bool:
    """CI's setting: an unusable CUDA backend, or a missing CUDA compiler, fails instead of skipping."""
    from fastsoftmax import _env

    return _env.flag("FASTSOFTMAX_REQUIRE_CUDA")


def cuda_simulated() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache directory, and no user's FASTSOFTMAX_DATA leaks in."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("FASTSOFTMAX_CACHE", str(cache))
    monkeypatch.delenv("FASTSOFTMAX_DATA", raising=False)
    monkeypatch.delenv("FASTSOFTMAX_OFFLINE", raising=False)
    return cache


@pytest.fixture(scope="session")
def mnist_dir():
    """The official MNIST test set (and training labels) from ../shared/data/mnist."""
    return require(MNIST_DIR, MNIST_TEST_FILES, "see shared/data/mnist/README.md")


@pytest.fixture(scope="session")
def fashion_dir():
    """Full Fashion-MNIST from Debian's dataset-fashion-mnist package."""
    return require(FASHION_DIR, ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
                    "apt-get install dataset-fashion-mnist")


@pytest.fixture(scope="session")
def mnist_test_split(mnist_dir):
    """(pixels uint8 [10000, 784], labels int64 [10000]) of the real MNIST test set."""
    from fastsoftmax.data.idx import read_idx

    pixels = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz", 3).reshape(10000, 784)
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz", 1).astype("int64")
    return pixels, labels


class _MirrorHandler(http.server.BaseHTTPRequestHandler):
    """Serves real files under several behaviours, chosen by the first path segment:
    ``/ok/F`` the file, ``/missing/F`` 404, ``/wrong/F`` other bytes (checksum
    mismatch), ``/html/F`` an HTML page with status 200, ``/drop/F`` half the file
    then a closed connection, ``/slow/F`` the file in small pieces over a few seconds."""

    root: Path = Path(".")
    hits: list = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        self.hits.append(self.path)
        _, mode, name = self.path.split("/", 2)
        source = self.root / name
        if mode == "missing" or not source.is_file():
            self.send_error(404)
            return
        data = source.read_bytes()
        if mode == "wrong":
            data = data[::-1]
        if mode == "html":  # a captive portal or an error page served with status 200
            data = b"<!DOCTYPE html><html><body><h1>Sign in to continue</h1></body></html>\n" * 40
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "slow":
            for start in range(0, len(data), 256):
                self.wfile.write(data[start:start + 256])
                self.wfile.flush()
                time.sleep(0.05)
            return
        if mode == "drop":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(data)


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server on 127.0.0.1; returns (base_url, served_dir, hits)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = type("Handler", (_MirrorHandler,), {"root": served, "hits": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served, handler.hits
    finally:
        server.shutdown()
        server.server_close()
