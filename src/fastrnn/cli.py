"""The ``fastrnn`` command: ``train``, ``generate`` and ``info``; a thin layer over
:mod:`fastrnn.lm`.

Bad arguments print a usage message and exit with status 2 (argparse); errors
in the text, the run directory or a checkpoint print ``fastrnn: error: ...`` and
exit with status 1; a training stopped by Ctrl-C exits with status 130 after
writing its checkpoint.
"""

import argparse
import dataclasses
import datetime
import math
import os
import sys

from tqdm.auto import tqdm

from . import __version__, lm, sampling
from ._checks import FLOAT_NAMES, ArgumentError
from .checkpoint import CheckpointError
from .lm.progress import check_log_every
from .text import TextError

# The options' defaults are the configuration classes' own.  The parser's
# defaults are None, to tell an option given from one left out (--resume
# refuses the first kind).
_DEFAULTS = {field.name: field.default
             for config in (lm.TextConfig, lm.ModelConfig, lm.TrainConfig)
             for field in dataclasses.fields(config)
             if field.default is not dataclasses.MISSING}
_TEXT_OPTIONS = ("level", "tokenizer", "min_count", "encoding")
_MODEL_OPTIONS = ("cell", "layers", "embedding", "hidden", "dropout", "dtype")
_TRAIN_OPTIONS = ("seq_len", "batch_size", "lr", "clip", "val_fraction", "seed")

_ERRORS = (TextError, CheckpointError, lm.RunError, ValueError, OSError)


def _checked(parse, check):
    """An argparse ``type``: ``parse`` the text, then ``check`` the value with the
    library's own validator, whose ArgumentError becomes argparse's error for the
    option (usage, exit status 2).  A text that does not parse is checked as it is,
    so that the message says what was expected all the same."""
    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            value = text
        try:
            check(value)
        except ArgumentError as err:
            raise argparse.ArgumentTypeError(f"expected {err.expected}, got {text}") from None
        return value
    return convert


def _setting(config, name, parse):
    """The argparse ``type`` of an option that sets field ``name`` of ``config``."""
    return _checked(parse, lambda value: config.check_field(name, value))


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastrnn", description="Train recurrent language models on your own text, "
        "fast on a CPU, and generate text from them.",
        epilog="Start with: fastrnn train   (built-in English corpus), then "
               "fastrnn generate RUN_DIR.")
    parser.add_argument("--version", action="version", version=f"fastrnn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a language model", description="Train a language model on text "
        "files (UTF-8 by default), or on the built-in English corpus (docstrings of the "
        "Python standard library) when no file is given.  Defaults are shown in brackets.")
    train.add_argument("files", nargs="*", metavar="TEXT_FILE", help="text to train on")
    text = train.add_argument_group("text")
    text.add_argument("--level", choices=("char", "word"),
                      help="tokens: characters or words " + _default("level"))
    text.add_argument("--tokenizer", choices=("words", "notebook"),
                      help="word level: 'words' keeps punctuation and line breaks as tokens; "
                           "'notebook' lowercases and splits on spaces and newlines "
                           + _default("tokenizer"))
    text.add_argument("--min-count", type=_setting(lm.TextConfig, "min_count", int),
                      help="'words' tokenizer: rarer words become <unk> " + _default("min_count"))
    text.add_argument("--encoding", help="encoding of the text files " + _default("encoding"))
    model = train.add_argument_group("model")
    model.add_argument("--cell", choices=lm.config.CELLS,
                       help="recurrent cell " + _default("cell"))
    model.add_argument("--layers", type=_setting(lm.ModelConfig, "layers", int),
                       help="stacked recurrent layers " + _default("layers"))
    model.add_argument("--embedding", type=_setting(lm.ModelConfig, "embedding", int),
                       help="token embedding size " + _default("embedding"))
    model.add_argument("--hidden", type=_setting(lm.ModelConfig, "hidden", int),
                       help="hidden units per layer " + _default("hidden"))
    model.add_argument("--dropout", type=_setting(lm.ModelConfig, "dropout", float),
                       help="dropout between layers " + _default("dropout"))
    model.add_argument("--dtype", choices=FLOAT_NAMES,
                       help="precision " + _default("dtype"))
    training = train.add_argument_group("training")
    training.add_argument("--seq-len", type=_setting(lm.TrainConfig, "seq_len", int),
                          help="tokens per window of truncated backpropagation "
                          + _default("seq_len"))
    training.add_argument("--batch-size", type=_setting(lm.TrainConfig, "batch_size", int),
                          help="parallel streams of the text " + _default("batch_size"))
    training.add_argument("--epochs", type=_setting(lm.TrainConfig, "epochs", int),
                          help="passes over the text (no time budget unless one is given)")
    training.add_argument("--time-budget", type=_setting(lm.TrainConfig, "time_budget", float),
                          metavar="SECONDS",
                          help=f"stop after this much training time "
                               f"[{_DEFAULTS['time_budget']:g} when --epochs is not given]")
    training.add_argument("--lr", type=_setting(lm.TrainConfig, "lr", float),
                          help="Adam learning rate " + _default("lr"))
    training.add_argument("--clip", type=_setting(lm.TrainConfig, "clip", float),
                          help="maximum global gradient norm, 0 = none " + _default("clip"))
    training.add_argument("--val-fraction", type=_setting(lm.TrainConfig, "val_fraction", float),
                          help="share of the text, at its end, held out for validation "
                          + _default("val_fraction"))
    training.add_argument("--seed", type=_setting(lm.TrainConfig, "seed", int),
                          help="random seed " + _default("seed"))
    output = train.add_argument_group("output")
    output.add_argument("--out", metavar="RUN_DIR",
                        help="run directory [runs/<date-time>]")
    output.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its latest checkpoint "
                             "(--epochs and --time-budget may be raised)")
    output.add_argument("--quiet", action="store_true", help="no progress bar, no epoch lines")
    output.add_argument("--log-every", type=_checked(float, check_log_every), default=30.0,
                        metavar="SECONDS", help="without a terminal, a progress line every "
                        "SECONDS instead of the bar [30]")

    generate = commands.add_parser(
        "generate", help="generate text from a trained run",
        description="Generate text from the best checkpoint of a run, streamed to stdout.")
    generate.add_argument("run_dir", metavar="RUN_DIR")
    generate.add_argument("--start", default="", help="text to start from, in the model's "
                          "tokens (default: the start of a line)")
    generate.add_argument("--length", type=_checked(int, sampling.check_length),
                          help="tokens to generate [500 characters or 100 words]")
    generate.add_argument("--temperature", type=_checked(float, sampling.check_temperature),
                          default=0.8,
                          help="sampling temperature; lower is more conservative [0.8]")
    generate.add_argument("--top-k", type=_checked(int, sampling.check_top_k), default=0,
                          help="sample among the k most likely tokens, 0 = all [0]")
    generate.add_argument("--greedy", action="store_true",
                          help="always take the most likely token (temperature 0)")
    generate.add_argument("--seed", type=_setting(lm.TrainConfig, "seed", int),
                          help="seed of the draws [random]")
    generate.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                          help="which checkpoint [best]")

    info = commands.add_parser("info", help="describe a run",
                               description="Configuration, vocabulary, parameters, best "
                               "validation loss and training time of a run.")
    info.add_argument("run_dir", metavar="RUN_DIR")
    return parser


