"""SIMD vectors as values in Numba code, for hand-written GEMM microkernels.

Numba has no vector type, and its loop vectoriser does not keep a block of
accumulators in registers across a loop (the shape a GEMM microkernel needs).
This module adds one: ``SimdVector``, a Numba type whose LLVM representation is
a ``<lanes x float>`` vector, and a handful of intrinsics on it.  Written with
them, a microkernel (``packed._block_4``) holds its accumulators as SSA values,
which LLVM keeps in vector registers: its inner loop compiles to broadcast,
load and FMA instructions and nothing else.

The vector width follows the CPU features Numba compiles for (the host's, or
``NUMBA_CPU_FEATURES``; ``NUMBA_ENABLE_AVX=0`` turns AVX off): 512 bits with
AVX-512F, 256 with AVX, 128 otherwise; LLVM splits a vector wider than the
registers.  Numba's on-disk cache is keyed by the CPU name and features it
compiles for, so code built for one width is not loaded for another; its key
also covers every source of this package (:mod:`._cache`), so an edit here
recompiles the kernels that inline these helpers.

* ``vector_lanes(a)``: lanes of a vector of ``a``'s dtype (a compile-time constant).
* ``vzero(a)``: a zero vector of ``a``'s dtype.
* ``vsplat(x)``: a vector with ``x`` in every lane.
* ``vload(a, i, j)`` / ``vstore(a, i, j, v)``: the lanes starting at ``a[i, j]``
  of a 2-D array, ``a[i, j:j + lanes]``, which must be contiguous and in bounds
  (not checked, like all kernel indexing).
* ``vfma(x, y, acc)``: ``x * y + acc`` lane by lane, fused (rounded once) where
  the CPU has FMA instructions, a multiply and an add where it has not.
* ``vlane(v, j)``: lane j of ``v`` as a scalar (for stores of part of a vector).
* ``vload_narrow(a, i, j)``, ``vsplat_narrow(x)``, ``vzero_narrow(a)``,
  ``narrow_lanes(a)``: the same
  with 256-bit vectors whatever the registers (4 float64 / 8 float32 lanes), for
  microkernels whose columns come in 256-bit units (``packed.narrow_affine``).
  ``vfma``, ``vstore`` and ``vlane`` take vectors of either width.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils, codegen, config, errors
from numba.extending import intrinsic, models, register_model


def _compile_target_features():
    """The CPU features Numba compiles for, as LLVM's '+name,-name,...' string."""
    if config.CPU_FEATURES is not None:
        return config.CPU_FEATURES
    return codegen.get_host_cpu_features()


def vector_bits(features):
    """The widest SIMD registers in an LLVM feature string, in bits."""
    enabled = {name[1:] for name in features.split(",") if name.startswith("+")}
    if "avx512f" in enabled:
        return 512
    if "avx" in enabled:
        return 256
    return 128


VECTOR_BITS = vector_bits(_compile_target_features())

# Width of the "narrow" vectors.  On AMD Zen 4 a 512-bit FMA runs as two 256-bit
# halves, so 256-bit vectors lose no throughput there, and their finer grain
# wastes less on padding: 20 float64 columns are 5 narrow vectors, against two
# full vectors of 8 and a third one 4/8 used.
NARROW_BITS = 256


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


