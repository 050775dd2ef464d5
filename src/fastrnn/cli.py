"""The ``fastrnn`` command: ``train``, ``generate``, ``info``, ``eval``, and ``prepare``
and ``stores`` for the token stores; a thin layer over :mod:`fastrnn.lm` and
:mod:`fastrnn.token_store`.

Bad arguments print a usage message and exit with status 2 (argparse); errors
in the text, the run directory or a checkpoint print ``fastrnn: error: ...`` and
exit with status 1; a training stopped by Ctrl-C exits with status 130 after
writing its checkpoint.

``mpiexec -n K fastrnn train ...`` trains on K processes (:mod:`fastrnn.lm.parallel`,
docs/distributed.md): rank 0 alone prints; an error every rank meets is printed
once and every rank exits with status 1; an error on some ranks only is printed by
each of them and aborts the job (MPI_Abort), so that no rank waits forever.
"""

import argparse
import contextlib
import dataclasses
import datetime
import io
import math
import os
import sys
import traceback
import warnings

import numba
from tqdm.auto import tqdm

from . import __version__, lm, sampling, set_num_threads, token_store
from ._checks import FLOAT_NAMES, ArgumentError, is_int
from .checkpoint import CheckpointError
from .lm import parallel
from .lm.progress import check_log_every
from .sources import SkippedFileWarning
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
_TRAIN_OPTIONS += ("val_tokens", "eval_every", "checkpoint_every", "max_nonfinite")
_TRAIN_OPTIONS += ("recompute", "lr_schedule", "warmup", "lr_floor", "lr_decay_share")
_STORE_OPTIONS = ("max_vocab", "on_bad_file")  # how a store is prepared (not TextConfig's)
_INPUT_HELP = ("text files, directories (their text files, recursively, in sorted order) "
               "or glob patterns ('books/**/*.txt')")

_ERRORS = (TextError, CheckpointError, lm.RunError, ValueError, OSError,
           parallel.ParallelError)


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
    train.add_argument("files", nargs="*", metavar="PATH", help=_INPUT_HELP)
    _add_text_options(train.add_argument_group("text"))
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
    training.add_argument("--lr-schedule", choices=lm.lr_schedule.LR_SCHEDULES,
                          help="learning rate after the warmup: constant, or decaying to "
                          "lr x --lr-floor at the last step (of the epochs, or estimated once "
                          "from the time budget) " + _default("lr_schedule"))
    training.add_argument("--warmup", type=_setting(lm.TrainConfig, "warmup", int),
                          metavar="STEPS", help="steps of linear warmup to --lr "
                          + _default("warmup"))
    training.add_argument("--lr-floor", type=_setting(lm.TrainConfig, "lr_floor", float),
                          metavar="FRACTION", help="the decay's end, as a fraction of --lr "
                          + _default("lr_floor"))
    training.add_argument("--lr-decay-share", metavar="SHARE",
                          type=_setting(lm.TrainConfig, "lr_decay_share", float),
                          help="the decay spans this last share of the steps after the "
                          "warmup (1: all) " + _default("lr_decay_share"))
    training.add_argument("--clip", type=_setting(lm.TrainConfig, "clip", float),
                          help="maximum global gradient norm, 0 = none " + _default("clip"))
    training.add_argument("--val-fraction", type=_setting(lm.TrainConfig, "val_fraction", float),
                          help="share of the text held out for validation (at most "
                          "--val-tokens) " + _default("val_fraction"))
    training.add_argument("--seed", type=_setting(lm.TrainConfig, "seed", int),
                          help="random seed " + _default("seed"))
    training.add_argument("--val-tokens", type=_setting(lm.TrainConfig, "val_tokens", int),
                          help="at most this many tokens held out for validation, in blocks "
                          "spread over the whole text (one pass of the default model takes "
                          "a few seconds) " + _default("val_tokens"))
    training.add_argument("--eval-every", type=_setting(lm.TrainConfig, "eval_every", _steps),
                          metavar="STEPS|DURATION", help="validate, checkpoint and log a "
                          "metrics row every STEPS steps or DURATION of training (90s, 10m, "
                          "1h), and at every epoch end " + _default("eval_every"))
    training.add_argument("--checkpoint-every", metavar="DURATION",
                          type=_setting(lm.TrainConfig, "checkpoint_every", str),
                          help="also write the latest checkpoint after DURATION (30s, 10m, "
                          "1h) of training since the last one " + _default("checkpoint_every"))
    training.add_argument("--max-nonfinite", type=_setting(lm.TrainConfig, "max_nonfinite", int),
                          metavar="N", help="stop after N steps in a row whose loss or gradient "
                          "is not finite (each is skipped) " + _default("max_nonfinite"))
    training.add_argument("--recompute", type=_setting(lm.TrainConfig, "recompute", _steps),
                          metavar="off|on|auto|K", help="recompute the recurrent layers' "
                          "activations in backward instead of storing them (for long --seq-len "
                          "in bounded memory; not --checkpoint-every, the run's files): 'on' "
                          "stores the state every ~sqrt(seq-len) steps, K every K steps, 'auto' "
                          "turns it on when a window's stored activations would pass "
                          f"{lm.model.RECOMPUTE_ABOVE_BYTES // 2 ** 20} MiB "
                          + _default("recompute"))
    output = train.add_argument_group("output")
    output.add_argument("--out", metavar="RUN_DIR",
                        help="run directory [runs/<date-time>]")
    output.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its latest checkpoint "
                             "(--epochs and --time-budget may be raised; --eval-every, "
                             "--checkpoint-every and --max-nonfinite changed)")
    output.add_argument("--full-check", action="store_true",
                        help="with --resume: hash the source files and the token store whole "
                             "(default: sizes, times and sampled blocks of the sources)")
    output.add_argument("--quiet", action="store_true", help="no progress bar, no epoch lines")
    output.add_argument("--log-every", type=_checked(float, check_log_every), default=30.0,
                        metavar="SECONDS", help="without a terminal, a progress line every "
                        "SECONDS instead of the bar [30]")
    train.add_argument("--threads", type=_checked(int, _check_threads), metavar="N",
                       help="Numba threads of the kernels in each process [all cores; under "
                       "mpiexec, a node's cores divided by its processes]")

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
    _add_store_commands(commands)
    return parser


