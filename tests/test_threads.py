"""The threading policy: Numba's threads own the cores, the BLAS under the kernels
runs single-threaded, and the user sets the count from Python."""

import threading

import numba
import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

import fastrnn
from fastrnn import _threads
from fastrnn.layer_utils import LSTM


def test_the_blas_under_the_kernels_is_single_threaded_after_a_kernel_ran():
    layer = LSTM(3, 4)
    layer.forward(np.ones((2, 5, 3)), np.zeros((2, 4)))
    pinned = _threads._kernel_blas(ThreadpoolController())
    assert pinned.lib_controllers, "no BLAS found under the kernels"
    assert all(lib.num_threads == 1 for lib in pinned.lib_controllers)


def test_set_num_threads_sets_numbas_count_and_is_validated():
    before = fastrnn.get_num_threads()
    try:
        fastrnn.set_num_threads(1)
        assert fastrnn.get_num_threads() == 1 == numba.get_num_threads()
        assert _threads.chunks_for(rows=64, flops=10**12) == 1  # one thread: serial
    finally:
        fastrnn.set_num_threads(before)
    for bad in (0, -1, 1.5, True, numba.config.NUMBA_NUM_THREADS + 1):
        with pytest.raises(ValueError, match="n: expected an integer"):
            fastrnn.set_num_threads(bad)


def test_the_layers_thread_count_follows_numbas_setting_in_each_python_thread():
    """The cheap getter the layers use answers what ``numba.get_num_threads``
    does, including a count set through Numba directly and Numba's per-thread
    setting."""
    before = numba.get_num_threads()
    try:
        for count in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            numba.set_num_threads(count)
            assert _threads._current_num_threads() == count
        numba.set_num_threads(1)
        seen = []
        worker = threading.Thread(
            target=lambda: seen.append((_threads._current_num_threads(), numba.get_num_threads())))
        worker.start()
        worker.join()
        assert seen[0][0] == seen[0][1]
        assert _threads._current_num_threads() == 1
    finally:
        numba.set_num_threads(before)


def test_the_layers_use_numbas_cheap_getter_and_fall_back_to_the_public_call(monkeypatch):
    """On the supported Numba the layers ask its thread-local getter (0.09 us, not
    the public call's 0.68); where a release has no such name, the public call
    answers."""
    from numba.np.ufunc import parallel as numba_parallel

    _threads._current_num_threads()
    assert _threads._thread_count_getter is numba_parallel._get_num_threads
    for stand_in in (None, object()):  # the module gone, or the name gone from it
        monkeypatch.setattr(_threads, "_numba_parallel", stand_in)
        monkeypatch.setattr(_threads, "_thread_count_getter", None)
        assert _threads._current_num_threads() == numba.get_num_threads()
        assert _threads._thread_count_getter is numba.get_num_threads
        assert _threads._current_num_threads() == numba.get_num_threads()


def test_small_problems_run_serially_and_large_ones_in_blocks():
    assert _threads.chunks_for(rows=10, flops=_threads.PARALLEL_MIN_FLOPS - 1) == 1
    threads = fastrnn.get_num_threads()
    expected = 1 if threads == 1 else min(threads, 3)
    assert _threads.chunks_for(rows=3, flops=10**12) == expected
    assert _threads.chunks_for(rows=1, flops=10**12) == 1


def test_generation_splits_only_a_large_output_layer():
    assert _threads.generation_chunks(vocab=65, hidden=256) == 1  # character level
    threads = fastrnn.get_num_threads()
    assert _threads.generation_chunks(vocab=5000, hidden=128) == min(threads, 5000)
    assert _threads.generation_chunks(vocab=1, hidden=10**6) == 1  # one row cannot be split
