"""Inverted dropout with counter-based masks (:mod:`fastrnn.kernels.dropout`).

Whether unit j of stream s at time step t is kept, in layer ``layer`` at training
step ``step``, depends on (seed, step, layer, s, t, j) alone.  So a mask is
recomputed rather than stored: the backward pass, a recomputed segment of a long
window and a data-parallel rank holding streams [s0, s1) all see the same decisions
as one process holding the whole batch and window.
"""

import numpy as np

from .kernels.dropout import apply_dropout, layer_key

__all__ = ["CounterDropout"]

_MAX_KEY = 2 ** 63


def _check_index(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not 0 <= value < _MAX_KEY:
        raise ValueError(f"{name}: expected an integer in [0, 2**63), got {value!r}")
    return int(value)


class CounterDropout:
    """Dropout masks of probability ``rate`` keyed by ``seed``.

    ``apply(values, step, layer, first_stream, first_t)`` multiplies values (R, T, H)
    in place by the mask of streams first_stream..first_stream+R-1 and time steps
    first_t..first_t+T-1: 0 for a dropped unit, 1/(1 - rate) for a kept one.  The
    backward pass applies the same call to the gradient.  The keep probability is
    rounded to a multiple of 2**-32.
    """

    def __init__(self, rate, seed):
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) \
                or not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate: expected a probability in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = _check_index("seed", seed)
        keep = 1.0 - self.rate
        self.keep_threshold = np.uint64(min(round(keep * 2.0 ** 32), 2 ** 32))
        self._scale = 1.0 / keep

    def apply(self, values, step, layer, first_stream=0, first_t=0):
        """values (R, T, H) float32/float64, C-contiguous: multiplied in place by the mask."""
        if not isinstance(values, np.ndarray) or values.ndim != 3 \
                or values.dtype not in (np.float32, np.float64) \
                or not values.flags.c_contiguous or not values.flags.writeable:
            raise ValueError("dropout values: expected a writeable C-contiguous float32 or "
                             f"float64 array (R, T, H), got {_describe(values)}")
        if self.rate == 0.0 or values.size == 0:
            return values
        key = layer_key(self.seed, _check_index("step", step), _check_index("layer", layer))
        apply_dropout(values, np.uint64(key), _check_index("first_stream", first_stream),
                      _check_index("first_t", first_t), self.keep_threshold,
                      values.dtype.type(self._scale))
        return values


def _describe(values):
    if isinstance(values, np.ndarray):
        layout = "C-contiguous" if values.flags.c_contiguous else "non-contiguous"
        return f"{values.dtype} {values.shape} {layout}"
    return type(values).__name__
