#!/usr/bin/env python3
"""The GPU check: every CUDA measurement and test on a machine with an NVIDIA GPU, in one command.

Run from the repository root on the GPU machine, after ``bench/gpu_prepare.sh`` built
``.whl/`` (wheels the GPU image lacks) and ``.gpudata/`` (MNIST's test files, Fashion-MNIST)
on a development machine and both were carried along::

    python3 bench/gpu_check.py                # results into $OUT, else bench/results/gpu-check/

Within :data:`BUDGET_S` seconds in all, each step bounded:

1. **setup**: the data is there; the carried wheels unpacked into a temporary folder.
2. **preflight** (``bench/gpu_preflight.py``, :data:`PREFLIGHT_S` at most): numba-cuda 0.30 or
   later, NVVM, nvJitLink and cudadevrt (retried with ``CUDA_HOME=/usr/local/cuda`` when not
   found), the GPU and its compute capability, a tiny kernel, a 32-block grid sync and a read
   through a uint64 view. A failure stops the check here with one line.
3. **tests** (:data:`TESTS_S` at most): the CUDA tests on the GPU (kernel paths, registry
   parity, the real-data runs), collected once and split across parallel pytest processes,
   with ``FASTSOFTMAX_HYPOTHESIS=device`` (the tests' small hypothesis profile). Beside them,
   ``bench/gpu_measure.py`` prepares its measurements (data, device copies, compiling).
4. **measure** (:data:`TIMING_S` at most once the tests are done, alone on the machine):
   ``kernel-times.json`` and ``gpu-bench.json``, every figure written when taken (see
   ``bench/gpu_measure.py``).
5. **ncu**, where Nsight Compute exists and time is left: one profiled predict on 1,000,000
   uint8 rows and one W1 training call (achieved bandwidth, shared-memory bank conflicts,
   occupancy).

Steps write into a work folder; the results folder receives at most :data:`MAX_OUT_FILES`
files: ``summary.json``, ``versions.json``, ``kernel-times.json``, ``gpu-bench.json`` and
``logs.tar.gz`` (every log, the tests' JUnit files, the clock samples, ncu's CSV). They are
refreshed every :data:`PUBLISH_EVERY_S` seconds and after every step, and once more at the
end whatever happened, so a check stopped from outside still leaves what it had. The
console shows one line per step and ends with a summary under :data:`SUMMARY_BYTES` bytes.
Exit status 0 when every step passed.

``--dry-run`` (no GPU: numba-cuda's simulator, a few rows and tests, nothing timed) runs the
same steps here, and fails unless the results folder holds exactly the expected files and
the console summary fits.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
WHEELS = ROOT / ".whl"
DATA = ROOT / ".gpudata"
DATA_FILES = {"mnist": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
              "fashion-mnist": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}

#: What the results folder may hold: these four (each once its step has run) and the archive.
OUT_FILES = ("summary.json", "versions.json", "kernel-times.json", "gpu-bench.json")
ARCHIVE = "logs.tar.gz"
#: The most files the GPU machine sends back.
MAX_OUT_FILES = 8
#: The console summary's largest size: it must sit whole inside the console's returned tail.
SUMMARY_BYTES = 2048

#: Seconds for the whole check: the GPU session's 6 minutes with a minute to spare (a step stopped
#: at the deadline gets 10 s more to end, and packing the results takes a second).
BUDGET_S = 300
#: Seconds of each step at most (the budget's deadline may cut them shorter).
PREFLIGHT_S, COLLECT_S, TESTS_S, TIMING_S, NCU_S = 30, 45, 150, 110, 45
#: Seconds of the budget kept for the timing phase: the measurements may go on preparing after
#: the tests until only this much is left.
MIN_TIMING_S = 60
#: ncu runs only when at least this much of the budget is left.
NCU_MIN_S = 25
#: How often the results folder is refreshed while a step runs.
PUBLISH_EVERY_S = 15
#: Where the CUDA toolkit usually is, for NVVM and friends when numba-cuda finds none in wheels.
STANDARD_CUDA_HOME = "/usr/local/cuda"

#: The CUDA tests run on the GPU: every test with "cuda" in its id in these files.
TEST_FILES = ("tests/test_cuda_kernels.py", "tests/test_kernel_parity.py", "tests/test_model.py")
#: The dry run's tests, one from each file (each must be among those collected).
DRY_RUN_TESTS = ("tests/test_cuda_kernels.py::test_training_repeats_bitwise",
                 "tests/test_kernel_parity.py::test_every_backend_defines_every_operation[cuda]",
                 "tests/test_model.py::test_cuda_training_repeats_bitwise")

#: Nsight Compute metrics: time, DRAM traffic and bandwidth, shared-memory bank conflicts against
#: the wavefronts that were needed, achieved and theoretical occupancy, registers, SM clock.
NCU_METRICS = ("gpu__time_duration.sum", "dram__bytes_read.sum", "dram__bytes_write.sum",
               "dram__bytes.sum.per_second", "dram__throughput.avg.pct_of_peak_sustained_elapsed",
               "sm__throughput.avg.pct_of_peak_sustained_elapsed",
               "l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum",
               "l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_st.sum",
               "l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum",
               "l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum",
               "sm__warps_active.avg.pct_of_peak_sustained_active", "sm__maximum_warps_per_active_cycle_pct",
               "launch__registers_per_thread", "sm__cycles_elapsed.avg.per_second")
#: Steps whose failure leaves the check passed: ncu may lack the permission to read the GPU's counters.
OPTIONAL_STEPS = ("ncu",)
#: The kernels ncu profiles: the fast predict kernel and the cooperative training kernel.
NCU_KERNELS = "regex:predict|_train_cooperative_kernel"


def log(message):
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {message}", flush=True)


class CheckError(Exception):
    """A problem that stops the check, in one line."""


class Interrupted(Exception):
    """SIGTERM: stop, but still leave the results."""


# ---------------------------------------------------------------- files


def write_json(path: Path, value) -> None:
    """Write JSON through a temporary file renamed over ``path``: never half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=1, default=str))
    os.replace(tmp, path)


