"""LSTM forward and backward over a whole sequence, one compiled call each.

Layout (see ``kernels.md``): everything is time-major ``(T, N, ...)`` and
C-contiguous, so that each step's slice is one contiguous ``(N, ...)`` block that
BLAS takes without a copy.  Gate order along the ``4H`` axis is i, f, o, g.

Forward: the input projection of all steps is ONE GEMM ``(T*N, D) x (D, 4H)``
written straight into the gate buffer; the loop does the recurrent GEMM
``h_{t-1} (N, H) x Wh (H, 4H)`` and one fused pass that adds it and the bias,
applies the nonlinearities, updates the cell and writes ``h_t``.  The gate buffer
keeps the activations (i, f, o, g) for backward; ``tanh(c_t)`` is recomputed there
rather than stored (cheaper than the memory traffic).

Backward: the loop does the fused gate-gradient pass, writing ``dA_t`` over the
gate activations it no longer needs, and ``dh_{t-1} = dA_t Wh^T``; after the loop
``dx``, ``dWx``, ``dWh`` are single GEMMs over all ``T*N`` rows.
"""

import numpy as np

from ._jit import kernel
from .activations import sigmoid, tanh
from .weight_grads import sequence_weight_gradients


@kernel
def lstm_forward(x, h0, c0, wx, wh, b, gates, c, h):
    """Run an LSTM over a sequence.

    Inputs (C-contiguous, one float dtype):
      x (T, N, D), h0 (N, H), c0 (N, H), wx (D, 4H), wh (H, 4H), b (4H,).
    Outputs, preallocated and overwritten:
      gates (T, N, 4H): activations i, f, o, g of every step (kept for backward);
      c (T, N, H): cell states c_1..c_T;  h (T, N, H): hidden states h_1..h_T.
    """
    T, N, D = x.shape
    H = h0.shape[1]
    np.dot(x.reshape(T * N, D), wx, gates.reshape(T * N, 4 * H))
    recurrent = np.empty((N, 4 * H), dtype=gates.dtype)
    for t in range(T):
        h_prev = h0 if t == 0 else h[t - 1]
        np.dot(h_prev, wh, recurrent)
        for n in range(N):
            c_prev = c0[n] if t == 0 else c[t - 1, n]
            _gate_pass(gates[t, n], recurrent[n], b, c_prev, c[t, n], h[t, n])


@kernel(inline="always")
def _gate_pass(a, rec, b, c_prev, c_new, h_new):
    """One row of the fused forward pass: a (4H,) holds x_t Wx on entry and the
    activations i, f, o, g on exit; writes c_new (H,) and h_new (H,).

    Written as separate simple loops over contiguous rows, each of which LLVM
    vectorises (one loop doing everything is not vectorised: 3x slower).
    """
    H = c_prev.shape[0]
    for j in range(4 * H):
        a[j] += rec[j] + b[j]
    for j in range(3 * H):
        a[j] = sigmoid(a[j])
    for j in range(3 * H, 4 * H):
        a[j] = tanh(a[j])
    for j in range(H):
        c_new[j] = a[H + j] * c_prev[j] + a[j] * a[3 * H + j]
    for j in range(H):
        h_new[j] = a[2 * H + j] * tanh(c_new[j])


@kernel
def lstm_backward(dh, dc_last, x, h0, c0, wx, wh, gates, c, h, dx, dh0, dc0, dwx, dwh, db):
    """Backpropagate through an LSTM sequence run by ``lstm_forward``.

    Inputs: dh (T, N, H) upstream gradient on every h_t; dc_last (N, H) gradient on
      the final cell state c_T (zeros for a plain sequence); x, h0, c0, wx, wh and
      the forward's gates, c, h.  ``gates`` is OVERWRITTEN with dA (T, N, 4H), the
      gradient of the pre-activations: the forward state is consumed.
    Outputs, overwritten: dx (T, N, D), dh0 (N, H), dc0 (N, H), dwx (D, 4H),
      dwh (H, 4H), db (4H,).
    """
    T, N, D = x.shape
    H = h0.shape[1]
    dh_next = np.zeros((N, H), dtype=dh.dtype)
    dc_next = dc_last.copy()
    tanh_c = np.empty(H, dtype=dh.dtype)
    for t in range(T - 1, -1, -1):
        for n in range(N):
            c_prev = c0[n] if t == 0 else c[t - 1, n]
            _gate_grad_pass(gates[t, n], c_prev, c[t, n], dh[t, n], dh_next[n], dc_next[n], tanh_c)
        np.dot(gates[t], wh.T, dh_next)
    dh0[:] = dh_next
    dc0[:] = dc_next
    sequence_weight_gradients(x, h0, h, gates, wx, dx, dwx, dwh, db)


@kernel(inline="always")
def _gate_grad_pass(a, c_prev, c_t, dh_t, dh_next, dc_next, tanh_c):
    """One row of the fused backward pass.

    a (4H,) holds the activations i, f, o, g on entry and dA (the gradient of the
    pre-activations) on exit; dh_t (H,) is the upstream gradient of h_t; dh_next
    (H,) the gradient reaching h_t from step t+1 (read); dc_next (H,) the gradient
    on c_t from step t+1, replaced by the gradient on c_{t-1}; tanh_c (H,) scratch.
    """
    H = c_t.shape[0]
    for j in range(H):
        tanh_c[j] = tanh(c_t[j])
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
