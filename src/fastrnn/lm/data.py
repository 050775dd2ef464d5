"""Text as token ids: the :class:`Corpus`, its split into training and validation
(:mod:`fastrnn.lm.split`), the contiguous streams evaluation reads (B streams of
n // B tokens), and :class:`Windows`, which hands streams to the kernels one
window at a time.

Files go through a token store (:mod:`fastrnn.token_store`): the ids stay on disk,
memory-mapped, and everything downstream keeps views of the map (a copy of the ids
in RAM would cost 8 bytes per token as int64).
"""

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from .. import corpus as builtin_corpus
from ..sources import resolve_sources
from ..text import TextError, Vocabulary, get_tokenizer
from ..token_store import META, DamagedStoreError, TokenStore, prepare, remove_store
from .config import TextConfig
from .errors import RunError
from .split import minimum_tokens, split_text

__all__ = ["Corpus", "Windows", "minimum_tokens", "streams"]

_HASH_BLOCK = 1 << 20  # ids converted and hashed at a time (8 MB as int64)


class Corpus:
    """A tokenized text: ``tokenizer``, ``vocab`` and ``ids`` (n,): int64 in memory for
    a text given as a string (:meth:`from_text`, :meth:`builtin`), or the read-only
    memory map of a token store (uint8, uint16 or uint32; :meth:`from_files`,
    :meth:`from_store`), never copied.  ``store``: that :class:`TokenStore`, or None.

    With ``vocab`` given (a saved model's), the text is encoded with it instead of
    building a new one; a token it does not know is an error unless it has ``<unk>``.
    """

    store = None

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
                   encoding="utf-8", vocab=None, max_vocab=None, on_bad_file="error",
                   cache_dir=None, progress=None):
        """A corpus of text files (joined by newlines), through the token store
        :func:`fastrnn.token_store.prepare` builds, or reuses, in ``cache_dir``.

        paths: files, directories and glob patterns
        (:func:`fastrnn.sources.resolve_sources`); the others as ``prepare``'s.  The
        ids and vocabulary are those of :meth:`from_text` on the files' texts joined
        by ``"\n"``.
        """
        files = resolve_sources(paths, encoding)
        store = prepare(files, level, tokenizer, min_count, max_vocab, encoding, cache_dir,
                        on_bad_file, progress, vocab=vocab)
        config = TextConfig(level, tokenizer, min_count, "files", [str(f) for f in files],
                            encoding)
        return cls.from_store(store, config)

    @classmethod
    def from_store(cls, store, config=None):
        """The corpus of a :class:`~fastrnn.token_store.TokenStore`: ``ids`` is its memory
        map.  config: the TextConfig it was prepared with (read from the store if None)."""
        meta = store.meta
        if config is None:
            word_tokenizer = meta["tokenizer"] if meta["level"] == "word" else "words"
            sources = [s["path"] for s in meta["sources"] + meta["skipped"]]
            config = TextConfig(meta["level"], word_tokenizer, meta["min_count"], "files",
                                sources, meta["encoding"])
        corpus = cls.__new__(cls)
        corpus.config = config.validate()
        corpus.tokenizer, corpus.vocab, corpus.ids = store.tokenizer, store.vocab, store.ids
        corpus.store = store
        return corpus

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

    @classmethod
    def of_run(cls, config, recorded, vocab, full_check=False):
        """The corpus a run was trained on, checked to be the text it started with.

        config: the run's TextConfig; recorded: the ``"text"`` section of its
        ``config.json``; vocab: its vocabulary.  A run trained on a token store opens
        it again without reading the text: the cheap check of its sources
        (:meth:`TokenStore.check_sources`; ``full_check``: every source and the ids
        hashed whole), and rebuilds it from the sources if it is gone or damaged.
        Older runs read and encode their text again.  RunError (or StoreError naming
        a changed source) when the text is not the same.
        """
        if "store" not in recorded:
            corpus = cls.from_config(config, vocab)
        else:
            corpus = cls.from_store(_recorded_store(config, recorded["store"], full_check),
                                    config)
            if corpus.vocab.tokens != vocab.tokens:
                raise RunError(f"the text differs from the one the run started with "
                               f"({corpus.describe()}): the vocabulary of its token store "
                               f"{corpus.store.path} is not the run's")
        corpus.check_recorded(recorded)
        return corpus

    def check_recorded(self, recorded):
        """RunError unless the ids are those of a run's ``"text"`` section (hashed as the
        run's store kept them, or as int64 for runs without a store)."""
        dtype = recorded["store"]["dtype"] if "store" in recorded else np.int64
        if self.ids_sha256(dtype) != recorded["sha256"]:
            raise RunError(f"the text differs from the one the run started with "
                           f"({self.describe()})")

    def recorded(self):
        """The ``"text"`` section of a run's ``config.json``: the TextConfig, the number of
        tokens, the fingerprint and, for a corpus of a token store, where it is."""
        text = {**dataclasses.asdict(self.config), "tokens": len(self),
                "sha256": self.fingerprint}
        if self.store is not None:
            meta = self.store.meta
            text["store"] = {"path": str(self.store.path), "dtype": self.store.ids.dtype.str,
                             "max_vocab": meta["max_vocab"],
                             "on_bad_file": meta.get("on_bad_file", "error")}
        return text

    def __len__(self):
        return len(self.ids)

    @property
    def fingerprint(self):
        """SHA-256 of the token ids, as the store keeps them (its ``fingerprint``) or,
        in memory, as int64: tells whether a resumed run sees the same text."""
        return self.ids_sha256(self.store.ids.dtype if self.store else np.int64)

    def ids_sha256(self, dtype):
        """SHA-256 (hex) of the ids as little-endian ``dtype``, converted a block at a
        time (runs recorded before token stores hold it for int64)."""
        dtype = np.dtype(dtype).newbyteorder("<")
        if self.store is not None and dtype == self.store.ids.dtype:
            return self.store.fingerprint  # hashed as prepare wrote it
        digest = hashlib.sha256()
        for start in range(0, len(self.ids), _HASH_BLOCK):
            digest.update(self.ids[start:start + _HASH_BLOCK].astype(dtype).data)
        return digest.hexdigest()

    def describe(self):
        """Where the text came from, for messages."""
        return self.config.describe()

    def split(self, train_config):
        """The :class:`~fastrnn.lm.split.TextSplit` of the text for ``train_config``:
        ranges of ``ids``, no copy (see :func:`fastrnn.lm.split.split_text`)."""
        return split_text(self.ids, train_config, self.config.level)


