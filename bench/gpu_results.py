#!/usr/bin/env python3
"""What a GPU check brought back, filed under ``bench/results/``.

Run on the development machine, on the folder where the GPU run's files landed::

    python3 bench/gpu_results.py DIR

It refuses a dry run's files, a run whose measurements did not finish, and (unless
``--accept-failed``) a run with a failed step, naming what is wrong. Otherwise it copies

* ``gpu-bench.json`` to ``bench/results/<machine>.json``, where ``<machine>`` is the name
  ``fastsoftmax bench`` proposes for the machine it ran on (CPU, cores, ``-gpu``): the
  README's performance tables are generated from every run there
  (``python -m fastsoftmax.benchmark.report bench/results/*.json``);
* ``kernel-times.json`` to ``bench/results/gpu-kernel-times/<machine>.json`` (a folder of its
  own: it is not a ``fastsoftmax bench`` file),

and prints the kernel times as a Markdown table, the GPU figures read against the targets in
CONTRIBUTING.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


class Refused(Exception):
    """Files that are not a complete GPU run, with why."""


def _ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.3g} ms"


def kernel_table(times: dict, shown_as: str) -> str:
    """``kernel-times.json`` as Markdown: a row per operation and row count, a column per variant;
    each cell the kernel's own time, its GB/s as a share of the device copy, and the whole call."""
    variants = list(dict.fromkeys(k["variant"] for k in times.get("kernels", [])))
    variants += [t["variant"] for t in times.get("training", []) if t["variant"] not in variants]
    rows = {}
    for k in times.get("kernels", []):
        share = k.get("share_of_copy_bandwidth")
        cell = f"{_ms(k['kernel_s'])}, {k['gbs']:.0f} GB/s" if k.get("kernel_s") else "-"
        cell += f" ({100 * share:.0f}% of copy)" if share else ""
        cell += f"; call {_ms(k['call_s'])}"
        rows.setdefault(f"{k['operation']}, {k['rows']:,} rows", {})[k["variant"]] = cell
    for t in times.get("training", []):
        rows.setdefault(f"W1, {t['steps']} steps of {t['batch']}", {})[t["variant"]] = (
            f"call {_ms(t['call_s'])}; kernel {_ms(t.get('kernel_s'))} ({t.get('path')})")
    clocks = sorted({round(k["clocks"]["sm_mhz"]) for k in times.get("kernels", []) + times.get("training", [])
                     if k.get("clocks")})
    head = f"`{shown_as}`: {times.get('device')}; device copy {times.get('copy_gbs') or 0:.0f} GB/s"
    head += f"; SM clock {clocks[0]}-{clocks[-1]} MHz." if clocks else "."
    legend = ("Kernel: its own time (launches queued back to back between CUDA events); call: the public "
              "function on device-resident rows, result copied back.")
    lines = [head, "", legend, "", "| | " + " | ".join(f"`{v}`" for v in variants) + " |",
             "|---" * (len(variants) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cells.get(v, "") for v in variants) + " |" for name, cells in rows.items()]
    return "\n".join(lines)


def file_results(folder: Path, results: Path = RESULTS, accept_failed: bool = False) -> tuple:
    """Copy a GPU run's files into ``results``; returns (the bench file, the kernel-times file)."""
    from fastsoftmax.benchmark import report
    from fastsoftmax.benchmark.machine import results_name

    summary = _read(folder / "summary.json")
    if summary.get("mode") != "GPU":
        raise Refused(f"{folder} holds a {summary.get('mode')} run: only a GPU run's figures are filed")
    if summary.get("failed") and not accept_failed:
        raise Refused(f"the run failed ({', '.join(summary['failed'])}): see its summary.json and logs.tar.gz "
                      "(--accept-failed files it all the same)")
    times = _read(folder / "kernel-times.json")
    if not times.get("complete") or times.get("dry_run"):
        raise Refused(f"{folder / 'kernel-times.json'} is not a finished GPU measurement")
    bench = report.load(folder / "gpu-bench.json")
    name = results_name(bench["machine"])
    bench_file, times_file = results / f"{name}.json", results / "gpu-kernel-times" / f"{name}.json"
    times_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / "gpu-bench.json", bench_file)
    shutil.copyfile(folder / "kernel-times.json", times_file)
    return bench_file, times_file


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Refused(f"cannot read {path}: {exc}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the folder holding the GPU check's files")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where saved runs live (bench/results)")
    parser.add_argument("--accept-failed", action="store_true", help="file a run with a failed step")
    args = parser.parse_args(argv)
    try:
        bench_file, times_file = file_results(args.folder, args.results, args.accept_failed)
    except Refused as exc:
        print(f"gpu_results: {exc}", file=sys.stderr)
        return 1
    shown = times_file.relative_to(ROOT) if times_file.is_relative_to(ROOT) else times_file
    print(f"wrote {bench_file} and {times_file}\n")
    print(kernel_table(json.loads(times_file.read_text()), str(shown)))
    print("\nnow regenerate README's tables: python -m fastsoftmax.benchmark.report bench/results/*.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
