"""Counter-based dropout masks: every element's keep/drop decision is a pure
function of (seed, step, layer, stream, time step, unit).

A mask is never stored: it is recomputed wherever it is needed (the forward, the
backward, a recomputed segment of a long window, another MPI rank's share of the
streams), so its memory does not grow with the window and it does not depend on
how the batch or the window is cut into pieces.

The hash is SplitMix64's finaliser applied to a chain of the key's fields; each
64-bit result gives the decisions of two adjacent units (32 bits each), kept when
the 32-bit value is below ``keep_threshold`` = round(keep * 2**32).
"""

import numpy as np
from numba import prange

from ._jit import kernel

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)


@kernel
def mix64(z):
    """SplitMix64's finaliser: a bijection of uint64 that mixes every bit into every bit."""
    z = (z ^ (z >> np.uint64(30))) * _MUL1
    z = (z ^ (z >> np.uint64(27))) * _MUL2
    return z ^ (z >> np.uint64(31))


@kernel
def row_key(key, stream, t):
    """The key of one (stream, time step) row of a layer's mask (uint64)."""
    return mix64(mix64(np.uint64(key) ^ (np.uint64(stream) * GOLDEN)) + np.uint64(t) * GOLDEN)


@kernel
def layer_key(seed, step, layer):
    """The key of one layer's masks at one training step (uint64)."""
    key = mix64(np.uint64(seed) ^ GOLDEN)
    key = mix64(key ^ (np.uint64(step) * GOLDEN))
    return mix64(key ^ (np.uint64(layer) * GOLDEN + np.uint64(1)))


@kernel(parallel=True)
def apply_dropout(values, key, first_stream, first_t, keep_threshold, scale):
    """values (R, T, H) float, in place: each element kept and multiplied by ``scale``
    or set to 0, by the decision of (stream first_stream + r, time first_t + t, unit j).

    key: :func:`layer_key` of (seed, step, layer); keep_threshold: uint64 in
    [0, 2**32]: an element is kept when its 32-bit draw is below it.
    """
    # Every integer is made uint64 here: a key that came back from Numba as a Python
    # int would otherwise be typed int64, and int64 mixed with uint64 is not uint64.
    key = np.uint64(key)
    keep_threshold = np.uint64(keep_threshold)
    first_stream = np.uint64(first_stream)
    first_t = np.uint64(first_t)
    R, T, H = values.shape
    zero = values.dtype.type(0)
    for rt in prange(R * T):
        r = rt // T
        t = rt - r * T
        row = row_key(key, first_stream + np.uint64(r), first_t + np.uint64(t))
        for pair in range((H + 1) // 2):
            bits = mix64(row + np.uint64(pair) * GOLDEN)
            j = 2 * pair
            if (bits & _LOW32) < keep_threshold:
                values[r, t, j] *= scale
            else:
                values[r, t, j] = zero
            if j + 1 < H:
                if (bits >> np.uint64(32)) < keep_threshold:
                    values[r, t, j + 1] *= scale
                else:
                    values[r, t, j + 1] = zero
