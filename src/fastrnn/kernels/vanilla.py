"""Vanilla (tanh) RNN time loops, forward and backward, one compiled call each.

Same layout (chunk-major buffers, ``n_blocks`` last) and structure as
``lstm.py`` with a single gate: ``h_t = tanh(x_t Wx + h_{t-1} Wh + b)``.  The
input projection of all steps is written into ``h`` before the loop, and each
step adds the recurrent GEMM and the bias and applies tanh in place; backward
needs only ``h`` (tanh' = 1 - h^2).

A narrow layer (H within one packed panel of two SIMD vectors) can instead run
each forward step as one pass of :func:`.packed.packed_affine` over [Wx; Wh]
packed once: bias + x_t Wx + h_{t-1} Wh summed in registers, with no BLAS call
and no separate projection (``FUSED_STEPS``).  A layer a little wider than one
panel (H = 17 to 20 in float64, 33 to 40 in float32) does the same on narrow
panels, whose 20 (40) columns fit it with little or no padding, and so does its
backward's dA Wh^T (``NARROW_STEPS``).  :mod:`.dispatch` names the forms and
chooses one.
"""

import numpy as np
from numba import prange

from ._jit import kernel, serial_and_parallel
from .activations import float_like, tanh
from .blocked import (backward_weights, block_index, chunk_bounds,
                      chunk_step_weights, chunk_view, chunking, copy_row, no_weights,
                      per_thread_copies, project_input_block, step_out_columns, step_product,
                      step_weights, sum_weight_gradients, tiled, weight_gradient_block,
                      weight_gradient_parts)
from .dispatch import FUSED_STEPS, NARROW_STEPS
from .packed import narrow_affine, pack_narrow_panels, pack_panels, packed_affine
from .simd import vector_lanes

@serial_and_parallel
def rnn_forward(x, x_tm, h0, wx, wh, b, h, h_out, form, n_blocks):
    """Run a tanh RNN over a sequence.

    x (N, T, D) the input, batch-major as the API has it; h0 (N, H); wx (D, H);
    wh (H, H); b (H,).  Writes, chunk-major: x_tm (T * N * D,) the input (kept
    for the weight gradients) and h ((T + 1) * N * H,) the hidden states
    h_0..h_T (all backward needs; h_0 a copy of h0, see ``lstm_forward``); and
    h_out (N, T, H), h_1..h_T batch-major (the result).
    ``form``: an int of :class:`.dispatch.StepForm`, any of the four.
    """
    N = x.shape[0]
    n_chunks, splits = chunking(n_blocks, N)
    if form == FUSED_STEPS or form == NARROW_STEPS:
        narrow = form == NARROW_STEPS
        own = per_thread_copies(wx) and per_thread_copies(wh)
        if own:  # each chunk packs its own panels (see blocked.PER_THREAD_COPY_MAX_SIZE)
            panels = bias_panels = no_weights(wx)[1]
        else:
            panels, bias_panels = _fused_panels(wx, wh, b, narrow)
        for p in prange(n_chunks):
            _forward_chunk_fused(block_index(p), n_chunks, x, x_tm, h0, wx, wh, b, own, panels,
                                 bias_panels, h, h_out, narrow)
        return
    wh_blas, wh_panels = step_weights(wh, form, False)
    if splits > 1:  # else each chunk projects its own rows (see lstm.py)
        for q in prange(n_chunks * splits):
            project_input_block(x, x_tm, wx, h, 1, block_index(q), n_chunks, splits)
    for p in prange(n_chunks):
        if splits == 1:
            project_input_block(x, x_tm, wx, h, 1, block_index(p), n_chunks, splits)
        _forward_chunk(block_index(p), n_chunks, h0, wh_blas, wh_panels, b, h, h_out, form)


