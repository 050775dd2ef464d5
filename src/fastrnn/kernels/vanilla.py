"""Vanilla (tanh) RNN forward and backward over a whole sequence, one compiled call each.

Same layout and structure as ``lstm.py`` with a single gate:
``h_t = tanh(x_t Wx + h_{t-1} Wh + b)``.  The input projection of all steps is
one GEMM written into ``h`` itself, then each step adds the recurrent GEMM and the
bias and applies tanh in place; backward only needs ``h`` (tanh' = 1 - h^2).
"""

import numpy as np

from ._jit import kernel
from .activations import tanh
from .weight_grads import sequence_weight_gradients


@kernel
def rnn_forward(x, h0, wx, wh, b, h):
    """Run a tanh RNN over a sequence.

    Inputs (C-contiguous, one float dtype): x (T, N, D), h0 (N, H), wx (D, H),
      wh (H, H), b (H,).
    Output, overwritten: h (T, N, H), the hidden states h_1..h_T.
    """
    T, N, D = x.shape
    H = h0.shape[1]
    np.dot(x.reshape(T * N, D), wx, h.reshape(T * N, H))
    recurrent = np.empty((N, H), dtype=h.dtype)
    for t in range(T):
        h_prev = h0 if t == 0 else h[t - 1]
        np.dot(h_prev, wh, recurrent)
        for n in range(N):
            row, rec = h[t, n], recurrent[n]
            for j in range(H):
                row[j] = tanh(row[j] + rec[j] + b[j])


@kernel
def rnn_backward(dh, x, h0, wx, wh, h, grad_pre, dx, dh0, dwx, dwh, db):
    """Backpropagate through a tanh RNN sequence run by ``rnn_forward``.

    Inputs: dh (T, N, H) upstream gradient on every h_t; x, h0, wx, wh and the
      forward's h.
    Outputs, overwritten: grad_pre (T, N, H) scratch for the pre-activation
      gradients, dx (T, N, D), dh0 (N, H), dwx (D, H), dwh (H, H), db (H,).
    """
    T, N, D = x.shape
    H = h0.shape[1]
    dh_next = np.zeros((N, H), dtype=dh.dtype)
    for t in range(T - 1, -1, -1):
        for n in range(N):
            da, h_tn, dh_tn, dh_next_n = grad_pre[t, n], h[t, n], dh[t, n], dh_next[n]
            for j in range(H):
                da[j] = (dh_tn[j] + dh_next_n[j]) * (1.0 - h_tn[j] * h_tn[j])
        np.dot(grad_pre[t], wh.T, dh_next)
    dh0[:] = dh_next
    sequence_weight_gradients(x, h0, h, grad_pre, wx, dx, dwx, dwh, db)
