"""SIMD vectors as values in Numba code, for hand-written GEMM microkernels.

Numba has no vector type, and its loop vectoriser does not keep a block of
accumulators in registers across a loop (the shape a GEMM microkernel needs).
This module adds one: ``SimdVector``, a Numba type whose LLVM representation is
a ``<lanes x float>`` vector, and a handful of intrinsics on it.  Written with
them, a microkernel holds its accumulators as SSA values, which LLVM keeps in
vector registers: the code below compiles to broadcast, load and FMA
instructions and nothing else in the inner loop.

The vector width is the host's widest: 512 bits where the CPU has AVX-512F,
256 bits otherwise (AVX2 and older; LLVM splits or lowers what the CPU lacks).
Numba's on-disk cache is keyed by the CPU name and features, so a cache written
on one kind of machine is not loaded on another.

* ``vector_lanes(a)``: lanes of a vector of ``a``'s dtype (a compile-time constant).
* ``vzero(a)``: a zero vector of ``a``'s dtype.
* ``vsplat(x)``: a vector with ``x`` in every lane.
* ``vload(a, i, j)`` / ``vstore(a, i, j, v)``: the lanes starting at ``a[i, j]``
  of a 2-D array, ``a[i, j:j + lanes]``, which must be contiguous and in bounds
  (not checked, like all kernel indexing).
* ``vfma(x, y, acc)``: ``x * y + acc`` lane by lane, rounded once.
"""

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, errors
from numba.extending import intrinsic, models, register_model

VECTOR_BITS = 512 if "+avx512f" in llvm.get_host_cpu_features().flatten().split(",") else 256


class SimdVector(types.Type):
    """A SIMD vector of ``lanes`` values of the Numba float type ``dtype``."""

    def __init__(self, dtype, lanes):
        self.dtype = dtype
        self.lanes = lanes
        super().__init__(name=f"SimdVector({dtype} x {lanes})")


@register_model(SimdVector)
class _SimdVectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _vector_type(dtype):
    if not isinstance(dtype, types.Float):
        raise errors.TypingError(f"SIMD vectors hold float32 or float64, not {dtype}")
    return SimdVector(dtype, VECTOR_BITS // dtype.bitwidth)


@intrinsic
def vector_lanes(typingctx, a):
    """Lanes of a SIMD vector of the dtype of the array ``a``."""
    lanes = _vector_type(a.dtype).lanes

    def codegen(context, builder, signature, args):
        return context.get_constant(types.intp, lanes)

    return types.intp(a), codegen


@intrinsic
def vzero(typingctx, a):
    """A zero vector of the dtype of the array ``a``."""
    vector = _vector_type(a.dtype)

    def codegen(context, builder, signature, args):
        llvm_type = context.get_value_type(vector)
        return ir.Constant(llvm_type, [ir.Constant(llvm_type.element, 0.0)] * vector.lanes)

    return vector(a), codegen


@intrinsic
def vsplat(typingctx, x):
    """A vector with the float ``x`` in every lane."""
    vector = _vector_type(x)

    def codegen(context, builder, signature, args):
        llvm_type = context.get_value_type(vector)
        lane0 = builder.insert_element(ir.Constant(llvm_type, ir.Undefined), args[0],
                                       ir.Constant(ir.IntType(32), 0))
        everywhere = ir.Constant(ir.VectorType(ir.IntType(32), vector.lanes), [0] * vector.lanes)
        return builder.shuffle_vector(lane0, ir.Constant(llvm_type, ir.Undefined), everywhere)

    return vector(x), codegen


def _lane_pointer(context, builder, array_type, array, i, j, llvm_vector_type):
    """Pointer to a[i, j], as a pointer to a vector."""
    data = context.make_array(array_type)(context, builder, array)
    element = cgutils.get_item_pointer(context, builder, array_type, data, [i, j])
    return builder.bitcast(element, llvm_vector_type.as_pointer())


@intrinsic
def vload(typingctx, a, i, j):
    """The vector a[i, j:j + lanes] of a 2-D float array."""
    if not (isinstance(a, types.Array) and a.ndim == 2):
        return None
    vector = _vector_type(a.dtype)

    def codegen(context, builder, signature, args):
        llvm_type = context.get_value_type(vector)
        pointer = _lane_pointer(context, builder, signature.args[0], args[0], args[1], args[2],
                                llvm_type)
        return builder.load(pointer, align=a.dtype.bitwidth // 8)

    return vector(a, i, j), codegen


@intrinsic
def vstore(typingctx, a, i, j, v):
    """a[i, j:j + lanes] = v for a 2-D float array of v's dtype."""
    if not (isinstance(a, types.Array) and a.ndim == 2 and isinstance(v, SimdVector)
            and v.dtype == a.dtype):
        return None

    def codegen(context, builder, signature, args):
        pointer = _lane_pointer(context, builder, signature.args[0], args[0], args[1], args[2],
                                args[3].type)
        builder.store(args[3], pointer, align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.void(a, i, j, v), codegen


@intrinsic
def vfma(typingctx, x, y, acc):
    """x * y + acc, lane by lane, with one rounding (LLVM's fma intrinsic)."""
    if not (isinstance(acc, SimdVector) and x == acc and y == acc):
        return None

    def codegen(context, builder, signature, args):
        llvm_type = args[2].type
        suffix = f"v{acc.lanes}f{acc.dtype.bitwidth}"
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(llvm_type, [llvm_type] * 3), f"llvm.fma.{suffix}")
        return builder.call(fma, args)

    return acc(x, y, acc), codegen
