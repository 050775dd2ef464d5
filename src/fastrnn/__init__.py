"""fastrnn: recurrent language models (vanilla RNN, LSTM) trained fast on a CPU.

A drop-in replacement for the numpy ``lib`` of the classic "language modeling with
RNNs" notebook: ``from fastrnn.rnn import *`` (and ``layer_utils``, ``grad_check``,
``optim``, ``train``) in place of ``from lib.X import *``.  The per-timestep loops
run in Numba-compiled kernels (:mod:`fastrnn.kernels`).
"""

from ._threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = ["__version__", "get_num_threads", "set_num_threads"]
