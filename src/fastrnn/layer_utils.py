"""The notebook's layers: a thin layer of classes over the compiled kernels.

Each class keeps the classic ``lib.layer_utils`` API (``name``, ``params``,
``grads``, ``meta``, ``forward``, ``backward``, step functions).  Its methods read
the parameters from ``self.params`` at every call (so in-place perturbation and
reassignment take effect), validate every array, allocate the outputs and call a
kernel from :mod:`fastrnn.kernels`.

Shapes: N batch, T time steps, D input size, H hidden size, V vocabulary size.
Internally the recurrent layers store their state time-major per thread's chunk
of the batch (see :mod:`fastrnn.kernels.blocked`); the API stays batch-major
``(N, T, ...)``.  The compute dtype of a layer is the dtype of its
parameters (``dtype=np.float64`` by default, ``np.float32`` for speed).
"""

from collections.abc import MutableMapping
from typing import NamedTuple

import numpy as np

from . import _checks, recompute
from ._threads import chunks_for
from .kernels.activations import sigmoid_into
from .kernels.blocked import linear_backward, linear_forward
from .kernels.dispatch import StepForm, choose_form
from .kernels.embedding import embedding_backward, embedding_forward
from .kernels.lstm import lstm_backward, lstm_forward
from .kernels.softmax import softmax_xent
from .kernels.vanilla import rnn_backward, rnn_forward

__all__ = [
    "sigmoid", "RNN", "VanillaRNN", "LSTM", "word_embedding", "temporal_fc",
    "temporal_softmax_loss", "fc_softmax_loss", "SCORE_CHUNK_BYTES",
]


def sigmoid(x):
    """Numerically stable logistic function of an array (no overflow for large |x|);
    float32 stays float32, anything else is computed in float64."""
    x = np.asarray(x)
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    flat = np.ascontiguousarray(x, dtype=dtype).reshape(-1)
    out = np.empty_like(flat)
    sigmoid_into(flat, out)
    return out.reshape(x.shape)


def _random_weights(scale, shape, dtype):
    # np.random (the global generator) as in the classic lib, so that a
    # notebook's np.random.seed gives the same initial weights.
    return (scale * np.random.randn(*shape)).astype(dtype)


class RNNBuffers(NamedTuple):
    """The chunk-major buffers a tanh RNN forward writes and its backward reads
    (see ``kernels.vanilla.rnn_forward``)."""

    x_tm: np.ndarray  # (T * N * D,) the input
    h: np.ndarray     # ((T + 1) * N * H,) the hidden states h_0..h_T


class RNNForwardState(NamedTuple):
    """What a VanillaRNN forward keeps for its backward (the layer's ``meta``)."""

    buffers: RNNBuffers
    h0: np.ndarray    # (N, H), the caller's initial state (read, never written)
    wx: np.ndarray    # (D, H) as the forward read it
    wh: np.ndarray    # (H, H)
    steps: int        # T
    blocks: int       # the kernels' n_blocks, which fixes the buffers' layout
    form: StepForm    # the forward's step form (the backward's depends on it)


class LSTMBuffers(NamedTuple):
    """The chunk-major buffers an LSTM forward writes and its backward reads
    (see ``kernels.lstm.lstm_forward``)."""

    x_tm: np.ndarray    # (T * N * D,) the input
    gates: np.ndarray   # (T * N * 4H,) the activations i, f, o, g
    c: np.ndarray       # ((T + 1) * N * H,) the cell states c_0..c_T
    tanh_c: np.ndarray  # (T * N * H,) tanh(c_1)..tanh(c_T)
    h: np.ndarray       # ((T + 1) * N * H,) the hidden states h_0..h_T


class LSTMForwardState(NamedTuple):
    """What an LSTM forward keeps for its backward (the layer's ``meta``)."""

    buffers: LSTMBuffers
    h0: np.ndarray    # (N, H), the caller's initial state (read, never written)
    wx: np.ndarray    # (D, 4H) as the forward read it
    wh: np.ndarray    # (H, 4H)
    steps: int        # T
    blocks: int       # the kernels' n_blocks, which fixes the buffers' layout


class IdsForwardState(NamedTuple):
    """What ``forward_ids`` keeps for ``backward_ids`` (a recurrent layer's ``meta``)."""

    inner: object            # the layer's own forward state: of the ids with a table
    #                          E Wx (folded), or of the vectors E[ids] (not folded)
    embedding: np.ndarray    # (V, D) as the forward read it
    wx: np.ndarray           # (D, G) as the forward read it
    ids: object              # None when folded, else the ids (N * T,) for dx's scatter


class _Layer:
    """What every layer has: a name, params and grads dicts, and meta."""

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = _checks.float_dtype("dtype", dtype)
        self.params = {}
        self.grads = {}
        self.meta = None

    def _take_meta(self):
        """Return the state of the last forward and forget it (backward consumes it)."""
        if self.meta is None:
            raise RuntimeError(
                f"{self.name}: backward called with no forward state; call forward first "
                "(each forward can be backpropagated once)")
        meta, self.meta = self.meta, None
        return meta



