"""Token-by-token sampling from an embedding -> stacked cells -> linear model: the one
path behind the notebook's :meth:`fastrnn.rnn.LanguageModelRNN.sample` and the text
generation of :mod:`fastrnn.lm`.

The whole loop runs in one compiled call (:mod:`fastrnn.kernels.generate`); the random
draws are uniforms from the caller's numpy Generator, so a seed makes them reproducible.
Shapes: P prime tokens, L layers, E embedding size, H hidden size, V vocabulary size.
"""

import collections
import math

import numpy as np

from . import _checks
from ._threads import generation_chunks
from .kernels.generate import generate as generate_kernel

__all__ = ["SamplingWeights", "sampling_weights", "sample_ids", "check_length",
           "check_temperature", "check_top_k"]

SamplingWeights = collections.namedtuple(
    "SamplingWeights", "embedding wxs whs biases fc_w fc_b is_lstm")
SamplingWeights.__doc__ = """The weights as the generation kernel takes them, C-contiguous,
of one float dtype: embedding (V, E); wxs, whs, biases: one array per layer, (E or H, G),
(H, G), (G,) with G = 4H for an LSTM, H for a tanh RNN; fc_w (H, V); fc_b (V,)."""


def sampling_weights(embedding, cells, output):
    """The :class:`SamplingWeights` of a word_embedding, a list of recurrent cells (all
    LSTM or all tanh RNN) and a temporal_fc layer, read (and checked) from their params now."""
    per_layer = [cell._weights() for cell in cells]
    dtype = per_layer[0][0].dtype

    def ready(array):
        return np.ascontiguousarray(array, dtype=dtype)

    fc_w, fc_b = output._weights()
    return SamplingWeights(ready(embedding._weight()),
                           tuple(ready(wx) for wx, _, _ in per_layer),
                           tuple(ready(wh) for _, wh, _ in per_layer),
                           tuple(ready(b) for _, _, b in per_layer),
                           ready(fc_w), ready(fc_b), cells[0].gates_per_unit == 4)


def check_length(value, name="length"):
    _checks.require(_checks.is_int(value) and value >= 0, name, "an integer >= 0", value)
    return value


def check_temperature(value):
    _checks.require(_checks.is_number(value) and math.isfinite(value) and value >= 0,
                    "temperature", "a number >= 0 (0 = greedy)", value)
    return value


def check_top_k(value):
    _checks.require(_checks.is_int(value) and value >= 0, "top_k", "an integer >= 0 (0 = all)",
                    value)
    return value


def sample_ids(weights, prime, length, temperature=0.0, top_k=0, rng=None, state=None):
    """Feed ``prime`` (P,) token ids and draw ``length`` more: int64 (length,).

    weights: :class:`SamplingWeights`.  temperature 0 is greedy (argmax); otherwise
    tokens are drawn from softmax(scores / temperature), among the ``top_k`` best
    (0 = all).  rng: numpy Generator of the draws (one uniform per token; a fresh
    unseeded one when None).  state: (h, c), each (L, 1, H), the state of the one
    stream before ``prime`` (zeros when None), updated in place: afterwards it has
    consumed ``prime`` and all but the last generated token, so sampling again from
    ``out[-1:]`` with the same state and generator continues the same sequence
    (c is unused by a tanh RNN).
    """
    V, dtype = weights.fc_b.shape[0], weights.fc_b.dtype
    L, H = len(weights.wxs), weights.whs[0].shape[0]
    prime = np.asarray(prime)
    if prime.ndim != 1 or prime.size < 1 or not np.issubdtype(prime.dtype, np.integer):
        raise ValueError(f"prime: expected a non-empty 1-D array of token ids, got {prime!r}")
    if prime.min() < 0 or prime.max() >= V:
        raise ValueError(f"prime: expected token ids in [0, {V}), "
                         f"got {prime.min()}..{prime.max()}")
    check_length(length)
    check_temperature(temperature)
    check_top_k(top_k)
    shape = (L, 1, H)
    h, c = (np.zeros(shape, dtype), np.zeros(shape, dtype)) if state is None else state
    for name, array in (("h", h), ("c", c)):
        if not (isinstance(array, np.ndarray) and array.shape == shape
                and array.dtype == dtype and array.flags.c_contiguous):
            raise ValueError(f"state {name}: expected a C-contiguous {dtype.name} array of "
                             f"shape (L, 1, H) = {shape}, "
                             f"got {getattr(array, 'dtype', type(array).__name__)} "
                             f"{getattr(array, 'shape', '')}")
    rng = np.random.default_rng() if rng is None else rng
    uniforms = rng.random(int(length))
    out = np.empty(int(length), dtype=np.int64)
    if length == 0:
        return out
    generate_kernel(weights.embedding, weights.wxs, weights.whs, weights.biases, weights.fc_w,
                    weights.fc_b, weights.is_lstm, np.ascontiguousarray(prime, dtype=np.int64),
                    float(temperature), int(top_k), uniforms, h.reshape(L, H),
                    c.reshape(L, H), out,
                    generation_chunks(V, H))
    return out
