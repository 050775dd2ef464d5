"""GEMMs over many rows, cut into row blocks that run on Numba's threads.

BLAS itself is kept to one thread inside fastrnn (see ``fastrnn._threads``): the
parallelism is one level up, each thread doing one contiguous block of rows with
a single-threaded GEMM.  ``n_chunks`` is the number of blocks (1 = serial).
A product summed over rows (a weight gradient) is split the same way: the first
block writes its sum into the result, each other block into a buffer of its own
(no two threads write the same memory), and those are added at the end
(``block_output``).

Chunk-major buffers.  The recurrent kernels cut the batch into ``n_chunks``
chunks of rows, one per thread, and store what a sequence needs (inputs, gate
activations, states) in flat buffers of ``S * N * M`` values, S steps, where
chunk p, batch rows [lo, hi), owns the contiguous run ``[S*lo*M, S*hi*M)`` laid
out time-major ``(S, hi - lo, M)`` (``chunk_view``).  With one chunk this is the
plain time-major ``(S, N, M)``.  S is T for inputs and gates, T + 1 for the
hidden and cell states (step 0 holds the initial state).  A buffer shared
time-major by all chunks would interleave the chunks' rows at every step, and
two threads writing their own rows of the same step's block slow each other
down badly (see docs/tuning.md#chunk-major-buffers).
"""

import numpy as np
from numba import prange, types
from numba.extending import overload

from ._jit import kernel, serial_and_parallel
from .dispatch import NARROW_STEPS, PACKED_STEPS
from .embedding import embedding_backward
from .packed import narrow_product, pack_narrow_panels, pack_panels, packed_product


@kernel(inline="always")
def chunk_bounds(p, n_chunks, rows):
    """Rows [lo, hi) of block p when ``rows`` rows are cut into ``n_chunks`` near-equal blocks."""
    return (p * rows) // n_chunks, ((p + 1) * rows) // n_chunks


@kernel(inline="always")
def block_index(p):
    """A ``prange`` index as int64, for passing to a compiled (not inlined) function.

    Numba types a parallel kernel's loop body twice, as a plain loop (int64
    index) and as the threads' function (uint64 index), so a callee given the
    raw index is compiled for both types, which lengthens a cold first compile
    by a third (docs/tuning.md#compile-time).  The same goes
    for a literal argument (1) where other calls pass an int64.  Inlined helpers
    take the raw index: they are not compiled apart.
    """
    return np.int64(p)


@kernel(inline="always")
def copy_row(src, dst):
    """dst[:] = src[:] for two 1-D arrays, element by element: a slice assignment
    between arrays makes Numba allocate a temporary (it guards against overlap),
    and the kernels copy one row per batch row and time step, from several threads.
    A slice assignment also compiles Numba's shape-mismatch error message, string
    formatting included (docs/tuning.md#compile-time)."""
    for k in range(src.shape[0]):
        dst[k] = src[k]


@kernel(inline="always")
def transpose_into(src, dst):
    """dst (R, M) = src (M, R) transposed, row by row of dst (used on the 16 x 16
    tiles of ``transposed_copy``).  Row by row of dst because the other order
    stores with a stride of M elements, which for a large matrix puts every
    store in the same cache set (docs/tuning.md#transposes)."""
    M, R = src.shape
    for r in range(R):
        row = dst[r]
        for j in range(M):
            row[j] = src[j, r]


# From this many elements, ``transposed_copy`` goes tile by tile.
TILED_TRANSPOSE_MIN_SIZE = 65_536


@kernel
def transposed_copy(a):
    """a.T (N, M) as a new C-contiguous array, for a (M, N).

    Numba's ``np.ascontiguousarray(a.T)`` walks a column of ``a`` per output
    row, which for a large matrix misses the cache at every element; 16 x 16
    tiles keep both sides in cache.  Small matrices take the plain copy, which
    is faster there (docs/tuning.md#transposes).
    """
    if a.size < TILED_TRANSPOSE_MIN_SIZE:
        return np.ascontiguousarray(a.T)
    M, N = a.shape
    out = np.empty((N, M), dtype=a.dtype)
    for i0 in range(0, N, 16):
        for j0 in range(0, M, 16):
            transpose_into(a[j0:j0 + 16, i0:i0 + 16], out[i0:i0 + 16, j0:j0 + 16])
    return out