def read_json(path: Path):
    """``path``'s JSON, or None when it is missing or unreadable (a step may have been stopped)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def copy_into(source: Path, folder: Path, name: str | None = None) -> None:
    name = name or source.name
    tmp = folder / f".{name}.tmp"
    shutil.copyfile(source, tmp)
    os.replace(tmp, folder / name)


def archive_into(logs: Path, folder: Path) -> None:
    """Every file under ``logs`` into ``folder/logs.tar.gz`` (written beside it, then renamed)."""
    tmp = folder / f".{ARCHIVE}.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(logs.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=Path("logs") / path.relative_to(logs))
    os.replace(tmp, folder / ARCHIVE)


def prepare_out(out: Path) -> None:
    """An empty results folder, or one holding a previous check's files (removed): nothing else,
    so that what comes back is exactly what this check wrote."""
    out.mkdir(parents=True, exist_ok=True)
    ours = set(OUT_FILES) | {ARCHIVE}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in ours and not p.name.endswith(".tmp"))
    if foreign:
        raise CheckError(f"{out} holds files this check did not write ({', '.join(foreign[:5])}); "
                         "give --out an empty folder")
    for path in out.iterdir():
        path.unlink()


def out_problems(out: Path, expected) -> list:
    """What is wrong with the results folder: too many files, unexpected or missing names, an
    archive that does not open."""
    names = sorted(p.name for p in out.iterdir())
    problems = []
    if len(names) > MAX_OUT_FILES:
        problems.append(f"{len(names)} files, more than {MAX_OUT_FILES}")
    unexpected = [n for n in names if n not in OUT_FILES + (ARCHIVE,)]
    missing = [n for n in expected if n not in names]
    if unexpected:
        problems.append(f"unexpected: {', '.join(unexpected)}")
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    if ARCHIVE in names:
        try:
            with tarfile.open(out / ARCHIVE) as tar:
                tar.getnames()
        except (OSError, tarfile.TarError) as exc:
            problems.append(f"{ARCHIVE} does not open: {exc}")
    return problems


# ---------------------------------------------------------------- steps as processes


class Step:
    """A step's process: its output to a log file, never the console; stopped at its deadline
    (SIGINT first, so pytest still writes its JUnit file, then SIGKILL)."""

    def __init__(self, name, command, log_path: Path, env, seconds):
        self.name, self.log_path = name, log_path
        self.started = time.monotonic()
        self.deadline = self.started + max(1.0, seconds)
        self.rc = None
        with log_path.open("w") as handle:
            handle.write(f"$ {' '.join(map(str, command))}\n")
        self.handle = log_path.open("a")
        self.process = subprocess.Popen([str(c) for c in command], cwd=ROOT, env=env, stdout=self.handle,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def seconds(self):
        return round((self.ended if self.rc is not None else time.monotonic()) - self.started, 1)

    def poll(self):
        if self.rc is None:
            rc = self.process.poll()
            if rc is not None:
                self._ended(rc)
            elif time.monotonic() > self.deadline:
                self.stop(f"stopped at its limit of {self.deadline - self.started:.0f} s")
        return self.rc

    def stop(self, why):
        if self.rc is not None:
            return
        for sig, grace in ((signal.SIGINT, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        self.handle.write(f"\n[gpu-check: {why}]\n")
        self._ended(124)

    def _ended(self, rc):
        self.rc, self.ended = rc, time.monotonic()
        self.handle.close()


# ---------------------------------------------------------------- the check


class Check:
    """One run of the check: its work folder, results folder, environment and summary.

    Used as a context manager: whatever happens inside (a failed step, an exception,
    SIGTERM), leaving it stops the remaining processes, fills the results folder, checks
    it and prints the console summary last.
    """

    def __init__(self, out: Path, work: Path, dry: bool, data: Path = DATA, wheels: Path = WHEELS):
        self.out, self.work, self.dry, self.data, self.wheels = out, work, dry, data, wheels
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self.deadline = self.started + BUDGET_S
        self.steps: list[Step] = []
        self.last_publish = 0.0
        self.exit_code = 0
        self.summary = {"format": "fastsoftmax-gpu-check/1", "mode": "dry run (simulator, nothing timed)" if dry
                        else "GPU", "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "host": platform.node(), "budget_s": BUDGET_S, "steps": {}}
        site = work / "site"
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), str(ROOT),
                                                                              os.environ.get("PYTHONPATH")])),
                    "PYTHONUNBUFFERED": "1",
                    "FASTSOFTMAX_TEST_MNIST": str(data / "mnist"), "FASTSOFTMAX_DATA": str(data / "fashion-mnist"),
                    "FASTSOFTMAX_OFFLINE": "1", "FASTSOFTMAX_CACHE": str(work / "data-cache"),
                    "NUMBA_CACHE_DIR": str(work / "numba-cache"), "FASTSOFTMAX_REQUIRE_CUDA": "1",
                    "NUMBA_ENABLE_CUDASIM": "1" if dry else "0"}

    def __enter__(self):
        self.publish()
        return self

    def __exit__(self, kind, exc, tb):
        for step in self.steps:
            step.stop("the check ended")
        if exc is not None:
            self.summary["error"] = str(exc) if isinstance(exc, CheckError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, CheckError):
                with (self.logs / "check.log").open("a") as handle:
                    traceback.print_exception(kind, exc, tb, file=handle)
        self.finish()
        return kind is None or issubclass(kind, (Exception, KeyboardInterrupt))

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def start(self, name, command, log_name, seconds, env=None) -> Step:
        step = Step(name, command, self.logs / log_name, env or self.env, min(seconds, self.left()))
        self.steps.append(step)
        return step

    def wait(self, steps):
        """Until every step ended or was stopped, refreshing the results folder meanwhile."""
        while [step for step in steps if step.poll() is None]:
            if time.monotonic() - self.last_publish > PUBLISH_EVERY_S:
                self.publish()
            time.sleep(0.1)

    def record(self, name, **fields):
        self.summary["steps"].setdefault(name, {}).update(fields)

    # -------------------------------------------------------------- results

    def publish(self):
        """The results folder as of now: the four JSON files that exist, and the logs archive."""
        self.summary["seconds"] = round(time.monotonic() - self.started, 1)
        write_json(self.work / "summary.json", self.summary)
        for name in OUT_FILES:
            if (self.work / name).is_file():
                copy_into(self.work / name, self.out)
        archive_into(self.logs, self.out)
        self.last_publish = time.monotonic()

    def expected_out(self):
        ran = self.summary["steps"]
        names = ["summary.json", ARCHIVE]
        if "preflight" in ran:
            names.append("versions.json")
        if "measure" in ran:
            names += ["kernel-times.json", "gpu-bench.json"]
        return names

    def finish(self):
        steps = self.summary["steps"]
        failed = [name for name, s in steps.items() if s.get("rc") not in (0, None) and name not in OPTIONAL_STEPS]
        if "error" in self.summary:
            failed.append("error")
        self.summary["failed"] = failed
        self.summary["figures"] = figure_lines(self.work)
        self.publish()
        problems = out_problems(self.out, self.expected_out())
        self.summary["out"] = {"files": sorted(p.name for p in self.out.iterdir()), "problems": problems}
        write_json(self.work / "summary.json", self.summary)
        copy_into(self.work / "summary.json", self.out)
        text = console_summary(self.summary, self.work)
        size = len(text.encode())
        print(text, flush=True)
        self.exit_code = 1 if failed or problems else 0
        if self.dry and size >= SUMMARY_BYTES:
            print(f"dry run: the console summary is {size} bytes, not under {SUMMARY_BYTES}", flush=True)
            self.exit_code = 1

    # -------------------------------------------------------------- 1. setup

    def setup(self):
        start = time.monotonic()
        missing = [f"{folder}/{name}" for folder, names in DATA_FILES.items() for name in names
                   if not (self.data / folder / name).is_file()]
        if missing:
            raise CheckError(f"{self.data} lacks {', '.join(missing)}: run bench/gpu_prepare.sh on a development "
                             "machine and carry .gpudata along")
        installed = unpack_wheels(self.wheels, self.work / "site")
        self.record("setup", rc=0, seconds=round(time.monotonic() - start, 1), wheels=installed,
                    python=platform.python_version())
        log(f"setup: data found; wheels unpacked: {', '.join(installed) or 'none needed'}")

    # -------------------------------------------------------------- 2. preflight

    def preflight(self) -> bool:
        deadline = time.monotonic() + PREFLIGHT_S
        command = [sys.executable, BENCH / "gpu_preflight.py", "--json", self.work / "versions.json",
                   "--log", self.logs / "preflight-tracebacks.log"] + (["--simulator"] if self.dry else [])
        tries = []
        env = self.env
        while True:
            (self.work / "versions.json").unlink(missing_ok=True)
            step = self.start("preflight", command, f"preflight-{len(tries) + 1}.log",
                              deadline - time.monotonic(), env)
            self.wait([step])
            found = read_json(self.work / "versions.json") or {}
            line = found.get("line") or (f"preflight failed: no answer within {step.seconds:.0f} s "
                                         f"({step.log_path.name})")
            tries.append({"rc": step.rc, "seconds": step.seconds, "CUDA_HOME": env.get("CUDA_HOME"), "line": line})
            retry = (step.rc == 3 and not env.get("CUDA_HOME") and Path(STANDARD_CUDA_HOME).is_dir()
                     and time.monotonic() < deadline)
            if not retry:
                break
            env = {**env, "CUDA_HOME": STANDARD_CUDA_HOME}
        if step.rc == 0 and env is not self.env:
            self.env = env  # the libraries were found through CUDA_HOME: every later step needs it
        self.record("preflight", rc=step.rc, seconds=round(sum(t["seconds"] for t in tries), 1), line=line,
                    tries=tries, CUDA_HOME=env.get("CUDA_HOME"))
        device = found.get("device", {})
        self.summary["device"] = device.get("name") or found.get("mode")
        self.summary["versions"] = {k: found.get("packages", {}).get(k) for k in ("numba-cuda", "numba", "numpy")}
        print(line, flush=True)
        return step.rc == 0

    # -------------------------------------------------------------- 3. tests, with the measurements prepared beside

    def tests_and_measurements(self):
        go = self.logs / "measure.go"
        measure = self.start("measure", [sys.executable, BENCH / "gpu_measure.py", "--work", self.work,
                                         "--data", self.data / "fashion-mnist", "--go", go,
                                         "--wait-s", COLLECT_S + TESTS_S + 60] + (["--dry-run"] if self.dry else []),
                             "measure.log", self.left())
        log("measure: preparing beside the tests")
        shards = self.test_shards()
        if shards:
            self.wait(shards)
            self.record("tests", **test_results(shards, self.logs))
        tests = self.summary["steps"]["tests"]
        log(f"tests: {tests['passed']} passed, {tests['failed']} failed, {tests['errors']} errors, "
            f"{tests['not_run']} not run in {tests['seconds']:.0f} s")

        while measure.poll() is None and not (self.logs / "measure.ready").exists():
            if self.left() < MIN_TIMING_S:
                measure.stop(f"still preparing with {MIN_TIMING_S} s of the budget left")
            elif time.monotonic() - self.last_publish > PUBLISH_EVERY_S:
                self.publish()
            time.sleep(0.1)
        timing = max(5.0, min(TIMING_S, self.left() - 10))
        started_timing = time.monotonic()
        go.write_text(f"{timing:.0f}\n")  # what the timing phase may take
        measure.deadline = min(measure.deadline, time.monotonic() + timing + 10)
        if measure.rc is None:
            log(f"measure: timing, alone (at most {timing:.0f} s)")
        self.wait([measure])
        status = read_json(self.logs / "measure-status.json") or {}
        times = read_json(self.work / "kernel-times.json") or {}
        self.record("measure", rc=measure.rc, seconds=measure.seconds,
                    timing_seconds=round(time.monotonic() - started_timing, 1), phases=status.get("phases"),
                    errors=[e["where"] + ": " + e["error"] for e in times.get("errors", [])][:10])
        log(f"measure: exit {measure.rc} after {measure.seconds:.0f} s")

    def test_shards(self):
        env = {**self.env, "FASTSOFTMAX_HYPOTHESIS": "device", "FASTSOFTMAX_REQUIRE_DATA": "1",
               # several test processes share the CPU: keep each one's thread pools small
               "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"}
        pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--benchmark-disable"]
        collect = self.start("collect", pytest + ["--collect-only", "-q", "-k", "cuda", *TEST_FILES],
                             "tests-collect.log", COLLECT_S, env)
        self.wait([collect])
        ids = [line.strip() for line in collect.log_path.read_text().splitlines()
               if "::" in line and not line.startswith(("$", " "))]
        if collect.rc != 0 or not ids:
            self.record("tests", rc=collect.rc or 1, seconds=collect.seconds, passed=0, failed=0, errors=0,
                        skipped=0, not_run=0, failures=[f"collection failed ({collect.log_path.name})"])
            return []
        if self.dry:
            absent = [t for t in DRY_RUN_TESTS if t not in ids]
            if absent:
                raise CheckError(f"dry run: tests not collected: {', '.join(absent)}")
            ids = list(DRY_RUN_TESTS)
        count = 2 if self.dry else max(1, min(6, ((os.cpu_count() or 2) - 2) // 2))
        groups = [ids[i::count] for i in range(count) if ids[i::count]]
        log(f"tests: {len(ids)} CUDA tests in {len(groups)} processes (at most {min(TESTS_S, self.left()):.0f} s)")
        shards = []
        for number, group in enumerate(groups, 1):
            shard = self.start(f"tests {number}", pytest + ["-v", "-rfE", "--junitxml",
                                                            self.logs / f"tests-{number}.xml", *group],
                               f"tests-{number}.log", TESTS_S, env)
            shard.assigned = group
            shards.append(shard)
        return shards

    # -------------------------------------------------------------- 5. ncu

    def ncu(self):
        target = [sys.executable, BENCH / "gpu_measure.py", "--ncu-target", "--work", self.work,
                  "--data", self.data / "fashion-mnist"] + (["--dry-run"] if self.dry else [])
        ncu = find_ncu(self.env)
        if ncu is None and not self.dry:
            self.record("ncu", rc=None, skipped="ncu (Nsight Compute) not found")
            log("ncu: not found, skipped")
            return
        if self.left() < NCU_MIN_S:
            self.record("ncu", rc=None, skipped=f"{self.left():.0f} s of the budget left")
            log("ncu: skipped, no time left")
            return
        csv_path = self.logs / "ncu.csv"
        if ncu is None:  # the dry run checks the profiled program in the simulator, without a profiler
            command = target
        else:
            command = [ncu, "--kernel-name", NCU_KERNELS, "--launch-count", "2", "--clock-control", "none",
                       "--metrics", ",".join(NCU_METRICS), "--csv", "--print-units", "base",
                       "--log-file", csv_path, *target]
        step = self.start("ncu", command, "ncu.log", min(NCU_S, self.left() - 5))
        log(f"ncu: {'profiling' if ncu else 'its target, without ncu (not installed)'}")
        self.wait([step])
        fields = {"rc": step.rc, "seconds": step.seconds}
        if ncu is not None:
            text = csv_path.read_text(errors="replace") if csv_path.is_file() else ""
            fields["kernels"] = ncu_summary(ncu_metrics(text))
            if step.rc != 0 or not fields["kernels"]:
                fields["problem"] = first_error(text + step.log_path.read_text(errors="replace"))
                fields["rc"] = step.rc or 1
        else:
            fields["note"] = "ncu not found: the profiled program ran alone"
        self.record("ncu", **fields)
        log(f"ncu: exit {fields['rc']} after {step.seconds:.0f} s")


#: Distributions fastsoftmax needs that GPU images tend to lack: their wheels travel in .whl/.
CARRIED = ("pooch", "platformdirs")


def unpack_wheels(wheels: Path, site: Path) -> list:
    """Unpack the carried pure-Python wheels into ``site`` (what pip would install there), the newest
    of each distribution; returns their file names. Refuses to go on without a wheel of each of
    :data:`CARRIED` that this Python does not already have."""
    from importlib import metadata

    newest = {}
    for wheel in wheels.glob("*.whl"):
        distribution, version = wheel.name.split("-")[:2]
        if not wheel.name.endswith("-none-any.whl"):
            raise CheckError(f"{wheel.name} is not a pure-Python wheel; only those run on any machine")
        key = tuple(int(p) if p.isdigit() else 0 for p in version.split("."))
        if distribution.lower() not in newest or key > newest[distribution.lower()][0]:
            newest[distribution.lower()] = (key, wheel)
    lacking = []
    for name in CARRIED:
        if name not in newest:
            try:
                metadata.version(name)
            except metadata.PackageNotFoundError:
                lacking.append(name)
    if lacking:
        raise CheckError(f"{wheels} lacks wheels of {' and '.join(lacking)}, which this Python does not have: "
                         "run bench/gpu_prepare.sh on a development machine and carry .whl along")
    site.mkdir(parents=True, exist_ok=True)
    for _, wheel in newest.values():
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    return sorted(w.name for _, w in newest.values())


def find_ncu(env) -> str | None:
    """Nsight Compute's command line: on PATH, in the CUDA toolkit, or where its installer puts it."""
    found = shutil.which("ncu", path=env.get("PATH"))
    if found:
        return found
    homes = [env.get("CUDA_HOME"), STANDARD_CUDA_HOME]
    candidates = [Path(h) / "bin" / "ncu" for h in homes if h]
    candidates += sorted(Path("/opt/nvidia/nsight-compute").glob("*/ncu"), reverse=True)
    return next((str(c) for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


# ---------------------------------------------------------------- reading what steps wrote


def test_results(shards, logs: Path) -> dict:
    """Counts over every test process, from its JUnit file, or from its log when the process was
    stopped before writing one; tests a stopped process never reached count as not run."""
    totals = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0, "not_run": 0}
    failures, per_shard = [], []
    for shard in shards:
        outcomes = junit_outcomes(logs / f"tests-{shard.name.split()[-1]}.xml") or log_outcomes(shard.log_path)
        counts = {key: sum(1 for o in outcomes.values() if o == key) for key in ("passed", "failed", "errors",
                                                                                 "skipped")}
        counts["not_run"] = sum(1 for t in shard.assigned if t not in outcomes)
        for key, value in counts.items():
            totals[key] += value
        failures += [t for t, o in outcomes.items() if o in ("failed", "errors")]
        per_shard.append({"rc": shard.rc, "seconds": shard.seconds, "log": shard.log_path.name, **counts})
    bad = totals["failed"] or totals["errors"] or totals["not_run"] or any(s["rc"] != 0 for s in per_shard)
    return {"rc": (124 if any(s["rc"] == 124 for s in per_shard) else 1) if bad else 0,
            "seconds": max((s["seconds"] for s in per_shard), default=0), **totals, "failures": failures[:20],
            "processes": per_shard}


def junit_outcomes(path: Path) -> dict:
    """``{test id: outcome}`` from a JUnit XML file; {} when it is missing or broken."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return {}
    outcomes = {}
    for case in root.iter("testcase"):
        if not case.get("name"):  # the test a SIGINT interrupted: reported with no name, never finished
            continue
        parts = case.get("classname", "").split(".")
        inside = [parts.pop()] if parts and parts[-1].startswith("Test") else []  # a test class
        test = "::".join([f"{'/'.join(parts)}.py", *inside, case.get("name", "")])
        kinds = {child.tag for child in case}
        outcomes[test] = ("failed" if "failure" in kinds else "errors" if "error" in kinds
                          else "skipped" if "skipped" in kinds else "passed")
    return outcomes


_VERBOSE = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)")


def log_outcomes(path: Path) -> dict:
    """``{test id: outcome}`` from pytest's ``-v`` lines."""
    names = {"PASSED": "passed", "XPASS": "passed", "FAILED": "failed", "ERROR": "errors", "SKIPPED": "skipped",
             "XFAIL": "skipped"}
    outcomes = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return outcomes
    for line in lines:
        match = _VERBOSE.match(line)
        if match:
            outcomes[match.group(1)] = names[match.group(2)]
    return outcomes


_PREFIXES = {"": 1.0, "n": 1e-9, "u": 1e-6, "m": 1e-3, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_UNIT = re.compile(r"([numKkMGT]?)(byte|B|cycle|second|s|Hz|inst)")


def _base_value(text: str, unit: str):
    """A metric's value in base units (bytes, seconds, cycles, and per second of those), whatever
    prefixes ncu chose: ``"2.5", "Tbyte/second"`` -> 2.5e12, ``"1.75", "cycle/nsecond"`` -> 1.75e9."""
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    for position, part in enumerate(unit.strip().split("/")):
        match = _UNIT.fullmatch(part.strip())
        factor = _PREFIXES[match.group(1)] if match else 1.0
        value = value * factor if position == 0 else value / factor
    return value


def ncu_metrics(text: str) -> dict:
    """``{kernel: {metric: value}}`` from ncu's ``--csv`` output, its messages skipped: the details
    page (a row per metric, the default) or the raw page (a row per kernel, units in the second
    row). Kernels are named "predict" and "train" for the two this check profiles."""
    lines = [line for line in text.splitlines() if not line.startswith("==")]
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        return {}
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[start:]))))
    if rows and "Metric Name" not in rows[0]:  # the raw page: one column per metric
        units, rows = rows[0], rows[1:]
        rows = [{"Kernel Name": row.get("Kernel Name"), "Metric Name": name, "Metric Unit": units.get(name) or "",
                 "Metric Value": value} for row in rows for name, value in row.items() if "__" in name]
    kernels = {}
    for row in rows:
        name = row.get("Kernel Name") or ""
        kind = "predict" if "predict" in name else "train" if "train" in name else name
        value = _base_value(row.get("Metric Value") or "", row.get("Metric Unit") or "")
        if row.get("Metric Name") and value is not None:
            kernels.setdefault(kind, {})[row["Metric Name"]] = value
    return kernels


