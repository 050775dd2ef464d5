"""The one decorator every kernel is compiled with.

* ``cache=True``: machine code is kept on disk, so a new process does not recompile.
* ``error_model="numpy"``: float division by zero gives inf/nan instead of raising;
  Python's model puts a branch on every division, which stops LLVM from
  vectorising the gate loops (measured: no SIMD at all with the default).
* no ``fastmath``: the notebook's checks need results reproducible at ~1e-10.
"""

from numba import njit

JIT_OPTIONS = dict(cache=True, error_model="numpy")


def kernel(fn=None, **options):
    """Compile ``fn`` with the package's JIT options (``@kernel`` or ``@kernel(...)``)."""
    merged = {**JIT_OPTIONS, **options}
    if fn is None:
        return njit(**merged)
    return njit(**merged)(fn)
