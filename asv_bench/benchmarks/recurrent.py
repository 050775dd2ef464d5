"""One recurrent layer: forward, and forward + backward, over sizes and dtypes;
and the per-step recurrent GEMM, OpenBLAS against packed weights."""

import sys

import numpy as np
from numba import njit

from fastrnn.kernels.packed import pack_panels, packed_product
from fastrnn.layer_utils import LSTM, VanillaRNN

from . import WARM_UP_TIMEOUT, warm_up

SIZES = ["10x50x10x20", "32x100x64x128", "64x100x256x256"]  # N x T x D x H
DTYPES = ["float64", "float32"]


def setup_cache():
    """Compile this module's kernels before its benchmarks, under a timeout of
    their own (see the package docstring)."""
    warm_up(sys.modules[__name__])


setup_cache.timeout = WARM_UP_TIMEOUT


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


# Not cached on disk: asv and the tests import this file under different module
# names, and a cached entry refers to the module it was compiled in.
@njit
def _openblas_steps(rows, w, out, steps):
    for _ in range(steps):
        np.dot(rows, w, out)


@njit
def _packed_steps(rows, panels, out, steps):
    for _ in range(steps):
        packed_product(rows, panels, out)


class PerStepProduct:
    """The GEMM inside a time loop, rows (R, K) @ Wh (K, M), 10 steps on one
    thread: OpenBLAS on the weights as they are against the packed panels the
    layers use from 65,536 weights (kernels.packed).  Shapes: one thread's rows
    of the LSTM forward at (32, 100, 64, 128) and (64, 50, 512, 1024)."""

    params = (["16x128x512", "32x1024x4096"], DTYPES)
    param_names = ["R x K x M", "dtype"]
    steps = 10

    def setup(self, shape, dtype):
        R, K, M = map(int, shape.split("x"))
        rng = np.random.default_rng(0)
        self.rows = rng.standard_normal((R, K)).astype(dtype)
        self.w = rng.standard_normal((K, M)).astype(dtype)
        self.panels = pack_panels(self.w, False)
        self.out = np.empty((R, M), dtype=dtype)
        self.time_openblas(shape, dtype)  # compile / load
        self.time_packed(shape, dtype)

    def time_openblas(self, shape, dtype):
        _openblas_steps(self.rows, self.w, self.out, self.steps)

    def time_packed(self, shape, dtype):
        _packed_steps(self.rows, self.panels, self.out, self.steps)