def _steps(text):
    """``--eval-every``: a number of steps (an int) or a duration (the text as it is)."""
    return int(text) if text.strip().isdigit() else text


def _add_text_options(group):
    """The options of how files become tokens and a token store (train and prepare)."""
    group.add_argument("--level", choices=("char", "word"),
                       help="tokens: characters or words " + _default("level"))
    group.add_argument("--tokenizer", choices=("words", "notebook"),
                       help="word level: 'words' keeps punctuation and line breaks as tokens; "
                            "'notebook' lowercases and splits on spaces and newlines "
                            + _default("tokenizer"))
    group.add_argument("--min-count", type=_setting(lm.TextConfig, "min_count", int),
                       help="'words' tokenizer: rarer words become <unk> "
                            + _default("min_count"))
    group.add_argument("--encoding", help="encoding of the text files " + _default("encoding"))
    group.add_argument("--max-vocab", type=_checked(int, _check_max_vocab), metavar="N",
                       help="'words' tokenizer: keep the N - 1 most frequent words, the others "
                            "become <unk>; also bounds the memory for counting words (~600 "
                            "bytes per word kept, however many distinct words) [no limit]")
    _add_bad_file_option(group)


def _add_bad_file_option(group):
    group.add_argument("--on-bad-file", choices=("error", "skip"),
                       help="a file that is not text (a NUL byte, invalid encoding): stop with "
                            "its name and byte offset, or skip it with a warning [error]")


def _check_threads(value):
    limit = numba.config.NUMBA_NUM_THREADS
    if not (is_int(value) and 1 <= value <= limit):
        raise ArgumentError("threads", f"an integer in [1, {limit}] (this machine's cores)",
                            value)


def _check_max_vocab(value):
    if not (is_int(value) and value >= 2):
        raise ArgumentError("max_vocab", "an integer >= 2 (<unk> and a word)", value)