# Compiled once, not inlined: it runs once per call, and inlined, every kernel and
# time loop compiled the packing code of all three forms.  (step_product stays
# inlined; the products it calls are functions of their own.)
@kernel
def step_weights(w, form, transpose):
    """(w_blas, w_panels) for ``step_product`` of ``form`` with B = w, or w.T when
    ``transpose``: narrow or full packed panels, or for BLAS a C-contiguous B
    (OpenBLAS's GEMM is slower on a transposed view than on the copy:
    docs/tuning.md#transposes).  The one not used is an empty stand-in."""
    no_blas, no_panels = no_weights(w)
    if form == NARROW_STEPS:
        return no_blas, pack_narrow_panels(w, transpose)
    if form == PACKED_STEPS:
        return no_blas, pack_panels(w, transpose)
    if transpose:
        return transposed_copy(w), no_panels
    return w, no_panels


@kernel(inline="always")
def shared_step_weights(w, own, form, transpose):
    """``step_weights`` made once before a parallel loop for all chunks to read, or
    empty stand-ins with ``own``, where each chunk makes its own
    (``chunk_step_weights``; see PER_THREAD_COPY_MAX_SIZE)."""
    if own:
        return no_weights(w)
    return step_weights(w, form, transpose)


@kernel(inline="always")
def chunk_step_weights(w, own, shared_w, shared_panels, form, transpose):
    """A chunk's ``step_weights``: made here with ``own``, else the shared pair
    ``shared_step_weights`` made."""
    if own:
        return step_weights(w, form, transpose)
    return shared_w, shared_panels


@kernel(inline="always")
def backward_weights(wx, wh, form):
    """(own, wh_t, wh_t_panels, wx_t) for a recurrent backward kernel: Wh^T for
    its steps (``shared_step_weights``) and Wx^T for its weight gradients
    (``weight_gradient_block``), shared, or with ``own`` empty stand-ins that
    each chunk replaces with its own copies when both weights are small."""
    own = per_thread_copies(wx) and per_thread_copies(wh)
    wh_t, wh_t_panels = shared_step_weights(wh, own, form, True)
    wx_t = no_weights(wx)[0] if own else transposed_copy(wx)
    return own, wh_t, wh_t_panels, wx_t


@kernel(inline="always")
def step_out_columns(w_panels, form, M):
    """Columns ``step_product``'s out needs for B of M columns: narrow panels
    write whole panels (P * NR), the other forms exactly M."""
    if form == NARROW_STEPS:
        return w_panels.shape[0] * w_panels.shape[2]
    return M


@kernel(inline="always")
def step_product(rows, w, w_panels, out, form):
    """out = rows (R, K) @ B, the GEMM inside a recurrent time loop, with B as
    ``step_weights`` gives it for ``form``: one pass over the panels packed once
    before the loop (:mod:`.packed`; w not read), or one BLAS call (w_panels not
    read).  Narrow panels write whole panels: out is then (R, P * NR), its
    columns past B's 0.  :func:`.dispatch.choose_form` chooses the form."""
    if form == NARROW_STEPS:
        narrow_product(rows, w_panels, out)
    elif form == PACKED_STEPS:
        packed_product(rows, w_panels, out)
    else:
        np.dot(rows, w, out)


@kernel(inline="always")
def no_weights(w):
    """Empty stand-ins of w's dtype for the pair ``step_weights`` returns
    (2-D weights for BLAS, 3-D packed panels): for the one a kernel does not
    use, or for both where each chunk makes its own (see per_thread_copies)."""
    return np.empty((0, 0), dtype=w.dtype), np.empty((0, 0, 0), dtype=w.dtype)


