"""The CUDA kernels compiled for a real GPU's architecture, on a machine without one.

The simulator runs the kernels as Python, so a kernel that types or lowers
differently on a GPU passes there. Here each kernel is compiled to PTX for
sm_90 (H100) with numba-cuda's real compiler (NVVM), for every combination of
W's dtype and X's dtype that the wrappers launch. Needs NVVM and NVRTC, which
the ``cuda`` and ``test`` extras install (``numba-cuda[cu13]``); runs in a
subprocess because the test session may have the simulator switched on.
"""

import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import numba.cuda.dispatcher as dispatcher
from numba import cuda, types as T

class _Device:  # compiling a call to a device function asks the current device for its architecture
    compute_capability = (9, 0)

dispatcher.get_current_device = _Device
from fastsoftmax.kernels import _cuda_kernels as k

failures = []
for ft in (T.float32, T.float64):
    for xt in (T.uint8, ft):
        X, M, v = T.Array(xt, 2, "C"), T.Array(ft, 2, "C"), T.Array(ft, 1, "C")
        i64, f64 = T.Array(T.int64, 1, "C"), T.Array(T.float64, 1, "C")
        signatures = {
            k._forward_kernel: (X, ft, M, v, M),
            k._predict_kernel: (X, ft, M, v, i64),
            k._row_loss_kernel: (X, ft, i64, M, v, f64),
            k._row_grad_kernel: (X, ft, i64, M, v, T.float64, M, f64),
            k._partial_grad_kernel: (X, ft, M, T.Array(ft, 3, "C"), M),
            k._sum_chunks_kernel: (M, v),
            k._axpy_kernel: (v, v, ft),
            k._train_kernel: (X, ft, i64, M, v, i64, T.int64, f64, T.float64, f64, M, f64, i64),
        }
        for kernel, signature in signatures.items():
            try:
                ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=(9, 0))
                assert ".entry" in ptx
            except Exception as exc:
                failures.append(f"{kernel.py_func.__name__}{signature}: {type(exc).__name__}: {exc}")
print("\n".join(failures) or "all compiled")
sys.exit(1 if failures else 0)
"""


def _compiler_problem():
    try:
        from numba.cuda.cudadrv import nvrtc, nvvm  # noqa: F401
    except ImportError as exc:
        return f"numba-cuda missing: {exc}"
    return None


def test_every_kernel_compiles_to_ptx_for_sm90():
    problem = _compiler_problem()
    if problem:
        pytest.skip(problem)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "FASTSOFTMAX_NO_CACHE": "1"}
    result = subprocess.run([sys.executable, "-c", "import sys\n" + SCRIPT], env=env,
                            capture_output=True, text=True, timeout=600)
    if "NvvmSupportError" in result.stdout + result.stderr and "libNVVM cannot be found" in result.stdout + result.stderr:
        pytest.skip("NVVM is not installed (pip install 'fastsoftmax[cuda]')")
    assert result.returncode == 0, result.stdout + result.stderr
