#!/usr/bin/env python3
"""The GPU check's preflight: in a few seconds, whether this machine can run the CUDA backend at all.

Run by ``bench/gpu_check.py`` before anything long, and usable alone::

    NUMBA_ENABLE_CUDASIM=0 python3 bench/gpu_preflight.py --json versions.json

Checks, in this order, stopping at the first that fails:

1. numba-cuda is installed, version 0.30 or later (read from its metadata, before
   anything imports numba, so a machine without it fails in a fraction of a second);
2. fastsoftmax and its data layer import (pooch, platformdirs, tqdm, filelock);
3. NVVM, libdevice, nvJitLink and cudadevrt are found (where numba-cuda looks:
   wheels, conda, ``CUDA_HOME``, ``/usr/local/cuda``);
4. ``cuda.is_available()``, the device and its compute capability;
5. a tiny kernel runs and gives the right answer;
6. a grid-sync (cooperative) kernel of :data:`COOPERATIVE_BLOCKS` blocks runs, as the
   training kernel does;
7. a uint8 device array read through its uint64 view gives the host's words, as the
   fast row kernels read pixels;
8. fastsoftmax's CUDA backend loads (``get_backend("cuda")``).

With ``--simulator`` (the check's dry run) steps 4-6 run in numba-cuda's simulator,
which has no device and runs a cooperative grid as one block.

Prints exactly one line on stdout, ``preflight ok: ...`` or ``preflight failed: <check>:
<what>``, and writes everything found to ``--json`` (also on failure). Exit status: 0
passed, 1 failed, 3 a CUDA library was not found (``bench/gpu_check.py`` then retries
with ``CUDA_HOME=/usr/local/cuda``). Tracebacks go to ``--log``, never to the console.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path

#: The oldest numba-cuda the CUDA backend runs on (pyproject.toml's ``numba-cuda>=0.30``).
MIN_NUMBA_CUDA = (0, 30)
#: Blocks of the grid-sync check: a grid of several blocks, each of which must wait for every other.
COOPERATIVE_BLOCKS = 32
#: Exit status when a CUDA library is missing, so that the caller can retry with CUDA_HOME.
LIBRARIES_MISSING = 3
#: Distributions whose versions are recorded.
DISTRIBUTIONS = ("numba-cuda", "numba", "numpy", "llvmlite", "cuda-core", "cuda-bindings", "cuda-pathfinder",
                 "cuda-python", "nvidia-nvvm", "nvidia-nvjitlink", "nvidia-cuda-runtime", "pooch", "platformdirs",
                 "tqdm", "filelock", "pytest", "hypothesis")
#: ``numba.cuda``, imported by :func:`check_kernels` once numba-cuda is known to be installed.
cuda = None


class CheckFailed(Exception):
    """One check's failure: ``str()`` is the line printed after ``preflight failed:``."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def version_tuple(text: str) -> tuple:
    """The leading numbers of a version string: ``"0.30.4"`` -> ``(0, 30, 4)``, ``"1.0rc1"`` -> ``(1, 0)``."""
    numbers = []
    for part in text.split("."):
        digits = ""
        for character in part:
            if not character.isdigit():
                break
            digits += character
        if not digits:
            break
        numbers.append(int(digits))
        if len(digits) != len(part):
            break
    return tuple(numbers)


def numba_cuda_problem(version: str | None) -> str | None:
    """Why this numba-cuda version (None: not installed) cannot run the CUDA backend, or None."""
    wanted = ".".join(map(str, MIN_NUMBA_CUDA))
    if version is None:
        return f"numba-cuda is not installed (pip install 'numba-cuda[cu13]>={wanted}', or [cu12] for a CUDA 12 driver)"
    if version_tuple(version) < MIN_NUMBA_CUDA:
        return f"numba-cuda {version} is older than {wanted}, which the CUDA backend needs"
    return None


def one_line(exc: BaseException) -> str:
    """An exception as ``module.Type: first line of its message``: the driver's errors come as
    numba's CudaAPIError, cuda.core's CUDAError or a plain ValueError, and each says what failed."""
    kind = type(exc)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    text = " ".join(str(exc).split())
    return f"{name}: {text[:300]}" if text else name


def _distribution_versions() -> dict:
    versions = {}
    for name in DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def check_numba_cuda(found: dict) -> str:
    found["packages"] = _distribution_versions()
    problem = numba_cuda_problem(found["packages"]["numba-cuda"])
    if problem:
        raise CheckFailed(problem)
    return f"numba-cuda {found['packages']['numba-cuda']}"


def check_simulator_setting(found: dict, simulator: bool) -> None:
    value = os.environ.get("NUMBA_ENABLE_CUDASIM", "")
    found["NUMBA_ENABLE_CUDASIM"] = value
    simulated = value not in ("", "0")
    if simulated != simulator:
        wanted = "1 (the dry run's simulator)" if simulator else "unset or 0 (a real GPU)"
        raise CheckFailed(f"NUMBA_ENABLE_CUDASIM is {value!r}; this run needs it {wanted}")


