#!/usr/bin/env python3
"""The GPU check's measurements, in one process: the kernels' own times, W1, and ``fastsoftmax bench``'s
workloads on the CUDA and CPU variants.

Run by ``bench/gpu_check.py`` (never needed alone). The process works in two phases:

1. **Prepare** everything that must stay outside the timings while the CUDA tests
   run beside it: the data (the 1,000,000-row uint8 and float32 arrays are built
   once and shared by every measurement), trained weights, device copies, and a
   first call of everything that will be timed, so every kernel is compiled once,
   in this process, and reused. It then writes ``logs/measure.ready`` and waits
   for ``--go`` to appear: the check creates it once the tests are done, so that
   nothing else runs on the GPU or the CPU while this process times.
2. **Time**, writing every figure the moment it is taken (a process stopped by its
   limit loses nothing already measured):

   * ``kernel-times.json``: the inference kernels (predict, forward) on 1,000,000 and
     10,000 device-resident rows, uint8 and float32. Each round is K launches back to
     back between two CUDA events, queued behind a short spin kernel so that the GPU
     runs them with no gap; Python's cost per launch (``host_launch_s``) is measured
     apart and stated, as is the old single-launch figure that included it. Beside
     each: GB/s against the measured device copy bandwidth, and the whole call
     (device X, result copied back). Then W1 (1000 steps of 100, learning rate 0.5)
     per variant: the call by the wall clock and between CUDA events, and the
     training kernel itself between events around its launch, with the path that ran.
     Then the registers, local and shared memory the driver reports for every kernel
     this process loaded.
   * ``gpu-bench.json``: the ``fastsoftmax bench`` format (``report.save``), workload
     by workload, the variants taking turns as ``fastsoftmax bench`` has them; the
     pause that lets NumPy's BLAS threads settle comes before each CPU call only,
     since nothing on the host disturbs a GPU call.

   The GPU's SM and memory clocks are sampled by ``nvidia-smi`` every 100 ms and each
   figure carries the clocks it ran at.

``--ncu-target`` runs, once each, what Nsight Compute profiles: predict on 1,000,000
uint8 rows and the W1 training call.

``--dry-run`` runs the same code in numba-cuda's simulator on a few rows, timing
nothing (every kernel time is null): it checks the steps, not the GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
#: The variants and workloads of gpu-bench.json: what the README's GPU table is made from.
VARIANTS = ("numpy-loop", "cpu-u8", "cuda-u8", "cuda-f32", "one-u8", "fits-u8", "many-u8", "cuda-one-u8",
            "cuda-fits-u8", "cuda-many-u8")
#: seeds16 on the machine's CPU cores (fit_many against one fit and 16 in a row), seeds64 on the GPU.
WORKLOADS = ("w1", "predict-10k", "predict-1m", "forward-10k", "grad-10k", "transfer", "seeds16", "seeds64")
#: The dry run's bench: one cheap workload on the CPU variants (a simulated GPU is never timed).
DRY_WORKLOADS = ("predict-10k",)
#: Rounds of each kernel timing and of W1 (median taken), and of each bench workload.
ROUNDS, BENCH_ROUNDS = 7, 5
#: GPU time aimed at per round of back-to-back launches, and the bounds on their number.
ROUND_S, MIN_LAUNCHES, MAX_LAUNCHES = 0.02, 10, 500
#: The kernel-time cases: (label, Data.rows split, rows) on each CUDA variant.
SIZES = (("1M rows", "million", None), ("10k rows", "test", None))
DRY_SIZES = (("8 rows", "test", 8),)


def log(message):
    print(f"[measure {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Document:
    """A JSON file rewritten atomically after every change, so that it always holds what was measured."""

    def __init__(self, path: Path, head: dict):
        self.path, self.data = path, head
        self.save()

    def add(self, key, entry):
        self.data.setdefault(key, []).append(entry)
        self.save()

    def set(self, key, value):
        self.data[key] = value
        self.save()

    def save(self):
        from fastsoftmax._atomic import write_atomically

        write_atomically(self.path, lambda handle: json.dump(self.data, handle, indent=1, default=str), text=True)


def _error(doc: Document, where: str, exc: BaseException):
    text = "".join(traceback.format_exception(exc))
    log(f"{where} failed:\n{text}")
    doc.add("errors", {"where": where, "error": f"{type(exc).__name__}: {exc}"[:500]})


# ---------------------------------------------------------------- clocks


class Clocks:
    """The GPU's SM and memory clocks, sampled by ``nvidia-smi`` every 100 ms in the background, so
    that every figure says the clocks it ran at (a GPU that boosts, heats or idles down changes it).
    Each sample is placed by nvidia-smi's own time stamp, so output it holds back in a buffer still
    lands where it was taken. Samples are also written to ``log_path`` as CSV."""

    FIELDS = ("timestamp", "clocks.sm", "clocks.mem", "temperature.gpu", "power.draw")
    #: Why the clocks are held back, a bit mask; older drivers call it clocks_throttle_reasons.
    REASONS = ("clocks_event_reasons.active", "clocks_throttle_reasons.active")

    def __init__(self, log_path: Path, device_id: str | None):
        self.samples, self.problem, self.process = [], None, None
        self.smi = shutil.which("nvidia-smi")
        self.device = ["-i", device_id] if device_id else []
        if self.smi is None:
            self.problem = "nvidia-smi not found: clocks not recorded"
            return
        fields = next((self.FIELDS + (r,) for r in self.REASONS if self._query(self.FIELDS + (r,)) is not None),
                      self.FIELDS)
        self.fields = fields
        self.log = log_path.open("w")
        self.log.write("monotonic_s," + ",".join(fields) + "\n")
        self.wall_minus_monotonic = time.time() - time.monotonic()
        line_buffered = [shutil.which("stdbuf"), "-oL"] if shutil.which("stdbuf") else []
        self.process = subprocess.Popen(
            [*line_buffered, self.smi, *self.device, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits",
             "-lms", "100"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _query(self, fields):
        try:
            done = subprocess.run([self.smi, *self.device, f"--query-gpu={','.join(fields)}",
                                   "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10,
                                  check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    def _read(self):
        for line in self.process.stdout:
            sample = parse_sample(line, self.wall_minus_monotonic)
            if sample is not None:
                self.samples.append(sample)
            self.log.write(f"{time.monotonic():.3f},{line.strip()}\n")
            self.log.flush()

    def limits(self) -> dict:
        """The clocks the GPU may reach and its power limit, once."""
        if self.smi is None:
            return {"problem": self.problem}
        fields = ("clocks.max.sm", "clocks.max.mem", "clocks.applications.graphics", "power.limit", "pstate")
        text = self._query(fields)
        return dict(zip(fields, (p.strip() for p in text.split(",")))) if text else {"problem": "query failed"}

    def during(self, start: float, end: float, wait: bool = True):
        """SM and memory clocks (MHz) sampled between two ``time.monotonic()`` readings; the last sample
        before ``end`` when none fell in between; None without nvidia-smi."""
        if self.process is None:
            return None
        if wait:
            time.sleep(0.15)  # the sample taken at ``end`` may still be on its way
        inside = [s for s in self.samples if start <= s[0] <= end]
        if not inside:
            inside = [s for s in self.samples if s[0] <= end][-1:]
        if not inside:
            return None
        sm = [s[1] for s in inside]
        return {"sm_mhz": statistics.median(sm), "sm_mhz_range": [min(sm), max(sm)],
                "mem_mhz": statistics.median(s[2] for s in inside), "samples": len(inside)}

    def close(self):
        """Stop sampling, once every sample nvidia-smi printed has been read."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=5)
            self.reader.join(timeout=5)
            self.log.close()


