"""Compiled loops of the token store (:mod:`fastrnn.token_store`), and the word table
built on them (the one Python class of this package: it owns the arrays its kernel fills).

numpy's ``bincount`` and fancy indexing first copy the codes to int64 (8 bytes each);
:func:`count` and :func:`lookup` do not (docs/tuning.md#token-store).  :class:`WordsTable`
tokenizes with the ``words`` tokenizer's regular expression, compiled by hand, and
gives each distinct token a provisional id without making a Python string of it.
"""

import functools
import re

import numpy as np

from ._jit import kernel

CODE_POINTS = 0x110000
_APOSTROPHE, _NEWLINE = ord("'"), ord("\n")
# FNV-1a (64 bits) names a token; a second, polynomial hash is checked on every
# lookup, so two tokens are confused only if both 64-bit hashes collide.
_FNV_OFFSET = -3750763034362895579  # 14695981039346656037 as an int64
_FNV_PRIME = 1099511628211


@kernel(nogil=True)
def count(codes, counts):
    """counts[c] += 1 for each c in codes (every c < len(counts))."""
    for c in codes:
        counts[c] += 1


@kernel(nogil=True)
def lookup(codes, table, out):
    """out[i] = table[codes[i]]; returns out."""
    for i in range(codes.shape[0]):
        out[i] = table[codes[i]]
    return out


@functools.lru_cache(maxsize=1)
def character_classes():
    """(is_word, is_space): bool (0x110000,) tables of the code points that ``\\w`` and
    ``\\s`` match in a str pattern, found by the ``re`` module itself."""
    every = "".join(map(chr, range(CODE_POINTS)))
    tables = []
    for pattern in (r"\w", r"\s"):
        table = np.zeros(CODE_POINTS, np.bool_)
        table[[m.start() for m in re.finditer(pattern, every)]] = True
        tables.append(table)
    return tuple(tables)


@kernel(nogil=True, inline="always")
def _next_token(codes, i, is_word, is_space):
    """(start, end) of the first token of ``_WORD_PATTERN``
    (``\\w+(?:'\\w+)*|\\n|[^\\w\\s]``) in ``codes[i:]``; (n, n) when there is none."""
    n = codes.shape[0]
    while i < n:
        c = codes[i]
        if is_word[c]:
            j = i + 1
            while True:
                while j < n and is_word[codes[j]]:
                    j += 1
                if j + 1 < n and codes[j] == _APOSTROPHE and is_word[codes[j + 1]]:
                    j += 2
                else:
                    return i, j
        if c == _NEWLINE or not is_space[c]:
            return i, i + 1
        i += 1
    return n, n


@kernel(nogil=True, inline="always")
def _hashes(codes, start, end):
    """The token ``codes[start:end]``'s two 64-bit hashes (the first never 0)."""
    h1, h2 = np.int64(_FNV_OFFSET), np.int64(7)
    for k in range(start, end):
        h1 = (h1 ^ np.int64(codes[k])) * _FNV_PRIME
        h2 = h2 * 1000003 + np.int64(codes[k]) + 1
    if h1 == 0:
        h1 = 1  # 0 marks a free slot
    return h1, h2


@kernel(nogil=True, inline="always")
def _home(h1, mask):
    return (h1 ^ (h1 >> 32)) & mask


@kernel(nogil=True, inline="always")
def _find(keys, h1):
    """The position of ``h1`` in the open-addressing table ``keys``, or of the free
    position where it would go (linear probing)."""
    mask = keys.shape[0] - 1
    position = _home(h1, mask)
    while keys[position] != h1 and keys[position] != 0:
        position = (position + 1) & mask
    return position


@kernel(nogil=True)
def _words_ids(codes, is_word, is_space, keys, values, checks, known, ids, firsts):
    """The tokens of ``codes``: their provisional ids go to ``ids``.
    ``keys``/``values``: an open-addressing hash table (first hash -> id, 0 = free
    slot) with room for every token of ``codes``; ``checks[id]``: the token's second
    hash; ``known``: ids given so far.  A new token gets id ``known + n_new``, and its
    (start, end) in ``codes`` go to ``firsts`` (2 * n_new,).
    Returns (n_tokens, n_new), or (-1, 0) on a collision of the first hash alone."""
    n = codes.shape[0]
    found_tokens, new = 0, 0
    i, j = _next_token(codes, 0, is_word, is_space)
    while i < n:
        h1, h2 = _hashes(codes, i, j)
        slot = _find(keys, h1)
        if keys[slot] == h1:
            token = values[slot]
            if checks[token] != h2:
                return -1, 0
        else:
            token = known + new
            keys[slot], values[slot], checks[token] = h1, token, h2
            firsts[2 * new], firsts[2 * new + 1] = i, j
            new += 1
        ids[found_tokens] = token
        found_tokens += 1
        i, j = _next_token(codes, j, is_word, is_space)
    return found_tokens, new


@kernel(nogil=True)
def _rehash(keys, values, new_keys, new_values):
    for old in range(keys.shape[0]):
        h1 = keys[old]
        if h1 != 0:
            slot = _find(new_keys, h1)
            new_keys[slot], new_values[slot] = h1, values[old]