class _RecurrentLayer(_Layer):
    """Shared parameter handling of VanillaRNN (G = H) and LSTM (G = 4H)."""

    gates_per_unit = 1
    _folds_input = False  # whether forward_ids can fold an embedding (_forward_folded)

    def __init__(self, input_dim, h_dim, init_scale, name, dtype, checkpoint_every,
                 memory_budget):
        super().__init__(name, dtype)
        self._spare = None  # buffers of a consumed state, see _state_buffers
        self.checkpoint_every = checkpoint_every
        self.memory_budget = memory_budget
        self.input_dim = _checks.positive_int("input_dim", input_dim)
        self.h_dim = _checks.positive_int("h_dim", h_dim)
        self.wx_name = name + "_wx"
        self.wh_name = name + "_wh"
        self.b_name = name + "_b"
        G = self.gates_per_unit * self.h_dim
        self.params[self.wx_name] = _random_weights(init_scale, (self.input_dim, G), self.dtype)
        self.params[self.wh_name] = _random_weights(init_scale, (self.h_dim, G), self.dtype)
        self.params[self.b_name] = np.zeros(G, dtype=self.dtype)
        for key in self.params:
            self.grads[key] = None

    checkpoint_every = recompute.Setting(recompute.checkpoint_setting, """Checkpointing in
        time (not run checkpoints, which are files): 0 stores every step (the
        full path); K > 0 stores the state every K steps and recomputes the rest
        in backward; "auto": K ~ sqrt(T) (see :func:`fastrnn.recompute.auto_steps`).""")
    memory_budget = recompute.Setting(recompute.budget_setting, """None, or the bytes of
        working memory a forward + backward may use: the schedule with the least
        recomputation that fits is chosen (the full path first).""")

    def _set_weight_grads(self, dwx, dwh, db):
        self.grads[self.wx_name] = dwx
        self.grads[self.wh_name] = dwh
        self.grads[self.b_name] = db

    def _weights(self):
        """(wx (D, G), wh (H, G), b (G,)) as read from params now, checked."""
        D, H = self.input_dim, self.h_dim
        G = self.gates_per_unit * H
        g = "4H" if self.gates_per_unit == 4 else "H"
        wx = _checks.parameter(self, self.wx_name, ("D", g), (D, G))
        wh = _checks.parameter(self, self.wh_name, ("H", g), (H, G), wx.dtype)
        b = _checks.parameter(self, self.b_name, (g,), (G,), wx.dtype)
        return wx, wh, b

    def _sequence_inputs(self, x, h0, dtype):
        """Check x (N, T, D) and h0 (N, H); return both C-contiguous.  No copy is
        kept of h0: the forward writes it into its state buffers (step 0), which
        is what backward reads."""
        x = _checks.float_array("x", x, ("N", "T", "D"), (None, None, self.input_dim), dtype)
        N = x.shape[0]
        h0 = _checks.float_array("h0", h0, ("N", "H"), (N, self.h_dim), dtype, cast=True)
        return x, h0

    def _step_inputs(self, x, prev_h, dtype):
        """Check x (N, D) and prev_h (N, H); return x as a one-step sequence (N, 1, D)."""
        x = _checks.float_array("x", x, ("N", "D"), (None, self.input_dim), dtype)
        prev_h = _checks.float_array("prev_h", prev_h, ("N", "H"), (x.shape[0], self.h_dim),
                                     dtype, cast=True)
        return x[:, None], prev_h

    def _blocks(self, N, T, D):
        """Work blocks for the kernels of a batch of N sequences of T steps (1 =
        serial), from the work of one forward: the projection and recurrent GEMMs
        (2 T N G (D + H) FLOP) plus ~30 FLOP of gate math per pre-activation.
        The kernels run the time loops on min(blocks, N) chunks of the batch and
        the GEMMs before and after on all blocks, so a short batch of long
        sequences still splits its GEMMs.  The count also fixes the layout of
        the stored state, so a backward uses its forward's."""
        H = self.h_dim
        G = self.gates_per_unit * H
        return chunks_for(N * T, 2 * T * N * G * (D + H) + 30 * T * N * G)

    def _state_buffers(self, buffer_type, sizes, dtype, input_dtype=None):
        """A ``buffer_type`` (RNNBuffers, LSTMBuffers) of flat buffers of ``sizes``
        (in its fields' order) for the state a forward stores, all of ``dtype``
        but the first (the input, x_tm), of ``input_dtype`` when given (int64
        for token ids).

        The buffers of the last state a backward consumed are reused when they
        fit: a large buffer freed and allocated again comes back as fresh pages
        that the kernel zeroes on first touch (7% of an LSTM forward at (64, 100,
        256, 256) float64, see docs/tuning.md#reused-state-buffers).  The layer
        holds on to one consumed state's buffers between a backward and the next
        forward; no array a caller can see is ever reused.
        """
        dtypes = (dtype if input_dtype is None else input_dtype,) + (dtype,) * (len(sizes) - 1)
        spare, self._spare = self._spare, None
        if (type(spare) is buffer_type and tuple(buffer.size for buffer in spare) == sizes
                and tuple(buffer.dtype for buffer in spare) == dtypes):
            return spare
        return buffer_type._make([np.empty(size, dtype=dtype)
                                  for size, dtype in zip(sizes, dtypes)])

    @staticmethod
    def _gradient_buffers(h0, wx, T, input_width=None):
        """dx (N, T, D), dh0 (N, H), dWx (D, G), dWh (H, G), db (G,), for a
        backward kernel to write; dx is (N, T, input_width) when given (0 after
        a forward on token ids, whose wx is a table (V, G)).  (``np.empty`` with
        the shape: ``empty_like`` costs more a call, which at the notebook's size
        adds up; docs/tuning.md#python-layer-overheads.)"""
        N, H = h0.shape
        D, G = wx.shape
        dtype = wx.dtype
        dx_width = D if input_width is None else input_width
        return (np.empty((N, T, dx_width), dtype), np.empty((N, H), dtype),
                np.empty((D, G), dtype), np.empty((H, G), dtype), np.empty(G, dtype))

    def _take_vector_meta(self):
        """``_take_meta`` for ``backward``, which cannot follow ``forward_ids``."""
        if isinstance(self.meta, IdsForwardState):
            raise RuntimeError(f"{self.name}: the last forward was forward_ids; backpropagate "
                               "it with backward_ids")
        return self._take_meta()

    # ------------------------------------------------------------ token ids input

    def folds_embedding(self, vocab, rows, steps):
        """Whether ``forward_ids`` folds an embedding of ``vocab`` rows into the input
        projection for ``rows`` sequences of ``steps`` steps.  Only an LSTM on its full
        path does (a tanh RNN's step forms project inside the time loop, the
        recomputing path per piece), and only where the table is the cheaper: its
        three GEMMs (E Wx forward; Wx's and E's gradients) have V rows where the
        projection's three (x Wx, dA Wx^T, X^T dA) have N T; a vocabulary of at
        most half the window's tokens leaves room for the lookups and scatters
        (docs/tuning.md#folded-embedding)."""
        return (self._folds_input and self._checkpoint_every == 0
                and self._memory_budget is None and 2 * vocab <= rows * steps)

    def forward_ids(self, ids, embedding, h0, c0=None):
        """``forward(embedding[ids], h0[, c0])`` for the token ids (N, T) of an embedding
        (V, D) -> h (N, T, H), backpropagated by ``backward_ids``.

        Where ``folds_embedding`` says so, the embedding is folded into the input
        projection: the layer computes the table E Wx (V, G) once and each step's
        x_t Wx is a row of it, so the input GEMMs over all N T rows (and dx) are not
        needed.  Same result up to rounding (the same products summed in another
        order in the gradients).  c0 (N, H): an LSTM's initial cell state (zeros by
        default; a tanh RNN takes none).
        """
        wx, _, _ = self._weights()
        embedding = _checks.float_array("embedding", embedding, ("V", "D"),
                                        (None, self.input_dim), wx.dtype)
        V, D = embedding.shape
        ids = _checks.index_array("ids", ids, ("N", "T"), (None, None), V)
        N, T = ids.shape
        if c0 is not None and self.gates_per_unit == 1:
            raise TypeError(f"{self.name}: c0 given, but a tanh RNN has no cell state")
        if self.folds_embedding(V, N, T):
            h, inner = self._forward_folded(ids, embedding, wx, h0, c0)
            self.meta = IdsForwardState(inner, embedding, wx, None)
            return h
        x = np.empty((N * T, D), dtype=wx.dtype)
        embedding_forward(ids.reshape(-1), embedding, x)
        h = self.forward(x.reshape(N, T, D), h0, *(() if c0 is None else (c0,)))
        self.meta = IdsForwardState(self.meta, embedding, wx, ids.reshape(-1))
        return h

    def backward_ids(self, dh):
        """dh (N, T, H) -> (d embedding (V, D), dh0 (N, H)) after ``forward_ids``;
        fills ``grads``.  Repeated tokens' gradients add up in their row."""
        state = self._take_meta()
        if not isinstance(state, IdsForwardState):
            self.meta = state
            raise RuntimeError(f"{self.name}: backward_ids follows forward_ids; the last "
                               "forward was forward (backpropagate it with backward)")
        V, D = state.embedding.shape
        dtype = state.embedding.dtype
        dembedding = np.empty((V, D), dtype=dtype)
        if state.ids is None:
            dh0 = self._backward_folded(dh, state, dembedding)
        else:
            self.meta = state.inner
            dx, dh0 = self.backward(dh)
            embedding_backward(state.ids, dx.reshape(-1, D), dembedding)
        return dembedding, dh0

    @staticmethod
    def _upstream(name, grad, shape, dtype):
        labels = ("N", "T", "H") if len(shape) == 3 else ("N", "H")
        return _checks.float_array(name, grad, labels, shape, dtype, cast=True)