def parse_sample(line: str, wall_minus_monotonic: float):
    """``(time.monotonic() when taken, SM MHz, memory MHz)`` from a line of nvidia-smi's CSV that
    starts with its timestamp, clocks.sm, clocks.mem; None for anything else ("[N/A]", a message)."""
    parts = [p.strip() for p in line.split(",")]
    try:
        taken = datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
        return taken - wall_minus_monotonic, float(parts[1]), float(parts[2])
    except (ValueError, IndexError):
        return None


# ---------------------------------------------------------------- timing kernels on the GPU


class Launches:
    """A kernel's time as the GPU runs it, apart from Python's cost of launching it.

    One launch between two events also times the 30-80 us Python spends launching it, which
    is most of a 10,000-row kernel. Here each round queues a spin kernel first, then records
    the start event and makes K launches while the GPU is still spinning, then the stop event:
    the K kernels run back to back, and the interval over K is the kernel's own time. Whether
    the spin did outlast the launches is checked every round (``queued_ahead``)."""

    def __init__(self, simulated: bool):
        from numba import cuda

        self.cuda, self.simulated = cuda, simulated

        @cuda.jit
        def spin(n, slot):
            x = slot[0]
            for _ in range(n):
                x = x * np.float32(0.999999) + np.float32(1.0)  # a dependent chain: no two steps overlap
            slot[0] = x

        self.spin, self.slot = spin, cuda.to_device(np.zeros(1, np.float32))
        self.seconds_per_step = None
        spin[1, 1](16, self.slot)
        if not simulated:
            steps = 1 << 20
            start, stop = cuda.event(), cuda.event()
            start.record()
            spin[1, 1](steps, self.slot)
            stop.record()
            stop.synchronize()
            self.seconds_per_step = start.elapsed_time(stop) / 1e3 / steps

    def delay(self, seconds):
        steps = 16 if self.seconds_per_step is None else max(16, int(seconds / self.seconds_per_step))
        self.spin[1, 1](steps, self.slot)

    def kernel_seconds(self, launch, rounds: int) -> dict:
        """Time ``launch()`` (an asynchronous kernel launch, already compiled)."""
        cuda = self.cuda
        if self.simulated:  # the simulator's events record no time: launch once, to run the code
            launch()
            return {"kernel_s": None, "host_launch_s": None, "launches": 1, "rounds": 0}
        cuda.synchronize()
        started = time.perf_counter()
        for _ in range(8):
            launch()
        host_launch_s = (time.perf_counter() - started) / 8
        cuda.synchronize()
        start, stop = cuda.event(), cuda.event()
        start.record()
        launch()
        stop.record()
        stop.synchronize()
        single = start.elapsed_time(stop) / 1e3
        launches = min(MAX_LAUNCHES, max(MIN_LAUNCHES, math.ceil(ROUND_S / single)))
        delay = 2 * launches * host_launch_s + 0.002
        per_launch, ahead = [], []
        for _ in range(rounds):
            before, start, stop = cuda.event(), cuda.event(), cuda.event()
            before.record()
            self.delay(delay)
            start.record()
            queued = time.perf_counter()
            for _ in range(launches):
                launch()
            queued = time.perf_counter() - queued
            stop.record()
            stop.synchronize()
            per_launch.append(start.elapsed_time(stop) / 1e3 / launches)
            ahead.append(queued < before.elapsed_time(start) / 1e3)
            if not ahead[-1]:
                delay *= 2
        return {"kernel_s": statistics.median(per_launch), "kernel_s_range": [min(per_launch), max(per_launch)],
                "launches": launches, "rounds": rounds, "host_launch_s": host_launch_s,
                "single_launch_event_s": single, "queued_ahead": all(ahead)}


