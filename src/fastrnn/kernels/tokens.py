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
def _words_ids(codes, is_word, is_space, keys, values, checks, known, ids, firsts):
    """The tokens of ``_WORD_PATTERN`` (``\\w+(?:'\\w+)*|\\n|[^\\w\\s]``) in ``codes``:
    their provisional ids go to ``ids``.  ``keys``/``values``: an open-addressing hash
    table (first hash -> id, 0 = free slot) with room for every token of ``codes``;
    ``checks[id]``: the token's second hash; ``known``: ids given so far.  A new token
    gets id ``known``, and its (start, end) in ``codes`` go to ``firsts`` (2 * n_new,).
    Returns (n_tokens, n_new), or (-1, 0) on a collision of the first hash alone."""
    n, mask = codes.shape[0], keys.shape[0] - 1
    found_tokens, new, i = 0, 0, 0
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
                    break
        elif c == _NEWLINE or not is_space[c]:
            j = i + 1
        else:
            i += 1
            continue
        h1, h2 = np.int64(_FNV_OFFSET), np.int64(7)
        for k in range(i, j):
            h1 = (h1 ^ np.int64(codes[k])) * _FNV_PRIME
            h2 = h2 * 1000003 + np.int64(codes[k]) + 1
        if h1 == 0:
            h1 = 1  # 0 marks a free slot
        slot = (h1 ^ (h1 >> 32)) & mask
        while keys[slot] != h1 and keys[slot] != 0:
            slot = (slot + 1) & mask
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
        i = j
    return found_tokens, new


@kernel(nogil=True)
def _rehash(keys, values, new_keys, new_values):
    mask = new_keys.shape[0] - 1
    for old in range(keys.shape[0]):
        h1 = keys[old]
        if h1 != 0:
            slot = (h1 ^ (h1 >> 32)) & mask
            while new_keys[slot] != 0:
                slot = (slot + 1) & mask
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
