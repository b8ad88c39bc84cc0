"""Benchmark results as a table, a JSON file, a comparison with a saved run, a bar chart,
and the README's performance tables.

``python -m fastsoftmax.benchmark.report bench/results/*.json`` writes one
Markdown table per saved run into README.md, between the ``perf-table`` marker
comments (``--check`` only says whether README.md is up to date), so the
published figures are always those of a saved ``fastsoftmax bench --json`` run.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from .._atomic import write_atomically
from ..errors import InputError
from .machine import results_name
from .workloads import BASELINE, VARIANTS, WORKLOADS

FORMAT = "fastsoftmax-bench/1"


def _percent(share):
    return f"{100 * share:.0f}%" if share is not None else "-"


def _ms(seconds):
    if seconds >= 1:
        return f"{seconds * 1e3:.0f}"
    return f"{seconds * 1e3:.3g}" if seconds >= 1e-3 else f"{seconds * 1e3:.2g}"


def add_shares(results: list, machine: dict) -> list:
    """Each result's GFLOP/s and GB/s as a share of the measured limits of the device it ran on."""
    for r in results:
        on_gpu = r["backend"] == "cuda"
        peak = None if on_gpu else machine.get("peak_gflops")
        bandwidth = machine.get("gpu_bandwidth_gbs") if on_gpu else machine.get("bandwidth_gbs")
        r["peak_share"] = r["gflops"] / peak if r["gflops"] is not None and peak else None
        r["bandwidth_share"] = r["gbs"] / bandwidth if bandwidth else None
    return results