# Weights of at most this many values are prepared (transposed, packed) by each
# thread of a parallel kernel for itself, instead of once before the parallel loop
# and then read by every thread: when the host places the two vCPUs far apart (the
# slow phases of ``_threads.PARALLEL_MIN_FLOPS``), a copy the other thread made is
# slow to reach, while making one's own costs the same time as the shared copy did.
# (The weights themselves still cross once after the optimizer, on the main
# thread, has updated them; the copies made from them no longer do.)  Larger
# weights keep one shared copy: each copy is then memory traffic of its own.
# See docs/tuning.md#per-thread-copies.
PER_THREAD_COPY_MAX_SIZE = 16_384


@kernel(inline="always")
def per_thread_copies(w):
    """Whether the threads of a parallel kernel prepare their own copies of the
    weights ``w`` (see PER_THREAD_COPY_MAX_SIZE)."""
    return w.size <= PER_THREAD_COPY_MAX_SIZE


@kernel(inline="always")
def add_column_sums(rows, acc):
    """acc (M,) += the sum over rows of rows (R, M).

    Four rows per pass over acc: the row-at-a-time loop loads and stores all of
    acc for every row (docs/tuning.md#column-sums).
    """
    R, M = rows.shape
    r = 0
    while r + 4 <= R:
        a, b, c, d = rows[r], rows[r + 1], rows[r + 2], rows[r + 3]
        for m in range(M):
            acc[m] += (a[m] + b[m]) + (c[m] + d[m])
        r += 4
    for last in range(r, R):
        row = rows[last]
        for m in range(M):
            acc[m] += row[m]


@kernel(inline="always")
def add_partials(partials, out):
    """out[...] += the sum of partials over their first axis (partials (P, ...), out (...))."""
    flat_out = out.reshape(-1)
    flat = partials.reshape(partials.shape[0], -1)
    for p in range(flat.shape[0]):
        for k in range(flat_out.shape[0]):
            flat_out[k] += flat[p, k]


@kernel(inline="always")
def tiled(b, rows):
    """b (M,) repeated for ``rows`` rows, flat (rows * M,): a bias laid over a
    contiguous block of rows, so one loop covers the whole block."""
    M = b.shape[0]
    out = np.empty(rows * M, dtype=b.dtype)
    for r in range(rows):
        for j in range(M):
            out[r * M + j] = b[j]
    return out


@kernel(inline="always")
def weight_gradient_parts(n_work, D, H, G, dtype):
    """Partial sums for the work blocks of ``weight_gradient_block`` after the first
    (see ``block_output``): (dwx (n_work - 1, D, G), dwh (n_work - 1, H, G),
    db (n_work - 1, G)).  Fresh pages of large partials cost page faults, hence
    one set fewer than blocks."""
    n_parts = n_work - 1
    return (np.empty((n_parts, D, G), dtype=dtype), np.empty((n_parts, H, G), dtype=dtype),
            np.empty((n_parts, G), dtype=dtype))


@kernel(inline="always")
def block_output(q, out, parts):
    """Where work block q writes a sum over blocks: ``out`` itself for block 0, its
    own partial ``parts[q - 1]`` for the others (added to out at the end with
    ``add_partials``: one buffer fewer than blocks, none when serial)."""
    if q == 0:
        return out
    return parts[q - 1]


@kernel(inline="always")
def sum_weight_gradients(dwx_parts, dwh_parts, db_parts, dwx, dwh, db):
    """dwx, dwh, db += the sums of the other blocks' partials."""
    add_partials(dwx_parts, dwx)
    add_partials(dwh_parts, dwh)
    add_partials(db_parts, db)


@kernel(inline="always")
def chunking(n_blocks, N):
    """(n_chunks, splits): ``n_blocks`` work blocks as ``n_chunks`` chunks of the N
    batch rows (at most one per row) times ``splits`` runs of time steps each."""
    n_chunks = min(n_blocks, N)
    return n_chunks, (n_blocks + n_chunks - 1) // n_chunks