class VanillaRNN(_RecurrentLayer):
    """tanh RNN: h_t = tanh(x_t Wx + h_{t-1} Wh + b).

    params: ``wx_name`` (D, H), ``wh_name`` (H, H), ``b_name`` (H,).
    ``checkpoint_every``, ``memory_budget``: long sequences in bounded memory,
    see :mod:`fastrnn.recompute` (one level of K steps: 1 extra forward,
    memory K N (3D + 3H) + ceil(T / K) N H values).
    """

    gates_per_unit = 1

    def __init__(self, input_dim, h_dim, init_scale=0.02, name="vanilla_rnn", dtype=np.float64,
                 checkpoint_every=0, memory_budget=None):
        super().__init__(input_dim, h_dim, init_scale, name, dtype, checkpoint_every,
                         memory_budget)

    def _run(self, x, h0, wx, wh, b):
        N, T, D = x.shape
        blocks = self._blocks(N, T, D)
        H = self.h_dim
        buffers = self._state_buffers(RNNBuffers, (T * N * D, (T + 1) * N * H), wx.dtype)
        h_out = np.empty((N, T, H), dtype=wx.dtype)
        form = choose_form("rnn", "forward", wx.dtype, H, T)
        rnn_forward(x, buffers.x_tm, h0, wx, wh, b, buffers.h, h_out, int(form), blocks)
        return h_out, RNNForwardState(buffers, h0, wx, wh, T, blocks, form)

    def _backprop(self, dh, state):
        h0, wx, T = state.h0, state.wx, state.steps
        dx, dh0, dwx, dwh, db = self._gradient_buffers(h0, wx, T)
        grad_pre = np.empty(T * h0.size, dtype=wx.dtype)  # T * N * H: see rnn_backward
        form = choose_form("rnn", "backward", wx.dtype, h0.shape[1], T, state.form)
        rnn_backward(dh, state.buffers.x_tm, wx, state.wh, state.buffers.h, grad_pre, dx, dh0,
                     dwx, dwh, db, int(form), state.blocks)
        return dx, dh0, dwx, dwh, db

    def step_forward(self, x, prev_h):
        """x (N, D), prev_h (N, H) -> (next_h (N, H), meta for step_backward)."""
        wx, wh, b = self._weights()
        x, prev_h = self._step_inputs(x, prev_h, wx.dtype)
        h, state = self._run(x, prev_h, wx, wh, b)
        return h[:, 0], state

    def step_backward(self, dnext_h, meta):
        """dnext_h (N, H), meta from step_forward -> (dx, dprev_h, dWx, dWh, db)."""
        h0 = meta.h0
        dnext_h = self._upstream("dnext_h", dnext_h, h0.shape, h0.dtype)
        dx, dprev_h, dwx, dwh, db = self._backprop(dnext_h[:, None], meta)
        return dx[:, 0], dprev_h, dwx, dwh, db

    def forward(self, x, h0):
        """x (N, T, D), h0 (N, H) -> h (N, T, H).  Keeps in ``meta`` what backward needs."""
        wx, wh, b = self._weights()
        x, h0 = self._sequence_inputs(x, h0, wx.dtype)
        segments = recompute.segments(self, x, h0, None, wx, wh, b)
        if segments is None:
            h, self.meta = self._run(x, h0, wx, wh, b)
        else:
            (h, _), self.meta = segments.forward(), segments
        return h

    def backward(self, dh):
        """dh (N, T, H) -> (dx (N, T, D), dh0 (N, H)); fills ``grads``."""
        state = self._take_vector_meta()
        N, H = state.h0.shape
        dh = self._upstream("dh", dh, (N, state.steps, H), state.wx.dtype)
        if isinstance(state, recompute.SegmentedState):
            dx, dh0, _, dwx, dwh, db = state.backward(dh)
            self._spare = state.work
        else:
            dx, dh0, dwx, dwh, db = self._backprop(dh, state)
            self._spare = state.buffers  # see _state_buffers
        self._set_weight_grads(dwx, dwh, db)
        return dx, dh0


