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

# Below this many floating-point operations a kernel runs on one thread.  Measured
# on the 2-core machines (AMD EPYC, Numba's omp layer, fastrnn forward+backward,
# serial / two threads): notebook LSTM (10, 50, 10, 20), 3.6 MFLOP per forward
# by the layers' count, 1.38x (f64) and 1.24x (f32) faster on two threads; the
# same RNN, 0.9 MFLOP, 1.10x and 0.90x; LSTM (10, 10, 10, 20), 0.7 MFLOP, 0.98x
# and 0.89x.  The notebook's language-model iteration at 200 words went from
# 0.85 to 0.54 ms with this threshold instead of 20 MFLOP.
PARALLEL_MIN_FLOPS = 1_200_000

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


def _one_block_per_thread(rows):
    return max(1, min(numba.get_num_threads(), rows))


def chunks_for(rows, flops):
    """How many blocks of ``rows`` to run in parallel for ``flops`` of work (1 = serial)."""
    if rows < 2 or flops < PARALLEL_MIN_FLOPS:  # checked first: asking Numba costs ~2 us
        return 1
    return _one_block_per_thread(rows)


def generation_chunks(vocab, hidden):
    """Blocks of the output layer (vocab x hidden) for token-by-token generation
    (1 = serial); see ``GENERATION_PARALLEL_MIN_MACS``."""
    if vocab * hidden < GENERATION_PARALLEL_MIN_MACS:
        return 1
    return _one_block_per_thread(vocab)


pin_kernel_blas_to_one_thread()