class TrainingLaunches:
    """Events around the training kernels' launches inside ``train_steps``: the kernel's own time,
    apart from the copies and checks of the call, and which path ran (one cooperative launch, or
    two launches a step when the driver refuses it). Wraps the CUDA backend's single launch
    helper, ``cuda._launch``, in this process only, for the duration of a ``with`` block."""

    def __init__(self, k):
        from fastsoftmax.kernels import _cuda_training

        self.k, self.cuda = k, k.cuda
        # every kernel of the training module: the cooperative one, or those of the per-step path
        self.paths = {id(value): "cooperative" if "cooperative" in name else "steps"
                      for name, value in vars(_cuda_training).items()
                      if name.endswith("_kernel") and hasattr(value, "overloads")}
        self.reset()

    def __enter__(self):
        self.original = self.k._launch
        self.k._launch = self._launch
        return self

    def __exit__(self, *exc):
        self.k._launch = self.original

    def reset(self):
        self.first = self.last = self.path = None
        self.launches = 0

    def _launch(self, kernel, *args, **kwargs):
        path = self.paths.get(id(kernel))
        if path is None:
            return self.original(kernel, *args, **kwargs)
        if self.first is None:
            self.first = self.cuda.event()
            self.first.record()
        self.original(kernel, *args, **kwargs)
        self.last = self.cuda.event()
        self.last.record()
        self.launches += 1
        self.path = path

    def seconds(self):
        if self.first is None:
            return None
        self.last.synchronize()
        elapsed = self.first.elapsed_time(self.last) / 1e3
        return elapsed if elapsed > 0 else None  # the simulator records no time


