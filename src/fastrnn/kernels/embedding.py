"""Word-embedding lookup and its gradient (scatter-add of repeated words)."""

from ._jit import kernel


@kernel
def embedding_forward(words, w, out):
    """out[r] = w[words[r]] for words (R,) int64 in [0, V), w (V, D), out (R, D)."""
    D = w.shape[1]
    for r in range(words.shape[0]):
        row = w[words[r]]
        for d in range(D):
            out[r, d] = row[d]


@kernel
def embedding_backward(words, dout, dw):
    """dw (V, D) = sum over r of onehot(words[r]) dout[r]; repeated words accumulate.

    Serial on purpose: two rows with the same word write the same dw row.
    """
    dw[:] = 0.0
    D = dw.shape[1]
    for r in range(words.shape[0]):
        target = dw[words[r]]
        for d in range(D):
            target[d] += dout[r, d]
