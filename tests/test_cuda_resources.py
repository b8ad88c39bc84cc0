"""Every CUDA kernel compiled for a real GPU's architecture (sm_90, H100/H200), on a machine without one.

The simulator runs the kernels as Python, so a kernel that types or lowers
differently on a GPU, spills registers, or asks for more registers than its
launch allows (a launch of 256 threads that need more than 255 registers, or 4
resident blocks that need more than 64, fails with
CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES) passes there. Here numba-cuda compiles each
kernel with its declared launch bounds, and nvJitLink assembles it for sm_90 and
reports what ptxas allocated (:mod:`fastsoftmax.kernels._cuda_resources`). Needs
numba-cuda's compiler pieces (NVVM, nvJitLink: the ``cuda`` and ``test`` extras);
runs in a subprocess, since the test session may have the simulator on.
"""

import json
import os
import subprocess
import sys

import pytest

from fastsoftmax.kernels._cuda_resources import register_limit

SCRIPT = r"""
import json, sys
import numpy as np
from numba import cuda, types as T
from fastsoftmax.kernels import _cuda_resources as R

rows = R.usage((9, 0), quick=True)

# A kernel made to spill: 24 doubles indexed at run time, squeezed into 32 registers.
def spilling(x, y):
    i = cuda.grid(1)
    a = cuda.local.array(24, np.float64)
    for j in range(24):
        a[j] = x[i + j] * x[i + 2 * j]
    s = 0.0
    for j in range(24):
        for m in range(24):
            s += a[j] * a[m] * x[j + m]
    y[i] = s

with R._architecture((9, 0)):
    ptx, _ = cuda.compile_ptx(spilling, (T.float64[::1], T.float64[::1]), cc=(9, 0), launch_bounds=(1024, 2))
registers, frame, stores, loads = R._assemble(ptx, (9, 0))
control = R.Usage("spilling", "control", 1024, 2, registers, R.register_limit(1024, 2), frame, stores, loads, False)
json.dump({"kernels": [dict(vars(r), problems=r.problems) for r in rows],
           "control": dict(vars(control), problems=control.problems)}, sys.stdout)
"""


def _compiler_problem():
    try:
        from cuda.core import Linker  # noqa: F401
        from numba.cuda.cudadrv import nvvm  # noqa: F401
    except ImportError as exc:
        return f"numba-cuda's compiler pieces are missing: {exc} (pip install 'fastsoftmax[cuda]')"
    return None


@pytest.fixture(scope="module")
def compiled():
    problem = _compiler_problem()
    if problem:
        if os.environ.get("FASTSOFTMAX_REQUIRE_CUDA", "") not in ("", "0"):
            pytest.fail(problem)
        pytest.skip(problem)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "FASTSOFTMAX_NO_CACHE": "1"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    if "libNVVM cannot be found" in result.stdout + result.stderr:
        pytest.skip("NVVM is not installed (pip install 'fastsoftmax[cuda]')")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_register_budget_of_a_launch():
    assert register_limit(256) == 255  # one block of 256: the per-thread maximum
    assert register_limit(1024) == 64  # one block of 1024 threads shares 64K registers
    assert register_limit(256, 4) == 64
    assert register_limit(256, 3) == 80  # 85 rounded down to the allocation unit of 8


def test_every_kernel_fits_its_launch_on_sm90_without_spilling(compiled):
    kernels = compiled["kernels"]
    names = {k["kernel"] for k in kernels}
    assert {"fast forward", "fast predict", "fast loss", "fast grad", "generic forward", "generic predict",
            "generic loss", "generic grad", "partial grad", "sum chunks", "block sums", "axpy",
            "train cooperative", "train slices", "train rows"} <= names
    assert {k["variant"].split(" X ")[0] for k in kernels if k["kernel"] == "fast forward"} == \
        {"C=16 W float32", "C=16 W float64"}
    over = [f"{k['kernel']} [{k['variant']}]: {'; '.join(k['problems'])}" for k in kernels if k["problems"]]
    assert not over, "\n".join(over)
    for k in kernels:
        assert 0 < k["registers"] <= k["register_limit"]
        if k["kernel"].startswith(("fast", "train")):
            assert k["stack_frame"] == 0  # the accumulators stay in registers


def test_the_check_catches_a_spilling_kernel(compiled):
    control = compiled["control"]
    assert control["spill_stores"] > 0 and control["registers"] <= 32
    assert any("spills" in p for p in control["problems"])
