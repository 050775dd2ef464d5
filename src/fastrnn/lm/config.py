"""The three configurations of a run (text, model, training), each with its validator.

Every field has one rule, kept as data (``RULES``): ``validate()`` applies them all
(and the rules that tie fields together), ``check_field(name, value)`` applies one,
which is how the command line checks an option.  A value outside its rule raises
:class:`fastrnn._checks.ArgumentError` (a ValueError) naming the field, what was
expected and what came.
"""

import dataclasses

from .. import _checks
from .._checks import is_int, is_number, require
from ..text import get_tokenizer

__all__ = ["TextConfig", "ModelConfig", "TrainConfig", "CELLS"]

CELLS = ("lstm", "rnn")


def _positive_int(value):
    return is_int(value) and value >= 1


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
    val_fraction: the share of the text, at its end, held out for validation.
    """

    seq_len: int = 64
    batch_size: int = 32
    epochs: int | None = None
    time_budget: float | None = 120.0
    lr: float = 5e-3
    clip: float = 5.0
    val_fraction: float = 0.1
    seed: int = 0

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
    }

    def validate(self):
        super().validate()
        require(self.epochs is not None or self.time_budget is not None, "epochs",
                "a number of epochs or a time budget (both are None)", None)
        return self
