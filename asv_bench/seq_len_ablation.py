"""What long windows buy: ``--seq-len`` 64 / 256 / 1024 / 4096 at the same tokens per
step and the same training time, on the built-in corpus.

    python asv_bench/seq_len_ablation.py                  # 4 x 120 s of training
    python asv_bench/seq_len_ablation.py --seconds 600    # closer to convergence

Each window length S trains ``fastrnn train``'s default model (character level,
:class:`fastrnn.lm.ModelConfig`) with batch ``--tokens-per-step / S`` (4,096: 64 / 16 /
4 / 1), for ``--seconds`` of training from the same initial weights, with
``fastrnn train``'s recompute default.  All of them train on the same text, the corpus
less its last ``--val-tokens`` tokens, and are scored on those held-out tokens the same
way: ``--eval-rows`` streams read from zero states in windows of 256 with the state
carried (so the score does not depend on S).  Prints a markdown table: validation loss
(nats per character), training tokens per second, and the peak resident memory of the
process during the run (Linux: the high-water mark is reset before each run; elsewhere
it is not shown).  Run it on a quiet machine: other load slows training, so the loss a
budget reaches depends on it.
"""

import argparse
import copy
import platform
import sys

import fastrnn
from fastrnn.corpus import stdlib_docstrings
from fastrnn.lm import Corpus, LanguageModel, ModelConfig, Trainer, TrainConfig
from fastrnn.lm.data import streams
from fastrnn.lm.evaluation import evaluate_streams

EVAL_WINDOW = 256


def _reset_peak():
    """Start the peak resident memory again from what is in use now; False where the
    system cannot (then no peak is reported)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def _peak():
    """The peak resident memory since the last reset (bytes), from /proc/self/status."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status
                    if line.startswith("VmHWM:"))


def held_out_split(corpus, val_tokens):
    """(training corpus, held-out ids): the corpus less its last ``val_tokens`` tokens
    (same vocabulary), and those tokens."""
    cut = len(corpus) - val_tokens
    training = copy.copy(corpus)
    training.ids = corpus.ids[:cut]
    return training, corpus.ids[cut:]


def measure(seq_len, batch_size, seconds, training, held_out, eval_rows):
    """Train the default model on windows of ``seq_len`` x ``batch_size`` for ``seconds``
    of training; returns a row of the table (a dict)."""
    config = TrainConfig(seq_len=seq_len, batch_size=batch_size, epochs=None,
                         time_budget=seconds, eval_every="epoch", checkpoint_every=None,
                         val_tokens=1)  # the trainer's own validation: one window, unused
    model = LanguageModel(training.vocab, training.tokenizer, ModelConfig(), seed=config.seed)
    trainer = Trainer(model, training, config)
    trainer.compile_kernels()  # loading the kernels is not part of the peak
    tracked = _reset_peak()
    trainer.run(progress=False)
    peak = _peak() if tracked else None
    scores = evaluate_streams(model, streams(held_out, eval_rows), EVAL_WINDOW)
    return {"seq_len": seq_len, "batch": batch_size, "steps": trainer.global_step,
            "tokens_per_second": trainer.global_step * seq_len * batch_size / trainer.seconds,
            "val_loss": scores["loss"], "peak_MiB": None if peak is None else peak / 2 ** 20,
            "recompute": {0: "off", "auto": "on"}.get(model.cells[0].checkpoint_every,
                                                      model.cells[0].checkpoint_every)}


def table(rows):
    """The rows as a markdown table."""
    lines = ["| seq_len | batch | steps | tokens/s | val loss (nats/char) | peak memory "
             "| recompute |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        peak = "-" if row["peak_MiB"] is None else f"{row['peak_MiB']:,.0f} MiB"
        lines.append(f"| {row['seq_len']:,} | {row['batch']} | {row['steps']:,} | "
                     f"{row['tokens_per_second']:,.0f} | {row['val_loss']:.4f} | {peak} | "
                     f"{row['recompute']} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="training time of each window length [120]")
    parser.add_argument("--seq-lens", default="64,256,1024,4096",
                        help="window lengths, comma-separated [64,256,1024,4096]")
    parser.add_argument("--tokens-per-step", type=int, default=4096,
                        help="batch x seq_len of every step [4096]")
    parser.add_argument("--val-tokens", type=int, default=100_000,
                        help="held-out tokens at the end of the corpus [100000]")
    parser.add_argument("--eval-rows", type=int, default=16,
                        help="streams the held-out tokens are read in [16]")
    parser.add_argument("--max-chars", type=int, help="use only this much of the corpus")
    args = parser.parse_args(argv)
    seq_lens = [int(s) for s in args.seq_lens.split(",")]
    if not (args.seconds > 0 and all(s >= 1 and args.tokens_per_step % s == 0
                                     for s in seq_lens)):
        parser.error("--seconds must be > 0 and every --seq-lens value divide "
                     "--tokens-per-step")
    corpus = Corpus.from_text(stdlib_docstrings(args.max_chars), level="char")
    training, held_out = held_out_split(corpus, args.val_tokens)
    print(f"fastrnn {fastrnn.__version__}, Python {platform.python_version()}, "
          f"{fastrnn.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
          f"built-in corpus: {len(training):,} training and {len(held_out):,} held-out "
          f"characters; {args.seconds:g} s of training each, {args.tokens_per_step:,} tokens "
          "a step", flush=True)
    rows = []
    for seq_len in seq_lens:
        rows.append(measure(seq_len, args.tokens_per_step // seq_len, args.seconds, training,
                            held_out, args.eval_rows))
        print(f"seq_len {seq_len}: val loss {rows[-1]['val_loss']:.4f}", flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