def _add_store_commands(commands):
    prepare = commands.add_parser(
        "prepare", help="encode text into a token store once, to train on it many times",
        description="Read and tokenize text once into a token store: the token ids on disk, "
        "which training memory-maps.  `fastrnn train` with the same PATHs and text options "
        "reuses it (as long as the files keep their size and modification time).  Stores go "
        "to $FASTRNN_CACHE_DIR, else $XDG_CACHE_HOME/fastrnn/stores (~/.cache/...); "
        "`fastrnn stores` lists and removes them.")
    prepare.add_argument("paths", nargs="+", metavar="PATH", help=_INPUT_HELP)
    _add_text_options(prepare)
    prepare.add_argument("--quiet", action="store_true", help="no progress bar")

    stores = commands.add_parser(
        "stores", help="list or remove token stores",
        description="List the token stores in the cache directory (path, size on disk, "
        "status, source files), or remove one.  Status: ok; stale (a source file changed or "
        "is gone: prepare again); damaged; incomplete (left by an interrupted prepare).")
    stores.add_argument("--remove", metavar="KEY_OR_PATH",
                        help="delete this store (its key, as listed, or its directory)")

    evaluate = commands.add_parser(
        "eval", help="score a trained run on other text",
        description="Loss (nats per token), perplexity and accuracy of next-token "
        "prediction of a run's model on text files, encoded with the run's vocabulary "
        "through a token store (streamed: memory does not grow with the text) and read in "
        "the run's windows and streams.  A word the vocabulary lacks is <unk> when it has "
        "one, else an error.  The store stays in the cache for the next eval (see `fastrnn "
        "stores`).")
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("paths", nargs="+", metavar="PATH", help=_INPUT_HELP)
    evaluate.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                          help="which checkpoint [best]")
    _add_bad_file_option(evaluate)
    evaluate.add_argument("--quiet", action="store_true", help="only the scores")


def _default(name):
    return f"[{_DEFAULTS[name]:g}]" if isinstance(_DEFAULTS[name], float) else \
        f"[{_DEFAULTS[name]}]"


def main(argv=None):
    """Run the command line ``argv`` (sys.argv[1:] when None); returns the exit status."""
    parser = build_parser()
    try:
        group = parallel.world()
    except parallel.ParallelError as err:  # MPI could not start: every rank says it
        if parallel.launched_rank() == 0:
            print(f"fastrnn: error: {err}", file=sys.stderr)
        return 1
    if group.size > 1:
        return _main_across_processes(parser, argv, group)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _run(parser, args)
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except _ERRORS as err:
        print(f"fastrnn: error: {err}", file=sys.stderr)
        return 1


def _run(parser, args):
    handler = {"train": _train, "generate": _generate, "info": _info, "eval": _eval,
               "prepare": _prepare, "stores": _stores}[args.command]
    with warnings.catch_warnings():
        warnings.simplefilter("always", SkippedFileWarning)
        warnings.showwarning = _show_warning
        return handler(parser, args)


def _main_across_processes(parser, argv, group):
    """:func:`main` in one of the processes of an MPI job: only ``train`` runs there,
    rank 0 alone prints, and an error goes through :meth:`MPIGroup.fail` (printed
    once when every rank met it, else by its rank, aborting the job)."""
    try:
        with contextlib.ExitStack() as silence:
            if not group.is_root:  # the same arguments on every rank: rank 0 speaks
                silence.enter_context(contextlib.redirect_stdout(io.StringIO()))
                silence.enter_context(contextlib.redirect_stderr(io.StringIO()))
            args = parser.parse_args(argv)
            if args.command != "train":
                parser.error(f"{args.command or 'no command'}: only `fastrnn train` runs on "
                             f"several processes; run the others without mpiexec")
        if not group.is_root:
            args.quiet = True
        return _run(parser, args)
    except SystemExit:
        raise
    except BaseException as err:  # noqa: B036 (KeyboardInterrupt too: every rank must stop)
        if isinstance(err, parallel.RootFailed):
            message = None  # rank 0's own error says it
        elif isinstance(err, _ERRORS):
            message = str(err)
        elif isinstance(err, KeyboardInterrupt):
            message = "interrupted"
        else:
            message = "".join(traceback.format_exception(err)).rstrip()
        group.fail(message)
        return 1


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A skipped file is one line for the user; other warnings keep Python's format."""
    if issubclass(category, SkippedFileWarning):
        print(f"fastrnn: warning: {message}", file=sys.stderr, flush=True)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="",
              file=sys.stderr)


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
    train = "-" if row["train_loss"] is None else f"{row['train_loss']:.3f}"
    skipped = f", {row['skipped_steps']} steps skipped" if row["skipped_steps"] else ""
    tqdm.write(f"step {row['step']} (epoch {row['epoch']:g}): train loss {train}, "
               f"val loss {row['val_loss']:.3f} (perplexity {row['val_perplexity']:.2f}, "
               f"accuracy {row['val_accuracy']:.3f}), {row['tokens_per_second']:,.0f} tok/s, "
               f"{row['seconds']:.0f} s{skipped}", file=sys.stdout)


