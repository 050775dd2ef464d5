"""What a new process pays before its first step: import + first LSTM forward+backward.

asv runs the code of a ``timeraw_`` benchmark in a fresh interpreter; the on-disk
compile cache is warm after the first run.
"""


def timeraw_import_and_first_lstm_step():
    return """
import numpy as np
from fastrnn.layer_utils import LSTM
layer = LSTM(10, 20)
layer.forward(np.ones((10, 50, 10)), np.zeros((10, 20)))
layer.backward(np.ones((10, 50, 20)))
"""