class LSTM(_RecurrentLayer):
    """LSTM with gates i, f, o, g along the 4H axis.

    a = x Wx + h Wh + b;  i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g);
    c' = f * c + i * g;  h' = o * tanh(c').
    params: ``wx_name`` (D, 4H), ``wh_name`` (H, 4H), ``b_name`` (4H,).
    After ``forward``, ``final_c`` holds the last cell state c_T (N, H).
    ``checkpoint_every``, ``memory_budget``: long sequences in bounded memory,
    see :mod:`fastrnn.recompute` (one level of K steps: 1 extra forward,
    memory K N (D + 7H) + 2 ceil(T / K) N H values).
    """

    gates_per_unit = 4
    _folds_input = True

    def __init__(self, input_dim, h_dim, init_scale=0.02, name="lstm", dtype=np.float64,
                 checkpoint_every=0, memory_budget=None):
        super().__init__(input_dim, h_dim, init_scale, name, dtype, checkpoint_every,
                         memory_budget)
        self.final_c = None

    def _forward_folded(self, ids, embedding, wx, h0, c0):
        """``forward_ids``'s folded forward: (h (N, T, H), the kernel's state)."""
        _, wh, b = self._weights()
        N = ids.shape[0]
        h0 = _checks.float_array("h0", h0, ("N", "H"), (N, self.h_dim), wx.dtype, cast=True)
        if c0 is None:
            c0 = np.zeros(h0.shape, h0.dtype)
        else:
            c0 = _checks.float_array("c0", c0, ("N", "H"), h0.shape, wx.dtype, cast=True)
        V, D = embedding.shape
        G = wx.shape[1]
        table = np.empty((V, G), dtype=wx.dtype)
        linear_forward(embedding, wx, np.zeros(G, wx.dtype), table, chunks_for(V, 2 * V * D * G))
        h, self.final_c, inner = self._run(ids, h0, c0, table, wh, b)
        return h, inner

    def _backward_folded(self, dh, state, dembedding):
        """``backward_ids`` after a folded forward: writes dembedding, returns dh0."""
        inner = state.inner
        N, H = inner.h0.shape
        dtype = inner.wx.dtype
        dh = self._upstream("dh", dh, (N, inner.steps, H), dtype)
        _, dh0, _, dtable, dwh, db = self._backprop(dh, np.zeros((N, H), dtype), inner)
        self._spare = inner.buffers  # see _state_buffers
        (V, D), G = state.embedding.shape, dtable.shape[1]
        dwx = np.empty((D, G), dtype=dtype)
        linear_backward(state.embedding, state.wx, dtable, dembedding, dwx, np.empty(G, dtype),
                        chunks_for(V, 4 * V * D * G))
        self._set_weight_grads(dwx, dwh, db)
        return dh0

    def _run(self, x, h0, c0, wx, wh, b):
        """The kernel's forward of x (N, T, D) with wx (D, 4H), or of token ids x
        (N, T) with a table (V, 4H) in wx's place (see ``forward_ids``)."""
        N, T = x.shape[0], x.shape[1]
        ids = x.ndim == 2
        D = 0 if ids else x.shape[2]  # (token ids: the input projection is a lookup)
        H = self.h_dim
        blocks = self._blocks(N, T, D)
        buffers = self._state_buffers(
            LSTMBuffers,
            (T * N * max(D, 1), T * N * 4 * H, (T + 1) * N * H, T * N * H, (T + 1) * N * H),
            wx.dtype, np.int64 if ids else None)
        h_out = np.empty((N, T, H), dtype=wx.dtype)
        c_last = np.empty((N, H), dtype=wx.dtype)
        form = choose_form("lstm", "forward", wx.dtype, H, T)
        lstm_forward(x, buffers.x_tm, h0, c0, wx, wh, b, buffers.gates, buffers.c, buffers.tanh_c,
                     buffers.h, h_out, c_last, int(form), blocks)
        return h_out, c_last, LSTMForwardState(buffers, h0, wx, wh, T, blocks)

    def _backprop(self, dh, dc_last, state):
        h0, wx, T, buffers = state.h0, state.wx, state.steps, state.buffers
        ids = buffers.x_tm.dtype.kind == "i"  # a forward on token ids: no dx
        dx, dh0, dwx, dwh, db = self._gradient_buffers(h0, wx, T, 0 if ids else None)
        dc0 = np.empty(h0.shape, wx.dtype)
        form = choose_form("lstm", "backward", wx.dtype, h0.shape[1], T)
        lstm_backward(dh, dc_last, buffers.x_tm, wx, state.wh, buffers.gates, buffers.c,
                      buffers.tanh_c, buffers.h, dx, dh0, dc0, dwx, dwh, db, int(form),
                      state.blocks)
        return dx, dh0, dc0, dwx, dwh, db

    def step_forward(self, x, prev_h, prev_c):
        """x (N, D), prev_h (N, H), prev_c (N, H) -> (next_h, next_c, meta)."""
        wx, wh, b = self._weights()
        x, prev_h = self._step_inputs(x, prev_h, wx.dtype)
        prev_c = _checks.float_array("prev_c", prev_c, ("N", "H"), prev_h.shape, wx.dtype,
                                     cast=True)
        h, c_last, state = self._run(x, prev_h, prev_c, wx, wh, b)
        return h[:, 0], c_last, state

    def step_backward(self, dnext_h, dnext_c, meta):
        """dnext_h, dnext_c (N, H) and meta from step_forward ->
        (dx (N, D), dprev_h, dprev_c, dWx, dWh, db)."""
        shape, dtype = meta.h0.shape, meta.wx.dtype
        dnext_h = self._upstream("dnext_h", dnext_h, shape, dtype)
        dnext_c = self._upstream("dnext_c", dnext_c, shape, dtype)
        # The kernel overwrites the gate buffer; a step's meta stays reusable.
        state = meta._replace(buffers=meta.buffers._replace(gates=meta.buffers.gates.copy()))
        dx, dprev_h, dprev_c, dwx, dwh, db = self._backprop(dnext_h[:, None], dnext_c, state)
        return dx[:, 0], dprev_h, dprev_c, dwx, dwh, db

    def forward(self, x, h0, c0=None):
        """x (N, T, D), h0 (N, H), optional c0 (N, H) (zeros by default) -> h (N, T, H)."""
        wx, wh, b = self._weights()
        x, h0 = self._sequence_inputs(x, h0, wx.dtype)
        if c0 is None:
            c0 = np.zeros(h0.shape, h0.dtype)  # (cheaper than np.zeros_like here)
        else:
            c0 = _checks.float_array("c0", c0, ("N", "H"), h0.shape, wx.dtype, cast=True)
        segments = recompute.segments(self, x, h0, c0, wx, wh, b)
        if segments is None:
            h, self.final_c, self.meta = self._run(x, h0, c0, wx, wh, b)
        else:
            (h, self.final_c), self.meta = segments.forward(), segments
        return h

    def backward(self, dh):
        """dh (N, T, H) -> (dx (N, T, D), dh0 (N, H)); fills ``grads``."""
        state = self._take_vector_meta()
        N, H = state.h0.shape
        dtype = state.wx.dtype
        dh = self._upstream("dh", dh, (N, state.steps, H), dtype)
        if isinstance(state, recompute.SegmentedState):
            dx, dh0, _, dwx, dwh, db = state.backward(dh)
            self._spare = state.work
        else:
            dx, dh0, _, dwx, dwh, db = self._backprop(dh, np.zeros((N, H), dtype), state)
            self._spare = state.buffers  # see _state_buffers
        self._set_weight_grads(dwx, dwh, db)
        return dx, dh0


