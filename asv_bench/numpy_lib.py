"""The classic numpy ``lib`` of the notebook, as the speed baseline of ``compare.py``.

One time step at a time, numpy calls per step, arithmetic in the dtype of the
inputs (float32 stays float32): what a user of the notebook runs today.  The
correctness reference of the test-suite is ``tests/reference.py`` (float64 truth);
this module exists only to be timed.

Shapes: N batch, T steps, D input size, H hidden size, V vocabulary.
"""

import numpy as np


def sigmoid(x):
    """Stable logistic function, as the classic lib writes it."""
    pos = x >= 0
    z = np.exp(np.where(pos, -x, x))
    return np.where(pos, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)


def lstm_forward(x, h0, wx, wh, b):
    """x (N, T, D), h0 (N, H) -> h (N, T, H) and the per-step caches."""
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.empty((N, T, H), dtype=x.dtype)
    prev_h, prev_c = h0, np.zeros_like(h0)
    caches = []
    for t in range(T):
        a = x[:, t, :] @ wx + prev_h @ wh + b
        i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H])
        g = np.tanh(a[:, 3 * H:])
        next_c = f * prev_c + i * g
        tanh_c = np.tanh(next_c)
        next_h = o * tanh_c
        caches.append((x[:, t, :], prev_h, prev_c, i, f, o, g, tanh_c))
        h[:, t, :] = next_h
        prev_h, prev_c = next_h, next_c
    return h, caches


def lstm_backward(dh, caches, wx, wh):
    """dh (N, T, H) -> dx (N, T, D), dh0, dwx, dwh, db."""
    N, T, H = dh.shape
    D = wx.shape[0]
    dx = np.empty((N, T, D), dtype=dh.dtype)
    dwx, dwh, db = np.zeros_like(wx), np.zeros_like(wh), np.zeros(4 * H, dtype=dh.dtype)
    dnext_h = np.zeros((N, H), dtype=dh.dtype)
    dnext_c = np.zeros((N, H), dtype=dh.dtype)
    for t in reversed(range(T)):
        x_t, prev_h, prev_c, i, f, o, g, tanh_c = caches[t]
        dh_t = dh[:, t, :] + dnext_h
        dc = dnext_c + dh_t * o * (1 - tanh_c ** 2)
        da = np.hstack((dc * g * i * (1 - i), dc * prev_c * f * (1 - f),
                        dh_t * tanh_c * o * (1 - o), dc * i * (1 - g ** 2)))
        dx[:, t, :] = da @ wx.T
        dnext_h = da @ wh.T
        dnext_c = dc * f
        dwx += x_t.T @ da
        dwh += prev_h.T @ da
        db += da.sum(axis=0)
    return dx, dnext_h, dwx, dwh, db


def rnn_forward(x, h0, wx, wh, b):
    """x (N, T, D), h0 (N, H) -> h (N, T, H) and the per-step caches."""
    N, T, _ = x.shape
    h = np.empty((N, T, h0.shape[1]), dtype=x.dtype)
    prev_h = h0
    caches = []
    for t in range(T):
        next_h = np.tanh(x[:, t, :] @ wx + prev_h @ wh + b)
        caches.append((x[:, t, :], prev_h, next_h))
        h[:, t, :] = next_h
        prev_h = next_h
    return h, caches


def rnn_backward(dh, caches, wx, wh):
    """dh (N, T, H) -> dx (N, T, D), dh0, dwx, dwh, db."""
    N, T, H = dh.shape
    dx = np.empty((N, T, wx.shape[0]), dtype=dh.dtype)
    dwx, dwh, db = np.zeros_like(wx), np.zeros_like(wh), np.zeros(H, dtype=dh.dtype)
    dnext_h = np.zeros((N, H), dtype=dh.dtype)
    for t in reversed(range(T)):
        x_t, prev_h, next_h = caches[t]
        da = (dh[:, t, :] + dnext_h) * (1 - next_h ** 2)
        dx[:, t, :] = da @ wx.T
        dnext_h = da @ wh.T
        dwx += x_t.T @ da
        dwh += prev_h.T @ da
        db += da.sum(axis=0)
    return dx, dnext_h, dwx, dwh, db


class LanguageModel:
    """Embedding -> LSTM -> temporal fc -> softmax loss -> Adam, the notebook's
    training iteration written as the classic lib does it."""

    def __init__(self, V, D, H, seed=0, lr=5e-4):
        rng = np.random.default_rng(seed)
        self.params = {
            "we": rng.standard_normal((V, D)),
            "wx": 0.02 * rng.standard_normal((D, 4 * H)),
            "wh": 0.02 * rng.standard_normal((H, 4 * H)),
            "b": np.zeros(4 * H),
            "fc_w": 0.02 * rng.standard_normal((H, V)),
            "fc_b": np.zeros(V),
        }
        self.m = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.t = 0
        self.lr = lr
        self.H = H

    def train_step(self, words, labels):
        """One forward, loss, backward and Adam update on words/labels (N, T)."""
        p = self.params
        N, T = words.shape
        emb = p["we"][words]
        h, caches = lstm_forward(emb, np.zeros((N, self.H)), p["wx"], p["wh"], p["b"])
        scores = h.reshape(N * T, -1) @ p["fc_w"] + p["fc_b"]
        probs = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        flat = labels.reshape(-1)
        loss = -np.sum(np.log(probs[np.arange(N * T), flat])) / N
        dscores = probs
        dscores[np.arange(N * T), flat] -= 1
        dscores /= N
        grads = {"fc_w": h.reshape(N * T, -1).T @ dscores, "fc_b": dscores.sum(axis=0)}
        dh = (dscores @ p["fc_w"].T).reshape(N, T, -1)
        demb, _, grads["wx"], grads["wh"], grads["b"] = lstm_backward(dh, caches, p["wx"], p["wh"])
        grads["we"] = np.zeros_like(p["we"])
        np.add.at(grads["we"], words, demb)
        self.t += 1
        for k, g in grads.items():
            self.m[k] = 0.9 * self.m[k] + 0.1 * g
            self.v[k] = 0.999 * self.v[k] + 0.001 * g * g
            m_hat = self.m[k] / (1 - 0.9 ** self.t)
            v_hat = self.v[k] / (1 - 0.999 ** self.t)
            p[k] -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        return loss
