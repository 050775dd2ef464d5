"""One threading policy for the whole package.

Two thread pools could compete for the cores: the BLAS that Numba's ``np.dot``
calls (SciPy's OpenBLAS, plus NumPy's for the numpy-level GEMMs) and Numba's own
parallel regions (the softmax loss).  fastrnn never calls BLAS from inside a
parallel Numba region, so the two pools take turns instead of nesting (nesting
is what costs a 60x slowdown: every Numba thread starting a full BLAS pool).
Both pools are sized to the same count, the machine's cores by default, and
``set_num_threads`` changes both at once.
"""

import numba
from threadpoolctl import threadpool_info, threadpool_limits

def set_num_threads(n):
    """Use ``n`` threads for BLAS calls and for Numba's parallel kernels."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"n: expected an integer in [1, {numba.config.NUMBA_NUM_THREADS}], got {n!r}")
    numba.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")


def get_num_threads():
    """Threads fastrnn's kernels use (Numba's count; BLAS is kept to the same)."""
    return numba.get_num_threads()


def blas_libraries():
    """The BLAS libraries loaded in this process with their thread counts (for reports)."""
    return [(info.get("internal_api"), info.get("filepath"), info.get("num_threads"))
            for info in threadpool_info() if info.get("user_api") == "blas"]
