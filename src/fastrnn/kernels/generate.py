"""Token-by-token generation from an embedding -> stacked cells -> linear model.

The whole loop (cell steps, output layer, softmax, top-k, draw) runs in one
compiled call: per token there is no Python and no numpy temporary.  Random draws
come in as an array of uniforms made by the caller's seeded numpy Generator, so
a run is reproducible and the kernel keeps no random state.
"""

import numpy as np

from numba import prange

from ._jit import kernel, serial_and_parallel
from .activations import exp_nonpositive, tanh
from .blocked import chunk_bounds, copy_row, transposed_copy
from .lstm import gate_block, tiled_bias_and_scale


@kernel(inline="always")
def _cell_step(a, wh, b, scale, h, c, is_lstm, rec, tanh_c):
    """One step of one layer for a single stream, updating h (1, H) and c (1, H).

    a (1, G): the input projection x Wx on entry (scratch, overwritten); wh (H, G);
    b (G,); scale (G,) the LSTM gate scale of ``tiled_bias_and_scale`` for one
    row; rec (1, G) and tanh_c (1, H) scratch.  G = 4H for an LSTM (the same fused
    pass as the sequence kernel), H for a tanh RNN.
    """
    np.dot(h, wh, rec)
    if is_lstm:
        gate_block(a, rec, b, scale, c, c, tanh_c, h)
    else:
        for j in range(h.shape[1]):
            h[0, j] = tanh(a[0, j] + rec[0, j] + b[j])


@kernel
def kth_largest(values, k, heap):
    """The k-th largest of values (V,), 1 <= k <= V (ties counted, as
    ``np.partition(values, V - k)[V - k]``), kept in a min-heap of the k largest
    seen so far in the scratch heap (>= k,); heap[k:] is not touched.  O(V log k).
    (np.partition nearly doubled the first compile of the generation kernel:
    docs/tuning.md#compile-time.)"""
    V = values.shape[0]
    for i in range(k):  # the first k values, each sifted up
        heap[i] = values[i]
        j = i
        while j > 0:
            parent = (j - 1) // 2
            if heap[parent] <= heap[j]:
                break
            heap[parent], heap[j] = heap[j], heap[parent]
            j = parent
    for v in range(k, V):  # each larger value replaces the root and sifts down
        if values[v] > heap[0]:
            heap[0] = values[v]
            j = 0
            while 2 * j + 1 < k:
                child = 2 * j + 1
                if child + 1 < k and heap[child + 1] < heap[child]:
                    child += 1
                if heap[j] <= heap[child]:
                    break
                heap[j], heap[child] = heap[child], heap[j]
                j = child
    return heap[0]


@kernel
def choose_token(logits, temperature, top_k, uniform, probs):
    """Pick a token from logits (V,): argmax when temperature == 0, else a draw
    from softmax(logits / temperature) restricted to the top_k largest (0 = all;
    ties with the k-th largest are kept), by the uniform in [0, 1): the first
    token whose running probability exceeds uniform * total.  probs (V,) scratch."""
    V = logits.shape[0]
    if temperature == 0.0 or top_k == 1:
        return np.argmax(logits)
    threshold = -np.inf
    if 0 < top_k < V:
        threshold = kth_largest(logits, top_k, probs)  # (probs is rewritten below)
    top = np.max(logits)
    for v in range(V):
        probs[v] = exp_nonpositive((logits[v] - top) / temperature)
    total = 0.0
    for v in range(V):
        if logits[v] < threshold:
            probs[v] = 0.0
        total += probs[v]
    target = uniform * total
    running = 0.0
    last = 0
    for v in range(V):
        if probs[v] > 0.0:
            running += probs[v]
            last = v
            if running > target:
                return v
    return last


@serial_and_parallel
def generate(embedding, wxs, whs, bs, fc_w, fc_b, is_lstm, prime, temperature, top_k,
             uniforms, h, c, out, n_chunks):
    """Feed ``prime`` then generate ``out.shape[0]`` tokens.

    embedding (V, E); wxs, whs, bs: tuples with one (D_l, G), (H, G), (G,) array
    per layer (D_0 = E, D_l = H above); fc_w (H, V), fc_b (V,); prime (P,) int64,
    P >= 1, tokens in [0, V); temperature >= 0 (0 = greedy); top_k >= 0
    (0 = no cut); uniforms (n,) float64 in [0, 1), one per generated token;
    h, c (L, H) the state of every layer, updated in place (c unused for a tanh
    RNN); n_chunks: blocks of the output layer (1 = serial, see
    ``fastrnn._threads.generation_chunks``).  Writes out (n,) int64.
    """
    L = h.shape[0]
    H = h.shape[1]
    G = bs[0].shape[0]
    V = fc_b.shape[0]
    # The first layer's input projection depends on the token only: computed the
    # first time a token is met, then reused (at most min(steps, V) GEMVs).
    # np.empty leaves untouched rows unallocated by the OS.
    projected = np.empty((V, G), dtype=h.dtype)
    known = np.zeros(V, dtype=np.bool_)
    a = np.empty((1, G), dtype=h.dtype)
    rec = np.empty((1, G), dtype=h.dtype)
    tanh_c = np.empty((1, H), dtype=h.dtype)
    scale = tiled_bias_and_scale(bs[0], 1)[1]
    # The output layer, read in full at every token, is cut into n_chunks blocks
    # of vocabulary rows (each thread keeps its block hot in its own cache).
    fc_rows = transposed_copy(fc_w)
    scores = np.empty((V, 1), dtype=h.dtype)
    last_h = np.empty((H, 1), dtype=h.dtype)
    logits = np.empty(V, dtype=np.float64)
    probs = np.empty(V, dtype=np.float64)
    n_new = out.shape[0]
    n_steps = prime.shape[0] + n_new - 1
    token = prime[0]
    for step in range(n_steps):
        if not known[token]:
            np.dot(embedding[token:token + 1], wxs[0], projected[token:token + 1])
            known[token] = True
        copy_row(projected[token], a[0])
        for layer in range(L):
            if layer > 0:
                np.dot(h[layer - 1:layer], wxs[layer], a)
            _cell_step(a, whs[layer], bs[layer], scale, h[layer:layer + 1], c[layer:layer + 1],
                       is_lstm, rec, tanh_c)
        k = step - prime.shape[0] + 1
        if k < 0:
            token = prime[step + 1]
            continue
        copy_row(h[L - 1], last_h[:, 0])
        for p in prange(n_chunks):
            lo, hi = chunk_bounds(p, n_chunks, V)
            if hi > lo:
                np.dot(fc_rows[lo:hi], last_h, scores[lo:hi])
                for v in range(lo, hi):
                    logits[v] = scores[v, 0] + fc_b[v]
        token = choose_token(logits, temperature, top_k, uniforms[k], probs)
        out[k] = token
