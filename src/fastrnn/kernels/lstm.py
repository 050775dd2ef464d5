"""LSTM time loops, forward and backward, one compiled call each.

Layout (see :mod:`.blocked`): the stored state is time-major and C-contiguous per
chunk of batch rows (the chunk-major buffers of :mod:`.blocked`), so that each
step's slice of a chunk is one contiguous ``(R, ...)`` block that BLAS takes
without a copy; the API's batch-major ``(N, T, ...)`` input, output and
gradients are read and written directly by the kernels' blocks (no separate
transposes).  Gate order along the ``4H`` axis is i, f, o, g.

The input projection ``x Wx`` of all steps is one GEMM per work block before
the forward loop (or, for token ids, a lookup of rows of a table E Wx:
:func:`.blocked.input_projection_block`), and the weight gradients are GEMMs after
the backward loop (:func:`.blocked.weight_gradient_block`): inside the loops there is only the
recurrent GEMM and one fused elementwise pass per step.  Batch rows never
interact inside a loop, so each chunk runs the whole sequence on its own thread
with no synchronisation per step.  When there are as many work blocks as chunks,
a chunk's thread also does the chunk's projection and weight-gradient GEMMs, in
the same parallel region as its time loop: every region start may have to wake
a sleeping thread, which at small sizes costs as much as the work
(docs/tuning.md#thread-wake-ups).

``n_blocks`` (the last argument) fixes the chunks and so the buffers' layout:
a forward and the backward of its state must be called with the same value.
"""

import numpy as np
from numba import prange

from ._jit import kernel, serial_and_parallel
from .activations import float_like, sigmoid, tanh
from .blocked import (add_column_sums, add_partials, backward_weights, block_index,
                      chunk_bounds, chunk_step_weights, chunk_view, chunking, copy_row,
                      input_backward_weights, input_projection_block, per_thread_copies,
                      shared_step_weights,
                      step_out_columns, step_product, sum_weight_gradients, tiled,
                      transposed_copy, weight_gradient_block, weight_gradient_parts)


@serial_and_parallel
def lstm_forward(x, x_tm, h0, c0, wx, wh, b, gates, c, tanh_c, h, h_out, c_last, form,
                 n_blocks):
    """Run an LSTM over a sequence.

    x (N, T, D) the input, batch-major as the API has it; h0, c0 (N, H) initial
    state; wx (D, 4H); wh (H, 4H); b (4H,).
    Writes, as chunk-major buffers: x_tm (T * N * D,) the input (kept for the
    weight gradients); gates (T * N * 4H,) the activations i, f, o, g of every
    step; c and h ((T + 1) * N * H,) the cell and hidden states c_0..c_T and
    h_0..h_T (step 0 a copy of the initial state, so that every step's previous
    state, and the weight gradient's Hprev, is one slice); tanh_c (T * N * H,)
    tanh(c_1)..tanh(c_T).  Writes h_out (N, T, H), the hidden states h_1..h_T
    batch-major (the result), and c_last (N, H) = c_T.
    ``form``: how each step's h_{t-1} Wh runs, an int of
    :class:`.dispatch.StepForm`: BLAS, PACKED or NARROW (narrow panels, which
    must cover 4H exactly; see :func:`.blocked.step_product`).
    Token ids instead of vectors: x (N, T) ints in [0, V), wx a table (V, 4H)
    whose row v is token v's input projection, x_tm (T * N,) ints
    (``blocked.input_projection_block``).
    """
    N = x.shape[0]
    n_chunks, splits = chunking(n_blocks, N)
    own = per_thread_copies(wh)
    wh_blas, wh_panels = shared_step_weights(wh, own, form, False)
    if splits > 1:
        for q in prange(n_chunks * splits):
            input_projection_block(x, x_tm, wx, gates, 0, block_index(q), n_chunks, splits)
    for p in prange(n_chunks):
        if splits == 1:
            input_projection_block(x, x_tm, wx, gates, 0, block_index(p), n_chunks, splits)
        _forward_chunk(block_index(p), n_chunks, h0, c0, wh, own, wh_blas, wh_panels, b, gates,
                       c, tanh_c, h, h_out, c_last, form)


