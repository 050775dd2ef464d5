"""The notebook's language model: one training iteration, the softmax loss, sampling;
and the first layer of fastrnn.lm's model, fed token ids."""

import sys

import numpy as np

from fastrnn.layer_utils import LSTM, temporal_softmax_loss, word_embedding
from fastrnn.optim import Adam
from fastrnn.rnn import LanguageModelRNN

from . import WARM_UP_TIMEOUT, warm_up


def setup_cache():
    """Compile this module's kernels before its benchmarks, under a timeout of
    their own (see the package docstring)."""
    warm_up(sys.modules[__name__])


setup_cache.timeout = WARM_UP_TIMEOUT


class TrainStep:
    """One train_net iteration: forward, loss, backward, Adam (N=10, T=50, D=10, H=20)."""

    params = ([200, 2000], ["lstm", "rnn"], ["float64", "float32"])
    param_names = ["vocabulary", "cell", "dtype"]

    def setup(self, vocab, cell, dtype):
        rng = np.random.default_rng(0)
        np.random.seed(0)
        self.model = LanguageModelRNN(vocab, 10, 20, cell_type=cell, dtype=dtype)
        self.loss_func = temporal_softmax_loss()
        self.optimizer = Adam(self.model, 5e-4)
        self.words = rng.integers(vocab, size=(10, 50))
        self.labels = rng.integers(vocab, size=(10, 50))
        self.mask = np.ones((10, 50))
        self.h0 = np.zeros((10, 20))
        self.time_train_step(vocab, cell, dtype)

    def time_train_step(self, vocab, cell, dtype):
        scores = self.model.forward(self.words, self.h0)
        self.loss_func.forward(scores, self.labels, self.mask)
        self.model.backward(self.loss_func.backward())
        self.optimizer.step()

    def peakmem_train_step(self, vocab, cell, dtype):
        self.time_train_step(vocab, cell, dtype)


class FirstLayerFromIds:
    """The first layer of ``fastrnn train``'s default model on one window of token ids,
    forward + backward (N=32, T=64, D=64, H=256, float32): the embedding folded into
    the input projection (``LSTM.forward_ids``, what training runs), against the
    vectors looked up by the embedding layer and projected (``word_embedding`` then
    ``LSTM.forward``)."""

    params = ([100, 1000], ["folded", "looked up"])
    param_names = ["vocabulary", "input"]

    def setup(self, vocab, how):
        rng = np.random.default_rng(0)
        self.embedding = word_embedding(vocab, 64, dtype=np.float32)
        self.layer = LSTM(64, 256, dtype=np.float32)
        self.ids = rng.integers(vocab, size=(32, 64))
        self.h0 = np.zeros((32, 256), np.float32)
        self.dh = rng.standard_normal((32, 64, 256)).astype(np.float32)
        assert self.layer.folds_embedding(vocab, 32, 64)  # else "folded" would not be
        self.time_forward_backward(vocab, how)

    def time_forward_backward(self, vocab, how):
        if how == "folded":
            self.layer.forward_ids(self.ids, self.embedding.params[self.embedding.w_name],
                                   self.h0)
            self.layer.backward_ids(self.dh)
        else:
            self.layer.forward(self.embedding.forward(self.ids), self.h0)
            dx, _ = self.layer.backward(self.dh)
            self.embedding.backward(dx)


class SoftmaxLoss:
    """Masked softmax cross-entropy, loss and gradient, over (N, T, V) scores."""

    params = (["10x50x200", "10x50x2000", "32x64x65", "32x100x10000"], ["float64", "float32"])
    param_names = ["N x T x V", "dtype"]

    def setup(self, size, dtype):
        N, T, V = map(int, size.split("x"))
        rng = np.random.default_rng(0)
        self.scores = rng.standard_normal((N, T, V)).astype(dtype)
        self.labels = rng.integers(V, size=(N, T))
        self.mask = np.ones((N, T), dtype=dtype)
        self.loss = temporal_softmax_loss()
        self.time_forward_backward(size, dtype)

    def time_forward_backward(self, size, dtype):
        self.loss.forward(self.scores, self.labels, self.mask)
        self.loss.backward()


class Sample:
    """Generating 1,000 tokens from one stream (compiled loop), float32 LSTM."""

    params = (["char V=65 E=64 H=256", "word V=5000 E=128 H=128"], ["greedy", "temperature"])
    param_names = ["model", "decoding"]

    def setup(self, model, decoding):
        V, E, H = (int(part.split("=")[1]) for part in model.split()[1:])
        np.random.seed(0)
        self.model = LanguageModelRNN(V, E, H, cell_type="lstm", dtype=np.float32)
        self.temperature = 0.0 if decoding == "greedy" else 1.0
        self.time_sample(model, decoding)

    def time_sample(self, model, decoding):
        self.model.sample(0, 1000, temperature=self.temperature, seed=0)
