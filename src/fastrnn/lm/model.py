"""The network of :mod:`fastrnn.lm`: embedding -> stacked recurrent layers -> linear
scores, with its loss, gradient clipping and parameter arrays for checkpoints.

Shapes: B batch rows (streams), S window length, L layers, E embedding size,
H hidden size, V vocabulary size.
"""

import math

import numpy as np

from .. import recompute
from ..checkpoint import CheckpointError
from ..dropout import CounterDropout
from ..layer_utils import (LSTM, RNN, VanillaRNN, fc_softmax_loss, temporal_fc,
                           temporal_softmax_loss, word_embedding)
from ..sampling import sample_ids, sampling_weights
from ..text import Tokenizer
from . import evaluation, generation
from .config import ModelConfig

__all__ = ["LanguageModel", "RECOMPUTE_ABOVE_BYTES"]

# recompute='auto' turns recomputation on once the recurrent layers' stored
# activations for one window would pass this.  Below it the full path's memory is
# modest (16 MB at the default model and window: B = 32, S = 64, H = 256, float32)
# and recomputing would only cost time (about one more forward, see
# docs/long_windows.md); above it memory grows with every step of the window
# (2.4 GB at S = 10,000 for the same model).
RECOMPUTE_ABOVE_BYTES = 256 * 2 ** 20
class LanguageModel:
    """Embedding (V, E) -> L recurrent layers of H units -> linear (H, V) scores.

    Built from the layers of :mod:`fastrnn.layer_utils` (``embedding``,
    ``layer0``...``layer{L-1}``, ``output``); ``params`` and ``grads`` are live
    views of theirs, by name.  Weights are drawn from ``numpy.random.default_rng(seed)``
    (the global numpy generator is left untouched): recurrent and output weights
    uniform in +-1/sqrt(H) (as PyTorch), LSTM forget-gate biases 1, embedding N(0, 1).
    """

    def __init__(self, vocab, tokenizer, config=None, seed=0):
        self.config = (config or ModelConfig()).validate()
        self.vocab = vocab
        self.tokenizer = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer(tokenizer)
        self.dtype = np.dtype(self.config.dtype)
        self.is_lstm = self.config.cell == "lstm"
        V, E, H = len(vocab), self.config.embedding, self.config.hidden
        cell_class = LSTM if self.is_lstm else VanillaRNN
        # The layers draw their initial weights from the global generator; keep
        # the caller's global state, the weights are redrawn from ``seed`` below.
        global_state = np.random.get_state()
        try:
            self.embedding = word_embedding(V, E, name="embedding", dtype=self.dtype)
            self.cells = [cell_class(E if layer == 0 else H, H, name=f"layer{layer}",
                                     dtype=self.dtype)
                          for layer in range(self.config.layers)]
            self.output = temporal_fc(H, V, name="output", dtype=self.dtype)
        finally:
            np.random.set_state(global_state)
        self.net = RNN(self.embedding, *self.cells, self.output)
        self.params, self.grads = self.net.params, self.net.grads
        self._loss = temporal_softmax_loss(dim_average=True)
        self._dropout_key = None  # (CounterDropout, step, first_stream) of the last forward
        self._dtop = None  # d(top layer output) (B, S, H) between output_loss and backward_layers
        self._initialise(np.random.default_rng(seed))

    def _initialise(self, rng):
        H = self.config.hidden
        bound = 1.0 / math.sqrt(H)
        for name, value in self.params.items():
            if name == self.embedding.w_name:
                new = rng.standard_normal(value.shape)
            elif name == self.output.b_name:
                new = np.zeros(value.shape)
            else:
                new = rng.uniform(-bound, bound, value.shape)
            value[...] = new
        if self.is_lstm:
            for cell in self.cells:
                cell.params[cell.b_name][H:2 * H] = 1.0  # forget gates open at the start

    @property
    def num_layers(self):
        return self.config.layers

    @property
    def hidden_size(self):
        return self.config.hidden

    def parameter_count(self):
        return int(sum(value.size for value in self.params.values()))

    def set_recompute(self, setting, rows, steps):
        """Set every recurrent layer's ``checkpoint_every`` from ``setting`` (see
        ``TrainConfig.recompute``: 'off', 'on', 'auto' or a number of steps) for
        windows of ``steps`` steps of ``rows`` streams; returns the value set (0,
        'auto' or K).  'auto' decides from the bytes the layers' full path would
        store for such a window (:func:`fastrnn.recompute.costs`)."""
        if setting == "auto":
            stored = sum(
                recompute.costs("lstm" if self.is_lstm else "rnn", rows, cell.input_dim,
                                cell.h_dim, self.dtype.itemsize, 1).full_step * steps
                for cell in self.cells)
            setting = "on" if stored > RECOMPUTE_ABOVE_BYTES else "off"
        every = {"off": 0, "on": "auto"}.get(setting, setting)
        for cell in self.cells:
            cell.checkpoint_every = every
        return every

    def zero_state(self, rows):
        """(h, c), each (L, rows, H) zeros: the state at the start of a stream."""
        shape = (self.num_layers, rows, self.hidden_size)
        return np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)

    def forward(self, x, h, c, dropout=None, step=0, first_stream=0):
        """Scores (B, S, V) for tokens x int (B, S).

        h, c (L, B, H): the states before the window, overwritten with the states
        after it (c is unused by a tanh RNN).  With ``dropout`` (a
        :class:`~fastrnn.dropout.CounterDropout`), inverted dropout is applied between
        layers with the masks of training step ``step`` for streams first_stream to
        first_stream + B - 1; :meth:`backward` recomputes the same masks.
        """
        return self.output.forward(self._hidden(x, h, c, dropout, step, first_stream))

    def _hidden(self, x, h, c, dropout=None, step=0, first_stream=0, keep=True):
        """The top layer's output (B, S, H) for tokens x int (B, S); h, c and dropout
        as in :meth:`forward`.  ``keep=False`` (no backward to come) lets each layer's
        forward state go as soon as the next layer has run."""
        active = dropout is not None and dropout.rate > 0.0
        self._dropout_key = (dropout, step, first_stream) if active else None
        embedding = self.params[self.embedding.w_name]
        for layer, cell in enumerate(self.cells):
            # The layer keeps its own copies of the initial states for backward, so
            # h and c can be overwritten with the final states just below.  The first
            # takes the token ids and the embedding (which it may fold into its input
            # projection, see LSTM.forward_ids), the others the layer below's output.
            if layer == 0:
                activations = cell.forward_ids(x, embedding, h[0],
                                               c[0] if self.is_lstm else None)
            elif self.is_lstm:
                activations = cell.forward(activations, h[layer], c[layer])
            else:
                activations = cell.forward(activations, h[layer])
            if self.is_lstm:
                c[layer] = cell.final_c
            if not keep:
                cell.meta = None
            h[layer] = activations[:, -1]
            if active and layer < self.num_layers - 1:
                # In place, so the next layer's input is the only copy; backward
                # regenerates the mask from its counter instead of storing it.
                dropout.apply(activations, step, layer, first_stream)
        return activations

    def backward(self, dscores):
        """dscores (B, S, V) -> fills ``grads`` of every layer (the initial states get none)."""
        self._backward_hidden(self.output.backward(dscores))

    def _backward_hidden(self, dactivations):
        """d(top layer output) (B, S, H) -> fills the grads of every layer below the output."""
        for layer in reversed(range(self.num_layers)):
            if self._dropout_key is not None and layer < self.num_layers - 1:
                dropout, step, first_stream = self._dropout_key
                dropout.apply(dactivations, step, layer, first_stream)
            if layer == 0:
                dembedding, _ = self.cells[0].backward_ids(dactivations)
                self.grads[self.embedding.w_name] = dembedding
            else:
                dactivations, _ = self.cells[layer].backward(dactivations)

    def loss_and_gradients(self, x, targets, h, c, dropout=None, step=0, first_stream=0,
                           rows=None):
        """One training step's forward and backward: :meth:`output_loss` then
        :meth:`backward_layers`.  Returns (sum over the B*S tokens of -log p(target),
        correct argmax predictions)."""
        result = self.output_loss(x, targets, h, c, dropout, step, first_stream, rows)
        self.backward_layers()
        return result

    def output_loss(self, x, targets, h, c, dropout=None, step=0, first_stream=0, rows=None):
        """The forward of a training step on tokens x int (B, S) predicting targets int
        (B, S), with the output layer and the loss run over chunks of time steps
        (:func:`~fastrnn.layer_utils.fc_softmax_loss`), so that the (B, S, V) scores
        never exist; h, c and dropout as in :meth:`forward`.

        Fills the output layer's ``grads`` with the gradient of the MEAN loss per token
        (what :meth:`loss`, :meth:`loss_gradient` and :meth:`backward` give, up to the
        order of sums) -- the mean over these B rows, or over ``rows`` when they are a
        share of a batch of ``rows`` streams (a data-parallel process's: the shares'
        gradients then sum to the batch's) -- and keeps d(top layer output) for
        :meth:`backward_layers`.  Returns (sum over the B*S tokens of -log p(target),
        correct argmax predictions).
        """
        B, S = targets.shape
        rows = B if rows is None else rows
        top = self._hidden(x, h, c, dropout, step, first_stream)
        result = fc_softmax_loss(self.output, top, targets, 1.0 / (rows * S))
        self.grads[self.output.w_name] = result.dw
        self.grads[self.output.b_name] = result.db
        self._dtop = result.dx
        return result.loss * (rows * S), result.correct

    def backward_layers(self):
        """The backward of the recurrent layers and the embedding from the d(top layer
        output) kept by :meth:`output_loss`: fills their ``grads``."""
        dtop, self._dtop = self._dtop, None
        self._backward_hidden(dtop)

    def score(self, x, targets, h, c):
        """(sum of -log p(target), correct argmax predictions) over tokens x int (B, S)
        predicting targets int (B, S), without dropout or gradients and without the
        (B, S, V) scores; h, c as in :meth:`forward`."""
        # With no backward to come, the segmented forward costs no recomputation and
        # stores only states: a long validation window (often more rows than the
        # training batch) stays as small as training's.  A window whose full path
        # stays under RECOMPUTE_ABOVE_BYTES takes the full path: the kernels training
        # compiled, so a first run compiles no second forward (docs/tuning.md#score-path).
        settings = [cell.checkpoint_every for cell in self.cells]
        try:
            self.set_recompute("auto", *x.shape)
            top = self._hidden(x, h, c, keep=False)
        finally:
            for cell, setting in zip(self.cells, settings):
                cell.checkpoint_every = setting
        result = fc_softmax_loss(self.output, top, targets, 1.0, gradients=False)
        return result.loss, result.correct

    def loss(self, scores, targets, rows=None):
        """(sum over the B*S tokens of -log p(target), number of correct argmax predictions).

        Keeps the gradient of the MEAN loss per token for :meth:`loss_gradient`: the
        mean over these B rows, or over ``rows`` when they are a share of a batch of
        ``rows`` (a data-parallel process's: the shares' gradients then sum to the
        batch's, with the same scaled rows of d scores as the whole batch).
        """
        B, S, _ = scores.shape
        rows = B if rows is None else rows
        mean_over_rows = self._loss.forward(scores, targets, np.ones((B, S), self.dtype), rows)
        correct = int(np.count_nonzero(scores.argmax(axis=-1) == targets))
        return float(mean_over_rows) * rows, correct

    def loss_gradient(self):
        """d(mean loss per token) / d scores, (B, S, V), of the last :meth:`loss`."""
        dscores = self._loss.backward()
        dscores *= self.dtype.type(1.0 / dscores.shape[1])  # the layer averages over B only
        return dscores

    def clip_gradients(self, max_norm):
        """Scale all gradients together so that their global L2 norm is at most
        ``max_norm`` (0 = no clipping).  Returns the norm before clipping; a norm
        that is not finite leaves the gradients as they are (no step should use them)."""
        grads = list(self.grads.values())
        norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
        if 0 < max_norm < norm < math.inf:
            scale = self.dtype.type(max_norm / norm)
            for g in grads:
                g *= scale
        return norm

    def evaluate(self, ids, seq_len, rows):
        """Loss, perplexity and accuracy on ``ids``; see :func:`fastrnn.lm.evaluation.evaluate`."""
        return evaluation.evaluate(self, ids, seq_len, rows)

    # ---------------------------------------------------------------- generation

    def sampling_weights(self):
        """The weights as the generation kernel takes them
        (:class:`fastrnn.sampling.SamplingWeights`)."""
        return sampling_weights(self.embedding, self.cells, self.output)

    def generate_ids(self, prime, length, temperature=1.0, top_k=0, rng=None, state=None):
        """Feed ``prime`` (P,) token ids and draw ``length`` more: int64 (length,).

        temperature 0 is greedy (argmax); otherwise tokens are drawn from
        softmax(scores / temperature), among the ``top_k`` best (0 = all).
        rng: numpy Generator of the draws (a fresh unseeded one when None).
        state: (h, c), each (L, 1, H), the state before ``prime``, updated in
        place (zeros when None); see :func:`fastrnn.sampling.sample_ids`.
        """
        return sample_ids(self.sampling_weights(), prime, length, temperature, top_k, rng, state)

    def default_prime(self):
        """See :func:`fastrnn.lm.generation.default_prime`."""
        return generation.default_prime(self)

    def generate_text(self, start="", length=200, temperature=0.8, top_k=0, seed=None,
                      write=None, chunk=64):
        """``start`` and ``length`` tokens more, as text; see
        :func:`fastrnn.lm.generation.generate_text`."""
        return generation.generate_text(self, start, length, temperature, top_k, seed, write,
                                        chunk)

    # ---------------------------------------------------------------- saving

    def state_arrays(self):
        """The parameters, ``param/<name>`` -> array (copies)."""
        return {f"param/{name}": value.copy() for name, value in self.params.items()}

    def load_state_arrays(self, arrays, source="checkpoint"):
        """Copy ``param/<name>`` arrays into the parameters, checking names and shapes first."""
        for name, value in self.params.items():
            key = f"param/{name}"
            if key not in arrays:
                raise CheckpointError(f"{source}: no parameter {name!r}; it does not belong "
                                      "to this model")
            if arrays[key].shape != value.shape or arrays[key].dtype != value.dtype:
                raise CheckpointError(
                    f"{source}: parameter {name!r} is {arrays[key].dtype} {arrays[key].shape}, "
                    f"the model needs {value.dtype} {value.shape}")
        for name, value in self.params.items():
            value[...] = arrays[f"param/{name}"]