def ncu_summary(kernels: dict) -> dict:
    """The figures read from ncu's metrics: time, achieved DRAM bandwidth, shared-memory bank
    conflicts as a share of the wavefronts the accesses needed, occupancy, registers, SM clock."""
    out = {}
    for kind, m in kernels.items():
        conflicts = sum(m.get(f"l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_{op}.sum", 0) for op in ("ld", "st"))
        wavefronts = sum(m.get(f"l1tex__data_pipe_lsu_wavefronts_mem_shared_op_{op}.sum", 0) for op in ("ld", "st"))
        seconds = m.get("gpu__time_duration.sum")
        out[kind] = {
            "time_ms": seconds * 1e3 if seconds else None,
            "dram_gbs": m["dram__bytes.sum.per_second"] / 1e9 if "dram__bytes.sum.per_second" in m else None,
            "dram_pct_of_peak": m.get("dram__throughput.avg.pct_of_peak_sustained_elapsed"),
            "sm_pct_of_peak": m.get("sm__throughput.avg.pct_of_peak_sustained_elapsed"),
            "bank_conflicts": conflicts, "shared_wavefronts": wavefronts,
            "bank_conflict_share": conflicts / wavefronts if wavefronts else None,
            "occupancy_pct": m.get("sm__warps_active.avg.pct_of_peak_sustained_active"),
            "theoretical_occupancy_pct": m.get("sm__maximum_warps_per_active_cycle_pct"),
            "registers": m.get("launch__registers_per_thread"),
            "sm_mhz": m["sm__cycles_elapsed.avg.per_second"] / 1e6 if "sm__cycles_elapsed.avg.per_second" in m
            else None,
        }
    return out


