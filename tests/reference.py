"""Slow, obviously-correct numpy reference for everything fastrnn computes.

Every function here is a direct transcription of the math, one time step at a time, the way the
classic numpy ``lib`` of the notebook is written. The test-suite compares each fastrnn kernel
against these functions. Everything is computed in float64, whatever the input dtype, so the
reference is also the "truth" that float32 results are measured against.

Shapes: N batch, T time steps, D input size, H hidden size, V vocabulary / output size.
"""

import numpy as np


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def sigmoid(z):
    """Logistic function 1 / (1 + exp(-z)), without overflow for large |z|.

    For z >= 0 it evaluates 1 / (1 + exp(-z)); for z < 0 the algebraically equal
    exp(z) / (1 + exp(z)), so exp never sees a large positive argument.
    """
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    ez = np.exp(z[~positive])
    out[~positive] = ez / (1.0 + ez)
    return out


# --------------------------------------------------------------------------------------------
# Vanilla RNN:  h_t = tanh(x_t Wx + h_{t-1} Wh + b)
# --------------------------------------------------------------------------------------------

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,) -> next_h (N, H), cache."""
    x, prev_h, Wx, Wh, b = _f64(x, prev_h, Wx, Wh, b)
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """dnext_h (N, H) -> dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,)."""
    x, prev_h, Wx, Wh, next_h = cache
    da = np.asarray(dnext_h, dtype=np.float64) * (1.0 - next_h ** 2)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    """x (N, T, D), h0 (N, H) -> h (N, T, H), cache (one step cache per time step)."""
    x, h0 = _f64(x, h0)
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H))
    caches = []
    prev_h = h0
    for t in range(T):
        prev_h, cache = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)
        h[:, t, :] = prev_h
        caches.append(cache)
    return h, caches


def rnn_backward(dh, caches):
    """dh (N, T, H): upstream gradient on every hidden state -> dx, dh0, dWx, dWh, db."""
    dh = np.asarray(dh, dtype=np.float64)
    N, T, H = dh.shape
    D = caches[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx = np.zeros((D, H))
    dWh = np.zeros((H, H))
    db = np.zeros(H)
    dprev_h = np.zeros((N, H))
    for t in reversed(range(T)):
        dx_t, dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t, :] + dprev_h, caches[t])
        dx[:, t, :] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


# --------------------------------------------------------------------------------------------
# LSTM, gate order i, f, o, g along the 4H axis:
#   a = x Wx + h Wh + b;  i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g)
#   c' = f * c + i * g;   h' = o * tanh(c')
# --------------------------------------------------------------------------------------------

def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """x (N, D), prev_h (N, H), prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)
    -> next_h (N, H), next_c (N, H), cache."""
    x, prev_h, prev_c, Wx, Wh, b = _f64(x, prev_h, prev_c, Wx, Wh, b)
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i = sigmoid(a[:, 0 * H:1 * H])
    f = sigmoid(a[:, 1 * H:2 * H])
    o = sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:4 * H])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """dnext_h (N, H), dnext_c (N, H)
    -> dx (N, D), dprev_h (N, H), dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,)."""
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dnext_h, dnext_c = _f64(dnext_h, dnext_c)
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c ** 2)
    di = dc * g
    df = dc * prev_c
    do = dnext_h * tanh_c
    dg = dc * i
    da = np.concatenate([
        di * i * (1.0 - i),
        df * f * (1.0 - f),
        do * o * (1.0 - o),
        dg * (1.0 - g ** 2),
    ], axis=1)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dprev_c = dc * f
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b, c0=None):
    """x (N, T, D), h0 (N, H), optional c0 (N, H) (zero when omitted)
    -> h (N, T, H), c (N, T, H) (cell states, c[:, -1] is the state to carry on), cache."""
    x, h0 = _f64(x, h0)
    N, T, _ = x.shape
    H = h0.shape[1]
    prev_c = np.zeros((N, H)) if c0 is None else np.asarray(c0, dtype=np.float64)
    prev_h = h0
    h = np.zeros((N, T, H))
    c = np.zeros((N, T, H))
    caches = []
    for t in range(T):
        prev_h, prev_c, cache = lstm_step_forward(x[:, t, :], prev_h, prev_c, Wx, Wh, b)
        h[:, t, :] = prev_h
        c[:, t, :] = prev_c
        caches.append(cache)
    return h, c, caches


def lstm_backward(dh, caches, dc_last=None):
    """dh (N, T, H), optional gradient on the last cell state dc_last (N, H)
    -> dx (N, T, D), dh0 (N, H), dc0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,)."""
    dh = np.asarray(dh, dtype=np.float64)
    N, T, H = dh.shape
    D = caches[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx = np.zeros((D, 4 * H))
    dWh = np.zeros((H, 4 * H))
    db = np.zeros(4 * H)
    dprev_h = np.zeros((N, H))
    dprev_c = np.zeros((N, H)) if dc_last is None else np.asarray(dc_last, dtype=np.float64)
    for t in reversed(range(T)):
        dx_t, dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t, :] + dprev_h, dprev_c, caches[t])
        dx[:, t, :] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dprev_c, dWx, dWh, db


# --------------------------------------------------------------------------------------------
# Word embedding, temporal fully connected layer, temporal softmax loss
# --------------------------------------------------------------------------------------------

def word_embedding_forward(x, W):
    """x int (N, T), W (V, D) -> out (N, T, D) with out[n, t] = W[x[n, t]]."""
    return np.asarray(W, dtype=np.float64)[x]


def word_embedding_backward(dout, x, V):
    """dout (N, T, D) -> dW (V, D); a word used several times receives the sum of its gradients."""
    dout = np.asarray(dout, dtype=np.float64)
    dW = np.zeros((V, dout.shape[2]))
    np.add.at(dW, x, dout)
    return dW


def temporal_fc_forward(x, w, b):
    """x (N, T, D), w (D, M), b (M,) -> out (N, T, M) = x w + b at every time step."""
    x, w, b = _f64(x, w, b)
    N, T, D = x.shape
    out = np.zeros((N, T, w.shape[1]))
    for t in range(T):
        out[:, t, :] = x[:, t, :] @ w + b
    return out


def temporal_fc_backward(dout, x, w):
    """dout (N, T, M) -> dx (N, T, D), dw (D, M), db (M,)."""
    dout, x, w = _f64(dout, x, w)
    N, T, D = x.shape
    dx = np.zeros((N, T, D))
    dw = np.zeros(w.shape)
    db = np.zeros(w.shape[1])
    for t in range(T):
        dx[:, t, :] = dout[:, t, :] @ w.T
        dw += x[:, t, :].T @ dout[:, t, :]
        db += dout[:, t, :].sum(axis=0)
    return dx, dw, db


def temporal_softmax_loss(x, y, mask, dim_average=True):
    """x (N, T, V) scores, y int (N, T) labels, mask (N, T) -> loss, dx (N, T, V).

    loss = sum over (n, t) with mask[n, t] of -log softmax(x[n, t])[y[n, t]], divided by N when
    dim_average; dx = (softmax - onehot) * mask, divided by N when dim_average.
    """
    x = np.asarray(x, dtype=np.float64)
    mask = np.asarray(mask, dtype=np.float64)
    N, T, V = x.shape
    loss = 0.0
    dx = np.zeros((N, T, V))
    for n in range(N):
        for t in range(T):
            shifted = x[n, t] - x[n, t].max()
            log_prob = shifted - np.log(np.exp(shifted).sum())
            loss -= mask[n, t] * log_prob[y[n, t]]
            dx[n, t] = np.exp(log_prob) * mask[n, t]
            dx[n, t, y[n, t]] -= mask[n, t]
    if dim_average:
        loss /= N
        dx /= N
    return loss, dx


# --------------------------------------------------------------------------------------------
# Optimizers: each step(params, grads) updates the arrays of `params` in place.
# --------------------------------------------------------------------------------------------

class SGD:
    """p -= lr * g"""

    def __init__(self, lr):
        self.lr = lr

    def step(self, params, grads):
        for k in params:
            params[k] -= self.lr * grads[k]


class SGDM:
    """v = momentum * v - lr * g;  p += v"""

    def __init__(self, lr, momentum):
        self.lr = lr
        self.momentum = momentum
        self.velocity = {}

    def step(self, params, grads):
        for k in params:
            v = self.velocity.get(k, np.zeros_like(params[k]))
            v = self.momentum * v - self.lr * grads[k]
            self.velocity[k] = v
            params[k] += v


class RMSProp:
    """cache = decay * cache + (1 - decay) * g**2;  p -= lr * g / (sqrt(cache) + eps)"""

    def __init__(self, lr, decay, eps):
        self.lr = lr
        self.decay = decay
        self.eps = eps
        self.cache = {}

    def step(self, params, grads):
        for k in params:
            g = grads[k]
            cache = self.cache.get(k, np.zeros_like(params[k]))
            cache = self.decay * cache + (1.0 - self.decay) * g ** 2
            self.cache[k] = cache
            params[k] -= self.lr * g / (np.sqrt(cache) + self.eps)


class Adam:
    """t += 1 per step();  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g**2;
    p -= lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)"""

    def __init__(self, lr, beta1, beta2, eps):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.t = 0
        self.m = {}
        self.v = {}

    def step(self, params, grads):
        self.t += 1
        for k in params:
            g = grads[k]
            m = self.beta1 * self.m.get(k, np.zeros_like(params[k])) + (1.0 - self.beta1) * g
            v = self.beta2 * self.v.get(k, np.zeros_like(params[k])) + (1.0 - self.beta2) * g ** 2
            self.m[k], self.v[k] = m, v
            m_hat = m / (1.0 - self.beta1 ** self.t)
            v_hat = v / (1.0 - self.beta2 ** self.t)
            params[k] -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def splitmix64_finaliser(z):
    """SplitMix64's output function on a Python int, modulo 2**64."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def dropout_keep(seed, step, layer, streams, times, H, keep):
    """bool (len(streams), len(times), H): which units counter-based dropout keeps,
    one Python-int hash at a time (see fastrnn.kernels.dropout for the key chain)."""
    mix = splitmix64_finaliser
    key = mix(seed ^ _GOLDEN)
    key = mix(key ^ ((step * _GOLDEN) & _MASK64))
    key = mix(key ^ ((layer * _GOLDEN + 1) & _MASK64))
    threshold = min(round(keep * 2.0 ** 32), 2 ** 32)
    out = np.zeros((len(streams), len(times), H), dtype=bool)
    for r, stream in enumerate(streams):
        for i, t in enumerate(times):
            row = mix((mix(key ^ ((stream * _GOLDEN) & _MASK64)) + t * _GOLDEN) & _MASK64)
            for j in range(H):
                bits = mix((row + (j // 2) * _GOLDEN) & _MASK64)
                half = bits & 0xFFFFFFFF if j % 2 == 0 else bits >> 32
                out[r, i, j] = half < threshold
    return out
