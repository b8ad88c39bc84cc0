#!/usr/bin/env python3
"""The GPU check: everything the CUDA backend needs measured or tested on a real GPU, in one command.

Run on a machine with an NVIDIA GPU, from the repository root, after ``bench/gpu_prepare.sh``
has built ``.whl/`` (wheels the GPU image lacks) and ``.gpudata/`` (MNIST's test files and
Fashion-MNIST) on a development machine and both were carried along::

    python3 bench/gpu_check.py                # results into $OUT, else bench/results/gpu-check/

Steps, each bounded so the whole stays under 6 minutes, each writing a file:

1. ``versions.txt``: GPU, driver, CUDA runtime, numba, numba-cuda, NumPy, Python.
2. ``kernel-resources.{txt,json}``: every kernel compiled for this GPU's architecture, with
   registers, local memory (stack frame) and spills (``fastsoftmax.kernels._cuda_resources``;
   runs beside the other steps, on the CPU), and ``loaded-kernels.json``: what the driver
   reports for the kernels the next step loaded.
3. ``kernel-times.json``: CUDA-event times of the inference kernels on 1,000,000 and 10,000
   device-resident rows, uint8 and float32, against the measured device copy bandwidth, and
   the whole call (result copied back) beside each; W1 training, whole call.
4. ``gpu-bench.json``: ``fastsoftmax bench`` with the cuda and cpu variants (W1, predict-10k,
   predict-1m, forward-10k, grad-10k, transfer), the file the README's GPU table is made from.
5. ``cuda-realdata-tests.{log,xml}`` and ``cuda-tests.{log,xml}``: the CUDA tests on the GPU
   (``NUMBA_ENABLE_CUDASIM=0``): first the 1000-step parity runs on real MNIST, then every kernel
   and path (``tests/test_cuda_kernels.py``) and the registry's parity tests.

``summary.json`` gives each step's exit status and seconds; the check exits non-zero when a
step failed. ``--dry-run`` (no GPU needed) checks the wheels install, the data load, the
resource check runs (quick set), the kernel-time step runs in the simulator on a few rows, a
CUDA test passes in the simulator and the bench command's names exist, without timing anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / ".whl"
DATA = ROOT / ".gpudata"
VARIANTS = "numpy-loop,cpu-u8,cuda-u8,cuda-f32"
WORKLOADS = "w1,predict-10k,predict-1m,forward-10k,grad-10k,transfer"
#: The CUDA tests, in two runs: the real-data parity runs first (1000 steps on MNIST), then the rest.
REALDATA_TESTS = ["tests/test_model.py",
                  "tests/test_kernel_parity.py::test_tutorial_run_on_real_mnist_matches_a_float64_reference"]
KERNEL_TESTS = ["tests/test_cuda_kernels.py", "tests/test_kernel_parity.py"]
#: Seconds each step may take: 6 minutes in all, the resource check running beside the others.
LIMITS = {"versions": 20, "kernel times": 70, "bench": 170, "real-data tests": 40, "kernel tests": 55,
          "resources": 300}


def log(message):
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Steps:
    def __init__(self, out: Path, env: dict):
        self.out, self.env, self.summary = out, env, {}

    def run(self, name, command, output=None, limit=None, env=None):
        """Run one step as a subprocess within its time limit; its output to the console and ``output``."""
        limit = limit or LIMITS[name]
        log(f"{name}: {shlex.join(str(c) for c in command)}")
        start = time.monotonic()
        try:
            result = subprocess.run([str(c) for c in command], cwd=ROOT, env={**self.env, **(env or {})},
                                    capture_output=True, text=True, timeout=limit)
            rc, text = result.returncode, result.stdout + result.stderr
        except subprocess.TimeoutExpired as exc:
            rc = 124
            text = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            text += f"\n[stopped after {limit} s]\n"
        seconds = time.monotonic() - start
        print(text, end="" if text.endswith("\n") else "\n", flush=True)
        if output:
            (self.out / output).write_text(text)
        self.summary[name] = {"rc": rc, "seconds": round(seconds, 1), "output": output}
        log(f"{name}: exit {rc} after {seconds:.0f} s")
        return rc


def install_wheels(site: Path) -> None:
    wheels = sorted(WHEELS.glob("*.whl"))
    names = {w.name.split("-")[0].lower() for w in wheels}
    if not {"pooch", "platformdirs"} <= names:
        raise SystemExit(f"{WHEELS} lacks the pooch and platformdirs wheels: run bench/gpu_prepare.sh first")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)], check=True)


def check_data() -> None:
    expected = {"mnist": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
                "fashion-mnist": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
    missing = [f"{d}/{f}" for d, files in expected.items() for f in files if not (DATA / d / f).is_file()]
    if missing:
        raise SystemExit(f"{DATA} lacks {', '.join(missing)}: run bench/gpu_prepare.sh first")


VERSIONS = r"""
import platform, subprocess
import numpy, numba
print("python", platform.python_version(), "numpy", numpy.__version__, "numba", numba.__version__)
try:
    import numba_cuda
    print("numba-cuda", numba_cuda.__version__)