@kernel(inline="always")
def _chunk_state(p, n_chunks, N, T, H, gates, c, tanh_c):
    """Chunk p's rows [lo, hi) and its views of the stored gates (T, R, 4H), c
    (T + 1, R, H) and tanh_c (T, R, H): (lo, hi, gates_p, c_p, tanh_p)."""
    lo, hi = chunk_bounds(p, n_chunks, N)
    return (lo, hi, chunk_view(gates, T, N, p, n_chunks, 4 * H),
            chunk_view(c, T + 1, N, p, n_chunks, H), chunk_view(tanh_c, T, N, p, n_chunks, H))


# The time loop of one chunk is a function of its own, not inlined: compiled once
# and called from both builds of the kernel, so the second build compiles quickly
# (docs/tuning.md#compile-time).
@kernel
def _forward_chunk(p, n_chunks, h0, c0, wh, own, shared_wh, shared_wh_panels, b, gates, c,
                   tanh_c, h, h_out, c_last, form):
    """The time loop of chunk p of ``lstm_forward`` (same arguments), on Wh as
    ``blocked.chunk_step_weights`` gives it."""
    wh_blas, wh_panels = chunk_step_weights(wh, own, shared_wh, shared_wh_panels, form, False)
    N, T, H = h_out.shape
    lo, hi, gates_p, c_p, tanh_p = _chunk_state(p, n_chunks, N, T, H, gates, c, tanh_c)
    R = hi - lo
    G = 4 * H
    h_p = chunk_view(h, T + 1, N, p, n_chunks, H)
    for r in range(R):
        copy_row(h0[lo + r], h_p[0, r])
        copy_row(c0[lo + r], c_p[0, r])
    recurrent = np.empty((R, G), dtype=gates.dtype)
    bias, scale = tiled_bias_and_scale(b, R)
    for t in range(T):
        step_product(h_p[t], wh_blas, wh_panels, recurrent, form)
        gate_block(gates_p[t], recurrent, bias, scale, c_p[t], c_p[t + 1], tanh_p[t], h_p[t + 1])
        for r in range(R):
            copy_row(h_p[t + 1, r], h_out[lo + r, t])
    for r in range(R):
        copy_row(c_p[T, r], c_last[lo + r])


