"""Quality per minute: validation loss of ``fastrnn train``'s default model against
wall-clock training seconds, on the built-in English corpus.

    python asv_bench/quality_per_minute.py                   # 3 minutes, writes docs/
    python asv_bench/quality_per_minute.py --seconds 20      # a quick look

Trains a character-level model with the default settings of ``fastrnn train``
(:class:`fastrnn.lm.ModelConfig` and :class:`fastrnn.lm.TrainConfig`) on the
built-in corpus, pausing every ``--every`` seconds of training to measure the
loss on the validation blocks.  Those measurements are not counted as training
time; the validation ``fastrnn train`` itself does after each epoch is.  Writes
a CSV (seconds, validation loss in nats per character, accuracy, epochs) and a
PNG of the curve.  For scale: a PyTorch ``nn.LSTM`` of 256 units (float32, 2
threads, Adam, sequence 64, batch 32) reaches about 1.6 nats per character in
30 s on such text.  Run it on a quiet machine: other load slows training.
"""

import argparse
import csv
import os
import platform
import sys

import fastrnn
from fastrnn.corpus import stdlib_docstrings
from fastrnn.lm import Corpus, LanguageModel, ModelConfig, Trainer, TrainConfig
from fastrnn.plots import plot_curve

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def measure(seconds, every, max_chars=None, progress=False):
    """Train for ``seconds`` of training time; returns the rows (dicts) measured
    every ``every`` seconds, the first one before any training."""
    text = stdlib_docstrings(max_chars)
    corpus = Corpus.from_text(text, level="char")
    train_config = TrainConfig(epochs=None, time_budget=seconds)
    model = LanguageModel(corpus.vocab, corpus.tokenizer, ModelConfig(), seed=train_config.seed)
    trainer = Trainer(model, corpus, train_config)
    # The run is cut into pieces below: its learning-rate schedule is planned for the whole.
    trainer.plan_schedule()
    rows = []

    def record(loss, accuracy):
        rows.append({
            "seconds": round(trainer.seconds, 2),
            "val_loss": round(loss, 4),
            "val_accuracy": round(accuracy, 4),
            "epochs": round(trainer.epoch + trainer.step_in_epoch / trainer.windows_per_epoch, 3),
        })
        if progress:
            row = rows[-1]
            print(f"{row['seconds']:7.1f} s  val loss {row['val_loss']:.4f}  "
                  f"accuracy {row['val_accuracy']:.3f}  epochs {row['epochs']:.2f}", flush=True)

    untrained = trainer.evaluate()
    record(untrained["loss"], untrained["accuracy"])
    target = 0.0
    while trainer.seconds < seconds:
        target = min(seconds, target + every)
        # A run that stops on its budget validates where it stopped: that row is the measurement.
        last = trainer.run(progress=False, epochs=None, time_budget=target).last
        record(last["val_loss"], last["val_accuracy"])
    return rows, len(text), len(corpus.vocab), model.parameter_count()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="training time [180]")
    parser.add_argument("--every", type=float, default=10.0,
                        help="seconds of training between measurements [10]")
    parser.add_argument("--max-chars", type=int, help="use only this much of the corpus")
    parser.add_argument("--csv", default=os.path.join(DOCS, "quality_per_minute.csv"))
    parser.add_argument("--png", default=os.path.join(DOCS, "quality_per_minute.png"))
    args = parser.parse_args(argv)
    if not (args.seconds > 0 and args.every > 0):
        parser.error("--seconds and --every must be > 0")

    print(f"fastrnn {fastrnn.__version__}, Python {platform.python_version()}, "
          f"{fastrnn.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    rows, chars, vocab_size, parameters = measure(args.seconds, args.every, args.max_chars,
                                                  progress=True)
    print(f"corpus {chars:,} characters, vocabulary {vocab_size}, {parameters:,} parameters; "
          f"validation loss {rows[0]['val_loss']:.3f} -> {rows[-1]['val_loss']:.3f} nats per "
          f"character in {rows[-1]['seconds']:.0f} s")

    for path in (args.csv, args.png):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(args.csv, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_curve([row["seconds"] for row in rows], [row["val_loss"] for row in rows], args.png,
               "training time (s)", "validation loss (nats per character)",
               title="fastrnn train defaults, built-in corpus, char level")
    print(f"wrote {args.csv} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