class word_embedding(_Layer):
    """Word vectors: x int (N, T) -> W[x] (N, T, D).  params: ``w_name`` (V, D), N(0, 1)."""

    def __init__(self, voc_dim, vec_dim, name="we", dtype=np.float64):
        super().__init__(name, dtype)
        self.voc_dim = _checks.positive_int("voc_dim", voc_dim)
        self.vec_dim = _checks.positive_int("vec_dim", vec_dim)
        self.w_name = name + "_w"
        self.params[self.w_name] = _random_weights(1.0, (self.voc_dim, self.vec_dim), self.dtype)
        self.grads[self.w_name] = None

    def _weight(self):
        return _checks.parameter(self, self.w_name, ("V", "D"), (self.voc_dim, self.vec_dim))

    def forward(self, x):
        """x int (N, T) with entries in [0, V) -> out (N, T, D)."""
        w = self._weight()
        words = _checks.index_array("x", x, ("N", "T"), (None, None), self.voc_dim)
        N, T = words.shape
        out = np.empty((N * T, self.vec_dim), dtype=w.dtype)
        embedding_forward(words.reshape(-1), w, out)
        self.meta = (words.reshape(-1), (N, T), w.dtype)
        return out.reshape(N, T, self.vec_dim)

    def backward(self, dout):
        """dout (N, T, D) -> fills ``grads[w_name]`` (V, D); repeated words accumulate."""
        words, (N, T), dtype = self._take_meta()
        dout = _checks.float_array("dout", dout, ("N", "T", "D"), (N, T, self.vec_dim), dtype,
                                   cast=True)
        dw = np.empty((self.voc_dim, self.vec_dim), dtype=dtype)
        embedding_backward(words, dout.reshape(N * T, self.vec_dim), dw)
        self.grads[self.w_name] = dw


