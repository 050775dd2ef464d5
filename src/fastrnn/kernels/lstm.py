"""LSTM time loops, forward and backward, one compiled call each.

Layout (see ``kernels.md``): the stored state is time-major ``(T, N, ...)`` and
C-contiguous, so that each step's slice is one contiguous ``(N, ...)`` block that
BLAS takes without a copy; the API's batch-major ``(N, T, ...)`` input, output and
gradients are read and written directly by the kernels' blocks (no separate
transposes).  Gate order along the ``4H`` axis is i, f, o, g.

The input projection ``x Wx`` of all steps is one GEMM (in row blocks) before
the forward loop, and the weight gradients are GEMMs after the backward loop
(:func:`.blocked.recurrent_weight_gradients`): inside the loops there is only the
recurrent GEMM and one fused elementwise pass per step.  Batch rows never
interact inside a loop, so the batch is cut into ``n_chunks`` blocks that run
the whole sequence on their own threads with no synchronisation per step.
"""

import numpy as np
from numba import prange

from ._jit import kernel, serial_and_parallel
from .activations import sigmoid, tanh
from .blocked import chunk_bounds, copy_row, project_input_block


@serial_and_parallel
def lstm_forward(x, x_tm, h0, c0, wx, wh, b, gates, c, tanh_c, h, h_out, n_chunks):
    """Run an LSTM over a sequence.

    x (N, T, D) the input, batch-major as the API has it; h0, c0 (N, H) initial
    state; wx (D, 4H); wh (H, 4H); b (4H,).
    Writes x_tm (T, N, D): the input time-major (kept for the weight gradients);
    gates (T, N, 4H): the activations i, f, o, g of every step; c and tanh_c
    (T, N, H): the cell states c_1..c_T and their tanh; h (T, N, H): the hidden
    states h_1..h_T, and h_out (N, T, H) the same batch-major (the result).
    """
    T, N, D = x_tm.shape
    G = gates.shape[2]
    for p in prange(n_chunks):
        project_input_block(x, x_tm, wx, gates, p, n_chunks)
    batch_chunks = min(n_chunks, N)
    for p in prange(batch_chunks):
        lo, hi = chunk_bounds(p, batch_chunks, N)
        recurrent = np.empty((hi - lo, G), dtype=gates.dtype)
        bias, scale = tiled_bias_and_scale(b, hi - lo)
        for t in range(T):
            h_prev = h0[lo:hi] if t == 0 else h[t - 1, lo:hi]
            c_prev = c0[lo:hi] if t == 0 else c[t - 1, lo:hi]
            np.dot(h_prev, wh, recurrent)
            gate_block(gates[t, lo:hi], recurrent, bias, scale, c_prev, c[t, lo:hi],
                       tanh_c[t, lo:hi], h[t, lo:hi])
            for n in range(lo, hi):
                copy_row(h[t, n], h_out[n, t])


