"""The split of a text into training and validation, as (start, stop) ranges of its one
id array, and the training streams read from those ranges without copying the text.

Validation (run format 3): ``min(val_fraction * n, val_tokens)`` tokens in k equal
blocks (k at most :data:`VALIDATION_BLOCKS`), block i at the end of the i-th of k equal
parts of the text, so that every part of a folder of books is represented, not only
its last file.  Each block predicts a whole number of ``seq_len`` windows.  Everything
else, the text between the blocks included, is training text.

Runs of format versions 1-2 (``val_tokens`` None) keep their split: the tail
``val_fraction`` of the text, cut into at most ``batch_size`` streams.

Training reads the training ranges as one text (the ranges joined end to end, as
files are joined), cut into B contiguous streams; a window of every stream is
gathered from the id array when it is needed, so an id array mapped from disk is
never read whole into memory.

Shapes: B streams (batch rows), S window length (``seq_len``), k validation blocks.
"""

import math

import numpy as np

from ..text import TextError

__all__ = ["VALIDATION_BLOCKS", "TextSplit", "TrainStreams", "minimum_tokens", "split_text"]

VALIDATION_BLOCKS = 32


def _validation_size(n_tokens, seq_len, val_fraction, val_tokens):
    share = int(n_tokens * val_fraction)
    return max(share if val_tokens is None else min(share, val_tokens), seq_len + 1)


def minimum_tokens(seq_len, batch_size, val_fraction, val_tokens=None):
    """The fewest tokens with one training window per stream and one validation window."""
    train_needed = batch_size * (seq_len + 1)

    def enough(n):
        return n - _validation_size(n, seq_len, val_fraction, val_tokens) >= train_needed

    # Training tokens n - validation_size(n) never decrease as n grows (val_fraction
    # <= 0.5), so the first n that is enough is found by bisection.
    low = train_needed + seq_len + 1
    high = max(low, math.ceil(train_needed / (1.0 - val_fraction)))
    while not enough(high):
        high += 1
    while low < high:
        middle = (low + high) // 2
        low, high = (middle + 1, high) if not enough(middle) else (low, middle)
    return low


class TrainStreams:
    """The training ranges of ``ids`` read as B contiguous streams of ``length`` tokens.

    ranges: (start, stop) pairs of ``ids``, joined end to end; the tail of the joined
    text that does not fill B equal streams is dropped.  Window w of every stream
    is :meth:`window` (B, S + 1): inputs and, shifted by one, targets.
    """

    def __init__(self, ids, ranges, rows, seq_len):
        self.ids = ids
        self.rows, self.seq_len = rows, seq_len
        starts = np.array([start for start, _ in ranges], dtype=np.int64)
        lengths = np.array([stop - start for start, stop in ranges], dtype=np.int64)
        self._ends = np.cumsum(lengths)  # where each range ends in the joined text
        self._shifts = starts - (self._ends - lengths)  # joined position -> position in ids
        self.length = int(self._ends[-1]) // rows
        self.windows = (self.length - 1) // seq_len
        # (B, S + 1): the joined positions of window 0 of every stream.
        self._first = (np.arange(rows, dtype=np.int64)[:, None] * self.length
                       + np.arange(seq_len + 1, dtype=np.int64))

    def window(self, w, streams=None, out=None):
        """int64 (B, S + 1): tokens ``w * S`` to ``(w + 1) * S`` of every stream, or of
        ``streams`` (a range of them: a data-parallel process's share), in ``out`` if
        given (a (len(streams), S + 1) int64 array to reuse), else in a new array."""
        first = self._first if streams is None else self._first[streams.start:streams.stop]
        positions = first + w * self.seq_len
        pieces = np.searchsorted(self._ends, positions, side="right")
        if out is None:
            out = np.empty(positions.shape, dtype=np.int64)
        out[...] = self.ids[positions + self._shifts[pieces]]
        return out


class TextSplit:
    """Training and validation ranges of an id array (see the module's docstring).

    train_ranges, val_ranges: lists of (start, stop); the validation ranges are
    all of one length.
    """

    def __init__(self, ids, train_ranges, val_ranges):
        self.ids = ids
        self.train_ranges, self.val_ranges = train_ranges, val_ranges

    @property
    def train_tokens(self):
        return sum(stop - start for start, stop in self.train_ranges)

    @property
    def val_tokens(self):
        return sum(stop - start for start, stop in self.val_ranges)

    def train_streams(self, rows, seq_len):
        """The training text as ``rows`` streams (:class:`TrainStreams`)."""
        return TrainStreams(self.ids, self.train_ranges, rows, seq_len)

    def validation(self):
        """int64 (k, block length): the validation blocks, one per row (a copy; small)."""
        return np.stack([np.asarray(self.ids[start:stop], dtype=np.int64)
                         for start, stop in self.val_ranges])


def split_text(ids, config, level="char"):
    """The :class:`TextSplit` of ``ids`` (n,) by a TrainConfig ``config``.

    Training needs one window of ``seq_len + 1`` tokens (inputs and the next tokens)
    in each of ``batch_size`` streams; validation at least one window of ``seq_len +
    1`` tokens.  Raises TextError saying how many tokens that is (``level`` names them).
    """
    S, B, fraction = config.seq_len, config.batch_size, config.val_fraction
    n = len(ids)
    needed = minimum_tokens(S, B, fraction, config.val_tokens)
    if n < needed:
        raise TextError(
            f"text too short: {n} {level} tokens, need at least {needed} "
            f"(one window of seq_len + 1 = {S + 1} tokens in each of batch_size = {B} "
            f"streams for training, plus a validation share of {fraction:g} of the text, "
            f"at least {S + 1} tokens); use a longer text or smaller --seq-len/--batch-size")
    n_val = _validation_size(n, S, fraction, config.val_tokens)
    if config.val_tokens is None:  # format 1-2: the tail, in at most B streams
        blocks = max(1, min(B, n_val // (S + 1)))
        length = n_val // blocks
        tail = n - n_val
        return TextSplit(ids, [(0, tail)], [(tail + i * length, tail + (i + 1) * length)
                                            for i in range(blocks)])
    blocks = max(1, min(VALIDATION_BLOCKS, n_val // (S + 1)))
    length = (n_val // blocks - 1) // S * S + 1  # whole windows of S predictions
    val_ranges = [((i + 1) * n // blocks - length, (i + 1) * n // blocks) for i in range(blocks)]
    train_ranges, start = [], 0
    for block_start, block_stop in val_ranges:
        if block_start > start:
            train_ranges.append((start, block_start))
        start = block_stop
    return TextSplit(ids, train_ranges, val_ranges)
