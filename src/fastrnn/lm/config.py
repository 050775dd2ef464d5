"""The three configurations of a run (text, model, training), each with its validator.

Every field has one rule, kept as data (``RULES``): ``validate()`` applies them all
(and the rules that tie fields together), ``check_field(name, value)`` applies one,
which is how the command line checks an option.  A value outside its rule raises
:class:`fastrnn._checks.ArgumentError` (a ValueError) naming the field, what was
expected and what came.
"""

import dataclasses
import math
import re

from .. import _checks
from .._checks import is_int, is_number, require
from ..text import get_tokenizer
from .lr_schedule import LR_SCHEDULES

__all__ = ["TextConfig", "ModelConfig", "TrainConfig", "CELLS", "SCHEDULE", "parse_duration",
           "eval_schedule", "since", "RECOMPUTE"]

CELLS = ("lstm", "rnn")
RECOMPUTE = ("off", "on", "auto")  # TrainConfig.recompute, besides a number of steps

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}

# The settings of TrainConfig that change when and what a run writes, never the
# parameters it reaches: a resumed run may be given new ones.
SCHEDULE = ("eval_every", "checkpoint_every", "max_nonfinite")


def _positive_int(value):
    return is_int(value) and value >= 1


def since(version, before, default):
    """A setting added in run format ``version``: ``default`` for new runs; ``before``
    is what runs of older versions did, the value they are resumed and loaded with
    (never the new default)."""
    return dataclasses.field(default=default, metadata={"since": version, "before": before})


def parse_duration(value):
    """Seconds of a duration: a number of seconds (``90``, ``0.5``) or a text with a
    unit, ``'90s'``, ``'10m'``, ``'1.5h'``; None when it is neither or not > 0."""
    match = isinstance(value, str) and re.fullmatch(r"\s*(\d+\.?\d*|\.\d+)\s*([smh])\s*", value)
    if is_number(value):
        seconds = float(value)
    elif match:
        seconds = float(match[1]) * _UNITS[match[2]]
    else:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def eval_schedule(value):
    """What ``TrainConfig.eval_every`` means, as (kind, amount): ('steps', n) for an
    integer, ('seconds', s) for a text with a unit ('90s', '10m', '1h'), ('epoch',
    None) for 'epoch' (only at epoch ends); None for anything else."""
    if value == "epoch":
        return "epoch", None
    if is_int(value):
        return ("steps", int(value)) if value >= 1 else None
    if isinstance(value, str):
        seconds = parse_duration(value)
        return None if seconds is None else ("seconds", seconds)
    return None


class _Validated:
    """``RULES``: field name -> (test of one value, what the test expects)."""

    RULES = {}

    @classmethod
    def check_field(cls, name, value):
        """``value`` if it satisfies the rule of field ``name``; ArgumentError otherwise."""
        test, expected = cls.RULES[name]
        require(test(value), name, expected, value)
        return value

    def validate(self):
        """``self`` if every field satisfies its rule; ArgumentError for the first that does not."""
        for name in self.RULES:
            self.check_field(name, getattr(self, name))
        return self


@dataclasses.dataclass
class TextConfig(_Validated):
    """How text becomes tokens.

    level: 'char' or 'word'; tokenizer (word level): 'words' (punctuation and line
    breaks are tokens) or 'notebook' (lowercase, split on spaces and newlines);
    min_count: with the 'words' tokenizer, words seen fewer times become ``<unk>``;
    origin: 'files' (then ``sources`` are their absolute paths), 'builtin' (the
    built-in corpus) or 'text' (a string given in Python, which cannot be read again).
    """

    level: str = "char"
    tokenizer: str = "words"
    min_count: int = 2
    origin: str = "text"
    sources: list = dataclasses.field(default_factory=list)
    encoding: str = "utf-8"

    RULES = {
        "origin": (lambda v: v in ("files", "builtin", "text"), "'files', 'builtin' or 'text'"),
        "min_count": (_positive_int, "an integer >= 1"),
    }

    def validate(self):
        get_tokenizer(self.level, self.tokenizer)
        return super().validate()

    def describe(self):
        """Where the text comes from, for messages."""
        files = self.sources if len(self.sources) <= 3 else [
            f"{len(self.sources)} files: {self.sources[0]}", "...", self.sources[-1]]
        return {"files": ", ".join(files),
                "builtin": "the built-in corpus (standard-library docstrings)",
                "text": "a text given in Python"}[self.origin]

    @property
    def effective_min_count(self):
        """Only the 'words' tokenizer maps rare tokens to ``<unk>``."""
        return self.min_count if self.level == "word" and self.tokenizer == "words" else 1


@dataclasses.dataclass
class ModelConfig(_Validated):
    """Embedding -> ``layers`` recurrent layers (``cell`` 'lstm' or 'rnn') -> linear.

    dropout: probability of dropping an activation between stacked layers
    (training only); dtype: 'float32' (fast) or 'float64'.
    """

    cell: str = "lstm"
    layers: int = 1
    embedding: int = 64
    hidden: int = 256
    dropout: float = 0.0
    dtype: str = "float32"

    RULES = {
        "cell": (lambda v: v in CELLS, "'lstm' or 'rnn'"),
        "layers": (_positive_int, "an integer >= 1"),
        "embedding": (_positive_int, "an integer >= 1"),
        "hidden": (_positive_int, "an integer >= 1"),
        "dropout": (lambda v: is_number(v) and 0.0 <= v < 1.0, "a probability in [0, 1)"),
        "dtype": (lambda v: v in _checks.FLOAT_NAMES, " or ".join(map(repr, _checks.FLOAT_NAMES))),
    }


