"""One threading policy for the whole package: Numba owns the cores, BLAS runs
single-threaded underneath.

Two thread pools could compete for the cores: the OpenBLAS that Numba's
``np.dot`` calls (SciPy's) and Numba's own threads.  Nested, they fight, and
even side by side OpenBLAS's idle workers spin and steal the cores from the next
step of a time loop (docs/tuning.md#blas-one-thread).
So fastrnn parallelises one level above BLAS: the kernels cut the batch (or
the rows of a big GEMM) into blocks that run on Numba's threads, each block
calling a single-threaded GEMM.  At import, SciPy's BLAS -- the one the kernels
call, and only that one -- is set to one thread; NumPy's BLAS, which fastrnn
does not use on its hot paths, is left as the user has it.

``set_num_threads(n)`` sets how many of Numba's threads the kernels use; small
problems run serially whatever it says, because waking threads costs more than
they save there.
"""

import os

import numba
import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS Numba's np.dot calls)
from threadpoolctl import ThreadpoolController

try:  # Numba's threading-layer module (private: see _current_num_threads)
    from numba.np.ufunc import parallel as _numba_parallel
except ImportError:
    _numba_parallel = None

# Below this many floating-point operations a kernel runs on one thread.  On the
# 2-core VMs two threads have a fast and a slow phase (the host placing the vCPUs
# close or far apart; ``asv_bench/host_state.py`` tells which): from about this
# much work two threads win in both, below it the slow phase takes back what the
# fast one gains.  Hence also ``blocked.PER_THREAD_COPY_MAX_SIZE``.  See
# docs/tuning.md#parallel-min-flops.
PARALLEL_MIN_FLOPS = 800_000

# Generation wakes the threads at every token, so it has its own, higher bar:
# an output layer of at least this many multiply-adds (e.g. 5,000 words x 128
# units); a character-level one (65 x 256) stays serial
# (docs/tuning.md#generation-parallel-min-macs).
GENERATION_PARALLEL_MIN_MACS = 256_000


def _kernel_blas(controller):
    """The BLAS libraries loaded by SciPy (not NumPy's own copy), as a controller."""
    scipy_paths = [lib.filepath for lib in controller.lib_controllers
                   if lib.user_api == "blas" and "scipy" in lib.filepath
                   and not os.path.basename(os.path.dirname(lib.filepath)).startswith("numpy")]
    if scipy_paths:
        return controller.select(filepath=scipy_paths)
    # SciPy and NumPy share one BLAS (e.g. a system or conda build): pin that one.
    return controller.select(user_api="blas")


def pin_kernel_blas_to_one_thread():
    """Make the BLAS under the kernels single-threaded (done once at import)."""
    _kernel_blas(ThreadpoolController()).limit(limits=1)


def set_num_threads(n):
    """Use ``n`` of Numba's threads in fastrnn's parallel kernels."""
    limit = numba.config.NUMBA_NUM_THREADS
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= limit:
        raise ValueError(f"n: expected an integer in [1, {limit}], got {n!r}")
    numba.set_num_threads(n)


def get_num_threads():
    """How many threads fastrnn's parallel kernels use."""
    return numba.get_num_threads()


# How each layer call asks for the thread count.  ``numba.get_num_threads``
# spends most of its time making sure the threading layer is running (two
# locks); once it is, Numba's own thread-local getter underneath answers several
# times faster, and a recurrent layer asks at every forward
# (docs/tuning.md#thread-count-getter).  The getter is a private
# name of Numba's: if a Numba release drops it, the public call is used.
_thread_count_getter = None


def _current_num_threads():
    """``numba.get_num_threads()`` (the calling thread's setting), cheaply."""
    global _thread_count_getter
    if _thread_count_getter is None:
        count = numba.get_num_threads()  # launches the threading layer first
        _thread_count_getter = getattr(_numba_parallel, "_get_num_threads",
                                       numba.get_num_threads)
        return count
    return _thread_count_getter()


def _one_block_per_thread(rows):
    return max(1, min(_current_num_threads(), rows))


def chunks_for(rows, flops):
    """How many blocks of ``rows`` to run in parallel for ``flops`` of work (1 = serial)."""
    if rows < 2 or flops < PARALLEL_MIN_FLOPS:  # checked first: it needs no call into Numba
        return 1
    return _one_block_per_thread(rows)


def generation_chunks(vocab, hidden):
    """Blocks of the output layer (vocab x hidden) for token-by-token generation
    (1 = serial); see ``GENERATION_PARALLEL_MIN_MACS``."""
    if vocab * hidden < GENERATION_PARALLEL_MIN_MACS:
        return 1
    return _one_block_per_thread(vocab)


pin_kernel_blas_to_one_thread()