def check_imports(found: dict) -> None:
    """The package and its data layer (the GPU image may lack their pure-Python dependencies)."""
    try:
        import fastsoftmax
        import fastsoftmax.data.fetch  # pooch, platformdirs, filelock
        import fastsoftmax.model  # tqdm
    except ImportError as exc:
        raise CheckFailed(f"fastsoftmax does not import: {one_line(exc)} (its wheel belongs in .whl/: "
                          "bench/gpu_prepare.sh)") from exc
    found["fastsoftmax"] = {"version": fastsoftmax.__version__, "path": str(Path(fastsoftmax.__file__).parent)}


def _nvvm_version(path: str) -> tuple:
    import ctypes

    library = ctypes.CDLL(path)
    major, minor = ctypes.c_int(), ctypes.c_int()
    if library.nvvmVersion(ctypes.byref(major), ctypes.byref(minor)) != 0:
        raise OSError(f"nvvmVersion failed in {path}")
    return major.value, minor.value


def check_libraries(found: dict) -> str:
    """NVVM (compiles every kernel), libdevice (its math), nvJitLink and cudadevrt (link the
    grid-sync training kernel), found as numba-cuda finds them. Read through numba-cuda's
    path finder rather than ``numba.cuda.cudadrv``, which the simulator replaces."""
    libraries = found.setdefault("libraries", {"CUDA_HOME": os.environ.get("CUDA_HOME")})
    missing = []
    try:
        from numba.cuda.cuda_paths import get_cuda_paths

        paths = get_cuda_paths()
    except Exception as exc:  # numba-cuda raises its own not-found errors from here
        raise CheckFailed(f"NVVM not found: {one_line(exc)}", LIBRARIES_MISSING) from exc
    try:
        nvvm = paths["nvvm"]
        libraries["nvvm"] = {"path": nvvm.info, "found_via": nvvm.by, "version": list(_nvvm_version(nvvm.info))}
    except Exception as exc:
        missing.append(f"NVVM ({one_line(exc)})")
    libdevice = paths["libdevice"].info
    libraries["libdevice"] = libdevice
    if not libdevice or not Path(libdevice).is_file():
        missing.append("libdevice")
    try:
        from cuda import pathfinder
        from cuda.bindings import nvjitlink

        loaded = pathfinder.load_nvidia_dynamic_lib("nvJitLink")
        libraries["nvjitlink"] = {"path": loaded.abs_path, "found_via": loaded.found_via,
                                  "version": list(nvjitlink.version())}
    except Exception as exc:
        missing.append(f"nvJitLink ({one_line(exc)})")
    static = paths["static_cudalib_dir"].info
    cudadevrt = Path(static, "libcudadevrt.a") if static else None
    libraries["cudadevrt"] = str(cudadevrt) if cudadevrt else None
    if cudadevrt is None or not cudadevrt.is_file():
        missing.append("cudadevrt (libcudadevrt.a)")
    if missing:
        where = f"CUDA_HOME={os.environ['CUDA_HOME']}" if os.environ.get("CUDA_HOME") else "CUDA_HOME unset"
        raise CheckFailed(f"not found ({where}): {'; '.join(missing)}", LIBRARIES_MISSING)
    nvvm_version = ".".join(map(str, libraries["nvvm"]["version"]))
    return f"NVVM {nvvm_version} via {libraries['nvvm']['found_via']}"


def check_device(found: dict) -> str:
    from numba import cuda
    from numba.cuda.cudadrv import driver, runtime

    if not cuda.is_available():
        why = driver.driver.initialization_error if hasattr(driver, "driver") else None
        why = " ".join(str(why).split()) if why else "numba-cuda found no usable NVIDIA GPU and driver"
        raise CheckFailed(f"cuda.is_available() is False: {why}")
    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
    cc = tuple(device.compute_capability)
    found["device"] = {"name": name, "compute_capability": list(cc), "sms": device.MULTIPROCESSOR_COUNT,
                       "driver_api": list(driver.get_version()), "runtime": list(runtime.get_version())}
    try:
        found["device"]["free_bytes"], found["device"]["memory_bytes"] = cuda.current_context().get_memory_info()
    except NotImplementedError:  # an external memory manager may not say
        pass
    if cc < (7, 0):
        raise CheckFailed(f"{name} has compute capability {cc[0]}.{cc[1]}; the kernels need 7.0 or later")
    return f"{name} (cc {cc[0]}.{cc[1]}, {device.MULTIPROCESSOR_COUNT} SMs)"


def check_backend(found: dict) -> None:
    """fastsoftmax's own CUDA backend loads (its kernels' modules import, its device check passes)."""
    from fastsoftmax.errors import BackendUnavailableError
    from fastsoftmax.kernels import get_backend

    try:
        found["backend"] = get_backend("cuda").device_description()
    except BackendUnavailableError as exc:
        raise CheckFailed(f"fastsoftmax's CUDA backend: {' '.join(str(exc).split())[:300]}") from exc


