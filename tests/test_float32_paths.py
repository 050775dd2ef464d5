"""float32 layers compute in float32: no float64 arithmetic slips into their kernels.

A Python float literal is a float64 to Numba, and float32 op float64 is float64, so
``1.0 - g`` on a float32 gate converts to float64 and back, halves the SIMD lanes
and costs the float32 LSTM's backward elementwise pass half again its time (see
``kernels.activations.float_like``). The results still come out float32 and close,
so only the compiled code shows it: these tests look at its LLVM IR.
"""

import numpy as np
from numba import njit, types

from fastrnn.kernels import lstm, vanilla
from fastrnn.kernels._jit import JIT_OPTIONS
from fastrnn.kernels.activations import float_like


def test_float_like_gives_the_width_of_a_scalar_or_an_array():
    @njit
    def one_minus_first(a):
        return float_like(1.0, a) - a[0], float_like(1.0, a[0])

    one_minus_first(np.zeros(2, np.float32))
    one_minus_first(np.zeros(2, np.float64))
    returns = {sig[0].dtype: one_minus_first.overloads[sig].signature.return_type
               for sig in one_minus_first.signatures}
    assert returns[types.float32] == types.UniTuple(types.float32, 2)
    assert returns[types.float64] == types.UniTuple(types.float64, 2)


def array(ndim):
    return types.Array(types.float32, ndim, "C")


INT, FLAG = types.int64, types.boolean

# The float32 argument types of the time loops, in their argument order (see
# their docstrings).  A kernel loaded from Numba's on-disk cache carries no IR,
# and these loops are called from compiled code only, so each is compiled
# afresh here for these types.
TIME_LOOPS = [
    (lstm._forward_chunk, (INT, INT, array(2), array(2), array(2), FLAG, array(2), array(3),
                           array(1), array(1), array(1), array(1), array(1), array(3), array(2),
                           INT)),
    (lstm._backward_chunk, (INT, INT, array(3), array(2), array(2), FLAG, array(2), array(3),
                            array(1), array(1), array(1), array(2), array(2), INT)),
    (vanilla._forward_chunk, (INT, INT, array(2), array(2), array(3), array(1), array(1),
                              array(3), INT)),
    (vanilla._forward_chunk_fused, (INT, INT, array(3), array(1), array(2), array(2), array(2),
                                    array(1), FLAG, array(3), array(3), array(1), array(3),
                                    FLAG)),
    (vanilla._backward_chunk, (INT, INT, array(3), array(2), FLAG, array(2), array(3), array(1),
                               array(1), array(2), INT)),
]


def test_float32_time_loops_have_no_float64_arithmetic():
    for kernel, signature in TIME_LOOPS:
        fresh = njit(**{**JIT_OPTIONS, "cache": False})(kernel.py_func)
        fresh.compile(signature)
        ir = fresh.inspect_llvm(signature)
        assert "fpext float" not in ir and "fptrunc double" not in ir, (
            f"{kernel.__name__}: float32 converted to float64 and back in its float32 build")