@kernel(inline="always")
def tiled_bias_and_scale(b, rows):
    """The bias b (4H,) repeated for ``rows`` rows, and the matching pre-activation
    scale: 1 for the sigmoid gates i, f, o and 2 for g, since tanh(z) = 2 sigmoid(2z) - 1.
    Both (rows * 4H,)."""
    G = b.shape[0]
    bias = np.empty(rows * G, dtype=b.dtype)
    scale = np.ones(rows * G, dtype=b.dtype)
    for r in range(rows):
        for j in range(G):
            bias[r * G + j] = b[j]
        for j in range(3 * G // 4, G):
            scale[r * G + j] = 2.0
    return bias, scale


@kernel(inline="always")
def gate_block(a, rec, bias, scale, c_prev, c_new, tanh_c, h_new):
    """The fused forward pass of one step over a block of R rows.

    a (R, 4H): x_t Wx on entry, the activations i, f, o, g on exit; rec (R, 4H) =
    h_{t-1} Wh; bias, scale (R * 4H,) from ``tiled_bias_and_scale``; c_prev (R, H).
    Writes c_new, tanh_c = tanh(c_new) and h_new (R, H).

    The nonlinearities run as one loop over the whole contiguous block (all four
    gates as sigmoids, g through tanh(z) = 2 sigmoid(2z) - 1, exact to ~1e-16
    absolute), because a vectorised loop per row of length 3H or H leaves a scalar
    remainder that runs the whole polynomial one lane at a time (at H = 20, 20 of
    the 100 activations of a row).  The cell update is plain arithmetic per row.
    """
    R, G = a.shape
    H = G // 4
    flat = a.reshape(R * G)
    flat_rec = rec.reshape(R * G)
    for k in range(R * G):
        flat[k] = sigmoid(scale[k] * (flat[k] + flat_rec[k] + bias[k]))
    for r in range(R):
        row = a[r]
        for j in range(H):
            g_gate = 2.0 * row[3 * H + j] - 1.0
            row[3 * H + j] = g_gate
            c_new[r, j] = row[H + j] * c_prev[r, j] + row[j] * g_gate
    flat_c = c_new.reshape(R * H)
    flat_tanh = tanh_c.reshape(R * H)
    for k in range(R * H):
        flat_tanh[k] = tanh(flat_c[k])
    for r in range(R):
        for j in range(H):
            h_new[r, j] = a[r, 2 * H + j] * tanh_c[r, j]


@serial_and_parallel
def lstm_backward_loop(dh, dc_last, c0, wh, gates, c, tanh_c, dh0, dc0, n_chunks):
    """Backpropagate through the LSTM recurrence run by ``lstm_forward``.

    dh (N, T, H), batch-major: upstream gradient on every h_t; dc_last (N, H): gradient on the
    final cell state (zeros for a plain sequence); c0, wh and the forward's gates,
    c and tanh_c.  ``gates`` is OVERWRITTEN with dA (T, N, 4H), the gradient of
    the pre-activations, for the weight-gradient GEMMs.
    Writes dh0 (N, H) and dc0 (N, H).
    """
    T, N, G = gates.shape
    H = G // 4
    batch_chunks = min(n_chunks, N)
    for p in prange(batch_chunks):
        lo, hi = chunk_bounds(p, batch_chunks, N)
        dh_next = np.zeros((hi - lo, H), dtype=gates.dtype)
        dc_next = dc_last[lo:hi].copy()
        for t in range(T - 1, -1, -1):
            for n in range(lo, hi):
                c_prev = c0[n] if t == 0 else c[t - 1, n]
                _gate_grad_pass(gates[t, n], c_prev, tanh_c[t, n], dh[n, t], dh_next[n - lo],
                                dc_next[n - lo])
            np.dot(gates[t, lo:hi], wh.T, dh_next)
        dh0[lo:hi] = dh_next
        dc0[lo:hi] = dc_next


@kernel(inline="always")
def _gate_grad_pass(a, c_prev, tanh_c, dh_t, dh_next, dc_next):
    """One row of the fused backward pass.

    a (4H,) holds the activations i, f, o, g on entry and dA (the gradient of the
    pre-activations) on exit; tanh_c (H,) = tanh(c_t); dh_t (H,) the upstream
    gradient of h_t; dh_next (H,) the gradient reaching h_t from step t+1 (read);
    dc_next (H,) the gradient on c_t from step t+1, replaced by the one on c_{t-1}.
    """
    H = tanh_c.shape[0]
    for j in range(H):
        i_gate = a[j]
        f_gate = a[H + j]
        o_gate = a[2 * H + j]
        g_gate = a[3 * H + j]
        dh_j = dh_t[j] + dh_next[j]
        dc_j = dc_next[j] + dh_j * o_gate * (1.0 - tanh_c[j] * tanh_c[j])
        dc_next[j] = dc_j * f_gate
        a[j] = dc_j * g_gate * i_gate * (1.0 - i_gate)
        a[H + j] = dc_j * c_prev[j] * f_gate * (1.0 - f_gate)
        a[2 * H + j] = dh_j * tanh_c[j] * o_gate * (1.0 - o_gate)
        a[3 * H + j] = dc_j * i_gate * (1.0 - g_gate * g_gate)
