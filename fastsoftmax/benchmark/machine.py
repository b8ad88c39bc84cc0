"""What this machine can do at best, measured by quick probes, so results read as a share of it.

Both probes use NumPy, which on a CPU is as good a yardstick as there is: a
float32 matrix product (OpenBLAS's sgemm, 4096^3) for the floating-point peak on
all of NumPy's BLAS threads, and a large copy for memory bandwidth. They take a
few seconds together. The CPU is identified from ``/proc/cpuinfo`` (vendor,
family, model: a VM's model name is often just "AMD EPYC") and its caches from
sysfs, and :func:`results_name` turns that into the name of a saved run.
"""

from __future__ import annotations

import os
import platform
import re
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


def matmul_gflops(n: int = 4096, rounds: int = 3) -> float:
    """float32 ``n x n`` matrix product rate, GFLOP/s: the best of ``rounds`` after a warm-up.

    The best, not the median: the peak is what the machine can do, and the shared
    host only ever takes speed away.
    """
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    return 2 * n**3 / min(timings(lambda: np.matmul(a, b, out=out), rounds)) / 1e9


def copy_gbs(megabytes: int = 256, rounds: int = 5) -> float:
    """Memory bandwidth of a large copy, GB/s, counting the bytes read and written."""
    src = np.ones(megabytes * 2**20, np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    return 2 * src.nbytes / _median_seconds(lambda: np.copyto(dst, src), rounds) / 1e9


def _cpuinfo() -> dict:
    """The first processor's fields in /proc/cpuinfo ({} where there is none)."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_name() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


#: (vendor, family) -> [(first model, last model, microarchitecture)], the x86-64 server and
#: desktop parts this project is likely to meet; anything else is named by family and model.
_MICROARCHITECTURES = {
    ("AuthenticAMD", 23): [(0x00, 0x2F, "Zen"), (0x30, 0xFF, "Zen 2")],
    ("AuthenticAMD", 25): [(0x00, 0x0F, "Zen 3"), (0x10, 0x1F, "Zen 4"), (0x20, 0x5F, "Zen 3"),
                           (0x60, 0xAF, "Zen 4")],
    ("AuthenticAMD", 26): [(0x00, 0xFF, "Zen 5")],
    ("GenuineIntel", 6): [(0x55, 0x55, "Skylake-SP"), (0x6A, 0x6C, "Ice Lake-SP"),
                          (0x8F, 0x8F, "Sapphire Rapids"), (0xCF, 0xCF, "Emerald Rapids"),
                          (0xAD, 0xAE, "Granite Rapids"), (0xAF, 0xAF, "Sierra Forest")],
}

#: The instruction-set extensions that decide how the kernels are compiled.
_SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile")


def cpu_identity() -> dict:
    """Vendor, family, model, microarchitecture (None when unknown), SIMD extensions and cache sizes."""
    info = _cpuinfo()
    vendor = info.get("vendor_id")
    family = int(info["cpu family"]) if info.get("cpu family", "").isdigit() else None
    model = int(info["model"]) if info.get("model", "").isdigit() else None
    uarch = next((name for first, last, name in _MICROARCHITECTURES.get((vendor, family), [])
                  if model is not None and first <= model <= last), None)
    flags = set(info.get("flags", "").split())
    return {"cpu_vendor": vendor, "cpu_family": family, "cpu_model": model, "cpu_microarchitecture": uarch,
            "cpu_simd": [f for f in _SIMD_FLAGS if f in flags], "cpu_caches": _caches()}


def _caches() -> dict:
    """Per-core cache sizes from sysfs, e.g. {"L1d": "32K", "L2": "1024K", "L3": "32768K"}."""
    caches = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((index / f).read_text().strip() for f in ("level", "type", "size"))
        except OSError:
            continue
        if kind != "Instruction":
            caches[f"L{level}" + ("d" if kind == "Data" else "")] = size
    return caches


def results_name(machine: dict) -> str:
    """The file name (without suffix) proposed for a saved run on ``machine`` (a :func:`describe`
    dict): vendor, model name, microarchitecture and core count, e.g. ``cpu-amd-epyc-zen4-2core``."""
    words = re.sub(r"\((R|TM|tm)\)|@.*$|\b(CPU|Processor|\d+-Core)\b", " ", machine.get("cpu") or "")
    vendor = {"AuthenticAMD": "amd", "GenuineIntel": "intel"}.get(machine.get("cpu_vendor"), "")
    microarchitecture = (machine.get("cpu_microarchitecture") or "").lower()
    parts = [vendor] + words.lower().split() + re.sub(r"([a-z]) (\d)", r"\1\2", microarchitecture).split()
    slug = "-".join(dict.fromkeys(re.sub(r"[^a-z0-9]+", "-", " ".join(p for p in parts if p)).strip("-").split("-")))
    if not machine.get("cpu_microarchitecture") and machine.get("cpu_family") is not None:
        slug += f"-family{machine['cpu_family']}-model{machine['cpu_model']}"
    gpu = "-gpu" if machine.get("gpu") else ""
    return f"cpu-{slug}-{machine.get('logical_cores', 0)}core{gpu}"


def describe(gpu: str | None = None) -> dict:
    """The machine and its measured limits."""
    import numba

    from .. import __version__

    return {
        "cpu": cpu_name(), **cpu_identity(), "logical_cores": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "numba": numba.__version__, "fastsoftmax": __version__,
        "numba_threads": numba.config.NUMBA_NUM_THREADS, "gpu": gpu, "peers": _peer_versions(),
        "peak_gflops": round(matmul_gflops(), 1), "peak_probe": "float32 matmul 4096^3 via NumPy, best of 3",
        "bandwidth_gbs": round(copy_gbs(), 1),
    }


def _peer_versions() -> dict:
    """Installed versions of the optional peers (JAX, PyTorch), without importing them."""
    from importlib import metadata

    versions = {}
    for lib in ("jax", "torch"):
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    return versions


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
