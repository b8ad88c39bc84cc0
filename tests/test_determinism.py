"""The same inputs and batch order give bitwise-identical weights, whatever the thread count."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import hashlib, numpy as np
from fastsoftmax.kernels import cpu
rng = np.random.default_rng(7)
X = rng.integers(0, 256, (3000, 784), dtype=np.uint8)
y = rng.integers(0, 10, 3000)
W, b = np.zeros((784, 10), np.float32), np.zeros(10, np.float32)
cpu.train_steps(X, y, W, b, rng.integers(0, 3000, 200 * 100), 100, 0.5)
probs = cpu.forward(X, W, b)
loss = cpu.xent_loss(X, y, W, b)
print(hashlib.sha256(W.tobytes() + b.tobytes() + probs.tobytes() + np.float64(loss).tobytes()).hexdigest())
"""


def run_with_threads(threads: int) -> str:
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.mark.slow
def test_bitwise_identical_across_runs_and_thread_counts():
    digests = {run_with_threads(1), run_with_threads(2), run_with_threads(2)}
    assert len(digests) == 1, digests
