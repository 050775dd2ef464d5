"""The after-the-loop GEMMs of a recurrent backward pass (LSTM and vanilla RNN).

Inside the time loop only the recurrent GEMM is needed; every other gradient is a
function of all steps' pre-activation gradients at once, so it is computed here as
one GEMM over all T*N rows instead of T small ones.
"""

import numpy as np

from ._jit import kernel


@kernel
def sequence_weight_gradients(x, h0, h, grad_pre, wx, dx, dwx, dwh, db):
    """The after-the-loop GEMMs shared by the LSTM and the vanilla RNN.

    grad_pre (T, N, G) is the gradient of the pre-activations (G = 4H or H).
    dx = dA Wx^T;  dWx = X^T dA;  dWh = Hprev^T dA with Hprev = [h0, h_1..h_{T-1}];
    db = column sums of dA.
    """
    T, N, D = x.shape
    H = h0.shape[1]
    G = grad_pre.shape[2]
    rows = grad_pre.reshape(T * N, G)
    np.dot(rows, wx.T, dx.reshape(T * N, D))
    np.dot(x.reshape(T * N, D).T, rows, dwx)
    np.dot(h0.T, grad_pre[0], dwh)
    if T > 1:
        later = np.dot(h[: T - 1].reshape((T - 1) * N, H).T, grad_pre[1:].reshape((T - 1) * N, G))
        for k in range(H):
            for j in range(G):
                dwh[k, j] += later[k, j]
    db[:] = 0.0
    for r in range(T * N):
        for j in range(G):
            db[j] += rows[r, j]
