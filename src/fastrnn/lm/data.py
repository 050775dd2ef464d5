"""Text as token ids: the :class:`Corpus`, its split into training and validation
(:mod:`fastrnn.lm.split`), and contiguous streams (B streams of n // B tokens)."""

import hashlib
import os

import numpy as np

from .. import corpus as builtin_corpus
from ..text import TextError, Vocabulary, get_tokenizer, read_text
from .config import TextConfig
from .errors import RunError
from .split import minimum_tokens, split_text

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
        """The :class:`~fastrnn.lm.split.TextSplit` of the text for ``train_config``:
        ranges of ``ids``, no copy (see :func:`fastrnn.lm.split.split_text`)."""
        return split_text(self.ids, train_config, self.config.level)


def streams(ids, rows):
    """Cut ``ids`` (n,) into ``rows`` contiguous streams: (rows, n // rows), the tail dropped."""
    length = len(ids) // rows
    return np.ascontiguousarray(ids[:rows * length].reshape(rows, length))