class temporal_fc(_Layer):
    """Affine map at every step: x (N, T, D) -> x W + b (N, T, M).

    params: ``w_name`` (D, M), ``b_name`` (M,).
    """

    def __init__(self, input_dim, output_dim, init_scale=0.02, name="t_fc", dtype=np.float64):
        super().__init__(name, dtype)
        self.input_dim = _checks.positive_int("input_dim", input_dim)
        self.output_dim = _checks.positive_int("output_dim", output_dim)
        self.w_name = name + "_w"
        self.b_name = name + "_b"
        self.params[self.w_name] = _random_weights(init_scale, (self.input_dim, self.output_dim),
                                                   self.dtype)
        self.params[self.b_name] = np.zeros(self.output_dim, dtype=self.dtype)
        self.grads[self.w_name] = None
        self.grads[self.b_name] = None

    def _weights(self):
        D, M = self.input_dim, self.output_dim
        w = _checks.parameter(self, self.w_name, ("D", "M"), (D, M))
        b = _checks.parameter(self, self.b_name, ("M",), (M,), w.dtype)
        return w, b

    def forward(self, x):
        """x (N, T, D) -> out (N, T, M)."""
        w, b = self._weights()
        x = _checks.float_array("x", x, ("N", "T", "D"), (None, None, self.input_dim), w.dtype)
        N, T, D = x.shape
        M = self.output_dim
        rows = x.reshape(N * T, D)
        out = np.empty((N * T, M), dtype=w.dtype)
        linear_forward(rows, w, b, out, chunks_for(N * T, 2 * N * T * D * M))
        self.meta = (rows, w, (N, T))
        return out.reshape(N, T, M)

    def backward(self, dout):
        """dout (N, T, M) -> dx (N, T, D); fills ``grads`` (dW (D, M), db (M,))."""
        rows, w, (N, T) = self._take_meta()
        D, M = self.input_dim, self.output_dim
        dout = _checks.float_array("dout", dout, ("N", "T", "M"), (N, T, M), w.dtype, cast=True)
        dx = np.empty((N * T, D), dtype=w.dtype)
        dw = np.empty((D, M), dtype=w.dtype)
        db = np.empty(M, dtype=w.dtype)
        linear_backward(rows, w, dout.reshape(N * T, M), dx, dw, db,
                        chunks_for(N * T, 4 * N * T * D * M))
        self.grads[self.w_name] = dw
        self.grads[self.b_name] = db
        return dx.reshape(N, T, D)


