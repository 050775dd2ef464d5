"""Compiled loops of the token store (:mod:`fastrnn.token_store`).

numpy's ``bincount`` and fancy indexing first copy the codes to int64 (8 bytes each);
:func:`count` and :func:`lookup` do not, and run ~20x faster.  :class:`WordsTable`
tokenizes with the ``words`` tokenizer's regular expression, compiled by hand, and
gives each distinct token a provisional id without making a Python string of it.
"""

import functools
import re

import numpy as np
from numba import njit, types
from numba.typed import Dict, List

CODE_POINTS = 0x110000
_APOSTROPHE, _NEWLINE = ord("'"), ord("\n")
# FNV-1a (64 bits) names a token; a second, polynomial hash is checked on every
# lookup, so two tokens are confused only if both 64-bit hashes collide.
_FNV_OFFSET = -3750763034362895579  # 14695981039346656037 as an int64
_FNV_PRIME = 1099511628211


@njit(cache=True, nogil=True)
def count(codes, counts):
    """counts[c] += 1 for each c in codes (every c < len(counts))."""
    for c in codes:
        counts[c] += 1


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _words_ids(codes, is_word, is_space, index, checks, ids, firsts):
    """The tokens of ``_WORD_PATTERN`` (``\\w+(?:'\\w+)*|\\n|[^\\w\\s]``) in ``codes``:
    their provisional ids go to ``ids``; a token not in ``index`` (hash -> id) gets the
    next id, and its (start, end) in ``codes`` go to ``firsts`` (2 * n_new,).  Returns
    (n_tokens, n_new), or (-1, 0) on a hash collision (the first hash alone equal)."""
    n, found_tokens, new, i = codes.shape[0], 0, 0, 0
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
        known = len(index)
        token = index.setdefault(h1, known)
        if token < known:
            if checks[token] != h2:
                return -1, 0
        else:
            checks.append(h2)
            firsts[2 * new] = i
            firsts[2 * new + 1] = j
            new += 1
        ids[found_tokens] = token
        found_tokens += 1
        i = j
    return found_tokens, new


class WordsTable:
    """Provisional ids of the ``words`` tokenizer's tokens, in order of first appearance.

    ``tokens``: the distinct tokens (str), ``tokens[id]``.  Memory per distinct token:
    the str, a list slot, and 16 bytes of hashes plus the hash table's slack.
    """

    def __init__(self):
        self.is_word, self.is_space = character_classes()
        self.index = Dict.empty(key_type=types.int64, value_type=types.int64)
        self.checks = List.empty_list(types.int64)
        self.tokens = []

    def __len__(self):
        return len(self.tokens)

    def ids(self, text, codes):
        """Provisional ids (n_tokens,) uint32 of ``text`` (str) whose code points are ``codes``."""
        ids, firsts = np.empty(len(codes), np.uint32), np.empty(2 * len(codes), np.int32)
        found, new = _words_ids(codes, self.is_word, self.is_space, self.index, self.checks,
                                ids, firsts)
        if found < 0:
            raise RuntimeError("two distinct tokens have the same 128-bit hash; please report")
        self.tokens.extend(text[start:end] for start, end in firsts[:2 * new].reshape(-1, 2).tolist())
        return ids[:found]