@dataclasses.dataclass
class TrainConfig(_Validated):
    """Truncated BPTT with Adam.

    Training stops after ``epochs`` epochs or ``time_budget`` seconds (of this
    run, all sessions together), whichever comes first; at least one is needed.
    clip: maximum global norm of the gradient (0 = no clipping);
    val_fraction, val_tokens: the held-out validation text is ``min(val_fraction * n,
    val_tokens)`` of the n tokens, in blocks spread evenly over the text (see
    :mod:`fastrnn.lm.split`); ``val_tokens=None`` holds out the tail ``val_fraction``
    (runs of format versions 1-2).
    eval_every: validate (and write the latest checkpoint, a metrics row and a
    sample) every that many steps (an int), every that much training time (a
    duration, ``'90s'``, ``'10m'``, ``'1h'``), or only at epoch ends ('epoch');
    every epoch end validates in any case.
    checkpoint_every: also write the latest checkpoint after that much training
    time (a duration or seconds) since the last one; None: only at validations.
    max_nonfinite: stop after that many steps in a row whose loss or gradient was
    not finite (each is skipped: no update, carried states restored).
    None of eval_every, checkpoint_every and max_nonfinite changes the parameters
    a run reaches (evaluation uses its own states and random generator).
    recompute: recomputation in time in the recurrent layers (backpropagation through
    a long window in bounded memory; not the run's checkpoint files): 'off' stores
    every step's activations, 'on' stores the state every ~sqrt(seq_len) steps and
    recomputes the rest in backward, an integer K every K steps, 'auto' is 'on' when
    the layers' stored activations for a window would pass
    :data:`fastrnn.lm.model.RECOMPUTE_ABOVE_BYTES`, else 'off' (see
    :meth:`~fastrnn.lm.model.LanguageModel.set_recompute`).
    lr_schedule, warmup, lr_floor, lr_decay_share: the learning rate of each step, see
    :mod:`fastrnn.lm.lr_schedule` ('constant', 'cosine' or 'linear' after ``warmup``
    steps rising to ``lr``, decaying over the last ``lr_decay_share`` of the steps to
    ``lr * lr_floor`` at the run's last step).
    """

    seq_len: int = 64
    batch_size: int = 32
    epochs: int | None = None
    time_budget: float | None = 120.0
    lr: float = 5e-3
    clip: float = 5.0
    val_fraction: float = 0.1
    seed: int = 0
    # The default cap keeps one validation pass of the default model to a few seconds:
    # measured 17,000 tokens/s (char level, 256 LSTM units, float32, 2 busy cores).
    val_tokens: int | None = since(3, before=None, default=100_000)
    eval_every: int | str = since(3, before="epoch", default="10m")
    checkpoint_every: float | str | None = since(3, before=None, default="10m")
    # Versions 1-2 had no guard: a non-finite step reached the parameters.  The guard
    # changes no finite step, so those runs get it too (it only stops a run gone bad).
    max_nonfinite: int = since(3, before=5, default=5)
    recompute: int | str = since(4, before="off", default="auto")
    # Versions 1-3 trained at a constant rate.  The default holds lr, then cools it down
    # linearly to lr * lr_floor over the last quarter of the run's steps: what measured
    # best per minute against a constant rate and longer decays
    # (docs/quality_per_minute.md).
    lr_schedule: str = since(4, before="constant", default="linear")
    warmup: int = since(4, before=0, default=0)
    lr_floor: float = since(4, before=0.1, default=0.1)
    lr_decay_share: float = since(4, before=1.0, default=0.25)

    RULES = {
        "seq_len": (_positive_int, "an integer >= 1"),
        "batch_size": (_positive_int, "an integer >= 1"),
        "epochs": (lambda v: v is None or _positive_int(v), "an integer >= 1 or None"),
        "time_budget": (lambda v: v is None or (is_number(v) and v > 0),
                        "a number of seconds > 0 or None"),
        "lr": (lambda v: is_number(v) and v > 0, "a learning rate > 0"),
        "clip": (lambda v: is_number(v) and v >= 0, "a gradient norm >= 0 (0 = no clipping)"),
        "val_fraction": (lambda v: is_number(v) and 0.0 < v <= 0.5, "a fraction in (0, 0.5]"),
        "seed": (lambda v: is_int(v) and v >= 0, "an integer >= 0"),
        "val_tokens": (lambda v: v is None or _positive_int(v), "an integer >= 1 or None"),
        "eval_every": (lambda v: eval_schedule(v) is not None,
                       "a number of steps >= 1, a duration such as '90s', '10m' or '1h', "
                       "or 'epoch'"),
        "checkpoint_every": (lambda v: v is None or parse_duration(v) is not None,
                             "a duration such as '30s', '10m' or '1h' (or seconds > 0), "
                             "or None"),
        "max_nonfinite": (_positive_int, "an integer >= 1"),
        "recompute": (lambda v: v in RECOMPUTE or _positive_int(v),
                      "'off', 'on', 'auto' or a number of steps >= 1 between stored states"),
        "lr_schedule": (lambda v: v in LR_SCHEDULES, " or ".join(map(repr, LR_SCHEDULES))),
        "warmup": (lambda v: is_int(v) and v >= 0, "a number of steps >= 0"),
        "lr_floor": (lambda v: is_number(v) and 0.0 <= v <= 1.0,
                     "a fraction of lr in [0, 1]"),
        "lr_decay_share": (lambda v: is_number(v) and 0.0 < v <= 1.0,
                           "a share of the steps in (0, 1]"),
    }

    @property
    def checkpoint_seconds(self):
        """``checkpoint_every`` in seconds (None: no timed checkpoints)."""
        return None if self.checkpoint_every is None else parse_duration(self.checkpoint_every)

    def validate(self):
        super().validate()
        require(self.epochs is not None or self.time_budget is not None, "epochs",
                "a number of epochs or a time budget (both are None)", None)
        return self
