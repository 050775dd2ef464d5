"""Ranges (lowest - highest) over several runs of ``compare.py --json``.

    python asv_bench/compare.py --json run1.json      # repeat for run2, run3, ...
    python asv_bench/ranges.py run1.json run2.json run3.json

The machine these figures come from is shared and has slow phases, so one run
says little on its own; this prints, for every figure ``compare.py`` writes, the
lowest and highest value over the runs, as the Markdown tables and lines that
``docs/benchmarks.md`` quotes.  Ratios and the percentage of GEMM peak are taken
per run (each run's own peak, each run's own peers) before the range is formed.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import layer_flops  # noqa: E402  (the comparison program sits beside this one)


def span(values, fmt):
    """``"low - high"`` of ``values``, each formatted with ``fmt``."""
    return f"{fmt.format(min(values))} - {fmt.format(max(values))}"


def layer_figures(run):
    """Per-layer figures of one run, keyed by (cell, dtype, size)."""
    peaks = run["gemm_gflops"]
    figures = {}
    for row in run["layers"]:
        size = tuple(row["size"])
        fast = row["fastrnn"]
        gflops = layer_flops(row["cell"], *size) / (fast * 1e6)
        figures[row["cell"], row["dtype"], size] = dict(
            fastrnn=fast,
            numpy=row["numpy"] / fast,
            torch=row["torch"] / fast if row.get("torch") else None,
            peak=100 * gflops / peaks[row["dtype"]])
    return figures


def ranges(runs):
    """The Markdown lines of the ranges over ``runs`` (parsed JSON documents)."""
    per_run = [layer_figures(run) for run in runs]
    keys = [k for k in per_run[0] if all(k in figures for figures in per_run)]
    lines = ["| cell | dtype | N, T, D, H | fastrnn ms | numpy/fastrnn | torch/fastrnn "
             "| % of GEMM peak |",
             "|---|---|---|---|---|---|---|"]
    for key in keys:
        cell, dtype, size = key
        column = {name: [figures[key][name] for figures in per_run]
                  for name in ("fastrnn", "numpy", "torch", "peak")}
        torch = (span(column["torch"], "{:.2f}x") if None not in column["torch"] else "-")
        lines.append(f"| {cell} | {dtype} | {', '.join(map(str, size))} "
                     f"| {span(column['fastrnn'], '{:.3f}')} "
                     f"| {span(column['numpy'], '{:.2f}x')} | {torch} "
                     f"| {span(column['peak'], '{:.0f}%')} |")
    lines.append("")
    for vocab in sorted({row["vocab"] for run in runs for row in run["language_model"]}):
        rows = [row for run in runs for row in run["language_model"] if row["vocab"] == vocab]
        lines.append(f"- Language model iteration, vocabulary {vocab}: fastrnn "
                     f"{span([r['fastrnn_ms'] for r in rows], '{:.3f}')} ms, numpy/fastrnn "
                     f"{span([r['numpy_ms'] / r['fastrnn_ms'] for r in rows], '{:.2f}x')}")
    for label in runs[0].get("generation", {}):
        rates = [run["generation"][label] for run in runs if label in run.get("generation", {})]
        lines.append(f"- Generation {label}: {span(rates, '{:,.0f}')} tokens/s")
    if all("jit_cold_s" in run for run in runs):
        lines.append(f"- JIT: cold {span([r['jit_cold_s'] for r in runs], '{:.1f}')} s, "
                     f"warm {span([r['jit_warm_s'] for r in runs], '{:.2f}')} s")
    if all("memory_peak" in run for run in runs):
        mib = 2.0 ** 20
        lines.append(
            "- Memory at (64, 100, 256, 256) float32, peak / formula: "
            f"{span([r['memory_peak'] / r['memory_formula'] for r in runs], '{:.2f}x')} "
            f"(peak {span([r['memory_peak'] / mib for r in runs], '{:.1f}')} MiB, "
            f"formula {span([r['memory_formula'] / mib for r in runs], '{:.1f}')} MiB)")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="JSON files written by compare.py --json")
    args = parser.parse_args(argv)
    runs = []
    for path in args.runs:
        with open(path) as f:
            runs.append(json.load(f))
    sys.stdout.write("\n".join(ranges(runs)) + "\n")


if __name__ == "__main__":
    main()