def table(results: list, machine: dict) -> str:
    """Plain-text table, one row per (workload, variant), grouped by workload."""
    header = ("workload", "variant", "median ms", "spread", "vs baseline", "GFLOP/s", "% peak", "GB/s", "% bw",
              "rounds")
    rows = []
    for r in results:
        rows.append((
            r["workload"], r["variant"], _ms(r["median_s"]),
            f"±{100 * r['iqr_s'] / r['median_s'] / 2:.0f}%" if r["median_s"] else "-",
            f"{r['speedup']:.2f}x" if r.get("speedup") else "-",
            f"{r['gflops']:.1f}" if r["gflops"] is not None else "-",
            _percent(r.get("peak_share")),
            f"{r['gbs']:.2f}",
            _percent(r.get("bandwidth_share")),
            str(r["rounds"]),
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = [_machine_line(machine), "", "  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            lines.append("")
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
        previous = row[0]
    lines.append("")
    lines.append("spread: half the interquartile range of the rounds; % peak and % bw: share of this machine's "
                 "float32 matmul rate and copy bandwidth, measured just before.")
    lines.append(f"a saved run of this machine belongs in bench/results/{results_name(machine)}.json")
    if machine.get("compile"):
        lines += ["", "first call in a fresh process (s):  cold (empty Numba cache)  warm (cache filled)"]
        lines += [f"  {name:<32}{c['cold_s']:>10.2f}{c['warm_s']:>22.2f}" for name, c in machine["compile"].items()]
    return "\n".join(lines)


def _cpu_line(m: dict) -> str:
    """``AMD EPYC (Zen 4, family 25 model 17)``: the model name and what the probe knows beside it."""
    known = [m.get("cpu_microarchitecture")]
    if m.get("cpu_family") is not None:
        known.append(f"family {m['cpu_family']} model {m['cpu_model']}")
    known = [k for k in known if k]
    return m.get("cpu", "unknown CPU") + (f" ({', '.join(known)})" if known else "")


def _machine_line(m: dict) -> str:
    gpu = f"; GPU {m['gpu']}" if m.get("gpu") else ""
    return (f"{_cpu_line(m)}, {m['logical_cores']} logical cores{gpu}; numpy {m['numpy']}, numba {m['numba']}; "
            f"measured limits: {m['peak_gflops']} GFLOP/s float32 matmul, {m['bandwidth_gbs']} GB/s copy"
            + (f", GPU {m['gpu_bandwidth_gbs']:.0f} GB/s copy" if m.get("gpu_bandwidth_gbs") else ""))


def save(path, results: list, machine: dict, settings: dict) -> Path:
    """Write the run as JSON, atomically (a temporary file renamed into place)."""
    path = Path(path)
    payload = {"format": FORMAT, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": machine, "settings": {"baseline": BASELINE, **settings}, "results": results}
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, lambda handle: json.dump(payload, handle, indent=1), text=True)


def load(path) -> dict:
    """A run saved by :func:`save`; anything else is refused with an error naming the file."""
    try:
        payload = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read benchmark results {path}: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or not isinstance(payload.get("results"), list):
        raise InputError(f"{path} is not a fastsoftmax bench --json file (format {FORMAT})")
    return payload


def compare(results: list, saved: dict) -> str:
    """Median time now against the saved run, for every (workload, variant) in both."""
    before = {(r["workload"], r["variant"]): r for r in saved["results"]}
    lines = [f"against {_machine_line(saved['machine'])}", "",
             f"{'workload':<12} {'variant':<10} {'then ms':>9} {'now ms':>9} {'change':>8}"]
    for r in results:
        old = before.get((r["workload"], r["variant"]))
        if old is None:
            continue
        change = r["median_s"] / old["median_s"] - 1
        lines.append(f"{r['workload']:<12} {r['variant']:<10} {_ms(old['median_s']):>9} {_ms(r['median_s']):>9} "
                     f"{100 * change:>+7.1f}%")
    if len(lines) == 3:
        lines.append("(no workload and variant in common)")
    return "\n".join(lines)


def plot(path, results: list, machine: dict) -> Path:
    """Bar chart of each variant's speed-up over NumPy, per workload (the ``plot`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    workloads = list(dict.fromkeys(r["workload"] for r in results if r.get("speedup")))
    variants = list(dict.fromkeys(r["variant"] for r in results if r.get("speedup")))
    value = {(r["workload"], r["variant"]): r["speedup"] for r in results if r.get("speedup")}
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(workloads)), 4))
    width = 0.8 / max(1, len(variants))
    for k, v in enumerate(variants):
        heights = [value.get((w, v), 0) for w in workloads]
        ax.bar(np.arange(len(workloads)) + k * width, heights, width, label=v)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(workloads)) + width * (len(variants) - 1) / 2, workloads)
    ax.set_ylabel(f"speed-up over the workload's baseline ({BASELINE} for single runs)")
    ax.set_title(machine.get("cpu", ""), fontsize=9)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- README tables

BEGIN, END = "<!-- perf-table:begin -->", "<!-- perf-table:end -->"
#: Variants that time one of a many-model workload's models: their ratios would mislead.
_ONE_MODEL = ("one-u8", "cuda-one-u8")
_PEER_VERSIONS = {"jax": "JAX", "torch": "PyTorch"}
_COMPILE_TITLES = {"train": "`fastsoftmax train` (a 1-step fit and a predict, uint8)"}


def _duration(seconds):
    return f"{seconds:.2f} s" if seconds >= 1 else f"{_ms(seconds)} ms"


def _baseline_of(payload: dict) -> str:
    """The variant the run's ratios are against: ``numpy-loop``, or for runs saved before it
    existed, the NumPy reference they were taken against."""
    names = {r["variant"] for r in payload["results"]}
    return payload.get("settings", {}).get("baseline") or (BASELINE if BASELINE in names else "numpy-f32")


def markdown(payload: dict, path: str) -> str:
    """One saved run as a Markdown section: the machine, a table of workloads x variants, the
    compile times, and the command that reproduces it. Fields a run lacks (runs saved by older
    versions) are left out, never invented."""
    m, settings, results = payload["machine"], payload.get("settings", {}), payload["results"]
    baseline = _baseline_of(payload)
    known = [v.name for v in VARIANTS]
    variants = sorted(dict.fromkeys(r["variant"] for r in results),
                      key=lambda n: known.index(n) if n in known else len(known))
    matmul = {w.name: w.matmul for w in WORKLOADS}
    by_load = {}
    for r in results:
        by_load.setdefault(r["workload"], {})[r["variant"]] = r

    cores = f", {m['logical_cores']} logical cores" if m.get("logical_cores") else ""
    lines = [f"### {_cpu_line(m)}{cores}", ""]
    threads = f" ({m['numba_threads']} threads)" if m.get("numba_threads") else ""
    versions = [f"fastsoftmax {m['fastsoftmax']}", f"NumPy {m['numpy']}", f"Numba {m['numba']}{threads}"]
    versions += [f"{title} {m['peers'][lib]}" for lib, title in _PEER_VERSIONS.items() if m.get("peers", {}).get(lib)]
    when = f", measured {payload['date'][:10]}" if payload.get("date") else ""
    lines.append(f"`{path}`{when}: {', '.join(versions)}; {settings.get('dataset', 'fashion-mnist')}, "
                 f"median of {settings.get('rounds', '?')} rounds per variant." if settings.get("rounds") != 1
                 else "one round per variant.")
    limits = f"{m['peak_gflops']:g} GFLOP/s float32 matrix product"
    limits += f" ({m['peak_probe']})" if m.get("peak_probe") else ""
    limits += f", {m['bandwidth_gbs']:g} GB/s copy"
    hardware = []
    if m.get("cpu_simd"):
        hardware.append("AVX-512" if "avx512f" in m["cpu_simd"] else "AVX2" if "avx2" in m["cpu_simd"] else "no AVX2")
    hardware += [f"{level} {size}" for level, size in m.get("cpu_caches", {}).items()]
    lines.append(f"Measured limits: {limits}." + (f" CPU: {', '.join(hardware)}." if hardware else ""))
    baselines = {w.name: w.baseline for w in WORKLOADS}
    groups = {}
    for load in by_load:
        groups.setdefault(baseline if baselines.get(load, BASELINE) == BASELINE else baselines[load], []).append(load)
    for base, loads in groups.items():
        lines += _markdown_table(base, loads, by_load, variants, matmul, older=base == baseline != BASELINE)
    return _markdown_ending(lines, m, settings, path)


def _markdown_table(base, loads, by_load, variants, matmul, older=False) -> list:
    """One table of workloads whose ratios are against the variant ``base``."""
    shown = [v for v in variants if any(v in by_load[load] for load in loads)]
    note = f" (this run predates `{BASELINE}`)" if older else ""
    lines = ["", f"Each cell: median time (speed-up over `{base}`{note}, share of the matmul peak).", ""]
    lines.append("| workload | " + " | ".join(f"`{v}`" for v in shown) + " |")
    lines.append("|---" * (len(shown) + 1) + "|")
    for load in loads:
        row = by_load[load]
        base_result = row.get(base)
        cells = []
        for v in shown:
            r = row.get(v)
            if r is None:
                cells.append("")
                continue
            if v in _ONE_MODEL:  # one of the workload's models: set beside the pass in the line below
                cells.append(_duration(r["median_s"]))
                continue
            notes = [f"{base_result['median_s'] / r['median_s']:.2f}x"] if base_result else []
            if matmul.get(load, True) and r.get("peak_share") is not None:
                notes.append(f"{100 * r['peak_share']:.0f}%")
            cells.append(_duration(r["median_s"]) + (f" ({', '.join(notes)})" if notes else ""))
        title = next(iter(row.values()))["title"]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    for load in loads:  # many models against one: how many single runs' time the pass took
        row = by_load[load]
        for one, many in (("one-u8", "many-u8"), ("cuda-one-u8", "cuda-many-u8")):
            if one in row and many in row:
                lines.append("")
                lines.append(f"{row[many]['title']}: `{many}` took {row[many]['median_s'] / row[one]['median_s']:.1f} "
                             f"times one model's fit (`{one}`).")
    return lines


def _markdown_ending(lines, m, settings, path) -> str:
    lines.append("")
    if m.get("compile"):
        lines += [("Time to the end of the first call in a fresh process, CPU backend; cold: empty Numba cache "
                   "(compiling), warm: the cache filled by the cold run:"), "",
                  "| first call | cold | warm |", "|---|---|---|"]
        for name, c in m["compile"].items():
            lines.append(f"| {_COMPILE_TITLES.get(name, f'`{name}`')} | {_duration(c['cold_s'])} | "
                         f"{_duration(c['warm_s'])} |")
        lines.append("")
    else:
        lines += ["Compile times were not recorded in this run.", ""]
    flags = " --quick" if settings.get("quick") else ""
    dataset = settings.get("dataset", "fashion-mnist")
    lines.append(f"Reproduce: `fastsoftmax bench --dataset {dataset} --rounds {settings.get('rounds', 7)}{flags} "
                 f"--json {path}`, then `python -m fastsoftmax.benchmark.report bench/results/*.json`.")
    return "\n".join(lines)


def readme_tables(paths, root=".") -> str:
    """The Markdown for the saved runs ``paths``, one section per run (and so per CPU), by file name;
    paths are shown relative to ``root``."""
    root = Path(root).resolve()
    sections = []
    for path in sorted(Path(p).resolve() for p in paths):
        shown = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
        sections.append(markdown(load(path), shown))
    return "\n\n".join(sections)


def write_readme(readme, paths, *, check: bool = False) -> bool:
    """Put :func:`readme_tables` between the markers in ``readme``; True when it changed (or,
    with ``check``, would change: the file is then left as it is)."""
    readme = Path(readme)
    text = readme.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise InputError(f"{readme} must hold one {BEGIN} line followed by one {END} line")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    updated = f"{head}{BEGIN}\n{readme_tables(paths, readme.parent)}\n{END}{tail}"
    if updated != text and not check:
        readme.write_text(updated)
    return updated != text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastsoftmax.benchmark.report",
                                     description="write the performance tables of saved bench runs into README.md")
    parser.add_argument("runs", nargs="+", type=Path, help="saved `fastsoftmax bench --json` files")
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--check", action="store_true", help="only report whether README.md is up to date")
    args = parser.parse_args(argv)
    try:
        changed = write_readme(args.readme, args.runs, check=args.check)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.check and changed:
        print(f"{args.readme} is out of date: run python -m fastsoftmax.benchmark.report "
              f"{' '.join(map(str, args.runs))}", file=sys.stderr)
        return 1
    print(f"{args.readme}: {'updated' if changed else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