@kernel
def _forward_chunk(p, n_chunks, h0, wh, wh_panels, b, h, h_out, form):
    """The time loop of chunk p of ``rnn_forward`` (same arguments); a function of
    its own so that both builds share one compiled copy (see lstm.py)."""
    N, T, H = h_out.shape
    lo, hi = chunk_bounds(p, n_chunks, N)
    R = hi - lo
    h_p = chunk_view(h, T + 1, N, p, n_chunks, H)
    for r in range(R):
        copy_row(h0[lo + r], h_p[0, r])
    recurrent = np.empty((R, H), dtype=h.dtype)
    rec_flat = recurrent.reshape(R * H)
    # The bias tiled over the block's rows, so that tanh runs as one loop over the
    # whole contiguous (R, H) block (no scalar remainder per row; see lstm.gate_block).
    bias = tiled(b, R)
    for t in range(T):
        step_product(h_p[t], wh, wh_panels, recurrent, form)
        block = h_p[t + 1].reshape(R * H)  # x_t Wx on entry
        for k in range(R * H):
            block[k] = tanh(block[k] + rec_flat[k] + bias[k])
        for r in range(R):
            copy_row(h_p[t + 1, r], h_out[lo + r, t])


@kernel(inline="always")
def _fused_panels(wx, wh, b, narrow):
    """(panels, bias_panels) of a fused forward: [Wx; Wh] ((D + H), H) packed by
    ``pack_panels`` (``pack_narrow_panels`` when ``narrow``), and b the same way
    as one row."""
    wxh, b_row = np.concatenate((wx, wh)), b.reshape(1, b.shape[0])
    if narrow:
        return pack_narrow_panels(wxh, False), pack_narrow_panels(b_row, False)
    return pack_panels(wxh, False), pack_panels(b_row, False)


@kernel
def _forward_chunk_fused(p, n_chunks, x, x_tm, h0, wx, wh, b, own, shared_panels,
                         shared_bias_panels, h, h_out, narrow):
    """The time loop of chunk p of ``rnn_forward`` in the FUSED_STEPS form, or
    NARROW_STEPS with ``narrow``.

    With ``own`` the chunk packs its own panels from wx, wh and b
    (``_fused_panels``); otherwise it uses the shared ones packed the same way
    before the parallel loop.  Each step copies x_t's rows into x_tm (kept for
    the weight gradients) and runs ``packed_affine`` (``narrow_affine``) on them
    and on h_{t-1}, into a block padded to whole panels (every store a whole
    vector), then tanh: row by row over the H real columns where there is
    padding (cheaper than tanh over the padded rows), over the whole block
    where rows end in part of a vector (see below and
    docs/tuning.md#fused-tanh-pass).
    """
    N, T, H = h_out.shape
    D = x.shape[2]
    lo, hi = chunk_bounds(p, n_chunks, N)
    R = hi - lo
    if own:
        panels, bias_panels = _fused_panels(wx, wh, b, narrow)
    else:
        panels, bias_panels = shared_panels, shared_bias_panels
    h_p = chunk_view(h, T + 1, N, p, n_chunks, H)
    x_p = chunk_view(x_tm, T, N, p, n_chunks, D)
    for r in range(R):
        copy_row(h0[lo + r], h_p[0, r])
    pre = np.empty((R, panels.shape[0] * panels.shape[2]), dtype=h.dtype)
    for t in range(T):
        for r in range(R):
            copy_row(x[lo + r, t], x_p[t, r])
        if narrow:
            narrow_affine(x_p[t], h_p[t], panels, bias_panels, pre)
        else:
            packed_affine(x_p[t], h_p[t], panels, bias_panels, pre)
        if pre.shape[1] == H and H % vector_lanes(pre) != 0:
            # No padding, but rows that end in part of a vector: tanh as one
            # vectorised pass over the contiguous block, then the rows' copies:
            # row by row, each row's last partial vector runs scalar.  Rows of
            # whole vectors stay row by row (one pass for both copies), which
            # is faster there (docs/tuning.md#fused-tanh-pass).
            block, new_block = pre.reshape(R * H), h_p[t + 1].reshape(R * H)
            for k in range(R * H):
                new_block[k] = tanh(block[k])
            for r in range(R):
                copy_row(h_p[t + 1, r], h_out[lo + r, t])
        else:
            for r in range(R):
                pre_r, new, out = pre[r], h_p[t + 1, r], h_out[lo + r, t]
                for j in range(H):
                    value = tanh(pre_r[j])
                    new[j] = value
                    out[j] = value