def _recorded_store(config, recorded, full_check):
    """The token store a run recorded (``recorded``: its ``"text"."store"``), its sources
    checked (StoreError naming a changed one); prepared again from ``config.sources``,
    with the same key, if it is gone or damaged (the caller checks the fingerprint)."""
    path = Path(recorded["path"])
    if (path / META).is_file():
        try:
            store = TokenStore.open(path)
            store.check_sources(full=full_check)
            return store
        except DamagedStoreError:
            remove_store(path)  # prepare would reuse a store whose ids alone are damaged
    return prepare(config.sources, config.level, config.tokenizer, config.min_count,
                   recorded["max_vocab"], config.encoding, path.parent, recorded["on_bad_file"])


def streams(ids, rows):
    """Cut ``ids`` (n,) into ``rows`` contiguous streams: a view (rows, n // rows), the
    tail dropped (of the memory map, for a store's ids: nothing is copied)."""
    length = len(ids) // rows
    return ids[:rows * length].reshape(rows, length)


class Windows:
    """Windows of ``data`` (rows, length) streams of any integer dtype, as the
    C-contiguous int64 arrays the kernels take, written into two buffers of
    rows * ``seq_len`` ids allocated once: the memory of one window, whatever the text.
    """

    def __init__(self, data, seq_len):
        self.data = data
        self._inputs = np.empty(data.shape[0] * seq_len, np.int64)
        self._targets = np.empty(data.shape[0] * seq_len, np.int64)

    def __call__(self, start, stop):
        """(inputs, targets), each (rows, stop - start) int64: ``data[:, start:stop]`` and
        the next tokens ``data[:, start + 1:stop + 1]``; overwritten by the next call."""
        rows, width = self.data.shape[0], stop - start
        inputs = self._inputs[:rows * width].reshape(rows, width)
        targets = self._targets[:rows * width].reshape(rows, width)
        np.copyto(inputs, self.data[:, start:stop])
        np.copyto(targets, self.data[:, start + 1:stop + 1])
        return inputs, targets