@kernel(inline="always")
def chunk_view(flat, T, N, p, n_chunks, M):
    """Chunk p's part, (T, R, M), of a chunk-major buffer ``flat`` (T * N * M,)."""
    lo, hi = chunk_bounds(p, n_chunks, N)
    return flat[T * lo * M:T * hi * M].reshape(T, hi - lo, M)


@kernel(inline="always")
def work_block(q, n_chunks, splits, N, T):
    """Work block q of ``n_chunks * splits``: (chunk p, its batch rows [lo, hi),
    time steps [t0, t1)); the block's rows are contiguous in a chunk-major buffer."""
    p = q // splits
    lo, hi = chunk_bounds(p, n_chunks, N)
    t0, t1 = chunk_bounds(q % splits, splits, T)
    return p, lo, hi, t0, t1


@kernel
def project_input_block(x, x_tm, wx, out, lead, q, n_chunks, splits):
    """Work block q of a recurrent layer's input projection.

    x (N, T, D) batch-major; x_tm (T * N * D,) and out ((lead + T) * N * G,)
    chunk-major: writes the block's rows of x_tm (the input, kept for the weight
    gradients) and of out = x Wx, step t at out's step lead + t (a tanh RNN
    projects into its hidden-state buffer, whose step 0 holds h0).  Called from
    inside a kernel's ``prange`` over the blocks.
    Not inlined (like ``weight_gradient_block``): compiled once and called from
    every build of every recurrent kernel, which keeps the first compile short.
    """
    N, T, D = x.shape
    G = wx.shape[1]
    p, lo, hi, t0, t1 = work_block(q, n_chunks, splits, N, T)
    if t1 > t0:
        R = hi - lo
        x_chunk = chunk_view(x_tm, T, N, p, n_chunks, D)
        out_chunk = chunk_view(out, lead + T, N, p, n_chunks, G)
        for t in range(t0, t1):
            for r in range(R):
                copy_row(x[lo + r, t], x_chunk[t, r])
        np.dot(x_chunk[t0:t1].reshape((t1 - t0) * R, D), wx,
               out_chunk[lead + t0:lead + t1].reshape((t1 - t0) * R, G))


@serial_and_parallel
def linear_forward(x, w, b, out, n_chunks):
    """out (R, M) = x (R, K) @ w (K, M) + b (M,)."""
    R, M = out.shape
    for p in prange(n_chunks):
        lo, hi = chunk_bounds(p, n_chunks, R)
        if hi > lo:
            np.dot(x[lo:hi], w, out[lo:hi])
            for r in range(lo, hi):
                row = out[r]
                for m in range(M):
                    row[m] += b[m]


@serial_and_parallel
def linear_backward(x, w, dout, dx, dw, db, n_chunks):
    """Gradients of out = x @ w + b: dx (R, K) = dout @ w.T, dw (K, M) = x.T @ dout,
    db (M,) = column sums of dout; x (R, K), w (K, M), dout (R, M)."""
    R, M = dout.shape
    K = x.shape[1]
    own = per_thread_copies(w)  # each block transposes w for itself when it is small
    shared_w_t = no_weights(w)[0] if own else transposed_copy(w)
    dw_parts = np.empty((n_chunks - 1, K, M), dtype=dw.dtype)  # see block_output
    db_parts = np.empty((n_chunks - 1, M), dtype=db.dtype)
    for p in prange(n_chunks):
        lo, hi = chunk_bounds(p, n_chunks, R)
        dw_block = block_output(p, dw, dw_parts)
        db_block = block_output(p, db, db_parts)
        db_block[:] = 0.0
        if hi > lo:
            w_t = transposed_copy(w) if own else shared_w_t  # see weight_gradient_block
            np.dot(dout[lo:hi], w_t, dx[lo:hi])
            np.dot(x[lo:hi].T, dout[lo:hi], dw_block)
        else:
            dw_block[:] = 0.0
        add_column_sums(dout[lo:hi], db_block)
    add_partials(dw_parts, dw)
    add_partials(db_parts, db)