def _vector_type(dtype, bits=None):
    if not isinstance(dtype, types.Float):
        raise errors.TypingError(f"SIMD vectors hold float32 or float64, not {dtype}")
    return SimdVector(dtype, (bits or VECTOR_BITS) // dtype.bitwidth)


def _at_both_widths(make, doc):
    """(full-width, narrow) intrinsics from ``make(bits)``, documented by ``doc``."""
    full, narrow = intrinsic(make(None)), intrinsic(make(NARROW_BITS))
    full.__doc__ = doc
    narrow.__doc__ = doc + " Narrow: 256-bit, whatever the registers."
    return full, narrow


def _lanes_intrinsic(bits):
    def lanes_of(typingctx, a):
        lanes = _vector_type(a.dtype, bits).lanes

        def codegen(context, builder, signature, args):
            return context.get_constant(types.intp, lanes)

        return types.intp(a), codegen

    return lanes_of


vector_lanes, narrow_lanes = _at_both_widths(
    _lanes_intrinsic, "Lanes of a SIMD vector of the dtype of the array ``a``.")


def _zero_intrinsic(bits):
    def zero(typingctx, a):
        vector = _vector_type(a.dtype, bits)

        def codegen(context, builder, signature, args):
            llvm_type = context.get_value_type(vector)
            return ir.Constant(llvm_type, [ir.Constant(llvm_type.element, 0.0)] * vector.lanes)

        return vector(a), codegen

    return zero


vzero, vzero_narrow = _at_both_widths(
    _zero_intrinsic, "A zero vector of the dtype of the array ``a``.")


def _splat_intrinsic(bits):
    def splat(typingctx, x):
        vector = _vector_type(x, bits)

        def codegen(context, builder, signature, args):
            llvm_type = context.get_value_type(vector)
            lane0 = builder.insert_element(ir.Constant(llvm_type, ir.Undefined), args[0],
                                           ir.Constant(ir.IntType(32), 0))
            everywhere = ir.Constant(ir.VectorType(ir.IntType(32), vector.lanes),
                                     [0] * vector.lanes)
            return builder.shuffle_vector(lane0, ir.Constant(llvm_type, ir.Undefined), everywhere)

        return vector(x), codegen

    return splat


vsplat, vsplat_narrow = _at_both_widths(
    _splat_intrinsic, "A vector with the float ``x`` in every lane.")


def _lane_pointer(context, builder, signature, args, llvm_vector_type):
    """Pointer to a[i, j] for args (a, i, j, ...), as a pointer to a vector."""
    array_type = signature.args[0]
    data = context.make_array(array_type)(context, builder, args[0])
    indices = [context.cast(builder, args[k], signature.args[k], types.intp) for k in (1, 2)]
    element = cgutils.get_item_pointer(context, builder, array_type, data, indices)
    return builder.bitcast(element, llvm_vector_type.as_pointer())


def _load_intrinsic(bits):
    def load(typingctx, a, i, j):
        if not (isinstance(a, types.Array) and a.ndim == 2 and isinstance(i, types.Integer)
                and isinstance(j, types.Integer)):
            return None
        vector = _vector_type(a.dtype, bits)

        def codegen(context, builder, signature, args):
            llvm_type = context.get_value_type(vector)
            pointer = _lane_pointer(context, builder, signature, args, llvm_type)
            return builder.load(pointer, align=a.dtype.bitwidth // 8)

        return vector(a, i, j), codegen

    return load


vload, vload_narrow = _at_both_widths(
    _load_intrinsic, "The vector a[i, j:j + lanes] of a 2-D float array.")


@intrinsic
def vstore(typingctx, a, i, j, v):
    """a[i, j:j + lanes] = v for a 2-D float array of v's dtype."""
    if not (isinstance(a, types.Array) and a.ndim == 2 and a.mutable
            and isinstance(i, types.Integer) and isinstance(j, types.Integer)
            and isinstance(v, SimdVector) and v.dtype == a.dtype):
        return None

    def codegen(context, builder, signature, args):
        pointer = _lane_pointer(context, builder, signature, args, args[3].type)
        builder.store(args[3], pointer, align=a.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.void(a, i, j, v), codegen


@intrinsic
def vfma(typingctx, x, y, acc):
    """x * y + acc, lane by lane (LLVM's fmuladd: one FMA instruction where the
    CPU has them, which rounds once; a multiply and an add elsewhere, instead of
    a call to libm's fma per lane)."""
    if not (isinstance(acc, SimdVector) and x == acc and y == acc):
        return None

    def codegen(context, builder, signature, args):
        llvm_type = args[2].type
        suffix = f"v{acc.lanes}f{acc.dtype.bitwidth}"
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(llvm_type, [llvm_type] * 3),
            f"llvm.fmuladd.{suffix}")
        return builder.call(fma, args)

    return acc(x, y, acc), codegen


@intrinsic
def vlane(typingctx, v, j):
    """Lane j of the vector v, 0 <= j < lanes (not checked)."""
    if not (isinstance(v, SimdVector) and isinstance(j, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        return builder.extract_element(args[0], index)

    return v.dtype(v, j), codegen