class temporal_softmax_loss:
    """Softmax cross-entropy at every step, summed over the masked steps.

    forward(feat (N, T, V), label int (N, T), mask (N, T)) -> loss, divided by N
    when ``dim_average`` (by ``rows`` when given: the rows of a whole batch whose
    share ``feat`` is); backward() -> dfeat (N, T, V).
    """

    def __init__(self, dim_average=True):
        self.dim_average = dim_average
        self.dLoss = None

    def forward(self, feat, label, mask, rows=None):
        feat = _checks.float_array("feat", feat, ("N", "T", "V"), (None, None, None))
        N, T, V = feat.shape
        labels = _checks.index_array("label", label, ("N", "T"), (N, T), V)
        mask = np.asarray(mask)
        if not (np.issubdtype(mask.dtype, np.number) or mask.dtype == np.bool_):
            raise TypeError(f"mask: expected a boolean or numeric array, got {mask.dtype}")
        _checks.check_shape("mask", mask, ("N", "T"), (N, T))
        mask = np.ascontiguousarray(mask, dtype=feat.dtype).reshape(N * T)
        if rows is not None and not (_checks.is_int(rows) and rows >= N):
            raise ValueError(f"rows: expected an integer >= N = {N}, got {rows!r}")
        scale = 1.0 / (N if rows is None else rows) if self.dim_average else 1.0
        grad = np.empty((N * T, V), dtype=feat.dtype)
        # ~20 flops per score entry (exp, normalisation, gradient).
        loss = softmax_xent(feat.reshape(N * T, V), labels.reshape(-1), mask, scale, grad,
                            chunks_for(N * T, 20 * N * T * V))
        self.dLoss = grad.reshape(N, T, V)
        return np.float64(loss)

    def backward(self):
        """Gradient of the last forward's loss with respect to feat, (N, T, V)."""
        if self.dLoss is None:
            raise RuntimeError("temporal_softmax_loss: backward called with no forward; "
                               "call forward first")
        return self.dLoss


# The scores of a chunk of rows (and their gradient, as much again): small enough
# to stay cheap at any window, large enough that a chunk's GEMMs keep both threads
# busy (at V = 10,000 float32: 419 rows).
SCORE_CHUNK_BYTES = 16 * 2 ** 20


class FcSoftmaxLoss(NamedTuple):
    """What :func:`fc_softmax_loss` returns."""

    loss: float         # scale * the sum over rows of -log softmax(scores)[label]
    correct: int        # rows whose highest score is their label's
    dx: np.ndarray      # (N, T, D) d loss / d x, or None without gradients
    dw: np.ndarray      # (D, M) d loss / d w, or None
    db: np.ndarray      # (M,) d loss / d b, or None