def _default(name):
    return f"[{_DEFAULTS[name]:g}]" if isinstance(_DEFAULTS[name], float) else \
        f"[{_DEFAULTS[name]}]"


def main(argv=None):
    """Run the command line ``argv`` (sys.argv[1:] when None); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    handler = {"train": _train, "generate": _generate, "info": _info}[args.command]
    try:
        return handler(parser, args)
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except _ERRORS as err:
        print(f"fastrnn: error: {err}", file=sys.stderr)
        return 1


def _silence_stdout():
    """After stdout's reader went away (``fastrnn ... | head``): send what is left to
    /dev/null, so that Python does not fail again when it flushes stdout at exit."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------

def _option(args, name):
    value = getattr(args, name)
    return _DEFAULTS[name] if value is None else value


def _limits(args):
    """(epochs, time_budget) as given; the default budget when neither is."""
    if args.epochs is None and args.time_budget is None:
        return None, _DEFAULTS["time_budget"]
    return args.epochs, args.time_budget


def _print_epoch(trainer, row):
    """The training callback of the command: one line per validation (above the bar)."""
    tqdm.write(f"epoch {row['epoch']:g}: train loss {row['train_loss']:.3f}, "
               f"val loss {row['val_loss']:.3f} (perplexity {row['val_perplexity']:.2f}, "
               f"accuracy {row['val_accuracy']:.3f}), {row['seconds']:.0f} s", file=sys.stdout)


