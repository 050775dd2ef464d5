"""Vanilla (tanh) RNN time loops, forward and backward, one compiled call each.

Same layout and structure as ``lstm.py`` with a single gate:
``h_t = tanh(x_t Wx + h_{t-1} Wh + b)``.  The input projection of all steps is
one GEMM written into ``h`` before the loop, and each step adds the recurrent
GEMM and the bias and applies tanh in place; backward needs only ``h``
(tanh' = 1 - h^2).
"""

import numpy as np
from numba import prange

from ._jit import serial_and_parallel
from .activations import tanh
from .blocked import chunk_bounds, project_input_block


@serial_and_parallel
def rnn_forward(x, x_tm, h0, wx, wh, b, h, h_out, n_chunks):
    """Run a tanh RNN over a sequence.

    x (N, T, D) the input, batch-major as the API has it; h0 (N, H); wx (D, H);
    wh (H, H); b (H,).  Writes x_tm (T, N, D): the input time-major (kept for the
    weight gradients); h (T, N, H): the hidden states h_1..h_T (all backward
    needs), and h_out (N, T, H) the same batch-major (the result).
    """
    T, N, D = x_tm.shape
    H = h.shape[2]
    for p in prange(n_chunks):
        project_input_block(x, x_tm, wx, h, p, n_chunks)
    batch_chunks = min(n_chunks, N)
    for p in prange(batch_chunks):
        lo, hi = chunk_bounds(p, batch_chunks, N)
        recurrent = np.empty((hi - lo, H), dtype=h.dtype)
        for t in range(T):
            h_prev = h0[lo:hi] if t == 0 else h[t - 1, lo:hi]
            np.dot(h_prev, wh, recurrent)
            for n in range(lo, hi):
                row, rec, out = h[t, n], recurrent[n - lo], h_out[n, t]
                for j in range(H):
                    row[j] = tanh(row[j] + rec[j] + b[j])
                    out[j] = row[j]


@serial_and_parallel
def rnn_backward_loop(dh, wh, h, grad_pre, dh0, n_chunks):
    """Backpropagate through the recurrence run by ``rnn_forward``.

    dh (N, T, H), batch-major: upstream gradient on every h_t; wh (H, H); h (T, N, H) from the
    forward.  Writes grad_pre (T, N, H), the gradient of the pre-activations
    (used by the weight-gradient GEMMs), and dh0 (N, H).
    """
    T, N, H = h.shape
    batch_chunks = min(n_chunks, N)
    for p in prange(batch_chunks):
        lo, hi = chunk_bounds(p, batch_chunks, N)
        dh_next = np.zeros((hi - lo, H), dtype=h.dtype)
        for t in range(T - 1, -1, -1):
            for n in range(lo, hi):
                da, h_tn, dh_tn, dh_next_n = grad_pre[t, n], h[t, n], dh[n, t], dh_next[n - lo]
                for j in range(H):
                    da[j] = (dh_tn[j] + dh_next_n[j]) * (1.0 - h_tn[j] * h_tn[j])
            np.dot(grad_pre[t, lo:hi], wh.T, dh_next)
        dh0[lo:hi] = dh_next
