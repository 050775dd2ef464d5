"""Checkpointing in time: backpropagation through long sequences in bounded memory.

(Not the run checkpoints of :mod:`fastrnn.checkpoint`, which are files: here a
"checkpoint" is a recurrent state kept at some time step of one forward.)

The full path of a recurrent layer keeps every step's activations for its
backward: O(T) memory, ~61 KB a step for an LSTM at N = 8, H = 256 float32
(6 GB at T = 100,000).  A layer with ``checkpoint_every`` (or
``memory_budget``) keeps only the recurrent state (h, and c for an LSTM) at
the boundaries of pieces of K steps.  Its backward goes through the pieces
newest first: it recomputes a piece's activations from its stored state into
piece-sized buffers, then backpropagates through them, carrying the gradient
on the state across the boundary.

The LSTM runs this in two kernel calls (``kernels.lstm``): a forward that
stores no activations at all (the state in two alternating rows; h is written
to the output, the boundary states to ``stored``), and a backward that
recomputes and backpropagates every piece in turn.  Each chunk of batch rows
runs all its pieces on its own thread, so neither call pays per piece for
waking threads, packing the weights or Python, and the weight gradients are
summed per chunk inside the kernel.  The tanh RNN calls its full-path kernels
once per piece (``rnn_forward``, ``rnn_backward``) on buffers it reuses.

Schedule: ``strides = (K_1, ..., K_L)``, each a multiple of the next.  The
forward stores the state every K_1 steps.  In backward, each K_1-segment is
recomputed storing its state every K_2 steps, each K_2-segment every K_3
steps, and so on down to K_L-step pieces, which are recomputed into the
buffers and backpropagated.  One level (``checkpoint_every=K``: strides (K,))
costs one extra forward; L levels cost L extra forwards.  A forward is ~41%
of forward + backward, so one level costs ~1.4x the time, less what the
storing forward and the backward of the full path lose to their T-sized
buffers (docs/long_windows.md).

Memory beyond inputs and outputs, in values (``costs``; N rows, D inputs, H
units, G = H or 4H, R the values of one state: N H, or 2 N H for an LSTM)::

    full path        T N (2D + 2H)  (tanh RNN)   T N (2D + 7H)  (LSTM)
    a piece of K_L   K_L N (3D + 3H)             K_L N (D + 7H)
    stored states    R (ceil(T / K_1) + K_1 / K_2 + ... + K_{L-1} / K_L)

plus a fixed part of a few copies of the weights.  ``"auto"`` takes one
level with K = ceil(sqrt(T)), or more where a piece would hold less than 16
MiB (``AUTO_MIN_PIECE_BYTES``), made even (at T = 100,000, N = 8, D = 64,
H = 256 float32 LSTM: K = 318, 19 MB of pieces, 5 MB of states).  A
``memory_budget`` takes the schedule with the fewest levels that fits it, the
full path (no recomputation) first, and raises a ValueError naming the least
memory when none fits.

Exactness: the pieces run the forms and the block count the full path would
choose for the whole T, and their GEMMs see rows as the full path's do (see
:class:`SegmentedState`), so every step does the same arithmetic as there: h,
dx, dh0 and c_T equal the full path's bitwise (with an even K); the weight
gradients are sums of the pieces' sums (~1e-15 relative apart in float64).
"""

import functools
import math
from typing import NamedTuple

import numpy as np

from . import _checks
from .kernels.dispatch import choose_form
from .kernels.lstm import lstm_forward_states, lstm_recompute_backward
from .kernels.vanilla import rnn_backward, rnn_forward

__all__ = ["Schedule", "plan", "costs", "segments", "SegmentedState", "checkpoint_setting",
           "budget_setting"]


def checkpoint_setting(value):
    """``checkpoint_every`` checked: 0, a positive integer, or "auto"."""
    if isinstance(value, str) and value == "auto":
        return value
    if _checks.is_int(value) and value >= 0:
        return int(value)
    raise ValueError(f"checkpoint_every: expected 0 (store every step), a positive integer "
                     f"(steps between stored states) or 'auto', got {value!r}")


