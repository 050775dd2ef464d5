"""The per-step recurrent GEMM against weights packed once per sequence.

A recurrent time loop multiplies by the same weights at every step: h_{t-1} Wh
forward, dA_t Wh^T backward.  BLAS cannot know that, and OpenBLAS copies
("packs") the whole weight matrix into its panel layout again in every call, a
large part of a large layer's forward.  Here the weights are packed once, before
the loop, and each step runs a register-blocked microkernel (written with
:mod:`.simd`) over the packed panels: about twice OpenBLAS's throughput on large
weights, while at the notebook's sizes OpenBLAS's small-matrix kernels are as
fast or faster, so :mod:`.dispatch` chooses by size
(docs/tuning.md#packed-microkernel, #packed-weights).

Packed layout: B (K, M) becomes ``(P, K, NR)`` panels of NR = 2 vectors of
columns, P = ceil(M / NR), the last panel zero-padded; panel p, row k holds
B[k, p*NR:(p+1)*NR], so the microkernel reads its B values from consecutive
memory.  The microkernel computes a block of 4 rows x NR columns in 8 vector
accumulators: per k, two vector loads, four broadcasts and eight FMAs.

``packed_affine`` is the same microkernel over two inputs and a bias: a small
tanh RNN's whole forward step (bias + x_t Wx + h_{t-1} Wh) in one pass.

Narrow panels (``pack_narrow_panels``) hold NARROW_VECTORS = 5 narrow (256-bit)
vectors of columns: 20 in float64.  Their microkernel (``narrow_affine``,
``narrow_product``) computes 4 rows x 5 vectors in 20 accumulators: per k, five
loads, four broadcasts and twenty FMAs.  For a float64 layer of H = 20 -- the
notebook's -- that covers the columns exactly where the full-width panels need
two panels of 16 (12 of the 32 columns wasted; docs/tuning.md#rnn-narrow-steps).
"""

import numpy as np

from ._jit import kernel
from .simd import (NARROW_BITS, VECTOR_BITS, narrow_lanes, vector_lanes, vfma, vlane, vload,
                   vload_narrow, vsplat, vsplat_narrow, vstore, vzero, vzero_narrow)

# Rows per microkernel block: ``_block_4`` is written out for exactly 4 rows
# (4 rows x 2 vectors = 8 accumulators; 8 rows was no faster at the sizes
# measured and leaves more rows to the 1-row kernel).
ROWS_PER_BLOCK = 4


@kernel(inline="always")
def panel_width(a):
    """Columns per packed panel for arrays of a's dtype: two SIMD vectors."""
    return 2 * vector_lanes(a)


