"""One recurrent layer: forward, and forward + backward, over sizes and dtypes."""

import numpy as np

from fastrnn.layer_utils import LSTM, VanillaRNN

SIZES = ["10x50x10x20", "32x100x64x128", "64x100x256x256"]  # N x T x D x H
DTYPES = ["float64", "float32"]


class _Recurrent:
    params = (SIZES, DTYPES)
    param_names = ["N x T x D x H", "dtype"]
    layer_class = None

    def setup(self, size, dtype):
        N, T, D, H = map(int, size.split("x"))
        rng = np.random.default_rng(0)
        np.random.seed(0)
        self.layer = self.layer_class(D, H, init_scale=0.1, dtype=dtype)
        self.x = rng.standard_normal((N, T, D)).astype(dtype)
        self.h0 = rng.standard_normal((N, H)).astype(dtype)
        self.dh = rng.standard_normal((N, T, H)).astype(dtype)
        self.time_forward_backward(size, dtype)  # compile / load the kernels

    def time_forward(self, size, dtype):
        self.layer.forward(self.x, self.h0)

    def time_forward_backward(self, size, dtype):
        self.layer.forward(self.x, self.h0)
        self.layer.backward(self.dh)

    def peakmem_forward_backward(self, size, dtype):
        self.time_forward_backward(size, dtype)


class LSTMLayer(_Recurrent):
    layer_class = LSTM


class VanillaRNNLayer(_Recurrent):
    layer_class = VanillaRNN
