"""One threading policy for the whole package: Numba owns the cores, BLAS runs
single-threaded underneath.

Two thread pools could compete for the cores: the OpenBLAS that Numba's
``np.dot`` calls (SciPy's) and Numba's own threads.  Nested, they fight (the
performance issue measured a 60x slowdown on these machines), and even side by side OpenBLAS's idle workers spin and
steal the cores from the next step of a time loop (measured: an LSTM forward at
N=32, H=128 took 167 ms with 2 BLAS threads and 25 ms with 1 on a busy machine).
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

# Below this many floating-point operations a kernel runs on one thread.
#
# On the 2-core machines (AMD EPYC VMs, Numba's omp layer) two threads have two
# modes that last seconds to minutes each.  In the slow one the host has put the
# two vCPUs far apart: a cache line written by one core reaches the other in
# 175-195 ns instead of ~38 (a two-thread ping-pong), an empty parallel region
# takes 2.6-2.9 us instead of 1.5, and whatever one thread writes and the other
# reads costs that much more (the same with OMP_WAIT_POLICY=active; a serial run
# is as fast as ever).  Hence ``blocked.PER_THREAD_COPY_MAX_SIZE``.  Apart from
# that, one vCPU at times runs the same pinned single-thread loop 1.4-1.8x slower
# than the other, and a two-thread kernel then waits for the thread on it
# (asv_bench/host_state.py measures both; the README has the per-thread profile).
# Recurrent layers' forward+backward, the two modes interleaved over 5 minutes,
# medians, speed-up of two threads over one, fast / slow phase, by the layers' count of
# the work (flops below, per forward; measured before the per-thread copies):
#   tanh RNN (10, 50, 10, 20), 0.90 MFLOP: float64 1.40 / 1.15, float32 1.35 / 0.98
#   tanh RNN (10, 30, 10, 20), 0.54 MFLOP: float64 1.32 / 0.95, float32 1.21 / 0.82
#   LSTM (10, 10, 10, 20), 0.72 MFLOP:     float64 1.32 / 0.83, float32 1.23 / 0.80
#   tanh RNN (4, 50, 10, 20), 0.36 MFLOP:  float64 1.17 / 0.87
#   LSTM (4, 50, 10, 20), 1.44 MFLOP:      float64 1.45 / 1.09
# The slow phase took 5 of 12 rounds there.  From ~0.9 MFLOP two threads win in
# both phases, or lose 2% in the slow one; below, what the fast phase gains the
# slow one takes back.  (The threshold was 1.2 MFLOP, from one run in which the
# notebook-size RNN gained 1.10x in float64 and lost in float32.)
PARALLEL_MIN_FLOPS = 800_000

# Generation wakes the threads at every token, so it has its own, higher bar:
# an output layer of at least this many multiply-adds (e.g. 5,000 words x 128
# units, measured 72 us a token on one thread); a character-level one (65 x 256)
# stays serial.
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
# takes ~0.68 us, most of it making sure the threading layer is running (two
# locks); once it is, Numba's own thread-local getter underneath answers in
# ~0.09 us.  A recurrent layer asks at every forward, so at the notebook's size
# the public call alone was ~1% of a forward+backward.  The getter is a private
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