def first_error(text: str) -> str:
    """The first line that says what went wrong (ncu's ==ERROR==, a Python exception), shortened."""
    for line in text.splitlines():
        if "==ERROR==" in line or re.match(r"^\w+(\.\w+)*(Error|Exception): ", line):
            return line.strip()[:200]
    return "no metrics in ncu's output (see logs/ncu.log)"


# ---------------------------------------------------------------- the console summary


def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.2f} s"


def figure_lines(work: Path) -> list:
    """The headline figures, most important first: kernel times, W1, the bench's medians."""
    lines = []
    times = read_json(work / "kernel-times.json") or {}
    for entry in times.get("kernels", []):
        if entry.get("kernel_s") is None:
            continue
        share = entry.get("share_of_copy_bandwidth")
        lines.append(f"{entry['operation']} {entry['rows']:,} {entry['variant'][5:]}: kernel {_ms(entry['kernel_s'])} "
                     f"{entry['gbs']:.0f} GB/s" + (f" ({100 * share:.0f}% of copy)" if share else "")
                     + f", call {_ms(entry['call_s'])}" + ("" if entry.get("queued_ahead") else " [launch-bound]"))
    for entry in times.get("training", []):
        clocks = entry.get("clocks") or {}
        lines.append(f"W1 {entry['variant']}: call {_ms(entry['call_s'])}, events {_ms(entry.get('call_event_s'))}, "
                     f"kernel {_ms(entry.get('kernel_s'))} ({entry.get('path')})"
                     + (f", SM {clocks['sm_mhz']:.0f} MHz" if clocks.get("sm_mhz") else ""))
    bench = read_json(work / "gpu-bench.json") or {}
    by_load = {}
    for r in bench.get("results", []):
        by_load.setdefault(r["workload"], []).append(f"{r['variant']} {_ms(r['median_s'])}")
    lines += [f"bench {load}: {', '.join(cells)}" for load, cells in by_load.items()]
    return lines


