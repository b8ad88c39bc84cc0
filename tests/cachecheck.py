"""Run training in a fresh process on a private copy of the package, to see its kernel cache at work.

Shared by ``tests/test_compile_cache.py`` (where the cache goes) and
``bench/bench_targets.py`` (how long a process waits before its first step).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fastsoftmax

SCRIPT = """
import time
started = time.perf_counter()
import hashlib, json
import numpy as np
import fastsoftmax
from fastsoftmax.kernels import cpu, _cpu_training
rng = np.random.default_rng(0)
X = rng.integers(0, 256, (300, 784), dtype=np.uint8)
y = rng.integers(0, 10, 300)
W, b = np.zeros((784, 10), np.float32), np.zeros(10, np.float32)
start = time.perf_counter()
cpu.train_steps(X, y, W, b, np.arange(300), 100, 0.5)
first_call_s = time.perf_counter() - start
stats = _cpu_training._train_team.stats
print(json.dumps({"package": fastsoftmax.__file__, "first_call_s": first_call_s,
                  "to_first_step_s": time.perf_counter() - started,
                  "hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values()),
                  "digest": hashlib.sha256(W.tobytes() + b.tobytes()).hexdigest()}))
"""


def package_copy(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    shutil.copytree(Path(fastsoftmax.__file__).parent, root / "fastsoftmax",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


def run_training(root: Path, tmp_path: Path, **env) -> dict:
    """One fresh process training three steps; the package and user cache dirs are the test's own."""
    env = {**os.environ, "PYTHONPATH": str(root), "XDG_CACHE_HOME": str(tmp_path / "user-cache"), **env}
    env.pop("NUMBA_CACHE_DIR", None)
    # cwd elsewhere: `python -c` puts the working directory, the checkout, first on sys.path
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["package"].startswith(str(root)), report  # the copy, not the installed package
    return report


def index_files(directory: Path) -> list:
    return sorted(directory.rglob("*.nbi")) if directory.exists() else []