@kernel
def weight_gradient_block(q, n_chunks, splits, x_tm, h, grad_pre, wx, own, shared_wx_t, dx, dwx,
                          dwh, db, dwx_parts, dwh_parts, db_parts):
    """Work block q's share of the GEMMs after a recurrent backward loop.

    x_tm (T * N * D,), h ((T + 1) * N * H,) and grad_pre (T * N * G,): chunk-major
    buffers of the inputs, the hidden states h_0 .. h_T (h_0 the initial state)
    and the gradient of the pre-activations (G = 4H for an LSTM, H for a tanh
    RNN); wx (D, G).  dx is computed with Wx^T (G, D) as a C-contiguous copy
    (OpenBLAS ran ``rows @ wx.T`` at half the speed of the copy at the notebook's
    size: docs/tuning.md#transposes): made here with ``own``
    (see PER_THREAD_COPY_MAX_SIZE), else ``shared_wx_t``, made once before the
    parallel loop.  Writes the block's rows of dx (N, T, D) = dA Wx^T,
    batch-major, and the block's sums X^T dA (D, G), Hprev^T dA (H, G) and the
    column sums of dA (G,) over its steps: into dwx, dwh, db for block 0, into its
    partials of ``weight_gradient_parts`` otherwise (see ``block_output``).  For
    token ids (x_tm (T * N,) ints, wx a table (V, G), dx (N, T, 0)): no dx, and
    dwx (V, G) gets the rows of dA summed by token (``input_gradient_block``).  The
    block is a run of steps [t0, t1) of one chunk, so its Hprev = h_t0 .. h_{t1-1}
    is one slice of the chunk's h.
    """
    N, T = dx.shape[0], dx.shape[1]
    H = dwh.shape[0]
    G = wx.shape[1]
    p, lo, hi, t0, t1 = work_block(q, n_chunks, splits, N, T)
    R = hi - lo
    dwx_part = block_output(q, dwx, dwx_parts)
    dwh_part = block_output(q, dwh, dwh_parts)
    db_part = block_output(q, db, db_parts)
    db_part[:] = 0.0
    if t1 == t0:
        dwx_part[:] = 0.0
        dwh_part[:] = 0.0
        return
    h_chunk = chunk_view(h, T + 1, N, p, n_chunks, H)
    grad_chunk = chunk_view(grad_pre, T, N, p, n_chunks, G)
    rows = grad_chunk[t0:t1].reshape((t1 - t0) * R, G)
    input_gradient_block(x_tm, rows, wx, own, shared_wx_t, dx, dwx_part, p, n_chunks, t0, t1)
    np.dot(h_chunk[t0:t1].reshape((t1 - t0) * R, H).T, rows, dwh_part)
    add_column_sums(rows, db_part)


# A recurrent layer's input comes either as vectors, x (N, T, D) floats with Wx
# (D, G), or as token ids, x (N, T) ints with a lookup table (V, G) in Wx's place:
# the rows of an embedding already multiplied by Wx (``E Wx``, see
# ``fastrnn.layer_utils.LSTM.forward_ids``).  The projection of a step is then
# one row of the table, and the gradient of the table is the rows of dA added up
# by token, instead of the GEMMs x Wx, dA Wx^T and X^T dA.  The three functions
# below take either; which one runs is fixed by x's type when a kernel compiles.
# Chunk-major buffers keep their layout: the ids are stored like an input of
# width 1 (x_tm (T * N,) ints).


def input_projection_block(x, x_tm, wx, out, lead, q, n_chunks, splits):
    """``project_input_block`` for vectors x (N, T, D), ``lookup_input_block`` for
    token ids x (N, T) with a table (V, G) as wx."""
    raise TypeError("only callable from compiled code")


def input_backward_weights(x_tm, wx, wh, form):
    """``backward_weights`` for a layer fed vectors; with token ids there is no
    Wx^T to prepare (the table gets no transposed copy), only Wh^T's."""
    raise TypeError("only callable from compiled code")


