"""Softmax cross-entropy over rows of scores, loss and gradient in one pass.

The forward pass already computes every probability, so it writes the gradient
``(softmax - onehot) * mask * scale`` at the same time: backward is then free,
and the scores need not be kept (a caller may change them in place afterwards).
Rows are independent, so the parallel build splits them into blocks across
Numba's threads.
"""

import numpy as np
from numba import prange

from ._jit import kernel, serial_and_parallel
from .activations import exp_nonpositive
from .blocked import chunk_bounds


@kernel(inline="always")
def _row_max(row):
    """max of a 1-D array, with four running maxima so the loop is not one
    serial chain of compare-and-select."""
    V = row.shape[0]
    m0 = m1 = m2 = m3 = row[0]
    v = 0
    while v + 4 <= V:
        m0 = max(m0, row[v])
        m1 = max(m1, row[v + 1])
        m2 = max(m2, row[v + 2])
        m3 = max(m3, row[v + 3])
        v += 4
    for k in range(v, V):
        m0 = max(m0, row[k])
    return max(max(m0, m1), max(m2, m3))


@kernel(inline="always")
def _row_sum(row):
    """Sum of a 1-D array in float64, with four partial sums (no reassociation
    flag needed for the loop to overlap its additions)."""
    V = row.shape[0]
    s0 = s1 = s2 = s3 = 0.0
    v = 0
    while v + 4 <= V:
        s0 += row[v]
        s1 += row[v + 1]
        s2 += row[v + 2]
        s3 += row[v + 3]
        v += 4
    for k in range(v, V):
        s0 += row[k]
    return (s0 + s1) + (s2 + s3)


@serial_and_parallel
def softmax_xent(scores, labels, mask, scale, grad, n_chunks):
    """Masked softmax cross-entropy.

    scores (R, V) float; labels (R,) int64 in [0, V); mask (R,) same float dtype
    as scores; scale: factor applied to the loss and the gradient (1/N when the
    loss is averaged over the batch); rows cut into n_chunks blocks.
    Writes grad (R, V) = (softmax(scores) - onehot(labels)) * mask * scale and
    returns scale * sum_r mask[r] * -log softmax(scores[r])[labels[r]] as float64.
    """
    R, V = scores.shape
    losses = np.zeros(n_chunks)
    for p in prange(n_chunks):
        lo, hi = chunk_bounds(p, n_chunks, R)
        # The block's loss is summed in a local and written once: the blocks'
        # slots of ``losses`` share a cache line, which two threads writing at
        # every row would pass back and forth.
        block_loss = 0.0
        for r in range(lo, hi):
            row = scores[r]
            g = grad[r]
            top = _row_max(row)
            for v in range(V):
                g[v] = exp_nonpositive(row[v] - top)
            norm = _row_sum(g)
            weight = mask[r] * scale
            inv = weight / norm
            for v in range(V):
                g[v] *= inv
            g[labels[r]] -= weight
            if mask[r] != 0.0:
                block_loss += mask[r] * (np.log(norm) - (row[labels[r]] - top))
        losses[p] = block_loss
    return losses.sum() * scale