def _step_detail(name: str, s: dict) -> str:
    if name == "preflight":
        return s.get("line", "").removeprefix("preflight ")[:200]
    if name == "tests":
        failures = f"; {', '.join(s['failures'][:3])}"[:300] if s.get("failures") else ""
        return f"{s['passed']} passed, {s['failed']} failed, {s['errors']} errors, {s['not_run']} not run{failures}"
    if name == "measure":
        return "; ".join(s.get("errors") or [])[:300]
    if name == "ncu":
        return s.get("skipped") or s.get("problem") or s.get("note") or ""
    return ""


def console_summary(summary: dict, work: Path) -> str:
    """What the console ends with: verdict, steps, figures, and where the rest is; cut to fit
    :data:`SUMMARY_BYTES` (the figures go first, the verdict and steps never)."""
    steps = summary["steps"]
    failed = summary.get("failed", [])
    head = [(f"== GPU check ({summary['mode']}): {'FAILED: ' + ', '.join(failed) if failed else 'passed'} "
             f"in {summary.get('seconds', 0):.0f} s; {summary.get('device') or 'no device'}; "
             f"numba-cuda {(summary.get('versions') or {}).get('numba-cuda') or '?'} ==")]
    if summary.get("error"):
        head.append(f"error: {summary['error'][:300]}")
    for name, s in steps.items():
        if name == "setup":
            continue
        state = "skip" if s.get("skipped") else "ok" if s.get("rc") == 0 else f"rc {s.get('rc')}"
        head.append(f"{name:<9} {state:<5} {s.get('seconds', 0):>5.0f} s  {_step_detail(name, s)}".rstrip())
    for kind, k in (steps.get("ncu", {}).get("kernels") or {}).items():
        share = k.get("bank_conflict_share")
        head.append(f"ncu {kind}: {_ms(k['time_ms'] / 1e3) if k.get('time_ms') else '-'}, DRAM "
                    + (f"{k['dram_gbs']:.0f} GB/s" if k.get("dram_gbs") is not None else "-")
                    + (f" ({k['dram_pct_of_peak']:.0f}%)" if k.get("dram_pct_of_peak") is not None else "")
                    + f", bank conflicts {'-' if share is None else f'{100 * share:.1f}%'}"
                    + (f", occupancy {k['occupancy_pct']:.0f}/{k['theoretical_occupancy_pct']:.0f}%"
                       if k.get("occupancy_pct") is not None and k.get("theoretical_occupancy_pct") else ""))
    out = summary.get("out", {})
    tail = [f"results: {', '.join(out.get('files', []))}"
            + (f"; PROBLEMS: {'; '.join(out['problems'])}" if out.get("problems") else "")]
    figures = figure_lines(work)
    lines = head + figures + tail
    while len("\n".join(lines).encode()) >= SUMMARY_BYTES and figures:
        figures.pop()
        lines = head + figures + ["(more figures in kernel-times.json and gpu-bench.json)"] + tail
    text = "\n".join(lines)
    if len(text.encode()) >= SUMMARY_BYTES:  # the head alone is too long: keep its start
        text = text.encode()[:SUMMARY_BYTES - 40].decode(errors="ignore") + "\n(summary cut: see summary.json)"
    return text


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="check the script here: simulator, nothing timed")
    parser.add_argument("--out", type=Path, help="results folder (default: $OUT, else bench/results/gpu-check)")
    parser.add_argument("--work", type=Path, help="work folder (default: a new temporary folder)")
    parser.add_argument("--data", type=Path, default=DATA, help=f"the real data (default: {DATA.name}/)")
    parser.add_argument("--wheels", type=Path, default=WHEELS, help=f"the carried wheels (default: {WHEELS.name}/)")
    args = parser.parse_args(argv)
    out = (args.out or Path(os.environ.get("OUT") or ROOT / "bench" / "results" / "gpu-check")).resolve()
    work = (args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))).resolve()
    if work == out or out in work.parents:
        parser.error("the work folder must lie outside the results folder")

    def interrupted(signum, frame):
        raise Interrupted(f"stopped by signal {signum}")
    signal.signal(signal.SIGTERM, interrupted)

    log(f"{'dry run (simulator, nothing timed)' if args.dry_run else 'on the GPU'}: results into {out}, "
        f"work in {work}, {BUDGET_S} s at most")
    try:
        prepare_out(out)
    except CheckError as exc:
        print(f"gpu-check: {exc}", flush=True)
        return 2
    check = Check(out, work, args.dry_run, args.data.resolve(), args.wheels.resolve())
    with check:
        check.setup()
        if check.preflight():
            check.tests_and_measurements()
            check.ncu()
    return check.exit_code


if __name__ == "__main__":
    sys.exit(main())
