"""Vectorisable exp / sigmoid / tanh for the fused gate passes.

Numba compiles ``np.exp`` and ``np.tanh`` to scalar libm calls (no SVML in the
llvmlite wheels), which costs 5-15 ns per element: more than all the GEMMs of an
LSTM step at small and mid sizes.  The functions here are written as straight-line
arithmetic (range reduction, a polynomial, and an exponent built with integer
bit operations), so that LLVM vectorises the loops that inline them.

All of them compute in float64, whatever the storage dtype, and are accurate to a
few ulp over the whole float range (``tests/test_activations.py`` proves it):

* ``exp(u) = 2**k * (1 + q(r))`` with ``u = k*ln2 + r``, ``|r| <= ln2/2`` and
  ``q(r)`` the degree-13 Taylor polynomial of ``expm1`` (truncation < 1e-17).
* ``expm1(u) = 2**k * q(r) + (2**k - 1)``, exact in relative terms near 0 because
  there ``k = 0`` and the result is ``q(r)`` itself.
* ``sigmoid(z) = 1 / (1 + e)`` for ``z >= 0`` and ``e / (1 + e)`` for ``z < 0``,
  with ``e = exp(-|z|)``: no overflow, no cancellation.
* ``tanh(z) = sign(z) * (-m / (2 + m))`` with ``m = expm1(-2|z|)``: relative
  accuracy near 0 (where ``1 - exp`` would cancel) and exactly +-1 for large |z|.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._jit import kernel

_LOG2E = 1.4426950408889634
# ln 2 split in two (Cody-Waite) so that k * _LN2_HI is exact for |k| < 2**11.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# Below this, exp(u) is subnormal: the exponent trick needs a normal 2**k.  The
# clamp changes results only where the true value is < 3.3e-308 (absolute error
# below the smallest normal float64).
_U_MIN = -708.0


@intrinsic
def _bits_as_float64(typingctx, bits):
    """Reinterpret the 64 bits of an int64 as a float64 (free at run time)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@kernel(inline="always")
def _exp_parts(u):
    """Split ``exp(u)`` for ``u <= 0`` into ``(scale, q)``.

    ``exp(u) = scale * (1 + q)`` and ``expm1(u) = scale * q + (scale - 1)``,
    with ``scale = 2**k`` exact and ``q = expm1(r)``, ``|r| <= ln2 / 2``.
    """
    u = max(u, _U_MIN)
    k = np.floor(u * _LOG2E + 0.5)
    r = (u - k * _LN2_HI) - k * _LN2_LO
    # Horner form of r + r^2/2! + ... + r^13/13!
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    q = r + r * r * p
    scale = _bits_as_float64((np.int64(k) + 1023) << 52)
    return scale, q


@kernel(inline="always")
def exp_nonpositive(u):
    """``exp(u)`` for ``u <= 0`` (float64); 0 < result <= 1."""
    scale, q = _exp_parts(u)
    return scale * q + scale


@kernel(inline="always")
def sigmoid(z):
    """Logistic function ``1 / (1 + exp(-z))`` of a scalar, computed in float64."""
    z = np.float64(z)
    e = exp_nonpositive(-abs(z))
    if z >= 0.0:
        return 1.0 / (1.0 + e)
    return e / (1.0 + e)


@kernel(inline="always")
def tanh(z):
    """Hyperbolic tangent of a scalar, computed in float64."""
    z = np.float64(z)
    scale, q = _exp_parts(-2.0 * abs(z))
    m = scale * q + (scale - 1.0)
    t = -m / (2.0 + m)
    return t if z >= 0.0 else -t


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


@kernel
def exp_nonpositive_into(src, dst):
    """``dst[i] = exp(src[i])`` for 1-D arrays whose entries are all <= 0."""
    for i in range(src.shape[0]):
        dst[i] = exp_nonpositive(src[i])