def input_gradient_block(x_tm, rows, wx, own, shared_wx_t, dx, dwx_part, p, n_chunks, t0, t1):
    """The input's share of ``weight_gradient_block`` for the block of chunk p and
    steps [t0, t1), whose rows of dA are ``rows`` ((t1 - t0) * R, G): for vectors,
    the block's rows of dx (N, T, D) = dA Wx^T and its sum X^T dA (D, G) into
    dwx_part; for token ids (dx (N, T, 0), written nothing), the rows of dA
    summed by token into dwx_part (V, G), the block's gradient of the table."""
    raise TypeError("only callable from compiled code")


def _is_ids(x):
    return isinstance(x, types.Array) and isinstance(x.dtype, types.Integer)


@overload(input_projection_block, inline="always")
def _input_projection_block(x, x_tm, wx, out, lead, q, n_chunks, splits):
    if _is_ids(x):
        return (lambda x, x_tm, wx, out, lead, q, n_chunks, splits:
                lookup_input_block(x, x_tm, wx, out, lead, q, n_chunks, splits))
    return (lambda x, x_tm, wx, out, lead, q, n_chunks, splits:
            project_input_block(x, x_tm, wx, out, lead, q, n_chunks, splits))


@overload(input_backward_weights, inline="always")
def _input_backward_weights(x_tm, wx, wh, form):
    if _is_ids(x_tm):
        def from_ids(x_tm, wx, wh, form):
            own = per_thread_copies(wh)
            wh_t, wh_t_panels = shared_step_weights(wh, own, form, True)
            return own, wh_t, wh_t_panels, no_weights(wx)[0]
        return from_ids
    return lambda x_tm, wx, wh, form: backward_weights(wx, wh, form)


@overload(input_gradient_block, inline="always")
def _input_gradient_block(x_tm, rows, wx, own, shared_wx_t, dx, dwx_part, p, n_chunks, t0, t1):
    if _is_ids(x_tm):
        def from_ids(x_tm, rows, wx, own, shared_wx_t, dx, dwx_part, p, n_chunks, t0, t1):
            N, T = dx.shape[0], dx.shape[1]
            lo, hi = chunk_bounds(p, n_chunks, N)
            ids = x_tm[T * lo + t0 * (hi - lo):T * lo + t1 * (hi - lo)]
            embedding_backward(ids, rows, dwx_part)  # zeroes, then adds row i to ids[i]
        return from_ids

    def from_vectors(x_tm, rows, wx, own, shared_wx_t, dx, dwx_part, p, n_chunks, t0, t1):
        N, T, D = dx.shape
        lo, hi = chunk_bounds(p, n_chunks, N)
        R = hi - lo
        x_chunk = chunk_view(x_tm, T, N, p, n_chunks, D)
        wx_t = transposed_copy(wx) if own else shared_wx_t
        dx_rows = np.dot(rows, wx_t)
        for t in range(t0, t1):  # (no i // R, i % R per row: docs/tuning.md#column-sums)
            for r in range(R):
                copy_row(dx_rows[(t - t0) * R + r], dx[lo + r, t])
        np.dot(x_chunk[t0:t1].reshape((t1 - t0) * R, D).T, rows, dwx_part)
    return from_vectors


@kernel
def lookup_input_block(ids, ids_tm, table, out, lead, q, n_chunks, splits):
    """Work block q of the input projection of a layer fed token ids: ids (N, T)
    in [0, V), checked by the caller; ids_tm (T * N,) and out ((lead + T) * N * G,)
    chunk-major.  Writes the block's ids into ids_tm (kept for the gradient) and
    out at step lead + t = table[ids[:, t]], the rows of table (V, G).
    Not inlined, like ``project_input_block``."""
    N, T = ids.shape
    G = table.shape[1]
    p, lo, hi, t0, t1 = work_block(q, n_chunks, splits, N, T)
    R = hi - lo
    ids_chunk = ids_tm[T * lo:T * hi]
    out_chunk = chunk_view(out, lead + T, N, p, n_chunks, G)
    for t in range(t0, t1):
        for r in range(R):
            token = ids[lo + r, t]
            ids_chunk[t * R + r] = token
            copy_row(table[token], out_chunk[lead + t, r])