def panel_columns(dtype):
    """Columns per packed panel (NR) for arrays of ``dtype``, from Python: two
    vectors of the SIMD width the kernels are compiled for."""
    return 2 * (VECTOR_BITS // (8 * np.dtype(dtype).itemsize))


# Narrow (256-bit) vectors per narrow panel; ``_narrow_accumulate_4`` is written
# out for exactly this many.
NARROW_VECTORS = 5


@kernel(inline="always")
def narrow_panel_width(a):
    """Columns per narrow panel for arrays of a's dtype: NARROW_VECTORS narrow vectors."""
    return NARROW_VECTORS * narrow_lanes(a)


def narrow_panel_columns(dtype):
    """Columns per narrow panel for arrays of ``dtype``, from Python."""
    return NARROW_VECTORS * (NARROW_BITS // (8 * np.dtype(dtype).itemsize))


@kernel(inline="always")
def pack_panels(w, transpose):
    """The packed panels (P, K, NR) of B = w (K, M), or of B = w.T for w (M, K)
    when ``transpose``; columns past M are zero."""
    return _pack(w, transpose, panel_width(w))


@kernel(inline="always")
def pack_narrow_panels(w, transpose):
    """``pack_panels`` with narrow panels of ``narrow_panel_width`` columns."""
    return _pack(w, transpose, narrow_panel_width(w))


@kernel
def _pack(w, transpose, NR):
    """Both kinds of panels, compiled once for both (inlined, a cold first LSTM
    forward+backward compiled it twice: docs/tuning.md#narrow-product)."""
    K, M = (w.shape[1], w.shape[0]) if transpose else w.shape
    P = (M + NR - 1) // NR
    panels = np.empty((P, K, NR), dtype=w.dtype)
    for p in range(P):
        m0 = p * NR
        width = min(NR, M - m0)
        panel = panels[p]
        if width < NR:
            panel[:, width:] = 0.0
        if transpose:
            # Row m of w is column m of B: read each row once, in order.
            for j in range(width):
                source = w[m0 + j]
                for k in range(K):
                    panel[k, j] = source[k]
        else:
            for k in range(K):
                source = w[k]
                row = panel[k]
                for j in range(width):
                    row[j] = source[m0 + j]
    return panels


@kernel
def packed_product(rows, panels, out):
    """out (R, M) = rows (R, K) @ B, with B packed by ``pack_panels`` into panels
    (P, K, NR) (M = out's columns, at most P * NR).  Each row of out must be
    contiguous (the vector stores assume it); rows is read one value at a time.
    Shapes are not checked here, but panels of another width than this build's
    (packed by code compiled for other vectors) raise ValueError.
    """
    R = rows.shape[0]
    M = out.shape[1]
    P, K, NR = panels.shape
    if NR != panel_width(panels):
        raise ValueError("packed_product: panels packed for another SIMD width")
    blocked_rows = R - R % ROWS_PER_BLOCK
    for p in range(P):
        panel = panels[p]
        m0 = p * NR
        width = min(NR, M - m0)  # less than NR in a partial last panel
        for r0 in range(0, blocked_rows, ROWS_PER_BLOCK):
            c00, c01, c10, c11, c20, c21, c30, c31 = _block_4(rows, r0, panel, K)
            _store_row(out, r0, m0, width, c00, c01)
            _store_row(out, r0 + 1, m0, width, c10, c11)
            _store_row(out, r0 + 2, m0, width, c20, c21)
            _store_row(out, r0 + 3, m0, width, c30, c31)
        for r in range(blocked_rows, R):
            c0, c1 = _block_1(rows, r, panel, K)
            _store_row(out, r, m0, width, c0, c1)


@kernel(inline="always")
def _block_4(rows, r0, panel, K):
    """rows[r0:r0+4] @ panel (K, NR): per row, its two vectors of NR columns."""
    z = vzero(panel)
    return _accumulate_4(rows, r0, panel, 0, K, (z, z, z, z, z, z, z, z))


@kernel(inline="always")
def _accumulate_4(rows, r0, panel, k0, K, acc):
    """acc + rows[r0:r0+4, :K] @ panel[k0:k0+K] for the 8 accumulators ``acc``
    (per row, its two vectors of NR columns, as ``_block_4`` returns them)."""
    L = vector_lanes(panel)
    c00, c01, c10, c11, c20, c21, c30, c31 = acc
    for k in range(K):
        b0 = vload(panel, k0 + k, 0)
        b1 = vload(panel, k0 + k, L)
        a0 = vsplat(rows[r0, k])
        a1 = vsplat(rows[r0 + 1, k])
        a2 = vsplat(rows[r0 + 2, k])
        a3 = vsplat(rows[r0 + 3, k])
        c00 = vfma(a0, b0, c00)
        c01 = vfma(a0, b1, c01)
        c10 = vfma(a1, b0, c10)
        c11 = vfma(a1, b1, c11)
        c20 = vfma(a2, b0, c20)
        c21 = vfma(a2, b1, c21)
        c30 = vfma(a3, b0, c30)
        c31 = vfma(a3, b1, c31)
    return c00, c01, c10, c11, c20, c21, c30, c31


@kernel(inline="always")
def _block_1(rows, r, panel, K):
    """rows[r] @ panel (K, NR) as two vectors: the rows left over by ``_block_4``."""
    z = vzero(panel)
    return _accumulate_1(rows, r, panel, 0, K, z, z)


@kernel(inline="always")
def _accumulate_1(rows, r, panel, k0, K, c0, c1):
    """(c0, c1) + rows[r, :K] @ panel[k0:k0+K], one row's two vectors."""
    L = vector_lanes(panel)
    for k in range(K):
        a = vsplat(rows[r, k])
        c0 = vfma(a, vload(panel, k0 + k, 0), c0)
        c1 = vfma(a, vload(panel, k0 + k, L), c1)
    return c0, c1


@kernel(inline="always")
def packed_affine(a, b, panels, bias_panels, out):
    """out (R, P * NR) = bias + a (R, Ka) @ B[:Ka] + b (R, Kb) @ B[Ka:], for
    B (Ka + Kb, M) packed by ``pack_panels`` into panels (P, Ka + Kb, NR) and
    the bias (M,) into bias_panels (P, 1, NR).

    The recurrent step of a small layer in one pass: the input projection, the
    recurrent product and the bias summed in registers, with no BLAS call.  out
    has room for whole panels, P * NR columns (past M they come out 0), so every
    store is a whole vector; its rows must be contiguous.  a and b are read one
    value at a time.  Their shapes are not checked here; panels of another width
    than this build's, or an out narrower than P * NR, raise ValueError.
    """
    R, P, NR, Ka, Kb, blocked_rows = _pass_shape(a, b, panels, panel_width(panels), out)
    L = vector_lanes(panels)
    for p in range(P):
        panel = panels[p]
        m0 = p * NR
        bias0 = vload(bias_panels[p], 0, 0)
        bias1 = vload(bias_panels[p], 0, L)
        for r0 in range(0, blocked_rows, ROWS_PER_BLOCK):
            acc = (bias0, bias1, bias0, bias1, bias0, bias1, bias0, bias1)
            acc = _accumulate_4(a, r0, panel, 0, Ka, acc)
            c00, c01, c10, c11, c20, c21, c30, c31 = _accumulate_4(b, r0, panel, Ka, Kb, acc)
            vstore(out, r0, m0, c00)
            vstore(out, r0, m0 + L, c01)
            vstore(out, r0 + 1, m0, c10)
            vstore(out, r0 + 1, m0 + L, c11)
            vstore(out, r0 + 2, m0, c20)
            vstore(out, r0 + 2, m0 + L, c21)
            vstore(out, r0 + 3, m0, c30)
            vstore(out, r0 + 3, m0 + L, c31)
        for r in range(blocked_rows, R):
            c0, c1 = _accumulate_1(a, r, panel, 0, Ka, bias0, bias1)
            c0, c1 = _accumulate_1(b, r, panel, Ka, Kb, c0, c1)
            vstore(out, r, m0, c0)
            vstore(out, r, m0 + L, c1)


@kernel(inline="always")
def _pass_shape(a, b, panels, width, out):
    """(R, P, NR, Ka, Kb, blocked_rows) of a pass out = a @ B[:Ka] + b @ B[Ka:]
    over panels (P, Ka + Kb, NR) compiled for panels of ``width`` columns:
    blocked_rows, the rows the 4-row microkernel covers.  Checks the panels and
    out as ``_check_whole_panels``."""
    R = out.shape[0]
    P, _, NR = panels.shape
    _check_whole_panels(NR, width, P, out)
    return R, P, NR, a.shape[1], b.shape[1], R - R % ROWS_PER_BLOCK


@kernel(inline="always")
def _check_whole_panels(NR, width, P, out):
    """What ``packed_affine`` and the narrow microkernel need, which they cannot
    see from their vector stores: panels of the ``width`` they are compiled for
    (NR columns each), and an out with room for all P of them."""
    if NR != width:
        raise ValueError("panels of another width: packed for another SIMD width or panel kind")
    if out.shape[1] < P * NR:
        raise ValueError("out needs room for whole panels (P * NR columns)")


@kernel(inline="always")
def _store_row(out, i, j0, width, c0, c1):
    """out[i, j0:j0+width] = the first ``width`` lanes of c0 then c1: two vector
    stores for a full panel, lane by lane for the partial last one (out has no
    room for its padding)."""
    L = vector_lanes(out)
    if width == 2 * L:
        vstore(out, i, j0, c0)
        vstore(out, i, j0 + L, c1)
    else:
        for j in range(min(width, L)):
            out[i, j0 + j] = vlane(c0, j)
        for j in range(L, width):
            out[i, j0 + j] = vlane(c1, j - L)


@kernel(inline="always")
def narrow_affine(a, b, panels, bias_panels, out):
    """``packed_affine`` on narrow panels (``pack_narrow_panels``): out (R, P * NR)
    = bias + a (R, Ka) @ B[:Ka] + b (R, Kb) @ B[Ka:]; out's columns past M come
    out 0, its rows must be contiguous.  Panels of another width, or an out
    narrower than P * NR, raise ValueError."""
    _narrow_pass(a, b, panels, bias_panels, True, out)


@kernel
def narrow_product(rows, panels, out):
    """out (R, P * NR) = rows (R, K) @ B, with B packed by ``pack_narrow_panels``
    (columns past M come out 0; out's rows must be contiguous).  Checks as
    ``narrow_affine``.  A function of its own, as ``packed_product``: inlined, every
    time loop that may run it compiled it again, several seconds each, and the call
    per step does not show at the notebook's size (docs/tuning.md#narrow-product)."""
    _narrow_pass(rows, rows[:, :0], panels, panels[:, :1], False, out)


@kernel(inline="always")
def _narrow_pass(a, b, panels, bias_panels, with_bias, out):
    """out = [bias +] a @ B[:Ka] + b @ B[Ka:] over narrow panels, 4 rows at a time."""
    R, P, NR, Ka, Kb, blocked_rows = _pass_shape(a, b, panels, narrow_panel_width(panels), out)
    L = narrow_lanes(panels)
    for p in range(P):
        panel = panels[p]
        m0 = p * NR
        if with_bias:
            z0 = vload_narrow(bias_panels[p], 0, 0)
            z1 = vload_narrow(bias_panels[p], 0, L)
            z2 = vload_narrow(bias_panels[p], 0, 2 * L)
            z3 = vload_narrow(bias_panels[p], 0, 3 * L)
            z4 = vload_narrow(bias_panels[p], 0, 4 * L)
        else:
            z0 = z1 = z2 = z3 = z4 = vzero_narrow(panel)
        for r0 in range(0, blocked_rows, ROWS_PER_BLOCK):
            acc = (z0, z1, z2, z3, z4, z0, z1, z2, z3, z4,
                   z0, z1, z2, z3, z4, z0, z1, z2, z3, z4)
            acc = _narrow_accumulate_4(a, r0, panel, 0, Ka, acc)
            if Kb > 0:
                acc = _narrow_accumulate_4(b, r0, panel, Ka, Kb, acc)
            # Stores written out: a tuple indexed by a loop variable would be
            # kept in memory, and the accumulators with it.
            (c00, c01, c02, c03, c04, c10, c11, c12, c13, c14,
             c20, c21, c22, c23, c24, c30, c31, c32, c33, c34) = acc
            _narrow_store(out, r0, m0, L, c00, c01, c02, c03, c04)
            _narrow_store(out, r0 + 1, m0, L, c10, c11, c12, c13, c14)
            _narrow_store(out, r0 + 2, m0, L, c20, c21, c22, c23, c24)
            _narrow_store(out, r0 + 3, m0, L, c30, c31, c32, c33, c34)
        for r in range(blocked_rows, R):
            acc1 = _narrow_accumulate_1(a, r, panel, 0, Ka, (z0, z1, z2, z3, z4))
            if Kb > 0:
                acc1 = _narrow_accumulate_1(b, r, panel, Ka, Kb, acc1)
            c0, c1, c2, c3, c4 = acc1
            _narrow_store(out, r, m0, L, c0, c1, c2, c3, c4)


@kernel(inline="always")
def _narrow_store(out, i, j0, L, c0, c1, c2, c3, c4):
    """out[i, j0:j0 + 5L] = one row's five narrow vectors."""
    vstore(out, i, j0, c0)
    vstore(out, i, j0 + L, c1)
    vstore(out, i, j0 + 2 * L, c2)
    vstore(out, i, j0 + 3 * L, c3)
    vstore(out, i, j0 + 4 * L, c4)


@kernel(inline="always")
def _narrow_accumulate_4(rows, r0, panel, k0, K, acc):
    """acc + rows[r0:r0+4, :K] @ panel[k0:k0+K] for the 20 accumulators ``acc``
    (row by row, each row's NARROW_VECTORS narrow vectors)."""
    L = narrow_lanes(panel)
    (c00, c01, c02, c03, c04, c10, c11, c12, c13, c14,
     c20, c21, c22, c23, c24, c30, c31, c32, c33, c34) = acc
    for k in range(K):
        kk = k0 + k
        b0 = vload_narrow(panel, kk, 0)
        b1 = vload_narrow(panel, kk, L)
        b2 = vload_narrow(panel, kk, 2 * L)
        b3 = vload_narrow(panel, kk, 3 * L)
        b4 = vload_narrow(panel, kk, 4 * L)
        a0 = vsplat_narrow(rows[r0, k])
        c00, c01, c02, c03, c04 = (vfma(a0, b0, c00), vfma(a0, b1, c01), vfma(a0, b2, c02),
                                   vfma(a0, b3, c03), vfma(a0, b4, c04))
        a1 = vsplat_narrow(rows[r0 + 1, k])
        c10, c11, c12, c13, c14 = (vfma(a1, b0, c10), vfma(a1, b1, c11), vfma(a1, b2, c12),
                                   vfma(a1, b3, c13), vfma(a1, b4, c14))
        a2 = vsplat_narrow(rows[r0 + 2, k])
        c20, c21, c22, c23, c24 = (vfma(a2, b0, c20), vfma(a2, b1, c21), vfma(a2, b2, c22),
                                   vfma(a2, b3, c23), vfma(a2, b4, c24))
        a3 = vsplat_narrow(rows[r0 + 3, k])
        c30, c31, c32, c33, c34 = (vfma(a3, b0, c30), vfma(a3, b1, c31), vfma(a3, b2, c32),
                                   vfma(a3, b3, c33), vfma(a3, b4, c34))
    return (c00, c01, c02, c03, c04, c10, c11, c12, c13, c14,
            c20, c21, c22, c23, c24, c30, c31, c32, c33, c34)


@kernel(inline="always")
def _narrow_accumulate_1(rows, r, panel, k0, K, acc):
    """acc + rows[r, :K] @ panel[k0:k0+K], one row's NARROW_VECTORS accumulators."""
    L = narrow_lanes(panel)
    c0, c1, c2, c3, c4 = acc
    for k in range(K):
        kk = k0 + k
        a = vsplat_narrow(rows[r, k])
        c0 = vfma(a, vload_narrow(panel, kk, 0), c0)
        c1 = vfma(a, vload_narrow(panel, kk, L), c1)
        c2 = vfma(a, vload_narrow(panel, kk, 2 * L), c2)
        c3 = vfma(a, vload_narrow(panel, kk, 3 * L), c3)
        c4 = vfma(a, vload_narrow(panel, kk, 4 * L), c4)
    return c0, c1, c2, c3, c4
