"""Vectorisable exp / sigmoid / tanh for the fused gate passes.

Numba compiles ``np.exp`` and ``np.tanh`` to scalar libm calls (no SVML in the
llvmlite wheels), which costs more than all the GEMMs of an LSTM step at small
and mid sizes (docs/tuning.md#activations).  The functions here are straight-line
arithmetic (range reduction, a polynomial, and an exponent built with integer
bit operations), so that LLVM vectorises the loops that inline them.

Each has a float64 and a float32 implementation, picked from the argument's type
at compile time (float32 math runs twice as many lanes and needs a shorter
polynomial).  Measured over the whole float range, both stay within 2 ulp of the
true value; ``tests/test_activations.py`` bounds them at 1e-14 (float64) and
1e-6 (float32) relative:

* ``exp(u) = 2**k * (1 + q(r))`` with ``u = k*ln2 + r``, ``|r| <= ln2/2`` and
  ``q(r) = r + r**2 * p(r)`` approximating ``expm1``.  In float64 ``p`` is a
  degree-9 Chebyshev fit (error < 1.3e-17 in ``q``): two multiply-adds fewer
  than a degree-11 Taylor ``p``.  In float32 ``p`` is the degree-5
  Taylor polynomial (truncation < 6e-9).
* ``expm1(u) = 2**k * q(r) + (2**k - 1)``, exact in relative terms near 0 because
  there ``k = 0`` and the result is ``q(r)`` itself.
* ``sigmoid(z) = 1 / (1 + e)`` for ``z >= 0`` and ``e / (1 + e)`` for ``z < 0``,
  with ``e = exp(-|z|)``: no overflow, no cancellation.
* ``tanh(z) = sign(z) * (-m / (2 + m))`` with ``m = expm1(-2|z|)``: relative
  accuracy near 0 (where ``1 - exp`` would cancel) and exactly +-1 for large |z|.

Only ``u <= 0`` is ever needed.  The exponent trick needs a normal ``2**k``, so
where ``exp(u)`` is below the smallest normal float, ``u`` is clamped: in float64
the result is then ``exp(-708.39)`` (2.5e-308, no multiply by an in-range flag,
which costs time: docs/tuning.md#activations), in float32 it is 0.  Either way the absolute error there is within the
smallest normal float.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from ._jit import kernel


@intrinsic
def _bits_as_float64(typingctx, bits):
    """Reinterpret the 64 bits of an int64 as a float64 (free at run time)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def _bits_as_float32(typingctx, bits):
    """Reinterpret the 32 bits of an int32 as a float32 (free at run time)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


# p(r) ~ (expm1(r) - r) / r**2 on |r| <= ln2/2 * (1 + 2**-20): Chebyshev fit of
# degree 9 (mpmath.chebyfit at 50 digits), absolute error 1.05e-16 in p, so
# < 1.3e-17 in q = r + r**2 p (a tenth of an ulp of exp's 1 + q), and < 3.7e-17
# relative to q itself (what tanh near 0 sees, where k = 0 and m = q).
_EXPM1_FIT_F64 = (
    2.5100375924709716851e-8, 2.7620075999810651055e-7, 2.755726848011633485e-6,
    2.4801521322116824174e-5, 1.98412698630406699e-4, 1.388888891719688114e-3,
    8.3333333333300644245e-3, 4.1666666666624161578e-2, 0.16666666666666667452,
    0.50000000000000010211)


@kernel(inline="always")
def _exp_parts_f64(u):
    """float64 ``(scale, q)`` with ``exp(u) = scale * (1 + q)`` and
    ``expm1(u) = scale * q + (scale - 1)``, for ``u <= 0``."""
    # Below ln(smallest normal) u is clamped (see the module docstring).
    u = max(u, -708.39)
    k = np.floor(u * 1.4426950408889634 + 0.5)
    # ln 2 split in two (Cody-Waite) so that k * ln2_hi is exact.
    r = (u - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10
    c = _EXPM1_FIT_F64
    p = c[0]
    p = p * r + c[1]
    p = p * r + c[2]
    p = p * r + c[3]
    p = p * r + c[4]
    p = p * r + c[5]
    p = p * r + c[6]
    p = p * r + c[7]
    p = p * r + c[8]
    p = p * r + c[9]
    q = r + r * r * p
    scale = _bits_as_float64((np.int64(k) + 1023) << 52)
    return scale, q


@kernel(inline="always")
def _exp_parts_f32(u):
    """float32 version of ``_exp_parts_f64``."""
    in_range = np.float32(u >= np.float32(-87.33))
    u = max(u, np.float32(-87.33))
    k = np.floor(u * np.float32(1.44269504) + np.float32(0.5))
    r = (u - k * np.float32(0.693359375)) - k * np.float32(-2.12194440e-4)
    p = np.float32(1.0 / 5040.0)
    p = p * r + np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + np.float32(0.5)
    q = r + r * r * p
    scale = _bits_as_float32((np.int32(k) + np.int32(127)) << np.int32(23)) * in_range
    return scale, q


@kernel(inline="always")
def _exp_f64(u):
    scale, q = _exp_parts_f64(u)
    return scale * q + scale


@kernel(inline="always")
def _exp_f32(u):
    scale, q = _exp_parts_f32(u)
    return scale * q + scale


# The sign choices below are arithmetic, not branches: branches in functions
# inlined at Numba-IR level trip Numba's SSA checks and can block vectorisation.
@kernel(inline="always")
def _sigmoid_f64(z):
    e = _exp_f64(-abs(z))
    positive = np.float64(z >= 0.0)
    return (positive + (1.0 - positive) * e) / (1.0 + e)


@kernel(inline="always")
def _sigmoid_f32(z):
    one = np.float32(1.0)
    e = _exp_f32(-abs(z))
    positive = np.float32(z >= np.float32(0.0))
    return (positive + (one - positive) * e) / (one + e)


@kernel(inline="always")
def _tanh_f64(z):
    scale, q = _exp_parts_f64(-2.0 * abs(z))
    m = scale * q + (scale - 1.0)
    return np.copysign(-m / (2.0 + m), z)


@kernel(inline="always")
def _tanh_f32(z):
    scale, q = _exp_parts_f32(np.float32(-2.0) * abs(z))
    m = scale * q + (scale - np.float32(1.0))
    return np.copysign(-m / (np.float32(2.0) + m), z)


def _by_float_width(f32_impl, f64_impl):
    """An overload that runs ``f32_impl`` for float32 and ``f64_impl`` for anything else."""

    def choose(z):
        if isinstance(z, types.Float) and z.bitwidth == 32:
            return lambda z: f32_impl(z)
        return lambda z: f64_impl(np.float64(z))

    return choose


def _exp_any(u):
    """Placeholder resolved at compile time by the overload below."""
    raise TypeError("only callable from compiled code")


def _sigmoid_any(z):
    """Placeholder resolved at compile time by the overload below."""
    raise TypeError("only callable from compiled code")


def _tanh_any(z):
    """Placeholder resolved at compile time by the overload below."""
    raise TypeError("only callable from compiled code")


def float_like(value, like):
    """``value`` as a float of ``like``'s width (``like`` a float scalar or a
    float array), for constants in kernels that run in both widths.

    A Python float literal is a float64 to Numba, and float32 op float64 is
    float64: ``1.0 - g`` on a float32 ``g`` converts to float64 and back and runs
    half as many SIMD lanes (docs/tuning.md#activations).  Resolved at compile
    time by the overload below.
    """
    raise TypeError("only callable from compiled code")


@overload(float_like, inline="always")
def _float_like(value, like):
    width = like.dtype if isinstance(like, types.Array) else like
    if isinstance(width, types.Float) and width.bitwidth == 32:
        return lambda value, like: np.float32(value)
    return lambda value, like: np.float64(value)


overload(_exp_any, inline="always")(_by_float_width(_exp_f32, _exp_f64))
overload(_sigmoid_any, inline="always")(_by_float_width(_sigmoid_f32, _sigmoid_f64))
overload(_tanh_any, inline="always")(_by_float_width(_tanh_f32, _tanh_f64))


@kernel(inline="always")
def exp_nonpositive(u):
    """``exp(u)`` for ``u <= 0``, in the float width of ``u``; 0 <= result <= 1."""
    return _exp_any(u)


@kernel(inline="always")
def sigmoid(z):
    """Logistic function ``1 / (1 + exp(-z))`` of a scalar, in the float width of ``z``."""
    return _sigmoid_any(z)


@kernel(inline="always")
def tanh(z):
    """Hyperbolic tangent of a scalar, in the float width of ``z``."""
    return _tanh_any(z)


@kernel
def sigmoid_into(src, dst):
    """``dst[i] = sigmoid(src[i])`` for 1-D arrays ``src``, ``dst`` of equal length."""
    for i in range(src.shape[0]):
        dst[i] = sigmoid(src[i])


@kernel
def tanh_into(src, dst):
    """``dst[i] = tanh(src[i])`` for 1-D arrays ``src``, ``dst`` of equal length."""
    for i in range(src.shape[0]):
        dst[i] = tanh(src[i])