@serial_and_parallel
def rnn_backward(dh, x_tm, wx, wh, h, grad_pre, dx, dh0, dwx, dwh, db, form, n_blocks):
    """Backpropagate through the tanh RNN run by ``rnn_forward``.

    dh (N, T, H), batch-major: upstream gradient on every h_t; x_tm, wx, wh and
    the forward's chunk-major hidden states h, with the forward's ``n_blocks``.
    grad_pre (T * N * H,) is work space (the gradient of the pre-activations,
    chunk-major).  Writes dx (N, T, D), dh0 (N, H) and the weight gradients
    dwx (D, H), dwh (H, H), db (H,).  ``form``: how each step's dA Wh^T runs,
    BLAS_STEPS, PACKED_STEPS (see ``lstm_backward``) or NARROW_STEPS (on Wh^T in
    narrow panels).
    """
    N, T, H = dh.shape
    D = dx.shape[2]
    n_chunks, splits = chunking(n_blocks, N)
    n_work = n_chunks * splits
    own, wh_t, wh_t_packed, wx_t = backward_weights(wx, wh, form)
    dwx_parts, dwh_parts, db_parts = weight_gradient_parts(n_work, D, H, H, dwx.dtype)
    for p in prange(n_chunks):
        _backward_chunk(block_index(p), n_chunks, dh, wh, own, wh_t, wh_t_packed, h, grad_pre,
                        dh0, form)
        if splits == 1:
            weight_gradient_block(block_index(p), n_chunks, splits, x_tm, h, grad_pre, wx,
                                  own, wx_t, dx, dwx, dwh, db, dwx_parts, dwh_parts, db_parts)
    if splits > 1:
        for q in prange(n_work):
            weight_gradient_block(block_index(q), n_chunks, splits, x_tm, h, grad_pre, wx,
                                  own, wx_t, dx, dwx, dwh, db, dwx_parts, dwh_parts, db_parts)
    sum_weight_gradients(dwx_parts, dwh_parts, db_parts, dwx, dwh, db)


@kernel
def _backward_chunk(p, n_chunks, dh, wh, own, shared_wh_t, shared_wh_t_packed, h, grad_pre,
                    dh0, form):
    """The backward time loop of chunk p of ``rnn_backward`` (same arguments), on
    Wh^T as ``blocked.chunk_step_weights`` gives it."""
    wh_t, wh_t_packed = chunk_step_weights(wh, own, shared_wh_t, shared_wh_t_packed, form, True)
    N, T, H = dh.shape
    lo, hi = chunk_bounds(p, n_chunks, N)
    h_p = chunk_view(h, T + 1, N, p, n_chunks, H)
    grad_p = chunk_view(grad_pre, T, N, p, n_chunks, H)
    # dh_next: step_product's out, of which the first H columns are used.
    dh_next = np.zeros((hi - lo, step_out_columns(wh_t_packed, form, H)), dtype=h.dtype)
    one = float_like(1.0, h)  # see float_like
    for t in range(T - 1, -1, -1):
        for r in range(hi - lo):
            da, h_tn, dh_tn, dh_next_n = grad_p[t, r], h_p[t + 1, r], dh[lo + r, t], dh_next[r]
            for j in range(H):
                da[j] = (dh_tn[j] + dh_next_n[j]) * (one - h_tn[j] * h_tn[j])
        step_product(grad_p[t], wh_t, wh_t_packed, dh_next, form)
    for r in range(hi - lo):  # row copies, see copy_row
        copy_row(dh_next[r, :H], dh0[lo + r])
