"""The GPU check (``bench/gpu_check.py``) as far as it runs without a GPU: what its results folder
holds whatever happens, its console summary, its preflight's one-line failures, its step limits,
and (slow) the whole dry run in numba-cuda's simulator."""

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from .realdata import FASHION_DIR, MNIST_DIR, MNIST_TEST_FILES, require

ROOT = Path(__file__).resolve().parent.parent


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = _load("gpu_check")
gpu_preflight = _load("gpu_preflight")
gpu_measure = _load("gpu_measure")
gpu_results = _load("gpu_results")

EVERY_OUT_FILE = {"summary.json", "versions.json", "kernel-times.json", "gpu-bench.json", "logs.tar.gz"}


def _no_gpu_here() -> bool:
    import ctypes.util

    return ctypes.util.find_library("cuda") is None and not Path("/dev/nvidiactl").exists()


@pytest.fixture
def folders(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    gpu_check.prepare_out(out)
    return out, work


@pytest.fixture
def gpu_data(tmp_path):
    """The carried data folder's layout, linked to the real files."""
    require(MNIST_DIR, MNIST_TEST_FILES, "see shared/data/mnist/README.md")
    require(FASHION_DIR, gpu_check.DATA_FILES["fashion-mnist"], "apt-get install dataset-fashion-mnist")
    data = tmp_path / "gpudata"
    for folder, source in (("mnist", MNIST_DIR), ("fashion-mnist", FASHION_DIR)):
        (data / folder).mkdir(parents=True)
        for name in gpu_check.DATA_FILES[folder]:
            (data / folder / name).symlink_to(source / name)
    return data


def _archive(out: Path) -> dict:
    with tarfile.open(out / "logs.tar.gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


# ---------------------------------------------------------------- the results folder


def test_results_folder_gets_four_json_files_and_one_archive_of_everything_else(folders, capsys):
    out, work = folders
    check = gpu_check.Check(out, work, dry=True)
    for name in ("versions.json", "kernel-times.json", "gpu-bench.json"):
        (work / name).write_text(json.dumps({"written": name}))
    logs = {f"logs/tests-{i}.log": f"log {i}\n".encode() for i in range(12)}
    logs["logs/deeper/clocks.csv"] = b"monotonic_s,clocks.sm\n1.0,1980\n"
    for name, content in logs.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(content)
    with check:
        pass
    names = {p.name for p in out.iterdir()}
    assert names == EVERY_OUT_FILE
    assert len(names) <= gpu_check.MAX_OUT_FILES
    assert _archive(out) == logs
    assert json.loads((out / "gpu-bench.json").read_text()) == {"written": "gpu-bench.json"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["out"] == {"files": sorted(names), "problems": []}
    assert check.exit_code == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("results: gpu-bench.json")


def test_a_results_folder_holding_other_files_is_refused_before_any_work(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")  # a previous check's: removed
    (out / "notes.txt").write_text("mine")
    with pytest.raises(gpu_check.CheckError, match="notes.txt"):
        gpu_check.prepare_out(out)
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    gpu_check.prepare_out(out)
    assert list(out.iterdir()) == []


def test_out_problems_names_extra_missing_and_too_many_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for i in range(9):
        (out / f"extra-{i}.txt").write_text("x")
    problems = gpu_check.out_problems(out, ["summary.json", "logs.tar.gz"])
    assert problems[0] == f"9 files, more than {gpu_check.MAX_OUT_FILES}"
    assert "unexpected: extra-0.txt" in problems[1]
    assert problems[2] == "missing: summary.json, logs.tar.gz"


def test_a_check_that_raises_still_stops_its_steps_and_leaves_its_results(folders, capsys):
    out, work = folders
    check = gpu_check.Check(out, work, dry=True)
    with check:
        sleeper = "print('started', flush=True); import time; time.sleep(60)"
        step = check.start("sleeper", [sys.executable, "-c", sleeper], "sleeper.log", 60)
        while "started" not in step.log_path.read_text():
            time.sleep(0.05)
        raise RuntimeError("boom")
    assert step.rc == 124 and step.process.poll() is not None
    assert check.exit_code == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["error"] == "RuntimeError: boom" and summary["failed"] == ["error"]
    archive = _archive(out)
    assert b"started" in archive["logs/sleeper.log"] and b"the check ended" in archive["logs/sleeper.log"]
    assert b"RuntimeError: boom" in archive["logs/check.log"]
    printed = capsys.readouterr().out
    assert printed.splitlines()[-1].startswith("results: ")
    summary_text = printed[printed.index("== GPU check"):]
    assert "FAILED: error" in summary_text and "error: RuntimeError: boom" in summary_text
    assert len(summary_text.encode()) < gpu_check.SUMMARY_BYTES


def test_a_step_stopped_at_its_limit_keeps_the_tests_it_finished(folders, tmp_path):
    """pytest gets SIGINT first, so it still writes its JUnit file: what passed before the limit counts."""
    out, work = folders
    tests = tmp_path / "suite"
    tests.mkdir()
    (tests / "pytest.ini").write_text("[pytest]\n")
    (tests / "test_sample.py").write_text("import time\n\ndef test_quick():\n    pass\n\n"
                                          "def test_slow():\n    time.sleep(60)\n\n"
                                          "def test_never_reached():\n    pass\n")
    check = gpu_check.Check(out, work, dry=True)
    ids = [f"test_sample.py::{name}" for name in ("test_quick", "test_slow", "test_never_reached")]
    with check:
        started = time.monotonic()
        step = check.start("tests 1", [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-c",
                                       tests / "pytest.ini", "--junitxml", check.logs / "tests-1.xml",
                                       *(f"{tests}/{i}" for i in ids)], "tests-1.log", 6)
        step.assigned = ids
        check.wait([step])
        elapsed = time.monotonic() - started
        results = gpu_check.test_results([step], check.logs)
    assert step.rc == 124 and elapsed < 6 + 12
    assert gpu_check.junit_outcomes(check.logs / "tests-1.xml") == {"test_sample.py::test_quick": "passed"}
    assert results["rc"] == 124
    assert (results["passed"], results["failed"], results["not_run"]) == (1, 0, 2)
    assert "stopped at its limit of 6 s" in step.log_path.read_text()


def test_log_outcomes_read_pytest_verbose_lines(tmp_path):
    log = tmp_path / "tests.log"
    log.write_text("$ python -m pytest\n"
                   "tests/test_a.py::test_one[cuda] PASSED                [ 33%]\n"
                   "tests/test_a.py::test_two FAILED                      [ 66%]\n"
                   "tests/test_b.py::test_three[x-1] SKIPPED (no data)    [100%]\n"
                   "FAILED tests/test_a.py::test_two - AssertionError\n")
    assert gpu_check.log_outcomes(log) == {"tests/test_a.py::test_one[cuda]": "passed",
                                           "tests/test_a.py::test_two": "failed",
                                           "tests/test_b.py::test_three[x-1]": "skipped"}


# ---------------------------------------------------------------- the console summary


def _kernel_times(count):
    return {"kernels": [{"variant": "cuda-u8" if i % 2 else "cuda-f32", "operation": "predict", "rows": 1_000_000,
                         "kernel_s": 3.1e-4 + i * 1e-6, "gbs": 2600.0, "share_of_copy_bandwidth": 0.78,
                         "call_s": 2.1e-3, "queued_ahead": True} for i in range(count)],
            "training": [{"variant": "cuda-u8", "steps": 1000, "batch": 100, "call_s": 4.1e-3, "call_event_s": 3.9e-3,
                          "kernel_s": 3.2e-3, "path": "cooperative (1 launches)", "clocks": {"sm_mhz": 1980.0}}]}


def _bench(count):
    return {"results": [{"workload": f"workload-{i // 4}", "variant": v, "median_s": 0.0042}
                        for i, v in zip(range(count), ["numpy-loop", "cpu-u8", "cuda-u8", "cuda-f32"] * count)]}


def test_console_summary_shows_steps_and_every_figure_when_they_fit(tmp_path):
    (tmp_path / "kernel-times.json").write_text(json.dumps(_kernel_times(8)))
    (tmp_path / "gpu-bench.json").write_text(json.dumps(_bench(24)))
    summary = {"mode": "GPU", "seconds": 201, "device": "NVIDIA H100 80GB HBM3", "failed": [],
               "versions": {"numba-cuda": "0.30.4"},
               "steps": {"preflight": {"rc": 0, "seconds": 6, "line": "preflight ok: NVIDIA H100 (cc 9.0)"},
                         "tests": {"rc": 0, "seconds": 95, "passed": 43, "failed": 0, "errors": 0, "not_run": 0},
                         "measure": {"rc": 0, "seconds": 140, "errors": []},
                         "ncu": {"rc": 0, "seconds": 30, "kernels": {"predict": {
                             "time_ms": 0.35, "dram_gbs": 2450.0, "dram_pct_of_peak": 73.0, "bank_conflict_share": 0.0,
                             "occupancy_pct": 45.0, "theoretical_occupancy_pct": 50.0}}}},
               "out": {"files": sorted(EVERY_OUT_FILE), "problems": []}}
    text = gpu_check.console_summary(summary, tmp_path)
    lines = text.splitlines()
    assert lines[0].startswith("== GPU check (GPU): passed in 201 s; NVIDIA H100")
    assert "43 passed, 0 failed" in text and "ok: NVIDIA H100 (cc 9.0)" in text
    assert "ncu predict: 0.35 ms, DRAM 2450 GB/s (73%), bank conflicts 0.0%, occupancy 45/50%" in text
    assert sum(line.startswith("predict 1,000,000") for line in lines) == 8
    assert "W1 cuda-u8: call 4.1 ms, events 3.9 ms, kernel 3.2 ms (cooperative (1 launches)), SM 1980 MHz" in text
    assert sum(line.startswith("bench workload-") for line in lines) == 6
    assert "more figures" not in text and lines[-1].startswith("results: gpu-bench.json")
    assert len(text.encode()) < gpu_check.SUMMARY_BYTES


def test_console_summary_stays_under_2_kb_however_much_went_wrong(tmp_path):
    (tmp_path / "kernel-times.json").write_text(json.dumps(_kernel_times(60)))
    (tmp_path / "gpu-bench.json").write_text(json.dumps(_bench(200)))
    failures = [f"tests/test_cuda_kernels.py::test_row_kernels_match_the_reference[{'x' * 80}-{i}]"
                for i in range(20)]
    summary = {"mode": "GPU", "seconds": 300, "device": "GPU " * 100, "failed": ["preflight", "tests", "error"],
               "error": "Interrupted: " + "stopped by signal 15 " * 50,
               "steps": {"preflight": {"rc": 1, "seconds": 30, "line": "preflight failed: " + "why " * 200},
                         "tests": {"rc": 124, "seconds": 150, "passed": 1, "failed": 20, "errors": 3, "not_run": 9,
                                   "failures": failures},
                         "measure": {"rc": 1, "seconds": 110, "errors": ["kernel time: " + "e" * 500] * 10},
                         "ncu": {"rc": 1, "seconds": 45, "problem": "==ERROR== " + "no permission " * 40}},
               "out": {"files": sorted(EVERY_OUT_FILE), "problems": ["missing: " + "x.json, " * 100]}}
    text = gpu_check.console_summary(summary, tmp_path)
    assert len(text.encode()) < gpu_check.SUMMARY_BYTES
    assert text.startswith("== GPU check (GPU): FAILED: preflight, tests, error")
    assert "rc 124" in text and "1 passed, 20 failed, 3 errors, 9 not run" in text


# ---------------------------------------------------------------- the preflight


def _preflight(*args, python=(sys.executable,), **env):
    started = time.monotonic()
    done = subprocess.run([*python, str(ROOT / "bench" / "gpu_preflight.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, check=False)
    return done, time.monotonic() - started


@pytest.mark.skipif(not _no_gpu_here(), reason="this machine has an NVIDIA driver: the preflight may pass")
def test_preflight_without_a_gpu_fails_fast_in_one_line(tmp_path):
    done, seconds = _preflight("--json", str(tmp_path / "versions.json"), NUMBA_ENABLE_CUDASIM="0")
    assert done.returncode == 1
    assert done.stdout.splitlines() == [done.stdout.strip()]
    assert done.stdout.startswith("preflight failed: cuda.is_available() is False: ")
    assert "driver" in done.stdout
    assert seconds < 30
    found = json.loads((tmp_path / "versions.json").read_text())
    assert found["ok"] is False and found["line"] == done.stdout.strip()
    assert found["packages"]["numba-cuda"] and found["libraries"]["nvvm"]["version"]


@pytest.mark.skipif(_no_gpu_here(), reason="needs an NVIDIA GPU and driver")
def test_preflight_on_a_gpu_passes_in_one_line(tmp_path):
    done, seconds = _preflight("--json", str(tmp_path / "versions.json"), NUMBA_ENABLE_CUDASIM="0")
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith("preflight ok: ") and "32-block grid sync ok" in done.stdout
    assert seconds < 30
    assert json.loads((tmp_path / "versions.json").read_text())["device"]["compute_capability"]


def test_preflight_without_numba_cuda_fails_in_one_line_before_importing_anything():
    # -S: a Python without site-packages, so without numba-cuda (or numpy, or numba)
    done, seconds = _preflight(python=(sys.executable, "-I", "-S"))
    assert done.returncode == 1
    assert done.stdout == "preflight failed: numba-cuda is not installed (pip install 'numba-cuda[cu13]>=0.30', " \
                          "or [cu12] for a CUDA 12 driver)\n"
    assert done.stderr == ""
    assert seconds < 5


def test_preflight_in_the_simulator_runs_every_kernel_check(tmp_path):
    done, seconds = _preflight("--simulator", "--json", str(tmp_path / "versions.json"), NUMBA_ENABLE_CUDASIM="1")
    assert done.returncode == 0, done.stdout
    assert done.stdout.startswith("preflight ok: numba-cuda simulator, numba-cuda ")
    assert "grid sync ok" in done.stdout and seconds < 30
    found = json.loads((tmp_path / "versions.json").read_text())
    assert found["libraries"]["cudadevrt"].endswith("libcudadevrt.a")


def test_preflight_refuses_a_simulator_setting_that_contradicts_the_run():
    done, _ = _preflight("--simulator", NUMBA_ENABLE_CUDASIM="0")
    assert done.returncode == 1
    assert done.stdout.startswith("preflight failed: NUMBA_ENABLE_CUDASIM is '0'; this run needs it 1")


@pytest.mark.parametrize("version, problem", [
    (None, "numba-cuda is not installed"),
    ("0.29.9", "numba-cuda 0.29.9 is older than 0.30"),
    ("0.3.0", "numba-cuda 0.3.0 is older than 0.30"),
    ("0.30.0", None),
    ("0.30.4", None),
    ("1.0.0rc1", None),
])
def test_numba_cuda_versions_from_0_30_pass(version, problem):
    found = gpu_preflight.numba_cuda_problem(version)
    assert (found is None) if problem is None else found.startswith(problem)


def test_version_tuple_reads_the_leading_numbers():
    assert gpu_preflight.version_tuple("0.30.4") == (0, 30, 4)
    assert gpu_preflight.version_tuple("1.0rc1") == (1, 0)
    assert gpu_preflight.version_tuple("0.31.0.dev5+g1234") == (0, 31, 0)


# ---------------------------------------------------------------- ncu, wheels, budget


NCU_CSV = '''==PROF== Connected to process 4242 (/usr/bin/python3.12)
==PROF== Profiling "predict": 0%....50%....100% - 9 passes
==PROF== Disconnected from process 4242
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"
"0","4242","python3.12","127.0.0.1","cudapy::fastsoftmax::kernels::_cuda_kernels::_make_row_kernels::<locals>::predict[abi:v1](Array<unsigned long long, 2, C, mutable, aligned>)","1","7","(256, 1, 1)","(264, 1, 1)","0","9.0","Command line profiler metrics","gpu__time_duration.sum","nsecond","331,264"
"0","4242","python3.12","127.0.0.1","cudapy::fastsoftmax::kernels::_cuda_kernels::_make_row_kernels::<locals>::predict[abi:v1](Array<unsigned long long, 2, C, mutable, aligned>)","1","7","(256, 1, 1)","(264, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes.sum.per_second","Tbyte/second","2.45"
"0","4242","python3.12","127.0.0.1","cudapy::fastsoftmax::kernels::_cuda_kernels::_make_row_kernels::<locals>::predict[abi:v1](Array<unsigned long long, 2, C, mutable, aligned>)","1","7","(256, 1, 1)","(264, 1, 1)","0","9.0","Command line profiler metrics","l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum","","1,000"
"0","4242","python3.12","127.0.0.1","cudapy::fastsoftmax::kernels::_cuda_kernels::_make_row_kernels::<locals>::predict[abi:v1](Array<unsigned long long, 2, C, mutable, aligned>)","1","7","(256, 1, 1)","(264, 1, 1)","0","9.0","Command line profiler metrics","l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum","","40,000"
"0","4242","python3.12","127.0.0.1","cudapy::fastsoftmax::kernels::_cuda_kernels::_make_row_kernels::<locals>::predict[abi:v1](Array<unsigned long long, 2, C, mutable, aligned>)","1","7","(256, 1, 1)","(264, 1, 1)","0","9.0","Command line profiler metrics","sm__warps_active.avg.pct_of_peak_sustained_active","%","46.2"
"0","4242","python3.12","127.0.0.1","cudapy::fastsoftmax::kernels::_cuda_kernels::_make_row_kernels::<locals>::predict[abi:v1](Array<unsigned long long, 2, C, mutable, aligned>)","1","7","(256, 1, 1)","(264, 1, 1)","0","9.0","Command line profiler metrics","sm__cycles_elapsed.avg.per_second","cycle/nsecond","1.98"
"1","4242","python3.12","127.0.0.1","cudapy::fastsoftmax::kernels::_cuda_training::_train_cooperative_kernel[abi:v2](Array<unsigned long long, 2, C, mutable, aligned>)","1","7","(256, 1, 1)","(32, 1, 1)","0","9.0","Command line profiler metrics","gpu__time_duration.sum","msecond","3.2"
"1","4242","python3.12","127.0.0.1","cudapy::fastsoftmax::kernels::_cuda_training::_train_cooperative_kernel[abi:v2](Array<unsigned long long, 2, C, mutable, aligned>)","1","7","(256, 1, 1)","(32, 1, 1)","0","9.0","Command line profiler metrics","launch__registers_per_thread","register/thread","178"
'''


def test_ncu_csv_gives_time_bandwidth_conflicts_and_occupancy_per_kernel():
    kernels = gpu_check.ncu_summary(gpu_check.ncu_metrics(NCU_CSV))
    assert set(kernels) == {"predict", "train"}
    predict, train = kernels["predict"], kernels["train"]
    assert predict["time_ms"] == pytest.approx(0.331264)
    assert predict["dram_gbs"] == pytest.approx(2450.0)
    assert predict["bank_conflicts"] == 1000 and predict["bank_conflict_share"] == pytest.approx(0.025)
    assert predict["occupancy_pct"] == pytest.approx(46.2) and predict["sm_mhz"] == pytest.approx(1980.0)
    assert train["time_ms"] == pytest.approx(3.2) and train["registers"] == 178
    assert train["bank_conflict_share"] is None and train["dram_gbs"] is None


def test_ncu_raw_page_reads_the_same():
    raw = ('==PROF== Disconnected from process 4242\n'
           '"ID","Kernel Name","dram__bytes.sum.per_second","gpu__time_duration.sum",'
           '"sm__warps_active.avg.pct_of_peak_sustained_active"\n'
           '"","","Gbyte/second","usecond","%"\n'
           '"0","cudapy::x::<locals>::predict[abi:v1](Array)","2,450","331.264","46.2"\n')
    predict = gpu_check.ncu_summary(gpu_check.ncu_metrics(raw))["predict"]
    assert predict["dram_gbs"] == pytest.approx(2450.0) and predict["time_ms"] == pytest.approx(0.331264)
    assert predict["occupancy_pct"] == pytest.approx(46.2)


def test_ncu_output_without_metrics_names_its_first_error():
    text = "==PROF== Connected to process 1\n==ERROR== ERR_NVGPUCTRPERM - The user does not have permission\n"
    assert gpu_check.ncu_metrics(text) == {}
    assert gpu_check.first_error(text).startswith("==ERROR== ERR_NVGPUCTRPERM")


def test_clock_samples_are_placed_by_nvidia_smis_own_time_stamp():
    import datetime

    offset = time.time() - time.monotonic()
    taken = datetime.datetime(2026, 12, 6, 2, 30, 1, 123000)
    sample = gpu_measure.parse_sample("2026/12/06 02:30:01.123, 1980, 2619, 45, 120.51, 0x0000000000000000\n", offset)
    assert sample == pytest.approx((taken.timestamp() - offset, 1980.0, 2619.0))
    assert gpu_measure.parse_sample("2026/12/06 02:30:01.223, [N/A], 2619\n", offset) is None
    assert gpu_measure.parse_sample("Failed to initialize NVML: Driver/library version mismatch\n", offset) is None


def _wheel(folder: Path, distribution: str, version: str, tag="py3-none-any"):
    path = folder / f"{distribution}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{distribution}/__init__.py", f"__version__ = {version!r}\n")
        wheel.writestr(f"{distribution}-{version}.dist-info/METADATA",
                       f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    return path


def test_wheels_unpack_newest_of_each_distribution(tmp_path):
    from importlib import metadata

    wheels, site = tmp_path / "whl", tmp_path / "site"
    wheels.mkdir()
    for distribution, version in (("pooch", "1.8.2"), ("pooch", "1.10.0"), ("platformdirs", "4.14.8")):
        _wheel(wheels, distribution, version)
    assert gpu_check.unpack_wheels(wheels, site) == ["platformdirs-4.14.8-py3-none-any.whl",
                                                     "pooch-1.10.0-py3-none-any.whl"]
    assert (site / "pooch" / "__init__.py").read_text() == "__version__ = '1.10.0'\n"
    assert {d.metadata["Name"]: d.version for d in metadata.distributions(path=[str(site)])} == {
        "pooch": "1.10.0", "platformdirs": "4.14.8"}


def test_a_wheel_built_for_one_platform_is_refused(tmp_path):
    _wheel(tmp_path, "numpy", "2.4.6", "cp312-cp312-manylinux_2_28_x86_64")
    with pytest.raises(gpu_check.CheckError, match="numpy-2.4.6-cp312.*not a pure-Python wheel"):
        gpu_check.unpack_wheels(tmp_path, tmp_path / "site")


def test_the_steps_fit_the_budget_and_the_budget_fits_six_minutes():
    c = gpu_check
    assert c.PREFLIGHT_S + c.COLLECT_S + c.TESTS_S + c.MIN_TIMING_S <= c.BUDGET_S
    assert c.MIN_TIMING_S <= c.TIMING_S and c.NCU_MIN_S <= c.NCU_S
    # a step stopped at the deadline gets 10 s more to end (SIGINT, then SIGKILL)
    assert c.BUDGET_S + 10 + 30 <= 6 * 60


# ---------------------------------------------------------------- filing what came back


def _returned(folder: Path, mode="GPU", failed=()):
    """A GPU run's returned files, as the check writes them."""
    from fastsoftmax.benchmark import report

    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"mode": mode, "failed": list(failed)}))
    times = {"device": "NVIDIA H100 80GB HBM3 (compute capability 9.0)", "dry_run": mode != "GPU",
             "complete": True, "copy_gbs": 3350.0, **_kernel_times(0)}
    times["kernels"] = [{"variant": v, "operation": "predict", "rows": 1_000_000, "kernel_s": s, "gbs": g,
                         "share_of_copy_bandwidth": g / 3350.0, "call_s": 2.1e-3, "clocks": {"sm_mhz": 1980.0}}
                        for v, s, g in (("cuda-u8", 3.1e-4, 2529.0), ("cuda-f32", 1.1e-3, 2860.0))]
    (folder / "kernel-times.json").write_text(json.dumps(times))
    machine = {"cpu": "Intel(R) Xeon(R) Platinum 8480+", "cpu_vendor": "GenuineIntel", "cpu_family": 6,
               "cpu_model": 143, "cpu_microarchitecture": "Sapphire Rapids", "logical_cores": 16,
               "gpu": "GPU NVIDIA H100 80GB HBM3 (compute capability 9.0)", "numpy": "2.2", "numba": "0.61",
               "peak_gflops": 2000.0, "bandwidth_gbs": 200.0, "gpu_bandwidth_gbs": 3350.0}
    result = {"workload": "w1", "title": "W1", "variant": "cuda-u8", "backend": "cuda", "rounds": 5,
              "median_s": 4.1e-3, "iqr_s": 1e-4, "min_s": 4e-3, "speedup": 40.0, "gflops": 760.0, "gbs": 19.0}
    report.save(folder / "gpu-bench.json", [result], machine, {"dataset": "fashion-mnist", "rounds": 5})
    return machine


def test_a_gpu_run_is_filed_under_the_machines_name_with_its_kernel_table(tmp_path, capsys):
    from fastsoftmax.benchmark.machine import results_name

    machine = _returned(tmp_path / "returned")
    results = tmp_path / "results"
    assert gpu_results.main([str(tmp_path / "returned"), "--results", str(results)]) == 0
    name = results_name(machine)
    assert name.endswith("-16core-gpu")
    assert (results / f"{name}.json").read_bytes() == (tmp_path / "returned" / "gpu-bench.json").read_bytes()
    assert json.loads((results / "gpu-kernel-times" / f"{name}.json").read_text())["copy_gbs"] == 3350.0
    printed = capsys.readouterr().out
    assert "| | `cuda-u8` | `cuda-f32` |" in printed
    assert "| predict, 1,000,000 rows | 0.31 ms, 2529 GB/s (75% of copy); call 2.1 ms | 1.1 ms, 2860 GB/s (85% " \
           "of copy); call 2.1 ms |" in printed
    assert "| W1, 1000 steps of 100 | call 4.1 ms; kernel 3.2 ms (cooperative (1 launches)) |  |" in printed
    assert "SM clock 1980-1980 MHz" in printed and "python -m fastsoftmax.benchmark.report" in printed


@pytest.mark.parametrize("mode, failed, refusal", [
    ("dry run (simulator, nothing timed)", (), "holds a dry run (simulator, nothing timed) run"),
    ("GPU", ("tests",), "the run failed (tests)"),
])
def test_a_dry_run_or_a_failed_run_is_not_filed(tmp_path, capsys, mode, failed, refusal):
    _returned(tmp_path / "returned", mode, failed)
    assert gpu_results.main([str(tmp_path / "returned"), "--results", str(tmp_path / "results")]) == 1
    assert refusal in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- the whole check, here


def _check(*args, timeout):
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
    return done, time.monotonic() - started


@pytest.mark.skipif(not _no_gpu_here(), reason="this machine has an NVIDIA driver: the check would run")
def test_without_a_gpu_the_check_stops_after_the_preflight_and_leaves_its_results(tmp_path, gpu_data):
    out = tmp_path / "out"
    done, seconds = _check("--out", out, "--work", tmp_path / "work", "--data", gpu_data, timeout=120)
    assert done.returncode == 1
    assert seconds < 45
    lines = done.stdout.splitlines()
    failure = next(line for line in lines if line.startswith("preflight failed: "))
    assert "cuda.is_available() is False" in failure
    summary_text = done.stdout[done.stdout.index("== GPU check"):]
    assert summary_text.startswith("== GPU check (GPU): FAILED: preflight")
    assert len(summary_text.encode()) < gpu_check.SUMMARY_BYTES and lines[-1].startswith("results: ")
    assert {p.name for p in out.iterdir()} == {"summary.json", "versions.json", "logs.tar.gz"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"]["preflight"]["line"] == failure and summary["out"]["problems"] == []
    assert "tests" not in summary["steps"] and "measure" not in summary["steps"]
    assert "logs/preflight-1.log" in _archive(out)


@pytest.mark.slow
def test_dry_run_leaves_exactly_the_expected_results(tmp_path, gpu_data):
    out = tmp_path / "out"
    done, _ = _check("--dry-run", "--out", out, "--work", tmp_path / "work", "--data", gpu_data, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    assert {p.name for p in out.iterdir()} == EVERY_OUT_FILE
    summary_text = done.stdout[done.stdout.index("== GPU check"):]
    assert summary_text.startswith("== GPU check (dry run (simulator, nothing timed)): passed")
    assert len(summary_text.encode()) < gpu_check.SUMMARY_BYTES
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"]["tests"]["passed"] == len(gpu_check.DRY_RUN_TESTS)
    assert summary["steps"]["measure"]["errors"] == []
    times = json.loads((out / "kernel-times.json").read_text())
    assert times["complete"] and [k["operation"] for k in times["kernels"]] == ["predict", "forward"]
    assert all(k["kernel_s"] is None for k in times["kernels"])  # the simulator times nothing
    bench = json.loads((out / "gpu-bench.json").read_text())
    assert bench["format"] == "fastsoftmax-bench/1"
    assert {r["variant"] for r in bench["results"]} == {"numpy-loop", "cpu-u8"}
    archive = _archive(out)
    assert {"logs/tests-1.xml", "logs/tests-2.xml", "logs/measure.log", "logs/ncu.log"} <= set(archive)
