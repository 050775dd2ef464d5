"""Softmax cross-entropy over rows of scores, loss and gradient in one pass.

The forward pass already computes every probability, so it writes the gradient
``(softmax - onehot) * mask * scale`` at the same time: backward is then free,
and the scores need not be kept (a caller may change them in place afterwards).
Rows are independent, so the parallel variant splits them across Numba's threads;
no BLAS is called inside, so the threads never meet OpenBLAS's.
"""

import numpy as np
from numba import prange

from ._jit import kernel
from .activations import exp_nonpositive


def _softmax_xent(scores, labels, mask, scale, grad):
    """Masked softmax cross-entropy.

    scores (R, V) float; labels (R,) int64 in [0, V); mask (R,) same float dtype
    as scores; scale: factor applied to the loss and the gradient (1/N when the
    loss is averaged over the batch).
    Writes grad (R, V) = (softmax(scores) - onehot(labels)) * mask * scale and
    returns scale * sum_r mask[r] * -log softmax(scores[r])[labels[r]] as float64.
    """
    R, V = scores.shape
    total = 0.0
    for r in prange(R):
        row = scores[r]
        top = row[0]
        for v in range(1, V):
            top = max(top, row[v])
        norm = 0.0
        g = grad[r]
        for v in range(V):
            e = exp_nonpositive(row[v] - top)
            g[v] = e
            norm += e
        weight = mask[r] * scale
        inv = weight / norm
        for v in range(V):
            g[v] *= inv
        g[labels[r]] -= weight
        if mask[r] != 0.0:
            total += mask[r] * (np.log(norm) - (row[labels[r]] - top))
    return total * scale


softmax_xent = kernel(_softmax_xent)
softmax_xent_parallel = kernel(parallel=True)(_softmax_xent)
