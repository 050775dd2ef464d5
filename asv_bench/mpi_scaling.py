"""Data-parallel throughput on one machine: training tokens/s of one process using all
the cores against K processes (``mpiexec -n K``) sharing them, and the gradient
Allreduce's part of a step (bytes, time), for docs/distributed.md.

    python asv_bench/mpi_scaling.py                        # the default model: K = 1 vs 2
    python asv_bench/mpi_scaling.py --processes 1 2 4 --dtype float64 --rounds 5

The default model is the command's (char-level LSTM 256, embedding 64, float32, B = 32
streams of S = 64) on the built-in corpus.  Each configuration runs in a job of its own,
the configurations alternate, and each keeps its best round.  A process's Numba
threads are the command's default: all cores for one process, the cores divided
among K processes (fastrnn.lm.parallel.MPIGroup.threads_per_process).  Only on a quiet
machine are the figures worth keeping.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def child(args):
    """Time ``args.steps`` training steps in this process (one rank of a job, or alone);
    rank 0 prints the figures as one JSON line."""
    import numba

    from fastrnn import set_num_threads
    from fastrnn.lm import Corpus, LanguageModel, ModelConfig, Trainer, TrainConfig, parallel

    group = parallel.world()
    if group.size > 1:
        set_num_threads(min(group.threads_per_process(), numba.config.NUMBA_NUM_THREADS))
    if args.text:
        with open(args.text, encoding="utf-8") as stream:
            corpus = Corpus.from_text(stream.read())
    else:
        corpus = Corpus.builtin()
    model = LanguageModel(corpus.vocab, corpus.tokenizer,
                          ModelConfig(hidden=args.hidden, dtype=args.dtype), seed=0)
    trainer = Trainer(model, corpus, TrainConfig(batch_size=args.batch_size,
                                                 seq_len=args.seq_len), group=group)
    trainer.compile_kernels()
    for window in range(args.warm_up):
        trainer._train_window(window)
    group.sum(np.zeros(1))  # start together
    calls, spent = group.reduce_calls, group.reduce_seconds
    start = time.perf_counter()
    for step in range(args.steps):
        trainer._train_window((args.warm_up + step) % trainer.windows_per_epoch)
    seconds = time.perf_counter() - start
    figures = {"processes": group.size, "threads": numba.get_num_threads(),
               "step_ms": 1e3 * seconds / args.steps,
               "tokens_per_second": args.steps * trainer.tokens_per_step / seconds,
               "parameters": model.parameter_count()}
    if group.size > 1:
        steps = group.reduce_calls - calls
        figures.update(allreduce_ms=1e3 * (group.reduce_seconds - spent) / steps,
                       allreduce_mb=group.reduce_bytes / group.reduce_calls / 1e6,
                       latency_us=_allreduce_us(group, np.zeros(1)),
                       bandwidth_gb_s=_bandwidth(group, model.parameter_count()))
    slowest = group.allgather(figures["step_ms"])
    if group.is_root:
        figures["step_ms"] = max(slowest)
        figures["tokens_per_second"] = (trainer.tokens_per_step / (figures["step_ms"] / 1e3))
        print(json.dumps(figures), flush=True)


def _allreduce_us(group, buffer, repeats=200):
    """Mean microseconds of an Allreduce of ``buffer`` (in place, float64)."""
    from mpi4py import MPI

    group.comm.Barrier()
    start = time.perf_counter()
    for _ in range(repeats):
        group.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
    return 1e6 * (time.perf_counter() - start) / repeats


def _bandwidth(group, count):
    """GB/s of the Allreduce of ``count`` float64, its latency subtracted (bytes over time)."""
    latency = _allreduce_us(group, np.zeros(1))
    seconds = (_allreduce_us(group, np.zeros(count), repeats=20) - latency) / 1e6
    return 8 * count / max(seconds, 1e-9) / 1e9


def run(args, processes):
    """The figures of one job of ``processes`` processes."""
    command = [sys.executable, os.path.abspath(__file__), "--child", *args.child_argv]
    if processes > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        command = [mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", str(processes),
                   *command]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def table(best):
    """A markdown table of the best figures per number of processes."""
    lines = ["| processes x threads | tokens/s | step ms | Allreduce ms (share) | MB/step |",
             "|---|---|---|---|---|"]
    for figures in best.values():
        reduce = "-"
        if "allreduce_ms" in figures:
            share = figures["allreduce_ms"] / figures["step_ms"]
            reduce = f"{figures['allreduce_ms']:.2f} ({share:.1%})"
        megabytes = f"{figures['allreduce_mb']:.2f}" if "allreduce_mb" in figures else "-"
        lines.append(f"| {figures['processes']} x {figures['threads']} | "
                     f"{figures['tokens_per_second']:,.0f} | {figures['step_ms']:.1f} | "
                     f"{reduce} | {megabytes} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warm-up", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--text", help="a text file instead of the built-in corpus")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    args.child_argv = [f"--steps={args.steps}", f"--warm-up={args.warm_up}",
                       f"--hidden={args.hidden}", f"--batch-size={args.batch_size}",
                       f"--seq-len={args.seq_len}", f"--dtype={args.dtype}"]
    if args.text:
        args.child_argv.append(f"--text={os.path.abspath(args.text)}")
    best = {}
    for _ in range(args.rounds):
        for processes in args.processes:
            figures = run(args, processes)
            if processes not in best or figures["tokens_per_second"] > best[processes][
                    "tokens_per_second"]:
                best[processes] = figures
    print(table(best))
    for figures in best.values():
        if "latency_us" in figures:
            print(f"{figures['processes']} processes: Allreduce of 8 bytes "
                  f"{figures['latency_us']:.1f} us; of the gradients as float64 "
                  f"{figures['bandwidth_gb_s']:.2f} GB/s")
    return best


if __name__ == "__main__":
    main()
