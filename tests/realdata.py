"""Where the real data lives, and how a test asks for it. No side effects on import,
so the benchmarks (``bench/conftest.py``) can use it without the tests' settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MNIST_DIR = Path(os.environ.get("FASTSOFTMAX_TEST_MNIST", REPO.parent / "shared" / "data" / "mnist"))
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
MNIST_TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def require(path: Path, files, how: str):
    """Skip when real data is absent, or fail when CI demands it (FASTSOFTMAX_REQUIRE_DATA=1)."""
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        message = f"real data missing in {path}: {', '.join(missing)} ({how})"
        if os.environ.get("FASTSOFTMAX_REQUIRE_DATA", "") not in ("", "0"):
            pytest.fail(message)
        pytest.skip(message)
    return path
