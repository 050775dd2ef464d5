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


@kernel(nogil=True)
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


@kernel(nogil=True)
def _hashes(codes, start, end):
    """The token ``codes[start:end]``'s two 64-bit hashes (the first never 0)."""
    h1, h2 = np.int64(_FNV_OFFSET), np.int64(7)
    for k in range(start, end):
        h1 = (h1 ^ np.int64(codes[k])) * _FNV_PRIME
        h2 = h2 * 1000003 + np.int64(codes[k]) + 1
    if h1 == 0:
        h1 = 1  # 0 marks a free slot
    return h1, h2


@kernel(nogil=True)
def _home(h1, mask):
    return (h1 ^ (h1 >> 32)) & mask


@kernel(nogil=True)
def _find(keys, h1):
    """The position of ``h1`` in the open-addressing table ``keys``, or of the free
    position where it would go (linear probing)."""
    mask = keys.shape[0] - 1
    position = _home(h1, mask)
    while keys[position] != h1 and keys[position] != 0:
        position = (position + 1) & mask
    return position


@kernel(nogil=True)
def _words_ids(codes, is_word, is_space, keys, values, checks, known, ids, firsts, missing):
    """The tokens of ``codes``: their provisional ids go to ``ids``.
    ``keys``/``values``: an open-addressing hash table (first hash -> id, 0 = free
    slot) with room for every token of ``codes``; ``checks[id]``: the token's second
    hash; ``known``: ids given so far.  ``missing < 0``: a new token gets id ``known``,
    and its (start, end) in ``codes`` go to ``firsts`` (2 * n_new,); else the table is
    left as it is and a token not in it gets id ``missing``.
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
        elif missing >= 0:
            token = missing
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
                                self.checks, len(self.tokens), ids, firsts, -1)
        if found < 0:
            raise RuntimeError("two distinct tokens have the same 128-bit hash; please report")
        self.tokens.extend(text[start:end] for start, end in firsts[:2 * new].reshape(-1, 2).tolist())
        return ids[:found]


@kernel(nogil=True)
def _remove(keys, values, h1):
    """Delete ``h1`` (present) from the linear-probing table by shifting back the
    entries after it (Knuth's Algorithm R): no tombstones, so probes stay short."""
    mask = keys.shape[0] - 1
    hole = _find(keys, h1)
    position = hole
    while True:
        position = (position + 1) & mask
        key = keys[position]
        if key == 0:
            break
        home = _home(key, mask)
        # The entry may fill the hole unless its home lies cyclically in (hole, position].
        if (hole < position and hole < home <= position) or (
                hole > position and (home > hole or home <= position)):
            continue
        keys[hole], values[hole] = key, values[position]
        hole = position
    keys[hole] = 0


@kernel(nogil=True)
def _sift_down(heap, places, counts, position):
    """Restore the min-heap order of ``heap`` (slots, by ``counts``) below ``position``."""
    size = heap.shape[0]
    slot = heap[position]
    while True:
        child = 2 * position + 1
        if child >= size or heap[child] < 0:
            break
        if child + 1 < size and heap[child + 1] >= 0 and counts[heap[child + 1]] < counts[heap[child]]:
            child += 1
        if counts[heap[child]] >= counts[slot]:
            break
        heap[position] = heap[child]
        places[heap[position]] = position
        position = child
    heap[position] = slot
    places[slot] = position


@kernel(nogil=True)
def _sift_up(heap, places, counts, slot):
    """Put ``slot``, whose count is the least, at position 0 of the min-heap ``heap``
    whose used part ends before position ``slot``."""
    position = slot
    while position > 0:
        parent = (position - 1) // 2
        heap[position] = heap[parent]
        places[heap[position]] = position
        position = parent
    heap[0], places[slot] = slot, 0


@kernel(nogil=True)
def _count_frequent(codes, is_word, is_space, keys, values, firsts, seconds, counts, heap,
                     places, state, spans, touched, capacity):
    """Space-Saving (Metwally, Agrawal and El Abbadi, 2005) over the tokens of ``codes``.

    ``capacity``: the most slots used; the arrays hold C >= min(capacity, slots used +
    tokens in ``codes``) slots.  ``keys``/``values``: open-addressing table (first hash
    -> slot, size >= 2 C); ``firsts``, ``seconds`` (C,): each slot's token's two
    hashes; ``counts`` (C,):
    each slot's count; ``heap`` (C,): the used slots as a min-heap by count, -1 past
    them; ``places`` (C,): each slot's position in ``heap``; ``state`` (2,): slots
    used, and a flag set on a collision of the first hash alone.  A token in the table
    adds 1 to its count; a new one takes a free slot with count 1 or, when all
    ``capacity`` are used, the slot of least count (the heap's root), keeping that
    count + 1, so that a count is an upper bound of its token's.  A slot given a token
    here gets that token's (start, end) in ``spans`` (C, 2), which must hold -1 where
    no slot was given one, and is listed once in ``touched`` (C,).  Returns how many
    are listed."""
    n, listed = codes.shape[0], 0
    i, j = _next_token(codes, 0, is_word, is_space)
    while i < n:
        h1, h2 = _hashes(codes, i, j)
        position = _find(keys, h1)
        if keys[position] == h1:
            slot = values[position]
            if seconds[slot] != h2:
                state[1] = 1
                return listed
        else:
            if state[0] < capacity:
                slot = state[0]
                state[0] += 1
                counts[slot] = 0  # the least count: the slot goes to the heap's root
                _sift_up(heap, places, counts, slot)
            else:
                slot = heap[0]  # the least count, which the new token takes over
                _remove(keys, values, firsts[slot])
                position = _find(keys, h1)
            keys[position], values[position] = h1, slot
            firsts[slot], seconds[slot] = h1, h2
            if spans[slot, 0] < 0:
                touched[listed] = slot
                listed += 1
            spans[slot, 0], spans[slot, 1] = i, j
        counts[slot] += 1
        _sift_down(heap, places, counts, places[slot])
        i, j = _next_token(codes, j, is_word, is_space)
    return listed


class FrequentWords:
    """The ``words`` tokenizer's most frequent tokens, counted in bounded memory by
    Space-Saving (:func:`_count_frequent`) with ``capacity`` slots.

    Guarantee: a token that occurs more than :attr:`threshold` times (the least
    count in a full table, <= n_tokens / capacity; 0 while the table has a free
    slot) is in :attr:`tokens`.  The counts are upper bounds, not exact: the token
    store counts the candidates again exactly.  Deterministic: the same tokens in the
    same order give the same table, whatever the chunks they come in.

    Memory: per slot 76 to 100 bytes of arrays (grown by doubling up to ``capacity``),
    the token's str and a list slot, whatever the number of distinct tokens.
    """

    def __init__(self, capacity):
        self.capacity = int(capacity)
        self.is_word, self.is_space = character_classes()
        self.keys, self.values = np.zeros(0, np.int64), np.zeros(0, np.int32)
        self.firsts, self.seconds = np.zeros(0, np.int64), np.zeros(0, np.int64)
        self.counts = np.zeros(0, np.int64)
        self.heap, self.places = np.zeros(0, np.int32), np.zeros(0, np.int32)
        self.spans, self.touched = np.zeros((0, 2), np.int64), np.zeros(0, np.int32)
        self.state = np.zeros(2, np.int64)
        self.tokens = []
        self._grow(min(self.capacity, 1 << 10))

    def __len__(self):
        return int(self.state[0])

    @property
    def threshold(self):
        """A token not in the table occurred at most this many times."""
        return int(self.counts[self.heap[0]]) if len(self) == self.capacity else 0

    def _grow(self, slots):
        """Arrays for ``slots`` slots (the hash table twice as large, a power of two)."""
        used = len(self)
        size = 1 << max(1, (2 * slots - 1).bit_length())
        keys, values = np.zeros(size, np.int64), np.zeros(size, np.int32)
        _rehash(self.keys, self.values, keys, values)
        self.keys, self.values = keys, values
        for name, fill in (("firsts", 0), ("seconds", 0), ("counts", 0), ("heap", -1), ("places", 0),
                           ("spans", -1), ("touched", 0)):
            old = getattr(self, name)
            new = np.full((slots,) + old.shape[1:], fill, old.dtype)
            new[:used] = old[:used]
            setattr(self, name, new)

    def add(self, text, codes):
        """Count the tokens of ``text`` (str) whose code points are ``codes``."""
        needed = min(self.capacity, len(self) + len(codes))
        if needed > len(self.counts):
            self._grow(min(self.capacity, max(needed, 2 * len(self.counts))))
        listed = _count_frequent(codes, self.is_word, self.is_space, self.keys, self.values,
                                 self.firsts, self.seconds, self.counts, self.heap, self.places,
                                 self.state, self.spans, self.touched, self.capacity)
        if self.state[1]:
            raise RuntimeError("two distinct tokens have the same 128-bit hash; please report")
        touched = self.touched[:listed]
        self.tokens.extend([None] * (len(self) - len(self.tokens)))
        for slot, (start, end) in zip(touched.tolist(), self.spans[touched].tolist()):
            self.tokens[slot] = text[start:end]
        self.spans[touched] = -1

    def ids(self, codes, missing):
        """The slot (uint32) of each token of ``codes``; ``missing`` for a token not in
        the table, which is left as it is."""
        ids = np.empty(len(codes), np.uint32)
        found, _ = _words_ids(codes, self.is_word, self.is_space, self.keys, self.values, self.seconds,
                              len(self), ids, np.empty(0, np.int32), missing)
        return ids[:found]
