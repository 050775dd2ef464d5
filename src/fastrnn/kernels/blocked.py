"""GEMMs over many rows, cut into row blocks that run on Numba's threads.

BLAS itself is kept to one thread inside fastrnn (see ``fastrnn._threads``): the
parallelism is one level up, each thread doing one contiguous block of rows with
a single-threaded GEMM.  ``n_chunks`` is the number of blocks (1 = serial).
A product summed over rows (a weight gradient) is split the same way: each block
writes its partial sum into a buffer of its own (no two threads write the same
memory) and the partials are added at the end.
"""

import numpy as np
from numba import prange

from ._jit import kernel, serial_and_parallel


@kernel(inline="always")
def chunk_bounds(p, n_chunks, rows):
    """Rows [lo, hi) of block p when ``rows`` rows are cut into ``n_chunks`` near-equal blocks."""
    return (p * rows) // n_chunks, ((p + 1) * rows) // n_chunks


@kernel(inline="always")
def copy_row(src, dst):
    """dst[:] = src[:] for two 1-D arrays, element by element: a slice assignment
    between arrays makes Numba allocate a temporary (it guards against overlap),
    and the kernels copy one row per batch row and time step, from several threads."""
    for k in range(src.shape[0]):
        dst[k] = src[k]


@kernel(inline="always")
def add_column_sums(rows, acc):
    """acc (M,) += the sum over rows of rows (R, M)."""
    for r in range(rows.shape[0]):
        row = rows[r]
        for m in range(row.shape[0]):
            acc[m] += row[m]


@kernel(inline="always")
def add_partials(partials, out):
    """out[...] = sum of partials over their first axis (partials (P, ...), out (...))."""
    flat_out = out.reshape(-1)
    flat = partials.reshape(partials.shape[0], -1)
    for k in range(flat_out.shape[0]):
        flat_out[k] = flat[0, k]
    for p in range(1, flat.shape[0]):
        for k in range(flat_out.shape[0]):
            flat_out[k] += flat[p, k]


@kernel(inline="always")
def project_input_block(x, x_tm, wx, out, p, n_chunks):
    """Block p of n_chunks of a recurrent layer's input projection.

    x (N, T, D) batch-major; writes the block's rows of x_tm (T, N, D), the input
    time-major, and of out (T, N, G) = x_t Wx, the T*N rows being cut into
    n_chunks blocks.  Called from inside a kernel's ``prange`` over the blocks
    (a ``prange`` in an inlined function would not run in parallel).
    """
    T, N, D = x_tm.shape
    G = out.shape[2]
    rows = T * N
    lo, hi = chunk_bounds(p, n_chunks, rows)
    x_rows = x_tm.reshape(rows, D)
    for r in range(lo, hi):
        copy_row(x[r % N, r // N], x_rows[r])
    if hi > lo:
        np.dot(x_rows[lo:hi], wx, out.reshape(rows, G)[lo:hi])


@serial_and_parallel
def linear_forward(x, w, b, out, n_chunks):
    """out (R, M) = x (R, K) @ w (K, M) + b (M,)."""
    R, M = out.shape
    for p in prange(n_chunks):
        lo, hi = chunk_bounds(p, n_chunks, R)
        if hi > lo:
            np.dot(x[lo:hi], w, out[lo:hi])
            for r in range(lo, hi):
                row = out[r]
                for m in range(M):
                    row[m] += b[m]


@serial_and_parallel
def linear_backward(x, w, dout, dx, dw, db, n_chunks):
    """Gradients of out = x @ w + b: dx (R, K) = dout @ w.T, dw (K, M) = x.T @ dout,
    db (M,) = column sums of dout; x (R, K), w (K, M), dout (R, M)."""
    R, M = dout.shape
    K = x.shape[1]
    dw_parts = np.empty((n_chunks, K, M), dtype=dw.dtype)
    db_parts = np.zeros((n_chunks, M), dtype=db.dtype)
    for p in prange(n_chunks):
        lo, hi = chunk_bounds(p, n_chunks, R)
        if hi > lo:
            np.dot(dout[lo:hi], w.T, dx[lo:hi])
            np.dot(x[lo:hi].T, dout[lo:hi], dw_parts[p])
        else:
            dw_parts[p] = 0.0
        add_column_sums(dout[lo:hi], db_parts[p])
    add_partials(dw_parts, dw)
    add_partials(db_parts, db)


@serial_and_parallel
def recurrent_weight_gradients(x, h0, h, grad_pre, wx, dx, dwx, dwh, db, n_chunks):
    """The GEMMs after a recurrent backward loop, over all T*N rows at once.

    x (T, N, D) inputs; h0 (N, H); h (T, N, H) hidden states; grad_pre (T, N, G)
    gradient of the pre-activations (G = 4H for an LSTM, H for a tanh RNN); wx (D, G).
    Writes dx (N, T, D) = dA Wx^T, batch-major as the API has it; dwx (D, G) =
    X^T dA; dwh (H, G) = Hprev^T dA with Hprev = [h0, h_1 .. h_{T-1}]; db (G,) =
    the column sums of dA.
    Blocks are runs of whole time steps, so each block's Hprev is one slice of h.
    """
    T, N, D = x.shape
    H = h0.shape[1]
    G = grad_pre.shape[2]
    dwx_parts = np.empty((n_chunks, D, G), dtype=dwx.dtype)
    dwh_parts = np.zeros((n_chunks, H, G), dtype=dwh.dtype)
    db_parts = np.zeros((n_chunks, G), dtype=db.dtype)
    for p in prange(n_chunks):
        t_lo, t_hi = chunk_bounds(p, n_chunks, T)
        if t_hi > t_lo:
            rows = grad_pre[t_lo:t_hi].reshape((t_hi - t_lo) * N, G)
            dx_rows = np.dot(rows, wx.T)
            for r in range(dx_rows.shape[0]):
                copy_row(dx_rows[r], dx[r % N, t_lo + r // N])
            np.dot(x[t_lo:t_hi].reshape((t_hi - t_lo) * N, D).T, rows, dwx_parts[p])
            first = t_lo
            if t_lo == 0:
                np.dot(h0.T, grad_pre[0], dwh_parts[p])
                first = 1
            if t_hi > first:
                later = np.dot(h[first - 1:t_hi - 1].reshape((t_hi - first) * N, H).T,
                               grad_pre[first:t_hi].reshape((t_hi - first) * N, G))
                dwh_parts[p] += later
            add_column_sums(rows, db_parts[p])
        else:
            dwx_parts[p] = 0.0
    add_partials(dwx_parts, dwx)
    add_partials(dwh_parts, dwh)
    add_partials(db_parts, db)