def _train(parser, args):
    if args.resume:
        return _resume(parser, args)
    text_config = lm.TextConfig(**{name: _option(args, name) for name in _TEXT_OPTIONS})
    model_config = lm.ModelConfig(**{name: _option(args, name) for name in _MODEL_OPTIONS})
    epochs, time_budget = _limits(args)
    train_config = lm.TrainConfig(epochs=epochs, time_budget=time_budget,
                                  **{name: _option(args, name) for name in _TRAIN_OPTIONS})
    run_dir = args.out or os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    if args.files:
        corpus = lm.Corpus.from_files(args.files, text_config.level, text_config.tokenizer,
                                      text_config.min_count, text_config.encoding)
    else:
        corpus = lm.Corpus.builtin(text_config.level, text_config.tokenizer,
                                   text_config.min_count)
    model = lm.LanguageModel(corpus.vocab, corpus.tokenizer, model_config, train_config.seed)
    limits = []
    if epochs is not None:
        limits.append(f"{epochs} epoch" + ("s" if epochs > 1 else ""))
    if time_budget is not None:
        limits.append(f"{time_budget:g} s")
    limit = " or ".join(limits)
    if not args.quiet:
        print(f"training on {corpus.describe()}: {len(corpus):,} {text_config.level} tokens, "
              f"vocabulary {len(corpus.vocab):,}; {model.parameter_count():,} parameters; "
              f"at most {limit}\nrun directory: {run_dir}", flush=True)
    result = lm.train(model, corpus, train_config, run_dir,
                      None if args.quiet else _print_epoch, progress=False if args.quiet else None,
                      log_every=args.log_every)
    return _finish(run_dir, result, args.quiet)


def _resume(parser, args):
    if args.out is None:
        parser.error("--resume needs --out RUN_DIR, the run to continue")
    given = [name for name in _TEXT_OPTIONS + _MODEL_OPTIONS + _TRAIN_OPTIONS
             if getattr(args, name) is not None]
    if args.files or given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        parser.error(f"--resume continues a run with its own text and settings; "
                     f"only --epochs and --time-budget may be given "
                     f"(got {'TEXT_FILE ' if args.files else ''}{options})")
    if not args.quiet:
        print(f"resuming {args.out}", flush=True)
    result = lm.resume(args.out, args.epochs, args.time_budget,
                       None if args.quiet else _print_epoch, progress=False if args.quiet else None,
                       log_every=args.log_every)
    return _finish(args.out, result, args.quiet)


def _finish(run_dir, result, quiet):
    reason = {"epochs": "all epochs done", "time": "time budget reached",
              "interrupted": "interrupted", "callback": "stopped"}[result.stopped]
    if not quiet:
        best = "none" if result.best_val_loss is None else f"{result.best_val_loss:.4f}"
        print(f"{reason} after {result.steps} steps, {result.seconds:.0f} s; best validation "
              f"loss {best} nats per token\nrun directory: {run_dir}")
        if result.stopped == "interrupted":
            print(f"checkpoint written; continue with: fastrnn train --resume --out {run_dir}")
        else:
            print(f"generate text with: fastrnn generate {run_dir}")
    return 130 if result.stopped == "interrupted" else 0


# --------------------------------------------------------------------------------------------
# generate, info
# --------------------------------------------------------------------------------------------

def _generate(parser, args):
    run = lm.load_run(args.run_dir, args.checkpoint)
    model = run.model
    length = args.length
    if length is None:
        length = 500 if model.tokenizer.name == "char" else 100

    def write(piece):
        sys.stdout.write(piece)
        sys.stdout.flush()

    try:
        model.generate_text(args.start, length, 0.0 if args.greedy else args.temperature,
                            args.top_k, args.seed, write=write)
        write("\n")
    except BrokenPipeError:
        # The reader took what it wanted (``fastrnn generate RUN | head``): that is a
        # success, as for other Unix tools that write a stream.
        _silence_stdout()
    return 0


def _info(parser, args):
    run = lm.load_run(args.run_dir, "latest")
    config, meta = run.config, run.meta
    text, model, training = config["text"], config["model"], config["training"]
    source = lm.run_dir.configs(config)[0].describe()
    level = "char level" if text["level"] == "char" else \
        f"word level ({text['tokenizer']} tokenizer)"
    best = meta["best_val_loss"]
    lines = [
        f"run:              {os.path.abspath(args.run_dir)}",
        f"text:             {source}; {text['tokens']:,} tokens, {level}",
        f"vocabulary:       {model['vocab_size']:,} tokens",
        f"model:            {model['layers']} x {model['cell'].upper()} {model['hidden']} "
        f"units, embedding {model['embedding']}, dropout {model['dropout']:g}, {model['dtype']}",
        f"parameters:       {run.model.parameter_count():,}",
        "training:         " + ", ".join(f"{k}={v}" for k, v in training.items()),
        f"progress:         {meta['epoch']} epochs + {meta['step_in_epoch']} steps "
        f"({meta['global_step']} steps in all)",
        f"training time:    {meta['seconds']:.1f} s",
        "best validation:  " + ("none yet" if best is None else
                                f"{best:.4f} nats per token (perplexity "
                                f"{math.exp(best):.2f})"),
    ]
    print("\n".join(lines))
    return 0