def budget_setting(value):
    """``memory_budget`` checked: None or a positive number of bytes."""
    if value is None:
        return None
    if _checks.is_number(value) and value > 0 and math.isfinite(value):
        return int(value)
    raise ValueError(f"memory_budget: expected None or a positive number of bytes, got {value!r}")


class Setting:
    """A layer attribute checked by ``check`` whenever it is set (constructor included)."""

    def __init__(self, check, doc):
        self.check, self.__doc__ = check, doc

    def __set_name__(self, owner, name):
        self.attribute = "_" + name

    def __get__(self, layer, owner=None):
        return self if layer is None else getattr(layer, self.attribute)

    def __set__(self, layer, value):
        setattr(layer, self.attribute, self.check(value))


def segments(layer, x, h0, c0, wx, wh, b):
    """A :class:`SegmentedState` for a recurrent ``layer``'s forward of x (N, T, D)
    from h0 (and c0 for an LSTM, else None) with its checked weights, or None
    where the full path runs (``checkpoint_every`` 0 and no budget, or a budget
    the full path fits).  Takes the layer's spare workspace."""
    if layer._checkpoint_every == 0 and layer._memory_budget is None:
        return None
    N, T, D = x.shape
    blocks = layer._blocks(N, T, D)
    cell = "lstm" if layer.gates_per_unit == 4 else "rnn"
    schedule = plan(T, layer._checkpoint_every, layer._memory_budget,
                    costs(cell, N, D, layer.h_dim, wx.dtype.itemsize, blocks))
    if not schedule.strides:
        return None
    spare, layer._spare = layer._spare, None
    return SegmentedState(cell, x, h0, c0, wx, wh, b, blocks, schedule, spare)


class Costs(NamedTuple):
    """Bytes of one call's working memory (see the module docstring)."""

    full_step: int   # a step of the full path
    piece_step: int  # a step of the pieces' buffers
    state: int       # one stored state
    fixed: int       # weight copies, gradient scratch and the kernels' partial sums


def costs(cell, N, D, H, itemsize, blocks):
    """:class:`Costs` of a ``cell`` ("rnn", "lstm") layer of N rows in ``blocks`` blocks."""
    lstm = cell == "lstm"
    G = 4 * H if lstm else H
    chunks = min(blocks, N)
    if lstm:  # x_tm, gates, c, tanh_c, h; copies and packings of the weights, and
        # per chunk a partial sum and a piece's scratch of the weight gradients
        piece_step, fixed = N * (D + 7 * H), (2 * chunks + 4) * (D + H + 1) * G
    else:  # x_tm, h, grad_pre, x_piece, h_piece; weight copies, the kernels' partials
        piece_step, fixed = N * (3 * D + 3 * H), (blocks + 3) * (D + H + 1) * G
    return Costs(full_step=N * (2 * D + (7 if lstm else 2) * H) * itemsize,
                 piece_step=piece_step * itemsize,
                 state=(2 if lstm else 1) * N * H * itemsize,
                 fixed=fixed * itemsize)


class Schedule(NamedTuple):
    """How a call stores and recomputes: ``strides`` (K_1, ..., K_L), () for the
    full path; ``nbytes`` its working memory (``Costs``); ``recompute`` the
    extra forwards it runs (L, less the newest piece)."""

    strides: tuple
    nbytes: int

    @property
    def recompute(self):
        return len(self.strides)


# "auto" makes a piece's buffers at least this large: each piece costs
# something whatever its length (the tanh RNN's kernel calls wake the threads
# and pack the weights; the LSTM adds each piece's weight gradients, (D + H + 1)
# 4H values, into its chunk's sums), which pieces of sqrt(T) steps at T = 10,000,
# N = 8, H = 256 did not amortise (docs/long_windows.md#measured).
AUTO_MIN_PIECE_BYTES = 16 * 2 ** 20