# ---------------------------------------------------------------- the two phases


class Measurements:
    def __init__(self, work: Path, data_dir: Path, dry: bool):
        self.work, self.data_dir, self.dry = work, data_dir, dry
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.times = Document(work / "kernel-times.json", {
            "format": "fastsoftmax-gpu-kernel-times/1", "dry_run": dry, "complete": False,
            "method": ("kernel_s: median over rounds of (event interval / launches) for `launches` launches queued "
                       "behind a spin kernel; host_launch_s: Python's cost of one launch, measured apart; "
                       "single_launch_event_s: one launch between events, that cost included; call_s: the "
                       "public function on device-resident X, result copied back (wall clock, median)")})
        self.status = Document(self.logs / "measure-status.json", {"phase": "starting"})
        self.windows, self.bench_saved = [], None  # the time spans whose clocks each figure carries

    def phase(self, name):
        self.status.data.setdefault("phases", {})[name] = round(time.monotonic() - self.started, 2)
        self.status.set("phase", name)
        log(name)

    # -------------------------------------------------------------- 1. prepare

    def prepare(self):
        from fastsoftmax.benchmark import workloads
        from fastsoftmax.data.dataset import read_data_sets
        from fastsoftmax.kernels import get_backend

        self.started = time.monotonic()
        k = self.k = get_backend("cuda")  # a BackendUnavailableError says what is missing
        self.cuda = k.cuda
        device = None if k.SIMULATED else k.cuda.get_current_device()
        self.clocks = Clocks(self.logs / "clocks.csv", getattr(device, "uuid", None))
        self.times.set("device", k.device_description())
        self.times.set("clock_limits", self.clocks.limits())
        self.launches = Launches(k.SIMULATED)
        data = self.data = workloads.Data(read_data_sets(self.data_dir, dataset="fashion-mnist", download=False,
                                                         seed=0, progressbar=False))
        self.W, self.b = workloads.trained_weights(data)
        self.phase("data loaded, weights trained")

        self.cases = []
        for name in ("cuda-u8",) if self.dry else ("cuda-u8", "cuda-f32"):
            variant = workloads.variant(name)
            for label, which, rows in DRY_SIZES if self.dry else SIZES:
                try:
                    self.cases.extend(self._inference_cases(variant, label, data.rows(which, variant)[:rows]))
                except Exception as exc:
                    _error(self.times, f"preparing {name} {label}", exc)
        self.phase("inference kernels compiled")

        self.trainings = []
        for name in ("cuda-u8",) if self.dry else ("cuda-u8", "cuda-f32"):
            try:
                self.trainings.append(self._training(workloads.variant(name)))
            except Exception as exc:
                _error(self.times, f"preparing W1 on {name}", exc)
        self.phase("training kernel compiled")

        self.bench = []
        names = self._bench_names()
        loads = [workloads.workload(n) for n in (DRY_WORKLOADS if self.dry else WORKLOADS)]
        variants = [workloads.variant(n) for n in names]
        for load in loads:
            calls = {}
            for variant in variants:
                if not load.supports(variant):
                    continue
                try:
                    fn = load.prepare(data, variant)
                except Exception as exc:
                    _error(self.times, f"preparing bench {load.name} on {variant.name}", exc)
                    continue
                if fn is not None:
                    calls[variant.name] = fn
            if calls:
                self.bench.append((load, calls))
        self.phase("bench prepared")

    def _bench_names(self):
        """The bench's variants that can run here; every name the GPU run asks for must be known."""
        from fastsoftmax.benchmark import workloads

        for name in WORKLOADS:
            workloads.workload(name)
        usable = []
        for name in VARIANTS:
            problem = workloads.variant_problem(workloads.variant(name))
            if problem is None:
                usable.append(name)
            elif not self.dry:
                self.times.add("errors", {"where": f"bench variant {name}", "error": problem})
        return usable

    def _inference_cases(self, variant, label, X):
        k, W, b = self.k, self.W, self.b
        staged = k.stage(X)
        cases = []
        for op, shape, dtype in (("predict", (len(X),), np.int64), ("forward", (len(X), W.shape[1]), W.dtype)):
            rows = k._Rows(staged, W, b)
            out = self.cuda.device_array(shape, dtype)
            rows.launch(op, out)  # compiles the kernel, once for this process
            fn = getattr(k, op)
            fn(staged, W, b)
            cases.append({"variant": variant.name, "operation": op, "rows": len(X), "label": label,
                          "launch": (lambda rows=rows, op=op, out=out: rows.launch(op, out)),
                          "call": (lambda fn=fn, staged=staged: fn(staged, W, b)),
                          "bytes": X.nbytes + out.nbytes, "grid": rows.grid, "fast": rows.fast})
        return cases

    def _training(self, variant):
        from fastsoftmax.benchmark.workloads import BATCH, LR

        k, data = self.k, self.data
        X, y = k.stage(data.rows("train", variant), data.train_labels)
        order = data.order_w1[:BATCH] if self.dry else data.order_w1
        steps = len(order) // BATCH

        def call():
            W0, b0 = np.zeros_like(self.W), np.zeros_like(self.b)
            done, _ = k.train_steps(X, y, W0, b0, order, BATCH, LR)
            assert done == steps, f"{done} of {steps} steps"
        call()
        return {"variant": variant.name, "workload": "w1", "steps": steps, "batch": BATCH, "learning_rate": LR,
                "call": call}

    # -------------------------------------------------------------- 2. time

    def time_everything(self, timing_s: float):
        deadline = time.monotonic() + timing_s
        self.status.set("timing_started", round(time.monotonic() - self.started, 2))
        from fastsoftmax.benchmark import machine

        self.info = machine.describe(gpu=f"GPU {self.k.device_description()}" if not self.k.SIMULATED else None)
        start = time.monotonic()
        self.info["gpu_bandwidth_gbs"] = machine.cuda_copy_gbs()
        self.info["gpu_clock_limits"] = self.times.data.get("clock_limits")
        self.times.data["copy_gbs"] = self.info["gpu_bandwidth_gbs"]
        self._clocks(self.times.data, "copy_clocks", start)
        self.times.save()
        self.phase("machine probed")
        self._kernel_times()
        self.phase("kernel times taken")
        self._training_times()
        self.phase("W1 timed")
        try:
            self.times.set("loaded_kernels", loaded_kernels())
        except Exception as exc:
            _error(self.times, "loaded kernels", exc)
        self.times.set("complete", True)
        self._bench(deadline)
        self.phase("bench done")
        self._clocks_again()

    def _clocks(self, holder: dict, key: str, start: float):
        """``holder[key]``: the GPU's clocks from ``start`` until now, as far as sampled yet."""
        end = time.monotonic()
        holder[key] = self.clocks.during(start, end)
        self.windows.append((holder, key, start, end))

    def _clocks_again(self):
        """Every figure's clocks once more, from all the samples: nvidia-smi stopped, nothing is late."""
        self.clocks.close()
        for holder, key, start, end in self.windows:
            holder[key] = self.clocks.during(start, end, wait=False)
        self.times.save()
        if self.bench_saved is not None:
            self.bench_saved()

    def _kernel_times(self):
        rounds = 1 if self.dry else ROUNDS
        copy_gbs = self.info["gpu_bandwidth_gbs"]
        for case in self.cases:
            try:
                start = time.monotonic()
                entry = {key: case[key] for key in ("variant", "operation", "rows", "grid", "fast")}
                entry.update(self.launches.kernel_seconds(case["launch"], rounds))
                calls = [self._wall(case["call"]) for _ in range(rounds)]
                entry["call_s"] = statistics.median(calls)
                if entry["kernel_s"]:
                    entry["gbs"] = case["bytes"] / entry["kernel_s"] / 1e9
                    entry["share_of_copy_bandwidth"] = entry["gbs"] / copy_gbs if copy_gbs else None
                    entry["call_over_kernel"] = entry["call_s"] / entry["kernel_s"]
                self._clocks(entry, "clocks", start)
                self.times.add("kernels", entry)
            except Exception as exc:
                _error(self.times, f"kernel time {case['variant']} {case['operation']} {case['label']}", exc)

    @staticmethod
    def _wall(fn):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    def _training_times(self):
        cuda, rounds = self.cuda, 1 if self.dry else ROUNDS
        for training in self.trainings:
            try:
                start = time.monotonic()
                walls, events, kernels, paths = [], [], [], set()
                with TrainingLaunches(self.k) as seen:
                    for _ in range(rounds):
                        seen.reset()
                        first, last = cuda.event(), cuda.event()
                        began = time.perf_counter()
                        first.record()
                        training["call"]()
                        walls.append(time.perf_counter() - began)
                        last.record()
                        last.synchronize()
                        events.append(first.elapsed_time(last) / 1e3)
                        kernels.append(seen.seconds())
                        paths.add(f"{seen.path} ({seen.launches} launches)")
                entry = {key: training[key] for key in ("variant", "workload", "steps", "batch", "learning_rate")}
                timed = not self.k.SIMULATED
                entry.update({"rounds": rounds, "call_s": statistics.median(walls),
                              "call_event_s": statistics.median(events) if timed else None,
                              "kernel_s": statistics.median(kernels) if timed and None not in kernels else None,
                              "path": ", ".join(sorted(paths))})
                self._clocks(entry, "clocks", start)
                self.times.add("training", entry)
            except Exception as exc:
                _error(self.times, f"W1 on {training['variant']}", exc)

    def _bench(self, deadline):
        from fastsoftmax import benchmark
        from fastsoftmax.benchmark import report, workloads

        rounds = 1 if self.dry else BENCH_ROUNDS
        settings = {"dataset": self.data.name, "rounds": rounds, "quick": False,
                    "source": "bench/gpu_measure.py (the GPU check): pauses before CPU calls only"}
        results, path = [], self.work / "gpu-bench.json"
        self.bench_saved = lambda: report.save(path, results, self.info, settings)
        for load, calls in self.bench:
            once = sum(self._wall(fn) for fn in calls.values())
            per_round = once + benchmark.SETTLE_S * sum(workloads.variant(n).backend != "cuda" for n in calls)
            left = deadline - time.monotonic()
            n = rounds if per_round * rounds < left else min(rounds, int(left / max(per_round, 1e-9)) - 1)
            if n < min(3, rounds):
                self.times.add("errors", {"where": f"bench {load.name}", "error": f"skipped: {left:.0f} s left"})
                continue
            start = time.monotonic()
            times = take_turns(calls, n)
            done = benchmark._summarise(load, self.data, times)
            for result in done:
                if result["backend"] == "cuda":
                    self._clocks(result, "clocks", start)
            results.extend(done)
            report.add_shares(results, self.info)
            self.bench_saved()
            log(f"bench {load.name}: " + ", ".join(f"{r['variant']} {r['median_s'] * 1e3:.3g} ms" for r in done))

    def close(self):
        if getattr(self, "clocks", None):
            self.clocks.close()