def fc_softmax_loss(fc, x, labels, scale, gradients=True, chunk_bytes=None):
    """The softmax cross-entropy of the scores ``fc`` (a :class:`temporal_fc`) gives
    x (N, T, D), against labels int (N, T), with its gradients, without ever holding
    the (N, T, M) scores: the N T rows are taken in chunks (consecutive time steps of
    a stream, or whole streams) of at most ``chunk_bytes`` of scores (None:
    :data:`SCORE_CHUNK_BYTES`).

    Equals ``temporal_softmax_loss`` (no mask, loss and gradient times ``scale``)
    after ``fc.forward`` and, with ``gradients``, ``fc.backward`` of its gradient, up
    to the order of the sums over chunks.  ``fc``'s grads and meta are not touched.
    Returns a :class:`FcSoftmaxLoss`.
    """
    w, b = fc._weights()
    x = _checks.float_array("x", x, ("N", "T", "D"), (None, None, fc.input_dim), w.dtype)
    N, T, D = x.shape
    M = fc.output_dim
    labels = _checks.index_array("labels", labels, ("N", "T"), (N, T), M).reshape(-1)
    if chunk_bytes is None:
        chunk_bytes = SCORE_CHUNK_BYTES
    _checks.require(_checks.is_number(chunk_bytes) and chunk_bytes > 0, "chunk_bytes",
                    "a number of bytes > 0", chunk_bytes)
    rows = x.reshape(N * T, D)
    step = max(1, min(N * T, int(chunk_bytes) // (M * w.itemsize)))
    scores = np.empty((step, M), w.dtype)
    grad = np.empty((step, M), w.dtype)
    mask = np.ones(step, w.dtype)
    dx = dw = db = None
    if gradients:
        dx = np.empty((N * T, D), w.dtype)
        dw, db = np.zeros((D, M), w.dtype), np.zeros(M, w.dtype)
        dw_chunk, db_chunk = np.empty((D, M), w.dtype), np.empty(M, w.dtype)
    loss, correct = 0.0, 0
    for lo in range(0, N * T, step):
        hi = min(lo + step, N * T)
        R = hi - lo
        chunk, out, g = rows[lo:hi], scores[:R], grad[:R]
        linear_forward(chunk, w, b, out, chunks_for(R, 2 * R * D * M))
        correct += int(np.count_nonzero(out.argmax(axis=1) == labels[lo:hi]))
        loss += softmax_xent(out, labels[lo:hi], mask[:R], scale, g,
                             chunks_for(R, 20 * R * M))
        if gradients:
            linear_backward(chunk, w, g, dx[lo:hi], dw_chunk, db_chunk,
                            chunks_for(R, 4 * R * D * M))
            dw += dw_chunk
            db += db_chunk
    return FcSoftmaxLoss(loss, correct, None if dx is None else dx.reshape(N, T, D), dw, db)


class _LiveDict(MutableMapping):
    """A dict-like view of the params (or grads) of several layers.

    Reading gives the layer's own array; assigning replaces it in the owning
    layer, so ``model.params[k] = new`` takes effect at the next forward and
    ``model.params[k] is layer.params[k]`` always holds.
    """

    def __init__(self, layers, attribute):
        self._layers = layers
        self._attribute = attribute

    def _owner(self, key):
        for layer in self._layers:
            table = getattr(layer, self._attribute)
            if key in table:
                return table
        raise KeyError(f"{key!r}: not a parameter of this model; known: {sorted(self)}")

    def __getitem__(self, key):
        return self._owner(key)[key]

    def __setitem__(self, key, value):
        self._owner(key)[key] = value

    def __delitem__(self, key):
        raise TypeError(f"{key!r}: parameters cannot be removed from a model")

    def __iter__(self):
        for layer in self._layers:
            yield from getattr(layer, self._attribute)

    def __len__(self):
        return sum(len(getattr(layer, self._attribute)) for layer in self._layers)

    def __repr__(self):
        return repr(dict(self))


class RNN:
    """Serialises layers: ``params`` / ``grads`` gather theirs by name (live views).

    Two layers with the same name are refused (ValueError).
    """

    def __init__(self, *layers):
        names = set()
        for layer in layers:
            if layer.name in names:
                raise ValueError(f"layers: two layers are named {layer.name!r}; names must be unique")
            names.add(layer.name)
        self.layers = list(layers)
        self.params = _LiveDict(self.layers, "params")
        self.grads = _LiveDict(self.layers, "grads")

    def assign(self, name, val):
        """Replace parameter ``name`` in the layer that owns it."""
        self.params[name] = val

    def assign_grads(self, name, val):
        self.grads[name] = val

    def get_params(self, name):
        return self.params[name]

    def get_grads(self, name):
        return self.grads[name]

    def gather_params(self):
        """Nothing to gather: ``params`` is a live view of the layers' dicts."""

    def gather_grads(self):
        """Nothing to gather: ``grads`` is a live view of the layers' dicts."""

    def load(self, pretrained):
        """Copy the arrays of ``pretrained`` (name -> array) into matching parameters."""
        for name in self.params:
            if name in pretrained:
                self.params[name] = np.array(pretrained[name], copy=True)
