"""What this machine can do at best, measured by quick probes, so results read as a share of it.

Both probes use NumPy, which on a CPU is as good a yardstick as there is: a
float32 matrix product for the floating-point peak (all of NumPy's BLAS threads),
and a large copy for memory bandwidth. They take about a second together.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np


def timings(fn, rounds) -> list:
    """Seconds taken by each of ``rounds`` calls of ``fn``."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _median_seconds(fn, rounds):
    return statistics.median(timings(fn, rounds))


def matmul_gflops(n: int = 1536, rounds: int = 5) -> float:
    """float32 ``n x n`` matrix product rate, GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    return 2 * n**3 / _median_seconds(lambda: np.matmul(a, b, out=out), rounds) / 1e9


def copy_gbs(megabytes: int = 256, rounds: int = 5) -> float:
    """Memory bandwidth of a large copy, GB/s, counting the bytes read and written."""
    src = np.ones(megabytes * 2**20, np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    return 2 * src.nbytes / _median_seconds(lambda: np.copyto(dst, src), rounds) / 1e9


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(gpu: str | None = None) -> dict:
    """The machine and its measured limits."""
    import numba

    from .. import __version__

    return {
        "cpu": cpu_name(), "logical_cores": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "numba": numba.__version__, "fastsoftmax": __version__,
        "numba_threads": numba.config.NUMBA_NUM_THREADS, "gpu": gpu,
        "peak_gflops": round(matmul_gflops(), 1), "bandwidth_gbs": round(copy_gbs(), 1),
    }


def cuda_copy_gbs(megabytes: int = 512, rounds: int = 5):
    """Device-to-device copy bandwidth of the GPU, GB/s (read + written), or None without a real GPU."""
    from ..kernels import backend_problem, get_backend

    if backend_problem("cuda") is not None or get_backend("cuda").SIMULATED:
        return None
    from numba import cuda

    src = cuda.to_device(np.ones(megabytes * 2**20, np.uint8))
    dst = cuda.device_array_like(src)

    def copy():
        dst.copy_to_device(src)
        cuda.synchronize()
    copy()
    return 2 * src.size / _median_seconds(copy, rounds) / 1e9
