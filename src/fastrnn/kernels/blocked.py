"""GEMMs over many rows, split into row chunks that run on Numba's threads.

BLAS itself is kept to one thread inside fastrnn (see ``fastrnn._threads``): the
parallelism is one level up, each thread doing one contiguous block of rows with
a single-threaded GEMM.  ``n_chunks`` is the number of blocks (1 = serial).
"""

import numpy as np
from numba import prange

from ._jit import kernel, serial_and_parallel


@kernel(inline="always")
def chunk_bounds(p, n_chunks, rows):
    """Rows [lo, hi) of chunk p when ``rows`` rows are cut into ``n_chunks`` near-equal blocks."""
    return (p * rows) // n_chunks, ((p + 1) * rows) // n_chunks


@serial_and_parallel
def matmul_rows(a, b, out, n_chunks):
    """out (R, M) = a (R, K) @ b (K, M), rows split into chunks."""
    R = a.shape[0]
    for p in prange(n_chunks):
        lo, hi = chunk_bounds(p, n_chunks, R)
        if hi > lo:
            np.dot(a[lo:hi], b, out[lo:hi])


@serial_and_parallel
def matmul_rows_bt(a, b, out, n_chunks):
    """out (R, M) = a (R, K) @ b.T, with b (M, K); rows split into chunks."""
    R = a.shape[0]
    for p in prange(n_chunks):
        lo, hi = chunk_bounds(p, n_chunks, R)
        if hi > lo:
            np.dot(a[lo:hi], b.T, out[lo:hi])


@serial_and_parallel
def matmul_at_b(a, b, out, accumulate, n_chunks):
    """out (K, M) = a.T @ b (+ out when ``accumulate``), a (R, K), b (R, M).

    The sum over rows is split: each chunk computes a partial product into its
    own buffer (no two threads write the same memory), and the partials are added.
    """
    R, K = a.shape
    M = b.shape[1]
    partial = np.zeros((n_chunks, K, M), dtype=out.dtype)
    for p in prange(n_chunks):
        lo, hi = chunk_bounds(p, n_chunks, R)
        if hi > lo:
            np.dot(a[lo:hi].T, b[lo:hi], partial[p])
    if not accumulate:
        out[:] = 0.0
    for p in range(n_chunks):
        for k in range(K):
            for m in range(M):
                out[k, m] += partial[p, k, m]


@serial_and_parallel
def add_row_sums(a, out, n_chunks):
    """out (M,) += sum over rows of a (R, M)."""
    R, M = a.shape
    partial = np.zeros((n_chunks, M), dtype=out.dtype)
    for p in prange(n_chunks):
        lo, hi = chunk_bounds(p, n_chunks, R)
        acc = partial[p]
        for r in range(lo, hi):
            row = a[r]
            for m in range(M):
                acc[m] += row[m]
    for p in range(n_chunks):
        for m in range(M):
            out[m] += partial[p, m]
