"""The notebook's models: ``TestRNN`` (one recurrent layer) and ``LanguageModelRNN``
(word embedding -> recurrent layer -> temporal fc), with compiled sampling."""

import numpy as np

from . import _checks
from .layer_utils import LSTM, RNN, VanillaRNN, temporal_fc, word_embedding
from .sampling import check_length, sample_ids, sampling_weights

__all__ = ["TestRNN", "LanguageModelRNN"]

_CELLS = {"rnn": VanillaRNN, "lstm": LSTM}


def _cell_class(cell_type):
    if cell_type not in _CELLS:
        raise ValueError(f"cell_type: expected 'rnn' or 'lstm', got {cell_type!r}")
    return _CELLS[cell_type]


class _Model(RNN):
    """The layers in order, with ``params`` / ``grads`` as live views of theirs
    (:class:`fastrnn.layer_utils.RNN`): the arrays are the layers' own, and
    assigning a key replaces it in the owning layer."""

    def assign_params(self):
        """Kept for the classic API (it copied the model's dict into the layers');
        ``params`` is always in sync with the layers."""


class TestRNN(_Model):
    """One recurrent layer, named ``vanilla_rnn`` or ``lstm`` (parameter keys
    ``vanilla_rnn_wx`` ... or ``lstm_wx`` ...).

    forward(feat (N, T, D), h0 (N, H)) -> h (N, T, H);
    backward(dout (N, T, H)) -> (dx (N, T, D), dh0 (N, H)).
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, input_dim, hidden_dim, cell_type="rnn", dtype=np.float64):
        self.cell_type = cell_type
        self.hidden_dim = hidden_dim
        self.rnn = _cell_class(cell_type)(input_dim, hidden_dim, dtype=dtype)
        super().__init__(self.rnn)

    def forward(self, feat, h0):
        return self.rnn.forward(feat, h0)

    def backward(self, dout):
        return self.rnn.backward(dout)


class LanguageModelRNN(_Model):
    """Word embedding (``we``) -> recurrent layer (``rnn`` or ``lstm``) -> temporal fc
    (``t_fc``) producing scores over the vocabulary.

    forward(words int (N, T), h0 (N, H)) -> scores (N, T, V);
    backward(dscores (N, T, V)) -> (dx (N, T, D) gradient on the word vectors, dh0 (N, H)).
    """

    def __init__(self, word_size, word_vec_dim, hidden_dim, cell_type="rnn", dtype=np.float64):
        self.word_size = _checks.positive_int("word_size", word_size)
        self.word_vec_dim = _checks.positive_int("word_vec_dim", word_vec_dim)
        self.hidden_dim = _checks.positive_int("hidden_dim", hidden_dim)
        self.cell_type = cell_type
        self.preprocess = word_embedding(word_size, word_vec_dim, name="we", dtype=dtype)
        self.rnn = _cell_class(cell_type)(word_vec_dim, hidden_dim, init_scale=0.02,
                                          name=cell_type, dtype=dtype)
        self.postprocess = temporal_fc(hidden_dim, word_size, init_scale=0.02, name="t_fc",
                                       dtype=dtype)
        super().__init__(self.preprocess, self.rnn, self.postprocess)

    def forward(self, words, h0):
        vectors = self.preprocess.forward(words)
        hidden = self.rnn.forward(vectors, h0)
        return self.postprocess.forward(hidden)

    def backward(self, dscores):
        dhidden = self.postprocess.backward(dscores)
        dvectors, dh0 = self.rnn.backward(dhidden)
        self.preprocess.backward(dvectors)
        return dvectors, dh0

    def sample(self, word_index, n_text, temperature=0.0, top_k=0, seed=None):
        """Generate ``n_text`` words after ``word_index``, one stream from a zero state.

        Greedy (argmax) by default, as the classic code; ``temperature > 0`` draws
        from softmax(scores / temperature), restricted to the ``top_k`` best words
        when ``top_k > 0``; ``seed`` makes the draws reproducible.
        Returns a list of ``n_text + 1`` word indices starting with ``word_index``.
        """
        V = self.word_size
        if isinstance(word_index, (bool, np.bool_)) or not isinstance(word_index, (int, np.integer)):
            raise TypeError(f"word_index: expected an integer word index, got {word_index!r}")
        if not 0 <= word_index < V:
            raise ValueError(f"word_index: expected an index in [0, {V}), got {word_index}")
        check_length(n_text, "n_text")
        weights = sampling_weights(self.preprocess, [self.rnn], self.postprocess)
        out = sample_ids(weights, np.array([word_index], dtype=np.int64), int(n_text),
                         temperature, top_k, np.random.default_rng(seed))
        return [int(word_index)] + out.tolist()