def check_kernels(found: dict, simulator: bool) -> str:
    """A tiny kernel, a grid-sync kernel and a read through a uint64 view, each checked against the host."""
    # Module globals, not locals: the simulator swaps the ``cuda`` a kernel finds among its globals.
    global cuda
    import numpy as np
    from numba import cuda, types

    try:
        @cuda.jit
        def add_one(values):
            i = cuda.grid(1)
            if i < values.size:
                values[i] += 1

        values = cuda.to_device(np.arange(100, dtype=np.int64))
        add_one[2, 64](values)
        if not np.array_equal(values.copy_to_host(), np.arange(1, 101)):
            raise CheckFailed("tiny kernel: wrong result")
    except CheckFailed:
        raise
    except Exception as exc:
        raise CheckFailed(f"tiny kernel: {one_line(exc)}") from exc

    try:
        @cuda.jit
        def grid_sum(slots):
            if cuda.threadIdx.x == 0:
                slots[cuda.blockIdx.x] = cuda.blockIdx.x + 1
            cuda.cg.this_grid().sync()
            if cuda.grid(1) == 0:
                total = 0
                for k in range(cuda.gridDim.x):
                    total += slots[k]
                slots[cuda.gridDim.x] = total

        threads = 256
        if simulator:  # the simulator runs a cooperative grid as one block
            limit = grid_sum.overloads[None].max_cooperative_grid_blocks(threads) if grid_sum.overloads else 1
        else:
            limit = grid_sum.compile((types.int64[::1],)).max_cooperative_grid_blocks(threads)
        found["cooperative_limit"] = int(limit)
        blocks = min(COOPERATIVE_BLOCKS, int(limit)) if simulator else COOPERATIVE_BLOCKS
        if blocks > limit:
            raise CheckFailed(f"grid sync: the device keeps only {limit} blocks of {threads} threads resident, "
                              f"fewer than the {blocks} a cooperative launch needs")
        slots = cuda.to_device(np.zeros(blocks + 1, np.int64))
        grid_sum[blocks, threads](slots)
        total = int(slots.copy_to_host()[blocks])
        if total != blocks * (blocks + 1) // 2:
            raise CheckFailed(f"grid sync: {blocks} blocks summed to {total}, not {blocks * (blocks + 1) // 2}")
    except CheckFailed:
        raise
    except Exception as exc:
        raise CheckFailed(f"{COOPERATIVE_BLOCKS}-block grid sync: {one_line(exc)}") from exc

    try:
        @cuda.jit
        def copy_words(words, out):
            i = cuda.grid(1)
            if i < words.size:
                out[i] = words[i]

        pixels = np.random.default_rng(0).integers(0, 256, 3 * 784, dtype=np.uint8)
        words = cuda.to_device(pixels).view(np.uint64)
        out = cuda.device_array(words.shape, np.uint64)
        copy_words[1, 512](words, out)
        if not np.array_equal(out.copy_to_host(), pixels.view(np.uint64)):
            raise CheckFailed("uint64 view of uint8 pixels: words differ from the host's")
    except CheckFailed:
        raise
    except Exception as exc:
        raise CheckFailed(f"uint64 view of uint8 pixels: {one_line(exc)}") from exc
    return f"{blocks}-block grid sync ok"


def run(simulator: bool, found: dict) -> str:
    """Every check in order; returns the words after ``preflight ok:``, raises CheckFailed."""
    said = [check_numba_cuda(found)]
    check_simulator_setting(found, simulator)
    check_imports(found)
    said.append(check_libraries(found))
    said.insert(0, "numba-cuda simulator" if simulator else check_device(found))
    said.append(check_kernels(found, simulator))
    check_backend(found)
    return ", ".join(said)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write what was found here (also when a check fails)")
    parser.add_argument("--log", type=Path, help="append tracebacks here")
    parser.add_argument("--simulator", action="store_true", help="run the kernels in numba-cuda's simulator")
    args = parser.parse_args(argv)
    started = time.monotonic()
    found = {"python": platform.python_version(), "executable": sys.executable, "host": platform.node(),
             "mode": "simulator" if args.simulator else "gpu"}
    status = 0
    try:
        line = f"preflight ok: {run(args.simulator, found)}"
    except CheckFailed as exc:
        status, line = exc.status, f"preflight failed: {exc}"
        if exc.__cause__ is not None and args.log:
            with args.log.open("a") as handle:
                traceback.print_exception(exc.__cause__, file=handle)
    except Exception as exc:  # a failure no check foresaw still ends in one line
        status, line = 1, f"preflight failed: {one_line(exc)}"
        if args.log:
            with args.log.open("a") as handle:
                traceback.print_exception(exc, file=handle)
    found["seconds"] = round(time.monotonic() - started, 2)
    found["ok"], found["line"] = status == 0, line
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(found, indent=1))
    print(line, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
