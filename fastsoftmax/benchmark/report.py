"""Benchmark results as a table, a JSON file, a comparison with a saved run, and a bar chart."""

from __future__ import annotations

import json
from pathlib import Path

from .._atomic import write_atomically
from ..errors import InputError

FORMAT = "fastsoftmax-bench/1"


def _percent(share):
    return f"{100 * share:.0f}%" if share is not None else "-"


def _ms(seconds):
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
    header = ("workload", "variant", "median ms", "spread", "vs numpy", "GFLOP/s", "% peak", "GB/s", "% bw", "rounds")
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
    return "\n".join(lines)


def _machine_line(m: dict) -> str:
    gpu = f"; GPU {m['gpu']}" if m.get("gpu") else ""
    return (f"{m['cpu']}, {m['logical_cores']} logical cores{gpu}; numpy {m['numpy']}, numba {m['numba']}; "
            f"measured limits: {m['peak_gflops']} GFLOP/s float32 matmul, {m['bandwidth_gbs']} GB/s copy"
            + (f", GPU {m['gpu_bandwidth_gbs']:.0f} GB/s copy" if m.get("gpu_bandwidth_gbs") else ""))


def save(path, results: list, machine: dict, settings: dict) -> Path:
    """Write the run as JSON, atomically (a temporary file renamed into place)."""
    path = Path(path)
    payload = {"format": FORMAT, "machine": machine, "settings": settings, "results": results}
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
    ax.set_ylabel("speed-up over the NumPy reference")
    ax.set_title(machine.get("cpu", ""), fontsize=9)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
