"""Ranges (lowest - highest) over several runs of ``compare.py --json``, and
which performance targets each run met.

    python asv_bench/compare.py --json run1.json      # repeat for run2, run3, ...
    python asv_bench/ranges.py run1.json run2.json run3.json

The machine these figures come from is shared and has slow phases, so one run
says little on its own; this prints, for every figure ``compare.py`` writes, the
lowest and highest value over the runs, as the Markdown tables and lines that
``docs/benchmarks.md`` quotes.  Ratios and the percentage of GEMM peak are taken
per run (each run's own peak, each run's own peers) before the range is formed.
Then one line per run: its small-size ratios, the host's state around its
notebook-size float64 RNN row, and the targets (``TARGETS``) it missed.
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


NOTEBOOK = (10, 50, 10, 20)
MID_SIZE = (32, 100, 64, 128)
GEMM_BOUND = ((64, 100, 256, 256), (64, 50, 512, 1024))

# The performance targets of the project (ratio = peer time / fastrnn time):
# at the notebook size 15x the numpy lib and 30x (float64) / 5x (float32)
# PyTorch; at MID_SIZE 2x the numpy lib and PyTorch float64, 1x PyTorch float32;
# at the GEMM-bound sizes 75% of the machine's GEMM peak; the language model's
# iteration 8x the numpy loop at 200 words and 2.5x at 2,000; generation 50,000
# (character-level) and 10,000 (word-level) tokens/s; a warm first call within
# 1 s; peak memory within 1.5x of the formula.
TARGETS = dict(notebook_numpy=15.0, notebook_torch={"float64": 30.0, "float32": 5.0},
               mid_numpy=2.0, mid_torch={"float64": 2.0, "float32": 1.0},
               gemm_peak_percent=75.0, language_model={200: 8.0, 2000: 2.5},
               generation={"char": 50_000.0, "word": 10_000.0},
               jit_warm_s=1.0, memory_over_formula=1.5)


def missed_targets(run):
    """Short labels of the ``TARGETS`` that ``run`` (one parsed JSON document)
    missed, each with the figure it reached; empty when it met them all.
    Figures a run does not have (PyTorch absent, say) are not judged."""
    missed = []
    for (cell, dtype, size), fig in layer_figures(run).items():
        where = f"{cell} {dtype} ({', '.join(map(str, size))})"
        torch = fig["torch"]
        if size == NOTEBOOK:
            numpy_bar, torch_bar = TARGETS["notebook_numpy"], TARGETS["notebook_torch"][dtype]
        elif size == MID_SIZE:
            numpy_bar, torch_bar = TARGETS["mid_numpy"], TARGETS["mid_torch"][dtype]
        elif size in GEMM_BOUND:
            if fig["peak"] < TARGETS["gemm_peak_percent"]:
                missed.append(f"{where} {fig['peak']:.0f}% of peak")
            continue
        else:
            continue
        if fig["numpy"] < numpy_bar:
            missed.append(f"{where} {fig['numpy']:.1f}x numpy")
        if torch is not None and torch < torch_bar:
            missed.append(f"{where} {torch:.2f}x PyTorch")
    for row in run.get("language_model", []):
        bar = TARGETS["language_model"].get(row["vocab"])
        ratio = row["numpy_ms"] / row["fastrnn_ms"]
        if bar is not None and ratio < bar:
            missed.append(f"language model {row['vocab']} words {ratio:.2f}x")
    for label, rate in run.get("generation", {}).items():
        bar = TARGETS["generation"].get(label.split()[0])
        if bar is not None and rate < bar:
            missed.append(f"generation {label.split()[0]} {rate:,.0f} tokens/s")
    if run.get("jit_warm_s", 0.0) > TARGETS["jit_warm_s"]:
        missed.append(f"warm first call {run['jit_warm_s']:.2f} s")
    if "memory_peak" in run and \
            run["memory_peak"] / run["memory_formula"] > TARGETS["memory_over_formula"]:
        missed.append(f"memory {run['memory_peak'] / run['memory_formula']:.2f}x the formula")
    return missed


def host_state(row, when):
    """``"1.00x 1.5"``: a row's host state (slowest vCPU over the fastest, empty
    region in us) ``when`` = "before" or "after" it ran; "-" for older runs."""
    state = row.get(f"host_{when}")
    if not state:
        return "-"
    return f"{state['vcpu_slowdown']:.2f}x {state['region_us']:.1f}"


def per_run(runs, names):
    """Markdown table, one line per run (``names`` label them): the notebook-size
    ratios (fastrnn's time in brackets), the language model's, the host around
    the float64 RNN row, and the targets the run missed."""
    lines = ["| run | RNN float64 vs numpy | RNN float32 vs numpy "
             "| LSTM float64 vs numpy / PyTorch | LSTM float32 vs PyTorch "
             "| LM 200 / 2,000 words | host, RNN float64 row | targets missed |",
             "|---|---:|---:|---:|---:|---:|---|---|"]

    def ratio(value, fmt="{:.1f}x"):
        return "-" if value is None else fmt.format(value)

    for name, run in zip(names, runs):
        figures = layer_figures(run)
        rows = {(r["cell"], r["dtype"], tuple(r["size"])): r for r in run["layers"]}
        rnn64, rnn32 = figures[("rnn", "float64", NOTEBOOK)], figures[("rnn", "float32", NOTEBOOK)]
        lstm64, lstm32 = figures[("lstm", "float64", NOTEBOOK)], figures[("lstm", "float32", NOTEBOOK)]
        lm = {r["vocab"]: r["numpy_ms"] / r["fastrnn_ms"] for r in run.get("language_model", [])}
        host_row = rows[("rnn", "float64", NOTEBOOK)]
        missed = missed_targets(run)
        lines.append(
            f"| {name} | {ratio(rnn64['numpy'])} ({rnn64['fastrnn'] * 1e3:.0f} us) "
            f"| {ratio(rnn32['numpy'])} ({rnn32['fastrnn'] * 1e3:.0f} us) "
            f"| {ratio(lstm64['numpy'])} / {ratio(lstm64['torch'])} | {ratio(lstm32['torch'])} "
            f"| {ratio(lm.get(200), '{:.2f}x')} / {ratio(lm.get(2000), '{:.2f}x')} "
            f"| {host_state(host_row, 'before')} / {host_state(host_row, 'after')} "
            f"| {'; '.join(missed) if missed else 'none'} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="JSON files written by compare.py --json")
    args = parser.parse_args(argv)
    runs = []
    for path in args.runs:
        with open(path) as f:
            runs.append(json.load(f))
    names = [os.path.splitext(os.path.basename(path))[0] for path in args.runs]
    lines = ranges(runs)
    if all(("rnn", "float64", NOTEBOOK) in layer_figures(run) for run in runs):
        lines += ["", *per_run(runs, names)]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