except ImportError as exc:
    print("numba-cuda missing:", exc)
try:
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem",
                          "--format=csv"], capture_output=True, text=True, timeout=20).stdout
    print(out.strip())
except (OSError, subprocess.SubprocessError) as exc:
    print("nvidia-smi:", exc)
from fastsoftmax.kernels import backend_problem
problem = backend_problem("cuda")
if problem:
    print("CUDA backend unusable:", problem)
else:
    from fastsoftmax.kernels import cuda as k
    print(k.device_description())
    if not k.SIMULATED:
        from numba.cuda.cudadrv import driver, runtime
        print("CUDA driver API", driver.get_version(), "runtime", runtime.get_version(),
              "SMs", k.cuda.get_current_device().MULTIPROCESSOR_COUNT)
"""


# ---------------------------------------------------------------- kernel times (runs in its own process)


def kernel_times(out: Path, rows: int) -> None:
    """CUDA-event times of the inference kernels on device-resident rows; see the module docstring."""
    import statistics

    import numpy as np
    from numba import cuda

    from fastsoftmax.benchmark import machine, workloads
    from fastsoftmax.data.dataset import read_data_sets
    from fastsoftmax.kernels import cuda as k

    data = workloads.Data(read_data_sets(DATA / "fashion-mnist", dataset="fashion-mnist", download=False, seed=0))
    W, b = workloads.trained_weights(data)
    copy_gbs = machine.cuda_copy_gbs()
    rounds = 1 if k.SIMULATED else 20  # the simulator's times mean nothing: it only shows the step works
    report = {"device": k.device_description(), "copy_gbs": copy_gbs, "rounds": rounds, "kernels": [], "calls": []}

    def event_seconds(launch):
        launch()  # compile and warm up
        cuda.synchronize()
        times = []
        for _ in range(rounds):
            start, stop = cuda.event(), cuda.event()
            began = time.perf_counter()
            start.record()
            launch()
            stop.record()
            stop.synchronize()
            elapsed = start.elapsed_time(stop) / 1e3  # the simulator records no time: -1 ms
            times.append(elapsed if elapsed > 0 else time.perf_counter() - began)
        return statistics.median(times)

    def call_seconds(fn):
        fn()
        return statistics.median(machine.timings(fn, rounds))

    for name in ("cuda-u8",) if k.SIMULATED else ("cuda-u8", "cuda-f32"):
        variant = workloads.variant(name)
        million = data.rows("million", variant)[:rows]
        test = data.rows("test", variant)[:rows]
        for label, X in ((f"{len(million):,} rows", million), (f"{len(test):,} rows", test)):
            staged = k.stage(X)
            for op, shape, dtype in (("predict", (len(X),), np.int64), ("forward", (len(X), W.shape[1]), W.dtype)):
                call = k._Rows(staged, W, b)
                d_out = cuda.device_array(shape, dtype)
                seconds = event_seconds(lambda call=call, op=op, d_out=d_out: call.launch(op, d_out))
                moved = X.nbytes + d_out.nbytes
                entry = {"variant": name, "operation": op, "rows": len(X), "kernel_s": seconds,
                         "gbs": moved / seconds / 1e9, "grid": call.grid, "fast": call.fast}
                if copy_gbs:
                    entry["share_of_copy_bandwidth"] = entry["gbs"] / copy_gbs
                fn = getattr(k, op)
                entry["call_s"] = call_seconds(lambda fn=fn, X=staged: fn(X, W, b))
                entry["call_over_kernel"] = entry["call_s"] / seconds
                report["kernels"].append(entry)
                print(f"{name:8} {op:8} {label:>16}: kernel {seconds * 1e3:8.3f} ms  {entry['gbs']:7.1f} GB/s"
                      + (f" ({100 * entry['share_of_copy_bandwidth']:.0f}% of copy)" if copy_gbs else "")
                      + f"  whole call {entry['call_s'] * 1e3:8.3f} ms ({entry['call_over_kernel']:.2f}x)", flush=True)
            staged = None  # frees the device copy before the next one
        X, y = k.stage(data.rows("train", variant), data.train_labels)
        order = data.order_w1 if not k.SIMULATED else data.order_w1[:workloads.BATCH]

        def w1():
            W0, b0 = np.zeros_like(W), np.zeros_like(b)
            done, _ = k.train_steps(X, y, W0, b0, order, workloads.BATCH, workloads.LR)
            assert done == len(order) // workloads.BATCH
        seconds = call_seconds(w1)
        report["calls"].append({"variant": name, "workload": "w1", "steps": len(order) // workloads.BATCH,
                                "call_s": seconds})
        print(f"{name:8} W1 ({len(order) // workloads.BATCH} steps of {workloads.BATCH}): {seconds * 1e3:.2f} ms",
              flush=True)
    report["loaded_kernels"] = loaded_kernels()
    (out / "kernel-times.json").write_text(json.dumps(report, indent=1))
    (out / "loaded-kernels.json").write_text(json.dumps(report["loaded_kernels"], indent=1))


def loaded_kernels() -> list:
    """Registers, local and shared memory of every kernel this process compiled, as the driver reports them."""
    from fastsoftmax.kernels import _cuda_kernels, _cuda_training

    if _cuda_kernels.SIMULATED:
        return []
    dispatchers = []
    for module in (_cuda_kernels, _cuda_training):
        for name, value in vars(module).items():
            if name.endswith("_kernel") and hasattr(value, "overloads"):
                dispatchers.append((name, value))
    for key, kernels in _cuda_kernels.ROW_KERNELS.items():
        for op, kernel in zip(("forward", "predict", "loss", "grad"), kernels):
            dispatchers.append((f"fast {op} C={key[0]} {key[1]} pack {key[2]}{' staged W' if key[3] else ''}", kernel))
    rows = []
    for name, dispatcher in dispatchers:
        for signature, kernel in dispatcher.overloads.items():
            rows.append({"kernel": name, "signature": str(signature), "registers": kernel.regs_per_thread,
                         "local_bytes": kernel.local_mem_per_thread, "shared_bytes": kernel.shared_mem_per_block,
                         "max_threads": kernel.max_threads_per_block})
    return rows


# ---------------------------------------------------------------- the check


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="check the script here, without a GPU or timing")
    parser.add_argument("--out", type=Path, help="results folder (default: $OUT, else bench/results/gpu-check)")
    parser.add_argument("--kernel-times", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=1_000_000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.kernel_times:
        kernel_times(args.kernel_times, args.rows)
        return 0

    out = args.out or Path(os.environ.get("OUT") or ROOT / "bench" / "results" / "gpu-check")
    out.mkdir(parents=True, exist_ok=True)
    check_data()
    site = Path(tempfile.mkdtemp(prefix="gpu-check-site-"))
    install_wheels(site)
    dry = args.dry_run
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PYTHONUNBUFFERED": "1", "FASTSOFTMAX_TEST_MNIST": str(DATA / "mnist"),
           "FASTSOFTMAX_DATA": str(DATA / "fashion-mnist"), "FASTSOFTMAX_OFFLINE": "1",
           "FASTSOFTMAX_CACHE": tempfile.mkdtemp(prefix="gpu-check-cache-"),
           "NUMBA_ENABLE_CUDASIM": "1" if dry else "0", "FASTSOFTMAX_REQUIRE_CUDA": "1"}
    steps = Steps(out, env)
    log(f"results into {out}; {'dry run (simulator, nothing timed)' if dry else 'on the GPU'}")
    started = time.monotonic()

    steps.run("versions", [sys.executable, "-c", VERSIONS], "versions.txt")
    # The resource check compiles on the CPU only: it runs beside the GPU steps.
    resources_cmd = [sys.executable, "-m", "fastsoftmax.kernels._cuda_resources", "--json",
                     out / "kernel-resources.json"] + (["--quick"] if dry else [])
    resources = subprocess.Popen([str(c) for c in resources_cmd], cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, env={**env, "NUMBA_ENABLE_CUDASIM": "0"})
    resources_start = time.monotonic()

    steps.run("kernel times", [sys.executable, __file__, "--kernel-times", out] + (["--rows", "8"] if dry else []),
              "kernel-times.log", limit=180 if dry else None)
    bench = [sys.executable, "-m", "fastsoftmax", "bench", "--dataset", "fashion-mnist", "--data-dir",
             DATA / "fashion-mnist", "--offline", "--variants", VARIANTS, "--workloads", WORKLOADS, "--rounds", "5",
             "--no-compile-times", "--json", out / "gpu-bench.json"]
    if dry:  # nothing is timed here: check that the registry knows the names the GPU run will ask for
        names = ("from fastsoftmax.benchmark import workloads as w; "
                 f"[w.variant(n) for n in {VARIANTS.split(',')!r}]; [w.workload(n) for n in {WORKLOADS.split(',')!r}]; "
                 "print('bench names known; on the GPU it runs:'); import sys; print(' '.join(sys.argv[1:]))")
        steps.run("bench", [sys.executable, "-c", names, *map(str, bench)], "gpu-bench.log")
    else:
        steps.run("bench", bench, "gpu-bench.log")
    pytest = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "--benchmark-disable", "-k", "cuda"]
    test_env = {"FASTSOFTMAX_REQUIRE_DATA": "1"}
    if dry:
        steps.run("kernel tests", pytest + ["tests/test_cuda_kernels.py::test_training_repeats_bitwise"],
                  "cuda-tests.log", env=test_env)
    else:
        steps.run("real-data tests", pytest + ["--junitxml", out / "cuda-realdata-tests.xml", *REALDATA_TESTS],
                  "cuda-realdata-tests.log", env=test_env)
        steps.run("kernel tests", pytest + ["--junitxml", out / "cuda-tests.xml", *KERNEL_TESTS],
                  "cuda-tests.log", env=test_env)

    remaining = max(5.0, LIMITS["resources"] - (time.monotonic() - resources_start))
    try:
        text, _ = resources.communicate(timeout=remaining)
        rc = resources.returncode
    except subprocess.TimeoutExpired:
        resources.kill()
        text, rc = resources.communicate()[0] + "\n[stopped]\n", 124
    print(text, flush=True)
    (out / "kernel-resources.txt").write_text(text)
    steps.summary["resources"] = {"rc": rc, "seconds": round(time.monotonic() - resources_start, 1),
                                  "output": "kernel-resources.txt"}

    steps.summary["total_seconds"] = round(time.monotonic() - started, 1)
    steps.summary["host"] = platform.node()
    (out / "summary.json").write_text(json.dumps(steps.summary, indent=1))
    failed = [name for name, s in steps.summary.items() if isinstance(s, dict) and s["rc"] != 0]
    log(f"done in {steps.summary['total_seconds']:.0f} s; "
        + (f"FAILED: {', '.join(failed)}" if failed else "all steps passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
