"""Run directories: the files of a run, their format version, and loading a run.

A run directory holds ``config.json`` (the run's settings: text, model, training,
and the run format version), ``vocab.json``, ``checkpoint_latest.npz`` and
``checkpoint_best.npz`` (parameters and the :class:`~fastrnn.lm.state.TrainerState`),
``metrics.jsonl``, ``curves.png`` and ``samples.txt``; every file is written
atomically (:mod:`fastrnn.checkpoint`).

Format versions: 1 is the format of the first releases (``"format": "fastrnn-run-1"``,
no version number); 2 records ``format_version`` in ``config.json`` and in every
checkpoint; 3 holds out validation blocks spread over the text, capped at
``val_tokens``, and validates and checkpoints on a schedule (``eval_every``,
``checkpoint_every``) with a guard against non-finite steps (``max_nonfinite``);
it also records the token store a run of files trains on in ``"text"."store"``
(its path, id dtype, ``max_vocab`` and ``on_bad_file``), and ``"text"."sha256"`` is
then the store's fingerprint (its ids as stored) instead of that of the int64 ids;
4 draws dropout masks from the counter-based generator (:mod:`fastrnn.dropout`)
instead of a numpy Generator carried in the checkpoint (a run of an earlier version
with dropout continues with the new masks: same distribution, other draws; a
warning says so), and records ``recompute`` (recomputation in time in the
recurrent layers, see :class:`~fastrnn.lm.config.TrainConfig`; earlier runs
stored every step: 'off'),
and schedules the learning rate (``lr_schedule``, ``warmup``, ``lr_floor``,
``lr_decay_share``) over a number of steps fixed once and kept in the trainer state
(``schedule_steps``): runs of versions 1-3 resume at their constant rate.
A run of a newer version than :data:`FORMAT_VERSION` is refused with a clear error;
a run is always continued with its own recorded settings: a setting newer than
the run's version takes the value that says what that version did (its ``before``,
see :func:`fastrnn.lm.config.since`), and any other setting missing from
``config.json`` is an error, never a default filled in.
"""

import dataclasses
import json
import os

from .._checks import is_int, require
from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint, write_text
from ..text import Vocabulary, get_tokenizer
from .config import ModelConfig, TextConfig, TrainConfig
from .errors import RunError
from .model import LanguageModel

__all__ = ["FORMAT", "FORMAT_VERSION", "Run", "RunDirectory", "load_run", "run_document",
           "configs"]

FORMAT = "fastrnn-run"
FORMAT_VERSION = 4
_VERSION_1_FORMAT = "fastrnn-run-1"  # version 1 named its version in the format string

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
LATEST = "checkpoint_latest.npz"
BEST = "checkpoint_best.npz"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
SAMPLES_FILE = "samples.txt"


def run_document(corpus, model, train_config):
    """The JSON document of ``config.json``: the settings of the run's text, model
    and training, with the format version and a fingerprint of the text."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "text": corpus.recorded(),
        "model": {**dataclasses.asdict(model.config), "vocab_size": len(model.vocab),
                  "parameters": model.parameter_count()},
        "training": dataclasses.asdict(train_config),
    }


def document_version(document, source):
    """The run format version of a ``config.json`` document; RunError when it is not
    one, or of a version newer than this fastrnn reads."""
    if not isinstance(document, dict):
        raise RunError(f"{source}: not a {FORMAT} configuration")
    if document.get("format") == _VERSION_1_FORMAT:
        return 1
    if document.get("format") != FORMAT:
        raise RunError(f"{source}: not a {FORMAT} configuration")
    return _checked_version(document.get("format_version"), source, RunError)


def checkpoint_version(meta, source):
    """The run format version a checkpoint's metadata was written in (1 before
    versions were recorded); CheckpointError when it is newer than this fastrnn reads."""
    return _checked_version(meta.get("format_version", 1), source, CheckpointError)


def _checked_version(version, source, error):
    if not is_int(version) or version < 1:
        raise error(f"{source}: format_version: expected an integer >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise error(f"{source}: written in run format version {version}, this fastrnn reads "
                    f"versions 1 to {FORMAT_VERSION}: upgrade fastrnn to use it")
    return version


def configs(document, version, source=CONFIG_FILE):
    """(TextConfig, ModelConfig, TrainConfig) of a ``config.json`` document of run
    format ``version``; every setting of that version must be recorded (RunError
    naming the first that is not); settings of later versions take the value that
    says what ``version`` did."""
    def build(cls, section):
        values = document.get(section)
        if not isinstance(values, dict):
            raise RunError(f"{source}: no {section!r} settings")
        settings = {}
        for field in dataclasses.fields(cls):
            if version < field.metadata.get("since", 1):
                settings[field.name] = field.metadata["before"]
            elif field.name in values:
                settings[field.name] = values[field.name]
            else:
                raise RunError(f"{source}: the setting {section}.{field.name} is missing "
                               "(a run records all its settings)")
        return cls(**settings).validate()
    return (build(TextConfig, "text"), build(ModelConfig, "model"),
            build(TrainConfig, "training"))


@dataclasses.dataclass
class Run:
    """A run directory, loaded: its configuration (the ``config.json`` document),
    the model with the parameters of a checkpoint, and that checkpoint's metadata."""

    directory: str
    config: dict
    model: LanguageModel
    checkpoint: str
    meta: dict


