"""A token store: a text encoded once into token ids on disk, memory-mapped for training.

``prepare(inputs, ...)`` reads the files (see :func:`fastrnn.sources.resolve_sources`)
in two streaming passes whose memory does not grow with the text, and writes::

    <cache_dir>/<key>/ids.bin     the token ids, raw little-endian uint8, uint16 or
                                  uint32: the smallest that holds the vocabulary size
    <cache_dir>/<key>/vocab.json  the vocabulary (Vocabulary.to_json)
    <cache_dir>/<key>/store.json  everything else (format_version, dtype, n_tokens,
                                  text settings, sources with size, mtime_ns and hashes,
                                  ids_sha256, created, fastrnn_version), written last

The store is assembled in ``<cache_dir>/.tmp-<key>-<pid>-<random>/`` and renamed into
place only when complete, so a crash never leaves a store that looks complete.
``key`` hashes the source paths, their sizes and modification times and the text
settings: the same input maps to the same store, and ``prepare`` reuses it.

The tokens are those of ``Corpus.from_files(files, level, tokenizer, min_count,
encoding)`` (the files' texts joined by ``"\\n"``), ids and vocabulary alike.

Default cache directory: ``$FASTRNN_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/fastrnn/stores``, else ``~/.cache/fastrnn/stores``; every function
takes ``cache_dir`` to override it.

Memory (peak, beyond the interpreter and numpy): the char level holds one chunk at
a time (its bytes, str, code points and ids) and two 8.9 MB tables of counts per
code point, whatever the text's size.  The word level holds one chunk and room for as many new tokens in
its hash table (~20 MB with the default 256 KiB chunks) plus the distinct tokens,
one entry per distinct word (the str, its two hashes, the table's slack: see
docs/tuning.md#token-store for the measured bytes); then the vocabulary holds the kept ones again (a
dict, ~100 bytes each).  With ``max_vocab`` (the 'words' tokenizer) the words are
counted instead in a table whose size is set by ``max_vocab``, not by the number of
distinct words, at the price of tokenizing the text twice
(:class:`_FrequentWordPasses`, docs/tuning.md#bounded-word-counter).
"""

import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import warnings
from pathlib import Path

import numpy as np

from . import __version__
from .kernels.tokens import CODE_POINTS, FrequentWords, WordsTable, count, lookup
from .sources import (SkippedFileWarning, file_identity, file_sha256, read_chunks,
                      resolve_sources, sampled_hash)
from .text import UNKNOWN, TextError, Tokenizer, Vocabulary, get_tokenizer

__all__ = ["StoreError", "DamagedStoreError", "TokenStore", "prepare", "default_cache_dir", "list_stores",
           "remove_store", "size_text", "FORMAT_VERSION"]

FORMAT_VERSION = 1
IDS, VOCAB, META = "ids.bin", "vocab.json", "store.json"
_PROVISIONAL = "provisional.u32"
_TMP_PREFIX = ".tmp-"
_STORE_FILES = frozenset((IDS, VOCAB, META, _PROVISIONAL))
# Chunk sizes: the char level turns a chunk into code points and ids (~15 bytes per
# byte of text); the word level keeps room for a whole chunk of new tokens in its
# hash table (~60 bytes per byte of text), hence smaller chunks.
CHAR_CHUNK_BYTES = 1 << 22
WORD_CHUNK_BYTES = 1 << 18
_REMAP_IDS = 1 << 22  # provisional ids remapped per step in the word level's second pass
# A "word" longer than this (characters) is an error: word level holds one whole.
MAX_WORD_CHARS = 1 << 20
_NOT_IN_WORD = re.compile(r"[^\w']")  # ends a 'words' token: a safe place to cut
# With max_vocab, the word level counts in a table of this many slots per word kept
# (at least MIN_COUNTER_SLOTS): a word more frequent than 2/capacity of the tokens
# is sure to be counted (docs/tuning.md#bounded-word-counter).
COUNTER_SLOTS_PER_WORD = 4
MIN_COUNTER_SLOTS = 1 << 16


class StoreError(TextError):
    """A token store that cannot be used: damaged, incomplete, or its sources changed."""


