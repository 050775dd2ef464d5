"""The packed-weight GEMM (kernels.packed) and its SIMD intrinsics (kernels.simd)
against numpy."""

import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from fastrnn.kernels.packed import (NARROW_VECTORS, ROWS_PER_BLOCK, narrow_affine,
                                    narrow_panel_columns, narrow_product, pack_narrow_panels,
                                    pack_panels, packed_affine, packed_product, panel_columns)
from fastrnn.kernels.simd import (NARROW_BITS, VECTOR_BITS, narrow_lanes, vector_bits,
                                  vector_lanes, vfma, vlane, vload, vload_narrow, vsplat,
                                  vsplat_narrow, vstore, vzero, vzero_narrow)

TOLERANCE = {np.float64: 1e-13, np.float32: 2e-5}


def test_vector_width_is_the_one_numba_compiles_for():
    from numba.core import codegen

    assert VECTOR_BITS == vector_bits(codegen.get_host_cpu_features())
    assert vector_bits("+avx,+avx2,+avx512f,+fma") == 512
    assert vector_bits("+avx,+avx2,-avx512f") == 256
    assert vector_bits("-avx,-avx2,-avx512f,+sse2") == 128

    @njit
    def lanes(a):
        return vector_lanes(a)

    assert lanes(np.zeros((1, 1))) == VECTOR_BITS // 64
    assert lanes(np.zeros((1, 1), np.float32)) == VECTOR_BITS // 32


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_intrinsics_load_fma_and_store_lane_by_lane(dtype):
    @njit
    def axpy_rows(x, a, y, out):
        # out[i, j:j+L] = x * a[i, j:j+L] + y[i, j:j+L] for the first L columns of each row
        L = vector_lanes(a)
        for i in range(a.shape[0]):
            vstore(out, i, 1, vfma(vsplat(x), vload(a, i, 0), vload(y, i, 0)))
            vstore(out, i, 1 + L, vzero(a))

    lanes = VECTOR_BITS // (8 * np.dtype(dtype).itemsize)
    a = np.random.randn(3, lanes).astype(dtype)
    y = np.random.randn(3, lanes).astype(dtype)
    out = np.full((3, 2 * lanes + 2), 7.0, dtype=dtype)
    x = dtype(1.5)
    axpy_rows(x, a, y, out)
    np.testing.assert_allclose(out[:, 1:1 + lanes], x * a + y, rtol=TOLERANCE[dtype])
    assert np.all(out[:, 1 + lanes:1 + 2 * lanes] == 0)
    assert np.all(out[:, 0] == 7.0) and np.all(out[:, -1] == 7.0), "wrote outside its lanes"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_vlane_reads_each_lane(dtype):
    @njit
    def lanes_of(a):
        v = vload(a, 0, 0)
        return [vlane(v, j) for j in range(vector_lanes(a))]

    a = np.random.randn(1, VECTOR_BITS // (8 * np.dtype(dtype).itemsize)).astype(dtype)
    got = lanes_of(a)
    assert got == list(a[0]) and type(got[0]) is type(a[0, 0].item())


def test_panels_of_another_width_are_refused():
    w = np.random.randn(8, 40)
    half_width = pack_panels(w, False)[:, :, :panel_columns(np.float64) // 2].copy()
    with pytest.raises(ValueError, match="another SIMD width"):
        packed_product(np.ones((2, 8)), half_width, np.empty((2, 40)))
    bias = pack_panels(np.zeros((1, 40)), False)
    with pytest.raises(ValueError, match="another SIMD width"):
        packed_affine(np.ones((2, 3)), np.ones((2, 5)), half_width, bias[:, :, :half_width.shape[2]],
                      np.empty((2, half_width.shape[0] * half_width.shape[2])))


def test_packed_affine_refuses_an_out_without_room_for_whole_panels():
    w = np.random.randn(8, 20)  # one panel and part of another at 16 columns, all of one at 32
    panels, bias = pack_panels(w, False), pack_panels(np.zeros((1, 20)), False)
    whole = panels.shape[0] * panels.shape[2]
    packed_affine(np.ones((2, 3)), np.ones((2, 5)), panels, bias, np.empty((2, whole)))
    with pytest.raises(ValueError, match="room for whole panels"):
        packed_affine(np.ones((2, 3)), np.ones((2, 5)), panels, bias, np.empty((2, 20)))


def test_intrinsics_reject_what_they_do_not_handle():
    @njit
    def load_1d(a):
        return vload(a, 0, 0)

    with pytest.raises(TypingError):
        load_1d(np.zeros(16))

    @njit
    def splat_int(n):
        return vsplat(n)

    with pytest.raises(TypingError, match="float32 or float64"):
        splat_int(3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("K, M", [(1, 1), (20, 20), (20, 80), (13, 64), (33, 97), (64, 256)])
def test_pack_panels_lays_out_column_panels(K, M, dtype):
    w = np.random.randn(K, M).astype(dtype)
    NR = panel_columns(dtype)
    packed = pack_panels(w, False)
    P = -(-M // NR)
    assert packed.shape == (P, K, NR) and packed.dtype == dtype
    padded = np.zeros((K, P * NR), dtype=dtype)
    padded[:, :M] = w
    for p in range(P):
        np.testing.assert_array_equal(packed[p], padded[:, p * NR:(p + 1) * NR])
    np.testing.assert_array_equal(pack_panels(np.ascontiguousarray(w.T), True), packed)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("R", [1, ROWS_PER_BLOCK - 1, ROWS_PER_BLOCK, 2 * ROWS_PER_BLOCK + 1, 16])
@pytest.mark.parametrize("K, M", [(1, 3), (20, 20), (20, 80), (33, 97), (128, 512)])
def test_packed_product_matches_numpy(R, K, M, dtype):
    rows = np.random.randn(R, K).astype(dtype)
    w = np.random.randn(K, M).astype(dtype)
    out = np.full((R, M), np.nan, dtype=dtype)
    packed_product(rows, pack_panels(w, False), out)
    expected = rows.astype(np.float64) @ w.astype(np.float64)
    np.testing.assert_allclose(out, expected, rtol=TOLERANCE[dtype],
                               atol=TOLERANCE[dtype] * np.sqrt(K))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_packed_product_on_row_views(dtype):
    """Rows and out as the kernels pass them: row slices of larger buffers."""
    big = np.random.randn(3, 10, 24).astype(dtype)
    w = np.random.randn(24, 40).astype(dtype)
    out = np.zeros((12, 40), dtype=dtype)
    packed_product(big[1, 2:9], pack_panels(w, False), out[3:10])
    np.testing.assert_allclose(out[3:10], big[1, 2:9] @ w, rtol=TOLERANCE[dtype] * 10)
    assert np.all(out[:3] == 0) and np.all(out[10:] == 0), "wrote outside its rows"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_panel_columns_from_python_are_the_compiled_panel_width(dtype):
    """``panel_columns`` (Python, used by the layers and these tests) is the width
    the compiled ``pack_panels`` packs to."""
    assert panel_columns(dtype) == pack_panels(np.zeros((1, 1), dtype), False).shape[2]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("R", [1, ROWS_PER_BLOCK - 1, ROWS_PER_BLOCK, 2 * ROWS_PER_BLOCK + 1])
@pytest.mark.parametrize("Ka, Kb, M", [(1, 1, 3), (10, 20, 20), (7, 33, 37)])
def test_packed_affine_matches_numpy(R, Ka, Kb, M, dtype):
    """bias + a @ B[:Ka] + b @ B[Ka:] into a block padded to whole panels, whose
    padding comes out 0; a as a strided view (it is read one value at a time).
    M = 37 spans two or three panels, the last one partial."""
    NR = panel_columns(dtype)
    P = -(-M // NR)
    a = np.random.randn(R, 2, Ka).astype(dtype)[:, 1]
    b = np.random.randn(R, Kb).astype(dtype)
    w = np.random.randn(Ka + Kb, M).astype(dtype)
    bias = np.random.randn(M).astype(dtype)
    out = np.full((R, P * NR), np.nan, dtype=dtype)
    packed_affine(a, b, pack_panels(w, False), pack_panels(bias.reshape(1, M), False), out)
    w64 = w.astype(np.float64)
    expected = bias + a.astype(np.float64) @ w64[:Ka] + b.astype(np.float64) @ w64[Ka:]
    np.testing.assert_allclose(out[:, :M], expected, rtol=TOLERANCE[dtype],
                               atol=TOLERANCE[dtype] * np.sqrt(Ka + Kb))
    assert np.all(out[:, M:] == 0), "the padding columns"


@pytest.mark.parametrize("bits", [256, 128])
def test_packed_product_with_narrower_vectors(bits, tmp_path):
    """Machines without AVX-512 get 256-bit vectors, without AVX 128-bit ones
    (panels half or a quarter as wide).  Compiled here in a fresh process with its
    own empty compile cache, so that no 512-bit machine code is loaded from disk."""
    script = f"""
import numpy as np
import fastrnn.kernels.simd as simd
simd.VECTOR_BITS = {bits}
from fastrnn.kernels.packed import pack_panels, packed_affine, packed_product
for dtype, tol in ((np.float64, 1e-13), (np.float32, 2e-5)):
    lanes = {bits} // (8 * np.dtype(dtype).itemsize)
    rows = np.random.randn(7, 19).astype(dtype)
    w = np.random.randn(19, 37).astype(dtype)
    packed = pack_panels(w, False)
    assert packed.shape == (-(-37 // (2 * lanes)), 19, 2 * lanes), packed.shape
    assert np.array_equal(pack_panels(np.ascontiguousarray(w.T), True), packed)
    out = np.empty((7, 37), dtype=dtype)
    packed_product(rows, packed, out)
    np.testing.assert_allclose(out, rows.astype(np.float64) @ w, rtol=tol, atol=tol * 10)
    x = np.random.randn(7, 5).astype(dtype)
    bias = np.random.randn(37).astype(dtype)
    wx = np.random.randn(5, 37).astype(dtype)
    both = pack_panels(np.concatenate((wx, w)), False)
    padded = np.empty((7, both.shape[0] * 2 * lanes), dtype=dtype)
    packed_affine(x, rows, both, pack_panels(bias.reshape(1, 37), False), padded)
    np.testing.assert_allclose(padded[:, :37], bias + x.astype(np.float64) @ wx
                               + rows.astype(np.float64) @ w, rtol=tol, atol=tol * 10)
print("ok")
"""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_narrow_vectors_are_256_bits_whatever_the_registers(dtype):
    @njit
    def narrow(a, x):
        v = vfma(vsplat_narrow(x), vload_narrow(a, 0, 1), vzero_narrow(a))
        return narrow_lanes(a), [vlane(v, j) for j in range(narrow_lanes(a))]

    a = np.arange(20, dtype=dtype).reshape(1, 20)
    lanes, got = narrow(a, dtype(2))
    assert lanes == NARROW_BITS // (8 * np.dtype(dtype).itemsize)
    assert got == [2 * a[0, 1 + j] for j in range(lanes)]
    assert narrow_panel_columns(dtype) == NARROW_VECTORS * lanes
    assert narrow_panel_columns(dtype) == pack_narrow_panels(np.zeros((1, 1), dtype), False).shape[2]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("R", [1, ROWS_PER_BLOCK - 1, ROWS_PER_BLOCK, 2 * ROWS_PER_BLOCK + 1])
@pytest.mark.parametrize("Ka, Kb, M", [(1, 1, 3), (10, 20, 20), (7, 33, 37), (5, 6, 40)])
def test_narrow_affine_and_product_match_numpy(R, Ka, Kb, M, dtype):
    """bias + a @ B[:Ka] + b @ B[Ka:] and a @ B on narrow panels, into blocks padded
    to whole panels whose padding comes out 0; M = 20 and 40 fill one narrow panel
    in float64 / float32, 37 spans two in float64; a strided view as input; B
    packed from w.T as backward packs Wh^T."""
    rng = np.random.default_rng(R * 100 + M)
    B = rng.standard_normal((Ka + Kb, M)).astype(dtype)
    bias = rng.standard_normal(M).astype(dtype)
    big = rng.standard_normal((2, R + 3, Ka + 2)).astype(dtype)
    a = big[1, 2:R + 2, 1:Ka + 1]  # strided rows and columns
    b = rng.standard_normal((R, Kb)).astype(dtype)
    panels = pack_narrow_panels(B, False)
    NR = narrow_panel_columns(dtype)
    P = -(-M // NR)
    assert panels.shape == (P, Ka + Kb, NR)
    out = np.full((R, P * NR), np.nan, dtype=dtype)
    narrow_affine(a, b, panels, pack_narrow_panels(bias.reshape(1, M), False), out)
    tol = TOLERANCE[dtype] * 10
    np.testing.assert_allclose(out[:, :M], bias + a @ B[:Ka] + b @ B[Ka:], rtol=tol, atol=tol)
    assert np.all(out[:, M:] == 0)
    w_t = np.ascontiguousarray(B[:Ka].T)  # (M, Ka): B[:Ka] = w_t.T
    out = np.full((R, P * NR), np.nan, dtype=dtype)
    narrow_product(a, pack_narrow_panels(w_t, True), out)
    np.testing.assert_allclose(out[:, :M], a @ B[:Ka], rtol=tol, atol=tol)
    assert np.all(out[:, M:] == 0)


def test_narrow_panels_refuse_another_width_and_a_short_out():
    w = np.random.randn(8, 20)
    panels = pack_narrow_panels(w, False)
    NR = panels.shape[2]
    with pytest.raises(ValueError, match="another width"):
        narrow_product(np.ones((2, 8)), pack_panels(w, False), np.empty((2, 64)))
    with pytest.raises(ValueError, match="room for whole panels"):
        narrow_product(np.ones((2, 8)), panels, np.empty((2, NR - 1)))
    narrow_product(np.ones((2, 8)), panels, np.empty((2, NR)))