def take_turns(calls: dict, rounds: int) -> dict:
    """``fastsoftmax.benchmark``'s turn-taking (one call per variant per round, each round one
    variant further along), with its settling pause before the CPU variants' calls only."""
    from fastsoftmax.benchmark import SETTLE_S
    from fastsoftmax.benchmark.workloads import variant

    names = list(calls)
    times = {name: [] for name in names}
    for k in range(rounds):
        first = k % len(names)
        for name in names[first:] + names[:first]:
            if variant(name).backend != "cuda":
                time.sleep(SETTLE_S)
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return times


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
            dispatchers.append((f"fast {op} {key}", kernel))  # key: classes, dtype, word, pack, W staged
    rows = []
    for name, dispatcher in dispatchers:
        for signature, kernel in dispatcher.overloads.items():
            rows.append({"kernel": name, "signature": str(signature), "registers": kernel.regs_per_thread,
                         "local_bytes": kernel.local_mem_per_thread, "shared_bytes": kernel.shared_mem_per_block,
                         "max_threads": kernel.max_threads_per_block})
    return rows


def ncu_target(data_dir: Path, dry: bool) -> int:
    """What Nsight Compute profiles: one predict launch on 1,000,000 uint8 rows, then the W1 call."""
    from fastsoftmax.benchmark import workloads
    from fastsoftmax.data.dataset import read_data_sets
    from fastsoftmax.kernels import get_backend

    k = get_backend("cuda")
    data = workloads.Data(read_data_sets(data_dir, dataset="fashion-mnist", download=False, seed=0,
                                         progressbar=False))
    W, b = workloads.trained_weights(data)
    u8 = workloads.variant("cuda-u8")
    rows = data.rows("test", u8)[:8] if dry else data.rows("million", u8)
    k.predict(k.stage(rows), W, b)
    X, y = k.stage(data.rows("train", u8), data.train_labels)
    order = data.order_w1[:workloads.BATCH] if dry else data.order_w1
    k.train_steps(X, y, np.zeros_like(W), np.zeros_like(b), order, workloads.BATCH, workloads.LR)
    print(f"ncu target ran: predict on {len(rows):,} uint8 rows, then {len(order) // workloads.BATCH} steps",
          flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="the check's work folder")
    parser.add_argument("--data", type=Path, required=True, help="the Fashion-MNIST folder")
    parser.add_argument("--go", type=Path, help="wait for this file before timing (default: time at once); "
                        "it may hold the seconds the timing phase may take")
    parser.add_argument("--wait-s", type=float, default=600, help="longest wait for --go")
    parser.add_argument("--timing-s", type=float, default=120, help="seconds the timing phase may take")
    parser.add_argument("--dry-run", action="store_true", help="the simulator, a few rows, nothing timed")
    parser.add_argument("--ncu-target", action="store_true", help="only run what ncu profiles")
    args = parser.parse_args(argv)
    if args.ncu_target:
        return ncu_target(args.data, args.dry_run)

    measurements = Measurements(args.work, args.data, args.dry_run)
    try:
        measurements.prepare()
        (args.work / "logs" / "measure.ready").touch()
        if args.go is not None:
            waited = time.monotonic()
            while not args.go.exists():
                if time.monotonic() - waited > args.wait_s:
                    raise TimeoutError(f"{args.go} did not appear within {args.wait_s:.0f} s")
                time.sleep(0.02)
            measurements.status.set("waited_s", round(time.monotonic() - waited, 2))
        given = args.go.read_text().strip() if args.go is not None else ""
        measurements.time_everything(float(given) if given else args.timing_s)
    except Exception as exc:
        _error(measurements.times, "measurements", exc)
        return 1
    finally:
        measurements.close()
    return 1 if measurements.times.data.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