class DamagedStoreError(StoreError):
    """A store whose own files are incomplete, damaged or of another format (its
    sources may be fine): building it again repairs it."""


def default_cache_dir(cache_dir=None):
    """``cache_dir`` if given, else ``$FASTRNN_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/fastrnn/stores``, else ``~/.cache/fastrnn/stores`` (a Path)."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("FASTRNN_CACHE_DIR"):
        return Path(os.environ["FASTRNN_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "fastrnn" / "stores"


def _id_dtype(vocab_size):
    for dtype in (np.uint8, np.uint16):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype).newbyteorder("<")
    return np.dtype("<u4")


def _settings(level, tokenizer, min_count, max_vocab, encoding):
    """The text settings as stored: the effective tokenizer name and min_count
    (only the 'words' tokenizer maps rare words to <unk>, as in TextConfig)."""
    name = get_tokenizer(level, tokenizer).name
    if not (isinstance(min_count, (int, np.integer)) and min_count >= 1):
        raise ValueError(f"min_count: expected an integer >= 1, got {min_count!r}")
    if max_vocab is not None:
        if name != "words":
            raise ValueError(f"max_vocab: only with level='word' and tokenizer='words' (the "
                             f"other tokenizers have no <unk>), got it with {name!r}")
        if not (isinstance(max_vocab, (int, np.integer)) and max_vocab >= 2):
            raise ValueError(f"max_vocab: expected an integer >= 2 (<unk> and a word), "
                             f"got {max_vocab!r}")
    return {"level": level, "tokenizer": name,
            "min_count": int(min_count) if name == "words" else 1,
            "max_vocab": None if max_vocab is None else int(max_vocab), "encoding": encoding}


def _vocabulary(tokens, counts, settings, fixed, paths):
    """The store's vocabulary for the distinct ``tokens`` and their ``counts``: built
    (:func:`_build_vocabulary`), or ``fixed`` (a trained model's) when given, which
    must hold every token that occurs unless it has ``<unk>`` (TextError otherwise)."""
    if fixed is None:
        return _build_vocabulary(tokens, counts, settings["min_count"], settings["max_vocab"])
    if fixed.unknown is None:
        for token, n in zip(tokens, counts):
            if n > 0 and token not in fixed.index:
                raise TextError(f"{', '.join(map(str, paths))}: the token {token!r} is not in "
                                f"the model's vocabulary ({len(fixed)} tokens, no <unk>)")
    return fixed


def _build_vocabulary(tokens, counts, min_count, max_vocab, others=0):
    """:meth:`Vocabulary.build`'s vocabulary from distinct ``tokens`` and their
    ``counts`` (a token with count 0 is absent), at most ``max_vocab`` tokens with
    ``<unk>``: the most frequent, ties in lexicographic order, as the vocabulary orders
    them; ``others``: occurrences of tokens not in ``tokens`` (which need ``<unk>``)."""
    counts = np.asarray(counts, np.int64)
    keep = counts >= min_count
    n_kept = int(np.count_nonzero(keep))
    has_unknown = n_kept < np.count_nonzero(counts) or others > 0
    if max_vocab is not None and n_kept + has_unknown > max_vocab:
        # Only words as frequent as the (max_vocab - 1)-th are sorted, ties included.
        least = np.partition(counts[keep], -(max_vocab - 1))[-(max_vocab - 1)]
        keep &= counts >= least
        n_kept, has_unknown = max_vocab - 1, True
    kept = sorted((-int(counts[i]), tokens[i]) for i in np.flatnonzero(keep).tolist())
    return Vocabulary(([UNKNOWN] if has_unknown else []) + [t for _, t in kept[:n_kept]],
                      has_unknown)


class _DictTable(dict):
    """Token -> provisional id in order of first appearance, for any tokenizer (the
    compiled :class:`WordsTable` does the same for 'words', faster)."""

    def __init__(self, tokenizer):
        super().__init__()
        self.split = tokenizer.split

    def __missing__(self, token):
        value = self[token] = len(self)
        return value

    @property
    def tokens(self):
        return list(self)

    def ids(self, text, codes=None):
        """Provisional ids (n_tokens,) uint32 of the tokens of ``text``."""
        tokens = self.split(text)
        return np.fromiter(map(self.__getitem__, tokens), np.uint32, len(tokens))


def _segments(pieces, head_end, path):
    """Cut a stream of str ``pieces`` of the file ``path`` at the last space or newline
    of what has come so far, so that no token spans two segments; yields the segments,
    the remainder last (possibly ``""``).  ``head_end`` (0 or 1): whether that separator
    ends the segment (the 'words' tokenizer, where a newline is a token) or is dropped
    with the split it makes (the 'notebook' tokenizer, ``re.split(" |\\n")``).

    A line with no space keeps the segment growing: the 'words' tokenizer cuts it
    after its last character that is neither ``\\w`` nor an apostrophe (which ends a
    token), and a run of more than MAX_WORD_CHARS characters with no such cut is a
    TextError naming the file and the run's character offset, so that memory stays
    bounded."""
    carry, read = "", 0
    for piece in pieces:
        text = carry + piece
        read += len(piece)
        cut = max(text.rfind(" "), text.rfind("\n"))
        if cut < 0 and head_end:
            last = _NOT_IN_WORD.search(text[::-1])  # the last such character
            cut = -1 if last is None else len(text) - 1 - last.start()
        if cut < 0:
            if len(text) > MAX_WORD_CHARS:
                kind = ("letters, digits or apostrophes" if head_end
                        else "characters without a space or line break")
                raise TextError(f"{path}: more than {MAX_WORD_CHARS:,} {kind} in a row from "
                                f"character offset {read - len(text)} on: not text that a "
                                "word-level model can use (use --level char)")
            carry = text
            continue
        yield text[:cut + head_end]
        carry = text[cut + 1:]
    yield carry


def _code_points(text):
    """The code points of ``text``, (n,): uint8 for ASCII text, uint16 when all are in
    the Basic Multilingual Plane, else uint32 (encoding to UTF-16 is much faster than
    to UTF-32, docs/tuning.md#token-store, and it has one unit per character exactly when
    no pair is needed)."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), np.uint8)
    units = text.encode("utf-16-le")
    if len(units) == 2 * len(text):
        return np.frombuffer(units, np.uint16)
    return np.frombuffer(text.encode("utf-32-le"), np.uint32)


class _Writer:
    """Appends ids to ``ids.bin`` and hashes them as they go."""

    def __init__(self, path, dtype):
        self.stream, self.dtype = open(path, "wb"), dtype
        self.digest, self.count = hashlib.sha256(), 0

    def write(self, ids):
        ids = np.ascontiguousarray(ids, dtype=self.dtype)
        self.stream.write(memoryview(ids).cast("B"))
        self.digest.update(memoryview(ids).cast("B"))
        self.count += len(ids)


class _CharPasses:
    """Char level.  Pass 1 counts the code points of each file; pass 2 reads the
    files again and maps code points to ids through a lookup table, vectorised."""

    counted = None  # no bounded counter (see _FrequentWordPasses)

    def __init__(self, read, settings, work, fixed):
        self.read, self.work, self.settings, self.fixed = read, work, settings, fixed
        self.counts = np.zeros(CODE_POINTS, np.int64)  # 8.9 MB

    def mark(self):
        return None

    def rollback(self, mark):
        """Nothing to undo: a file's counts are added once it has been read whole."""

    def consume(self, path, on_bytes, joined):
        counts = np.zeros(CODE_POINTS, np.int64)
        counts[ord("\n")] = joined  # the newline joining the files
        for text in self.read(path, "count", on_bytes):
            count(_code_points(text), counts)
        self.counts += counts

    def encode(self, paths):
        """(vocabulary, _Writer of ``ids.bin``) after pass 2 over ``paths``."""
        present = np.flatnonzero(self.counts)
        vocab = _vocabulary([chr(c) for c in present], self.counts[present], self.settings,
                            self.fixed, paths)
        dtype = _id_dtype(len(vocab))
        table = np.zeros(CODE_POINTS, dtype)
        table[[ord(t) for t in vocab.tokens]] = np.arange(len(vocab))
        writer = _Writer(self.work / IDS, dtype)
        with writer.stream:
            for i, path in enumerate(paths):
                if i:
                    writer.write(table[[ord("\n")]])
                for text in self.read(path, "encode"):
                    codes = _code_points(text)
                    writer.write(lookup(codes, table, np.empty(len(codes), dtype)))
        return vocab, writer


class _WordPasses:
    """Word level.  Pass 1 tokenizes each file once, giving each distinct token a
    provisional id in order of first appearance, written to a scratch file.  Pass 2
    counts and remaps those ids to the vocabulary's, reading the scratch file (not
    the text) twice: tokenizing is the slow part, so it is done once."""

    counted = None

    def __init__(self, read, settings, work, fixed):
        self.read, self.work, self.settings, self.fixed = read, work, settings, fixed
        self.tokenizer = get_tokenizer(settings["level"], settings["tokenizer"])
        self.words = self.tokenizer.name == "words"
        self.provisional = WordsTable() if self.words else _DictTable(self.tokenizer)
        self.scratch = open(work / _PROVISIONAL, "w+b")

    def mark(self):
        return self.scratch.tell()

    def rollback(self, mark):
        """Forget a file that failed half-way: its ids go; tokens it alone brought stay
        in the table with a count of 0, which leaves them out of the vocabulary."""
        self.scratch.seek(mark)
        self.scratch.truncate()

    def _take(self, text):
        """Pass 1 on a piece of text that ends between tokens."""
        codes = _code_points(text) if self.words else None
        self.scratch.write(memoryview(self.provisional.ids(text, codes)).cast("B"))

    def consume(self, path, on_bytes, joined):
        if joined and self.words:
            self._take("\n")  # files are joined by "\n": a token, except for 'notebook'
        for segment in _segments(self.read(path, "count", on_bytes), int(self.words), path):
            self._take(segment)

    def _blocks(self):
        """The scratch file's provisional ids, (<= _REMAP_IDS,) uint32 blocks."""
        self.scratch.flush()
        self.scratch.seek(0)
        while block := self.scratch.read(_REMAP_IDS * 4):
            yield np.frombuffer(block, np.uint32)

    def encode(self, paths):
        """(vocabulary, _Writer of ``ids.bin``); ``paths`` are not read again."""
        with self.scratch:
            n_distinct = len(self.provisional)
            counts = np.zeros(n_distinct, np.int64)
            for ids in self._blocks():
                count(ids, counts)
            tokens = self.provisional.tokens
            vocab = _vocabulary(tokens, counts, self.settings, self.fixed, paths)
            index = vocab.index.get
            table = np.array([index(token, vocab.unknown or 0) for token in tokens],
                             _id_dtype(len(vocab)))
            del tokens
            self.provisional = None  # the distinct words are in the vocabulary now
            writer = self._remap(table)
        (self.work / _PROVISIONAL).unlink()
        return vocab, writer

    def _remap(self, table):
        """A _Writer of ``ids.bin``: the scratch file's ids through ``table``."""
        writer = _Writer(self.work / IDS, table.dtype)
        with writer.stream:
            for ids in self._blocks():
                writer.write(lookup(ids, table, np.empty(len(ids), table.dtype)))
        return writer


class _FrequentWordPasses(_WordPasses):
    """Word level with ``max_vocab`` (the 'words' tokenizer), in memory bounded by
    ``max_vocab`` whatever the number of distinct words.  Pass 1 tokenizes the files
    and counts their tokens approximately in a :class:`FrequentWords` table of
    ``capacity`` slots (COUNTER_SLOTS_PER_WORD per word kept, at least
    MIN_COUNTER_SLOTS), whose tokens are the candidates.  Pass 2 tokenizes the files
    again and writes each token's slot in that table (``capacity`` for a token not in
    it) to the scratch file; their exact counts choose the vocabulary among the
    candidates (as :func:`_build_vocabulary`), and the scratch file is remapped.

    A token not in the table occurred at most ``threshold`` times (<= 2 n_tokens /
    capacity), so the vocabulary is the exact one when
    such a token could not have been kept: ``counted["vocab_exact"]``, recorded in
    ``store.json`` as ``word_counter``."""

    def __init__(self, read, settings, work, fixed):
        self.read, self.work, self.settings, self.fixed = read, work, settings, fixed
        self.words = True
        self.counter = FrequentWords(max(COUNTER_SLOTS_PER_WORD * settings["max_vocab"],
                                         MIN_COUNTER_SLOTS))
        self.scratch = open(work / _PROVISIONAL, "w+b")

    def rollback(self, mark):
        """A file that failed half-way was counted in pass 1 (which can leave a word out
        of the table, but not break ``threshold``); pass 2 does not read it."""

    def _take(self, text):
        self.counter.add(_code_points(text))

    def _write_slots(self, text):
        slots = self.counter.ids(text, _code_points(text), self.counter.capacity)
        self.scratch.write(memoryview(slots).cast("B"))

    def encode(self, paths):
        """(vocabulary, _Writer of ``ids.bin``) after pass 2 over ``paths``."""
        capacity = self.counter.capacity
        with self.scratch:
            for i, path in enumerate(paths):
                if i:
                    self._write_slots("\n")
                for segment in _segments(self.read(path, "encode"), 1, path):
                    self._write_slots(segment)
            counts = np.zeros(capacity + 1, np.int64)
            for ids in self._blocks():
                count(ids, counts)
            tokens, others = self.counter.tokens, int(counts[capacity])
            counts = counts[:len(tokens)]
            max_vocab, min_count = self.settings["max_vocab"], self.settings["min_count"]
            vocab = _build_vocabulary(tokens, counts, min_count, max_vocab, others)
            n_kept = len(vocab) - (vocab.unknown is not None)
            least_kept = np.sort(counts)[::-1][n_kept - 1] if n_kept else 0
            threshold = self.counter.threshold
            exact = (others == 0 or threshold < min_count
                     or (len(vocab) == max_vocab and least_kept > threshold))
            self.counted = {"capacity": capacity, "threshold": threshold,
                            "vocab_exact": bool(exact)}
            index, unknown = vocab.index.get, vocab.unknown or 0
            table = np.array([index(token, unknown) for token in tokens] + [unknown],
                             _id_dtype(len(vocab)))
            self.counter = None
            writer = self._remap(table)
        (self.work / _PROVISIONAL).unlink()
        return vocab, writer


def _no_text_error(sources):
    names = ", ".join(s["path"] for s in sources)
    if all(s["size"] == 0 for s in sources):
        return TextError(f"{names}: no text to train on (the "
                         f"{'file is' if len(sources) == 1 else 'files are'} empty)")
    return TextError(f"{names}: no text to train on (no word in it, only spaces)")


def _build(files, settings, on_bad_file, chunk_bytes, progress, work, vocab):
    """Both passes over ``files`` into the directory ``work``; returns the metadata."""
    level = settings["level"]
    chunk_bytes = chunk_bytes or (CHAR_CHUNK_BYTES if level == "char" else WORD_CHUNK_BYTES)
    total = sum(file_identity(f)[0] for f in files)
    done = {"count": 0, "encode": 0}

    def read(path, phase, on_bytes=None):
        def seen(raw):
            if on_bytes is not None:
                on_bytes(raw)
            done[phase] += len(raw)
            if progress is not None:
                progress(phase, done[phase], total)
        return read_chunks(path, settings["encoding"], chunk_bytes, seen)

    if level == "char":
        passes = _CharPasses(read, settings, work, vocab)
    elif settings["max_vocab"] is not None and vocab is None:
        passes = _FrequentWordPasses(read, settings, work, vocab)
    else:
        passes = _WordPasses(read, settings, work, vocab)
    sources, skipped = [], []
    for path in files:
        size, mtime_ns = file_identity(path)
        digest, mark = hashlib.sha256(), passes.mark()
        try:
            passes.consume(path, digest.update, joined=bool(sources))
        except TextError as err:
            if on_bad_file == "error":
                raise
            passes.rollback(mark)
            skipped.append({"path": str(path), "reason": str(err)})
            warnings.warn(f"skipped: {err}", SkippedFileWarning, stacklevel=3)
            continue
        sources.append({"path": str(path), "size": size, "mtime_ns": mtime_ns,
                        "sampled_sha256": sampled_hash(path, size), "sha256": digest.hexdigest()})
    if not sources:
        raise TextError(f"{', '.join(map(str, files))}: no text to train on (every file was "
                        "skipped as not text)")
    if all(s["size"] == 0 for s in sources):
        raise _no_text_error(sources)
    vocab, writer = passes.encode([s["path"] for s in sources])
    if writer.count == 0:
        raise _no_text_error(sources)
    for source in sources:
        if file_identity(source["path"]) != (source["size"], source["mtime_ns"]):
            raise TextError(f"{source['path']}: changed while the token store was being "
                            "prepared; prepare it again")
    (work / VOCAB).write_text(vocab.to_json(), encoding="utf-8")
    meta = {"format_version": FORMAT_VERSION, "dtype": writer.dtype.str, "n_tokens": writer.count,
            **settings, "vocab_size": len(vocab), "ids_sha256": writer.digest.hexdigest(),
            "on_bad_file": on_bad_file, "sources": sources, "skipped": skipped,
            "word_counter": passes.counted,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "fastrnn_version": __version__}
    # Written last: a directory without store.json is not a store.
    (work / META).write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
    return meta


def _key(files, settings, on_bad_file):
    """The store's directory name: a hash of the sources (paths, sizes, modification
    times) and of the settings that decide the tokens."""
    described = [FORMAT_VERSION, [(str(f), *file_identity(f)) for f in files],
                 sorted(settings.items()), on_bad_file]
    return hashlib.sha256(json.dumps(described).encode("utf-8")).hexdigest()[:24]


def prepare(inputs, level="char", tokenizer="words", min_count=2, max_vocab=None,
            encoding="utf-8", cache_dir=None, on_bad_file="error", progress=None,
            chunk_bytes=None, vocab=None):
    """The token store of the text of ``inputs``, built if it is not in the cache.

    inputs: files, directories and glob patterns (:func:`fastrnn.sources.resolve_sources`);
    level, tokenizer, min_count, encoding: as ``Corpus.from_files`` (which gives the same
    ids and vocabulary); max_vocab: at most this many tokens, ``<unk>`` included (the
    'words' tokenizer only): the most frequent, ties in lexicographic order, counted
    in memory bounded by max_vocab (exactly unless ``store.meta["word_counter"]``
    says otherwise: docs/tuning.md#bounded-word-counter);
    cache_dir: see :func:`default_cache_dir`; on_bad_file: a file that is not text is
    an error ('error') or left out with a SkippedFileWarning ('skip'); progress:
    ``progress(phase, done, total)``, called per chunk, with ``done`` and ``total``
    bytes of text: phase 'count' (the first pass), then at char level and at word
    level with max_vocab 'encode' (the second; otherwise the word level's reads ids,
    not text, and takes a few seconds per GB);
    chunk_bytes: bytes of text read at a time (memory); vocab: encode with this
    :class:`~fastrnn.text.Vocabulary` (a trained model's, to score it on another text)
    instead of building one: a token it lacks is its ``<unk>``, or a TextError
    without one (min_count and max_vocab are then unused).

    A store already in the cache for the same sources (paths, sizes, modification
    times) and settings is reused after a cheap check of its sources; a damaged one
    is rebuilt.  Raises TextError for a missing input, a file that is not text, no
    text at all, or at word level a "word" of more than MAX_WORD_CHARS characters
    (:func:`_segments`).
    """
    settings = _settings(level, tokenizer, min_count, max_vocab, encoding)
    if vocab is not None:  # another vocabulary, other ids: another store
        settings["vocab_sha256"] = hashlib.sha256(vocab.to_json().encode("utf-8")).hexdigest()
    if on_bad_file not in ("error", "skip"):
        raise ValueError(f"on_bad_file: expected 'error' or 'skip', got {on_bad_file!r}")
    files = resolve_sources(inputs, encoding)
    cache = default_cache_dir(cache_dir)
    final = cache / _key(files, settings, on_bad_file)
    if final.exists():
        try:
            store = TokenStore.open(final)
            store.check_sources()
            return store
        except StoreError:
            remove_store(final)  # damaged, or a source edited in place: build it again
    cache.mkdir(parents=True, exist_ok=True)
    work = cache / f"{_TMP_PREFIX}{final.name}-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir()
    try:
        _build(files, settings, on_bad_file, chunk_bytes, progress, work, vocab)
        try:
            os.rename(work, final)
        except OSError:
            if not (final / META).exists():
                raise
            # Another process prepared the same store meanwhile: use theirs.
    finally:
        if work.exists():
            shutil.rmtree(work)
    return TokenStore.open(final)


def size_text(nbytes):
    """A size in bytes for people: "812 B", "3.4 MB", "1.2 GB" (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000


class TokenStore:
    """A prepared text, memory-mapped: open one with :meth:`open` (or get it from
    :func:`prepare`).

    ids: read-only ``np.memmap`` (n_tokens,) of dtype uint8, uint16 or uint32;
    vocab: the :class:`fastrnn.text.Vocabulary`; tokenizer: its ``Tokenizer``;
    fingerprint: SHA-256 (hex) of ``ids.bin`` (the ids as stored, not as int64);
    path: the store's directory; nbytes: its size on disk; meta: ``store.json``.
    """

    def __init__(self, path, meta, vocab, ids):
        self.path, self.meta, self.vocab, self.ids = path, meta, vocab, ids
        self.tokenizer = Tokenizer(meta["tokenizer"])
        self.fingerprint = meta["ids_sha256"]
        self.nbytes = sum(f.stat().st_size for f in path.iterdir())

    @classmethod
    def open(cls, path):
        """The store in the directory ``path``.  Raises DamagedStoreError for a directory
        that is not a complete store, or whose files are damaged or truncated."""
        path = Path(path)
        again = "; run `fastrnn prepare` again (it rebuilds the store)"
        if not (path / META).is_file():
            raise DamagedStoreError(f"{path}: not a token store (no {META}; an interrupted "
                                    f"prepare leaves none){again}")
        try:
            meta = json.loads((path / META).read_text(encoding="utf-8"))
            if meta.get("format_version") != FORMAT_VERSION:
                raise DamagedStoreError(f"{path}: token store format "
                                        f"{meta.get('format_version')!r}, this fastrnn reads "
                                        f"format {FORMAT_VERSION}{again}")
            vocab = Vocabulary.from_json((path / VOCAB).read_text(encoding="utf-8"))
            dtype, n_tokens = np.dtype(meta["dtype"]), int(meta["n_tokens"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DamagedStoreError(f"{path}: damaged token store ({type(err).__name__}: "
                                    f"{err}){again}") from None
        actual = (path / IDS).stat().st_size if (path / IDS).is_file() else 0
        if actual != n_tokens * dtype.itemsize or len(vocab) != meta.get("vocab_size"):
            raise DamagedStoreError(f"{path / IDS}: {actual} bytes, expected {n_tokens} tokens "
                                    f"x {dtype.itemsize} bytes = {n_tokens * dtype.itemsize} (a "
                                    f"truncated or damaged token store){again}")
        ids = np.memmap(path / IDS, dtype=dtype, mode="r", shape=(n_tokens,))
        return cls(path, meta, vocab, ids)

    def __len__(self):
        return len(self.ids)

    def describe(self):
        """One line for the user: where the store is, its size, what it holds."""
        sources = self.meta["sources"]
        text = sum(s["size"] for s in sources)
        return (f"token store {self.path}: {size_text(self.nbytes)} on disk, {len(self)} "
                f"{self.meta['level']} tokens ({self.ids.dtype.name}), vocabulary of "
                f"{len(self.vocab)}, from {len(sources)} file{'s' * (len(sources) != 1)} "
                f"({size_text(text)}){self._counter_note()}")

    def _counter_note(self):
        """What the user should know when max_vocab's bounded counter may have changed
        the vocabulary (docs/tuning.md#bounded-word-counter); "" otherwise."""
        counter = self.meta.get("word_counter")
        if not counter or counter["vocab_exact"]:
            return ""
        return (f"; the last words of the vocabulary may differ from exact counting among "
                f"words seen <= {counter['threshold']:,} times (counted in "
                f"{counter['capacity']:,} slots)")

    def check_sources(self, full=False):
        """Raise StoreError naming the first source file that changed since the store
        was prepared.  Cheap by default: size, modification time and the hash of 16
        sampled blocks (a file whose time changed is hashed whole, so touching a file
        is not a change).  ``full``: hash every source whole, and ``ids.bin`` too."""
        for source in self.meta["sources"]:
            path = source["path"]
            try:
                size, mtime_ns = file_identity(path)
            except OSError as err:
                raise StoreError(f"{path}: a source of the token store {self.path} cannot be "
                                 f"read any more ({err.strerror})") from None
            changed = None
            if size != source["size"]:
                changed = f"{source['size']} bytes then, {size} now"
            elif full or mtime_ns != source["mtime_ns"]:
                if file_sha256(path) != source["sha256"]:
                    changed = "its contents differ"
            elif sampled_hash(path, size) != source["sampled_sha256"]:
                changed = "its contents differ"
            if changed:
                raise StoreError(f"{path}: changed since the token store {self.path} was "
                                 f"prepared ({changed}); prepare it again to train on the new "
                                 "text")
        if full and file_sha256(self.path / IDS) != self.fingerprint:
            raise DamagedStoreError(
                f"{self.path / IDS}: its ids do not match their recorded hash (a damaged token "
                f"store); remove it (`fastrnn stores --remove {self.path.name}`) and prepare it "
                "again")


def _tree_bytes(path):
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def list_stores(cache_dir=None):
    """The stores in ``cache_dir`` (:func:`default_cache_dir`), sorted by path: a list of
    dicts with ``path``, ``key``, ``nbytes`` (on disk), ``status`` ('ok', 'stale': a
    source changed or is gone, 'damaged', or 'incomplete': left by an interrupted
    prepare), ``problem`` (a message, or None), and from ``store.json`` when it is
    readable ``sources`` (paths), ``level``, ``tokenizer``, ``n_tokens``, ``created`` and
    ``given_vocab`` (encoded with a model's vocabulary, see :func:`prepare`)."""
    cache = default_cache_dir(cache_dir)
    if not cache.is_dir():
        return []
    stores = []
    for path in sorted(p for p in cache.iterdir() if p.is_dir()):
        entry = {"path": path, "key": path.name, "nbytes": _tree_bytes(path), "status": "ok",
                 "problem": None}
        if path.name.startswith(_TMP_PREFIX):
            entry.update(status="incomplete", problem="left by an interrupted prepare")
            stores.append(entry)
            continue
        try:
            store = TokenStore.open(path)
        except StoreError as err:
            entry.update(status="damaged", problem=str(err))
            stores.append(entry)
            continue
        entry.update(sources=[s["path"] for s in store.meta["sources"]],
                     level=store.meta["level"], tokenizer=store.meta["tokenizer"],
                     n_tokens=len(store), created=store.meta["created"],
                     given_vocab="vocab_sha256" in store.meta)
        for source in store.meta["sources"]:
            try:
                same = file_identity(source["path"]) == (source["size"], source["mtime_ns"])
            except OSError:
                same = False
            if not same:
                entry.update(status="stale", problem=f"{source['path']} changed or is gone")
                break
        stores.append(entry)
    return stores


def remove_store(path_or_key, cache_dir=None):
    """Delete a store (or an incomplete one) given its directory or its key in
    ``cache_dir``; returns the bytes freed.  Refuses (StoreError) a directory holding
    anything but a store's files, so that a wrong path cannot delete other data."""
    path = Path(path_or_key)
    if not path.is_dir() and os.sep not in str(path_or_key):
        path = default_cache_dir(cache_dir) / str(path_or_key)
    if not path.is_dir():
        raise StoreError(f"{path_or_key}: no such token store")
    names = {f.name for f in path.iterdir()}
    if not names <= _STORE_FILES or not (META in names or path.name.startswith(_TMP_PREFIX)
                                         or IDS in names):
        held = ", ".join(sorted(names)) or "nothing"
        raise StoreError(f"{path}: not a token store (it holds {held}); not removed")
    freed = _tree_bytes(path)
    for name in names:
        (path / name).unlink()
    path.rmdir()
    return freed
