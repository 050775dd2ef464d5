"""Text as token ids: the :class:`Corpus`, its split into training and validation, and
the contiguous streams training and evaluation read (B streams of n // B tokens)."""

import hashlib
import math
import os

import numpy as np

from .. import corpus as builtin_corpus
from ..text import TextError, Vocabulary, get_tokenizer, read_text
from .config import TextConfig
from .errors import RunError

__all__ = ["Corpus", "minimum_tokens", "streams"]


class Corpus:
    """A tokenized text: ``tokenizer``, ``vocab`` and ``ids`` (n,) int64.

    With ``vocab`` given (a saved model's), the text is encoded with it instead of
    building a new one; a token it does not know is an error unless it has ``<unk>``.
    """

    def __init__(self, text, config=None, vocab=None):
        self.config = (config or TextConfig()).validate()
        self.tokenizer = get_tokenizer(self.config.level, self.config.tokenizer)
        tokens = self.tokenizer.split(text)
        if vocab is None:
            vocab = Vocabulary.build(tokens, self.config.effective_min_count)
        self.vocab = vocab
        try:
            self.ids = vocab.encode(tokens)
        except KeyError as err:
            raise TextError(f"text: the token {err.args[0]!r} is not in the saved vocabulary "
                            "(the text changed since the run started)") from None

    @classmethod
    def from_text(cls, text, level="char", tokenizer="words", min_count=2, vocab=None):
        """A corpus of the string ``text``."""
        return cls(text, TextConfig(level, tokenizer, min_count), vocab)

    @classmethod
    def from_files(cls, paths, level="char", tokenizer="words", min_count=2,
                   encoding="utf-8", vocab=None):
        """A corpus of text files (joined by newlines); see :func:`fastrnn.text.read_text`."""
        paths = [os.path.abspath(p) for p in paths]
        text = read_text(paths, encoding)
        return cls(text, TextConfig(level, tokenizer, min_count, "files", paths, encoding), vocab)

    @classmethod
    def builtin(cls, level="char", tokenizer="words", min_count=2, vocab=None):
        """The built-in English corpus (:func:`fastrnn.corpus.stdlib_docstrings`)."""
        return cls(builtin_corpus.stdlib_docstrings(),
                   TextConfig(level, tokenizer, min_count, "builtin"), vocab)

    @classmethod
    def from_config(cls, config, vocab=None):
        """The corpus a run was trained on, read again from its sources."""
        if config.origin == "files":
            return cls.from_files(config.sources, config.level, config.tokenizer,
                                  config.min_count, config.encoding, vocab)
        if config.origin == "builtin":
            return cls.builtin(config.level, config.tokenizer, config.min_count, vocab)
        raise RunError("the run was trained on a text given in Python, which cannot be read "
                       "again: pass the same Corpus")

    def __len__(self):
        return len(self.ids)

    @property
    def fingerprint(self):
        """SHA-256 of the token ids: tells whether a resumed run sees the same text."""
        return hashlib.sha256(self.ids.tobytes()).hexdigest()

    def describe(self):
        """Where the text came from, for messages."""
        return self.config.describe()

    def split(self, train_config):
        """(train ids, validation ids): the validation ids are the tail of the text.

        Training needs one window of ``seq_len + 1`` tokens (inputs and the next
        tokens) in each of ``batch_size`` streams; validation at least one window
        of ``seq_len + 1`` tokens.  Raises TextError saying how many tokens that is.
        """
        S, B, fraction = train_config.seq_len, train_config.batch_size, train_config.val_fraction
        n = len(self.ids)
        needed = minimum_tokens(S, B, fraction)
        if n < needed:
            raise TextError(
                f"text too short: {n} {self.config.level} tokens, need at least {needed} "
                f"(one window of seq_len + 1 = {S + 1} tokens in each of batch_size = {B} "
                f"streams for training, plus a validation tail of {fraction:g} of the text, "
                f"at least {S + 1} tokens); use a longer text or smaller --seq-len/--batch-size")
        n_val = _validation_size(n, S, fraction)
        return self.ids[:n - n_val], self.ids[n - n_val:]


def _validation_size(n_tokens, seq_len, val_fraction):
    return max(int(n_tokens * val_fraction), seq_len + 1)


def minimum_tokens(seq_len, batch_size, val_fraction):
    """The fewest tokens with one training window per stream and one validation window."""
    train_needed = batch_size * (seq_len + 1)
    n = max(train_needed + seq_len + 1, math.ceil(train_needed / (1.0 - val_fraction)))
    while n - _validation_size(n, seq_len, val_fraction) < train_needed:
        n += 1
    return n


def streams(ids, rows):
    """Cut ``ids`` (n,) into ``rows`` contiguous streams: (rows, n // rows), the tail dropped."""
    length = len(ids) // rows
    return np.ascontiguousarray(ids[:rows * length].reshape(rows, length))