def _set_threads(args, group):
    """--threads, or under mpiexec a node's cores shared by its processes; the number."""
    if args.threads is not None:
        set_num_threads(args.threads)
    elif group.size > 1:
        set_num_threads(min(group.threads_per_process(), numba.config.NUMBA_NUM_THREADS))
    return numba.get_num_threads()


def _train(parser, args):
    group = parallel.world()  # the processes training together (this one alone, or mpiexec's)
    threads = _set_threads(args, group)
    if group.size > 1 and not args.quiet:
        print(f"{group.size} processes x {threads} thread{'s' * (threads > 1)} "
              f"(rank 0 writes the run)", flush=True)
    if args.resume:
        return _resume(parser, args)
    if args.full_check:
        parser.error("--full-check goes with --resume (a new run checks nothing: it reads "
                     "the text)")
    text_config = lm.TextConfig(**{name: _option(args, name) for name in _TEXT_OPTIONS})
    model_config = lm.ModelConfig(**{name: _option(args, name) for name in _MODEL_OPTIONS})
    epochs, time_budget = _limits(args)
    train_config = lm.TrainConfig(epochs=epochs, time_budget=time_budget,
                                  **{name: _option(args, name) for name in _TRAIN_OPTIONS})
    group.share(train_config.batch_size)  # before the text is read: ValueError if not
    run_dir = args.out or os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    run_dir = group.broadcast(run_dir)  # one directory, whatever the ranks' clocks
    _check_out(run_dir)
    _check_max_vocab_level(parser, args, text_config)
    if args.files:
        corpus = _files_corpus(args.files, text_config, args)
    else:
        corpus = lm.Corpus.builtin(text_config.level, text_config.tokenizer,
                                   text_config.min_count)
    model = lm.LanguageModel(corpus.vocab, corpus.tokenizer, model_config, train_config.seed)
    limits = []
    if epochs is not None:
        limits.append(f"{epochs} epoch" + ("s" if epochs > 1 else ""))
    if time_budget is not None:
        limits.append(f"{time_budget:g} s of training (counted from after compilation)")
    limit = " or ".join(limits)
    if not args.quiet:
        print(f"training on {corpus.describe()}: {len(corpus):,} {text_config.level} tokens, "
              f"vocabulary {len(corpus.vocab):,}; {model.parameter_count():,} parameters; "
              f"at most {limit}\nrun directory: {run_dir}", flush=True)
    result = lm.train(model, corpus, train_config, run_dir,
                      None if args.quiet else _print_epoch, progress=False if args.quiet else None,
                      log_every=args.log_every)
    return _finish(run_dir, result, args.quiet)


def _check_out(run_dir):
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise lm.RunError(f"--out: {run_dir} exists and is not a run directory")


def _check_max_vocab_level(parser, args, text_config):
    if args.max_vocab is not None and (text_config.level, text_config.tokenizer) != ("word",
                                                                                     "words"):
        parser.error("--max-vocab goes with --level word and the 'words' tokenizer (the "
                     "others have no <unk> to stand for the words left out)")