@kernel(inline="always")
def tiled_bias_and_scale(b, rows):
    """The bias b (4H,) repeated for ``rows`` rows, and the matching pre-activation
    scale: 1 for the sigmoid gates i, f, o and 2 for g, since tanh(z) = 2 sigmoid(2z) - 1.
    Both (rows * 4H,)."""
    G = b.shape[0]
    scale = np.ones(rows * G, dtype=b.dtype)
    for r in range(rows):
        for j in range(3 * G // 4, G):
            scale[r * G + j] = 2.0
    return tiled(b, rows), scale


@kernel(inline="always")
def gate_block(a, rec, bias, scale, c_prev, c_new, tanh_c, h_new):
    """The fused forward pass of one step over a block of R rows.

    a (R, 4H): x_t Wx on entry, the activations i, f, o, g on exit; rec (R, 4H) =
    h_{t-1} Wh; bias, scale (R * 4H,) from ``tiled_bias_and_scale``; c_prev (R, H).
    Writes c_new, tanh_c = tanh(c_new) and h_new (R, H).

    The nonlinearities run as one loop over the whole contiguous block (all four
    gates as sigmoids, g through tanh(z) = 2 sigmoid(2z) - 1, exact to ~1e-16
    absolute), because a vectorised loop per row of length 3H or H leaves a scalar
    remainder that runs the whole polynomial one lane at a time (at H = 20, 20 of
    the 100 activations of a row).  The cell update is plain arithmetic per row.
    """
    R, G = a.shape
    H = G // 4
    flat = a.reshape(R * G)
    flat_rec = rec.reshape(R * G)
    for k in range(R * G):
        flat[k] = sigmoid(scale[k] * (flat[k] + flat_rec[k] + bias[k]))
    one, two = float_like(1.0, a), float_like(2.0, a)  # see float_like
    for r in range(R):
        row = a[r]
        for j in range(H):
            g_gate = two * row[3 * H + j] - one
            row[3 * H + j] = g_gate
            c_new[r, j] = row[H + j] * c_prev[r, j] + row[j] * g_gate
    flat_c = c_new.reshape(R * H)
    flat_tanh = tanh_c.reshape(R * H)
    for k in range(R * H):
        flat_tanh[k] = tanh(flat_c[k])
    for r in range(R):
        for j in range(H):
            h_new[r, j] = a[r, 2 * H + j] * tanh_c[r, j]


@serial_and_parallel
def lstm_backward(dh, dc_last, x_tm, wx, wh, gates, c, tanh_c, h, dx, dh0, dc0, dwx, dwh, db,
                  form, n_blocks):
    """Backpropagate through the LSTM run by ``lstm_forward``.

    dh (N, T, H), batch-major: upstream gradient on every h_t; dc_last (N, H):
    gradient on the final cell state (zeros for a plain sequence); x_tm, wx, wh
    and the forward's chunk-major gates, c, tanh_c and h, with the forward's
    ``n_blocks``.  ``gates`` is OVERWRITTEN with dA, the gradient of the
    pre-activations (same layout).  Writes dx (N, T, D), dh0 and dc0 (N, H), and
    the weight gradients dwx (D, 4H), dwh (H, 4H), db (4H,).
    ``form`` as in ``lstm_forward``, for each step's dA Wh^T.
    After a forward on token ids: dx (N, T, 0) is not written, and dwx (V, 4H)
    gets the gradient of the table (``blocked.input_gradient_block``).
    """
    N, T, H = dh.shape
    D = dwx.shape[0]
    G = 4 * H
    n_chunks, splits = chunking(n_blocks, N)
    n_work = n_chunks * splits
    own, wh_t, wh_t_packed, wx_t = input_backward_weights(x_tm, wx, wh, form)
    dwx_parts, dwh_parts, db_parts = weight_gradient_parts(n_work, D, H, G, dwx.dtype)
    for p in prange(n_chunks):
        _backward_chunk(block_index(p), n_chunks, dh, dc_last, wh, own, wh_t, wh_t_packed, gates,
                        c, tanh_c, dh0, dc0, form)
        if splits == 1:
            weight_gradient_block(block_index(p), n_chunks, splits, x_tm, h, gates, wx,
                                  own, wx_t, dx, dwx, dwh, db, dwx_parts, dwh_parts, db_parts)
    if splits > 1:
        for q in prange(n_work):
            weight_gradient_block(block_index(q), n_chunks, splits, x_tm, h, gates, wx,
                                  own, wx_t, dx, dwx, dwh, db, dwx_parts, dwh_parts, db_parts)
    sum_weight_gradients(dwx_parts, dwh_parts, db_parts, dwx, dwh, db)


@kernel
def _backward_chunk(p, n_chunks, dh, dc_last, wh, own, shared_wh_t, shared_wh_t_packed, gates,
                    c, tanh_c, dh0, dc0, form):
    """The backward time loop of chunk p of ``lstm_backward`` (same arguments; Wh^T
    as ``blocked.chunk_step_weights`` gives it); not inlined, like ``_forward_chunk``."""
    wh_t, wh_t_packed = chunk_step_weights(wh, own, shared_wh_t, shared_wh_t_packed, form, True)
    N, T, H = dh.shape
    lo, hi, gates_p, c_p, tanh_p = _chunk_state(p, n_chunks, N, T, H, gates, c, tanh_c)
    R = hi - lo
    # dh_next: step_product's out, of which the first H columns are used.
    dh_next = np.zeros((R, step_out_columns(wh_t_packed, form, H)), dtype=gates.dtype)
    dc_next = dc_last[lo:hi].copy()
    for t in range(T - 1, -1, -1):
        for r in range(R):
            _gate_grad_pass(gates_p[t, r], c_p[t, r], tanh_p[t, r], dh[lo + r, t], dh_next[r],
                            dc_next[r])
        step_product(gates_p[t], wh_t, wh_t_packed, dh_next, form)
    for r in range(R):  # row copies, see copy_row
        copy_row(dh_next[r, :H], dh0[lo + r])
        copy_row(dc_next[r], dc0[lo + r])


@kernel(inline="always")
def _gate_grad_pass(a, c_prev, tanh_c, dh_t, dh_next, dc_next):
    """One row of the fused backward pass.

    a (4H,) holds the activations i, f, o, g on entry and dA (the gradient of the
    pre-activations) on exit; tanh_c (H,) = tanh(c_t); dh_t (H,) the upstream
    gradient of h_t; dh_next (H,) the gradient reaching h_t from step t+1 (read);
    dc_next (H,) the gradient on c_t from step t+1, replaced by the one on c_{t-1}.
    """
    H = tanh_c.shape[0]
    one = float_like(1.0, a)  # see float_like
    for j in range(H):
        i_gate = a[j]
        f_gate = a[H + j]
        o_gate = a[2 * H + j]
        g_gate = a[3 * H + j]
        dh_j = dh_t[j] + dh_next[j]
        dc_j = dc_next[j] + dh_j * o_gate * (one - tanh_c[j] * tanh_c[j])
        dc_next[j] = dc_j * f_gate
        a[j] = dc_j * g_gate * i_gate * (one - i_gate)
        a[H + j] = dc_j * c_prev[j] * f_gate * (one - f_gate)
        a[2 * H + j] = dh_j * tanh_c[j] * o_gate * (one - o_gate)
        a[3 * H + j] = dc_j * i_gate * (one - g_gate * g_gate)


# Checkpointing in time (fastrnn.recompute): a forward that keeps only states at
# piece boundaries, and a backward that recomputes each piece from its stored
# state and backpropagates through it, each one call over many pieces.  A chunk's
# thread runs all the pieces of its batch rows without waiting for the others
# (rows never interact), so a call is one parallel region and one packing of the
# weights however many pieces it covers, and no piece's buffers leave the kernel.
# A piece's input projection is one GEMM over its rows (``_project_piece``), as
# the full path's is over a chunk's, and its steps do the full path's arithmetic.


@kernel(inline="always")
def _project_piece(x, t0, L, lo, x_p, gates_p, wx):
    """Steps [t0, t0 + L) of x (N, T, D), rows [lo, lo + R), into x_p[:L] (K, R, D)
    time-major, and their projection x Wx into gates_p[:L] (K, R, 4H), one GEMM."""
    R, D = x_p.shape[1], x_p.shape[2]
    for t in range(L):
        for r in range(R):
            copy_row(x[lo + r, t0 + t], x_p[t, r])
    np.dot(x_p[:L].reshape(L * R, D), wx, gates_p[:L].reshape(L * R, gates_p.shape[2]))


@serial_and_parallel
def lstm_forward_states(x, cuts, state, wx, wh, b, x_tm, gates, h_out, stored, store_every,
                        form, n_blocks):
    """Run an LSTM over steps [cuts[0], cuts[-1]) of x (N, T, D), keeping no
    activations: piece by piece, piece k the steps [cuts[k], cuts[k + 1]).

    state (2, N, H): h and c before cuts[0] on entry, after cuts[-1] on exit.
    stored (M, 2, N, H): the state before piece k is written to
    stored[k // store_every] for every k that is a multiple of ``store_every``.
    h_out (N, T, H): h_t written at its step t; an (N, 0, H) array: not written.
    x_tm (K * N * D,), gates (K * N * 4H,): work space, chunk-major for pieces of
    at most K steps.  ``form`` as in ``lstm_forward``; ``n_blocks`` <= N.
    """
    n_chunks = min(n_blocks, x.shape[0])
    own = per_thread_copies(wh)
    wh_blas, wh_panels = shared_step_weights(wh, own, form, False)
    for p in prange(n_chunks):
        _forward_states_chunk(block_index(p), n_chunks, x, cuts, state, wx, wh, own, wh_blas,
                              wh_panels, b, x_tm, gates, h_out, stored, store_every, form)


@kernel
def _forward_states_chunk(p, n_chunks, x, cuts, state, wx, wh, own, shared_wh,
                          shared_wh_panels, b, x_tm, gates, h_out, stored, store_every, form):
    """Chunk p's rows of ``lstm_forward_states`` (same arguments): the state in
    two alternating (R, H) rows, tanh(c) in one."""
    wh_blas, wh_panels = chunk_step_weights(wh, own, shared_wh, shared_wh_panels, form, False)
    N, _, D = x.shape
    H = wh.shape[0]
    G = 4 * H
    K = gates.shape[0] // (N * G)
    lo, hi = chunk_bounds(p, n_chunks, N)
    R = hi - lo
    x_p = chunk_view(x_tm, K, N, p, n_chunks, D)
    gates_p = chunk_view(gates, K, N, p, n_chunks, G)
    h_ring = np.empty((2, R, H), dtype=gates.dtype)
    c_ring = np.empty((2, R, H), dtype=gates.dtype)
    tanh_row = np.empty((R, H), dtype=gates.dtype)
    for r in range(R):
        copy_row(state[0, lo + r], h_ring[0, r])
        copy_row(state[1, lo + r], c_ring[0, r])
    recurrent = np.empty((R, G), dtype=gates.dtype)
    bias, scale = tiled_bias_and_scale(b, R)
    write_h = h_out.shape[1] > 0
    s = 0  # the ring row holding the current state
    for k in range(cuts.shape[0] - 1):
        if k % store_every == 0:
            for r in range(R):
                copy_row(h_ring[s, r], stored[k // store_every, 0, lo + r])
                copy_row(c_ring[s, r], stored[k // store_every, 1, lo + r])
        t0 = cuts[k]
        L = cuts[k + 1] - t0
        _project_piece(x, t0, L, lo, x_p, gates_p, wx)
        for t in range(L):
            step_product(h_ring[s], wh_blas, wh_panels, recurrent, form)
            gate_block(gates_p[t], recurrent, bias, scale, c_ring[s], c_ring[1 - s], tanh_row,
                       h_ring[1 - s])
            s = 1 - s
            if write_h:
                for r in range(R):
                    copy_row(h_ring[s, r], h_out[lo + r, t0 + t])
    for r in range(R):
        copy_row(h_ring[s, r], state[0, lo + r])
        copy_row(c_ring[s, r], state[1, lo + r])


@serial_and_parallel
def lstm_recompute_backward(x, dh, cuts, stored, wx, wh, b, x_tm, gates, c, tanh_c, h, carry, dx,
                            dwx, dwh, db, form, backward_form, n_blocks):
    """Backpropagate an LSTM through steps [cuts[0], cuts[-1]) piece by piece,
    newest first, each piece's activations recomputed from its stored state.

    x (N, T, D), dh (N, T, H): the input and the upstream gradient on every h_t;
    stored (P, 2, N, H): h and c before piece k (steps [cuts[k], cuts[k + 1]))
    at stored[k], for the P = len(cuts) - 1 pieces.  carry (2, N, H): the
    gradient on h and c after cuts[-1] (from later steps) on entry, on the
    state before cuts[0] on exit.  Writes dx (N, T, D) at the pieces' steps and
    ADDS the weight gradients to dwx (D, 4H), dwh (H, 4H), db (4H,).
    x_tm (K * N * D,), gates (K * N * 4H,), c, h ((K + 1) * N * H,), tanh_c
    (K * N * H,): work space, chunk-major for pieces of at most K steps.
    ``form`` and ``backward_form``: the step forms of the forward
    (``lstm_forward``) and of the backward (``lstm_backward``); ``n_blocks`` <= N.
    """
    N, _, D = x.shape
    H = wh.shape[0]
    G = 4 * H
    n_chunks = min(n_blocks, N)
    own, wh_t, wh_t_panels, wx_t = backward_weights(wx, wh, backward_form)
    wh_blas, wh_panels = shared_step_weights(wh, own, form, False)
    # Each chunk adds its pieces' sums into a partial of its own, added to the
    # outputs at the end (no two threads write the same memory).
    dwx_parts = np.zeros((n_chunks, D, G), dtype=dwx.dtype)
    dwh_parts = np.zeros((n_chunks, H, G), dtype=dwx.dtype)
    db_parts = np.zeros((n_chunks, G), dtype=dwx.dtype)
    for p in prange(n_chunks):
        _recompute_backward_chunk(block_index(p), n_chunks, x, dh, cuts, stored, wx, wh, own,
                                  wh_blas, wh_panels, wh_t, wh_t_panels, wx_t, b, x_tm, gates, c,
                                  tanh_c, h, carry, dx, dwx_parts[p], dwh_parts[p], db_parts[p],
                                  form, backward_form)
    sum_weight_gradients(dwx_parts, dwh_parts, db_parts, dwx, dwh, db)


@kernel
def _recompute_backward_chunk(p, n_chunks, x, dh, cuts, stored, wx, wh, own, shared_wh,
                              shared_wh_panels, shared_wh_t, shared_wh_t_panels, shared_wx_t, b,
                              x_tm, gates, c, tanh_c, h, carry, dx, dwx_part, dwh_part, db_part,
                              form, backward_form):
    """Chunk p's rows of ``lstm_recompute_backward`` (same arguments; its weight
    gradients added to dwx_part, dwh_part, db_part)."""
    wh_blas, wh_panels = chunk_step_weights(wh, own, shared_wh, shared_wh_panels, form, False)
    wh_t, wh_t_panels = chunk_step_weights(wh, own, shared_wh_t, shared_wh_t_panels,
                                           backward_form, True)
    wx_t = transposed_copy(wx) if own else shared_wx_t
    N, _, D = x.shape
    H = wh.shape[0]
    G = 4 * H
    K = gates.shape[0] // (N * G)
    lo, hi = chunk_bounds(p, n_chunks, N)
    R = hi - lo
    x_p = chunk_view(x_tm, K, N, p, n_chunks, D)
    gates_p = chunk_view(gates, K, N, p, n_chunks, G)
    c_p = chunk_view(c, K + 1, N, p, n_chunks, H)
    h_p = chunk_view(h, K + 1, N, p, n_chunks, H)
    tanh_p = chunk_view(tanh_c, K, N, p, n_chunks, H)
    recurrent = np.empty((R, G), dtype=gates.dtype)
    bias, scale = tiled_bias_and_scale(b, R)
    # dh_next: step_product's out, of which the first H columns are used.
    dh_next = np.zeros((R, step_out_columns(wh_t_panels, backward_form, H)), dtype=gates.dtype)
    dc_next = np.empty((R, H), dtype=gates.dtype)
    for r in range(R):
        copy_row(carry[0, lo + r], dh_next[r, :H])
        copy_row(carry[1, lo + r], dc_next[r])
    dwx_piece = np.empty((D, G), dtype=gates.dtype)
    dwh_piece = np.empty((H, G), dtype=gates.dtype)
    for k in range(cuts.shape[0] - 2, -1, -1):
        t0 = cuts[k]
        L = cuts[k + 1] - t0
        for r in range(R):
            copy_row(stored[k, 0, lo + r], h_p[0, r])
            copy_row(stored[k, 1, lo + r], c_p[0, r])
        _project_piece(x, t0, L, lo, x_p, gates_p, wx)
        for t in range(L):
            step_product(h_p[t], wh_blas, wh_panels, recurrent, form)
            gate_block(gates_p[t], recurrent, bias, scale, c_p[t], c_p[t + 1], tanh_p[t],
                       h_p[t + 1])
        for t in range(L - 1, -1, -1):
            for r in range(R):
                _gate_grad_pass(gates_p[t, r], c_p[t, r], tanh_p[t, r], dh[lo + r, t0 + t],
                                dh_next[r], dc_next[r])
            step_product(gates_p[t], wh_t, wh_t_panels, dh_next, backward_form)
        rows = gates_p[:L].reshape(L * R, G)
        x_rows = x_p[:L].reshape(L * R, D)
        np.dot(x_rows.T, rows, dwx_piece)
        np.dot(h_p[:L].reshape(L * R, H).T, rows, dwh_piece)
        add_column_sums(rows, db_part)
        add_partials(dwx_piece.reshape((1, D, G)), dwx_part)
        add_partials(dwh_piece.reshape((1, H, G)), dwh_part)
        np.dot(rows, wx_t, x_rows)  # dx, over the piece's input, no longer needed
        for t in range(L):
            for r in range(R):
                copy_row(x_p[t, r], dx[lo + r, t0 + t])
    for r in range(R):
        copy_row(dh_next[r, :H], carry[0, lo + r])
        copy_row(dc_next[r], carry[1, lo + r])