def auto_steps(T, c):
    """``"auto"``'s K for T steps and :class:`Costs` c: ceil(sqrt(T)), or more
    steps where a piece's buffers would stay under AUTO_MIN_PIECE_BYTES; made
    even (see SegmentedState)."""
    K = max(math.isqrt(T - 1) + 1, AUTO_MIN_PIECE_BYTES // c.piece_step)
    return K + K % 2


def _nbytes(strides, T, c):
    if not strides:
        return T * c.full_step + c.fixed
    counts = [math.ceil(T / strides[0])] + [a // b for a, b in zip(strides, strides[1:])]
    return strides[-1] * c.piece_step + sum(counts) * c.state + c.fixed


def _nested(piece, ratios):
    """Strides (K_1, ..., K_L) from the piece length K_L and the ratios K_i / K_{i+1}."""
    strides = [piece]
    for ratio in reversed(ratios):
        strides.insert(0, strides[0] * ratio)
    return tuple(strides)


def _around(value, low, even=False):
    """~30 integers from value / 2 to 2 value, spaced geometrically, all >= low
    (and even with ``even``): the candidates of a search around an optimum."""
    found = set()
    for i in range(-15, 16):
        n = max(low, round(value * 2 ** (i / 15)))
        found.add(n + n % 2 if even else n)
    return sorted(found)


def _best_of_levels(levels, T, c):
    """The least-memory nested schedule of ``levels`` levels, or None if there is
    none shorter than T: pieces of an even number of steps (see SegmentedState)
    and equal ratios between levels, searched around the optimum of the
    continuous problem (every term of the memory sum equal)."""
    if levels == 1:
        ks, ms = _around(math.sqrt(T * c.state / c.piece_step), 2, even=True), [1]
    else:
        term = (c.piece_step * c.state ** levels * T) ** (1 / (levels + 1))
        ks, ms = _around(term / c.piece_step, 2, even=True), _around(term / c.state, 2)
    found = [(_nbytes(strides, T, c), strides)
             for strides in (_nested(k, [m] * (levels - 1)) for k in ks for m in ms)
             if strides[0] < T]
    return min(found) if found else None


@functools.lru_cache(maxsize=256)
def plan(T, setting, budget, c):
    """The :class:`Schedule` of a call of T steps, for ``checkpoint_every`` =
    ``setting`` and ``memory_budget`` = ``budget`` (bytes or None), with
    :class:`Costs` ``c``."""
    if budget is None:
        if setting == 0:
            strides = ()
        else:
            strides = (min(T, auto_steps(T, c) if setting == "auto" else setting),)
        return Schedule(strides, _nbytes(strides, T, c))
    if setting not in (0, "auto"):
        raise ValueError(f"checkpoint_every={setting!r} and memory_budget={budget!r}: both fix "
                         "the schedule; set checkpoint_every to 'auto' (or 0) to let the budget "
                         "choose it")
    root = (min(T, auto_steps(T, c)),)
    candidates = [(), root]
    for levels in range(1, max(2, math.ceil(math.log2(T))) + 1):
        best = _best_of_levels(levels, T, c)
        if best is not None:
            candidates.append(best[1])
    least = None
    for strides in candidates:
        nbytes = _nbytes(strides, T, c)
        if nbytes <= budget:
            return Schedule(strides, nbytes)
        least = nbytes if least is None else min(least, nbytes)
    raise ValueError(f"memory_budget: {budget:,} bytes cannot hold any schedule for T = {T:,} "
                     f"steps; the least is {least:,} bytes")


class _Workspace(NamedTuple):
    """Flat buffers of one call, sized for pieces of K steps, reused by every piece
    (and by the next call of the same sizes, see ``_RecurrentLayer._spare``)."""

    x_tm: np.ndarray      # (K N D,) the kernels' chunk-major input (LSTM: then dx)
    h: np.ndarray         # ((K + 1) N H,) hidden states
    gates: np.ndarray     # (K N 4H,) LSTM gates; tanh RNN: grad_pre (K N H,)
    c: np.ndarray         # ((K + 1) N H,) LSTM cell states (empty for a tanh RNN)
    tanh_c: np.ndarray    # (K N H,) LSTM tanh(c) (empty for a tanh RNN)
    x_piece: np.ndarray   # (N K D,) tanh RNN: a piece of x, batch-major; then its dx
    h_piece: np.ndarray   # (N K H,) tanh RNN: a piece's h output; then its dh
    state: np.ndarray     # (4, N, H): h and c of the running piece, dh and dc carried
    grads: tuple          # tanh RNN: scratch dWx (D, G), dWh (H, G), db (G,) of one piece
    stored: tuple         # per level: states (count, S, N, H), S = 1 or 2 (h, c)

    def arrays(self):
        """Every buffer, in order."""
        return list(self[:-2]) + list(self.grads) + list(self.stored)

    @property
    def sizes(self):
        return tuple(a.shape for a in self.arrays())


def _workspace(lstm, N, D, H, dtype, K, counts, spare):
    """The :class:`_Workspace` for pieces of at most K steps and ``counts`` stored
    states per level: ``spare`` when it has those sizes, else new.  (The LSTM's
    kernels run all pieces in one call each and need no buffers of their own
    outside the kernels; the tanh RNN's run a piece a call.)"""
    G = 4 * H if lstm else H
    S = 2 if lstm else 1
    rnn = 0 if lstm else 1
    shapes = ((K * N * D,), ((K + 1) * N * H,), (K * N * G,),
              (((K + 1) * N * H) if lstm else 0,), ((K * N * H) if lstm else 0,),
              (rnn * N * K * D,), (rnn * N * K * H,), (4, N, H),
              (rnn * D, G), (rnn * H, G), (rnn * G,)) + tuple((n, S, N, H) for n in counts)
    if (isinstance(spare, _Workspace) and spare.x_tm.dtype == dtype
            and spare.sizes == shapes):
        return spare
    arrays = [np.empty(shape, dtype) for shape in shapes]
    return _Workspace(*arrays[:8], tuple(arrays[8:11]), tuple(arrays[11:]))


def _cuts(T, K, blocks, N):
    """The pieces' boundaries, 0 = cuts[0] < ... < cuts[-1] = T: every K steps from
    each start of the time runs into which the full path's kernels split T (one
    run unless N < blocks, see ``blocked.chunking``), so that every GEMM over a
    piece's rows covers rows of one GEMM of the full path, in the same order.
    A run's last step is not a piece of its own: a GEMM of one row runs as a
    GEMV, which rounds differently (the piece before it takes K + 1 steps)."""
    splits = -(-blocks // min(blocks, N))
    starts = [q * T // splits for q in range(splits)] + [T]
    cuts = {T}
    for a, b in zip(starts, starts[1:]):
        run = list(range(a, b, K))
        if len(run) > 1 and b - run[-1] == 1:
            run.pop()
        cuts.update(run)
    return sorted(cuts)


class SegmentedState:
    """What a segmented forward keeps for its backward (the layer's ``meta``):
    the caller's x (N, T, D), read again piece by piece in backward (so it must
    not be changed in between), copies of the weights, the stored states and
    the workspace.  ``forward()`` then ``backward(dh)``, once each.

    Bitwise equality with the full path needs each row of the input projection
    and of dx = dA Wx^T to come out of the same BLAS kernel as there: OpenBLAS
    computes the last row of a GEMM with an odd row count differently (measured).
    Hence pieces of an even K (``"auto"``'s is), cut at the full path's time
    splits (``_cuts``), and never split in time themselves (``n_chunks`` blocks).
    """

    def __init__(self, cell, x, h0, c0, wx, wh, b, blocks, schedule, spare):
        N, T, D = x.shape
        H = h0.shape[1]
        self.lstm = cell == "lstm"
        self.x, self.h0, self.steps, self.schedule = x, h0, T, schedule
        self.blocks = min(blocks, N)
        K = schedule.strides[-1]
        self.cuts = _cuts(T, K, blocks, N)
        self.cut_steps = np.array(self.cuts, dtype=np.int64)
        longest = max(b - a for a, b in zip(self.cuts, self.cuts[1:]))
        # Pieces between stored states, per level (the last level: 1).
        self.groups = tuple(stride // K for stride in schedule.strides)
        counts = [-(-(len(self.cuts) - 1) // self.groups[0])] + \
            [a // b for a, b in zip(self.groups, self.groups[1:])]
        # Copies: the backward recomputes with the weights this forward ran with,
        # whatever the caller does to params in between.
        self.wx, self.wh, self.b = wx.copy(), wh.copy(), b.copy()
        # The forms the full path would run for the whole T (a piece of one step
        # would choose another), so that every step's arithmetic is the full path's.
        self.form = int(choose_form(cell, "forward", wx.dtype, H, T))
        self.backward_form = int(choose_form(cell, "backward", wx.dtype, H, T, self.form))
        self.work = _workspace(self.lstm, N, D, H, wx.dtype, longest, counts, spare)
        self.no_h = np.empty((N, 0, H), wx.dtype)  # h_out of a forward that writes no h
        self.resident = None  # the piece whose activations fill the buffers
        self.work.state[0] = h0
        if self.lstm:
            self.work.state[1] = c0

    def forward(self):
        """Run the forward over all T steps from (h0, c0) -> (h (N, T, H), c_T
        (N, H) or None for a tanh RNN)."""
        N, T, _ = self.x.shape
        h = np.empty((N, T, self.h0.shape[1]), dtype=self.wx.dtype)
        if self.lstm:
            self._states_forward(0, len(self.cuts) - 1, 0, h)
            return h, self.work.state[1].copy()
        self._forward(0, len(self.cuts) - 1, None, 0, h)
        return h, None

    def backward(self, dh):
        """dh (N, T, H), checked -> (dx (N, T, D), dh0 (N, H), dc0 (N, H) or None,
        dWx (D, G), dWh (H, G), db (G,))."""
        N, T, D = self.x.shape
        G = self.wx.shape[1]
        dtype = self.wx.dtype
        dx = np.empty((N, T, D), dtype)
        grads = (np.empty((D, G), dtype), np.empty((self.h0.shape[1], G), dtype),
                 np.empty(G, dtype))
        self.work.state[2:] = 0.0  # no gradient reaches h_T, c_T from later steps
        if self.lstm:
            for grad in grads:
                grad[...] = 0.0  # the kernel adds each piece's sums
            self._lstm_backward(0, 0, len(self.cuts) - 1, dh, dx, grads)
        else:
            self._first = True
            self._backward(0, 0, len(self.cuts) - 1, dh, dx, grads)
        dc0 = self.work.state[3].copy() if self.lstm else None
        return (dx, self.work.state[2].copy(), dc0) + grads

    def _states_forward(self, i, j, level, h_out):
        """LSTM: one ``lstm_forward_states`` call over pieces [i, j) from the
        state in ``work.state[:2]`` (left there at step cuts[j]), storing it every
        ``groups[level]`` pieces in ``work.stored[level]``; h written into h_out
        (N, T, H), or nowhere if it is ``self.no_h``."""
        w = self.work
        lstm_forward_states(self.x, self.cut_steps[i:j + 1], w.state[:2], self.wx, self.wh,
                            self.b, w.x_tm, w.gates, h_out, w.stored[level], self.groups[level],
                            self.form, self.blocks)

    def _lstm_backward(self, level, i, j, dh, dx, grads):
        """LSTM: backward over pieces [i, j), whose states every ``groups[level]``
        pieces are in ``work.stored[level]``: at the last level (a state per
        piece) one ``lstm_recompute_backward`` call; above it, the groups newest
        first, each recomputed storing the next level's states, then recursed into."""
        w = self.work
        if level + 1 == len(self.groups):
            lstm_recompute_backward(self.x, dh, self.cut_steps[i:j + 1], w.stored[level],
                                    self.wx, self.wh, self.b, w.x_tm, w.gates, w.c, w.tanh_c,
                                    w.h, w.state[2:], dx, *grads, self.form, self.backward_form,
                                    self.blocks)
            return
        group = self.groups[level]
        for k in range(-(-(j - i) // group) - 1, -1, -1):
            a, b = i + k * group, min(i + (k + 1) * group, j)
            w.state[:2] = w.stored[level][k]
            self._states_forward(a, b, level + 1, self.no_h)
            self._lstm_backward(level + 1, a, b, dh, dx, grads)

    def _forward(self, i, j, start, level, h_out=None):
        """tanh RNN: forward over pieces [i, j), a kernel call each, from the state
        ``start`` ((1, N, H); None: the one in ``work.state``), storing the state every
        ``groups[level]`` pieces in ``work.stored[level]`` (``level`` None:
        nothing stored); writes h into h_out when given.  Leaves the last
        piece's activations in the buffers."""
        work, cuts = self.work, self.cuts
        if start is not None:
            work.state[:1] = start
        for p in range(i, j):
            if level is not None and (p - i) % self.groups[level] == 0:
                work.stored[level][(p - i) // self.groups[level]] = work.state[:1]
            h_piece = self._piece_forward(cuts[p], cuts[p + 1])
            if h_out is not None:
                h_out[:, cuts[p]:cuts[p + 1]] = h_piece
        self.resident = j - 1

    def _backward(self, level, i, j, dh, dx, grads):
        """tanh RNN: backward over pieces [i, j), whose states every ``groups[level]`` pieces
        are in ``work.stored[level]``: those groups newest first, each recomputed
        (storing states for the next level, or at the last level into the
        buffers) and backpropagated."""
        group = self.groups[level]
        for k in range(-(-(j - i) // group) - 1, -1, -1):
            a, b = i + k * group, min(i + (k + 1) * group, j)
            start = self.work.stored[level][k]
            if level + 1 < len(self.groups):
                self._forward(a, b, start, level + 1)
                self._backward(level + 1, a, b, dh, dx, grads)
                continue
            if self.resident != a:  # (a group of the last level is one piece)
                self._forward(a, b, start, None)
            self._piece_backward(self.cuts[a], self.cuts[b], dh, dx, grads)

    def _views(self, L):
        """The buffers for a piece of L steps: the prefixes the kernels take, with
        the shapes that tell them L."""
        w = self.work
        N, _, D = self.x.shape
        H = self.h0.shape[1]
        G = self.wx.shape[1]
        kept = (w.x_tm[:L * N * D], w.gates[:L * N * G], w.c[:(L + 1) * N * H],
                w.tanh_c[:L * N * H], w.h[:(L + 1) * N * H])
        return (kept, w.x_piece[:N * L * D].reshape(N, L, D),
                w.h_piece[:N * L * H].reshape(N, L, H))

    def _piece_forward(self, t, u):
        """Run steps [t, u) from ``work.state`` into the buffers, leave their last
        state in ``work.state``; -> the piece's h (N, u - t, H), a view of the buffers."""
        w, L = self.work, u - t
        (x_tm, gates, c, tanh_c, h), x_piece, h_piece = self._views(L)
        x_piece[...] = self.x[:, t:u]
        rnn_forward(x_piece, x_tm, w.state[0], self.wx, self.wh, self.b, h, h_piece, self.form,
                    self.blocks)
        w.state[0] = h_piece[:, L - 1]
        return h_piece

    def _piece_backward(self, t, u, dh, dx, grads):
        """Backpropagate steps [t, u), whose activations fill the buffers, with the
        gradient carried on their last state in ``work.state[2:]``, replaced by
        the one on their first state; add the weight gradients into ``grads``."""
        w, L = self.work, u - t
        (x_tm, gates, c, tanh_c, h), dx_piece, dh_piece = self._views(L)
        dh_piece[...] = dh[:, t:u]
        # The full kernel adds the gradient from step u to dh at step u - 1 (and
        # 0 from a piece's own end): the same sum, so dx and dh0 stay bitwise.
        dh_piece[:, L - 1] += w.state[2]
        out = grads if self._first else w.grads
        rnn_backward(dh_piece, x_tm, self.wx, self.wh, h, gates, dx_piece, w.state[2], *out,
                     self.backward_form, self.blocks)
        if not self._first:
            for total, part in zip(grads, w.grads):
                total += part
        self._first = False
        self.resident = None  # (a piece is backpropagated once)
        dx[:, t:u] = dx_piece
