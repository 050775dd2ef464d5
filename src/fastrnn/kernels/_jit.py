"""The decorators every kernel is compiled with.

* ``cache=True``: machine code is kept on disk, so a new process does not recompile.
  The entries are keyed on every source under ``fastrnn/kernels`` and the package
  version (:mod:`._cache`), so an edit to a helper in another file (``activations``,
  ``simd``, ``packed``) or to a threshold recompiles the kernels that use it; the
  files go where Numba would put them (``NUMBA_CACHE_DIR`` if set, else
  ``__pycache__``, else the user-wide cache directory).  ``FASTRNN_NO_CACHE=1``
  compiles without the disk cache (no files read or written).
* ``error_model="numpy"``: float division by zero gives inf/nan instead of raising;
  Python's model puts a branch on every division, which stops LLVM from
  vectorising the gate loops (measured: no SIMD at all with the default).
* ``fastmath={"contract"}`` only: lets LLVM fuse a*b+c into one FMA (the
  activation polynomials are chains of them), which rounds once instead of twice.
  No reassociation and no NaN/inf assumptions: the notebook's checks need results
  reproducible at ~1e-10, and the activations must handle infinite inputs.

Kernels that split work into chunks (``prange`` over ``n_chunks``) are compiled
twice by :func:`serial_and_parallel`: a serial build, for small problems where
starting threads costs more than it saves, and a ``parallel=True`` build.  Results
depend on the block count only through the summation order of the weight gradients.
"""

import types

from ._cache import jit

JIT_OPTIONS = dict(cache=True, error_model="numpy", fastmath={"contract"})


def kernel(fn=None, **options):
    """Compile ``fn`` with the package's JIT options (``@kernel`` or ``@kernel(...)``)."""
    merged = {**JIT_OPTIONS, **options}
    if fn is None:
        return lambda f: jit(f, merged)
    return jit(fn, merged)


def _renamed(fn, suffix):
    """A copy of function ``fn`` whose qualified name ends in ``suffix``.

    Numba's on-disk cache files are named after the function's qualified name and
    do not record compile options: two builds of one function with different
    options would load each other's machine code (measured: the parallel build
    running the serial code).  A distinct name gives each build its own files.
    """
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix,
                              fn.__defaults__, fn.__closure__)
    copy.__qualname__ = fn.__qualname__ + suffix
    copy.__doc__ = fn.__doc__
    copy.__module__ = fn.__module__
    return copy


class ChunkedKernel:
    """A kernel with a serial and a parallel build; call it with ``n_chunks`` last.

    ``n_chunks == 1`` runs the serial build, more runs the chunks on Numba's threads.
    """

    def __init__(self, fn):
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.serial = kernel(fn)
        self.parallel = kernel(parallel=True)(_renamed(fn, "_parallel"))

    def __call__(self, *args):
        build = self.parallel if args[-1] > 1 else self.serial
        return build(*args)


def serial_and_parallel(fn):
    """Decorator: compile ``fn`` (whose last argument is ``n_chunks``) both ways."""
    return ChunkedKernel(fn)