def _files_corpus(paths, text_config, args, vocab=None):
    """The corpus of ``paths`` through a token store, whose description is printed."""
    bar = _PrepareBar(not args.quiet)
    try:
        # Under mpiexec rank 0 prepares the store, then the others open it (a file
        # system shared by the ranks is assumed).
        corpus = parallel.world().root_first(lambda: lm.Corpus.from_files(
            paths, text_config.level, text_config.tokenizer, text_config.min_count,
            text_config.encoding, vocab, getattr(args, "max_vocab", None),
            args.on_bad_file or "error", progress=bar))
    finally:
        bar.close()
    if not args.quiet:
        print(corpus.store.describe(), flush=True)
    return corpus


class _PrepareBar:
    """``prepare``'s progress as a bar per pass over the text (none without a terminal)."""

    def __init__(self, enabled):
        self.enabled, self.phase, self.bar = enabled, None, None

    def __call__(self, phase, done, total):
        if not self.enabled:
            return
        if phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = tqdm(total=total, unit="B", unit_scale=True, leave=False, disable=None,
                            desc={"count": "reading", "encode": "encoding"}[phase])
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _resume(parser, args):
    if args.out is None:
        parser.error("--resume needs --out RUN_DIR, the run to continue")
    _check_out(args.out)
    given = [name for name in _TEXT_OPTIONS + _STORE_OPTIONS + _MODEL_OPTIONS + _TRAIN_OPTIONS
             if getattr(args, name) is not None and name not in lm.config.SCHEDULE]
    if args.files or given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        parser.error(f"--resume continues a run with its own text and settings; "
                     f"only --epochs, --time-budget, --eval-every, --checkpoint-every and "
                     f"--max-nonfinite may be given "
                     f"(got {'TEXT_FILE ' if args.files else ''}{options})")
    schedule = {name: getattr(args, name) for name in lm.config.SCHEDULE
                if getattr(args, name) is not None}
    if not args.quiet:
        print(f"resuming {args.out}", flush=True)
    result = lm.resume(args.out, args.epochs, args.time_budget,
                       None if args.quiet else _print_epoch, progress=False if args.quiet else None,
                       log_every=args.log_every, schedule=schedule,
                       full_check=args.full_check)
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


def _run_configs(run, run_dir):
    """(TextConfig, ModelConfig, TrainConfig) of a loaded run, read in its own format version."""
    source = os.path.join(run_dir, lm.CONFIG_FILE)
    version = lm.run_dir.document_version(run.config, source)
    return lm.run_dir.configs(run.config, version, source)


def _info(parser, args):
    run = lm.load_run(args.run_dir, "latest")
    config, meta = run.config, run.meta
    text, model, training = config["text"], config["model"], config["training"]
    text_config, _, train_config = _run_configs(run, args.run_dir)
    source = text_config.describe()
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
        f"({meta['global_step']} steps in all)" + ("" if meta.get("schedule_steps") is None else
                                                   f"; lr decays until step "
                                                   f"{meta['schedule_steps']}"),
        f"training time:    {meta['seconds']:.1f} s",
        "schedule:         " + _schedule(train_config),
        f"non-finite steps: {meta.get('skipped_steps', 0):,} skipped (no update; the run "
        f"stops after {train_config.max_nonfinite} in a row)",
        "best validation:  " + ("none yet" if best is None else
                                f"{best:.4f} nats per token (perplexity "
                                f"{math.exp(best):.2f})"),
        "token store:      " + _store_status(text.get("store")),
    ]
    print("\n".join(lines))
    return 0


