"""What a new process pays before its first step: import + first LSTM forward+backward.

asv runs the code of a ``timeraw_`` benchmark in a fresh interpreter; the on-disk
compile cache is warm after the first run, and ``setup_cache`` makes that first
run come before the benchmark (so it times loading the cache, not compiling).
"""

import sys

from . import WARM_UP_TIMEOUT, warm_up


def setup_cache():
    """Compile the kernels the benchmark's code calls (see the package docstring)."""
    warm_up(sys.modules[__name__])


setup_cache.timeout = WARM_UP_TIMEOUT


def timeraw_import_and_first_lstm_step():
    return """
import numpy as np
from fastrnn.layer_utils import LSTM
layer = LSTM(10, 20)
layer.forward(np.ones((10, 50, 10)), np.zeros((10, 20)))
layer.backward(np.ones((10, 50, 20)))
"""
