"""Training steps/s of fastrnn's default model against the PyTorch script of
``train_vs_torch.py``, without evaluation, in alternating processes.

    python asv_bench/step_rates.py                      # built-in corpus, 5 rounds
    python asv_bench/step_rates.py --text unicode --rounds 9 --steps 200

Each round runs one process per side, the two taking turns (fastrnn first in even
rounds, PyTorch first in odd ones): a side builds its training step exactly as
``train_vs_torch.py`` does (fastrnn: ``Trainer._train_window`` with every default of
``fastrnn train``; PyTorch: ``train_vs_torch.torch_script``), runs ``--warmup``
steps untimed (compilation, first-touch of buffers), then times ``--steps`` steps one
by one.  Prints each round's median step time of both sides and their ratio, and the
median over rounds.  Training steps only: no validation, checkpoint or copy is timed.

Why a script of its own: the steps/s of ``train_vs_torch.py`` come from runs minutes
apart, whose rates a shared host moves by up to 20%; here the two sides alternate
every few seconds, so a change of the host's speed weighs on both alike, and the
ratio of each round is a pair measured back to back.  Run it on a quiet machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
import train_vs_torch as side_by_side  # noqa: E402

SIDES = ("fastrnn", "torch")


def fastrnn_step(text, threads, run_dir):
    """fastrnn's default training step on ``text``, its run files in ``run_dir``: a
    function of the step number that returns the step's loss."""
    import fastrnn
    from fastrnn.lm import Corpus, Trainer

    if threads:
        fastrnn.set_num_threads(threads)
    corpus = Corpus.from_text(text, level="char")
    model, train_config = side_by_side.fastrnn_model(corpus, {})
    trainer = Trainer(model, corpus, train_config, run_dir)
    return lambda n: trainer._train_window(n % trainer.windows_per_epoch)


def torch_step(text, threads):
    """The PyTorch script's training step on ``text``'s training tokens (fastrnn's split)."""
    from fastrnn.lm import Corpus

    corpus = Corpus.from_text(text, level="char")
    _, train_ids = side_by_side.split_tokens(corpus, side_by_side.fastrnn_configs({})[1])
    _, step = side_by_side.torch_script(train_ids, len(corpus.vocab), threads or os.cpu_count())
    return step


def time_steps(step, warmup, steps):
    """Seconds of each of ``steps`` calls ``step(n)``, after ``warmup`` untimed ones."""
    for n in range(warmup):
        step(n)
    seconds = []
    for n in range(warmup, warmup + steps):
        began = time.perf_counter()
        step(n)
        seconds.append(time.perf_counter() - began)
    return seconds


def worker(args):
    text = Path(args.text_file).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as scratch:
        step = (fastrnn_step(text, args.threads, os.path.join(scratch, "run"))
                if args.worker == "fastrnn" else torch_step(text, args.threads))
        seconds = time_steps(step, args.warmup, args.steps)
    print(json.dumps({"side": args.worker, "seconds": seconds}))
    return 0


def run_side(side, text_file, args):
    """Time ``side`` in a process of its own: its step times (s)."""
    command = [sys.executable, str(HERE), "--worker", side, "--text-file", str(text_file),
               "--warmup", str(args.warmup), "--steps", str(args.steps),
               "--threads", str(args.threads)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])["seconds"]


def summary(rounds):
    """Medians per round and over rounds: ms per step of each side and fastrnn's
    steps/s over PyTorch's (PyTorch's step time over fastrnn's)."""
    per_round = [{side: 1e3 * statistics.median(times[side]) for side in SIDES}
                 for times in rounds]
    for row in per_round:
        row["ratio"] = row["torch"] / row["fastrnn"]
    overall = {side: statistics.median(row[side] for row in per_round) for side in SIDES}
    overall["ratio"] = overall["torch"] / overall["fastrnn"]
    ratios = [row["ratio"] for row in per_round]
    overall["ratio_range"] = [min(ratios), max(ratios)]
    return per_round, overall


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", choices=sorted(side_by_side.TEXTS), default="docstrings")
    parser.add_argument("--max-chars", type=int, default=side_by_side.MAX_CHARS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per process [100]")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first [10]")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads of each side [0: fastrnn's default, PyTorch one per core]")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--text-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 1 or args.warmup < 0:
        parser.error("--rounds and --steps must be >= 1, --warmup >= 0")
    if args.worker:
        return worker(args)

    text = side_by_side.TEXTS[args.text](args.max_chars)[:args.max_chars]
    rounds = []
    with tempfile.TemporaryDirectory() as scratch:
        text_file = Path(scratch) / "text.txt"
        text_file.write_text(text, encoding="utf-8")
        for r in range(args.rounds):
            order = SIDES if r % 2 == 0 else SIDES[::-1]
            rounds.append({side: run_side(side, text_file, args) for side in order})
            if not args.json:
                row = summary(rounds[-1:])[0][0]
                print(f"round {r}: fastrnn {row['fastrnn']:.1f} ms, PyTorch {row['torch']:.1f} "
                      f"ms per step: {row['ratio']:.2f}x, load {os.getloadavg()[0]:.1f}",
                      flush=True)
    per_round, overall = summary(rounds)
    if args.json:
        print(json.dumps({"text": args.text, "steps": args.steps, "rounds": per_round,
                          **overall}))
    else:
        low, high = overall["ratio_range"]
        print(f"median over {args.rounds} rounds: fastrnn {overall['fastrnn']:.1f} ms, PyTorch "
              f"{overall['torch']:.1f} ms per step; fastrnn's steps/s {overall['ratio']:.2f}x "
              f"PyTorch's (rounds {low:.2f}-{high:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