def _schedule(config):
    """The learning rate, validation and checkpoint intervals of a TrainConfig, for people."""
    def duration(value):  # '10m', or seconds
        return value if isinstance(value, str) else f"{value:g} s"
    if config.eval_every == "epoch":
        validation = "at epoch ends"
    elif isinstance(config.eval_every, str):
        validation = f"every {config.eval_every} of training and at epoch ends"
    else:
        validation = f"every {config.eval_every:,} steps and at epoch ends"
    held_out = (f"the tail {config.val_fraction:g} of the text" if config.val_tokens is None
                else f"<= {config.val_tokens:,} held-out tokens")
    saved = ("at validations" if config.checkpoint_every is None else
             f"at validations and every {duration(config.checkpoint_every)} of training")
    rate = f"learning rate {config.lr:g} ({config.lr_schedule}"
    if config.lr_schedule != "constant":
        share = "" if config.lr_decay_share == 1 else f" over the last {config.lr_decay_share:g}"
        rate += f" to {config.lr_floor:g} x{share}"
    if config.warmup:
        rate += f", {config.warmup:,} warmup steps"
    return f"{rate}); validation {validation}, on {held_out}; latest checkpoint written {saved}"


def _store_status(recorded):
    """Where a run's token store is, its size, tokens and status (``recorded``: the run's
    ``"text"."store"``, None for a run without one)."""
    if recorded is None:
        return "none (the text was read into memory)"
    path = recorded["path"]
    try:
        store = token_store.TokenStore.open(path)
    except token_store.StoreError as err:
        gone = not os.path.exists(path)
        return (f"{path}: {'gone' if gone else 'damaged'} (--resume prepares it again from "
                f"the sources){'' if gone else ': ' + str(err)}")
    try:
        store.check_sources()
        status = "ok"
    except token_store.StoreError as err:
        status = f"stale: {err}"
    return (f"{path}, {token_store.size_text(store.nbytes)} on disk, {len(store):,} tokens "
            f"({store.ids.dtype.name}); {status}")


# --------------------------------------------------------------------------------------------
# eval, prepare, stores
# --------------------------------------------------------------------------------------------

def _eval(parser, args):
    run = lm.load_run(args.run_dir, args.checkpoint)
    text_config, _, train_config = _run_configs(run, args.run_dir)
    corpus = _files_corpus(args.paths, text_config, args, vocab=run.model.vocab)
    if len(corpus) < 2:
        raise TextError(f"{corpus.describe()}: {len(corpus)} token, nothing to predict (need "
                        "at least 2)")
    scores = run.model.evaluate(corpus.ids, train_config.seq_len, train_config.batch_size)
    if not args.quiet:
        print(f"{args.run_dir} ({run.checkpoint}) on {corpus.describe()}:")
    print(f"loss {scores['loss']:.4f} nats per token, perplexity {scores['perplexity']:.2f}, "
          f"accuracy {scores['accuracy']:.4f} ({scores['tokens']:,} tokens predicted)")
    return 0


def _prepare(parser, args):
    text_config = lm.TextConfig(**{name: _option(args, name) for name in _TEXT_OPTIONS})
    _check_max_vocab_level(parser, args, text_config)
    corpus = _files_corpus(args.paths, text_config.validate(), args)
    if args.quiet:  # the store's description is prepare's result: printed all the same
        print(corpus.store.describe())
    return 0


def _stores(parser, args):
    if args.remove is not None:
        freed = token_store.remove_store(args.remove)
        print(f"removed {args.remove}: {freed:,} bytes ({token_store.size_text(freed)}) freed")
        return 0
    cache = token_store.default_cache_dir()
    entries = token_store.list_stores()
    for entry in entries:
        sources = entry.get("sources", [])
        shown = ", ".join(sources[:3]) + (f" and {len(sources) - 3} more" if len(sources) > 3
                                           else "")
        given = " (a model's vocabulary, for eval)" if entry.get("given_vocab") else ""
        tokens = (f"{entry['n_tokens']:,} {entry['level']} tokens{given}; "
                  if "n_tokens" in entry else "")
        print(f"{entry['path']}  {token_store.size_text(entry['nbytes'])}  {entry['status']}  "
              f"{tokens}{shown or entry['problem']}")
        if entry["problem"] and sources:
            print(f"    {entry['problem']}")
    total = sum(entry["nbytes"] for entry in entries)
    print(f"{len(entries)} token store{'s' * (len(entries) != 1)} in {cache}, "
          f"{token_store.size_text(total)} on disk" + ("; remove one with: fastrnn stores "
                                                       "--remove KEY" if entries else ""))
    return 0