class WordsTable:
    """Provisional ids of the ``words`` tokenizer's tokens, in order of first appearance.

    ``tokens``: the distinct tokens (str), ``tokens[id]``.  Memory: per distinct token
    the str, a list slot and 16 bytes of hashes in a table at most half full; and room
    for a whole chunk of new tokens (~32 bytes per character of the longest chunk).
    """

    def __init__(self):
        self.is_word, self.is_space = character_classes()
        self.keys, self.values = np.zeros(1 << 10, np.int64), np.zeros(1 << 10, np.int32)
        self.checks = np.zeros(1 << 9, np.int64)
        self.tokens = []

    def __len__(self):
        return len(self.tokens)

    def _reserve(self, new_tokens):
        """Room for ``new_tokens`` more, the hash table kept at most half full."""
        needed = len(self.tokens) + new_tokens
        if 2 * needed > len(self.keys):
            size = len(self.keys)
            while 2 * needed > size:
                size *= 2
            keys, values = np.zeros(size, np.int64), np.zeros(size, np.int32)
            _rehash(self.keys, self.values, keys, values)
            self.keys, self.values = keys, values
        if needed > len(self.checks):
            checks = np.zeros(len(self.keys) // 2, np.int64)
            checks[:len(self.tokens)] = self.checks[:len(self.tokens)]
            self.checks = checks

    def ids(self, text, codes):
        """Provisional ids (n_tokens,) uint32 of ``text`` (str) whose code points are ``codes``."""
        self._reserve(len(codes))
        ids, firsts = np.empty(len(codes), np.uint32), np.empty(2 * len(codes), np.int32)
        found, new = _words_ids(codes, self.is_word, self.is_space, self.keys, self.values,
                                self.checks, len(self.tokens), ids, firsts)
        if found < 0:
            raise RuntimeError("two distinct tokens have the same 128-bit hash; please report")
        self.tokens.extend(text[start:end] for start, end in firsts[:2 * new].reshape(-1, 2).tolist())
        return ids[:found]


# FrequentWords' state: slots given out so far, free slots (a stack in ``free``), the
# sum of the purges' cutoffs, and a flag for a collision of the first hash alone.
_GIVEN, _FREE, _OFFSET, _COLLISION = range(4)


@kernel(nogil=True)
def _purge(keys, values, firsts, counts, free, state):
    """Subtract the lower median ``m`` of the full table's counts from every count and
    free the slots left at 0 (at least half of them); ``m`` is added to the offset.
    The hash table is built again from the slots kept."""
    capacity = state[_GIVEN]
    cutoff = np.partition(counts[:capacity].copy(), (capacity - 1) // 2)[(capacity - 1) // 2]
    keys[:] = 0
    n_free = 0
    for slot in range(capacity):
        if counts[slot] > cutoff:
            counts[slot] -= cutoff
            position = _find(keys, firsts[slot])
            keys[position], values[position] = firsts[slot], slot
        else:
            counts[slot] = 0
            free[n_free] = slot
            n_free += 1
    state[_FREE] = n_free
    state[_OFFSET] += cutoff


@kernel(nogil=True)
def _count_frequent(codes, start, is_word, is_space, keys, values, firsts, seconds, counts,
                    free, state, capacity):
    """Count the tokens of ``codes`` in a table of at most ``capacity`` slots: the
    frequent-items algorithm of Misra and Gries (1982) with the "reverse purge" of
    Apache DataSketches' frequent items sketch.

    Counts from ``codes[start]`` on, up to a new token that needs a slot when all C
    that the arrays hold are given and C < ``capacity``: returns where it stopped (the
    caller grows the arrays and calls again), or len(codes).
    ``keys``/``values``: open-addressing table (first hash -> slot, size >= 2 C);
    ``firsts``, ``seconds`` (C,): each slot's token's two hashes; ``counts`` (C,):
    each slot's count, 0 for a free slot; ``free`` (C,): a stack of free slots;
    ``state``: indexed by _GIVEN, _FREE, _OFFSET, _COLLISION.  A token in the table
    adds 1 to its count; a new one takes a free slot with count 1, after a purge
    (:func:`_purge`) when all ``capacity`` slots are taken.  So for every token,
    count <= its occurrences <= count + offset."""
    n = codes.shape[0]
    i, j = _next_token(codes, start, is_word, is_space)
    while i < n:
        h1, h2 = _hashes(codes, i, j)
        position = _find(keys, h1)
        if keys[position] == h1:
            slot = values[position]
            if seconds[slot] != h2:
                state[_COLLISION] = 1
                return n
        else:
            if state[_FREE] == 0 and state[_GIVEN] == counts.shape[0] < capacity:
                return i
            if state[_FREE] == 0 and state[_GIVEN] == capacity:
                _purge(keys, values, firsts, counts, free, state)
                position = _find(keys, h1)
            if state[_FREE] > 0:
                state[_FREE] -= 1
                slot = free[state[_FREE]]
            else:
                slot = state[_GIVEN]
                state[_GIVEN] += 1
            keys[position], values[position] = h1, slot
            firsts[slot], seconds[slot] = h1, h2
        counts[slot] += 1
        i, j = _next_token(codes, j, is_word, is_space)
    return n


@kernel(nogil=True)
def _slot_ids(codes, is_word, is_space, keys, values, seconds, seen, ids, firsts, missing):
    """The table's slot of each token of ``codes`` goes to ``ids`` (``missing`` for a
    token not in it); a slot not ``seen`` before is marked, and (slot, start, end) of
    its token go to ``firsts`` (3 * n_new,).  Returns (n_tokens, n_new), or (-1, 0) on
    a collision of the first hash alone."""
    n, found, new = codes.shape[0], 0, 0
    i, j = _next_token(codes, 0, is_word, is_space)
    while i < n:
        h1, h2 = _hashes(codes, i, j)
        position = _find(keys, h1)
        slot = missing
        if keys[position] == h1:
            slot = values[position]
            if seconds[slot] != h2:
                return -1, 0
            if not seen[slot]:
                seen[slot] = True
                firsts[3 * new], firsts[3 * new + 1], firsts[3 * new + 2] = slot, i, j
                new += 1
        ids[found] = slot
        found += 1
        i, j = _next_token(codes, j, is_word, is_space)
    return found, new


class FrequentWords:
    """The ``words`` tokenizer's most frequent tokens, counted in bounded memory in
    ``capacity`` slots: :meth:`add` every piece of the text, then :meth:`ids` every
    piece again, which names the tokens in the table (:attr:`tokens`).

    Guarantee: a token that occurs more than :attr:`threshold` times (<= 2 n_tokens /
    capacity; 0 until the table first fills) is in the table, and every count is at
    most :attr:`threshold` below the token's occurrences (:func:`_count_frequent`).
    The token store counts the candidates again, exactly.  Deterministic: the same
    tokens in the same order give the same table, whatever the pieces they come in.

    Memory: per slot ~60 to 90 bytes of arrays, and after :meth:`ids` its token's str,
    whatever the number of distinct tokens.  The arrays grow by doubling up to
    ``capacity`` as slots are given: a small table is looked up in cache.
    """

    def __init__(self, capacity):
        self.capacity = int(capacity)
        self.is_word, self.is_space = character_classes()
        self.keys, self.values = np.zeros(0, np.int64), np.zeros(0, np.int32)
        self.firsts, self.seconds = np.zeros(0, np.int64), np.zeros(0, np.int64)
        self.counts, self.free = np.zeros(0, np.int64), np.zeros(0, np.int32)
        self.state = np.zeros(4, np.int64)
        self._grow(min(self.capacity, 1 << 8))
        self.seen, self._tokens = None, None

    def __len__(self):
        """Tokens in the table."""
        return int(self.state[_GIVEN] - self.state[_FREE])

    @property
    def threshold(self):
        """A token not in the table occurred at most this many times."""
        return int(self.state[_OFFSET])

    @property
    def tokens(self):
        """``tokens[slot]``: the slot's token, None for a free slot or one whose token
        :meth:`ids` has not met."""
        return list(self._tokens or ())

    def _grow(self, slots):
        """Arrays for ``slots`` slots (the hash table twice as large, a power of two)."""
        given = int(self.state[_GIVEN])
        size = 1 << max(1, (2 * slots - 1).bit_length())
        keys, values = np.zeros(size, np.int64), np.zeros(size, np.int32)
        _rehash(self.keys, self.values, keys, values)
        self.keys, self.values = keys, values
        for name in ("firsts", "seconds", "counts", "free"):
            old = getattr(self, name)
            new = np.zeros(slots, old.dtype)
            new[:given] = old[:given]
            setattr(self, name, new)

    def add(self, codes):
        """Count the tokens whose code points are ``codes`` (a piece of text that ends
        between tokens)."""
        if self._tokens is not None:
            raise RuntimeError("FrequentWords.add after ids: the table is fixed")
        start = 0
        while True:
            start = _count_frequent(codes, start, self.is_word, self.is_space, self.keys,
                                    self.values, self.firsts, self.seconds, self.counts,
                                    self.free, self.state, self.capacity)
            if start == len(codes):
                break
            self._grow(min(self.capacity, 2 * len(self.counts)))
        if self.state[_COLLISION]:
            raise RuntimeError("two distinct tokens have the same 128-bit hash; please report")

    def ids(self, text, codes, missing):
        """The slot (n_tokens,) uint32 of each token of ``text`` (str) whose code points
        are ``codes``; ``missing`` for a token not in the table."""
        if self._tokens is None:
            given = int(self.state[_GIVEN])
            self.seen, self._tokens = np.zeros(given, np.bool_), [None] * given
        ids, firsts = np.empty(len(codes), np.uint32), np.empty(3 * len(codes), np.int64)
        found, new = _slot_ids(codes, self.is_word, self.is_space, self.keys, self.values,
                               self.seconds, self.seen, ids, firsts, missing)
        if found < 0:
            raise RuntimeError("two distinct tokens have the same 128-bit hash; please report")
        for slot, start, end in firsts[:3 * new].reshape(-1, 3).tolist():
            self._tokens[slot] = text[start:end]
        return ids[:found]