class RunDirectory:
    """The files of the run in ``path``."""

    def __init__(self, path):
        self.path = path

    def file(self, name):
        return os.path.join(self.path, name)

    def holds_a_run(self):
        return os.path.exists(self.file(CONFIG_FILE))

    def remove_unfinished_writes(self):
        """Remove the temporary files of writes a killed run left unfinished (see
        :func:`fastrnn.checkpoint.atomic_write`: ``.<name>.<random>.tmp``); only one
        run trains in a directory at a time, so no write of another is under way."""
        names = (CONFIG_FILE, VOCAB_FILE, LATEST, BEST, METRICS_FILE, CURVES_FILE, SAMPLES_FILE)
        for entry in os.listdir(self.path):
            if entry.endswith(".tmp") and any(entry.startswith(f".{name}.") for name in names):
                os.remove(self.file(entry))

    def write_settings(self, document, vocab):
        """Write ``config.json`` (``document``, see :func:`run_document`) and ``vocab.json``."""
        os.makedirs(self.path, exist_ok=True)
        write_text(self.file(CONFIG_FILE), json.dumps(document, indent=2) + "\n")
        write_text(self.file(VOCAB_FILE), vocab.to_json() + "\n")

    def read_settings(self):
        """(document, format version, vocabulary) of ``config.json`` and ``vocab.json``."""
        path = self.file(CONFIG_FILE)
        if not os.path.isdir(self.path):
            raise RunError(f"{self.path}: no such run directory")
        try:
            with open(path, encoding="utf-8") as stream:
                document = json.load(stream)
            with open(self.file(VOCAB_FILE), encoding="utf-8") as stream:
                vocab = Vocabulary.from_json(stream.read())
        except FileNotFoundError as err:
            raise RunError(f"{self.path}: not a run directory ({os.path.basename(err.filename)} "
                           "is missing)") from None
        except (ValueError, KeyError, TypeError) as err:
            raise RunError(f"{self.path}: unreadable run files ({err})") from None
        return document, document_version(document, path), vocab

    def save_checkpoint(self, name, arrays, meta):
        """Write checkpoint ``name`` (arrays and metadata), stamped with the format version."""
        save_checkpoint(self.file(name), arrays, {"format_version": FORMAT_VERSION, **meta})

    def write_logs(self, history, samples, curves=True):
        """``metrics.jsonl`` (one row per validation), ``samples.txt`` and, with
        ``curves``, ``curves.png``."""
        write_text(self.file(METRICS_FILE), "".join(json.dumps(row) + "\n" for row in history))
        write_text(self.file(SAMPLES_FILE),
                   "".join(f"=== epoch {epoch:g} ===\n{text}\n\n" for epoch, text in samples))
        if curves:
            self.write_curves(history)

    def write_curves(self, history):
        """``curves.png`` of the metrics rows ``history``."""
        # matplotlib is imported only by runs that write their curves (it is slow to import).
        from ..plots import plot_training_curves

        plot_training_curves(history, self.file(CURVES_FILE))


def load_run(run_dir, checkpoint="best"):
    """The model of a run directory, with the parameters of its best checkpoint
    (``checkpoint='latest'``: the latest; 'best' falls back to the latest when
    no validation has run yet).  Returns a :class:`Run`."""
    require(checkpoint in ("best", "latest"), "checkpoint", "'best' or 'latest'", checkpoint)
    directory = RunDirectory(run_dir)
    document, version, vocab = directory.read_settings()
    text_config, model_config, train_config = configs(document, version,
                                                      directory.file(CONFIG_FILE))
    name = BEST if checkpoint == "best" and os.path.exists(directory.file(BEST)) else LATEST
    path = directory.file(name)
    arrays, meta = load_checkpoint(path)
    checkpoint_version(meta, path)
    model = LanguageModel(vocab, get_tokenizer(text_config.level, text_config.tokenizer),
                          model_config, train_config.seed)
    model.load_state_arrays(arrays, path)
    return Run(run_dir, document, model, name, meta)
