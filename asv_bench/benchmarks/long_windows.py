"""Long windows: one LSTM layer's forward + backward over a long sequence, the
full path (every step stored) against checkpointing in time
(``checkpoint_every="auto"``: states stored every K steps, the rest recomputed
in backward; see fastrnn.recompute).  The time ratio and the memory at 10^5 and
10^6 steps are measured by ``asv_bench/long_window.py``."""

import sys

import numpy as np

from fastrnn.layer_utils import LSTM

from . import WARM_UP_TIMEOUT, warm_up

SIZES = ["8x1000x64x256", "8x10000x64x256"]  # N x T x D x H, float32
SETTINGS = ["auto", "full"]  # checkpoint_every "auto" and 0


def setup_cache():
    """Compile this module's kernels before its benchmarks, under a timeout of
    their own (see the package docstring)."""
    warm_up(sys.modules[__name__])


setup_cache.timeout = WARM_UP_TIMEOUT


class LongWindow:
    params = (SIZES, SETTINGS)
    param_names = ["N x T x D x H", "checkpoint_every"]

    def setup(self, size, setting):
        N, T, D, H = map(int, size.split("x"))
        rng = np.random.default_rng(0)
        np.random.seed(0)
        checkpoint_every = 0 if setting == "full" else setting
        self.layer = LSTM(D, H, init_scale=0.05, dtype=np.float32,
                          checkpoint_every=checkpoint_every)
        self.x = rng.standard_normal((N, T, D), dtype=np.float32)
        self.h0 = np.zeros((N, H), np.float32)
        self.dh = rng.standard_normal((N, T, H), dtype=np.float32)
        self.time_forward_backward(size, setting)  # compile / load the kernels

    def time_forward_backward(self, size, setting):
        self.layer.forward(self.x, self.h0)
        self.layer.backward(self.dh)

    def peakmem_forward_backward(self, size, setting):
        self.time_forward_backward(size, setting)
